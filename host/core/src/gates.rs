//! Quality gates (SPEC QG-1..QG-4): the gates bound to a stage judge its
//! result when the stage completes; a quorum rule turns their verdicts
//! into approve (the task moves on), reject (back to an earlier stage with
//! the reasons as its plan delta) or waiting for a human. Every verdict is
//! stored with the gate's digest; a gate's breaker watches its last ten
//! verdicts.
//!
//! A gate is a sandboxed component like any plugin: it runs under its
//! limits, and a gate that traps, times out or exceeds a limit never
//! approves: its binding's `on_error` decision (escalate by default)
//! stands in for its verdict, with the error recorded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warden_meta::PluginKind;
use warden_runtime::types::{
    Artifact, Decision, DiffStats, HealthSnapshot, HostError, RubricScore, Submission, TaskFilter,
    TaskSummary, TestResults,
};
use warden_runtime::{
    ActionRecord, Applied, Backend, CallInfo, GateRequest, Mutation, RunEvent, Runtime,
};
use warden_store::Store;
use warden_store::breakers::BreakerRow;
use warden_store::gates::{BindingRow, DecisionRow, ReasonRow, VerdictRow};
use warden_store::tasks::TaskRow;

use crate::alerts::{Alerts, Severity};
pub use crate::config::gates::{Binding, OnError, Quorum};
use crate::config::{Workspaces, config_value_string};
use crate::error::{Error, Result};
use crate::kv;
use crate::registry::{Assignments, Entry, Registry};

/// Verdicts a gate's breaker looks at (SPEC QG-4).
pub const BREAKER_WINDOW: i64 = 10;

/// A stage's result as a worker submits it with the completion (SPEC
/// QG-1): what the gates judge.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageResult {
    /// The unified diff.
    pub diff: Option<String>,
    /// Diff statistics.
    pub diff_stats: Option<DiffStatsIn>,
    /// Test results.
    pub tests: Option<TestsIn>,
    /// Rubric scores.
    #[serde(default)]
    pub rubric: Vec<RubricIn>,
    /// Artifacts.
    #[serde(default)]
    pub artifacts: Vec<ArtifactIn>,
    /// Free text.
    pub text: Option<String>,
}

/// `diff_stats` of a stage result.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiffStatsIn {
    /// Files changed.
    pub files_changed: u32,
    /// Lines added.
    pub insertions: u32,
    /// Lines removed.
    pub deletions: u32,
}

/// `tests` of a stage result.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestsIn {
    /// Passed.
    pub passed: u32,
    /// Failed.
    pub failed: u32,
    /// Skipped.
    #[serde(default)]
    pub skipped: u32,
    /// Names or short messages of the failed tests.
    #[serde(default)]
    pub failures: Vec<String>,
}

/// One rubric score.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RubricIn {
    /// Who scored.
    pub reviewer: String,
    /// What.
    pub criterion: String,
    /// 0 to 100.
    pub score: u32,
}

/// One artifact.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactIn {
    /// Name.
    pub name: String,
    /// Media type (default `text/plain`).
    #[serde(default = "default_media_type")]
    pub media_type: String,
    /// Content (text).
    pub content: String,
}

fn default_media_type() -> String {
    "text/plain".to_string()
}

impl StageResult {
    /// Checks scores and sizes; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.rubric.iter().enumerate() {
            if r.score > 100 {
                return Err(format!("result.rubric[{i}].score: {} is over 100", r.score));
            }
        }
        if self.rubric.len() > 1000 || self.artifacts.len() > 1000 {
            return Err("result: at most 1000 rubric scores and 1000 artifacts".to_string());
        }
        Ok(())
    }

    fn submission(&self, task: &TaskRow) -> Submission {
        Submission {
            workspace: task.workspace.clone(),
            task_id: task.id.clone(),
            stage: task.stage.clone(),
            attempt: u32::try_from(task.attempts).unwrap_or(u32::MAX),
            diff: self.diff.clone(),
            diff_stats: self.diff_stats.as_ref().map(|d| DiffStats {
                files_changed: d.files_changed,
                insertions: d.insertions,
                deletions: d.deletions,
            }),
            tests: self.tests.as_ref().map(|t| TestResults {
                passed: t.passed,
                failed: t.failed,
                skipped: t.skipped,
                failures: t.failures.clone(),
            }),
            rubric: self
                .rubric
                .iter()
                .map(|r| RubricScore {
                    reviewer: r.reviewer.clone(),
                    criterion: r.criterion.clone(),
                    score: r.score.min(100) as u8,
                })
                .collect(),
            artifacts: self
                .artifacts
                .iter()
                .map(|a| Artifact {
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    content: a.content.clone(),
                })
                .collect(),
            text: self.text.clone(),
        }
    }
}

/// The quorum's outcome on one transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The task moves on.
    Approve,
    /// The task goes back.
    Reject,
    /// A human decides (an escalation kept the quorum from being reached).
    Waiting,
}

impl Outcome {
    /// `approve`, `reject` or `waiting`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Approve => "approve",
            Outcome::Reject => "reject",
            Outcome::Waiting => "waiting",
        }
    }
}

/// Applies `quorum` to the counts of `n` verdicts: approve once enough
/// approve; reject once the rejections leave too few gates to approve;
/// otherwise (escalations) no quorum, and a human decides.
pub fn decide(quorum: Quorum, n: usize, approvals: usize, rejections: usize) -> Outcome {
    let needed = quorum.needed(n);
    if approvals >= needed {
        Outcome::Approve
    } else if n.saturating_sub(rejections) < needed {
        Outcome::Reject
    } else {
        Outcome::Waiting
    }
}

/// The judgement of one transition.
#[derive(Clone, Debug)]
pub struct Judgement {
    /// The binding that applied.
    pub binding: Binding,
    /// What the quorum decided.
    pub outcome: Outcome,
    /// The stored decision.
    pub decision: DecisionRow,
    /// The stored verdicts.
    pub verdicts: Vec<VerdictRow>,
}

impl Judgement {
    /// The reasons of the rejecting (or escalating) verdicts, as the plan
    /// delta of a task sent back.
    pub fn delta(&self) -> Value {
        let reasons: Vec<Value> = self
            .verdicts
            .iter()
            .filter(|v| v.decision != "approve")
            .flat_map(|v| {
                let mut out: Vec<Value> = v
                    .reasons
                    .iter()
                    .map(
                        |r| json!({ "gate": v.gate, "category": r.category, "message": r.message }),
                    )
                    .collect();
                if let Some(e) = &v.error {
                    out.push(json!({ "gate": v.gate, "category": "error", "message": e }));
                }
                out
            })
            .collect();
        json!({
            "stage": self.decision.stage,
            "decision_id": self.decision.id,
            "summary": self.decision.summary,
            "reasons": reasons,
        })
    }
}

/// How long bindings set over the API are cached: a change made on
/// another host applies within this time (on this host, at once).
const BINDING_CACHE: std::time::Duration = std::time::Duration::from_secs(1);

/// The API's bindings of one workspace as stored: stage → binding JSON.
type RawBindings = Arc<BTreeMap<String, Value>>;

/// Runs gates and keeps their records.
pub struct Gates {
    store: Store,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    config: Workspaces,
    alerts: Alerts,
    /// The API's bindings per workspace, by stage, and when they were read:
    /// a completion in a workspace without gates costs no query.
    cache: std::sync::Mutex<std::collections::HashMap<String, (Instant, RawBindings)>>,
}

impl Gates {
    /// Builds the service.
    pub fn new(
        store: Store,
        runtime: Arc<Runtime>,
        registry: Arc<Registry>,
        config: Workspaces,
        alerts: Alerts,
    ) -> Arc<Self> {
        Arc::new(Gates {
            store,
            runtime,
            registry,
            config,
            alerts,
            cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The API's bindings of a workspace (raw), from the cache when fresh.
    async fn api_bindings(&self, workspace: &str) -> Result<RawBindings> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, rows)) = cache.get(workspace)
            && at.elapsed() < BINDING_CACHE
        {
            return Ok(rows.clone());
        }
        let rows: BTreeMap<String, Value> = self
            .store
            .list_gate_bindings(workspace)
            .await?
            .into_iter()
            .map(|r| (r.stage, r.binding))
            .collect();
        let rows = Arc::new(rows);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(workspace.to_string(), (Instant::now(), rows.clone()));
        }
        Ok(rows)
    }

    fn forget(&self, workspace: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(workspace);
        }
    }

    /// True when any stage of `workspace` has gates (cheap: no query while
    /// the cache is fresh).
    pub async fn any_bound(&self, workspace: &str) -> Result<bool> {
        Ok(!self.config.gate_bindings(workspace).is_empty()
            || !self.api_bindings(workspace).await?.is_empty())
    }

    /// The binding of `stage` in `workspace`: set over the API, else
    /// warden.toml's (the workspace's, else `"*"`'s). The bool is true
    /// when it comes from the API.
    pub async fn binding(&self, workspace: &str, stage: &str) -> Result<Option<(Binding, bool)>> {
        if let Some(raw) = self.api_bindings(workspace).await?.get(stage) {
            let binding = parse_binding(workspace, stage, raw)?;
            return Ok(Some((binding, true)));
        }
        Ok(self
            .config
            .gate_binding(workspace, stage)
            .map(|b| (b, false)))
    }

    /// Every binding in force in `workspace`, by stage, with its source
    /// (`api` or `config`).
    pub async fn bindings(
        &self,
        workspace: &str,
    ) -> Result<BTreeMap<String, (Binding, &'static str)>> {
        let mut all: BTreeMap<String, (Binding, &'static str)> = self
            .config
            .gate_bindings(workspace)
            .into_iter()
            .map(|(stage, b)| (stage, (b, "config")))
            .collect();
        // An unreadable binding is listed as missing rather than failing the
        // listing; a transition of its stage reports it.
        for (stage, raw) in self.api_bindings(workspace).await?.iter() {
            match parse_binding(workspace, stage, raw) {
                Ok(b) => {
                    all.insert(stage.clone(), (b, "api"));
                }
                Err(e) => {
                    tracing::error!(workspace, stage = %stage, error = %e, "unreadable gate binding")
                }
            }
        }
        Ok(all)
    }

    /// Sets a binding over the API.
    pub async fn put_binding(
        &self,
        workspace: &str,
        stage: &str,
        binding: &Binding,
        actor: &str,
    ) -> Result<()> {
        binding.validate().map_err(Error::InvalidArgument)?;
        let row = BindingRow {
            workspace: workspace.to_string(),
            stage: stage.to_string(),
            binding: serde_json::to_value(binding).map_err(|e| Error::Internal(e.to_string()))?,
            actor: actor.to_string(),
            updated_at: warden_store::now_ms(),
        };
        self.store.put_gate_binding(&row).await?;
        self.forget(workspace);
        Ok(())
    }

    /// Removes the API's binding (warden.toml's, if any, applies again).
    pub async fn delete_binding(&self, workspace: &str, stage: &str) -> Result<bool> {
        let deleted = self.store.delete_gate_binding(workspace, stage).await?;
        self.forget(workspace);
        Ok(deleted)
    }

    /// The workspace's pins and grants, which [`Gates::judge`] resolves its
    /// gates with (read beforehand, while the task is read).
    pub async fn assignments(&self, workspace: &str) -> Result<Assignments> {
        self.registry.assignments(workspace).await
    }

    /// Judges `task`'s stage result with `binding`'s gates, all at once,
    /// resolved with the workspace's `assignments`. `token` is the
    /// completing lease. The completion stores the decision
    /// and verdicts with the transition they decide, then calls
    /// [`Gates::judged`].
    pub async fn judge(
        &self,
        task: &TaskRow,
        token: i64,
        binding: Binding,
        result: &StageResult,
        assignments: Assignments,
    ) -> Result<Judgement> {
        let submission = result.submission(task);
        let now = warden_store::now_ms();
        let decision_id = warden_store::new_id();
        // Every gate resolved from the workspace's pins and grants; then
        // the gates run at once (each yields to the others between epoch
        // ticks).
        let resolved =
            self.registry
                .pinned_and_granted(&task.workspace, &binding.gates, assignments);
        let calls = binding
            .gates
            .iter()
            .zip(resolved)
            .map(|(gate, r)| self.evaluate(task, &binding, gate, r, &submission, now));
        let mut verdicts = futures::future::join_all(calls).await;
        for v in &mut verdicts {
            v.decision_id = decision_id.clone();
        }
        let count = |d: &str| verdicts.iter().filter(|v| v.decision == d).count();
        let (approvals, rejections, escalations) =
            (count("approve"), count("reject"), count("escalate"));
        let outcome = decide(binding.quorum, verdicts.len(), approvals, rejections);
        let summary = format!(
            "{} by quorum {} after \"{}\": {approvals} approved, {rejections} rejected, {escalations} escalated{}",
            match outcome {
                Outcome::Approve => "approved",
                Outcome::Reject => "rejected",
                Outcome::Waiting => "waiting for approval (no quorum)",
            },
            binding.quorum,
            task.stage,
            first_reason(&verdicts, outcome)
        );
        let decision = DecisionRow {
            id: decision_id,
            workspace: task.workspace.clone(),
            task_id: task.id.clone(),
            stage: task.stage.clone(),
            token,
            quorum: binding.quorum.to_string(),
            outcome: outcome.name().to_string(),
            approvals: approvals as i64,
            rejections: rejections as i64,
            escalations: escalations as i64,
            summary,
            created_at: now,
        };
        Ok(Judgement {
            binding,
            outcome,
            decision,
            verdicts,
        })
    }

    /// Records a human's decision on a waiting task (no verdicts).
    pub async fn record_human(
        &self,
        task: &TaskRow,
        approve: bool,
        actor: &str,
        reason: &str,
    ) -> Result<DecisionRow> {
        let decision = DecisionRow {
            id: warden_store::new_id(),
            workspace: task.workspace.clone(),
            task_id: task.id.clone(),
            stage: task.stage.clone(),
            token: 0,
            quorum: "human".to_string(),
            outcome: if approve { "approve" } else { "reject" }.to_string(),
            approvals: i64::from(approve),
            rejections: i64::from(!approve),
            escalations: 0,
            summary: format!(
                "{} by {actor}{}",
                if approve { "approved" } else { "rejected" },
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            ),
            created_at: warden_store::now_ms(),
        };
        self.store.record_gate_decision(&decision, &[]).await?;
        Ok(decision)
    }

    /// One gate's verdict; a gate that cannot give one gets the binding's
    /// `on_error` decision with the error recorded.
    async fn evaluate(
        &self,
        task: &TaskRow,
        binding: &Binding,
        gate: &str,
        resolved: Result<(Entry, warden_meta::CapabilitySet)>,
        submission: &Submission,
        now: i64,
    ) -> VerdictRow {
        let started = Instant::now();
        let mut row = VerdictRow {
            id: warden_store::new_id(),
            decision_id: String::new(),
            workspace: task.workspace.clone(),
            task_id: task.id.clone(),
            stage: task.stage.clone(),
            gate: gate.to_string(),
            version: String::new(),
            digest: String::new(),
            decision: String::new(),
            score: 0,
            error: None,
            relaxed: false,
            wall_ms: 0,
            created_at: now,
            reasons: Vec::new(),
        };
        let failed = |mut row: VerdictRow, error: String| {
            row.decision = match binding.on_error {
                OnError::Escalate => "escalate",
                OnError::Reject => "reject",
            }
            .to_string();
            row.error = Some(error);
            row.wall_ms = started.elapsed().as_millis() as i64;
            row
        };
        let (entry, granted) = match resolved {
            Ok(found) => found,
            Err(e) => return failed(row, format!("gate \"{gate}\" is not available: {e}")),
        };
        let meta = entry.plugin.meta();
        row.version = meta.version.to_string();
        row.digest = entry.plugin.digest().to_string();
        if meta.kind != PluginKind::QualityGate {
            let kind = meta.kind;
            return failed(
                row,
                format!("plugin \"{gate}\" is a {kind}, not a quality-gate"),
            );
        }
        let settings = self.config.plugin(&task.workspace, gate);
        let mut config: BTreeMap<String, String> = settings
            .config
            .iter()
            .map(|(k, v)| (k.clone(), config_value_string(v)))
            .collect();
        if let Some(relaxed) = binding.relax.get(gate)
            && self.relaxed(&task.workspace, gate, now).await
        {
            row.relaxed = true;
            for (k, v) in relaxed {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                config.insert(k.clone(), v);
            }
        }
        let request = GateRequest {
            info: CallInfo {
                run_id: row.id.clone(),
                workspace: task.workspace.clone(),
                plugin: gate.to_string(),
                version: row.version.clone(),
                digest: row.digest.clone(),
                mode: warden_runtime::types::Mode::Apply,
                actor: format!("task:{}", task.id),
            },
            granted,
            config: Arc::new(config),
            limits: settings.limits,
            backend: Arc::new(GateBackend {
                store: self.store.clone(),
            }),
        };
        let outcome = self
            .runtime
            .evaluate_gate(&entry.plugin, request, submission)
            .await;
        for line in &outcome.logs {
            tracing::debug!(gate, task = %task.id, "{}", line.message);
        }
        match outcome.result {
            Ok(verdict) => {
                row.decision = match verdict.decision {
                    Decision::Approve => "approve",
                    Decision::Reject => "reject",
                    Decision::Escalate => "escalate",
                }
                .to_string();
                row.score = i64::from(verdict.score);
                row.reasons = verdict
                    .reasons
                    .into_iter()
                    .map(|r| ReasonRow {
                        category: r.category,
                        message: r.message,
                    })
                    .collect();
                row.wall_ms = started.elapsed().as_millis() as i64;
                row
            }
            Err(e) => {
                tracing::warn!(gate, task = %task.id, error = %e, "gate failed; its on_error decision stands in");
                failed(row, format!("{}: {e}", e.code()))
            }
        }
    }

    /// After a judged transition is stored: each gate's breaker (SPEC
    /// QG-4), given its window (`windows`, per gate of the binding, newest
    /// first), read with the transition. A failure is logged: the
    /// transition stands.
    pub async fn judged(&self, workspace: &str, binding: &Binding, windows: Vec<Vec<String>>) {
        let watched = binding
            .gates
            .iter()
            .zip(windows)
            .map(|(gate, recent)| self.watch_breaker(workspace, gate, binding, recent));
        for (gate, watched) in binding
            .gates
            .iter()
            .zip(futures::future::join_all(watched).await)
        {
            if let Err(e) = watched {
                tracing::error!(workspace, gate, error = %e, "cannot update a gate breaker");
            }
        }
    }

    fn breaker_name(workspace: &str, gate: &str) -> String {
        format!("gate:{workspace}:{gate}")
    }

    /// True while the gate's breaker is open and within its relax window.
    async fn relaxed(&self, workspace: &str, gate: &str, now: i64) -> bool {
        match self
            .store
            .get_breaker(&Self::breaker_name(workspace, gate))
            .await
        {
            Ok(Some(b)) => b.state == "open" && b.retry_at.is_some_and(|r| r > now),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(workspace, gate, error = %e, "cannot read a gate breaker");
                false
            }
        }
    }

    /// The gate breaker (SPEC QG-4), given the gate's newest verdicts
    /// (`recent`, newest first): more than half rejections over the
    /// gate's last ten verdicts raises an alert and, when the binding
    /// relaxes the gate, opens its breaker for `relax_minutes`. Back at
    /// half or fewer, the alert is resolved; an open breaker closes once
    /// its window ends.
    async fn watch_breaker(
        &self,
        workspace: &str,
        gate: &str,
        binding: &Binding,
        recent: Vec<String>,
    ) -> Result<()> {
        let rejections = recent.iter().filter(|d| *d == "reject").count() as i64;
        // The shared breaker's rate-over-window trigger: more than half of
        // the last ten.
        let tripped = crate::breaker::RateWindow {
            size: BREAKER_WINDOW as u32,
            over_percent: 50,
        }
        .tripped(recent.iter().map(|d| d == "reject"))
        .is_some()
            || (recent.len() < BREAKER_WINDOW as usize && rejections * 2 > BREAKER_WINDOW);
        let key = format!("gate_breaker:{workspace}:{gate}");
        let name = Self::breaker_name(workspace, gate);
        let now = warden_store::now_ms();
        let relax = binding.relax.contains_key(gate);
        // Only a binding that relaxes the gate opens its breaker; without
        // one there is no state to read.
        let current = if relax {
            self.store.get_breaker(&name).await?
        } else {
            None
        };
        if tripped {
            self.alerts
                .raise(
                    Some(workspace),
                    "gate_breaker",
                    Severity::Warning,
                    &key,
                    &format!(
                        "gate {gate} rejected {rejections} of its last {} verdicts{}",
                        recent.len(),
                        if relax {
                            format!("; relaxed for {} min", binding.relax_minutes)
                        } else {
                            String::new()
                        }
                    ),
                    json!({ "gate": gate, "rejections": rejections, "window": BREAKER_WINDOW, "relaxed": relax }),
                )
                .await?;
            if relax && current.as_ref().is_none_or(|b| b.state != "open") {
                let until = now + (binding.relax_minutes as i64) * 60_000;
                self.store
                    .put_breaker(&BreakerRow {
                        name,
                        state: "open".to_string(),
                        failures: rejections,
                        reason: Some(format!(
                            "{rejections} rejections in the last {BREAKER_WINDOW} verdicts; relaxed until {}",
                            crate::time::time(until)
                        )),
                        opened_at: Some(now),
                        retry_at: Some(until),
                        updated_at: now,
                    })
                    .await?;
            }
        } else {
            // The alert is resolved by the verdicts that bring the window
            // back to half: one verdict moves the count by at most one, so
            // well below half it was resolved already (the slack covers
            // verdicts recorded at once).
            if rejections * 2 >= BREAKER_WINDOW - 2 {
                self.alerts.resolve(&key).await?;
            }
            if let Some(b) = current
                && b.state == "open"
                && b.retry_at.is_none_or(|r| r <= now)
            {
                self.store
                    .put_breaker(&BreakerRow {
                        state: "closed".to_string(),
                        failures: rejections,
                        reason: Some("rejections back to half or fewer".to_string()),
                        retry_at: None,
                        updated_at: now,
                        ..b
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// A binding as stored by `put_binding`.
fn parse_binding(workspace: &str, stage: &str, raw: &Value) -> Result<Binding> {
    serde_json::from_value(raw.clone()).map_err(|e| {
        Error::Internal(format!(
            "stored gate binding {workspace}/{stage} is unreadable: {e}"
        ))
    })
}

/// The reason shown in a decision's summary: the first reason of the
/// first verdict that went against approval.
fn first_reason(verdicts: &[VerdictRow], outcome: Outcome) -> String {
    if outcome == Outcome::Approve {
        return String::new();
    }
    verdicts
        .iter()
        .filter(|v| v.decision != "approve")
        .find_map(|v| {
            v.reasons
                .first()
                .map(|r| format!("; {}: {}", v.gate, r.message))
                .or_else(|| v.error.as_ref().map(|e| format!("; {}: {e}", v.gate)))
        })
        .unwrap_or_default()
}

/// What a gate reaches of the host: its own key/value state. The gate
/// world imports no task or health interface, so the rest is refused.
struct GateBackend {
    store: Store,
}

fn not_for_gates() -> HostError {
    HostError::Denied("not available to quality gates".to_string())
}

#[async_trait]
impl Backend for GateBackend {
    async fn health(&self, _: &CallInfo) -> Result<HealthSnapshot, HostError> {
        Err(not_for_gates())
    }

    async fn list_tasks(
        &self,
        _: &CallInfo,
        _: &TaskFilter,
    ) -> Result<Vec<TaskSummary>, HostError> {
        Err(not_for_gates())
    }

    async fn get_task(&self, _: &CallInfo, _: &str) -> Result<TaskSummary, HostError> {
        Err(not_for_gates())
    }

    async fn apply(&self, _: &CallInfo, _: u32, _: &Mutation) -> Result<Applied, HostError> {
        Err(not_for_gates())
    }

    async fn record(&self, _: &CallInfo, _: &ActionRecord) -> Result<(), HostError> {
        Ok(())
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

    fn event(&self, _: &CallInfo, _: RunEvent) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_parses_and_names_what_is_wrong() {
        assert_eq!(Quorum::parse("all"), Ok(Quorum::All));
        assert_eq!(Quorum::parse("majority"), Ok(Quorum::Majority));
        assert_eq!(Quorum::parse("2-of-3"), Ok(Quorum::KOfN { k: 2, n: 3 }));
        assert!(
            Quorum::parse("4-of-3")
                .unwrap_err()
                .contains("between 1 and n")
        );
        assert!(
            Quorum::parse("0-of-3")
                .unwrap_err()
                .contains("between 1 and n")
        );
        assert!(
            Quorum::parse("most")
                .unwrap_err()
                .contains("unknown quorum \"most\"")
        );
        assert_eq!(Quorum::KOfN { k: 2, n: 3 }.to_string(), "2-of-3");
    }

    #[test]
    fn quorum_rules_decide() {
        use Outcome::*;
        // all: one rejection rejects; an escalation without rejection waits.
        assert_eq!(decide(Quorum::All, 2, 2, 0), Approve);
        assert_eq!(decide(Quorum::All, 2, 1, 1), Reject);
        assert_eq!(decide(Quorum::All, 2, 1, 0), Waiting);
        // majority of 3: two of a kind decide.
        assert_eq!(decide(Quorum::Majority, 3, 2, 1), Approve);
        assert_eq!(decide(Quorum::Majority, 3, 1, 2), Reject);
        assert_eq!(decide(Quorum::Majority, 3, 1, 1), Waiting);
        // majority of 4 needs 3.
        assert_eq!(decide(Quorum::Majority, 4, 2, 0), Waiting);
        assert_eq!(decide(Quorum::Majority, 4, 2, 2), Reject);
        // 2-of-3.
        let q = Quorum::KOfN { k: 2, n: 3 };
        assert_eq!(decide(q, 3, 2, 1), Approve);
        assert_eq!(decide(q, 3, 1, 2), Reject);
        assert_eq!(decide(q, 3, 1, 1), Waiting);
        assert_eq!(decide(q, 3, 0, 1), Waiting);
    }

    #[test]
    fn binding_validation_names_the_field() {
        let b = |json: Value| serde_json::from_value::<Binding>(json);
        let ok = b(json!({ "gates": ["a", "b", "c"], "quorum": "2-of-3" })).unwrap();
        assert_eq!(ok.reject_to, "plan");
        assert_eq!(ok.on_error, OnError::Escalate);
        ok.validate().unwrap();
        let wrong_n = b(json!({ "gates": ["a", "b"], "quorum": "2-of-3" })).unwrap();
        assert_eq!(
            wrong_n.validate().unwrap_err(),
            "quorum 2-of-3: n must be the number of gates (2)"
        );
        let twice = b(json!({ "gates": ["a", "a"] })).unwrap();
        assert!(twice.validate().unwrap_err().contains("listed twice"));
        let stray = b(json!({ "gates": ["a"], "relax": { "b": { "max": 1 } } })).unwrap();
        assert!(
            stray
                .validate()
                .unwrap_err()
                .contains("\"b\" is not one of the gates")
        );
        assert!(
            b(json!({ "gates": ["a"], "quorum": "most" }))
                .unwrap_err()
                .to_string()
                .contains("unknown quorum")
        );
        assert!(b(json!({ "gates": ["a"], "on_error": "approve" })).is_err());
        assert!(
            b(json!({ "gate": ["a"] }))
                .unwrap_err()
                .to_string()
                .contains("unknown field `gate`")
        );
    }
}
