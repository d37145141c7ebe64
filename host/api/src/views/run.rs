//! Playbook runs (SPEC PB-1..PB-3): a run, its actions, and the answers
//! that carry them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::time::{opt_time, time};
use warden_store::actions::ActionRow;
use warden_store::runs::RunRow;

/// A playbook run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<RunActions>,
}

impl Run {
    /// The view of `r` with its first actions (`rows`, in order) split as
    /// the report of SPEC PB-3 wants them, and how many it has (`total`).
    pub fn with_actions(r: &RunRow, rows: &[ActionRow], total: i64) -> Run {
        let pick = |statuses: &[&str]| -> Vec<Action> {
            rows.iter()
                .filter(|a| statuses.contains(&a.status.as_str()))
                .map(Action::from)
                .collect()
        };
        Run {
            actions: Some(RunActions {
                applied: pick(&["applied"]),
                planned: pick(&["planned"]),
                refused: pick(&["denied", "over_budget", "failed"]),
                total,
                truncated: total > rows.len() as i64,
            }),
            ..Run::from(r)
        }
    }
}

impl From<&RunRow> for Run {
    /// The view of `r` without its actions (a list of runs).
    fn from(r: &RunRow) -> Run {
        Run {
            id: r.id.clone(),
            workspace: r.workspace.clone(),
            plugin: r.plugin.clone(),
            version: r.version.clone(),
            digest: r.digest.clone(),
            mode: r.mode.to_string(),
            status: r.status.to_string(),
            input: r.input.clone(),
            report: r.report.clone(),
            error: r.error.clone(),
            error_code: r.error_code.clone(),
            usage: r.usage.clone(),
            limits: r.limits.clone(),
            actor: r.actor.clone(),
            trigger: r.trigger.clone(),
            idempotency_key: r.idempotency_key.clone(),
            plan_run_id: r.plan_run_id.clone(),
            retry_of: r.retry_of.clone(),
            created_at: time(r.created_at),
            started_at: opt_time(r.started_at),
            finished_at: opt_time(r.finished_at),
            actions: None,
        }
    }
}

/// The actions of a run as SPEC PB-3's report splits them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
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

/// One action of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
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

impl From<&ActionRow> for Action {
    fn from(a: &ActionRow) -> Action {
        Action {
            seq: a.seq,
            call: a.call.clone(),
            target: a.target.clone(),
            args: a.args.clone(),
            status: a.status.clone(),
            before: a.before.clone(),
            after: a.after.clone(),
            detail: a.detail.clone(),
            actor: a.actor.clone(),
            digest: a.digest.clone(),
            at: time(a.at),
        }
    }
}

/// A run just triggered, not waited for (`runs::respond`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunAccepted {
    pub id: String,
    pub status: String,
    pub digest: String,
    /// False when the idempotency key named an existing run.
    pub created: bool,
    pub run: Run,
}

impl RunAccepted {
    /// The answer for `r`, `created` or found by its idempotency key.
    pub fn new(r: &RunRow, created: bool) -> RunAccepted {
        RunAccepted {
            id: r.id.clone(),
            status: r.status.to_string(),
            digest: r.digest.clone(),
            created,
            run: Run::from(r),
        }
    }
}

/// What triggering a run answers: [`RunAccepted`], or with `?wait=true`
/// the run itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RunTriggered {
    Accepted(RunAccepted),
    Waited(Run),
}

/// `runs::list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
}

/// `runs::actions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionList {
    pub actions: Vec<Action>,
    /// The `after` of the next page; null when this page is the last.
    pub next_after: Option<i64>,
}
