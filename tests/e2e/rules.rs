//! The alert rules of SPEC AL-1 that watch state, on a real server: each
//! test creates the condition, sees the alert, sees a second evaluation
//! deduplicated into it, and sees it resolve when the condition ends. (The
//! gate rejection spike is in `gates.rs`, with the scripted gates; the
//! notifications themselves in `alerting.rs`.)

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::TestServer;

const CONFIG: &str = r#"
[scheduler]
backoff_base_ms = 1
backoff_max_ms = 1
same_failure_limit = 3
loop_limit = 50
[alerting.rules]
every_ms = 3600000
build_test_stages = ["implement", "verify"]
build_test_failing_tasks = 3
error_spike_window_ms = 1500
error_spike_min_failures = 4
new_fingerprint_window_ms = 1500
"#;

async fn create(s: &TestServer, ws: &str, title: &str, pipeline: &[&str]) -> String {
    let (status, t) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks"),
            &json!({ "title": title, "pipeline": pipeline, "max_attempts": 20 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

/// Claims the next stage of the workspace; `id` must be the task claimed.
async fn claim(s: &TestServer, ws: &str, id: &str) -> Value {
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/claim"),
            &json!({ "worker_id": "w", "wait_ms": 3000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = body["claims"][0].clone();
    assert_eq!(c["task_id"], id, "{body}");
    c
}

async fn fail(s: &TestServer, ws: &str, id: &str, error: &str) -> Value {
    let c = claim(s, ws, id).await;
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/fail"),
            &json!({ "token": c["token"], "error": error }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["task"].clone()
}

async fn complete(s: &TestServer, ws: &str, id: &str) -> Value {
    let c = claim(s, ws, id).await;
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/complete"),
            &json!({ "token": c["token"], "output": {} }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["task"].clone()
}

async fn evaluate(s: &TestServer, ws: &str) {
    let app = s.app();
    warden_server::rules::evaluate(&app.store, &app.alerts, &app.config, ws)
        .await
        .unwrap();
}

/// Every alert of the rule in the workspace, newest first.
async fn alerts(s: &TestServer, ws: &str, rule: &str) -> Vec<Value> {
    let (status, body) = s.get(&format!("/v1/workspaces/{ws}/alerts")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == rule)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tasks_failing_build_or_test_raise_a_critical_alert() {
    // A failed task waits a minute before its retry, so that each claim
    // takes the next task.
    let s = TestServer::start(&CONFIG.replace(
        "backoff_base_ms = 1\nbackoff_max_ms = 1",
        "backoff_base_ms = 60000\nbackoff_max_ms = 60000",
    ))
    .await;
    let ws = "bt";
    let ids = [
        create(&s, ws, "a", &["implement", "pr"]).await,
        create(&s, ws, "b", &["implement", "pr"]).await,
        create(&s, ws, "c", &["verify", "pr"]).await,
    ];
    fail(
        &s,
        ws,
        &ids[0],
        "cargo build: error[E0308] mismatched types",
    )
    .await;
    fail(&s, ws, &ids[1], "cargo build: linker failed").await;
    evaluate(&s, ws).await;
    assert!(
        alerts(&s, ws, "build_test_failures").await.is_empty(),
        "two is not three"
    );
    fail(&s, ws, &ids[2], "test result: FAILED. 3 passed; 1 failed").await;
    evaluate(&s, ws).await;
    let a = alerts(&s, ws, "build_test_failures").await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["severity"], "critical");
    assert_eq!(a[0]["status"], "open");
    assert_eq!(a[0]["dedup_key"], format!("build_test:{ws}"));
    assert!(
        a[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("3 tasks are failing"),
        "{a:?}"
    );
    // Still failing at the next evaluation: the same alert, counted.
    evaluate(&s, ws).await;
    let a = alerts(&s, ws, "build_test_failures").await;
    assert_eq!((a.len(), a[0]["count"].as_i64()), (1, Some(2)), "{a:?}");
    // One of them is given up: two failing, resolved.
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{}/cancel", ids[0]),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    evaluate(&s, ws).await;
    let a = alerts(&s, ws, "build_test_failures").await;
    assert_eq!(a[0]["status"], "resolved", "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_failures_is_an_error_rate_spike_and_a_new_fingerprint() {
    let s = TestServer::start(CONFIG).await;
    let ws = "spike";
    let id = create(&s, ws, "flaky", &["work"]).await;
    let errors = [
        "connection reset by peer",
        "disk quota exceeded",
        "permission denied: /srv",
        "out of memory",
    ];
    for e in &errors[..3] {
        fail(&s, ws, &id, e).await;
    }
    evaluate(&s, ws).await;
    assert!(
        alerts(&s, ws, "error_rate_spike").await.is_empty(),
        "3 is under the minimum of 4"
    );
    // Three distinct failures, each never seen before.
    let fps = alerts(&s, ws, "new_error_fingerprint").await;
    assert_eq!(fps.len(), 3, "{fps:?}");
    assert!(
        fps.iter()
            .all(|a| a["severity"] == "warning" && a["status"] == "open")
    );
    fail(&s, ws, &id, errors[3]).await;
    evaluate(&s, ws).await;
    let a = alerts(&s, ws, "error_rate_spike").await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["status"], "open");
    assert_eq!(a[0]["detail"]["recent"], 4, "{a:?}");
    // The same failure again: no new fingerprint alert, the open one counts.
    fail(&s, ws, &id, errors[3]).await;
    evaluate(&s, ws).await;
    let fps = alerts(&s, ws, "new_error_fingerprint").await;
    assert_eq!(fps.len(), 4, "{fps:?}");
    let newest = &fps[0];
    assert_eq!(newest["count"], 2, "{fps:?}");
    assert!(
        newest["summary"].as_str().unwrap().contains("2 time(s)"),
        "{newest}"
    );
    assert_eq!(alerts(&s, ws, "error_rate_spike").await[0]["count"], 2);
    // Quiet for longer than both windows: both resolve.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    evaluate(&s, ws).await;
    assert_eq!(
        alerts(&s, ws, "error_rate_spike").await[0]["status"],
        "resolved"
    );
    let fps = alerts(&s, ws, "new_error_fingerprint").await;
    assert!(fps.iter().all(|a| a["status"] == "resolved"), "{fps:?}");
    // An old fingerprint coming back is not new.
    fail(&s, ws, &id, errors[0]).await;
    evaluate(&s, ws).await;
    let open: Vec<_> = alerts(&s, ws, "new_error_fingerprint")
        .await
        .into_iter()
        .filter(|a| a["status"] == "open")
        .collect();
    assert!(open.is_empty(), "{open:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_alerts_resolve_once_the_task_moves_on() {
    let s = TestServer::start(CONFIG).await;
    let ws = "guards";
    // attempt 3 of 5 (warning), then the same failure three times in a row
    // blocks the task (critical).
    let id = create(&s, ws, "looping", &["work", "check"]).await;
    fail(&s, ws, &id, "the same error").await;
    fail(&s, ws, &id, "the same error").await;
    let t = fail(&s, ws, &id, "the same error").await;
    assert_eq!(t["state"], "blocked", "{t}");
    let blocked = alerts(&s, ws, "same_failure").await;
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0]["severity"], "critical");
    evaluate(&s, ws).await;
    assert_eq!(alerts(&s, ws, "same_failure").await[0]["status"], "open");
    // Unblocked by an operator: resolved at the next evaluation.
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/unblock"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    evaluate(&s, ws).await;
    assert_eq!(
        alerts(&s, ws, "same_failure").await[0]["status"],
        "resolved"
    );
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // attempt 3: raised at the third attempt, deduplicated per stage,
    // resolved when the stage completes.
    let id = create(&s, ws, "retrying", &["work", "check"]).await;
    for e in ["one", "two", "three"] {
        fail(&s, ws, &id, &format!("failure {e} of several kinds")).await;
    }
    let a: Vec<_> = alerts(&s, ws, "attempt_3")
        .await
        .into_iter()
        .filter(|a| a["detail"]["task"] == id.as_str())
        .collect();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["severity"], "warning");
    fail(&s, ws, &id, "failure four of several kinds").await;
    let a: Vec<_> = alerts(&s, ws, "attempt_3")
        .await
        .into_iter()
        .filter(|a| a["detail"]["task"] == id.as_str())
        .collect();
    assert_eq!((a.len(), a[0]["count"].as_i64()), (1, Some(2)), "{a:?}");
    let t = complete(&s, ws, &id).await;
    assert_eq!(t["stage"], "check", "{t}");
    evaluate(&s, ws).await;
    let a: Vec<_> = alerts(&s, ws, "attempt_3")
        .await
        .into_iter()
        .filter(|a| a["detail"]["task"] == id.as_str())
        .collect();
    assert_eq!(a[0]["status"], "resolved", "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_stuck_and_budget_alerts_dedup_and_resolve() {
    let config = CONFIG.replace(
        "[scheduler]\n",
        "[scheduler]\nbacklog_threshold = 3\nstuck_after_ms = 300\n",
    );
    let s = TestServer::start(&config).await;
    let ws = "q";
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(create(&s, ws, &format!("t{i}"), &["work"]).await);
    }
    // Four queued, over three. (Creating checks at most once a second per
    // workspace; the evaluation catches what it skipped.)
    evaluate(&s, ws).await;
    let a = alerts(&s, ws, "backlog").await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (a[0]["severity"].as_str(), a[0]["status"].as_str()),
        (Some("warning"), Some("open"))
    );
    evaluate(&s, ws).await;
    assert_eq!(
        alerts(&s, ws, "backlog").await[0]["count"],
        2,
        "deduplicated"
    );
    // Two claimed: two queued, resolved.
    let first = claim(&s, ws, &ids[0]).await;
    let _second = claim(&s, ws, &ids[1]).await;
    evaluate(&s, ws).await;
    assert_eq!(alerts(&s, ws, "backlog").await[0]["status"], "resolved");

    // Stuck: the two running tasks report nothing for longer than 300 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let names = vec![ws.to_string()];
    s.app().scheduler.detect_stuck(&names).await.unwrap();
    s.app().scheduler.detect_stuck(&names).await.unwrap();
    let stuck = alerts(&s, ws, "stuck_task").await;
    assert_eq!(stuck.len(), 2, "{stuck:?}");
    assert!(
        stuck
            .iter()
            .all(|a| a["count"] == 2 && a["status"] == "open"),
        "{stuck:?}"
    );
    // One reports an event: no longer stuck, its alert resolves.
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{}/events", ids[0]),
            &json!({ "type": "tool_start", "data": { "tool": "cargo" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s.app().scheduler.detect_stuck(&names).await.unwrap();
    let stuck = alerts(&s, ws, "stuck_task").await;
    let of = |id: &str| {
        stuck
            .iter()
            .find(|a| a["dedup_key"] == format!("stuck:{id}").as_str())
            .map(|a| a["status"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(of(&ids[0]).as_deref(), Some("resolved"), "{stuck:?}");
    assert_eq!(of(&ids[1]).as_deref(), Some("open"), "{stuck:?}");

    // A task's budget at 80 %: raised, raised again (deduplicated), and
    // resolved once the task is done.
    let budgeted = {
        let (status, t) = s
            .post(
                &format!("/v1/workspaces/{ws}/tasks"),
                &json!({ "title": "thrifty", "pipeline": ["work"], "budget": { "tokens": 1000 }, "priority": "urgent" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        t["id"].as_str().unwrap().to_string()
    };
    let c = claim(&s, ws, &budgeted).await;
    for tokens in [850, 10] {
        let (status, body) = s
            .post(
                &format!("/v1/workspaces/{ws}/tasks/{budgeted}/events"),
                &json!({ "type": "token", "data": { "tokens": tokens } }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let a: Vec<_> = alerts(&s, ws, "budget_80")
        .await
        .into_iter()
        .filter(|a| a["detail"]["task"] == budgeted.as_str())
        .collect();
    assert_eq!((a.len(), a[0]["count"].as_i64()), (1, Some(2)), "{a:?}");
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{budgeted}/complete"),
            &json!({ "token": c["token"], "output": {} }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["task"]["state"], "done", "{body}");
    evaluate(&s, ws).await;
    let a: Vec<_> = alerts(&s, ws, "budget_80")
        .await
        .into_iter()
        .filter(|a| a["detail"]["task"] == budgeted.as_str())
        .collect();
    assert_eq!(a[0]["status"], "resolved", "{a:?}");
    let _ = first;
}

/// The info rules of SPEC AL-1 (task started, gate decision, plan delta,
/// task completed) are log lines under the `warden::alerts` target, not
/// alerts: the real binary, logging JSON, writes one line per rule for the
/// task, and the alerts table stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_rules_are_logged_and_never_raised() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("warden.log");
    let s = TestServer::spawn_binary_with(
        dir,
        "[workspaces.info.gates.implement]\ngates = [\"diff-size\"]\nquorum = \"all\"\nreject_to = \"implement\"\n",
        &[
            ("RUST_LOG", "warn,warden::alerts=info"),
            ("WARDEN_LOG_JSON", "true"),
        ],
        Some(&log),
    )
    .await;
    let id = create(&s, "info", "logged", &["implement", "review"]).await;
    for stats in [
        json!({ "files_changed": 90, "insertions": 5000, "deletions": 10 }),
        json!({ "files_changed": 1, "insertions": 5, "deletions": 1 }),
    ] {
        let c = claim(&s, "info", &id).await;
        let (status, body) = s
            .post(
                &format!("/v1/workspaces/info/tasks/{id}/complete"),
                &json!({ "token": c["token"], "result": { "diff_stats": stats } }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let done = complete(&s, "info", &id).await;
    assert_eq!(done["state"], "done", "{done}");

    let wanted = [
        "task_started",
        "plan_delta",
        "gate_decision",
        "task_completed",
    ];
    let mut seen: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        seen = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "warden::alerts" && v["fields"]["task"] == id.as_str())
            .map(|v| {
                assert_eq!(v["level"], "INFO", "{v}");
                assert_eq!(v["fields"]["severity"], "info", "{v}");
                assert_eq!(v["fields"]["workspace"], "info", "{v}");
                v["fields"]["rule"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        if wanted.iter().all(|w| seen.iter().any(|s| s == w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in wanted {
        assert_eq!(
            seen.iter().filter(|s| *s == w).count(),
            1,
            "one {w} line expected, log rules: {seen:?}"
        );
    }
    let (status, body) = s.get("/v1/workspaces/info/alerts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["alerts"], json!([]), "info rules raise no alert");
    s.stop().await;
}
