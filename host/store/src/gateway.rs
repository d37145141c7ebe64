//! `gateway_calls`: every model call that went through the gateway, with
//! the routing policy version that decided it and the upstream's usage
//! (SPEC GW-3, GW-5). Recording a batch of calls also adds their tokens and
//! cost to their tasks and to their workspaces' hours (`usage_hourly`), in
//! the same transaction, so that budgets see exactly what was recorded.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::tasks::{TaskRow, task_columns, task_from_row};
use crate::usage::saturating_add;
use crate::util::{Sql, clamp_limit};
use crate::{Result, Store};

/// Milliseconds in an hour, as in `usage_hourly`.
const HOUR_MS: i64 = 3_600_000;

/// Rows inserted per statement (22 parameters each).
const INSERT_CHUNK: usize = 200;

macro_rules! call_columns {
    () => {
        "id, workspace, task_id, stage, mode, requested_model, provider, model, policy, \
         policy_version, policy_digest, route_reason, stream, status, http_status, attempts, \
         prompt_tokens, completion_tokens, cost_micros, latency_ms, error, created_at"
    };
}

/// One model call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayCallRow {
    /// Id (UUID v7); also sent to the client as `x-warden-call-id`.
    pub id: String,
    /// Workspace of the API key.
    pub workspace: String,
    /// The task named by `x-warden-task`.
    pub task_id: Option<String>,
    /// The stage named by `x-warden-stage`.
    pub stage: Option<String>,
    /// `normal`, `deep_research`, `code` or `ops`.
    pub mode: String,
    /// The `model` the client asked for.
    pub requested_model: String,
    /// The provider that answered (the last one tried when all failed).
    pub provider: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// The routing policy's name.
    pub policy: String,
    /// Its version.
    pub policy_version: String,
    /// Its build (`sha256:...`).
    pub policy_digest: String,
    /// The policy's reason for its decision.
    pub route_reason: String,
    /// True for a streamed call.
    pub stream: bool,
    /// `ok` or `failed`.
    pub status: String,
    /// The HTTP status the client got.
    pub http_status: i64,
    /// Upstream attempts made (1 when the first candidate answered).
    pub attempts: i64,
    /// Prompt tokens from the upstream's usage.
    pub prompt_tokens: i64,
    /// Completion tokens from the upstream's usage.
    pub completion_tokens: i64,
    /// Cost in micro-dollars at the provider's prices.
    pub cost_micros: i64,
    /// Time from the request to the end of the response, in ms.
    pub latency_ms: i64,
    /// Why the call failed.
    pub error: Option<String>,
    /// When the request arrived.
    pub created_at: i64,
}

/// Which calls [`Store::list_gateway_calls`] returns.
#[derive(Clone, Debug, Default)]
pub struct CallFilter {
    /// Only this task's.
    pub task_id: Option<String>,
    /// Only this stage's.
    pub stage: Option<String>,
    /// Only this provider's.
    pub provider: Option<String>,
    /// At most this many (default 100, at most 1,000), newest first.
    pub limit: i64,
}

/// A dimension [`Store::gateway_usage`] can group by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UsageDim {
    /// `provider`.
    Provider,
    /// `model`.
    Model,
    /// `task_id`.
    Task,
    /// `stage`.
    Stage,
    /// `mode`.
    Mode,
}

impl UsageDim {
    /// Parses `provider`, `model`, `task`, `stage` or `mode`.
    pub fn parse(s: &str) -> Option<UsageDim> {
        match s {
            "provider" => Some(UsageDim::Provider),
            "model" => Some(UsageDim::Model),
            "task" => Some(UsageDim::Task),
            "stage" => Some(UsageDim::Stage),
            "mode" => Some(UsageDim::Mode),
            _ => None,
        }
    }

    /// The name clients use.
    pub fn name(self) -> &'static str {
        match self {
            UsageDim::Provider => "provider",
            UsageDim::Model => "model",
            UsageDim::Task => "task",
            UsageDim::Stage => "stage",
            UsageDim::Mode => "mode",
        }
    }

    fn column(self) -> &'static str {
        match self {
            UsageDim::Provider => "provider",
            UsageDim::Model => "model",
            UsageDim::Task => "task_id",
            UsageDim::Stage => "stage",
            UsageDim::Mode => "mode",
        }
    }
}

/// Usage summed over a group of calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageGroup {
    /// The group's value of each requested dimension, in the order asked
    /// (`None` where the calls had none, e.g. no task).
    pub key: Vec<Option<String>>,
    /// Calls.
    pub calls: i64,
    /// Of which failed.
    pub failed: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Cost in micro-dollars.
    pub cost_micros: i64,
}

impl Store {
    /// Records calls and adds their tokens and cost to their tasks and
    /// workspace hours, in one transaction. Returns the tasks whose usage
    /// changed, as they are after (a task that does not exist is skipped:
    /// the call is still recorded).
    pub async fn record_gateway_calls(&self, calls: &[GatewayCallRow]) -> Result<Vec<TaskRow>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        // Sums per task and per workspace hour, so that a batch costs one
        // statement per task and per hour, not per call.
        let mut per_task: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
        let mut per_hour: BTreeMap<(&str, i64), (i64, i64)> = BTreeMap::new();
        // Saturating: figures near the 64-bit limit must not wrap into
        // negative usage (or panic) here.
        for c in calls {
            let tokens = c
                .prompt_tokens
                .max(0)
                .saturating_add(c.completion_tokens.max(0));
            let cost = c.cost_micros.max(0);
            if tokens == 0 && cost == 0 {
                continue;
            }
            if let Some(task) = &c.task_id {
                let e = per_task.entry((&c.workspace, task)).or_default();
                e.0 = e.0.saturating_add(tokens);
                e.1 = e.1.saturating_add(cost);
            }
            let e = per_hour
                .entry((&c.workspace, c.created_at.div_euclid(HOUR_MS)))
                .or_default();
            e.0 = e.0.saturating_add(tokens);
            e.1 = e.1.saturating_add(cost);
        }
        let now = crate::now_ms();
        let mut tx = self.begin_write().await?;
        for chunk in calls.chunks(INSERT_CHUNK) {
            let mut sql = Sql::new(concat!(
                "INSERT INTO gateway_calls (",
                call_columns!(),
                ") VALUES "
            ));
            for (i, c) in chunk.iter().enumerate() {
                let values = [
                    sql.arg(c.id.clone()),
                    sql.arg(c.workspace.clone()),
                    sql.arg(c.task_id.clone()),
                    sql.arg(c.stage.clone()),
                    sql.arg(c.mode.clone()),
                    sql.arg(c.requested_model.clone()),
                    sql.arg(c.provider.clone()),
                    sql.arg(c.model.clone()),
                    sql.arg(c.policy.clone()),
                    sql.arg(c.policy_version.clone()),
                    sql.arg(c.policy_digest.clone()),
                    sql.arg(c.route_reason.clone()),
                    sql.arg(i64::from(c.stream)),
                    sql.arg(c.status.clone()),
                    sql.arg(c.http_status),
                    sql.arg(c.attempts),
                    sql.arg(c.prompt_tokens),
                    sql.arg(c.completion_tokens),
                    sql.arg(c.cost_micros),
                    sql.arg(c.latency_ms),
                    sql.arg(c.error.clone()),
                    sql.arg(c.created_at),
                ];
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(").push(&values.join(", ")).push(")");
            }
            sql.build()?.execute(&mut *tx).await?;
        }
        let mut tasks = Vec::with_capacity(per_task.len());
        for ((workspace, task), (tokens, cost)) in per_task {
            let row = sqlx::query(concat!(
                "UPDATE tasks SET used_tokens = ",
                saturating_add!("used_tokens", "$3"),
                ", used_cost_micros = ",
                saturating_add!("used_cost_micros", "$4"),
                ", updated_at = $5 WHERE workspace = $1 AND id = $2 RETURNING ",
                task_columns!()
            ))
            .bind(workspace)
            .bind(task)
            .bind(tokens)
            .bind(cost)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                tasks.push(task_from_row(&row)?);
            }
        }
        for ((workspace, hour), (tokens, cost)) in per_hour {
            sqlx::query(concat!(
                "INSERT INTO usage_hourly (workspace, hour, tokens, cost_micros, steps, wall_ms) \
                 VALUES ($1, $2, $3, $4, 0, 0) ON CONFLICT (workspace, hour) DO UPDATE SET tokens = ",
                saturating_add!("usage_hourly.tokens", "excluded.tokens"),
                ", cost_micros = ",
                saturating_add!("usage_hourly.cost_micros", "excluded.cost_micros"),
            ))
            .bind(workspace)
            .bind(hour)
            .bind(tokens)
            .bind(cost)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(tasks)
    }

    /// Recorded calls of a workspace, newest first.
    pub async fn list_gateway_calls(
        &self,
        workspace: &str,
        filter: &CallFilter,
    ) -> Result<Vec<GatewayCallRow>> {
        let mut sql = Sql::new(concat!(
            "SELECT ",
            call_columns!(),
            " FROM gateway_calls WHERE workspace = "
        ));
        let p = sql.arg(workspace.to_string());
        sql.push(&p);
        for (column, value) in [
            ("task_id", &filter.task_id),
            ("stage", &filter.stage),
            ("provider", &filter.provider),
        ] {
            if let Some(v) = value {
                let p = sql.arg(v.clone());
                sql.push(&format!(" AND {column} = {p}"));
            }
        }
        let limit = sql.arg(clamp_limit(filter.limit, 100, 1_000));
        sql.push(&format!(" ORDER BY created_at DESC, id DESC LIMIT {limit}"));
        let rows = sql.build()?.fetch_all(&self.pool).await?;
        rows.iter().map(call_from_row).collect()
    }

    /// Every workspace that made gateway calls.
    pub async fn list_gateway_workspaces(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT workspace FROM gateway_calls ORDER BY workspace")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Usage of a workspace's calls created in `[since, until)`, summed per
    /// distinct value of `group_by` (all calls in one group when empty),
    /// largest cost first.
    pub async fn gateway_usage(
        &self,
        workspace: &str,
        group_by: &[UsageDim],
        since: i64,
        until: i64,
    ) -> Result<Vec<UsageGroup>> {
        let columns: Vec<&str> = group_by.iter().map(|d| d.column()).collect();
        let mut sql = Sql::new("SELECT ");
        for c in &columns {
            sql.push(c).push(", ");
        }
        sql.push(
            // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast it back.
            "COUNT(*) AS calls, \
             CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed, \
             CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
             CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
             CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost_micros \
             FROM gateway_calls WHERE workspace = ",
        );
        let (w, s, u) = (
            sql.arg(workspace.to_string()),
            sql.arg(since),
            sql.arg(until),
        );
        sql.push(&format!("{w} AND created_at >= {s} AND created_at < {u}"));
        if !columns.is_empty() {
            sql.push(" GROUP BY ").push(&columns.join(", "));
        }
        sql.push(" ORDER BY cost_micros DESC, calls DESC");
        let rows = sql.build()?.fetch_all(&self.pool).await?;
        let mut groups = Vec::with_capacity(rows.len());
        for row in &rows {
            let calls: i64 = row.try_get("calls")?;
            if calls == 0 {
                // An aggregate without GROUP BY over no rows.
                continue;
            }
            let mut key = Vec::with_capacity(columns.len());
            for c in &columns {
                key.push(row.try_get::<Option<String>, _>(*c)?);
            }
            groups.push(UsageGroup {
                key,
                calls,
                failed: row.try_get("failed")?,
                prompt_tokens: row.try_get("prompt_tokens")?,
                completion_tokens: row.try_get("completion_tokens")?,
                cost_micros: row.try_get("cost_micros")?,
            });
        }
        Ok(groups)
    }

    /// Calls recorded for a task's stage (the iterations the routing
    /// policy's `max_iterations` limits).
    pub async fn count_stage_calls(
        &self,
        workspace: &str,
        task_id: &str,
        stage: &str,
    ) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM gateway_calls WHERE workspace = $1 AND task_id = $2 AND stage = $3",
        )
        .bind(workspace)
        .bind(task_id)
        .bind(stage)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }
}

fn call_from_row(row: &AnyRow) -> Result<GatewayCallRow> {
    Ok(GatewayCallRow {
        id: row.try_get("id")?,
        workspace: row.try_get("workspace")?,
        task_id: row.try_get("task_id")?,
        stage: row.try_get("stage")?,
        mode: row.try_get("mode")?,
        requested_model: row.try_get("requested_model")?,
        provider: row.try_get("provider")?,
        model: row.try_get("model")?,
        policy: row.try_get("policy")?,
        policy_version: row.try_get("policy_version")?,
        policy_digest: row.try_get("policy_digest")?,
        route_reason: row.try_get("route_reason")?,
        stream: row.try_get::<i64, _>("stream")? != 0,
        status: row.try_get("status")?,
        http_status: row.try_get("http_status")?,
        attempts: row.try_get("attempts")?,
        prompt_tokens: row.try_get("prompt_tokens")?,
        completion_tokens: row.try_get("completion_tokens")?,
        cost_micros: row.try_get("cost_micros")?,
        latency_ms: row.try_get("latency_ms")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
    })
}
