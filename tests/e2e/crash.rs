//! Acceptance 7 of the foundation: `kill -9` during a run; after a restart
//! the run shows as `interrupted` and nothing acknowledged is lost.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use warden_test_artifacts as artifacts;

use crate::{TestServer, install};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_run_marks_it_interrupted_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    install(&dir.path().join("plugins"), artifacts::SLOW, "slow.wasm");
    let server = TestServer::spawn_binary(dir, "").await;

    // Acknowledged writes just before the crash.
    let mut task_ids = Vec::new();
    for i in 0..50 {
        let (status, task) = server
            .post(
                "/v1/workspaces/default/tasks",
                &json!({ "title": format!("task {i}") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        task_ids.push(task["id"].as_str().unwrap().to_string());
    }
    let (status, accepted) = server
        .post(
            "/v1/workspaces/default/playbooks/slow/runs",
            &json!({ "input": 30000 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (_, run) = server
            .get(&format!("/v1/workspaces/default/runs/{id}"))
            .await;
        if run["status"] == "running" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "run never started: {run}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let dir = server.kill9();
    let server = TestServer::spawn_binary(dir, "").await;

    let (_, run) = server
        .get(&format!("/v1/workspaces/default/runs/{id}"))
        .await;
    assert_eq!(run["status"], "interrupted", "{run}");
    assert!(run["error"].as_str().unwrap().contains("stopped"), "{run}");
    assert!(run["finished_at"].is_string());

    // `slow` declares itself idempotent, so it is retried automatically.
    let (_, runs) = server.get("/v1/workspaces/default/runs?plugin=slow").await;
    let retry = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["retry_of"] == id.as_str())
        .cloned()
        .expect("a retry of the interrupted run");
    assert_eq!(retry["trigger"], "retry");
    assert_eq!(retry["input"], 30000);

    let (_, tasks) = server.get("/v1/workspaces/default/tasks?limit=500").await;
    let stored: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for id in &task_ids {
        assert!(stored.contains(&id.as_str()), "acknowledged task {id} lost");
    }
}
