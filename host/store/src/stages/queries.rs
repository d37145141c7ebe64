//! Reads of stage runs: a task's history, checks, metrics and the
//! dashboard.

use sqlx::{AssertSqlSafe, Row};

use super::{FailureCount, StageDuration, StageDurations, StageRunRow, run_from_row};
use crate::util::clamp_limit;
use crate::{Result, Store};

impl Store {
    /// Every stage run of a task, oldest first.
    pub async fn list_stage_runs(&self, task_id: &str) -> Result<Vec<StageRunRow>> {
        sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM stage_runs WHERE task_id = $1 ORDER BY id"
        ))
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    /// (task, stage, count) of every stage completed more than once with the
    /// same attempt number: must always be empty (a check for tests and
    /// `warden doctor`).
    pub async fn duplicate_completions(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT task_id, stage, CAST(COUNT(*) AS BIGINT) AS n FROM stage_runs \
             WHERE outcome = 'completed' GROUP BY task_id, stage, attempt HAVING COUNT(*) > 1 \
             ORDER BY task_id, stage",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("task_id")?,
                    row.try_get("stage")?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }

    /// Completed stage runs since `since` with their durations, for
    /// per-stage latency and the bottleneck stage: (stage, claimed_at,
    /// ended_at).
    ///
    /// Runs that ended at or after `since`, in the order they ended.
    pub async fn completed_stage_runs_since(
        &self,
        workspace: &str,
        since: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT stage, claimed_at, ended_at FROM stage_runs \
             WHERE workspace = $1 AND ended_at >= $2 AND outcome = 'completed' ORDER BY ended_at, id",
        )
        .bind(workspace)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("stage")?,
                    row.try_get("claimed_at")?,
                    row.try_get("ended_at")?,
                ))
            })
            .collect()
    }

    /// Every ended stage run as a histogram of its duration (ended_at -
    /// claimed_at), by workspace, stage and outcome (`completed`, `failed`,
    /// `expired`, or what ended the run otherwise), for `/metrics`: per group, the count of runs
    /// at or under each of `bounds_ms` (cumulative), the count and the sum.
    ///
    /// One aggregate over `stage_runs` (rows are never deleted, so the
    /// counts only grow, as Prometheus counters must).
    pub async fn stage_duration_histogram(&self, bounds_ms: &[i64]) -> Result<Vec<StageDurations>> {
        let buckets: String = bounds_ms
            .iter()
            .enumerate()
            .map(|(i, b)| {
                format!(
                    ", CAST(SUM(CASE WHEN ended_at - claimed_at <= {b} THEN 1 ELSE 0 END) AS BIGINT) AS b{i}"
                )
            })
            .collect();
        let sql = format!(
            "SELECT workspace, stage, outcome, COUNT(*) AS n, \
             CAST(SUM(CASE WHEN ended_at > claimed_at THEN ended_at - claimed_at ELSE 0 END) AS BIGINT) AS total{buckets} \
             FROM stage_runs WHERE ended_at IS NOT NULL AND outcome IS NOT NULL \
             GROUP BY workspace, stage, outcome ORDER BY workspace, stage, outcome"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let mut cumulative = Vec::with_capacity(bounds_ms.len());
                for i in 0..bounds_ms.len() {
                    cumulative.push(row.try_get::<i64, _>(format!("b{i}").as_str())?);
                }
                Ok(StageDurations {
                    workspace: row.try_get("workspace")?,
                    stage: row.try_get("stage")?,
                    outcome: row.try_get("outcome")?,
                    cumulative,
                    count: row.try_get("n")?,
                    sum_ms: row.try_get("total")?,
                })
            })
            .collect()
    }

    /// Per stage, the completed runs of a workspace that ended at or after
    /// `since` and the time they took (claim to completion), largest total
    /// first: the dashboard's time per stage and its bottleneck.
    pub async fn stage_durations(&self, workspace: &str, since: i64) -> Result<Vec<StageDuration>> {
        let rows = sqlx::query(
            // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast it back.
            "SELECT stage, CAST(COUNT(*) AS BIGINT) AS runs, \
             CAST(COALESCE(SUM(ended_at - claimed_at), 0) AS BIGINT) AS total_ms, \
             CAST(COALESCE(MAX(ended_at - claimed_at), 0) AS BIGINT) AS max_ms \
             FROM stage_runs WHERE workspace = $1 AND ended_at >= $2 AND outcome = 'completed' \
             GROUP BY stage ORDER BY total_ms DESC, stage",
        )
        .bind(workspace)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StageDuration {
                    stage: row.try_get("stage")?,
                    runs: row.try_get("runs")?,
                    total_ms: row.try_get("total_ms")?,
                    max_ms: row.try_get("max_ms")?,
                })
            })
            .collect()
    }

    /// The most frequent failure fingerprints of a workspace's stage runs
    /// that ended at or after `since`, most frequent first, at most `limit`
    /// (at most 100).
    pub async fn top_stage_failures(
        &self,
        workspace: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<FailureCount>> {
        let rows = sqlx::query(
            "SELECT fingerprint, CAST(COUNT(*) AS BIGINT) AS n, MAX(error) AS sample, \
             MAX(ended_at) AS last_at FROM stage_runs WHERE workspace = $1 AND ended_at >= $2 \
             AND outcome = 'failed' AND fingerprint IS NOT NULL \
             GROUP BY fingerprint ORDER BY n DESC, last_at DESC, fingerprint LIMIT $3",
        )
        .bind(workspace)
        .bind(since)
        .bind(clamp_limit(limit, 10, 100))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FailureCount {
                    fingerprint: row.try_get("fingerprint")?,
                    count: row.try_get("n")?,
                    sample: row
                        .try_get::<Option<String>, _>("sample")?
                        .unwrap_or_default(),
                    last_at: row.try_get("last_at")?,
                })
            })
            .collect()
    }
}
