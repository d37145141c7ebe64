//! `gateway_calls`: recorded model calls, their usage added to tasks and
//! hours, and the usage queries.

use warden_store::gateway::{CallFilter, GatewayCallRow, UsageDim};
use warden_store::{Store, new_id};

use crate::common::{TestResult, new_task};

conformance!(calls_add_usage_and_group);
conformance!(call_usage_saturates_instead_of_failing);
conformance!(a_refused_call_is_told_apart_from_an_outage);

const HOUR: i64 = 3_600_000;

fn call(
    task: Option<&str>,
    stage: &str,
    provider: &str,
    tokens: (i64, i64),
    cost: i64,
    at: i64,
) -> GatewayCallRow {
    GatewayCallRow {
        id: new_id(),
        workspace: "ws".to_string(),
        task_id: task.map(str::to_string),
        stage: Some(stage.to_string()),
        mode: "normal".to_string(),
        requested_model: "auto".to_string(),
        provider: Some(provider.to_string()),
        model: Some(format!("{provider}-model")),
        policy: "cost-aware-router".to_string(),
        policy_version: "0.1.0".to_string(),
        policy_digest: "sha256:00".to_string(),
        route_reason: "cheapest".to_string(),
        stream: false,
        status: "ok".to_string(),
        http_status: 200,
        attempts: 1,
        prompt_tokens: tokens.0,
        completion_tokens: tokens.1,
        cost_micros: cost,
        latency_ms: 3,
        error: None,
        created_at: at,
    }
}

async fn calls_add_usage_and_group(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "t")).await?;
    let hour = 480_000 * HOUR;
    let mut failed = call(Some(&task.id), "plan", "backup", (0, 0), 0, hour + 4);
    failed.status = "failed".to_string();
    failed.error = Some("every candidate failed".to_string());
    let calls = vec![
        call(Some(&task.id), "plan", "primary", (10, 5), 150, hour + 1),
        call(
            Some(&task.id),
            "implement",
            "primary",
            (20, 10),
            300,
            hour + 2,
        ),
        call(None, "plan", "backup", (4, 1), 7, hour + 3),
        failed,
        // A task that does not exist: the call is still recorded.
        call(Some("missing"), "plan", "backup", (1, 1), 2, hour + 5),
    ];
    let tasks = store.record_gateway_calls(&calls).await?;
    assert_eq!(tasks.len(), 1, "only the existing task comes back");
    assert_eq!((tasks[0].used.tokens, tasks[0].used.cost_micros), (45, 450));
    assert_eq!(store.hourly_usage("ws", hour).await?, (52, 459));
    assert!(store.record_gateway_calls(&[]).await?.is_empty());

    let all = store
        .list_gateway_calls("ws", &CallFilter::default())
        .await?;
    assert_eq!(all.len(), 5);
    assert_eq!(all[0], calls[4], "newest first, every column round-trips");
    let plan = store
        .list_gateway_calls(
            "ws",
            &CallFilter {
                task_id: Some(task.id.clone()),
                stage: Some("plan".to_string()),
                ..CallFilter::default()
            },
        )
        .await?;
    assert_eq!(plan.len(), 2);
    assert_eq!(store.count_stage_calls("ws", &task.id, "plan").await?, 2);
    assert_eq!(store.count_stage_calls("ws", &task.id, "verify").await?, 0);

    let by_provider = store
        .gateway_usage("ws", &[UsageDim::Provider], hour, hour + HOUR)
        .await?;
    let summary: Vec<_> = by_provider
        .iter()
        .map(|g| {
            (
                g.key[0].clone(),
                g.calls,
                g.failed,
                g.prompt_tokens,
                g.completion_tokens,
                g.cost_micros,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some("primary".to_string()), 2, 0, 30, 15, 450),
            (Some("backup".to_string()), 3, 1, 5, 2, 9),
        ]
    );
    let by_task_stage = store
        .gateway_usage("ws", &[UsageDim::Task, UsageDim::Stage], hour, hour + HOUR)
        .await?;
    assert!(
        by_task_stage
            .iter()
            .any(|g| g.key == vec![None, Some("plan".to_string())] && g.calls == 1)
    );
    let total = store.gateway_usage("ws", &[], hour, hour + HOUR).await?;
    assert_eq!(total.len(), 1);
    assert_eq!((total[0].calls, total[0].cost_micros), (5, 459));
    assert!(
        store
            .gateway_usage("ws", &[], hour + HOUR, hour + 2 * HOUR)
            .await?
            .is_empty()
    );
    assert!(
        store
            .gateway_usage("other", &[UsageDim::Model], hour, hour + HOUR)
            .await?
            .is_empty()
    );
    Ok(())
}

/// Regression: calls whose usage summed past the 64-bit limit (in the
/// batch, or on a task or hour near it) made the batch fail on every retry.
async fn call_usage_saturates_instead_of_failing(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "t")).await?;
    let at = 480_000 * 3_600_000;
    let huge = |n| call(Some(&task.id), "plan", "p", (i64::MAX, n), i64::MAX, at);
    let tasks = store.record_gateway_calls(&[huge(1), huge(2)]).await?;
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        (tasks[0].used.tokens, tasks[0].used.cost_micros),
        (i64::MAX, i64::MAX)
    );
    let tasks = store.record_gateway_calls(&[huge(3)]).await?;
    assert_eq!(tasks[0].used.tokens, i64::MAX);
    assert_eq!(store.hourly_usage("ws", at).await?, (i64::MAX, i64::MAX));
    Ok(())
}

/// The gateway's writer sets aside a call whose data the database refuses
/// and retries any other failure: the two must be told apart.
async fn a_refused_call_is_told_apart_from_an_outage(store: Store) -> TestResult {
    let c = call(None, "plan", "p", (1, 1), 1, 1_000);
    store.record_gateway_calls(std::slice::from_ref(&c)).await?;
    let err = store
        .record_gateway_calls(&[c])
        .await
        .expect_err("the same id twice");
    assert!(err.is_refusal() && !err.is_transient(), "{err:?}");
    let mut nul = call(None, "plan", "p", (1, 1), 1, 1_000);
    nul.route_reason = "a reason with a \0 in it".to_string();
    if store.dialect() == warden_store::Dialect::Postgres {
        let err = store
            .record_gateway_calls(&[nul])
            .await
            .expect_err("PostgreSQL text cannot hold NUL");
        assert!(err.is_refusal(), "{err:?}");
    }
    let closed = store.clone();
    closed.close().await;
    let err = closed
        .record_gateway_calls(&[call(None, "plan", "p", (1, 1), 1, 1_000)])
        .await
        .expect_err("a closed pool");
    assert!(!err.is_refusal(), "{err:?}");
    Ok(())
}
