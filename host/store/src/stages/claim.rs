//! Claims (SPEC TS-2, TS-3): the entry points, and the rounds of SQLite
//! and of PostgreSQL with per-stage caps.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::candidates::candidates_cte;
use super::fused::claim_fused;
use super::lease::end_open_runs;
use super::room::Room;
use super::{ClaimEvents, ClaimRequest, Claimed, StageRunRow, run_from_row};
use crate::task_events::{NewEvent, append_events};
use crate::tasks::{TaskRow, task_columns, task_from_row};
use crate::util::Sql;
use crate::workers::upsert_worker;
use crate::{Dialect, Error, Result, Store};

/// At most this many stages per claim.
const MAX_CLAIM: i64 = 100;

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
