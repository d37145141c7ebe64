//! Warden's storage: one sqlx pool over SQLite (the embedded default) or
//! PostgreSQL, migrations per dialect in `migrations/`, and one module per
//! table (SPEC ST-1).
//!
//! Queries are checked at run time (`sqlx::query_as("...")`), so building
//! never needs a database; correctness comes from the conformance suite in
//! `tests/all`, which runs against both dialects. Domain code calls the
//! functions here and never writes SQL.
//!
//! Conventions: times are `i64` milliseconds since the Unix epoch, JSON
//! columns are `TEXT` holding serialized `serde_json::Value`s, ids are
//! strings (UUID v7 unless said otherwise).
//!
//! ```
//! # async fn demo() -> warden_store::Result<()> {
//! use warden_store::Store;
//!
//! // `sqlite://path/to/warden.db` or `postgres://user@host/db` in production.
//! let store = Store::connect("sqlite::memory:").await?;
//! store.migrate().await?;
//! store.kv_set("default", "restart", "last-run", b"ok", 1000).await?;
//! assert_eq!(store.kv_get("default", "restart", "last-run").await?.as_deref(), Some(&b"ok"[..]));
//! # Ok(())
//! # }
//! # tokio::runtime::Runtime::new().expect("runtime").block_on(demo()).expect("demo");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod names;
mod pool;
mod util;

pub mod actions;
pub mod alerts;
pub mod audit;
pub mod breakers;
pub mod checkpoints;
pub mod gates;
pub mod gateway;
pub mod grants;
pub mod kv;
pub mod maintenance;
pub mod notifications;
pub mod notify;
pub mod pins;
pub mod plugins;
pub mod rules;
pub mod run_events;
pub mod runs;
pub mod settings;
pub mod stages;
pub mod task_events;
pub mod tasks;
pub mod threads;
pub mod tokens;
pub mod usage;
pub mod workers;

pub use error::{Error, Result, UnknownName};
pub use pool::{Dialect, Store};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new time-ordered id (UUID v7, hyphenated).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
