//! Quality gates (SPEC QG-1..QG-4): the bindings of a stage, the verdicts
//! of each gate and the gated transitions they decided.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::gates::Binding;
use warden_core::time::time;
use warden_store::gates::{DecisionRow, ReasonRow, VerdictRow};

/// The gates bound to a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relax: Option<Value>,
    pub relax_minutes: u64,
}

impl GateBinding {
    /// The view of `binding`, bound to `stage` by `source` (`api` or
    /// `config`).
    pub fn new(stage: &str, binding: &Binding, source: &str) -> GateBinding {
        GateBinding {
            stage: stage.to_string(),
            source: source.to_string(),
            gates: binding.gates.clone(),
            quorum: binding.quorum.to_string(),
            reject_to: binding.reject_to.clone(),
            on_error: on_error_name(binding),
            relax: (!binding.relax.is_empty())
                .then(|| serde_json::to_value(&binding.relax).unwrap_or_default()),
            relax_minutes: binding.relax_minutes,
        }
    }
}

/// The name `on_error` serialises to (`escalate` or `reject`).
fn on_error_name(binding: &Binding) -> String {
    match serde_json::to_value(binding.on_error) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// `gates::list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GateBindings {
    pub bindings: Vec<GateBinding>,
}

/// One gate's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
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

impl From<&VerdictRow> for Verdict {
    fn from(v: &VerdictRow) -> Verdict {
        Verdict {
            id: v.id.clone(),
            decision_id: v.decision_id.clone(),
            task_id: v.task_id.clone(),
            stage: v.stage.clone(),
            gate: v.gate.clone(),
            version: v.version.clone(),
            digest: v.digest.clone(),
            decision: v.decision.clone(),
            score: v.score,
            reasons: v.reasons.iter().map(VerdictReason::from).collect(),
            error: v.error.clone(),
            relaxed: v.relaxed,
            wall_ms: v.wall_ms,
            at: time(v.created_at),
        }
    }
}

/// A reason of a [`Verdict`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerdictReason {
    pub category: String,
    pub message: String,
}

impl From<&ReasonRow> for VerdictReason {
    fn from(r: &ReasonRow) -> VerdictReason {
        VerdictReason {
            category: r.category.clone(),
            message: r.message.clone(),
        }
    }
}

/// A gated transition and its verdicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
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

impl GateDecision {
    /// The view of `d` with those of `verdicts` that belong to it.
    pub fn new(d: &DecisionRow, verdicts: &[VerdictRow]) -> GateDecision {
        GateDecision {
            id: d.id.clone(),
            stage: d.stage.clone(),
            token: d.token,
            quorum: d.quorum.clone(),
            outcome: d.outcome.clone(),
            approvals: d.approvals,
            rejections: d.rejections,
            escalations: d.escalations,
            summary: d.summary.clone(),
            at: time(d.created_at),
            verdicts: verdicts
                .iter()
                .filter(|v| v.decision_id == d.id)
                .map(Verdict::from)
                .collect(),
        }
    }
}

/// `gates::task_verdicts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskVerdicts {
    pub task_id: String,
    pub decisions: Vec<GateDecision>,
}

/// `gates::verdicts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerdictList {
    pub verdicts: Vec<Verdict>,
}

/// `{"deleted": true}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}
