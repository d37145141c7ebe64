//! `breakers`: the persisted state of circuit breakers (SPEC RL-1), so that
//! every host sees the same state and it survives restarts.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store};

macro_rules! breaker_columns {
    () => {
        "name, state, failures, reason, opened_at, retry_at, updated_at"
    };
}

/// One breaker.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerRow {
    /// e.g. `provider:openai`, `process:mcp`, `workspace:acme`.
    pub name: String,
    /// `closed`, `open` or `half-open`.
    pub state: String,
    /// Consecutive failures counted.
    pub failures: i64,
    /// Why it is in this state.
    pub reason: Option<String>,
    /// When it opened.
    pub opened_at: Option<i64>,
    /// When an open breaker may be probed.
    pub retry_at: Option<i64>,
    /// Last change.
    pub updated_at: i64,
}

impl Store {
    /// Creates or replaces a breaker's state.
    pub async fn put_breaker(&self, row: &BreakerRow) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO breakers (",
            breaker_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (name) DO UPDATE SET state = excluded.state, failures = excluded.failures, \
             reason = excluded.reason, opened_at = excluded.opened_at, retry_at = excluded.retry_at, \
             updated_at = excluded.updated_at"
        ))
        .bind(&row.name)
        .bind(&row.state)
        .bind(row.failures)
        .bind(row.reason.as_deref())
        .bind(row.opened_at)
        .bind(row.retry_at)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One breaker.
    pub async fn get_breaker(&self, name: &str) -> Result<Option<BreakerRow>> {
        sqlx::query(concat!(
            "SELECT ",
            breaker_columns!(),
            " FROM breakers WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(breaker_from_row)
        .transpose()
    }

    /// Every breaker, by name.
    pub async fn list_breakers(&self) -> Result<Vec<BreakerRow>> {
        sqlx::query(concat!(
            "SELECT ",
            breaker_columns!(),
            " FROM breakers ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(breaker_from_row)
        .collect()
    }
}

fn breaker_from_row(row: &AnyRow) -> Result<BreakerRow> {
    Ok(BreakerRow {
        name: row.try_get("name")?,
        state: row.try_get("state")?,
        failures: row.try_get("failures")?,
        reason: row.try_get("reason")?,
        opened_at: row.try_get("opened_at")?,
        retry_at: row.try_get("retry_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
