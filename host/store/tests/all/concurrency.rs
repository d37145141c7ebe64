//! Races the database must settle: the same request twice at once, many
//! writers on SQLite's single write lock.

use std::collections::HashSet;

use warden_store::runs::{Inserted, NewRun, RunQuery};
use warden_store::tasks::{NewTask, TaskChange};
use warden_store::{Error, Store};

use crate::common::{TestResult, action, new_run, new_task};

conformance!(
    concurrent_idempotent_inserts_make_one_run,
    concurrent_exclusive_inserts_admit_one,
    concurrent_requeues_all_succeed,
    concurrent_requeues_of_one_task_all_succeed,
    concurrent_dedup_creates_make_one_task,
    concurrent_kv_sets_respect_the_limit,
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
