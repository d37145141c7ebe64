//! `pins`: which version of a plugin a workspace uses (SPEC LC-4, LC-5).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store};

macro_rules! pin_columns {
    () => {
        "workspace, plugin, selector, canary, canary_percent, actor, updated_at"
    };
}

/// A pin set over the API or CLI.
#[derive(Clone, Debug, PartialEq)]
pub struct PinRow {
    /// Workspace.
    pub workspace: String,
    /// Plugin name.
    pub plugin: String,
    /// `1.2.0`, `sha256:<hex>` or `latest`.
    pub selector: String,
    /// Canary selector, when a canary is rolled out.
    pub canary: Option<String>,
    /// Percent of runs that take the canary (0–100).
    pub canary_percent: i64,
    /// Who set it.
    pub actor: String,
    /// When.
    pub updated_at: i64,
}

impl Store {
    /// Creates or replaces the pin of (`workspace`, `plugin`).
    pub async fn set_pin(&self, pin: &PinRow) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO pins (",
            pin_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (workspace, plugin) DO UPDATE SET selector = excluded.selector, \
             canary = excluded.canary, canary_percent = excluded.canary_percent, \
             actor = excluded.actor, updated_at = excluded.updated_at"
        ))
        .bind(&pin.workspace)
        .bind(&pin.plugin)
        .bind(&pin.selector)
        .bind(pin.canary.as_deref())
        .bind(pin.canary_percent)
        .bind(&pin.actor)
        .bind(pin.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The pin, when one is set.
    pub async fn get_pin(&self, workspace: &str, plugin: &str) -> Result<Option<PinRow>> {
        sqlx::query(concat!(
            "SELECT ",
            pin_columns!(),
            " FROM pins WHERE workspace = $1 AND plugin = $2"
        ))
        .bind(workspace)
        .bind(plugin)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(pin_from_row)
        .transpose()
    }

    /// Every pin of a workspace, by plugin name.
    pub async fn list_pins(&self, workspace: &str) -> Result<Vec<PinRow>> {
        sqlx::query(concat!(
            "SELECT ",
            pin_columns!(),
            " FROM pins WHERE workspace = $1 ORDER BY plugin"
        ))
        .bind(workspace)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(pin_from_row)
        .collect()
    }

    /// Removes a pin; true when there was one.
    pub async fn delete_pin(&self, workspace: &str, plugin: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM pins WHERE workspace = $1 AND plugin = $2")
            .bind(workspace)
            .bind(plugin)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

fn pin_from_row(row: &AnyRow) -> Result<PinRow> {
    Ok(PinRow {
        workspace: row.try_get("workspace")?,
        plugin: row.try_get("plugin")?,
        selector: row.try_get("selector")?,
        canary: row.try_get("canary")?,
        canary_percent: row.try_get("canary_percent")?,
        actor: row.try_get("actor")?,
        updated_at: row.try_get("updated_at")?,
    })
}
