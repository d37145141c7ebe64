//! The queries behind the global status and the dashboard (SPEC OB-1,
//! OB-2): recent tasks, tasks in resolution loops, time per stage, top
//! stage failures and gate outcomes per stage.

use serde_json::json;
use warden_store::gates::{DecisionRow, StageGateStats};
use warden_store::stages::{AfterComplete, AfterFail, FailureCount, StageDuration};
use warden_store::tasks::NewTask;
use warden_store::{Store, new_id, now_ms};

use crate::common::{TestResult, claim_req, force_task, new_task, raw_execute};

conformance!(
    recent_tasks_newest_activity_first,
    looping_tasks_are_blocked_or_repeating,
    stage_durations_and_failures_per_window,
    gate_outcomes_per_stage,
);

/// A task with the pipeline `plan → implement`, at `plan`.
fn two_stages(workspace: &str, title: &str) -> NewTask {
    NewTask {
        stage: "plan".to_string(),
        pipeline: vec!["plan".into(), "implement".into()],
        ..new_task(workspace, title)
    }
}

async fn recent_tasks_newest_activity_first(store: Store) -> TestResult {
    let mut ids = Vec::new();
    for (i, title) in ["a", "b", "c"].iter().enumerate() {
        let (t, _) = store.create_task(&new_task("ws", title)).await?;
        force_task(&t.id, "queued", None, Some(1_000 + i as i64)).await?;
        ids.push(t.id);
    }
    store.create_task(&new_task("other", "elsewhere")).await?;
    // `a` gets the newest event.
    force_task(&ids[0], "running", None, Some(5_000)).await?;
    let recent: Vec<String> = store
        .recent_tasks("ws", 50)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(recent, [ids[0].clone(), ids[2].clone(), ids[1].clone()]);
    let two: Vec<String> = store
        .recent_tasks("ws", 2)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(two, [ids[0].clone(), ids[2].clone()]);
    assert!(store.recent_tasks("nobody", 50).await?.is_empty());
    Ok(())
}

async fn looping_tasks_are_blocked_or_repeating(store: Store) -> TestResult {
    let mut id = std::collections::BTreeMap::new();
    for title in [
        "calm", "blocked", "retried", "rejected", "same", "done", "other",
    ] {
        let ws = if title == "other" { "other" } else { "ws" };
        let (t, _) = store.create_task(&new_task(ws, title)).await?;
        id.insert(title, t.id);
    }
    force_task(&id["blocked"], "blocked", None, Some(6_000)).await?;
    raw_execute(&format!(
        "UPDATE tasks SET attempts = 3, last_event_at = 5000 WHERE id = '{}'",
        id["retried"]
    ))
    .await?;
    raw_execute(&format!(
        "UPDATE tasks SET gate_rejections = 4, last_event_at = 4000 WHERE id = '{}'",
        id["rejected"]
    ))
    .await?;
    raw_execute(&format!(
        "UPDATE tasks SET fingerprint_streak = 3, last_event_at = 3000 WHERE id = '{}'",
        id["same"]
    ))
    .await?;
    // Finished tasks and other workspaces are not looping here.
    raw_execute(&format!(
        "UPDATE tasks SET attempts = 9, state = 'done' WHERE id = '{}'",
        id["done"]
    ))
    .await?;
    raw_execute(&format!(
        "UPDATE tasks SET attempts = 9, state = 'blocked' WHERE id = '{}'",
        id["other"]
    ))
    .await?;
    let titles = |tasks: Vec<warden_store::tasks::TaskRow>| -> Vec<String> {
        tasks.into_iter().map(|t| t.title).collect()
    };
    assert_eq!(
        titles(store.looping_tasks("ws", 3, 50).await?),
        ["blocked", "retried", "rejected", "same"]
    );
    // A higher threshold leaves the blocked task and the rejections.
    assert_eq!(
        titles(store.looping_tasks("ws", 4, 50).await?),
        ["blocked", "rejected"]
    );
    assert_eq!(titles(store.looping_tasks("ws", 3, 1).await?), ["blocked"]);
    Ok(())
}

async fn stage_durations_and_failures_per_window(store: Store) -> TestResult {
    let now = now_ms() + 60_000;
    // Two tasks go through `plan` (300 ms, 700 ms) and one through
    // `implement` (2,000 ms) after one failure.
    let (t1, _) = store.create_task(&two_stages("ws", "t1")).await?;
    let (t2, _) = store.create_task(&two_stages("ws", "t2")).await?;
    let claimed = store.claim_stages(&claim_req("ws", "w", 2, now)).await?;
    assert_eq!(claimed.len(), 2);
    for c in &claimed {
        let took = if c.task.id == t1.id { 300 } else { 700 };
        let next = if c.task.id == t1.id {
            AfterComplete::Next {
                stage: "implement".to_string(),
                index: 1,
            }
        } else {
            AfterComplete::Done
        };
        store
            .complete_stage("ws", &c.task.id, c.run.id, &json!({}), now + took, &|_| {
                next.clone()
            })
            .await?;
    }
    let c = store
        .claim_stages(&claim_req("ws", "w", 1, now + 1_000))
        .await?;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].task.id, t1.id);
    store
        .fail_stage(
            "ws",
            &t1.id,
            c[0].run.id,
            "error: tests failed at line 7",
            "fp-tests",
            now + 1_100,
            &|_| AfterFail::Retry { at: now },
        )
        .await?;
    let c = store
        .claim_stages(&claim_req("ws", "w", 1, now + 2_000))
        .await?;
    assert_eq!(c.len(), 1);
    store
        .complete_stage("ws", &t1.id, c[0].run.id, &json!({}), now + 4_000, &|_| {
            AfterComplete::Done
        })
        .await?;
    let _ = t2;

    assert_eq!(
        store.stage_durations("ws", now).await?,
        [
            StageDuration {
                stage: "implement".to_string(),
                runs: 1,
                total_ms: 2_000,
                max_ms: 2_000,
            },
            StageDuration {
                stage: "plan".to_string(),
                runs: 2,
                total_ms: 1_000,
                max_ms: 700,
            },
        ]
    );
    // The window starts after the first plan run ended.
    assert_eq!(
        store.stage_durations("ws", now + 301).await?,
        [
            StageDuration {
                stage: "implement".to_string(),
                runs: 1,
                total_ms: 2_000,
                max_ms: 2_000,
            },
            StageDuration {
                stage: "plan".to_string(),
                runs: 1,
                total_ms: 700,
                max_ms: 700,
            },
        ]
    );
    assert!(store.stage_durations("other", 0).await?.is_empty());

    assert_eq!(
        store.top_stage_failures("ws", now, 10).await?,
        [FailureCount {
            fingerprint: "fp-tests".to_string(),
            count: 1,
            sample: "error: tests failed at line 7".to_string(),
            last_at: now + 1_100,
        }]
    );
    assert!(
        store
            .top_stage_failures("ws", now + 1_101, 10)
            .await?
            .is_empty()
    );
    assert!(store.top_stage_failures("other", 0, 10).await?.is_empty());
    Ok(())
}

fn decision(workspace: &str, stage: &str, outcome: &str, at: i64) -> DecisionRow {
    DecisionRow {
        id: new_id(),
        workspace: workspace.to_string(),
        task_id: new_id(),
        stage: stage.to_string(),
        token: 1,
        quorum: "all".to_string(),
        outcome: outcome.to_string(),
        approvals: 0,
        rejections: 0,
        escalations: 0,
        summary: outcome.to_string(),
        created_at: at,
    }
}

async fn gate_outcomes_per_stage(store: Store) -> TestResult {
    for (ws, stage, outcome, at) in [
        ("ws", "implement", "approve", 1_000),
        ("ws", "implement", "reject", 2_000),
        ("ws", "implement", "reject", 3_000),
        ("ws", "review", "waiting", 3_000),
        ("ws", "review", "approve", 500),
        ("other", "implement", "approve", 3_000),
    ] {
        store
            .record_gate_decision(&decision(ws, stage, outcome, at), &[])
            .await?;
    }
    assert_eq!(
        store.gate_stats_by_stage("ws", 1_000).await?,
        [
            StageGateStats {
                stage: "implement".to_string(),
                decisions: 3,
                approved: 1,
                rejected: 2,
                waiting: 0,
            },
            StageGateStats {
                stage: "review".to_string(),
                decisions: 1,
                approved: 0,
                rejected: 0,
                waiting: 1,
            },
        ]
    );
    assert!(store.gate_stats_by_stage("nobody", 0).await?.is_empty());
    Ok(())
}
