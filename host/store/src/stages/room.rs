//! The caps on concurrent leases (SPEC TS-3), counted inside a claim's
//! transaction.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::ClaimRequest;
use super::candidates::DEPS_DONE;
use crate::{Dialect, Result, Store};

impl Store {
    /// How many leases this claim may take, counted inside its
    /// transaction.
    ///
    /// Counting and claiming must not interleave with another claim that
    /// counts the same leases, or both could take the last free one.
    /// SQLite's BEGIN IMMEDIATE excludes other writers already; PostgreSQL
    /// takes a transaction-scoped advisory lock, on all claims when a
    /// global cap is set (every host is expected to pass the same one),
    /// else on the workspace's claims. Without caps nothing is counted and
    /// claims run in parallel, kept apart by SKIP LOCKED.
    pub(super) async fn lease_room(
        &self,
        conn: &mut AnyConnection,
        req: &ClaimRequest,
        max: i64,
    ) -> Result<Room> {
        let limits = &req.limits;
        let per_workspace = limits.workspace.is_some()
            || !limits.per_stage.is_empty()
            || limits.fair_share.is_some();
        let mut room = Room {
            total: max,
            stages: BTreeMap::new(),
        };
        if limits.global.is_none() && !per_workspace {
            return Ok(room);
        }
        if self.dialect == Dialect::Postgres {
            let key = if limits.global.is_some() {
                "warden.claims".to_string()
            } else {
                format!("warden.claims/{}", req.workspace)
            };
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut *conn)
                .await?;
        }
        if let Some(cap) = limits.global {
            let held: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM tasks WHERE state = 'running' AND lease_expires_at >= $1",
            )
            .bind(req.now)
            .fetch_one(&mut *conn)
            .await?;
            room.total = room.total.min(cap - held);
        }
        if per_workspace {
            let rows = sqlx::query(
                "SELECT stage, CAST(COUNT(*) AS BIGINT) AS n FROM tasks \
                 WHERE workspace = $1 AND state = 'running' AND lease_expires_at >= $2 GROUP BY stage",
            )
            .bind(&req.workspace)
            .bind(req.now)
            .fetch_all(&mut *conn)
            .await?;
            let mut held = BTreeMap::new();
            for row in &rows {
                held.insert(
                    row.try_get::<String, _>("stage")?,
                    row.try_get::<i64, _>("n")?,
                );
            }
            let workspace_held: i64 = held.values().sum();
            if let Some(cap) = limits.workspace {
                room.total = room.total.min(cap - workspace_held);
            }
            for (stage, cap) in &limits.per_stage {
                let taken = held.get(stage).copied().unwrap_or(0);
                room.stages.insert(stage.clone(), cap - taken);
            }
            if let Some(share) = limits.fair_share
                && room.total > 0
                && workspace_held + room.total > share
                && others_waiting(conn, &req.workspace, req.now).await?
            {
                room.total = room.total.min(share - workspace_held);
            }
        }
        room.total = room.total.max(0);
        Ok(room)
    }
}

/// What a claim may still take: in total, and per capped stage.
#[derive(Default)]
pub(super) struct Room {
    pub(super) total: i64,
    pub(super) stages: BTreeMap<String, i64>,
}

impl Room {
    /// Capped stages with no room left.
    pub(super) fn full_stages(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter(|(_, left)| **left <= 0)
            .map(|(stage, _)| stage.clone())
            .collect()
    }

    /// Takes room for one stage run of `stage`; false when its cap is full.
    pub(super) fn take(&mut self, stage: &str) -> bool {
        match self.stages.get_mut(stage) {
            Some(left) if *left <= 0 => false,
            Some(left) => {
                *left -= 1;
                true
            }
            None => true,
        }
    }
}

/// True when another workspace has a queued task that is claimable now
/// (breakers aside), for the fair share.
async fn others_waiting(conn: &mut AnyConnection, workspace: &str, now: i64) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT CAST(1 AS BIGINT) FROM tasks t WHERE t.workspace <> $1 AND t.state = 'queued' \
         AND t.next_attempt_at <= $2{DEPS_DONE} LIMIT 1"
    )))
    .bind(workspace)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}
