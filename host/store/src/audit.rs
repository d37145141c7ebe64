//! `audit_log`: every mutation made through the API, with its actor
//! (SPEC SE-3). Playbook actions have their own table, `actions`.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::util::{clamp_limit, json_text, parse_json};
use crate::{Result, Store, now_ms};

/// One audit entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    /// Increasing id.
    pub id: i64,
    /// When.
    pub at: i64,
    /// Who (token name, `bootstrap-admin`, `system`).
    pub actor: String,
    /// The workspace concerned, when there is one.
    pub workspace: Option<String>,
    /// What, e.g. `pin.set`, `token.create`, `task.create`, `run.create`.
    pub action: String,
    /// The object, e.g. a plugin name or a task id.
    pub target: String,
    /// Details as JSON.
    pub detail: Value,
}

impl Store {
    /// Appends an entry; returns its id.
    pub async fn append_audit(
        &self,
        actor: &str,
        workspace: Option<&str>,
        action: &str,
        target: &str,
        detail: &Value,
    ) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, workspace, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(now_ms())
        .bind(actor)
        .bind(workspace)
        .bind(action)
        .bind(target)
        .bind(json_text(detail))
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Newest entries first, of one workspace or of all.
    ///
    /// A `limit` of 0 or less means 100; at most 500 are returned.
    pub async fn list_audit(&self, workspace: Option<&str>, limit: i64) -> Result<Vec<AuditRow>> {
        let limit = clamp_limit(limit, 100, 500);
        let rows = match workspace {
            Some(workspace) => {
                sqlx::query(
                    "SELECT id, at, actor, workspace, action, target, detail FROM audit_log \
                     WHERE workspace = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(workspace)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, at, actor, workspace, action, target, detail FROM audit_log \
                     ORDER BY id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(audit_from_row).collect()
    }
}

pub(crate) fn audit_from_row(row: &AnyRow) -> Result<AuditRow> {
    Ok(AuditRow {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        workspace: row.try_get("workspace")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: parse_json("audit_log.detail", &row.try_get::<String, _>("detail")?)?,
    })
}

/// [`Store::append_audit`] on `conn`, inside the caller's transaction, so
/// that a change and its audit entry commit together; `at` is the time of
/// the change.
pub(crate) async fn append_audit_in(
    conn: &mut AnyConnection,
    actor: &str,
    workspace: &str,
    action: &str,
    target: &str,
    detail: &Value,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, workspace, action, target, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(at)
    .bind(actor)
    .bind(workspace)
    .bind(action)
    .bind(target)
    .bind(json_text(detail))
    .execute(conn)
    .await?;
    Ok(())
}
