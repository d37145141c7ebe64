//! Keeping PostgreSQL's busiest tables small under sustained load.
//!
//! Every claim and completion rewrites its task's row and its run's row,
//! and almost every column they change is indexed, so each stage leaves
//! about two dead row versions behind. Autovacuum looks at a database once
//! a minute by default; at thousands of stages a second that is hundreds
//! of thousands of dead versions for every claim to step over, and the
//! scheduler slows down by a third (docs/architecture.md). The scheduler's
//! leader therefore vacuums these tables itself when their dead versions
//! outnumber their live rows.

use sqlx::{AssertSqlSafe, Row};

use crate::{Dialect, Result, Store};

/// The tables a stage's claim and completion rewrite.
const HOT_TABLES: [&str; 3] = ["tasks", "stage_runs", "workers"];

/// A table [`Store::vacuum_hot_tables`] vacuumed, with the counts that made
/// it do so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vacuumed {
    /// The table.
    pub table: &'static str,
    /// Dead row versions before.
    pub dead: i64,
    /// Live rows.
    pub live: i64,
}

impl Store {
    /// On PostgreSQL, `VACUUM (ANALYZE)` on each of the scheduler's
    /// busiest tables (in the connection's schema) that has more dead row
    /// versions than `min_dead` and than live rows, by the statistics
    /// collector's counts (about a second behind). Nothing on SQLite, which
    /// reuses free pages by itself. Returns what it vacuumed.
    pub async fn vacuum_hot_tables(&self, min_dead: i64) -> Result<Vec<Vacuumed>> {
        if self.dialect != Dialect::Postgres {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT CAST(relname AS TEXT) AS name, n_dead_tup AS dead, n_live_tup AS live \
             FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut vacuumed = Vec::new();
        for row in &rows {
            let name: String = row.try_get("name")?;
            let (dead, live): (i64, i64) = (row.try_get("dead")?, row.try_get("live")?);
            // Only ours; the name vacuumed is our constant, never the
            // database's text.
            let Some(table) = HOT_TABLES.into_iter().find(|t| *t == name) else {
                continue;
            };
            if dead <= min_dead || dead <= live {
                continue;
            }
            // VACUUM cannot run in a transaction: the simple protocol, alone.
            sqlx::raw_sql(AssertSqlSafe(format!("VACUUM (ANALYZE) {table}")))
                .execute(&self.pool)
                .await?;
            vacuumed.push(Vacuumed { table, dead, live });
        }
        Ok(vacuumed)
    }
}
