//! `workspace_settings`: per-workspace mode (SPEC TS-7), stage pipeline
//! (TS-1), lease limits (TS-3) and hourly budgets (TS-5), as set over the
//! API. Workspaces without a row use the server's defaults.

use serde_json::Value;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{json_text, parse_json, parse_strings, strings_text};
use crate::{Result, Store};

macro_rules! settings_columns {
    () => {
        "workspace, mode, mode_reason, pipeline, limits, hourly_tokens, hourly_cost_micros, actor, updated_at"
    };
}

/// The settings of one workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingsRow {
    /// Workspace.
    pub workspace: String,
    /// `normal`, `minimal`, `read-only` or `emergency-stop`.
    pub mode: String,
    /// Why the mode was set (operator text, or the breaker that set it).
    pub mode_reason: Option<String>,
    /// Stage names, in order; `None`: the default pipeline.
    pub pipeline: Option<Vec<String>>,
    /// Lease limits and other scheduler settings, as JSON.
    pub limits: Value,
    /// Tokens per hour, when capped.
    pub hourly_tokens: Option<i64>,
    /// Cost per hour in micro-dollars, when capped.
    pub hourly_cost_micros: Option<i64>,
    /// Who changed it last.
    pub actor: String,
    /// When.
    pub updated_at: i64,
}

impl Store {
    /// The settings row, when one was set.
    pub async fn get_settings(&self, workspace: &str) -> Result<Option<SettingsRow>> {
        sqlx::query(concat!(
            "SELECT ",
            settings_columns!(),
            " FROM workspace_settings WHERE workspace = $1"
        ))
        .bind(workspace)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(settings_from_row)
        .transpose()
    }

    /// Creates or replaces the settings row.
    pub async fn put_settings(&self, row: &SettingsRow) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO workspace_settings (",
            settings_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (workspace) DO UPDATE SET mode = excluded.mode, mode_reason = excluded.mode_reason, \
             pipeline = excluded.pipeline, limits = excluded.limits, hourly_tokens = excluded.hourly_tokens, \
             hourly_cost_micros = excluded.hourly_cost_micros, actor = excluded.actor, \
             updated_at = excluded.updated_at"
        ))
        .bind(&row.workspace)
        .bind(&row.mode)
        .bind(row.mode_reason.as_deref())
        .bind(row.pipeline.as_deref().map(strings_text))
        .bind(json_text(&row.limits))
        .bind(row.hourly_tokens)
        .bind(row.hourly_cost_micros)
        .bind(&row.actor)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every settings row (for the status of all workspaces).
    ///
    /// By workspace.
    pub async fn list_settings(&self) -> Result<Vec<SettingsRow>> {
        sqlx::query(concat!(
            "SELECT ",
            settings_columns!(),
            " FROM workspace_settings ORDER BY workspace"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(settings_from_row)
        .collect()
    }
}

fn settings_from_row(row: &AnyRow) -> Result<SettingsRow> {
    Ok(SettingsRow {
        workspace: row.try_get("workspace")?,
        mode: row.try_get("mode")?,
        mode_reason: row.try_get("mode_reason")?,
        pipeline: row
            .try_get::<Option<String>, _>("pipeline")?
            .map(|text| parse_strings("workspace_settings.pipeline", &text))
            .transpose()?,
        limits: parse_json(
            "workspace_settings.limits",
            &row.try_get::<String, _>("limits")?,
        )?,
        hourly_tokens: row.try_get("hourly_tokens")?,
        hourly_cost_micros: row.try_get("hourly_cost_micros")?,
        actor: row.try_get("actor")?,
        updated_at: row.try_get("updated_at")?,
    })
}
