//! Completions (SPEC TS-4): under a lock, one by one or in batches, and the
//! decisions on tasks that wait for approval.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::{AnyConnection, AssertSqlSafe};

use super::next::{Next, RunEnd};
use super::{
    AfterComplete, Also, Completing, Completion, Fence, Written, fence, run_outcome, select_task,
};
use crate::gates::insert_gate_decision;
use crate::notify::pg_notify;
use crate::settings::{SettingsRow, settings_columns_of_s, settings_from_joined};
use crate::task_events::{NewEvent, append_events};
use crate::tasks::{TaskRow, task_columns_of, task_from_row};
use crate::util::json_text;
use crate::{Dialect, Error, Result, Store};

impl Store {
    /// Completes the stage of lease `token`: [`Store::complete_stage_with`]
    /// with nothing written besides.
    pub async fn complete_stage(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        output: &Value,
        now: i64,
        decide: &(dyn Fn(&TaskRow) -> AfterComplete + Send + Sync),
    ) -> Result<Completion> {
        let c = Completing {
            workspace,
            task_id,
            token,
            output,
            now,
            decision: None,
        };
        let (completion, _) = self
            .complete_stage_with(&c, &|t, _| decide(t), &|_| Also::default())
            .await?;
        Ok(completion)
    }

    /// Completes the stage of lease `c.token`. Atomically: checks the
    /// fence (current token, unexpired), lets `decide` choose what follows
    /// from the task as it is and the workspace's settings (`None` when it
    /// has none set), marks the stage run `completed` with `c.output`,
    /// clears the lease and applies the decision: `Next` queues the task at
    /// that stage with `attempts = 0` (and raises `high_water` when the
    /// index is beyond it), `Done` sets `done` and `finished_at`,
    /// `WaitApproval` sets `waiting_approval`. With it, in the same commit
    /// (one disk flush on PostgreSQL): the gates' `c.decision`, and what
    /// `also` asks for given the task as it ends up (its events; a
    /// notification, sent on commit). Completing again with the same token
    /// returns `AlreadyCompleted` and changes nothing.
    ///
    /// On PostgreSQL a completion without a decision takes two statements
    /// and no explicit transaction (see [`Store::complete_stages`]); one
    /// with a decision, or whose task changed between them, takes one
    /// transaction that locks the task first. `decide` and `also` may be
    /// called twice; they must not act.
    ///
    /// The second value is what was written besides ([`Written`]): empty
    /// when the completion was refused.
    ///
    /// The stage run's wall time (now - claimed) is added to the task's
    /// `used.wall_ms`; `WaitApproval` keeps its reason in `last_error`.
    /// `Error::NotFound` when the workspace has no such task.
    pub async fn complete_stage_with(
        &self,
        c: &Completing<'_>,
        decide: &(dyn Fn(&TaskRow, Option<&SettingsRow>) -> AfterComplete + Send + Sync),
        also: &(dyn Fn(&TaskRow) -> Also + Send + Sync),
    ) -> Result<(Completion, Written)> {
        if self.dialect == Dialect::Postgres && c.decision.is_none() {
            let mut done = self
                .complete_unlocked(std::slice::from_ref(c), &|_, t, s| decide(t, s), &|_, t| {
                    also(t)
                })
                .await?;
            if let Some(done) = done.remove(&0) {
                return Ok(done);
            }
        }
        self.complete_locked(c, decide, also).await
    }

    /// [`Store::complete_stage_with`] for each of `batch`, in its order;
    /// `decide` and `also` are told which one they decide for (its index).
    /// On PostgreSQL the completions without a decision are read in one
    /// statement and written in another, however many there are (one
    /// commit); the rest, a task that came twice, and a completion whose
    /// task changed between the two statements, are completed one by one
    /// as [`Store::complete_stage_with`] would. Each completion has its own
    /// outcome: a refused token or a missing task fails only its own.
    pub async fn complete_stages(
        &self,
        batch: &[Completing<'_>],
        decide: &(dyn Fn(usize, &TaskRow, Option<&SettingsRow>) -> AfterComplete + Send + Sync),
        also: &(dyn Fn(usize, &TaskRow) -> Also + Send + Sync),
    ) -> Result<Vec<Result<(Completion, Written)>>> {
        let mut done = if self.dialect == Dialect::Postgres {
            self.complete_unlocked(batch, decide, also).await?
        } else {
            BTreeMap::new()
        };
        let mut out = Vec::with_capacity(batch.len());
        for (i, c) in batch.iter().enumerate() {
            out.push(match done.remove(&i) {
                Some(d) => Ok(d),
                None => {
                    self.complete_locked(c, &|t, s| decide(i, t, s), &|t| also(i, t))
                        .await
                }
            });
        }
        Ok(out)
    }

    /// A completion in one transaction that locks the task first.
    async fn complete_locked(
        &self,
        c: &Completing<'_>,
        decide: &(dyn Fn(&TaskRow, Option<&SettingsRow>) -> AfterComplete + Send + Sync),
        also: &(dyn Fn(&TaskRow) -> Also + Send + Sync),
    ) -> Result<(Completion, Written)> {
        let mut tx = self.begin_write().await?;
        let (task, settings) =
            select_task_and_settings(&mut tx, self.dialect, c.workspace, c.task_id).await?;
        // A run that has an outcome is never the current lease (every path
        // that ends a run clears or replaces the token), so a fence that
        // holds means the run is open; only a refused token needs to know
        // whether it already completed. Reading the run after the row lock
        // also sees what a concurrent completion committed.
        if let Some(refused) = fence(&task, c.token, c.now) {
            let outcome = run_outcome(&mut tx, c.task_id, c.token).await?;
            tx.rollback().await?;
            return Ok((
                refused_completion(task, refused, outcome),
                Written::default(),
            ));
        }
        let next = Next::after_complete(&task, decide(&task, settings.as_ref()), c.now);
        let end = RunEnd::Completed {
            output: json_text(c.output),
        };
        let after = next
            .write(&mut tx, self.dialect, &task.id, c.token, end, c.now)
            .await?;
        let mut windows = Vec::new();
        if let Some(j) = c.decision {
            windows = insert_gate_decision(&mut tx, self.dialect, j.decision, j.verdicts, j.window)
                .await?;
        }
        let also = also(&after);
        self.write_also(&mut tx, &after, &also, c.now).await?;
        tx.commit().await?;
        Ok((Completion::Completed(after), Written { also, windows }))
    }

    /// Writes what a transition asked for inside its transaction.
    async fn write_also(
        &self,
        conn: &mut AnyConnection,
        task: &TaskRow,
        also: &Also,
        now: i64,
    ) -> Result<()> {
        let events: Vec<(&str, &NewEvent)> =
            also.events.iter().map(|e| (task.id.as_str(), e)).collect();
        let notify = also
            .notify
            .as_ref()
            .filter(|_| self.dialect == Dialect::Postgres)
            .map(|(c, p)| (c.as_str(), p.as_str()));
        if !events.is_empty() {
            // The notification goes with the events' statement.
            append_events(
                &mut *conn,
                self.dialect,
                &task.workspace,
                &events,
                now,
                notify,
            )
            .await?;
        } else if let Some((channel, payload)) = notify {
            pg_notify(&mut *conn, channel, payload).await?;
        }
        Ok(())
    }

    /// Decides a task that waits for approval (SPEC QG-2, QG-3): in one
    /// transaction, lets `decide` choose from the task as it is and applies
    /// the decision as a completion would (`WaitApproval` leaves it
    /// waiting with the new reason). `Error::NotFound` when the workspace
    /// has no such task; `Error::Conflict` when it does not wait for
    /// approval.
    pub async fn decide_waiting(
        &self,
        workspace: &str,
        task_id: &str,
        now: i64,
        decide: &(dyn Fn(&TaskRow) -> AfterComplete + Send + Sync),
    ) -> Result<TaskRow> {
        let mut tx = self.begin_write().await?;
        let task = select_task(&mut tx, self.dialect, workspace, task_id, true).await?;
        if task.state != crate::tasks::TaskState::WaitingApproval {
            tx.rollback().await?;
            return Err(Error::Conflict(format!(
                "task {task_id} is {}, not waiting_approval",
                task.state
            )));
        }
        let next = Next::after_complete(&task, decide(&task), now);
        let after = next
            .write(&mut tx, self.dialect, &task.id, 0, RunEnd::None, now)
            .await?;
        tx.commit().await?;
        Ok(after)
    }
}

/// The task with its workspace's settings (`None` when none are set), the
/// task locked until commit on PostgreSQL (SQLite's BEGIN IMMEDIATE holds
/// the write lock already). `Error::NotFound` when the workspace has no
/// such task.
async fn select_task_and_settings(
    conn: &mut AnyConnection,
    dialect: Dialect,
    workspace: &str,
    id: &str,
) -> Result<(TaskRow, Option<SettingsRow>)> {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let [sqlite, postgres] = SQL.get_or_init(|| {
        let select = format!(
            "SELECT {}, {} FROM tasks t LEFT JOIN workspace_settings s ON s.workspace = t.workspace \
             WHERE t.workspace = $1 AND t.id = $2",
            task_columns_of("t"),
            settings_columns_of_s!()
        );
        [select.clone(), format!("{select} FOR UPDATE OF t")]
    });
    let sql = match dialect {
        Dialect::Sqlite => sqlite,
        Dialect::Postgres => postgres,
    };
    let row = sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(workspace)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("task \"{id}\"")))?;
    Ok((task_from_row(&row)?, settings_from_joined(&row)?))
}

/// A completion refused by `fence`: `AlreadyCompleted` when the token's
/// run (`outcome`) completed, else `Fenced`.
pub(super) fn refused_completion(
    task: TaskRow,
    fence: Fence,
    outcome: Option<String>,
) -> Completion {
    if outcome.as_deref() == Some("completed") {
        Completion::AlreadyCompleted(task)
    } else {
        Completion::Fenced(fence)
    }
}
