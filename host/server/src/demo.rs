//! `warden demo`: a realistic load, so that the dashboard (SPEC OB-2) has
//! something to show. It starts two stand-in model providers on loopback
//! (`steady`, and `flaky`, which goes down for a while every other minute
//! so that its breaker opens, the gateway fails over and a probe closes it
//! again), a server on its own data directory with quality gates bound to
//! `implement` and `verify`, and then drives it over HTTP like a fleet:
//! tasks created at a steady pace, workers that claim stages, report
//! events, call models through the gateway, submit results the gates judge
//! (some too large, some leaking a secret, some with failing tests) and
//! sometimes fail; and a playbook run now and then.
//!
//! [`drive`] is the load alone, against any server; the browser test uses
//! it for the dashboard's screenshot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::Rng as _;
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// What the load does.
#[derive(Clone, Debug)]
pub struct Options {
    /// Workspaces the load spreads over.
    pub workspaces: Vec<String>,
    /// Concurrent workers per workspace.
    pub workers: usize,
    /// A new task in each workspace this often.
    pub new_task_every: Duration,
    /// Simulated work per stage: between these many milliseconds.
    pub work_ms: (u64, u64),
    /// Share of stages that fail.
    pub failure_rate: f64,
    /// A playbook run in each workspace this often.
    pub playbook_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workspaces: vec!["default".into(), "payments".into()],
            workers: 3,
            new_task_every: Duration::from_millis(1500),
            work_ms: (300, 2500),
            failure_rate: 0.12,
            playbook_every: Duration::from_secs(30),
        }
    }
}

/// Counts of what the load did.
#[derive(Debug, Default)]
pub struct Counts {
    /// Tasks created.
    pub created: AtomicU64,
    /// Stages completed (gates may have sent some back).
    pub completed: AtomicU64,
    /// Stages failed on purpose.
    pub failed: AtomicU64,
    /// Model calls answered through the gateway.
    pub model_calls: AtomicU64,
    /// Model calls the gateway refused or could not serve.
    pub model_errors: AtomicU64,
    /// Playbook runs started.
    pub playbook_runs: AtomicU64,
    /// Requests the server refused for another reason (logged).
    pub errors: AtomicU64,
}

/// The running load; dropping it stops it.
pub struct Load {
    /// What it did so far.
    pub counts: Arc<Counts>,
    tasks: JoinSet<()>,
}

impl Load {
    /// Stops every worker at once (a stage in hand is left to its lease).
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

/// A small JSON client of the server.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let value = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

/// Starts the load against the server at `url` with an admin `token`
/// (or a token that may create tasks, claim, run playbooks and call the
/// gateway in every workspace of `options`).
pub fn drive(url: &str, token: &str, options: Options) -> Load {
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(70))
            .build()
            .unwrap_or_default(),
        url: url.trim_end_matches('/').to_string(),
        token: token.to_string(),
    };
    let counts = Arc::new(Counts::default());
    let mut tasks = JoinSet::new();
    for ws in &options.workspaces {
        tasks.spawn(creator(
            api.clone(),
            ws.clone(),
            options.clone(),
            counts.clone(),
        ));
        tasks.spawn(playbooks(
            api.clone(),
            ws.clone(),
            options.clone(),
            counts.clone(),
        ));
        for i in 0..options.workers {
            tasks.spawn(worker(
                api.clone(),
                ws.clone(),
                format!("demo-{ws}-{}", i + 1),
                options.clone(),
                counts.clone(),
            ));
        }
    }
    Load { counts, tasks }
}

const TITLES: [&str; 12] = [
    "Fix flaky login test",
    "Add retry to payment webhook",
    "Upgrade tokio to 1.48",
    "Paginate the orders API",
    "Remove dead feature flags",
    "Speed up CI cache",
    "Migrate sessions to Redis",
    "Add rate limit to search",
    "Refactor invoice renderer",
    "Document the deploy runbook",
    "Fix N+1 query in admin",
    "Rotate expiring TLS certs",
];

const ERRORS: [&str; 4] = [
    "cargo test: 3 tests failed in module parser",
    "timeout waiting for the build agent after 600 s",
    "merge conflict in src/routes.rs",
    "lint: unused import `std::fmt::Write`",
];

async fn creator(api: Api, ws: String, options: Options, counts: Arc<Counts>) {
    let mut n: u64 = 0;
    loop {
        n += 1;
        let (title, priority, pipeline) = {
            let mut rng = rand::rng();
            let title = TITLES[rng.random_range(0..TITLES.len())];
            let priority = match rng.random_range(0..10) {
                0 => "urgent",
                1..=2 => "low",
                _ => "normal",
            };
            // Most tasks take the short road; some the full pipeline.
            let pipeline: Option<Vec<&str>> = if rng.random_bool(0.7) {
                Some(vec!["plan", "implement", "verify", "review"])
            } else {
                None
            };
            (title, priority, pipeline)
        };
        let mut body = json!({ "title": format!("{title} #{n}"), "priority": priority });
        if let Some(p) = pipeline {
            body["pipeline"] = json!(p);
        }
        match api.post(&format!("/v1/workspaces/{ws}/tasks"), &body).await {
            Ok((201, _)) => {
                counts.created.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, v)) => note_error(&counts, "create", status, &v),
            Err(e) => tracing::debug!(error = %e, "demo: create failed"),
        }
        tokio::time::sleep(options.new_task_every).await;
    }
}

async fn playbooks(api: Api, ws: String, options: Options, counts: Arc<Counts>) {
    let mut round = 0u64;
    loop {
        tokio::time::sleep(options.playbook_every).await;
        round += 1;
        let (name, mode) = if round % 2 == 1 {
            ("diagnose-system", "diagnose")
        } else {
            ("repair-common-issues", "plan")
        };
        match api
            .post(
                &format!("/v1/workspaces/{ws}/playbooks/{name}/runs"),
                &json!({ "mode": mode }),
            )
            .await
        {
            Ok((200..=202, _)) => {
                counts.playbook_runs.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, v)) => note_error(&counts, "playbook", status, &v),
            Err(e) => tracing::debug!(error = %e, "demo: playbook run failed"),
        }
    }
}

fn note_error(counts: &Counts, what: &str, status: u16, body: &Value) {
    counts.errors.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(what, status, error = %body["error"]["message"], "demo: request refused");
}

/// What a worker does with one claimed stage.
struct Plan {
    work: Duration,
    fail: Option<&'static str>,
    result: Option<Value>,
    tokens: (u64, u64),
}

fn plan_stage(stage: &str, options: &Options) -> Plan {
    let mut rng = rand::rng();
    let (lo, hi) = options.work_ms;
    let work = Duration::from_millis(rng.random_range(lo..=hi.max(lo)));
    let fail = rng
        .random_bool(options.failure_rate.clamp(0.0, 1.0))
        .then(|| ERRORS[rng.random_range(0..ERRORS.len())]);
    let result = match stage {
        "implement" => {
            let roll = rng.random_range(0..100);
            let (files, lines) = if roll < 12 { (55, 2400) } else { (3, 120) };
            let mut diff = String::from(
                "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,1 +1,2 @@\n fn main() {}\n+// change\n",
            );
            if (12..18).contains(&roll) {
                // A leaked key the secret scan catches.
                diff.push_str(
                    "diff --git a/.env b/.env\n--- a/.env\n+++ b/.env\n@@ -0,0 +1,1 @@\n+AWS_KEY=AKIAQ7J2M4N6P8R0T2V4\n",
                );
            }
            Some(json!({
                "diff": diff,
                "diff_stats": { "files_changed": files, "insertions": lines, "deletions": lines / 10 },
            }))
        }
        "verify" => {
            let failed = if rng.random_bool(0.15) { 2 } else { 0 };
            let failures: Vec<&str> = if failed > 0 {
                vec!["api::login_rejects_bad_password", "cart::total_rounds"]
            } else {
                vec![]
            };
            Some(json!({
                "tests": { "passed": 180 + rng.random_range(0..40), "failed": failed, "skipped": 2, "failures": failures },
            }))
        }
        _ => None,
    };
    let tokens = (rng.random_range(400..6000), rng.random_range(100..1500));
    Plan {
        work,
        fail,
        result,
        tokens,
    }
}

async fn worker(api: Api, ws: String, id: String, options: Options, counts: Arc<Counts>) {
    let base = format!("/v1/workspaces/{ws}/tasks");
    loop {
        let claimed = api
            .post(
                &format!("{base}/claim"),
                &json!({ "worker_id": id, "max": 1, "wait_ms": 5000, "lease_ms": 30000 }),
            )
            .await;
        let claims = match claimed {
            Ok((200, v)) => v["claims"].as_array().cloned().unwrap_or_default(),
            Ok((status, v)) => {
                note_error(&counts, "claim", status, &v);
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if claims.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for c in claims {
            let (Some(task), Some(stage), Some(token)) = (
                c["task_id"].as_str(),
                c["stage"].as_str(),
                c["token"].as_i64(),
            ) else {
                continue;
            };
            work_on(&api, &base, &ws, task, stage, token, &options, &counts).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn work_on(
    api: &Api,
    base: &str,
    ws: &str,
    task: &str,
    stage: &str,
    token: i64,
    options: &Options,
    counts: &Counts,
) {
    let plan = plan_stage(stage, options);
    let events = format!("{base}/{task}/events");
    let tool = match stage {
        "implement" => "edit_file",
        "verify" => "run_tests",
        "review" => "read_diff",
        _ => "search_code",
    };
    let _ = api
        .post(
            &events,
            &json!({ "type": "status", "data": { "message": format!("working on {stage}") } }),
        )
        .await;
    let _ = api
        .post(
            &events,
            &json!({ "type": "tool_start", "data": { "name": tool } }),
        )
        .await;
    model_call(api, ws, task, stage, counts).await;
    tokio::time::sleep(plan.work).await;
    let _ = api
        .post(
            &events,
            &json!({ "type": "tool_result", "data": { "name": tool, "ok": plan.fail.is_none() } }),
        )
        .await;
    let _ = api
        .post(
            &events,
            &json!({ "type": "token", "data": { "input_tokens": plan.tokens.0, "output_tokens": plan.tokens.1,
                "cost_usd": (plan.tokens.0 as f64 * 0.003 + plan.tokens.1 as f64 * 0.015) / 1000.0 } }),
        )
        .await;
    let ended = match plan.fail {
        Some(error) => api
            .post(
                &format!("{base}/{task}/fail"),
                &json!({ "token": token, "error": error }),
            )
            .await
            .map(|r| (r, &counts.failed)),
        None => {
            let mut body =
                json!({ "token": token, "output": { "summary": format!("{stage} done") } });
            if let Some(r) = plan.result {
                body["result"] = r;
            }
            api.post(&format!("{base}/{task}/complete"), &body)
                .await
                .map(|r| (r, &counts.completed))
        }
    };
    match ended {
        Ok(((200, _), counter)) => {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(((status, v), _)) => note_error(counts, "complete", status, &v),
        Err(e) => tracing::debug!(error = %e, "demo: completion failed"),
    }
}

async fn model_call(api: &Api, ws: &str, task: &str, stage: &str, counts: &Counts) {
    let body = json!({
        "model": "auto",
        "messages": [ { "role": "user", "content": format!("Work on stage {stage} of task {task}.") } ],
        "max_tokens": 256,
    });
    let resp = api
        .http
        .post(format!("{}/v1/chat/completions", api.url))
        .bearer_auth(&api.token)
        .header("x-warden-workspace", ws)
        .header("x-warden-task", task)
        .header("x-warden-stage", stage)
        .json(&body)
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => {
            counts.model_calls.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            counts.model_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A stand-in OpenAI-compatible provider on loopback. `flaky` ones answer
/// 503 for 40 s of every 80 s (and 5 % of requests otherwise).
pub async fn stand_in_provider(flaky: bool) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind a port for the stand-in provider")?;
    let addr = listener.local_addr()?;
    let started = Instant::now();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::Json<Value>| async move {
            let down = flaky
                && ((started.elapsed().as_secs() / 40) % 2 == 1 || rand::rng().random_bool(0.05));
            if down {
                return (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({ "error": { "message": "stand-in provider is down" } })),
                );
            }
            // (The thread's generator must not live across an await.)
            let (delay, completion, id) = {
                let mut rng = rand::rng();
                (
                    rng.random_range(20..120),
                    rng.random_range(40..240u64),
                    rng.random::<u32>(),
                )
            };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let prompt = body.0["messages"].to_string().len() as u64 / 4;
            (
                axum::http::StatusCode::OK,
                axum::Json(json!({
                    "id": format!("chatcmpl-demo-{id}"),
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.0["model"],
                    "choices": [ { "index": 0, "finish_reason": "stop",
                        "message": { "role": "assistant", "content": "Done: the change is ready for review." } } ],
                    "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion },
                })),
            )
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// The demo's warden.toml: where it listens and keeps its state, then
/// [`load_config`].
pub fn config_text(
    data_dir: &Path,
    listen: SocketAddr,
    steady: SocketAddr,
    flaky: SocketAddr,
) -> String {
    let dir = data_dir
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        "# Written by `warden demo`; rewritten on each start.\nlisten = \"{listen}\"\ndata_dir = \"{dir}\"\nplugin_dir = \"{dir}/plugins\"\n{}",
        load_config(steady, flaky)
    )
}

/// The part of warden.toml the load needs: the stand-in providers (the
/// cheaper one, which the router prefers, is the flaky one) and the gate
/// bindings its results are judged by.
pub fn load_config(steady: SocketAddr, flaky: SocketAddr) -> String {
    format!(
        r#"
[gateway]
breaker_failures = 3
breaker_backoff_ms = [15000, 30000]

[[gateway.providers]]
name = "flaky"
base_url = "http://{flaky}/v1"
models = ["demo-fast"]
price_input_per_1k = 0.0001
price_output_per_1k = 0.0004
max_context = 128000

[[gateway.providers]]
name = "steady"
base_url = "http://{steady}/v1"
models = ["demo-large"]
price_input_per_1k = 0.003
price_output_per_1k = 0.015
max_context = 200000

[workspaces."*".gates.implement]
gates = ["diff-size", "secret-scan"]
quorum = "all"
reject_to = "implement"

[workspaces."*".gates.verify]
gates = ["tests-pass"]
reject_to = "implement"
"#
    )
}

/// `warden demo`: stand-ins, a server on `data_dir`, the load; until
/// Ctrl-C.
pub async fn run(listen: SocketAddr, data_dir: PathBuf, options: Options) -> anyhow::Result<()> {
    let steady = stand_in_provider(false).await?;
    let flaky = stand_in_provider(true).await?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let config_path = data_dir.join("warden.toml");
    std::fs::write(&config_path, config_text(&data_dir, listen, steady, flaky))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = crate::Config::load(Some(&config_path))?;
    let server = crate::start(config).await?;
    let token = std::fs::read_to_string(data_dir.join("admin.token"))
        .context("cannot read the admin token the server wrote")?
        .trim()
        .to_string();
    let url = format!("http://{}", server.addr);
    println!("Warden demo on {url}");
    println!("  dashboard: {url}/#token={token}");
    println!("  data:      {}", data_dir.display());
    println!(
        "  load:      {} workspace(s) x {} workers, a task every {:?}, a playbook every {:?}; provider \"flaky\" fails 40 s of every 80 s",
        options.workspaces.len(),
        options.workers,
        options.new_task_every,
        options.playbook_every
    );
    println!("Ctrl-C stops it.");
    let load = drive(&url, &token, options);
    let counts = load.counts.clone();
    let report = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            println!(
                "tasks created {}, stages completed {}, failed {}, model calls {} (errors {}), playbook runs {}",
                counts.created.load(Ordering::Relaxed),
                counts.completed.load(Ordering::Relaxed),
                counts.failed.load(Ordering::Relaxed),
                counts.model_calls.load(Ordering::Relaxed),
                counts.model_errors.load(Ordering::Relaxed),
                counts.playbook_runs.load(Ordering::Relaxed),
            );
        }
    });
    server.run_until_signal().await;
    report.abort();
    load.stop();
    Ok(())
}
