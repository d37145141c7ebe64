//! Resources a plugin can grow are bounded (issue 15): host-call arguments
//! are checked before anything of the host copies them, run events are
//! capped in bytes, diagnose and plan runs spend the step budget, a run's
//! view caps its actions, playbook runs leave instance slots to gates and
//! routing policies, and NUL characters a plugin hands the host never
//! reach the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_test_artifacts as artifacts;

use crate::{TestServer, install};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Samples a process's RSS every 20 ms and keeps the peak. A process that
/// grows past `ceiling_kib` over `baseline` is killed at once: the test
/// then fails, without taking the machine's memory with it.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: u32, baseline: u64, ceiling_kib: u64) -> RssWatch {
        let peak = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let now = rss_kib(pid);
                p.fetch_max(now, Ordering::Relaxed);
                if now.saturating_sub(baseline) > ceiling_kib {
                    eprintln!(
                        "RSS of {pid} reached {now} KiB (baseline {baseline} KiB): killing it"
                    );
                    let _ = std::process::Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssWatch {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bytes of a run's stored events (kind and JSON text), read from the
/// database the server uses.
async fn stored_event_bytes(database_url: &str, run_id: &str) -> (usize, Vec<(String, Value)>) {
    let store = warden_store::Store::connect(database_url).await.unwrap();
    let (mut bytes, mut after, mut events) = (0, 0, Vec::new());
    loop {
        let page = store.list_run_events(run_id, after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page {
            bytes += e.kind.len() + e.data.to_string().len();
            events.push((e.kind, e.data));
        }
    }
    store.close().await;
    (bytes, events)
}

/// Triggers a run and waits for its end (at most a minute, even when the
/// host is slow to record it); returns the run.
async fn run_to_end(server: &TestServer, ws: &str, plugin: &str, body: &Value) -> Value {
    let (status, run) = server
        .post(
            &format!("/v1/workspaces/{ws}/playbooks/{plugin}/runs?wait=true"),
            body,
        )
        .await;
    assert!(
        matches!(status, StatusCode::OK | StatusCode::ACCEPTED),
        "run of {plugin}: {status} {run}"
    );
    let id = run["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (status, run) = server.get(&format!("/v1/workspaces/{ws}/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        if run["finished_at"].is_string() || started.elapsed() > Duration::from_secs(60) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const ARGS_CONFIG: &str = r#"
[workspaces."*".plugins.hostile-args]
grants = ["tasks:read", "kv"]
limits = { deadline_ms = 3000, memory_mib = 128 }
[workspaces."*".plugins.healthy]
grants = ["health:read", "tasks:read", "kv"]
"#;

/// Regression: a playbook granted only `tasks:read`, looping `tasks.get`
/// with a 4 MiB id for its 20 s deadline, took the host from 133 MB to
/// 5.6 GB RSS and its database to 3 GB: every call's `tool_start` event
/// carried the whole id, its `tool_result` carried it again in "not found:
/// task <id>", and both went to an unbounded queue in front of the
/// database. Arguments are now checked first and events carry only a
/// prefix of a string, within a byte cap per run.
async fn arguments_are_bounded(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    install(&plugins, artifacts::HOSTILE_ARGS, "hostile-args.wasm");
    install(&plugins, artifacts::HEALTHY, "healthy.wasm");
    let sqlite = format!("sqlite://{}", dir.path().join("data/warden.db").display());
    let url = database_url.map_or(sqlite, str::to_string);
    let extra = match database_url {
        Some(url) => format!("database_url = \"{url}\"\n{ARGS_CONFIG}"),
        None => ARGS_CONFIG.to_string(),
    };
    let server = Arc::new(TestServer::spawn_binary(dir, &extra).await);
    server
        .wait_for_plugin("hostile-args", "1.0.0", Duration::from_secs(30))
        .await;
    server
        .wait_for_plugin("healthy", "1.0.0", Duration::from_secs(30))
        .await;
    let pid = server.pid().unwrap();
    // Warm up, so that the baseline holds what any run costs once.
    for _ in 0..3 {
        let run = server.run("neighbour", "healthy", &json!({})).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    let baseline = rss_kib(pid);
    let watch = RssWatch::start(pid, baseline, 1024 * 1024);

    // A healthy neighbour, run over and over meanwhile.
    let done = Arc::new(AtomicBool::new(false));
    let neighbour = {
        let (server, done) = (server.clone(), done.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            while !done.load(Ordering::Relaxed) {
                let run = server.run("neighbour", "healthy", &json!({})).await;
                assert_eq!(run["status"], "succeeded", "{run}");
                runs += 1;
            }
            runs
        })
    };

    let mut ids = Vec::new();
    for (call, bytes) in [
        ("tasks.get", 4 << 20),
        ("kv.get", 4 << 20),
        ("tasks.get", 48 << 20),
        ("kv.get", 48 << 20),
    ] {
        let run = run_to_end(
            &server,
            "hostile",
            "hostile-args",
            &json!({ "input": [call, bytes] }),
        )
        .await;
        eprintln!(
            "{call} with {bytes} bytes: {}, RSS peak so far {} KiB over {baseline} KiB",
            run["status"],
            watch.peak().saturating_sub(baseline)
        );
        assert_eq!(run["status"], "failed", "{call} {bytes}: {run}");
        assert_eq!(run["error"], "deadline of 3000 ms exceeded", "{run}");
        assert!(
            run["usage"]["host_calls"].as_u64().unwrap() > 10,
            "{call} {bytes}: {run}"
        );
        ids.push((call, bytes, run["id"].as_str().unwrap().to_string()));
    }
    done.store(true, Ordering::Relaxed);
    let runs = neighbour.await.unwrap();
    assert!(runs >= 3, "only {runs} neighbour runs");

    let peak = watch.peak();
    drop(watch);
    let after = rss_kib(pid);
    eprintln!("RSS (KiB): baseline {baseline}, peak {peak}, after {after}; {runs} neighbour runs");
    assert!(
        peak.saturating_sub(baseline) < 200 * 1024,
        "RSS peaked {} KiB over its baseline of {baseline} KiB",
        peak.saturating_sub(baseline)
    );
    assert!(
        after.saturating_sub(baseline) < 200 * 1024,
        "RSS grew by {} KiB",
        after.saturating_sub(baseline)
    );

    for (call, bytes, id) in ids {
        let (stored, events) = stored_event_bytes(&url, &id).await;
        eprintln!(
            "{call} with {bytes} bytes: {} events, {stored} bytes stored",
            events.len()
        );
        assert!(
            stored <= 4 << 20,
            "{call} {bytes}: {stored} bytes of events stored"
        );
        // The call is answered as invalid, quoting the size, not the bytes.
        let answer = events
            .iter()
            .find(|(kind, data)| kind == "tool_result" && data["name"] == call)
            .map(|(_, data)| data["summary"].as_str().unwrap().to_string())
            .unwrap();
        assert!(
            answer.starts_with("invalid: ") && answer.contains(&format!("{bytes} bytes")),
            "{answer}"
        );
        assert!(answer.len() < 300, "{answer}");
        // A run that reached a cap (20,000 events or 4 MiB; a dropped event
        // leaves it within one small event of 4 MiB) says so, once; a run
        // that the deadline ended first, as on a slow machine, does not.
        let reached = events.len() >= 20_000 || stored > (4 << 20) - (16 << 10);
        let said = events
            .iter()
            .filter(|(kind, data)| kind == "guardrails" && data["limit"] == "events")
            .count();
        assert_eq!(
            said,
            usize::from(reached),
            "{call} {bytes}: {} events, {stored} bytes, {said} guardrails events",
            events.len()
        );
    }
    let (status, _) = server
        .request(reqwest::Method::GET, "/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_host_call_arguments_leave_memory_and_events_bounded() {
    arguments_are_bounded(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_host_call_arguments_leave_memory_and_events_bounded_on_postgres() {
    let name = "oversized_host_call_arguments_leave_memory_and_events_bounded_on_postgres";
    let Some(pg) = crate::PgSchema::create(name).await else {
        return;
    };
    arguments_are_bounded(Some(&pg.url)).await;
    pg.drop().await;
}

const STEPS_CONFIG: &str = r#"
[workspaces."*".plugins.hostile-steps]
grants = ["tasks:read", "tasks:write"]
limits = { deadline_ms = 2000 }
[workspaces.many.plugins.hostile-steps]
limits = { steps = 300 }
"#;

/// Every action row of a run, read page by page from `GET …/actions`.
async fn all_actions(server: &TestServer, ws: &str, id: &str) -> Vec<Value> {
    let (mut all, mut after) = (Vec::new(), 0);
    loop {
        let (status, body) = server
            .get(&format!(
                "/v1/workspaces/{ws}/runs/{id}/actions?after={after}&limit=1000"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = body["actions"].as_array().unwrap().clone();
        all.extend(page);
        match body["next_after"].as_i64() {
            Some(next) => after = next,
            None => return all,
        }
    }
}

/// Regression: a mutation in `diagnose` mode was recorded as denied before
/// the step budget was checked, and no mode checked its arguments, so a
/// diagnose run looping `tasks.requeue` wrote an action row per call (tens
/// of thousands, each with whatever reason the plugin gave) until its
/// deadline, and `GET …/runs/{id}` loaded them all. Denied and planned
/// calls now spend the budget and end the run on overrun as applied ones
/// do, a reason over 1 KiB is refused before anything is recorded, and
/// the run view shows at most 100 actions.
async fn modes_spend_the_budget(server: &TestServer) {
    let (status, task) = server
        .post(
            "/v1/workspaces/default/tasks",
            &json!({ "title": "victim" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let (status, task) = server
        .post("/v1/workspaces/many/tasks", &json!({ "title": "victim" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");

    // Short reasons: ten steps, one call answered "step budget spent",
    // then the run ends, in every mode.
    for (mode, recorded) in [("diagnose", "denied"), ("plan", "planned")] {
        let run = run_to_end(server, "default", "hostile-steps", &json!({ "mode": mode })).await;
        assert_eq!(run["status"], "failed", "{mode}: {}", run["error"]);
        assert_eq!(
            run["error"], "step budget 10 spent",
            "{mode}: {}",
            run["usage"]
        );
        assert_eq!(run["usage"]["steps"], 10, "{mode}: {}", run["usage"]);
        let id = run["id"].as_str().unwrap();
        let actions = all_actions(server, "default", id).await;
        let statuses: Vec<&str> = actions
            .iter()
            .map(|a| a["status"].as_str().unwrap())
            .collect();
        let mut expected = vec![recorded; 10];
        expected.push("over_budget");
        assert_eq!(statuses, expected, "{mode}");
        assert!(run["actions"]["applied"].as_array().unwrap().is_empty());
    }
    // The task was never touched.
    let (_, tasks) = server.get("/v1/workspaces/default/tasks").await;
    assert_eq!(tasks["tasks"][0]["state"], "queued", "{tasks}");
    assert_eq!(tasks["tasks"][0]["attempts"], 0, "{tasks}");

    // A 64 KiB reason is refused as invalid before anything is recorded,
    // in every mode; the run spins until its deadline, recording nothing.
    for mode in ["diagnose", "plan", "apply"] {
        let run = run_to_end(
            server,
            "default",
            "hostile-steps",
            &json!({ "mode": mode, "input": 65536 }),
        )
        .await;
        assert_eq!(run["status"], "failed", "{mode}: {}", run["error"]);
        assert_eq!(
            run["error"], "deadline of 2000 ms exceeded",
            "{mode}: {}",
            run["usage"]
        );
        let id = run["id"].as_str().unwrap();
        let actions = all_actions(server, "default", id).await;
        assert!(actions.is_empty(), "{mode}: {} actions", actions.len());
    }

    // A larger budget: 300 planned actions and one over budget. The run
    // view carries the first 100 and says how many there are; the actions
    // endpoint pages through them all.
    let run = run_to_end(server, "many", "hostile-steps", &json!({ "mode": "plan" })).await;
    assert_eq!(run["error"], "step budget 300 spent", "{}", run["usage"]);
    let id = run["id"].as_str().unwrap();
    let (status, view) = server.get(&format!("/v1/workspaces/many/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["actions"]["total"], 301, "{}", view["actions"]);
    assert_eq!(view["actions"]["truncated"], true);
    let shown = view["actions"]["planned"].as_array().unwrap().len()
        + view["actions"]["refused"].as_array().unwrap().len();
    assert_eq!(shown, 100);
    let (_, page) = server
        .get(&format!(
            "/v1/workspaces/many/runs/{id}/actions?after=100&limit=50"
        ))
        .await;
    let seqs: Vec<i64> = page["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (101..=150).collect::<Vec<_>>());
    assert_eq!(page["next_after"], 150);
    let all = all_actions(server, "many", id).await;
    assert_eq!(all.len(), 301);
    assert_eq!(all[300]["status"], "over_budget");
    let (status, bad) = server
        .get(&format!("/v1/workspaces/many/runs/{id}/actions?limit=0"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["error"]["code"], "INVALID_ARGUMENT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_and_plan_runs_spend_the_step_budget() {
    let server = TestServer::start(STEPS_CONFIG).await;
    install(
        &server.plugin_dir(),
        artifacts::HOSTILE_STEPS,
        "hostile-steps.wasm",
    );
    server
        .wait_for_plugin("hostile-steps", "1.0.0", Duration::from_secs(30))
        .await;
    modes_spend_the_budget(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_and_plan_runs_spend_the_step_budget_on_postgres() {
    let name = "diagnose_and_plan_runs_spend_the_step_budget_on_postgres";
    let Some(pg) = crate::PgSchema::create(name).await else {
        return;
    };
    let server = TestServer::start(&format!("database_url = \"{}\"\n{STEPS_CONFIG}", pg.url)).await;
    install(
        &server.plugin_dir(),
        artifacts::HOSTILE_STEPS,
        "hostile-steps.wasm",
    );
    server
        .wait_for_plugin("hostile-steps", "1.0.0", Duration::from_secs(30))
        .await;
    modes_spend_the_budget(&server).await;
    server.stop().await;
    pg.drop().await;
}

/// Regression: playbook runs could take every plugin instance slot (the
/// runs' own limit was the number of slots), so a workspace that started
/// 40 slow runs made every gate evaluation elsewhere wait for a slot until
/// its deadline and fail as busy. Runs now leave a reserved share of the
/// slots to gates and routing policies, and run at most
/// `max_runs_per_workspace` at once per workspace (the rest wait queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_runs_in_one_workspace_leave_slots_for_a_gate_in_another() {
    let server = TestServer::start(
        r#"
[workspaces.other.gates.implement]
gates = ["gate-echo"]
[workspaces.other.plugins.gate-echo]
grants = ["kv"]
limits = { deadline_ms = 1000 }
"#,
    )
    .await;
    install(
        &server.plugin_dir(),
        artifacts::HOSTILE_HOG,
        "hostile-hog.wasm",
    );
    install(&server.plugin_dir(), artifacts::GATE_ECHO, "gate-echo.wasm");
    for name in ["hostile-hog", "gate-echo"] {
        server
            .wait_for_plugin(name, "1.0.0", Duration::from_secs(30))
            .await;
    }
    let mut ids = Vec::new();
    for _ in 0..40 {
        let (status, run) = server
            .post(
                "/v1/workspaces/busy/playbooks/hostile-hog/runs",
                &json!({ "input": 3000 }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{run}");
        ids.push(run["id"].as_str().unwrap().to_string());
    }
    // Let the runs take what they may.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (status, task) = server
        .post(
            "/v1/workspaces/other/tasks",
            &json!({ "title": "gated", "pipeline": ["implement", "review"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap();
    let (status, claim) = server
        .post(
            "/v1/workspaces/other/tasks/claim",
            &json!({ "worker_id": "w1", "wait_ms": 2000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{claim}");
    let claim = &claim["claims"][0];
    let (status, done) = server
        .post(
            &format!("/v1/workspaces/other/tasks/{id}/complete"),
            &json!({ "token": claim["token"], "output": {}, "result": { "text": "ok" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (_, verdicts) = server
        .get(&format!("/v1/workspaces/other/tasks/{id}/verdicts"))
        .await;
    let verdict = &verdicts["decisions"][0]["verdicts"][0];
    assert_eq!(verdict["gate"], "gate-echo", "{verdicts}");
    assert!(verdict["error"].is_null(), "{verdict}");
    assert_eq!(verdict["decision"], "approve", "{verdict}");
    assert_eq!(done["task"]["stage"], "review", "{done}");
    let (_, running) = server
        .get("/v1/workspaces/busy/runs?status=running&limit=500")
        .await;
    let running = running["runs"].as_array().unwrap().len();
    assert!(
        (1..=8).contains(&running),
        "{running} runs of one workspace running at once"
    );

    // Every run still gets its turn.
    let started = Instant::now();
    for id in &ids {
        loop {
            let (_, run) = server.get(&format!("/v1/workspaces/busy/runs/{id}")).await;
            if run["status"] == "succeeded" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "run {id} is still {}",
                run["status"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    server.stop().await;
}

const NUL_CONFIG: &str = r#"
[workspaces.n.gates.implement]
gates = ["gate-nul"]
[workspaces."*".plugins.hostile-nul]
grants = ["tasks:read", "tasks:write"]
[workspaces."*".plugins.router-nul]
config = { candidates = "primary:model-a" }

[gateway]
policy = "router-nul"
timeout_ms = 2000
"#;

/// Regression: strings a plugin returns or passes went to the database as
/// they were, and PostgreSQL stores no NUL character in `text`: a gate
/// reason or a routing-policy reason with a NUL failed the transition or
/// the booking of the model call, a playbook's error with a NUL left its
/// run `running` for good (its end could not be written), and a reason or
/// title with a NUL made `tasks.block` and `tasks.create` answer
/// "unavailable". The runtime now strips NUL from every string it lifts
/// from a plugin.
async fn nul_is_stripped(server: &TestServer, upstream: &warden_test_upstream::Upstream) {
    // A quality gate's verdict.
    let (status, task) = server
        .post(
            "/v1/workspaces/n/tasks",
            &json!({ "title": "gated", "pipeline": ["implement", "review"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap();
    let (status, claim) = server
        .post(
            "/v1/workspaces/n/tasks/claim",
            &json!({ "worker_id": "w1", "wait_ms": 2000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{claim}");
    let (status, done) = server
        .post(
            &format!("/v1/workspaces/n/tasks/{id}/complete"),
            &json!({ "token": claim["claims"][0]["token"], "output": {}, "result": { "text": "ok" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["task"]["stage"], "review", "{done}");
    let (_, verdicts) = server
        .get(&format!("/v1/workspaces/n/tasks/{id}/verdicts"))
        .await;
    let verdict = &verdicts["decisions"][0]["verdicts"][0];
    assert_eq!(verdict["decision"], "approve", "{verdicts}");
    assert_eq!(
        verdict["reasons"],
        json!([
            { "category": "nulcategory", "message": "nulin a message" },
            { "category": "plain", "message": "no nul here" }
        ])
    );

    // A routing policy's decision: its names match the provider, its
    // reason is booked with the call.
    let (status, token) = server
        .post(
            "/v1/workspaces/n/tokens",
            &json!({ "name": "nul-agent", "role": "agent" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let key = token["token"].as_str().unwrap();
    let (status, answer) = server
        .request(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(key),
            Some(&json!({ "model": "auto", "messages": [{ "role": "user", "content": "hi" }] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(upstream.handle().request_count(), 1);
    let started = Instant::now();
    let call = loop {
        let (_, calls) = server.get("/v1/workspaces/n/gateway/calls").await;
        if let Some(c) = calls["calls"].as_array().and_then(|c| c.first()) {
            break c.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the model call was never booked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(call["status"], "ok", "{call}");
    assert_eq!(call["provider"], "primary", "{call}");
    assert_eq!(call["policy"]["reason"], "nulin a reason", "{call}");

    // A playbook's report, log, mutations and error.
    let (_, victim) = server
        .post("/v1/workspaces/p/tasks", &json!({ "title": "victim" }))
        .await;
    let run = run_to_end(server, "p", "hostile-nul", &json!({ "mode": "apply" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["report"]["summary"], "nulin a summary", "{run}");
    assert_eq!(run["report"]["findings"][0]["summary"], "Ok(())", "{run}");
    assert_eq!(run["report"]["findings"][1]["code"], "nulcode", "{run}");
    assert_eq!(run["report"]["findings"][1]["evidence"], "nulevidence");
    assert_eq!(run["report"]["manual_actions"], json!(["nulmanual"]));
    let (_, blocked) = server
        .get(&format!(
            "/v1/workspaces/p/tasks/{}",
            victim["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(blocked["state"], "blocked", "{blocked}");
    assert_eq!(blocked["last_error"], "nulin a reason", "{blocked}");
    let (_, tasks) = server.get("/v1/workspaces/p/tasks").await;
    let created = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"] == "nulin a title")
        .unwrap_or_else(|| panic!("no created task: {tasks}"));
    assert_eq!(created["body"], "nulin a body", "{created}");
    let run = run_to_end(
        server,
        "p",
        "hostile-nul",
        &json!({ "mode": "apply", "input": "error" }),
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"], "plugin returned an error: nulin an error");
}

fn nul_config(upstream: &warden_test_upstream::Upstream) -> String {
    format!(
        "{NUL_CONFIG}\n[[gateway.providers]]\nname = \"primary\"\nbase_url = \"{}\"\n\
         api_key_env = \"WARDEN_TEST_PRIMARY_KEY\"\nmodels = [\"model-a\"]\n\
         price_input_per_1k = 0.001\nprice_output_per_1k = 0.002\n",
        upstream.base_url()
    )
}

async fn nul_server(extra: &str) -> TestServer {
    let server = TestServer::start(extra).await;
    for (name, path) in [
        ("gate-nul", artifacts::GATE_NUL),
        ("router-nul", artifacts::ROUTER_NUL),
        ("hostile-nul", artifacts::HOSTILE_NUL),
    ] {
        install(&server.plugin_dir(), path, &format!("{name}.wasm"));
        server
            .wait_for_plugin(name, "1.0.0", Duration::from_secs(30))
            .await;
    }
    server
}

async fn primary() -> warden_test_upstream::Upstream {
    warden_test_upstream::Upstream::start(warden_test_upstream::Options {
        name: "primary".to_string(),
        models: vec!["model-a".to_string()],
        api_key: Some("primary-key".to_string()),
        ..warden_test_upstream::Options::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_from_plugins_never_reach_the_database() {
    let upstream = primary().await;
    let server = nul_server(&nul_config(&upstream)).await;
    nul_is_stripped(&server, &upstream).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_from_plugins_never_reach_the_database_on_postgres() {
    let name = "nul_characters_from_plugins_never_reach_the_database_on_postgres";
    let Some(pg) = crate::PgSchema::create(name).await else {
        return;
    };
    let upstream = primary().await;
    let server = nul_server(&format!(
        "database_url = \"{}\"\n{}",
        pg.url,
        nul_config(&upstream)
    ))
    .await;
    nul_is_stripped(&server, &upstream).await;
    server.stop().await;
    pg.drop().await;
}
