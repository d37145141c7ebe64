//! The connection pool, dialect detection and migrations.

use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::any::{Any, AnyPoolOptions};
use sqlx::migrate::Migrator;

use crate::{Error, Result};

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, one file (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// A handle on the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: sqlx::AnyPool,
    pub(crate) dialect: Dialect,
    /// The PostgreSQL URL, for the dedicated connections of listeners and
    /// singleton locks (`None` on SQLite).
    pub(crate) pg_url: Option<std::sync::Arc<str>>,
}

/// The migrations of each dialect, embedded at build time (`build.rs` makes
/// cargo notice new files).
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connections per pool. SQLite serializes writers anyway; a few
/// connections let readers proceed in WAL mode while one writes.
const SQLITE_MAX_CONNECTIONS: u32 = 8;
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// How long `connect` waits for PostgreSQL to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL connection idle in the pool at least this long is pinged
/// before it is handed out. The pool pings every connection it takes back,
/// so a busy connection was checked a moment ago; pinging it again on
/// every acquire too would cost a round trip per query under load.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Per-connection settings of SQLite. `busy_timeout` (how long a writer
/// waits for another connection's lock before failing with "database is
/// locked") comes first, so that switching a fresh file to WAL waits for
/// other connections instead of failing. `synchronous` follows, from
/// [`sqlite_synchronous`].
fn sqlite_pragmas(synchronous: &str) -> String {
    format!(
        "PRAGMA busy_timeout = 5000; \
         PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = {synchronous}; \
         PRAGMA foreign_keys = ON;"
    )
}

/// The `synchronous` setting of a SQLite database: `NORMAL` unless the
/// URL says `?synchronous=full` (or `extra`, `off`). In WAL mode `NORMAL`
/// syncs the log at checkpoints only: a commit survives a crash or a
/// `kill -9` of Warden (SPEC RL-4), but a power loss or an OS crash can
/// drop the last acknowledged commits (it never corrupts the file).
/// `FULL` syncs every commit before it is acknowledged, at up to 2.6x
/// fewer writes per second on the development machine (docs/configuration.md).
fn sqlite_synchronous(value: Option<&str>) -> Result<&'static str> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        Some("full") | Some("2") => Ok("FULL"),
        None | Some("normal") | Some("1") => Ok("NORMAL"),
        Some("off") | Some("0") => Ok("OFF"),
        Some("extra") | Some("3") => Ok("EXTRA"),
        Some(other) => Err(Error::Connect(format!(
            "invalid synchronous \"{other}\" in the SQLite URL: use normal (the default), full, extra or off"
        ))),
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path/to/file.db`, `sqlite::memory:`,
    /// `postgres://user@host/db`). A SQLite file and its directory are
    /// created when missing; SQLite runs in WAL mode with a busy timeout.
    pub async fn connect(url: &str) -> Result<Store> {
        // Idempotent: sqlx guards it with a `Once` of its own.
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            connect_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // One plain attempt first: the pool would retry a refused
            // connection until its acquire timeout, and a wrong URL should
            // fail at once with the server's reason.
            let probe = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect(url))
                .await
                .map_err(|_| {
                    Error::Connect(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))
                })?
                .map_err(|e| Error::Connect(e.to_string()))?;
            let _ = probe.close().await;
            let pool = AnyPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_IDLE_AFTER {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .connect(url)
                .await
                .map_err(|e| Error::Connect(e.to_string()))?;
            Ok(Store {
                pool,
                dialect: Dialect::Postgres,
                pg_url: Some(url.into()),
            })
        } else {
            Err(Error::UnsupportedUrl(url.to_string()))
        }
    }

    /// Applies the migrations of the dialect (`migrations/sqlite` or
    /// `migrations/postgres`), embedded at build time.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| Error::Migrate(e.to_string()))
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Round-trip time of a trivial query; an error when the database is
    /// unreachable.
    pub async fn ping(&self) -> Result<Duration> {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(started.elapsed())
    }

    /// When a commit is on disk: SQLite's `synchronous` (`full`,
    /// `normal`, `off` or `extra`, as a connection of the pool has it),
    /// PostgreSQL's `synchronous_commit`. Logged at start.
    pub async fn sync_mode(&self) -> Result<String> {
        Ok(match self.dialect {
            Dialect::Sqlite => {
                let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&self.pool)
                    .await?;
                match level {
                    0 => "off",
                    1 => "normal",
                    2 => "full",
                    3 => "extra",
                    _ => "unknown",
                }
                .to_string()
            }
            Dialect::Postgres => {
                sqlx::query_scalar("SELECT CAST(current_setting('synchronous_commit') AS TEXT)")
                    .fetch_one(&self.pool)
                    .await?
            }
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock up front (`BEGIN IMMEDIATE`): a deferred transaction that reads
    /// and then writes can fail at once with "database is locked" when
    /// another connection wrote in between, without waiting for the busy
    /// timeout.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>> {
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }
}

/// Opens a SQLite pool: creates the file and its directory, sets the
/// per-connection PRAGMAs, and keeps an in-memory database on exactly one
/// connection that never closes (each connection to `:memory:` would be a
/// database of its own, and closing the last one loses it).
async fn connect_sqlite(url: &str) -> Result<Store> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    let param = |name: &str| {
        params
            .into_iter()
            .flat_map(|p| p.split('&'))
            .find_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key == name).then_some(value)
            })
    };
    let in_memory = path.is_empty() || path == ":memory:" || param("mode") == Some("memory");
    let pragmas: std::sync::Arc<str> =
        sqlite_pragmas(sqlite_synchronous(param("synchronous"))?).into();
    // `synchronous` is Warden's parameter, not sqlx's (which refuses any
    // it does not know): the URL sqlx sees goes without it.
    let kept: Vec<&str> = params
        .into_iter()
        .flat_map(|p| p.split('&'))
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("synchronous"))
        .collect();
    let scheme = &url[..url.len() - rest.len()];
    let base = if kept.is_empty() {
        format!("{scheme}{path}")
    } else {
        format!("{scheme}{path}?{}", kept.join("&"))
    };
    let url = base.as_str();
    let params = (!kept.is_empty()).then_some(());

    let mut options = AnyPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(move |conn, _meta| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas.to_string()))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        });
    let url = if in_memory {
        options = options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
        url.to_string()
    } else {
        let file = percent_decode(path);
        if let Some(dir) = std::path::Path::new(&file).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Connect(format!(
                    "cannot create the directory \"{}\" of the SQLite database: {e}",
                    dir.display()
                ))
            })?;
        }
        options = options.max_connections(SQLITE_MAX_CONNECTIONS);
        if param("mode").is_some() {
            url.to_string()
        } else if params.is_some() {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        }
    };
    let pool = options
        .connect(&url)
        .await
        .map_err(|e| Error::Connect(e.to_string()))?;
    Ok(Store {
        pool,
        dialect: Dialect::Sqlite,
        pg_url: None,
    })
}

/// Decodes `%XX` escapes the way sqlx does for SQLite paths (so that `?`
/// and `#` can appear in a file name); anything malformed is kept as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_keeps_plain_paths_and_decodes_escapes() {
        assert_eq!(percent_decode("data/warden.db"), "data/warden.db");
        assert_eq!(percent_decode("a%3Fb%23c.db"), "a?b#c.db");
        assert_eq!(percent_decode("100%.db"), "100%.db");
    }

    #[tokio::test]
    async fn unsupported_url_is_refused_with_a_hint() {
        let err = Store::connect("mysql://localhost/db")
            .await
            .expect_err("mysql is not supported");
        assert_eq!(
            err.to_string(),
            "unsupported database url \"mysql://localhost/db\": use sqlite://<path> or postgres://..."
        );
    }

    #[tokio::test]
    async fn memory_database_is_shared_by_every_caller() {
        let store = Store::connect("sqlite::memory:").await.expect("connect");
        store.migrate().await.expect("migrate");
        store.kv_set("ws", "p", "k", b"v", 10).await.expect("set");
        let clone = store.clone();
        let got = tokio::spawn(async move { clone.kv_get("ws", "p", "k").await })
            .await
            .expect("join")
            .expect("get");
        assert_eq!(got.as_deref(), Some(&b"v"[..]));
        assert!(store.ping().await.is_ok());
    }
}
