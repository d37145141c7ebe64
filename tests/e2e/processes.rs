//! Managed processes (SPEC RL-2) with real child processes: a SIGKILLed
//! process is restarted within 5 s, one that keeps dying raises a critical
//! alert after 3 failed restarts (and not before), and a workspace that
//! needs a process that is down gets no claims until it is back.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::TestServer;

async fn process(s: &TestServer, name: &str) -> Value {
    let (status, v) = s.get("/v1/processes").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no process {name} in {v}"))
}

/// Polls `GET /v1/processes` until `done` holds for `name`; returns the
/// process and how long it took.
async fn wait_for(
    s: &TestServer,
    name: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let p = process(s, name).await;
        if done(&p) {
            return (p, started.elapsed());
        }
        assert!(
            started.elapsed() < timeout,
            "process {name} not as expected after {timeout:?}: {p}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn alive(pid: u64) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

async fn open_alert(s: &TestServer, key: &str) -> Option<warden_store::alerts::AlertRow> {
    s.app()
        .store
        .list_alerts(None, None, 500)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.dedup_key == key && a.status == "open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_process_is_restarted_within_5_s_with_default_backoff() {
    let s =
        TestServer::start("[[processes]]\nname = \"sleeper\"\ncommand = [\"sleep\", \"3600\"]\n")
            .await;
    let (p, _) = wait_for(&s, "sleeper", Duration::from_secs(10), |p| {
        p["state"] == "running" && p["pid"].is_u64()
    })
    .await;
    let old = p["pid"].as_u64().unwrap();
    assert!(alive(old));

    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-9", &old.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (_, detected) = wait_for(&s, "sleeper", Duration::from_secs(5), |p| {
        p["state"] != "running" || p["pid"].as_u64() != Some(old)
    })
    .await;
    let (p, _) = wait_for(&s, "sleeper", Duration::from_secs(5), |p| {
        p["state"] == "running" && p["pid"].is_u64() && p["pid"].as_u64() != Some(old)
    })
    .await;
    let restarted = killed.elapsed();
    println!(
        "SIGKILL detected after {detected:?}, restarted (new pid running) after {restarted:?}"
    );
    assert!(restarted < Duration::from_secs(5), "{restarted:?}");
    assert_eq!(p["restarts"], 1, "{p}");
    assert!(p["last_exit"].as_str().unwrap().contains("SIGKILL"), "{p}");
    let new = p["pid"].as_u64().unwrap();
    assert!(alive(new));

    // Shutting Warden down stops its children.
    s.stop().await;
    assert!(!alive(new), "pid {new} survived the shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_keeps_dying_raises_a_critical_alert_after_3_failed_restarts() {
    // The third backoff is long, so that the state after two failed
    // restarts can be looked at before the third one happens.
    let s = TestServer::start(
        "[[processes]]\nname = \"crasher\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\nrestart_backoff_ms = [100, 100, 2000, 500, 60000]\n",
    )
    .await;
    let key = "process:crasher";
    let (p, _) = wait_for(&s, "crasher", Duration::from_secs(10), |p| {
        p["failed_restarts"] == 2
    })
    .await;
    assert_eq!(p["state"], "backing-off", "{p}");
    assert!(
        open_alert(&s, key).await.is_none(),
        "no alert after 2 failed restarts"
    );
    let (_, v) = s.get("/v1/breakers").await;
    let breaker = v["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no breaker {key} in {v}"));
    assert_eq!(breaker["state"], "open", "{breaker}");

    let (p, took) = wait_for(&s, "crasher", Duration::from_secs(10), |p| {
        p["failed_restarts"] == 3
    })
    .await;
    println!("third failed restart seen {took:?} after the second");
    assert_eq!(p["state"], "down", "{p}");
    assert_eq!(p["restarts"], 3, "{p}");
    assert!(
        p["last_exit"].as_str().unwrap().contains("exit status: 3"),
        "{p}"
    );
    let alert = open_alert(&s, key)
        .await
        .expect("a process_down alert after 3 failed restarts");
    assert_eq!(alert.rule, "process_down");
    assert_eq!(alert.severity, "critical");
    assert!(alert.summary.contains("\"crasher\""), "{}", alert.summary);
    // The fourth failed restart raises it again: the same open alert,
    // counted twice.
    wait_for(&s, "crasher", Duration::from_secs(10), |p| {
        p["failed_restarts"] == 4
    })
    .await;
    let started = std::time::Instant::now();
    loop {
        let again = open_alert(&s, key).await.expect("still open");
        assert_eq!(again.id, alert.id, "one alert");
        if again.count == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "raised again: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_that_needs_a_down_process_pauses_until_it_is_back() {
    // The process runs only once a file exists, so the test decides when
    // it comes back.
    let cwd = tempfile::tempdir().unwrap();
    let s = TestServer::start(&format!(
        "[[processes]]\nname = \"mcp\"\ncommand = [\"sh\", \"-c\", \"test -f ready || exit 1; exec sleep 3600\"]\ncwd = \"{}\"\nrestart_backoff_ms = [200]\nstable_after_ms = 500\n[workspaces.acme]\nneeds = [\"mcp\"]\n",
        cwd.path().display()
    ))
    .await;
    wait_for(&s, "mcp", Duration::from_secs(10), |p| p["state"] == "down").await;
    let alert = open_alert(&s, "process:mcp")
        .await
        .expect("process_down alert");
    assert_eq!(alert.severity, "critical");

    let (status, task) = s
        .post(
            "/v1/workspaces/acme/tasks",
            &json!({ "title": "needs mcp", "pipeline": ["work"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let claim = json!({ "worker_id": "w1", "max": 1, "wait_ms": 300 });
    let (status, body) = s.post("/v1/workspaces/acme/tasks/claim", &claim).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["claims"], json!([]), "{body}");
    assert_eq!(body["idle"]["reason"], "process_down", "{body}");
    let (_, st) = s.get("/v1/workspaces/acme/status").await;
    let why = st["why_idle"]["message"].as_str().unwrap_or_default();
    assert!(why.starts_with("managed process \"mcp\" is down"), "{st}");
    println!("why idle: {why}");
    assert_eq!(st["tasks_by_state"]["queued"], 1, "{st}");

    // A workspace that does not need it is not paused.
    let (status, _) = s
        .post(
            "/v1/workspaces/other/tasks",
            &json!({ "title": "free", "pipeline": ["work"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = s.post("/v1/workspaces/other/tasks/claim", &claim).await;
    assert_eq!(body["claims"].as_array().unwrap().len(), 1, "{body}");

    std::fs::write(cwd.path().join("ready"), b"").unwrap();
    let back = Instant::now();
    let (status, body) = s
        .post(
            "/v1/workspaces/acme/tasks/claim",
            &json!({ "worker_id": "w1", "max": 1, "wait_ms": 10000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = body["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 1, "{body}");
    assert_eq!(claims[0]["task_id"], task["id"], "{body}");
    println!(
        "claimable {:?} after the process could start",
        back.elapsed()
    );
    let (p, _) = wait_for(&s, "mcp", Duration::from_secs(1), |p| {
        p["state"] == "running"
    })
    .await;
    assert!(p["restarts"].as_u64().unwrap() >= 3, "{p}");

    // Healthy for stable_after_ms: the count starts again, the alert is
    // resolved and the breaker closed.
    let (p, took) = wait_for(&s, "mcp", Duration::from_secs(5), |p| {
        p["failed_restarts"] == 0 && p["breaker"] == "closed"
    })
    .await;
    println!("stable {took:?} after running: {p}");
    assert!(
        open_alert(&s, "process:mcp").await.is_none(),
        "alert still open"
    );
    let resolved = s
        .app()
        .store
        .list_alerts(None, None, 500)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.dedup_key == "process:mcp")
        .unwrap();
    assert_eq!(resolved.status, "resolved", "{resolved:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_checked_process_runs_once_its_probe_answers_and_is_restarted_if_it_never_does() {
    let port = crate::free_port();
    let silent = crate::free_port();
    let s = TestServer::start(&format!(
        "[[processes]]\nname = \"web\"\ncommand = [\"python3\", \"-m\", \"http.server\", \"{port}\", \"--bind\", \"127.0.0.1\"]\nhealth = \"http\"\nhealth_url = \"http://127.0.0.1:{port}/\"\ncheck_every_ms = 100\n[[processes]]\nname = \"mute\"\ncommand = [\"sleep\", \"3600\"]\nhealth = \"http\"\nhealth_url = \"http://127.0.0.1:{silent}/\"\ncheck_every_ms = 100\nstartup_grace_ms = 500\nrestart_backoff_ms = [60000]\n[workspaces.acme]\nneeds = [\"web\"]\n"
    ))
    .await;
    // Nothing answers on its port: it stays starting, then is killed and
    // waits for its restart.
    let (p, _) = wait_for(&s, "mute", Duration::from_secs(1), |p| {
        p["state"] == "starting"
    })
    .await;
    let mute_pid = p["pid"].as_u64().unwrap();
    let (p, took) = wait_for(&s, "mute", Duration::from_secs(5), |p| {
        p["state"] == "backing-off"
    })
    .await;
    println!("probe-less process given up after {took:?}: {p}");
    assert!(
        p["last_exit"]
            .as_str()
            .unwrap()
            .contains("not healthy within startup_grace_ms (500 ms)"),
        "{p}"
    );
    assert!(
        !alive(mute_pid),
        "the unhealthy child {mute_pid} was not killed"
    );
    let started = Instant::now();
    let (p, took) = wait_for(&s, "web", Duration::from_secs(15), |p| {
        p["state"] == "running"
    })
    .await;
    println!("http.server healthy after {took:?}");
    assert!(p["pid"].is_u64(), "{p}");
    let r = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(started.elapsed() < Duration::from_secs(15));
    let (_, st) = s.get("/v1/workspaces/acme/status").await;
    assert_ne!(st["why_idle"]["reason"], "process_down", "{st}");
    s.stop().await;
}
