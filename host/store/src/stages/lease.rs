//! Leases held: heartbeats, and the leases that expire or that a host
//! gives back.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Fence, fence, select_task};
use crate::tasks::{TaskRow, task_columns, task_from_row};
use crate::util::Sql;
use crate::workers::upsert_worker;
use crate::{Dialect, Result, Store};

/// Expired leases requeued per transaction by `expire_leases`.
const EXPIRE_BATCH: i64 = 500;

impl Store {
    /// Extends a lease to `now + lease_ms` (also the worker's heartbeat and
    /// the task's `last_event_at`).
    ///
    /// `Error::NotFound` when the workspace has no such task; `Err(Fence)`
    /// inside `Ok` when the token is not the current, unexpired lease
    /// (nothing changes then).
    pub async fn heartbeat(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        lease_ms: i64,
        now: i64,
    ) -> Result<Result<TaskRow, Fence>> {
        let expires_at = now.saturating_add(lease_ms.max(1));
        let mut tx = self.begin_write().await?;
        let extended = sqlx::query(concat!(
            "UPDATE tasks SET lease_expires_at = $5, updated_at = $4, last_event_at = $4 \
             WHERE workspace = $1 AND id = $2 AND state = 'running' AND lease_token = $3 \
             AND lease_expires_at >= $4 RETURNING ",
            task_columns!()
        ))
        .bind(workspace)
        .bind(task_id)
        .bind(token)
        .bind(now)
        .bind(expires_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = extended else {
            let task = select_task(&mut tx, self.dialect, workspace, task_id, false).await?;
            tx.rollback().await?;
            return Ok(Err(fence(&task, token, now).unwrap_or(Fence::Stale {
                token,
                current: task.lease_token,
            })));
        };
        let task = task_from_row(&row)?;
        sqlx::query("UPDATE stage_runs SET expires_at = $2 WHERE id = $1")
            .bind(token)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        if let Some(worker) = &task.lease_owner {
            upsert_worker(&mut tx, workspace, worker, now).await?;
        }
        tx.commit().await?;
        Ok(Ok(task))
    }

    /// Requeues every `running` task whose lease expired before `now`, in
    /// every workspace (their stage runs become `expired`); returns them as
    /// they are after. For the sweeper loop.
    ///
    /// With nothing expired it costs one indexed read and no transaction.
    /// On PostgreSQL a task locked by a concurrent claim or completion is
    /// left to it (or to the next sweep).
    pub async fn expire_leases(&self, now: i64) -> Result<Vec<TaskRow>> {
        let any: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM tasks WHERE state = 'running' AND lease_expires_at < $1 LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let select = match self.dialect {
            Dialect::Sqlite => {
                "SELECT id, lease_token FROM tasks WHERE state = 'running' AND lease_expires_at < $1 \
                 ORDER BY lease_expires_at LIMIT $2"
            }
            Dialect::Postgres => {
                "SELECT id, lease_token FROM tasks WHERE state = 'running' AND lease_expires_at < $1 \
                 ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            }
        };
        let mut expired = Vec::new();
        loop {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(select)
                .bind(now)
                .bind(EXPIRE_BATCH)
                .fetch_all(&mut *tx)
                .await?;
            if rows.is_empty() {
                tx.commit().await?;
                break;
            }
            let batch = requeue(&mut tx, &rows, "expired", now, "").await?;
            tx.commit().await?;
            expired.extend(batch);
            if (rows.len() as i64) < EXPIRE_BATCH {
                break;
            }
        }
        Ok(expired)
    }

    /// Gives back the leases `tokens` that are still current: each task
    /// whose lease is one of them and still `running` is requeued (its
    /// stage run ends `released`), as if the lease had expired now.
    /// Returns the tasks as they are after. For a host's graceful shutdown
    /// (SPEC RL-5): the leases it granted go back to the queue at once
    /// instead of when they expire. A token that was completed, failed,
    /// expired or claimed again meanwhile is left alone (the fence).
    pub async fn release_leases(&self, tokens: &[i64], now: i64) -> Result<Vec<TaskRow>> {
        let mut released = Vec::new();
        for chunk in tokens.chunks(EXPIRE_BATCH as usize) {
            let mut tx = self.begin_write().await?;
            let mut sql = Sql::new(
                "SELECT id, lease_token FROM tasks WHERE state = 'running' AND lease_token IN (",
            );
            let list = sql.args(chunk.iter().copied());
            sql.push(&list);
            sql.push(")");
            if self.dialect == Dialect::Postgres {
                sql.push(" FOR UPDATE");
            }
            let rows = sql.build()?.fetch_all(&mut *tx).await?;
            if rows.is_empty() {
                tx.commit().await?;
                continue;
            }
            let batch = requeue(&mut tx, &rows, "released", now, " AND state = 'running'").await?;
            tx.commit().await?;
            released.extend(batch);
        }
        Ok(released)
    }
}

/// Requeues the tasks of `rows` (each an `id` and its `lease_token`, read
/// in `conn`'s transaction) for `expire_leases` and `release_leases`:
/// their open stage runs end with `outcome`, their leases are cleared and
/// they are `queued` again, where `filter` (an SQL condition starting
/// with ` AND`, or empty) still holds. Returns them as they are after,
/// by id.
async fn requeue(
    conn: &mut AnyConnection,
    rows: &[AnyRow],
    outcome: &str,
    now: i64,
    filter: &str,
) -> Result<Vec<TaskRow>> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut tokens = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(row.try_get::<String, _>("id")?);
        if let Some(token) = row.try_get::<Option<i64>, _>("lease_token")? {
            tokens.push(token);
        }
    }
    end_open_runs(conn, &tokens, outcome, now).await?;
    let mut sql = Sql::new(
        "UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
         lease_token = NULL, updated_at = ",
    );
    let at = sql.arg(now);
    let list = sql.args(ids.iter().map(String::as_str));
    sql.push(&format!(
        "{at}, last_event_at = {at} WHERE id IN ({list}){filter} RETURNING {}",
        task_columns!()
    ));
    let rows = sql.build()?.fetch_all(&mut *conn).await?;
    let mut tasks = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tasks)
}

/// Ends the open stage runs among `tokens` with `outcome`.
pub(super) async fn end_open_runs(
    conn: &mut AnyConnection,
    tokens: &[i64],
    outcome: &str,
    now: i64,
) -> Result<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("UPDATE stage_runs SET outcome = ");
    let outcome = sql.arg(outcome);
    let at = sql.arg(now);
    let list = sql.args(tokens.iter().copied());
    sql.push(&format!(
        "{outcome}, ended_at = {at} WHERE id IN ({list}) AND outcome IS NULL"
    ));
    sql.build()?.execute(conn).await?;
    Ok(())
}
