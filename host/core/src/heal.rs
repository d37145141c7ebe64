//! Playbook runs (SPEC PB-1..PB-4, RL-4, RL-5): trigger, execute under the
//! runtime's limits, persist the report, audit every action, stream events,
//! and recover runs the host was in the middle of when it stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use warden_runtime::types::{
    EvidenceFile, EvidenceUsage, HealthSnapshot, HostError, Mode, TaskFilter, TaskSummary,
};
use warden_runtime::{
    ActionRecord, ActionStatus, Applied, Backend, CallInfo, Mutation, RunEvent, RunOutcome,
    RunRequest, Runtime,
};
use warden_store::Store;
use warden_store::actions::ActionRow;
use warden_store::runs::{Inserted, NewRun, RunEnd, RunMode, RunQuery, RunRow, RunStatus};
use warden_store::tasks::{NewTask, TaskChange, TaskQuery, TaskRow, TaskState};

use crate::config::{Workspaces, config_value_string};
use crate::error::{Error, Result};
use crate::events::{EventHub, HostEvent};
use crate::health::Health;
use crate::kv::{self, unavailable};
use crate::registry::{Entry, Registry};
use crate::sync::Unpoisoned as _;
pub use crate::validate::parse_mode;

/// What a trigger asks for.
#[derive(Clone, Debug)]
pub struct Trigger {
    /// Mode of the run.
    pub mode: Mode,
    /// Input JSON.
    pub input: Value,
    /// Same key, same run (per workspace and plugin).
    pub idempotency_key: Option<String>,
    /// Who.
    pub actor: String,
    /// How: `http`, `cli`, `plan-approval`, `retry`, ...
    pub trigger: String,
}

/// What the playbook service is built with.
#[derive(Clone, Debug)]
pub struct RunsConfig {
    /// The `[workspaces.*]` tables: each playbook's settings and limits.
    pub workspaces: Workspaces,
    /// `[limits] max_runs_per_workspace`: runs at once per workspace.
    pub max_runs_per_workspace: u32,
    /// `[http] wait_slack_ms`: how much longer than a run's deadline a
    /// `?wait=true` request waits.
    pub wait_slack_ms: u64,
}

/// The playbook service.
pub struct Heal {
    store: Store,
    registry: Arc<Registry>,
    runtime: Arc<Runtime>,
    hub: Arc<EventHub>,
    health: Arc<Health>,
    scheduler: Arc<crate::scheduler::Scheduler>,
    config: RunsConfig,
    evidence: Arc<crate::evidence::Evidence>,
    /// Runs executing at once, over all workspaces: the playbooks' share
    /// of the runtime's instance slots, so that a run never waits for a
    /// slot while its deadline runs.
    slots: Arc<Semaphore>,
    /// Runs executing at once per workspace (`max_runs_per_workspace`),
    /// so that one workspace cannot take every slot. An entry lives while
    /// a run holds or waits for it.
    workspace_slots: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    tasks: run_tracker::Tracker,
}

/// Counts in-flight run executions so that shutdown can wait for them.
mod run_tracker {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    #[derive(Clone, Default)]
    pub struct Tracker {
        count: Arc<AtomicUsize>,
        idle: Arc<Notify>,
    }

    pub struct Guard(Tracker);

    impl Tracker {
        pub fn enter(&self) -> Guard {
            self.count.fetch_add(1, Ordering::SeqCst);
            Guard(self.clone())
        }

        pub fn active(&self) -> usize {
            self.count.load(Ordering::SeqCst)
        }

        pub async fn idle(&self) {
            while self.active() > 0 {
                let notified = self.idle.notified();
                if self.active() == 0 {
                    return;
                }
                notified.await;
            }
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.0.idle.notify_waiters();
            }
        }
    }
}

impl Heal {
    /// Builds the service.
    #[expect(
        clippy::too_many_arguments,
        reason = "one handle per service a run uses; a builder would only move the list"
    )]
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        runtime: Arc<Runtime>,
        hub: Arc<EventHub>,
        health: Arc<Health>,
        scheduler: Arc<crate::scheduler::Scheduler>,
        config: RunsConfig,
        evidence: Arc<crate::evidence::Evidence>,
    ) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(runtime.config().playbook_slots() as usize));
        Arc::new(Heal {
            store,
            registry,
            runtime,
            hub,
            health,
            scheduler,
            config,
            evidence,
            slots,
            workspace_slots: Default::default(),
            tasks: run_tracker::Tracker::default(),
        })
    }

    /// The event hub.
    pub fn hub(&self) -> &Arc<EventHub> {
        &self.hub
    }

    /// Triggers a run of the version of `name` that `workspace` pins (SPEC
    /// PB-1). Returns the run (new, or the one the idempotency key names)
    /// and whether it was created by this call.
    pub async fn trigger(
        self: &Arc<Self>,
        workspace: &str,
        name: &str,
        t: Trigger,
    ) -> Result<(RunRow, bool)> {
        let entry = self.registry.pinned(workspace, name).await?;
        self.start(workspace, entry, t, None).await
    }

    /// Applies a successful `plan` run: a new `apply` run of the same
    /// digest and input that references it (SPEC PB-2).
    pub async fn apply_plan(
        self: &Arc<Self>,
        workspace: &str,
        plan_id: &str,
        actor: &str,
        idempotency_key: Option<String>,
    ) -> Result<(RunRow, bool)> {
        let plan = self
            .store
            .get_run(workspace, plan_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run {plan_id} not found")))?;
        if plan.mode != RunMode::Plan || plan.status != RunStatus::Succeeded {
            return Err(Error::FailedPrecondition(format!(
                "run {plan_id} is a {} run that {}; only a succeeded plan run can be applied",
                plan.mode, plan.status
            )));
        }
        let entry = self.registry.by_digest(&plan.digest).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "the plugin that made plan {plan_id} ({}) is no longer stored",
                plan.digest
            ))
        })?;
        let t = Trigger {
            mode: Mode::Apply,
            input: plan.input.clone(),
            idempotency_key: Some(
                idempotency_key.unwrap_or_else(|| format!("apply-plan:{plan_id}")),
            ),
            actor: actor.to_string(),
            trigger: "plan-approval".to_string(),
        };
        self.start(workspace, entry, t, Some(plan_id.to_string()))
            .await
    }

    async fn start(
        self: &Arc<Self>,
        workspace: &str,
        entry: Entry,
        t: Trigger,
        plan_run_id: Option<String>,
    ) -> Result<(RunRow, bool)> {
        let plugin = &entry.plugin;
        let meta = plugin.meta();
        if meta.kind != warden_meta::PluginKind::Playbook {
            return Err(Error::FailedPrecondition(format!(
                "plugin \"{}\" is a {}, not a playbook",
                meta.name, meta.kind
            )));
        }
        let granted = self.registry.granted(workspace, &entry).await?;
        plugin
            .check_grants(&plugin.effective_grants(&granted))
            .map_err(|source| Error::NotGranted {
                plugin: meta.name.clone(),
                workspace: workspace.to_string(),
                source,
            })?;
        let new = NewRun {
            id: warden_store::new_id(),
            workspace: workspace.to_string(),
            plugin: meta.name.clone(),
            version: meta.version.to_string(),
            digest: plugin.digest().to_string(),
            mode: run_mode(t.mode),
            input: t.input,
            actor: t.actor,
            trigger: t.trigger,
            idempotency_key: t.idempotency_key,
            plan_run_id,
            retry_of: None,
            exclusive: !meta.concurrent,
        };
        match self.store.insert_run(&new).await? {
            Inserted::Existing(row) => Ok((row, false)),
            Inserted::Created(row) => {
                self.hub.push(
                    &row.id,
                    HostEvent::Queued {
                        digest: row.digest.clone(),
                    },
                );
                self.spawn(row.clone());
                Ok((row, true))
            }
        }
    }

    /// Runs a queued run in the background.
    fn spawn(self: &Arc<Self>, row: RunRow) {
        let this = self.clone();
        let guard = self.tasks.enter();
        tokio::spawn(async move {
            let _guard = guard;
            this.execute(row).await;
        });
    }

    async fn execute(&self, row: RunRow) {
        let workspace = self.workspace_slots(&row.workspace);
        // The workspace's turn first: a run waiting for it holds nothing
        // other workspaces need.
        let permits = async {
            let own = workspace.clone().acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>((own, self.slots.clone().acquire_owned().await?))
        };
        let Ok(permits) = permits.await else {
            return;
        };
        let name = row.workspace.clone();
        self.execute_with_slot(row).await;
        drop(permits);
        drop(workspace);
        self.forget_idle_workspace(&name);
    }

    /// The semaphore of `workspace`'s runs, made on first use.
    fn workspace_slots(&self, workspace: &str) -> Arc<Semaphore> {
        let mut all = self.workspace_slots.locked();
        all.entry(workspace.to_string())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(self.config.max_runs_per_workspace as usize))
            })
            .clone()
    }

    /// Drops `workspace`'s semaphore when no run holds or waits for it.
    fn forget_idle_workspace(&self, workspace: &str) {
        let mut all = self.workspace_slots.locked();
        if all
            .get(workspace)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            all.remove(workspace);
        }
    }

    async fn execute_with_slot(&self, row: RunRow) {
        match self.store.start_run(&row.id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(run = %row.id, error = %e, "cannot start run; it stays queued");
                return;
            }
        }
        self.hub
            .push(&row.id, HostEvent::Status(RunStatus::Running));
        let end = match self.registry.by_digest(&row.digest) {
            None => RunEnd {
                status: RunStatus::Failed,
                report: None,
                error: Some(format!("plugin {} is no longer stored", row.digest)),
                error_code: Some("missing".into()),
                usage: None,
                limits: None,
            },
            Some(entry) => {
                let outcome = self.run(&row, &entry).await;
                self.report_outcome(&row.id, &outcome);
                end_of(&outcome)
            }
        };
        // Every event before the end is stored, then the row, then the
        // final status event: whoever sees that event, or subscribes after
        // it, finds the row final.
        let closing = std::time::Instant::now();
        self.hub.flush().await;
        let mut attempt = 0;
        let mut recorded = false;
        loop {
            match self.store.finish_run(&row.id, &end).await {
                Ok(_) => {
                    recorded = true;
                    break;
                }
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(run = %row.id, error = %e, attempt, "cannot record the end of a run; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => {
                    tracing::error!(run = %row.id, error = %e, "giving up recording the end of a run; it will show as interrupted after a restart");
                    break;
                }
            }
        }
        if recorded {
            self.record_evidence(&row).await;
        }
        self.hub.push(
            &row.id,
            HostEvent::Ended {
                status: end.status,
                error: end.error.clone(),
            },
        );
        self.hub.close(&row.id);
        if closing.elapsed() > Duration::from_millis(200) {
            tracing::warn!(run = %row.id, ms = closing.elapsed().as_millis() as u64, "slow database while closing a run");
        }
    }

    /// Writes the finished run's evidence file (SPEC RL-3) from what the
    /// database now holds, before the final status event, so that whoever
    /// sees the run end finds its file (unless the disk guard paused
    /// recording). Evidence is a copy: failing to write it fails nothing.
    async fn record_evidence(&self, row: &RunRow) {
        if self.evidence.paused() {
            // Counted as skipped without reading the database.
            self.evidence.skip(
                &std::path::Path::new(&row.workspace)
                    .join("runs")
                    .join(format!("{}.json", row.id)),
            );
            return;
        }
        let (run, actions, events) = tokio::join!(
            self.store.get_run(&row.workspace, &row.id),
            self.store.list_actions(&row.id),
            self.store.list_run_events(&row.id, 0, 1000),
        );
        match (run, actions, events) {
            (Ok(Some(run)), Ok(actions), Ok(events)) => {
                self.evidence.record_run(&run, &actions, &events).await;
            }
            (Ok(None), _, _) => {}
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                tracing::warn!(run = %row.id, error = %e, "cannot read the run back for its evidence file");
            }
        }
    }

    async fn run(&self, row: &RunRow, entry: &Entry) -> RunOutcome {
        let settings = self.config.workspaces.plugin(&row.workspace, &row.plugin);
        let config: BTreeMap<String, String> = settings
            .config
            .iter()
            .map(|(k, v)| (k.clone(), config_value_string(v)))
            .collect();
        let granted = self
            .registry
            .granted(&row.workspace, entry)
            .await
            .unwrap_or_default();
        let mode = runtime_mode(row.mode);
        let backend = Arc::new(DbBackend {
            store: self.store.clone(),
            hub: self.hub.clone(),
            health: self.health.clone(),
            scheduler: self.scheduler.clone(),
            evidence: self.evidence.clone(),
        });
        let request = RunRequest {
            info: CallInfo {
                run_id: row.id.clone(),
                workspace: row.workspace.clone(),
                plugin: row.plugin.clone(),
                version: row.version.clone(),
                digest: row.digest.clone(),
                mode,
                actor: row.actor.clone(),
            },
            input: serde_json::to_string(&row.input).unwrap_or_else(|_| "null".into()),
            granted,
            config: Arc::new(config),
            limits: settings.limits,
            backend,
        };
        self.runtime.run_playbook(&entry.plugin, request).await
    }

    /// Emits the closing events of the OB-3 contract.
    fn report_outcome(&self, run_id: &str, outcome: &RunOutcome) {
        for event in HostEvent::closing(outcome) {
            self.hub.push(run_id, event);
        }
    }

    /// One run.
    pub async fn get(&self, workspace: &str, id: &str) -> Result<RunRow> {
        self.store.get_run(workspace, id).await?.ok_or_else(|| {
            Error::NotFound(format!("run {id} not found in workspace \"{workspace}\""))
        })
    }

    /// Runs of a workspace, newest first.
    pub async fn list(&self, workspace: &str, query: &RunQuery) -> Result<Vec<RunRow>> {
        Ok(self.store.list_runs(workspace, query).await?)
    }

    /// Waits until the run ends or `timeout` passes; returns it as it is
    /// then. The final status event wakes the waiter; the database row is
    /// the truth, so it is read again after every wake-up and at least
    /// every 250 ms.
    pub async fn wait(&self, workspace: &str, id: &str, timeout: Duration) -> Result<RunRow> {
        let mut events = self.hub.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ended = false;
        loop {
            let row = self.get(workspace, id).await?;
            if row.status.is_terminal() || tokio::time::Instant::now() >= deadline {
                return Ok(row);
            }
            // Once the final event was seen the row follows within
            // milliseconds: poll it closely.
            let pause = if ended {
                Duration::from_millis(5)
            } else {
                Duration::from_millis(250)
            };
            let until = (tokio::time::Instant::now() + pause).min(deadline);
            loop {
                match tokio::time::timeout_at(until, events.recv()).await {
                    Err(_) => break,
                    Ok(Ok(e)) => {
                        if e.run_id == id
                            && e.kind == "status"
                            && e.data["status"].as_str().is_some_and(is_terminal)
                        {
                            ended = true;
                            break;
                        }
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                        tokio::time::sleep_until(until).await;
                        break;
                    }
                }
            }
        }
    }

    /// How long `?wait=true` may wait for a run of `entry`'s plugin.
    pub fn wait_budget(&self, row: &RunRow) -> Duration {
        let deadline = self
            .registry
            .by_digest(&row.digest)
            .map(|e| {
                self.runtime
                    .config()
                    .limits
                    .resolve(
                        &e.plugin.meta().limits,
                        &self
                            .config
                            .workspaces
                            .plugin(&row.workspace, &row.plugin)
                            .limits,
                    )
                    .deadline_ms
            })
            .unwrap_or(self.runtime.config().limits.deadline_ms);
        Duration::from_millis(deadline + self.config.wait_slack_ms)
    }

    /// At start-up (SPEC RL-4): runs the host was executing when it stopped
    /// become `interrupted` (and are retried when their plugin says it is
    /// idempotent); runs acknowledged but never started are started.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        for row in self.store.interrupt_running_runs().await? {
            tracing::warn!(run = %row.id, plugin = %row.plugin, "run interrupted by a host stop");
            self.hub
                .push(&row.id, HostEvent::Status(RunStatus::Interrupted));
            let idempotent = self
                .registry
                .by_digest(&row.digest)
                .is_some_and(|e| e.plugin.meta().idempotent);
            if idempotent {
                let retry = NewRun {
                    id: warden_store::new_id(),
                    workspace: row.workspace.clone(),
                    plugin: row.plugin.clone(),
                    version: row.version.clone(),
                    digest: row.digest.clone(),
                    mode: row.mode,
                    input: row.input.clone(),
                    actor: row.actor.clone(),
                    trigger: "retry".to_string(),
                    idempotency_key: Some(format!("retry-of:{}", row.id)),
                    plan_run_id: row.plan_run_id.clone(),
                    retry_of: Some(row.id.clone()),
                    exclusive: false,
                };
                match self.store.insert_run(&retry).await {
                    Ok(Inserted::Created(r)) => {
                        tracing::info!(run = %r.id, retry_of = %row.id, "retrying interrupted idempotent run");
                    }
                    Ok(Inserted::Existing(_)) => {}
                    Err(e) => {
                        tracing::warn!(run = %row.id, error = %e, "cannot retry interrupted run")
                    }
                }
            }
        }
        self.hub.flush().await;
        for row in self.store.list_queued_runs().await? {
            self.spawn(row);
        }
        Ok(())
    }

    /// Waits for in-flight runs to finish, at most `deadline` (SPEC RL-5).
    /// Returns how many were still running.
    pub async fn drain(&self, deadline: Duration) -> usize {
        let _ = tokio::time::timeout(deadline, self.tasks.idle()).await;
        self.tasks.active()
    }

    /// Actions of a run with `seq > after`, in order, at most `limit`.
    pub async fn actions(
        &self,
        workspace: &str,
        id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ActionRow>> {
        self.get(workspace, id).await?;
        Ok(self.store.list_actions_after(id, after, limit).await?)
    }
}

/// True for the name of a status a run ends in: `succeeded`, `failed` or
/// `interrupted` (a run's status, or one a run event carries).
pub fn is_terminal(status: &str) -> bool {
    status
        .parse::<RunStatus>()
        .is_ok_and(RunStatus::is_terminal)
}

/// The stored mode of a run the runtime runs in `mode`.
fn run_mode(mode: Mode) -> RunMode {
    match mode {
        Mode::Diagnose => RunMode::Diagnose,
        Mode::Plan => RunMode::Plan,
        Mode::Apply => RunMode::Apply,
    }
}

/// The runtime's mode of a stored run.
fn runtime_mode(mode: RunMode) -> Mode {
    match mode {
        RunMode::Diagnose => Mode::Diagnose,
        RunMode::Plan => Mode::Plan,
        RunMode::Apply => Mode::Apply,
    }
}

fn severity_name(s: warden_runtime::types::Severity) -> &'static str {
    use warden_runtime::types::Severity;
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

fn end_of(outcome: &RunOutcome) -> RunEnd {
    let mut usage = serde_json::to_value(&outcome.usage).unwrap_or_default();
    usage["logs_dropped"] = json!(outcome.logs_dropped);
    let limits = serde_json::to_value(&outcome.limits).ok();
    match &outcome.result {
        Ok(report) => RunEnd {
            status: RunStatus::Succeeded,
            report: Some(json!({
                "summary": report.summary,
                "findings": report.findings.iter().map(|f| json!({
                    "severity": severity_name(f.severity),
                    "code": f.code,
                    "summary": f.summary,
                    "evidence": f.evidence,
                })).collect::<Vec<_>>(),
                "manual_actions": report.manual_actions,
            })),
            error: None,
            error_code: None,
            usage: Some(usage),
            limits,
        },
        Err(e) => RunEnd {
            status: RunStatus::Failed,
            report: None,
            error: Some(e.to_string()),
            error_code: Some(e.code().to_string()),
            usage: Some(usage),
            limits,
        },
    }
}

/// The runtime's backend over the database, for one run.
struct DbBackend {
    store: Store,
    hub: Arc<EventHub>,
    health: Arc<Health>,
    scheduler: Arc<crate::scheduler::Scheduler>,
    evidence: Arc<crate::evidence::Evidence>,
}

impl DbBackend {
    /// `evidence.compress` applied: the file is compressed first, then the
    /// audited action is written. A file system and a database cannot
    /// commit together; if the action cannot be written the compression
    /// stands (it loses nothing: the `.zst` holds the same bytes) and the
    /// plugin is told the host is unavailable.
    async fn compress_evidence(
        &self,
        call: &CallInfo,
        path: &str,
        mut action: ActionRow,
    ) -> Result<Applied, HostError> {
        let before = self
            .evidence
            .stat(&call.workspace, path)
            .map_err(evidence_error)?;
        let done = self
            .evidence
            .compress(&call.workspace, path)
            .await
            .map_err(evidence_error)?;
        let before = json!({ "path": path, "bytes": before.bytes, "age_secs": before.age_secs });
        let after = json!({
            "path": format!("{path}{}", crate::evidence::ZST),
            "original_bytes": done.original_bytes,
            "compressed_bytes": done.compressed_bytes,
        });
        action.before = Some(before.clone());
        action.after = Some(after.clone());
        if let Err(e) = self.store.insert_action(&action).await {
            tracing::error!(run = %call.run_id, path, error = %e, "evidence compressed but its audited action could not be written");
            return Err(unavailable(e));
        }
        Ok(Applied {
            before: Some(before),
            after: Some(after),
            created_id: None,
        })
    }
}

fn evidence_error(e: crate::evidence::EvidenceError) -> HostError {
    use crate::evidence::EvidenceError;
    match e {
        EvidenceError::Invalid(m) => HostError::Invalid(m),
        EvidenceError::NotFound(m) => HostError::NotFound(format!("evidence file \"{m}\"")),
        EvidenceError::Io(m) => {
            tracing::warn!(error = %m, "evidence host call failed");
            HostError::Unavailable(m)
        }
    }
}

/// A task as plugins see it.
pub fn task_summary(t: &TaskRow, now: i64) -> TaskSummary {
    TaskSummary {
        id: t.id.clone(),
        title: t.title.clone(),
        stage: t.stage.clone(),
        state: t.state.as_str().to_string(),
        priority: t.priority.clone(),
        attempts: t.attempts.clamp(0, u32::MAX as i64) as u32,
        age_secs: ((now - t.created_at).max(0) / 1000) as u64,
        last_event_age_secs: ((now - t.last_event_at).max(0) / 1000) as u64,
        last_error: t.last_error.clone(),
        lease_expired: t.state == TaskState::Running
            && t.lease_expires_at.is_some_and(|at| at < now),
    }
}

fn action_row(call: &CallInfo, seq: u32, mutation: &Mutation, status: ActionStatus) -> ActionRow {
    ActionRow {
        run_id: call.run_id.clone(),
        seq: seq as i64,
        workspace: call.workspace.clone(),
        plugin: call.plugin.clone(),
        digest: call.digest.clone(),
        actor: call.actor.clone(),
        call: mutation.call().to_string(),
        target: mutation.target().map(str::to_string),
        args: serde_json::to_value(mutation).unwrap_or_default(),
        status: serde_json::to_value(status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        before: None,
        after: None,
        detail: None,
        at: warden_store::now_ms(),
    }
}

#[async_trait]
impl Backend for DbBackend {
    async fn health(&self, call: &CallInfo) -> Result<HealthSnapshot, HostError> {
        self.health.snapshot(&call.workspace).await.map_err(|e| {
            tracing::warn!(error = %e, "health snapshot failed");
            HostError::Unavailable("the health snapshot is unavailable".to_string())
        })
    }

    async fn list_tasks(
        &self,
        call: &CallInfo,
        filter: &TaskFilter,
    ) -> Result<Vec<TaskSummary>, HostError> {
        let states = filter
            .states
            .iter()
            .map(|s| {
                s.parse::<TaskState>()
                    .map_err(|_| HostError::Invalid(format!("unknown task state \"{s}\"")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let now = warden_store::now_ms();
        let query = TaskQuery {
            states,
            stuck_for_ms: filter
                .stuck_for_secs
                .map(|s| s.saturating_mul(1000).min(i64::MAX as u64) as i64),
            lease_expired: filter.lease_expired,
            limit: filter.limit as i64,
            now,
        };
        let rows = self
            .store
            .list_tasks(&call.workspace, &query)
            .await
            .map_err(unavailable)?;
        Ok(rows.iter().map(|t| task_summary(t, now)).collect())
    }

    async fn get_task(&self, call: &CallInfo, id: &str) -> Result<TaskSummary, HostError> {
        match self
            .store
            .get_task(&call.workspace, id)
            .await
            .map_err(unavailable)?
        {
            Some(t) => Ok(task_summary(&t, warden_store::now_ms())),
            None => Err(HostError::NotFound(format!("task {id}"))),
        }
    }

    async fn apply(
        &self,
        call: &CallInfo,
        seq: u32,
        mutation: &Mutation,
    ) -> Result<Applied, HostError> {
        let action = action_row(call, seq, mutation, ActionStatus::Applied);
        let change = match mutation {
            Mutation::CompressEvidence { path } => {
                return self.compress_evidence(call, path, action).await;
            }
            Mutation::Create {
                title,
                body,
                priority,
                dedup_key,
            } => {
                // The runtime checked the title, body, priority and dedup key
                // before any mode or backend saw them.
                let pipeline = match self.scheduler.settings(&call.workspace).await {
                    Ok(s) => s
                        .pipeline
                        .unwrap_or_else(|| self.scheduler.config().pipeline.clone()),
                    Err(_) => self.scheduler.config().pipeline.clone(),
                };
                let task = NewTask {
                    id: warden_store::new_id(),
                    workspace: call.workspace.clone(),
                    title: title.clone(),
                    body: body.clone(),
                    stage: pipeline
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "spec".to_string()),
                    priority: priority.clone(),
                    dedup_key: dedup_key.clone(),
                    pipeline,
                    max_attempts: i64::from(self.scheduler.config().max_attempts),
                    depends_on: Vec::new(),
                    requires: Vec::new(),
                    budget: Default::default(),
                };
                let (row, created) = self
                    .store
                    .create_task_with_action(&task, &action)
                    .await
                    .map_err(unavailable)?;
                return Ok(Applied {
                    before: None,
                    after: Some(
                        json!({ "id": row.id, "state": row.state, "stage": row.stage, "created": created }),
                    ),
                    created_id: Some(row.id),
                });
            }
            Mutation::Requeue { .. } => TaskChange::Requeue,
            Mutation::Reset { .. } => TaskChange::Reset,
            Mutation::Block { reason, .. } => TaskChange::Block {
                reason: reason.clone(),
            },
            Mutation::Unblock { .. } => TaskChange::Unblock,
        };
        let id = mutation.target().unwrap_or_default();
        let (before, after) = self
            .store
            .apply_task_change(&call.workspace, id, &change, Some(&action))
            .await
            .map_err(unavailable)?;
        let snap = |t: &TaskRow| json!({ "state": t.state, "stage": t.stage, "attempts": t.attempts, "last_error": t.last_error });
        Ok(Applied {
            before: Some(snap(&before)),
            after: Some(snap(&after)),
            created_id: None,
        })
    }

    async fn record(&self, call: &CallInfo, action: &ActionRecord) -> Result<(), HostError> {
        let mut row = action_row(call, action.seq, &action.mutation, action.status);
        row.before = action.before.clone();
        row.after = action.after.clone();
        row.detail = action.detail.clone();
        self.store.insert_action(&row).await.map_err(unavailable)
    }

    async fn kv_get(&self, call: &CallInfo, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        kv::get(&self.store, call, key).await
    }

    async fn kv_set(&self, call: &CallInfo, key: &str, value: &[u8]) -> Result<(), HostError> {
        kv::set(&self.store, call, key, value).await
    }

    async fn kv_delete(&self, call: &CallInfo, key: &str) -> Result<bool, HostError> {
        kv::delete(&self.store, call, key).await
    }

    async fn kv_list(&self, call: &CallInfo, prefix: &str) -> Result<Vec<String>, HostError> {
        kv::list(&self.store, call, prefix).await
    }

    async fn evidence_usage(&self, _call: &CallInfo) -> Result<EvidenceUsage, HostError> {
        let dir = self.evidence.dir().to_path_buf();
        let usage = tokio::task::spawn_blocking(move || crate::evidence::usage_of(&dir))
            .await
            .map_err(|e| HostError::Unavailable(format!("disk measurement failed: {e}")))?
            .map_err(|e| {
                HostError::Unavailable(format!("cannot measure the evidence file system: {e}"))
            })?;
        Ok(EvidenceUsage {
            path: self.evidence.dir().display().to_string(),
            total_bytes: usage.total_bytes,
            free_bytes: usage.free_bytes,
            used_pct: usage.used_pct,
            recording_paused: self.evidence.paused(),
        })
    }

    async fn evidence_list_old(
        &self,
        call: &CallInfo,
        older_than_secs: u64,
    ) -> Result<Vec<EvidenceFile>, HostError> {
        let files = self
            .evidence
            .list_old(&call.workspace, older_than_secs)
            .await
            .map_err(evidence_error)?;
        Ok(files
            .into_iter()
            .map(|f| EvidenceFile {
                path: f.path,
                bytes: f.bytes,
                age_secs: f.age_secs,
            })
            .collect())
    }

    fn event(&self, call: &CallInfo, event: RunEvent) {
        let (kind, data) = match event {
            RunEvent::ToolStart { call, name, args } => (
                "tool_start",
                json!({ "call": call, "name": name, "args": args }),
            ),
            RunEvent::ToolResult {
                call,
                name,
                ok,
                summary,
            } => (
                "tool_result",
                json!({ "call": call, "name": name, "ok": ok, "summary": summary }),
            ),
            RunEvent::Log(line) => ("log", serde_json::to_value(line).unwrap_or_default()),
            RunEvent::Action(a) => ("action", serde_json::to_value(a).unwrap_or_default()),
        };
        self.hub.push_plugin(&call.run_id, kind, data);
    }
}
