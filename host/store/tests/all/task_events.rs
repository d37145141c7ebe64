//! `task_events`: per-task ordered events, and the task's `last_event_at`.

use serde_json::json;
use warden_store::{Error, Store};

use crate::common::{TestResult, new_task};

conformance!(events_are_numbered_per_task_and_paged, events_need_a_task);

async fn events_are_numbered_per_task_and_paged(store: Store) -> TestResult {
    let (a, _) = store.create_task(&new_task("ws", "a")).await?;
    let (b, _) = store.create_task(&new_task("ws", "b")).await?;
    let at = a.created_at + 5_000;
    for (i, kind) in ["status", "tool_start", "tool_result"].iter().enumerate() {
        let seq = store
            .add_task_event("ws", &a.id, kind, &json!({"i": i}), at + i as i64)
            .await?;
        assert_eq!(seq, i as i64 + 1);
    }
    assert_eq!(
        store
            .add_task_event("ws", &b.id, "status", &json!({}), at)
            .await?,
        1,
        "each task counts on its own"
    );
    let task = store.get_task("ws", &a.id).await?.expect("task");
    assert_eq!(task.last_event_at, at + 2);
    assert_eq!(task.updated_at, a.updated_at, "an event is not a change");

    let events = store.list_task_events("ws", &a.id, 0, 0).await?;
    let kinds: Vec<(i64, &str)> = events.iter().map(|e| (e.seq, e.kind.as_str())).collect();
    assert_eq!(
        kinds,
        [(1, "status"), (2, "tool_start"), (3, "tool_result")]
    );
    assert_eq!(events[1].data, json!({"i": 1}));
    assert_eq!(events[1].at, at + 1);
    assert_eq!(events[1].task_id, a.id);
    assert_eq!(events[1].workspace, "ws");

    let page: Vec<i64> = store
        .list_task_events("ws", &a.id, 1, 1)
        .await?
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(page, [2]);
    assert!(store.list_task_events("ws", &a.id, 3, 10).await?.is_empty());
    assert!(
        store
            .list_task_events("other", &a.id, 0, 10)
            .await?
            .is_empty(),
        "events are confined to their workspace"
    );
    Ok(())
}

async fn events_need_a_task(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "a")).await?;
    for (ws, id) in [("ws", "missing"), ("other", task.id.as_str())] {
        let err = store
            .add_task_event(ws, id, "status", &json!({}), 1)
            .await
            .expect_err("no such task");
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
        assert_eq!(err.to_string(), format!("task \"{id}\" not found"));
    }
    assert!(
        store
            .list_task_events("ws", &task.id, 0, 10)
            .await?
            .is_empty()
    );
    Ok(())
}
