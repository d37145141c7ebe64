//! The task event stream (SPEC OB-3) over HTTP: events in order with their
//! sequence numbers as ids, live while the task moves, a reconnect with
//! `Last-Event-ID` that gets exactly what it missed, and the end of the
//! stream once the task is done. (The playbook run stream is in `runs.rs`.)

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Sse, TestServer};

async fn post(s: &TestServer, path: &str, body: Value) -> Value {
    let (status, v) = s.post(path, &body).await;
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// Claims the task's next stage and completes it.
async fn advance(s: &TestServer, id: &str) {
    let c = post(
        s,
        "/v1/workspaces/st/tasks/claim",
        json!({ "worker_id": "w", "wait_ms": 2000 }),
    )
    .await;
    let c = &c["claims"][0];
    assert_eq!(c["task_id"], id, "{c}");
    post(
        s,
        &format!("/v1/workspaces/st/tasks/{id}/events"),
        json!({ "type": "tool_start", "data": { "name": "edit" } }),
    )
    .await;
    post(
        s,
        &format!("/v1/workspaces/st/tasks/{id}/complete"),
        json!({ "token": c["token"] }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stream_is_live_in_order_and_resumes_with_last_event_id() {
    let s = TestServer::start("").await;
    let t = post(
        &s,
        "/v1/workspaces/st/tasks",
        json!({ "title": "streamed", "pipeline": ["plan", "implement", "review"] }),
    )
    .await;
    let id = t["id"].as_str().unwrap().to_string();
    let path = format!("/v1/workspaces/st/tasks/{id}/events/stream");

    // Live: the stream is open before the task moves.
    let mut live = Sse::open(&s, &path, None).await;
    advance(&s, &id).await;
    let mut seen = Vec::new();
    // The first stage: at least the claim's status, the worker's
    // tool_start and the completion's status.
    while seen.len() < 3 {
        seen.push(live.next().await.expect("live events"));
    }
    drop(live);
    let last = seen.last().unwrap().0;

    // The rest of the task happens while nobody listens.
    advance(&s, &id).await;
    advance(&s, &id).await;
    let (_, task) = s.get(&format!("/v1/workspaces/st/tasks/{id}")).await;
    assert_eq!(task["state"], "done", "{task}");

    // Reconnecting with Last-Event-ID gets exactly what was missed, then
    // the stream ends (the task is done).
    let mut resumed = Sse::open(&s, &path, Some(last)).await;
    while let Some(e) = resumed.next().await {
        seen.push(e);
    }
    let ids: Vec<i64> = seen.iter().map(|e| e.0).collect();
    let expected: Vec<i64> = (1..=ids.len() as i64).collect();
    assert_eq!(ids, expected, "every event once, in order");
    let (_, stored) = s
        .get(&format!("/v1/workspaces/st/tasks/{id}/events?limit=1000"))
        .await;
    assert_eq!(
        stored["events"].as_array().unwrap().len(),
        seen.len(),
        "the stream carries every stored event"
    );
    for (seq, kind, data) in &seen {
        assert_eq!(data["seq"], *seq);
        assert_eq!(data["type"], kind.as_str());
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "tool_start").count(), 3);
    assert_eq!(kinds.last(), Some(&"stop_reason"), "{kinds:?}");
    assert_eq!(seen.last().unwrap().2["data"]["reason"], "done");

    // A finished task's stream replays and ends at once; `?after=` works
    // like the header.
    let mut replay = Sse::open(&s, &format!("{path}?after={}", ids.len() - 2), None).await;
    let mut tail = Vec::new();
    while let Some(e) = replay.next().await {
        tail.push(e.0);
    }
    assert_eq!(tail, [ids.len() as i64 - 1, ids.len() as i64]);

    // Errors: an unknown task, a bad query.
    let (status, body) = s.get("/v1/workspaces/st/tasks/nope/events/stream").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s.get(&format!("{path}?after=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    s.stop().await;
}
