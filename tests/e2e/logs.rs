//! Structured logs (SPEC OB-5) of the real binary: JSON lines when asked,
//! each line of a request carrying its request id, taken from the client's
//! `x-request-id` or made up and returned in that header.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{ADMIN, TestServer};

/// The JSON log lines written so far.
fn lines(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Waits until some line satisfies `want`.
async fn find(log: &std::path::Path, want: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        if let Some(l) = lines(log).into_iter().find(&want) {
            return l;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no such log line in:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_given_or_made_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("warden.log");
    let s = TestServer::spawn_binary_with(
        dir,
        "",
        &[
            ("RUST_LOG", "info,tower_http=debug"),
            ("WARDEN_LOG_JSON", "true"),
        ],
        Some(&log),
    )
    .await;
    let (status, t) = s
        .post(
            "/v1/workspaces/logs/tasks",
            &json!({ "title": "logged", "pipeline": ["work"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");

    // The client's id: echoed, and on the lines the request wrote (the
    // scheduler's task_started line and tower-http's response line).
    let resp = s
        .client
        .post(format!("{}/v1/workspaces/logs/tasks/claim", s.url))
        .bearer_auth(ADMIN)
        .header("x-request-id", "req-from-the-client-42")
        .json(&json!({ "worker_id": "w" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-request-id"], "req-from-the-client-42");
    let started = find(&log, |l| l["fields"]["rule"] == "task_started").await;
    assert_eq!(
        started["span"]["request_id"], "req-from-the-client-42",
        "{started}"
    );
    assert_eq!(
        started["span"]["path"], "/v1/workspaces/logs/tasks/claim",
        "{started}"
    );
    assert_eq!(started["fields"]["task"], t["id"], "{started}");
    let done = find(&log, |l| {
        l["span"]["request_id"] == "req-from-the-client-42"
            && l["fields"]["message"] == "finished processing request"
    })
    .await;
    assert_eq!(done["fields"]["status"], 200, "{done}");
    assert!(done["fields"]["latency"].is_string(), "{done}");

    // No id given: one is made up (a UUID), returned and logged.
    let resp = s
        .client
        .get(format!("{}/v1/workspaces/logs/tasks", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let made_up = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&made_up).is_ok(), "{made_up}");
    let line = find(&log, |l| l["span"]["request_id"] == made_up.as_str()).await;
    assert_eq!(line["span"]["method"], "GET", "{line}");
    assert_eq!(line["level"], "DEBUG", "{line}");
    s.stop().await;
}
