//! Workspace isolation on every shared view (SPEC SE-1, SE-4; issue 15,
//! item 6). Workspace a holds gate and playbook breakers, alerts, tasks
//! (one rejected by a gate, one failing), a playbook run, model calls, an
//! agent checkpoint and a token; a viewer and an admin of workspace b then
//! call every GET route of the served OpenAPI document, with b's objects
//! in the path, and read each answer (streams for a while): none holds a
//! trace of a. What plugins read through the `health` interface is
//! covered too: the bundled `diagnose-system`, run in b, reports every
//! breaker it is shown, and its report is one of the answers read. Once on
//! SQLite, once on PostgreSQL.
//!
//! Every name of a carries `a9q` and its ids are collected, so "a trace"
//! is: `a9q`, or any id of an object of a.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warden_server::alerts::Severity;
use warden_store::gateway::GatewayCallRow;

use crate::{ADMIN, TestServer};

/// Workspace a: every name of its objects contains `a9q`.
const A: &str = "tenant-a9q";
/// Workspace b: the caller's.
const B: &str = "tenant-b4x";
/// The mark of everything of a.
const MARK: &str = "a9q";

const SECRET_DIFF: &str = "diff --git a/config/deploy.env b/config/deploy.env\n--- a/config/deploy.env\n+++ b/config/deploy.env\n@@ -1,2 +1,3 @@\n REGION=eu-west-1\n+AWS_ACCESS_KEY_ID=AKIAQYLPMN5HHHFPZAM2\n BUCKET=builds\n";

async fn ok(s: &TestServer, method: Method, path: &str, body: Option<&Value>) -> Value {
    let (status, v) = s.request(method, path, Some(ADMIN), body).await;
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

async fn create(s: &TestServer, ws: &str, title: &str, pipeline: &[&str]) -> String {
    let t = ok(
        s,
        Method::POST,
        &format!("/v1/workspaces/{ws}/tasks"),
        Some(&json!({ "title": title, "pipeline": pipeline, "max_attempts": 5 })),
    )
    .await;
    t["id"].as_str().unwrap().to_string()
}

async fn claim(s: &TestServer, ws: &str, worker: &str, stages: &[&str]) -> Value {
    let body = ok(
        s,
        Method::POST,
        &format!("/v1/workspaces/{ws}/tasks/claim"),
        Some(&json!({ "worker_id": worker, "wait_ms": 2000, "stages": stages })),
    )
    .await;
    body["claims"][0].clone()
}

async fn complete(s: &TestServer, ws: &str, c: &Value, result: Value) -> Value {
    let id = c["task_id"].as_str().unwrap();
    ok(
        s,
        Method::POST,
        &format!("/v1/workspaces/{ws}/tasks/{id}/complete"),
        Some(&json!({ "token": c["token"], "output": {}, "result": result })),
    )
    .await
}

async fn token(s: &TestServer, ws: &str, name: &str, role: &str) -> String {
    let t = ok(
        s,
        Method::POST,
        &format!("/v1/workspaces/{ws}/tokens"),
        Some(&json!({ "name": name, "role": role })),
    )
    .await;
    t["token"].as_str().unwrap().to_string()
}

async fn diagnose(s: &TestServer, ws: &str) -> Value {
    ok(
        s,
        Method::POST,
        &format!("/v1/workspaces/{ws}/playbooks/diagnose-system/runs?wait=true"),
        Some(&json!({})),
    )
    .await
}

async fn open_breaker(s: &TestServer, name: &str) {
    ok(
        s,
        Method::PUT,
        &format!("/v1/breakers/{name}"),
        Some(
            &json!({ "state": "open", "reason": format!("opened by the isolation test: {name}") }),
        ),
    )
    .await;
}

async fn sleep_checkpoint(s: &TestServer, ws: &str, agent: &str) {
    let r = s
        .client
        .post(format!("{}/v1/workspaces/{ws}/agents/{agent}/sleep", s.url))
        .bearer_auth(ADMIN)
        .body(format!("state of {agent}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
}

/// What a caller of b may name in a path.
struct Objects {
    task: String,
    thread: String,
    run: String,
    agent: &'static str,
    stage: &'static str,
}

/// Fills workspace a with everything that could leak, and returns its
/// ids (besides the `a9q` in every name).
async fn load_a(s: &TestServer) -> Vec<String> {
    let mut ids = Vec::new();
    let a = A;
    // A gate binding and a task it rejected (verdicts and reasons).
    ok(
        s,
        Method::PUT,
        &format!("/v1/workspaces/{a}/gates/implement"),
        Some(&json!({ "gates": ["diff-size", "secret-scan"], "quorum": "all" })),
    )
    .await;
    let leaked = create(s, a, "rotate the keys of a9q", &["plan", "implement"]).await;
    let c = claim(s, a, "worker-a9q", &["plan"]).await;
    complete(s, a, &c, Value::Null).await;
    let c = claim(s, a, "worker-a9q", &["implement"]).await;
    let secret = json!({ "diff": SECRET_DIFF, "diff_stats": { "files_changed": 1, "insertions": 1, "deletions": 0 } });
    let t = complete(s, a, &c, secret).await;
    assert_eq!(t["task"]["stage"], "plan", "the gates rejected: {t}");
    ids.push(leaked.clone());
    // A failing task (top errors) and one left running.
    let flaky = create(s, a, "flaky test of a9q", &["verify"]).await;
    let c = claim(s, a, "worker-a9q", &["verify"]).await;
    ok(
        s,
        Method::POST,
        &format!("/v1/workspaces/{a}/tasks/{flaky}/fail"),
        Some(&json!({ "token": c["token"], "error": "failure-a9q: connection reset" })),
    )
    .await;
    ids.push(flaky);
    let running = create(s, a, "long job of a9q", &["review"]).await;
    claim(s, a, "worker-a9q", &["review"]).await;
    ids.push(running);
    // A playbook run.
    let run = diagnose(s, a).await;
    ids.push(run["id"].as_str().unwrap().to_string());
    // Its gate's and its playbook's breakers, open.
    open_breaker(s, &format!("gate:{a}:secret-scan")).await;
    open_breaker(s, &format!("playbook:{a}:diagnose-system")).await;
    // Alerts, as the gates and the breakers raise them.
    let alerts = &s.app().alerts;
    for (rule, key, summary) in [
        (
            "breaker_open",
            format!("breaker:gate:{a}:secret-scan"),
            format!("the breaker of gate secret-scan in {a} is open"),
        ),
        (
            "gate_breaker",
            format!("gate_breaker:{a}:secret-scan"),
            "gate secret-scan rejected 6 of its last 10 verdicts (a9q)".to_string(),
        ),
    ] {
        let row = alerts
            .raise(Some(a), rule, Severity::Critical, &key, &summary, json!({}))
            .await
            .unwrap();
        ids.push(row.id);
    }
    // A token, a checkpoint, model calls.
    token(s, a, "token-a9q", "viewer").await;
    sleep_checkpoint(s, a, "agent-a9q").await;
    let now = warden_store::now_ms();
    let call = GatewayCallRow {
        id: warden_store::new_id(),
        workspace: a.to_string(),
        task_id: Some(leaked),
        stage: Some("implement".to_string()),
        mode: "code".to_string(),
        requested_model: "auto".to_string(),
        provider: Some("provider-a9q".to_string()),
        model: Some("model-a9q".to_string()),
        policy: "cost-aware-router".to_string(),
        policy_version: "1.0.0".to_string(),
        policy_digest: "sha256:test".to_string(),
        route_reason: "test".to_string(),
        status: "ok".to_string(),
        http_status: 200,
        attempts: 1,
        prompt_tokens: 100,
        completion_tokens: 20,
        cost_micros: 1_000,
        latency_ms: 100,
        created_at: now,
        ..GatewayCallRow::default()
    };
    ids.push(call.id.clone());
    s.app().store.record_gateway_calls(&[call]).await.unwrap();
    // A thread with a participant, a message and a state change.
    ids.push(thread(s, a, "agent-a9q", "a9q secret plan").await);
    ids
}

/// A thread of `ws` with `participant` (an agent) and one message from
/// the admin, escalated; returns its id.
async fn thread(s: &TestServer, ws: &str, participant: &str, text: &str) -> String {
    let t = ok(
        s,
        Method::POST,
        &format!("/v1/workspaces/{ws}/threads"),
        Some(&json!({
            "title": format!("thread of {ws}"),
            "participants": [{ "name": participant, "kind": "agent", "role": "executor" }]
        })),
    )
    .await;
    let id = t["thread"]["id"].as_str().unwrap().to_string();
    let ops = token(s, ws, &format!("ops-{participant}"), "operator").await;
    let _ = ok(
        s,
        Method::POST,
        &format!("/v1/workspaces/{ws}/threads/{id}/participants"),
        Some(
            &json!({ "name": format!("human-{participant}"), "kind": "human", "role": "approver" }),
        ),
    )
    .await;
    let posted = s
        .request(
            Method::POST,
            &format!("/v1/workspaces/{ws}/threads/{id}/messages"),
            Some(&ops),
            Some(&json!({ "schema_version": 1, "sender": format!("human-{participant}"), "body": text })),
        )
        .await;
    assert_eq!(posted.0, StatusCode::CREATED, "{}", posted.1);
    ok(
        s,
        Method::POST,
        &format!("/v1/workspaces/{ws}/threads/{id}/escalate"),
        Some(&json!({ "reason": format!("escalated in {ws}") })),
    )
    .await;
    id
}

/// Workspace b: a running task, a gate binding, a checkpoint, an open
/// breaker of its own gate, and a run of diagnose-system taken after every
/// breaker above was opened.
async fn load_b(s: &TestServer) -> Objects {
    let b = B;
    ok(
        s,
        Method::PUT,
        &format!("/v1/workspaces/{b}/gates/implement"),
        Some(&json!({ "gates": ["diff-size"], "quorum": "all" })),
    )
    .await;
    let task = create(s, b, "a task of b", &["plan"]).await;
    claim(s, b, "worker-b", &["plan"]).await;
    sleep_checkpoint(s, b, "agent-b").await;
    open_breaker(s, &format!("gate:{b}:diff-size")).await;
    let run = diagnose(s, b).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let thread = thread(s, b, "agent-b", "the plan of b").await;
    Objects {
        task,
        thread,
        run: run["id"].as_str().unwrap().to_string(),
        agent: "agent-b",
        stage: "implement",
    }
}

/// `path` with its parameters filled with b's objects. A parameter this
/// test does not know fails it: a new GET route must be added here.
fn fill(path: &str, objects: &Objects) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').unwrap();
        let name = &rest[start + 1..end];
        let value = match (name, path) {
            ("ws", _) => B.to_string(),
            ("id", p) if p.contains("/tasks/") => objects.task.clone(),
            ("id", p) if p.contains("/runs/") => objects.run.clone(),
            ("id", p) if p.contains("/threads/") => objects.thread.clone(),
            ("id", p) if p.contains("/agents/") => objects.agent.to_string(),
            ("stage", _) => objects.stage.to_string(),
            ("name", p) if p.starts_with("/v1/plugins/") => "diagnose-system".to_string(),
            ("name", p) if p.starts_with("/assets/") => "dashboard.js".to_string(),
            _ => panic!("the isolation test does not know {{{name}}} of GET {path}: add it"),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The answer to GET `path`: its status and its body, read to its end or,
/// for a stream, for `STREAM_READ`.
async fn read(s: &TestServer, path: &str, token: &str) -> (StatusCode, String) {
    const STREAM_READ: Duration = Duration::from_millis(1500);
    let mut resp = s
        .client
        .get(format!("{}{path}", s.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let mut body = Vec::new();
    let deadline = Instant::now() + STREAM_READ;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn nothing_of_a_is_seen_from_b(s: &TestServer, dialect: &str) {
    let ids = load_a(s).await;
    let objects = load_b(s).await;
    let viewer = token(s, B, "viewer-b", "viewer").await;
    let admin = token(s, B, "admin-b", "admin").await;

    let (status, doc) = s.request(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| item.get("get").is_some())
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        paths.len() >= 40,
        "only {} GET routes: {paths:?}",
        paths.len()
    );

    let mut answers: BTreeMap<(String, &str), (StatusCode, String)> = BTreeMap::new();
    let mut leaks = Vec::new();
    for path in &paths {
        let url = fill(path, &objects);
        for (who, t) in [("viewer", viewer.as_str()), ("admin", admin.as_str())] {
            let (status, body) = read(s, &url, t).await;
            assert!(
                status.as_u16() < 500,
                "{dialect}: GET {url} as b's {who}: {status} {body}"
            );
            for needle in std::iter::once(MARK).chain(ids.iter().map(String::as_str)) {
                if body.contains(needle) {
                    let at = body.find(needle).unwrap_or(0);
                    let context = &body[at.saturating_sub(120)..(at + 120).min(body.len())];
                    leaks.push(format!(
                        "GET {url} as b's {who} ({status}) shows {needle:?}: …{context}…"
                    ));
                }
            }
            answers.insert((path.clone(), who), (status, body));
        }
    }
    assert!(
        leaks.is_empty(),
        "{dialect}: {} answer(s) to b show workspace a:\n{}",
        leaks.len(),
        leaks.join("\n")
    );

    // The answers were real ones: b sees its own things on the shared
    // views, so the sweep above did not pass by being refused everywhere.
    let seen = |path: &str, who: &str| {
        let (status, body) = &answers[&(path.to_string(), who)];
        assert_eq!(
            *status,
            StatusCode::OK,
            "{dialect}: GET {path} as {who}: {body}"
        );
        body.clone()
    };
    let own_gate = format!("gate:{B}:diff-size");
    assert!(seen("/v1/breakers", "viewer").contains(&own_gate));
    assert!(seen("/v1/status", "viewer").contains(&objects.task));
    assert!(seen("/v1/workspaces/{ws}/status/stream", "viewer").contains(&own_gate));
    assert!(seen("/v1/workspaces/{ws}/tasks", "viewer").contains(&objects.task));
    assert!(seen("/v1/workspaces/{ws}/threads", "viewer").contains(&objects.thread));
    assert!(seen("/v1/workspaces/{ws}/threads/{id}/messages", "viewer").contains("the plan of b"));
    assert!(seen("/metrics", "viewer").contains(&format!("workspace=\"{B}\"")));
    // The plugin was shown b's own breaker and only that one.
    let report = seen("/v1/workspaces/{ws}/runs/{id}", "viewer");
    assert!(report.contains(&own_gate), "{dialect}: {report}");
    let count_200 = answers
        .values()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert!(
        count_200 >= 50,
        "{dialect}: only {count_200} answers were 200"
    );

    // The bootstrap admin still sees every workspace on the shared views.
    for path in ["/v1/breakers", "/metrics", "/v1/status"] {
        let (status, body) = read(s, path, ADMIN).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(A),
            "{dialect}: the admin's {path} lacks {A}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_finds_no_trace_of_another_workspace_on_any_get_route() {
    let sqlite = TestServer::start("").await;
    nothing_of_a_is_seen_from_b(&sqlite, "SQLite").await;
    sqlite.stop().await;
    let name = "a_scoped_token_finds_no_trace_of_another_workspace_on_any_get_route";
    let Some(pg) = crate::PgSchema::create(name).await else {
        return;
    };
    let postgres = TestServer::start(&format!("database_url = \"{}\"\n", pg.url)).await;
    nothing_of_a_is_seen_from_b(&postgres, "PostgreSQL").await;
    postgres.stop().await;
    pg.drop().await;
}
