//! `task_events`: what happened to each task, in order (SPEC OB-3 contract:
//! `status`, `tool_start`, `tool_result`, `token`, `budget`, `stop_reason`,
//! `guardrails`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use crate::tasks::TaskState;

use crate::util::{Sql, clamp_limit, json_text, parse_json};
use crate::{Dialect, Error, Result, Store};

/// One event.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskEventRow {
    /// The task.
    pub task_id: String,
    /// Its workspace.
    pub workspace: String,
    /// Order within the task, from 1.
    pub seq: i64,
    /// The kind.
    pub kind: String,
    /// The body.
    pub data: Value,
    /// When.
    pub at: i64,
}

/// An event to append to a task ([`Store::add_task_event`], or with a
/// claim or a completion, in its transaction).
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The kind.
    pub kind: String,
    /// The body.
    pub data: Value,
}

impl NewEvent {
    /// An event of `kind` with `data`.
    pub fn new(kind: &str, data: Value) -> NewEvent {
        NewEvent {
            kind: kind.to_string(),
            data,
        }
    }
}

crate::names::stored_names! {
    /// The kind of a task event (SPEC OB-3), `task_events.kind`.
    pub enum EventKind ("event type") {
        /// The task changed state (or a worker says where it is).
        Status = "status",
        /// A worker started a tool call (counts a step).
        ToolStart = "tool_start",
        /// A tool call's result.
        ToolResult = "tool_result",
        /// Model usage (counts against the token and cost budgets).
        Token = "token",
        /// A budget was reached.
        Budget = "budget",
        /// Why the task stopped.
        StopReason = "stop_reason",
        /// A loop guard or a cap stepped in.
        Guardrails = "guardrails",
        /// A quality gate's or a human's decision.
        Gate = "gate",
        /// A log line.
        Log = "log",
    }
}

impl EventKind {
    /// The kinds a worker may report (all but `gate`, which only the
    /// gates and the approvals write).
    pub const REPORTED: &'static [EventKind] = &[
        EventKind::Status,
        EventKind::ToolStart,
        EventKind::ToolResult,
        EventKind::Token,
        EventKind::Budget,
        EventKind::StopReason,
        EventKind::Guardrails,
        EventKind::Log,
    ];
}

/// A task event as the host writes it: its kind (`type`) and its body
/// (`data`), the shape the API shows (`{"type": "status", "data": {...}}`).
///
/// The host's own events have typed bodies. A worker's report is stored
/// as it came ([`NewEvent::new`] with a [`EventKind::REPORTED`] kind): a
/// worker may report any JSON, under the host's kinds too, so stored
/// events are read back as a kind and a JSON body ([`TaskEventRow`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum TaskEvent {
    /// The task's state changed.
    Status(StatusEvent),
    /// A tool call started (reported by workers).
    ToolStart(Value),
    /// A tool call's result (reported by workers).
    ToolResult(Value),
    /// Model usage (reported by workers).
    Token(Value),
    /// A budget of the task is spent.
    Budget(BudgetEvent),
    /// Why the task stopped.
    StopReason(StopEvent),
    /// A loop guard blocked the task.
    Guardrails(GuardrailsEvent),
    /// A gate's or a human's decision.
    Gate(GateEvent),
    /// A log line (reported by workers).
    Log(Value),
}

impl TaskEvent {
    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match self {
            TaskEvent::Status(_) => EventKind::Status,
            TaskEvent::ToolStart(_) => EventKind::ToolStart,
            TaskEvent::ToolResult(_) => EventKind::ToolResult,
            TaskEvent::Token(_) => EventKind::Token,
            TaskEvent::Budget(_) => EventKind::Budget,
            TaskEvent::StopReason(_) => EventKind::StopReason,
            TaskEvent::Guardrails(_) => EventKind::Guardrails,
            TaskEvent::Gate(_) => EventKind::Gate,
            TaskEvent::Log(_) => EventKind::Log,
        }
    }

    /// Its body, as stored in `task_events.data`.
    pub fn data(&self) -> Value {
        let data = match self {
            TaskEvent::Status(e) => serde_json::to_value(e),
            TaskEvent::Budget(e) => serde_json::to_value(e),
            TaskEvent::StopReason(e) => serde_json::to_value(e),
            TaskEvent::Guardrails(e) => serde_json::to_value(e),
            TaskEvent::Gate(e) => serde_json::to_value(e),
            TaskEvent::ToolStart(v)
            | TaskEvent::ToolResult(v)
            | TaskEvent::Token(v)
            | TaskEvent::Log(v) => return v.clone(),
        };
        // Strings, numbers and JSON values always serialize.
        data.unwrap_or_default()
    }
}

impl From<&TaskEvent> for NewEvent {
    fn from(event: &TaskEvent) -> NewEvent {
        NewEvent::new(event.kind().as_str(), event.data())
    }
}

impl From<TaskEvent> for NewEvent {
    fn from(event: TaskEvent) -> NewEvent {
        NewEvent::from(&event)
    }
}

/// The body of a `status` event: the state the task is in now, and what
/// the change has to say (fields that are `None` are left out).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// The task's state.
    pub state: TaskState,
    /// Its stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Why (a lease expired or was released, a guard or budget blocked it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A claim's attempt at the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    /// A claim's worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// A claim's fencing token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<i64>,
    /// The token of the lease whose completion this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_token: Option<i64>,
    /// When a failed stage is retried (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// The first line of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when an operator redrove a dead task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redriven: Option<bool>,
    /// Set when an operator unblocked the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unblocked: Option<bool>,
}

impl StatusEvent {
    /// `state`, with nothing else said.
    pub fn new(state: TaskState) -> StatusEvent {
        StatusEvent {
            state,
            stage: None,
            reason: None,
            attempt: None,
            worker: None,
            token: None,
            completed_token: None,
            retry_at: None,
            error: None,
            redriven: None,
            unblocked: None,
        }
    }

    /// With the stage.
    pub fn stage(self, stage: &str) -> StatusEvent {
        StatusEvent {
            stage: Some(stage.to_string()),
            ..self
        }
    }

    /// With the reason.
    pub fn reason(self, reason: &str) -> StatusEvent {
        StatusEvent {
            reason: Some(reason.to_string()),
            ..self
        }
    }
}

impl From<StatusEvent> for TaskEvent {
    fn from(e: StatusEvent) -> TaskEvent {
        TaskEvent::Status(e)
    }
}

/// The body of a `budget` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetEvent {
    /// True: the budget is spent.
    pub spent: bool,
    /// Which budget, with its figures.
    pub message: String,
}

/// Why a task stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// It passed its last stage.
    Done,
    /// It was cancelled.
    Cancelled,
    /// It went to the dead-letter queue.
    DeadLetter,
}

/// The body of a `stop_reason` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopEvent {
    /// Why.
    pub reason: Stop,
    /// The attempts made, when it went to the dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
}

impl StopEvent {
    /// `reason`, with nothing else said.
    pub fn new(reason: Stop) -> StopEvent {
        StopEvent {
            reason,
            attempts: None,
        }
    }
}

/// The body of a `guardrails` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardrailsEvent {
    /// The guard's rule (`infinite_loop`, `same_failure`, `budget_spent`).
    pub guard: String,
    /// What it says.
    pub message: String,
}

/// The body of a `gate` event: the gates' judgement, or a human's
/// decision on a task waiting for approval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GateEvent {
    /// The gates bound to the stage judged it.
    Judged {
        /// The stored decision.
        decision_id: String,
        /// The judged stage.
        stage: String,
        /// `approve`, `reject` or `waiting`.
        outcome: String,
        /// The quorum that applied.
        quorum: String,
        /// One line.
        summary: String,
        /// Each gate's verdict.
        verdicts: Vec<GateVerdict>,
    },
    /// A human decided.
    Human {
        /// `approve` or `reject`.
        outcome: String,
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
}

/// One gate's verdict in a [`GateEvent::Judged`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// The gate plugin.
    pub gate: String,
    /// The digest that ran.
    pub digest: String,
    /// `approve`, `reject` or `escalate`.
    pub decision: String,
    /// Its score.
    pub score: i64,
    /// Why the gate failed, when it did.
    pub error: Option<String>,
}

/// Appends `events` (task id, event) of the workspace inside `conn`'s
/// transaction, in their order: each task's events are numbered after its
/// `event_seq`, which moves past them, and its `last_event_at` is set.
/// The tasks must be the workspace's (the callers' own claims and
/// completions); `Error::NotFound` names one that does not exist.
///
/// On PostgreSQL it is one statement, which also sends `notify` (channel,
/// payload) on commit when given. On SQLite (no notifications) it is
/// usually two whatever the number: the counters move in one `UPDATE ...
/// RETURNING` per distinct number of events per task, and the rows go in
/// one `INSERT` per 1,000.
pub(crate) async fn append_events(
    conn: &mut AnyConnection,
    dialect: Dialect,
    workspace: &str,
    events: &[(&str, &NewEvent)],
    now: i64,
    notify: Option<(&str, &str)>,
) -> Result<()> {
    if dialect == Dialect::Postgres {
        return append_events_pg(conn, workspace, events, now, notify).await;
    }
    // Events per task, in order of first appearance.
    let mut counts: Vec<(&str, i64)> = Vec::new();
    for (task, _) in events {
        match counts.iter_mut().find(|(t, _)| t == task) {
            Some((_, n)) => *n += 1,
            None => counts.push((task, 1)),
        }
    }
    let mut distinct: Vec<i64> = counts.iter().map(|(_, n)| *n).collect();
    distinct.sort_unstable();
    distinct.dedup();
    // The next seq to hand out per task.
    let mut next: BTreeMap<String, i64> = BTreeMap::new();
    for n in distinct {
        let tasks: Vec<&str> = counts
            .iter()
            .filter(|(_, c)| *c == n)
            .map(|(t, _)| *t)
            .collect();
        let mut sql = Sql::new("");
        let (step, at, ws) = (sql.arg(n), sql.arg(now), sql.arg(workspace));
        let ids = sql.args(tasks.iter().map(|t| t.to_string()));
        sql.push(&format!(
            "UPDATE tasks SET event_seq = event_seq + {step}, last_event_at = {at} \
             WHERE workspace = {ws} AND id IN ({ids}) RETURNING id, event_seq"
        ));
        for row in sql.build()?.fetch_all(&mut *conn).await? {
            let (id, seq): (String, i64) = (row.try_get("id")?, row.try_get("event_seq")?);
            next.insert(id, seq - n + 1);
        }
        if let Some(missing) = tasks.iter().find(|t| !next.contains_key(**t)) {
            return Err(Error::NotFound(format!("task \"{missing}\"")));
        }
    }
    for chunk in events.chunks(1_000) {
        let mut sql =
            Sql::new("INSERT INTO task_events (task_id, seq, workspace, kind, data, at) VALUES ");
        for (i, (task, event)) in chunk.iter().enumerate() {
            let seq = next.get_mut(*task).map_or(0, |s| {
                *s += 1;
                *s - 1
            });
            let values = [
                sql.arg(task.to_string()),
                sql.arg(seq),
                sql.arg(workspace),
                sql.arg(event.kind.clone()),
                sql.arg(json_text(&event.data)),
                sql.arg(now),
            ];
            let sep = if i == 0 { "" } else { ", " };
            sql.push(&format!("{sep}({})", values.join(", ")));
        }
        sql.build()?.execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`append_events`] on PostgreSQL, in one statement: the counters move
/// in a data-modifying CTE and the rows are numbered from what it returns.
async fn append_events_pg(
    conn: &mut AnyConnection,
    workspace: &str,
    events: &[(&str, &NewEvent)],
    now: i64,
    notify: Option<(&str, &str)>,
) -> Result<()> {
    let mut sql = Sql::new("");
    let (ws, at) = (sql.arg(workspace), sql.arg(now));
    let rows: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(k, (task, e))| {
            format!(
                "({}, {}, {}, {})",
                sql.arg(k as i64),
                sql.arg(*task),
                sql.arg(e.kind.as_str()),
                sql.arg(json_text(&e.data))
            )
        })
        .collect();
    // A CTE that calls a volatile function is run once, not inlined.
    let (notify_cte, notify_join) = match notify {
        Some((channel, payload)) => (
            format!(
                ", n AS (SELECT pg_notify({}, {}))",
                sql.arg(channel),
                sql.arg(payload)
            ),
            " CROSS JOIN n",
        ),
        None => (String::new(), ""),
    };
    // The ids again as a list, and no condition on the workspace: the
    // tasks are found by their primary key, whatever the planner guesses
    // of the workspace's size (with no statistics yet, it once scanned all
    // of a workspace's tasks for this). The callers pass tasks of
    // `workspace`: a claim's or a completion's own.
    let mut ids: Vec<&str> = events.iter().map(|(task, _)| *task).collect();
    ids.sort_unstable();
    ids.dedup();
    let ids = sql.args(ids);
    sql.push(&format!(
        "WITH v (k, task_id, kind, data) AS (VALUES {}), \
         c AS (SELECT task_id, COUNT(*) AS n FROM v GROUP BY task_id), \
         s AS (UPDATE tasks t SET event_seq = t.event_seq + c.n, last_event_at = {at} FROM c \
         WHERE t.id IN ({ids}) AND t.id = c.task_id \
         RETURNING t.id, t.event_seq, c.n){notify_cte} \
         INSERT INTO task_events (task_id, seq, workspace, kind, data, at) \
         SELECT v.task_id, s.event_seq - s.n + ROW_NUMBER() OVER (PARTITION BY v.task_id ORDER BY v.k), \
         {ws}, v.kind, v.data, {at} FROM v JOIN s ON s.id = v.task_id{notify_join} RETURNING task_id",
        rows.join(", ")
    ));
    let written = sql.build()?.fetch_all(&mut *conn).await?;
    if written.len() < events.len() {
        let found: Vec<String> = written
            .iter()
            .map(|r| r.try_get("task_id"))
            .collect::<std::result::Result<_, _>>()?;
        let missing = events
            .iter()
            .map(|(t, _)| *t)
            .find(|t| !found.iter().any(|f| f == t))
            .unwrap_or_default();
        return Err(Error::NotFound(format!("task \"{missing}\"")));
    }
    Ok(())
}

impl Store {
    /// Appends an event to a task of the workspace (next `seq`, assigned
    /// atomically) and sets the task's `last_event_at`; returns the seq.
    /// `Error::NotFound` for no such task.
    pub async fn add_task_event(
        &self,
        workspace: &str,
        task_id: &str,
        kind: &str,
        data: &Value,
        now: i64,
    ) -> Result<i64> {
        if self.dialect == crate::Dialect::Postgres {
            // One statement, one round trip: the update locks the task's
            // row until the statement commits, so numbers never collide.
            let seq: Option<i64> = sqlx::query_scalar(
                "WITH s AS (UPDATE tasks SET event_seq = event_seq + 1, last_event_at = $3 \
                 WHERE workspace = $1 AND id = $2 RETURNING event_seq) \
                 INSERT INTO task_events (task_id, seq, workspace, kind, data, at) \
                 SELECT $2, event_seq, $1, $4, $5, $3 FROM s RETURNING seq",
            )
            .bind(workspace)
            .bind(task_id)
            .bind(now)
            .bind(kind)
            .bind(json_text(data))
            .fetch_optional(&self.pool)
            .await?;
            return seq.ok_or_else(|| Error::NotFound(format!("task \"{task_id}\"")));
        }
        let mut tx = self.begin_write().await?;
        // The task's counter hands out the numbers: the update holds the
        // write lock until commit.
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE tasks SET event_seq = event_seq + 1, last_event_at = $3 \
             WHERE workspace = $1 AND id = $2 RETURNING event_seq",
        )
        .bind(workspace)
        .bind(task_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(seq) = seq else {
            return Err(Error::NotFound(format!("task \"{task_id}\"")));
        };
        sqlx::query(
            "INSERT INTO task_events (task_id, seq, workspace, kind, data, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(task_id)
        .bind(seq)
        .bind(workspace)
        .bind(kind)
        .bind(json_text(data))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Events of a task with `seq > after`, in order, at most `limit`
    /// (capped at 1000).
    ///
    /// A `limit` of 0 or less means 100.
    pub async fn list_task_events(
        &self,
        workspace: &str,
        task_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TaskEventRow>> {
        let rows = sqlx::query(
            "SELECT task_id, workspace, seq, kind, data, at FROM task_events \
             WHERE task_id = $1 AND workspace = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(task_id)
        .bind(workspace)
        .bind(after)
        .bind(clamp_limit(limit, 100, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TaskEventRow {
                    task_id: row.try_get("task_id")?,
                    workspace: row.try_get("workspace")?,
                    seq: row.try_get("seq")?,
                    kind: row.try_get("kind")?,
                    data: parse_json("task_events.data", &row.try_get::<String, _>("data")?)?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The stored body of `event` as text, as `task_events.data` holds it.
    fn stored(event: TaskEvent) -> (String, String) {
        let e = NewEvent::from(event);
        (e.kind, crate::util::json_text(&e.data))
    }

    #[test]
    fn status_events_store_the_json_they_stored_as_strings() {
        // Each body as the scheduler wrote it with json! before the type.
        let cases = [
            (
                StatusEvent::new(TaskState::Queued).stage("plan"),
                json!({ "state": "queued", "stage": "plan" }),
            ),
            (
                StatusEvent::new(TaskState::Queued).reason("lease expired"),
                json!({ "state": "queued", "reason": "lease expired" }),
            ),
            (
                StatusEvent::new(TaskState::Cancelled),
                json!({ "state": "cancelled" }),
            ),
            (
                StatusEvent {
                    redriven: Some(true),
                    ..StatusEvent::new(TaskState::Queued)
                },
                json!({ "state": "queued", "redriven": true }),
            ),
            (
                StatusEvent {
                    completed_token: Some(7),
                    ..StatusEvent::new(TaskState::WaitingApproval).stage("review")
                },
                json!({ "state": "waiting_approval", "stage": "review", "completed_token": 7 }),
            ),
            (
                StatusEvent {
                    retry_at: Some("2026-01-01T00:00:00.000Z".into()),
                    attempt: Some(2),
                    error: Some("boom".into()),
                    ..StatusEvent::new(TaskState::Queued)
                },
                json!({ "state": "queued", "retry_at": "2026-01-01T00:00:00.000Z", "attempt": 2, "error": "boom" }),
            ),
            (
                StatusEvent {
                    attempt: Some(1),
                    worker: Some("w1".into()),
                    token: Some(42),
                    ..StatusEvent::new(TaskState::Running).stage("implement")
                },
                json!({ "state": "running", "stage": "implement", "attempt": 1, "worker": "w1", "token": 42 }),
            ),
        ];
        for (event, before) in cases {
            let (kind, text) = stored(TaskEvent::Status(event.clone()));
            assert_eq!(kind, "status");
            assert_eq!(text, before.to_string(), "{event:?}");
        }
    }

    #[test]
    fn the_other_host_events_store_the_json_they_stored_as_strings() {
        let cases = [
            (
                TaskEvent::Budget(BudgetEvent {
                    spent: true,
                    message: "spent".into(),
                }),
                "budget",
                json!({ "spent": true, "message": "spent" }),
            ),
            (
                TaskEvent::StopReason(StopEvent::new(Stop::Done)),
                "stop_reason",
                json!({ "reason": "done" }),
            ),
            (
                TaskEvent::StopReason(StopEvent {
                    attempts: Some(3),
                    ..StopEvent::new(Stop::DeadLetter)
                }),
                "stop_reason",
                json!({ "reason": "dead_letter", "attempts": 3 }),
            ),
            (
                TaskEvent::Guardrails(GuardrailsEvent {
                    guard: "infinite_loop".into(),
                    message: "looping".into(),
                }),
                "guardrails",
                json!({ "guard": "infinite_loop", "message": "looping" }),
            ),
            (
                TaskEvent::Gate(GateEvent::Human {
                    outcome: "reject".into(),
                    by: "ops".into(),
                    reason: "no".into(),
                }),
                "gate",
                json!({ "outcome": "reject", "by": "ops", "reason": "no" }),
            ),
            (
                TaskEvent::Gate(GateEvent::Judged {
                    decision_id: "d1".into(),
                    stage: "review".into(),
                    outcome: "approve".into(),
                    quorum: "all".into(),
                    summary: "ok".into(),
                    verdicts: vec![GateVerdict {
                        gate: "lint".into(),
                        digest: "sha256:x".into(),
                        decision: "approve".into(),
                        score: 90,
                        error: None,
                    }],
                }),
                "gate",
                json!({ "decision_id": "d1", "stage": "review", "outcome": "approve", "quorum": "all", "summary": "ok",
                        "verdicts": [{ "gate": "lint", "digest": "sha256:x", "decision": "approve", "score": 90, "error": null }] }),
            ),
        ];
        for (event, kind, before) in cases {
            assert_eq!(
                stored(event.clone()),
                (kind.to_string(), before.to_string())
            );
        }
    }

    #[test]
    fn an_event_serializes_as_its_type_and_data() {
        let event = TaskEvent::Status(StatusEvent::new(TaskState::Dead));
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(
            wire,
            json!({ "type": "status", "data": { "state": "dead" } })
        );
        assert_eq!(serde_json::from_value::<TaskEvent>(wire).unwrap(), event);
        let log = TaskEvent::Log(json!("a line"));
        assert_eq!(
            serde_json::to_value(&log).unwrap(),
            json!({ "type": "log", "data": "a line" })
        );
        for kind in EventKind::ALL {
            let reported = EventKind::REPORTED.contains(kind);
            assert_eq!(reported, *kind != EventKind::Gate, "{kind}");
        }
    }
}
