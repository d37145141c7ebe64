//! Operators' actions on a task: cancel it, list the dead letters, redrive
//! one.

use super::select_task;
use crate::tasks::{TaskRow, end_open_run, task_columns, task_from_row};
use crate::util::{clamp_limit, is_unique_violation};
use crate::{Error, Result, Store};

impl Store {
    /// Cancels a task that is not finished: state `cancelled`, lease cleared,
    /// its open stage run `cancelled`. `Error::Conflict` when it is done,
    /// dead or cancelled already.
    ///
    /// Also sets `finished_at`. `Error::NotFound` when the workspace has no
    /// such task.
    pub async fn cancel_task(&self, workspace: &str, task_id: &str, now: i64) -> Result<TaskRow> {
        let mut tx = self.begin_write().await?;
        let task = select_task(&mut tx, self.dialect, workspace, task_id, true).await?;
        if task.state.is_finished() {
            return Err(Error::Conflict(format!(
                "task \"{task_id}\" is {} and cannot be cancelled",
                task.state
            )));
        }
        if let Some(token) = task.lease_token {
            end_open_run(&mut tx, token, "cancelled", now).await?;
        }
        let row = sqlx::query(concat!(
            "UPDATE tasks SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, \
             lease_token = NULL, finished_at = $2, updated_at = $2, last_event_at = $2 \
             WHERE id = $1 RETURNING ",
            task_columns!()
        ))
        .bind(task_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let after = task_from_row(&row)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Tasks in the dead-letter queue (state `dead`), newest first.
    ///
    /// Newest by `finished_at` (when it died), then id. A `limit` of 0 or
    /// less means 100; at most 500 are returned.
    pub async fn list_dead_letters(&self, workspace: &str, limit: i64) -> Result<Vec<TaskRow>> {
        sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE workspace = $1 AND state = 'dead' \
              ORDER BY finished_at DESC, id DESC LIMIT $2"
        ))
        .bind(workspace)
        .bind(clamp_limit(limit, 100, 500))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(task_from_row)
        .collect()
    }

    /// `dead → queued` at the same stage, attempts 0, `fingerprint_streak`
    /// 0, `next_attempt_at` = now. `Error::Conflict` when not dead.
    ///
    /// `last_error` is kept and `finished_at` cleared. `Error::Conflict`
    /// too when, meanwhile, another unfinished task took the dedup key;
    /// `Error::NotFound` when the workspace has no such task.
    pub async fn redrive(&self, workspace: &str, task_id: &str, now: i64) -> Result<TaskRow> {
        let mut tx = self.begin_write().await?;
        let task = select_task(&mut tx, self.dialect, workspace, task_id, true).await?;
        if task.state != crate::tasks::TaskState::Dead {
            return Err(Error::Conflict(format!(
                "task \"{task_id}\" is {} and cannot be redriven (only dead tasks can)",
                task.state
            )));
        }
        let updated = sqlx::query(concat!(
            "UPDATE tasks SET state = 'queued', attempts = 0, fingerprint_streak = 0, \
             next_attempt_at = $2, finished_at = NULL, updated_at = $2, last_event_at = $2 \
             WHERE id = $1 RETURNING ",
            task_columns!()
        ))
        .bind(task_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        match updated {
            Ok(row) => {
                let after = task_from_row(&row)?;
                tx.commit().await?;
                Ok(after)
            }
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                let key = task.dedup_key.unwrap_or_default();
                let holder: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM tasks WHERE workspace = $1 AND dedup_key = $2 \
                     AND state NOT IN ('done', 'cancelled', 'dead') ORDER BY created_at, id LIMIT 1",
                )
                .bind(workspace)
                .bind(&key)
                .fetch_optional(&self.pool)
                .await?;
                let holder = holder.map(|id| format!(" \"{id}\"")).unwrap_or_default();
                Err(Error::Conflict(format!(
                    "task \"{task_id}\" cannot be redriven: unfinished task{holder} holds its dedup key \
                     \"{key}\" (finish or cancel that one first)"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }
}
