//! `alerts`: every alert, deduplicated by key while open (SPEC AL-3). The
//! scheduler raises alerts here through one domain function; rules, sinks
//! and silences come with the alerting issue.

use serde_json::Value;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{clamp_limit, json_text, parse_json};
use crate::{Error, Result, Store, new_id};

macro_rules! alert_columns {
    () => {
        "id, dedup_key, workspace, rule, severity, status, summary, detail, first_at, last_at, count, \
         resolved_at, acked_by, acked_at, notified_at, resolve_notified, silenced_by"
    };
}

/// One alert.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRow {
    /// Id (UUID v7).
    pub id: String,
    /// Same key, same open alert.
    pub dedup_key: String,
    /// The workspace, when it concerns one.
    pub workspace: Option<String>,
    /// The rule, e.g. `infinite_loop`, `budget_80`, `backlog`.
    pub rule: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    /// One line.
    pub summary: String,
    /// Details.
    pub detail: Value,
    /// First raised.
    pub first_at: i64,
    /// Last raised.
    pub last_at: i64,
    /// Times raised while open.
    pub count: i64,
    /// When resolved.
    pub resolved_at: Option<i64>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
    /// When.
    pub acked_at: Option<i64>,
    /// When its trigger (or last repeat) notification was queued; `None`
    /// when it was never notified.
    pub notified_at: Option<i64>,
    /// Whether its resolve notification was queued.
    pub resolve_notified: bool,
    /// The silence that last held its notification back.
    pub silenced_by: Option<String>,
}

/// An alert to raise.
#[derive(Clone, Debug)]
pub struct NewAlert {
    /// Dedup key.
    pub dedup_key: String,
    /// Workspace.
    pub workspace: Option<String>,
    /// Rule.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Summary.
    pub summary: String,
    /// Details.
    pub detail: Value,
}

impl Store {
    /// Raises an alert: when one with the same key is open or acknowledged,
    /// its `count`, `last_at`, `summary` and `detail` are updated (false);
    /// else a new `open` alert is created (true). Race-safe.
    pub async fn raise_alert(&self, alert: &NewAlert, now: i64) -> Result<(AlertRow, bool)> {
        // One statement: the partial unique index `alerts_unresolved`
        // arbitrates concurrent raises on both dialects.
        let id = new_id();
        let row = sqlx::query(concat!(
            "INSERT INTO alerts (id, dedup_key, workspace, rule, severity, status, summary, detail, \
             first_at, last_at, count) VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $8, 1) \
             ON CONFLICT (dedup_key) WHERE status IN ('open', 'acknowledged') DO UPDATE SET \
             count = alerts.count + 1, last_at = excluded.last_at, summary = excluded.summary, \
             detail = excluded.detail RETURNING ",
            alert_columns!()
        ))
        .bind(&id)
        .bind(&alert.dedup_key)
        .bind(alert.workspace.as_deref())
        .bind(&alert.rule)
        .bind(&alert.severity)
        .bind(&alert.summary)
        .bind(json_text(&alert.detail))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let row = alert_from_row(&row)?;
        let created = row.id == id;
        Ok((row, created))
    }

    /// Resolves the unresolved alert with this key; returns it, if any.
    pub async fn resolve_alert(&self, dedup_key: &str, now: i64) -> Result<Option<AlertRow>> {
        sqlx::query(concat!(
            "UPDATE alerts SET status = 'resolved', resolved_at = $2 \
             WHERE dedup_key = $1 AND status IN ('open', 'acknowledged') RETURNING ",
            alert_columns!()
        ))
        .bind(dedup_key)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(alert_from_row)
        .transpose()
    }

    /// Acknowledges an alert of the workspace by id.
    ///
    /// `workspace` `None` matches any alert (an operator of every
    /// workspace). An alert acknowledged already is returned as it is (the
    /// first acknowledgement stands). `Error::NotFound` for no such alert
    /// (in that workspace), `Error::Conflict` when it is resolved.
    pub async fn ack_alert(
        &self,
        workspace: Option<&str>,
        id: &str,
        by: &str,
        now: i64,
    ) -> Result<AlertRow> {
        let acked = sqlx::query(concat!(
            "UPDATE alerts SET status = 'acknowledged', acked_by = $3, acked_at = $4 \
             WHERE id = $1 AND ($2 IS NULL OR workspace = $2) AND status = 'open' RETURNING ",
            alert_columns!()
        ))
        .bind(id)
        .bind(workspace)
        .bind(by)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = acked {
            return alert_from_row(&row);
        }
        let found = sqlx::query(concat!(
            "SELECT ",
            alert_columns!(),
            " FROM alerts WHERE id = $1 AND ($2 IS NULL OR workspace = $2)"
        ))
        .bind(id)
        .bind(workspace)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(alert_from_row)
        .transpose()?
        .ok_or_else(|| Error::NotFound(format!("alert \"{id}\"")))?;
        if found.status == "resolved" {
            return Err(Error::Conflict(format!(
                "alert \"{id}\" is resolved and cannot be acknowledged"
            )));
        }
        Ok(found)
    }

    /// Alerts whose notification is due: open ones (not `info`) never
    /// notified or last notified at or before `repeat_before`, and resolved
    /// ones that were notified and whose resolve was not; oldest first.
    pub async fn alerts_to_notify(&self, repeat_before: i64, limit: i64) -> Result<Vec<AlertRow>> {
        sqlx::query(concat!(
            "SELECT ",
            alert_columns!(),
            " FROM alerts WHERE (status = 'open' AND severity <> 'info' \
              AND (notified_at IS NULL OR notified_at <= $1)) \
              OR (status = 'resolved' AND notified_at IS NOT NULL AND resolve_notified = 0) \
              ORDER BY id LIMIT $2"
        ))
        .bind(repeat_before)
        .bind(clamp_limit(limit, 500, 5000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(alert_from_row)
        .collect()
    }

    /// Notes that `silence` held back the notification of these alerts.
    pub async fn mark_alerts_silenced(&self, ids: &[String], silence: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut sql = crate::util::Sql::new("UPDATE alerts SET silenced_by = ");
        let p = sql.arg(silence.to_string());
        let list = sql.args(ids.iter().cloned());
        sql.push(&format!("{p} WHERE id IN ({list})"));
        sql.build()?.execute(&self.pool).await?;
        Ok(())
    }

    /// One alert by id, of the workspace (any when `None`).
    pub async fn get_alert(&self, workspace: Option<&str>, id: &str) -> Result<Option<AlertRow>> {
        sqlx::query(concat!(
            "SELECT ",
            alert_columns!(),
            " FROM alerts WHERE id = $1 AND ($2 IS NULL OR workspace = $2)"
        ))
        .bind(id)
        .bind(workspace)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(alert_from_row)
        .transpose()
    }

    /// Alerts, newest first; of one workspace (or all when `None`), of one
    /// status (or all).
    ///
    /// Newest by creation (ids are UUID v7). A `limit` of 0 or less means
    /// 100; at most 500 are returned.
    pub async fn list_alerts(
        &self,
        workspace: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlertRow>> {
        sqlx::query(concat!(
            "SELECT ",
            alert_columns!(),
            " FROM alerts WHERE ($1 IS NULL OR workspace = $1) AND ($2 IS NULL OR status = $2) \
              ORDER BY id DESC LIMIT $3"
        ))
        .bind(workspace)
        .bind(status)
        .bind(clamp_limit(limit, 100, 500))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(alert_from_row)
        .collect()
    }
}

pub(crate) fn alert_from_row(row: &AnyRow) -> Result<AlertRow> {
    Ok(AlertRow {
        id: row.try_get("id")?,
        dedup_key: row.try_get("dedup_key")?,
        workspace: row.try_get("workspace")?,
        rule: row.try_get("rule")?,
        severity: row.try_get("severity")?,
        status: row.try_get("status")?,
        summary: row.try_get("summary")?,
        detail: parse_json("alerts.detail", &row.try_get::<String, _>("detail")?)?,
        first_at: row.try_get("first_at")?,
        last_at: row.try_get("last_at")?,
        count: row.try_get("count")?,
        resolved_at: row.try_get("resolved_at")?,
        acked_by: row.try_get("acked_by")?,
        acked_at: row.try_get("acked_at")?,
        notified_at: row.try_get("notified_at")?,
        resolve_notified: row.try_get::<i64, _>("resolve_notified")? != 0,
        silenced_by: row.try_get("silenced_by")?,
    })
}
