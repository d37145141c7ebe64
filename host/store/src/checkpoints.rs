//! `checkpoints`: agent state blobs, versioned, each with its SHA-256
//! (SPEC TS-9).

use sqlx::Row;

use crate::util::clamp_limit;
use crate::{Dialect, Result, Store};

/// One checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRow {
    /// Workspace.
    pub workspace: String,
    /// The agent.
    pub agent_id: String,
    /// 1, 2, 3, ... per agent.
    pub version: i64,
    /// Hex SHA-256 of `data` as it was written.
    pub sha256: String,
    /// The blob.
    pub data: Vec<u8>,
    /// When.
    pub created_at: i64,
}

/// What [`Store::put_checkpoint`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutCheckpoint {
    /// Stored as this version.
    Stored(i64),
    /// Nothing stored: the agent had no checkpoint yet and the workspace
    /// already has checkpoints of this many agents, the cap.
    TooManyAgents(i64),
}

impl Store {
    /// Stores a new version (max + 1) atomically; returns it. The caller
    /// computes `sha256`. An agent without checkpoints is refused when
    /// `max_agents` agents of the workspace have some already.
    pub async fn put_checkpoint(
        &self,
        workspace: &str,
        agent_id: &str,
        sha256: &str,
        data: &[u8],
        now: i64,
        max_agents: i64,
    ) -> Result<PutCheckpoint> {
        let mut tx = self.begin_write().await?;
        // Reading the max and inserting must not interleave with another
        // put for the same agent. SQLite holds the write lock since BEGIN
        // IMMEDIATE; PostgreSQL takes a transaction-scoped advisory lock on
        // the (workspace, agent) pair, as `kv_set` does.
        if self.dialect == Dialect::Postgres {
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended('warden.checkpoints/' || $1 || '/' || $2, 0))",
            )
            .bind(workspace)
            .bind(agent_id)
            .execute(&mut *tx)
            .await?;
        }
        let known: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM checkpoints WHERE workspace = $1 AND agent_id = $2 LIMIT 1",
        )
        .bind(workspace)
        .bind(agent_id)
        .fetch_optional(&mut *tx)
        .await?;
        if known.is_none() {
            // A new agent: count the workspace's agents under a lock of the
            // workspace, so that two new agents at once cannot both take
            // the last place (SQLite's write lock already serializes).
            // Taken after the agent's lock and never before it: no cycle.
            if self.dialect == Dialect::Postgres {
                sqlx::query(
                    "SELECT pg_advisory_xact_lock(hashtextextended('warden.checkpoints/' || $1, 0))",
                )
                .bind(workspace)
                .execute(&mut *tx)
                .await?;
            }
            let agents: i64 = sqlx::query_scalar(
                "SELECT COUNT(DISTINCT agent_id) FROM checkpoints WHERE workspace = $1",
            )
            .bind(workspace)
            .fetch_one(&mut *tx)
            .await?;
            if agents >= max_agents {
                tx.rollback().await?;
                return Ok(PutCheckpoint::TooManyAgents(agents));
            }
        }
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO checkpoints (workspace, agent_id, version, sha256, data, created_at) \
             SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5 FROM checkpoints \
             WHERE workspace = $1 AND agent_id = $2 RETURNING version",
        )
        .bind(workspace)
        .bind(agent_id)
        .bind(sha256)
        .bind(data)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PutCheckpoint::Stored(version))
    }

    /// Deletes every checkpoint of an agent (freeing its place under the
    /// workspace's cap); returns how many versions were deleted.
    pub async fn delete_checkpoints(&self, workspace: &str, agent_id: &str) -> Result<i64> {
        let done = sqlx::query("DELETE FROM checkpoints WHERE workspace = $1 AND agent_id = $2")
            .bind(workspace)
            .bind(agent_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() as i64)
    }

    /// The newest `limit` versions, newest first, with their data.
    ///
    /// A `limit` of 0 or less means 10; at most 100 are returned.
    pub async fn list_checkpoints(
        &self,
        workspace: &str,
        agent_id: &str,
        limit: i64,
    ) -> Result<Vec<CheckpointRow>> {
        let rows = sqlx::query(
            "SELECT workspace, agent_id, version, sha256, data, created_at FROM checkpoints \
             WHERE workspace = $1 AND agent_id = $2 ORDER BY version DESC LIMIT $3",
        )
        .bind(workspace)
        .bind(agent_id)
        .bind(clamp_limit(limit, 10, 100))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CheckpointRow {
                    workspace: row.try_get("workspace")?,
                    agent_id: row.try_get("agent_id")?,
                    version: row.try_get("version")?,
                    sha256: row.try_get("sha256")?,
                    data: row.try_get("data")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Keeps the newest `keep` versions of the agent, deletes older ones;
    /// returns how many were deleted.
    ///
    /// A `keep` below 0 counts as 0 (everything is deleted).
    pub async fn prune_checkpoints(
        &self,
        workspace: &str,
        agent_id: &str,
        keep: i64,
    ) -> Result<i64> {
        let done = sqlx::query(
            "DELETE FROM checkpoints WHERE workspace = $1 AND agent_id = $2 AND version NOT IN \
             (SELECT version FROM checkpoints WHERE workspace = $1 AND agent_id = $2 \
              ORDER BY version DESC LIMIT $3)",
        )
        .bind(workspace)
        .bind(agent_id)
        .bind(keep.max(0))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() as i64)
    }
}
