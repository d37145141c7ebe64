//! Acceptance 3 of the foundation over HTTP: every hostile plugin ends with
//! its own precise error, a healthy plugin called meanwhile succeeds, and
//! 1,000 hostile runs leave the server's memory flat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_test_artifacts as artifacts;

use crate::{TestServer, install};

const CONFIG: &str = r#"
[workspaces."*".plugins.hostile-steps]
grants = ["tasks:read", "tasks:write"]
[workspaces."*".plugins.plan-mutator]
grants = ["tasks:read", "tasks:write"]
[workspaces."*".plugins.healthy]
grants = ["health:read", "tasks:read", "kv"]
[workspaces.default.plugins.hostile-ungranted]
grants = ["tasks:read"]
[workspaces.mass.plugins.hostile-loop]
limits = { deadline_ms = 50 }
"#;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn spawn() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    for (name, path) in [
        ("hostile-loop", artifacts::HOSTILE_LOOP),
        ("hostile-memory", artifacts::HOSTILE_MEMORY),
        ("hostile-recursion", artifacts::HOSTILE_RECURSION),
        ("hostile-panic", artifacts::HOSTILE_PANIC),
        ("hostile-output", artifacts::HOSTILE_OUTPUT),
        ("hostile-file", artifacts::HOSTILE_FILE),
        ("hostile-socket", artifacts::HOSTILE_SOCKET),
        ("hostile-steps", artifacts::HOSTILE_STEPS),
        ("hostile-ungranted", artifacts::HOSTILE_UNGRANTED),
        ("plan-mutator", artifacts::PLAN_MUTATOR),
        ("healthy", artifacts::HEALTHY),
    ] {
        install(&plugins, path, &format!("{name}.wasm"));
    }
    TestServer::spawn_binary(dir, CONFIG).await
}

async fn failed_with(server: &TestServer, ws: &str, plugin: &str, input: Value) -> String {
    let run = server
        .run(ws, plugin, &json!({ "mode": "apply", "input": input }))
        .await;
    assert_eq!(run["status"], "failed", "{plugin}: {run}");
    run["error"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_plugin_ends_with_its_own_error_while_a_healthy_one_is_served() {
    let server = Arc::new(spawn().await);
    let (status, task) = server
        .post(
            "/v1/workspaces/default/tasks",
            &json!({ "title": "victim" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");

    // A healthy neighbour, called over and over while the hostile ones run.
    let neighbour = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut calls = 0;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(4) {
                let t = Instant::now();
                let run = server.run("default", "healthy", &json!({})).await;
                assert_eq!(run["status"], "succeeded", "{run}");
                slowest = slowest.max(t.elapsed());
                calls += 1;
            }
            (calls, slowest)
        })
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    type Check = Box<dyn Fn(&str) -> bool + Send>;
    let cases: Vec<(&str, Value, Check)> = vec![
        (
            "hostile-loop",
            Value::Null,
            Box::new(|e| e == "deadline of 500 ms exceeded"),
        ),
        (
            "hostile-memory",
            Value::Null,
            Box::new(|e| e == "memory limit 64 MiB exceeded"),
        ),
        (
            "hostile-recursion",
            Value::Null,
            Box::new(|e| e == "stack overflow (call stack exhausted)"),
        ),
        (
            "hostile-panic",
            Value::Null,
            Box::new(|e| e.starts_with("plugin panicked: ") && e.contains("boom")),
        ),
        (
            "hostile-output",
            Value::Null,
            Box::new(|e| e.starts_with("output of ") && e.ends_with("exceeds the 1024 KiB limit")),
        ),
        (
            "hostile-file",
            json!("/etc/passwd"),
            Box::new(|e| {
                e.starts_with("plugin returned an error: cannot open /etc/passwd")
                    && !e.contains("root:")
            }),
        ),
        (
            "hostile-socket",
            json!(addr),
            Box::new(|e| e.starts_with("plugin returned an error: cannot connect to 127.0.0.1:")),
        ),
        (
            "hostile-steps",
            Value::Null,
            Box::new(|e| e == "step budget 10 spent"),
        ),
    ];
    let mut handles = Vec::new();
    for (plugin, input, check) in cases {
        let server = server.clone();
        handles.push(tokio::spawn(async move {
            let error = failed_with(&server, "default", plugin, input).await;
            assert!(check(&error), "{plugin} ended with: {error}");
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.accept())
            .await
            .is_err(),
        "a plugin reached the listener"
    );

    // Not granted: refused before it runs, naming the missing grant.
    let (status, body) = server
        .post(
            "/v1/workspaces/default/playbooks/hostile-ungranted/runs?wait=true",
            &json!({ "mode": "apply" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("capability \"tasks:write\" not granted"),
        "{body}"
    );

    // Mutating in plan mode: recorded, not applied.
    let (_, before) = server.get("/v1/workspaces/default/tasks").await;
    let run = server
        .run("default", "plan-mutator", &json!({ "mode": "plan" }))
        .await;
    assert_eq!(run["status"], "succeeded");
    assert!(
        run["actions"]["applied"].as_array().unwrap().is_empty(),
        "{run}"
    );
    assert_eq!(run["actions"]["planned"][0]["call"], "tasks.create");
    let (_, after) = server.get("/v1/workspaces/default/tasks").await;
    assert_eq!(
        before["tasks"].as_array().unwrap().len(),
        after["tasks"].as_array().unwrap().len()
    );

    // The step-budget run's actions are audited with digest and actor.
    let (_, runs) = server
        .get("/v1/workspaces/default/runs?plugin=hostile-steps")
        .await;
    let steps = &runs["runs"][0];
    let (_, actions) = server
        .get(&format!(
            "/v1/workspaces/default/runs/{}/actions",
            steps["id"].as_str().unwrap()
        ))
        .await;
    let actions = actions["actions"].as_array().unwrap();
    assert_eq!(
        actions.iter().filter(|a| a["status"] == "applied").count(),
        10
    );
    assert_eq!(actions.last().unwrap()["status"], "over_budget");
    assert!(
        actions
            .iter()
            .all(|a| a["digest"] == steps["digest"] && a["actor"] == "bootstrap-admin")
    );

    let (calls, slowest) = neighbour.await.unwrap();
    eprintln!("healthy neighbour: {calls} calls, slowest {slowest:?}");
    assert!(calls >= 5, "only {calls} healthy calls completed");
    assert!(
        slowest < Duration::from_secs(2),
        "a healthy call took {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_hostile_runs_leave_memory_flat() {
    let server = Arc::new(spawn().await);
    let pid = server.pid().unwrap();
    server
        .post("/v1/workspaces/mass/tasks", &json!({ "title": "victim" }))
        .await;
    let plugins = [
        "hostile-memory",
        "hostile-panic",
        "hostile-recursion",
        "hostile-output",
        "hostile-steps",
        "hostile-loop",
        "hostile-file",
    ];

    // One worker per plugin: a plugin that does not allow concurrent runs
    // gets one at a time, as the host requires.
    async fn batch(server: &Arc<TestServer>, plugins: &[&'static str], n: usize) {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut workers = Vec::new();
        for plugin in plugins.iter().copied() {
            let (server, next) = (server.clone(), next.clone());
            workers.push(tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                    let run = server
                        .run("mass", plugin, &json!({ "mode": "apply" }))
                        .await;
                    assert_eq!(run["status"], "failed", "{plugin}: {run}");
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
    }

    batch(&server, &plugins, 100).await;
    let baseline = rss_kib(pid);
    let mut series = vec![baseline];
    let started = Instant::now();
    for _ in 0..5 {
        batch(&server, &plugins, 200).await;
        series.push(rss_kib(pid));
    }
    let elapsed = started.elapsed();
    eprintln!(
        "RSS (KiB) after warm-up and every 200 of 1,000 hostile runs: {series:?} ({elapsed:?})"
    );
    let last = *series.last().unwrap();
    let growth = last.saturating_sub(baseline);
    assert!(
        growth < 48 * 1024,
        "RSS grew by {growth} KiB over 1,000 hostile runs: {series:?}"
    );
    // No trend over the second half either.
    let mid = series[series.len() / 2];
    assert!(
        last.saturating_sub(mid) < 24 * 1024,
        "RSS still growing: {series:?}"
    );
    let (status, _) = server
        .request(reqwest::Method::GET, "/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}
