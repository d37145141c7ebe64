//! The bundled `repair-common-issues` playbook (SPEC PB-6, PB-2, PB-4) on a
//! real server: diagnose finds stuck tasks and tasks blocked by a repeated
//! failure and changes nothing; plan records the repairs as planned
//! actions and changes nothing; apply resets the stuck tasks and files one
//! fix task per distinct failure, each call an audited action.
//!
//! Tasks with an expired lease are not seeded here: the scheduler's lease
//! sweeper requeues them within 250 ms, before any run could see them, so
//! stuck tasks (a long lease, no event for `stuck_after_secs`) stand in for
//! the "worker gone" case.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::TestServer;

const CONFIG: &str = r#"
[scheduler]
backoff_base_ms = 20
backoff_max_ms = 100
[workspaces.w.plugins.repair-common-issues]
config = { stuck_after_secs = 1 }
[workspaces.tight.plugins.repair-common-issues]
config = { stuck_after_secs = 1 }
limits = { steps = 2 }
"#;

async fn create(s: &TestServer, ws: &str, title: &str) -> String {
    let body = json!({ "title": title, "pipeline": ["work", "check"], "max_attempts": 10 });
    let (status, task) = s.post(&format!("/v1/workspaces/{ws}/tasks"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    task["id"].as_str().unwrap().to_string()
}

/// Claims the next stage for `worker`, waiting up to 5 s for one.
async fn claim(s: &TestServer, ws: &str, worker: &str, lease_ms: u64) -> Value {
    let body = json!({ "worker_id": worker, "lease_ms": lease_ms, "wait_ms": 5000 });
    let (status, got) = s
        .post(&format!("/v1/workspaces/{ws}/tasks/claim"), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    got["claims"][0].clone()
}

async fn task(s: &TestServer, ws: &str, id: &str) -> Value {
    let (status, t) = s.get(&format!("/v1/workspaces/{ws}/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t
}

async fn tasks(s: &TestServer, ws: &str) -> Vec<Value> {
    let (status, body) = s.get(&format!("/v1/workspaces/{ws}/tasks?limit=500")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["tasks"].as_array().unwrap().clone()
}

/// Fails `id`'s stage with `error` until the same-failure guard blocks it.
async fn fail_until_blocked(s: &TestServer, ws: &str, id: &str, error: &str) {
    for _ in 0..10 {
        let c = claim(s, ws, "failing-worker", 30_000).await;
        assert_eq!(c["task_id"], id, "only this task is queued: {c}");
        let (status, body) = s
            .post(
                &format!("/v1/workspaces/{ws}/tasks/{id}/fail"),
                &json!({ "token": c["token"], "error": error }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["task"]["state"] == "blocked" {
            return;
        }
    }
    panic!("task {id} was not blocked after 10 identical failures");
}

async fn run(s: &TestServer, ws: &str, mode: &str) -> Value {
    let run = s
        .run(ws, "repair-common-issues", &json!({ "mode": mode }))
        .await;
    assert_eq!(run["status"], "succeeded", "{mode} run: {run}");
    run
}

fn finding<'a>(run: &'a Value, code: &str) -> Vec<&'a Value> {
    run["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

fn calls(actions: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["call"].as_str().unwrap().to_string(),
                a["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_common_issues_diagnoses_plans_and_applies_audited_repairs() {
    let s = TestServer::start(CONFIG).await;
    let ws = "w";
    // Three tasks blocked by a repeated failure: two by one error, one by
    // another. Seeded one at a time so that each claim gets its own task.
    let db_error = "error: connection refused to db.internal:5432";
    let blocked_a = create(&s, ws, "blocked a").await;
    fail_until_blocked(&s, ws, &blocked_a, db_error).await;
    let blocked_b = create(&s, ws, "blocked b").await;
    fail_until_blocked(&s, ws, &blocked_b, db_error).await;
    let blocked_c = create(&s, ws, "blocked c").await;
    fail_until_blocked(&s, ws, &blocked_c, "panic: index out of bounds in parser").await;
    // Two stuck tasks: claimed with a ten-minute lease, then silence.
    let stuck_a = create(&s, ws, "stuck a").await;
    let stuck_b = create(&s, ws, "stuck b").await;
    let lease_a = claim(&s, ws, "hung-worker", 600_000).await;
    let lease_b = claim(&s, ws, "hung-worker", 600_000).await;
    assert_eq!(lease_a["task_id"], stuck_a);
    assert_eq!(lease_b["task_id"], stuck_b);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = tasks(&s, ws).await;
    assert_eq!(before.len(), 5);

    // Diagnose: findings, no action of any kind, nothing changed.
    let diagnose = run(&s, ws, "diagnose").await;
    let stuck = finding(&diagnose, "tasks.stuck");
    assert_eq!(stuck.len(), 1, "{diagnose}");
    let evidence = stuck[0]["evidence"].as_str().unwrap();
    assert!(
        evidence.contains(&stuck_a) && evidence.contains(&stuck_b),
        "{evidence}"
    );
    let failures = finding(&diagnose, "tasks.same_failure");
    assert_eq!(
        failures.len(),
        2,
        "one finding per distinct failure: {diagnose}"
    );
    assert!(
        diagnose["report"]["manual_actions"][0]
            .as_str()
            .unwrap()
            .contains("4 repair(s)")
    );
    for kind in ["applied", "planned", "refused"] {
        assert!(
            diagnose["actions"][kind].as_array().unwrap().is_empty(),
            "{diagnose}"
        );
    }
    assert_eq!(tasks(&s, ws).await, before, "diagnose changes nothing");

    // Plan: the five repairs as planned actions; still nothing changed.
    let plan = run(&s, ws, "plan").await;
    assert!(plan["actions"]["applied"].as_array().unwrap().is_empty());
    let mut expected = vec![
        ("tasks.create".to_string(), String::new()),
        ("tasks.create".to_string(), String::new()),
        ("tasks.reset".to_string(), stuck_a.clone()),
        ("tasks.reset".to_string(), stuck_b.clone()),
    ];
    expected.sort();
    // A task to create has no target.
    assert_eq!(calls(&plan["actions"]["planned"]), expected, "{plan}");
    assert_eq!(tasks(&s, ws).await, before, "plan changes nothing");

    // Apply: stuck tasks back in the queue with attempts cleared, one fix
    // task per distinct failure.
    let apply = run(&s, ws, "apply").await;
    assert!(apply["actions"]["planned"].as_array().unwrap().is_empty());
    assert_eq!(
        apply["actions"]["applied"].as_array().unwrap().len(),
        4,
        "{apply}"
    );
    for id in [&stuck_a, &stuck_b] {
        let t = task(&s, ws, id).await;
        assert_eq!(
            (t["state"].as_str(), t["attempts"].as_i64()),
            (Some("queued"), Some(0)),
            "{t}"
        );
        assert_eq!(t["lease"], Value::Null);
    }
    // The hung worker's lease is gone: its late completion is refused.
    let (status, late) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{stuck_a}/complete"),
            &json!({ "token": lease_a["token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
    let fixes: Vec<Value> = tasks(&s, ws)
        .await
        .into_iter()
        .filter(|t| {
            t["dedup_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("fix:"))
        })
        .collect();
    let mut keys: Vec<&str> = fixes
        .iter()
        .map(|t| t["dedup_key"].as_str().unwrap())
        .collect();
    keys.sort();
    let mut want = vec![
        format!("fix:{}", std::cmp::min(&blocked_a, &blocked_b)),
        format!("fix:{blocked_c}"),
    ];
    want.sort();
    assert_eq!(keys, want, "{fixes:?}");
    assert!(
        fixes
            .iter()
            .any(|t| t["title"].as_str().unwrap().contains("connection refused"))
    );
    // The blocked tasks stay blocked: unblocking them is a human's call.
    for id in [&blocked_a, &blocked_b, &blocked_c] {
        assert_eq!(task(&s, ws, id).await["state"], "blocked");
    }

    // Every applied call is audited with the run, digest, actor and
    // before/after.
    let run_id = apply["id"].as_str().unwrap();
    let (status, audited) = s
        .get(&format!("/v1/workspaces/{ws}/runs/{run_id}/actions"))
        .await;
    assert_eq!(status, StatusCode::OK, "{audited}");
    let audited = audited["actions"].as_array().unwrap();
    assert_eq!(audited.len(), 4, "{audited:?}");
    for a in audited {
        assert_eq!(a["status"], "applied", "{a}");
        assert_eq!(a["digest"], apply["digest"], "{a}");
        assert!(a["digest"].as_str().unwrap().starts_with("sha256:"), "{a}");
        assert_eq!(a["actor"], "bootstrap-admin", "{a}");
        assert!(a["after"].is_object(), "{a}");
        if a["call"] == "tasks.reset" {
            assert_eq!(a["before"]["state"], "running", "{a}");
            assert_eq!(a["after"]["state"], "queued", "{a}");
        } else {
            assert_eq!(a["call"], "tasks.create", "{a}");
            assert!(a["detail"].is_string(), "the created task's id: {a}");
        }
    }

    // A second apply finds nothing stuck and files no second fix task.
    let again = run(&s, ws, "apply").await;
    assert!(finding(&again, "tasks.stuck").is_empty(), "{again}");
    let fixes_after = tasks(&s, ws)
        .await
        .into_iter()
        .filter(|t| {
            t["dedup_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("fix:"))
        })
        .count();
    assert_eq!(fixes_after, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_common_issues_flags_what_the_step_budget_leaves_as_manual_actions() {
    let s = TestServer::start(CONFIG).await;
    let ws = "tight";
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(create(&s, ws, &format!("stuck {i}")).await);
    }
    for _ in 0..3 {
        claim(&s, ws, "hung-worker", 600_000).await;
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let apply = run(&s, ws, "apply").await;
    assert_eq!(
        apply["actions"]["applied"].as_array().unwrap().len(),
        2,
        "{apply}"
    );
    let manual = apply["report"]["manual_actions"].as_array().unwrap();
    assert_eq!(manual.len(), 1, "{apply}");
    let manual = manual[0].as_str().unwrap();
    assert!(
        manual.contains("step budget spent") && manual.contains("reset task"),
        "{manual}"
    );
    let queued = ids.iter().filter(|id| manual.contains(id.as_str())).count();
    assert_eq!(queued, 1, "the manual action names the task left: {manual}");
    let mut states = Vec::new();
    for id in &ids {
        states.push(
            task(&s, ws, id).await["state"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    states.sort();
    assert_eq!(states, vec!["queued", "queued", "running"]);
    s.stop().await;
}

/// The bundled playbook's `.wasm`, as embedded in the binary, written to a
/// file for the testkit.
fn bundled_repair_playbook(dir: &std::path::Path) -> warden_testkit::TestPlugin {
    let (_, bytes) = warden_server::app::bundled::BUNDLED
        .iter()
        .find(|(name, _)| *name == "repair-common-issues")
        .expect("repair-common-issues is bundled");
    let path = dir.join("repair-common-issues.wasm");
    std::fs::write(&path, bytes).unwrap();
    warden_testkit::TestPlugin::load(&path).unwrap()
}

/// Expired leases cannot be seeded on a real server (its sweeper requeues
/// them first), so this path runs on the testkit's fake host: requeue
/// each, within the step budget, the rest flagged as manual actions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_common_issues_requeues_expired_leases_within_the_step_budget() {
    use warden_testkit::{ActionStatus, FakeHost, Mode};
    let dir = tempfile::tempdir().unwrap();
    let plugin = bundled_repair_playbook(dir.path());
    assert_eq!(
        plugin.meta().capabilities.to_string(),
        "health:read, tasks:read, tasks:write"
    );
    let host = FakeHost::new();
    let ids: Vec<String> = (0..12)
        .map(|i| {
            let id = host.add_task(&format!("orphan {i}"), "implement", "running");
            host.make_stuck(&id, Duration::from_secs(30));
            id
        })
        .collect();
    let healthy = host.add_task("healthy", "verify", "queued");

    let diagnose = plugin.run(&host, Mode::Diagnose, "null").await;
    let report = diagnose.report().unwrap();
    assert_eq!(report.findings[0].code, "tasks.lease_expired", "{report:?}");
    assert!(report.findings[0].summary.starts_with("12 "), "{report:?}");
    assert!(diagnose.actions().is_empty());

    let plan = plugin.run(&host, Mode::Plan, "null").await;
    let statuses: Vec<ActionStatus> = plan.actions().iter().map(|a| a.status).collect();
    assert_eq!(statuses[..10], [ActionStatus::Planned; 10]);
    assert_eq!(statuses[10..], [ActionStatus::OverBudget]);
    assert!(host.tasks().iter().filter(|t| t.lease_expired).count() == 12);

    let apply = plugin.run(&host, Mode::Apply, "null").await;
    let report = apply.report().unwrap();
    let applied = apply
        .actions()
        .iter()
        .filter(|a| a.status == ActionStatus::Applied)
        .count();
    assert_eq!(applied, 10, "the default budget is 10 steps");
    assert_eq!(report.manual_actions.len(), 2, "{report:?}");
    assert!(
        report
            .manual_actions
            .iter()
            .all(|m| m.starts_with("requeue task") && m.ends_with("(step budget spent)")),
        "{report:?}"
    );
    let queued = ids
        .iter()
        .filter(|id| host.task(id).unwrap().state == "queued")
        .count();
    assert_eq!(queued, 10);
    assert_eq!(host.task(&healthy).unwrap().state, "queued");

    // The next run finishes the job.
    let again = plugin.run(&host, Mode::Apply, "null").await;
    assert!(again.report().unwrap().manual_actions.is_empty());
    assert!(
        ids.iter()
            .all(|id| host.task(id).unwrap().state == "queued")
    );
}
