//! PostgreSQL's claim in one statement, for claims without per-stage caps.

use sqlx::{AnyConnection, Row};

use super::candidates::candidates_cte;
use super::{ClaimRequest, Claimed, StageRunRow};
use crate::tasks::{task_columns_of, task_from_row};
use crate::util::Sql;
use crate::workers::upsert_worker_sql;
use crate::{Dialect, Result};

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

/// Claims up to `need` stages in one statement (PostgreSQL, no per-stage
/// caps): picks the candidates, ends the runs of the expired leases taken
/// over, inserts the stage runs, leases the tasks and records the worker,
/// with data-modifying CTEs. One round trip, so that claims stay cheap
/// under load. The stage runs take stage and attempts from the locked rows
/// (`picked`), not from the statement's snapshot, which a claim and
/// completion committed in between could have outdated.
pub(super) async fn claim_fused(
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
