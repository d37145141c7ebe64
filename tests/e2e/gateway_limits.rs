//! The gateway's limits hold for streams and disconnects, and a stream cut
//! short never looks complete (issue 15, items 7 and 14): a provider's
//! `max_concurrent` slot is held until its stream ends; a plain call whose
//! client went away is still booked; a request without `max_tokens`
//! reserves `n` times its provider's output cap; upstream bodies and
//! stream events are size-capped; redirects are not followed, neither for
//! providers nor for alert sinks; and a stream that stalls, breaks off or
//! carries an upstream error ends with an error the official `openai`
//! Python client raises.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_server::alerts::Severity;
use warden_test_upstream::{Behavior, Options, Upstream};

use crate::TestServer;
use crate::gateway::{CANDIDATES, Upstreams, calls, chat, hello, installed, token, upstreams};

/// The gateway over `u` (router-config, primary then backup), with
/// `gateway` added to `[gateway]`, `primary` to the primary's table and
/// `tail` at the end.
fn cfg(u: &Upstreams, gateway: &str, primary: &str, tail: &str) -> String {
    format!(
        r#"
[gateway]
policy = "router-config"
timeout_ms = 2000
breaker_backoff_ms = [1500, 3000]
{gateway}

[[gateway.providers]]
name = "primary"
base_url = "{primary_url}"
api_key_env = "WARDEN_TEST_PRIMARY_KEY"
models = ["model-a"]
price_input_per_1k = 0.001
price_output_per_1k = 0.002
max_context = 8000
{primary}

[[gateway.providers]]
name = "backup"
base_url = "{backup_url}"
api_key_env = "WARDEN_TEST_BACKUP_KEY"
models = ["model-b"]
price_input_per_1k = 0.002
price_output_per_1k = 0.004
max_context = 8000
{CANDIDATES}
{tail}
"#,
        primary_url = u.primary.base_url(),
        backup_url = u.backup.base_url(),
    )
}

async fn start(u: &Upstreams, gateway: &str, primary: &str, tail: &str) -> TestServer {
    installed(TestServer::start(&cfg(u, gateway, primary, tail)).await).await
}

/// Regression: the `max_concurrent` slot was given back when a stream's
/// headers arrived, so a provider limited to one call at a time served
/// any number of streams at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_holds_its_providers_slot_until_it_ends() {
    let u = upstreams().await;
    let s = start(&u, "", "max_concurrent = 1", "").await;
    let key = token(&s, "slot", "agent").await;
    u.primary.handle().set_stream(5, 300);
    let mut stream = s
        .client
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&key)
        .json(&json!({ "model": "model-a", "stream": true, "messages": [{ "role": "user", "content": "a long story" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["x-warden-provider"], "primary");
    let first = stream.chunk().await.unwrap();
    assert!(first.is_some(), "the stream has begun");
    // While the stream runs, the primary's one slot is taken.
    let (status, headers, body) = chat(&s, &key, hello("model-a"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        headers["x-warden-provider"], "backup",
        "the primary is at its max_concurrent of 1 while its stream runs"
    );
    while stream.chunk().await.unwrap().is_some() {}
    // The stream is over: its slot is free again.
    let (status, headers, body) = chat(&s, &key, hello("model-a"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-warden-provider"], "primary");
}

/// Regression: a plain call whose client went away before the upstream
/// answered was dropped with the handler: the upstream did the work, and
/// nothing was booked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_call_whose_client_went_away_is_still_booked() {
    let u = upstreams().await;
    let s = start(&u, "", "", "").await;
    let key = token(&s, "gone", "agent").await;
    u.primary.handle().set(Behavior::Slow { delay_ms: 1_000 });
    let sent = s
        .client
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&key)
        .timeout(Duration::from_millis(200))
        .json(&hello("model-a"))
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up: {sent:?}");
    let booked = calls(&s, "gone", 1).await;
    assert_eq!(booked.len(), 1, "the call is booked: {booked:?}");
    let c = &booked[0];
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["provider"], "primary", "{c}");
    // The upstream's own usage: 20 characters / 4, and 5 words.
    assert_eq!(
        (c["prompt_tokens"].as_i64(), c["completion_tokens"].as_i64()),
        (Some(5), Some(5)),
        "{c}"
    );
    assert!(c["error"].is_null(), "{c}");
    assert_eq!(u.primary.handle().request_count(), 1);
}

/// A client that keeps calling until the budget refuses it for good:
/// (calls answered, refusals).
async fn spend(url: &str, client: &reqwest::Client, key: &str, body: Value) -> (usize, Vec<Value>) {
    let (mut ok, mut refused) = (0, Vec::new());
    for _ in 0..40 {
        let r = client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let b: Value = r.json().await.unwrap();
                let spent = b["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("is spent");
                refused.push(b);
                if spent {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    (ok, refused)
}

/// Regression: a request without `max_tokens` reserved 1,024 completion
/// tokens whatever it could write, and `n` was not counted, so calls in
/// flight together passed an hourly budget by several calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_max_tokens_reserve_n_times_the_output_cap() {
    let u = upstreams().await;
    let s = start(&u, "", "", "").await;
    // Each call writes 1,500 tokens (prompt: 5), slowly enough that
    // calls overlap.
    u.primary.handle().set_stream(1_500, 0);
    u.primary.handle().set(Behavior::Slow { delay_ms: 300 });
    let budget = 10_000;
    let (status, body) = s
        .put(
            "/v1/workspaces/cap/settings",
            &json!({ "hourly_budget": { "tokens": budget } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = token(&s, "cap", "agent").await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        let s_url = s.url.clone();
        let key = key.clone();
        let client = s.client.clone();
        clients.push(tokio::spawn(async move {
            spend(&s_url, &client, &key, hello("model-a")).await
        }));
    }
    let mut ok = 0;
    for c in clients {
        ok += c.await.unwrap().0;
    }
    let booked = calls(&s, "cap", ok).await;
    assert_eq!(booked.len(), ok);
    let spent: i64 = booked
        .iter()
        .map(|c| c["prompt_tokens"].as_i64().unwrap() + c["completion_tokens"].as_i64().unwrap())
        .sum();
    let one = 1_505;
    println!("hourly budget {budget} tokens: {ok} calls, {spent} tokens spent");
    assert!(
        spent <= budget + one,
        "spent {spent} tokens of {budget}: more than one call ({one}) over"
    );

    // `n` choices may each be as long as max_tokens: with one call in
    // flight, eight choices of 500 do not fit in a budget of 3,000.
    u.primary.handle().set_stream(5, 0);
    u.primary.handle().set(Behavior::Slow { delay_ms: 1_000 });
    let (status, body) = s
        .put(
            "/v1/workspaces/choices/settings",
            &json!({ "hourly_budget": { "tokens": 3000 } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = token(&s, "choices", "agent").await;
    let one = json!({ "model": "model-a", "max_tokens": 500, "messages": [{ "role": "user", "content": "hello there, gateway" }] });
    let eight = json!({ "model": "model-a", "max_tokens": 500, "n": 8, "messages": [{ "role": "user", "content": "hello there, gateway" }] });
    let first = {
        let (url, key, client, one) = (s.url.clone(), key.clone(), s.client.clone(), one.clone());
        tokio::spawn(async move {
            client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&one)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = chat(&s, &key, eight.clone(), &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("the hourly token budget of workspace \"choices\" has no room for this call"),
        "{m}"
    );
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    // Alone, it is admitted.
    let (status, _, body) = chat(&s, &key, eight, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = chat(
        &s,
        &key,
        json!({ "model": "model-a", "n": 0, "messages": [{ "role": "user", "content": "x" }] }),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("n must be an integer from 1 to 128, not \"0\""),
        "{body}"
    );
}

/// Regression: an upstream body was read whole into memory whatever its
/// size, and a stream event that never ended was buffered without limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_bodies_and_stream_events_are_capped() {
    let u = upstreams().await;
    let s = start(
        &u,
        "max_response_kib = 64\nmax_stream_event_kib = 16",
        "",
        "",
    )
    .await;
    let key = token(&s, "huge", "agent").await;
    u.primary
        .handle()
        .set(Behavior::HugeBody { bytes: 8 << 20 });
    // Plain: the primary's body is over the limit, the backup answers.
    let (status, headers, body) = chat(&s, &key, hello("model-a"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-warden-provider"], "backup");
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("backup-0"),
        "{body}"
    );
    // Streamed: one event that never ends; the client's stream ends with
    // an error event naming the limit.
    let r = s
        .client
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&key)
        .json(&json!({ "model": "model-a", "stream": true, "messages": [{ "role": "user", "content": "x" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(
        text.len() < 4096,
        "no padding reached the client: {} bytes",
        text.len()
    );
    assert!(!text.contains("[DONE]"), "{text}");
    let event: Value = serde_json::from_str(
        text.trim()
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("one error event: {text}")),
    )
    .unwrap();
    let m = event["error"]["message"].as_str().unwrap();
    assert!(
        m.contains(
            "the upstream sent an event over the 16 KiB limit ([gateway] max_stream_event_kib)"
        ),
        "{m}"
    );
    let booked = calls(&s, "huge", 2).await;
    let plain = booked.iter().find(|c| c["stream"] == false).unwrap();
    assert_eq!(plain["attempts"], 2, "{plain}");
    let streamed = booked.iter().find(|c| c["stream"] == true).unwrap();
    assert_eq!(streamed["status"], "failed", "{streamed}");
    assert!(
        streamed["error"]
            .as_str()
            .unwrap()
            .contains("max_stream_event_kib"),
        "{streamed}"
    );
}

/// Regression: a provider's or a sink's redirect was followed (up to ten
/// hops), sending the prompt, the provider's key or the alert anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_for_providers_or_sinks() {
    let u = upstreams().await;
    let victim = Upstream::start(Options {
        name: "victim".to_string(),
        ..Options::default()
    })
    .await
    .unwrap();
    let sink = format!("{}/chat/completions", u.primary.base_url());
    let tail = format!(
        r#"
[alerting]
critical_group_window_ms = 0
poll_ms = 100
[[alerting.sinks]]
name = "hook"
kind = "webhook"
url = "{sink}"
"#
    );
    let s = start(&u, "", "", &tail).await;
    let key = token(&s, "redir", "agent").await;
    u.primary.handle().set(Behavior::Redirect {
        status: 307,
        location: format!("{}/chat/completions", victim.base_url()),
    });
    let (status, headers, body) = chat(&s, &key, hello("model-a"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-warden-provider"], "backup");
    let booked = calls(&s, "redir", 1).await;
    assert_eq!(booked[0]["attempts"], 2, "{booked:?}");

    // The sink answers with a redirect too.
    s.app()
        .alerts
        .raise(
            None,
            "breaker_open",
            Severity::Critical,
            "redirect-test",
            "something broke",
            json!({}),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let failed = loop {
        let (_, body) = s.get("/v1/notifications?limit=100").await;
        let failed = body["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["sink"] == "hook" && n["status"] == "failed")
            .cloned();
        if let Some(n) = failed {
            break n;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the sink's redirect fails the notification: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("redirect, which is not followed"),
        "{failed}"
    );
    assert_eq!(
        victim.handle().request_count(),
        0,
        "nothing reached the redirect's target"
    );
}

/// What the official client saw of one stream.
async fn python_stream(python: &std::path::Path, s: &TestServer, key: &str) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/gateway/openai_stream_failures.py");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .arg(format!("{}/v1", s.url))
        .arg(key)
        .arg("model-a")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the python script failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Regression: an upstream that went silent after its first chunk (past
/// `idle_timeout_ms`) or broke off gave the client a normal end of stream
/// with a cut-off answer, which the `openai` client returned as complete;
/// an upstream's error event was booked as a successful call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_short_is_an_error_for_the_openai_client() {
    let found = crate::python_tool("pyenv", "openai>=1.40", "bin/python", |p| {
        crate::imports(p, "openai")
    });
    let Some(python) = crate::required(
        "a_stream_cut_short_is_an_error_for_the_openai_client",
        found,
    ) else {
        return;
    };
    let u = upstreams().await;
    let s = start(&u, "idle_timeout_ms = 700", "", "").await;
    let key = token(&s, "cut", "agent").await;

    let whole = python_stream(&python, &s, &key).await;
    assert_eq!(whole["completed"], true, "{whole}");
    assert_eq!(
        whole["content"],
        "primary-0 primary-1 primary-2 primary-3 primary-4"
    );

    for (behavior, why) in [
        (
            Behavior::StallStream { after: 2 },
            "the upstream sent nothing for 700 ms mid-stream",
        ),
        (
            Behavior::BreakStream { after: 2 },
            "the answer is incomplete",
        ),
        (
            Behavior::ErrorChunk { after: 2 },
            "primary failed mid-stream on purpose",
        ),
    ] {
        u.primary.handle().set(behavior.clone());
        let got = python_stream(&python, &s, &key).await;
        assert_eq!(got["completed"], false, "{behavior:?}: {got}");
        assert_eq!(got["content"], "primary-0", "{behavior:?}: {got}");
        let error = &got["error"];
        assert!(
            error["classes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "APIError"),
            "{behavior:?}: {got}"
        );
        assert!(
            error["message"].as_str().unwrap().contains(why),
            "{behavior:?}: {got}"
        );
    }
    // Each cut-off call is booked as failed, with what was delivered (the
    // role chunk and one word) and why.
    let booked = calls(&s, "cut", 4).await;
    let failed: Vec<&Value> = booked.iter().filter(|c| c["status"] == "failed").collect();
    assert_eq!(failed.len(), 3, "{booked:?}");
    for c in &failed {
        assert_eq!(c["completion_tokens"], 2, "{c}");
        assert_eq!(c["provider"], "primary", "{c}");
    }
    let errors: Vec<&str> = failed
        .iter()
        .map(|c| c["error"].as_str().unwrap())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("the upstream sent nothing for 700 ms mid-stream")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains(
            "the upstream sent an error mid-stream: primary failed mid-stream on purpose"
        )),
        "{errors:?}"
    );
}
