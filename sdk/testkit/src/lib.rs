//! Run a built Warden plugin against a fake host inside `cargo test`.
//!
//! The plugin runs in the same runtime as in the real host, with the same
//! limits, capability checks and modes; only the data behind the host
//! interfaces is fake (tasks, workers and kv kept in memory).
//!
//! ```no_run
//! use warden_testkit::{FakeHost, Mode, TestPlugin};
//!
//! # async fn example() {
//! let plugin = TestPlugin::build(env!("CARGO_MANIFEST_DIR")).unwrap();
//! let host = FakeHost::new();
//! host.add_task("fix the build", "implement", "running");
//! let run = plugin.run(&host, Mode::Plan, "null").await;
//! assert!(run.report().is_ok());
//! # }
//! ```
//!
//! A quality gate is evaluated on a [`Submission`], built with
//! [`submission`]:
//!
//! ```no_run
//! use warden_testkit::{Decision, FakeHost, TestPlugin, submission};
//!
//! # async fn example() {
//! let gate = TestPlugin::build(env!("CARGO_MANIFEST_DIR")).unwrap();
//! let host = FakeHost::new();
//! host.set_config("max_changed_lines", "100");
//! let diff = "--- a/x.rs\n+++ b/x.rs\n@@ -1 +1 @@\n-a\n+b\n";
//! let checked = gate
//!     .evaluate(&host, &submission("implement").diff(diff).tests(12, 0, 1))
//!     .await;
//! assert_eq!(checked.verdict().unwrap().decision, Decision::Approve);
//! # }
//! ```
//!
//! A routing policy is asked about a [`RouteRequest`], built with
//! [`route_request`] and [`provider`]:
//!
//! ```no_run
//! use warden_testkit::{FakeHost, TestPlugin, provider, route_request};
//!
//! # async fn example() {
//! let router = TestPlugin::build(env!("CARGO_MANIFEST_DIR")).unwrap();
//! let host = FakeHost::new();
//! let request = route_request("normal")
//!     .prompt_tokens(1_200)
//!     .provider(provider("dear", "big-model").price(0.01, 0.03))
//!     .provider(provider("cheap", "small-model").price(0.0001, 0.0004));
//! let routed = router.route(&host, &request.build()).await;
//! assert_eq!(routed.candidates()[0], "cheap/small-model");
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warden_runtime::meta::{CapabilitySet, Limits, PluginMeta};
use warden_runtime::{
    ActionRecord, CallInfo, GateOutcome, GateRequest, LogLine, MemoryBackend, Plugin, RouteCall,
    RouteOutcome, RunError, RunOutcome, RunRequest, Runtime, RuntimeConfig,
};

pub use warden_runtime::types::{
    Artifact, Decision, DiffStats, Reason, RubricScore, Submission, TestResults, Verdict,
};
pub use warden_runtime::types::{Candidate, ProviderStatus, RouteDecision, RouteRequest};
pub use warden_runtime::types::{Finding, Mode, Report, Severity, TaskSummary};
pub use warden_runtime::{ActionStatus, MemoryEvidence, Mutation};

mod route;
mod submission;

pub use route::{ProviderBuilder, RouteRequestBuilder, provider, route_request};
pub use submission::{SubmissionBuilder, submission};

/// Why a plugin could not be built or loaded.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The fake host: tasks, workers and kv in memory, one workspace.
pub struct FakeHost {
    backend: Arc<MemoryBackend>,
    workspace: String,
    config: Mutex<BTreeMap<String, String>>,
    grants: Mutex<Option<CapabilitySet>>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    /// An empty host with workspace `test`, granting every capability a
    /// plugin requests.
    pub fn new() -> Self {
        FakeHost {
            backend: Arc::new(MemoryBackend::new()),
            workspace: "test".to_string(),
            config: Mutex::default(),
            grants: Mutex::default(),
        }
    }

    /// Adds a task; returns its id.
    pub fn add_task(&self, title: &str, stage: &str, state: &str) -> String {
        self.backend.add_task(&self.workspace, title, stage, state)
    }

    /// Makes a task running, with an expired lease and no event for `idle`.
    pub fn make_stuck(&self, id: &str, idle: Duration) {
        self.backend.make_stuck(id, idle);
    }

    /// Adds a worker whose last heartbeat was `age_secs` ago.
    pub fn add_worker(&self, id: &str, age_secs: u64) {
        self.backend.add_worker(id, age_secs);
    }

    /// Sets one of the plugin's config values.
    pub fn set_config(&self, key: &str, value: &str) {
        if let Ok(mut c) = self.config.lock() {
            c.insert(key.to_string(), value.to_string());
        }
    }

    /// Grants only these capabilities, as a strict operator would.
    pub fn grant_only(&self, capabilities: &[&str]) -> Result<(), Error> {
        let set = CapabilitySet::parse(capabilities).map_err(|e| Error(e.to_string()))?;
        if let Ok(mut g) = self.grants.lock() {
            *g = Some(set);
        }
        Ok(())
    }

    /// One task as it is now.
    pub fn task(&self, id: &str) -> Option<TaskSummary> {
        self.backend.task(id)
    }

    /// Every task.
    pub fn tasks(&self) -> Vec<TaskSummary> {
        self.backend
            .tasks()
            .into_iter()
            .map(|t| t.summary)
            .collect()
    }

    /// Adds an evidence file of the workspace at `path` (relative, e.g.
    /// `runs/r1.json`), `bytes` long, written `age_secs` ago.
    pub fn add_evidence(&self, path: &str, bytes: u64, age_secs: u64) {
        self.backend
            .add_evidence(&self.workspace, path, bytes, age_secs);
    }

    /// Sets how full the fake evidence file system is, in percent.
    pub fn set_evidence_used_pct(&self, pct: f64) {
        self.backend.set_evidence_used_pct(pct);
    }

    /// The workspace's evidence files, with whether each was compressed.
    pub fn evidence(&self) -> Vec<MemoryEvidence> {
        self.backend
            .evidence()
            .into_iter()
            .filter(|f| f.workspace == self.workspace)
            .collect()
    }

    /// A kv value the plugin stored.
    pub fn kv(&self, plugin: &str, key: &str) -> Option<Vec<u8>> {
        self.backend.kv_value(&self.workspace, plugin, key)
    }

    fn config(&self) -> BTreeMap<String, String> {
        self.config.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// A built plugin, ready to run.
pub struct TestPlugin {
    runtime: Arc<Runtime>,
    plugin: Plugin,
    path: PathBuf,
}

impl TestPlugin {
    /// Builds the plugin crate at `manifest_dir` for `wasm32-wasip2` (in
    /// `target/warden-testkit`, so as not to wait on the running test's own
    /// build) and loads it.
    pub fn build(manifest_dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = manifest_dir.as_ref();
        let built = warden_build::build(dir, &dir.join("target").join("warden-testkit"))
            .map_err(|e| Error(e.to_string()))?;
        let path = match built.len() {
            1 => built.into_values().next(),
            _ => None,
        }
        .ok_or_else(|| {
            Error(format!(
                "{} did not build exactly one plugin",
                dir.display()
            ))
        })?;
        Self::load(path)
    }

    /// Loads a built `.wasm`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path)
            .map_err(|e| Error(format!("cannot read {}: {e}", path.display())))?;
        let runtime = Runtime::new(RuntimeConfig::default()).map_err(|e| Error(e.to_string()))?;
        let plugin = runtime
            .load(&bytes)
            .map_err(|e| Error(format!("{} was refused: {e}", path.display())))?;
        Ok(TestPlugin {
            runtime: Arc::new(runtime),
            plugin,
            path,
        })
    }

    /// The metadata embedded in the `.wasm`.
    pub fn meta(&self) -> &PluginMeta {
        self.plugin.meta()
    }

    /// Where the `.wasm` is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the playbook once in `mode` with `input` (JSON).
    pub async fn run(&self, host: &FakeHost, mode: Mode, input: &str) -> TestRun {
        self.run_with_limits(host, mode, input, Limits::default())
            .await
    }

    /// Runs with the operator's limit overrides.
    pub async fn run_with_limits(
        &self,
        host: &FakeHost,
        mode: Mode,
        input: &str,
        limits: Limits,
    ) -> TestRun {
        let req = RunRequest {
            info: self.call_info(host, "test-run", mode),
            input: input.to_string(),
            granted: self.granted(host),
            config: Arc::new(host.config()),
            limits,
            backend: host.backend.clone(),
        };
        TestRun {
            outcome: self.runtime.run_playbook(&self.plugin, req).await,
        }
    }

    /// Evaluates the quality gate once on `submission`, with the host's
    /// config and grants. Build the submission with [`submission`].
    pub async fn evaluate(&self, host: &FakeHost, submission: &Submission) -> TestVerdict {
        self.evaluate_with_limits(host, submission, Limits::default())
            .await
    }

    /// Evaluates with the operator's limit overrides.
    pub async fn evaluate_with_limits(
        &self,
        host: &FakeHost,
        submission: &Submission,
        limits: Limits,
    ) -> TestVerdict {
        let req = GateRequest {
            info: self.call_info(host, "test-evaluation", Mode::Apply),
            granted: self.granted(host),
            config: Arc::new(host.config()),
            limits,
            backend: host.backend.clone(),
        };
        TestVerdict {
            outcome: self
                .runtime
                .evaluate_gate(&self.plugin, req, submission)
                .await,
        }
    }

    /// Asks the routing policy once where `request` goes, with the host's
    /// config. Build the request with [`route_request`].
    pub async fn route(&self, host: &FakeHost, request: &RouteRequest) -> TestRoute {
        self.route_with_limits(host, request, Limits::default())
            .await
    }

    /// Routes with the operator's limit overrides.
    pub async fn route_with_limits(
        &self,
        host: &FakeHost,
        request: &RouteRequest,
        limits: Limits,
    ) -> TestRoute {
        let call = RouteCall {
            info: self.call_info(host, "test-route", Mode::Apply),
            granted: self.granted(host),
            config: Arc::new(host.config()),
            limits,
            backend: host.backend.clone(),
        };
        TestRoute {
            outcome: self
                .runtime
                .route_request(&self.plugin, call, request)
                .await,
        }
    }

    fn call_info(&self, host: &FakeHost, run_id: &str, mode: Mode) -> CallInfo {
        let meta = self.plugin.meta();
        CallInfo {
            run_id: run_id.to_string(),
            workspace: host.workspace.clone(),
            plugin: meta.name.clone(),
            version: meta.version.to_string(),
            digest: self.plugin.digest().to_string(),
            mode,
            actor: "testkit".to_string(),
        }
    }

    /// What the host grants: everything requested, unless narrowed with
    /// [`FakeHost::grant_only`].
    fn granted(&self, host: &FakeHost) -> CapabilitySet {
        host.grants
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_else(|| self.plugin.meta().capabilities.clone())
    }
}

/// The result of one run.
pub struct TestRun {
    outcome: RunOutcome,
}

impl TestRun {
    /// The report, or the error the run ended with.
    pub fn report(&self) -> Result<&Report, &RunError> {
        self.outcome.result.as_ref()
    }

    /// The error, when the run failed.
    pub fn error(&self) -> Option<&RunError> {
        self.outcome.result.as_ref().err()
    }

    /// Every mutating call (applied, planned or refused), in order.
    pub fn actions(&self) -> &[ActionRecord] {
        &self.outcome.actions
    }

    /// The run's log.
    pub fn logs(&self) -> &[LogLine] {
        &self.outcome.logs
    }

    /// Everything, for assertions the helpers above do not cover.
    pub fn outcome(&self) -> &RunOutcome {
        &self.outcome
    }
}

/// The result of one gate evaluation.
pub struct TestVerdict {
    outcome: GateOutcome,
}

impl TestVerdict {
    /// The verdict, or the error the evaluation ended with.
    pub fn verdict(&self) -> Result<&Verdict, &RunError> {
        self.outcome.result.as_ref()
    }

    /// The decision, when there is a verdict.
    pub fn decision(&self) -> Option<Decision> {
        self.verdict().ok().map(|v| v.decision)
    }

    /// The error, when the evaluation failed.
    pub fn error(&self) -> Option<&RunError> {
        self.outcome.result.as_ref().err()
    }

    /// The evaluation's log.
    pub fn logs(&self) -> &[LogLine] {
        &self.outcome.logs
    }

    /// Everything, for assertions the helpers above do not cover.
    pub fn outcome(&self) -> &GateOutcome {
        &self.outcome
    }
}

/// The result of one routing decision.
pub struct TestRoute {
    outcome: RouteOutcome,
}

impl TestRoute {
    /// The decision, or the error the call ended with.
    pub fn decision(&self) -> Result<&RouteDecision, &RunError> {
        self.outcome.result.as_ref()
    }

    /// The candidates as `provider/model`, in order (empty on error).
    pub fn candidates(&self) -> Vec<String> {
        self.decision()
            .map(|d| {
                d.candidates
                    .iter()
                    .map(|c| format!("{}/{}", c.provider, c.model))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The error, when the call failed.
    pub fn error(&self) -> Option<&RunError> {
        self.outcome.result.as_ref().err()
    }

    /// The call's log.
    pub fn logs(&self) -> &[LogLine] {
        &self.outcome.logs
    }

    /// Everything, for assertions the helpers above do not cover.
    pub fn outcome(&self) -> &RouteOutcome {
        &self.outcome
    }
}
