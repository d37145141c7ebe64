//! `workers`: heartbeats and the leases each worker holds.

use warden_store::Store;

use crate::common::{TestResult, claim_req, new_task};

conformance!(heartbeats_create_and_advance_workers);

async fn heartbeats_create_and_advance_workers(store: Store) -> TestResult {
    store.worker_heartbeat("ws", "w-1", 1_000).await?;
    store.worker_heartbeat("ws", "w-2", 2_000).await?;
    store.worker_heartbeat("ws", "w-1", 3_000).await?;
    // A late report never moves the heartbeat back.
    store.worker_heartbeat("ws", "w-2", 1_500).await?;
    store.worker_heartbeat("other", "w-3", 9_000).await?;

    let workers = store.list_workers("ws", 0).await?;
    let seen: Vec<(&str, i64, i64, i64)> = workers
        .iter()
        .map(|w| {
            (
                w.id.as_str(),
                w.first_seen_at,
                w.last_heartbeat_at,
                w.active_leases,
            )
        })
        .collect();
    assert_eq!(seen, [("w-1", 1_000, 3_000, 0), ("w-2", 2_000, 2_000, 0)]);
    assert!(workers.iter().all(|w| w.workspace == "ws"));
    let recent: Vec<String> = store
        .list_workers("ws", 2_500)
        .await?
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(recent, ["w-1"]);

    // Claims count as heartbeats and show as leases.
    for i in 0..3 {
        store
            .create_task(&new_task("ws", &format!("task {i}")))
            .await?;
    }
    let now = warden_store::now_ms() + 60_000;
    store.claim_stages(&claim_req("ws", "w-2", 2, now)).await?;
    let workers = store.list_workers("ws", 0).await?;
    assert_eq!(workers[0].id, "w-2");
    assert_eq!(
        (workers[0].last_heartbeat_at, workers[0].active_leases),
        (now, 2)
    );
    assert_eq!(
        (workers[1].id.as_str(), workers[1].active_leases),
        ("w-1", 0)
    );
    Ok(())
}
