//! `task_events`: what happened to each task, in order (SPEC OB-3 contract:
//! `status`, `tool_start`, `tool_result`, `token`, `budget`, `stop_reason`,
//! `guardrails`).

use serde_json::Value;

use sqlx::Row;

use crate::util::{clamp_limit, json_text, parse_json};
use crate::{Error, Result, Store};

/// One event.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskEventRow {
    /// The task.
    pub task_id: String,
    /// Its workspace.
    pub workspace: String,
    /// Order within the task, from 1.
    pub seq: i64,
    /// The kind.
    pub kind: String,
    /// The body.
    pub data: Value,
    /// When.
    pub at: i64,
}

impl Store {
    /// Appends an event to a task of the workspace (next `seq`, assigned
    /// atomically) and sets the task's `last_event_at`; returns the seq.
    /// `Error::NotFound` for no such task.
    pub async fn add_task_event(
        &self,
        workspace: &str,
        task_id: &str,
        kind: &str,
        data: &Value,
        now: i64,
    ) -> Result<i64> {
        if self.dialect == crate::Dialect::Postgres {
            // One statement, one round trip: the update locks the task's
            // row until the statement commits, so numbers never collide.
            let seq: Option<i64> = sqlx::query_scalar(
                "WITH s AS (UPDATE tasks SET event_seq = event_seq + 1, last_event_at = $3 \
                 WHERE workspace = $1 AND id = $2 RETURNING event_seq) \
                 INSERT INTO task_events (task_id, seq, workspace, kind, data, at) \
                 SELECT $2, event_seq, $1, $4, $5, $3 FROM s RETURNING seq",
            )
            .bind(workspace)
            .bind(task_id)
            .bind(now)
            .bind(kind)
            .bind(json_text(data))
            .fetch_optional(&self.pool)
            .await?;
            return seq.ok_or_else(|| Error::NotFound(format!("task \"{task_id}\"")));
        }
        let mut tx = self.begin_write().await?;
        // The task's counter hands out the numbers: the update holds the
        // write lock until commit.
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE tasks SET event_seq = event_seq + 1, last_event_at = $3 \
             WHERE workspace = $1 AND id = $2 RETURNING event_seq",
        )
        .bind(workspace)
        .bind(task_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(seq) = seq else {
            return Err(Error::NotFound(format!("task \"{task_id}\"")));
        };
        sqlx::query(
            "INSERT INTO task_events (task_id, seq, workspace, kind, data, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(task_id)
        .bind(seq)
        .bind(workspace)
        .bind(kind)
        .bind(json_text(data))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Events of a task with `seq > after`, in order, at most `limit`
    /// (capped at 1000).
    ///
    /// A `limit` of 0 or less means 100.
    pub async fn list_task_events(
        &self,
        workspace: &str,
        task_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TaskEventRow>> {
        let rows = sqlx::query(
            "SELECT task_id, workspace, seq, kind, data, at FROM task_events \
             WHERE task_id = $1 AND workspace = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(task_id)
        .bind(workspace)
        .bind(after)
        .bind(clamp_limit(limit, 100, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TaskEventRow {
                    task_id: row.try_get("task_id")?,
                    workspace: row.try_get("workspace")?,
                    seq: row.try_get("seq")?,
                    kind: row.try_get("kind")?,
                    data: parse_json("task_events.data", &row.try_get::<String, _>("data")?)?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}
