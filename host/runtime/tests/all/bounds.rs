//! What a plugin can make the host grow is bounded (issue 15): arguments
//! are checked before events copy them, every mode spends the step budget,
//! playbooks leave reserved slots to gates and policies, and NUL
//! characters a plugin hands the host are stripped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_runtime::meta::{CapabilitySet, Limits};
use warden_runtime::types::{Decision, Mode, RouteRequest, Submission};
use warden_runtime::{
    ActionStatus, CallInfo, GateRequest, MemoryBackend, Mutation, RouteCall, RunEvent, Runtime,
    RuntimeConfig,
};
use warden_test_artifacts as artifacts;

use crate::{Run, error_text, load, run, runtime};

#[tokio::test]
async fn a_diagnose_run_spends_its_step_budget_and_ends_on_overrun() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_STEPS);
    let backend = Arc::new(MemoryBackend::new());
    let id = backend.add_task("ws", "victim", "plan", "queued");
    let outcome = run(
        &rt,
        &plugin,
        &backend,
        Run {
            mode: Mode::Diagnose,
            limits: Limits {
                deadline_ms: Some(2_000),
                ..Limits::default()
            },
            ..Run::default()
        },
    )
    .await;
    assert_eq!(error_text(&outcome), "step budget 10 spent");
    let statuses: Vec<ActionStatus> = outcome.actions.iter().map(|a| a.status).collect();
    let mut expected = vec![ActionStatus::Denied; 10];
    expected.push(ActionStatus::OverBudget);
    assert_eq!(statuses, expected);
    assert_eq!(backend.actions().len(), 11);
    assert_eq!(outcome.usage.steps, 10);
    assert_eq!(backend.task(&id).unwrap().state, "queued");
}

#[tokio::test]
async fn a_mutation_with_an_oversized_reason_records_nothing_in_any_mode() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_STEPS);
    for mode in [Mode::Diagnose, Mode::Plan, Mode::Apply] {
        let backend = Arc::new(MemoryBackend::new());
        backend.add_task("ws", "victim", "plan", "queued");
        let outcome = run(
            &rt,
            &plugin,
            &backend,
            Run {
                mode,
                input: "65536",
                limits: Limits {
                    deadline_ms: Some(300),
                    ..Limits::default()
                },
                ..Run::default()
            },
        )
        .await;
        assert_eq!(error_text(&outcome), "deadline of 300 ms exceeded");
        assert!(outcome.actions.is_empty(), "{mode:?}");
        assert!(backend.actions().is_empty(), "{mode:?}");
        assert_eq!(outcome.usage.steps, 0);
        let answer = backend
            .events()
            .into_iter()
            .find_map(|(_, e)| match e {
                RunEvent::ToolResult {
                    name: "tasks.requeue",
                    summary,
                    ..
                } => Some(summary),
                _ => None,
            })
            .unwrap();
        assert!(
            answer.starts_with("invalid: reason \"rrrr")
                && answer.ends_with(" is 65536 bytes, over the 1024 byte limit"),
            "{answer}"
        );
    }
}

/// Every string in an event's arguments, however deep.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn oversized_arguments_are_answered_without_their_bytes_in_events() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_ARGS);
    for call in ["tasks.get", "kv.get", "kv.list-keys"] {
        let backend = Arc::new(MemoryBackend::new());
        let input = format!("[\"{call}\", {}]", 4 << 20);
        let outcome = run(
            &rt,
            &plugin,
            &backend,
            Run {
                input: &input,
                limits: Limits {
                    deadline_ms: Some(300),
                    ..Limits::default()
                },
                ..Run::default()
            },
        )
        .await;
        assert_eq!(error_text(&outcome), "deadline of 300 ms exceeded");
        let events = backend.events();
        assert!(outcome.usage.host_calls > 1, "{call}");
        let (mut starts, mut results) = (0, 0);
        for (_, e) in events {
            match e {
                RunEvent::ToolStart { args, .. } => {
                    let mut all = Vec::new();
                    strings(&args, &mut all);
                    let longest = all.iter().map(String::len).max().unwrap_or(0);
                    assert!(longest <= 131, "{call}: an argument of {longest} bytes");
                    starts += 1;
                }
                RunEvent::ToolResult { ok, summary, .. } => {
                    assert!(!ok);
                    assert!(summary.starts_with("invalid: "), "{summary}");
                    assert!(summary.contains("is 4194304 bytes, over the"), "{summary}");
                    assert!(summary.len() < 150, "{summary}");
                    results += 1;
                }
                _ => {}
            }
        }
        assert!(starts > 1 && results > 1, "{call}: {starts} {results}");
    }
}

fn info(plugin: &warden_runtime::Plugin, id: &str) -> CallInfo {
    CallInfo {
        run_id: id.to_string(),
        workspace: "ws".into(),
        plugin: plugin.meta().name.clone(),
        version: plugin.meta().version.to_string(),
        digest: plugin.digest().to_string(),
        mode: Mode::Apply,
        actor: "test".into(),
    }
}

fn submission() -> Submission {
    Submission {
        workspace: "ws".into(),
        task_id: "t1".into(),
        stage: "implement".into(),
        attempt: 1,
        diff: None,
        diff_stats: None,
        tests: None,
        rubric: Vec::new(),
        artifacts: Vec::new(),
        text: None,
    }
}

fn route_request() -> RouteRequest {
    RouteRequest {
        workspace: "ws".into(),
        mode: "normal".into(),
        model_hint: None,
        prompt_tokens: 10,
        max_output_tokens: None,
        task_id: None,
        stage: None,
        budget_left_usd: None,
        budget_left_tokens: None,
        providers: Vec::new(),
    }
}

fn gate_request(plugin: &warden_runtime::Plugin, deadline_ms: u64) -> GateRequest {
    GateRequest {
        info: info(plugin, "eval"),
        granted: CapabilitySet::parse(["kv"]).expect("grants"),
        config: Arc::default(),
        limits: Limits {
            deadline_ms: Some(deadline_ms),
            ..Limits::default()
        },
        backend: Arc::new(MemoryBackend::new()),
    }
}

fn route_call(plugin: &warden_runtime::Plugin, deadline_ms: u64) -> RouteCall {
    RouteCall {
        info: info(plugin, "route"),
        granted: CapabilitySet::default(),
        config: Arc::new(
            [("candidates".to_string(), "primary:model-a".to_string())]
                .into_iter()
                .collect(),
        ),
        limits: Limits {
            deadline_ms: Some(deadline_ms),
            ..Limits::default()
        },
        backend: Arc::new(MemoryBackend::new()),
    }
}

/// Regression: playbook runs could hold every instance slot, and a gate or
/// routing policy called meanwhile waited for one until its deadline and
/// failed as busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playbooks_leave_the_reserved_slots_to_gates_and_routing_policies() {
    let rt = Arc::new(
        Runtime::new(RuntimeConfig {
            max_concurrent_calls: 3,
            reserved_calls: 1,
            ..RuntimeConfig::default()
        })
        .unwrap(),
    );
    let hog = load(&rt, artifacts::HOSTILE_HOG);
    let gate = load(&rt, artifacts::GATE_ECHO);
    let router = load(&rt, artifacts::ROUTER_CONFIG);
    let backend = Arc::new(MemoryBackend::new());
    let started = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..4 {
        let (rt, hog, backend) = (rt.clone(), hog.clone(), backend.clone());
        runs.push(tokio::spawn(async move {
            run(
                &rt,
                &hog,
                &backend,
                Run {
                    input: "800",
                    ..Run::default()
                },
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Two slots are the playbooks' share, both busy; the third is free.
    let verdict = rt
        .evaluate_gate(&gate, gate_request(&gate, 300), &submission())
        .await;
    let verdict = verdict.result.expect("the gate got the reserved slot");
    assert_eq!(verdict.decision, Decision::Approve);
    let decision = rt
        .route_request(&router, route_call(&router, 300), &route_request())
        .await;
    decision.result.expect("the policy got the reserved slot");
    for r in runs {
        let outcome = r.await.unwrap();
        outcome.result.expect("every run gets its turn");
    }
    // Four runs of 800 ms, two at a time.
    assert!(started.elapsed() >= Duration::from_millis(1600));
}

#[test]
fn the_playbooks_share_leaves_at_least_one_slot() {
    let share = |max, reserved| {
        RuntimeConfig {
            max_concurrent_calls: max,
            reserved_calls: reserved,
            ..RuntimeConfig::default()
        }
        .playbook_slots()
    };
    assert_eq!(share(32, 8), 24);
    assert_eq!(share(4, 1), 3);
    assert_eq!(share(4, 9), 1);
    assert_eq!(share(1, 0), 1);
    assert_eq!(share(0, 0), 1);
}

#[tokio::test]
async fn nul_is_stripped_from_what_plugins_hand_the_host() {
    let rt = runtime();
    let gate = load(&rt, artifacts::GATE_NUL);
    let verdict = rt
        .evaluate_gate(&gate, gate_request(&gate, 5_000), &submission())
        .await
        .result
        .unwrap();
    let reasons: Vec<(&str, &str)> = verdict
        .reasons
        .iter()
        .map(|r| (r.category.as_str(), r.message.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [("nulcategory", "nulin a message"), ("plain", "no nul here")]
    );

    let router = load(&rt, artifacts::ROUTER_NUL);
    let decision = rt
        .route_request(&router, route_call(&router, 5_000), &route_request())
        .await
        .result
        .unwrap();
    assert_eq!(decision.reason, "nulin a reason");
    assert_eq!(decision.candidates[0].provider, "primary");
    assert_eq!(decision.candidates[0].model, "model-a");

    let playbook = load(&rt, artifacts::HOSTILE_NUL);
    let backend = Arc::new(MemoryBackend::new());
    backend.add_task("ws", "victim", "plan", "queued");
    let outcome = run(&rt, &playbook, &backend, Run::default()).await;
    let report = outcome.result.unwrap();
    assert_eq!(report.summary, "nulin a summary");
    assert_eq!(report.findings[1].code, "nulcode");
    assert_eq!(report.findings[1].evidence.as_deref(), Some("nulevidence"));
    assert_eq!(report.manual_actions, ["nulmanual"]);
    let mutations: Vec<Mutation> = backend
        .actions()
        .into_iter()
        .map(|(_, a)| a.mutation)
        .collect();
    assert!(
        matches!(&mutations[0], Mutation::Block { reason, .. } if reason == "nulin a reason"),
        "{mutations:?}"
    );
    assert!(
        matches!(&mutations[1], Mutation::Create { title, body, .. } if title == "nulin a title" && body == "nulin a body"),
        "{mutations:?}"
    );
    assert!(
        outcome.logs.iter().any(|l| l.message == "nulin a log line"),
        "{:?}",
        outcome.logs
    );
    let failed = run(
        &rt,
        &playbook,
        &backend,
        Run {
            input: "\"error\"",
            ..Run::default()
        },
    )
    .await;
    assert_eq!(
        error_text(&failed),
        "plugin returned an error: nulin an error"
    );
}

/// One component instance may use one slot's share of the pool and no
/// more; a runtime with a single slot still runs what the SDK builds, of
/// every world: the share is enough for a real plugin.
#[tokio::test]
async fn one_slot_holds_a_plugin_of_every_world() {
    let rt = Runtime::new(RuntimeConfig {
        max_concurrent_calls: 1,
        reserved_calls: 0,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let backend = Arc::new(MemoryBackend::new());
    for path in [
        artifacts::BUNDLED_DIAGNOSE_SYSTEM,
        artifacts::BUNDLED_REPAIR_COMMON_ISSUES,
        artifacts::HEALTHY,
    ] {
        let plugin = load(&rt, path);
        let outcome = run(
            &rt,
            &plugin,
            &backend,
            Run {
                mode: Mode::Diagnose,
                ..Run::default()
            },
        )
        .await;
        outcome
            .result
            .unwrap_or_else(|e| panic!("{}: {e}", plugin.meta().name));
    }
    for path in [artifacts::BUNDLED_SECRET_SCAN, artifacts::GATE_ECHO] {
        let gate = load(&rt, path);
        rt.evaluate_gate(&gate, gate_request(&gate, 5_000), &submission())
            .await
            .result
            .unwrap_or_else(|e| panic!("{}: {e}", gate.meta().name));
    }
    let router = load(&rt, artifacts::ROUTER_CONFIG);
    rt.route_request(&router, route_call(&router, 5_000), &route_request())
        .await
        .result
        .unwrap();
}
