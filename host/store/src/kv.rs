//! `kv`: small per-plugin, per-workspace state (SPEC PL-2 `kv`).

use crate::util::clamp_limit;
use crate::{Dialect, Error, Result, Store, now_ms};

impl Store {
    /// A value.
    pub async fn kv_get(
        &self,
        workspace: &str,
        plugin: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        let value: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT value FROM kv WHERE workspace = $1 AND plugin = $2 AND key = $3",
        )
        .bind(workspace)
        .bind(plugin)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(value)
    }

    /// Sets a value. Adding a key beyond `max_keys` for the (workspace,
    /// plugin) fails with `Error::Conflict` ("kv holds 1000 keys, the
    /// limit"); replacing an existing key always works.
    pub async fn kv_set(
        &self,
        workspace: &str,
        plugin: &str,
        key: &str,
        value: &[u8],
        max_keys: i64,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // Counting and inserting must not interleave with another writer of
        // the same plugin's keys, or both could add the last free key. SQLite
        // holds the database's write lock since BEGIN IMMEDIATE; PostgreSQL
        // takes a transaction-scoped advisory lock on a 64-bit hash of the
        // (workspace, plugin) pair, prefixed so it does not meet other users
        // of advisory locks.
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('warden.kv/' || $1 || '/' || $2, 0))")
                .bind(workspace)
                .bind(plugin)
                .execute(&mut *tx)
                .await?;
        }
        let replaced = sqlx::query("UPDATE kv SET value = $4, updated_at = $5 WHERE workspace = $1 AND plugin = $2 AND key = $3")
            .bind(workspace)
            .bind(plugin)
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if replaced.rows_affected() == 0 {
            let held: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM kv WHERE workspace = $1 AND plugin = $2",
            )
            .bind(workspace)
            .bind(plugin)
            .fetch_one(&mut *tx)
            .await?;
            if held >= max_keys {
                return Err(Error::Conflict(format!(
                    "kv holds {max_keys} keys, the limit"
                )));
            }
            sqlx::query("INSERT INTO kv (workspace, plugin, key, value, updated_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(workspace)
                .bind(plugin)
                .bind(key)
                .bind(value)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a key; true when it existed.
    pub async fn kv_delete(&self, workspace: &str, plugin: &str, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM kv WHERE workspace = $1 AND plugin = $2 AND key = $3")
            .bind(workspace)
            .bind(plugin)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Keys starting with `prefix`, in order, at most `limit`.
    ///
    /// Keys are ordered byte-wise on both dialects. A `limit` of 0 or less
    /// means 100; at most 1000 are returned.
    pub async fn kv_list(
        &self,
        workspace: &str,
        plugin: &str,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        // `substr` rather than LIKE, whose `%` and `_` would need escaping.
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT key FROM kv WHERE workspace = $1 AND plugin = $2 AND substr(key, 1, length($3)) = $3 \
             ORDER BY key LIMIT $4",
        )
        .bind(workspace)
        .bind(plugin)
        .bind(prefix)
        .bind(clamp_limit(limit, 100, 1000))
        .fetch_all(&self.pool)
        .await?;
        Ok(keys)
    }
}
