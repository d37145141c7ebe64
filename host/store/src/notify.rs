//! Cross-host coordination (SPEC ST-2): notifications that wake waiting
//! claims on every host (`LISTEN/NOTIFY`), and singleton locks so that one
//! host at a time runs the sweeper loops (session advisory locks, released
//! when their connection closes, so a killed host releases its lock). On
//! SQLite, the single-host default, notifications are local only and every
//! lock is granted.

use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use sqlx::Connection as _;

use crate::{Error, Result, Store};

/// A subscription to a notification channel (PostgreSQL).
pub struct Listener {
    inner: sqlx::postgres::PgListener,
}

impl Listener {
    /// The next payload; an error when the connection is lost (listen
    /// again: notifications sent meanwhile are lost).
    pub async fn recv(&mut self) -> Result<String> {
        let n = self.inner.recv().await?;
        Ok(n.payload().to_string())
    }
}

/// A held singleton lock; released when dropped, or when the process dies
/// and its connection closes.
pub struct Singleton {
    conn: Option<sqlx::postgres::PgConnection>,
}

impl Singleton {
    /// False when the lock's connection is gone (then the lock is too).
    pub async fn alive(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(c) => c.ping().await.is_ok(),
        }
    }
}

/// A stable 64-bit advisory lock key for a name.
fn lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(format!("warden:{name}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl Store {
    /// Sends `payload` on `channel` to every listening host (PostgreSQL);
    /// does nothing on SQLite.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        if self.pg_url.is_none() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        pg_notify(&mut conn, channel, payload).await
    }

    /// Listens on `channel` (PostgreSQL); `None` on SQLite.
    pub async fn listen(&self, channel: &str) -> Result<Option<Listener>> {
        let Some(url) = &self.pg_url else {
            return Ok(None);
        };
        let mut inner = sqlx::postgres::PgListener::connect(url)
            .await
            .map_err(|e| Error::Connect(e.to_string()))?;
        inner.listen(channel).await?;
        Ok(Some(Listener { inner }))
    }

    /// Takes the singleton lock named `name` when no other host holds it.
    pub async fn try_singleton(&self, name: &str) -> Result<Option<Singleton>> {
        let Some(url) = &self.pg_url else {
            return Ok(Some(Singleton { conn: None }));
        };
        let mut conn = sqlx::postgres::PgConnection::connect(url)
            .await
            .map_err(|e| Error::Connect(e.to_string()))?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(name))
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(Singleton { conn: Some(conn) }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Every workspace that has tasks.
    pub async fn list_workspaces(&self) -> Result<Vec<String>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT workspace FROM tasks ORDER BY workspace")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows)
    }
}

/// Sends `payload` on `channel` through `conn` (PostgreSQL): at once, or
/// when its transaction commits.
pub(crate) async fn pg_notify(
    conn: &mut AnyConnection,
    channel: &str,
    payload: &str,
) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
