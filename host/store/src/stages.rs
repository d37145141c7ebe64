//! `stage_runs`: one row per claim of a task's stage (SPEC TS-2..TS-4,
//! ST-2). The row's id is the **fencing token**: a completion, failure or
//! heartbeat must carry the token of the task's current, unexpired lease, so
//! a worker whose lease expired can never complete the stage.
//!
//! Rules (retries, loop guards, the next stage) belong to the scheduler in
//! the server; the functions here apply decisions atomically and report
//! what they found, so that the decision is made on the row as it is inside
//! the transaction.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::gates::{DecisionRow, VerdictRow, insert_gate_decision};
use crate::notify::pg_notify;
use crate::settings::{SettingsRow, settings_columns_of_s, settings_from_joined};
use crate::task_events::{NewEvent, append_events};
use crate::tasks::{FINISHED, TaskRow, end_open_run, task_columns, task_columns_of, task_from_row};
use crate::util::{Sql, clamp_limit, is_unique_violation, json_text, parse_json_opt};
use crate::workers::{upsert_worker, upsert_worker_sql};
use crate::{Dialect, Error, Result, Store};

/// The columns [`run_from_row`] reads.
macro_rules! run_columns {
    () => {
        "id, task_id, workspace, stage, attempt, worker_id, claimed_at, expires_at, ended_at, \
         outcome, error, fingerprint, output"
    };
}

/// At most this many stages per claim.
const MAX_CLAIM: i64 = 100;

/// Expired leases requeued per transaction by `expire_leases`.
const EXPIRE_BATCH: i64 = 500;

/// A task's dependencies are all done (for `FROM tasks t`). A dependency
/// that does not exist (it never does: creation checks) would not block.
const DEPS_DONE: &str = " AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on \
     WHERE d.task_id = t.id AND dt.state <> 'done')";

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
        NewEvent::new(
            "status",
            json!({ "state": "running", "stage": self.task.stage, "attempt": self.run.attempt, "worker": self.run.worker_id, "token": self.run.id }),
        )
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

/// [`Claimed::goes_ahead`] in SQL, over the task's columns (`tasks`) and
/// the new run (`r`), with the loop limit at `limit`.
fn goes_ahead_sql(limit: &str) -> String {
    let within = |used: &str, budget: &str| {
        format!(" AND (tasks.{budget} IS NULL OR tasks.{used} < tasks.{budget})")
    };
    format!(
        "(r.attempt <= {limit}{}{}{}{})",
        within("used_tokens", "budget_tokens"),
        within("used_cost_micros", "budget_cost_micros"),
        within("used_steps", "budget_steps"),
        within("used_wall_ms", "budget_wall_ms")
    )
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

/// The outcome of [`Store::complete_stage`].
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

/// A completion ([`Store::complete_stage_with`]).
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

/// What [`Store::complete_stage_with`] wrote besides the task and its run.
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
/// histogram ([`Store::stage_duration_histogram`]).
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

/// The outcome of [`Store::fail_stage`].
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// Recorded, with the decision applied.
    Failed(TaskRow),
    /// This token had already failed: nothing changed.
    AlreadyFailed(TaskRow),
    /// Refused.
    Fenced(Fence),
}

impl Store {
    /// Claims up to `req.max` runnable stages of the workspace in one
    /// transaction (SPEC TS-2, TS-3, ST-2). Runnable: state `queued` with
    /// `next_attempt_at <= now`, every `depends_on` task `done`, no required
    /// breaker open, stage in `req.stages` when given; or state `running`
    /// with an expired lease (its stage run is marked `expired` and
    /// `took_over` names it). Order: `priority_rank`, then `created_at`.
    /// The caps in `req.limits` are counted inside the transaction and
    /// reduce how many are claimed (possibly to none). PostgreSQL uses
    /// `FOR UPDATE SKIP LOCKED`, so concurrent hosts never hand out the
    /// same stage. Each claim inserts a stage run (its id is the fencing
    /// token), sets the task `running` with lease owner, token and expiry,
    /// increments `attempts` and `total_attempts`, and updates the worker's
    /// heartbeat.
    ///
    /// `max` is capped at 100; 0 or less claims nothing (the worker's
    /// heartbeat is still recorded). A `lease_ms` below 1 counts as 1.
    pub async fn claim_stages(&self, req: &ClaimRequest) -> Result<Vec<Claimed>> {
        let claimed = self.claim_stages_with(req, ClaimEvents::Nothing).await?;
        Ok(claimed.into_iter().map(|(c, _)| c).collect())
    }

    /// [`Store::claim_stages`], appending to each claimed task the event
    /// `events` gives for its claim, with the claim (one commit for the
    /// whole batch). Each claim comes back with the event written for it.
    ///
    /// On PostgreSQL without caps, with [`ClaimEvents::Running`] or
    /// [`ClaimEvents::Nothing`], the claims and their events are one
    /// statement and no explicit transaction: one round trip and one
    /// commit for the batch.
    pub async fn claim_stages_with(
        &self,
        req: &ClaimRequest,
        events: ClaimEvents<'_>,
    ) -> Result<Vec<(Claimed, Option<NewEvent>)>> {
        let max = req.max.min(MAX_CLAIM);
        let limits = &req.limits;
        let fused = self.dialect == Dialect::Postgres && limits.per_stage.is_empty();
        let uncapped =
            limits.global.is_none() && limits.workspace.is_none() && limits.fair_share.is_none();
        let in_statement = match events {
            ClaimEvents::Nothing => Some(None),
            ClaimEvents::Running { loop_limit } => Some(Some(loop_limit)),
            ClaimEvents::Each(_) => None,
        };
        if fused
            && uncapped
            && let Some(running) = in_statement
        {
            let mut conn = self.pool.acquire().await?;
            let claimed = claim_fused(&mut conn, req, max, running).await?;
            return Ok(claimed
                .into_iter()
                .map(|(c, ahead)| {
                    let e = ahead.then(|| c.running_event());
                    (c, e)
                })
                .collect());
        }
        let mut tx = self.begin_write().await?;
        let claimed = if fused {
            let room = if uncapped {
                max
            } else if max > 0 {
                self.lease_room(&mut tx, req, max).await?.total
            } else {
                0
            };
            claim_fused(&mut tx, req, room, None)
                .await?
                .into_iter()
                .map(|(c, _)| c)
                .collect()
        } else {
            let claimed = self.claim_rounds(&mut tx, req, max).await?;
            upsert_worker(&mut tx, &req.workspace, &req.worker_id, req.now).await?;
            claimed
        };
        let claimed: Vec<(Claimed, Option<NewEvent>)> = claimed
            .into_iter()
            .map(|c| {
                let e = match events {
                    ClaimEvents::Nothing => None,
                    ClaimEvents::Each(event) => event(&c),
                    ClaimEvents::Running { loop_limit } => {
                        c.goes_ahead(loop_limit).then(|| c.running_event())
                    }
                };
                (c, e)
            })
            .collect();
        let events: Vec<(&str, &NewEvent)> = claimed
            .iter()
            .filter_map(|(c, e)| e.as_ref().map(|e| (c.task.id.as_str(), e)))
            .collect();
        if !events.is_empty() {
            append_events(
                &mut tx,
                self.dialect,
                &req.workspace,
                &events,
                req.now,
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// The claims of SQLite, and of PostgreSQL with per-stage caps: the
    /// caps counted, then candidates claimed in rounds.
    async fn claim_rounds(
        &self,
        tx: &mut AnyConnection,
        req: &ClaimRequest,
        max: i64,
    ) -> Result<Vec<Claimed>> {
        let mut room = if max > 0 {
            self.lease_room(&mut *tx, req, max).await?
        } else {
            Room::default()
        };
        let mut claimed = Vec::new();
        // Usually one round. A candidate of a stage whose cap filled up
        // within the round is skipped, and the next round asks again
        // without that stage; every extra round fills one more stage, so
        // the loop ends.
        while (claimed.len() as i64) < room.total {
            let need = room.total - claimed.len() as i64;
            let candidates = self
                .claim_candidates(&mut *tx, req, &room.full_stages(), need)
                .await?;
            let mut accepted = Vec::new();
            let mut skipped = false;
            for candidate in candidates {
                if accepted.len() as i64 == need {
                    break;
                }
                if room.take(&candidate.stage) {
                    accepted.push(candidate);
                } else {
                    skipped = true;
                }
            }
            if !accepted.is_empty() {
                claimed.extend(claim_these(&mut *tx, req, accepted).await?);
            }
            if !skipped {
                break;
            }
        }
        Ok(claimed)
    }

    /// Extends a lease to `now + lease_ms` (also the worker's heartbeat and
    /// the task's `last_event_at`).
    ///
    /// `Error::NotFound` when the workspace has no such task; `Err(Fence)`
    /// inside `Ok` when the token is not the current, unexpired lease
    /// (nothing changes then).
    pub async fn heartbeat(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        lease_ms: i64,
        now: i64,
    ) -> Result<Result<TaskRow, Fence>> {
        let expires_at = now.saturating_add(lease_ms.max(1));
        let mut tx = self.begin_write().await?;
        let extended = sqlx::query(concat!(
            "UPDATE tasks SET lease_expires_at = $5, updated_at = $4, last_event_at = $4 \
             WHERE workspace = $1 AND id = $2 AND state = 'running' AND lease_token = $3 \
             AND lease_expires_at >= $4 RETURNING ",
            task_columns!()
        ))
        .bind(workspace)
        .bind(task_id)
        .bind(token)
        .bind(now)
        .bind(expires_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = extended else {
            let task = select_task(&mut tx, self.dialect, workspace, task_id, false).await?;
            tx.rollback().await?;
            return Ok(Err(fence(&task, token, now).unwrap_or(Fence::Stale {
                token,
                current: task.lease_token,
            })));
        };
        let task = task_from_row(&row)?;
        sqlx::query("UPDATE stage_runs SET expires_at = $2 WHERE id = $1")
            .bind(token)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        if let Some(worker) = &task.lease_owner {
            upsert_worker(&mut tx, workspace, worker, now).await?;
        }
        tx.commit().await?;
        Ok(Ok(task))
    }

    /// Completes the stage of lease `token`: [`Store::complete_stage_with`]
    /// with nothing written besides.
    pub async fn complete_stage(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        output: &Value,
        now: i64,
        decide: &(dyn Fn(&TaskRow) -> AfterComplete + Send + Sync),
    ) -> Result<Completion> {
        let c = Completing {
            workspace,
            task_id,
            token,
            output,
            now,
            decision: None,
        };
        let (completion, _) = self
            .complete_stage_with(&c, &|t, _| decide(t), &|_| Also::default())
            .await?;
        Ok(completion)
    }

    /// Completes the stage of lease `c.token`. Atomically: checks the
    /// fence (current token, unexpired), lets `decide` choose what follows
    /// from the task as it is and the workspace's settings (`None` when it
    /// has none set), marks the stage run `completed` with `c.output`,
    /// clears the lease and applies the decision: `Next` queues the task at
    /// that stage with `attempts = 0` (and raises `high_water` when the
    /// index is beyond it), `Done` sets `done` and `finished_at`,
    /// `WaitApproval` sets `waiting_approval`. With it, in the same commit
    /// (one disk flush on PostgreSQL): the gates' `c.decision`, and what
    /// `also` asks for given the task as it ends up (its events; a
    /// notification, sent on commit). Completing again with the same token
    /// returns `AlreadyCompleted` and changes nothing.
    ///
    /// On PostgreSQL a completion without a decision takes two statements
    /// and no explicit transaction (see [`Store::complete_stages`]); one
    /// with a decision, or whose task changed between them, takes one
    /// transaction that locks the task first. `decide` and `also` may be
    /// called twice; they must not act.
    ///
    /// The second value is what was written besides ([`Written`]): empty
    /// when the completion was refused.
    ///
    /// The stage run's wall time (now - claimed) is added to the task's
    /// `used.wall_ms`; `WaitApproval` keeps its reason in `last_error`.
    /// `Error::NotFound` when the workspace has no such task.
    pub async fn complete_stage_with(
        &self,
        c: &Completing<'_>,
        decide: &(dyn Fn(&TaskRow, Option<&SettingsRow>) -> AfterComplete + Send + Sync),
        also: &(dyn Fn(&TaskRow) -> Also + Send + Sync),
    ) -> Result<(Completion, Written)> {
        if self.dialect == Dialect::Postgres && c.decision.is_none() {
            let mut done = self
                .complete_unlocked(std::slice::from_ref(c), &|_, t, s| decide(t, s), &|_, t| {
                    also(t)
                })
                .await?;
            if let Some(done) = done.remove(&0) {
                return Ok(done);
            }
        }
        self.complete_locked(c, decide, also).await
    }

    /// [`Store::complete_stage_with`] for each of `batch`, in its order;
    /// `decide` and `also` are told which one they decide for (its index).
    /// On PostgreSQL the completions without a decision are read in one
    /// statement and written in another, however many there are (one
    /// commit); the rest, a task that came twice, and a completion whose
    /// task changed between the two statements, are completed one by one
    /// as [`Store::complete_stage_with`] would. Each completion has its own
    /// outcome: a refused token or a missing task fails only its own.
    pub async fn complete_stages(
        &self,
        batch: &[Completing<'_>],
        decide: &(dyn Fn(usize, &TaskRow, Option<&SettingsRow>) -> AfterComplete + Send + Sync),
        also: &(dyn Fn(usize, &TaskRow) -> Also + Send + Sync),
    ) -> Result<Vec<Result<(Completion, Written)>>> {
        let mut done = if self.dialect == Dialect::Postgres {
            self.complete_unlocked(batch, decide, also).await?
        } else {
            BTreeMap::new()
        };
        let mut out = Vec::with_capacity(batch.len());
        for (i, c) in batch.iter().enumerate() {
            out.push(match done.remove(&i) {
                Some(d) => Ok(d),
                None => {
                    self.complete_locked(c, &|t, s| decide(i, t, s), &|t| also(i, t))
                        .await
                }
            });
        }
        Ok(out)
    }

    /// A completion in one transaction that locks the task first.
    async fn complete_locked(
        &self,
        c: &Completing<'_>,
        decide: &(dyn Fn(&TaskRow, Option<&SettingsRow>) -> AfterComplete + Send + Sync),
        also: &(dyn Fn(&TaskRow) -> Also + Send + Sync),
    ) -> Result<(Completion, Written)> {
        let mut tx = self.begin_write().await?;
        let (task, settings) =
            select_task_and_settings(&mut tx, self.dialect, c.workspace, c.task_id).await?;
        // A run that has an outcome is never the current lease (every path
        // that ends a run clears or replaces the token), so a fence that
        // holds means the run is open; only a refused token needs to know
        // whether it already completed. Reading the run after the row lock
        // also sees what a concurrent completion committed.
        if let Some(refused) = fence(&task, c.token, c.now) {
            let outcome = run_outcome(&mut tx, c.task_id, c.token).await?;
            tx.rollback().await?;
            return Ok((
                refused_completion(task, refused, outcome),
                Written::default(),
            ));
        }
        let next = Next::after_complete(&task, decide(&task, settings.as_ref()), c.now);
        let end = RunEnd::Completed {
            output: json_text(c.output),
        };
        let after = next
            .write(&mut tx, self.dialect, &task.id, c.token, end, c.now)
            .await?;
        let mut windows = Vec::new();
        if let Some(j) = c.decision {
            windows = insert_gate_decision(&mut tx, self.dialect, j.decision, j.verdicts, j.window)
                .await?;
        }
        let also = also(&after);
        self.write_also(&mut tx, &after, &also, c.now).await?;
        tx.commit().await?;
        Ok((Completion::Completed(after), Written { also, windows }))
    }

    /// The completions of `batch` without a decision (each task's first),
    /// on PostgreSQL, in two statements on one connection and no explicit
    /// transaction: under load, round trips and commits are what a stage
    /// costs (docs/architecture.md). The first reads each task, its row
    /// version (`xmin`), the lease's stage run and the workspace's
    /// settings, without a lock; the decisions and events are made from
    /// them. The second ends the runs, writes the tasks with absolute
    /// values, appends the events and sends the wake-ups, in one
    /// data-modifying statement (one commit) whose every part waits on the
    /// tasks' update, which only touches a task that is still the version
    /// read and holds the lease. Returns the completions settled, by index
    /// in `batch`: refused ones (read in one snapshot: a completion that
    /// committed before shows in both the task and its run) and written
    /// ones. The others (a missing task, a decision, a task seen twice, a
    /// task changed in between by a heartbeat, a report or a concurrent
    /// completion) had nothing written; the caller completes them under a
    /// lock.
    async fn complete_unlocked(
        &self,
        batch: &[Completing<'_>],
        decide: &(dyn Fn(usize, &TaskRow, Option<&SettingsRow>) -> AfterComplete + Send + Sync),
        also: &(dyn Fn(usize, &TaskRow) -> Also + Send + Sync),
    ) -> Result<BTreeMap<usize, (Completion, Written)>> {
        let mut settled = BTreeMap::new();
        let mut tasks = std::collections::BTreeSet::new();
        let picked: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].decision.is_none() && tasks.insert(batch[i].task_id))
            .collect();
        if picked.is_empty() {
            return Ok(settled);
        }
        let mut conn = self.pool.acquire().await?;
        // The batch goes as JSON, so that the statement's text is the same
        // whatever its size: prepared once per connection, planned rarely.
        let wanted: Vec<Value> = picked
            .iter()
            .map(|&i| {
                let c = &batch[i];
                json!({ "k": i, "workspace": c.workspace, "id": c.task_id, "token": c.token })
            })
            .collect();
        let ids = pg_text_array(picked.iter().map(|&i| batch[i].task_id));
        let read = sqlx::query(completion_read_sql())
            .bind(json_text(&Value::Array(wanted)))
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;

        // What each completion that may proceed writes, as the write
        // statement takes it, and the task as it will be left.
        let mut values = Vec::new();
        let mut events = Vec::new();
        let mut notifies = Vec::new();
        let mut ids = Vec::new();
        let mut tokens = Vec::new();
        let mut writes: BTreeMap<usize, (TaskRow, Also)> = BTreeMap::new();
        for row in &read {
            let i = usize::try_from(row.try_get::<i64, _>("k")?)
                .map_err(|_| Error::Conflict("a completion read came back unnumbered".into()))?;
            let Some(c) = batch.get(i) else { continue };
            let task = task_from_row(row)?;
            if let Some(refused) = fence(&task, c.token, c.now) {
                let outcome: Option<String> = row.try_get("run_outcome")?;
                settled.insert(
                    i,
                    (
                        refused_completion(task, refused, outcome),
                        Written::default(),
                    ),
                );
                continue;
            }
            let settings = settings_from_joined(row)?;
            let claimed_at: Option<i64> = row.try_get("run_claimed_at")?;
            let wall = claimed_at.map_or(0, |at| (c.now - at).max(0));
            let next = Next::after_complete(&task, decide(i, &task, settings.as_ref()), c.now);
            // The row as the update will leave it: it writes these values
            // only if nothing changed the row since the read.
            let expected = next.applied(&task, wall, c.now);
            let also = also(i, &expected);
            let mut value = next.json();
            value.insert("k".into(), json!(i));
            value.insert("id".into(), json!(c.task_id));
            value.insert("token".into(), json!(c.token));
            value.insert(
                "version".into(),
                json!(row.try_get::<String, _>("row_version")?),
            );
            value.insert("wall".into(), json!(wall));
            value.insert("n_events".into(), json!(also.events.len()));
            value.insert("done_at".into(), json!(c.now));
            value.insert("output".into(), json!(json_text(c.output)));
            values.push(Value::Object(value));
            for (j, e) in also.events.iter().enumerate() {
                events.push(
                    json!({ "k": i, "j": j + 1, "kind": e.kind, "data": json_text(&e.data) }),
                );
            }
            if let Some((channel, payload)) = &also.notify {
                notifies.push(json!({ "k": i, "channel": channel, "payload": payload }));
            }
            ids.push(c.task_id);
            tokens.push(c.token.to_string());
            writes.insert(i, (expected, also));
        }
        if writes.is_empty() {
            return Ok(settled);
        }
        let written = sqlx::query(completion_write_sql())
            .bind(json_text(&Value::Array(values)))
            .bind(pg_text_array(ids))
            .bind(format!("{{{}}}", tokens.join(",")))
            .bind(json_text(&Value::Array(events)))
            .bind(json_text(&Value::Array(notifies)))
            .fetch_all(&mut *conn)
            .await?;
        for row in &written {
            let i = usize::try_from(row.try_get::<i64, _>("k")?)
                .map_err(|_| Error::Conflict("a completion came back unnumbered".into()))?;
            let Some((expected, also)) = writes.remove(&i) else {
                continue;
            };
            let after = task_from_row(row)?;
            debug_assert_eq!(after, expected, "a completion wrote what it predicted");
            settled.insert(
                i,
                (
                    Completion::Completed(after),
                    Written {
                        also,
                        windows: Vec::new(),
                    },
                ),
            );
        }
        Ok(settled)
    }

    /// Writes what a transition asked for inside its transaction.
    async fn write_also(
        &self,
        conn: &mut AnyConnection,
        task: &TaskRow,
        also: &Also,
        now: i64,
    ) -> Result<()> {
        let events: Vec<(&str, &NewEvent)> =
            also.events.iter().map(|e| (task.id.as_str(), e)).collect();
        let notify = also
            .notify
            .as_ref()
            .filter(|_| self.dialect == Dialect::Postgres)
            .map(|(c, p)| (c.as_str(), p.as_str()));
        if !events.is_empty() {
            // The notification goes with the events' statement.
            append_events(
                &mut *conn,
                self.dialect,
                &task.workspace,
                &events,
                now,
                notify,
            )
            .await?;
        } else if let Some((channel, payload)) = notify {
            pg_notify(&mut *conn, channel, payload).await?;
        }
        Ok(())
    }

    /// Decides a task that waits for approval (SPEC QG-2, QG-3): in one
    /// transaction, lets `decide` choose from the task as it is and applies
    /// the decision as a completion would (`WaitApproval` leaves it
    /// waiting with the new reason). `Error::NotFound` when the workspace
    /// has no such task; `Error::Conflict` when it does not wait for
    /// approval.
    pub async fn decide_waiting(
        &self,
        workspace: &str,
        task_id: &str,
        now: i64,
        decide: &(dyn Fn(&TaskRow) -> AfterComplete + Send + Sync),
    ) -> Result<TaskRow> {
        let mut tx = self.begin_write().await?;
        let task = select_task(&mut tx, self.dialect, workspace, task_id, true).await?;
        if task.state != "waiting_approval" {
            tx.rollback().await?;
            return Err(Error::Conflict(format!(
                "task {task_id} is {}, not waiting_approval",
                task.state
            )));
        }
        let next = Next::after_complete(&task, decide(&task), now);
        let after = next
            .write(&mut tx, self.dialect, &task.id, 0, RunEnd::None, now)
            .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Fails the stage of lease `token`. In one transaction: checks the
    /// fence, updates `last_error`, `last_fingerprint` and
    /// `fingerprint_streak` (+1 when equal to the previous fingerprint, else
    /// 1), lets `decide` choose from the updated task, marks the stage run
    /// `failed`, clears the lease and applies the decision (`Retry` →
    /// `queued` with `next_attempt_at`; `Dead` → `dead` with `finished_at`;
    /// `Block` → `blocked`, `last_error` = reason). Failing again with the
    /// same token returns `AlreadyFailed`.
    ///
    /// The stage run's wall time is added to `used.wall_ms`.
    /// `Error::NotFound` when the workspace has no such task.
    #[expect(
        clippy::too_many_arguments,
        reason = "one atomic operation with its inputs"
    )]
    pub async fn fail_stage(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        error: &str,
        fingerprint: &str,
        now: i64,
        decide: &(dyn Fn(&TaskRow) -> AfterFail + Send + Sync),
    ) -> Result<Failure> {
        let mut tx = self.begin_write().await?;
        let task = select_task(&mut tx, self.dialect, workspace, task_id, true).await?;
        // As in `complete_stage`: only a refused token can have failed.
        if let Some(refused) = fence(&task, token, now) {
            let outcome = run_outcome(&mut tx, task_id, token).await?;
            tx.rollback().await?;
            return Ok(if outcome.as_deref() == Some("failed") {
                Failure::AlreadyFailed(task)
            } else {
                Failure::Fenced(refused)
            });
        }
        let mut failed = task.clone();
        failed.fingerprint_streak = if task.last_fingerprint.as_deref() == Some(fingerprint) {
            task.fingerprint_streak + 1
        } else {
            1
        };
        failed.last_error = Some(error.to_string());
        failed.last_fingerprint = Some(fingerprint.to_string());
        let decision = decide(&failed);
        let mut next = Next::from(&failed);
        match decision {
            AfterFail::Retry { at } => {
                next.state = "queued";
                next.next_attempt_at = at;
            }
            AfterFail::Dead => {
                next.state = "dead";
                next.finished_at = Some(now);
            }
            AfterFail::Block { reason } => {
                next.state = "blocked";
                next.last_error = Some(reason);
            }
        }
        let end = RunEnd::Failed {
            error: error.to_string(),
            fingerprint: fingerprint.to_string(),
        };
        let after = next
            .write(&mut tx, self.dialect, &task.id, token, end, now)
            .await?;
        tx.commit().await?;
        Ok(Failure::Failed(after))
    }

    /// Requeues every `running` task whose lease expired before `now`, in
    /// every workspace (their stage runs become `expired`); returns them as
    /// they are after. For the sweeper loop.
    ///
    /// With nothing expired it costs one indexed read and no transaction.
    /// On PostgreSQL a task locked by a concurrent claim or completion is
    /// left to it (or to the next sweep).
    pub async fn expire_leases(&self, now: i64) -> Result<Vec<TaskRow>> {
        let any: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM tasks WHERE state = 'running' AND lease_expires_at < $1 LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let select = match self.dialect {
            Dialect::Sqlite => {
                "SELECT id, lease_token FROM tasks WHERE state = 'running' AND lease_expires_at < $1 \
                 ORDER BY lease_expires_at LIMIT $2"
            }
            Dialect::Postgres => {
                "SELECT id, lease_token FROM tasks WHERE state = 'running' AND lease_expires_at < $1 \
                 ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            }
        };
        let mut expired = Vec::new();
        loop {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(select)
                .bind(now)
                .bind(EXPIRE_BATCH)
                .fetch_all(&mut *tx)
                .await?;
            if rows.is_empty() {
                tx.commit().await?;
                break;
            }
            let mut ids = Vec::with_capacity(rows.len());
            let mut tokens = Vec::with_capacity(rows.len());
            for row in &rows {
                ids.push(row.try_get::<String, _>("id")?);
                if let Some(token) = row.try_get::<Option<i64>, _>("lease_token")? {
                    tokens.push(token);
                }
            }
            end_open_runs(&mut tx, &tokens, "expired", now).await?;
            let mut sql = Sql::new(
                "UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
                 lease_token = NULL, updated_at = ",
            );
            let at = sql.arg(now);
            let list = sql.args(ids.iter().map(String::as_str));
            sql.push(&format!(
                "{at}, last_event_at = {at} WHERE id IN ({list}) RETURNING {}",
                task_columns!()
            ));
            let rows = sql.build()?.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            let mut batch = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
            batch.sort_by(|a, b| a.id.cmp(&b.id));
            expired.extend(batch);
            if (ids.len() as i64) < EXPIRE_BATCH {
                break;
            }
        }
        Ok(expired)
    }

    /// Gives back the leases `tokens` that are still current: each task
    /// whose lease is one of them and still `running` is requeued (its
    /// stage run ends `released`), as if the lease had expired now.
    /// Returns the tasks as they are after. For a host's graceful shutdown
    /// (SPEC RL-5): the leases it granted go back to the queue at once
    /// instead of when they expire. A token that was completed, failed,
    /// expired or claimed again meanwhile is left alone (the fence).
    pub async fn release_leases(&self, tokens: &[i64], now: i64) -> Result<Vec<TaskRow>> {
        let mut released = Vec::new();
        for chunk in tokens.chunks(EXPIRE_BATCH as usize) {
            let mut tx = self.begin_write().await?;
            let mut sql = Sql::new(
                "SELECT id, lease_token FROM tasks WHERE state = 'running' AND lease_token IN (",
            );
            let list = sql.args(chunk.iter().copied());
            sql.push(&list);
            sql.push(")");
            if self.dialect == Dialect::Postgres {
                sql.push(" FOR UPDATE");
            }
            let rows = sql.build()?.fetch_all(&mut *tx).await?;
            if rows.is_empty() {
                tx.commit().await?;
                continue;
            }
            let mut ids = Vec::with_capacity(rows.len());
            let mut held = Vec::with_capacity(rows.len());
            for row in &rows {
                ids.push(row.try_get::<String, _>("id")?);
                if let Some(token) = row.try_get::<Option<i64>, _>("lease_token")? {
                    held.push(token);
                }
            }
            end_open_runs(&mut tx, &held, "released", now).await?;
            let mut sql = Sql::new(
                "UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
                 lease_token = NULL, updated_at = ",
            );
            let at = sql.arg(now);
            let list = sql.args(ids.iter().map(String::as_str));
            sql.push(&format!(
                "{at}, last_event_at = {at} WHERE id IN ({list}) AND state = 'running' RETURNING {}",
                task_columns!()
            ));
            let rows = sql.build()?.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            let mut batch = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
            batch.sort_by(|a, b| a.id.cmp(&b.id));
            released.extend(batch);
        }
        Ok(released)
    }

    /// Cancels a task that is not finished: state `cancelled`, lease cleared,
    /// its open stage run `cancelled`. `Error::Conflict` when it is done,
    /// dead or cancelled already.
    ///
    /// Also sets `finished_at`. `Error::NotFound` when the workspace has no
    /// such task.
    pub async fn cancel_task(&self, workspace: &str, task_id: &str, now: i64) -> Result<TaskRow> {
        let mut tx = self.begin_write().await?;
        let task = select_task(&mut tx, self.dialect, workspace, task_id, true).await?;
        if FINISHED.contains(&task.state.as_str()) {
            return Err(Error::Conflict(format!(
                "task \"{task_id}\" is {} and cannot be cancelled",
                task.state
            )));
        }
        if let Some(token) = task.lease_token {
            end_open_run(&mut tx, token, "cancelled", now).await?;
        }
        let row = sqlx::query(concat!(
            "UPDATE tasks SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, \
             lease_token = NULL, finished_at = $2, updated_at = $2, last_event_at = $2 \
             WHERE id = $1 RETURNING ",
            task_columns!()
        ))
        .bind(task_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let after = task_from_row(&row)?;
        tx.commit().await?;
        Ok(after)
    }

    /// Tasks in the dead-letter queue (state `dead`), newest first.
    ///
    /// Newest by `finished_at` (when it died), then id. A `limit` of 0 or
    /// less means 100; at most 500 are returned.
    pub async fn list_dead_letters(&self, workspace: &str, limit: i64) -> Result<Vec<TaskRow>> {
        sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE workspace = $1 AND state = 'dead' \
              ORDER BY finished_at DESC, id DESC LIMIT $2"
        ))
        .bind(workspace)
        .bind(clamp_limit(limit, 100, 500))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(task_from_row)
        .collect()
    }

    /// `dead → queued` at the same stage, attempts 0, `fingerprint_streak`
    /// 0, `next_attempt_at` = now. `Error::Conflict` when not dead.
    ///
    /// `last_error` is kept and `finished_at` cleared. `Error::Conflict`
    /// too when, meanwhile, another unfinished task took the dedup key;
    /// `Error::NotFound` when the workspace has no such task.
    pub async fn redrive(&self, workspace: &str, task_id: &str, now: i64) -> Result<TaskRow> {
        let mut tx = self.begin_write().await?;
        let task = select_task(&mut tx, self.dialect, workspace, task_id, true).await?;
        if task.state != "dead" {
            return Err(Error::Conflict(format!(
                "task \"{task_id}\" is {} and cannot be redriven (only dead tasks can)",
                task.state
            )));
        }
        let updated = sqlx::query(concat!(
            "UPDATE tasks SET state = 'queued', attempts = 0, fingerprint_streak = 0, \
             next_attempt_at = $2, finished_at = NULL, updated_at = $2, last_event_at = $2 \
             WHERE id = $1 RETURNING ",
            task_columns!()
        ))
        .bind(task_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        match updated {
            Ok(row) => {
                let after = task_from_row(&row)?;
                tx.commit().await?;
                Ok(after)
            }
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                let key = task.dedup_key.unwrap_or_default();
                let holder: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM tasks WHERE workspace = $1 AND dedup_key = $2 \
                     AND state NOT IN ('done', 'cancelled', 'dead') ORDER BY created_at, id LIMIT 1",
                )
                .bind(workspace)
                .bind(&key)
                .fetch_optional(&self.pool)
                .await?;
                let holder = holder.map(|id| format!(" \"{id}\"")).unwrap_or_default();
                Err(Error::Conflict(format!(
                    "task \"{task_id}\" cannot be redriven: unfinished task{holder} holds its dedup key \
                     \"{key}\" (finish or cancel that one first)"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every stage run of a task, oldest first.
    pub async fn list_stage_runs(&self, task_id: &str) -> Result<Vec<StageRunRow>> {
        sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM stage_runs WHERE task_id = $1 ORDER BY id"
        ))
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    /// (task, stage, count) of every stage completed more than once with the
    /// same attempt number: must always be empty (a check for tests and
    /// `warden doctor`).
    pub async fn duplicate_completions(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT task_id, stage, CAST(COUNT(*) AS BIGINT) AS n FROM stage_runs \
             WHERE outcome = 'completed' GROUP BY task_id, stage, attempt HAVING COUNT(*) > 1 \
             ORDER BY task_id, stage",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("task_id")?,
                    row.try_get("stage")?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }

    /// Completed stage runs since `since` with their durations, for
    /// per-stage latency and the bottleneck stage: (stage, claimed_at,
    /// ended_at).
    ///
    /// Runs that ended at or after `since`, in the order they ended.
    pub async fn completed_stage_runs_since(
        &self,
        workspace: &str,
        since: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT stage, claimed_at, ended_at FROM stage_runs \
             WHERE workspace = $1 AND ended_at >= $2 AND outcome = 'completed' ORDER BY ended_at, id",
        )
        .bind(workspace)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("stage")?,
                    row.try_get("claimed_at")?,
                    row.try_get("ended_at")?,
                ))
            })
            .collect()
    }

    /// Every ended stage run as a histogram of its duration (ended_at -
    /// claimed_at), by workspace, stage and outcome (`completed`, `failed`,
    /// `expired`, or what ended the run otherwise), for `/metrics`: per group, the count of runs
    /// at or under each of `bounds_ms` (cumulative), the count and the sum.
    ///
    /// One aggregate over `stage_runs` (rows are never deleted, so the
    /// counts only grow, as Prometheus counters must).
    pub async fn stage_duration_histogram(&self, bounds_ms: &[i64]) -> Result<Vec<StageDurations>> {
        let buckets: String = bounds_ms
            .iter()
            .enumerate()
            .map(|(i, b)| {
                format!(
                    ", CAST(SUM(CASE WHEN ended_at - claimed_at <= {b} THEN 1 ELSE 0 END) AS BIGINT) AS b{i}"
                )
            })
            .collect();
        let sql = format!(
            "SELECT workspace, stage, outcome, COUNT(*) AS n, \
             CAST(SUM(CASE WHEN ended_at > claimed_at THEN ended_at - claimed_at ELSE 0 END) AS BIGINT) AS total{buckets} \
             FROM stage_runs WHERE ended_at IS NOT NULL AND outcome IS NOT NULL \
             GROUP BY workspace, stage, outcome ORDER BY workspace, stage, outcome"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let mut cumulative = Vec::with_capacity(bounds_ms.len());
                for i in 0..bounds_ms.len() {
                    cumulative.push(row.try_get::<i64, _>(format!("b{i}").as_str())?);
                }
                Ok(StageDurations {
                    workspace: row.try_get("workspace")?,
                    stage: row.try_get("stage")?,
                    outcome: row.try_get("outcome")?,
                    cumulative,
                    count: row.try_get("n")?,
                    sum_ms: row.try_get("total")?,
                })
            })
            .collect()
    }

    /// Per stage, the completed runs of a workspace that ended at or after
    /// `since` and the time they took (claim to completion), largest total
    /// first: the dashboard's time per stage and its bottleneck.
    pub async fn stage_durations(&self, workspace: &str, since: i64) -> Result<Vec<StageDuration>> {
        let rows = sqlx::query(
            // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast it back.
            "SELECT stage, CAST(COUNT(*) AS BIGINT) AS runs, \
             CAST(COALESCE(SUM(ended_at - claimed_at), 0) AS BIGINT) AS total_ms, \
             CAST(COALESCE(MAX(ended_at - claimed_at), 0) AS BIGINT) AS max_ms \
             FROM stage_runs WHERE workspace = $1 AND ended_at >= $2 AND outcome = 'completed' \
             GROUP BY stage ORDER BY total_ms DESC, stage",
        )
        .bind(workspace)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StageDuration {
                    stage: row.try_get("stage")?,
                    runs: row.try_get("runs")?,
                    total_ms: row.try_get("total_ms")?,
                    max_ms: row.try_get("max_ms")?,
                })
            })
            .collect()
    }

    /// The most frequent failure fingerprints of a workspace's stage runs
    /// that ended at or after `since`, most frequent first, at most `limit`
    /// (at most 100).
    pub async fn top_stage_failures(
        &self,
        workspace: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<FailureCount>> {
        let rows = sqlx::query(
            "SELECT fingerprint, CAST(COUNT(*) AS BIGINT) AS n, MAX(error) AS sample, \
             MAX(ended_at) AS last_at FROM stage_runs WHERE workspace = $1 AND ended_at >= $2 \
             AND outcome = 'failed' AND fingerprint IS NOT NULL \
             GROUP BY fingerprint ORDER BY n DESC, last_at DESC, fingerprint LIMIT $3",
        )
        .bind(workspace)
        .bind(since)
        .bind(clamp_limit(limit, 10, 100))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FailureCount {
                    fingerprint: row.try_get("fingerprint")?,
                    count: row.try_get("n")?,
                    sample: row
                        .try_get::<Option<String>, _>("sample")?
                        .unwrap_or_default(),
                    last_at: row.try_get("last_at")?,
                })
            })
            .collect()
    }

    /// How many leases this claim may take, counted inside its
    /// transaction.
    ///
    /// Counting and claiming must not interleave with another claim that
    /// counts the same leases, or both could take the last free one.
    /// SQLite's BEGIN IMMEDIATE excludes other writers already; PostgreSQL
    /// takes a transaction-scoped advisory lock, on all claims when a
    /// global cap is set (every host is expected to pass the same one),
    /// else on the workspace's claims. Without caps nothing is counted and
    /// claims run in parallel, kept apart by SKIP LOCKED.
    async fn lease_room(
        &self,
        conn: &mut AnyConnection,
        req: &ClaimRequest,
        max: i64,
    ) -> Result<Room> {
        let limits = &req.limits;
        let per_workspace = limits.workspace.is_some()
            || !limits.per_stage.is_empty()
            || limits.fair_share.is_some();
        let mut room = Room {
            total: max,
            stages: BTreeMap::new(),
        };
        if limits.global.is_none() && !per_workspace {
            return Ok(room);
        }
        if self.dialect == Dialect::Postgres {
            let key = if limits.global.is_some() {
                "warden.claims".to_string()
            } else {
                format!("warden.claims/{}", req.workspace)
            };
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut *conn)
                .await?;
        }
        if let Some(cap) = limits.global {
            let held: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM tasks WHERE state = 'running' AND lease_expires_at >= $1",
            )
            .bind(req.now)
            .fetch_one(&mut *conn)
            .await?;
            room.total = room.total.min(cap - held);
        }
        if per_workspace {
            let rows = sqlx::query(
                "SELECT stage, CAST(COUNT(*) AS BIGINT) AS n FROM tasks \
                 WHERE workspace = $1 AND state = 'running' AND lease_expires_at >= $2 GROUP BY stage",
            )
            .bind(&req.workspace)
            .bind(req.now)
            .fetch_all(&mut *conn)
            .await?;
            let mut held = BTreeMap::new();
            for row in &rows {
                held.insert(
                    row.try_get::<String, _>("stage")?,
                    row.try_get::<i64, _>("n")?,
                );
            }
            let workspace_held: i64 = held.values().sum();
            if let Some(cap) = limits.workspace {
                room.total = room.total.min(cap - workspace_held);
            }
            for (stage, cap) in &limits.per_stage {
                let taken = held.get(stage).copied().unwrap_or(0);
                room.stages.insert(stage.clone(), cap - taken);
            }
            if let Some(share) = limits.fair_share
                && room.total > 0
                && workspace_held + room.total > share
                && others_waiting(conn, &req.workspace, req.now).await?
            {
                room.total = room.total.min(share - workspace_held);
            }
        }
        room.total = room.total.max(0);
        Ok(room)
    }

    /// Claimable tasks of the workspace, outside `full` stages, in claim
    /// order, at most `2 * need` (see [`candidates_cte`]), locked on
    /// PostgreSQL.
    async fn claim_candidates(
        &self,
        conn: &mut AnyConnection,
        req: &ClaimRequest,
        full: &[String],
        need: i64,
    ) -> Result<Vec<Candidate>> {
        let mut sql = Sql::new("");
        let cte = candidates_cte(&mut sql, self.dialect, req, full, need);
        sql.push(&cte.text).push(
            " SELECT id, stage, priority_rank, created_at, took_over \
             FROM (SELECT * FROM q UNION ALL SELECT * FROM e) c ORDER BY priority_rank, created_at, id",
        );
        sql.build()?
            .fetch_all(conn)
            .await?
            .iter()
            .map(|row| {
                Ok(Candidate {
                    id: row.try_get("id")?,
                    stage: row.try_get("stage")?,
                    took_over: row.try_get("took_over")?,
                })
            })
            .collect()
    }
}

/// The candidate part of a claim: `WITH q AS (...), e AS (...)`, up to
/// `need` queued tasks (`q`) and up to `need` tasks with an expired lease
/// (`e`, whose `took_over` is that lease's token), each in claim order and
/// locked with SKIP LOCKED on PostgreSQL. Two selects rather than one with
/// an OR, so that each reads an index in order instead of sorting every
/// queued task. Columns: id, workspace, stage, attempts, priority_rank,
/// created_at, took_over; on PostgreSQL they are the locked (newest)
/// versions of the rows.
fn candidates_cte(
    sql: &mut Sql,
    dialect: Dialect,
    req: &ClaimRequest,
    full: &[String],
    need: i64,
) -> CandidatesCte {
    let workspace = sql.arg(req.workspace.as_str());
    let now = sql.arg(req.now);
    let limit = sql.arg(need);
    let mut filters = String::new();
    if !req.stages.is_empty() {
        let list = sql.args(req.stages.iter().map(String::as_str));
        filters.push_str(&format!(" AND t.stage IN ({list})"));
    }
    if !full.is_empty() {
        let list = sql.args(full.iter().map(String::as_str));
        filters.push_str(&format!(" AND t.stage NOT IN ({list})"));
    }
    filters.push_str(DEPS_DONE);
    if !req.open_breakers.is_empty() {
        let list = sql.args(req.open_breakers.iter().map(String::as_str));
        let elements = match dialect {
            Dialect::Sqlite => "json_each(t.requires) r",
            Dialect::Postgres => "json_array_elements_text(t.requires::json) r(value)",
        };
        filters.push_str(&format!(
            " AND (t.requires = '[]' OR NOT EXISTS (SELECT 1 FROM {elements} WHERE r.value IN ({list})))"
        ));
    }
    let lock = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    let columns = "t.id, t.workspace, t.stage, t.attempts, t.priority_rank, t.created_at";
    let order = "ORDER BY t.priority_rank, t.created_at, t.id";
    let text = format!(
        "WITH q AS (SELECT {columns}, CAST(NULL AS BIGINT) AS took_over FROM tasks t \
         WHERE t.workspace = {workspace} AND t.state = 'queued' AND t.next_attempt_at <= {now}{filters} \
         {order} LIMIT {limit}{lock}), \
         e AS (SELECT {columns}, t.lease_token AS took_over FROM tasks t \
         WHERE t.workspace = {workspace} AND t.state = 'running' AND t.lease_expires_at < {now}{filters} \
         {order} LIMIT {limit}{lock})"
    );
    CandidatesCte {
        text,
        workspace,
        now,
        limit,
    }
}

/// [`candidates_cte`]'s text and the placeholders it bound.
struct CandidatesCte {
    text: String,
    workspace: String,
    now: String,
    limit: String,
}

/// Claims up to `need` stages in one statement (PostgreSQL, no per-stage
/// caps): picks the candidates, ends the runs of the expired leases taken
/// over, inserts the stage runs, leases the tasks and records the worker,
/// with data-modifying CTEs. One round trip, so that claims stay cheap
/// under load. The stage runs take stage and attempts from the locked rows
/// (`picked`), not from the statement's snapshot, which a claim and
/// completion committed in between could have outdated.
async fn claim_fused(
    conn: &mut AnyConnection,
    req: &ClaimRequest,
    need: i64,
    running: Option<i64>,
) -> Result<Vec<(Claimed, bool)>> {
    let expires_at = req.now.saturating_add(req.lease_ms.max(1));
    let mut sql = Sql::new("");
    let cte = candidates_cte(&mut sql, Dialect::Postgres, req, &[], need.max(0));
    let worker = sql.arg(req.worker_id.as_str());
    let expiry = sql.arg(expires_at);
    let (now, limit) = (&cte.now, &cte.limit);
    let upsert = upsert_worker_sql(&cte.workspace, &worker, now);
    // With running events, each claim that goes ahead moves its task's
    // event counter in the lease's update, and its event is inserted from
    // what that update returns (Claimed::running_event, built in SQL).
    let (ahead, bump, events) = match running {
        Some(loop_limit) => {
            let ahead = goes_ahead_sql(&sql.arg(loop_limit));
            let bump =
                format!(", event_seq = tasks.event_seq + CASE WHEN {ahead} THEN 1 ELSE 0 END");
            let events = format!(
                ", ev AS (INSERT INTO task_events (task_id, seq, workspace, kind, data, at) \
                 SELECT l.id, l.event_seq, l.workspace, 'status', \
                 CAST(json_build_object('state', 'running', 'stage', l.stage, 'attempt', r.attempt, \
                 'worker', {worker}, 'token', r.id) AS TEXT), {now} \
                 FROM leased l JOIN runs r ON r.task_id = l.id WHERE l.ahead)"
            );
            (ahead, bump, events)
        }
        None => ("FALSE".to_string(), String::new(), String::new()),
    };
    sql.push(&cte.text).push(&format!(
        ", picked AS (SELECT * FROM (SELECT * FROM q UNION ALL SELECT * FROM e) c \
         ORDER BY priority_rank, created_at, id LIMIT {limit}), \
         ended AS (UPDATE stage_runs SET outcome = 'expired', ended_at = {now} \
         WHERE id IN (SELECT took_over FROM picked WHERE took_over IS NOT NULL) AND outcome IS NULL), \
         runs AS (INSERT INTO stage_runs (task_id, workspace, stage, attempt, worker_id, claimed_at, expires_at) \
         SELECT id, workspace, stage, attempts + 1, {worker}, {now}, {expiry} FROM picked \
         ORDER BY priority_rank, created_at, id RETURNING id, task_id, stage, attempt), \
         leased AS (UPDATE tasks SET state = 'running', lease_owner = {worker}, lease_expires_at = {expiry}, \
         lease_token = r.id, attempts = tasks.attempts + 1, total_attempts = tasks.total_attempts + 1, \
         updated_at = {now}, last_event_at = {now}{bump} FROM runs r WHERE tasks.id = r.task_id \
         RETURNING {}, tasks.event_seq, {ahead} AS ahead){events}, \
         seen AS ({upsert}) \
         SELECT {}, l.ahead, r.id AS run_id, r.stage AS run_stage, r.attempt AS run_attempt, p.took_over \
         FROM leased l JOIN runs r ON r.task_id = l.id JOIN picked p ON p.id = l.id \
         ORDER BY p.priority_rank, p.created_at, p.id",
        task_columns_of("tasks"),
        task_columns_of("l"),
    ));
    let rows = sql.build()?.fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let task = task_from_row(row)?;
            let run = StageRunRow {
                id: row.try_get("run_id")?,
                task_id: task.id.clone(),
                workspace: task.workspace.clone(),
                stage: row.try_get("run_stage")?,
                attempt: row.try_get("run_attempt")?,
                worker_id: req.worker_id.clone(),
                claimed_at: req.now,
                expires_at,
                ended_at: None,
                outcome: None,
                error: None,
                fingerprint: None,
                output: None,
            };
            let claimed = Claimed {
                task,
                run,
                took_over: row.try_get("took_over")?,
            };
            Ok((claimed, row.try_get::<bool, _>("ahead")?))
        })
        .collect()
}

/// What a claim may still take: in total, and per capped stage.
#[derive(Default)]
struct Room {
    total: i64,
    stages: BTreeMap<String, i64>,
}

impl Room {
    /// Capped stages with no room left.
    fn full_stages(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter(|(_, left)| **left <= 0)
            .map(|(stage, _)| stage.clone())
            .collect()
    }

    /// Takes room for one stage run of `stage`; false when its cap is full.
    fn take(&mut self, stage: &str) -> bool {
        match self.stages.get_mut(stage) {
            Some(left) if *left <= 0 => false,
            Some(left) => {
                *left -= 1;
                true
            }
            None => true,
        }
    }
}

/// A task a claim may take.
struct Candidate {
    id: String,
    stage: String,
    /// The open stage run of an expired lease.
    took_over: Option<i64>,
}

/// Claims `accepted` (locked, in claim order): ends the runs of expired
/// leases, inserts a stage run per task, and leases the tasks, in three
/// statements whatever their number.
async fn claim_these(
    conn: &mut AnyConnection,
    req: &ClaimRequest,
    accepted: Vec<Candidate>,
) -> Result<Vec<Claimed>> {
    let expires_at = req.now.saturating_add(req.lease_ms.max(1));
    let taken_over: Vec<i64> = accepted.iter().filter_map(|c| c.took_over).collect();
    end_open_runs(conn, &taken_over, "expired", req.now).await?;

    let mut sql = Sql::new(
        "INSERT INTO stage_runs (task_id, workspace, stage, attempt, worker_id, claimed_at, expires_at) \
         SELECT id, workspace, stage, attempts + 1, ",
    );
    let values = [
        sql.arg(req.worker_id.as_str()),
        sql.arg(req.now),
        sql.arg(expires_at),
    ]
    .join(", ");
    let list = sql.args(accepted.iter().map(|c| c.id.as_str()));
    sql.push(&format!(
        "{values} FROM tasks WHERE id IN ({list}) ORDER BY priority_rank, created_at, id RETURNING {}",
        run_columns!()
    ));
    let mut runs: BTreeMap<String, StageRunRow> = BTreeMap::new();
    for row in sql.build()?.fetch_all(&mut *conn).await? {
        let run = run_from_row(&row)?;
        runs.insert(run.task_id.clone(), run);
    }

    // The newest run of each task is the one just inserted: ids increase.
    let mut sql = Sql::new("UPDATE tasks SET state = 'running', lease_owner = ");
    let worker = sql.arg(req.worker_id.as_str());
    let expiry = sql.arg(expires_at);
    let now = sql.arg(req.now);
    let list = sql.args(accepted.iter().map(|c| c.id.as_str()));
    sql.push(&format!(
        "{worker}, lease_expires_at = {expiry}, \
         lease_token = (SELECT MAX(r.id) FROM stage_runs r WHERE r.task_id = tasks.id), \
         attempts = attempts + 1, total_attempts = total_attempts + 1, updated_at = {now}, \
         last_event_at = {now} WHERE id IN ({list}) RETURNING {}",
        task_columns!()
    ));
    let mut tasks: BTreeMap<String, TaskRow> = BTreeMap::new();
    for row in sql.build()?.fetch_all(&mut *conn).await? {
        let task = task_from_row(&row)?;
        tasks.insert(task.id.clone(), task);
    }

    accepted
        .into_iter()
        .map(|c| {
            let lost =
                || Error::Conflict(format!("task \"{}\" vanished while it was claimed", c.id));
            let task = tasks.remove(&c.id).ok_or_else(lost)?;
            let run = runs.remove(&c.id).ok_or_else(lost)?;
            Ok(Claimed {
                task,
                run,
                took_over: c.took_over,
            })
        })
        .collect()
}

/// Ends the open stage runs among `tokens` with `outcome`.
async fn end_open_runs(
    conn: &mut AnyConnection,
    tokens: &[i64],
    outcome: &str,
    now: i64,
) -> Result<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("UPDATE stage_runs SET outcome = ");
    let outcome = sql.arg(outcome);
    let at = sql.arg(now);
    let list = sql.args(tokens.iter().copied());
    sql.push(&format!(
        "{outcome}, ended_at = {at} WHERE id IN ({list}) AND outcome IS NULL"
    ));
    sql.build()?.execute(conn).await?;
    Ok(())
}

/// True when another workspace has a queued task that is claimable now
/// (breakers aside), for the fair share.
async fn others_waiting(conn: &mut AnyConnection, workspace: &str, now: i64) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT CAST(1 AS BIGINT) FROM tasks t WHERE t.workspace <> $1 AND t.state = 'queued' \
         AND t.next_attempt_at <= $2{DEPS_DONE} LIMIT 1"
    )))
    .bind(workspace)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
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

/// The task with its workspace's settings (`None` when none are set), the
/// task locked until commit on PostgreSQL (SQLite's BEGIN IMMEDIATE holds
/// the write lock already). `Error::NotFound` when the workspace has no
/// such task.
async fn select_task_and_settings(
    conn: &mut AnyConnection,
    dialect: Dialect,
    workspace: &str,
    id: &str,
) -> Result<(TaskRow, Option<SettingsRow>)> {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let [sqlite, postgres] = SQL.get_or_init(|| {
        let select = format!(
            "SELECT {}, {} FROM tasks t LEFT JOIN workspace_settings s ON s.workspace = t.workspace \
             WHERE t.workspace = $1 AND t.id = $2",
            task_columns_of("t"),
            settings_columns_of_s!()
        );
        [select.clone(), format!("{select} FOR UPDATE OF t")]
    });
    let sql = match dialect {
        Dialect::Sqlite => sqlite,
        Dialect::Postgres => postgres,
    };
    let row = sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(workspace)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("task \"{id}\"")))?;
    Ok((task_from_row(&row)?, settings_from_joined(&row)?))
}

/// [`Store::complete_unlocked`]'s read (PostgreSQL). `$1`: the
/// completions as a JSON array of `{k, workspace, id, token}`; `$2`: their
/// task ids as an array, so that the tasks are found by primary key
/// whatever the planner guesses of a join with the JSON. Each task comes
/// with its row version, the claim time and outcome of the run `token`
/// when it is a run of that task, and its workspace's settings.
fn completion_read_sql() -> AssertSqlSafe<&'static str> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AssertSqlSafe(SQL.get_or_init(|| {
        format!(
            "SELECT q.k, {}, CAST(t.xmin AS TEXT) AS row_version, r.claimed_at AS run_claimed_at, \
             r.outcome AS run_outcome, {} \
             FROM json_to_recordset(CAST($1 AS json)) AS q (k bigint, workspace text, id text, token bigint) \
             JOIN tasks t ON t.id = q.id AND t.workspace = q.workspace \
             LEFT JOIN stage_runs r ON r.id = q.token AND r.task_id = t.id \
             LEFT JOIN workspace_settings s ON s.workspace = t.workspace \
             WHERE t.id = ANY (CAST($2 AS text[]))",
            task_columns_of("t"),
            settings_columns_of_s!()
        )
    }))
}

/// [`Store::complete_unlocked`]'s write (PostgreSQL): one statement whose
/// text is the same for any batch. `$1`: the completions as a JSON array
/// of [`Next::json`] with `k`, `id`, `token`, `version`, `wall`,
/// `n_events`, `done_at` and `output`; `$2`, `$3`: their task ids and
/// tokens as arrays (primary-key lookups); `$4`: the events as `{k, j,
/// kind, data}`; `$5`: the notifications as `{k, channel, payload}`.
/// Everything waits on the tasks' update (`upd`), which only touches a
/// task still at the version read and holding the lease. A CTE that calls
/// a volatile function runs once, and only when the main query reads it:
/// the count sends the notifications of the completions written.
fn completion_write_sql() -> AssertSqlSafe<&'static str> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AssertSqlSafe(SQL.get_or_init(|| {
        let set = next_columns()
            .map(|c| format!("{c} = v.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "WITH v AS (SELECT * FROM json_to_recordset(CAST($1 AS json)) AS x (k bigint, id text, \
             token bigint, version text, wall bigint, n_events bigint, done_at bigint, output text, \
             {NEXT_COLUMNS})), \
             upd AS (UPDATE tasks t SET {set}, used_wall_ms = t.used_wall_ms + v.wall, lease_owner = NULL, \
             lease_expires_at = NULL, lease_token = NULL, updated_at = v.done_at, last_event_at = v.done_at, \
             event_seq = t.event_seq + v.n_events FROM v \
             WHERE t.id = ANY (CAST($2 AS text[])) AND t.id = v.id AND t.lease_token = v.token \
             AND t.xmin = CAST(v.version AS xid) \
             RETURNING v.k, {}, t.event_seq, v.n_events, v.done_at), \
             ended AS (UPDATE stage_runs r SET outcome = 'completed', ended_at = v.done_at, output = v.output \
             FROM v JOIN upd ON upd.k = v.k \
             WHERE r.id = ANY (CAST($3 AS bigint[])) AND r.id = v.token AND r.outcome IS NULL), \
             ev AS (INSERT INTO task_events (task_id, seq, workspace, kind, data, at) \
             SELECT upd.id, upd.event_seq - upd.n_events + e.j, upd.workspace, e.kind, e.data, upd.done_at \
             FROM upd JOIN json_to_recordset(CAST($4 AS json)) AS e (k bigint, j bigint, kind text, data text) \
             ON e.k = upd.k), \
             n AS (SELECT pg_notify(nv.channel, nv.payload) \
             FROM json_to_recordset(CAST($5 AS json)) AS nv (k bigint, channel text, payload text) \
             JOIN upd ON upd.k = nv.k) \
             SELECT upd.*, (SELECT COUNT(*) FROM n) AS notified FROM upd",
            task_columns_of("t"),
        )
    }))
}

/// A PostgreSQL array literal of `items` (`{"a","b"}`), each quoted.
fn pg_text_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = items
        .into_iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// A completion refused by `fence`: `AlreadyCompleted` when the token's
/// run (`outcome`) completed, else `Fenced`.
fn refused_completion(task: TaskRow, fence: Fence, outcome: Option<String>) -> Completion {
    if outcome.as_deref() == Some("completed") {
        Completion::AlreadyCompleted(task)
    } else {
        Completion::Fenced(fence)
    }
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
    let current = if task.state == "running" {
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

/// The columns [`Next`] writes with their types (for reading them from
/// JSON), in the order of [`Next::values`] and [`Next::json`].
const NEXT_COLUMNS: &str = "state text, stage text, stage_index bigint, attempts bigint, \
     high_water bigint, next_attempt_at bigint, finished_at bigint, last_error text, \
     last_fingerprint text, fingerprint_streak bigint, gate_rejections bigint, plan_delta text";

/// The names of [`NEXT_COLUMNS`].
fn next_columns() -> impl Iterator<Item = &'static str> {
    NEXT_COLUMNS.split(", ").filter_map(|c| c.split(' ').next())
}

/// The columns a completion or failure writes, starting from the task as
/// it was; the lease is always cleared.
struct Next {
    state: &'static str,
    stage: String,
    stage_index: i64,
    attempts: i64,
    high_water: i64,
    next_attempt_at: i64,
    finished_at: Option<i64>,
    last_error: Option<String>,
    last_fingerprint: Option<String>,
    fingerprint_streak: i64,
    gate_rejections: i64,
    plan_delta: Option<Value>,
}

impl Next {
    fn from(task: &TaskRow) -> Next {
        Next {
            state: "running",
            stage: task.stage.clone(),
            stage_index: task.stage_index,
            attempts: task.attempts,
            high_water: task.high_water,
            next_attempt_at: task.next_attempt_at,
            finished_at: task.finished_at,
            last_error: task.last_error.clone(),
            last_fingerprint: task.last_fingerprint.clone(),
            fingerprint_streak: task.fingerprint_streak,
            gate_rejections: task.gate_rejections,
            plan_delta: task.plan_delta.clone(),
        }
    }

    /// What a completion's decision writes. Reaching a stage beyond the
    /// furthest one so far is progress: the gate rejections and the plan
    /// delta are cleared.
    fn after_complete(task: &TaskRow, decision: AfterComplete, now: i64) -> Next {
        let mut next = Next::from(task);
        match decision {
            AfterComplete::Next { stage, index } => {
                next.state = "queued";
                next.stage = stage;
                next.stage_index = index;
                next.attempts = 0;
                next.high_water = task.high_water.max(index);
                next.next_attempt_at = now;
                if index > task.high_water {
                    next.gate_rejections = 0;
                    next.plan_delta = None;
                }
            }
            AfterComplete::Done => {
                next.state = "done";
                next.finished_at = Some(now);
            }
            AfterComplete::WaitApproval { reason } => {
                next.state = "waiting_approval";
                next.last_error = Some(reason);
            }
            AfterComplete::Back {
                stage,
                index,
                delta,
            } => {
                next.state = "queued";
                next.stage = stage;
                next.stage_index = index;
                next.attempts = 0;
                next.next_attempt_at = now;
                next.gate_rejections = task.gate_rejections + 1;
                next.plan_delta = Some(delta);
            }
            AfterComplete::Block { reason } => {
                next.state = "blocked";
                next.last_error = Some(reason);
            }
        }
        next
    }

    /// The placeholders of the values it writes, bound in `sql`, in the
    /// order of [`NEXT_COLUMNS`].
    fn values(self, sql: &mut Sql) -> [String; 12] {
        [
            sql.arg(self.state),
            sql.arg(self.stage),
            sql.arg(self.stage_index),
            sql.arg(self.attempts),
            sql.arg(self.high_water),
            sql.arg(self.next_attempt_at),
            sql.arg(self.finished_at),
            sql.arg(self.last_error),
            sql.arg(self.last_fingerprint),
            sql.arg(self.fingerprint_streak),
            sql.arg(self.gate_rejections),
            sql.arg(self.plan_delta.as_ref().map(json_text)),
        ]
    }

    /// The values it writes as a JSON object keyed by column, in the order
    /// of [`NEXT_COLUMNS`].
    fn json(self) -> serde_json::Map<String, Value> {
        let values = [
            json!(self.state),
            json!(self.stage),
            json!(self.stage_index),
            json!(self.attempts),
            json!(self.high_water),
            json!(self.next_attempt_at),
            json!(self.finished_at),
            json!(self.last_error),
            json!(self.last_fingerprint),
            json!(self.fingerprint_streak),
            json!(self.gate_rejections),
            json!(self.plan_delta.as_ref().map(json_text)),
        ];
        next_columns().map(String::from).zip(values).collect()
    }

    /// `column = $n, ...` of the columns it writes, bound in `sql`.
    fn assignments(self, sql: &mut Sql) -> String {
        next_columns()
            .zip(self.values(sql))
            .map(|(column, value)| format!("{column} = {value}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `task` as [`Next::write`] leaves it at `now`, the ended run having
    /// lasted `wall_ms`.
    fn applied(&self, task: &TaskRow, wall_ms: i64, now: i64) -> TaskRow {
        let mut t = task.clone();
        t.state = self.state.to_string();
        t.stage = self.stage.clone();
        t.stage_index = self.stage_index;
        t.attempts = self.attempts;
        t.high_water = self.high_water;
        t.next_attempt_at = self.next_attempt_at;
        t.finished_at = self.finished_at;
        t.last_error = self.last_error.clone();
        t.last_fingerprint = self.last_fingerprint.clone();
        t.fingerprint_streak = self.fingerprint_streak;
        t.gate_rejections = self.gate_rejections;
        t.plan_delta = self.plan_delta.clone();
        t.used.wall_ms += wall_ms;
        t.lease_owner = None;
        t.lease_expires_at = None;
        t.lease_token = None;
        t.updated_at = now;
        t.last_event_at = now;
        t
    }

    /// Ends stage run `token` as `end` says and writes the task, adding
    /// the run's wall time to `used_wall_ms`: one statement on PostgreSQL
    /// (a data-modifying CTE), two on SQLite.
    async fn write(
        self,
        conn: &mut AnyConnection,
        dialect: Dialect,
        id: &str,
        token: i64,
        end: RunEnd,
        now: i64,
    ) -> Result<TaskRow> {
        let mut sql = Sql::new("");
        let (token, at) = if matches!(end, RunEnd::None) {
            (String::new(), String::new())
        } else {
            (sql.arg(token), sql.arg(now))
        };
        let end_run = match end {
            RunEnd::Completed { output } => format!(
                "UPDATE stage_runs SET outcome = 'completed', ended_at = {at}, output = {} \
                 WHERE id = {token} RETURNING claimed_at",
                sql.arg(output)
            ),
            RunEnd::Failed { error, fingerprint } => format!(
                "UPDATE stage_runs SET outcome = 'failed', ended_at = {at}, error = {}, fingerprint = {} \
                 WHERE id = {token} RETURNING claimed_at",
                sql.arg(error),
                sql.arg(fingerprint)
            ),
            RunEnd::None => String::new(),
        };
        let wall = match dialect {
            _ if end_run.is_empty() => sql.arg(0i64),
            Dialect::Sqlite => {
                sql.push(&end_run);
                let claimed_at: i64 = sql
                    .build()?
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("claimed_at")?;
                sql = Sql::new("");
                sql.arg((now - claimed_at).max(0))
            }
            Dialect::Postgres => {
                sql.push(&format!("WITH ended AS ({end_run}) "));
                format!("COALESCE((SELECT GREATEST({at} - claimed_at, 0) FROM ended), 0)")
            }
        };
        let assignments = self.assignments(&mut sql);
        let now = sql.arg(now);
        let id = sql.arg(id);
        sql.push(&format!(
            "UPDATE tasks SET {assignments}, used_wall_ms = used_wall_ms + {wall}, lease_owner = NULL, \
             lease_expires_at = NULL, lease_token = NULL, updated_at = {now}, last_event_at = {now} \
             WHERE id = {id} RETURNING {}",
            task_columns!()
        ));
        let row = sql.build()?.fetch_one(conn).await?;
        task_from_row(&row)
    }
}

/// How a completion or failure ends its stage run (`None`: a decision on a
/// task that holds no lease).
enum RunEnd {
    Completed { output: String },
    Failed { error: String, fingerprint: String },
    None,
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
