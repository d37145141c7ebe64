//! Quality gates (SPEC QG-1..QG-4): the bindings of a stage, the verdicts
//! of each gate and the gated transitions they decided, and the gates'
//! statistics.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::gates::Binding;
use warden_core::time::time;
use warden_store::breakers::BreakerRow;
use warden_store::gates::{DecisionRow, GateStats, ReasonCount, ReasonRow, VerdictRow};

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

/// `gates::stats`: per gate, verdict counts and approval rate; the top
/// rejection reasons.
///
/// Not a schema of its own: the document describes the answer as an
/// object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateStatistics {
    pub workspace: String,
    /// The window's start.
    pub since: String,
    pub verdicts: i64,
    /// Approvals over verdicts, 0 when there were none.
    pub approval_rate: f64,
    pub gates: Vec<GateStatistic>,
    pub top_rejection_reasons: Vec<TopReason>,
}

impl GateStatistics {
    /// The statistics of `workspace` since `since` (ms): the totals of
    /// every gate's `stats`, the figures of the `gates` shown (one, when
    /// the query names it), and `top` the most given reasons.
    pub fn new(
        workspace: &str,
        since: i64,
        stats: &[GateStats],
        gates: Vec<GateStatistic>,
        top: &[ReasonCount],
    ) -> GateStatistics {
        let verdicts = stats.iter().map(|s| s.total).sum();
        let approvals = stats.iter().map(|s| s.approvals).sum();
        GateStatistics {
            workspace: workspace.to_string(),
            since: time(since),
            verdicts,
            approval_rate: rate(approvals, verdicts),
            gates,
            top_rejection_reasons: top.iter().map(TopReason::from).collect(),
        }
    }
}

/// `part` over `total`, 0 when `total` is.
fn rate(part: i64, total: i64) -> f64 {
    if total > 0 {
        part as f64 / total as f64
    } else {
        0.0
    }
}

/// The figures of one gate in [`GateStatistics`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateStatistic {
    pub gate: String,
    pub verdicts: i64,
    pub approvals: i64,
    pub rejections: i64,
    pub escalations: i64,
    pub errors: i64,
    pub approval_rate: f64,
    pub rejection_rate: f64,
    pub mean_score: f64,
    /// Rejections among the last `recent_window` decisions.
    pub recent_rejections: u64,
    pub recent_window: u64,
    /// The gate's breaker, once it has one.
    pub breaker: Option<GateBreaker>,
}

impl GateStatistic {
    /// The figures of `s`, with its breaker and its `recent` decisions
    /// (`approve`, `reject`, ...), newest first.
    pub fn new(s: &GateStats, breaker: Option<&BreakerRow>, recent: &[String]) -> GateStatistic {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        GateStatistic {
            gate: s.gate.clone(),
            verdicts: s.total,
            approvals: s.approvals,
            rejections: s.rejections,
            escalations: s.escalations,
            errors: s.errors,
            approval_rate: rate(s.approvals, s.total),
            rejection_rate: rate(s.rejections, s.total),
            mean_score: s.mean_score,
            recent_rejections: count(recent.iter().filter(|d| *d == "reject").count()),
            recent_window: count(recent.len()),
            breaker: breaker.map(|b| GateBreaker {
                state: b.state.clone(),
                reason: b.reason.clone(),
                until: b.retry_at.map(time),
            }),
        }
    }
}

/// The breaker of a gate in [`GateStatistic`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateBreaker {
    /// `closed`, `open` or `half-open`.
    pub state: String,
    pub reason: Option<String>,
    /// When it is tried again, while open.
    pub until: Option<String>,
}

/// A rejection reason and how often gates gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopReason {
    pub gate: String,
    pub category: String,
    pub message: String,
    pub count: i64,
}

impl From<&ReasonCount> for TopReason {
    fn from(r: &ReasonCount) -> TopReason {
        TopReason {
            gate: r.gate.clone(),
            category: r.category.clone(),
            message: r.message.clone(),
            count: r.count,
        }
    }
}
