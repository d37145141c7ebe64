//! `task_events`: what happened to each task, in order (SPEC OB-3 contract:
//! `status`, `tool_start`, `tool_result`, `token`, `budget`, `stop_reason`,
//! `guardrails`).

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::{AnyConnection, Row};

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
