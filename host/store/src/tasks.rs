//! `tasks`: tasks, the stages they go through, and what playbooks and
//! operators change about them. Claims, leases, completions and failures
//! are in [`crate::stages`]; dependencies live in `task_deps` as well as in
//! the task's `depends_on` column (a copy for reading; both are fixed at
//! creation).

use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::actions::{ActionRow, insert_action_in};
use crate::util::{Sql, clamp_limit, is_unique_violation, parse_strings, strings_text};
use crate::{Dialect, Error, Result, Store, now_ms};

/// The columns [`task_from_row`] reads, for `SELECT` and `RETURNING`.
macro_rules! task_columns {
    () => {
        "id, workspace, title, body, stage, state, priority, attempts, last_error, dedup_key, \
         lease_owner, lease_expires_at, created_at, updated_at, last_event_at, pipeline, \
         stage_index, high_water, priority_rank, max_attempts, total_attempts, next_attempt_at, \
         lease_token, last_fingerprint, fingerprint_streak, depends_on, requires, budget_tokens, \
         budget_cost_micros, budget_steps, budget_wall_ms, used_tokens, used_cost_micros, \
         used_steps, used_wall_ms, finished_at, gate_rejections, plan_delta"
    };
}
pub(crate) use task_columns;

/// [`task_columns`] of the table named `alias` (`t.id, t.workspace, ...`),
/// for statements that join tasks with tables of the same column names.
pub(crate) fn task_columns_of(alias: &str) -> String {
    task_columns!()
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// States a task no longer leaves (but `dead` can be redriven); a dedup
/// key is free again once its task reached one (the `tasks_dedup` index
/// covers the others).
pub const FINISHED: &[TaskState] = &[TaskState::Done, TaskState::Cancelled, TaskState::Dead];

/// How often `create_task` retries after a concurrent create with the same
/// dedup key won the race (it then finds that task).
const CREATE_ATTEMPTS: usize = 3;

/// The names of the states a task can be in (SPEC TS-1), in the order of
/// [`TaskState::ALL`].
pub const STATES: &[&str] = TaskState::NAMES;

crate::names::stored_names! {
    /// A task's state (SPEC TS-1), stored in `tasks.state` by its name.
    pub enum TaskState ("task state") {
        /// Waiting to be claimed (or for its retry time).
        Queued = "queued",
        /// A worker holds a lease on its stage.
        Running = "running",
        /// A quality gate's quorum asks a human.
        WaitingApproval = "waiting_approval",
        /// Stopped by a loop guard, a budget or an operator.
        Blocked = "blocked",
        /// Failed (kept for stored rows; failures are retried, dead or
        /// blocked).
        Failed = "failed",
        /// In the dead-letter queue.
        Dead = "dead",
        /// Past its last stage.
        Done = "done",
        /// Cancelled.
        Cancelled = "cancelled",
    }
}

impl TaskState {
    /// True for the states a task no longer leaves ([`FINISHED`]).
    pub fn is_finished(self) -> bool {
        FINISHED.contains(&self)
    }
}

/// Priorities, most urgent first.
pub const PRIORITIES: &[&str] = &["urgent", "normal", "low"];

/// One task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    /// Id (UUID v7).
    pub id: String,
    /// Workspace.
    pub workspace: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Current stage, e.g. `implement`.
    pub stage: String,
    /// Its state.
    pub state: TaskState,
    /// One of [`PRIORITIES`].
    pub priority: String,
    /// Attempts at the current stage.
    pub attempts: i64,
    /// Last failure or block reason.
    pub last_error: Option<String>,
    /// Dedup key it was created with.
    pub dedup_key: Option<String>,
    /// Worker holding the lease of a running task.
    pub lease_owner: Option<String>,
    /// When that lease expires.
    pub lease_expires_at: Option<i64>,
    /// Created.
    pub created_at: i64,
    /// Last change of any column.
    pub updated_at: i64,
    /// Last event (progress, heartbeat, change).
    pub last_event_at: i64,
    /// The stages this task goes through, in order (fixed at creation).
    pub pipeline: Vec<String>,
    /// Index of `stage` in `pipeline`.
    pub stage_index: i64,
    /// Furthest stage index ever reached (progress, for loop guards).
    pub high_water: i64,
    /// 0 urgent, 1 normal, 2 low: the claim order.
    pub priority_rank: i64,
    /// Failures allowed before the dead-letter queue.
    pub max_attempts: i64,
    /// Attempts at every stage, in total.
    pub total_attempts: i64,
    /// Not claimable before this time (retry backoff).
    pub next_attempt_at: i64,
    /// Fencing token of the current lease.
    pub lease_token: Option<i64>,
    /// Fingerprint of the last failure.
    pub last_fingerprint: Option<String>,
    /// How many failures in a row had that fingerprint.
    pub fingerprint_streak: i64,
    /// Ids of the tasks this one waits for.
    pub depends_on: Vec<String>,
    /// Breakers that must be closed for it to be claimed.
    pub requires: Vec<String>,
    /// Budgets (`None`: none).
    pub budget: TaskBudget,
    /// Usage so far.
    pub used: TaskUsage,
    /// When it became done, dead or cancelled.
    pub finished_at: Option<i64>,
    /// Times in a row a quality gate sent it back without progress (SPEC
    /// QG-3): reset when it passes its furthest stage.
    pub gate_rejections: i64,
    /// The reasons of the last rejection, for its next plan (JSON).
    pub plan_delta: Option<serde_json::Value>,
}

/// A task's budgets (SPEC TS-5); `None` is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskBudget {
    /// Model tokens.
    pub tokens: Option<i64>,
    /// Cost in micro-dollars.
    pub cost_micros: Option<i64>,
    /// Agent steps.
    pub steps: Option<i64>,
    /// Wall time holding leases, in ms.
    pub wall_ms: Option<i64>,
}

/// A task's usage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskUsage {
    /// Model tokens.
    pub tokens: i64,
    /// Cost in micro-dollars.
    pub cost_micros: i64,
    /// Agent steps.
    pub steps: i64,
    /// Wall time holding leases, in ms.
    pub wall_ms: i64,
}

/// A task to create.
#[derive(Clone, Debug)]
pub struct NewTask {
    /// Id (UUID v7).
    pub id: String,
    /// Workspace.
    pub workspace: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// First stage.
    pub stage: String,
    /// Priority.
    pub priority: String,
    /// With a key, an unfinished task (not done, cancelled or dead) with the
    /// same key in the workspace is returned instead of creating one.
    pub dedup_key: Option<String>,
    /// Stages, in order; `stage` must be one of them.
    pub pipeline: Vec<String>,
    /// Failures allowed before the dead-letter queue.
    pub max_attempts: i64,
    /// Tasks of the same workspace it waits for (each must exist; else
    /// `Error::NotFound` naming it).
    pub depends_on: Vec<String>,
    /// Breakers that must be closed for it to be claimed.
    pub requires: Vec<String>,
    /// Budgets.
    pub budget: TaskBudget,
}

/// Which tasks `list_tasks` returns, oldest event first.
#[derive(Clone, Debug, Default)]
pub struct TaskQuery {
    /// Only these states (empty: all).
    pub states: Vec<TaskState>,
    /// Only tasks whose `last_event_at` is at least this old, in ms.
    pub stuck_for_ms: Option<i64>,
    /// Only `running` tasks whose lease expired.
    pub lease_expired: bool,
    /// At most this many (capped at 500).
    pub limit: i64,
    /// The time "now" for the two filters above.
    pub now: i64,
}

/// A change a playbook (or operator) makes to a task.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskChange {
    /// `running | failed | blocked | queued → queued`, lease cleared.
    Requeue,
    /// As `Requeue`, and attempts set to 0 and `last_error` cleared.
    Reset,
    /// Any state but `done`, `cancelled`, `dead` → `blocked`, reason kept in
    /// `last_error`.
    Block {
        /// Why.
        reason: String,
    },
    /// `blocked → queued`.
    Unblock,
}

impl Store {
    /// Creates a task (or returns the unfinished one with the same dedup
    /// key); the bool is true when created.
    pub async fn create_task(&self, task: &NewTask) -> Result<(TaskRow, bool)> {
        self.create_task_inner(task, None).await
    }

    /// As `create_task`, and records `action` (with `after` = the task and
    /// `detail` = its id) in the same transaction.
    ///
    /// The action is recorded with status `applied`. When the dedup key
    /// found an existing task, `before` is that task too (nothing changed);
    /// otherwise `before` is empty.
    pub async fn create_task_with_action(
        &self,
        task: &NewTask,
        action: &ActionRow,
    ) -> Result<(TaskRow, bool)> {
        self.create_task_inner(task, Some(action)).await
    }

    /// One task of a workspace.
    pub async fn get_task(&self, workspace: &str, id: &str) -> Result<Option<TaskRow>> {
        sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE workspace = $1 AND id = $2"
        ))
        .bind(workspace)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(task_from_row)
        .transpose()
    }

    /// Tasks of a workspace.
    ///
    /// Filters combine with AND; `stuck_for_ms` keeps tasks whose
    /// `last_event_at <= now - stuck_for_ms`, `lease_expired` keeps
    /// `running` tasks whose `lease_expires_at < now`. Ordered by
    /// `last_event_at` (oldest first), then id. A `limit` of 0 or less
    /// means 100; at most 500 are returned.
    pub async fn list_tasks(&self, workspace: &str, query: &TaskQuery) -> Result<Vec<TaskRow>> {
        let mut sql = String::from(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE workspace = $1"
        ));
        let mut n = 1;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if !query.states.is_empty() {
            let placeholders: Vec<String> = query.states.iter().map(|_| next()).collect();
            sql.push_str(&format!(" AND state IN ({})", placeholders.join(", ")));
        }
        if query.stuck_for_ms.is_some() {
            sql.push_str(&format!(" AND last_event_at <= {}", next()));
        }
        if query.lease_expired {
            sql.push_str(&format!(
                " AND state = 'running' AND lease_expires_at < {}",
                next()
            ));
        }
        sql.push_str(&format!(" ORDER BY last_event_at, id LIMIT {}", next()));

        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(workspace);
        for state in &query.states {
            q = q.bind(state.as_str());
        }
        if let Some(stuck) = query.stuck_for_ms {
            q = q.bind(query.now.saturating_sub(stuck));
        }
        if query.lease_expired {
            q = q.bind(query.now);
        }
        q.bind(clamp_limit(query.limit, 100, 500))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(task_from_row)
            .collect()
    }

    /// Number of tasks per state (states with none are left out).
    ///
    /// In the order of [`STATES`]; states not in that list come last.
    pub async fn count_tasks_by_state(&self, workspace: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT state, CAST(COUNT(*) AS BIGINT) AS n FROM tasks WHERE workspace = $1 GROUP BY state",
        )
        .bind(workspace)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<String, _>("state")?,
                    row.try_get::<i64, _>("n")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let rank = |state: &str| {
            STATES
                .iter()
                .position(|s| *s == state)
                .unwrap_or(STATES.len())
        };
        counts.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(&b.0)));
        Ok(counts)
    }

    /// The `limit` (at most 500) tasks of a workspace with the newest
    /// activity (`last_event_at`), newest first: the dashboard's recent
    /// activity.
    pub async fn recent_tasks(&self, workspace: &str, limit: i64) -> Result<Vec<TaskRow>> {
        sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE workspace = $1 ORDER BY last_event_at DESC, id DESC LIMIT $2"
        ))
        .bind(workspace)
        .bind(clamp_limit(limit, 50, 500))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(task_from_row)
        .collect()
    }

    /// Unfinished tasks caught in a resolution loop (SPEC TS-6): blocked
    /// (by a loop guard, a budget or an operator), or with at least
    /// `min_repeats` attempts at their stage, gate rejections without
    /// progress, or failures with the same fingerprint in a row. Newest
    /// activity first, at most `limit` (at most 500).
    pub async fn looping_tasks(
        &self,
        workspace: &str,
        min_repeats: i64,
        limit: i64,
    ) -> Result<Vec<TaskRow>> {
        sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE workspace = $1 AND state NOT IN ('done', 'cancelled', 'dead') \
             AND (state = 'blocked' OR attempts >= $2 OR gate_rejections >= $2 \
             OR fingerprint_streak >= $2) ORDER BY last_event_at DESC, id DESC LIMIT $3"
        ))
        .bind(workspace)
        .bind(min_repeats)
        .bind(clamp_limit(limit, 50, 500))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(task_from_row)
        .collect()
    }

    /// Running tasks whose lease expired or whose last event is older than
    /// `stuck_ms`.
    pub async fn count_stuck_tasks(&self, workspace: &str, now: i64, stuck_ms: i64) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM tasks WHERE workspace = $1 AND state = 'running' \
             AND (lease_expires_at < $2 OR last_event_at < $3)",
        )
        .bind(workspace)
        .bind(now)
        .bind(now.saturating_sub(stuck_ms))
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Applies `change` to a task and, when `action` is given, records it
    /// (status `applied`, with `before` and `after` snapshots of the task as
    /// JSON) in the same transaction. `Error::NotFound` for no such task in
    /// the workspace; `Error::Conflict` with a reason when the task's state
    /// does not allow the change. Returns the task before and after.
    ///
    /// The snapshots hold `id`, `state`, `stage`, `attempts`, `last_error`
    /// and `priority`. Every change clears the lease (its open stage run
    /// ends as `cancelled`, so that the worker holding it is fenced off)
    /// and sets `updated_at` and `last_event_at` to now. `Requeue`, `Reset`
    /// and `Unblock` make the task claimable at once (`next_attempt_at` =
    /// now); `Reset` also clears `fingerprint_streak`.
    pub async fn apply_task_change(
        &self,
        workspace: &str,
        id: &str,
        change: &TaskChange,
        action: Option<&ActionRow>,
    ) -> Result<(TaskRow, TaskRow)> {
        let mut tx = self.begin_write().await?;
        // SQLite's BEGIN IMMEDIATE already excludes other writers;
        // PostgreSQL locks the row until commit.
        let select = match self.dialect {
            Dialect::Sqlite => concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks WHERE workspace = $1 AND id = $2"
            ),
            Dialect::Postgres => concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks WHERE workspace = $1 AND id = $2 FOR UPDATE"
            ),
        };
        let before = sqlx::query(select)
            .bind(workspace)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(task_from_row)
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("task \"{id}\"")))?;
        let (state, attempts, last_error) = transition(&before, change)?;
        let now = now_ms();
        let next_attempt_at = match change {
            TaskChange::Block { .. } => before.next_attempt_at,
            _ => now,
        };
        let streak = match change {
            TaskChange::Reset => 0,
            _ => before.fingerprint_streak,
        };
        if let Some(token) = before.lease_token {
            end_open_run(&mut tx, token, "cancelled", now).await?;
        }
        let row = sqlx::query(concat!(
            "UPDATE tasks SET state = $3, attempts = $4, last_error = $5, lease_owner = NULL, \
             lease_expires_at = NULL, lease_token = NULL, next_attempt_at = $7, \
             fingerprint_streak = $8, updated_at = $6, last_event_at = $6 \
             WHERE workspace = $1 AND id = $2 RETURNING ",
            task_columns!()
        ))
        .bind(workspace)
        .bind(id)
        .bind(state.as_str())
        .bind(attempts)
        .bind(last_error)
        .bind(now)
        .bind(next_attempt_at)
        .bind(streak)
        .fetch_one(&mut *tx)
        .await?;
        let after = task_from_row(&row)?;
        if let Some(action) = action {
            record_applied(
                &mut tx,
                action,
                Some(&before),
                &after,
                action.detail.clone(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok((before, after))
    }

    async fn create_task_inner(
        &self,
        task: &NewTask,
        action: Option<&ActionRow>,
    ) -> Result<(TaskRow, bool)> {
        let pipeline = if task.pipeline.is_empty() {
            vec![task.stage.clone()]
        } else {
            task.pipeline.clone()
        };
        let stage_index = pipeline
            .iter()
            .position(|s| *s == task.stage)
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "stage \"{}\" of task \"{}\" is not in its pipeline ({}): add it or start at one of them",
                    task.stage,
                    task.id,
                    pipeline.join(", ")
                ))
            })? as i64;
        // Each dependency once, in the order given.
        let mut depends_on: Vec<String> = Vec::with_capacity(task.depends_on.len());
        for dep in &task.depends_on {
            if !depends_on.contains(dep) {
                depends_on.push(dep.clone());
            }
        }
        for _ in 0..CREATE_ATTEMPTS {
            let mut tx = self.begin_write().await?;
            if let Some(key) = &task.dedup_key
                && let Some(existing) =
                    unfinished_by_dedup_key(&mut tx, &task.workspace, key).await?
            {
                if let Some(action) = action {
                    let detail = Some(existing.id.clone());
                    record_applied(&mut tx, action, Some(&existing), &existing, detail).await?;
                }
                tx.commit().await?;
                return Ok((existing, false));
            }
            check_dependencies(&mut tx, &task.workspace, &depends_on).await?;
            let now = now_ms();
            let inserted = sqlx::query(concat!(
                "INSERT INTO tasks (id, workspace, title, body, stage, state, priority, attempts, dedup_key, \
                 created_at, updated_at, last_event_at, pipeline, stage_index, high_water, priority_rank, \
                 max_attempts, next_attempt_at, depends_on, requires, budget_tokens, budget_cost_micros, \
                 budget_steps, budget_wall_ms) \
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, 0, $7, $8, $8, $8, $9, $10, $10, $11, $12, $8, \
                 $13, $14, $15, $16, $17, $18) RETURNING ",
                task_columns!()
            ))
            .bind(&task.id)
            .bind(&task.workspace)
            .bind(&task.title)
            .bind(&task.body)
            .bind(&task.stage)
            .bind(&task.priority)
            .bind(task.dedup_key.as_deref())
            .bind(now)
            .bind(strings_text(&pipeline))
            .bind(stage_index)
            .bind(priority_rank(&task.priority))
            .bind(task.max_attempts)
            .bind(strings_text(&depends_on))
            .bind(strings_text(&task.requires))
            .bind(task.budget.tokens)
            .bind(task.budget.cost_micros)
            .bind(task.budget.steps)
            .bind(task.budget.wall_ms)
            .fetch_one(&mut *tx)
            .await;
            match inserted {
                Ok(row) => {
                    let created = task_from_row(&row)?;
                    if !depends_on.is_empty() {
                        let mut sql =
                            Sql::new("INSERT INTO task_deps (task_id, depends_on) VALUES ");
                        let values: Vec<String> = depends_on
                            .iter()
                            .map(|dep| format!("({}, {})", sql.arg(&task.id), sql.arg(dep)))
                            .collect();
                        sql.push(&values.join(", "));
                        sql.build()?.execute(&mut *tx).await?;
                    }
                    if let Some(action) = action {
                        let detail = Some(created.id.clone());
                        record_applied(&mut tx, action, None, &created, detail).await?;
                    }
                    tx.commit().await?;
                    return Ok((created, true));
                }
                Err(e) if is_unique_violation(&e) => {
                    // Either the id is taken, or a concurrent create with the
                    // same dedup key committed first: the next round finds it.
                    tx.rollback().await?;
                    if self.task_id_taken(&task.id).await? {
                        return Err(Error::AlreadyExists(format!("task \"{}\"", task.id)));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(format!(
            "task \"{}\" could not be created: tasks with its dedup key kept changing (try again)",
            task.id
        )))
    }

    async fn task_id_taken(&self, id: &str) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }
}

/// The claim order of a priority: urgent 0, normal 1, low 2 (anything else
/// counts as normal).
fn priority_rank(priority: &str) -> i64 {
    match priority {
        "urgent" => 0,
        "low" => 2,
        _ => 1,
    }
}

/// Fails with `Error::NotFound` naming the first of `ids` that is not a
/// task of `workspace`.
async fn check_dependencies(
    conn: &mut AnyConnection,
    workspace: &str,
    ids: &[String],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("SELECT id FROM tasks WHERE workspace = ");
    let ws = sql.arg(workspace);
    let list = sql.args(ids);
    sql.push(&format!("{ws} AND id IN ({list})"));
    let found: Vec<String> = sql
        .build()?
        .fetch_all(conn)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()?;
    match ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(Error::NotFound(format!("task \"{missing}\""))),
        None => Ok(()),
    }
}

/// Ends stage run `token` with `outcome` unless it has ended already.
pub(crate) async fn end_open_run(
    conn: &mut AnyConnection,
    token: i64,
    outcome: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE stage_runs SET outcome = $2, ended_at = $3 WHERE id = $1 AND outcome IS NULL",
    )
    .bind(token)
    .bind(outcome)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The unfinished task with `key` in `workspace`, read inside the creating
/// transaction.
async fn unfinished_by_dedup_key(
    conn: &mut AnyConnection,
    workspace: &str,
    key: &str,
) -> Result<Option<TaskRow>> {
    sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE workspace = $1 AND dedup_key = $2 \
          AND state NOT IN ('done', 'cancelled', 'dead') ORDER BY created_at, id LIMIT 1"
    ))
    .bind(workspace)
    .bind(key)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(task_from_row)
    .transpose()
}

/// The state, attempts and last error after `change`, or why the task's
/// state refuses it.
fn transition(task: &TaskRow, change: &TaskChange) -> Result<(TaskState, i64, Option<String>)> {
    use TaskState::{Blocked, Failed, Queued, Running};
    let state = task.state;
    let refuse = |verb: &str| {
        Error::Conflict(format!(
            "task \"{}\" is {} and cannot be {verb}",
            task.id, task.state
        ))
    };
    match change {
        TaskChange::Requeue | TaskChange::Reset => {
            let (verb, reset) = match change {
                TaskChange::Reset => ("reset", true),
                _ => ("requeued", false),
            };
            if !matches!(state, Running | Failed | Blocked | Queued) {
                return Err(refuse(verb));
            }
            if reset {
                Ok((Queued, 0, None))
            } else {
                Ok((Queued, task.attempts, task.last_error.clone()))
            }
        }
        TaskChange::Block { reason } => {
            if state.is_finished() {
                return Err(refuse("blocked"));
            }
            Ok((Blocked, task.attempts, Some(reason.clone())))
        }
        TaskChange::Unblock => {
            if state != Blocked {
                return Err(refuse("unblocked"));
            }
            Ok((Queued, task.attempts, task.last_error.clone()))
        }
    }
}

/// What an action's `before` / `after` hold about a task.
fn snapshot(task: &TaskRow) -> Value {
    json!({
        "id": task.id,
        "state": task.state,
        "stage": task.stage,
        "attempts": task.attempts,
        "last_error": task.last_error,
        "priority": task.priority,
    })
}

/// Records `action` as applied to `after`, inside the change's transaction.
async fn record_applied(
    conn: &mut AnyConnection,
    action: &ActionRow,
    before: Option<&TaskRow>,
    after: &TaskRow,
    detail: Option<String>,
) -> Result<()> {
    let row = ActionRow {
        status: "applied".to_string(),
        before: before.map(snapshot),
        after: Some(snapshot(after)),
        detail,
        ..action.clone()
    };
    insert_action_in(conn, &row).await
}

/// A task from a row holding [`task_columns`].
pub(crate) fn task_from_row(row: &AnyRow) -> Result<TaskRow> {
    Ok(TaskRow {
        id: row.try_get("id")?,
        workspace: row.try_get("workspace")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        stage: row.try_get("stage")?,
        state: crate::names::get_name(row, "tasks.state")?,
        priority: row.try_get("priority")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        dedup_key: row.try_get("dedup_key")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_event_at: row.try_get("last_event_at")?,
        pipeline: parse_strings("tasks.pipeline", &row.try_get::<String, _>("pipeline")?)?,
        stage_index: row.try_get("stage_index")?,
        high_water: row.try_get("high_water")?,
        priority_rank: row.try_get("priority_rank")?,
        max_attempts: row.try_get("max_attempts")?,
        total_attempts: row.try_get("total_attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        lease_token: row.try_get("lease_token")?,
        last_fingerprint: row.try_get("last_fingerprint")?,
        fingerprint_streak: row.try_get("fingerprint_streak")?,
        depends_on: parse_strings("tasks.depends_on", &row.try_get::<String, _>("depends_on")?)?,
        requires: parse_strings("tasks.requires", &row.try_get::<String, _>("requires")?)?,
        budget: TaskBudget {
            tokens: row.try_get("budget_tokens")?,
            cost_micros: row.try_get("budget_cost_micros")?,
            steps: row.try_get("budget_steps")?,
            wall_ms: row.try_get("budget_wall_ms")?,
        },
        used: TaskUsage {
            tokens: row.try_get("used_tokens")?,
            cost_micros: row.try_get("used_cost_micros")?,
            steps: row.try_get("used_steps")?,
            wall_ms: row.try_get("used_wall_ms")?,
        },
        finished_at: row.try_get("finished_at")?,
        gate_rejections: row.try_get("gate_rejections")?,
        plan_delta: crate::util::parse_json_opt("tasks.plan_delta", row.try_get("plan_delta")?)?,
    })
}
