//! The model gateway on a real server against local stand-in upstreams
//! (SPEC GW-1..GW-6): the official `openai` Python client, pinned routing
//! policy versions, breaker-first failover, budgets, the policy's limits,
//! streaming without buffering, failing policies, and bad input.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_test_artifacts as artifacts;
use warden_test_upstream::{Behavior, Options, Upstream};

use crate::{TestServer, install};

/// Two upstreams, `primary` (cheaper) and `backup`.
pub(crate) struct Upstreams {
    pub(crate) primary: Upstream,
    pub(crate) backup: Upstream,
}

pub(crate) async fn upstreams() -> Upstreams {
    let start = |name: &str, model: &str| Options {
        name: name.to_string(),
        models: vec![model.to_string()],
        api_key: Some(format!("{name}-key")),
        ..Options::default()
    };
    Upstreams {
        primary: Upstream::start(start("primary", "model-a")).await.unwrap(),
        backup: Upstream::start(start("backup", "model-b")).await.unwrap(),
    }
}

/// The gateway's configuration over `u`, with `policy` and `extra`.
pub(crate) fn config(u: &Upstreams, policy: &str, extra: &str) -> String {
    // The keys come from the environment variables it names, as in
    // production: .cargo/config.toml sets them for `cargo test`.
    format!(
        r#"
[gateway]
policy = "{policy}"
timeout_ms = 2000
breaker_backoff_ms = [1500, 3000]

[[gateway.providers]]
name = "primary"
base_url = "{primary}"
api_key_env = "WARDEN_TEST_PRIMARY_KEY"
models = ["model-a"]
price_input_per_1k = 0.001
price_output_per_1k = 0.002
max_context = 8000

[[gateway.providers]]
name = "backup"
base_url = "{backup}"
api_key_env = "WARDEN_TEST_BACKUP_KEY"
models = ["model-b"]
price_input_per_1k = 0.002
price_output_per_1k = 0.004
max_context = 8000
{extra}
"#,
        primary = u.primary.base_url(),
        backup = u.backup.base_url(),
    )
}

/// A server with the routing test plugins installed.
pub(crate) async fn server(u: &Upstreams, policy: &str, extra: &str) -> TestServer {
    installed(TestServer::start(&config(u, policy, extra)).await).await
}

/// `s` with the routing test plugins installed.
pub(crate) async fn installed(s: TestServer) -> TestServer {
    for (name, path, file, version) in [
        (
            "router-config",
            artifacts::ROUTER_CONFIG,
            "router-config.wasm",
            "1.0.0",
        ),
        (
            "ordered-router",
            artifacts::ORDERED_ROUTER_V1,
            "ordered-router-1.wasm",
            "1.0.0",
        ),
        (
            "ordered-router",
            artifacts::ORDERED_ROUTER_V2,
            "ordered-router-2.wasm",
            "2.0.0",
        ),
        (
            "router-panic",
            artifacts::ROUTER_PANIC,
            "router-panic.wasm",
            "1.0.0",
        ),
        (
            "router-empty",
            artifacts::ROUTER_EMPTY,
            "router-empty.wasm",
            "1.0.0",
        ),
    ] {
        install(&s.plugin_dir(), path, file);
        s.wait_for_plugin(name, version, Duration::from_secs(30))
            .await;
    }
    s
}

pub(crate) const CANDIDATES: &str = r#"
[workspaces."*".plugins.router-config]
config = { candidates = "primary:model-a,backup:model-b" }
"#;

pub(crate) async fn token(s: &TestServer, ws: &str, role: &str) -> String {
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tokens"),
            &json!({ "name": format!("{ws}-{role}-{}", rand_suffix()), "role": role }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A chat completion through the gateway: (status, headers, body).
pub(crate) async fn chat(
    s: &TestServer,
    key: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = s
        .client
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(key)
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) fn hello(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hello there, gateway" }] })
}

/// Waits until the writer has booked `n` calls of the workspace.
pub(crate) async fn calls(s: &TestServer, ws: &str, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let (status, body) = s
            .get(&format!("/v1/workspaces/{ws}/gateway/calls?limit=1000"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let calls = body["calls"].as_array().cloned().unwrap_or_default();
        if calls.len() >= n || started.elapsed() > Duration::from_secs(5) {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_client_works_unmodified() {
    // The Python interpreter with the `openai` package, in a virtualenv
    // under `$HOME/.cache/warden/pyenv`.
    let found = crate::python_tool("pyenv", "openai>=1.40", "bin/python", |p| {
        crate::imports(p, "openai")
    });
    let Some(python) = crate::required("the_official_openai_python_client_works_unmodified", found)
    else {
        return;
    };
    let u = upstreams().await;
    let s = server(&u, "router-config", CANDIDATES).await;
    let key = token(&s, "py", "agent").await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/gateway/openai_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("{}/v1", s.url))
        .arg(&key)
        .arg("model-a")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the python client failed: {stderr}");
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let words = "primary-0 primary-1 primary-2 primary-3 primary-4";
    assert_eq!(got["plain"]["content"], words, "{got}");
    assert_eq!(got["plain"]["prompt_tokens"], 8); // 29 characters / 4
    assert_eq!(got["plain"]["completion_tokens"], 5);
    assert_eq!(got["stream"]["content"], words);
    assert_eq!(got["stream_usage"]["content"], words);
    assert_eq!(got["stream_usage"]["completion_tokens"], 5);
    assert_eq!(got["models"], json!(["model-a", "model-b"]));
    // The key reached the upstream, not the client's Warden token.
    assert!(
        u.primary
            .handle()
            .requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer primary-key"))
    );

    // Usage is recorded for the plain call and both streams.
    let calls = calls(&s, "py", 3).await;
    assert_eq!(calls.len(), 3, "{calls:?}");
    for c in &calls {
        assert_eq!(c["status"], "ok", "{c}");
        assert_eq!(c["provider"], "primary");
        assert_eq!(
            (c["prompt_tokens"].as_i64(), c["completion_tokens"].as_i64()),
            (Some(8), Some(5)),
            "{c}"
        );
        assert!(c["error"].is_null(), "usage came from upstream: {c}");
    }
    assert_eq!(calls.iter().filter(|c| c["stream"] == true).count(), 2);
    let (_, usage) = s
        .get("/v1/workspaces/py/usage?group_by=provider,model")
        .await;
    assert_eq!(usage["calls"], 3);
    assert_eq!(usage["prompt_tokens"], 24);
    assert_eq!(usage["completion_tokens"], 15);
    // 3 × (8 × 0.001 + 5 × 0.002) / 1000 dollars, each rounded up to the micro-dollar.
    assert!(
        (usage["cost_usd"].as_f64().unwrap() - 3.0 * 0.000018).abs() < 1e-9,
        "{usage}"
    );
    assert_eq!(usage["groups"][0]["provider"], "primary");
    assert_eq!(usage["groups"][0]["model"], "model-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pinned_versions_route_the_same_request_differently() {
    let u = upstreams().await;
    let s = server(&u, "ordered-router", "").await;
    for (ws, version) in [("one", "1.0.0"), ("two", "2.0.0")] {
        let (status, body) = s
            .put(
                &format!("/v1/workspaces/{ws}/pins/ordered-router"),
                &json!({ "selector": version }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut digests = Vec::new();
    for (ws, provider, version) in [("one", "primary", "1.0.0"), ("two", "backup", "2.0.0")] {
        let key = token(&s, ws, "agent").await;
        let (status, headers, body) = chat(&s, &key, hello("auto"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["x-warden-provider"], provider);
        assert_eq!(
            headers["x-warden-policy"],
            format!("ordered-router@{version}").as_str()
        );
        assert!(
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .starts_with(provider)
        );
        let calls = calls(&s, ws, 1).await;
        assert_eq!(calls[0]["policy"]["version"], version);
        let digest = calls[0]["policy"]["digest"].as_str().unwrap().to_string();
        assert!(digest.starts_with("sha256:"), "{digest}");
        assert_eq!(headers["x-warden-policy-digest"], digest.as_str());
        digests.push(digest);
    }
    assert_ne!(
        digests[0], digests[1],
        "the run records each version's own digest"
    );
}

/// The unresolved alert with this dedup key.
async fn open_alert(s: &TestServer, key: &str) -> Option<warden_store::alerts::AlertRow> {
    s.app()
        .store
        .list_alerts(None, None, 500)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.dedup_key == key && a.resolved_at.is_none())
}

async fn breaker(s: &TestServer, provider: &str) -> Value {
    let (_, body) = s.get("/v1/gateway/providers").await;
    body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == provider)
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_primary_opens_its_breaker_and_a_probe_closes_it() {
    let u = upstreams().await;
    let s = server(&u, "router-config", CANDIDATES).await;
    let key = token(&s, "fo", "agent").await;
    u.primary.handle().set(Behavior::Fail { status: 503 });
    // Five requests: each fails on the primary and is answered by the
    // backup, invisibly to the client.
    for i in 0..5 {
        let (status, headers, body) = chat(&s, &key, hello("auto"), &[]).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
        assert_eq!(headers["x-warden-provider"], "backup");
    }
    assert_eq!(u.primary.handle().request_count(), 5);
    let b = breaker(&s, "primary").await;
    assert_eq!(b["breaker"], "open", "{b}");
    // Open: later requests go straight to the backup.
    for _ in 0..10 {
        let (status, headers, _) = chat(&s, &key, hello("auto"), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-warden-provider"], "backup");
    }
    assert_eq!(
        u.primary.handle().request_count(),
        5,
        "no call reached the open primary"
    );
    let calls = calls(&s, "fo", 15).await;
    assert_eq!(calls.iter().filter(|c| c["attempts"] == 2).count(), 5);
    assert_eq!(calls.iter().filter(|c| c["attempts"] == 1).count(), 10);
    // The critical alert, resolved when the breaker closes.
    let alert = open_alert(&s, "breaker:provider:primary").await;
    assert_eq!(
        alert.as_ref().map(|a| a.severity.as_str()),
        Some("critical"),
        "{alert:?}"
    );

    // The primary heals; after the backoff (1.5 s) one probe closes it.
    u.primary.handle().set(Behavior::Healthy);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let (status, headers, _) = chat(&s, &key, hello("auto"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-warden-provider"], "primary",
        "the probe went to the primary"
    );
    assert_eq!(breaker(&s, "primary").await["breaker"], "closed");
    let started = Instant::now();
    while open_alert(&s, "breaker:provider:primary").await.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the alert is resolved"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, headers, _) = chat(&s, &key, hello("auto"), &[]).await;
    assert_eq!(headers["x-warden-provider"], "primary");

    // Failing again: open after 5; the probe after 1.5 s fails and opens
    // it again for the next backoff (3 s).
    u.primary.handle().set(Behavior::Fail { status: 500 });
    for _ in 0..5 {
        chat(&s, &key, hello("auto"), &[]).await;
    }
    assert_eq!(breaker(&s, "primary").await["breaker"], "open");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let before = u.primary.handle().request_count();
    let (status, headers, _) = chat(&s, &key, hello("auto"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-warden-provider"], "backup",
        "the probe failed and the backup answered"
    );
    assert_eq!(u.primary.handle().request_count(), before + 1, "one probe");
    let b = breaker(&s, "primary").await;
    assert_eq!(b["breaker"], "open");
    assert!(b["retry_at"].is_string(), "{b}");
    // Opened, then opened again by the failed probe: one open alert,
    // raised twice (deduplicated by its key).
    let started = Instant::now();
    loop {
        let alert = open_alert(&s, "breaker:provider:primary").await;
        if alert.as_ref().is_some_and(|a| a.count == 2) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "one open alert raised twice: {alert:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Both down: 503 naming each attempt.
    u.backup.handle().set(Behavior::Fail { status: 500 });
    let (status, _, body) = chat(&s, &key, hello("auto"), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    // The policy left the open primary out; the host tried the backup.
    assert!(
        message.starts_with("every candidate failed (1 tried)"),
        "{message}"
    );
    assert!(message.contains("backup/model-b: HTTP 500"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_count_as_failures() {
    let u = upstreams().await;
    let s = server(&u, "router-config", &format!("{CANDIDATES}\n")).await;
    let key = token(&s, "slow", "agent").await;
    u.primary.handle().set(Behavior::Hang);
    let started = Instant::now();
    let (status, headers, body) = chat(&s, &key, hello("auto"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-warden-provider"], "backup");
    assert!(
        started.elapsed() >= Duration::from_millis(2_000),
        "the primary had its timeout"
    );
    assert_eq!(breaker(&s, "primary").await["failures"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_budget_refuses_calls_beyond_it_and_never_overshoots_by_more_than_one() {
    let u = upstreams().await;
    let s = server(&u, "router-config", CANDIDATES).await;
    // Each call: prompt 6 tokens, 5 completion tokens on the primary:
    // 6 × 0.001 + 5 × 0.002 = $0.000016 = 16 micro-dollars.
    let budget = 0.0002; // 200 micro-dollars: 12.5 calls
    let (status, body) = s
        .put(
            "/v1/workspaces/spend/settings",
            &json!({ "hourly_budget": { "cost_usd": budget } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = token(&s, "spend", "agent").await;
    let body = json!({ "model": "auto", "max_tokens": 5, "messages": [{ "role": "user", "content": "spend some money" }] });
    // 8 clients at once, until every one is refused.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s_url = s.url.clone();
        let key = key.clone();
        let body = body.clone();
        let client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0, Vec::new());
            for _ in 0..20 {
                let r = client
                    .post(format!("{s_url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                match r.status() {
                    StatusCode::OK => ok += 1,
                    StatusCode::TOO_MANY_REQUESTS => {
                        refused.push(r.json::<Value>().await.unwrap());
                    }
                    other => panic!("unexpected {other}"),
                }
            }
            (ok, refused)
        }));
    }
    let mut ok = 0;
    let mut refused = Vec::new();
    for t in tasks {
        let (o, r) = t.await.unwrap();
        ok += o;
        refused.extend(r);
    }
    assert!(ok >= 10, "calls within the budget went through: {ok}");
    assert!(!refused.is_empty());
    for r in &refused {
        assert_eq!(r["error"]["code"], "RESOURCE_EXHAUSTED", "{r}");
        let m = r["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("the hourly cost budget of workspace \"spend\""),
            "{m}"
        );
    }
    let calls = calls(&s, "spend", ok).await;
    assert_eq!(calls.len(), ok);
    let spent: f64 = calls.iter().map(|c| c["cost_usd"].as_f64().unwrap()).sum();
    let one = calls
        .iter()
        .map(|c| c["cost_usd"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        spent <= budget + one + 1e-9,
        "spent ${spent} of ${budget}: more than one call (${one}) over"
    );
    println!(
        "budget ${budget}: {ok} calls admitted, spent ${spent:.6}, {} refused",
        refused.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_policys_limits_are_refused_before_any_upstream() {
    let u = upstreams().await;
    let extra = r#"
[workspaces."*".plugins.router-config]
config = { candidates = "primary:model-a,backup:model-b", max_context = 100, max_price_per_1k = 0.003, max_iterations = 2 }
"#;
    let s = server(&u, "router-config", extra).await;
    let key = token(&s, "lim", "agent").await;
    let long = "x".repeat(2_000);
    let (status, _, body) = chat(
        &s,
        &key,
        json!({ "model": "auto", "messages": [{ "role": "user", "content": long }] }),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("needs about 504 tokens of context")
            && m.contains("over the 100 that routing policy router-config allows"),
        "{m}"
    );
    let (status, _, body) = chat(&s, &key, json!({ "model": "auto", "max_tokens": 200, "messages": [{ "role": "user", "content": "hi" }] }), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "max_tokens counts: {body}");
    assert_eq!(
        u.primary.handle().request_count() + u.backup.handle().request_count(),
        0
    );

    // The backup is over the max price: only the primary is tried.
    u.primary.handle().set(Behavior::Fail { status: 500 });
    let (status, _, body) = chat(&s, &key, hello("auto"), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        u.backup.handle().request_count(),
        0,
        "the backup costs $0.004 per 1k, over $0.003"
    );

    // Max iterations per task stage.
    u.primary.handle().set(Behavior::Healthy);
    let (_, task) = s
        .post(
            "/v1/workspaces/lim/tasks",
            &json!({ "title": "loop", "pipeline": ["plan"] }),
        )
        .await;
    let id = task["id"].as_str().unwrap();
    let h = [("x-warden-task", id), ("x-warden-stage", "plan")];
    for _ in 0..2 {
        let (status, _, body) = chat(&s, &key, hello("auto"), &h).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _, body) = chat(&s, &key, hello("auto"), &h).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 2 (max_iterations)"),
        "{body}"
    );

    // Only the price limit: every candidate over it is a clear 400.
    let extra = r#"
[workspaces."*".plugins.router-config]
config = { candidates = "primary:model-a,backup:model-b", max_price_per_1k = 0.0001 }
"#;
    let u2 = upstreams().await;
    let s2 = server(&u2, "router-config", extra).await;
    let key = token(&s2, "cheap", "agent").await;
    let (status, _, body) = chat(&s2, &key, hello("auto"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(m.starts_with("refused before any upstream"), "{m}");
    assert!(
        m.contains(
            "primary/model-a costs $0.002 per 1k tokens, over the max price of $0.0001 per 1k"
        ),
        "{m}"
    );
    assert_eq!(
        u2.primary.handle().request_count() + u2.backup.handle().request_count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_passed_on_as_they_arrive_and_counted() {
    let u = upstreams().await;
    let s = server(&u, "router-config", CANDIDATES).await;
    let key = token(&s, "st", "agent").await;
    // 200 ms between chunks: a gateway that buffered would hand the first
    // chunk on only after the upstream wrote later ones.
    u.primary.handle().set_stream(5, 200);
    let r = s
        .client
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&key)
        .json(&json!({ "model": "model-a", "stream": true, "messages": [{ "role": "user", "content": "stream please" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut r = r;
    let mut received = Vec::new();
    let mut text = String::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        received.push(Instant::now());
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let sent = u.primary.handle().last_stream_timings();
    // The content chunk 1 arrived before the upstream wrote chunk 2.
    assert!(received.len() >= 5, "{} reads: {text}", received.len());
    let first_content = sent[1].at;
    assert!(
        received
            .iter()
            .any(|t| *t > first_content && *t < sent[2].at),
        "chunk 1 reached the client before chunk 2 was written"
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // Upstream was asked for usage on the client's behalf: its usage chunk
    // is dropped, and the `usage: null` it puts on every chunk (as OpenAI
    // does) is all the client sees of it.
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(line).unwrap();
        assert!(
            chunk.get("usage").is_none_or(Value::is_null),
            "the client did not ask for the usage chunk: {text}"
        );
    }
    let calls = calls(&s, "st", 1).await;
    assert_eq!(calls[0]["completion_tokens"], 5, "{}", calls[0]);
    assert_eq!(calls[0]["prompt_tokens"], 4);
    assert!(calls[0]["error"].is_null(), "{}", calls[0]);

    // An upstream that breaks off mid-stream ends the client's stream;
    // the call is booked with estimated tokens and counts as a failure.
    u.primary.handle().set_stream(5, 0);
    u.primary.handle().set(Behavior::BreakBody);
    let (status, headers, _) = chat(&s, &key, json!({ "model": "model-a", "stream": true, "messages": [{ "role": "user", "content": "x" }] }), &[]).await;
    // The primary broke before sending anything: the backup answered.
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-warden-provider"], "backup");

    // A break mid-stream, after the client has had two events: nothing can
    // be retried elsewhere, so the client's stream ends where the
    // upstream's did, and the call is booked with the tokens it had so far
    // (estimated) and the reason.
    u.primary.handle().set(Behavior::BreakStream { after: 2 });
    let r = s
        .client
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&key)
        .json(&json!({ "model": "model-a", "stream": true, "messages": [{ "role": "user", "content": "break" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-warden-provider"], "primary");
    let mut r = r;
    let mut text = String::new();
    while let Ok(Some(chunk)) = r.chunk().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("primary-0"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    let booked = self::calls(&s, "st", 3).await;
    let broken = booked
        .iter()
        .find(|c| c["provider"] == "primary" && !c["error"].is_null())
        .unwrap_or_else(|| panic!("no failed primary call booked: {booked:?}"));
    let error = broken["error"].as_str().unwrap();
    assert!(error.contains("tokens estimated"), "{error}");
    // One estimated token per chunk that arrived: the role chunk and one
    // content chunk.
    assert_eq!(broken["completion_tokens"], 2, "{broken}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_policy_falls_back_to_configuration_order_and_alerts() {
    let u = upstreams().await;
    for policy in ["router-panic", "router-empty", "no-such-policy"] {
        let s = server(&u, policy, "").await;
        let key = token(&s, "fb", "agent").await;
        let (status, headers, body) = chat(&s, &key, hello("model-b"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{policy}: {body}");
        assert_eq!(
            headers["x-warden-provider"], "backup",
            "the provider listing model-b"
        );
        let calls = calls(&s, "fb", 1).await;
        let reason = calls[0]["policy"]["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("routing policy {policy} could not decide")),
            "{reason}"
        );
        let alerts = s.app().store.list_alerts(None, None, 100).await.unwrap();
        assert!(
            alerts.iter().any(|a| a.rule == "routing_policy_failed"),
            "{policy}: {alerts:?}"
        );
    }
}

/// A policy that keeps failing opens its breaker (`plugin:<name>`, SPEC
/// RL-1): after five failures it is no longer called (requests go straight
/// to the configuration's order), a critical `breaker_open` alert names it,
/// and after the backoff one request probes it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_policy_opens_its_breaker_and_is_skipped_until_the_probe() {
    let u = upstreams().await;
    let s = server(&u, "router-panic", "").await;
    let key = token(&s, "pb", "agent").await;
    let policy_calls = |s: &TestServer| {
        s.app()
            .runtime
            .stats()
            .counts()
            .iter()
            .filter(|c| c.plugin == "router-panic")
            .map(|c| c.calls)
            .sum::<u64>()
    };
    for _ in 0..5 {
        let (status, _, body) = chat(&s, &key, hello("model-b"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(policy_calls(&s), 5);
    // Open: served in configuration order without calling the policy.
    for _ in 0..3 {
        let (status, headers, body) = chat(&s, &key, hello("model-b"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["x-warden-provider"], "backup");
    }
    assert_eq!(policy_calls(&s), 5, "an open breaker skips the policy");
    let booked = calls(&s, "pb", 8).await;
    let reason = booked[0]["policy"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("its breaker plugin:router-panic is open"),
        "{reason}"
    );
    s.app().gateway.flush().await;
    let alerts = s.app().store.list_alerts(None, None, 100).await.unwrap();
    let open = alerts
        .iter()
        .find(|a| a.rule == "breaker_open" && a.dedup_key == "breaker:plugin:router-panic")
        .unwrap_or_else(|| panic!("no breaker alert: {alerts:?}"));
    assert_eq!(open.severity, "critical");
    assert!(
        open.summary.contains("routing policy router-panic"),
        "{}",
        open.summary
    );
    let (_, breakers) = s.get("/v1/breakers").await;
    assert!(
        breakers["breakers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "plugin:router-panic" && b["state"] == "open"),
        "{breakers}"
    );
    // After the 1.5 s backoff, one request probes the policy (it fails
    // again: open for the next backoff).
    tokio::time::sleep(Duration::from_millis(1700)).await;
    for _ in 0..2 {
        let (status, _, body) = chat(&s, &key, hello("model-b"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(policy_calls(&s), 6, "exactly one probe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let u = upstreams().await;
    let s = server(&u, "router-config", CANDIDATES).await;
    let key = token(&s, "bad", "agent").await;
    let viewer = token(&s, "bad", "viewer").await;
    let send = |key: String, body: String, headers: Vec<(&'static str, &'static str)>| {
        let mut r = s
            .client
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let ok = hello("auto").to_string();
    for (body, headers, status, needle) in [
        (
            "{not json".to_string(),
            vec![],
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            r#"{"messages":[{"role":"user","content":"x"}]}"#.to_string(),
            vec![],
            StatusCode::BAD_REQUEST,
            "model is required",
        ),
        (
            r#"{"model":"auto","messages":[]}"#.to_string(),
            vec![],
            StatusCode::BAD_REQUEST,
            "messages must be a non-empty array",
        ),
        (
            ok.clone(),
            vec![("x-warden-mode", "turbo")],
            StatusCode::BAD_REQUEST,
            "x-warden-mode: unknown mode \"turbo\"",
        ),
        (
            ok.clone(),
            vec![("x-warden-task", "nope")],
            StatusCode::NOT_FOUND,
            "task nope (from x-warden-task) not found",
        ),
        (
            ok.clone(),
            vec![("x-warden-stage", "a b")],
            StatusCode::BAD_REQUEST,
            "x-warden-stage",
        ),
    ] {
        let (got, body) = send(key.clone(), body, headers).await;
        assert_eq!(got, status, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{body}"
        );
    }
    let (got, body) = send(viewer, ok.clone(), vec![]).await;
    assert_eq!(got, StatusCode::FORBIDDEN, "{body}");
    let (got, _) = send("wrong".to_string(), ok, vec![]).await;
    assert_eq!(got, StatusCode::UNAUTHORIZED);
    // The request the upstream blames is returned as it is, not failed over.
    let (status, _, body) = chat(
        &s,
        &key,
        json!({ "model": "auto", "messages": [{ "role": "user" }], "max_tokens": 0 }),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s.get("/v1/workspaces/bad/usage?group_by=colour").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown dimension \"colour\"")
    );
}
