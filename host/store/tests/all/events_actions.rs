//! `run_events` and `actions`: ordered, append-only streams per run.

use serde_json::json;
use warden_store::run_events::RunEventRow;
use warden_store::{Error, Store};

use crate::common::{TestResult, action};

conformance!(
    events_are_ordered_deduplicated_and_paged,
    actions_are_ordered_and_unique,
    actions_are_counted_and_paged
);

fn event(run_id: &str, seq: i64, kind: &str) -> RunEventRow {
    RunEventRow {
        run_id: run_id.to_string(),
        seq,
        kind: kind.to_string(),
        data: json!({"seq": seq, "text": format!("{kind} {seq}")}),
        at: 1_000 + seq,
    }
}

async fn events_are_ordered_deduplicated_and_paged(store: Store) -> TestResult {
    // Out of order within a batch.
    store
        .append_run_events(&[
            event("r1", 3, "log"),
            event("r1", 1, "status"),
            event("r1", 2, "tool_start"),
        ])
        .await?;
    store.append_run_events(&[event("r2", 1, "status")]).await?;
    store.append_run_events(&[]).await?;

    // A replayed batch: seq 3 exists and is kept as first written, 4 and 5 are new.
    let replayed = RunEventRow {
        kind: "replayed".to_string(),
        data: json!({"overwritten": true}),
        ..event("r1", 3, "log")
    };
    store
        .append_run_events(&[
            replayed,
            event("r1", 4, "tool_result"),
            event("r1", 5, "status"),
        ])
        .await?;

    let all = store.list_run_events("r1", 0, 100).await?;
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(
        all[2],
        event("r1", 3, "log"),
        "the first write of seq 3 is kept"
    );
    assert!(all.iter().all(|e| e.run_id == "r1"));

    let after2: Vec<i64> = store
        .list_run_events("r1", 2, 100)
        .await?
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(after2, [3, 4, 5]);
    let page: Vec<i64> = store
        .list_run_events("r1", 1, 2)
        .await?
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(page, [2, 3]);
    assert!(store.list_run_events("r1", 5, 100).await?.is_empty());
    assert_eq!(
        store.list_run_events("r2", 0, 100).await?,
        [event("r2", 1, "status")]
    );
    assert!(store.list_run_events("nope", 0, 100).await?.is_empty());
    Ok(())
}

async fn actions_are_ordered_and_unique(store: Store) -> TestResult {
    let second = action("ws", "run-1", 2, "tasks.block", Some("t2"));
    let first = action("ws", "run-1", 1, "tasks.requeue", Some("t1"));
    let untargeted = action("ws", "run-2", 1, "alerts.raise", None);
    store.insert_action(&second).await?;
    store.insert_action(&first).await?;
    store.insert_action(&untargeted).await?;

    assert_eq!(store.list_actions("run-1").await?, [first.clone(), second]);
    assert_eq!(store.list_actions("run-2").await?, [untargeted]);
    assert!(store.list_actions("run-3").await?.is_empty());

    let again = action("ws", "run-1", 1, "tasks.reset", Some("t9"));
    let err = store
        .insert_action(&again)
        .await
        .expect_err("seq 1 of run-1 exists");
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(err.to_string(), "action 1 of run \"run-1\" already exists");
    assert_eq!(
        store.list_actions("run-1").await?[0],
        first,
        "the first action is kept"
    );
    Ok(())
}

async fn actions_are_counted_and_paged(store: Store) -> TestResult {
    for seq in (1..=25).rev() {
        store
            .insert_action(&action("ws", "run-p", seq, "tasks.requeue", Some("t")))
            .await?;
    }
    store
        .insert_action(&action("ws", "run-q", 1, "tasks.requeue", Some("t")))
        .await?;
    assert_eq!(store.count_actions("run-p").await?, 25);
    assert_eq!(store.count_actions("run-q").await?, 1);
    assert_eq!(store.count_actions("none").await?, 0);
    let seqs = |rows: Vec<warden_store::actions::ActionRow>| -> Vec<i64> {
        rows.iter().map(|a| a.seq).collect()
    };
    assert_eq!(
        seqs(store.list_actions_after("run-p", 0, 10).await?),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(store.list_actions_after("run-p", 20, 10).await?),
        (21..=25).collect::<Vec<_>>()
    );
    assert!(store.list_actions_after("run-p", 25, 10).await?.is_empty());
    // 0 means the default page of 100.
    assert_eq!(store.list_actions_after("run-p", 0, 0).await?.len(), 25);
    Ok(())
}
