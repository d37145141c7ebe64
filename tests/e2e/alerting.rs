//! Alert notifications on a real server (SPEC AL-2, AL-3, AL-4, PB-5):
//! local stand-ins for Slack, PagerDuty and a webhook receive what the
//! documented schemas say; a sink that is down loses nothing and gets
//! nothing twice; silences, acknowledgements and repeats; an auto-heal
//! binding with its cooldown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use warden_server::alerts::Severity;

use crate::TestServer;

/// A stand-in for Slack, PagerDuty and webhooks: records every JSON body
/// by path, answers 200 (or `status` when set).
#[derive(Clone, Default)]
struct Received {
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
    status: Arc<Mutex<Option<u16>>>,
}

impl Received {
    fn on(&self, path: &str) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    async fn wait(&self, path: &str, n: usize, timeout: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let got = self.on(path);
            if got.len() >= n || started.elapsed() > timeout {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn record(
    State(r): State<Received>,
    uri: axum::http::Uri,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    if let Some(s) = *r.status.lock().unwrap() {
        return (
            StatusCode::from_u16(s).unwrap(),
            axum::Json(json!({ "error": "down" })),
        );
    }
    r.bodies
        .lock()
        .unwrap()
        .push((uri.path().to_string(), body));
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "status": "success" })),
    )
}

/// Serves the stand-in on `addr` until the returned handle is aborted.
async fn serve(addr: SocketAddr, r: Received) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = Router::new().route("/{*path}", post(record)).with_state(r);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

fn sinks_config(port: u16, extra: &str) -> String {
    format!(
        r#"
[alerting]
critical_group_window_ms = 0
warning_group_window_ms = 0
poll_ms = 100
{extra}
[[alerting.sinks]]
name = "slack"
kind = "slack"
url = "http://127.0.0.1:{port}/slack"
[[alerting.sinks]]
name = "pager"
kind = "pagerduty"
url = "http://127.0.0.1:{port}/pd"
routing_key_env = "WARDEN_TEST_PRIMARY_KEY"
severities = ["critical"]
[[alerting.sinks]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
[[alerting.sinks]]
name = "file"
kind = "jsonl"
path = "alerts.jsonl"
"#
    )
}

async fn raise(s: &TestServer, ws: Option<&str>, rule: &str, sev: Severity, key: &str) {
    s.app()
        .alerts
        .raise(
            ws,
            rule,
            sev,
            key,
            &format!("{rule} happened ({key})"),
            json!({ "key": key }),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_receive_the_documented_payloads_and_resolves() {
    let port = crate::free_port();
    let r = Received::default();
    let _stand_in = serve(([127, 0, 0, 1], port).into(), r.clone()).await;
    // The routing key comes from the variable warden.toml names; the
    // test reuses one that .cargo/config.toml sets ("primary-key").
    let s = TestServer::start(&sinks_config(port, "")).await;

    raise(
        &s,
        None,
        "breaker_open",
        Severity::Critical,
        "breaker:provider:p",
    )
    .await;
    // Raised again while open: deduplicated, no second notification.
    raise(
        &s,
        None,
        "breaker_open",
        Severity::Critical,
        "breaker:provider:p",
    )
    .await;
    raise(&s, Some("w"), "backlog", Severity::Warning, "backlog:w").await;

    let pd = r.wait("/pd", 1, Duration::from_secs(5)).await;
    assert_eq!(pd.len(), 1, "{pd:?}");
    let e = &pd[0];
    assert_eq!(e["routing_key"], "primary-key");
    assert_eq!(e["event_action"], "trigger");
    assert_eq!(e["dedup_key"], "breaker:provider:p");
    assert_eq!(e["payload"]["severity"], "critical");
    assert!(
        e["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("breaker_open happened")
    );
    assert!(
        e["payload"]["source"]
            .as_str()
            .unwrap()
            .starts_with("warden@")
    );
    assert!(e["payload"]["timestamp"].is_string());

    let slack = r.wait("/slack", 2, Duration::from_secs(5)).await;
    assert_eq!(slack.len(), 2, "{slack:?}");
    let texts: Vec<&str> = slack.iter().map(|b| b["text"].as_str().unwrap()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("[CRITICAL] breaker_open")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("[WARNING] backlog in workspace w")),
        "{texts:?}"
    );
    assert_eq!(slack[0]["blocks"][0]["type"], "section");

    let hook = r.wait("/hook", 2, Duration::from_secs(5)).await;
    assert_eq!(hook.len(), 2, "{hook:?}");
    assert!(
        hook.iter()
            .all(|h| h["status"] == "firing" && h["alerts"].as_array().unwrap().len() == 1)
    );

    // The warning did not go to PagerDuty (routed critical only).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.on("/pd").len(), 1);

    // Resolve: PagerDuty gets a resolve with the same dedup key, Slack a
    // RESOLVED line, the webhook status resolved.
    s.app().alerts.resolve("breaker:provider:p").await.unwrap();
    let pd = r.wait("/pd", 2, Duration::from_secs(5)).await;
    assert_eq!(pd.len(), 2, "{pd:?}");
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(pd[1]["dedup_key"], "breaker:provider:p");
    assert_eq!(pd[1]["routing_key"], "primary-key");
    let slack = r.wait("/slack", 3, Duration::from_secs(5)).await;
    assert!(
        slack[2]["text"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED] breaker_open"),
        "{slack:?}"
    );
    let hook = r.wait("/hook", 3, Duration::from_secs(5)).await;
    assert_eq!(hook[2]["status"], "resolved");

    // The file has one line per alert event; the history lists them all,
    // delivered, and never stores the routing key.
    // (Each sink has its own worker: the file's may still be writing.)
    let started = Instant::now();
    let body = loop {
        let (status, body) = s.get("/v1/notifications?limit=100").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let all_sent = body["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "delivered");
        if all_sent || started.elapsed() > Duration::from_secs(5) {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let list = body["notifications"].as_array().unwrap();
    assert_eq!(
        list.len(),
        11,
        "slack, hook, file: 2 triggers + 1 resolve; pager: 1 + 1: {body}"
    );
    assert!(list.iter().all(|n| n["status"] == "delivered"), "{body}");
    assert!(!body.to_string().contains("primary-key"));
    let file = std::fs::read_to_string(s.dir.path().join("data/alerts.jsonl")).unwrap();
    let lines: Vec<Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{file}");
    assert_eq!(lines[2]["notification"], "resolve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_down_for_60_s_loses_nothing_and_sends_nothing_twice() {
    let port = crate::free_port();
    let config = format!(
        r#"
[alerting]
critical_group_window_ms = 0
warning_group_window_ms = 0
poll_ms = 100
[[alerting.sinks]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
timeout_ms = 1000
"#
    );
    let s = TestServer::start(&config).await;
    // Nothing listens on the port: the sink is down. Ten alerts over 60 s.
    let started = Instant::now();
    for i in 0..10 {
        raise(
            &s,
            Some("w"),
            "stuck_task",
            Severity::Warning,
            &format!("stuck:{i}"),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(60));
    let (_, body) = s.get("/v1/alerting/sinks").await;
    assert_eq!(body["sinks"][0]["breaker"]["state"], "open", "{body}");
    // The ten, and the sink_down alert about this very sink.
    assert_eq!(body["sinks"][0]["pending"], 11, "{body}");
    let (_, alerts) = s.get("/v1/alerts?status=open").await;
    assert!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "sink_down"),
        "{alerts}"
    );

    let r = Received::default();
    let back = Instant::now();
    let _stand_in = serve(([127, 0, 0, 1], port).into(), r.clone()).await;
    // The sink_down alert and its resolve go to the same sink, after the
    // ten it was holding.
    let got = r.wait("/hook", 11, Duration::from_secs(40)).await;
    println!(
        "sink back: {} notifications delivered within {} ms",
        got.len(),
        back.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = r.on("/hook");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for b in &got {
        for a in b["alerts"].as_array().unwrap() {
            *seen
                .entry(format!(
                    "{}:{}",
                    b["kind"].as_str().unwrap(),
                    a["dedup_key"].as_str().unwrap()
                ))
                .or_default() += 1;
        }
    }
    for i in 0..10 {
        assert_eq!(
            seen.get(&format!("trigger:stuck:{i}")),
            Some(&1),
            "{seen:?}"
        );
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "a notification arrived twice: {seen:?}"
    );
    // In the order they were raised.
    let order: Vec<String> = got
        .iter()
        .flat_map(|b| b["alerts"].as_array().unwrap().clone())
        .map(|a| a["dedup_key"].as_str().unwrap().to_string())
        .filter(|k| k.starts_with("stuck:"))
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("stuck:{i}")).collect();
    assert_eq!(order, expected);
    let (_, body) = s.get("/v1/alerting/sinks").await;
    assert_eq!(body["sinks"][0]["pending"], 0, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_hold_notifications_until_they_expire() {
    let port = crate::free_port();
    let r = Received::default();
    let _stand_in = serve(([127, 0, 0, 1], port).into(), r.clone()).await;
    let s = TestServer::start(&sinks_config(port, "")).await;

    let (status, silence) = s
        .post(
            "/v1/silences",
            &json!({ "rule": "backlog", "workspace": "w", "duration": "2s", "comment": "maintenance" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{silence}");
    assert_eq!(silence["active"], true);
    let (status, bad) = s.post("/v1/silences", &json!({ "duration": "1h" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (status, bad) = s
        .post("/v1/silences", &json!({ "rule": "x", "duration": "soon" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duration"),
        "{bad}"
    );

    raise(&s, Some("w"), "backlog", Severity::Warning, "backlog:w").await;
    // Another workspace's backlog is not silenced.
    raise(&s, Some("v"), "backlog", Severity::Warning, "backlog:v").await;
    let got = r.wait("/slack", 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0]["text"].as_str().unwrap().contains("workspace v"),
        "{got:?}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(r.on("/slack").len(), 1, "the silenced alert was sent");
    let (_, alerts) = s.get("/v1/alerts?workspace=w").await;
    assert_eq!(
        alerts["alerts"][0]["silenced_by"], silence["id"],
        "{alerts}"
    );

    // The silence expires: the alert, still open, goes out.
    let got = r.wait("/slack", 2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[1]["text"].as_str().unwrap().contains("workspace w"),
        "{got:?}"
    );

    // Ended by hand: a second silence on another rule, then deleted.
    let (_, s2) = s
        .post(
            "/v1/silences",
            &json!({ "dedup_key": "stuck:*", "duration": "1h" }),
        )
        .await;
    raise(&s, Some("w"), "stuck_task", Severity::Warning, "stuck:1").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(r.on("/slack").len(), 2);
    let id = s2["id"].as_str().unwrap();
    let (status, ended) = s
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/silences/{id}"),
            Some(crate::ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["active"], false);
    let got = r.wait("/slack", 3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3, "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_alerts_repeat_until_acknowledged() {
    let port = crate::free_port();
    let r = Received::default();
    let _stand_in = serve(([127, 0, 0, 1], port).into(), r.clone()).await;
    let s = TestServer::start(&sinks_config(port, "repeat_interval_ms = 1000")).await;
    raise(&s, Some("w"), "backlog", Severity::Warning, "backlog:w").await;
    let got = r.wait("/hook", 2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["kind"], "trigger");
    assert_eq!(got[1]["kind"], "repeat");
    let (_, alerts) = s.get("/v1/alerts?workspace=w").await;
    let id = alerts["alerts"][0]["id"].as_str().unwrap().to_string();
    let (status, acked) = s.post(&format!("/v1/alerts/{id}/ack"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    let n = r.on("/hook").len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(r.on("/hook").len(), n, "an acknowledged alert repeated");
    // Its resolve is still told.
    s.app().alerts.resolve("backlog:w").await.unwrap();
    let got = r.wait("/hook", n + 1, Duration::from_secs(5)).await;
    assert_eq!(got[n]["status"], "resolved", "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_task_alert_runs_repair_through_a_binding_with_a_cooldown() {
    let config = r#"
[scheduler]
stuck_after_ms = 500
[workspaces.w.plugins.repair-common-issues]
config = { stuck_after_secs = 1 }
[[workspaces.w.heal]]
playbook = "repair-common-issues"
mode = "apply"
on_alert = "stuck_task"
cooldown = "10m"
max_runs_per_hour = 4
"#;
    let s = TestServer::start(config).await;
    let ws = vec!["w".to_string()];
    let create = |title: &'static str| {
        let s = &s;
        async move {
            let (status, t) = s
                .post(
                    "/v1/workspaces/w/tasks",
                    &json!({ "title": title, "pipeline": ["work"] }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{t}");
            t["id"].as_str().unwrap().to_string()
        }
    };
    let claim = || async {
        let (status, c) = s
            .post(
                "/v1/workspaces/w/tasks/claim",
                &json!({ "worker_id": "gone", "lease_ms": 600_000, "wait_ms": 2000 }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        c["claims"][0]["task_id"].as_str().unwrap().to_string()
    };
    // Two tasks claimed by a worker that then goes silent: two stuck-task
    // alerts, raised in the same pass.
    let first = create("first").await;
    let second = create("second").await;
    let mut claimed = vec![claim().await, claim().await];
    claimed.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(claimed, expected);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.app().scheduler.detect_stuck(&ws).await.unwrap();
    let (_, alerts) = s.get("/v1/workspaces/w/alerts").await;
    let stuck = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "stuck_task")
        .count();
    assert_eq!(stuck, 2, "{alerts}");

    // The first alert runs repair-common-issues in apply mode through the
    // binding: both tasks are queued again. The second alert came inside
    // the cooldown: no second run.
    let started = Instant::now();
    let runs = loop {
        let (_, body) = s
            .get("/v1/workspaces/w/runs?plugin=repair-common-issues")
            .await;
        let runs = body["runs"].as_array().cloned().unwrap_or_default();
        if runs.iter().any(|r| r["status"] == "succeeded")
            || started.elapsed() > Duration::from_secs(10)
        {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs:?}");
    assert_eq!(runs[0]["mode"], "apply");
    assert_eq!(runs[0]["trigger"], "alert:stuck_task");
    assert_eq!(runs[0]["actor"], "auto-heal");
    for id in [&first, &second] {
        let (_, t) = s.get(&format!("/v1/workspaces/w/tasks/{id}")).await;
        assert_eq!(t["state"], "queued", "{t}");
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, body) = s
        .get("/v1/workspaces/w/runs?plugin=repair-common-issues")
        .await;
    assert_eq!(
        body["runs"].as_array().unwrap().len(),
        1,
        "the cooldown let a second run through: {body}"
    );
}

/// `warden alert ls|ack|silence|silences|unsilence|history` against a real
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_cli_lists_acknowledges_and_silences() {
    let s = TestServer::start("[alerting]\nwarning_group_window_ms = 0\npoll_ms = 100\n").await;
    raise(&s, Some("w"), "backlog", Severity::Warning, "backlog:w").await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("alert")
            .args(args)
            .args(["--server", &s.url, "--token", crate::ADMIN])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let ls = cli(&["ls", "--status", "open"]);
    assert!(
        ls.contains("backlog") && ls.contains("warning") && ls.contains("backlog happened"),
        "{ls}"
    );
    let (_, alerts) = s.get("/v1/alerts?status=open").await;
    let id = alerts["alerts"][0]["id"].as_str().unwrap().to_string();
    let acked = cli(&["ack", &id]);
    assert!(acked.contains("acknowledged by"), "{acked}");
    let (_, a) = s.get("/v1/alerts?workspace=w").await;
    assert_eq!(a["alerts"][0]["status"], "acknowledged");

    let silenced = cli(&[
        "silence",
        "--rule",
        "stuck_task",
        "--for",
        "30m",
        "--comment",
        "deploy",
    ]);
    assert!(silenced.contains("in force"), "{silenced}");
    let list = cli(&["silences"]);
    assert!(
        list.contains("stuck_task") && list.contains("deploy"),
        "{list}"
    );
    let (_, body) = s.get("/v1/silences").await;
    let sid = body["silences"][0]["id"].as_str().unwrap().to_string();
    let ended = cli(&["unsilence", &sid]);
    assert!(ended.contains("ended"), "{ended}");
    let (_, body) = s.get("/v1/silences").await;
    assert!(body["silences"].as_array().unwrap().is_empty(), "{body}");

    // The default sink is the file; its delivery is in the history.
    let started = Instant::now();
    let history = loop {
        let h = cli(&["history"]);
        if h.contains("delivered") || started.elapsed() > Duration::from_secs(5) {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        history.contains("file") && history.contains("backlog:w"),
        "{history}"
    );
    let file = std::fs::read_to_string(s.dir.path().join("data/alerts.jsonl")).unwrap();
    assert!(file.contains("\"rule\":\"backlog\""), "{file}");

    // Bad input is a clear error, not a crash.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "alert",
            "silence",
            "--for",
            "1h",
            "--server",
            &s.url,
            "--token",
            crate::ADMIN,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one of"));
}

/// The bundled `provider-failover-check`, bound to `breaker_open`: when a
/// provider's breaker opens, its report says who is failing and what is
/// left to fail over to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_open_alert_runs_provider_failover_check() {
    let config = r#"
[[gateway.providers]]
name = "primary"
base_url = "http://127.0.0.1:9/v1"
models = ["small"]
[[gateway.providers]]
name = "backup"
base_url = "http://127.0.0.1:9/v1"
models = ["large"]
[[workspaces.ops.heal]]
playbook = "provider-failover-check"
mode = "diagnose"
on_alert = "breaker_open"
cooldown = "1s"
[workspaces.ops.plugins.provider-failover-check]
grants = ["health:read"]
"#;
    let s = TestServer::start(config).await;
    // Before anything fails: both providers show, healthy.
    let run = s
        .run(
            "ops",
            "provider-failover-check",
            &json!({ "mode": "diagnose" }),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["report"]["summary"], "all 2 provider(s) healthy",
        "{run}"
    );

    // The primary's breaker opens (by hand here; the gateway does the same
    // after 5 failures) and its alert is raised: the binding runs the check.
    let (status, body) = s
        .put(
            "/v1/breakers/provider:primary",
            &json!({ "state": "open", "reason": "outage" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    raise(
        &s,
        None,
        "breaker_open",
        Severity::Critical,
        "breaker:provider:primary",
    )
    .await;
    let started = Instant::now();
    let run = loop {
        let (_, body) = s
            .get("/v1/workspaces/ops/runs?plugin=provider-failover-check")
            .await;
        let auto = body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "alert:breaker_open" && r["status"] == "succeeded")
            .cloned();
        if let Some(r) = auto {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no run: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = run["id"].as_str().unwrap();
    let (_, run) = s.get(&format!("/v1/workspaces/ops/runs/{id}")).await;
    assert_eq!(run["mode"], "diagnose");
    assert_eq!(
        run["report"]["summary"], "1 provider(s) failing, 1 healthy to fail over to",
        "{run}"
    );
    let codes: Vec<&str> = run["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"provider.open") && codes.contains(&"failover.ok"),
        "{codes:?}"
    );

    // The workspace status shows every breaker that bears on it.
    let (_, status) = s.get("/v1/workspaces/ops/status").await;
    let breakers = status["breakers"].as_array().unwrap();
    let state = |name: &str| {
        breakers
            .iter()
            .find(|b| b["name"] == name)
            .map(|b| b["state"].clone())
    };
    assert_eq!(state("provider:primary"), Some(json!("open")), "{status}");
    assert_eq!(state("provider:backup"), Some(json!("closed")), "{status}");

    // Both open: critical, with what a human must do.
    s.put(
        "/v1/breakers/provider:backup",
        &json!({ "state": "open", "reason": "outage" }),
    )
    .await;
    let run = s
        .run(
            "ops",
            "provider-failover-check",
            &json!({ "mode": "diagnose" }),
        )
        .await;
    assert_eq!(
        run["report"]["summary"], "no healthy provider: 2 open, 0 probing",
        "{run}"
    );
    assert!(
        run["report"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "failover.exhausted" && f["severity"] == "critical"),
        "{run}"
    );
    assert_eq!(
        run["report"]["manual_actions"].as_array().unwrap().len(),
        2,
        "{run}"
    );
}

/// A playbook that keeps failing is not run again and again by its
/// binding: after three failed runs in a row its breaker
/// (`playbook:<ws>:<name>`) opens, the next triggers are held back with the
/// reason, a critical `breaker_open` alert names it, and the breaker shows
/// in the workspace status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_playbook_opens_its_breaker_and_its_binding_stops_running_it() {
    let config = r#"
[[workspaces.pb.heal]]
playbook = "hostile-panic"
mode = "apply"
on_alert = "backlog"
cooldown = "0s"
max_runs_per_hour = 100
"#;
    let s = TestServer::start(config).await;
    crate::install(
        &s.plugin_dir(),
        warden_test_artifacts::HOSTILE_PANIC,
        "hostile-panic.wasm",
    );
    s.wait_for_plugin("hostile-panic", "1.0.0", Duration::from_secs(10))
        .await;
    async fn runs(s: &TestServer) -> Vec<Value> {
        let (_, body) = s.get("/v1/workspaces/pb/runs?plugin=hostile-panic").await;
        body["runs"].as_array().cloned().unwrap_or_default()
    }
    for n in 1..=5usize {
        raise(
            &s,
            Some("pb"),
            "backlog",
            Severity::Warning,
            &format!("backlog:pb:{n}"),
        )
        .await;
        let started = Instant::now();
        // Each run ends before the next alert; the fourth and fifth find
        // the breaker open.
        let expected = n.min(3);
        loop {
            let r = runs(&s).await;
            if r.len() == expected && r.iter().all(|r| r["status"] == "failed") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "trigger {n}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if n > 3 {
            // Give a run that should not start the time to show.
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(runs(&s).await.len(), 3, "trigger {n} ran the playbook");
        }
    }
    let alerts = s
        .app()
        .store
        .list_alerts(Some("pb"), None, 100)
        .await
        .unwrap();
    let open = alerts
        .iter()
        .find(|a| a.dedup_key == "breaker:playbook:pb:hostile-panic")
        .unwrap_or_else(|| panic!("no breaker alert: {alerts:?}"));
    assert_eq!(
        (open.rule.as_str(), open.severity.as_str()),
        ("breaker_open", "critical")
    );
    assert!(
        open.summary
            .contains("playbook hostile-panic keeps failing"),
        "{}",
        open.summary
    );
    let (_, status) = s.get("/v1/workspaces/pb/status").await;
    let breaker = status["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "playbook:pb:hostile-panic")
        .cloned()
        .unwrap_or_else(|| panic!("not in the status: {status}"));
    assert_eq!(breaker["state"], "open", "{breaker}");
    assert!(
        breaker["reason"]
            .as_str()
            .unwrap()
            .contains("3 consecutive failures"),
        "{breaker}"
    );
    // Another workspace's status does not list it.
    let (_, other) = s.get("/v1/workspaces/other/status").await;
    assert!(!other.to_string().contains("playbook:pb:"), "{other}");
}
