//! PostgreSQL's completions without a lock: a batch read in one statement
//! and written in another.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::complete::refused_completion;
use super::next::{NEXT_COLUMNS, Next, next_columns};
use super::{AfterComplete, Also, Completing, Completion, Written, fence};
use crate::settings::{SettingsRow, settings_columns_of_s, settings_from_joined};
use crate::tasks::{TaskRow, task_columns_of, task_from_row};
use crate::util::json_text;
use crate::{Error, Result, Store};

impl Store {
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
    pub(super) async fn complete_unlocked(
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
        let read = read_completions(&mut conn, batch, &picked).await?;

        // What each completion that may proceed writes, as the write
        // statement takes it, and the task as it will be left.
        let mut args = WriteArgs::default();
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
            writes.insert(i, args.add(i, c, row, &task, decide, also)?);
        }
        if writes.is_empty() {
            return Ok(settled);
        }
        let written = args.write(&mut conn).await?;
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
}

/// Reads the completions `picked` of `batch` ([`completion_read_sql`]).
async fn read_completions(
    conn: &mut AnyConnection,
    batch: &[Completing<'_>],
    picked: &[usize],
) -> Result<Vec<AnyRow>> {
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
    Ok(sqlx::query(completion_read_sql())
        .bind(json_text(&Value::Array(wanted)))
        .bind(ids)
        .fetch_all(conn)
        .await?)
}

/// What the completions that may proceed write, as
/// [`completion_write_sql`] takes it.
#[derive(Default)]
struct WriteArgs<'a> {
    values: Vec<Value>,
    events: Vec<Value>,
    notifies: Vec<Value>,
    ids: Vec<&'a str>,
    tokens: Vec<String>,
}

impl<'a> WriteArgs<'a> {
    /// Adds completion `i` (`c`) of `task`, read as `row`, with what
    /// `decide` chose and what `also` asks for. Returns the task as the
    /// write will leave it, and what `also` asked for.
    fn add(
        &mut self,
        i: usize,
        c: &Completing<'a>,
        row: &AnyRow,
        task: &TaskRow,
        decide: &(dyn Fn(usize, &TaskRow, Option<&SettingsRow>) -> AfterComplete + Send + Sync),
        also: &(dyn Fn(usize, &TaskRow) -> Also + Send + Sync),
    ) -> Result<(TaskRow, Also)> {
        let settings = settings_from_joined(row)?;
        let claimed_at: Option<i64> = row.try_get("run_claimed_at")?;
        let wall = claimed_at.map_or(0, |at| (c.now - at).max(0));
        let next = Next::after_complete(task, decide(i, task, settings.as_ref()), c.now);
        // The row as the update will leave it: it writes these values
        // only if nothing changed the row since the read.
        let expected = next.applied(task, wall, c.now);
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
        self.values.push(Value::Object(value));
        for (j, e) in also.events.iter().enumerate() {
            self.events
                .push(json!({ "k": i, "j": j + 1, "kind": e.kind, "data": json_text(&e.data) }));
        }
        if let Some((channel, payload)) = &also.notify {
            self.notifies
                .push(json!({ "k": i, "channel": channel, "payload": payload }));
        }
        self.ids.push(c.task_id);
        self.tokens.push(c.token.to_string());
        Ok((expected, also))
    }

    /// Sends the write statement ([`completion_write_sql`]); returns the
    /// tasks it wrote.
    async fn write(self, conn: &mut AnyConnection) -> Result<Vec<AnyRow>> {
        Ok(sqlx::query(completion_write_sql())
            .bind(json_text(&Value::Array(self.values)))
            .bind(pg_text_array(self.ids))
            .bind(format!("{{{}}}", self.tokens.join(",")))
            .bind(json_text(&Value::Array(self.events)))
            .bind(json_text(&Value::Array(self.notifies)))
            .fetch_all(conn)
            .await?)
    }
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
