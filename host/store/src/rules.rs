//! What the alert rules evaluate (SPEC AL-1): failures, fingerprints and
//! gate verdicts of a workspace over a window, straight from `stage_runs`
//! and `gate_verdicts`.

use sqlx::Row;

use crate::util::Sql;
use crate::{Result, Store};

/// A failure fingerprint first seen in the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFingerprint {
    /// The fingerprint.
    pub fingerprint: String,
    /// When first seen.
    pub first_at: i64,
    /// Failures with it since.
    pub count: i64,
    /// The stage it failed at first.
    pub stage: String,
    /// Its first error, for the summary.
    pub error: Option<String>,
}

impl Store {
    /// Stage failures of the workspace that ended at or after `since`.
    pub async fn count_stage_failures(&self, workspace: &str, since: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM stage_runs WHERE workspace = $1 AND ended_at >= $2 \
             AND outcome = 'failed'",
        )
        .bind(workspace)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Tasks of the workspace whose last ended stage run failed at one of
    /// `stages`, at or after `since` (they are failing there now).
    pub async fn tasks_failing_at(
        &self,
        workspace: &str,
        stages: &[String],
        since: i64,
    ) -> Result<Vec<String>> {
        if stages.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new("SELECT r.task_id FROM stage_runs r WHERE r.workspace = ");
        let ws = sql.arg(workspace.to_string());
        let since = sql.arg(since);
        let list = sql.args(stages.iter().cloned());
        sql.push(&format!(
            "{ws} AND r.outcome = 'failed' AND r.ended_at >= {since} AND r.stage IN ({list}) \
             AND r.id = (SELECT MAX(r2.id) FROM stage_runs r2 WHERE r2.task_id = r.task_id \
             AND r2.outcome IS NOT NULL) \
             AND EXISTS (SELECT 1 FROM tasks t WHERE t.id = r.task_id \
             AND t.state NOT IN ('done', 'cancelled')) ORDER BY r.task_id"
        ));
        let rows = sql.build()?.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("task_id").map_err(Into::into))
            .collect()
    }

    /// Failure fingerprints of the workspace never seen before `since` and
    /// seen since.
    pub async fn new_fingerprints(
        &self,
        workspace: &str,
        since: i64,
    ) -> Result<Vec<NewFingerprint>> {
        let rows = sqlx::query(
            "SELECT r.fingerprint AS fingerprint, MIN(r.ended_at) AS first_at, COUNT(*) AS n, \
             MIN(r.id) AS first_id FROM stage_runs r \
             WHERE r.workspace = $1 AND r.outcome = 'failed' AND r.fingerprint IS NOT NULL \
             AND r.ended_at >= $2 \
             AND NOT EXISTS (SELECT 1 FROM stage_runs o WHERE o.workspace = r.workspace \
               AND o.fingerprint = r.fingerprint AND o.ended_at < $2) \
             GROUP BY r.fingerprint ORDER BY first_at LIMIT 100",
        )
        .bind(workspace)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let first_id: i64 = r.try_get("first_id")?;
            let first = sqlx::query("SELECT stage, error FROM stage_runs WHERE id = $1")
                .bind(first_id)
                .fetch_one(&self.pool)
                .await?;
            out.push(NewFingerprint {
                fingerprint: r.try_get("fingerprint")?,
                first_at: r.try_get("first_at")?,
                count: r.try_get("n")?,
                stage: first.try_get("stage")?,
                error: first.try_get("error")?,
            });
        }
        Ok(out)
    }

    /// Gate verdicts of the workspace since `since`: how many, and how many
    /// rejected.
    pub async fn gate_verdict_counts(&self, workspace: &str, since: i64) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN decision = 'reject' THEN 1 ELSE 0 END), 0) AS rejected \
             FROM gate_verdicts WHERE workspace = $1 AND created_at >= $2",
        )
        .bind(workspace)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("rejected")?))
    }
}
