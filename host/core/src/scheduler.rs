//! Task scheduling (SPEC TS-1..TS-9, ST-2): stage pipelines, claims with
//! fenced leases, retries with backoff and jitter, the dead-letter queue,
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
use warden_store::tasks::{NewTask, TaskBudget, TaskQuery, TaskRow};
use warden_store::usage::UsageDelta;
use warden_store::{Dialect, Store};

use crate::alerts::{Alerts, Severity};
pub use crate::config::scheduler::{
    DEFAULT_MAX_EVENT_COST_USD, DEFAULT_MAX_EVENT_TOKENS, DEFAULT_PIPELINE, SchedulerConfig,
};
use crate::error::{Error, Result};
use crate::gates::{Gates, Judgement, Outcome, StageResult};
pub use crate::wake::{WAKE_CHANNEL, Wake};

/// Stages `minimal` mode skips (SPEC TS-7).
pub const MINIMAL_SKIPS: &[&str] = &["think", "review"];

/// Degradation modes (SPEC TS-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Everything runs.
    Normal,
    /// `think` and `review` are skipped.
    Minimal,
    /// No new tasks, no claims.
    ReadOnly,
    /// Nothing new starts; leases in flight are kept.
    EmergencyStop,
}

impl Mode {
    /// Parses a mode name.
    pub fn parse(s: &str) -> Result<Mode> {
        match s {
            "normal" => Ok(Mode::Normal),
            "minimal" => Ok(Mode::Minimal),
            "read-only" => Ok(Mode::ReadOnly),
            "emergency-stop" => Ok(Mode::EmergencyStop),
            other => Err(Error::invalid(format!(
                "invalid mode \"{}\": expected normal, minimal, read-only or emergency-stop",
                crate::validate::truncate(other, 40)
            ))),
        }
    }

    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Minimal => "minimal",
            Mode::ReadOnly => "read-only",
            Mode::EmergencyStop => "emergency-stop",
        }
    }
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

/// Event kinds a worker may report (SPEC OB-3).
pub const EVENT_KINDS: &[&str] = &[
    "status",
    "tool_start",
    "tool_result",
    "token",
    "budget",
    "stop_reason",
    "guardrails",
    "log",
];

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
        let mut granted = self.granted.lock().unwrap_or_else(|p| p.into_inner());
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
        self.granted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token);
    }

    /// Gives back every lease this host granted that is still held: the
    /// tasks go back to the queue now rather than when the leases expire
    /// (SPEC RL-5). Called at shutdown, after HTTP and the runs drained; a
    /// worker that completes such a stage later gets the stale-lease 409.
    pub async fn release_leases(&self) {
        let tokens: Vec<i64> = self
            .granted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
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
                        "status",
                        json!({ "state": "queued", "reason": "lease released: the host that granted it shut down" }),
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
    pub async fn mode(&self, workspace: &str) -> Result<(Mode, Option<String>)> {
        let s = self.settings(workspace).await?;
        Ok((mode_of(Some(&s)), s.mode_reason))
    }

    /// Switches a workspace's mode (API, CLI, or a breaker).
    pub async fn set_mode(
        &self,
        workspace: &str,
        mode: Mode,
        reason: Option<String>,
        actor: &str,
    ) -> Result<SettingsRow> {
        let mut s = self.settings(workspace).await?;
        s.mode = mode.name().to_string();
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
        mode: Mode,
        reason: &Option<String>,
        what: &str,
    ) -> Error {
        let why = reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        Error::FailedPrecondition(format!(
            "workspace \"{workspace}\" is in {} mode{why}: {what} is refused; switch it back with PUT /v1/workspaces/{workspace}/mode",
            mode.name()
        ))
    }

    /// Creates a task (SPEC TS-1); refused in `read-only` mode.
    pub async fn create(&self, workspace: &str, t: CreateTask) -> Result<(TaskRow, bool)> {
        let (mode, reason) = self.mode(workspace).await?;
        if mode == Mode::ReadOnly {
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
                "status",
                json!({ "state": "queued", "stage": task.stage }),
            )
            .await;
            self.announce(workspace).await;
            if self.backlog_due(workspace) {
                self.check_backlog(workspace).await;
            }
        }
        Ok((task, created))
    }

    async fn event(&self, task: &TaskRow, kind: &str, data: Value) {
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
        let mut checked = self
            .backlog_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner());
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

    fn lease_limits(&self, settings: &SettingsRow) -> LeaseLimits {
        let ws: WorkspaceLimits =
            serde_json::from_value(settings.limits.clone()).unwrap_or_default();
        LeaseLimits {
            global: self.config.max_leases.map(i64::from),
            workspace: ws
                .max_leases
                .or(self.config.max_leases_per_workspace)
                .map(i64::from),
            per_stage: ws
                .max_leases_per_stage
                .into_iter()
                .map(|(k, v)| (k, i64::from(v)))
                .collect(),
            // While others wait, one workspace may hold at most half of
            // the global cap (or the whole cap when it is alone).
            fair_share: self.config.max_leases.map(|g| i64::from(g.div_ceil(2))),
        }
    }

    async fn open_breakers(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .list_breakers()
            .await?
            .into_iter()
            .filter(|b| b.state == "open")
            .map(|b| b.name)
            .collect())
    }

    /// Claims up to `opts.max` stages (SPEC TS-2). Refused in `read-only`
    /// and `emergency-stop` modes (FAILED_PRECONDITION naming the mode) and
    /// when the workspace's hourly budget is spent (RESOURCE_EXHAUSTED
    /// naming it). With nothing to claim, waits up to `opts.wait` for work,
    /// then answers empty with the reason the workspace is idle; when that
    /// reason is a spent budget, RESOURCE_EXHAUSTED naming it.
    pub async fn claim(
        &self,
        workspace: &str,
        opts: ClaimOptions,
    ) -> Result<(Vec<Claimed>, Option<Idle>)> {
        crate::validate::id("worker", &opts.worker_id).map_err(Error::InvalidArgument)?;
        if !(1..=100).contains(&opts.max) {
            return Err(Error::invalid("max must be between 1 and 100"));
        }
        let stages = claim_stages(&opts.stages)?;
        let lease_ms = opts.lease_ms.unwrap_or(self.config.lease_ms);
        if lease_ms < 1_000 || lease_ms > self.config.max_lease_ms {
            return Err(Error::invalid(format!(
                "lease_ms must be between 1000 and {}",
                self.config.max_lease_ms
            )));
        }
        let deadline = tokio::time::Instant::now() + opts.wait.min(Duration::from_secs(60));
        let notify = self.wake.of(workspace);
        loop {
            if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Unavailable(
                    "this host is shutting down; claim from another host or retry".into(),
                ));
            }
            // Register for wake-ups before looking, so none is missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The settings and the open breakers, in one round trip.
            let (settings, open_breakers) = self.store.claim_context(workspace).await?;
            let mode = mode_of(settings.as_ref());
            let settings = settings_or_default(workspace, settings);
            if matches!(mode, Mode::ReadOnly | Mode::EmergencyStop) {
                return Err(self.refuse_in_mode(
                    workspace,
                    mode,
                    &settings.mode_reason,
                    "claiming",
                ));
            }
            let now = warden_store::now_ms();
            self.check_hourly_budget(workspace, &settings, now).await?;
            let req = ClaimRequest {
                workspace: workspace.to_string(),
                worker_id: opts.worker_id.clone(),
                lease_ms: ms(lease_ms),
                max: i64::from(opts.max),
                stages: stages.clone(),
                open_breakers,
                limits: self.lease_limits(&settings),
                now,
            };
            // A needed process that is down pauses the workspace: nothing is
            // claimed, so no lease is taken only to be failed.
            let claimed = if self.paused_by_process(workspace).is_some() {
                Vec::new()
            } else {
                // A claim the guards keep gets its `running` event with the
                // claim (Claimed::goes_ahead is the guards' rule).
                let events = ClaimEvents::Running {
                    loop_limit: i64::from(self.config.loop_limit),
                };
                self.store.claim_stages_with(&req, events).await?
            };
            let mut granted = Vec::with_capacity(claimed.len());
            for (c, running) in claimed {
                if let Some(kept) = self.guard_claim(c, running).await {
                    granted.push(kept);
                }
            }
            if !granted.is_empty() {
                self.remember_leases(&granted);
                return Ok((granted, None));
            }
            if tokio::time::Instant::now() >= deadline {
                let idle = self.why_idle(workspace).await?;
                if idle.reason == "budget_spent" {
                    return Err(Error::ResourceExhausted(idle.message));
                }
                return Ok((Vec::new(), Some(idle)));
            }
            // Wait for a wake-up, but look again at least every second:
            // backoffs end and leases expire without notifications.
            let pause = (deadline - tokio::time::Instant::now()).min(Duration::from_secs(1));
            let _ = tokio::time::timeout(pause, notified).await;
        }
    }

    /// Checks a fresh claim against the loop guard and the task's budgets;
    /// a claim that may not proceed is failed at once (blocking the task)
    /// and not handed out. `running` is the event written with the claim
    /// when the guards kept it ([`Scheduler::claim_block`] was `None`).
    async fn guard_claim(&self, c: Claimed, running: Option<NewEvent>) -> Option<Claimed> {
        let t = &c.task;
        debug_assert_eq!(
            running.is_some(),
            self.claim_block(&c).is_none(),
            "the store's rule for a claim going ahead is the guards' rule"
        );
        if let Some(e) = running {
            self.events_written(t, &[e]);
            return Some(c);
        }
        let Some((rule, severity, reason)) = self.claim_block(&c) else {
            return Some(c);
        };
        let decided = reason.clone();
        let result = self
            .store
            .fail_stage(
                &t.workspace,
                &t.id,
                c.run.id,
                &reason,
                rule,
                warden_store::now_ms(),
                &move |_| AfterFail::Block {
                    reason: decided.clone(),
                },
            )
            .await;
        if let Err(e) = result {
            tracing::error!(task = %t.id, error = %e, "cannot block a task at claim; its lease will expire");
        }
        self.guard_tripped(
            t,
            rule,
            severity,
            &reason,
            &reason,
            json!({ "task": t.id, "stage": t.stage }),
        )
        .await;
        None
    }

    /// Why a fresh claim may not proceed (the loop guard, a spent budget):
    /// its rule, severity and reason.
    fn claim_block(&self, c: &Claimed) -> Option<(&'static str, Severity, String)> {
        let t = &c.task;
        let loop_limit = i64::from(self.config.loop_limit);
        if c.run.attempt > loop_limit {
            return Some((
                "infinite_loop",
                Severity::Critical,
                format!(
                    "infinite loop: stage \"{}\" of task {} would be attempted for the {} time without progress (limit {loop_limit})",
                    t.stage,
                    t.id,
                    ordinal(c.run.attempt)
                ),
            ));
        }
        budget_spent(t).map(|b| ("budget_spent", Severity::Warning, b))
    }

    /// A loop guard or budget blocked `t`: its `guardrails` and `status`
    /// events and the alert of `rule`, deduplicated per task as
    /// `<rule>:<task id>`.
    async fn guard_tripped(
        &self,
        t: &TaskRow,
        rule: &str,
        severity: Severity,
        reason: &str,
        summary: &str,
        detail: Value,
    ) {
        self.event(t, "guardrails", json!({ "guard": rule, "message": reason }))
            .await;
        self.event(t, "status", json!({ "state": "blocked", "reason": reason }))
            .await;
        self.alerts
            .raise_logged(
                Some(&t.workspace),
                rule,
                severity,
                &format!("{rule}:{}", t.id),
                summary,
                detail,
            )
            .await;
    }

    async fn check_hourly_budget(
        &self,
        workspace: &str,
        settings: &SettingsRow,
        now: i64,
    ) -> Result<()> {
        if settings.hourly_tokens.is_none() && settings.hourly_cost_micros.is_none() {
            return Ok(());
        }
        let (tokens, cost) = self.store.hourly_usage(workspace, now).await?;
        if let Some(limit) = settings.hourly_tokens
            && tokens >= limit
        {
            return Err(Error::ResourceExhausted(format!(
                "the hourly token budget of workspace \"{workspace}\" is spent ({tokens} of {limit} tokens this hour)"
            )));
        }
        if let Some(limit) = settings.hourly_cost_micros
            && cost >= limit
        {
            return Err(Error::ResourceExhausted(format!(
                "the hourly cost budget of workspace \"{workspace}\" is spent (${:.2} of ${:.2} this hour)",
                cost as f64 / 1e6,
                limit as f64 / 1e6
            )));
        }
        Ok(())
    }

    fn fence_error(task_id: &str, fence: &Fence) -> Error {
        match fence {
            Fence::Stale {
                token,
                current: Some(current),
            } => Error::FailedPrecondition(format!(
                "stale fencing token {token} for task {task_id}: the current lease is {current}; this worker's lease expired and the stage was claimed again"
            )),
            Fence::Stale {
                token,
                current: None,
            } => Error::FailedPrecondition(format!(
                "stale fencing token {token} for task {task_id}: the task holds no lease (it was requeued, cancelled or finished)"
            )),
            Fence::Expired { token, expired_at } => Error::FailedPrecondition(format!(
                "the lease {token} of task {task_id} expired at {}; claim the stage again",
                crate::time::time(*expired_at)
            )),
        }
    }

    /// Extends a lease.
    pub async fn heartbeat(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        lease_ms: Option<u64>,
    ) -> Result<TaskRow> {
        let lease_ms = lease_ms
            .unwrap_or(self.config.lease_ms)
            .clamp(1_000, self.config.max_lease_ms);
        match self
            .store
            .heartbeat(
                workspace,
                task_id,
                token,
                ms(lease_ms),
                warden_store::now_ms(),
            )
            .await?
        {
            Ok(t) => Ok(t),
            Err(fence) => Err(Self::fence_error(task_id, &fence)),
        }
    }

    /// The stage after `task`'s current one in `mode`.
    fn next_stage(task: &TaskRow, mode: Mode) -> AfterComplete {
        let mut i = task.stage_index as usize + 1;
        while i < task.pipeline.len() {
            let stage = &task.pipeline[i];
            if !(mode == Mode::Minimal && MINIMAL_SKIPS.contains(&stage.as_str())) {
                return AfterComplete::Next {
                    stage: stage.clone(),
                    index: i as i64,
                };
            }
            i += 1;
        }
        AfterComplete::Done
    }

    /// Completes the stage of lease `token` (SPEC TS-2): idempotent, and a
    /// stale or expired token is refused with FAILED_PRECONDITION. When
    /// gates are bound to the stage (SPEC QG-1), `result` passes through
    /// them first and their quorum decides where the task goes.
    pub async fn complete(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        output: Value,
        result: Option<StageResult>,
    ) -> Result<(TaskRow, bool)> {
        self.forget_lease(token);
        if let Some(r) = &result {
            r.validate().map_err(Error::InvalidArgument)?;
        }
        let judgement = self.judge(workspace, task_id, token, result).await?;
        let now = warden_store::now_ms();
        let (completion, written) =
            if judgement.is_none() && self.store.dialect() == Dialect::Postgres {
                // Without gates, on PostgreSQL: with the other completions
                // under way, in one write.
                let job = crate::completions::Job {
                    workspace: workspace.to_string(),
                    task_id: task_id.to_string(),
                    token,
                    output,
                    now,
                };
                self.completions().complete(job).await?
            } else {
                self.complete_one(workspace, task_id, token, &output, now, judgement.as_ref())
                    .await?
            };
        self.completed(workspace, task_id, completion, written, judgement)
            .await
    }

    /// The writer of completions without gates, started on first use.
    fn completions(&self) -> &crate::completions::Completions {
        self.completions.get_or_init(|| {
            crate::completions::Completions::start(
                self.store.clone(),
                |t, settings| Self::next_stage(t, mode_of(settings)),
                |t, token| completion_writes(t, token, None),
            )
        })
    }

    /// One completion in its own write, with the gates' judgement when
    /// there is one.
    async fn complete_one(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        output: &Value,
        now: i64,
        judgement: Option<&Judgement>,
    ) -> Result<(Completion, Written)> {
        let loop_limit = i64::from(self.config.loop_limit);
        // The mode comes with the task, read by the completion itself.
        let decide = move |t: &TaskRow, settings: Option<&SettingsRow>| match judgement {
            None => Self::next_stage(t, mode_of(settings)),
            Some(j) => match j.outcome {
                Outcome::Approve => Self::next_stage(t, mode_of(settings)),
                Outcome::Waiting => AfterComplete::WaitApproval {
                    reason: j.decision.summary.clone(),
                },
                Outcome::Reject => Self::send_back(t, &j.binding.reject_to, j.delta(), loop_limit),
            },
        };
        let completing = Completing {
            workspace,
            task_id,
            token,
            output,
            now,
            decision: judgement.map(|j| Judged {
                decision: &j.decision,
                verdicts: &j.verdicts,
                window: crate::gates::BREAKER_WINDOW,
            }),
        };
        let also = |t: &TaskRow| completion_writes(t, token, judgement);
        Ok(self
            .store
            .complete_stage_with(&completing, &decide, &also)
            .await?)
    }

    /// What follows a completion the store answered.
    async fn completed(
        &self,
        workspace: &str,
        task_id: &str,
        completion: Completion,
        written: Written,
        judgement: Option<Judgement>,
    ) -> Result<(TaskRow, bool)> {
        match completion {
            Completion::Fenced(f) => Err(Self::fence_error(task_id, &f)),
            Completion::AlreadyCompleted(t) => Ok((t, false)),
            Completion::Completed(t) => {
                // Its events, the gates' decision and the other hosts'
                // wake-up were written with the completion.
                self.events_written(&t, &written.also.events);
                if let Some(j) = &judgement {
                    self.after_judgement(&t, j, written.windows).await;
                }
                if t.state == "queued"
                    && let Some(reason) = budget_spent(&t)
                {
                    // A spent budget stops the task before its next stage.
                    let change = warden_store::tasks::TaskChange::Block {
                        reason: reason.clone(),
                    };
                    let (_, blocked) = self
                        .store
                        .apply_task_change(workspace, task_id, &change, None)
                        .await?;
                    self.event(
                        &blocked,
                        "budget",
                        json!({ "spent": true, "message": reason }),
                    )
                    .await;
                    self.event(
                        &blocked,
                        "status",
                        json!({ "state": "blocked", "reason": reason }),
                    )
                    .await;
                    return Ok((blocked, true));
                }
                if written.also.notify.is_some() {
                    self.wake.local(workspace);
                }
                // A stuck alert of this task is resolved by the stuck
                // detector's next pass, off this hot path.
                Ok((t, true))
            }
        }
    }

    /// Runs the gates bound to the stage of lease `token`, when there are
    /// any and the lease is current (a refused or repeated completion is
    /// answered by the store without judging anything).
    async fn judge(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        result: Option<StageResult>,
    ) -> Result<Option<Judgement>> {
        let Some(gates) = &self.gates else {
            return Ok(None);
        };
        if !gates.any_bound(workspace).await? {
            return Ok(None);
        }
        // The workspace's pins and grants are read with the task: wasted
        // when its stage has no gates or the lease is stale, but the gated
        // completion waits for one read instead of two.
        let (task, assignments) = tokio::try_join!(
            async { Ok(self.store.get_task(workspace, task_id).await?) },
            gates.assignments(workspace)
        )?;
        let Some(task) = task else {
            return Err(Error::NotFound(format!("task \"{task_id}\" not found")));
        };
        if warden_store::stages::fence(&task, token, warden_store::now_ms()).is_some() {
            return Ok(None);
        }
        let Some((binding, _)) = gates.binding(workspace, &task.stage).await? else {
            return Ok(None);
        };
        let result = result.unwrap_or_default();
        let judgement = gates
            .judge(&task, token, binding, &result, assignments)
            .await?;
        Ok(Some(judgement))
    }

    /// Where a rejected task goes (SPEC QG-3): back to `reject_to` (the
    /// first stage when its pipeline has none, or it comes later) with the
    /// reasons as its plan delta; the rejection that would exceed the loop
    /// limit blocks it instead.
    fn send_back(t: &TaskRow, reject_to: &str, delta: Value, loop_limit: i64) -> AfterComplete {
        if t.gate_rejections + 1 > loop_limit {
            return AfterComplete::Block {
                reason: format!(
                    "infinite loop: stage \"{}\" of task {} rejected by its gates for the {} time without progress (limit {loop_limit})",
                    t.stage,
                    t.id,
                    ordinal(t.gate_rejections + 1)
                ),
            };
        }
        let index = t
            .pipeline
            .iter()
            .position(|s| s == reject_to)
            .filter(|&i| i as i64 <= t.stage_index)
            .unwrap_or(0);
        AfterComplete::Back {
            stage: t
                .pipeline
                .get(index)
                .cloned()
                .unwrap_or_else(|| t.stage.clone()),
            index: index as i64,
            delta,
        }
    }

    /// After a judged transition committed (its `gate` event with it):
    /// the gates' breakers, given their windows read with it, and the
    /// alerts of where the task went.
    async fn after_judgement(&self, t: &TaskRow, j: &Judgement, windows: Vec<Vec<String>>) {
        if let Some(gates) = &self.gates {
            gates.judged(&t.workspace, &j.binding, windows).await;
        }
        match t.state.as_str() {
            "waiting_approval" => {
                self.alerts
                    .raise_logged(
                        Some(&t.workspace),
                        "gate_waiting_approval",
                        // No quorum: a critical rule (SPEC AL-1).
                        Severity::Critical,
                        &format!("approval:{}", t.id),
                        &format!("task {} waits for approval: {}", t.id, j.decision.summary),
                        json!({ "task": t.id, "decision_id": j.decision.id }),
                    )
                    .await;
            }
            "blocked" => self.loop_blocked(t).await,
            _ => {}
        }
    }

    /// The infinite-loop guard tripped on a rejection.
    async fn loop_blocked(&self, t: &TaskRow) {
        let reason = t.last_error.clone().unwrap_or_default();
        self.guard_tripped(
            t,
            "infinite_loop",
            Severity::Critical,
            &reason,
            &reason,
            json!({ "task": t.id, "stage": t.stage, "gate_rejections": t.gate_rejections }),
        )
        .await;
    }

    /// A human's decision on a task waiting for approval (SPEC QG-2,
    /// QG-3): approve moves it past the gated stage; reject sends it back
    /// as a gate's rejection would, with `reason` as its plan delta.
    pub async fn decide_approval(
        &self,
        workspace: &str,
        task_id: &str,
        approve: bool,
        reason: &str,
        actor: &str,
    ) -> Result<TaskRow> {
        crate::validate::text("reason", reason, 4096).map_err(Error::InvalidArgument)?;
        let Some(task) = self.store.get_task(workspace, task_id).await? else {
            return Err(Error::NotFound(format!("task \"{task_id}\" not found")));
        };
        if task.state != "waiting_approval" {
            return Err(Error::FailedPrecondition(format!(
                "task {task_id} is {}, not waiting_approval",
                task.state
            )));
        }
        let (mode, _) = self.mode(workspace).await?;
        let reject_to = match &self.gates {
            Some(g) => g
                .binding(workspace, &task.stage)
                .await?
                .map(|(b, _)| b.reject_to),
            None => None,
        }
        .unwrap_or_else(|| "plan".to_string());
        let loop_limit = i64::from(self.config.loop_limit);
        let delta = json!({
            "stage": task.stage,
            "summary": format!("rejected by {actor}"),
            "reasons": [{ "gate": "human", "category": "review", "message": reason }],
        });
        let decide = move |t: &TaskRow| {
            if approve {
                Self::next_stage(t, mode)
            } else {
                Self::send_back(t, &reject_to, delta.clone(), loop_limit)
            }
        };
        let after = self
            .store
            .decide_waiting(workspace, task_id, warden_store::now_ms(), &decide)
            .await
            .map_err(|e| match e {
                warden_store::Error::Conflict(m) => Error::FailedPrecondition(m),
                other => other.into(),
            })?;
        if let Some(g) = &self.gates
            && let Err(e) = g.record_human(&task, approve, actor, reason).await
        {
            tracing::error!(task = task_id, error = %e, "cannot record a human gate decision");
        }
        let _ = self.alerts.resolve(&format!("approval:{task_id}")).await;
        self.event(
            &after,
            "gate",
            json!({ "outcome": if approve { "approve" } else { "reject" }, "by": actor, "reason": reason }),
        )
        .await;
        self.event(
            &after,
            "status",
            json!({ "state": after.state, "stage": after.stage }),
        )
        .await;
        match after.state.as_str() {
            "blocked" => self.loop_blocked(&after).await,
            "done" => {
                self.event(&after, "stop_reason", json!({ "reason": "done" }))
                    .await;
                self.announce(workspace).await;
            }
            _ => self.announce(workspace).await,
        }
        Ok(after)
    }

    /// Exponential backoff with full jitter (SPEC TS-4): a random delay
    /// between half and all of `base × 2^(attempt-1)`, capped.
    pub fn backoff(&self, attempt: i64) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let ceiling = self
            .config
            .backoff_base_ms
            .saturating_mul(1u64 << exp)
            .min(self.config.backoff_max_ms);
        let floor = ceiling / 2;
        Duration::from_millis(rand::rng().random_range(floor..=ceiling.max(floor)))
    }

    /// Fails the stage of lease `token` (SPEC TS-4, TS-6): retried with
    /// backoff; after `max_attempts` into the dead-letter queue; the same
    /// failure fingerprint `same_failure_limit` times in a row blocks it.
    pub async fn fail(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        error: &str,
        retryable: bool,
    ) -> Result<(TaskRow, bool)> {
        self.forget_lease(token);
        crate::validate::text("error", error, 64 * 1024).map_err(Error::InvalidArgument)?;
        let fingerprint = crate::fingerprint::fingerprint(error);
        let fp = fingerprint.clone();
        let now = warden_store::now_ms();
        let same_limit = i64::from(self.config.same_failure_limit);
        let backoff_base = self.config.backoff_base_ms;
        let backoff_max = self.config.backoff_max_ms;
        let jitter: f64 = rand::rng().random_range(0.5..=1.0);
        let decide = move |t: &TaskRow| {
            if t.fingerprint_streak >= same_limit {
                return AfterFail::Block {
                    reason: format!(
                        "the same failure {} times in a row (fingerprint {fp}): {}",
                        t.fingerprint_streak,
                        first_line(t.last_error.as_deref().unwrap_or(""))
                    ),
                };
            }
            if !retryable || t.attempts >= t.max_attempts {
                return AfterFail::Dead;
            }
            let exp = u32::try_from((t.attempts - 1).clamp(0, 30)).unwrap_or(30);
            let ceiling = backoff_base.saturating_mul(1u64 << exp).min(backoff_max);
            AfterFail::Retry {
                at: now + (ceiling as f64 * jitter) as i64,
            }
        };
        let result = self
            .store
            .fail_stage(workspace, task_id, token, error, &fingerprint, now, &decide)
            .await?;
        let t = match result {
            Failure::Fenced(f) => return Err(Self::fence_error(task_id, &f)),
            Failure::AlreadyFailed(t) => return Ok((t, false)),
            Failure::Failed(t) => t,
        };
        match t.state.as_str() {
            "queued" => {
                self.event(&t, "status", json!({ "state": "queued", "retry_at": crate::time::time(t.next_attempt_at), "attempt": t.attempts, "error": first_line(error) })).await;
                if t.attempts >= 3 && t.attempts < t.max_attempts {
                    self.alerts
                        .raise_logged(
                            Some(workspace),
                            "attempt_3",
                            Severity::Warning,
                            &format!("attempts:{task_id}:{}", t.stage),
                            &format!(
                                "task {task_id} failed attempt {} of {} at stage \"{}\"",
                                t.attempts, t.max_attempts, t.stage
                            ),
                            json!({ "task": task_id, "error": first_line(error) }),
                        )
                        .await;
                }
            }
            "dead" => {
                self.event(
                    &t,
                    "status",
                    json!({ "state": "dead", "error": first_line(error) }),
                )
                .await;
                self.event(
                    &t,
                    "stop_reason",
                    json!({ "reason": "dead_letter", "attempts": t.attempts }),
                )
                .await;
                self.alerts
                    .raise_logged(Some(workspace), "dead_letter", Severity::Warning, &format!("dead:{task_id}"), &format!("task {task_id} moved to the dead-letter queue after {} attempt(s) at stage \"{}\": {}", t.attempts, t.stage, first_line(error)), json!({ "task": task_id }))
                    .await;
            }
            "blocked" => {
                let reason = t.last_error.clone().unwrap_or_default();
                self.guard_tripped(
                    &t,
                    "same_failure",
                    Severity::Critical,
                    &reason,
                    &format!("task {task_id} blocked: {reason}"),
                    json!({ "task": task_id, "fingerprint": t.last_fingerprint }),
                )
                .await;
            }
            _ => {}
        }
        Ok((t, true))
    }

    /// Records a worker's event on a task (SPEC OB-3); `token` events carry
    /// usage and count against budgets, `tool_start` counts a step.
    pub async fn report(
        &self,
        workspace: &str,
        task_id: &str,
        kind: &str,
        data: Value,
    ) -> Result<i64> {
        if !EVENT_KINDS.contains(&kind) {
            return Err(Error::invalid(format!(
                "invalid event type \"{}\": expected one of {}",
                crate::validate::truncate(kind, 40),
                EVENT_KINDS.join(", ")
            )));
        }
        if serde_json::to_string(&data).map_or(0, |s| s.len()) > 64 * 1024 {
            return Err(Error::invalid("event data is over the 64 KiB limit"));
        }
        // What the event books is checked before it is stored: a refused
        // report leaves no event behind.
        let delta = match kind {
            "token" => Some(self.token_usage(&data)?),
            "tool_start" => Some(UsageDelta {
                steps: 1,
                ..UsageDelta::default()
            }),
            _ => None,
        };
        let now = warden_store::now_ms();
        let seq = self
            .store
            .add_task_event(workspace, task_id, kind, &data, now)
            .await?;
        let _ = self.task_events.send(Arc::from(task_id));
        if let Some(delta) = delta {
            self.add_usage(workspace, Some(task_id), &delta).await?;
        }
        Ok(seq)
    }

    /// The usage a `token` event books, refused with a message naming
    /// the figure when it is negative, not a number or over the limits of
    /// one event (`max_event_tokens`, `max_event_cost_usd`).
    fn token_usage(&self, data: &Value) -> Result<UsageDelta> {
        let u: UsageReport = serde_json::from_value(data.clone())
            .map_err(|e| Error::invalid(format!("invalid token event: {e}")))?;
        if u.tokens < 0 || u.input_tokens < 0 || u.output_tokens < 0 {
            return Err(Error::invalid("token counts and cost must not be negative"));
        }
        if !u.cost_usd.is_finite() || u.cost_usd < 0.0 {
            return Err(Error::invalid("token counts and cost must not be negative"));
        }
        // Summed wide: two counts near the 64-bit limit must not wrap.
        let tokens = if u.tokens > 0 {
            i128::from(u.tokens)
        } else {
            i128::from(u.input_tokens) + i128::from(u.output_tokens)
        };
        let max_tokens = self.config.max_event_tokens;
        if tokens > i128::from(max_tokens) {
            return Err(Error::invalid(format!(
                "token event reports \"{tokens}\" tokens, over the {max_tokens} one event may book ([scheduler] max_event_tokens); report a call's usage in events of its own"
            )));
        }
        let max_cost = self.config.max_event_cost_usd;
        if u.cost_usd > max_cost {
            // Rust prints a float in full: 1e300 would be 301 digits.
            let shown = if u.cost_usd >= 1e15 {
                format!("{:e}", u.cost_usd)
            } else {
                u.cost_usd.to_string()
            };
            return Err(Error::invalid(format!(
                "token event reports cost_usd \"{shown}\", over the ${max_cost} one event may book ([scheduler] max_event_cost_usd)"
            )));
        }
        Ok(UsageDelta {
            tokens: i64::try_from(tokens).unwrap_or(max_tokens),
            cost_micros: usd_to_micros(u.cost_usd),
            steps: 0,
            wall_ms: 0,
        })
    }

    /// Adds usage to a task and its workspace's hour, then checks the
    /// budgets (see [`Scheduler::usage_booked`]).
    pub async fn add_usage(
        &self,
        workspace: &str,
        task_id: Option<&str>,
        delta: &UsageDelta,
    ) -> Result<()> {
        let now = warden_store::now_ms();
        let task = self
            .store
            .record_usage(workspace, task_id, delta, now)
            .await?;
        self.usage_booked(workspace, task.as_slice()).await
    }

    /// After usage was booked (by a worker's events or the model
    /// gateway): at 80 % of a budget of a task or of the workspace's hour
    /// raises the warning; at 100 % of a task's budget emits the `budget`
    /// event and blocks the task so that it claims no further stage (SPEC
    /// TS-5). `tasks` are the tasks whose usage changed, as they are now.
    pub async fn usage_booked(&self, workspace: &str, tasks: &[TaskRow]) -> Result<()> {
        let now = warden_store::now_ms();
        for t in tasks {
            for (name, used, limit) in budget_lines(t) {
                if at_80_percent(used, limit) {
                    self.alerts
                        .raise_logged(
                            Some(workspace),
                            "budget_80",
                            Severity::Warning,
                            &format!("budget80:{}:{name}", t.id),
                            &format!(
                                "task {} has used {}% of its {name} budget ({used} of {limit})",
                                t.id,
                                i128::from(used) * 100 / i128::from(limit.max(1))
                            ),
                            json!({ "task": t.id, "budget": name, "used": used, "limit": limit }),
                        )
                        .await;
                }
            }
            if let Some(reason) = budget_spent(t) {
                self.event(t, "budget", json!({ "spent": true, "message": reason }))
                    .await;
                if t.state == "queued" {
                    let change = warden_store::tasks::TaskChange::Block {
                        reason: reason.clone(),
                    };
                    if let Err(e) = self
                        .store
                        .apply_task_change(workspace, &t.id, &change, None)
                        .await
                    {
                        tracing::warn!(task = %t.id, error = %e, "cannot block a task over budget");
                    }
                }
            }
        }
        let settings = self.settings(workspace).await?;
        if settings.hourly_tokens.is_none() && settings.hourly_cost_micros.is_none() {
            return Ok(());
        }
        let (tokens, cost) = self.store.hourly_usage(workspace, now).await?;
        for (name, used, limit, shown) in [
            (
                "hourly_tokens",
                tokens,
                settings.hourly_tokens,
                format!(
                    "{tokens} of its {} tokens",
                    settings.hourly_tokens.unwrap_or(0)
                ),
            ),
            (
                "hourly_cost",
                cost,
                settings.hourly_cost_micros,
                format!(
                    "${:.2} of its ${:.2}",
                    cost as f64 / 1e6,
                    settings.hourly_cost_micros.unwrap_or(0) as f64 / 1e6
                ),
            ),
        ] {
            if let Some(limit) = limit
                && at_80_percent(used, limit)
            {
                self.alerts
                    .raise_logged(
                        Some(workspace),
                        "budget_80",
                        Severity::Warning,
                        &format!("budget80:{workspace}:{name}"),
                        &format!("workspace \"{workspace}\" has used {shown} this hour"),
                        json!({ "budget": name, "used": used, "limit": limit }),
                    )
                    .await;
            }
        }
        Ok(())
    }

    /// Cancels a task.
    pub async fn cancel(&self, workspace: &str, task_id: &str) -> Result<TaskRow> {
        let t = self
            .store
            .cancel_task(workspace, task_id, warden_store::now_ms())
            .await?;
        self.event(&t, "status", json!({ "state": "cancelled" }))
            .await;
        self.event(&t, "stop_reason", json!({ "reason": "cancelled" }))
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
        self.event(&t, "status", json!({ "state": "queued", "redriven": true }))
            .await;
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
        self.event(
            &after,
            "status",
            json!({ "state": "queued", "unblocked": true }),
        )
        .await;
        self.announce(workspace).await;
        Ok(after)
    }

    /// Why nothing runs in a workspace (SPEC TS-8); `workers_idle` when
    /// work and workers exist but nothing is claimed.
    pub async fn why_idle(&self, workspace: &str) -> Result<Idle> {
        let now = warden_store::now_ms();
        let settings = self.settings(workspace).await?;
        let mode = mode_of(Some(&settings));
        let idle = |reason, message: String| Ok(Idle { reason, message });
        if matches!(mode, Mode::ReadOnly | Mode::EmergencyStop) {
            let why = settings
                .mode_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            return idle(
                "mode",
                format!("workspace \"{workspace}\" is in {} mode{why}", mode.name()),
            );
        }
        if let Err(Error::ResourceExhausted(m)) =
            self.check_hourly_budget(workspace, &settings, now).await
        {
            return idle("budget_spent", m);
        }
        if let Some(m) = self.paused_by_process(workspace) {
            return idle("process_down", m);
        }
        let counts: BTreeMap<String, i64> = self
            .store
            .count_tasks_by_state(workspace)
            .await?
            .into_iter()
            .collect();
        let n = |s: &str| counts.get(s).copied().unwrap_or(0);
        if n("running") > 0 {
            return idle("not_idle", format!("{} stage(s) running", n("running")));
        }
        if n("queued") == 0 {
            if n("blocked") > 0 {
                let blocked = self
                    .store
                    .list_tasks(
                        workspace,
                        &TaskQuery {
                            states: vec!["blocked".into()],
                            limit: 100,
                            now,
                            ..TaskQuery::default()
                        },
                    )
                    .await?;
                if let Some(t) = blocked.iter().find(|t| {
                    t.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("budget"))
                }) {
                    return idle(
                        "budget_spent",
                        format!(
                            "task {} stopped: {}",
                            t.id,
                            t.last_error.clone().unwrap_or_default()
                        ),
                    );
                }
                return idle(
                    "blocked",
                    format!(
                        "{} task(s) blocked, none queued (see their last_error; unblock them to resume)",
                        n("blocked")
                    ),
                );
            }
            if n("waiting_approval") > 0 {
                return idle(
                    "waiting_approval",
                    format!(
                        "{} task(s) wait for a human decision",
                        n("waiting_approval")
                    ),
                );
            }
            return idle(
                "no_tasks",
                format!("no queued or running tasks in workspace \"{workspace}\""),
            );
        }
        // Queued tasks exist: look at why none is claimable.
        let queued = self
            .store
            .list_tasks(
                workspace,
                &TaskQuery {
                    states: vec!["queued".into()],
                    limit: 200,
                    now,
                    ..TaskQuery::default()
                },
            )
            .await?;
        let open = self.open_breakers().await?;
        let mut dep_state: HashMap<String, String> = HashMap::new();
        let (mut on_deps, mut on_breakers, mut in_backoff, mut ready) = (0, 0, 0, 0);
        let mut open_needed: Vec<String> = Vec::new();
        let mut next_retry = i64::MAX;
        for t in &queued {
            let mut deps_done = true;
            for d in &t.depends_on {
                if !dep_state.contains_key(d) {
                    let state = self
                        .store
                        .get_task(workspace, d)
                        .await?
                        .map(|x| x.state)
                        .unwrap_or_default();
                    dep_state.insert(d.clone(), state);
                }
                if dep_state.get(d).map(String::as_str) != Some("done") {
                    deps_done = false;
                }
            }
            let blocking: Vec<&String> = t.requires.iter().filter(|r| open.contains(r)).collect();
            if !deps_done {
                on_deps += 1;
            } else if !blocking.is_empty() {
                on_breakers += 1;
                open_needed.extend(blocking.into_iter().cloned());
            } else if t.next_attempt_at > now {
                in_backoff += 1;
                next_retry = next_retry.min(t.next_attempt_at);
            } else {
                ready += 1;
            }
        }
        let total = queued.len();
        if ready == 0 {
            if on_deps == total {
                return idle(
                    "all_blocked_on_dependencies",
                    format!("all {total} queued task(s) wait for dependencies that are not done"),
                );
            }
            if on_deps + on_breakers == total && on_breakers > 0 {
                open_needed.sort();
                open_needed.dedup();
                return idle(
                    "breaker_open",
                    format!(
                        "queued tasks need breaker(s) {} which are open",
                        open_needed.join(", ")
                    ),
                );
            }
            if in_backoff > 0 {
                return idle(
                    "backoff",
                    format!(
                        "{in_backoff} queued task(s) wait to retry; the next at {}",
                        crate::time::time(next_retry)
                    ),
                );
            }
        }
        let workers = self
            .store
            .list_workers(workspace, now - ms(self.config.worker_gone_after_ms))
            .await?;
        if workers.is_empty() {
            return idle(
                "no_workers",
                format!(
                    "{} task(s) are ready but no worker has claimed or heartbeated in the last {} s",
                    ready.max(1),
                    self.config.worker_gone_after_ms / 1000
                ),
            );
        }
        idle(
            "workers_idle",
            format!(
                "{ready} task(s) are ready and {} worker(s) are present but not claiming",
                workers.len()
            ),
        )
    }

    /// Requeues expired leases (run by one host at a time), alerts on stuck
    /// tasks and on the backlog.
    pub async fn sweep(&self) -> Result<()> {
        let now = warden_store::now_ms();
        let expired = self.store.expire_leases(now).await?;
        let mut workspaces: Vec<String> = Vec::new();
        for t in &expired {
            self.event(
                t,
                "status",
                json!({ "state": "queued", "reason": "lease expired" }),
            )
            .await;
            if !workspaces.contains(&t.workspace) {
                workspaces.push(t.workspace.clone());
            }
        }
        for ws in &workspaces {
            self.announce(ws).await;
        }
        Ok(())
    }

    /// Finds running tasks without any event for `stuck_after_ms` and
    /// raises a warning per task (SPEC TS-6); resolves the alerts of tasks
    /// no longer stuck.
    pub async fn detect_stuck(&self, workspaces: &[String]) -> Result<()> {
        let now = warden_store::now_ms();
        for ws in workspaces {
            let stuck = self
                .store
                .list_tasks(
                    ws,
                    &TaskQuery {
                        states: vec!["running".into()],
                        stuck_for_ms: Some(ms(self.config.stuck_after_ms)),
                        limit: 100,
                        now,
                        ..TaskQuery::default()
                    },
                )
                .await?;
            let still: std::collections::HashSet<String> =
                stuck.iter().map(|t| format!("stuck:{}", t.id)).collect();
            // With 100 listed there may be more: resolve nothing this pass.
            let complete_list = stuck.len() < 100;
            for t in stuck {
                self.alerts
                    .raise_logged(
                        Some(ws),
                        "stuck_task",
                        Severity::Warning,
                        &format!("stuck:{}", t.id),
                        &format!(
                            "task {} has had no event for {} s at stage \"{}\"",
                            t.id,
                            (now - t.last_event_at) / 1000,
                            t.stage
                        ),
                        json!({ "task": t.id, "worker": t.lease_owner }),
                    )
                    .await;
            }
            // Tasks that moved again: their alerts are resolved.
            for status in ["open", "acknowledged"]
                .into_iter()
                .filter(|_| complete_list)
            {
                let open = self.store.list_alerts(Some(ws), Some(status), 500).await?;
                for a in open {
                    if a.rule == "stuck_task" && !still.contains(&a.dedup_key) {
                        let _ = self.alerts.resolve(&a.dedup_key).await;
                    }
                }
            }
            self.check_backlog(ws).await;
        }
        Ok(())
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
        mode: "normal".to_string(),
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
fn mode_of(settings: Option<&SettingsRow>) -> Mode {
    settings
        .and_then(|s| Mode::parse(&s.mode).ok())
        .unwrap_or(Mode::Normal)
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
    let mut events = vec![NewEvent::new(
        "status",
        json!({ "state": t.state, "stage": t.stage, "completed_token": token }),
    )];
    if let Some(j) = judgement {
        let verdicts: Vec<Value> = j
            .verdicts
            .iter()
            .map(|v| json!({ "gate": v.gate, "digest": v.digest, "decision": v.decision, "score": v.score, "error": v.error }))
            .collect();
        events.push(NewEvent::new(
            "gate",
            json!({ "decision_id": j.decision.id, "stage": j.decision.stage, "outcome": j.outcome.name(), "quorum": j.decision.quorum, "summary": j.decision.summary, "verdicts": verdicts }),
        ));
    }
    let claimable = t.state == "queued" && budget_spent(t).is_none();
    // Dependents of a finished task may have become claimable.
    let done = t.state == "done";
    if done {
        events.push(NewEvent::new("stop_reason", json!({ "reason": "done" })));
    }
    Also {
        events,
        notify: (claimable || done).then(|| (WAKE_CHANNEL.to_string(), t.workspace.clone())),
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
mod tests {
    use super::*;

    fn task(stage_index: i64, pipeline: &[&str]) -> TaskRow {
        TaskRow {
            id: "t".into(),
            workspace: "w".into(),
            title: String::new(),
            body: String::new(),
            stage: pipeline[stage_index as usize].into(),
            state: "running".into(),
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
    fn minimal_mode_skips_think_and_review() {
        let p = DEFAULT_PIPELINE;
        let next = |i, mode| Scheduler::next_stage(&task(i, p), mode);
        assert_eq!(
            next(1, Mode::Normal),
            AfterComplete::Next {
                stage: "think".into(),
                index: 2
            }
        );
        assert_eq!(
            next(1, Mode::Minimal),
            AfterComplete::Next {
                stage: "implement".into(),
                index: 3
            }
        );
        assert_eq!(
            next(4, Mode::Minimal),
            AfterComplete::Next {
                stage: "pr".into(),
                index: 6
            }
        );
        assert_eq!(next(7, Mode::Normal), AfterComplete::Done);
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
