//! `tasks`: creation with dedup keys, queries, and every transition of
//! `apply_task_change`, with its action written in the same transaction.

use serde_json::json;
use warden_store::stages::{AfterFail, Failure};
use warden_store::tasks::{
    NewTask, STATES, TaskBudget, TaskChange, TaskQuery, TaskRow, TaskState, TaskUsage,
};
use warden_store::{Error, Store, now_ms};

use crate::common::{TestResult, action, claim_req, force_task, new_task, raw_execute};

conformance!(
    create_and_get,
    dedup_create_returns_the_unfinished_task,
    create_with_action_records_it,
    every_allowed_transition,
    every_refused_transition_changes_nothing,
    change_records_its_action_atomically,
    change_of_a_missing_task_is_not_found,
    list_tasks_filters,
    counts_by_state_and_stuck,
    create_stores_the_scheduler_fields,
    create_checks_pipeline_and_dependencies,
    changes_make_the_task_claimable_and_end_its_lease,
    an_unknown_stored_state_is_an_error,
);

fn changes() -> Vec<(TaskChange, &'static str)> {
    vec![
        (TaskChange::Requeue, "requeued"),
        (TaskChange::Reset, "reset"),
        (
            TaskChange::Block {
                reason: "waiting for the database".to_string(),
            },
            "blocked",
        ),
        (TaskChange::Unblock, "unblocked"),
    ]
}

/// The states each change accepts (see `TaskChange`).
fn allowed(change: &TaskChange) -> &'static [&'static str] {
    match change {
        TaskChange::Requeue | TaskChange::Reset => &["running", "failed", "blocked", "queued"],
        TaskChange::Block { .. } => &["queued", "running", "waiting_approval", "blocked", "failed"],
        TaskChange::Unblock => &["blocked"],
    }
}

/// A task forced into `state`, with a lease, two attempts and (unless
/// finished) an error recorded, as the scheduler would leave it.
async fn task_in(store: &Store, state: &str) -> anyhow::Result<TaskRow> {
    let (task, _) = store
        .create_task(&new_task("ws", &format!("a {state} task")))
        .await?;
    let id = task.id.clone();
    raw_execute(&format!("UPDATE tasks SET attempts = 2 WHERE id = '{id}'")).await?;
    force_task(&id, state, Some(("worker-1", now_ms() + 60_000)), None).await?;
    // The error through a Block, then back to the state.
    if state != "done" && state != "cancelled" && state != "dead" {
        store
            .apply_task_change(
                "ws",
                &id,
                &TaskChange::Block {
                    reason: "boom".to_string(),
                },
                None,
            )
            .await?;
        force_task(&id, state, Some(("worker-1", now_ms() + 60_000)), None).await?;
    }
    Ok(store.get_task("ws", &id).await?.expect("task"))
}

async fn create_and_get(store: Store) -> TestResult {
    let before = now_ms();
    let new = new_task("ws", "fix the build");
    let (task, created) = store.create_task(&new).await?;
    assert!(created);
    assert_eq!(task.id, new.id);
    assert_eq!(task.workspace, "ws");
    assert_eq!(task.title, "fix the build");
    assert_eq!(task.body, "body of fix the build");
    assert_eq!(task.stage, "implement");
    assert_eq!(task.state, "queued");
    assert_eq!(task.priority, "normal");
    assert_eq!(task.attempts, 0);
    assert_eq!(
        (task.last_error.clone(), task.dedup_key.clone()),
        (None, None)
    );
    assert_eq!(
        (task.lease_owner.clone(), task.lease_expires_at),
        (None, None)
    );
    assert!(task.created_at >= before);
    assert_eq!(task.updated_at, task.created_at);
    assert_eq!(task.last_event_at, task.created_at);
    assert_eq!(store.get_task("ws", &task.id).await?, Some(task.clone()));
    assert_eq!(
        store.get_task("other", &task.id).await?,
        None,
        "tasks are confined to their workspace"
    );

    let err = store.create_task(&new).await.expect_err("the id is taken");
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("task \"{}\" already exists", new.id)
    );
    Ok(())
}

async fn dedup_create_returns_the_unfinished_task(store: Store) -> TestResult {
    let keyed = |ws: &str| NewTask {
        dedup_key: Some("fingerprint-1".to_string()),
        ..new_task(ws, "fix error fingerprint-1")
    };
    let (first, created) = store.create_task(&keyed("ws")).await?;
    assert!(created);
    assert_eq!(first.dedup_key.as_deref(), Some("fingerprint-1"));

    let (same, created) = store.create_task(&keyed("ws")).await?;
    assert!(!created);
    assert_eq!(same, first);

    // Every unfinished state holds the key.
    for state in ["running", "waiting_approval", "blocked", "failed"] {
        force_task(&first.id, state, None, None).await?;
        let (found, created) = store.create_task(&keyed("ws")).await?;
        assert!(!created, "a {state} task holds its dedup key");
        assert_eq!(found.id, first.id);
    }
    // Another workspace has its own keys; tasks without a key never dedup.
    assert!(store.create_task(&keyed("other")).await?.1);
    assert!(store.create_task(&new_task("ws", "plain")).await?.1);
    assert!(store.create_task(&new_task("ws", "plain")).await?.1);

    // A finished task frees the key.
    let mut previous = first.id.clone();
    for state in ["done", "cancelled", "dead"] {
        force_task(&previous, state, None, None).await?;
        let (next, created) = store.create_task(&keyed("ws")).await?;
        assert!(created, "a {state} task does not hold its dedup key");
        assert_ne!(next.id, previous);
        previous = next.id;
    }
    Ok(())
}

async fn create_with_action_records_it(store: Store) -> TestResult {
    let new = NewTask {
        dedup_key: Some("fp".to_string()),
        priority: "urgent".to_string(),
        ..new_task("ws", "investigate")
    };
    let (task, created) = store
        .create_task_with_action(&new, &action("ws", "run-1", 1, "tasks.create", None))
        .await?;
    assert!(created);
    let snapshot = json!({
        "id": task.id, "state": "queued", "stage": "implement",
        "attempts": 0, "last_error": null, "priority": "urgent",
    });
    let recorded = store.list_actions("run-1").await?;
    assert_eq!(recorded.len(), 1);
    let first = &recorded[0];
    assert_eq!(first.status, "applied");
    assert_eq!(first.call, "tasks.create");
    assert_eq!(first.before, None);
    assert_eq!(first.after, Some(snapshot.clone()));
    assert_eq!(first.detail.as_deref(), Some(task.id.as_str()));

    // A deduplicated create changes nothing: before and after are the same task.
    let (same, created) = store
        .create_task_with_action(
            &NewTask {
                id: warden_store::new_id(),
                ..new.clone()
            },
            &action("ws", "run-1", 2, "tasks.create", None),
        )
        .await?;
    assert!(!created);
    assert_eq!(same.id, task.id);
    let recorded = store.list_actions("run-1").await?;
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].before, Some(snapshot.clone()));
    assert_eq!(recorded[1].after, Some(snapshot));
    assert_eq!(recorded[1].detail.as_deref(), Some(task.id.as_str()));

    // A duplicate action rolls the creation back.
    let other = new_task("ws", "never stored");
    let err = store
        .create_task_with_action(&other, &action("ws", "run-1", 1, "tasks.create", None))
        .await
        .expect_err("action 1 of run-1 exists");
    assert_eq!(err.to_string(), "action 1 of run \"run-1\" already exists");
    assert_eq!(
        store.get_task("ws", &other.id).await?,
        None,
        "the task was rolled back with its action"
    );
    Ok(())
}

async fn every_allowed_transition(store: Store) -> TestResult {
    for (change, _) in changes() {
        for state in allowed(&change) {
            let before = task_in(&store, state).await?;
            assert_eq!(before.state, *state);
            assert!(before.lease_owner.is_some());
            assert_eq!(before.last_error.as_deref(), Some("boom"));
            let start = now_ms();
            assert_eq!(before.attempts, 2);
            let (old, new) = store
                .apply_task_change("ws", &before.id, &change, None)
                .await?;
            assert_eq!(old, before, "{change:?} from {state}: the task before");
            assert_eq!(store.get_task("ws", &before.id).await?.as_ref(), Some(&new));
            let expected_state = if matches!(change, TaskChange::Block { .. }) {
                "blocked"
            } else {
                "queued"
            };
            assert_eq!(new.state, expected_state, "{change:?} from {state}");
            assert_eq!(
                (new.lease_owner.clone(), new.lease_expires_at),
                (None, None),
                "{change:?} clears the lease"
            );
            assert!(new.updated_at >= start && new.last_event_at >= start);
            match &change {
                TaskChange::Reset => {
                    assert_eq!(new.attempts, 0);
                    assert_eq!(new.last_error, None);
                }
                TaskChange::Block { reason } => {
                    assert_eq!(new.last_error.as_deref(), Some(reason.as_str()));
                    assert_eq!(new.attempts, before.attempts);
                }
                TaskChange::Requeue | TaskChange::Unblock => {
                    assert_eq!(new.last_error, before.last_error);
                    assert_eq!(new.attempts, before.attempts);
                }
            }
            assert_eq!(
                (new.title.clone(), new.stage.clone(), new.created_at),
                (before.title, before.stage, before.created_at)
            );
        }
    }
    Ok(())
}

async fn every_refused_transition_changes_nothing(store: Store) -> TestResult {
    let mut refused = 0;
    for (change, verb) in changes() {
        for state in STATES.iter().filter(|s| !allowed(&change).contains(s)) {
            let before = task_in(&store, state).await?;
            let act = action(
                "ws",
                "run-refused",
                refused + 1,
                "tasks.change",
                Some(&before.id),
            );
            let err = store
                .apply_task_change("ws", &before.id, &change, Some(&act))
                .await
                .expect_err("refused");
            assert!(matches!(err, Error::Conflict(_)), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!("task \"{}\" is {state} and cannot be {verb}", before.id)
            );
            assert_eq!(
                store.get_task("ws", &before.id).await?,
                Some(before),
                "{change:?} from {state} changed the task"
            );
            refused += 1;
        }
    }
    // Requeue/Reset refuse 4 states, Block 3, Unblock 7.
    assert_eq!(refused, 18);
    assert!(
        store.list_actions("run-refused").await?.is_empty(),
        "refused changes record no action"
    );
    Ok(())
}

async fn change_records_its_action_atomically(store: Store) -> TestResult {
    let task = task_in(&store, "failed").await?;
    let mut act = action("ws", "run-1", 1, "tasks.reset", Some(&task.id));
    act.detail = Some("reset after a transient failure".to_string());
    let (old, new) = store
        .apply_task_change("ws", &task.id, &TaskChange::Reset, Some(&act))
        .await?;
    let recorded = store.list_actions("run-1").await?;
    assert_eq!(recorded.len(), 1);
    let row = &recorded[0];
    assert_eq!(row.status, "applied", "the caller's status is replaced");
    assert_eq!(
        (row.call.as_str(), row.target.as_deref()),
        ("tasks.reset", Some(task.id.as_str()))
    );
    assert_eq!(
        (
            row.workspace.as_str(),
            row.plugin.as_str(),
            row.digest.as_str()
        ),
        ("ws", "repair", "sha256:repair")
    );
    assert_eq!(row.args, act.args);
    assert_eq!(row.at, act.at);
    assert_eq!(
        row.detail.as_deref(),
        Some("reset after a transient failure")
    );
    assert_eq!(
        row.before,
        Some(
            json!({"id": task.id, "state": "failed", "stage": "implement", "attempts": old.attempts, "last_error": "boom", "priority": "normal"})
        )
    );
    assert_eq!(
        row.after,
        Some(
            json!({"id": task.id, "state": "queued", "stage": "implement", "attempts": 0, "last_error": null, "priority": "normal"})
        )
    );
    assert_eq!(new.state, "queued");

    // When the action cannot be written, the change is rolled back with it.
    let blocked = store
        .apply_task_change(
            "ws",
            &task.id,
            &TaskChange::Block {
                reason: "x".to_string(),
            },
            Some(&act),
        )
        .await
        .expect_err("action 1 of run-1 exists");
    assert!(matches!(blocked, Error::AlreadyExists(_)), "{blocked:?}");
    assert_eq!(
        store.get_task("ws", &task.id).await?,
        Some(new),
        "the task did not change"
    );
    assert_eq!(store.list_actions("run-1").await?.len(), 1);
    Ok(())
}

async fn change_of_a_missing_task_is_not_found(store: Store) -> TestResult {
    let err = store
        .apply_task_change("ws", "no-such-task", &TaskChange::Requeue, None)
        .await
        .expect_err("no task");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "task \"no-such-task\" not found");

    let (task, _) = store.create_task(&new_task("ws", "mine")).await?;
    let act = action("other", "run-x", 1, "tasks.requeue", Some(&task.id));
    let err = store
        .apply_task_change("other", &task.id, &TaskChange::Requeue, Some(&act))
        .await
        .expect_err("another workspace's task");
    assert_eq!(err.to_string(), format!("task \"{}\" not found", task.id));
    assert!(store.list_actions("run-x").await?.is_empty());
    Ok(())
}

async fn list_tasks_filters(store: Store) -> TestResult {
    let now = 10_000_000;
    let mut ids = Vec::new();
    // (state, last_event_at, lease expiry)
    let shapes: [(&str, i64, Option<i64>); 6] = [
        ("queued", now - 50_000, None),
        ("running", now - 40_000, Some(now - 1)),
        ("running", now - 100, Some(now + 60_000)),
        ("running", now - 30_000, Some(now + 60_000)),
        ("blocked", now - 60_000, None),
        ("done", now - 10, None),
    ];
    for (i, (state, last_event, lease)) in shapes.iter().enumerate() {
        let (task, _) = store
            .create_task(&new_task("ws", &format!("task {i}")))
            .await?;
        force_task(
            &task.id,
            state,
            lease.map(|at| ("worker", at)),
            Some(*last_event),
        )
        .await?;
        ids.push(task.id);
    }
    store.create_task(&new_task("other", "elsewhere")).await?;

    let list = |query: TaskQuery| {
        let store = store.clone();
        async move {
            anyhow::Ok(
                store
                    .list_tasks("ws", &query)
                    .await?
                    .into_iter()
                    .map(|t| t.id)
                    .collect::<Vec<_>>(),
            )
        }
    };
    let q = |states: &[&str], stuck: Option<i64>, lease_expired: bool, limit: i64| TaskQuery {
        states: states
            .iter()
            .map(|s| s.parse().expect("a task state"))
            .collect(),
        stuck_for_ms: stuck,
        lease_expired,
        limit,
        now,
    };
    // Oldest event first.
    let by_age = [&ids[4], &ids[0], &ids[1], &ids[3], &ids[2], &ids[5]].map(|s| s.clone());
    assert_eq!(list(q(&[], None, false, 0)).await?, by_age);
    assert_eq!(
        list(q(&["running"], None, false, 0)).await?,
        [ids[1].clone(), ids[3].clone(), ids[2].clone()]
    );
    assert_eq!(
        list(q(&["queued", "blocked"], None, false, 0)).await?,
        [ids[4].clone(), ids[0].clone()]
    );
    assert_eq!(list(q(&[], None, true, 0)).await?, [ids[1].clone()]);
    // At least 30 s without an event (the boundary is included).
    assert_eq!(
        list(q(&[], Some(30_000), false, 0)).await?,
        [
            ids[4].clone(),
            ids[0].clone(),
            ids[1].clone(),
            ids[3].clone()
        ]
    );
    assert_eq!(
        list(q(&["running"], Some(30_000), false, 0)).await?,
        [ids[1].clone(), ids[3].clone()]
    );
    assert_eq!(
        list(q(&["running"], Some(30_000), true, 0)).await?,
        [ids[1].clone()]
    );
    assert_eq!(
        list(q(&[], None, false, 2)).await?,
        [ids[4].clone(), ids[0].clone()]
    );
    assert!(list(q(&["cancelled"], None, false, 0)).await?.is_empty());
    Ok(())
}

async fn counts_by_state_and_stuck(store: Store) -> TestResult {
    let now = 50_000_000;
    // (state, last_event_at, lease expiry)
    let shapes: [(&str, i64, Option<i64>); 7] = [
        ("queued", now, None),
        ("queued", now, None),
        ("done", now, None),
        ("running", now - 1_000, Some(now - 1)), // lease expired
        ("running", now - 120_000, Some(now + 10_000)), // silent for 2 min
        ("running", now - 1_000, Some(now + 10_000)), // healthy
        ("blocked", now - 999_999, None),        // old, but not running
    ];
    for (i, (state, last_event, lease)) in shapes.iter().enumerate() {
        let (task, _) = store
            .create_task(&new_task("ws", &format!("task {i}")))
            .await?;
        force_task(
            &task.id,
            state,
            lease.map(|at| ("worker", at)),
            Some(*last_event),
        )
        .await?;
    }
    store.create_task(&new_task("other", "elsewhere")).await?;

    let counts = store.count_tasks_by_state("ws").await?;
    let expected: Vec<(String, i64)> = [("queued", 2), ("running", 3), ("blocked", 1), ("done", 1)]
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
    assert_eq!(
        counts, expected,
        "in the order of STATES, empty states left out"
    );
    assert!(store.count_tasks_by_state("nobody").await?.is_empty());

    assert_eq!(store.count_stuck_tasks("ws", now, 60_000).await?, 2);
    assert_eq!(store.count_stuck_tasks("ws", now, 500).await?, 3);
    assert_eq!(store.count_stuck_tasks("other", now, 500).await?, 0);
    Ok(())
}

async fn create_stores_the_scheduler_fields(store: Store) -> TestResult {
    let (dep_a, _) = store.create_task(&new_task("ws", "a")).await?;
    let (dep_b, _) = store.create_task(&new_task("ws", "b")).await?;
    let new = NewTask {
        stage: "plan".to_string(),
        pipeline: vec!["spec".into(), "plan".into(), "implement".into()],
        priority: "urgent".to_string(),
        max_attempts: 5,
        // Order kept, repeats dropped.
        depends_on: vec![dep_b.id.clone(), dep_a.id.clone(), dep_b.id.clone()],
        requires: vec!["provider:openai".into(), "process:mcp".into()],
        budget: TaskBudget {
            tokens: Some(100_000),
            cost_micros: Some(2_500_000),
            steps: None,
            wall_ms: Some(3_600_000),
        },
        ..new_task("ws", "scheduled")
    };
    let (task, created) = store.create_task(&new).await?;
    assert!(created);
    assert_eq!(task.pipeline, ["spec", "plan", "implement"]);
    assert_eq!(
        (task.stage.as_str(), task.stage_index, task.high_water),
        ("plan", 1, 1)
    );
    assert_eq!(task.priority_rank, 0);
    assert_eq!(
        (task.max_attempts, task.attempts, task.total_attempts),
        (5, 0, 0)
    );
    assert_eq!(task.next_attempt_at, task.created_at, "claimable at once");
    assert_eq!(task.depends_on, [dep_b.id.clone(), dep_a.id.clone()]);
    assert_eq!(task.requires, ["provider:openai", "process:mcp"]);
    assert_eq!(task.budget, new.budget);
    assert_eq!(task.used, TaskUsage::default());
    assert_eq!(
        (
            task.lease_token,
            task.last_fingerprint.clone(),
            task.fingerprint_streak,
            task.finished_at
        ),
        (None, None, 0, None)
    );
    assert_eq!(store.get_task("ws", &task.id).await?.as_ref(), Some(&task));
    let listed = store
        .list_tasks(
            "ws",
            &TaskQuery {
                states: vec![TaskState::Queued],
                ..TaskQuery::default()
            },
        )
        .await?;
    assert!(listed.contains(&task), "list_tasks reads every field");

    // Ranks, and a pipeline of the first stage by default.
    for (priority, rank) in [("urgent", 0), ("normal", 1), ("low", 2)] {
        let (t, _) = store
            .create_task(&NewTask {
                priority: priority.to_string(),
                ..new_task("ws", priority)
            })
            .await?;
        assert_eq!(t.priority_rank, rank, "{priority}");
        assert_eq!(
            (t.pipeline.clone(), t.stage_index),
            (vec!["implement".to_string()], 0)
        );
        assert_eq!(t.budget, TaskBudget::default());
    }
    Ok(())
}

async fn create_checks_pipeline_and_dependencies(store: Store) -> TestResult {
    let bad_stage = NewTask {
        stage: "deploy".to_string(),
        pipeline: vec!["plan".into(), "implement".into()],
        ..new_task("ws", "nowhere")
    };
    let err = store
        .create_task(&bad_stage)
        .await
        .expect_err("stage not in pipeline");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "stage \"deploy\" of task \"{}\" is not in its pipeline (plan, implement): add it or start at one of them",
            bad_stage.id
        )
    );
    assert_eq!(store.get_task("ws", &bad_stage.id).await?, None);

    let (elsewhere, _) = store.create_task(&new_task("other", "elsewhere")).await?;
    let (here, _) = store.create_task(&new_task("ws", "here")).await?;
    for missing in ["no-such-task", elsewhere.id.as_str()] {
        let new = NewTask {
            depends_on: vec![here.id.clone(), missing.to_string()],
            ..new_task("ws", "waits")
        };
        let err = store
            .create_task(&new)
            .await
            .expect_err("missing dependency");
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
        assert_eq!(err.to_string(), format!("task \"{missing}\" not found"));
        assert_eq!(
            store.get_task("ws", &new.id).await?,
            None,
            "nothing created"
        );
    }
    // A task cannot wait for itself: it does not exist yet.
    let mut own = new_task("ws", "self");
    own.depends_on = vec![own.id.clone()];
    let err = store.create_task(&own).await.expect_err("self dependency");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    Ok(())
}

async fn changes_make_the_task_claimable_and_end_its_lease(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "t")).await?;
    let now = now_ms() + 60_000;
    let claimed = store.claim_stages(&claim_req("ws", "w", 1, now)).await?;
    let token = claimed[0].run.id;
    let failed = store
        .fail_stage("ws", &task.id, token, "err", "fp", now, &|_| {
            AfterFail::Retry {
                at: now + 3_600_000,
            }
        })
        .await?;
    assert!(matches!(failed, Failure::Failed(_)), "{failed:?}");
    let claimed = store
        .claim_stages(&claim_req("ws", "w", 1, now + 3_600_000))
        .await?;
    let token = claimed[0].run.id;

    // Blocking a running task ends its lease and its stage run.
    let before_block = now_ms();
    let (_, blocked) = store
        .apply_task_change(
            "ws",
            &task.id,
            &TaskChange::Block {
                reason: "hold".into(),
            },
            None,
        )
        .await?;
    assert_eq!(blocked.lease_token, None);
    assert_eq!(
        blocked.next_attempt_at,
        now + 3_600_000,
        "a block keeps the backoff"
    );
    let runs = store.list_stage_runs(&task.id).await?;
    assert_eq!(runs[1].id, token);
    assert_eq!(runs[1].outcome.as_deref(), Some("cancelled"));
    assert!(runs[1].ended_at.expect("ended") >= before_block);

    // Unblock: claimable now; Reset also forgets the streak.
    let (_, unblocked) = store
        .apply_task_change("ws", &task.id, &TaskChange::Unblock, None)
        .await?;
    assert!(unblocked.next_attempt_at >= before_block && unblocked.next_attempt_at <= now_ms());
    assert_eq!(unblocked.fingerprint_streak, 1);
    let (_, requeued) = store
        .apply_task_change("ws", &task.id, &TaskChange::Requeue, None)
        .await?;
    assert_eq!(requeued.fingerprint_streak, 1);
    let (_, reset) = store
        .apply_task_change("ws", &task.id, &TaskChange::Reset, None)
        .await?;
    assert_eq!((reset.fingerprint_streak, reset.attempts), (0, 0));
    assert!(reset.next_attempt_at <= now_ms());
    assert_eq!(reset.total_attempts, 2);
    assert_eq!(
        store
            .claim_stages(&claim_req("ws", "w", 1, now))
            .await?
            .len(),
        1
    );
    Ok(())
}

/// A state this version does not know (a newer version's, or a corrupt
/// row) is a clear error naming the column and the value, not a panic.
async fn an_unknown_stored_state_is_an_error(store: Store) -> TestResult {
    let (task, _) = store
        .create_task(&new_task("ws", "from the future"))
        .await?;
    force_task(&task.id, "paused", None, None).await?;
    let err = store
        .get_task("ws", &task.id)
        .await
        .expect_err("paused is not a state");
    assert!(
        matches!(&err, Error::UnknownValue { column: "tasks.state", value } if value == "paused"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "stored tasks.state holds unknown value \"paused\" (written by a newer version, or the row is corrupt)"
    );
    assert!(err.is_refusal());
    Ok(())
}
