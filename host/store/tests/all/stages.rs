//! `stage_runs`: claims (order, dependencies, requirements, caps, fair
//! share, takeovers), fencing tokens, heartbeats, completions and failures
//! with the scheduler's decisions, cancellation, the dead-letter queue and
//! the lease sweeper.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::json;
use warden_store::settings::{SettingsRow, WorkspaceMode};
use warden_store::stages::{
    AfterComplete, AfterFail, Also, Completing, Completion, Failure, Fence, LeaseLimits,
    StageRunRow,
};
use warden_store::task_events::NewEvent;
use warden_store::tasks::{NewTask, TaskRow};
use warden_store::{Dialect, Error, Store, now_ms};

use crate::common::{
    LEASE_MS, TestResult, claim_req, claimed_ids, database_url, new_task, raw_execute,
    set_created_at,
};

conformance!(
    claims_follow_priority_then_age,
    one_claim_takes_several_stages,
    dependencies_hold_a_task_until_done,
    stage_filter_and_open_breakers_skip_tasks,
    per_stage_cap_skips_only_that_stage,
    workspace_and_global_caps,
    fair_share_yields_to_waiting_workspaces,
    expired_lease_is_taken_over,
    stale_and_expired_tokens_change_nothing,
    completion_and_failure_are_idempotent,
    completion_applies_the_decision_on_the_current_row,
    a_completion_sees_the_settings_and_survives_a_change_in_between,
    a_batch_of_completions_settles_each_on_its_own,
    failure_decisions_retry_dead_and_block,
    fingerprint_streak_counts_repeats,
    heartbeat_extends_the_lease,
    cancel_ends_the_lease,
    redrive_requeues_a_dead_task,
    redrive_refuses_a_taken_dedup_key,
    expire_leases_requeues_every_workspace,
    released_leases_requeue_only_current_ones,
    stage_run_history_and_durations,
);

/// A clock a minute ahead of the tasks' creation, so that they are all
/// claimable.
fn clock() -> i64 {
    now_ms() + 60_000
}

/// A task with the pipeline `plan → implement → review`, at `stage`.
fn staged(workspace: &str, title: &str, stage: &str) -> NewTask {
    NewTask {
        stage: stage.to_string(),
        pipeline: vec!["plan".into(), "implement".into(), "review".into()],
        ..new_task(workspace, title)
    }
}

/// A decision the test does not expect to be asked for.
fn never_complete(task: &TaskRow) -> AfterComplete {
    panic!("decide called for refused task {}", task.id)
}

fn never_fail(task: &TaskRow) -> AfterFail {
    panic!("decide called for refused task {}", task.id)
}

/// Claims the only claimable task of `workspace`; its token.
async fn claim_one(store: &Store, workspace: &str, now: i64) -> anyhow::Result<(TaskRow, i64)> {
    let claimed = store
        .claim_stages(&claim_req(workspace, "worker-1", 1, now))
        .await?;
    anyhow::ensure!(claimed.len() == 1, "expected one claim, got {claimed:?}");
    let c = claimed.into_iter().next().expect("one");
    Ok((c.task, c.run.id))
}

async fn runs_of(store: &Store, task_id: &str) -> anyhow::Result<Vec<StageRunRow>> {
    Ok(store.list_stage_runs(task_id).await?)
}

async fn claims_follow_priority_then_age(store: Store) -> TestResult {
    let mut ids = BTreeMap::new();
    // (title, priority, created_at)
    for (title, priority, created_at) in [
        ("low", "low", 1_000),
        ("normal-old", "normal", 2_000),
        ("urgent", "urgent", 4_000),
        ("normal-new", "normal", 3_000),
    ] {
        let (task, _) = store
            .create_task(&NewTask {
                priority: priority.to_string(),
                ..new_task("ws", title)
            })
            .await?;
        set_created_at(&task.id, created_at).await?;
        ids.insert(title, task.id);
    }
    let now = clock();
    let mut order = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..4 {
        let claimed = store
            .claim_stages(&claim_req("ws", "worker-1", 1, now))
            .await?;
        assert_eq!(claimed.len(), 1);
        let c = &claimed[0];
        assert_eq!(c.took_over, None);
        assert_eq!(c.task.state, "running");
        assert_eq!(c.task.lease_owner.as_deref(), Some("worker-1"));
        assert_eq!(c.task.lease_token, Some(c.run.id));
        assert_eq!(c.task.lease_expires_at, Some(now + LEASE_MS));
        assert_eq!((c.task.attempts, c.task.total_attempts), (1, 1));
        assert_eq!((c.task.updated_at, c.task.last_event_at), (now, now));
        assert_eq!(
            c.run,
            StageRunRow {
                id: c.run.id,
                task_id: c.task.id.clone(),
                workspace: "ws".to_string(),
                stage: "implement".to_string(),
                attempt: 1,
                worker_id: "worker-1".to_string(),
                claimed_at: now,
                expires_at: now + LEASE_MS,
                ended_at: None,
                outcome: None,
                error: None,
                fingerprint: None,
                output: None,
            }
        );
        assert_eq!(
            store.get_task("ws", &c.task.id).await?.as_ref(),
            Some(&c.task)
        );
        order.push(c.task.id.clone());
        tokens.push(c.run.id);
    }
    assert_eq!(
        order,
        [
            &ids["urgent"],
            &ids["normal-old"],
            &ids["normal-new"],
            &ids["low"]
        ]
        .map(|s| s.clone())
    );
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens increase: {tokens:?}"
    );
    assert!(
        store
            .claim_stages(&claim_req("ws", "worker-1", 1, now))
            .await?
            .is_empty(),
        "nothing left"
    );
    assert!(
        store
            .claim_stages(&claim_req("other", "worker-1", 5, now))
            .await?
            .is_empty(),
        "workspaces are separate"
    );
    Ok(())
}

async fn one_claim_takes_several_stages(store: Store) -> TestResult {
    let mut ids = Vec::new();
    for i in 0..5 {
        let (task, _) = store
            .create_task(&new_task("ws", &format!("task {i}")))
            .await?;
        set_created_at(&task.id, 1_000 + i).await?;
        ids.push(task.id);
    }
    let now = clock();
    let first = store
        .claim_stages(&claim_req("ws", "worker-1", 3, now))
        .await?;
    assert_eq!(claimed_ids(&first), ids[..3]);
    let mut tokens: Vec<i64> = first.iter().map(|c| c.run.id).collect();
    let rest = store
        .claim_stages(&claim_req("ws", "worker-2", 10, now))
        .await?;
    assert_eq!(claimed_ids(&rest), ids[3..]);
    assert!(
        rest.iter()
            .all(|c| c.task.lease_owner.as_deref() == Some("worker-2"))
    );
    tokens.extend(rest.iter().map(|c| c.run.id));
    let mut unique = tokens.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "distinct tokens: {tokens:?}");
    // `max` of 0 claims nothing but records the worker.
    assert!(
        store
            .claim_stages(&claim_req("ws", "idle-worker", 0, now))
            .await?
            .is_empty()
    );
    let workers = store.list_workers("ws", 0).await?;
    let names: Vec<&str> = workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"idle-worker"));
    Ok(())
}

async fn dependencies_hold_a_task_until_done(store: Store) -> TestResult {
    let (dep, _) = store
        .create_task(&staged("ws", "dependency", "implement"))
        .await?;
    let (waiting, _) = store
        .create_task(&NewTask {
            priority: "urgent".to_string(),
            depends_on: vec![dep.id.clone()],
            ..new_task("ws", "dependent")
        })
        .await?;
    let now = clock();
    // Only the dependency, although the dependent is urgent.
    let claimed = store
        .claim_stages(&claim_req("ws", "worker-1", 10, now))
        .await?;
    assert_eq!(claimed_ids(&claimed), [dep.id.as_str()]);
    let token = claimed[0].run.id;
    // A dependency queued at its next stage still holds the dependent.
    let done = store
        .complete_stage("ws", &dep.id, token, &json!({}), now, &|_| {
            AfterComplete::Next {
                stage: "review".to_string(),
                index: 2,
            }
        })
        .await?;
    assert!(matches!(done, Completion::Completed(_)), "{done:?}");
    let claimed = store
        .claim_stages(&claim_req("ws", "worker-1", 10, now))
        .await?;
    assert_eq!(claimed_ids(&claimed), [dep.id.as_str()]);
    store
        .complete_stage("ws", &dep.id, claimed[0].run.id, &json!({}), now, &|_| {
            AfterComplete::Done
        })
        .await?;
    // Done: the dependent is claimable.
    let claimed = store
        .claim_stages(&claim_req("ws", "worker-1", 10, now))
        .await?;
    assert_eq!(claimed_ids(&claimed), [waiting.id.as_str()]);
    Ok(())
}

async fn stage_filter_and_open_breakers_skip_tasks(store: Store) -> TestResult {
    let (needs_openai, _) = store
        .create_task(&NewTask {
            requires: vec!["provider:openai".into(), "process:mcp".into()],
            ..staged("ws", "needs openai", "implement")
        })
        .await?;
    set_created_at(&needs_openai.id, 1_000).await?;
    let (plain, _) = store
        .create_task(&staged("ws", "plain", "implement"))
        .await?;
    set_created_at(&plain.id, 2_000).await?;
    let (planning, _) = store.create_task(&staged("ws", "planning", "plan")).await?;
    set_created_at(&planning.id, 3_000).await?;
    let now = clock();

    // Only `plan` stages.
    let mut req = claim_req("ws", "worker-1", 10, now);
    req.stages = vec!["plan".into()];
    assert_eq!(
        claimed_ids(&store.claim_stages(&req).await?),
        [planning.id.as_str()]
    );
    // An open breaker the first task requires skips it, and only it.
    let mut req = claim_req("ws", "worker-1", 1, now);
    req.open_breakers = vec!["provider:anthropic".into(), "process:mcp".into()];
    assert_eq!(
        claimed_ids(&store.claim_stages(&req).await?),
        [plain.id.as_str()]
    );
    assert!(store.claim_stages(&req).await?.is_empty());
    // Closed again: claimable.
    req.open_breakers = vec!["provider:anthropic".into()];
    assert_eq!(
        claimed_ids(&store.claim_stages(&req).await?),
        [needs_openai.id.as_str()]
    );
    Ok(())
}

async fn per_stage_cap_skips_only_that_stage(store: Store) -> TestResult {
    // Oldest first: three `implement`, then two `review`.
    let mut implement = Vec::new();
    let mut review = Vec::new();
    for i in 0..5 {
        let stage = if i < 3 { "implement" } else { "review" };
        let (task, _) = store
            .create_task(&staged("ws", &format!("task {i}"), stage))
            .await?;
        set_created_at(&task.id, 1_000 + i).await?;
        if i < 3 {
            implement.push(task.id);
        } else {
            review.push(task.id);
        }
    }
    let now = clock();
    let limits = LeaseLimits {
        per_stage: [("implement".to_string(), 2), ("plan".to_string(), 0)]
            .into_iter()
            .collect(),
        ..LeaseLimits::default()
    };
    // Two implement leases fit: one now, one in the next claim, which then
    // skips the third implement task for the reviews.
    let mut req = claim_req("ws", "worker-1", 1, now);
    req.limits = limits.clone();
    assert_eq!(
        claimed_ids(&store.claim_stages(&req).await?),
        [implement[0].clone()]
    );
    req.max = 10;
    assert_eq!(
        claimed_ids(&store.claim_stages(&req).await?),
        [implement[1].clone(), review[0].clone(), review[1].clone()]
    );
    assert!(
        store.claim_stages(&req).await?.is_empty(),
        "implement is full"
    );
    // Without the cap the last one is claimable.
    req.limits = LeaseLimits::default();
    assert_eq!(
        claimed_ids(&store.claim_stages(&req).await?),
        [implement[2].clone()]
    );
    Ok(())
}

async fn workspace_and_global_caps(store: Store) -> TestResult {
    for ws in ["ws", "other"] {
        for i in 0..4 {
            store
                .create_task(&new_task(ws, &format!("{ws} {i}")))
                .await?;
        }
    }
    let now = clock();
    // `other` holds two leases.
    assert_eq!(
        store
            .claim_stages(&claim_req("other", "worker-o", 2, now))
            .await?
            .len(),
        2
    );
    let mut req = claim_req("ws", "worker-1", 1, now);
    req.limits.workspace = Some(3);
    assert_eq!(store.claim_stages(&req).await?.len(), 1);
    // Two more fit the workspace cap of 3.
    req.max = 10;
    assert_eq!(store.claim_stages(&req).await?.len(), 2);
    assert!(store.claim_stages(&req).await?.is_empty(), "workspace full");
    // Global cap 6: 2 (other) + 3 (ws) held, one more fits.
    let mut req = claim_req("other", "worker-o", 10, now);
    req.limits.global = Some(6);
    assert_eq!(store.claim_stages(&req).await?.len(), 1);
    assert!(store.claim_stages(&req).await?.is_empty(), "globally full");
    // Expired leases do not count.
    let later = now + LEASE_MS + 1;
    let mut req = claim_req("other", "worker-o", 10, later);
    req.limits.global = Some(6);
    req.limits.workspace = Some(1);
    let claimed = store.claim_stages(&req).await?;
    assert_eq!(claimed.len(), 1, "one of the expired or queued tasks");
    Ok(())
}

async fn fair_share_yields_to_waiting_workspaces(store: Store) -> TestResult {
    for i in 0..5 {
        store
            .create_task(&new_task("busy", &format!("busy {i}")))
            .await?;
    }
    let now = clock();
    let fair = |max: i64, share: i64| {
        let mut req = claim_req("busy", "worker-1", max, now);
        req.limits.fair_share = Some(share);
        req
    };
    // Nobody else waits: no limit.
    assert_eq!(store.claim_stages(&fair(2, 2)).await?.len(), 2);
    assert_eq!(store.claim_stages(&fair(1, 2)).await?.len(), 1);

    // Another workspace has a claimable task: `busy` holds 3 >= 2.
    let (waiting, _) = store.create_task(&new_task("quiet", "waiting")).await?;
    assert!(store.claim_stages(&fair(5, 2)).await?.is_empty());
    // With a share of 4, one more fits.
    assert_eq!(store.claim_stages(&fair(5, 4)).await?.len(), 1);
    assert!(store.claim_stages(&fair(5, 4)).await?.is_empty());

    // A task that is not claimable (waiting on a dependency) does not count.
    let (blocked, _) = store
        .create_task(&NewTask {
            depends_on: vec![waiting.id.clone()],
            ..new_task("quiet", "waits for waiting")
        })
        .await?;
    let claimed = store
        .claim_stages(&claim_req("quiet", "worker-q", 5, now))
        .await?;
    assert_eq!(claimed_ids(&claimed), [waiting.id.as_str()]);
    assert_ne!(claimed[0].task.id, blocked.id);
    assert_eq!(store.claim_stages(&fair(5, 4)).await?.len(), 1);
    Ok(())
}

async fn expired_lease_is_taken_over(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "slow")).await?;
    let now = clock();
    let (_, old) = claim_one(&store, "ws", now).await?;
    // Not expired yet: nothing to claim.
    let at_expiry = now + LEASE_MS;
    assert!(
        store
            .claim_stages(&claim_req("ws", "worker-2", 1, at_expiry))
            .await?
            .is_empty()
    );
    let later = at_expiry + 1;
    let claimed = store
        .claim_stages(&claim_req("ws", "worker-2", 1, later))
        .await?;
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!(c.task.id, task.id);
    assert_eq!(c.took_over, Some(old));
    assert!(c.run.id > old);
    assert_eq!(c.run.attempt, 2);
    assert_eq!((c.task.attempts, c.task.total_attempts), (2, 2));
    assert_eq!(c.task.lease_owner.as_deref(), Some("worker-2"));
    assert_eq!(c.task.lease_token, Some(c.run.id));

    let runs = runs_of(&store, &task.id).await?;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, old);
    assert_eq!(runs[0].outcome.as_deref(), Some("expired"));
    assert_eq!(runs[0].ended_at, Some(later));
    assert_eq!(runs[1].outcome, None);

    // The old worker is fenced off.
    let refused = store
        .complete_stage("ws", &task.id, old, &json!({}), later, &never_complete)
        .await?;
    assert_eq!(
        refused,
        Completion::Fenced(Fence::Stale {
            token: old,
            current: Some(c.run.id),
        })
    );
    Ok(())
}

async fn stale_and_expired_tokens_change_nothing(store: Store) -> TestResult {
    let (queued, _) = store.create_task(&new_task("ws", "queued")).await?;
    set_created_at(&queued.id, 9_000).await?;
    let (task, _) = store.create_task(&new_task("ws", "claimed")).await?;
    set_created_at(&task.id, 1_000).await?;
    let now = clock();
    let (claimed, token) = claim_one(&store, "ws", now).await?;
    assert_eq!(claimed.id, task.id);
    let runs_before = runs_of(&store, &task.id).await?;

    let stale = token + 1_000;
    let expect_stale = Fence::Stale {
        token: stale,
        current: Some(token),
    };
    assert_eq!(
        store
            .complete_stage("ws", &task.id, stale, &json!({}), now, &never_complete)
            .await?,
        Completion::Fenced(expect_stale.clone())
    );
    assert_eq!(
        store
            .fail_stage("ws", &task.id, stale, "boom", "fp", now, &never_fail)
            .await?,
        Failure::Fenced(expect_stale.clone())
    );
    assert_eq!(
        store
            .heartbeat("ws", &task.id, stale, LEASE_MS, now)
            .await?,
        Err(expect_stale)
    );

    // The right token, after its expiry (and before any takeover).
    let late = now + LEASE_MS + 1;
    let expired = Fence::Expired {
        token,
        expired_at: now + LEASE_MS,
    };
    assert_eq!(
        store
            .complete_stage("ws", &task.id, token, &json!({}), late, &never_complete)
            .await?,
        Completion::Fenced(expired.clone())
    );
    assert_eq!(
        store
            .fail_stage("ws", &task.id, token, "boom", "fp", late, &never_fail)
            .await?,
        Failure::Fenced(expired.clone())
    );
    assert_eq!(
        store
            .heartbeat("ws", &task.id, token, LEASE_MS, late)
            .await?,
        Err(expired)
    );
    // A task that is not leased at all.
    assert_eq!(
        store
            .complete_stage("ws", &queued.id, token, &json!({}), now, &never_complete)
            .await?,
        Completion::Fenced(Fence::Stale {
            token,
            current: None,
        })
    );

    assert_eq!(store.get_task("ws", &task.id).await?, Some(claimed));
    assert_eq!(runs_of(&store, &task.id).await?, runs_before);
    assert_eq!(
        store
            .get_task("ws", &queued.id)
            .await?
            .expect("queued")
            .state,
        "queued"
    );

    // Unknown task, or another workspace's.
    for (ws, id) in [("ws", "no-such-task"), ("other", task.id.as_str())] {
        let err = store
            .complete_stage(ws, id, token, &json!({}), now, &never_complete)
            .await
            .expect_err("not found");
        assert_eq!(err.to_string(), format!("task \"{id}\" not found"));
        let err = store
            .heartbeat(ws, id, token, LEASE_MS, now)
            .await
            .expect_err("not found");
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    }
    Ok(())
}

async fn completion_and_failure_are_idempotent(store: Store) -> TestResult {
    let (task, _) = store.create_task(&staged("ws", "t", "plan")).await?;
    let now = clock();
    let (_, token) = claim_one(&store, "ws", now).await?;
    let next = |_: &TaskRow| AfterComplete::Next {
        stage: "implement".to_string(),
        index: 1,
    };
    let Completion::Completed(after) = store
        .complete_stage("ws", &task.id, token, &json!({"n": 1}), now + 5, &next)
        .await?
    else {
        panic!("completed");
    };
    let again = store
        .complete_stage(
            "ws",
            &task.id,
            token,
            &json!({"n": 2}),
            now + 9,
            &never_complete,
        )
        .await?;
    assert_eq!(again, Completion::AlreadyCompleted(after.clone()));
    // Failing a completed token is refused, not "already failed".
    assert_eq!(
        store
            .fail_stage("ws", &task.id, token, "x", "fp", now + 9, &never_fail)
            .await?,
        Failure::Fenced(Fence::Stale {
            token,
            current: None
        })
    );
    assert_eq!(store.get_task("ws", &task.id).await?, Some(after));
    let runs = runs_of(&store, &task.id).await?;
    assert_eq!(
        runs[0].output,
        Some(json!({"n": 1})),
        "the first output stays"
    );
    assert_eq!(runs[0].ended_at, Some(now + 5));

    let (_, token) = claim_one(&store, "ws", now + 10).await?;
    let retry = |_: &TaskRow| AfterFail::Retry { at: now + 20 };
    let Failure::Failed(failed) = store
        .fail_stage("ws", &task.id, token, "boom", "fp-1", now + 11, &retry)
        .await?
    else {
        panic!("failed");
    };
    let again = store
        .fail_stage("ws", &task.id, token, "boom", "fp-1", now + 12, &never_fail)
        .await?;
    assert_eq!(again, Failure::AlreadyFailed(failed.clone()));
    assert_eq!(
        store
            .complete_stage("ws", &task.id, token, &json!({}), now + 12, &never_complete)
            .await?,
        Completion::Fenced(Fence::Stale {
            token,
            current: None
        })
    );
    assert_eq!(store.get_task("ws", &task.id).await?, Some(failed));
    assert!(store.duplicate_completions().await?.is_empty());
    Ok(())
}

async fn completion_applies_the_decision_on_the_current_row(store: Store) -> TestResult {
    let (task, _) = store.create_task(&staged("ws", "t", "plan")).await?;
    let now = clock();
    let (claimed, token) = claim_one(&store, "ws", now).await?;
    let seen = Mutex::new(None);
    let decide = |t: &TaskRow| {
        *seen.lock().expect("not poisoned") = Some(t.clone());
        AfterComplete::Next {
            stage: "implement".to_string(),
            index: 1,
        }
    };
    let done_at = now + 1_500;
    let Completion::Completed(after) = store
        .complete_stage(
            "ws",
            &task.id,
            token,
            &json!({"plan": "x"}),
            done_at,
            &decide,
        )
        .await?
    else {
        panic!("completed");
    };
    assert_eq!(
        seen.lock().expect("not poisoned").as_ref(),
        Some(&claimed),
        "decide sees the row as claimed"
    );
    assert_eq!(after.state, "queued");
    assert_eq!((after.stage.as_str(), after.stage_index), ("implement", 1));
    assert_eq!((after.attempts, after.total_attempts), (0, 1));
    assert_eq!(after.high_water, 1);
    assert_eq!(after.next_attempt_at, done_at);
    assert_eq!(
        (
            after.lease_owner.clone(),
            after.lease_expires_at,
            after.lease_token
        ),
        (None, None, None)
    );
    assert_eq!(after.used.wall_ms, 1_500);
    assert_eq!((after.updated_at, after.last_event_at), (done_at, done_at));
    let runs = runs_of(&store, &task.id).await?;
    assert_eq!(runs[0].outcome.as_deref(), Some("completed"));
    assert_eq!(runs[0].output, Some(json!({"plan": "x"})));

    // Back to plan (a rejection): high water stays.
    let (_, token) = claim_one(&store, "ws", done_at).await?;
    let Completion::Completed(after) = store
        .complete_stage("ws", &task.id, token, &json!({}), done_at + 500, &|_| {
            AfterComplete::Next {
                stage: "plan".to_string(),
                index: 0,
            }
        })
        .await?
    else {
        panic!("completed");
    };
    assert_eq!((after.stage.as_str(), after.high_water), ("plan", 1));
    assert_eq!(after.used.wall_ms, 2_000);

    // Waiting for approval keeps the stage and the reason.
    let later = done_at + 1_000;
    let (_, token) = claim_one(&store, "ws", later).await?;
    let Completion::Completed(after) = store
        .complete_stage("ws", &task.id, token, &json!({}), later, &|_| {
            AfterComplete::WaitApproval {
                reason: "no quorum".to_string(),
            }
        })
        .await?
    else {
        panic!("completed");
    };
    assert_eq!(after.state, "waiting_approval");
    assert_eq!(after.stage, "plan");
    assert_eq!(after.last_error.as_deref(), Some("no quorum"));
    assert_eq!(after.finished_at, None);
    assert!(
        store
            .claim_stages(&claim_req("ws", "w", 1, later))
            .await?
            .is_empty()
    );

    // Done.
    let (other, _) = store.create_task(&new_task("ws", "one stage")).await?;
    let (_, token) = claim_one(&store, "ws", later).await?;
    let Completion::Completed(after) = store
        .complete_stage("ws", &other.id, token, &json!({}), later + 7, &|t| {
            assert_eq!(t.pipeline, ["implement"]);
            AfterComplete::Done
        })
        .await?
    else {
        panic!("completed");
    };
    assert_eq!(after.state, "done");
    assert_eq!(after.finished_at, Some(later + 7));
    assert_eq!(after.lease_token, None);
    Ok(())
}

/// A completion decides from the task and the workspace's settings. On
/// PostgreSQL it reads without a lock and writes only if the row is still
/// the version it read: here a change lands in between (from inside
/// `decide`, on another connection), so the completion decides again on
/// the changed row and is applied once, keeping that change.
async fn a_completion_sees_the_settings_and_survives_a_change_in_between(
    store: Store,
) -> TestResult {
    store
        .put_settings(&SettingsRow {
            workspace: "ws".to_string(),
            mode: WorkspaceMode::Minimal,
            mode_reason: Some("test".to_string()),
            pipeline: None,
            limits: json!({}),
            hourly_tokens: None,
            hourly_cost_micros: None,
            actor: "test".to_string(),
            updated_at: 1,
        })
        .await?;
    let (task, _) = store.create_task(&staged("ws", "t", "plan")).await?;
    let now = clock();
    let (_, token) = claim_one(&store, "ws", now).await?;
    let racing = store.dialect() == Dialect::Postgres;
    let url = database_url();
    let seen = Mutex::new(Vec::new());
    let decide = |t: &TaskRow, s: Option<&SettingsRow>| {
        let mut seen = seen.lock().expect("not poisoned");
        seen.push((t.last_fingerprint.clone(), s.map(|s| s.mode.to_string())));
        if racing && seen.len() == 1 {
            let (url, id) = (url.clone(), t.id.clone());
            let changed = std::thread::spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&url).await?;
                    sqlx::query("UPDATE tasks SET last_fingerprint = 'changed' WHERE id = $1")
                        .bind(id)
                        .execute(&mut conn)
                        .await?;
                    Ok(())
                })
            })
            .join();
            assert!(
                matches!(changed, Ok(Ok(()))),
                "the change in between: {changed:?}"
            );
        }
        AfterComplete::Next {
            stage: "implement".to_string(),
            index: 1,
        }
    };
    let also = |t: &TaskRow| Also {
        events: vec![NewEvent::new(
            "status",
            json!({ "state": t.state, "stage": t.stage }),
        )],
        notify: None,
    };
    let done_at = now + 250;
    let completing = Completing {
        workspace: "ws",
        task_id: &task.id,
        token,
        output: &json!({ "ok": true }),
        now: done_at,
        decision: None,
    };
    let (completion, written) = store
        .complete_stage_with(&completing, &decide, &also)
        .await?;
    let Completion::Completed(after) = completion else {
        panic!("completed: {completion:?}");
    };
    let seen = seen.into_inner().expect("not poisoned");
    let minimal = Some("minimal".to_string());
    if racing {
        assert_eq!(
            seen,
            [
                (None, minimal.clone()),
                (Some("changed".to_string()), minimal)
            ],
            "decided again on the changed row, with the settings"
        );
        assert_eq!(after.last_fingerprint.as_deref(), Some("changed"));
    } else {
        assert_eq!(seen, [(None, minimal)], "decided once, with the settings");
    }
    assert_eq!(
        (after.state.as_str(), after.stage.as_str()),
        ("queued", "implement")
    );
    assert_eq!(after.used.wall_ms, 250);
    assert_eq!(after.lease_token, None);
    assert_eq!(
        written.also.events,
        [NewEvent::new(
            "status",
            json!({ "state": "queued", "stage": "implement" })
        )]
    );
    let events = store.list_task_events("ws", &task.id, 0, 100).await?;
    assert_eq!(events.len(), 1, "the event is written once: {events:?}");
    assert_eq!((events[0].seq, events[0].at), (1, done_at));
    let runs = runs_of(&store, &task.id).await?;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("completed"));
    assert_eq!(runs[0].ended_at, Some(done_at));

    // Again with the same token: already completed, nothing decided.
    let (again, written) = store
        .complete_stage_with(&completing, &|_, _| panic!("no decision"), &also)
        .await?;
    assert!(
        matches!(again, Completion::AlreadyCompleted(_)),
        "{again:?}"
    );
    assert_eq!(written.also.events, []);
    Ok(())
}

/// `complete_stages`: one batch with a completion to write, a stale token,
/// the same lease twice, a task that does not exist and an expired lease.
/// Each gets its own outcome; what was written is written once, with its
/// events numbered after the task's own.
async fn a_batch_of_completions_settles_each_on_its_own(store: Store) -> TestResult {
    let now = clock();
    let mut leases = Vec::new();
    for title in ["a", "b", "c", "d"] {
        let (t, _) = store.create_task(&staged("ws", title, "plan")).await?;
        store
            .add_task_event("ws", &t.id, "tool_start", &json!({}), now)
            .await?;
        let (_, token) = claim_one(&store, "ws", now).await?;
        leases.push((t.id, token));
    }
    // Quotes, backslashes, a NUL and non-ASCII text survive the batch's JSON.
    let output = json!({ "done": true, "text": "a \"quote\", a \\ backslash, a \u{0} NUL, é 🚀" });
    let at = now + 100;
    fn item<'a>(
        workspace: &'a str,
        lease: &'a (String, i64),
        token: i64,
        output: &'a serde_json::Value,
        now: i64,
    ) -> Completing<'a> {
        Completing {
            workspace,
            task_id: &lease.0,
            token,
            output,
            now,
            decision: None,
        }
    }
    let batch = [
        // a: completes.
        item("ws", &leases[0], leases[0].1, &output, at),
        // b: a token that is not its lease.
        item("ws", &leases[1], leases[0].1, &output, at),
        // c, twice: completes, then is already completed.
        item("ws", &leases[2], leases[2].1, &output, at),
        item("ws", &leases[2], leases[2].1, &output, at),
        // d in a workspace that does not have it.
        item("elsewhere", &leases[3], leases[3].1, &output, at),
        // d: its lease expired long ago.
        item("ws", &leases[3], leases[3].1, &output, at + 10 * LEASE_MS),
    ];
    let decided = Mutex::new(Vec::new());
    let decide = |i: usize, t: &TaskRow, _: Option<&SettingsRow>| {
        decided.lock().expect("not poisoned").push(i);
        assert_eq!(t.id, batch[i].task_id);
        AfterComplete::Next {
            stage: "implement".to_string(),
            index: 1,
        }
    };
    let also = |i: usize, t: &TaskRow| Also {
        events: vec![
            NewEvent::new(
                "status",
                json!({ "item": i, "state": t.state, "note": "\"\\\u{0}é" }),
            ),
            NewEvent::new("stop_reason", json!({ "item": i })),
        ],
        notify: Some(("warden_test".to_string(), "ws".to_string())),
    };
    let outcomes = store.complete_stages(&batch, &decide, &also).await?;
    assert_eq!(outcomes.len(), batch.len());
    let mut outcomes = outcomes.into_iter();
    let mut next = || outcomes.next().expect("one outcome per completion");
    let (a, written) = next()?;
    assert!(
        matches!(&a, Completion::Completed(t) if t.stage == "implement" && t.used.wall_ms == 100),
        "{a:?}"
    );
    assert_eq!(written.also.events.len(), 2);
    assert!(matches!(next()?.0, Completion::Fenced(Fence::Stale { .. })));
    assert!(matches!(next()?.0, Completion::Completed(_)));
    assert!(matches!(next()?.0, Completion::AlreadyCompleted(_)));
    assert!(matches!(next(), Err(Error::NotFound(_))));
    assert!(matches!(
        next()?.0,
        Completion::Fenced(Fence::Expired { .. })
    ));
    let mut decided = decided.into_inner().expect("not poisoned");
    decided.sort_unstable();
    assert_eq!(decided, [0, 2], "only what could proceed was decided");

    for (k, (id, _)) in leases.iter().enumerate() {
        let runs = runs_of(&store, id).await?;
        let events = store.list_task_events("ws", id, 0, 0).await?;
        let seqs: Vec<(i64, &str)> = events.iter().map(|e| (e.seq, e.kind.as_str())).collect();
        if k == 0 || k == 2 {
            assert_eq!(runs[0].outcome.as_deref(), Some("completed"));
            assert_eq!(runs[0].output, Some(output.clone()));
            assert_eq!(seqs, [(1, "tool_start"), (2, "status"), (3, "stop_reason")]);
            assert_eq!(
                events[1].data,
                json!({ "item": k, "state": "queued", "note": "\"\\\u{0}é" })
            );
            assert_eq!(events[1].at, at);
        } else {
            assert_eq!(runs[0].outcome, None, "task {k} untouched");
            assert_eq!(seqs, [(1, "tool_start")]);
        }
    }
    Ok(())
}

async fn failure_decisions_retry_dead_and_block(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "flaky")).await?;
    let now = clock();
    let (claimed, token) = claim_one(&store, "ws", now).await?;
    let seen = Mutex::new(None);
    let retry = |t: &TaskRow| {
        *seen.lock().expect("not poisoned") = Some(t.clone());
        AfterFail::Retry { at: now + 5_000 }
    };
    let Failure::Failed(after) = store
        .fail_stage(
            "ws",
            &task.id,
            token,
            "tests failed",
            "fp-tests",
            now + 100,
            &retry,
        )
        .await?
    else {
        panic!("failed");
    };
    let saw = seen.lock().expect("not poisoned").clone().expect("decided");
    assert_eq!(
        saw.state, "running",
        "decide sees the row before the decision"
    );
    assert_eq!(saw.lease_token, claimed.lease_token);
    assert_eq!(saw.last_error.as_deref(), Some("tests failed"));
    assert_eq!(saw.last_fingerprint.as_deref(), Some("fp-tests"));
    assert_eq!(saw.fingerprint_streak, 1);
    assert_eq!(after.state, "queued");
    assert_eq!(after.next_attempt_at, now + 5_000);
    assert_eq!(after.attempts, 1, "attempts count claims");
    assert_eq!(after.last_error.as_deref(), Some("tests failed"));
    assert_eq!(after.used.wall_ms, 100);
    assert_eq!(after.lease_token, None);
    let runs = runs_of(&store, &task.id).await?;
    assert_eq!(runs[0].outcome.as_deref(), Some("failed"));
    assert_eq!(runs[0].error.as_deref(), Some("tests failed"));
    assert_eq!(runs[0].fingerprint.as_deref(), Some("fp-tests"));
    assert_eq!(runs[0].ended_at, Some(now + 100));

    // The backoff is honoured.
    assert!(
        store
            .claim_stages(&claim_req("ws", "w", 1, now + 4_999))
            .await?
            .is_empty()
    );
    let (again, token) = claim_one(&store, "ws", now + 5_000).await?;
    assert_eq!((again.attempts, again.total_attempts), (2, 2));

    // Dead: the dead-letter queue.
    let Failure::Failed(dead) = store
        .fail_stage(
            "ws",
            &task.id,
            token,
            "still failing",
            "fp-2",
            now + 6_000,
            &|_| AfterFail::Dead,
        )
        .await?
    else {
        panic!("failed");
    };
    assert_eq!(dead.state, "dead");
    assert_eq!(dead.finished_at, Some(now + 6_000));
    assert_eq!(dead.last_error.as_deref(), Some("still failing"));
    assert_eq!(
        store.list_dead_letters("ws", 0).await?,
        std::slice::from_ref(&dead)
    );
    assert!(store.list_dead_letters("other", 0).await?.is_empty());

    // Block keeps the reason.
    let (blocked, _) = store.create_task(&new_task("ws", "looping")).await?;
    let (_, token) = claim_one(&store, "ws", now + 7_000).await?;
    let Failure::Failed(after) = store
        .fail_stage(
            "ws",
            &blocked.id,
            token,
            "same error",
            "fp",
            now + 7_000,
            &|_| AfterFail::Block {
                reason: "infinite loop".to_string(),
            },
        )
        .await?
    else {
        panic!("failed");
    };
    assert_eq!(after.state, "blocked");
    assert_eq!(after.last_error.as_deref(), Some("infinite loop"));
    assert_eq!(after.last_fingerprint.as_deref(), Some("fp"));
    assert!(
        store
            .claim_stages(&claim_req("ws", "w", 5, now + 9_000))
            .await?
            .is_empty()
    );
    Ok(())
}

async fn fingerprint_streak_counts_repeats(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "t")).await?;
    let now = clock();
    let mut streaks = Vec::new();
    for fp in ["a", "a", "b", "b", "b", "a"] {
        let (_, token) = claim_one(&store, "ws", now).await?;
        let seen = Mutex::new(0);
        let decide = |t: &TaskRow| {
            *seen.lock().expect("not poisoned") = t.fingerprint_streak;
            AfterFail::Retry { at: now }
        };
        let Failure::Failed(after) = store
            .fail_stage("ws", &task.id, token, "err", fp, now, &decide)
            .await?
        else {
            panic!("failed");
        };
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            after.fingerprint_streak
        );
        streaks.push(after.fingerprint_streak);
    }
    assert_eq!(streaks, [1, 2, 1, 2, 3, 1]);
    Ok(())
}

async fn heartbeat_extends_the_lease(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "long")).await?;
    let now = clock();
    let (_, token) = claim_one(&store, "ws", now).await?;
    let beat = now + 20_000;
    let extended = store
        .heartbeat("ws", &task.id, token, 60_000, beat)
        .await?
        .expect("current lease");
    assert_eq!(extended.lease_expires_at, Some(beat + 60_000));
    assert_eq!(extended.last_event_at, beat);
    assert_eq!(extended.lease_token, Some(token));
    assert_eq!(
        runs_of(&store, &task.id).await?[0].expires_at,
        beat + 60_000
    );
    let workers = store.list_workers("ws", 0).await?;
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].last_heartbeat_at, beat);
    assert_eq!(workers[0].active_leases, 1);

    // Past the first expiry, within the new one: still the holder.
    let late = now + LEASE_MS + 10_000;
    assert!(
        store
            .claim_stages(&claim_req("ws", "thief", 1, late))
            .await?
            .is_empty(),
        "an extended lease is not taken over"
    );
    let done = store
        .complete_stage("ws", &task.id, token, &json!({}), late, &|_| {
            AfterComplete::Done
        })
        .await?;
    assert!(matches!(done, Completion::Completed(_)), "{done:?}");
    Ok(())
}

async fn cancel_ends_the_lease(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "t")).await?;
    let now = clock();
    let (_, token) = claim_one(&store, "ws", now).await?;
    let cancelled = store.cancel_task("ws", &task.id, now + 1).await?;
    assert_eq!(cancelled.state, "cancelled");
    assert_eq!(cancelled.finished_at, Some(now + 1));
    assert_eq!(
        (cancelled.lease_owner.clone(), cancelled.lease_token),
        (None, None)
    );
    let runs = runs_of(&store, &task.id).await?;
    assert_eq!(runs[0].outcome.as_deref(), Some("cancelled"));
    assert_eq!(runs[0].ended_at, Some(now + 1));
    assert_eq!(
        store
            .complete_stage("ws", &task.id, token, &json!({}), now + 2, &never_complete)
            .await?,
        Completion::Fenced(Fence::Stale {
            token,
            current: None
        })
    );
    let err = store
        .cancel_task("ws", &task.id, now + 3)
        .await
        .expect_err("cancelled already");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("task \"{}\" is cancelled and cannot be cancelled", task.id)
    );
    // A queued task is cancelled too; an unknown one is not found.
    let (queued, _) = store.create_task(&new_task("ws", "q")).await?;
    assert_eq!(
        store.cancel_task("ws", &queued.id, now).await?.state,
        "cancelled"
    );
    assert!(list_runs_empty(&store, &queued.id).await?);
    let err = store
        .cancel_task("other", &queued.id, now)
        .await
        .expect_err("another workspace");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    Ok(())
}

async fn list_runs_empty(store: &Store, task_id: &str) -> anyhow::Result<bool> {
    Ok(store.list_stage_runs(task_id).await?.is_empty())
}

async fn redrive_requeues_a_dead_task(store: Store) -> TestResult {
    let (task, _) = store.create_task(&staged("ws", "t", "implement")).await?;
    let now = clock();
    for fp in ["x", "x"] {
        let (_, token) = claim_one(&store, "ws", now).await?;
        store
            .fail_stage("ws", &task.id, token, "err", fp, now, &|t| {
                if t.attempts >= 2 {
                    AfterFail::Dead
                } else {
                    AfterFail::Retry { at: now }
                }
            })
            .await?;
    }
    let dead = store.get_task("ws", &task.id).await?.expect("task");
    assert_eq!((dead.state.as_str(), dead.fingerprint_streak), ("dead", 2));

    let redriven = store.redrive("ws", &task.id, now + 10).await?;
    assert_eq!(redriven.state, "queued");
    assert_eq!(
        (redriven.stage.as_str(), redriven.stage_index),
        ("implement", 1)
    );
    assert_eq!((redriven.attempts, redriven.fingerprint_streak), (0, 0));
    assert_eq!(redriven.total_attempts, 2);
    assert_eq!(redriven.next_attempt_at, now + 10);
    assert_eq!(redriven.finished_at, None);
    assert_eq!(redriven.last_error.as_deref(), Some("err"));
    assert!(store.list_dead_letters("ws", 0).await?.is_empty());
    let (again, _) = claim_one(&store, "ws", now + 10).await?;
    assert_eq!(again.attempts, 1);

    let err = store
        .redrive("ws", &task.id, now)
        .await
        .expect_err("not dead");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "task \"{}\" is running and cannot be redriven (only dead tasks can)",
            task.id
        )
    );
    let err = store
        .redrive("ws", "nope", now)
        .await
        .expect_err("not found");
    assert_eq!(err.to_string(), "task \"nope\" not found");
    Ok(())
}

async fn redrive_refuses_a_taken_dedup_key(store: Store) -> TestResult {
    let keyed = || NewTask {
        dedup_key: Some("fp-1".to_string()),
        ..new_task("ws", "fix fp-1")
    };
    let (first, _) = store.create_task(&keyed()).await?;
    let now = clock();
    let (_, token) = claim_one(&store, "ws", now).await?;
    store
        .fail_stage("ws", &first.id, token, "e", "f", now, &|_| AfterFail::Dead)
        .await?;
    // The key is free: a new task takes it.
    let (second, created) = store.create_task(&keyed()).await?;
    assert!(created);
    let err = store
        .redrive("ws", &first.id, now)
        .await
        .expect_err("the key is taken");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "task \"{}\" cannot be redriven: unfinished task \"{}\" holds its dedup key \"fp-1\" \
             (finish or cancel that one first)",
            first.id, second.id
        )
    );
    assert_eq!(
        store.get_task("ws", &first.id).await?.expect("task").state,
        "dead"
    );
    // Once the other one is finished, it can be redriven.
    store.cancel_task("ws", &second.id, now).await?;
    assert_eq!(store.redrive("ws", &first.id, now).await?.state, "queued");
    Ok(())
}

/// Issue 15 (SPEC RL-5): a host that shuts down gives back the leases it
/// granted. Only a lease that is still current goes back (a completed one,
/// or one another worker took over, is left alone), across workspaces.
async fn released_leases_requeue_only_current_ones(store: Store) -> TestResult {
    let now = clock();
    assert!(store.release_leases(&[], now).await?.is_empty());
    let mut held = Vec::new();
    for ws in ["a", "b"] {
        let (task, _) = store.create_task(&new_task(ws, "t")).await?;
        let (_, token) = claim_one(&store, ws, now).await?;
        held.push((task.id, token));
    }
    let (done, _) = store.create_task(&new_task("a", "done")).await?;
    let (_, done_token) = claim_one(&store, "a", now).await?;
    store
        .complete_stage("a", &done.id, done_token, &json!({}), now, &|_| {
            AfterComplete::Done
        })
        .await?;
    let mut tokens: Vec<i64> = held.iter().map(|(_, t)| *t).collect();
    tokens.extend([done_token, 999_999_999]);
    let at = now + 5;
    let released = store.release_leases(&tokens, at).await?;
    let mut ids: Vec<&str> = released.iter().map(|t| t.id.as_str()).collect();
    ids.sort();
    let mut want: Vec<&str> = held.iter().map(|(id, _)| id.as_str()).collect();
    want.sort();
    assert_eq!(ids, want);
    for t in &released {
        assert_eq!(t.state, "queued");
        assert_eq!((t.lease_token, t.lease_expires_at), (None, None));
        assert_eq!(Some(t), store.get_task(&t.workspace, &t.id).await?.as_ref());
    }
    for (id, token) in &held {
        let runs = runs_of(&store, id).await?;
        assert_eq!(runs[0].id, *token);
        assert_eq!(runs[0].outcome.as_deref(), Some("released"));
        assert_eq!(runs[0].ended_at, Some(at));
    }
    assert_ne!(
        store.get_task("a", &done.id).await?.expect("task").state,
        "queued",
        "a completed lease is not released"
    );
    // Released twice: nothing more happens.
    assert!(store.release_leases(&tokens, at).await?.is_empty());
    Ok(())
}

async fn expire_leases_requeues_every_workspace(store: Store) -> TestResult {
    let now = clock();
    assert!(store.expire_leases(now).await?.is_empty(), "nothing to do");
    let mut expiring = Vec::new();
    for ws in ["a", "b"] {
        let (task, _) = store.create_task(&new_task(ws, "t")).await?;
        let (_, token) = claim_one(&store, ws, now).await?;
        expiring.push((task.id, token));
    }
    // A later lease that is still valid at the sweep.
    store.create_task(&new_task("a", "fresh")).await?;
    let (fresh, _) = claim_one(&store, "a", now + 10_000).await?;

    let sweep = now + LEASE_MS + 1;
    let expired = store.expire_leases(sweep).await?;
    let mut ids: Vec<String> = expired.iter().map(|t| t.id.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = expiring.iter().map(|(id, _)| id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    for task in &expired {
        assert_eq!(task.state, "queued");
        assert_eq!(
            (
                task.lease_owner.clone(),
                task.lease_token,
                task.lease_expires_at
            ),
            (None, None, None)
        );
        assert_eq!(task.last_event_at, sweep);
        assert_eq!(
            Some(task),
            store.get_task(&task.workspace, &task.id).await?.as_ref()
        );
    }
    for (id, token) in &expiring {
        let runs = runs_of(&store, id).await?;
        assert_eq!(runs[0].id, *token);
        assert_eq!(runs[0].outcome.as_deref(), Some("expired"));
        assert_eq!(runs[0].ended_at, Some(sweep));
    }
    assert_eq!(
        store.get_task("a", &fresh.id).await?.expect("fresh").state,
        "running"
    );
    assert!(store.expire_leases(sweep).await?.is_empty(), "swept once");
    Ok(())
}

async fn stage_run_history_and_durations(store: Store) -> TestResult {
    let (task, _) = store.create_task(&staged("ws", "t", "plan")).await?;
    let now = clock();
    let (_, token) = claim_one(&store, "ws", now).await?;
    store
        .complete_stage("ws", &task.id, token, &json!({}), now + 300, &|_| {
            AfterComplete::Next {
                stage: "implement".to_string(),
                index: 1,
            }
        })
        .await?;
    let (_, token) = claim_one(&store, "ws", now + 400).await?;
    store
        .fail_stage("ws", &task.id, token, "e", "f", now + 500, &|_| {
            AfterFail::Retry { at: now }
        })
        .await?;
    let (_, token) = claim_one(&store, "ws", now + 600).await?;
    store
        .complete_stage("ws", &task.id, token, &json!({}), now + 1_600, &|_| {
            AfterComplete::Done
        })
        .await?;

    let runs = runs_of(&store, &task.id).await?;
    let summary: Vec<(&str, i64, Option<&str>)> = runs
        .iter()
        .map(|r| (r.stage.as_str(), r.attempt, r.outcome.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("plan", 1, Some("completed")),
            ("implement", 1, Some("failed")),
            ("implement", 2, Some("completed")),
        ]
    );
    assert_eq!(
        store.completed_stage_runs_since("ws", now).await?,
        [
            ("plan".to_string(), now, now + 300),
            ("implement".to_string(), now + 600, now + 1_600),
        ]
    );
    assert_eq!(
        store.completed_stage_runs_since("ws", now + 301).await?,
        [("implement".to_string(), now + 600, now + 1_600)]
    );
    assert!(
        store
            .completed_stage_runs_since("other", 0)
            .await?
            .is_empty()
    );
    assert!(store.duplicate_completions().await?.is_empty());
    let done = store.get_task("ws", &task.id).await?.expect("task");
    assert_eq!(done.used.wall_ms, 300 + 100 + 1_000);

    // The duration histogram for /metrics: plan 300 ms, implement failed
    // after 100 ms and completed after 1000 ms.
    let hist = store.stage_duration_histogram(&[100, 500, 5_000]).await?;
    let view: Vec<(&str, &str, &[i64], i64, i64)> = hist
        .iter()
        .map(|h| {
            (
                h.stage.as_str(),
                h.outcome.as_str(),
                h.cumulative.as_slice(),
                h.count,
                h.sum_ms,
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("implement", "completed", &[0, 0, 1][..], 1, 1_000),
            ("implement", "failed", &[1, 1, 1][..], 1, 100),
            ("plan", "completed", &[0, 1, 1][..], 1, 300),
        ]
    );
    assert!(hist.iter().all(|h| h.workspace == "ws"));

    // The check finds a forged duplicate.
    raw_execute(&format!(
        "INSERT INTO stage_runs (task_id, workspace, stage, attempt, worker_id, claimed_at, expires_at, \
         ended_at, outcome) VALUES ('{}', 'ws', 'plan', 1, 'forger', 0, 0, 0, 'completed')",
        task.id
    ))
    .await?;
    assert_eq!(
        store.duplicate_completions().await?,
        [(task.id.clone(), "plan".to_string(), 2)]
    );
    Ok(())
}
