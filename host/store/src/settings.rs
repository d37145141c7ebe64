//! `workspace_settings`: per-workspace mode (SPEC TS-7), stage pipeline
//! (TS-1), lease limits (TS-3) and hourly budgets (TS-5), as set over the
//! API. Workspaces without a row use the server's defaults.

use serde_json::Value;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{json_text, parse_json, parse_strings, strings_text};
use crate::{Dialect, Result, Store};

macro_rules! settings_columns {
    () => {
        "workspace, mode, mode_reason, pipeline, limits, hourly_tokens, hourly_cost_micros, actor, updated_at"
    };
}

/// The settings columns of the table named `s`, each as `s_<column>`, to
/// read a workspace's settings in the statement that reads something else
/// (a `LEFT JOIN workspace_settings s`; see [`settings_from_joined`]).
macro_rules! settings_columns_of_s {
    () => {
        "s.workspace AS s_workspace, s.mode AS s_mode, s.mode_reason AS s_mode_reason, \
         s.pipeline AS s_pipeline, s.limits AS s_limits, s.hourly_tokens AS s_hourly_tokens, \
         s.hourly_cost_micros AS s_hourly_cost_micros, s.actor AS s_actor, s.updated_at AS s_updated_at"
    };
}
pub(crate) use settings_columns_of_s;

/// [`Store::claim_context`]'s statement per dialect: the settings of `$1`
/// (none when not set) and the open breakers' names as a JSON array.
const CLAIM_CONTEXT_SQLITE: &str = concat!(
    "SELECT ",
    settings_columns_of_s!(),
    ", (SELECT json_group_array(name) FROM (SELECT name FROM breakers WHERE state = 'open' ORDER BY name)) \
     AS open_breakers FROM (SELECT 1 AS one) o LEFT JOIN workspace_settings s ON s.workspace = $1"
);
const CLAIM_CONTEXT_POSTGRES: &str = concat!(
    "SELECT ",
    settings_columns_of_s!(),
    ", (SELECT CAST(COALESCE(json_agg(name ORDER BY name), '[]') AS TEXT) FROM breakers WHERE state = 'open') \
     AS open_breakers FROM (SELECT 1 AS one) o LEFT JOIN workspace_settings s ON s.workspace = $1"
);

crate::names::stored_names! {
    /// A workspace's scheduling mode, how far it is degraded (SPEC TS-7),
    /// stored by name in `workspace_settings.mode`. Not a playbook run's
    /// mode ([`crate::runs::RunMode`]).
    pub enum WorkspaceMode ("workspace mode") {
        /// Everything runs.
        Normal = "normal",
        /// `think` and `review` are skipped.
        Minimal = "minimal",
        /// No new tasks, no claims.
        ReadOnly = "read-only",
        /// Nothing new starts; leases in flight are kept.
        EmergencyStop = "emergency-stop",
    }
}

/// The settings of one workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingsRow {
    /// Workspace.
    pub workspace: String,
    /// How far the workspace is degraded.
    pub mode: WorkspaceMode,
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
    /// What a claim reads before it looks for work, in one round trip: the
    /// workspace's settings row (when one was set) and the names of the
    /// open breakers, in name order.
    pub async fn claim_context(
        &self,
        workspace: &str,
    ) -> Result<(Option<SettingsRow>, Vec<String>)> {
        let sql = match self.dialect {
            Dialect::Sqlite => CLAIM_CONTEXT_SQLITE,
            Dialect::Postgres => CLAIM_CONTEXT_POSTGRES,
        };
        let row = sqlx::query(sql)
            .bind(workspace)
            .fetch_one(&self.pool)
            .await?;
        let open = parse_strings("breakers.name", &row.try_get::<String, _>("open_breakers")?)?;
        Ok((settings_from_joined(&row)?, open))
    }

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
        .bind(row.mode.as_str())
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
    settings_named(row, "")
}

/// The settings read by [`settings_columns_of_s`]: `None` when the join
/// found no row (the workspace has none set).
pub(crate) fn settings_from_joined(row: &AnyRow) -> Result<Option<SettingsRow>> {
    if row.try_get::<Option<String>, _>("s_workspace")?.is_none() {
        return Ok(None);
    }
    settings_named(row, "s_").map(Some)
}

/// The settings in columns named `<prefix><column>`.
fn settings_named(row: &AnyRow, prefix: &str) -> Result<SettingsRow> {
    let c = |column: &str| format!("{prefix}{column}");
    Ok(SettingsRow {
        workspace: row.try_get(c("workspace").as_str())?,
        mode: row
            .try_get::<String, _>(c("mode").as_str())?
            .parse()
            .map_err(|e: crate::UnknownName| e.stored_in("workspace_settings.mode"))?,
        mode_reason: row.try_get(c("mode_reason").as_str())?,
        pipeline: row
            .try_get::<Option<String>, _>(c("pipeline").as_str())?
            .map(|text| parse_strings("workspace_settings.pipeline", &text))
            .transpose()?,
        limits: parse_json(
            "workspace_settings.limits",
            &row.try_get::<String, _>(c("limits").as_str())?,
        )?,
        hourly_tokens: row.try_get(c("hourly_tokens").as_str())?,
        hourly_cost_micros: row.try_get(c("hourly_cost_micros").as_str())?,
        actor: row.try_get(c("actor").as_str())?,
        updated_at: row.try_get(c("updated_at").as_str())?,
    })
}
