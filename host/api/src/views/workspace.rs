//! A workspace's mode (SPEC TS-7), settings and workers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::time::time;
use warden_store::settings::SettingsRow;
use warden_store::workers::WorkerRow;

/// `workspace::get_mode`, `workspace::set_mode`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModeView {
    /// `normal`, `minimal`, `read-only` or `emergency-stop`.
    pub mode: String,
    pub reason: Option<String>,
}

impl From<&SettingsRow> for ModeView {
    fn from(s: &SettingsRow) -> ModeView {
        ModeView {
            mode: s.mode.to_string(),
            reason: s.mode_reason.clone(),
        }
    }
}

/// A workspace's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    pub mode: String,
    pub mode_reason: Option<String>,
    pub pipeline: Option<Vec<String>>,
    pub limits: Value,
    pub hourly_budget: HourlyBudget,
    pub actor: String,
    /// `null` before the first change.
    pub updated_at: Option<String>,
}

impl From<&SettingsRow> for Settings {
    fn from(s: &SettingsRow) -> Settings {
        Settings {
            mode: s.mode.to_string(),
            mode_reason: s.mode_reason.clone(),
            pipeline: s.pipeline.clone(),
            limits: s.limits.clone(),
            hourly_budget: HourlyBudget::from(s),
            actor: s.actor.clone(),
            updated_at: (s.updated_at > 0).then(|| time(s.updated_at)),
        }
    }
}

/// Hourly budgets; `null` is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HourlyBudget {
    pub tokens: Option<i64>,
    pub cost_usd: Option<f64>,
}

impl From<&SettingsRow> for HourlyBudget {
    fn from(s: &SettingsRow) -> HourlyBudget {
        HourlyBudget {
            tokens: s.hourly_tokens,
            cost_usd: s.hourly_cost_micros.map(|c| c as f64 / 1e6),
        }
    }
}

/// `workspace::workers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<Worker>,
}

/// A worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Worker {
    pub id: String,
    pub first_seen_at: String,
    pub last_heartbeat_at: String,
    pub active_leases: i64,
}

impl From<&WorkerRow> for Worker {
    fn from(w: &WorkerRow) -> Worker {
        Worker {
            id: w.id.clone(),
            first_seen_at: time(w.first_seen_at),
            last_heartbeat_at: time(w.last_heartbeat_at),
            active_leases: w.active_leases,
        }
    }
}
