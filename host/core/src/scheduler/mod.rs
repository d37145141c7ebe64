//! Task scheduling (SPEC TS-1..TS-9, ST-2): stage pipelines, claims with
//! fenced leases, retries with backoff and equal jitter, the dead-letter queue,
//! budgets, loop guards, degradation modes and why a workspace is idle.
//!
//! The store applies each change atomically; the rules are here: what the
//! next stage is, when a failure is retried, dead or blocked, when a claim
//! is refused, which alerts are raised.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warden_store::settings::SettingsRow;
use warden_store::stages::{
    AfterComplete, AfterFail, Also, ClaimEvents, ClaimRequest, Claimed, Completing, Completion,
    Failure, Fence, Judged, LeaseLimits, Written,
};
use warden_store::task_events::NewEvent;
pub use warden_store::task_events::{
    BudgetEvent, EventKind, GateEvent, GuardrailsEvent, StatusEvent, Stop, StopEvent, TaskEvent,
};
use warden_store::tasks::{NewTask, TaskBudget, TaskQuery, TaskRow, TaskState};
use warden_store::usage::UsageDelta;
use warden_store::{Dialect, Store};

use crate::alerts::{Alerts, Severity};
pub use crate::config::scheduler::{
    DEFAULT_MAX_EVENT_COST_USD, DEFAULT_MAX_EVENT_TOKENS, DEFAULT_PIPELINE, SchedulerConfig,
};
use crate::error::{Error, Result};
use crate::gates::{Gates, Judgement, Outcome, StageResult};
use crate::sync::Unpoisoned as _;

mod claim;
mod complete;
mod idle;
mod outcome;
mod retry;

pub use crate::wake::{WAKE_CHANNEL, Wake};
pub use retry::RetryPolicy;

/// Stages `minimal` mode skips (SPEC TS-7).
pub const MINIMAL_SKIPS: &[&str] = &["think", "review"];

pub use warden_store::settings::WorkspaceMode;

/// Parses a mode name as a client sends it: INVALID_ARGUMENT naming the
/// modes when it is none of them.
pub fn parse_mode(s: &str) -> Result<WorkspaceMode> {
    s.parse().map_err(|_| {
        Error::invalid(format!(
            "invalid mode \"{}\": expected normal, minimal, read-only or emergency-stop",
            crate::validate::truncate(s, 40)
        ))
    })
}

/// Per-stage lease caps and other per-workspace limits (settings JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkspaceLimits {
    /// Leases this workspace may hold at once.
    pub max_leases: Option<u32>,
    /// Per stage.
    pub max_leases_per_stage: BTreeMap<String, u32>,
}

/// A task to create, as the API takes it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// Title.
    pub title: String,
    /// Body.
    #[serde(default)]
    pub body: String,
    /// `urgent`, `normal` (default) or `low`.
    pub priority: Option<String>,
    /// Stages; default: the workspace's pipeline.
    pub pipeline: Option<Vec<String>>,
    /// First stage; default: the first of the pipeline.
    pub stage: Option<String>,
    /// Ids of tasks this one waits for.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Breakers that must be closed for it to run.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Failures allowed per stage before the dead-letter queue.
    pub max_attempts: Option<u32>,
    /// Budgets.
    #[serde(default)]
    pub budget: BudgetInput,
    /// Reuse an unfinished task with the same key.
    pub dedup_key: Option<String>,
}

/// Budgets as the API takes them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetInput {
    /// Model tokens.
    pub tokens: Option<i64>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// Agent steps (tool calls).
    pub steps: Option<i64>,
    /// Wall time holding leases.
    pub wall_ms: Option<i64>,
}

/// What a claim asks for.
#[derive(Clone, Debug)]
pub struct ClaimOptions {
    /// The worker's id.
    pub worker_id: String,
    /// Up to this many stages.
    pub max: u32,
    /// Lease length.
    pub lease_ms: Option<u64>,
    /// Only these stages.
    pub stages: Vec<String>,
    /// Long-poll: wait this long for work when there is none.
    pub wait: Duration,
}

/// Why a workspace runs nothing (SPEC TS-8).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Idle {
    /// `no_tasks`, `all_blocked_on_dependencies`, `budget_spent`, `mode`,
    /// `process_down`, `breaker_open`, `no_workers`, `backoff`, `blocked`,
    /// `waiting_approval`, `concurrency_limit`, `workers_idle`.
    pub reason: &'static str,
    /// One sentence with the particulars.
    pub message: String,
}

/// A usage report (event `token` or the gateway).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct UsageReport {
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Total tokens, when the reporter does not split them.
    pub tokens: i64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

/// The scheduler. Shared behind an `Arc`.
pub struct Scheduler {
    store: Store,
    config: SchedulerConfig,
    alerts: Alerts,
    gates: Option<Arc<Gates>>,
    /// When each workspace's backlog was last checked on a create (at most
    /// once a second; the stuck detector checks too).
    backlog_checked: Mutex<HashMap<String, std::time::Instant>>,
    wake: Arc<Wake>,
    draining: std::sync::atomic::AtomicBool,
    /// Managed processes, set once they are started; workspaces that need
    /// one that is down get no claims.
    processes: std::sync::OnceLock<Arc<crate::processes::Processes>>,
    /// The id of every task that got an event on this host, for live task
    /// event streams (other hosts' events are found by polling).
    task_events: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Completions without gates written together (PostgreSQL), started on
    /// first use.
    completions: std::sync::OnceLock<crate::completions::Completions>,
    /// The fencing tokens of the leases this host granted and that were
    /// not completed or failed here yet, with when they were granted:
    /// released at shutdown (SPEC RL-5).
    granted: Mutex<HashMap<i64, i64>>,
}

/// The most leases [`Scheduler::release_leases`] remembers; past it, the
/// oldest half is forgotten (those leases expire as usual instead).
const MAX_REMEMBERED_LEASES: usize = 100_000;

fn ms(d: u64) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX)
}

fn usd_to_micros(usd: f64) -> i64 {
    (usd * 1_000_000.0).round().clamp(0.0, i64::MAX as f64) as i64
}

impl Scheduler {
    /// Builds the scheduler.
    pub fn new(
        store: Store,
        config: SchedulerConfig,
        alerts: Alerts,
        gates: Option<Arc<Gates>>,
    ) -> Arc<Self> {
        Arc::new(Scheduler {
            store,
            config,
            alerts,
            gates,
            backlog_checked: Mutex::new(HashMap::new()),
            wake: Arc::new(Wake::default()),
            draining: std::sync::atomic::AtomicBool::new(false),
            processes: std::sync::OnceLock::new(),
            task_events: tokio::sync::broadcast::channel(1024).0,
            completions: std::sync::OnceLock::new(),
            granted: Mutex::new(HashMap::new()),
        })
    }

    /// Remembers leases granted by this host, for [`Scheduler::release_leases`].
    fn remember_leases(&self, claims: &[Claimed]) {
        let now = warden_store::now_ms();
        let mut granted = self.granted.locked();
        if granted.len() + claims.len() > MAX_REMEMBERED_LEASES {
            // Leases completed on another host are never forgotten here;
            // drop the older half rather than grow without end.
            let mut ages: Vec<i64> = granted.values().copied().collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            granted.retain(|_, at| *at > cut);
        }
        for c in claims {
            granted.insert(c.run.id, now);
        }
    }

    /// Forgets a lease this host granted: it is being completed or failed.
    fn forget_lease(&self, token: i64) {
        self.granted.locked().remove(&token);
    }

    /// Gives back every lease this host granted that is still held: the
    /// tasks go back to the queue now rather than when the leases expire
    /// (SPEC RL-5). Called at shutdown, after HTTP and the runs drained; a
    /// worker that completes such a stage later gets the stale-lease 409.
    pub async fn release_leases(&self) {
        let tokens: Vec<i64> = self
            .granted
            .locked()
            .drain()
            .map(|(token, _)| token)
            .collect();
        if tokens.is_empty() {
            return;
        }
        match self
            .store
            .release_leases(&tokens, warden_store::now_ms())
            .await
        {
            Ok(released) => {
                let mut workspaces: Vec<String> = Vec::new();
                for t in &released {
                    self.event(
                        t,
                        StatusEvent::new(TaskState::Queued)
                            .reason("lease released: the host that granted it shut down"),
                    )
                    .await;
                    if !workspaces.contains(&t.workspace) {
                        workspaces.push(t.workspace.clone());
                    }
                }
                for ws in &workspaces {
                    self.announce(ws).await;
                }
                if !released.is_empty() {
                    tracing::info!(
                        leases = released.len(),
                        "released the leases still held by workers of this host; their tasks are queued again"
                    );
                }
            }
            Err(e) => tracing::warn!(
                leases = tokens.len(),
                error = %e,
                "cannot release leases at shutdown; they will expire"
            ),
        }
    }

    /// Subscribes to the ids of tasks that get an event on this host from
    /// now on (a wake-up: the events themselves are read from the store).
    pub fn subscribe_task_events(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.task_events.subscribe()
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Pauses claims of workspaces whose needed processes are down.
    pub fn set_processes(&self, processes: Arc<crate::processes::Processes>) {
        let _ = self.processes.set(processes);
    }

    fn paused_by_process(&self, workspace: &str) -> Option<String> {
        self.processes.get()?.paused_by(workspace)
    }

    /// The wake-ups (the notification listener feeds them).
    pub fn wake(&self) -> &Arc<Wake> {
        &self.wake
    }

    /// Stops granting claims (graceful shutdown, SPEC RL-5) and releases
    /// long-polling claims.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.all();
    }

    /// True once [`Scheduler::drain`] was called: the host is shutting
    /// down (long-lived streams end).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn announce(&self, workspace: &str) {
        self.wake.local(workspace);
        if let Err(e) = self.store.notify(WAKE_CHANNEL, workspace).await {
            tracing::debug!(error = %e, "cannot notify other hosts");
        }
    }

    /// The settings of a workspace (defaults when none were set).
    pub async fn settings(&self, workspace: &str) -> Result<SettingsRow> {
        let row = self.store.get_settings(workspace).await?;
        Ok(settings_or_default(workspace, row))
    }

    /// The mode of a workspace.
    pub async fn mode(&self, workspace: &str) -> Result<(WorkspaceMode, Option<String>)> {
        let s = self.settings(workspace).await?;
        Ok((mode_of(Some(&s)), s.mode_reason))
    }

    /// Switches a workspace's mode (API, CLI, or a breaker).
    pub async fn set_mode(
        &self,
        workspace: &str,
        mode: WorkspaceMode,
        reason: Option<String>,
        actor: &str,
    ) -> Result<SettingsRow> {
        let mut s = self.settings(workspace).await?;
        s.mode = mode;
        s.mode_reason = reason;
        s.actor = actor.to_string();
        s.updated_at = warden_store::now_ms();
        self.store.put_settings(&s).await?;
        self.announce(workspace).await;
        Ok(s)
    }

    /// Replaces a workspace's pipeline, limits and hourly budgets.
    pub async fn set_settings(
        &self,
        workspace: &str,
        pipeline: Option<Vec<String>>,
        limits: WorkspaceLimits,
        hourly_tokens: Option<i64>,
        hourly_cost_usd: Option<f64>,
        actor: &str,
    ) -> Result<SettingsRow> {
        if let Some(p) = &pipeline {
            check_pipeline(p)?;
        }
        let mut s = self.settings(workspace).await?;
        s.pipeline = pipeline;
        s.limits = serde_json::to_value(&limits).unwrap_or_default();
        s.hourly_tokens = hourly_tokens;
        s.hourly_cost_micros = hourly_cost_usd.map(usd_to_micros);
        s.actor = actor.to_string();
        s.updated_at = warden_store::now_ms();
        self.store.put_settings(&s).await?;
        Ok(s)
    }

    fn refuse_in_mode(
        &self,
        workspace: &str,
        mode: WorkspaceMode,
        reason: &Option<String>,
        what: &str,
    ) -> Error {
        Error::ModeRefuses {
            workspace: workspace.to_string(),
            mode: mode.as_str(),
            reason: reason.clone(),
            what: what.to_string(),
        }
    }

    /// Creates a task (SPEC TS-1); refused in `read-only` mode.
    pub async fn create(&self, workspace: &str, t: CreateTask) -> Result<(TaskRow, bool)> {
        let (mode, reason) = self.mode(workspace).await?;
        if mode == WorkspaceMode::ReadOnly {
            return Err(self.refuse_in_mode(workspace, mode, &reason, "creating tasks"));
        }
        if t.title.trim().is_empty() {
            return Err(Error::invalid("title must not be empty"));
        }
        crate::validate::text("title", &t.title, 500).map_err(Error::InvalidArgument)?;
        crate::validate::text("body", &t.body, 256 * 1024).map_err(Error::InvalidArgument)?;
        let priority = t.priority.unwrap_or_else(|| "normal".to_string());
        if !warden_store::tasks::PRIORITIES.contains(&priority.as_str()) {
            return Err(Error::invalid(format!(
                "invalid priority \"{}\": expected urgent, normal or low",
                crate::validate::truncate(&priority, 40)
            )));
        }
        let pipeline = match t.pipeline {
            Some(p) => p,
            None => self
                .settings(workspace)
                .await?
                .pipeline
                .unwrap_or_else(|| self.config.pipeline.clone()),
        };
        check_pipeline(&pipeline)?;
        let stage = t.stage.unwrap_or_else(|| pipeline[0].clone());
        if !pipeline.contains(&stage) {
            return Err(Error::invalid(format!(
                "stage \"{}\" is not in the pipeline {pipeline:?}",
                crate::validate::truncate(&stage, 40)
            )));
        }
        for id in &t.depends_on {
            crate::validate::id("task", id).map_err(Error::InvalidArgument)?;
        }
        for b in &t.requires {
            crate::validate::text("requires", b, 200).map_err(Error::InvalidArgument)?;
        }
        if t.depends_on.len() > 100 || t.requires.len() > 20 {
            return Err(Error::invalid(
                "at most 100 dependencies and 20 required breakers",
            ));
        }
        let max_attempts = t.max_attempts.unwrap_or(self.config.max_attempts);
        if !(1..=100).contains(&max_attempts) {
            return Err(Error::invalid("max_attempts must be between 1 and 100"));
        }
        let b = &t.budget;
        for (name, v) in [
            ("tokens", b.tokens),
            ("steps", b.steps),
            ("wall_ms", b.wall_ms),
        ] {
            if v.is_some_and(|v| v <= 0) {
                return Err(Error::invalid(format!("budget.{name} must be positive")));
            }
        }
        if b.cost_usd.is_some_and(|c| !(c > 0.0 && c.is_finite())) {
            return Err(Error::invalid("budget.cost_usd must be a positive number"));
        }
        if let Some(k) = &t.dedup_key {
            crate::validate::text("dedup_key", k, 200).map_err(Error::InvalidArgument)?;
        }
        let new = NewTask {
            id: warden_store::new_id(),
            workspace: workspace.to_string(),
            title: t.title,
            body: t.body,
            stage,
            priority,
            dedup_key: t.dedup_key,
            pipeline,
            max_attempts: i64::from(max_attempts),
            depends_on: t.depends_on,
            requires: t.requires,
            budget: TaskBudget {
                tokens: b.tokens,
                cost_micros: b.cost_usd.map(usd_to_micros),
                steps: b.steps,
                wall_ms: b.wall_ms,
            },
        };
        let (task, created) = self.store.create_task(&new).await?;
        if created {
            // The event before the wake-up: a claim woken while the event's
            // update holds the task's row would skip it (SKIP LOCKED).
            self.event(
                &task,
                StatusEvent::new(TaskState::Queued).stage(&task.stage),
            )
            .await;
            self.announce(workspace).await;
            if self.backlog_due(workspace) {
                self.check_backlog(workspace).await;
            }
        }
        Ok((task, created))
    }

    async fn event(&self, task: &TaskRow, event: impl Into<TaskEvent>) {
        let event: TaskEvent = event.into();
        let NewEvent { kind, data } = NewEvent::from(event);
        let kind = kind.as_str();
        crate::alerts::info_rule(task, kind, &data);
        if let Err(e) = self
            .store
            .add_task_event(
                &task.workspace,
                &task.id,
                kind,
                &data,
                warden_store::now_ms(),
            )
            .await
        {
            tracing::warn!(task = %task.id, kind, error = %e, "cannot record task event");
        } else {
            let _ = self.task_events.send(Arc::from(task.id.as_str()));
        }
    }

    /// After the commit of events written with a claim or a completion:
    /// their info rules, and a wake-up for the task's live streams.
    fn events_written(&self, task: &TaskRow, events: &[NewEvent]) {
        for e in events {
            crate::alerts::info_rule(task, &e.kind, &e.data);
        }
        if !events.is_empty() {
            let _ = self.task_events.send(Arc::from(task.id.as_str()));
        }
    }

    /// True at most once a second per workspace.
    fn backlog_due(&self, workspace: &str) -> bool {
        let mut checked = self.backlog_checked.locked();
        let now = std::time::Instant::now();
        match checked.get(workspace) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(1) => false,
            _ => {
                if checked.len() > 10_000 {
                    checked.clear();
                }
                checked.insert(workspace.to_string(), now);
                true
            }
        }
    }

    async fn check_backlog(&self, workspace: &str) {
        if let Err(e) = crate::rules::backlog(
            &self.store,
            &self.alerts,
            self.config.backlog_threshold,
            workspace,
        )
        .await
        {
            tracing::warn!(workspace, error = %e, "cannot check the backlog");
        }
    }

    /// Cancels a task.
    pub async fn cancel(&self, workspace: &str, task_id: &str) -> Result<TaskRow> {
        let t = self
            .store
            .cancel_task(workspace, task_id, warden_store::now_ms())
            .await?;
        self.event(&t, StatusEvent::new(TaskState::Cancelled)).await;
        self.event(&t, TaskEvent::StopReason(StopEvent::new(Stop::Cancelled)))
            .await;
        self.announce(workspace).await;
        Ok(t)
    }

    /// Puts a dead task back in the queue (SPEC TS-4).
    pub async fn redrive(&self, workspace: &str, task_id: &str) -> Result<TaskRow> {
        let t = self
            .store
            .redrive(workspace, task_id, warden_store::now_ms())
            .await?;
        let redriven = StatusEvent {
            redriven: Some(true),
            ..StatusEvent::new(TaskState::Queued)
        };
        self.event(&t, redriven).await;
        let _ = self.alerts.resolve(&format!("dead:{task_id}")).await;
        self.announce(workspace).await;
        Ok(t)
    }

    /// Unblocks a blocked task (an operator's decision after a loop guard
    /// or a budget stop).
    pub async fn unblock(&self, workspace: &str, task_id: &str) -> Result<TaskRow> {
        let (_, after) = self
            .store
            .apply_task_change(
                workspace,
                task_id,
                &warden_store::tasks::TaskChange::Unblock,
                None,
            )
            .await?;
        let unblocked = StatusEvent {
            unblocked: Some(true),
            ..StatusEvent::new(TaskState::Queued)
        };
        self.event(&after, unblocked).await;
        self.announce(workspace).await;
        Ok(after)
    }
}

/// The most stages a claim may name. Each becomes a bound parameter, and
/// a list of tens of thousands went past SQLite's and PostgreSQL's bind
/// limits: a 503 for what is bad input.
pub const MAX_CLAIM_STAGES: usize = 64;

/// A claim's `stages`, checked (each a stage name, at most
/// [`MAX_CLAIM_STAGES`]) and without repeats.
fn claim_stages(stages: &[String]) -> Result<Vec<String>> {
    if stages.len() > MAX_CLAIM_STAGES {
        return Err(Error::invalid(format!(
            "stages names {} stages; a claim may name at most {MAX_CLAIM_STAGES}",
            stages.len()
        )));
    }
    for s in stages {
        crate::validate::id("stage", s).map_err(Error::InvalidArgument)?;
    }
    let mut unique = stages.to_vec();
    unique.sort();
    unique.dedup();
    Ok(unique)
}

fn check_pipeline(p: &[String]) -> Result<()> {
    if p.is_empty() || p.len() > 32 {
        return Err(Error::invalid("a pipeline has 1 to 32 stages"));
    }
    for s in p {
        crate::validate::id("stage", s).map_err(Error::InvalidArgument)?;
    }
    let mut sorted = p.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != p.len() {
        return Err(Error::invalid("a pipeline names each stage once"));
    }
    Ok(())
}

/// The settings of `workspace` as read (`row`), else the defaults.
fn settings_or_default(workspace: &str, row: Option<SettingsRow>) -> SettingsRow {
    row.unwrap_or_else(|| SettingsRow {
        workspace: workspace.to_string(),
        mode: WorkspaceMode::Normal,
        mode_reason: None,
        pipeline: None,
        limits: json!({}),
        hourly_tokens: None,
        hourly_cost_micros: None,
        actor: "default".to_string(),
        updated_at: 0,
    })
}

/// The mode of settings as read (`normal` when none are set).
fn mode_of(settings: Option<&SettingsRow>) -> WorkspaceMode {
    settings.map_or(WorkspaceMode::Normal, |s| s.mode)
}

/// (name, used, limit) of each budget a task has.
/// Whether `used` is 80 % of `limit` or more, computed wide: a counter
/// near the 64-bit limit must not wrap (or panic) here.
fn at_80_percent(used: i64, limit: i64) -> bool {
    i128::from(used) * 5 >= i128::from(limit) * 4
}

fn budget_lines(t: &TaskRow) -> Vec<(&'static str, i64, i64)> {
    [
        ("token", t.used.tokens, t.budget.tokens),
        ("cost", t.used.cost_micros, t.budget.cost_micros),
        ("step", t.used.steps, t.budget.steps),
        ("wall time", t.used.wall_ms, t.budget.wall_ms),
    ]
    .into_iter()
    .filter_map(|(n, used, limit)| limit.map(|l| (n, used, l)))
    .collect()
}

/// What a completion writes with it, given the task as it ends up (SPEC
/// OB-3): its `status` event, the gates' `gate` event, `stop_reason` when
/// done; and a wake-up for the other hosts when a stage became claimable
/// (not when a spent budget is about to block the task).
fn completion_writes(t: &TaskRow, token: i64, judgement: Option<&Judgement>) -> Also {
    let status = StatusEvent {
        completed_token: Some(token),
        ..StatusEvent::new(t.state).stage(&t.stage)
    };
    let mut events = vec![NewEvent::from(TaskEvent::Status(status))];
    if let Some(j) = judgement {
        events.push(NewEvent::from(TaskEvent::Gate(gate_event(j))));
    }
    let claimable = t.state == TaskState::Queued && budget_spent(t).is_none();
    // Dependents of a finished task may have become claimable.
    let done = t.state == TaskState::Done;
    if done {
        events.push(NewEvent::from(TaskEvent::StopReason(StopEvent::new(
            Stop::Done,
        ))));
    }
    Also {
        events,
        notify: (claimable || done).then(|| (WAKE_CHANNEL.to_string(), t.workspace.clone())),
    }
}

/// The `gate` event of the gates' judgement: the decision and each
/// verdict.
fn gate_event(j: &Judgement) -> GateEvent {
    GateEvent::Judged {
        decision_id: j.decision.id.clone(),
        stage: j.decision.stage.clone(),
        outcome: j.outcome.name().to_string(),
        quorum: j.decision.quorum.clone(),
        summary: j.decision.summary.clone(),
        verdicts: j
            .verdicts
            .iter()
            .map(|v| warden_store::task_events::GateVerdict {
                gate: v.gate.clone(),
                digest: v.digest.clone(),
                decision: v.decision.clone(),
                score: v.score,
                error: v.error.clone(),
            })
            .collect(),
    }
}

/// The first budget of the task that is spent, named with its figures.
pub fn budget_spent(t: &TaskRow) -> Option<String> {
    budget_lines(t)
        .into_iter()
        .find(|(_, used, limit)| used >= limit)
        .map(|(name, used, limit)| {
            let figures = match name {
                "cost" => format!("${:.2} of ${:.2}", used as f64 / 1e6, limit as f64 / 1e6),
                "wall time" => format!("{} of {} s", used / 1000, limit / 1000),
                "token" => format!("{used} of {limit} tokens"),
                _ => format!("{used} of {limit} steps"),
            };
            format!("the {name} budget of task {} is spent ({figures})", t.id)
        })
}

fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(300).collect()
}

fn ordinal(n: i64) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A running task at `pipeline[stage_index]`, for the rules' tests.
    pub(super) fn task(stage_index: i64, pipeline: &[&str]) -> TaskRow {
        TaskRow {
            id: "t".into(),
            workspace: "w".into(),
            title: String::new(),
            body: String::new(),
            stage: pipeline[stage_index as usize].into(),
            state: TaskState::Running,
            priority: "normal".into(),
            attempts: 1,
            last_error: None,
            dedup_key: None,
            lease_owner: None,
            lease_expires_at: None,
            created_at: 0,
            updated_at: 0,
            last_event_at: 0,
            pipeline: pipeline.iter().map(|s| s.to_string()).collect(),
            stage_index,
            high_water: stage_index,
            priority_rank: 1,
            max_attempts: 3,
            total_attempts: 1,
            next_attempt_at: 0,
            lease_token: Some(1),
            last_fingerprint: None,
            fingerprint_streak: 0,
            depends_on: Vec::new(),
            requires: Vec::new(),
            budget: TaskBudget::default(),
            used: Default::default(),
            finished_at: None,
            gate_rejections: 0,
            plan_delta: None,
        }
    }

    #[test]
    fn budgets_name_themselves() {
        let mut t = task(0, &["a"]);
        t.budget.tokens = Some(100);
        t.used.tokens = 100;
        assert_eq!(
            budget_spent(&t).unwrap(),
            "the token budget of task t is spent (100 of 100 tokens)"
        );
        t.used.tokens = 99;
        assert!(budget_spent(&t).is_none());
    }
}
