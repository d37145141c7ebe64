//! `checkpoints`: versioned agent state.

use warden_store::Store;

use crate::common::TestResult;

conformance!(checkpoints_are_versioned_listed_and_pruned);

async fn checkpoints_are_versioned_listed_and_pruned(store: Store) -> TestResult {
    for i in 1..=3_i64 {
        let data = format!("state {i}").into_bytes();
        let version = store
            .put_checkpoint("ws", "agent-1", &format!("sha-{i}"), &data, 1_000 + i)
            .await?;
        assert_eq!(version, i);
    }
    assert_eq!(
        store
            .put_checkpoint("ws", "agent-2", "sha", b"\x00\xffbinary", 5)
            .await?,
        1,
        "each agent counts on its own"
    );
    assert_eq!(
        store
            .put_checkpoint("other", "agent-1", "sha", b"x", 5)
            .await?,
        1,
        "and each workspace"
    );

    let list = store.list_checkpoints("ws", "agent-1", 0).await?;
    let versions: Vec<i64> = list.iter().map(|c| c.version).collect();
    assert_eq!(versions, [3, 2, 1]);
    assert_eq!(list[0].data, b"state 3");
    assert_eq!(list[0].sha256, "sha-3");
    assert_eq!(list[0].created_at, 1_003);
    assert_eq!(
        (list[0].workspace.as_str(), list[0].agent_id.as_str()),
        ("ws", "agent-1")
    );
    assert_eq!(
        store.list_checkpoints("ws", "agent-2", 5).await?[0].data,
        b"\x00\xffbinary"
    );
    assert_eq!(store.list_checkpoints("ws", "agent-1", 1).await?.len(), 1);

    assert_eq!(store.prune_checkpoints("ws", "agent-1", 1).await?, 2);
    assert_eq!(store.prune_checkpoints("ws", "agent-1", 1).await?, 0);
    let left: Vec<i64> = store
        .list_checkpoints("ws", "agent-1", 10)
        .await?
        .iter()
        .map(|c| c.version)
        .collect();
    assert_eq!(left, [3]);
    assert_eq!(
        store
            .put_checkpoint("ws", "agent-1", "sha-4", b"4", 9)
            .await?,
        4
    );
    assert_eq!(
        store.list_checkpoints("ws", "agent-2", 10).await?.len(),
        1,
        "untouched"
    );
    assert_eq!(store.prune_checkpoints("ws", "agent-2", 0).await?, 1);
    assert!(
        store
            .list_checkpoints("ws", "agent-2", 10)
            .await?
            .is_empty()
    );
    Ok(())
}
