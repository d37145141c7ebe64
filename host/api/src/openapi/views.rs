//! The response schemas of the views the handlers build with
//! `serde_json::json!`. Schema-only: each mirrors the `json!` of the
//! function it names; times are RFC 3339 UTC strings.

use std::collections::BTreeMap;

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

/// A task (`tasks::task_view`).
#[derive(Serialize, ToSchema)]
pub struct Task {
    pub id: String,
    pub workspace: String,
    pub title: String,
    pub body: String,
    pub stage: String,
    /// `queued`, `running`, `waiting_approval`, `blocked`, `failed`, `dead`, `done` or `cancelled`.
    pub state: String,
    pub priority: String,
    pub pipeline: Vec<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub total_attempts: i64,
    pub last_error: Option<String>,
    pub last_fingerprint: Option<String>,
    pub depends_on: Vec<String>,
    pub requires: Vec<String>,
    pub dedup_key: Option<String>,
    /// Set while the task is `running`.
    pub lease: Option<Lease>,
    /// Set while a `queued` task waits for its retry backoff.
    pub next_attempt_at: Option<String>,
    pub budget: TaskBudget,
    pub used: TaskUsed,
    pub created_at: String,
    pub updated_at: String,
    pub last_event_at: String,
    pub finished_at: Option<String>,
    pub gate_rejections: i64,
    /// The reasons of the last gate rejection.
    pub plan_delta: Option<Value>,
}

/// The lease of a running [`Task`].
#[derive(Serialize, ToSchema)]
pub struct Lease {
    pub worker: Option<String>,
    /// The fencing token.
    pub token: Option<i64>,
    pub expires_at: Option<String>,
}

/// A task's budgets; `null` is unlimited.
#[derive(Serialize, ToSchema)]
pub struct TaskBudget {
    pub tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub steps: Option<i64>,
    pub wall_ms: Option<i64>,
}

/// A task's usage so far.
#[derive(Serialize, ToSchema)]
pub struct TaskUsed {
    pub tokens: i64,
    pub cost_usd: f64,
    pub steps: i64,
    pub wall_ms: i64,
}

/// A task with its stage runs (`tasks::get`).
#[derive(Serialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub stage_runs: Vec<StageRun>,
}

/// One claim of a stage (`tasks::stage_run_view`).
#[derive(Serialize, ToSchema)]
pub struct StageRun {
    /// The fencing token.
    pub token: i64,
    pub stage: String,
    pub attempt: i64,
    pub worker: String,
    pub claimed_at: String,
    pub expires_at: String,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub fingerprint: Option<String>,
    pub output: Option<Value>,
}

/// `tasks::list`.
#[derive(Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
}

/// `tasks::dead_letters`.
#[derive(Serialize, ToSchema)]
pub struct DeadLetters {
    pub dead_letters: Vec<Task>,
}

/// `tasks::claim`.
#[derive(Serialize, ToSchema)]
pub struct ClaimResponse {
    pub claims: Vec<Claim>,
    /// Why nothing was claimable, when nothing was.
    pub idle: Option<Value>,
}

/// One claimed stage (`tasks::claim_view`).
#[derive(Serialize, ToSchema)]
pub struct Claim {
    /// The fencing token for heartbeat, complete and fail.
    pub token: i64,
    pub task_id: String,
    pub stage: String,
    pub attempt: i64,
    pub lease_expires_at: String,
    /// The fencing token of the expired lease this claim took over, if it
    /// took one over.
    pub took_over: Option<i64>,
    pub task: Task,
}

/// `tasks::heartbeat`.
#[derive(Serialize, ToSchema)]
pub struct HeartbeatResponse {
    pub token: i64,
    pub lease_expires_at: Option<String>,
}

/// `tasks::complete`.
#[derive(Serialize, ToSchema)]
pub struct CompleteResponse {
    /// False when this token had completed the stage already.
    pub completed: bool,
    pub task: Task,
}

/// `tasks::fail`.
#[derive(Serialize, ToSchema)]
pub struct FailResponse {
    /// False when this token had failed the stage already.
    pub failed: bool,
    pub task: Task,
}

/// `tasks::decide`.
#[derive(Serialize, ToSchema)]
pub struct DecisionResponse {
    pub task: Task,
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

/// A playbook run (`runs::run_view`).
#[derive(Serialize, ToSchema)]
pub struct Run {
    pub id: String,
    pub workspace: String,
    pub plugin: String,
    pub version: String,
    pub digest: String,
    /// `diagnose`, `plan` or `apply`.
    pub mode: String,
    /// `queued`, `running`, `succeeded`, `failed` or `interrupted`.
    pub status: String,
    pub input: Value,
    pub report: Option<Value>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub usage: Option<Value>,
    pub limits: Option<Value>,
    pub actor: String,
    pub trigger: String,
    pub idempotency_key: Option<String>,
    pub plan_run_id: Option<String>,
    pub retry_of: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Present when one run is shown (`GET .../runs/{id}`, `?wait=true`).
    pub actions: Option<RunActions>,
}

/// The actions of a run as SPEC PB-3's report splits them.
#[derive(Serialize, ToSchema)]
pub struct RunActions {
    pub applied: Vec<Action>,
    pub planned: Vec<Action>,
    /// Denied, over budget or failed.
    pub refused: Vec<Action>,
    /// How many actions the run has; the lists hold the first 100 of them
    /// (`GET …/runs/{id}/actions` pages through all).
    pub total: i64,
    /// True when the run has more actions than the lists hold.
    pub truncated: bool,
}

/// One action of a run (`runs::action_view`).
#[derive(Serialize, ToSchema)]
pub struct Action {
    pub seq: i64,
    pub call: String,
    pub target: Option<String>,
    pub args: Value,
    pub status: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub detail: Option<String>,
    pub actor: String,
    pub digest: String,
    pub at: String,
}

/// A run just triggered, not waited for (`runs::respond`).
#[derive(Serialize, ToSchema)]
pub struct RunAccepted {
    pub id: String,
    pub status: String,
    pub digest: String,
    /// False when the idempotency key named an existing run.
    pub created: bool,
    pub run: Run,
}

/// What triggering a run answers: [`RunAccepted`], or with `?wait=true`
/// the run itself.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum RunTriggered {
    Accepted(RunAccepted),
    Waited(Run),
}

/// `runs::list`.
#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
}

/// `runs::actions`.
#[derive(Serialize, ToSchema)]
pub struct ActionList {
    pub actions: Vec<Action>,
    /// The `after` of the next page; null when this page is the last.
    pub next_after: Option<i64>,
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

/// An alert (`workspace::alert_view`).
#[derive(Serialize, ToSchema)]
pub struct Alert {
    pub id: String,
    pub dedup_key: String,
    /// `null` for the host's own alerts.
    pub workspace: Option<String>,
    pub rule: String,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    pub summary: String,
    pub detail: Value,
    pub first_at: String,
    pub last_at: String,
    pub count: i64,
    pub resolved_at: Option<String>,
    pub acked_by: Option<String>,
    pub acked_at: Option<String>,
    pub notified_at: Option<String>,
    pub resolve_notified: bool,
    pub silenced_by: Option<String>,
}

/// A list of alerts.
#[derive(Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<Alert>,
}

/// A circuit breaker (`workspace::breaker_view`).
#[derive(Serialize, ToSchema)]
pub struct Breaker {
    pub name: String,
    /// `closed`, `open` or `half-open`.
    pub state: String,
    pub failures: i64,
    pub reason: Option<String>,
    pub opened_at: Option<String>,
    pub retry_at: Option<String>,
    pub updated_at: Option<String>,
}

/// `workspace::breakers`.
#[derive(Serialize, ToSchema)]
pub struct BreakerList {
    pub breakers: Vec<Breaker>,
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
