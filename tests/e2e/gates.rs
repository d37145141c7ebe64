//! Quality gates on a real server (SPEC QG-1..QG-5): bundled and scripted
//! gate components bound to stage transitions, quorum rules, rejections
//! with their plan delta and the loop guard, waiting for a human, the gate
//! breaker, and failing gates.
//!
//! The `scripted-gate-{a,b,c}` test plugins give the verdict the stage
//! result's text scripts for them (`scripted-gate-a: reject 20 size: too
//! big`), so that each test decides every verdict.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_test_artifacts as artifacts;

use crate::{TestServer, install};

const FAST: &str = "[scheduler]\nbackoff_base_ms = 20\nbackoff_max_ms = 200\n";

/// A server with the scripted gates installed and `extra` config.
async fn server(extra: &str) -> TestServer {
    let s = TestServer::start(&format!("{FAST}{extra}")).await;
    for (name, path) in [
        ("scripted-gate-a", artifacts::SCRIPTED_GATE_A),
        ("scripted-gate-b", artifacts::SCRIPTED_GATE_B),
        ("scripted-gate-c", artifacts::SCRIPTED_GATE_C),
    ] {
        install(&s.plugin_dir(), path, &format!("{name}.wasm"));
        s.wait_for_plugin(name, "1.0.0", Duration::from_secs(30))
            .await;
    }
    s
}

async fn create(s: &TestServer, ws: &str, pipeline: &[&str]) -> String {
    let (status, task) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks"),
            &json!({ "title": "gated", "pipeline": pipeline, "max_attempts": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    task["id"].as_str().unwrap().to_string()
}

/// Claims the next stage (which must be `id`'s `stage`) and completes it
/// with `result`; returns the task after.
async fn advance(s: &TestServer, ws: &str, id: &str, stage: &str, result: Value) -> Value {
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/claim"),
            &json!({ "worker_id": "w1", "wait_ms": 2000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claim = &body["claims"][0];
    assert_eq!(claim["task_id"], id, "{body}");
    assert_eq!(claim["stage"], stage, "{body}");
    let (status, done) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/complete"),
            &json!({ "token": claim["token"], "output": {}, "result": result }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["completed"], true, "{done}");
    done["task"].clone()
}

/// Takes a task that went back out of the way of the next one.
async fn cancel(s: &TestServer, ws: &str, id: &str) {
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn script(lines: &[&str]) -> Value {
    json!({ "text": lines.join("\n") })
}

async fn decisions(s: &TestServer, ws: &str, id: &str) -> Vec<Value> {
    let (status, body) = s
        .get(&format!("/v1/workspaces/{ws}/tasks/{id}/verdicts"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["decisions"].as_array().unwrap().clone()
}

/// (gate, decision) of each verdict of a decision, sorted by gate.
fn verdicts(decision: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = decision["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["gate"].as_str().unwrap().to_string(),
                v["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn pair(gate: &str, decision: &str) -> (String, String) {
    (gate.to_string(), decision.to_string())
}

async fn alerts(s: &TestServer, ws: &str, rule: &str) -> Vec<Value> {
    let (_, a) = s.get(&format!("/v1/workspaces/{ws}/alerts")).await;
    a["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == rule)
        .cloned()
        .collect()
}

async fn pinned_digest(s: &TestServer, ws: &str, plugin: &str) -> String {
    let (status, p) = s.get(&format!("/v1/plugins/{plugin}?workspace={ws}")).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    p["pinned_digest"].as_str().unwrap().to_string()
}

const CLEAN_DIFF: &str = "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,4 @@\n fn main() {\n-    println!(\"hi\");\n+    let name = std::env::args().nth(1).unwrap_or_default();\n+    println!(\"hi {name}\");\n }\n";

const SECRET_DIFF: &str = "diff --git a/config/deploy.env b/config/deploy.env\n--- a/config/deploy.env\n+++ b/config/deploy.env\n@@ -1,2 +1,3 @@\n REGION=eu-west-1\n+AWS_ACCESS_KEY_ID=AKIAQYLPMN5HHHFPZAM2\n BUCKET=builds\n";

/// Acceptance 1: two bundled gates after `implement` (all must approve)
/// and three scripted gates after `review` with a 2-of-3 quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_bound_to_transitions_decide_where_each_task_goes() {
    let s = server(
        r#"
[workspaces.w.gates.implement]
gates = ["diff-size", "secret-scan"]
[workspaces.w.gates.review]
gates = ["scripted-gate-a", "scripted-gate-b", "scripted-gate-c"]
quorum = "2-of-3"
"#,
    )
    .await;
    let ws = "w";
    let pipeline = ["plan", "implement", "review", "pr"];
    let clean = json!({ "diff": CLEAN_DIFF, "diff_stats": { "files_changed": 1, "insertions": 2, "deletions": 1 } });

    // The bindings are listed with their source.
    let (_, b) = s.get(&format!("/v1/workspaces/{ws}/gates")).await;
    assert_eq!(b["bindings"][0]["stage"], "implement");
    assert_eq!(b["bindings"][1]["quorum"], "2-of-3");
    assert_eq!(b["bindings"][1]["source"], "config");

    // A: clean diff, one dissenting reviewer gate: done.
    let a = create(&s, ws, &pipeline).await;
    advance(&s, ws, &a, "plan", json!(null)).await;
    let t = advance(&s, ws, &a, "implement", clean.clone()).await;
    assert_eq!(
        (t["state"].as_str(), t["stage"].as_str()),
        (Some("queued"), Some("review"))
    );
    let t = advance(
        &s,
        ws,
        &a,
        "review",
        script(&["scripted-gate-c: reject 30 quality: naming"]),
    )
    .await;
    assert_eq!(t["stage"], "pr", "2 of 3 approved: {t}");
    let t = advance(&s, ws, &a, "pr", json!(null)).await;
    assert_eq!(t["state"], "done");
    let d = decisions(&s, ws, &a).await;
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(
        (
            d[0]["stage"].as_str(),
            d[0]["outcome"].as_str(),
            d[0]["quorum"].as_str()
        ),
        (Some("implement"), Some("approve"), Some("all"))
    );
    assert_eq!(
        verdicts(&d[0]),
        [pair("diff-size", "approve"), pair("secret-scan", "approve")]
    );
    assert_eq!(
        (d[1]["outcome"].as_str(), d[1]["quorum"].as_str()),
        (Some("approve"), Some("2-of-3"))
    );
    assert_eq!(
        verdicts(&d[1]),
        [
            pair("scripted-gate-a", "approve"),
            pair("scripted-gate-b", "approve"),
            pair("scripted-gate-c", "reject")
        ]
    );
    // Every verdict names the digest of the gate version that gave it.
    for decision in &d {
        for v in decision["verdicts"].as_array().unwrap() {
            let gate = v["gate"].as_str().unwrap();
            assert_eq!(v["digest"], pinned_digest(&s, ws, gate).await, "{v}");
            assert!(v["error"].is_null(), "{v}");
        }
    }
    let dissent = d[1]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["gate"] == "scripted-gate-c")
        .unwrap();
    assert_eq!(dissent["score"], 30);
    assert_eq!(
        dissent["reasons"],
        json!([{ "category": "quality", "message": "naming" }])
    );

    // B: an AWS key in the diff: secret-scan rejects; back to plan.
    let b = create(&s, ws, &pipeline).await;
    advance(&s, ws, &b, "plan", json!(null)).await;
    let t = advance(&s, ws, &b, "implement", json!({ "diff": SECRET_DIFF })).await;
    assert_eq!(
        (
            t["state"].as_str(),
            t["stage"].as_str(),
            t["gate_rejections"].as_i64()
        ),
        (Some("queued"), Some("plan"), Some(1)),
        "{t}"
    );
    let reasons = t["plan_delta"]["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r["gate"] == "secret-scan" && r["category"] == "secret"),
        "{t}"
    );
    assert!(
        !t.to_string().contains("AKIAQYLPMN5HHHFPZAM2"),
        "the secret is not echoed: {t}"
    );
    let d = decisions(&s, ws, &b).await;
    assert_eq!(d[0]["outcome"], "reject");
    assert_eq!(
        verdicts(&d[0]),
        [pair("diff-size", "approve"), pair("secret-scan", "reject")]
    );
    cancel(&s, ws, &b).await;

    // C: two reviewer gates reject: back to plan with both reasons.
    let c = create(&s, ws, &pipeline).await;
    advance(&s, ws, &c, "plan", json!(null)).await;
    advance(&s, ws, &c, "implement", clean.clone()).await;
    let t = advance(
        &s,
        ws,
        &c,
        "review",
        script(&[
            "scripted-gate-a: reject 10 tests: flaky",
            "scripted-gate-b: reject 15 quality: unreadable",
        ]),
    )
    .await;
    assert_eq!(
        (t["state"].as_str(), t["stage"].as_str()),
        (Some("queued"), Some("plan")),
        "{t}"
    );
    let messages: Vec<&str> = t["plan_delta"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["flaky", "unreadable"], "{t}");
    cancel(&s, ws, &c).await;

    // D: one approval, one escalation, one rejection: no quorum; a human
    // approves over the API.
    let dd = create(&s, ws, &pipeline).await;
    advance(&s, ws, &dd, "plan", json!(null)).await;
    advance(&s, ws, &dd, "implement", clean).await;
    let t = advance(
        &s,
        ws,
        &dd,
        "review",
        script(&["scripted-gate-b: escalate 50", "scripted-gate-c: reject"]),
    )
    .await;
    assert_eq!(
        (t["state"].as_str(), t["stage"].as_str()),
        (Some("waiting_approval"), Some("review")),
        "{t}"
    );
    let waiting = alerts(&s, ws, "gate_waiting_approval").await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["status"], "open");
    // No quorum is the critical "gate quorum failure" of SPEC AL-1.
    assert_eq!(waiting[0]["severity"], "critical");
    // Still waiting at the next evaluation of the rules: the same alert
    // again (dedup: one row, count 2).
    let app = s.app();
    warden_server::rules::evaluate(&app.store, &app.alerts, &app.config, ws)
        .await
        .unwrap();
    let waiting = alerts(&s, ws, "gate_waiting_approval").await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["count"], 2, "{waiting:?}");
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{dd}/decision"),
            &json!({ "decision": "approve", "reason": "reviewed by hand" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["task"]["state"].as_str(),
            body["task"]["stage"].as_str()
        ),
        (Some("queued"), Some("pr"))
    );
    assert_eq!(
        alerts(&s, ws, "gate_waiting_approval").await[0]["status"],
        "resolved"
    );
    let d = decisions(&s, ws, &dd).await;
    assert_eq!(
        (
            d[1]["outcome"].as_str(),
            d[2]["quorum"].as_str(),
            d[2]["outcome"].as_str()
        ),
        (Some("waiting"), Some("human"), Some("approve"))
    );
    // Deciding again is refused.
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{dd}/decision"),
            &json!({ "decision": "reject", "reason": "late" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Statistics: per gate and the top rejection reasons.
    let (status, stats) = s.get(&format!("/v1/workspaces/{ws}/gate-stats")).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let secret = stats["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "secret-scan")
        .unwrap();
    assert_eq!(
        (secret["verdicts"].as_i64(), secret["rejections"].as_i64()),
        (Some(4), Some(1)),
        "{stats}"
    );
    assert!(
        stats["top_rejection_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["gate"] == "secret-scan"),
        "{stats}"
    );
    s.stop().await;
}

/// Binds `gates` with `quorum` after `review` and returns where a task
/// whose review result scripts `lines` ends up: its state and stage.
async fn transition(s: &TestServer, ws: &str, lines: &[&str]) -> (String, String) {
    let id = create(s, ws, &["plan", "review", "pr"]).await;
    advance(s, ws, &id, "plan", json!(null)).await;
    let t = advance(s, ws, &id, "review", script(lines)).await;
    if t["state"] != "done" && t["stage"] != "pr" {
        // Out of the way of the next transition.
        let (status, body) = s
            .post(
                &format!("/v1/workspaces/{ws}/tasks/{id}/cancel"),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    } else {
        advance(s, ws, &id, "pr", json!(null)).await;
    }
    (
        t["state"].as_str().unwrap().to_string(),
        t["stage"].as_str().unwrap().to_string(),
    )
}

async fn bind(s: &TestServer, ws: &str, gates: &[&str], quorum: &str) {
    let (status, body) = s
        .put(
            &format!("/v1/workspaces/{ws}/gates/review"),
            &json!({ "gates": gates, "quorum": quorum }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "api");
}

/// Acceptance 2: each quorum rule approves, rejects, and leaves the task
/// waiting when escalations keep the quorum from being reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_quorum_rule_approves_rejects_or_waits() {
    let s = server("").await;
    let ws = "q";
    let approved = ("queued".to_string(), "pr".to_string());
    let rejected = ("queued".to_string(), "plan".to_string());
    let waiting = ("waiting_approval".to_string(), "review".to_string());

    bind(&s, ws, &["scripted-gate-a", "scripted-gate-b"], "all").await;
    assert_eq!(transition(&s, ws, &[]).await, approved);
    assert_eq!(
        transition(&s, ws, &["scripted-gate-b: reject"]).await,
        rejected
    );
    assert_eq!(
        transition(&s, ws, &["scripted-gate-a: escalate"]).await,
        waiting
    );
    // A rejection outweighs an escalation under `all`.
    assert_eq!(
        transition(
            &s,
            ws,
            &["scripted-gate-a: escalate", "scripted-gate-b: reject"]
        )
        .await,
        rejected
    );

    bind(
        &s,
        ws,
        &["scripted-gate-a", "scripted-gate-b", "scripted-gate-c"],
        "majority",
    )
    .await;
    assert_eq!(
        transition(&s, ws, &["scripted-gate-c: reject"]).await,
        approved
    );
    assert_eq!(
        transition(
            &s,
            ws,
            &["scripted-gate-a: reject", "scripted-gate-b: reject"]
        )
        .await,
        rejected
    );
    assert_eq!(
        transition(
            &s,
            ws,
            &["scripted-gate-b: escalate", "scripted-gate-c: reject"]
        )
        .await,
        waiting
    );

    bind(
        &s,
        ws,
        &["scripted-gate-a", "scripted-gate-b", "scripted-gate-c"],
        "1-of-3",
    )
    .await;
    assert_eq!(
        transition(
            &s,
            ws,
            &["scripted-gate-b: reject", "scripted-gate-c: reject"]
        )
        .await,
        approved
    );
    assert_eq!(
        transition(
            &s,
            ws,
            &[
                "scripted-gate-a: reject",
                "scripted-gate-b: reject",
                "scripted-gate-c: reject"
            ]
        )
        .await,
        rejected
    );
    assert_eq!(
        transition(
            &s,
            ws,
            &[
                "scripted-gate-a: escalate",
                "scripted-gate-b: reject",
                "scripted-gate-c: reject"
            ]
        )
        .await,
        waiting
    );
    // Every waiting task raised its own alert.
    assert_eq!(alerts(&s, ws, "gate_waiting_approval").await.len(), 3);

    // Bad bindings are refused with the field named.
    let (status, body) = s
        .put(
            &format!("/v1/workspaces/{ws}/gates/review"),
            &json!({ "gates": ["scripted-gate-a"], "quorum": "2-of-3" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("n must be the number of gates"),
        "{body}"
    );
    let (status, body) = s
        .put(
            &format!("/v1/workspaces/{ws}/gates/review"),
            &json!({ "gates": ["scripted-gate-a"], "quorum": "most" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("unknown quorum"), "{body}");
    // Unbinding over the API leaves the stage ungated.
    let (status, _) = s
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/workspaces/{ws}/gates/review"),
            Some(crate::ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        transition(&s, ws, &["scripted-gate-a: reject"]).await,
        approved
    );
    s.stop().await;
}

/// Acceptance 3: a rejection sends the task back to plan with the reasons
/// as its plan delta and counts; the sixth trips the infinite-loop guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_go_back_to_plan_until_the_loop_guard_blocks() {
    let s = server("[workspaces.r.gates.review]\ngates = [\"scripted-gate-a\"]\n").await;
    let ws = "r";
    let id = create(&s, ws, &["plan", "implement", "review", "pr"]).await;
    let reject = script(&["scripted-gate-a: reject 12 tests: no test covers the parser"]);
    for round in 1..=5 {
        // The worker that claims plan sees the delta of the last rejection.
        let (status, body) = s
            .post(
                &format!("/v1/workspaces/{ws}/tasks/claim"),
                &json!({ "worker_id": "w1", "wait_ms": 2000 }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let claim = &body["claims"][0];
        assert_eq!(claim["stage"], "plan");
        if round > 1 {
            assert_eq!(
                claim["task"]["plan_delta"]["reasons"][0]["message"], "no test covers the parser",
                "{claim}"
            );
        }
        let (status, _) = s
            .post(
                &format!("/v1/workspaces/{ws}/tasks/{id}/complete"),
                &json!({ "token": claim["token"] }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        advance(&s, ws, &id, "implement", json!(null)).await;
        let t = advance(&s, ws, &id, "review", reject.clone()).await;
        assert_eq!(
            (
                t["state"].as_str(),
                t["stage"].as_str(),
                t["gate_rejections"].as_i64()
            ),
            (Some("queued"), Some("plan"), Some(round)),
            "rejection {round}: {t}"
        );
        assert_eq!(
            t["plan_delta"]["reasons"][0],
            json!({ "gate": "scripted-gate-a", "category": "tests", "message": "no test covers the parser" })
        );
        assert!(alerts(&s, ws, "infinite_loop").await.is_empty());
    }
    advance(&s, ws, &id, "plan", json!(null)).await;
    advance(&s, ws, &id, "implement", json!(null)).await;
    let t = advance(&s, ws, &id, "review", reject).await;
    assert_eq!(t["state"], "blocked", "the sixth rejection: {t}");
    assert!(
        t["last_error"].as_str().unwrap().contains("infinite loop"),
        "{t}"
    );
    let loop_alerts = alerts(&s, ws, "infinite_loop").await;
    assert_eq!(loop_alerts.len(), 1);
    assert_eq!(loop_alerts[0]["severity"], "critical");
    assert_eq!(decisions(&s, ws, &id).await.len(), 6);
    // Still blocked at the next evaluation of the rules: the same alert
    // again (dedup: one row, count 2).
    let app = s.app();
    warden_server::rules::evaluate(&app.store, &app.alerts, &app.config, ws)
        .await
        .unwrap();
    let loop_alerts = alerts(&s, ws, "infinite_loop").await;
    assert_eq!(loop_alerts.len(), 1, "{loop_alerts:?}");
    assert_eq!(loop_alerts[0]["count"], 2, "{loop_alerts:?}");
    // Unblocked by an operator: the alert resolves at the next evaluation
    // of the rules.
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/unblock"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    warden_server::rules::evaluate(&app.store, &app.alerts, &app.config, ws)
        .await
        .unwrap();
    assert_eq!(
        alerts(&s, ws, "infinite_loop").await[0]["status"],
        "resolved"
    );
    s.stop().await;
}

/// Acceptance 4: the breaker fires at the sixth rejection of the last ten
/// verdicts and not before; with `relax` configured the gate then runs
/// with its relaxed config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_breaker_fires_at_the_sixth_rejection_of_ten() {
    let s = server(
        "[workspaces.b.gates.review]\ngates = [\"scripted-gate-a\"]\nrelax = { scripted-gate-a = { override = \"approve\" } }\n",
    )
    .await;
    let ws = "b";
    let reject = ["scripted-gate-a: reject 5 size: too large"];
    for _ in 0..4 {
        assert_eq!(transition(&s, ws, &[]).await.1, "pr");
    }
    for k in 1..=5 {
        assert_eq!(transition(&s, ws, &reject).await.1, "plan");
        assert!(
            alerts(&s, ws, "gate_breaker").await.is_empty(),
            "no alert after {k} rejections"
        );
    }
    // Ten verdicts, five rejections: still not more than half.
    let (_, stats) = s.get(&format!("/v1/workspaces/{ws}/gate-stats")).await;
    assert_eq!(stats["gates"][0]["recent_rejections"], 5, "{stats}");
    assert!(stats["gates"][0]["breaker"].is_null(), "{stats}");
    // The sixth rejection of the last ten.
    assert_eq!(transition(&s, ws, &reject).await.1, "plan");
    let fired = alerts(&s, ws, "gate_breaker").await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(
        fired[0]["summary"]
            .as_str()
            .unwrap()
            .contains("rejected 6 of its last 10"),
        "{fired:?}"
    );
    let (_, stats) = s.get(&format!("/v1/workspaces/{ws}/gate-stats")).await;
    assert_eq!(stats["gates"][0]["breaker"]["state"], "open", "{stats}");
    // Relaxed for 30 minutes: the same script now passes, marked relaxed.
    assert_eq!(transition(&s, ws, &reject).await.1, "pr");
    let (_, v) = s
        .get(&format!(
            "/v1/workspaces/{ws}/verdicts?gate=scripted-gate-a&limit=1"
        ))
        .await;
    assert_eq!(
        (
            v["verdicts"][0]["decision"].as_str(),
            v["verdicts"][0]["relaxed"].as_bool()
        ),
        (Some("approve"), Some(true)),
        "{v}"
    );
    s.stop().await;
}

/// Acceptance 6: a gate that loops or traps gives no verdict; its
/// binding's `on_error` decision (escalate by default, never approve)
/// stands in with the error recorded, and the host keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_gates_escalate_with_an_error_record() {
    let s = server("").await;
    let ws = "h";
    bind(
        &s,
        ws,
        &["scripted-gate-a", "scripted-gate-b", "scripted-gate-c"],
        "1-of-3",
    )
    .await;
    let id = create(&s, ws, &["plan", "review", "pr"]).await;
    advance(&s, ws, &id, "plan", json!(null)).await;
    let started = std::time::Instant::now();
    let health = {
        let client = s.client.clone();
        let url = format!("{}/health", s.url);
        tokio::spawn(async move {
            // The host answers while the hostile gates run.
            let mut slowest = Duration::ZERO;
            for _ in 0..20 {
                let t = std::time::Instant::now();
                let r = client.get(&url).send().await.unwrap();
                assert!(r.status().is_success());
                slowest = slowest.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            slowest
        })
    };
    let t = advance(
        &s,
        ws,
        &id,
        "review",
        script(&[
            "scripted-gate-a: loop",
            "scripted-gate-b: trap",
            "scripted-gate-c: reject",
        ]),
    )
    .await;
    assert!(health.await.unwrap() < Duration::from_millis(500));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        t["state"], "waiting_approval",
        "escalations, not approvals: {t}"
    );
    let d = decisions(&s, ws, &id).await;
    let mut by_gate: Vec<(String, String, String)> = d[0]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["gate"].as_str().unwrap().to_string(),
                v["decision"].as_str().unwrap().to_string(),
                v["error"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    by_gate.sort();
    assert_eq!(
        (by_gate[0].1.as_str(), by_gate[1].1.as_str()),
        ("escalate", "escalate"),
        "{by_gate:?}"
    );
    assert!(by_gate[0].2.starts_with("deadline"), "{by_gate:?}");
    assert!(
        by_gate[1].2.starts_with("panic") && by_gate[1].2.contains("trapped on purpose"),
        "{by_gate:?}"
    );
    assert_eq!(
        (by_gate[2].1.as_str(), by_gate[2].2.as_str()),
        ("reject", "")
    );

    // on_error = "reject": a failing gate rejects; a gate that is not
    // installed counts as failed too.
    let (status, body) = s
        .put(
            &format!("/v1/workspaces/{ws}/gates/review"),
            &json!({ "gates": ["scripted-gate-a", "no-such-gate"], "quorum": "1-of-2", "on_error": "reject" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        transition(&s, ws, &["scripted-gate-a: trap"]).await.1,
        "plan"
    );
    let (_, v) = s
        .get(&format!("/v1/workspaces/{ws}/verdicts?limit=2"))
        .await;
    let errors: Vec<&str> = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["error"].as_str().unwrap_or(""))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("\"no-such-gate\" is not available")),
        "{v}"
    );
    assert!(
        v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["decision"] == "reject"),
        "{v}"
    );
    let (_, stats) = s.get(&format!("/v1/workspaces/{ws}/gate-stats")).await;
    let a = stats["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "scripted-gate-a")
        .unwrap();
    assert_eq!(a["errors"], 2, "{stats}");
    // Still serving.
    let (status, _) = s.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

/// SPEC AL-1: more than 30 % rejections over the window (with at least
/// five verdicts) raises `gate_rejection_spike`; more approvals bring the
/// rate down and resolve it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_rejection_spike_raises_and_resolves_its_alert() {
    let s = server("[alerting.rules]\nevery_ms = 3600000\n").await;
    let ws = "spike";
    bind(&s, ws, &["scripted-gate-a"], "all").await;
    let evaluate = || async {
        let app = s.app();
        warden_server::rules::evaluate(&app.store, &app.alerts, &app.config, ws)
            .await
            .unwrap();
        alerts(&s, ws, "gate_rejection_spike").await
    };
    for _ in 0..3 {
        transition(&s, ws, &[]).await;
    }
    transition(&s, ws, &["scripted-gate-a: reject 10 tests: flaky"]).await;
    // 1 of 4: too few verdicts, and under 30 % anyway.
    assert!(evaluate().await.is_empty());
    transition(&s, ws, &["scripted-gate-a: reject 10 tests: flaky"]).await;
    // 2 of 5 = 40 %.
    let a = evaluate().await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (a[0]["severity"].as_str(), a[0]["status"].as_str()),
        (Some("warning"), Some("open"))
    );
    assert_eq!(a[0]["detail"]["rejected"], 2, "{a:?}");
    assert_eq!(evaluate().await[0]["count"], 2, "deduplicated");
    // 2 of 7 = 29 %: resolved.
    transition(&s, ws, &[]).await;
    transition(&s, ws, &[]).await;
    let a = evaluate().await;
    assert_eq!(
        (a.len(), a[0]["status"].as_str()),
        (1, Some("resolved")),
        "{a:?}"
    );
}
