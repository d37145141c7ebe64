//! Runs over HTTP (SPEC PB-1..PB-3): plan then apply, the event stream and
//! its resumption, idempotency, one active run per playbook.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_test_artifacts as artifacts;

use crate::{Sse, TestServer, install};

const CONFIG: &str = r#"
[workspaces."*".plugins.plan-mutator]
grants = ["tasks:read", "tasks:write"]
[workspaces."*".plugins.healthy]
grants = ["health:read", "tasks:read", "kv"]
config = { greeting = "hello from warden.toml" }
"#;

async fn server() -> TestServer {
    let server = TestServer::start(CONFIG).await;
    for (name, path) in [
        ("plan-mutator", artifacts::PLAN_MUTATOR),
        ("healthy", artifacts::HEALTHY),
        ("slow", artifacts::SLOW),
    ] {
        install(&server.plugin_dir(), path, &format!("{name}.wasm"));
        server
            .wait_for_plugin(name, "1.0.0", Duration::from_secs(10))
            .await;
    }
    server
}

/// Reads a whole SSE stream: (id, event, data).
async fn read_events(
    server: &TestServer,
    path: &str,
    last_event_id: Option<i64>,
) -> Vec<(i64, String, Value)> {
    let mut sse = Sse::open(server, path, last_event_id).await;
    let mut events = Vec::new();
    let read = async {
        while let Some(e) = sse.next().await {
            events.push(e);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("stream ends after the run");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_applied_as_a_new_run_that_references_it() {
    let server = server().await;
    let plan = server
        .run("default", "plan-mutator", &json!({ "mode": "plan" }))
        .await;
    assert_eq!(plan["status"], "succeeded");
    assert_eq!(plan["actions"]["planned"][0]["call"], "tasks.create");
    let (_, tasks) = server.get("/v1/workspaces/default/tasks").await;
    assert_eq!(
        tasks["tasks"].as_array().unwrap().len(),
        0,
        "a plan applies nothing"
    );

    let plan_id = plan["id"].as_str().unwrap();
    let (status, applied) = server
        .post(
            &format!("/v1/workspaces/default/runs/{plan_id}/apply?wait=true"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["mode"], "apply");
    assert_eq!(applied["plan_run_id"], plan_id);
    assert_eq!(applied["digest"], plan["digest"]);
    assert_eq!(applied["actions"]["applied"][0]["call"], "tasks.create");
    let created = applied["actions"]["applied"][0]["detail"].as_str().unwrap();
    let (status, task) = server
        .get(&format!("/v1/workspaces/default/tasks/{created}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(task["title"], "made by plan-mutator");

    // Approving twice applies once.
    let (status, again) = server
        .post(
            &format!("/v1/workspaces/default/runs/{plan_id}/apply"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], applied["id"]);
    // Only a succeeded plan can be applied.
    let applied_id = applied["id"].as_str().unwrap();
    let (status, body) = server
        .post(
            &format!("/v1/workspaces/default/runs/{applied_id}/apply"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_is_ordered_and_resumes_after_last_event_id() {
    let server = server().await;
    let run = server
        .run("default", "healthy", &json!({ "input": { "n": 1 } }))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["id"].as_str().unwrap();
    assert_eq!(
        run["report"]["findings"][3]["summary"],
        "hello from warden.toml"
    );

    let path = format!("/v1/workspaces/default/runs/{id}/events");
    let events = read_events(&server, &path, None).await;
    let seqs: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "gapless and in order"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds[..3], ["status", "status", "log"], "{kinds:?}");
    assert_eq!(events[0].2["status"], "queued");
    assert_eq!(events[1].2["status"], "running");
    assert_eq!(kinds.iter().filter(|k| **k == "tool_start").count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == "tool_result").count(), 4);
    assert_eq!(kinds[kinds.len() - 2], "stop_reason");
    assert_eq!(events.last().unwrap().2["status"], "succeeded");

    let resumed = read_events(&server, &path, Some(3)).await;
    assert_eq!(resumed.first().map(|e| e.0), Some(4));
    assert_eq!(resumed.len(), events.len() - 3);
    assert_eq!(
        resumed.iter().map(|e| &e.2).collect::<Vec<_>>(),
        events[3..].iter().map(|e| &e.2).collect::<Vec<_>>()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_follows_a_running_run() {
    let server = server().await;
    let (status, accepted) = server
        .post(
            "/v1/workspaces/default/playbooks/slow/runs",
            &json!({ "input": 700 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = accepted["id"].as_str().unwrap();
    let events = read_events(
        &server,
        &format!("/v1/workspaces/default/runs/{id}/events"),
        None,
    )
    .await;
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e.1 == "status")
        .map(|e| e.2["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["queued", "running", "succeeded"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_and_one_active_run_per_playbook() {
    let server = server().await;
    let body = json!({ "input": 600, "idempotency_key": "nightly-1" });
    let (s1, first) = server
        .post("/v1/workspaces/default/playbooks/slow/runs", &body)
        .await;
    let (s2, second) = server
        .post("/v1/workspaces/default/playbooks/slow/runs", &body)
        .await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::OK));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["created"], false);

    // `slow` does not allow concurrent runs in a workspace.
    let (status, body) = server
        .post(
            "/v1/workspaces/default/playbooks/slow/runs",
            &json!({ "input": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "FAILED_PRECONDITION");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(first["id"].as_str().unwrap()),
        "{body}"
    );
    // Another workspace is independent.
    let (status, _) = server
        .post(
            "/v1/workspaces/other/playbooks/slow/runs",
            &json!({ "input": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.stop().await;
}
