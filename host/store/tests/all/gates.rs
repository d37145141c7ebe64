//! Quality gates: bindings, gated transitions with verdicts and reasons,
//! the queries behind the breaker and the statistics, and the task changes
//! a gate's decision makes (sent back with a plan delta, waiting for
//! approval, decided by a human).

use serde_json::json;
use warden_store::gates::{BindingRow, DecisionRow, ReasonRow, VerdictRow};
use warden_store::stages::{AfterComplete, Also, Completing, Completion, Judged};
use warden_store::task_events::NewEvent;
use warden_store::tasks::NewTask;
use warden_store::{Error, Store, new_id, now_ms};

use crate::common::{TestResult, claim_req, new_task};

conformance!(
    bindings_round_trip_replace_and_delete,
    decisions_verdicts_and_reasons_are_kept_and_queried,
    a_completion_stores_its_decision_events_and_breaker_windows,
    reasons_beyond_one_statement_are_all_kept,
    rejection_sends_back_with_a_delta_until_progress,
    waiting_tasks_are_decided_once,
);

fn binding(workspace: &str, stage: &str, gates: &[&str]) -> BindingRow {
    BindingRow {
        workspace: workspace.to_string(),
        stage: stage.to_string(),
        binding: json!({ "gates": gates, "quorum": "all" }),
        actor: "admin".to_string(),
        updated_at: 1_000,
    }
}

async fn bindings_round_trip_replace_and_delete(store: Store) -> TestResult {
    assert!(store.list_gate_bindings("ws").await?.is_empty());
    let review = binding("ws", "review", &["rubric-consensus"]);
    let implement = binding("ws", "implement", &["diff-size", "secret-scan"]);
    store.put_gate_binding(&review).await?;
    store.put_gate_binding(&implement).await?;
    store
        .put_gate_binding(&binding("other", "implement", &["x"]))
        .await?;
    assert_eq!(
        store.list_gate_bindings("ws").await?,
        vec![implement.clone(), review.clone()]
    );
    let replaced = BindingRow {
        binding: json!({ "gates": ["a", "b", "c"], "quorum": "2-of-3" }),
        updated_at: 2_000,
        ..review.clone()
    };
    store.put_gate_binding(&replaced).await?;
    assert_eq!(
        store.get_gate_binding("ws", "review").await?,
        Some(replaced)
    );
    assert!(store.delete_gate_binding("ws", "review").await?);
    assert!(!store.delete_gate_binding("ws", "review").await?);
    assert_eq!(store.get_gate_binding("ws", "review").await?, None);
    assert_eq!(store.list_gate_bindings("ws").await?, vec![implement]);
    Ok(())
}

fn verdict(
    task: &str,
    gate: &str,
    decision: &str,
    at: i64,
    reasons: &[(&str, &str)],
) -> VerdictRow {
    VerdictRow {
        id: new_id(),
        decision_id: String::new(),
        workspace: "ws".to_string(),
        task_id: task.to_string(),
        stage: "implement".to_string(),
        gate: gate.to_string(),
        version: "1.0.0".to_string(),
        digest: format!("sha256:{gate}"),
        decision: decision.to_string(),
        score: if decision == "approve" { 90 } else { 20 },
        error: None,
        relaxed: false,
        wall_ms: 3,
        created_at: at,
        reasons: reasons
            .iter()
            .map(|(c, m)| ReasonRow {
                category: c.to_string(),
                message: m.to_string(),
            })
            .collect(),
    }
}

fn decision(task: &str, outcome: &str, at: i64) -> DecisionRow {
    DecisionRow {
        id: new_id(),
        workspace: "ws".to_string(),
        task_id: task.to_string(),
        stage: "implement".to_string(),
        token: 7,
        quorum: "all".to_string(),
        outcome: outcome.to_string(),
        approvals: 1,
        rejections: 1,
        escalations: 0,
        summary: format!("{outcome} by quorum all"),
        created_at: at,
    }
}

async fn decisions_verdicts_and_reasons_are_kept_and_queried(store: Store) -> TestResult {
    let d1 = decision("t1", "reject", 1_000);
    let mut failed = verdict("t1", "secret-scan", "escalate", 1_000, &[]);
    failed.error = Some("deadline of 100 ms exceeded".to_string());
    failed.score = 0;
    let v1 = vec![
        verdict(
            "t1",
            "diff-size",
            "reject",
            1_000,
            &[
                ("size", "1200 changed lines (max 800)"),
                ("size", "45 files (max 40)"),
            ],
        ),
        failed,
    ];
    store.record_gate_decision(&d1, &v1).await?;
    let d2 = decision("t2", "reject", 2_000);
    store
        .record_gate_decision(
            &d2,
            &[verdict(
                "t2",
                "diff-size",
                "reject",
                2_000,
                &[("size", "1200 changed lines (max 800)")],
            )],
        )
        .await?;
    let d3 = decision("t1", "approve", 3_000);
    store
        .record_gate_decision(
            &d3,
            &[verdict(
                "t1",
                "diff-size",
                "approve",
                3_000,
                &[("size", "ok")],
            )],
        )
        .await?;

    // Per task: decisions and verdicts oldest first, reasons in order.
    assert_eq!(
        store.list_gate_decisions("ws", "t1").await?,
        vec![d1.clone(), d3.clone()]
    );
    let verdicts = store.list_task_verdicts("ws", "t1").await?;
    assert_eq!(verdicts.len(), 3);
    assert_eq!(verdicts[0].decision_id, d1.id);
    let mut expected = v1[0].clone();
    expected.decision_id = d1.id.clone();
    assert!(verdicts.contains(&expected), "{verdicts:?}");
    let escalated = verdicts
        .iter()
        .find(|v| v.gate == "secret-scan")
        .ok_or_else(|| anyhow::anyhow!("no secret-scan verdict"))?;
    assert_eq!(
        escalated.error.as_deref(),
        Some("deadline of 100 ms exceeded")
    );
    assert!(escalated.reasons.is_empty());
    assert_eq!(verdicts[2].decision, "approve");
    assert!(store.list_task_verdicts("other", "t1").await?.is_empty());

    // Per gate, newest first; the breaker's window.
    let by_gate = store.list_gate_verdicts("ws", Some("diff-size"), 0).await?;
    let order: Vec<&str> = by_gate.iter().map(|v| v.task_id.as_str()).collect();
    assert_eq!(order, ["t1", "t2", "t1"]);
    assert_eq!(store.list_gate_verdicts("ws", None, 2).await?.len(), 2);
    assert_eq!(
        store.recent_gate_decisions("ws", "diff-size", 2).await?,
        ["approve", "reject"]
    );

    // Statistics and top rejection reasons.
    let stats = store.gate_stats("ws", 0).await?;
    assert_eq!(stats.len(), 2);
    assert_eq!(
        (
            stats[0].gate.as_str(),
            stats[0].total,
            stats[0].approvals,
            stats[0].rejections
        ),
        ("diff-size", 3, 1, 2)
    );
    assert!((stats[0].mean_score - (90.0 + 20.0 + 20.0) / 3.0).abs() < 1e-9);
    assert_eq!(
        (
            stats[1].gate.as_str(),
            stats[1].escalations,
            stats[1].errors
        ),
        ("secret-scan", 1, 1)
    );
    assert_eq!(store.gate_stats("ws", 2_500).await?[0].total, 1);
    let top = store.top_rejection_reasons("ws", None, 0, 10).await?;
    assert_eq!(
        top.iter()
            .map(|r| (r.message.as_str(), r.count))
            .collect::<Vec<_>>(),
        [
            ("1200 changed lines (max 800)", 2),
            ("45 files (max 40)", 1)
        ]
    );
    assert!(
        store
            .top_rejection_reasons("ws", Some("secret-scan"), 0, 10)
            .await?
            .is_empty()
    );
    Ok(())
}

fn piped(workspace: &str, title: &str) -> NewTask {
    NewTask {
        stage: "plan".to_string(),
        pipeline: vec!["plan".into(), "implement".into(), "review".into()],
        ..new_task(workspace, title)
    }
}

/// Claims the task's current stage and completes it with `decision`.
async fn complete_with(
    store: &Store,
    id: &str,
    decision: AfterComplete,
) -> anyhow::Result<warden_store::tasks::TaskRow> {
    let now = now_ms() + 60_000;
    let claimed = store.claim_stages(&claim_req("ws", "w1", 1, now)).await?;
    assert_eq!(claimed.len(), 1, "the task is claimable");
    assert_eq!(claimed[0].task.id, id);
    let token = claimed[0].run.id;
    match store
        .complete_stage("ws", id, token, &json!({}), now, &move |_| decision.clone())
        .await?
    {
        Completion::Completed(t) => Ok(t),
        other => anyhow::bail!("not completed: {other:?}"),
    }
}

async fn rejection_sends_back_with_a_delta_until_progress(store: Store) -> TestResult {
    let (task, _) = store.create_task(&piped("ws", "gated")).await?;
    let t = complete_with(
        &store,
        &task.id,
        AfterComplete::Next {
            stage: "implement".into(),
            index: 1,
        },
    )
    .await?;
    assert_eq!((t.gate_rejections, t.plan_delta.clone()), (0, None));
    for round in 1..=2 {
        let delta =
            json!({ "reasons": [{ "category": "size", "message": format!("too big {round}") }] });
        let t = complete_with(
            &store,
            &task.id,
            AfterComplete::Back {
                stage: "plan".into(),
                index: 0,
                delta: delta.clone(),
            },
        )
        .await?;
        assert_eq!(
            (
                t.state.as_str(),
                t.stage.as_str(),
                t.stage_index,
                t.attempts,
                t.high_water
            ),
            ("queued", "plan", 0, 0, 1)
        );
        assert_eq!(
            (t.gate_rejections, t.plan_delta),
            (round, Some(delta.clone()))
        );
        // Back at implement: not beyond the furthest stage, so no progress.
        let t = complete_with(
            &store,
            &task.id,
            AfterComplete::Next {
                stage: "implement".into(),
                index: 1,
            },
        )
        .await?;
        assert_eq!(t.gate_rejections, round);
        assert_eq!(t.plan_delta, Some(delta));
    }
    // Past implement for the first time: progress clears both.
    let t = complete_with(
        &store,
        &task.id,
        AfterComplete::Next {
            stage: "review".into(),
            index: 2,
        },
    )
    .await?;
    assert_eq!(
        (t.gate_rejections, t.plan_delta, t.high_water),
        (0, None, 2)
    );
    // A block keeps the stage and the reason.
    let t = complete_with(
        &store,
        &task.id,
        AfterComplete::Block {
            reason: "loop".into(),
        },
    )
    .await?;
    assert_eq!(
        (t.state.as_str(), t.stage.as_str(), t.last_error.as_deref()),
        ("blocked", "review", Some("loop"))
    );
    assert_eq!(store.get_task("ws", &task.id).await?, Some(t));
    Ok(())
}

async fn waiting_tasks_are_decided_once(store: Store) -> TestResult {
    let (task, _) = store.create_task(&piped("ws", "escalated")).await?;
    let t = complete_with(
        &store,
        &task.id,
        AfterComplete::WaitApproval {
            reason: "escalated by secret-scan".into(),
        },
    )
    .await?;
    assert_eq!(
        (t.state.as_str(), t.stage.as_str()),
        ("waiting_approval", "plan")
    );
    assert_eq!(t.last_error.as_deref(), Some("escalated by secret-scan"));
    let wall = t.used.wall_ms;
    // Nothing to claim while it waits.
    assert!(
        store
            .claim_stages(&claim_req("ws", "w1", 1, now_ms() + 60_000))
            .await?
            .is_empty()
    );

    let at = now_ms();
    let decided = store
        .decide_waiting("ws", &task.id, at, &|_| AfterComplete::Next {
            stage: "implement".into(),
            index: 1,
        })
        .await?;
    assert_eq!(
        (
            decided.state.as_str(),
            decided.stage.as_str(),
            decided.stage_index,
            decided.high_water
        ),
        ("queued", "implement", 1, 1)
    );
    assert_eq!(
        (
            decided.updated_at,
            decided.used.wall_ms,
            decided.lease_token
        ),
        (at, wall, None)
    );
    // Decided once: the second decision is a conflict and changes nothing.
    let again = store
        .decide_waiting("ws", &task.id, at + 1, &|_| AfterComplete::Done)
        .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    assert_eq!(store.get_task("ws", &task.id).await?, Some(decided));
    let missing = store
        .decide_waiting("ws", "nope", at, &|_| AfterComplete::Done)
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    Ok(())
}

/// One gated completion of `id`'s current stage: `verdicts` (of `gates`
/// order) decided `outcome`, stored with the completion with a `status`
/// event, the breaker windows read back.
async fn judged_completion(
    store: &Store,
    id: &str,
    token: i64,
    verdicts: &[VerdictRow],
    window: i64,
) -> anyhow::Result<(Completion, Vec<Vec<String>>, DecisionRow)> {
    let now = now_ms() + 60_000;
    let d = decision(
        id,
        "approve",
        verdicts.first().map_or(now, |v| v.created_at),
    );
    let verdicts: Vec<VerdictRow> = verdicts
        .iter()
        .map(|v| VerdictRow {
            decision_id: d.id.clone(),
            task_id: id.to_string(),
            ..v.clone()
        })
        .collect();
    let c = Completing {
        workspace: "ws",
        task_id: id,
        token,
        output: &json!({ "ok": true }),
        now,
        decision: Some(Judged {
            decision: &d,
            verdicts: &verdicts,
            window,
        }),
    };
    let (completion, written) = store
        .complete_stage_with(
            &c,
            &|_, _| AfterComplete::Next {
                stage: "review".into(),
                index: 2,
            },
            &|t| Also {
                events: vec![NewEvent::new("status", json!({ "state": t.state }))],
                notify: Some(("warden_test".to_string(), "ws".to_string())),
            },
        )
        .await?;
    Ok((completion, written.windows, d))
}

async fn a_completion_stores_its_decision_events_and_breaker_windows(store: Store) -> TestResult {
    // History: diff-size rejected twice, secret-scan approved once.
    let mut at = 1_000;
    for (gate, outcome) in [
        ("diff-size", "reject"),
        ("secret-scan", "approve"),
        ("diff-size", "reject"),
    ] {
        at += 1_000;
        store
            .record_gate_decision(
                &decision("old", outcome, at),
                &[verdict("old", gate, outcome, at, &[])],
            )
            .await?;
    }
    let mut task = piped("ws", "gated");
    task.stage = "implement".into();
    let (task, _) = store.create_task(&task).await?;
    store
        .add_task_event("ws", &task.id, "tool_start", &json!({}), 1)
        .await?;
    let now = now_ms() + 60_000;
    let claimed = store.claim_stages(&claim_req("ws", "w1", 1, now)).await?;
    let token = claimed[0].run.id;
    // PostgreSQL: the completion's notification arrives on commit.
    let mut listener = store.listen("warden_test").await?;

    // A stale token stores nothing.
    let verdicts = [
        verdict("", "diff-size", "approve", 10_000, &[("size", "12 lines")]),
        verdict("", "secret-scan", "approve", 10_000, &[]),
        verdict(
            "",
            "tests-pass",
            "approve",
            10_000,
            &[("tests", "412 passed")],
        ),
    ];
    let (refused, windows, d) =
        judged_completion(&store, &task.id, token + 1_000, &verdicts, 10).await?;
    assert!(matches!(refused, Completion::Fenced(_)), "{refused:?}");
    assert!(windows.is_empty());
    assert!(store.list_gate_decisions("ws", &task.id).await?.is_empty());
    assert_eq!(store.list_task_events("ws", &task.id, 0, 0).await?.len(), 1);
    let _ = d;

    // The current one: decision, verdicts, reasons and event in one go;
    // the windows hold the new verdict first, then the older ones.
    let (done, windows, d) = judged_completion(&store, &task.id, token, &verdicts, 2).await?;
    let Completion::Completed(t) = done else {
        anyhow::bail!("not completed: {done:?}");
    };
    assert_eq!((t.state.as_str(), t.stage.as_str()), ("queued", "review"));
    assert_eq!(
        windows,
        vec![
            vec!["approve".to_string(), "reject".to_string()],
            vec!["approve".to_string(), "approve".to_string()],
            vec!["approve".to_string()],
        ]
    );
    assert_eq!(
        store.list_gate_decisions("ws", &task.id).await?,
        vec![d.clone()]
    );
    let kept = store.list_task_verdicts("ws", &task.id).await?;
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|v| v.decision_id == d.id));
    let reasons: Vec<usize> = kept.iter().map(|v| v.reasons.len()).collect();
    assert_eq!(reasons.iter().sum::<usize>(), 2, "{kept:?}");
    let events = store.list_task_events("ws", &task.id, 0, 0).await?;
    let seqs: Vec<(i64, &str)> = events.iter().map(|e| (e.seq, e.kind.as_str())).collect();
    assert_eq!(seqs, [(1, "tool_start"), (2, "status")]);
    assert_eq!(events[1].data, json!({ "state": "queued" }));
    assert_eq!(
        store.recent_gate_decisions("ws", "diff-size", 3).await?,
        ["approve", "reject", "reject"]
    );
    if let Some(l) = listener.as_mut() {
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), l.recv()).await??;
        assert_eq!(got, "ws");
    }
    Ok(())
}

async fn reasons_beyond_one_statement_are_all_kept(store: Store) -> TestResult {
    let messages: Vec<(String, String)> = (0..1_203)
        .map(|i| ("size".to_string(), format!("file {i} is too big")))
        .collect();
    let refs: Vec<(&str, &str)> = messages
        .iter()
        .map(|(c, m)| (c.as_str(), m.as_str()))
        .collect();
    let d = decision("t1", "reject", 1_000);
    let v = verdict("t1", "diff-size", "reject", 1_000, &refs);
    store.record_gate_decision(&d, &[v]).await?;
    let kept = store.list_task_verdicts("ws", "t1").await?;
    assert_eq!(kept.len(), 1);
    let got: Vec<&str> = kept[0].reasons.iter().map(|r| r.message.as_str()).collect();
    let want: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(got, want);
    Ok(())
}
