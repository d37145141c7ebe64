//! `plugins`: every accepted plugin version, by digest (SPEC LC-3, LC-4).
//! The `.wasm` bytes themselves live in the server's content-addressed
//! directory; this table is the index.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{json_text, parse_json};
use crate::{Result, Store};

macro_rules! plugin_columns {
    () => {
        "digest, name, version, kind, meta, size, source, source_path, added_at"
    };
}

/// One accepted plugin version.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginRow {
    /// `sha256:<hex>`, primary key.
    pub digest: String,
    /// Name from its metadata.
    pub name: String,
    /// Semantic version from its metadata.
    pub version: String,
    /// `playbook`, `quality-gate` or `routing-policy`.
    pub kind: String,
    /// The whole metadata, as JSON.
    pub meta: Value,
    /// Size of the `.wasm`.
    pub size: i64,
    /// `bundled`, `directory` or `upload`.
    pub source: String,
    /// The file it was last seen as (directory plugins).
    pub source_path: Option<String>,
    /// When it was first accepted.
    pub added_at: i64,
}

impl Store {
    /// Inserts a plugin version; an existing digest keeps its `added_at`
    /// and gets the new `source` / `source_path`.
    pub async fn upsert_plugin(&self, row: &PluginRow) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO plugins (",
            plugin_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (digest) DO UPDATE SET source = excluded.source, source_path = excluded.source_path"
        ))
        .bind(&row.digest)
        .bind(&row.name)
        .bind(&row.version)
        .bind(&row.kind)
        .bind(json_text(&row.meta))
        .bind(row.size)
        .bind(&row.source)
        .bind(row.source_path.as_deref())
        .bind(row.added_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every plugin version, ordered by name, then `added_at`.
    pub async fn list_plugins(&self) -> Result<Vec<PluginRow>> {
        sqlx::query(concat!(
            "SELECT ",
            plugin_columns!(),
            " FROM plugins ORDER BY name, added_at, digest"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(plugin_from_row)
        .collect()
    }

    /// One plugin version.
    pub async fn get_plugin(&self, digest: &str) -> Result<Option<PluginRow>> {
        sqlx::query(concat!(
            "SELECT ",
            plugin_columns!(),
            " FROM plugins WHERE digest = $1"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(plugin_from_row)
        .transpose()
    }
}

fn plugin_from_row(row: &AnyRow) -> Result<PluginRow> {
    Ok(PluginRow {
        digest: row.try_get("digest")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        kind: row.try_get("kind")?,
        meta: parse_json("plugins.meta", &row.try_get::<String, _>("meta")?)?,
        size: row.try_get("size")?,
        source: row.try_get("source")?,
        source_path: row.try_get("source_path")?,
        added_at: row.try_get("added_at")?,
    })
}
