//! The OpenAPI schemas of the domain types the API takes and returns as
//! they are (warden-core has no utoipa): each mirrors its domain type
//! field for field, with the same serde attributes, so the document
//! describes what is sent and received.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the guard compares usage with; adjustable at run time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Thresholds {
    /// Pause above this % used.
    pub pause_above_pct: f64,
    /// Resume below this % used.
    pub resume_below_pct: f64,
    /// Compress files older than this while paused.
    pub compress_after_secs: u64,
}

/// A change of thresholds (`PUT /v1/disk-guard`); what is left out stays.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsUpdate {
    /// New pause threshold.
    pub pause_above_pct: Option<f64>,
    /// New resume threshold.
    pub resume_below_pct: Option<f64>,
    /// New age of files to compress.
    pub compress_after_secs: Option<u64>,
}

/// Use of the file system holding the evidence directory.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Size of the file system.
    pub total_bytes: u64,
    /// Bytes an unprivileged writer can still use.
    pub free_bytes: u64,
    /// % used, as `df` computes it: used / (used + available).
    pub used_pct: f64,
}

/// What `GET /v1/disk-guard` shows.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GuardStatus {
    /// The evidence directory.
    pub evidence_dir: String,
    /// The last measurement; `None` before the first or when it failed.
    pub usage: Option<Usage>,
    /// Thresholds in force.
    pub thresholds: Thresholds,
    /// True while recording is paused.
    pub paused: bool,
    /// Evidence files compressed since start (by the guard or a playbook).
    pub files_compressed: u64,
    /// Bytes those compressions saved.
    pub bytes_saved: u64,
    /// Recordings skipped while paused, since start.
    pub skipped_recordings: u64,
    /// Why the last measurement or compression failed, if it did.
    pub last_error: Option<String>,
}

/// What a failed gate counts as: never an approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Wait for a human (the default).
    #[default]
    Escalate,
    /// Send the task back.
    Reject,
}

/// The gates of one stage (warden.toml `[workspaces.<ws>.gates.<stage>]`,
/// or `PUT /v1/workspaces/{ws}/gates/{stage}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// Gate plugin names, each resolved with the workspace's pin.
    pub gates: Vec<String>,
    /// `all` (default), `majority` or `<k>-of-<n>`.
    #[serde(default)]
    #[schema(value_type = String, example = "all")]
    pub quorum: String,
    /// Where a rejected task goes back to (default `plan`; the first stage
    /// when its pipeline has no such stage).
    #[serde(default)]
    pub reject_to: String,
    /// What a gate that fails (trap, timeout, limit) counts as.
    #[serde(default)]
    pub on_error: OnError,
    /// Per gate: config values that replace its own while its breaker is
    /// open (SPEC QG-4 "relaxes its threshold").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub relax: BTreeMap<String, BTreeMap<String, Value>>,
    /// How long a tripped breaker relaxes the gate.
    #[serde(default)]
    pub relax_minutes: u64,
}

/// A stage's result as a worker submits it with the completion (SPEC
/// QG-1): what the gates judge.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema, schemars::JsonSchema)]
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
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema, schemars::JsonSchema)]
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
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema, schemars::JsonSchema)]
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
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema, schemars::JsonSchema)]
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
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactIn {
    /// Name.
    pub name: String,
    /// Media type (default `text/plain`).
    #[serde(default)]
    pub media_type: String,
    /// Content (text).
    pub content: String,
}

/// Per-stage lease caps and other per-workspace limits (settings JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkspaceLimits {
    /// Leases this workspace may hold at once.
    pub max_leases: Option<u32>,
    /// Per stage.
    pub max_leases_per_stage: BTreeMap<String, u32>,
}

/// A task to create, as the API takes it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
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

/// A stored or returned checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// 1, 2, 3, ...
    pub version: i64,
    /// Hex SHA-256 of the blob.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// Versions skipped on wake because they did not verify.
    pub skipped_corrupt: Vec<i64>,
}
