//! `runs`: insertion rules (idempotency, exclusivity), the status machine,
//! listings and start-up recovery.

use serde_json::json;
use warden_store::runs::{
    Inserted, NewRun, RunCounts, RunEnd, RunMode, RunQuery, RunRow, RunStatus,
};
use warden_store::{Error, Store, now_ms};

use crate::common::{TestResult, new_run, raw_execute};

conformance!(
    insert_start_finish,
    finish_refuses_a_status_that_is_not_an_end,
    idempotent_insert_returns_the_existing_run,
    exclusive_run_conflicts_until_finished,
    exclusive_conflict_yields_to_idempotency,
    interrupt_running_runs_marks_and_releases,
    list_runs_filters_and_pages,
    count_runs_since_counts_ended_runs,
    duplicate_run_id_already_exists,
    an_unknown_stored_status_is_an_error,
);

fn created(inserted: Inserted) -> RunRow {
    match inserted {
        Inserted::Created(row) => row,
        Inserted::Existing(row) => panic!("expected a new run, got existing {}", row.id),
    }
}

fn succeeded() -> RunEnd {
    RunEnd {
        status: RunStatus::Succeeded,
        report: Some(json!({"findings": []})),
        error: None,
        error_code: None,
        usage: Some(json!({"fuel": 10})),
        limits: Some(json!({"fuel": 1000})),
    }
}

async fn insert_start_finish(store: Store) -> TestResult {
    let before = now_ms();
    let new = NewRun {
        plan_run_id: Some("plan-1".to_string()),
        retry_of: Some("run-0".to_string()),
        mode: RunMode::Apply,
        ..new_run("ws", "restart")
    };
    let run = created(store.insert_run(&new).await?);
    assert_eq!(run.id, new.id);
    assert_eq!(run.status, "queued");
    assert_eq!(run.input, new.input);
    assert_eq!(run.mode, "apply");
    assert_eq!(run.plan_run_id.as_deref(), Some("plan-1"));
    assert_eq!(run.retry_of.as_deref(), Some("run-0"));
    assert_eq!(run.trigger, "http");
    assert!(run.created_at >= before);
    assert_eq!(
        (run.started_at, run.finished_at, run.report.clone()),
        (None, None, None)
    );
    assert_eq!(store.get_run("ws", &run.id).await?, Some(run.clone()));
    assert_eq!(
        store.get_run("other", &run.id).await?,
        None,
        "runs are confined to their workspace"
    );

    assert!(
        !store.finish_run(&run.id, &succeeded()).await?,
        "a queued run cannot finish"
    );
    assert!(store.start_run(&run.id).await?);
    assert!(
        !store.start_run(&run.id).await?,
        "a running run does not start again"
    );
    let running = store.get_run("ws", &run.id).await?.expect("run");
    assert_eq!(running.status, "running");
    assert!(running.started_at.is_some());

    assert!(store.finish_run(&run.id, &succeeded()).await?);
    assert!(
        !store.finish_run(&run.id, &succeeded()).await?,
        "finishing twice is refused"
    );
    let done = store.get_run("ws", &run.id).await?.expect("run");
    assert_eq!(done.status, "succeeded");
    assert_eq!(done.report, Some(json!({"findings": []})));
    assert_eq!(done.usage, Some(json!({"fuel": 10})));
    assert_eq!(done.limits, Some(json!({"fuel": 1000})));
    assert!(done.finished_at.is_some());

    let failing = created(store.insert_run(&new_run("ws", "restart")).await?);
    store.start_run(&failing.id).await?;
    let end = RunEnd {
        status: RunStatus::Failed,
        report: None,
        error: Some("fuel exhausted after 1000".to_string()),
        error_code: Some("fuel".to_string()),
        usage: None,
        limits: None,
    };
    assert!(store.finish_run(&failing.id, &end).await?);
    let failed = store.get_run("ws", &failing.id).await?.expect("run");
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.error.as_deref(), Some("fuel exhausted after 1000"));
    assert_eq!(failed.error_code.as_deref(), Some("fuel"));
    assert!(!store.start_run("no-such-run").await?);
    Ok(())
}

async fn finish_refuses_a_status_that_is_not_an_end(store: Store) -> TestResult {
    let run = created(store.insert_run(&new_run("ws", "restart")).await?);
    store.start_run(&run.id).await?;
    let end = RunEnd {
        status: RunStatus::Queued,
        ..succeeded()
    };
    let err = store
        .finish_run(&run.id, &end)
        .await
        .expect_err("queued is not an end");
    assert_eq!(
        err.to_string(),
        format!(
            "run \"{}\" cannot finish as \"queued\" (use succeeded or failed)",
            run.id
        )
    );
    assert_eq!(
        store
            .get_run("ws", &run.id)
            .await?
            .map(|r| r.status.to_string()),
        Some("running".to_string())
    );
    Ok(())
}

async fn idempotent_insert_returns_the_existing_run(store: Store) -> TestResult {
    let first = NewRun {
        idempotency_key: Some("key-1".to_string()),
        ..new_run("ws", "restart")
    };
    let run = created(store.insert_run(&first).await?);

    let retry = NewRun {
        idempotency_key: Some("key-1".to_string()),
        input: json!({"different": true}),
        ..new_run("ws", "restart")
    };
    match store.insert_run(&retry).await? {
        Inserted::Existing(existing) => assert_eq!(existing, run),
        Inserted::Created(row) => panic!("the key was reused, yet run {} was created", row.id),
    }
    // The key is scoped to (workspace, plugin).
    created(
        store
            .insert_run(&NewRun {
                idempotency_key: Some("key-1".to_string()),
                ..new_run("ws", "cleanup")
            })
            .await?,
    );
    created(
        store
            .insert_run(&NewRun {
                idempotency_key: Some("key-1".to_string()),
                ..new_run("other", "restart")
            })
            .await?,
    );
    // Without a key every insert is a new run.
    created(store.insert_run(&new_run("ws", "restart")).await?);
    created(store.insert_run(&new_run("ws", "restart")).await?);

    let all = store
        .list_runs(
            "ws",
            &RunQuery {
                plugin: Some("restart".to_string()),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(all.len(), 3);
    Ok(())
}

async fn exclusive_run_conflicts_until_finished(store: Store) -> TestResult {
    let exclusive = |ws: &str| NewRun {
        exclusive: true,
        ..new_run(ws, "restart")
    };
    let first = created(store.insert_run(&exclusive("ws")).await?);

    let err = store
        .insert_run(&exclusive("ws"))
        .await
        .expect_err("one active exclusive run");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "run \"{}\" of plugin \"restart\" is queued in workspace \"ws\" and the plugin does not allow \
             concurrent runs (wait for it to finish)",
            first.id
        )
    );
    // Other workspaces, other plugins and non-exclusive runs are not held up.
    created(store.insert_run(&exclusive("other")).await?);
    created(
        store
            .insert_run(&NewRun {
                exclusive: true,
                ..new_run("ws", "cleanup")
            })
            .await?,
    );
    created(store.insert_run(&new_run("ws", "restart")).await?);

    store.start_run(&first.id).await?;
    let err = store
        .insert_run(&exclusive("ws"))
        .await
        .expect_err("still running");
    assert!(err.to_string().contains("is running in workspace"), "{err}");

    store.finish_run(&first.id, &succeeded()).await?;
    let second = created(store.insert_run(&exclusive("ws")).await?);
    store.start_run(&second.id).await?;
    let failed = RunEnd {
        status: RunStatus::Failed,
        error: Some("boom".to_string()),
        ..succeeded()
    };
    store.finish_run(&second.id, &failed).await?;
    created(store.insert_run(&exclusive("ws")).await?);
    Ok(())
}

async fn exclusive_conflict_yields_to_idempotency(store: Store) -> TestResult {
    let keyed = NewRun {
        exclusive: true,
        idempotency_key: Some("once".to_string()),
        ..new_run("ws", "restart")
    };
    let first = created(store.insert_run(&keyed).await?);
    // A retry of the same request is answered with its run, not a conflict.
    let retry = NewRun {
        id: warden_store::new_id(),
        ..keyed.clone()
    };
    assert_eq!(store.insert_run(&retry).await?, Inserted::Existing(first));
    Ok(())
}

async fn interrupt_running_runs_marks_and_releases(store: Store) -> TestResult {
    let a = created(
        store
            .insert_run(&NewRun {
                exclusive: true,
                ..new_run("ws", "restart")
            })
            .await?,
    );
    let b = created(store.insert_run(&new_run("other", "cleanup")).await?);
    let queued = created(store.insert_run(&new_run("ws", "cleanup")).await?);
    let ended = created(store.insert_run(&new_run("ws", "probe")).await?);
    store.start_run(&a.id).await?;
    store.start_run(&b.id).await?;
    store.start_run(&ended.id).await?;
    store.finish_run(&ended.id, &succeeded()).await?;

    let interrupted = store.interrupt_running_runs().await?;
    let mut ids: Vec<&str> = interrupted.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    let mut expected = vec![a.id.as_str(), b.id.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    for run in &interrupted {
        assert_eq!(run.status, "interrupted");
        assert_eq!(
            run.error.as_deref(),
            Some("the host stopped during the run")
        );
        assert!(run.finished_at.is_some());
        assert_eq!(
            store.get_run(&run.workspace, &run.id).await?.as_ref(),
            Some(run)
        );
    }
    assert_eq!(
        store
            .get_run("ws", &queued.id)
            .await?
            .map(|r| r.status.to_string()),
        Some("queued".to_string())
    );
    assert_eq!(
        store
            .get_run("ws", &ended.id)
            .await?
            .map(|r| r.status.to_string()),
        Some("succeeded".to_string())
    );
    assert!(
        !store.finish_run(&a.id, &succeeded()).await?,
        "an interrupted run does not finish"
    );

    // The exclusive slot of the interrupted run is free again.
    created(
        store
            .insert_run(&NewRun {
                exclusive: true,
                ..new_run("ws", "restart")
            })
            .await?,
    );
    assert!(
        store.interrupt_running_runs().await?.is_empty(),
        "nothing left running"
    );

    let queued_now: Vec<String> = store
        .list_queued_runs()
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(queued_now.len(), 2);
    assert_eq!(queued_now[0], queued.id, "oldest first");
    Ok(())
}

async fn list_runs_filters_and_pages(store: Store) -> TestResult {
    let mut ids = Vec::new();
    for i in 0..6 {
        let plugin = if i % 2 == 0 { "restart" } else { "cleanup" };
        let run = created(store.insert_run(&new_run("ws", plugin)).await?);
        ids.push(run.id);
    }
    created(store.insert_run(&new_run("other", "restart")).await?);
    store.start_run(&ids[4]).await?;

    let all: Vec<String> = store
        .list_runs("ws", &RunQuery::default())
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(all, newest_first);

    let restart: Vec<String> = store
        .list_runs(
            "ws",
            &RunQuery {
                plugin: Some("restart".to_string()),
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(restart, [ids[4].clone(), ids[2].clone(), ids[0].clone()]);

    let running = store
        .list_runs(
            "ws",
            &RunQuery {
                status: Some("running".to_string()),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id, ids[4]);

    let page1 = store
        .list_runs(
            "ws",
            &RunQuery {
                limit: 4,
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(page1.len(), 4);
    let last = page1.last().expect("a page").id.clone();
    let page2: Vec<String> = store
        .list_runs(
            "ws",
            &RunQuery {
                before_id: Some(last),
                limit: 4,
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(page2, [ids[1].clone(), ids[0].clone()]);

    let both = store
        .list_runs(
            "ws",
            &RunQuery {
                plugin: Some("cleanup".to_string()),
                status: Some("queued".to_string()),
                before_id: Some(ids[5].clone()),
                limit: 1,
            },
        )
        .await?;
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].id, ids[3]);
    Ok(())
}

async fn count_runs_since_counts_ended_runs(store: Store) -> TestResult {
    let since = now_ms();
    for status in ["succeeded", "succeeded", "failed"] {
        let run = created(store.insert_run(&new_run("ws", "restart")).await?);
        store.start_run(&run.id).await?;
        store
            .finish_run(
                &run.id,
                &RunEnd {
                    status: status.parse()?,
                    ..succeeded()
                },
            )
            .await?;
    }
    let running = created(store.insert_run(&new_run("ws", "restart")).await?);
    store.start_run(&running.id).await?;
    store.interrupt_running_runs().await?;
    created(store.insert_run(&new_run("ws", "restart")).await?);
    let elsewhere = created(store.insert_run(&new_run("other", "restart")).await?);
    store.start_run(&elsewhere.id).await?;
    store.finish_run(&elsewhere.id, &succeeded()).await?;

    assert_eq!(
        store.count_runs_since("ws", since).await?,
        RunCounts {
            succeeded: 2,
            failed: 1,
            interrupted: 1
        }
    );
    assert_eq!(
        store.count_runs_since("ws", now_ms() + 60_000).await?,
        RunCounts::default()
    );
    assert_eq!(
        store.count_runs_since("nobody", 0).await?,
        RunCounts::default()
    );
    Ok(())
}

async fn duplicate_run_id_already_exists(store: Store) -> TestResult {
    let run = new_run("ws", "restart");
    created(store.insert_run(&run).await?);
    let err = store.insert_run(&run).await.expect_err("the id is taken");
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("run \"{}\" already exists", run.id)
    );
    Ok(())
}

/// A status or mode this version does not know is a clear error naming
/// the column and the value, not a panic.
async fn an_unknown_stored_status_is_an_error(store: Store) -> TestResult {
    let run = created(store.insert_run(&new_run("ws", "restart")).await?);
    raw_execute(&format!(
        "UPDATE runs SET status = 'paused' WHERE id = '{}'",
        run.id
    ))
    .await?;
    let err = store
        .get_run("ws", &run.id)
        .await
        .expect_err("paused is not a status");
    assert!(
        matches!(&err, Error::UnknownValue { column: "runs.status", value } if value == "paused"),
        "{err:?}"
    );
    raw_execute(&format!(
        "UPDATE runs SET status = 'queued', mode = 'yolo' WHERE id = '{}'",
        run.id
    ))
    .await?;
    let err = store
        .get_run("ws", &run.id)
        .await
        .expect_err("yolo is not a mode");
    assert!(
        matches!(&err, Error::UnknownValue { column: "runs.mode", value } if value == "yolo"),
        "{err:?}"
    );
    Ok(())
}
