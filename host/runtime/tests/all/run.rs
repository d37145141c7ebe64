//! Normal runs: reports, logs, kv, config, modes, audit (SPEC PB-2..PB-4).

use std::sync::Arc;
use std::time::Duration;

use warden_runtime::types::Mode;
use warden_runtime::{ActionStatus, LogSource, MemoryBackend, RunError, RunEvent};
use warden_test_artifacts as artifacts;

use crate::{Run, load, run, runtime};

#[tokio::test]
async fn healthy_plugin_reports_logs_and_keeps_state() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HEALTHY);
    let backend = Arc::new(MemoryBackend::new());
    backend.add_task("ws", "a", "plan", "queued");
    backend.add_task("other", "not mine", "plan", "queued");

    let outcome = run(
        &rt,
        &plugin,
        &backend,
        Run {
            input: r#"{"x":1}"#,
            ..Run::default()
        },
    )
    .await;
    let report = outcome.result.as_ref().expect("report");
    let texts: Vec<&str> = report.findings.iter().map(|f| f.summary.as_str()).collect();
    // Workspaces are isolated: one task, not two.
    assert_eq!(texts, vec!["1 task(s)", "run number 1", r#"{"x":1}"#, "hi"]);
    assert_eq!(report.findings[0].evidence.as_deref(), Some("queued=1"));

    let sources: Vec<(LogSource, &str)> = outcome
        .logs
        .iter()
        .map(|l| (l.source, l.message.as_str()))
        .collect();
    assert!(
        sources.contains(&(LogSource::Plugin, "healthy starting")),
        "{sources:?}"
    );
    assert!(
        sources.contains(&(LogSource::Stdout, "hello from stdout")),
        "{sources:?}"
    );
    assert!(outcome.usage.fuel > 0);
    assert!(outcome.usage.peak_memory_bytes > 0);
    assert_eq!(outcome.usage.host_calls, 4);

    let again = run(&rt, &plugin, &backend, Run::default()).await;
    assert_eq!(again.result.unwrap().findings[1].summary, "run number 2");
    assert_eq!(
        backend.kv_value("ws", "healthy", "runs").as_deref(),
        Some(&b"2"[..])
    );

    // Host calls are announced and answered in order.
    let names: Vec<String> = backend
        .events()
        .iter()
        .filter_map(|(_, e)| match e {
            RunEvent::ToolStart { call, name, .. } => Some(format!("start {call} {name}")),
            RunEvent::ToolResult { call, name, ok, .. } => {
                Some(format!("result {call} {name} {ok}"))
            }
            _ => None,
        })
        .take(4)
        .collect();
    assert_eq!(
        names,
        vec![
            "start 1 health.take",
            "result 1 health.take true",
            "start 2 tasks.list",
            "result 2 tasks.list true"
        ]
    );
}

#[tokio::test]
async fn plan_mode_records_actions_without_applying_them() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::PLAN_MUTATOR);
    let backend = Arc::new(MemoryBackend::new());
    let id = backend.add_task("ws", "stuck", "implement", "queued");
    backend.make_stuck(&id, Duration::from_secs(3600));

    let outcome = run(
        &rt,
        &plugin,
        &backend,
        Run {
            mode: Mode::Plan,
            ..Run::default()
        },
    )
    .await;
    let report = outcome.result.expect("report");
    let statuses: Vec<(ActionStatus, &str)> = outcome
        .actions
        .iter()
        .map(|a| (a.status, a.mutation.call()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (ActionStatus::Planned, "tasks.requeue"),
            (ActionStatus::Planned, "tasks.create")
        ]
    );
    // Nothing changed: the task is still running, no task was created.
    assert_eq!(backend.task(&id).unwrap().state, "running");
    assert_eq!(backend.tasks().len(), 1);
    let created = &report.findings[1].summary;
    assert_eq!(created, r#"Ok("planned-2")"#);
    assert!(
        report.findings[2].summary.starts_with("Err(NotFound("),
        "{}",
        report.findings[2].summary
    );
    // Planned actions count against the step budget too.
    assert_eq!(outcome.usage.steps, 2);
    assert_eq!(backend.actions().len(), 2);
}

#[tokio::test]
async fn apply_mode_applies_and_audits_with_before_and_after() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::PLAN_MUTATOR);
    let backend = Arc::new(MemoryBackend::new());
    let id = backend.add_task("ws", "stuck", "implement", "queued");
    backend.make_stuck(&id, Duration::from_secs(3600));

    let outcome = run(&rt, &plugin, &backend, Run::default()).await;
    outcome.result.expect("report");
    assert_eq!(backend.task(&id).unwrap().state, "queued");
    assert_eq!(backend.tasks().len(), 2);
    let requeue = &outcome.actions[0];
    assert_eq!(requeue.status, ActionStatus::Applied);
    assert_eq!(requeue.before.as_ref().unwrap()["state"], "running");
    assert_eq!(requeue.after.as_ref().unwrap()["state"], "queued");
    let recorded = backend.actions();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].0, "run-plan-mutator");
}

#[tokio::test]
async fn diagnose_mode_denies_mutations() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::PLAN_MUTATOR);
    let backend = Arc::new(MemoryBackend::new());
    let id = backend.add_task("ws", "stuck", "implement", "queued");
    backend.make_stuck(&id, Duration::from_secs(3600));

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
    let report = outcome.result.expect("report");
    assert!(
        report.findings[0]
            .summary
            .contains("mode diagnose is read-only"),
        "{}",
        report.findings[0].summary
    );
    assert!(
        outcome
            .actions
            .iter()
            .all(|a| a.status == ActionStatus::Denied)
    );
    // Denied actions spend the step budget too.
    assert_eq!(outcome.usage.steps, outcome.actions.len() as u64);
    assert_eq!(backend.task(&id).unwrap().state, "running");
}

#[tokio::test]
async fn a_workspace_without_the_grant_cannot_run_the_plugin() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_UNGRANTED);
    let backend = Arc::new(MemoryBackend::new());
    let id = backend.add_task("ws", "victim", "plan", "queued");
    let outcome = run(
        &rt,
        &plugin,
        &backend,
        Run {
            grants: &["tasks:read"],
            ..Run::default()
        },
    )
    .await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::NotGranted {
            capability: "tasks:write".parse().unwrap(),
            import: "warden:plugin/tasks#block".into(),
        }
    );
    assert_eq!(backend.task(&id).unwrap().state, "queued");
}
