//! The response schemas of the views the handlers still build with
//! `serde_json::json!`. Schema-only: each mirrors the `json!` of the
//! function it names; times are RFC 3339 UTC strings. The typed views of
//! [`crate::views`] are their own schemas; an object moves there, and out
//! of here, once its handlers send the typed view.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::views::{Alert, Breaker, HourlyBudget};

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

/// A workspace's status (`workspace::status`): what runs, or why nothing
/// does.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceStatus {
    pub workspace: String,
    pub mode: String,
    pub mode_reason: Option<String>,
    /// Task counts by state.
    pub tasks_by_state: BTreeMap<String, i64>,
    pub running: Vec<RunningTask>,
    pub idle: bool,
    /// Why nothing runs, when nothing does.
    pub why_idle: Option<Value>,
    pub workers: Vec<LiveWorker>,
    pub alerts: Vec<Alert>,
    pub breakers: Vec<Breaker>,
    pub usage_this_hour: HourlyUsage,
    pub hourly_budget: HourlyBudget,
}

/// A running task in [`WorkspaceStatus`].
#[derive(Serialize, ToSchema)]
pub struct RunningTask {
    pub task_id: String,
    pub title: String,
    pub stage: String,
    pub worker: Option<String>,
    pub token: Option<i64>,
    pub lease_expires_at: Option<String>,
    pub attempt: i64,
}

/// A worker seen lately, in [`WorkspaceStatus`].
#[derive(Serialize, ToSchema)]
pub struct LiveWorker {
    pub id: String,
    pub last_heartbeat_at: String,
    pub active_leases: i64,
}

/// Usage of the current hour.
#[derive(Serialize, ToSchema)]
pub struct HourlyUsage {
    pub tokens: i64,
    pub cost_usd: f64,
}

/// `alerting::sinks`.
#[derive(Serialize, ToSchema)]
pub struct Sinks {
    #[schema(value_type = Vec<Object>)]
    pub sinks: Vec<Value>,
}

/// `processes::list`.
#[derive(Serialize, ToSchema)]
pub struct Processes {
    #[schema(value_type = Vec<Object>)]
    pub processes: Vec<Value>,
}

/// `gateway::providers`.
#[derive(Serialize, ToSchema)]
pub struct Providers {
    #[schema(value_type = Vec<Object>)]
    pub providers: Vec<Value>,
}

/// `gateway::calls`.
#[derive(Serialize, ToSchema)]
pub struct GatewayCalls {
    #[schema(value_type = Vec<Object>)]
    pub calls: Vec<Value>,
}

/// `workspace::forget_agent`.
#[derive(Serialize, ToSchema)]
pub struct DeletedCheckpoints {
    pub deleted: bool,
    /// How many versions were deleted.
    pub versions: i64,
}
