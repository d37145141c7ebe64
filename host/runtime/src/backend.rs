//! What the runtime needs from the host: the data behind the host
//! interfaces, and a durable record of every action and event.
//!
//! The server implements [`Backend`] over its database; `warden-testkit`
//! implements it in memory. The runtime owns the rules (capabilities, modes,
//! step budgets, limits); the backend owns the data.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::types::{
    EvidenceFile, EvidenceUsage, HealthSnapshot, HostError, Mode, TaskFilter, TaskSummary,
};

/// Who is running what: passed to every backend call of one run.
#[derive(Clone, Debug, Serialize)]
pub struct CallInfo {
    /// The run's id.
    pub run_id: String,
    /// The workspace the run belongs to.
    pub workspace: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// `sha256:<hex>` of the plugin's `.wasm`.
    pub digest: String,
    /// The run's mode.
    #[serde(serialize_with = "ser_mode")]
    pub mode: Mode,
    /// Who triggered the run (token name, `schedule`, `alert:<rule>`, ...).
    pub actor: String,
}

fn ser_mode<S: serde::Serializer>(mode: &Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(mode_name(*mode))
}

/// `diagnose`, `plan` or `apply`.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Diagnose => "diagnose",
        Mode::Plan => "plan",
        Mode::Apply => "apply",
    }
}

/// A change a plugin asks for through a mutating host call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Mutation {
    /// `tasks.requeue`
    #[serde(rename = "tasks.requeue")]
    Requeue {
        /// Task id.
        id: String,
        /// Why, as the plugin said.
        reason: String,
    },
    /// `tasks.reset`
    #[serde(rename = "tasks.reset")]
    Reset {
        /// Task id.
        id: String,
        /// Why.
        reason: String,
    },
    /// `tasks.block`
    #[serde(rename = "tasks.block")]
    Block {
        /// Task id.
        id: String,
        /// Why.
        reason: String,
    },
    /// `tasks.unblock`
    #[serde(rename = "tasks.unblock")]
    Unblock {
        /// Task id.
        id: String,
        /// Why.
        reason: String,
    },
    /// `tasks.create`
    #[serde(rename = "tasks.create")]
    Create {
        /// Title.
        title: String,
        /// Body.
        body: String,
        /// `urgent`, `normal` or `low`.
        priority: String,
        /// Reuse an unfinished task with this key.
        dedup_key: Option<String>,
    },
    /// `evidence.compress`
    #[serde(rename = "evidence.compress")]
    CompressEvidence {
        /// Relative to the workspace's evidence directory.
        path: String,
    },
}

impl Mutation {
    /// The host call's name, e.g. `tasks.requeue`.
    pub fn call(&self) -> &'static str {
        match self {
            Mutation::Requeue { .. } => "tasks.requeue",
            Mutation::Reset { .. } => "tasks.reset",
            Mutation::Block { .. } => "tasks.block",
            Mutation::Unblock { .. } => "tasks.unblock",
            Mutation::Create { .. } => "tasks.create",
            Mutation::CompressEvidence { .. } => "evidence.compress",
        }
    }

    /// The object acted on, when there is one.
    pub fn target(&self) -> Option<&str> {
        match self {
            Mutation::Requeue { id, .. }
            | Mutation::Reset { id, .. }
            | Mutation::Block { id, .. }
            | Mutation::Unblock { id, .. } => Some(id),
            Mutation::CompressEvidence { path } => Some(path),
            Mutation::Create { .. } => None,
        }
    }
}

/// What became of a mutating call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Applied (mode `apply`).
    Applied,
    /// Recorded, not applied (mode `plan`).
    Planned,
    /// Refused because the mode is `diagnose`.
    Denied,
    /// Refused because the step budget was spent.
    OverBudget,
    /// The backend could not apply it (e.g. no such task).
    Failed,
}

/// One audited action of a run (SPEC PB-4).
#[derive(Clone, Debug, Serialize)]
pub struct ActionRecord {
    /// Order within the run, from 1.
    pub seq: u32,
    /// What was asked.
    pub mutation: Mutation,
    /// What became of it.
    pub status: ActionStatus,
    /// State of the object before, as the backend saw it.
    pub before: Option<serde_json::Value>,
    /// State after.
    pub after: Option<serde_json::Value>,
    /// The id of a created task, or the error of a failed call.
    pub detail: Option<String>,
}

/// What [`Backend::apply`] reports back.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// State before.
    pub before: Option<serde_json::Value>,
    /// State after.
    pub after: Option<serde_json::Value>,
    /// Id of a created object.
    pub created_id: Option<String>,
}

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// trace
    Trace,
    /// debug
    Debug,
    /// info
    Info,
    /// warn
    Warn,
    /// error
    Error,
}

/// Where a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// The `log` interface.
    Plugin,
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
    /// The host, about the run.
    Host,
}

/// One line of a run's log.
#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    /// Milliseconds since the call started.
    pub at_ms: u64,
    /// Severity.
    pub level: LogLevel,
    /// Origin.
    pub source: LogSource,
    /// The text (capped at 4 KiB).
    pub message: String,
    /// Key/value fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

/// Something that happened during a run, in order (SPEC OB-3 contract:
/// `tool_start`, `tool_result`, plus log lines and actions).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// A host call began.
    ToolStart {
        /// Call order within the run, from 1.
        call: u32,
        /// e.g. `tasks.list`.
        name: &'static str,
        /// The arguments, abridged.
        args: serde_json::Value,
    },
    /// A host call returned.
    ToolResult {
        /// Matches the `ToolStart`.
        call: u32,
        /// e.g. `tasks.list`.
        name: &'static str,
        /// False when it answered with an error.
        ok: bool,
        /// The error, or a one-line summary of the answer.
        summary: String,
    },
    /// A log line.
    Log(LogLine),
    /// An audited action.
    Action(ActionRecord),
}

/// The host's data and records, as the runtime sees them.
///
/// Every method answers for the workspace in `call`; a backend must never
/// let one workspace see another's data.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The system snapshot of `health.take`.
    async fn health(&self, call: &CallInfo) -> Result<HealthSnapshot, HostError>;

    /// Tasks matching `filter` (limit already capped by the runtime).
    async fn list_tasks(
        &self,
        call: &CallInfo,
        filter: &TaskFilter,
    ) -> Result<Vec<TaskSummary>, HostError>;

    /// One task.
    async fn get_task(&self, call: &CallInfo, id: &str) -> Result<TaskSummary, HostError>;

    /// Applies a mutation and records it as an audited action with `seq`,
    /// atomically: either both happen or neither does.
    async fn apply(
        &self,
        call: &CallInfo,
        seq: u32,
        mutation: &Mutation,
    ) -> Result<Applied, HostError>;

    /// Records an action that was not applied (planned, denied, over budget,
    /// failed).
    async fn record(&self, call: &CallInfo, action: &ActionRecord) -> Result<(), HostError>;

    /// `kv.get` of the plugin's own state in the workspace.
    async fn kv_get(&self, call: &CallInfo, key: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// `kv.set`.
    async fn kv_set(&self, call: &CallInfo, key: &str, value: &[u8]) -> Result<(), HostError>;
    /// `kv.delete`; true when the key existed.
    async fn kv_delete(&self, call: &CallInfo, key: &str) -> Result<bool, HostError>;
    /// `kv.list-keys`.
    async fn kv_list(&self, call: &CallInfo, prefix: &str) -> Result<Vec<String>, HostError>;

    /// `evidence.usage`: the file system of the evidence directory. A host
    /// without evidence files (gates, routers) keeps the default answer.
    async fn evidence_usage(&self, _call: &CallInfo) -> Result<EvidenceUsage, HostError> {
        Err(HostError::Unavailable(
            "this host keeps no evidence files".to_string(),
        ))
    }

    /// `evidence.list-old`: uncompressed evidence files of the workspace
    /// at least `older_than_secs` old, oldest first.
    async fn evidence_list_old(
        &self,
        _call: &CallInfo,
        _older_than_secs: u64,
    ) -> Result<Vec<EvidenceFile>, HostError> {
        Err(HostError::Unavailable(
            "this host keeps no evidence files".to_string(),
        ))
    }

    /// A run event, as it happens. Must not block: a backend that persists
    /// events should queue them.
    fn event(&self, call: &CallInfo, event: RunEvent);
}

/// A shared backend.
pub type SharedBackend = Arc<dyn Backend>;
