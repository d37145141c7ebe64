//! `checkpoints`: versioned agent state.

use warden_store::Store;
use warden_store::checkpoints::PutCheckpoint;

use crate::common::TestResult;

conformance!(
    checkpoints_are_versioned_listed_and_pruned,
    new_agents_are_refused_past_the_workspace_cap
);

async fn checkpoints_are_versioned_listed_and_pruned(store: Store) -> TestResult {
    for i in 1..=3_i64 {
        let data = format!("state {i}").into_bytes();
        let version = store
            .put_checkpoint("ws", "agent-1", &format!("sha-{i}"), &data, 1_000 + i, 100)
            .await?;
        assert_eq!(version, PutCheckpoint::Stored(i));
    }
    assert_eq!(
        store
            .put_checkpoint("ws", "agent-2", "sha", b"\x00\xffbinary", 5, 100)
            .await?,
        PutCheckpoint::Stored(1),
        "each agent counts on its own"
    );
    assert_eq!(
        store
            .put_checkpoint("other", "agent-1", "sha", b"x", 5, 100)
            .await?,
        PutCheckpoint::Stored(1),
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
            .put_checkpoint("ws", "agent-1", "sha-4", b"4", 9, 100)
            .await?,
        PutCheckpoint::Stored(4)
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

/// Issue 15: an agent id is free-form, so one token could store
/// checkpoints (up to 20 versions of 8 MiB each) under any number of
/// agent ids. New agents are refused once the workspace has `max_agents`;
/// known agents still store versions, other workspaces are not counted,
/// and deleting an agent's checkpoints frees its place.
async fn new_agents_are_refused_past_the_workspace_cap(store: Store) -> TestResult {
    for agent in ["a1", "a2", "a3"] {
        assert_eq!(
            store.put_checkpoint("ws", agent, "sha", b"x", 1, 3).await?,
            PutCheckpoint::Stored(1)
        );
    }
    assert_eq!(
        store.put_checkpoint("ws", "a4", "sha", b"x", 2, 3).await?,
        PutCheckpoint::TooManyAgents(3)
    );
    assert!(store.list_checkpoints("ws", "a4", 10).await?.is_empty());
    assert_eq!(
        store.put_checkpoint("ws", "a1", "sha", b"y", 3, 3).await?,
        PutCheckpoint::Stored(2),
        "an agent under the cap keeps storing versions"
    );
    assert_eq!(
        store
            .put_checkpoint("other", "a4", "sha", b"x", 4, 3)
            .await?,
        PutCheckpoint::Stored(1),
        "each workspace has its own cap"
    );
    assert_eq!(store.delete_checkpoints("ws", "a2").await?, 1);
    assert_eq!(
        store.put_checkpoint("ws", "a4", "sha", b"x", 5, 3).await?,
        PutCheckpoint::Stored(1)
    );

    // Many new agents at once: exactly as many as there is room for.
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put_checkpoint("race", &format!("agent-{i}"), "sha", b"x", i, 5)
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for handle in handles {
        if let PutCheckpoint::Stored(_) = handle.await?? {
            stored += 1;
        }
    }
    assert_eq!(stored, 5, "the cap holds under concurrent puts");
    Ok(())
}
