//! `usage_hourly` and the per-task usage counters: tokens, cost, steps and
//! wall time (SPEC TS-5, GW-5).

use crate::tasks::{TaskRow, task_columns, task_from_row};
use crate::{Error, Result, Store};

/// Milliseconds in an hour: `usage_hourly.hour` is `now / HOUR_MS`.
const HOUR_MS: i64 = 3_600_000;

/// `$a + $b` for counters, saturating at the largest BIGINT instead of
/// failing (PostgreSQL: "bigint out of range") or turning into a REAL
/// (SQLite): a counter that reached the limit must not make every later
/// booking of its task or hour fail. `$b` is never negative.
macro_rules! saturating_add {
    ($a:literal, $b:literal) => {
        concat!(
            "CASE WHEN ",
            $a,
            " > 9223372036854775807 - ",
            $b,
            " THEN 9223372036854775807 ELSE ",
            $a,
            " + ",
            $b,
            " END"
        )
    };
}
pub(crate) use saturating_add;

/// Usage to add.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageDelta {
    /// Tokens.
    pub tokens: i64,
    /// Cost in micro-dollars.
    pub cost_micros: i64,
    /// Agent steps.
    pub steps: i64,
    /// Wall time in ms.
    pub wall_ms: i64,
}

impl Store {
    /// Adds usage to a task (its `used_*` counters) and to the workspace's
    /// hour (`now` rounded down to the hour), in one transaction; returns
    /// the task after. `task_id` may be `None` for usage not tied to a task.
    ///
    /// `Error::NotFound` (and nothing recorded) when the workspace has no
    /// such task.
    pub async fn record_usage(
        &self,
        workspace: &str,
        task_id: Option<&str>,
        delta: &UsageDelta,
        now: i64,
    ) -> Result<Option<TaskRow>> {
        let mut tx = self.begin_write().await?;
        let task = match task_id {
            Some(id) => {
                let row = sqlx::query(concat!(
                    "UPDATE tasks SET used_tokens = ",
                    saturating_add!("used_tokens", "$3"),
                    ", used_cost_micros = ",
                    saturating_add!("used_cost_micros", "$4"),
                    ", used_steps = ",
                    saturating_add!("used_steps", "$5"),
                    ", used_wall_ms = ",
                    saturating_add!("used_wall_ms", "$6"),
                    ", updated_at = $7 WHERE workspace = $1 AND id = $2 RETURNING ",
                    task_columns!()
                ))
                .bind(workspace)
                .bind(id)
                .bind(delta.tokens.max(0))
                .bind(delta.cost_micros.max(0))
                .bind(delta.steps.max(0))
                .bind(delta.wall_ms.max(0))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("task \"{id}\"")))?;
                Some(task_from_row(&row)?)
            }
            None => None,
        };
        sqlx::query(concat!(
            "INSERT INTO usage_hourly (workspace, hour, tokens, cost_micros, steps, wall_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace, hour) DO UPDATE SET tokens = ",
            saturating_add!("usage_hourly.tokens", "excluded.tokens"),
            ", cost_micros = ",
            saturating_add!("usage_hourly.cost_micros", "excluded.cost_micros"),
            ", steps = ",
            saturating_add!("usage_hourly.steps", "excluded.steps"),
            ", wall_ms = ",
            saturating_add!("usage_hourly.wall_ms", "excluded.wall_ms"),
        ))
        .bind(workspace)
        .bind(now.div_euclid(HOUR_MS))
        .bind(delta.tokens.max(0))
        .bind(delta.cost_micros.max(0))
        .bind(delta.steps.max(0))
        .bind(delta.wall_ms.max(0))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(task)
    }

    /// (tokens, cost_micros) used by the workspace in the hour holding `now`.
    pub async fn hourly_usage(&self, workspace: &str, now: i64) -> Result<(i64, i64)> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT tokens, cost_micros FROM usage_hourly WHERE workspace = $1 AND hour = $2",
        )
        .bind(workspace)
        .bind(now.div_euclid(HOUR_MS))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.unwrap_or((0, 0)))
    }
}
