//! Tasks and the worker protocol (SPEC TS-1..TS-6): a task with its lease,
//! budgets and usage, its stage runs, a claim, and the answers that carry
//! them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::time::{opt_time, time};
use warden_store::stages::{Claimed, StageRunRow};
use warden_store::task_events::TaskEventRow;
use warden_store::tasks::{TaskRow, TaskState};

/// A task as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: String,
    pub workspace: String,
    pub title: String,
    pub body: String,
    pub stage: String,
    /// `queued`, `running`, `waiting_approval`, `blocked`, `failed`, `dead`, `done` or `cancelled`.
    pub state: String,
    pub priority: String,
    pub pipeline: Vec<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub total_attempts: i64,
    pub last_error: Option<String>,
    pub last_fingerprint: Option<String>,
    pub depends_on: Vec<String>,
    pub requires: Vec<String>,
    pub dedup_key: Option<String>,
    /// Set while the task is `running`.
    pub lease: Option<Lease>,
    /// Set while a `queued` task waits for its retry backoff.
    pub next_attempt_at: Option<String>,
    pub budget: TaskBudget,
    pub used: TaskUsed,
    pub created_at: String,
    pub updated_at: String,
    pub last_event_at: String,
    pub finished_at: Option<String>,
    pub gate_rejections: i64,
    /// The reasons of the last gate rejection.
    pub plan_delta: Option<Value>,
}

impl Task {
    /// The view of `t` at `now` (ms since the epoch): `next_attempt_at`
    /// shows only while a queued task's retry time is still ahead.
    pub fn at(t: &TaskRow, now: i64) -> Task {
        Task {
            id: t.id.clone(),
            workspace: t.workspace.clone(),
            title: t.title.clone(),
            body: t.body.clone(),
            stage: t.stage.clone(),
            state: t.state.to_string(),
            priority: t.priority.clone(),
            pipeline: t.pipeline.clone(),
            attempts: t.attempts,
            max_attempts: t.max_attempts,
            total_attempts: t.total_attempts,
            last_error: t.last_error.clone(),
            last_fingerprint: t.last_fingerprint.clone(),
            depends_on: t.depends_on.clone(),
            requires: t.requires.clone(),
            dedup_key: t.dedup_key.clone(),
            lease: (t.state == TaskState::Running).then(|| Lease {
                worker: t.lease_owner.clone(),
                token: t.lease_token,
                expires_at: opt_time(t.lease_expires_at),
            }),
            next_attempt_at: (t.state == TaskState::Queued && t.next_attempt_at > now)
                .then(|| time(t.next_attempt_at)),
            budget: TaskBudget {
                tokens: t.budget.tokens,
                cost_usd: t.budget.cost_micros.map(usd),
                steps: t.budget.steps,
                wall_ms: t.budget.wall_ms,
            },
            used: TaskUsed {
                tokens: t.used.tokens,
                cost_usd: usd(t.used.cost_micros),
                steps: t.used.steps,
                wall_ms: t.used.wall_ms,
            },
            created_at: time(t.created_at),
            updated_at: time(t.updated_at),
            last_event_at: time(t.last_event_at),
            finished_at: opt_time(t.finished_at),
            gate_rejections: t.gate_rejections,
            plan_delta: t.plan_delta.clone(),
        }
    }
}

impl From<&TaskRow> for Task {
    /// The view of `t` now.
    fn from(t: &TaskRow) -> Task {
        Task::at(t, warden_store::now_ms())
    }
}

/// Micro-dollars as dollars.
fn usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// The lease of a running [`Task`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    pub worker: Option<String>,
    /// The fencing token.
    pub token: Option<i64>,
    pub expires_at: Option<String>,
}

/// A task's budgets; `null` is unlimited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskBudget {
    pub tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub steps: Option<i64>,
    pub wall_ms: Option<i64>,
}

/// A task's usage so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskUsed {
    pub tokens: i64,
    pub cost_usd: f64,
    pub steps: i64,
    pub wall_ms: i64,
}

/// A task with its stage runs (`tasks::get`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub stage_runs: Vec<StageRun>,
}

/// One claim of a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StageRun {
    /// The fencing token.
    pub token: i64,
    pub stage: String,
    pub attempt: i64,
    pub worker: String,
    pub claimed_at: String,
    pub expires_at: String,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub fingerprint: Option<String>,
    pub output: Option<Value>,
}

impl From<&StageRunRow> for StageRun {
    fn from(r: &StageRunRow) -> StageRun {
        StageRun {
            token: r.id,
            stage: r.stage.clone(),
            attempt: r.attempt,
            worker: r.worker_id.clone(),
            claimed_at: time(r.claimed_at),
            expires_at: time(r.expires_at),
            ended_at: opt_time(r.ended_at),
            outcome: r.outcome.clone(),
            error: r.error.clone(),
            fingerprint: r.fingerprint.clone(),
            output: r.output.clone(),
        }
    }
}

/// `tasks::list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
}

/// `tasks::dead_letters`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetters {
    pub dead_letters: Vec<Task>,
}

/// `tasks::claim`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimResponse {
    pub claims: Vec<Claim>,
    /// Why nothing was claimable, when nothing was.
    pub idle: Option<Value>,
}

/// One claimed stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Claim {
    /// The fencing token for heartbeat, complete and fail.
    pub token: i64,
    pub task_id: String,
    pub stage: String,
    pub attempt: i64,
    pub lease_expires_at: String,
    /// The fencing token of the expired lease this claim took over, if it
    /// took one over.
    pub took_over: Option<i64>,
    pub task: Task,
}

impl From<&Claimed> for Claim {
    fn from(c: &Claimed) -> Claim {
        Claim {
            token: c.run.id,
            task_id: c.task.id.clone(),
            stage: c.run.stage.clone(),
            attempt: c.run.attempt,
            lease_expires_at: time(c.run.expires_at),
            took_over: c.took_over,
            task: Task::from(&c.task),
        }
    }
}

/// `tasks::heartbeat`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    pub token: i64,
    pub lease_expires_at: Option<String>,
}

/// `tasks::complete`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompleteResponse {
    /// False when this token had completed the stage already.
    pub completed: bool,
    pub task: Task,
}

/// `tasks::fail`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FailResponse {
    /// False when this token had failed the stage already.
    pub failed: bool,
    pub task: Task,
}

/// `tasks::decide`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionResponse {
    pub task: Task,
}

/// `tasks::report`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventSeq {
    pub seq: i64,
}

/// `tasks::events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskEvents {
    pub events: Vec<TaskEvent>,
}

/// One task event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskEvent {
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Value,
    pub at: String,
}

impl From<&TaskEventRow> for TaskEvent {
    fn from(e: &TaskEventRow) -> TaskEvent {
        TaskEvent {
            seq: e.seq,
            kind: e.kind.clone(),
            data: e.data.clone(),
            at: time(e.at),
        }
    }
}
