//! The response schemas of the views the handlers still build with
//! `serde_json::json!`. Schema-only: each mirrors the `json!` of the
//! function it names; times are RFC 3339 UTC strings. The typed views of
//! [`crate::views`] are their own schemas; an object moves there, and out
//! of here, once its handlers send the typed view.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::views::{Alert, Breaker};

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

/// `tasks::report`.
#[derive(Serialize, ToSchema)]
pub struct EventSeq {
    pub seq: i64,
}

/// `tasks::events`.
#[derive(Serialize, ToSchema)]
pub struct TaskEvents {
    pub events: Vec<TaskEvent>,
}

/// One task event.
#[derive(Serialize, ToSchema)]
pub struct TaskEvent {
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Value,
    pub at: String,
}

/// The gates bound to a stage (`gates::binding_view`).
#[derive(Serialize, ToSchema)]
pub struct GateBinding {
    pub stage: String,
    /// `api` or `config`.
    pub source: String,
    pub gates: Vec<String>,
    /// `all`, `majority` or `<k>-of-<n>`.
    pub quorum: String,
    pub reject_to: String,
    /// `escalate` or `reject`.
    pub on_error: String,
    /// Per gate, config values in force while its breaker is open.
    #[schema(value_type = Option<Object>)]
    pub relax: Option<Value>,
    pub relax_minutes: u64,
}

/// `gates::list`.
#[derive(Serialize, ToSchema)]
pub struct GateBindings {
    pub bindings: Vec<GateBinding>,
}

/// One gate's verdict (`gates::verdict_view`).
#[derive(Serialize, ToSchema)]
pub struct Verdict {
    pub id: String,
    pub decision_id: String,
    pub task_id: String,
    pub stage: String,
    pub gate: String,
    pub version: String,
    pub digest: String,
    /// `approve`, `reject` or `escalate`.
    pub decision: String,
    pub score: i64,
    pub reasons: Vec<VerdictReason>,
    pub error: Option<String>,
    /// Judged with relaxed config (its breaker was open).
    pub relaxed: bool,
    pub wall_ms: i64,
    pub at: String,
}

/// A reason of a [`Verdict`].
#[derive(Serialize, ToSchema)]
pub struct VerdictReason {
    pub category: String,
    pub message: String,
}

/// A gated transition and its verdicts (`gates::decision_view`).
#[derive(Serialize, ToSchema)]
pub struct GateDecision {
    pub id: String,
    pub stage: String,
    pub token: i64,
    pub quorum: String,
    pub outcome: String,
    pub approvals: i64,
    pub rejections: i64,
    pub escalations: i64,
    pub summary: String,
    pub at: String,
    pub verdicts: Vec<Verdict>,
}

/// `gates::task_verdicts`.
#[derive(Serialize, ToSchema)]
pub struct TaskVerdicts {
    pub task_id: String,
    pub decisions: Vec<GateDecision>,
}

/// `gates::verdicts`.
#[derive(Serialize, ToSchema)]
pub struct VerdictList {
    pub verdicts: Vec<Verdict>,
}

/// `{"deleted": true}`.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: bool,
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

/// Hourly budgets; `null` is none.
#[derive(Serialize, ToSchema)]
pub struct HourlyBudget {
    pub tokens: Option<i64>,
    pub cost_usd: Option<f64>,
}

/// `workspace::get_mode`, `workspace::set_mode`.
#[derive(Serialize, ToSchema)]
pub struct ModeView {
    /// `normal`, `minimal`, `read-only` or `emergency-stop`.
    pub mode: String,
    pub reason: Option<String>,
}

/// `workspace::settings_view`.
#[derive(Serialize, ToSchema)]
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

/// `workspace::workers`.
#[derive(Serialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<Worker>,
}

/// A worker.
#[derive(Serialize, ToSchema)]
pub struct Worker {
    pub id: String,
    pub first_seen_at: String,
    pub last_heartbeat_at: String,
    pub active_leases: i64,
}

/// A token just created (`tokens::create`): the secret shows only here.
#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub role: String,
    /// The bearer secret.
    pub token: String,
    pub created_at: String,
}

/// A token, without its secret.
#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub workspace: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// `tokens::list`.
#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `tokens::audit`.
#[derive(Serialize, ToSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
}

/// One audit event.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
}

/// A plugin as a workspace sees it (`plugins::plugin_view`).
#[derive(Serialize, ToSchema)]
pub struct Plugin {
    pub name: String,
    /// `playbook`, `quality-gate` or `routing-policy`.
    pub kind: String,
    pub description: String,
    pub latest: Option<String>,
    pub versions: Vec<PluginVersion>,
    pub workspace: String,
    pub pin: PinInForce,
    pub pinned_version: Option<String>,
    pub pinned_digest: Option<String>,
    pub capabilities_requested: Vec<String>,
    pub capabilities_granted: Vec<String>,
    pub missing_grants: Vec<String>,
    /// `active` or `retired`.
    pub state: String,
}

/// The pin in force of a [`Plugin`].
#[derive(Serialize, ToSchema)]
pub struct PinInForce {
    pub selector: String,
    /// `api`, `config` or `default`.
    pub source: String,
}

/// One version of a plugin (`plugins::version_view`).
#[derive(Serialize, ToSchema)]
pub struct PluginVersion {
    pub version: String,
    pub digest: String,
    pub size: u64,
    /// `bundled`, `directory` or `upload`.
    pub source: String,
    pub source_path: Option<String>,
    /// `active` or `retired`.
    pub state: String,
    pub added_at: String,
    pub capabilities_requested: Vec<String>,
    pub capabilities_required: Vec<String>,
    /// Only when one plugin is shown.
    pub imports: Option<Vec<String>>,
    /// Only when one plugin is shown.
    pub limits: Option<Value>,
    pub idempotent: bool,
    pub concurrent: bool,
}

/// `plugins::list`.
#[derive(Serialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<Plugin>,
    /// Files that were not loaded, and why.
    pub rejected: Vec<Rejection>,
}

/// A plugin file that was not loaded (`registry::Rejection`).
#[derive(Serialize, ToSchema)]
pub struct Rejection {
    pub source: String,
    pub digest: Option<String>,
    pub reason: String,
    /// Milliseconds since the epoch.
    pub at: i64,
}

/// `plugins::upload`.
#[derive(Serialize, ToSchema)]
pub struct PluginUploaded {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub version: PluginVersion,
}

/// A version pin (`plugins::pin_view`).
#[derive(Serialize, ToSchema)]
pub struct Pin {
    pub plugin: String,
    pub selector: String,
    pub actor: String,
    pub updated_at: String,
    /// Only in the answer to a `PUT`.
    pub resolves_to: Option<PinTarget>,
}

/// What a [`Pin`] resolves to.
#[derive(Serialize, ToSchema)]
pub struct PinTarget {
    pub version: String,
    pub digest: String,
}

/// `plugins::list_pins`.
#[derive(Serialize, ToSchema)]
pub struct PinList {
    pub pins: Vec<Pin>,
}

/// Capabilities granted over the API (`plugins::grant_view`).
#[derive(Serialize, ToSchema)]
pub struct Grant {
    pub plugin: String,
    pub capabilities: Vec<String>,
    pub actor: String,
    pub updated_at: String,
}

/// `plugins::list_grants`.
#[derive(Serialize, ToSchema)]
pub struct GrantList {
    pub grants: Vec<Grant>,
}

/// A silence (`alerting::silence_view`).
#[derive(Serialize, ToSchema)]
pub struct Silence {
    pub id: String,
    pub workspace: Option<String>,
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub dedup_key: Option<String>,
    pub comment: String,
    pub created_by: String,
    pub created_at: String,
    pub ends_at: String,
    pub active: bool,
}

/// `alerting::silences`.
#[derive(Serialize, ToSchema)]
pub struct SilenceList {
    pub silences: Vec<Silence>,
}

/// A list of objects under one key: `{"<key>": [ {...}, ... ]}` (`key`
/// is named in the response's description).
#[derive(Serialize, ToSchema)]
pub struct Notifications {
    #[schema(value_type = Vec<Object>)]
    pub notifications: Vec<Value>,
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
