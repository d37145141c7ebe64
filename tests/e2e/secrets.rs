//! Secrets never leave through errors (issue 15, item 5): a provider's key
//! in its URL's query and an alert sink's secret in its URL's path and
//! query, both pointed at a closed port until their breakers open, appear
//! in no API answer, no stored row and no log line of the real binary.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use warden_test_artifacts as artifacts;
use warden_test_upstream::{Options, Upstream};

use crate::gateway::{chat, hello, token};
use crate::{ADMIN, TestServer, install};

const MARKER: &str = "s3cr3t-m4rker-7f9c";

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8], found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            files_holding(&path, needle, found);
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
}

async fn text(s: &TestServer, path: &str) -> (StatusCode, String) {
    let r = s
        .client
        .get(format!("{}{path}", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Regression: reqwest's errors carry the full URL, and they became call
/// records, breaker reasons, alert texts, stored notifications and log
/// lines; `GET /v1/alerting/sinks` and `GET /v1/gateway/providers` showed
/// the URLs whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_urls_never_leave_through_errors() {
    let closed = crate::free_port();
    let healthy = Upstream::start(Options {
        name: "healthy".to_string(),
        models: vec!["model-b".to_string()],
        ..Options::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("warden.log");
    install(
        &dir.path().join("plugins"),
        artifacts::ROUTER_CONFIG,
        "router-config.wasm",
    );
    let extra = format!(
        r#"
[gateway]
policy = "router-config"
timeout_ms = 2000
breaker_backoff_ms = [60000]

[[gateway.providers]]
name = "keyed"
base_url = "http://127.0.0.1:{closed}/v1?key={MARKER}"
models = ["model-a"]
max_context = 8000

[[gateway.providers]]
name = "healthy"
base_url = "{healthy}"
models = ["model-b"]
max_context = 8000

[workspaces."*".plugins.router-config]
config = {{ candidates = "keyed:model-a,healthy:model-b" }}

[alerting]
critical_group_window_ms = 0
warning_group_window_ms = 0
poll_ms = 100

[[alerting.sinks]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{closed}/hook/{MARKER}?token={MARKER}"
timeout_ms = 1000
"#,
        healthy = healthy.base_url(),
    );
    let s = TestServer::spawn_binary_with(dir, &extra, &[("RUST_LOG", "debug")], Some(&log)).await;
    s.wait_for_plugin("router-config", "1.0.0", Duration::from_secs(30))
        .await;
    let key = token(&s, "sec", "agent").await;
    // Five failures open the keyed provider's breaker (a critical alert);
    // its notification fails at the closed port and opens the sink's.
    for i in 0..6 {
        let (status, headers, body) = chat(&s, &key, hello("auto"), &[]).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
        assert_eq!(headers["x-warden-provider"], "healthy");
    }
    let started = Instant::now();
    loop {
        let (_, body) = s.get("/v1/breakers").await;
        let open = |name: &str| {
            body["breakers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["name"] == name && b["state"] == "open")
        };
        if open("provider:keyed") && open("sink:hook") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "both breakers open: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The errors are there, and say what happened.
    let (_, breakers) = s.get("/v1/breakers").await;
    let reason = |name: &str| {
        breakers["breakers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .and_then(|b| b["reason"].as_str())
            .unwrap_or("")
            .to_string()
    };
    assert!(
        reason("provider:keyed").contains("cannot reach it"),
        "{breakers}"
    );
    assert!(!reason("sink:hook").is_empty(), "{breakers}");
    let (_, notes) = s.get("/v1/notifications?limit=1000").await;
    assert!(
        notes["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["sink"] == "hook" && n["last_error"].is_string()),
        "{notes}"
    );

    let mut leaks = Vec::new();
    for path in [
        "/v1/gateway/providers",
        "/v1/breakers",
        "/v1/alerts",
        "/v1/workspaces/sec/alerts",
        "/v1/alerting/sinks",
        "/v1/notifications?limit=1000",
        "/v1/status",
        "/v1/workspaces/sec/status",
        "/v1/workspaces/sec/gateway/calls?limit=1000",
        "/v1/workspaces/sec/usage?group_by=provider",
        "/v1/models",
        "/v1/plugins",
        "/metrics",
    ] {
        let (status, body) = text(&s, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if body.contains(MARKER) {
            leaks.push(format!("{path}: {body}"));
        }
    }
    let (_, sinks) = s.get("/v1/alerting/sinks").await;
    let target = sinks["sinks"][0]["target"].as_str().unwrap().to_string();
    assert_eq!(target, format!("http://127.0.0.1:{closed}/…?…"), "{sinks}");

    // Everything stored, and the log.
    let dir = s.kill9();
    let data = dir.path().join("data");
    let mut stored = Vec::new();
    files_holding(&data, MARKER.as_bytes(), &mut stored);
    let log_text = std::fs::read_to_string(&log).unwrap();
    let logged: Vec<&str> = log_text.lines().filter(|l| l.contains(MARKER)).collect();
    assert!(log_text.contains("hook"), "the log has the sink's failures");
    assert!(
        leaks.is_empty() && stored.is_empty() && logged.is_empty(),
        "the marker leaked:\nAPI: {leaks:#?}\nfiles: {stored:?}\nlog: {logged:#?}"
    );
    drop(healthy);
}
