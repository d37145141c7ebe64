//! `runs`: playbook runs and their reports (SPEC PB-1..PB-3, RL-4).
//!
//! Status moves `queued → running → succeeded | failed`, and `running →
//! interrupted` when the host stopped during the run. A run of a plugin that
//! does not allow concurrency holds `exclusive_key` (unique) while queued or
//! running, so at most one such run is active per workspace and plugin.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{
    clamp_limit, is_unique_violation, json_text, json_text_opt, parse_json, parse_json_opt,
};
use crate::{Error, Result, Store, now_ms};

macro_rules! run_columns {
    () => {
        "id, workspace, plugin, version, digest, mode, status, input, report, error, error_code, \
         usage, limits, actor, trigger, idempotency_key, plan_run_id, retry_of, created_at, \
         started_at, finished_at"
    };
}

/// The error of runs that `interrupt_running_runs` ends.
const INTERRUPTED: &str = "the host stopped during the run";

/// How often `insert_run` retries when a unique index refused the row but
/// the row that holds it is gone by the time it looks (it finished or was
/// removed in between).
const INSERT_ATTEMPTS: usize = 3;

crate::names::stored_names! {
    /// Where a playbook run is (`runs.status`).
    pub enum RunStatus ("run status") {
        /// Acknowledged, not started.
        Queued = "queued",
        /// Running on this or another host.
        Running = "running",
        /// Ended with a report.
        Succeeded = "succeeded",
        /// Ended with an error.
        Failed = "failed",
        /// The host stopped during the run.
        Interrupted = "interrupted",
    }
}

impl RunStatus {
    /// True once the run ended: `succeeded`, `failed` or `interrupted`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Interrupted
        )
    }
}

crate::names::stored_names! {
    /// What a playbook run may do (`runs.mode`): look, propose, or act.
    /// Not the workspace's scheduling mode.
    pub enum RunMode ("run mode") {
        /// Reads only; mutations are refused.
        Diagnose = "diagnose",
        /// Mutations are recorded as planned, not applied.
        Plan = "plan",
        /// Mutations are applied.
        Apply = "apply",
    }
}

/// One run, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    /// Id (UUID v7).
    pub id: String,
    /// Workspace.
    pub workspace: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// The exact digest that ran (SPEC LC-4).
    pub digest: String,
    /// What it may do.
    pub mode: RunMode,
    /// Where it is.
    pub status: RunStatus,
    /// The input JSON.
    pub input: Value,
    /// The report JSON, once succeeded.
    pub report: Option<Value>,
    /// Why it failed or was interrupted.
    pub error: Option<String>,
    /// Stable code of the error (`deadline`, `memory`, `steps`, ...).
    pub error_code: Option<String>,
    /// Fuel, wall time, memory, steps used (JSON).
    pub usage: Option<Value>,
    /// The limits that applied (JSON).
    pub limits: Option<Value>,
    /// Who triggered it.
    pub actor: String,
    /// `http`, `cli`, `schedule`, `alert:<rule>`, `retry`.
    pub trigger: String,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// For an `apply` run that carries out a plan: the plan's run id.
    pub plan_run_id: Option<String>,
    /// For an automatic retry of an interrupted run: the original run.
    pub retry_of: Option<String>,
    /// Created.
    pub created_at: i64,
    /// Started running.
    pub started_at: Option<i64>,
    /// Ended.
    pub finished_at: Option<i64>,
}

/// What a new run needs.
#[derive(Clone, Debug)]
pub struct NewRun {
    /// Id (UUID v7, from [`crate::new_id`]).
    pub id: String,
    /// Workspace.
    pub workspace: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// Digest that will run.
    pub digest: String,
    /// Mode.
    pub mode: RunMode,
    /// Input JSON.
    pub input: Value,
    /// Who.
    pub actor: String,
    /// How.
    pub trigger: String,
    /// Idempotency key; unique per (workspace, plugin) when set.
    pub idempotency_key: Option<String>,
    /// The plan being applied.
    pub plan_run_id: Option<String>,
    /// The run being retried.
    pub retry_of: Option<String>,
    /// True when the plugin does not allow concurrent runs.
    pub exclusive: bool,
}

/// What `insert_run` did.
#[derive(Clone, Debug, PartialEq)]
pub enum Inserted {
    /// A new run, status `queued`.
    Created(RunRow),
    /// A run with the same (workspace, plugin, idempotency key) existed.
    Existing(RunRow),
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunEnd {
    /// `Succeeded` or `Failed`.
    pub status: RunStatus,
    /// Report JSON when succeeded.
    pub report: Option<Value>,
    /// Error text when failed.
    pub error: Option<String>,
    /// Error code when failed.
    pub error_code: Option<String>,
    /// Usage JSON.
    pub usage: Option<Value>,
    /// Limits JSON.
    pub limits: Option<Value>,
}

/// Which runs `list_runs` returns, newest first.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    /// Only this plugin.
    pub plugin: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only runs older than this id (paging).
    pub before_id: Option<String>,
    /// At most this many (capped at 500).
    pub limit: i64,
}

/// Runs that ended since some time, by status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// `succeeded`.
    pub succeeded: i64,
    /// `failed`.
    pub failed: i64,
    /// `interrupted`.
    pub interrupted: i64,
}

impl Store {
    /// Inserts a `queued` run. With an idempotency key already used for the
    /// same workspace and plugin, returns the existing run instead. When
    /// `exclusive` and another exclusive run of the plugin is queued or
    /// running in the workspace, fails with `Error::Conflict` naming it.
    pub async fn insert_run(&self, run: &NewRun) -> Result<Inserted> {
        // The unique indexes decide, not the reads: two callers with one
        // idempotency key can both see no run, and then one insert fails and
        // finds the other's row.
        let exclusive_key = run
            .exclusive
            .then(|| format!("{}/{}", run.workspace, run.plugin));
        for _ in 0..INSERT_ATTEMPTS {
            if let Some(existing) = self.run_by_idempotency_key(run).await? {
                return Ok(Inserted::Existing(existing));
            }
            let inserted = sqlx::query(concat!(
                "INSERT INTO runs (id, workspace, plugin, version, digest, mode, status, input, actor, \
                 trigger, idempotency_key, plan_run_id, retry_of, exclusive_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $11, $12, $13, $14) \
                 RETURNING ",
                run_columns!()
            ))
            .bind(&run.id)
            .bind(&run.workspace)
            .bind(&run.plugin)
            .bind(&run.version)
            .bind(&run.digest)
            .bind(run.mode.as_str())
            .bind(json_text(&run.input))
            .bind(&run.actor)
            .bind(&run.trigger)
            .bind(run.idempotency_key.as_deref())
            .bind(run.plan_run_id.as_deref())
            .bind(run.retry_of.as_deref())
            .bind(exclusive_key.as_deref())
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await;
            let err = match inserted {
                Ok(row) => return Ok(Inserted::Created(run_from_row(&row)?)),
                Err(e) if is_unique_violation(&e) => e,
                Err(e) => return Err(e.into()),
            };
            if let Some(existing) = self.run_by_idempotency_key(run).await? {
                return Ok(Inserted::Existing(existing));
            }
            if let Some(key) = &exclusive_key
                && let Some(active) = self.run_by_exclusive_key(key).await?
            {
                return Err(Error::Conflict(format!(
                    "run \"{}\" of plugin \"{}\" is {} in workspace \"{}\" and the plugin does not allow \
                     concurrent runs (wait for it to finish)",
                    active.id, active.plugin, active.status, active.workspace
                )));
            }
            if self.run_exists(&run.id).await? {
                return Err(Error::AlreadyExists(format!("run \"{}\"", run.id)));
            }
            tracing::debug!(run = %run.id, error = %err, "run insert refused by a row that is gone, retrying");
        }
        Err(Error::Conflict(format!(
            "run \"{}\" could not be inserted: the active run of plugin \"{}\" kept changing (try again)",
            run.id, run.plugin
        )))
    }

    /// `queued → running`; false when the run was not queued.
    pub async fn start_run(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE runs SET status = 'running', started_at = $2 WHERE id = $1 AND status = 'queued'")
            .bind(id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// `running → succeeded | failed` with its results; releases the
    /// exclusive slot. False when the run was not running.
    pub async fn finish_run(&self, id: &str, end: &RunEnd) -> Result<bool> {
        if !matches!(end.status, RunStatus::Succeeded | RunStatus::Failed) {
            return Err(Error::Conflict(format!(
                "run \"{id}\" cannot finish as \"{}\" (use succeeded or failed)",
                end.status
            )));
        }
        let done = sqlx::query(
            "UPDATE runs SET status = $2, report = $3, error = $4, error_code = $5, usage = $6, limits = $7, \
             finished_at = $8, exclusive_key = NULL WHERE id = $1 AND status = 'running'",
        )
        .bind(id)
        .bind(end.status.as_str())
        .bind(json_text_opt(end.report.as_ref()))
        .bind(end.error.as_deref())
        .bind(end.error_code.as_deref())
        .bind(json_text_opt(end.usage.as_ref()))
        .bind(json_text_opt(end.limits.as_ref()))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// One run of a workspace.
    pub async fn get_run(&self, workspace: &str, id: &str) -> Result<Option<RunRow>> {
        sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE workspace = $1 AND id = $2"
        ))
        .bind(workspace)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    /// Runs of a workspace, newest first.
    pub async fn list_runs(&self, workspace: &str, query: &RunQuery) -> Result<Vec<RunRow>> {
        // Ids are UUID v7, so id order is creation order and a page ends at
        // an id; a NULL filter parameter means "any".
        sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE workspace = $1 \
              AND ($2 IS NULL OR plugin = $2) \
              AND ($3 IS NULL OR status = $3) \
              AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5"
        ))
        .bind(workspace)
        .bind(query.plugin.as_deref())
        .bind(query.status.as_deref())
        .bind(query.before_id.as_deref())
        .bind(clamp_limit(query.limit, 100, 500))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    /// Runs of `plugin` in `workspace` whose trigger starts with
    /// `trigger_prefix`, created at or after `since`: how many, and when the
    /// newest was created.
    pub async fn triggered_runs_since(
        &self,
        workspace: &str,
        plugin: &str,
        trigger_prefix: &str,
        since: i64,
    ) -> Result<(i64, Option<i64>)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MAX(created_at) AS last FROM runs \
             WHERE workspace = $1 AND plugin = $2 AND trigger LIKE $3 AND created_at >= $4",
        )
        .bind(workspace)
        .bind(plugin)
        .bind(format!("{trigger_prefix}%"))
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("last")?))
    }

    /// Marks every `running` run `interrupted` (error "the host stopped
    /// during the run"), releasing exclusive slots; returns them. Called
    /// once at start-up (SPEC RL-4).
    pub async fn interrupt_running_runs(&self) -> Result<Vec<RunRow>> {
        let mut runs = sqlx::query(concat!(
            "UPDATE runs SET status = 'interrupted', error = $1, finished_at = $2, exclusive_key = NULL \
             WHERE status = 'running' RETURNING ",
            run_columns!()
        ))
        .bind(INTERRUPTED)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect::<Result<Vec<_>>>()?;
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(runs)
    }

    /// Every `queued` run, oldest first (acknowledged but not started).
    pub async fn list_queued_runs(&self) -> Result<Vec<RunRow>> {
        sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE status = 'queued' ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    /// Runs of a workspace that ended at or after `since`, by status.
    pub async fn count_runs_since(&self, workspace: &str, since: i64) -> Result<RunCounts> {
        let rows = sqlx::query(
            "SELECT status, CAST(COUNT(*) AS BIGINT) AS n FROM runs \
             WHERE workspace = $1 AND finished_at >= $2 \
               AND status IN ('succeeded', 'failed', 'interrupted') \
             GROUP BY status",
        )
        .bind(workspace)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = RunCounts::default();
        for row in &rows {
            let status: RunStatus = crate::names::get_name(row, "runs.status")?;
            let n: i64 = row.try_get("n")?;
            match status {
                RunStatus::Succeeded => counts.succeeded = n,
                RunStatus::Failed => counts.failed = n,
                RunStatus::Interrupted => counts.interrupted = n,
                RunStatus::Queued | RunStatus::Running => {}
            }
        }
        Ok(counts)
    }

    async fn run_by_idempotency_key(&self, run: &NewRun) -> Result<Option<RunRow>> {
        let Some(key) = &run.idempotency_key else {
            return Ok(None);
        };
        sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE workspace = $1 AND plugin = $2 AND idempotency_key = $3"
        ))
        .bind(&run.workspace)
        .bind(&run.plugin)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    async fn run_by_exclusive_key(&self, key: &str) -> Result<Option<RunRow>> {
        sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE exclusive_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    async fn run_exists(&self, id: &str) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM runs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }
}

fn run_from_row(row: &AnyRow) -> Result<RunRow> {
    Ok(RunRow {
        id: row.try_get("id")?,
        workspace: row.try_get("workspace")?,
        plugin: row.try_get("plugin")?,
        version: row.try_get("version")?,
        digest: row.try_get("digest")?,
        mode: crate::names::get_name(row, "runs.mode")?,
        status: crate::names::get_name(row, "runs.status")?,
        input: parse_json("runs.input", &row.try_get::<String, _>("input")?)?,
        report: parse_json_opt("runs.report", row.try_get("report")?)?,
        error: row.try_get("error")?,
        error_code: row.try_get("error_code")?,
        usage: parse_json_opt("runs.usage", row.try_get("usage")?)?,
        limits: parse_json_opt("runs.limits", row.try_get("limits")?)?,
        actor: row.try_get("actor")?,
        trigger: row.try_get("trigger")?,
        idempotency_key: row.try_get("idempotency_key")?,
        plan_run_id: row.try_get("plan_run_id")?,
        retry_of: row.try_get("retry_of")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
