//! `run_events`: the ordered event stream of each run (SPEC PB-1, OB-3),
//! kept so that a client reconnecting with `Last-Event-ID` gets what it
//! missed.

use serde_json::Value;
use sqlx::Row;

use crate::util::{clamp_limit, json_text, parse_json};
use crate::{Result, Store};

/// One event.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEventRow {
    /// The run.
    pub run_id: String,
    /// Order within the run, from 1; unique per run.
    pub seq: i64,
    /// `status`, `tool_start`, `tool_result`, `log`, `action`, ...
    pub kind: String,
    /// The event body.
    pub data: Value,
    /// When.
    pub at: i64,
}

impl Store {
    /// Appends events in one transaction; an event whose (run, seq) exists
    /// already is skipped.
    pub async fn append_run_events(&self, events: &[RunEventRow]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for event in events {
            sqlx::query(
                "INSERT INTO run_events (run_id, seq, kind, data, at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (run_id, seq) DO NOTHING",
            )
            .bind(&event.run_id)
            .bind(event.seq)
            .bind(&event.kind)
            .bind(json_text(&event.data))
            .bind(event.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Events of a run with `seq > after`, in order, at most `limit`.
    ///
    /// A `limit` of 0 or less means 100; at most 1000 are returned.
    pub async fn list_run_events(
        &self,
        run_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RunEventRow>> {
        let rows = sqlx::query(
            "SELECT run_id, seq, kind, data, at FROM run_events WHERE run_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(run_id)
        .bind(after)
        .bind(clamp_limit(limit, 100, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RunEventRow {
                    run_id: row.try_get("run_id")?,
                    seq: row.try_get("seq")?,
                    kind: row.try_get("kind")?,
                    data: parse_json("run_events.data", &row.try_get::<String, _>("data")?)?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    /// The highest sequence number stored for a run (0 when none), so that
    /// a restarted host continues a run's stream without reusing numbers.
    pub async fn last_run_event_seq(&self, run_id: &str) -> Result<i64> {
        let seq: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM run_events WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(seq)
    }
}
