//! `notifications` and `silences` (SPEC AL-2, AL-3): the durable outbox of
//! alert notifications, which is also their history, and the silences that
//! hold notifications back until they expire.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{Sql, clamp_limit, json_text, parse_json, parse_strings, strings_text};
use crate::{Error, Result, Store, new_id};

const NOTIFICATION_COLUMNS: &str = "id, sink, kind, severity, dedup_key, alert_ids, payload, status, \
     attempts, next_at, created_at, delivered_at, last_error";

/// One notification to one sink.
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationRow {
    /// Id (UUID v7): the order in which a sink receives them.
    pub id: String,
    /// The sink's name.
    pub sink: String,
    /// `trigger`, `repeat` or `resolve`.
    pub kind: String,
    /// The highest severity among its alerts.
    pub severity: String,
    /// The dedup key of its first alert.
    pub dedup_key: String,
    /// The alerts it tells of (several when grouped).
    pub alert_ids: Vec<String>,
    /// The body as the sink receives it.
    pub payload: Value,
    /// `pending`, `delivered` or `failed` (refused for good).
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When the next attempt may go.
    pub next_at: i64,
    /// Queued at.
    pub created_at: i64,
    /// Delivered at.
    pub delivered_at: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A notification to queue.
#[derive(Clone, Debug)]
pub struct NewNotification {
    /// The sink.
    pub sink: String,
    /// `trigger`, `repeat` or `resolve`.
    pub kind: String,
    /// Severity.
    pub severity: String,
    /// Dedup key of its first alert.
    pub dedup_key: String,
    /// Its alerts.
    pub alert_ids: Vec<String>,
    /// The body.
    pub payload: Value,
}

/// A silence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SilenceRow {
    /// Id (UUID v7).
    pub id: String,
    /// Matches alerts of this workspace (any when `None`).
    pub workspace: Option<String>,
    /// Of this rule.
    pub rule: Option<String>,
    /// Of this severity.
    pub severity: Option<String>,
    /// With this dedup key, or with this prefix when it ends in `*`.
    pub dedup_key: Option<String>,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
    /// When.
    pub created_at: i64,
    /// Until when.
    pub ends_at: i64,
}

impl SilenceRow {
    /// Whether the silence matches an alert with these fields.
    pub fn matches(
        &self,
        workspace: Option<&str>,
        rule: &str,
        severity: &str,
        dedup_key: &str,
    ) -> bool {
        let key_matches = match self.dedup_key.as_deref() {
            None => true,
            Some(k) => match k.strip_suffix('*') {
                Some(prefix) => dedup_key.starts_with(prefix),
                None => dedup_key == k,
            },
        };
        (self.workspace.is_none() || self.workspace.as_deref() == workspace)
            && self.rule.as_deref().is_none_or(|r| r == rule)
            && self.severity.as_deref().is_none_or(|s| s == severity)
            && key_matches
    }
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct NotificationFilter {
    /// Of one sink.
    pub sink: Option<String>,
    /// Of one status.
    pub status: Option<String>,
    /// Telling of this alert.
    pub alert_id: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: i64,
}

impl Store {
    /// Queues notifications and, in the same transaction, marks the
    /// alerts whose trigger or repeat they carry as notified at `now` and
    /// those whose resolve they carry as resolve-notified; so that a crash
    /// never sends an alert twice nor forgets it.
    pub async fn queue_notifications(
        &self,
        batch: &[NewNotification],
        notified: &[String],
        resolve_notified: &[String],
        now: i64,
    ) -> Result<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let mut ids = Vec::with_capacity(batch.len());
        for n in batch {
            let id = new_id();
            sqlx::query(
                "INSERT INTO notifications (id, sink, kind, severity, dedup_key, alert_ids, payload, \
                 status, attempts, next_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8)",
            )
            .bind(&id)
            .bind(&n.sink)
            .bind(&n.kind)
            .bind(&n.severity)
            .bind(&n.dedup_key)
            .bind(strings_text(&n.alert_ids))
            .bind(json_text(&n.payload))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            ids.push(id);
        }
        if !notified.is_empty() {
            let mut sql = Sql::new("UPDATE alerts SET silenced_by = NULL, notified_at = ");
            let p = sql.arg(now);
            let list = sql.args(notified.iter().cloned());
            sql.push(&format!("{p} WHERE id IN ({list})"));
            sql.build()?.execute(&mut *tx).await?;
        }
        if !resolve_notified.is_empty() {
            let mut sql = Sql::new("UPDATE alerts SET resolve_notified = 1 WHERE id IN (");
            let list = sql.args(resolve_notified.iter().cloned());
            sql.push(&format!("{list})"));
            sql.build()?.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// The oldest pending notifications of `sink`, at most `limit`.
    pub async fn pending_notifications(
        &self,
        sink: &str,
        limit: i64,
    ) -> Result<Vec<NotificationRow>> {
        let mut sql = Sql::new(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications "
        ));
        let p = sql.arg(sink.to_string());
        let l = sql.arg(clamp_limit(limit, 50, 1000));
        sql.push(&format!(
            "WHERE status = 'pending' AND sink = {p} ORDER BY id LIMIT {l}"
        ));
        sql.build()?
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(notification_from_row)
            .collect()
    }

    /// Sinks with pending notifications.
    pub async fn sinks_with_pending(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT sink FROM notifications WHERE status = 'pending' ORDER BY sink",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a delivery.
    pub async fn notification_delivered(&self, id: &str, attempts: i64, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET status = 'delivered', attempts = $2, delivered_at = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(attempts)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt: retried at `next_at`, or (`give_up`)
    /// `failed` for good.
    pub async fn notification_failed(
        &self,
        id: &str,
        attempts: i64,
        error: &str,
        next_at: i64,
        give_up: bool,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET status = $2, attempts = $3, last_error = $4, next_at = $5 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(if give_up { "failed" } else { "pending" })
        .bind(attempts)
        .bind(error)
        .bind(next_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notifications, newest first.
    pub async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<NotificationRow>> {
        let mut sql = Sql::new(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE 1 = 1"
        ));
        if let Some(sink) = &filter.sink {
            let p = sql.arg(sink.clone());
            sql.push(&format!(" AND sink = {p}"));
        }
        if let Some(status) = &filter.status {
            let p = sql.arg(status.clone());
            sql.push(&format!(" AND status = {p}"));
        }
        if let Some(alert) = &filter.alert_id {
            // Ids are UUIDs, so a quoted substring of the JSON list is exact.
            let p = sql.arg(format!("%\"{alert}\"%"));
            sql.push(&format!(" AND alert_ids LIKE {p}"));
        }
        let l = sql.arg(clamp_limit(filter.limit, 100, 1000));
        sql.push(&format!(" ORDER BY id DESC LIMIT {l}"));
        sql.build()?
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(notification_from_row)
            .collect()
    }

    /// Creates a silence.
    pub async fn create_silence(&self, s: &SilenceRow) -> Result<SilenceRow> {
        let mut row = s.clone();
        if row.id.is_empty() {
            row.id = new_id();
        }
        sqlx::query(
            "INSERT INTO silences (id, workspace, rule, severity, dedup_key, comment, created_by, \
             created_at, ends_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&row.id)
        .bind(row.workspace.as_deref())
        .bind(row.rule.as_deref())
        .bind(row.severity.as_deref())
        .bind(row.dedup_key.as_deref())
        .bind(&row.comment)
        .bind(&row.created_by)
        .bind(row.created_at)
        .bind(row.ends_at)
        .execute(&self.pool)
        .await?;
        Ok(row)
    }

    /// Silences, newest first: only those still in force at `now` when
    /// `active_at` is given.
    pub async fn list_silences(&self, active_at: Option<i64>) -> Result<Vec<SilenceRow>> {
        sqlx::query(
            "SELECT id, workspace, rule, severity, dedup_key, comment, created_by, created_at, ends_at \
             FROM silences WHERE ($1 IS NULL OR ends_at > $1) ORDER BY id DESC LIMIT 1000",
        )
        .bind(active_at)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(silence_from_row)
        .collect()
    }

    /// Ends a silence at `now` (it stays in the history).
    pub async fn expire_silence(&self, id: &str, now: i64) -> Result<SilenceRow> {
        let row = sqlx::query(
            "UPDATE silences SET ends_at = CASE WHEN ends_at > $2 THEN $2 ELSE ends_at END \
             WHERE id = $1 RETURNING id, workspace, rule, severity, dedup_key, comment, \
             created_by, created_at, ends_at",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("silence \"{id}\"")))?;
        silence_from_row(&row)
    }
}

fn notification_from_row(row: &AnyRow) -> Result<NotificationRow> {
    Ok(NotificationRow {
        id: row.try_get("id")?,
        sink: row.try_get("sink")?,
        kind: row.try_get("kind")?,
        severity: row.try_get("severity")?,
        dedup_key: row.try_get("dedup_key")?,
        alert_ids: parse_strings(
            "notifications.alert_ids",
            &row.try_get::<String, _>("alert_ids")?,
        )?,
        payload: parse_json(
            "notifications.payload",
            &row.try_get::<String, _>("payload")?,
        )?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_at: row.try_get("next_at")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
        last_error: row.try_get("last_error")?,
    })
}

fn silence_from_row(row: &AnyRow) -> Result<SilenceRow> {
    Ok(SilenceRow {
        id: row.try_get("id")?,
        workspace: row.try_get("workspace")?,
        rule: row.try_get("rule")?,
        severity: row.try_get("severity")?,
        dedup_key: row.try_get("dedup_key")?,
        comment: row.try_get("comment")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        ends_at: row.try_get("ends_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(ws: Option<&str>, rule: Option<&str>, key: Option<&str>) -> SilenceRow {
        SilenceRow {
            id: String::new(),
            workspace: ws.map(str::to_string),
            rule: rule.map(str::to_string),
            severity: None,
            dedup_key: key.map(str::to_string),
            comment: String::new(),
            created_by: String::new(),
            created_at: 0,
            ends_at: 0,
        }
    }

    #[test]
    fn silences_match_on_every_given_field() {
        let any = silence(None, None, None);
        assert!(any.matches(None, "backlog", "warning", "backlog:a"));
        let ws = silence(Some("a"), Some("backlog"), None);
        assert!(ws.matches(Some("a"), "backlog", "warning", "backlog:a"));
        assert!(!ws.matches(Some("b"), "backlog", "warning", "backlog:b"));
        assert!(!ws.matches(None, "backlog", "warning", "backlog:a"));
        assert!(!ws.matches(Some("a"), "stuck_task", "warning", "stuck:1"));
        let prefix = silence(None, None, Some("stuck:*"));
        assert!(prefix.matches(Some("a"), "stuck_task", "warning", "stuck:1"));
        assert!(!prefix.matches(Some("a"), "backlog", "warning", "backlog:a"));
        let exact = silence(None, None, Some("stuck:1"));
        assert!(!exact.matches(Some("a"), "stuck_task", "warning", "stuck:12"));
    }
}
