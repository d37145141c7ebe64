//! `stage_runs`: one row per claim of a task's stage (SPEC TS-2..TS-4,
//! ST-2). The row's id is the **fencing token**: a completion, failure or
//! heartbeat must carry the token of the task's current, unexpired lease, so
//! a worker whose lease expired can never complete the stage.
//!
//! Rules (retries, loop guards, the next stage) belong to the scheduler in
//! the server; the functions here apply decisions atomically and report
//! what they found, so that the decision is made on the row as it is inside
//! the transaction.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::gates::{DecisionRow, VerdictRow};
use crate::task_events::{NewEvent, StatusEvent, TaskEvent};
use crate::tasks::{TaskRow, TaskState, task_columns, task_from_row};
use crate::util::parse_json_opt;
use crate::{Dialect, Error, Result};

/// The columns [`run_from_row`] reads.
macro_rules! run_columns {
    () => {
        "id, task_id, workspace, stage, attempt, worker_id, claimed_at, expires_at, ended_at, \
         outcome, error, fingerprint, output"
    };
}

// Claims: the entry points and their rounds (`claim`), the candidate
// tasks (`candidates`), PostgreSQL's one-statement claim (`fused`) and the
// concurrency caps (`room`).
mod candidates;
mod claim;
mod fused;
mod room;
// Leases held: heartbeats, expiry and release.
mod lease;
// Ending a stage run: completions (`complete`, PostgreSQL's batches in
// `unlocked`, the columns they write in `next`) and failures (`fail`).
mod complete;
mod fail;
mod next;
mod unlocked;
// Operators' actions on a task: cancel, dead letters, redrive.
mod manage;
// Reads of stage runs: history, metrics and the dashboard.
mod queries;

/// One claim of one stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StageRunRow {
    /// The fencing token: increasing, unique across the database.
    pub id: i64,
    /// The task.
    pub task_id: String,
    /// Its workspace.
    pub workspace: String,
    /// The stage claimed.
    pub stage: String,
    /// Attempt number at this stage (1 for the first claim).
    pub attempt: i64,
    /// The worker holding it.
    pub worker_id: String,
    /// When claimed.
    pub claimed_at: i64,
    /// When the lease expires (moved by heartbeats).
    pub expires_at: i64,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// `completed`, `failed`, `expired` or `cancelled`; `None` while held.
    pub outcome: Option<String>,
    /// Error of a failure.
    pub error: Option<String>,
    /// Fingerprint of that error.
    pub fingerprint: Option<String>,
    /// Output of a completion (JSON).
    pub output: Option<Value>,
}

/// Time spent in one stage by its completed runs in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageDuration {
    /// The stage.
    pub stage: String,
    /// Completed runs.
    pub runs: i64,
    /// Their claim-to-completion time, summed, in ms.
    pub total_ms: i64,
    /// The longest of them, in ms.
    pub max_ms: i64,
}

/// A failure fingerprint of stage runs in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureCount {
    /// The fingerprint of the normalized error.
    pub fingerprint: String,
    /// Failed runs with it.
    pub count: i64,
    /// One of its errors (the greatest text, so the answer is stable).
    pub sample: String,
    /// When the newest of them ended.
    pub last_at: i64,
}

/// Caps on concurrent leases (SPEC TS-3). `None` is no cap.
#[derive(Clone, Debug, Default)]
pub struct LeaseLimits {
    /// Leases held across all workspaces.
    pub global: Option<i64>,
    /// Leases held in this workspace.
    pub workspace: Option<i64>,
    /// Leases held per stage in this workspace.
    pub per_stage: std::collections::BTreeMap<String, i64>,
    /// Fair share: while another workspace has claimable work waiting, this
    /// workspace may hold at most this many leases.
    pub fair_share: Option<i64>,
}

/// A claim request.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    /// Workspace to claim in.
    pub workspace: String,
    /// The claiming worker.
    pub worker_id: String,
    /// Lease length in ms.
    pub lease_ms: i64,
    /// Claim up to this many stages (1 to 100).
    pub max: i64,
    /// Only these stages (empty: any).
    pub stages: Vec<String>,
    /// Breakers that are open: tasks requiring any of them are skipped.
    pub open_breakers: Vec<String>,
    /// Caps.
    pub limits: LeaseLimits,
    /// Now, in ms.
    pub now: i64,
}

/// A claimed stage: the task after the claim and its fencing token.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The task (state `running`, lease fields set).
    pub task: TaskRow,
    /// The stage run (its id is the fencing token).
    pub run: StageRunRow,
    /// The stage run this claim took over because its lease had expired.
    pub took_over: Option<i64>,
}

impl Claimed {
    /// The `status` event of this claim going ahead: `running`, with the
    /// stage, attempt, worker and token.
    pub fn running_event(&self) -> NewEvent {
        NewEvent::from(TaskEvent::Status(StatusEvent {
            attempt: Some(self.run.attempt),
            worker: Some(self.run.worker_id.clone()),
            token: Some(self.run.id),
            ..StatusEvent::new(TaskState::Running).stage(&self.task.stage)
        }))
    }

    /// False when the claim is to be refused at once: its attempt is
    /// beyond `loop_limit`, or one of its task's budgets is spent (used at
    /// or above its limit). The scheduler's loop guard and budgets say the
    /// same ([`ClaimEvents::Running`]).
    pub fn goes_ahead(&self, loop_limit: i64) -> bool {
        let t = &self.task;
        let spent = |used: i64, limit: Option<i64>| limit.is_some_and(|l| used >= l);
        self.run.attempt <= loop_limit
            && !spent(t.used.tokens, t.budget.tokens)
            && !spent(t.used.cost_micros, t.budget.cost_micros)
            && !spent(t.used.steps, t.budget.steps)
            && !spent(t.used.wall_ms, t.budget.wall_ms)
    }
}

/// The events a claim writes with it, in its own statement or
/// transaction.
#[derive(Clone, Copy)]
pub enum ClaimEvents<'a> {
    /// None: on PostgreSQL without caps, the claim is one statement.
    Nothing,
    /// The event this gives for each claim (`None`: none for it).
    Each(&'a (dyn Fn(&Claimed) -> Option<NewEvent> + Send + Sync)),
    /// Each claim's [`Claimed::running_event`], when it
    /// [`Claimed::goes_ahead`] under this loop limit. On PostgreSQL
    /// without caps, the claim and its events are then one statement.
    Running {
        /// Attempts at one stage allowed before the loop guard refuses.
        loop_limit: i64,
    },
}

/// Why a lease operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fence {
    /// The token is not the task's current lease (superseded, or the task
    /// is not running).
    Stale {
        /// The token presented.
        token: i64,
        /// The current token, if the task is leased.
        current: Option<i64>,
    },
    /// The token is current but its lease has expired.
    Expired {
        /// The token.
        token: i64,
        /// When it expired.
        expired_at: i64,
    },
}

/// What the scheduler decided a completion leads to.
#[derive(Clone, Debug, PartialEq)]
pub enum AfterComplete {
    /// Queue the task at this stage (its index in the pipeline).
    Next {
        /// Stage name.
        stage: String,
        /// Index in the task's pipeline.
        index: i64,
    },
    /// The last stage is done: the task is `done`.
    Done,
    /// Wait for a human (quality gates: escalation or no quorum): state
    /// `waiting_approval` at the same stage.
    WaitApproval {
        /// Why.
        reason: String,
    },
    /// Sent back by a quality gate (SPEC QG-3): queued at an earlier stage
    /// with `attempts = 0`, `gate_rejections + 1` and `delta` as its plan
    /// delta.
    Back {
        /// Stage name.
        stage: String,
        /// Index in the task's pipeline.
        index: i64,
        /// The reasons, for the next plan.
        delta: Value,
    },
    /// Blocked (the loop guard), with the reason kept in `last_error`.
    Block {
        /// Why.
        reason: String,
    },
}

/// What the scheduler decided a failure leads to.
#[derive(Clone, Debug, PartialEq)]
pub enum AfterFail {
    /// Back to the queue at the same stage, claimable from `at`.
    Retry {
        /// ms since epoch.
        at: i64,
    },
    /// Into the dead-letter queue (state `dead`).
    Dead,
    /// Blocked, with the reason kept in `last_error`.
    Block {
        /// Why.
        reason: String,
    },
}

/// The outcome of [`Store::complete_stage`](crate::Store::complete_stage).
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// Completed now.
    Completed(TaskRow),
    /// This token had already completed the stage: nothing changed
    /// (completion is idempotent).
    AlreadyCompleted(TaskRow),
    /// Refused.
    Fenced(Fence),
}

/// A completion ([`Store::complete_stage_with`](crate::Store::complete_stage_with)).
#[derive(Clone, Copy, Debug)]
pub struct Completing<'a> {
    /// The task's workspace.
    pub workspace: &'a str,
    /// The task.
    pub task_id: &'a str,
    /// The fencing token of the lease.
    pub token: i64,
    /// The stage's output (JSON).
    pub output: &'a Value,
    /// Now, in ms.
    pub now: i64,
    /// The gates' decision on the stage, stored with the completion.
    pub decision: Option<Judged<'a>>,
}

/// A gates' decision stored with a completion ([`Completing::decision`]).
#[derive(Clone, Copy, Debug)]
pub struct Judged<'a> {
    /// The decision.
    pub decision: &'a DecisionRow,
    /// Its gates' verdicts.
    pub verdicts: &'a [VerdictRow],
    /// How many of each gate's newest verdicts to read back once they are
    /// in (its breaker's window, SPEC QG-4).
    pub window: i64,
}

/// What a claim or a completion writes with it, in its transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Also {
    /// Events appended to the task.
    pub events: Vec<NewEvent>,
    /// A notification (channel, payload) sent when the transaction
    /// commits; PostgreSQL only (SQLite has a single host to tell).
    pub notify: Option<(String, String)>,
}

/// What [`Store::complete_stage_with`](crate::Store::complete_stage_with)
/// wrote besides the task and its run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Written {
    /// What its `also` asked for.
    pub also: Also,
    /// With a gates' decision: each of its gates' newest verdicts (their
    /// decisions, newest first, `window` of them, the new one included),
    /// read in the transaction; otherwise empty.
    pub windows: Vec<Vec<String>>,
}

/// Ended stage runs of one workspace, stage and outcome, as a duration
/// histogram
/// ([`Store::stage_duration_histogram`](crate::Store::stage_duration_histogram)).
#[derive(Clone, Debug, PartialEq)]
pub struct StageDurations {
    /// The workspace.
    pub workspace: String,
    /// The stage.
    pub stage: String,
    /// How the runs ended.
    pub outcome: String,
    /// Runs that took at most each bound, in the order of the bounds.
    pub cumulative: Vec<i64>,
    /// Every run of the group.
    pub count: i64,
    /// Their durations summed, in milliseconds.
    pub sum_ms: i64,
}

/// The outcome of [`Store::fail_stage`](crate::Store::fail_stage).
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// Recorded, with the decision applied.
    Failed(TaskRow),
    /// This token had already failed: nothing changed.
    AlreadyFailed(TaskRow),
    /// Refused.
    Fenced(Fence),
}

/// The task, locked until commit when `lock` (PostgreSQL; SQLite's BEGIN
/// IMMEDIATE holds the write lock already). `Error::NotFound` when the
/// workspace has no such task.
async fn select_task(
    conn: &mut AnyConnection,
    dialect: Dialect,
    workspace: &str,
    id: &str,
    lock: bool,
) -> Result<TaskRow> {
    let sql = if lock && dialect == Dialect::Postgres {
        concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE workspace = $1 AND id = $2 FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE workspace = $1 AND id = $2"
        )
    };
    sqlx::query(sql)
        .bind(workspace)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(task_from_row)
        .transpose()?
        .ok_or_else(|| Error::NotFound(format!("task \"{id}\"")))
}

/// The outcome of stage run `token` of the task (`None` while open, or
/// when it is not a run of that task).
async fn run_outcome(
    conn: &mut AnyConnection,
    task_id: &str,
    token: i64,
) -> Result<Option<String>> {
    let outcome: Option<Option<String>> =
        sqlx::query_scalar("SELECT outcome FROM stage_runs WHERE id = $1 AND task_id = $2")
            .bind(token)
            .bind(task_id)
            .fetch_optional(conn)
            .await?;
    Ok(outcome.flatten())
}

/// Why `token` may not act on `task` at `now`, or `None` when it holds the
/// current, unexpired lease. The check every lease operation makes inside
/// its transaction; callers may use it to look before they leap.
pub fn fence(task: &TaskRow, token: i64, now: i64) -> Option<Fence> {
    let current = if task.state == TaskState::Running {
        task.lease_token
    } else {
        None
    };
    if current != Some(token) {
        return Some(Fence::Stale { token, current });
    }
    match task.lease_expires_at {
        Some(at) if at >= now => None,
        at => Some(Fence::Expired {
            token,
            expired_at: at.unwrap_or(0),
        }),
    }
}

fn run_from_row(row: &AnyRow) -> Result<StageRunRow> {
    Ok(StageRunRow {
        id: row.try_get("id")?,
        task_id: row.try_get("task_id")?,
        workspace: row.try_get("workspace")?,
        stage: row.try_get("stage")?,
        attempt: row.try_get("attempt")?,
        worker_id: row.try_get("worker_id")?,
        claimed_at: row.try_get("claimed_at")?,
        expires_at: row.try_get("expires_at")?,
        ended_at: row.try_get("ended_at")?,
        outcome: row.try_get("outcome")?,
        error: row.try_get("error")?,
        fingerprint: row.try_get("fingerprint")?,
        output: parse_json_opt("stage_runs.output", row.try_get("output")?)?,
    })
}
