//! A workspace's status (SPEC TS-8): what runs, or why nothing does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use warden_core::dashboard::Snapshot;
use warden_core::time::{opt_time, time};
use warden_store::tasks::TaskRow;
use warden_store::workers::WorkerRow;

use super::{Alert, Breaker, HourlyBudget};

/// A workspace's status (`workspace::status`): what runs, or why nothing
/// does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
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
    /// What the dashboard shows besides, under their own keys (`window`,
    /// `generated_at`, `recent_tasks`, `active_loops`, `quality_gates`,
    /// `token_usage`, `stage_durations`, `bottleneck_stage`, `top_errors`,
    /// `playbook_runs`): not in the document, which fixes only the fields
    /// above.
    #[serde(flatten)]
    #[schema(ignore)]
    pub dashboard: Map<String, Value>,
}

impl WorkspaceStatus {
    /// The status of `s`, with `dashboard` beside it.
    pub fn new(s: &Snapshot, dashboard: Map<String, Value>) -> WorkspaceStatus {
        let settings = &s.settings;
        WorkspaceStatus {
            workspace: s.workspace.clone(),
            mode: settings.mode.to_string(),
            mode_reason: settings.mode_reason.clone(),
            tasks_by_state: s.tasks_by_state.iter().cloned().collect(),
            running: s.running.iter().map(RunningTask::from).collect(),
            idle: s.idle.is_some(),
            // An `Idle` is two strings: it always serialises.
            why_idle: s.idle.as_ref().and_then(|i| serde_json::to_value(i).ok()),
            workers: s.workers.iter().map(LiveWorker::from).collect(),
            alerts: s.alerts.iter().map(Alert::from).collect(),
            breakers: s.breakers.iter().map(Breaker::from).collect(),
            usage_this_hour: HourlyUsage {
                tokens: s.usage_this_hour.0,
                cost_usd: s.usage_this_hour.1 as f64 / 1e6,
            },
            hourly_budget: HourlyBudget::from(settings),
            dashboard,
        }
    }
}

/// A running task in [`WorkspaceStatus`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunningTask {
    pub task_id: String,
    pub title: String,
    pub stage: String,
    pub worker: Option<String>,
    pub token: Option<i64>,
    pub lease_expires_at: Option<String>,
    pub attempt: i64,
}

impl From<&TaskRow> for RunningTask {
    fn from(t: &TaskRow) -> RunningTask {
        RunningTask {
            task_id: t.id.clone(),
            title: t.title.clone(),
            stage: t.stage.clone(),
            worker: t.lease_owner.clone(),
            token: t.lease_token,
            lease_expires_at: opt_time(t.lease_expires_at),
            attempt: t.attempts,
        }
    }
}

/// A worker seen lately, in [`WorkspaceStatus`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveWorker {
    pub id: String,
    pub last_heartbeat_at: String,
    pub active_leases: i64,
}

impl From<&WorkerRow> for LiveWorker {
    fn from(w: &WorkerRow) -> LiveWorker {
        LiveWorker {
            id: w.id.clone(),
            last_heartbeat_at: time(w.last_heartbeat_at),
            active_leases: w.active_leases,
        }
    }
}

/// Usage of the current hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HourlyUsage {
    pub tokens: i64,
    pub cost_usd: f64,
}
