//! Quality gates: `evaluate` through the shared call machinery, verdict
//! checks, and the gate world's limits (SPEC QG-2, PL-1, PL-5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_runtime::meta::{CapabilitySet, Limits, PluginKind};
use warden_runtime::types::{
    Artifact, Decision, DiffStats, Mode, RubricScore, Submission, TestResults,
};
use warden_runtime::{
    CallInfo, GateOutcome, GateRequest, LoadError, LogSource, MemoryBackend, Plugin, RunError,
    RunEvent, Runtime,
};
use warden_test_artifacts as artifacts;

use crate::{Run, load, run, runtime};

fn submission() -> Submission {
    Submission {
        workspace: "ws".into(),
        task_id: "t42".into(),
        stage: "implement".into(),
        attempt: 2,
        diff: Some("--- a/x.rs\n+++ b/x.rs\n@@ -1 +1,2 @@\n-a\n+b\n+c\n".into()),
        diff_stats: None,
        tests: Some(TestResults {
            passed: 10,
            failed: 1,
            skipped: 2,
            failures: vec!["parser::empty".into()],
        }),
        rubric: vec![RubricScore {
            reviewer: "alice".into(),
            criterion: "clarity".into(),
            score: 80,
        }],
        artifacts: vec![Artifact {
            name: "report.txt".into(),
            media_type: "text/plain".into(),
            content: "hello".into(),
        }],
        text: Some("done".into()),
    }
}

struct Gate<'a> {
    grants: &'a [&'a str],
    config: &'a [(&'a str, &'a str)],
    limits: Limits,
    mode: Mode,
}

impl Default for Gate<'_> {
    fn default() -> Self {
        Gate {
            grants: &["kv"],
            config: &[],
            limits: Limits::default(),
            mode: Mode::Diagnose,
        }
    }
}

async fn evaluate(
    rt: &Runtime,
    plugin: &Plugin,
    backend: &Arc<MemoryBackend>,
    spec: Gate<'_>,
    submission: &Submission,
) -> GateOutcome {
    let req = GateRequest {
        info: CallInfo {
            run_id: format!("eval-{}", plugin.meta().name),
            workspace: "ws".into(),
            plugin: plugin.meta().name.clone(),
            version: plugin.meta().version.to_string(),
            digest: plugin.digest().to_string(),
            // Whatever the caller says, a gate runs in apply mode.
            mode: spec.mode,
            actor: "test".into(),
        },
        granted: CapabilitySet::parse(spec.grants).expect("grants"),
        config: Arc::new(
            spec.config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        limits: spec.limits,
        backend: backend.clone(),
    };
    rt.evaluate_gate(plugin, req, submission).await
}

fn reasons(outcome: &GateOutcome) -> Vec<(String, String)> {
    let verdict = outcome.result.as_ref().expect("verdict");
    verdict
        .reasons
        .iter()
        .map(|r| (r.category.clone(), r.message.clone()))
        .collect()
}

#[tokio::test]
async fn a_gate_sees_the_whole_submission_and_keeps_state() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::GATE_ECHO);
    assert_eq!(plugin.meta().kind, PluginKind::QualityGate);
    let backend = Arc::new(MemoryBackend::new());

    let outcome = evaluate(&rt, &plugin, &backend, Gate::default(), &submission()).await;
    let verdict = outcome.result.as_ref().expect("verdict");
    assert_eq!(verdict.decision, Decision::Approve);
    assert_eq!(verdict.score, 90);
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        reasons(&outcome),
        pairs(&[
            ("echo", "ws t42 implement attempt 2"),
            ("count", "evaluation 1"),
            // No diff-stats were sent: the SDK counted the diff.
            ("diff", "1 file(s), +2 -1"),
            ("tests", "10 passed, 1 failed, 2 skipped: parser::empty"),
            ("rubric", "alice clarity 80"),
            ("artifact", "report.txt text/plain 5"),
            ("text", "done"),
        ])
    );
    let logs: Vec<(LogSource, &str)> = outcome
        .logs
        .iter()
        .map(|l| (l.source, l.message.as_str()))
        .collect();
    assert!(
        logs.contains(&(LogSource::Plugin, "gate-echo evaluating")),
        "{logs:?}"
    );
    assert!(
        logs.contains(&(LogSource::Stdout, "stdout of gate-echo")),
        "{logs:?}"
    );
    assert!(outcome.usage.fuel > 0);
    assert_eq!(outcome.usage.host_calls, 2, "kv.get and kv.set");
    // kv is the gate's own memory, not an audited step.
    assert_eq!(outcome.usage.steps, 0);

    // Its kv writes are real, even though the caller asked for diagnose.
    let mut given = submission();
    given.diff_stats = Some(DiffStats {
        files_changed: 7,
        insertions: 70,
        deletions: 7,
    });
    let again = evaluate(
        &rt,
        &plugin,
        &backend,
        Gate {
            config: &[("score", "55")],
            ..Gate::default()
        },
        &given,
    )
    .await;
    let verdict = again.result.as_ref().expect("verdict");
    assert_eq!(verdict.score, 55);
    let got = reasons(&again);
    assert_eq!(got[1].1, "evaluation 2");
    assert_eq!(
        got[2].1, "7 file(s), +70 -7",
        "diff-stats win over the diff"
    );
    assert_eq!(
        backend
            .kv_value("ws", "gate-echo", "evaluations")
            .as_deref(),
        Some(&b"2"[..])
    );
    let kv_calls = backend
        .events()
        .iter()
        .filter(|(run, e)| {
            run == "eval-gate-echo" && matches!(e, RunEvent::ToolStart { name: "kv.set", .. })
        })
        .count();
    assert_eq!(kv_calls, 2);
}

#[tokio::test]
async fn a_gate_without_its_kv_grant_does_not_run() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::GATE_ECHO);
    let backend = Arc::new(MemoryBackend::new());
    let outcome = evaluate(
        &rt,
        &plugin,
        &backend,
        Gate {
            grants: &[],
            ..Gate::default()
        },
        &submission(),
    )
    .await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::NotGranted {
            capability: "kv".parse().unwrap(),
            import: "warden:plugin/kv#get".into(),
        }
    );
}

#[tokio::test]
async fn an_oversized_verdict_is_refused() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::GATE_ECHO);
    let backend = Arc::new(MemoryBackend::new());
    let mut big = submission();
    big.text = Some("x".repeat(3000));
    let outcome = evaluate(
        &rt,
        &plugin,
        &backend,
        Gate {
            limits: Limits {
                output_kib: Some(2),
                ..Limits::default()
            },
            ..Gate::default()
        },
        &big,
    )
    .await;
    match outcome.result {
        Err(RunError::OutputTooLarge { bytes, limit_kib }) => {
            assert!(bytes > 3000, "{bytes}");
            assert_eq!(limit_kib, 2);
        }
        other => panic!("expected OutputTooLarge, got {other:?}"),
    }
    // The same submission fits the default cap.
    let outcome = evaluate(&rt, &plugin, &backend, Gate::default(), &big).await;
    assert!(outcome.result.is_ok());
}

#[tokio::test]
async fn a_score_over_100_is_refused() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::GATE_BAD_SCORE);
    let backend = Arc::new(MemoryBackend::new());
    let outcome = evaluate(&rt, &plugin, &backend, Gate::default(), &submission()).await;
    let err = outcome.result.unwrap_err();
    assert_eq!(
        err,
        RunError::InvalidOutput("verdict: score 200 is over 100".into())
    );
    assert_eq!(err.to_string(), "invalid verdict: score 200 is over 100");
    assert!(!err.is_limit());
}

#[tokio::test]
async fn a_spinning_gate_stops_at_its_deadline() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::GATE_LOOP);
    let backend = Arc::new(MemoryBackend::new());
    let started = Instant::now();
    let outcome = evaluate(&rt, &plugin, &backend, Gate::default(), &submission()).await;
    assert_eq!(outcome.result.unwrap_err(), RunError::Deadline { ms: 500 });
    assert_eq!(outcome.limits.deadline_ms, 500);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    let outcome = evaluate(
        &rt,
        &plugin,
        &backend,
        Gate {
            limits: Limits {
                fuel: Some(2_000_000),
                ..Limits::default()
            },
            ..Gate::default()
        },
        &submission(),
    )
    .await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::FuelExhausted { fuel: 2_000_000 }
    );
}

#[tokio::test]
async fn a_panicking_gate_reports_its_message_and_errors_pass_through() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::GATE_PANIC);
    let backend = Arc::new(MemoryBackend::new());
    let outcome = evaluate(&rt, &plugin, &backend, Gate::default(), &submission()).await;
    let text = outcome.result.unwrap_err().to_string();
    assert!(text.starts_with("plugin panicked: "), "{text}");
    assert!(text.contains("gate exploded on purpose"), "{text}");
    assert!(
        outcome.logs.iter().any(|l| l.source == LogSource::Stderr),
        "the panic message is kept in the log"
    );

    let mut failing = submission();
    failing.text = Some("error".into());
    let outcome = evaluate(&rt, &plugin, &backend, Gate::default(), &failing).await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::Plugin("cannot evaluate: asked to fail".into())
    );
}

#[tokio::test]
async fn plugins_run_only_as_their_own_kind() {
    let rt = runtime();
    let backend = Arc::new(MemoryBackend::new());
    let playbook = load(&rt, artifacts::NOOP);
    let outcome = evaluate(&rt, &playbook, &backend, Gate::default(), &submission()).await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::WrongKind {
            expected: "quality-gate",
            actual: "playbook"
        }
    );
    let gate = load(&rt, artifacts::GATE_ECHO);
    let outcome = run(&rt, &gate, &backend, Run::default()).await;
    assert_eq!(
        outcome.result.unwrap_err().to_string(),
        "plugin is a quality-gate, not a playbook"
    );
}

#[test]
fn a_gate_importing_outside_its_world_is_refused() {
    let rt = runtime();
    let err = rt
        .load(&std::fs::read(artifacts::GATE_OUTSIDE_WORLD).unwrap())
        .unwrap_err();
    assert!(
        matches!(&err, LoadError::OutsideWorld { world: "quality-gate", import, .. } if import.starts_with("warden:plugin/tasks")),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .ends_with("which the quality-gate world does not offer (it offers log, config, kv)"),
        "{err}"
    );
}
