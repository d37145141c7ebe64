//! `workers`: the agents that claim stages, and their heartbeats.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::{Result, Store};

/// A worker of a workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRow {
    /// Workspace.
    pub workspace: String,
    /// The worker's own id.
    pub id: String,
    /// First seen.
    pub first_seen_at: i64,
    /// Last claim, heartbeat or report.
    pub last_heartbeat_at: i64,
    /// Leases it holds now.
    pub active_leases: i64,
}

impl Store {
    /// Records that the worker is alive (creates it on first sight).
    pub async fn worker_heartbeat(&self, workspace: &str, worker_id: &str, now: i64) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        upsert_worker(&mut conn, workspace, worker_id, now).await
    }

    /// Workers of a workspace seen since `since`, with their current lease
    /// counts, most recent first.
    ///
    /// `active_leases` counts the `running` tasks it holds the lease of
    /// (including a lease that expired and is not swept yet).
    pub async fn list_workers(&self, workspace: &str, since: i64) -> Result<Vec<WorkerRow>> {
        sqlx::query(
            "SELECT w.workspace, w.id, w.first_seen_at, w.last_heartbeat_at, \
             (SELECT CAST(COUNT(*) AS BIGINT) FROM tasks t \
              WHERE t.workspace = w.workspace AND t.state = 'running' AND t.lease_owner = w.id) AS active_leases \
             FROM workers w WHERE w.workspace = $1 AND w.last_heartbeat_at >= $2 \
             ORDER BY w.last_heartbeat_at DESC, w.id",
        )
        .bind(workspace)
        .bind(since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(worker_from_row)
        .collect()
    }
}

/// Creates the worker or moves its heartbeat forward (never back), on
/// `conn` (a pooled connection or an open transaction, so that claims and
/// heartbeats record it atomically).
pub(crate) async fn upsert_worker(
    conn: &mut AnyConnection,
    workspace: &str,
    worker_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(AssertSqlSafe(upsert_worker_sql("$1", "$2", "$3")))
        .bind(workspace)
        .bind(worker_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// The statement of [`upsert_worker`] with the given placeholders, for
/// statements that embed it.
pub(crate) fn upsert_worker_sql(workspace: &str, worker_id: &str, now: &str) -> String {
    format!(
        "INSERT INTO workers (workspace, id, first_seen_at, last_heartbeat_at) \
         VALUES ({workspace}, {worker_id}, {now}, {now}) \
         ON CONFLICT (workspace, id) DO UPDATE SET last_heartbeat_at = \
         CASE WHEN excluded.last_heartbeat_at > workers.last_heartbeat_at \
         THEN excluded.last_heartbeat_at ELSE workers.last_heartbeat_at END"
    )
}

fn worker_from_row(row: &AnyRow) -> Result<WorkerRow> {
    Ok(WorkerRow {
        workspace: row.try_get("workspace")?,
        id: row.try_get("id")?,
        first_seen_at: row.try_get("first_seen_at")?,
        last_heartbeat_at: row.try_get("last_heartbeat_at")?,
        active_leases: row.try_get("active_leases")?,
    })
}
