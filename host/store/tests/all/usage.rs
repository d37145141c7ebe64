//! `usage_hourly` and task usage counters.

use warden_store::usage::UsageDelta;
use warden_store::{Error, Store};

use crate::common::{TestResult, new_task};

conformance!(usage_accumulates_per_task_and_hour);
conformance!(counters_saturate_instead_of_failing);

const HOUR: i64 = 3_600_000;

async fn usage_accumulates_per_task_and_hour(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "t")).await?;
    let hour = 480_000 * HOUR;
    let delta = |tokens, cost_micros| UsageDelta {
        tokens,
        cost_micros,
        steps: 1,
        wall_ms: 250,
    };

    let after = store
        .record_usage("ws", Some(&task.id), &delta(100, 2_000), hour + 10)
        .await?
        .expect("the task");
    assert_eq!(
        (
            after.used.tokens,
            after.used.cost_micros,
            after.used.steps,
            after.used.wall_ms
        ),
        (100, 2_000, 1, 250)
    );
    let after = store
        .record_usage("ws", Some(&task.id), &delta(50, 1_000), hour + HOUR - 1)
        .await?
        .expect("the task");
    assert_eq!(
        (
            after.used.tokens,
            after.used.cost_micros,
            after.used.steps,
            after.used.wall_ms
        ),
        (150, 3_000, 2, 500)
    );
    assert_eq!(store.get_task("ws", &task.id).await?, Some(after));
    // Usage without a task counts for the hour only.
    assert_eq!(
        store
            .record_usage("ws", None, &delta(7, 70), hour + 5)
            .await?,
        None
    );
    // The next hour starts from zero.
    store
        .record_usage("ws", Some(&task.id), &delta(1, 1), hour + HOUR)
        .await?;

    assert_eq!(store.hourly_usage("ws", hour).await?, (157, 3_070));
    assert_eq!(
        store.hourly_usage("ws", hour + HOUR - 1).await?,
        (157, 3_070)
    );
    assert_eq!(store.hourly_usage("ws", hour + HOUR).await?, (1, 1));
    assert_eq!(store.hourly_usage("ws", hour + 2 * HOUR).await?, (0, 0));
    assert_eq!(store.hourly_usage("other", hour).await?, (0, 0));
    let task = store.get_task("ws", &task.id).await?.expect("task");
    assert_eq!(task.used.tokens, 151);

    // An unknown task records nothing, not even the hour.
    let err = store
        .record_usage("other", Some(&task.id), &delta(1_000, 1_000), hour)
        .await
        .expect_err("another workspace's task");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(store.hourly_usage("other", hour).await?, (0, 0));
    Ok(())
}

/// Regression: a counter near the 64-bit limit made every later booking
/// of its task or hour fail (PostgreSQL: "bigint out of range"; SQLite
/// turned the sum into a REAL that no longer reads as an integer).
async fn counters_saturate_instead_of_failing(store: Store) -> TestResult {
    let (task, _) = store.create_task(&new_task("ws", "t")).await?;
    let hour = 480_000 * HOUR;
    let huge = UsageDelta {
        tokens: i64::MAX - 10,
        cost_micros: i64::MAX - 10,
        steps: i64::MAX - 10,
        wall_ms: i64::MAX - 10,
    };
    store
        .record_usage("ws", Some(&task.id), &huge, hour)
        .await?;
    {
        let after = store
            .record_usage("ws", Some(&task.id), &huge, hour)
            .await?
            .expect("the task");
        assert_eq!(
            (
                after.used.tokens,
                after.used.cost_micros,
                after.used.steps,
                after.used.wall_ms
            ),
            (i64::MAX, i64::MAX, i64::MAX, i64::MAX)
        );
    }
    assert_eq!(store.hourly_usage("ws", hour).await?, (i64::MAX, i64::MAX));
    // A negative delta adds nothing (the scheduler refuses them first).
    let negative = UsageDelta {
        tokens: -5,
        cost_micros: -5,
        steps: -5,
        wall_ms: -5,
    };
    let after = store
        .record_usage("ws", Some(&task.id), &negative, hour)
        .await?
        .expect("the task");
    assert_eq!(after.used.tokens, i64::MAX);
    Ok(())
}
