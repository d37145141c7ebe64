//! Races the database must settle: the same request twice at once, many
//! writers on SQLite's single write lock, many claimers on one queue.

use std::collections::HashSet;

use serde_json::json;
use warden_store::alerts::NewAlert;
use warden_store::runs::{Inserted, NewRun, RunQuery};
use warden_store::stages::{AfterComplete, Claimed, Completion};
use warden_store::tasks::{NewTask, TaskChange};
use warden_store::usage::UsageDelta;
use warden_store::{Error, Store, now_ms};

use crate::common::{TestResult, action, claim_req, new_run, new_task};

conformance!(
    concurrent_idempotent_inserts_make_one_run,
    concurrent_exclusive_inserts_admit_one,
    concurrent_requeues_all_succeed,
    concurrent_requeues_of_one_task_all_succeed,
    concurrent_dedup_creates_make_one_task,
    concurrent_kv_sets_respect_the_limit,
    concurrent_claims_hand_out_each_task_once,
    concurrent_claims_respect_the_workspace_cap,
    concurrent_checkpoint_puts_get_consecutive_versions,
    concurrent_alert_raises_make_one_alert,
    concurrent_task_events_get_distinct_seqs,
    concurrent_usage_adds_up,
);

const N: usize = 20;

async fn concurrent_idempotent_inserts_make_one_run(store: Store) -> TestResult {
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let store = store.clone();
            let run = NewRun {
                idempotency_key: Some("same-request".to_string()),
                ..new_run("ws", "restart")
            };
            tokio::spawn(async move { store.insert_run(&run).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for handle in handles {
        match handle.await?? {
            Inserted::Created(run) => {
                created += 1;
                ids.insert(run.id);
            }
            Inserted::Existing(run) => {
                ids.insert(run.id);
            }
        }
    }
    assert_eq!(created, 1, "exactly one insert creates the run");
    assert_eq!(ids.len(), 1, "every caller gets the same run");
    assert_eq!(store.list_runs("ws", &RunQuery::default()).await?.len(), 1);
    Ok(())
}

async fn concurrent_exclusive_inserts_admit_one(store: Store) -> TestResult {
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let store = store.clone();
            let run = NewRun {
                exclusive: true,
                ..new_run("ws", "restart")
            };
            tokio::spawn(async move { store.insert_run(&run).await })
        })
        .collect();
    let mut created = Vec::new();
    let mut conflicts = 0;
    for handle in handles {
        match handle.await? {
            Ok(Inserted::Created(run)) => created.push(run.id),
            Ok(Inserted::Existing(run)) => panic!("no key, yet run {} existed", run.id),
            Err(Error::Conflict(message)) => {
                conflicts += 1;
                assert!(
                    message.contains("does not allow concurrent runs"),
                    "{message}"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(created.len(), 1, "one exclusive run is admitted");
    assert_eq!(conflicts, N - 1);
    Ok(())
}

async fn concurrent_requeues_all_succeed(store: Store) -> TestResult {
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            store
                .create_task(&new_task("ws", &format!("task {i}")))
                .await?
                .0
                .id,
        );
    }
    let handles: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let store = store.clone();
            let id = id.clone();
            let act = action("ws", "run-1", i as i64 + 1, "tasks.requeue", Some(&id));
            tokio::spawn(async move {
                store
                    .apply_task_change("ws", &id, &TaskChange::Requeue, Some(&act))
                    .await
            })
        })
        .collect();
    for handle in handles {
        // Any "database is locked" would surface here.
        let (_, after) = handle.await??;
        assert_eq!(after.state, "queued");
    }
    assert_eq!(store.list_actions("run-1").await?.len(), N);
    Ok(())
}

async fn concurrent_requeues_of_one_task_all_succeed(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "hot")).await?;
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            let id = task.id.clone();
            let change = if i % 2 == 0 {
                TaskChange::Requeue
            } else {
                TaskChange::Block {
                    reason: format!("block {i}"),
                }
            };
            let act = action("ws", "run-hot", i as i64 + 1, "tasks.change", Some(&id));
            tokio::spawn(async move {
                store
                    .apply_task_change("ws", &id, &change, Some(&act))
                    .await
            })
        })
        .collect();
    for handle in handles {
        handle.await??;
    }
    // The changes were serialized: they form one chain from the initial
    // task to the final one, each `before` being exactly one earlier
    // `after`. A lost update would show the same `before` twice.
    let actions = store.list_actions("run-hot").await?;
    assert_eq!(actions.len(), N);
    let snapshot = |t: &warden_store::tasks::TaskRow| {
        serde_json::json!({
            "id": t.id, "state": t.state, "stage": t.stage,
            "attempts": t.attempts, "last_error": t.last_error, "priority": t.priority,
        })
        .to_string()
    };
    let last = store.get_task("ws", &task.id).await?.expect("task");
    let mut befores: Vec<String> = actions
        .iter()
        .map(|a| a.before.as_ref().expect("before").to_string())
        .collect();
    let mut afters: Vec<String> = actions
        .iter()
        .map(|a| a.after.as_ref().expect("after").to_string())
        .collect();
    befores.push(snapshot(&last));
    afters.push(snapshot(&task));
    befores.sort();
    afters.sort();
    assert_eq!(befores, afters);
    Ok(())
}

async fn concurrent_dedup_creates_make_one_task(store: Store) -> TestResult {
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let store = store.clone();
            let task = NewTask {
                dedup_key: Some("fingerprint".to_string()),
                ..new_task("ws", "fix it")
            };
            tokio::spawn(async move { store.create_task(&task).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for handle in handles {
        let (task, was_created) = handle.await??;
        created += usize::from(was_created);
        ids.insert(task.id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    Ok(())
}

async fn concurrent_kv_sets_respect_the_limit(store: Store) -> TestResult {
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .kv_set("ws", "p", &format!("key-{i:02}"), b"v", 5)
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for handle in handles {
        match handle.await? {
            Ok(()) => stored += 1,
            Err(Error::Conflict(message)) => assert_eq!(message, "kv holds 5 keys, the limit"),
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(store.kv_list("ws", "p", "", 100).await?.len(), 5);
    Ok(())
}

/// Claims with `max` until a claim comes back empty.
async fn drain(store: Store, worker: String, max: i64, now: i64) -> anyhow::Result<Vec<Claimed>> {
    let mut all = Vec::new();
    loop {
        let claimed = store
            .claim_stages(&claim_req("ws", &worker, max, now))
            .await?;
        if claimed.is_empty() {
            return Ok(all);
        }
        all.extend(claimed);
    }
}

async fn concurrent_claims_hand_out_each_task_once(store: Store) -> TestResult {
    let mut ids = HashSet::new();
    for i in 0..N {
        ids.insert(
            store
                .create_task(&new_task("ws", &format!("task {i}")))
                .await?
                .0
                .id,
        );
    }
    let now = now_ms() + 60_000;
    let handles: Vec<_> = (0..10)
        .map(|w| tokio::spawn(drain(store.clone(), format!("worker-{w}"), 5, now)))
        .collect();
    let mut claims = Vec::new();
    for handle in handles {
        claims.extend(handle.await??);
    }
    let claimed: HashSet<String> = claims.iter().map(|c| c.task.id.clone()).collect();
    assert_eq!(claims.len(), N, "each task is handed out once");
    assert_eq!(claimed, ids);
    let tokens: HashSet<i64> = claims.iter().map(|c| c.run.id).collect();
    assert_eq!(tokens.len(), N);

    // Every lease completed twice at once: one completion each.
    let handles: Vec<_> = claims
        .iter()
        .flat_map(|c| [c.clone(), c.clone()])
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .complete_stage("ws", &c.task.id, c.run.id, &json!({}), now, &|_| {
                        AfterComplete::Done
                    })
                    .await
            })
        })
        .collect();
    let (mut completed, mut repeated) = (0, 0);
    for handle in handles {
        match handle.await?? {
            Completion::Completed(task) => {
                assert_eq!(task.state, "done");
                completed += 1;
            }
            Completion::AlreadyCompleted(task) => {
                assert_eq!(task.state, "done");
                repeated += 1;
            }
            Completion::Fenced(fence) => panic!("fenced: {fence:?}"),
        }
    }
    assert_eq!((completed, repeated), (N, N));
    assert!(store.duplicate_completions().await?.is_empty());
    for id in &ids {
        assert_eq!(store.list_stage_runs(id).await?.len(), 1);
    }
    assert_eq!(
        store.count_tasks_by_state("ws").await?,
        [("done".to_string(), N as i64)]
    );
    Ok(())
}

async fn concurrent_claims_respect_the_workspace_cap(store: Store) -> TestResult {
    for i in 0..N {
        store
            .create_task(&new_task("ws", &format!("task {i}")))
            .await?;
    }
    let now = now_ms() + 60_000;
    let handles: Vec<_> = (0..10)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut req = claim_req("ws", &format!("worker-{w}"), 2, now);
                req.limits.workspace = Some(7);
                store.claim_stages(&req).await
            })
        })
        .collect();
    let mut total = 0;
    for handle in handles {
        total += handle.await??.len();
    }
    assert_eq!(total, 7, "the cap holds under concurrent claims");
    Ok(())
}

async fn concurrent_checkpoint_puts_get_consecutive_versions(store: Store) -> TestResult {
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let data = format!("state {i}").into_bytes();
                store
                    .put_checkpoint("ws", "agent", "sha", &data, i as i64, 1)
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for handle in handles {
        match handle.await?? {
            warden_store::checkpoints::PutCheckpoint::Stored(v) => versions.push(v),
            other => panic!("one agent is under a cap of one: {other:?}"),
        }
    }
    versions.sort();
    assert_eq!(versions, (1..=N as i64).collect::<Vec<_>>());
    assert_eq!(store.list_checkpoints("ws", "agent", 100).await?.len(), N);
    Ok(())
}

async fn concurrent_alert_raises_make_one_alert(store: Store) -> TestResult {
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            let alert = NewAlert {
                dedup_key: "backlog/ws".to_string(),
                workspace: Some("ws".to_string()),
                rule: "backlog".to_string(),
                severity: "warning".to_string(),
                summary: format!("backlog {i}"),
                detail: json!({}),
            };
            tokio::spawn(async move { store.raise_alert(&alert, 1_000 + i as i64).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for handle in handles {
        let (alert, was_created) = handle.await??;
        created += usize::from(was_created);
        ids.insert(alert.id);
    }
    assert_eq!((created, ids.len()), (1, 1));
    let alerts = store.list_alerts(Some("ws"), None, 10).await?;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, N as i64);
    Ok(())
}

async fn concurrent_task_events_get_distinct_seqs(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "chatty")).await?;
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            let id = task.id.clone();
            tokio::spawn(async move {
                store
                    .add_task_event("ws", &id, "status", &json!({"i": i}), 1_000)
                    .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for handle in handles {
        seqs.push(handle.await??);
    }
    seqs.sort();
    assert_eq!(seqs, (1..=N as i64).collect::<Vec<_>>());
    assert_eq!(
        store.list_task_events("ws", &task.id, 0, 100).await?.len(),
        N
    );
    Ok(())
}

async fn concurrent_usage_adds_up(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "expensive")).await?;
    let now = 1_700_000_000_000;
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let store = store.clone();
            let id = task.id.clone();
            let delta = UsageDelta {
                tokens: 10,
                cost_micros: 3,
                steps: 1,
                wall_ms: 0,
            };
            tokio::spawn(async move { store.record_usage("ws", Some(&id), &delta, now).await })
        })
        .collect();
    for handle in handles {
        handle.await??;
    }
    let task = store.get_task("ws", &task.id).await?.expect("task");
    assert_eq!(
        (task.used.tokens, task.used.cost_micros, task.used.steps),
        (200, 60, 20)
    );
    assert_eq!(store.hourly_usage("ws", now).await?, (200, 60));
    Ok(())
}
