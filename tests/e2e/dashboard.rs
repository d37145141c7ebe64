//! The global status, the live status stream and the dashboard (SPEC OB-1,
//! OB-2): what the status says under load, that a token scoped to one
//! workspace never sees another, that the stream pushes changes, and, in a
//! real headless Chromium driven by Playwright, that the page shows tasks
//! as they move, live over SSE and by polling when the stream is blocked.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_store::gateway::GatewayCallRow;

use crate::{ADMIN, TestServer};

const FAST: &str = "[scheduler]\nbackoff_base_ms = 20\nbackoff_max_ms = 100\n";

/// The bundled gates on `implement` in the load workspace.
const GATED: &str = "[workspaces.demo.gates.implement]\ngates = [\"diff-size\", \"secret-scan\"]\n";

const SMALL_DIFF: &str = "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,4 @@\n fn main() {\n-    println!(\"hi\");\n+    println!(\"hello\");\n }\n";

const SECRET_DIFF: &str = "diff --git a/config/deploy.env b/config/deploy.env\n--- a/config/deploy.env\n+++ b/config/deploy.env\n@@ -1,2 +1,3 @@\n REGION=eu-west-1\n+AWS_ACCESS_KEY_ID=AKIAQYLPMN5HHHFPZAM2\n BUCKET=builds\n";

async fn create(s: &TestServer, ws: &str, title: &str, pipeline: &[&str]) -> String {
    let (status, t) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks"),
            &json!({ "title": title, "pipeline": pipeline, "max_attempts": 5 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["id"].as_str().unwrap().to_string()
}

/// Claims one stage, which must be of `id`.
async fn claim(s: &TestServer, ws: &str, id: &str) -> Value {
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/claim"),
            &json!({ "worker_id": "load-worker", "wait_ms": 2000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = body["claims"][0].clone();
    assert_eq!(c["task_id"], id, "{body}");
    c
}

async fn complete(s: &TestServer, ws: &str, c: &Value, result: Value) -> Value {
    let id = c["task_id"].as_str().unwrap();
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/complete"),
            &json!({ "token": c["token"], "output": {}, "result": result }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["task"].clone()
}

async fn fail(s: &TestServer, ws: &str, c: &Value, error: &str) {
    let id = c["task_id"].as_str().unwrap();
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/fail"),
            &json!({ "token": c["token"], "error": error }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Builds a workspace with something in every panel: tasks done, running,
/// queued, waiting for approval (none), blocked; stages that took time; a
/// gate approval and a rejection; a task failing the same way three times
/// (blocked by the loop guard: a critical alert, a resolution loop, the top
/// error); a playbook run; two breakers;
/// model calls on two providers and three stages.
async fn load(s: &TestServer, ws: &str) {
    let pipeline = ["plan", "implement", "review"];
    // Done: plan (slow), implement (gated, approved), review.
    let done = create(s, ws, "add retry to the uploader", &pipeline).await;
    let c = claim(s, ws, &done).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    complete(s, ws, &c, Value::Null).await;
    let c = claim(s, ws, &done).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let clean = json!({ "diff": SMALL_DIFF, "diff_stats": { "files_changed": 1, "insertions": 1, "deletions": 1 } });
    let t = complete(s, ws, &c, clean).await;
    assert_eq!(t["stage"], "review", "the gates approved: {t}");
    let c = claim(s, ws, &done).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = complete(s, ws, &c, Value::Null).await;
    assert_eq!(t["state"], "done", "{t}");

    // Rejected by secret-scan: back to plan.
    let leak = create(s, ws, "rotate deploy credentials", &pipeline).await;
    let c = claim(s, ws, &leak).await;
    complete(s, ws, &c, Value::Null).await;
    let c = claim(s, ws, &leak).await;
    let secret = json!({ "diff": SECRET_DIFF, "diff_stats": { "files_changed": 1, "insertions": 1, "deletions": 0 } });
    let t = complete(s, ws, &c, secret).await;
    assert_eq!(t["stage"], "plan", "the gates rejected: {t}");

    // The same failure three times in a row blocks the task (SPEC TS-6).
    let flaky = create(s, ws, "fix flaky integration test", &["verify"]).await;
    // The rejected task is queued at plan too: claim only verify.
    for _ in 0..3 {
        let (status, body) = s
            .post(
                &format!("/v1/workspaces/{ws}/tasks/claim"),
                &json!({ "worker_id": "load-worker", "wait_ms": 2000, "stages": ["verify"] }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let c = body["claims"][0].clone();
        assert_eq!(c["task_id"], flaky, "{body}");
        fail(
            s,
            ws,
            &c,
            "test integration::upload failed: connection reset by peer",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // Running and queued ones.
    let running = create(s, ws, "write the release notes", &["review"]).await;
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/claim"),
            &json!({ "worker_id": "load-worker", "stages": ["review"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["claims"][0]["task_id"], running, "{body}");
    for title in ["bump dependencies", "triage new issues"] {
        create(s, ws, title, &pipeline).await;
    }

    // A playbook run.
    let (status, run) = s
        .post(
            &format!("/v1/workspaces/{ws}/playbooks/diagnose-system/runs?wait=true"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");

    // A provider's breaker opened by hand, a sink's closed.
    for (name, state) in [("provider:openrouter", "open"), ("sink:slack", "closed")] {
        let (status, body) = s
            .put(
                &format!("/v1/breakers/{name}"),
                &json!({ "state": state, "reason": "set by the dashboard test" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // Model calls, as the gateway's writer books them.
    let now = warden_store::now_ms();
    let calls: Vec<GatewayCallRow> = [
        ("openai", "plan", 1_200, 300, 9_000),
        ("openai", "implement", 5_000, 2_000, 42_000),
        ("openrouter", "implement", 2_500, 900, 6_500),
        ("openrouter", "review", 800, 200, 1_500),
    ]
    .iter()
    .enumerate()
    .map(
        |(i, (provider, stage, prompt, completion, cost))| GatewayCallRow {
            id: warden_store::new_id(),
            workspace: ws.to_string(),
            task_id: Some(done.clone()),
            stage: Some(stage.to_string()),
            mode: "code".to_string(),
            requested_model: "auto".to_string(),
            provider: Some(provider.to_string()),
            model: Some("model-a".to_string()),
            policy: "cost-aware-router".to_string(),
            policy_version: "1.0.0".to_string(),
            policy_digest: "sha256:test".to_string(),
            route_reason: "test".to_string(),
            status: "ok".to_string(),
            http_status: 200,
            attempts: 1,
            prompt_tokens: *prompt,
            completion_tokens: *completion,
            cost_micros: *cost,
            latency_ms: 900,
            created_at: now - 1_000 + i as i64,
            ..GatewayCallRow::default()
        },
    )
    .collect();
    s.app()
        .store
        .record_gateway_calls(&calls)
        .await
        .expect("record calls");
}

/// A token of `role` scoped to `ws`.
async fn token(s: &TestServer, ws: &str, role: &str) -> String {
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tokens"),
            &json!({ "name": format!("{ws}-{role}"), "role": role }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_shows_gates_usage_stage_times_loops_and_runs() {
    let s = TestServer::start(&format!("{FAST}{GATED}")).await;
    load(&s, "demo").await;
    let (status, st) = s.get("/v1/workspaces/demo/status").await;
    assert_eq!(status, StatusCode::OK, "{st}");

    // The fields the status always had are still there.
    for field in [
        "mode",
        "running",
        "idle",
        "why_idle",
        "workers",
        "alerts",
        "breakers",
        "usage_this_hour",
        "hourly_budget",
    ] {
        assert!(st.get(field).is_some(), "{field} missing: {st}");
    }
    let counts = &st["tasks_by_state"];
    assert_eq!(
        (counts["done"].as_i64(), counts["running"].as_i64()),
        (Some(1), Some(1)),
        "{counts}"
    );
    assert_eq!(
        (counts["queued"].as_i64(), counts["blocked"].as_i64()),
        (Some(3), Some(1)),
        "{counts}"
    );

    // Gates: one approval and one rejection of the transition out of
    // implement; secret-scan rejected once.
    let g = &st["quality_gates"];
    assert_eq!(g["decisions"], 2, "{g}");
    let implement = &g["by_stage"][0];
    assert_eq!(
        (
            implement["stage"].as_str(),
            implement["approved"].as_i64(),
            implement["rejected"].as_i64()
        ),
        (Some("implement"), Some(1), Some(1)),
        "{g}"
    );
    let scan = g["by_gate"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["gate"] == "secret-scan")
        .expect("secret-scan stats");
    assert_eq!(
        (scan["approvals"].as_i64(), scan["rejections"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(g["verdicts"], 4, "{g}");
    assert_eq!(g["rejection_rate"], 0.25, "{g}");

    // Usage and cost by provider and stage, largest cost first.
    let u = &st["token_usage"];
    assert_eq!(u["calls"], 4, "{u}");
    assert_eq!(
        u["tokens"],
        1_200 + 300 + 5_000 + 2_000 + 2_500 + 900 + 800 + 200
    );
    assert_eq!(u["cost_usd"], 0.059, "{u}");
    assert_eq!(u["by_provider"][0]["provider"], "openai");
    assert_eq!(u["by_provider"][0]["cost_usd"], 0.051);
    assert_eq!(u["by_stage"][0]["stage"], "implement");
    assert_eq!(u["by_stage"][0]["tokens"], 5_000 + 2_000 + 2_500 + 900);

    // Stage times: plan took longest in total (the slow first plan).
    let d = st["stage_durations"].as_array().unwrap();
    assert!(d.len() >= 3, "{d:?}");
    assert_eq!(st["bottleneck_stage"]["stage"], "plan", "{st}");
    assert!(st["bottleneck_stage"]["total_ms"].as_i64().unwrap() >= 400);

    // The flaky task loops (blocked), raised its alert and the top error.
    let loops = st["active_loops"].as_array().unwrap();
    assert_eq!(loops.len(), 1, "{loops:?}");
    assert_eq!(loops[0]["title"], "fix flaky integration test");
    assert_eq!(loops[0]["why"], "blocked");
    assert!(
        st["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "same_failure"),
        "{}",
        st["alerts"]
    );
    assert_eq!(st["top_errors"][0]["count"], 3, "{}", st["top_errors"]);

    // The recent activity is newest first and the run is listed.
    let recent = st["recent_tasks"].as_array().unwrap();
    assert_eq!(recent.len(), 6);
    assert_eq!(recent[0]["title"], "triage new issues");
    assert_eq!(st["playbook_runs"][0]["plugin"], "diagnose-system");
    assert_eq!(st["window"]["hours"], 24);

    // The window is checked.
    let (status, body) = s.get("/v1/workspaces/demo/status?hours=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT");
}

/// SPEC SE-1: a token scoped to one workspace sees that workspace in the
/// global status and nothing of another one; the bootstrap admin sees all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_status_never_leaks_across_workspaces() {
    let s = TestServer::start(FAST).await;
    let a = create(&s, "alpha", "alpha secret task", &["plan"]).await;
    let b = create(&s, "beta", "beta secret task", &["plan", "review"]).await;
    let c = claim(&s, "beta", &b).await;
    fail(&s, "beta", &c, "beta-only failure text").await;
    s.app()
        .alerts
        .raise(
            Some("beta"),
            "test",
            warden_server::alerts::Severity::Warning,
            "beta-alert",
            "beta-only alert",
            json!({}),
        )
        .await
        .expect("alert");

    let (status, all) = s.get("/v1/status").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["scope"], "all");
    let names = strings(&all["workspaces"]);
    assert!(
        names.contains(&"alpha".to_string()) && names.contains(&"beta".to_string()),
        "{names:?}"
    );
    assert_eq!(all["tasks_by_state"]["queued"], 2, "{all}");
    assert_eq!(all["recent_tasks"].as_array().unwrap().len(), 2);
    assert!(all["why_idle"]["alpha"]["reason"].is_string(), "{all}");
    assert_eq!(all["mode"]["beta"]["mode"], "normal");
    assert!(
        all["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["summary"] == "beta-only alert")
    );

    let viewer = token(&s, "alpha", "viewer").await;
    let (status, mine) = s
        .request(reqwest::Method::GET, "/v1/status", Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["scope"], "alpha");
    assert_eq!(strings(&mine["workspaces"]), ["alpha"]);
    assert_eq!(mine["tasks_by_state"], json!({ "queued": 1 }));
    let recent = mine["recent_tasks"].as_array().unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["id"], a);
    // Nothing of beta anywhere in the answer: ids, titles, errors, alerts.
    let text = mine.to_string();
    for secret in [b.as_str(), "beta", "beta-only"] {
        assert!(!text.contains(secret), "{secret:?} leaked: {text}");
    }

    // The other workspace's status and stream are refused.
    for path in [
        "/v1/workspaces/beta/status",
        "/v1/workspaces/beta/status/stream",
    ] {
        let (status, body) = s
            .request(reqwest::Method::GET, path, Some(&viewer), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    }
    let (status, _) = s
        .request(reqwest::Method::GET, "/v1/status", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Reads SSE events `status` from a response until `pred` holds for one.
async fn next_status(
    resp: &mut reqwest::Response,
    buf: &mut String,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if block.lines().any(|l| l == "event: status")
                && let Ok(v) = serde_json::from_str::<Value>(&data)
                && pred(&v)
            {
                return Some(v);
            }
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(bytes))) => buf.push_str(&String::from_utf8_lossy(&bytes)),
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_stream_pushes_each_change_at_once() {
    let s = TestServer::start(FAST).await;
    let mut resp = s
        .client
        .get(format!("{}/v1/workspaces/live/status/stream", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut buf = String::new();
    let first = next_status(&mut resp, &mut buf, Duration::from_secs(5), |_| true)
        .await
        .expect("a first status at once");
    assert_eq!(first["workspace"], "live");
    assert_eq!(first["why_idle"]["reason"], "no_tasks", "{first}");

    let started = Instant::now();
    let id = create(&s, "live", "streamed", &["plan"]).await;
    let seen = next_status(&mut resp, &mut buf, Duration::from_secs(5), |v| {
        v["recent_tasks"][0]["id"] == id.as_str()
    })
    .await
    .expect("the new task is streamed");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(seen["tasks_by_state"]["queued"], 1);

    let c = claim(&s, "live", &id).await;
    next_status(&mut resp, &mut buf, Duration::from_secs(3), |v| {
        v["tasks_by_state"]["running"] == 1
    })
    .await
    .expect("the claim is streamed");
    complete(&s, "live", &c, Value::Null).await;
    next_status(&mut resp, &mut buf, Duration::from_secs(3), |v| {
        v["tasks_by_state"]["done"] == 1
    })
    .await
    .expect("the completion is streamed");

    // Nothing changes: no status event, only keep-alives (every 10 s).
    let quiet = next_status(&mut resp, &mut buf, Duration::from_millis(2500), |_| true).await;
    assert!(
        quiet.is_none(),
        "an unchanged status was sent again: {quiet:?}"
    );

    // Shutting down ends the stream instead of holding the drain.
    let stopped = Instant::now();
    s.stop().await;
    assert!(
        stopped.elapsed() < Duration::from_secs(4),
        "{:?}",
        stopped.elapsed()
    );
}

/// `warden_status_snapshots_total`: status snapshots the live streams took.
async fn snapshots_taken(s: &TestServer) -> u64 {
    let text = s
        .client
        .get(format!("{}/metrics", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("warden_status_snapshots_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no warden_status_snapshots_total:\n{text}"))
}

/// Issue 15, item 10: concurrent status streams of one workspace and
/// window share one snapshot. Twenty dashboards open on a workspace cost
/// the database what one does (`warden_status_snapshots_total` grows by
/// about one a second, not twenty), each change reaches all of them as
/// the same snapshot (one `generated_at`), another window is a snapshot
/// of its own, and when the last stream closes nothing is taken any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_status_streams_share_one_snapshot() {
    const STREAMS: usize = 20;
    let s = TestServer::start(FAST).await;
    let open = |query: &'static str| {
        s.client
            .get(format!(
                "{}/v1/workspaces/shared/status/stream{query}",
                s.url
            ))
            .bearer_auth(ADMIN)
            .send()
    };
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let mut resp = open("").await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut buf = String::new();
        next_status(&mut resp, &mut buf, Duration::from_secs(5), |_| true)
            .await
            .expect("a first status at once");
        streams.push((resp, buf));
    }
    let mut other = open("?hours=1").await.unwrap();
    let mut other_buf = String::new();
    let first = next_status(&mut other, &mut other_buf, Duration::from_secs(5), |_| true)
        .await
        .expect("a first status of the other window");
    assert_eq!(first["window"]["hours"], 1, "{first}");

    let before = snapshots_taken(&s).await;
    let id = create(&s, "shared", "seen by every dashboard", &["plan"]).await;
    let mut stamps = std::collections::BTreeSet::new();
    for (resp, buf) in &mut streams {
        let seen = next_status(resp, buf, Duration::from_secs(5), |v| {
            v["recent_tasks"][0]["id"] == id.as_str()
        })
        .await
        .expect("the new task reaches every stream");
        assert_eq!(seen["window"]["hours"], 24, "{seen}");
        stamps.insert(seen["generated_at"].as_str().unwrap().to_string());
    }
    let seen = next_status(&mut other, &mut other_buf, Duration::from_secs(5), |v| {
        v["recent_tasks"][0]["id"] == id.as_str()
    })
    .await
    .expect("the other window sees the task too");
    assert_eq!(seen["window"]["hours"], 1, "{seen}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    let taken = snapshots_taken(&s).await - before;
    eprintln!("{taken} status snapshots in about 4 s for {STREAMS} + 1 streams");
    // Two windows, each looked at once a second and on the wake-ups of
    // the task's creation: about ten in these four seconds. One snapshot
    // per stream would be more than eighty.
    assert!(
        taken <= 16,
        "{taken} snapshots in about 4 s for {STREAMS} streams of one window and one of another"
    );
    assert_eq!(
        stamps.len(),
        1,
        "each stream took its own snapshot: {stamps:?}"
    );

    drop(streams);
    drop(other);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = snapshots_taken(&s).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        snapshots_taken(&s).await,
        settled,
        "snapshots are still taken with no stream open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_and_chart_js_are_served() {
    let s = TestServer::start("").await;
    let get = |path: &str| s.client.get(format!("{}{path}", s.url)).send();
    let page = get("/").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/assets/chart.umd.js?v=4.6.1"), "{html}");
    assert!(html.contains("/assets/dashboard.js"));

    let chart = get("/assets/chart.umd.js").await.unwrap();
    assert_eq!(chart.status(), StatusCode::OK);
    assert_eq!(
        chart.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let js = chart.text().await.unwrap();
    assert!(js.starts_with("/*!\n * Chart.js v4.6.1"), "{}", &js[..80]);
    let license = get("/assets/chart.js.LICENSE.md").await.unwrap();
    assert!(license.text().await.unwrap().contains("MIT License"));
    for (path, kind) in [
        ("/assets/dashboard.js", "text/javascript; charset=utf-8"),
        ("/assets/dashboard.css", "text/css; charset=utf-8"),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["content-type"], kind);
        assert_eq!(r.headers()["cache-control"], "no-cache");
    }
    let (status, body) = s
        .request(reqwest::Method::GET, "/assets/../warden.toml", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s
        .request(reqwest::Method::GET, "/assets/secret.txt", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}

/// Python with Playwright in `$HOME/.cache/warden/pwenv` (created on
/// first use), and Debian's Chromium. Never `playwright install`: the
/// browser is the system's.
fn playwright() -> Result<std::path::PathBuf, String> {
    let chromium = std::path::Path::new(CHROMIUM);
    if !chromium.exists() {
        return Err(format!(
            "{CHROMIUM} is missing (apt-get install chromium fonts-dejavu-core)"
        ));
    }
    crate::python_tool("pwenv", "playwright", "bin/python", |p| {
        crate::imports(p, "playwright.sync_api")
    })
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// Python with Playwright for browser test `test`: required under CI=true,
/// else its absence skips the test, loudly.
fn browser(test: &str) -> Option<std::path::PathBuf> {
    crate::required(test, playwright())
}

/// Where test artifacts go: `$CARGO_TARGET_DIR/test-artifacts`, else the
/// workspace's `target/test-artifacts`.
fn artifacts_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("test-artifacts")
}

/// The browser side: drives the page and prints one JSON object. Written
/// to a temporary file and run with the virtualenv's Python.
const BROWSER_SCRIPT: &str = include_str!("../dashboard/browser.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_updates_live_and_by_polling_in_chromium() {
    let Some(python) = browser("the_dashboard_updates_live_and_by_polling_in_chromium") else {
        return;
    };
    let s = TestServer::start(&format!("{FAST}{GATED}")).await;
    load(&s, "demo").await;
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let script = s.dir.path().join("dashboard_browser.py");
    std::fs::write(&script, BROWSER_SCRIPT).unwrap();

    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(&python)
            .arg(&script)
            .arg(&s.url)
            .arg(ADMIN)
            .arg(CHROMIUM)
            .arg(&shot)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser script finishes within 3 minutes")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser script failed: {stderr}");
    let got: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));

    // (a) Loaded, live over SSE, the token taken out of the URL and kept.
    assert_eq!(got["title"], "Warden", "{got}");
    assert!(got["live_ms"].is_u64(), "never went live over SSE: {got}");
    assert_eq!(got["token_left_in_url"], false, "{got}");
    assert_eq!(got["token_stored"], true, "{got}");
    // (b) The new task showed within 2 s.
    assert!(
        got["appeared_ms"].is_u64(),
        "the new task never showed: {got}"
    );
    // (c) Every state change showed within 2 s, still over SSE.
    let steps = got["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5, "{got}");
    for st in steps {
        assert!(
            st["ms"].is_u64(),
            "{} did not show within 2 s: {got}",
            st["step"]
        );
    }
    assert_eq!(got["transport_after_steps"], "sse", "{got}");
    // (d) Stream blocked: polling took over and showed the next task within
    // one 5 s period (and a margin), and the stream was retried.
    assert!(
        got["polling_ms"].is_u64(),
        "never fell back to polling: {got}"
    );
    let polled = got["polled_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(polled <= 7_000, "polling did not show the task: {got}");
    assert_eq!(got["transport_blocked"], "polling", "{got}");
    assert!(
        got["stream_attempts_blocked"].as_u64().unwrap() >= 1,
        "{got}"
    );
    // (e) The loaded workspace fills every panel.
    let demo = &got["demo"];
    assert_eq!(demo["chart_js"], true, "{got}");
    assert_eq!(demo["workspace"], "demo");
    assert_eq!(demo["empty"], json!([]), "panels left empty: {got}");
    assert_eq!(demo["charts"], 5, "{got}");
    assert!(
        demo["bottleneck"].as_str().unwrap().contains("plan"),
        "{got}"
    );
    assert_eq!(demo["gate_rate"], "75%", "{got}");
    assert_eq!(demo["recent"], 6, "{got}");
    for list in ["alerts", "loops", "runs", "errors", "breakers"] {
        assert!(demo[list].as_u64().unwrap() >= 1, "{list}: {got}");
    }
    // No console errors on any page.
    assert_eq!(got["console_errors"], json!([]), "{got}");
    // The screenshot is a real PNG of some size.
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 40_000,
        "suspiciously small: {} bytes",
        png.len()
    );
    eprintln!("dashboard screenshot: {}", shot.display());
}

/// Opens the dashboard of a workspace under load, waits for it to be live
/// and filled, takes a 1280x800 screenshot and prints what it showed.
const DEMO_SCRIPT: &str = r#"
import json, sys
from playwright.sync_api import sync_playwright
base, token, chromium, shot, ws = sys.argv[1:6]
errors = []
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/#token=" + token + "&ws=" + ws)
    page.wait_for_function("() => document.getElementById('transport').dataset.transport === 'sse'", timeout=10000)
    page.wait_for_function("() => document.querySelectorAll('#recent tr').length >= 5", timeout=15000)
    page.wait_for_timeout(1500)
    seen = page.evaluate("""() => ({
        charts: [...document.querySelectorAll('.chart')].filter(c => !c.hidden).length,
        empty: [...document.querySelectorAll('.empty')].filter(e => !e.hidden).map(e => e.closest('article').id),
        recent: document.querySelectorAll('#recent tr').length,
        width: document.documentElement.scrollWidth,
    })""")
    page.screenshot(path=shot)
    browser.close()
seen["console_errors"] = errors
print(json.dumps(seen))
"#;

/// Acceptance 6 of the observability issue: the dashboard under the load
/// of `warden demo` (its stand-in providers, one flaky; its gates; its
/// workers and playbook runs), screenshotted at 1280x800 as a test
/// artifact, fits the width and has its charts drawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screenshot_of_the_dashboard_under_the_demo_load() {
    let Some(python) = browser("a_screenshot_of_the_dashboard_under_the_demo_load") else {
        return;
    };
    let steady = warden_server::demo::stand_in_provider(false).await.unwrap();
    let flaky = warden_server::demo::stand_in_provider(true).await.unwrap();
    let s = TestServer::start(&format!(
        "{FAST}{}",
        warden_server::demo::load_config(steady, flaky)
    ))
    .await;
    let load = warden_server::demo::drive(
        &s.url,
        ADMIN,
        warden_server::demo::Options {
            workspaces: vec!["default".into()],
            workers: 3,
            new_task_every: Duration::from_millis(300),
            work_ms: (50, 400),
            playbook_every: Duration::from_secs(3),
            ..Default::default()
        },
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("dashboard-demo.png");
    let _ = std::fs::remove_file(&shot);
    let script = s.dir.path().join("dashboard_demo.py");
    std::fs::write(&script, DEMO_SCRIPT).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&python)
            .arg(&script)
            .arg(&s.url)
            .arg(ADMIN)
            .arg(CHROMIUM)
            .arg(&shot)
            .arg("default")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser script finishes within 2 minutes")
    .unwrap();
    let counts = &load.counts;
    let (created, completed, calls, runs) = (
        counts.created.load(std::sync::atomic::Ordering::Relaxed),
        counts.completed.load(std::sync::atomic::Ordering::Relaxed),
        counts
            .model_calls
            .load(std::sync::atomic::Ordering::Relaxed),
        counts
            .playbook_runs
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    load.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser script failed: {stderr}");
    let got: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    // The demo really ran: tasks, stages, model calls, playbook runs.
    assert!(
        created >= 10 && completed >= 10,
        "{created} created, {completed} completed"
    );
    assert!(calls >= 10, "{calls} model calls");
    assert!(runs >= 1, "{runs} playbook runs");
    // Readable at 1280x800: nothing wider than the window, charts drawn,
    // no console error.
    assert!(got["width"].as_u64().unwrap() <= 1280, "{got}");
    assert!(got["charts"].as_u64().unwrap() >= 4, "{got}");
    assert!(got["recent"].as_u64().unwrap() >= 5, "{got}");
    assert_eq!(got["console_errors"], json!([]), "{got}");
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 40_000,
        "suspiciously small: {} bytes",
        png.len()
    );
    eprintln!(
        "dashboard under the demo load: {} ({created} tasks, {completed} stages, {calls} model calls, {runs} playbook runs; empty panels: {})",
        shot.display(),
        got["empty"]
    );
}
