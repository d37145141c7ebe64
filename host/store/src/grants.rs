//! `grants`: capabilities granted over the API, per plugin per workspace
//! (SPEC PL-6). Grants in `warden.toml` are added to these by the server.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Error, Result, Store};

macro_rules! grant_columns {
    () => {
        "workspace, plugin, capabilities, actor, updated_at"
    };
}

/// Capabilities granted to one plugin in one workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct GrantRow {
    /// Workspace.
    pub workspace: String,
    /// Plugin name.
    pub plugin: String,
    /// Capability names, e.g. `["tasks:read"]`.
    pub capabilities: Vec<String>,
    /// Who granted them.
    pub actor: String,
    /// When.
    pub updated_at: i64,
}

impl Store {
    /// Creates or replaces the grant of (`workspace`, `plugin`).
    pub async fn set_grant(&self, grant: &GrantRow) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (workspace, plugin) DO UPDATE SET capabilities = excluded.capabilities, \
             actor = excluded.actor, updated_at = excluded.updated_at"
        ))
        .bind(&grant.workspace)
        .bind(&grant.plugin)
        .bind(serde_json::Value::from(grant.capabilities.clone()).to_string())
        .bind(&grant.actor)
        .bind(grant.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The grant, when one is set.
    pub async fn get_grant(&self, workspace: &str, plugin: &str) -> Result<Option<GrantRow>> {
        sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE workspace = $1 AND plugin = $2"
        ))
        .bind(workspace)
        .bind(plugin)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(grant_from_row)
        .transpose()
    }

    /// Every grant of a workspace.
    pub async fn list_grants(&self, workspace: &str) -> Result<Vec<GrantRow>> {
        sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE workspace = $1 ORDER BY plugin"
        ))
        .bind(workspace)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    /// Removes a grant; true when there was one.
    pub async fn delete_grant(&self, workspace: &str, plugin: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM grants WHERE workspace = $1 AND plugin = $2")
            .bind(workspace)
            .bind(plugin)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

fn grant_from_row(row: &AnyRow) -> Result<GrantRow> {
    let text: String = row.try_get("capabilities")?;
    let capabilities = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        column: "grants.capabilities",
        message: e.to_string(),
    })?;
    Ok(GrantRow {
        workspace: row.try_get("workspace")?,
        plugin: row.try_get("plugin")?,
        capabilities,
        actor: row.try_get("actor")?,
        updated_at: row.try_get("updated_at")?,
    })
}
