//! The columns a completion or failure writes to its task, and how it
//! writes them.

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::AfterComplete;
use crate::tasks::{TaskRow, TaskState, task_columns, task_from_row};
use crate::util::{Sql, json_text};
use crate::{Dialect, Result};

/// The columns [`Next`] writes with their types (for reading them from
/// JSON), in the order of [`Next::values`] and [`Next::json`].
pub(super) const NEXT_COLUMNS: &str = "state text, stage text, stage_index bigint, attempts bigint, \
     high_water bigint, next_attempt_at bigint, finished_at bigint, last_error text, \
     last_fingerprint text, fingerprint_streak bigint, gate_rejections bigint, plan_delta text";

/// The names of [`NEXT_COLUMNS`].
pub(super) fn next_columns() -> impl Iterator<Item = &'static str> {
    NEXT_COLUMNS.split(", ").filter_map(|c| c.split(' ').next())
}

/// The columns a completion or failure writes, starting from the task as
/// it was; the lease is always cleared.
pub(super) struct Next {
    pub(super) state: TaskState,
    pub(super) stage: String,
    pub(super) stage_index: i64,
    pub(super) attempts: i64,
    pub(super) high_water: i64,
    pub(super) next_attempt_at: i64,
    pub(super) finished_at: Option<i64>,
    pub(super) last_error: Option<String>,
    pub(super) last_fingerprint: Option<String>,
    pub(super) fingerprint_streak: i64,
    pub(super) gate_rejections: i64,
    pub(super) plan_delta: Option<Value>,
}

impl Next {
    pub(super) fn from(task: &TaskRow) -> Next {
        Next {
            state: TaskState::Running,
            stage: task.stage.clone(),
            stage_index: task.stage_index,
            attempts: task.attempts,
            high_water: task.high_water,
            next_attempt_at: task.next_attempt_at,
            finished_at: task.finished_at,
            last_error: task.last_error.clone(),
            last_fingerprint: task.last_fingerprint.clone(),
            fingerprint_streak: task.fingerprint_streak,
            gate_rejections: task.gate_rejections,
            plan_delta: task.plan_delta.clone(),
        }
    }

    /// What a completion's decision writes. Reaching a stage beyond the
    /// furthest one so far is progress: the gate rejections and the plan
    /// delta are cleared.
    pub(super) fn after_complete(task: &TaskRow, decision: AfterComplete, now: i64) -> Next {
        let mut next = Next::from(task);
        match decision {
            AfterComplete::Next { stage, index } => {
                next.state = TaskState::Queued;
                next.stage = stage;
                next.stage_index = index;
                next.attempts = 0;
                next.high_water = task.high_water.max(index);
                next.next_attempt_at = now;
                if index > task.high_water {
                    next.gate_rejections = 0;
                    next.plan_delta = None;
                }
            }
            AfterComplete::Done => {
                next.state = TaskState::Done;
                next.finished_at = Some(now);
            }
            AfterComplete::WaitApproval { reason } => {
                next.state = TaskState::WaitingApproval;
                next.last_error = Some(reason);
            }
            AfterComplete::Back {
                stage,
                index,
                delta,
            } => {
                next.state = TaskState::Queued;
                next.stage = stage;
                next.stage_index = index;
                next.attempts = 0;
                next.next_attempt_at = now;
                next.gate_rejections = task.gate_rejections + 1;
                next.plan_delta = Some(delta);
            }
            AfterComplete::Block { reason } => {
                next.state = TaskState::Blocked;
                next.last_error = Some(reason);
            }
        }
        next
    }

    /// The placeholders of the values it writes, bound in `sql`, in the
    /// order of [`NEXT_COLUMNS`].
    pub(super) fn values(self, sql: &mut Sql) -> [String; 12] {
        [
            sql.arg(self.state.as_str()),
            sql.arg(self.stage),
            sql.arg(self.stage_index),
            sql.arg(self.attempts),
            sql.arg(self.high_water),
            sql.arg(self.next_attempt_at),
            sql.arg(self.finished_at),
            sql.arg(self.last_error),
            sql.arg(self.last_fingerprint),
            sql.arg(self.fingerprint_streak),
            sql.arg(self.gate_rejections),
            sql.arg(self.plan_delta.as_ref().map(json_text)),
        ]
    }

    /// The values it writes as a JSON object keyed by column, in the order
    /// of [`NEXT_COLUMNS`].
    pub(super) fn json(self) -> serde_json::Map<String, Value> {
        let values = [
            json!(self.state),
            json!(self.stage),
            json!(self.stage_index),
            json!(self.attempts),
            json!(self.high_water),
            json!(self.next_attempt_at),
            json!(self.finished_at),
            json!(self.last_error),
            json!(self.last_fingerprint),
            json!(self.fingerprint_streak),
            json!(self.gate_rejections),
            json!(self.plan_delta.as_ref().map(json_text)),
        ];
        next_columns().map(String::from).zip(values).collect()
    }

    /// `column = $n, ...` of the columns it writes, bound in `sql`.
    pub(super) fn assignments(self, sql: &mut Sql) -> String {
        next_columns()
            .zip(self.values(sql))
            .map(|(column, value)| format!("{column} = {value}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `task` as [`Next::write`] leaves it at `now`, the ended run having
    /// lasted `wall_ms`.
    pub(super) fn applied(&self, task: &TaskRow, wall_ms: i64, now: i64) -> TaskRow {
        let mut t = task.clone();
        t.state = self.state;
        t.stage = self.stage.clone();
        t.stage_index = self.stage_index;
        t.attempts = self.attempts;
        t.high_water = self.high_water;
        t.next_attempt_at = self.next_attempt_at;
        t.finished_at = self.finished_at;
        t.last_error = self.last_error.clone();
        t.last_fingerprint = self.last_fingerprint.clone();
        t.fingerprint_streak = self.fingerprint_streak;
        t.gate_rejections = self.gate_rejections;
        t.plan_delta = self.plan_delta.clone();
        t.used.wall_ms += wall_ms;
        t.lease_owner = None;
        t.lease_expires_at = None;
        t.lease_token = None;
        t.updated_at = now;
        t.last_event_at = now;
        t
    }

    /// Ends stage run `token` as `end` says and writes the task, adding
    /// the run's wall time to `used_wall_ms`: one statement on PostgreSQL
    /// (a data-modifying CTE), two on SQLite.
    pub(super) async fn write(
        self,
        conn: &mut AnyConnection,
        dialect: Dialect,
        id: &str,
        token: i64,
        end: RunEnd,
        now: i64,
    ) -> Result<TaskRow> {
        let mut sql = Sql::new("");
        let (token, at) = if matches!(end, RunEnd::None) {
            (String::new(), String::new())
        } else {
            (sql.arg(token), sql.arg(now))
        };
        let end_run = match end {
            RunEnd::Completed { output } => format!(
                "UPDATE stage_runs SET outcome = 'completed', ended_at = {at}, output = {} \
                 WHERE id = {token} RETURNING claimed_at",
                sql.arg(output)
            ),
            RunEnd::Failed { error, fingerprint } => format!(
                "UPDATE stage_runs SET outcome = 'failed', ended_at = {at}, error = {}, fingerprint = {} \
                 WHERE id = {token} RETURNING claimed_at",
                sql.arg(error),
                sql.arg(fingerprint)
            ),
            RunEnd::None => String::new(),
        };
        let wall = match dialect {
            _ if end_run.is_empty() => sql.arg(0i64),
            Dialect::Sqlite => {
                sql.push(&end_run);
                let claimed_at: i64 = sql
                    .build()?
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("claimed_at")?;
                sql = Sql::new("");
                sql.arg((now - claimed_at).max(0))
            }
            Dialect::Postgres => {
                sql.push(&format!("WITH ended AS ({end_run}) "));
                format!("COALESCE((SELECT GREATEST({at} - claimed_at, 0) FROM ended), 0)")
            }
        };
        let assignments = self.assignments(&mut sql);
        let now = sql.arg(now);
        let id = sql.arg(id);
        sql.push(&format!(
            "UPDATE tasks SET {assignments}, used_wall_ms = used_wall_ms + {wall}, lease_owner = NULL, \
             lease_expires_at = NULL, lease_token = NULL, updated_at = {now}, last_event_at = {now} \
             WHERE id = {id} RETURNING {}",
            task_columns!()
        ));
        let row = sql.build()?.fetch_one(conn).await?;
        task_from_row(&row)
    }
}

/// How a completion or failure ends its stage run (`None`: a decision on a
/// task that holds no lease).
pub(super) enum RunEnd {
    Completed { output: String },
    Failed { error: String, fingerprint: String },
    None,
}
