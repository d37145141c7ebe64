//! The response schemas of the views the handlers still build with
//! `serde_json::json!`. Schema-only: each mirrors the `json!` of the
//! function it names; times are RFC 3339 UTC strings. The typed views of
//! [`crate::views`] are their own schemas; an object moves there, and out
//! of here, once its handlers send the typed view.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `{"status": "ok"}` (`system::health`).
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `system::ready`.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// The database.
    pub database: ReadyDatabase,
    /// Plugins loaded.
    pub plugins: u64,
}

/// The database of [`Ready`].
#[derive(Serialize, ToSchema)]
pub struct ReadyDatabase {
    /// `sqlite` or `postgres`.
    pub dialect: String,
    /// Round trip of a ping.
    pub latency_ms: f64,
}

/// `alerting::sinks`.
#[derive(Serialize, ToSchema)]
pub struct Sinks {
    #[schema(value_type = Vec<Object>)]
    pub sinks: Vec<Value>,
}

/// `workspace::forget_agent`.
#[derive(Serialize, ToSchema)]
pub struct DeletedCheckpoints {
    pub deleted: bool,
    /// How many versions were deleted.
    pub versions: i64,
}
