//! `task_events`: per-task ordered events, and the task's `last_event_at`.

use serde_json::json;
use warden_store::stages::{ClaimEvents, LeaseLimits};
use warden_store::task_events::NewEvent;
use warden_store::{Error, Store, now_ms};

use crate::common::{TestResult, claim_req, new_task, raw_execute};

conformance!(
    events_are_numbered_per_task_and_paged,
    events_need_a_task,
    a_claim_writes_the_events_it_is_given,
    a_claim_writes_running_events_for_the_claims_that_go_ahead,
);

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

async fn a_claim_writes_the_events_it_is_given(store: Store) -> TestResult {
    let mut ids = Vec::new();
    for title in ["a", "b", "c"] {
        let (t, _) = store.create_task(&new_task("ws", title)).await?;
        ids.push(t.id);
    }
    store
        .add_task_event("ws", &ids[0], "tool_start", &json!({}), 1)
        .await?;
    let now = now_ms() + 60_000;
    // Every claimed task but "b" gets an event naming its token.
    let claimed = store
        .claim_stages_with(
            &claim_req("ws", "w1", 3, now),
            ClaimEvents::Each(&|c| {
                (c.task.title != "b").then(|| NewEvent::new("status", json!({ "token": c.run.id })))
            }),
        )
        .await?;
    assert_eq!(claimed.len(), 3);
    for (c, written) in &claimed {
        assert_eq!(
            written.as_ref().map(|e| e.data.clone()),
            (c.task.title != "b").then(|| json!({ "token": c.run.id }))
        );
        let events = store.list_task_events("ws", &c.task.id, 0, 0).await?;
        let got: Vec<(i64, &str, serde_json::Value)> = events
            .iter()
            .map(|e| (e.seq, e.kind.as_str(), e.data.clone()))
            .collect();
        let status = (json!({ "token": c.run.id }), now);
        match c.task.title.as_str() {
            "a" => {
                assert_eq!(got[1..], [(2, "status", status.0)]);
                assert_eq!(events[1].at, status.1);
            }
            "b" => assert!(got.is_empty(), "{got:?}"),
            _ => assert_eq!(got, [(1, "status", status.0)]),
        }
    }
    // Nothing claimed, nothing written.
    let none = store
        .claim_stages_with(
            &claim_req("ws", "w1", 3, now),
            ClaimEvents::Each(&|_| Some(NewEvent::new("status", json!({})))),
        )
        .await?;
    assert!(none.is_empty());
    Ok(())
}

/// `ClaimEvents::Running`: a claim that goes ahead gets its `running`
/// event with it; one beyond the loop limit or over a budget gets none.
/// On PostgreSQL without caps the events come from the claim's own
/// statement, with caps from the transaction; both must say the same as
/// `Claimed::goes_ahead` and `Claimed::running_event`.
async fn a_claim_writes_running_events_for_the_claims_that_go_ahead(store: Store) -> TestResult {
    for (ws, capped) in [("uncapped", false), ("capped", true)] {
        for title in ["plain", "within budget", "spent", "looping", "last try"] {
            store.create_task(&new_task(ws, title)).await?;
        }
        for fix in [
            "UPDATE tasks SET budget_tokens = 100, used_tokens = 99 WHERE title = 'within budget'",
            "UPDATE tasks SET budget_wall_ms = 10, used_wall_ms = 10 WHERE title = 'spent'",
            "UPDATE tasks SET attempts = 3 WHERE title = 'looping'",
            "UPDATE tasks SET attempts = 2 WHERE title = 'last try'",
        ] {
            raw_execute(&format!("{fix} AND workspace = '{ws}'")).await?;
        }
        let now = now_ms() + 60_000;
        let mut req = claim_req(ws, "w1", 10, now);
        if capped {
            req.limits = LeaseLimits {
                workspace: Some(10),
                ..LeaseLimits::default()
            };
        }
        let claimed = store
            .claim_stages_with(&req, ClaimEvents::Running { loop_limit: 3 })
            .await?;
        assert_eq!(claimed.len(), 5, "{ws}");
        for (c, written) in &claimed {
            let ahead = !matches!(c.task.title.as_str(), "spent" | "looping");
            assert_eq!(c.goes_ahead(3), ahead, "{ws}: {}", c.task.title);
            assert_eq!(
                written.as_ref(),
                ahead.then(|| c.running_event()).as_ref(),
                "{ws}: {}",
                c.task.title
            );
            let events = store.list_task_events(ws, &c.task.id, 0, 0).await?;
            let got: Vec<(i64, &str, serde_json::Value, i64)> = events
                .iter()
                .map(|e| (e.seq, e.kind.as_str(), e.data.clone(), e.at))
                .collect();
            if ahead {
                let e = c.running_event();
                assert_eq!(got, [(1, "status", e.data, now)], "{ws}: {}", c.task.title);
                assert_eq!(c.task.last_event_at, now);
            } else {
                assert!(got.is_empty(), "{ws}: {}: {got:?}", c.task.title);
            }
        }
    }
    Ok(())
}
