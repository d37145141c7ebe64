//! `threads`, `thread_participants`, `thread_messages` and
//! `thread_cursors`: the threads in which agents and humans work on a task
//! together (SPEC TH-1), the cursors of their reads (TH-2), and the audit
//! trail of every change (TH-5, in `audit_log`).
//!
//! Sequence numbers: a thread counts its messages in `threads.last_seq`. A
//! post increments the counter and inserts its message in one transaction.
//! The increment locks the thread's row (PostgreSQL) or the database
//! (SQLite's `BEGIN IMMEDIATE`) until the commit, so concurrent posts from
//! any number of connections or hosts get 1, 2, 3, ... with no gap and no
//! duplicate, and they commit in that order: a reader that sees message n
//! also sees every message before it. A post that fails rolls back its
//! increment with it.
//!
//! Audit: creating a thread, adding a participant and changing the state
//! each append an entry to `audit_log` in the same transaction (actions
//! `thread.create`, `thread.participant.add` and `thread.state`, with the
//! thread's id as the target). A message is already a record of who did
//! what and when (sender, time), so it is not audited a second time. Reads
//! move cursors and are not audited.
//!
//! Every call takes the workspace: a thread of another workspace is not
//! found.
//!
//! Long-polling readers on every host learn of a new message from
//! [`MESSAGES_CHANNEL`] (PostgreSQL `NOTIFY`, sent by the post's own
//! transaction, so only once the message is visible).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::audit::{AuditRow, append_audit_in, audit_from_row};
use crate::names::get_name;
use crate::notify::pg_notify;
use crate::util::{
    Sql, clamp_limit, is_unique_violation, json_text, json_text_opt, parse_json, parse_json_opt,
    parse_strings, strings_text,
};
use crate::{Dialect, Error, Result, Store, now_ms};

mod messages;

/// The largest message body the store takes, as serialized JSON: 64 KiB.
/// A larger one is refused with [`Error::TooLarge`]. Callers check their
/// own request limits first; this is the last line.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Messages a read returns when the caller asks for 0 or fewer.
pub const DEFAULT_READ_LIMIT: i64 = 100;

/// The most messages one read returns, whatever the caller asks.
pub const MAX_READ_LIMIT: i64 = 500;

/// Threads a listing returns when the caller asks for 0 or fewer.
pub const DEFAULT_LIST_LIMIT: i64 = 100;

/// The most threads one listing returns.
pub const MAX_LIST_LIMIT: i64 = 500;

/// The PostgreSQL channel a post notifies when it commits, with a
/// [`ThreadNotice`] as JSON, so that long-polling readers on every host
/// wake (`Store::listen`). A post on SQLite (a single host) notifies
/// nothing: the caller wakes its own readers.
pub const MESSAGES_CHANNEL: &str = "warden_thread_messages";

/// Audit entries [`Store::list_thread_audit`] returns by default, and at
/// most.
const DEFAULT_AUDIT_LIMIT: i64 = 100;
const MAX_AUDIT_LIMIT: i64 = 500;

crate::names::stored_names! {
    /// A thread's state (SPEC TH-1), stored in `threads.state` by its name.
    pub enum ThreadState ("thread state") {
        /// Open: participants post and read.
        Active = "active",
        /// Stopped by a loop guard or an operator, waiting for a human.
        /// Posts are still taken (a human answers in the thread).
        Blocked = "blocked",
        /// Finished: no new messages or participants.
        Closed = "closed",
    }
}

crate::names::stored_names! {
    /// Who a participant is, stored in `thread_participants.kind`.
    pub enum ParticipantKind ("participant kind") {
        /// A coding agent, with a token of its own.
        Agent = "agent",
        /// A person.
        Human = "human",
    }
}

crate::names::stored_names! {
    /// What a message is, stored in `thread_messages.kind`.
    pub enum MessageKind ("message kind") {
        /// Conversation.
        Message = "message",
        /// Something a reviewer found (loop guards compare their
        /// fingerprints).
        Finding = "finding",
        /// A decision taken.
        Decision = "decision",
        /// A status update.
        Status = "status",
    }
}

/// The columns [`thread_from_row`] reads.
const THREAD_COLUMNS: &str = "id, workspace, title, task_id, state, state_reason, last_seq, \
     created_by, created_at, updated_at";

/// The columns [`participant_from_row`] reads.
const PARTICIPANT_COLUMNS: &str = "thread_id, name, kind, role, wake, joined_at";

/// The columns [`message_from_row`] reads, of the table aliased `m`.
const MESSAGE_COLUMNS: &str = "m.thread_id, m.seq, m.workspace, m.schema_version, m.sender, \
     m.recipients, m.kind, m.body, m.idempotency_key, m.created_at";

/// The same, unqualified, for `RETURNING`.
const MESSAGE_RETURNING: &str = "thread_id, seq, workspace, schema_version, sender, recipients, \
     kind, body, idempotency_key, created_at";

/// One thread.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadRow {
    /// Id (UUID v7).
    pub id: String,
    /// Workspace.
    pub workspace: String,
    /// Title.
    pub title: String,
    /// The task it is about, when there is one.
    pub task_id: Option<String>,
    /// Its state.
    pub state: ThreadState,
    /// Why it is in that state (the reason given with the last change).
    pub state_reason: Option<String>,
    /// The seq of its newest message; 0 before the first.
    pub last_seq: i64,
    /// Who created it (the actor).
    pub created_by: String,
    /// Created (ms).
    pub created_at: i64,
    /// Last change or message (ms).
    pub updated_at: i64,
}

/// A participant to add to a thread.
#[derive(Clone, Debug, PartialEq)]
pub struct NewParticipant {
    /// Its name in the thread (unique in the thread), e.g. the agent
    /// token's name or a person's login.
    pub name: String,
    /// Agent or human.
    pub kind: ParticipantKind,
    /// Its role, e.g. `executor`, `reviewer`, `approver`.
    pub role: String,
    /// How to wake it when it is dormant (a command or a webhook, as the
    /// domain defines it); `None`: it polls.
    pub wake: Option<Value>,
}

/// A participant of a thread.
#[derive(Clone, Debug, PartialEq)]
pub struct ParticipantRow {
    /// The thread.
    pub thread_id: String,
    /// Its name in the thread.
    pub name: String,
    /// Agent or human.
    pub kind: ParticipantKind,
    /// Its role.
    pub role: String,
    /// Its wake target.
    pub wake: Option<Value>,
    /// When it joined (ms).
    pub joined_at: i64,
}

/// A thread to create.
#[derive(Clone, Debug)]
pub struct NewThread {
    /// Id (UUID v7).
    pub id: String,
    /// Workspace.
    pub workspace: String,
    /// Title.
    pub title: String,
    /// The task it is about: a task of the same workspace, else
    /// [`Error::NotFound`].
    pub task_id: Option<String>,
    /// Who creates it (audited as the actor).
    pub created_by: String,
    /// Its first participants; names must differ.
    pub participants: Vec<NewParticipant>,
}

/// Which threads [`Store::list_threads`] returns, newest activity first.
#[derive(Clone, Debug, Default)]
pub struct ThreadQuery {
    /// Only threads in this state.
    pub state: Option<ThreadState>,
    /// Only threads about this task.
    pub task_id: Option<String>,
    /// At most this many: [`DEFAULT_LIST_LIMIT`] for 0 or less, at most
    /// [`MAX_LIST_LIMIT`].
    pub limit: i64,
}

/// A state change asked of [`Store::set_thread_state`].
#[derive(Clone, Debug)]
pub struct StateChange {
    /// The new state.
    pub to: ThreadState,
    /// Who changes it (audited as the actor).
    pub actor: String,
    /// Why; kept in `state_reason` and in the audit entry.
    pub reason: Option<String>,
    /// The change applies only from these states (compare-and-set, e.g.
    /// a loop guard blocks only an `active` thread); empty: from any.
    /// The domain decides which transitions it allows.
    pub only_from: Vec<ThreadState>,
}

/// What [`Store::set_thread_state`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The state before.
    pub from: ThreadState,
    /// The state after.
    pub to: ThreadState,
    /// The thread after the change.
    pub thread: ThreadRow,
}

/// A message to post.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Workspace.
    pub workspace: String,
    /// The thread.
    pub thread_id: String,
    /// The version of the message format the sender speaks (the domain
    /// checks which it knows).
    pub schema_version: i64,
    /// Who posts: a participant of the thread.
    pub sender: String,
    /// Participants it is addressed to; `None`: everyone (a broadcast).
    /// Each must be a participant; duplicates are dropped. A directed
    /// message is visible to its recipients and its sender only.
    pub recipients: Option<Vec<String>>,
    /// What it is.
    pub kind: MessageKind,
    /// The content, at most [`MAX_BODY_BYTES`] as JSON.
    pub body: Value,
    /// With a key, a second post of the same sender with the same key in
    /// the thread returns the first message instead of a new one.
    pub idempotency_key: Option<String>,
    /// When (ms).
    pub at: i64,
}

/// One message.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRow {
    /// The thread.
    pub thread_id: String,
    /// Its number in the thread, from 1.
    pub seq: i64,
    /// Workspace.
    pub workspace: String,
    /// The sender's message format version.
    pub schema_version: i64,
    /// Who posted it.
    pub sender: String,
    /// Who it is addressed to; `None`: everyone.
    pub recipients: Option<Vec<String>>,
    /// What it is.
    pub kind: MessageKind,
    /// The content.
    pub body: Value,
    /// The key it was posted with.
    pub idempotency_key: Option<String>,
    /// When it was posted (ms).
    pub created_at: i64,
}

impl MessageRow {
    /// True when `participant` may read it: a broadcast, its sender, or
    /// one of its recipients.
    pub fn is_visible_to(&self, participant: &str) -> bool {
        self.sender == participant || self.is_addressed_to(participant)
    }

    /// True when it is meant for `participant` (a broadcast, or directed
    /// to it), whoever sent it.
    pub fn is_addressed_to(&self, participant: &str) -> bool {
        match &self.recipients {
            None => true,
            Some(names) => names.iter().any(|n| n == participant),
        }
    }
}

/// What [`Store::post_thread_message`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Posted {
    /// The message: new, or the one first posted with the same key.
    pub message: MessageRow,
    /// True when the key had been used: `message` is the original and
    /// nothing was written.
    pub replay: bool,
}

/// The payload of a [`MESSAGES_CHANNEL`] notification: message `seq` of
/// a thread was posted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadNotice {
    /// Workspace.
    pub workspace: String,
    /// The thread.
    pub thread_id: String,
    /// The message's seq.
    pub seq: i64,
}

impl ThreadNotice {
    /// The notification's payload: JSON.
    pub fn payload(&self) -> String {
        json!({ "workspace": self.workspace, "thread_id": self.thread_id, "seq": self.seq })
            .to_string()
    }

    /// Reads a notification's payload; `None` for one this version does
    /// not understand.
    pub fn parse(payload: &str) -> Option<ThreadNotice> {
        serde_json::from_str(payload).ok()
    }
}

/// A participant's read cursor after [`Store::mark_thread_read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadCursor {
    /// The highest seq it marked read.
    pub last_read_seq: i64,
    /// When it last read (ms; never moves back).
    pub read_at: i64,
}

/// A participant with its cursor and unread count, as
/// [`Store::thread_cursors`] lists them.
#[derive(Clone, Debug, PartialEq)]
pub struct ParticipantCursor {
    /// Its name.
    pub participant: String,
    /// Agent or human.
    pub kind: ParticipantKind,
    /// Its role.
    pub role: String,
    /// The highest seq it marked read; 0 before its first read.
    pub last_read_seq: i64,
    /// When it last read; `None` before its first read.
    pub read_at: Option<i64>,
    /// Messages after its cursor that are addressed to it and that it did
    /// not send.
    pub unread: i64,
}

impl Store {
    /// Creates a thread, `active`, with its first participants, and audits
    /// it (`thread.create`, actor `created_by`). Returns the thread and
    /// its participants.
    ///
    /// [`Error::AlreadyExists`] for a taken id or a participant named
    /// twice; [`Error::NotFound`] for a `task_id` that is not a task of the
    /// workspace.
    pub async fn create_thread(
        &self,
        thread: &NewThread,
    ) -> Result<(ThreadRow, Vec<ParticipantRow>)> {
        for (i, p) in thread.participants.iter().enumerate() {
            if thread.participants[..i].iter().any(|q| q.name == p.name) {
                return Err(Error::AlreadyExists(format!(
                    "participant \"{}\" of thread \"{}\"",
                    p.name, thread.id
                )));
            }
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if let Some(task) = &thread.task_id {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM tasks WHERE workspace = $1 AND id = $2",
            )
            .bind(&thread.workspace)
            .bind(task)
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return Err(Error::NotFound(format!("task \"{task}\"")));
            }
        }
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO threads (id, workspace, title, task_id, state, state_reason, last_seq, \
             created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, NULL, 0, $6, $7, $7) \
             RETURNING {THREAD_COLUMNS}"
        )))
        .bind(&thread.id)
        .bind(&thread.workspace)
        .bind(&thread.title)
        .bind(thread.task_id.as_deref())
        .bind(ThreadState::Active.as_str())
        .bind(&thread.created_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let created = match inserted {
            Ok(row) => thread_from_row(&row)?,
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::AlreadyExists(format!("thread \"{}\"", thread.id)));
            }
            Err(e) => return Err(e.into()),
        };
        let participants: Vec<ParticipantRow> = thread
            .participants
            .iter()
            .map(|p| participant_row(&thread.id, p, now))
            .collect();
        insert_participants(&mut tx, &participants, 0).await?;
        let detail = json!({
            "title": thread.title,
            "task_id": thread.task_id,
            "participants": participants.iter().map(participant_summary).collect::<Vec<_>>(),
        });
        append_audit_in(
            &mut tx,
            &thread.created_by,
            &thread.workspace,
            "thread.create",
            &thread.id,
            &detail,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok((created, participants))
    }

    /// One thread of a workspace.
    pub async fn get_thread(&self, workspace: &str, id: &str) -> Result<Option<ThreadRow>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {THREAD_COLUMNS} FROM threads WHERE workspace = $1 AND id = $2"
        )))
        .bind(workspace)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(thread_from_row)
        .transpose()
    }

    /// Threads of a workspace, newest activity (`updated_at`) first.
    ///
    /// A `limit` of 0 or less means [`DEFAULT_LIST_LIMIT`] (100); at most
    /// [`MAX_LIST_LIMIT`] (500) are returned.
    pub async fn list_threads(
        &self,
        workspace: &str,
        query: &ThreadQuery,
    ) -> Result<Vec<ThreadRow>> {
        let mut sql = Sql::new("");
        let ws = sql.arg(workspace);
        let mut text = format!("SELECT {THREAD_COLUMNS} FROM threads WHERE workspace = {ws}");
        if let Some(state) = query.state {
            text.push_str(&format!(" AND state = {}", sql.arg(state.as_str())));
        }
        if let Some(task) = &query.task_id {
            text.push_str(&format!(" AND task_id = {}", sql.arg(task.as_str())));
        }
        let limit = sql.arg(clamp_limit(query.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT));
        text.push_str(&format!(" ORDER BY updated_at DESC, id DESC LIMIT {limit}"));
        sql.push(&text);
        sql.build()?
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(thread_from_row)
            .collect()
    }

    /// The number of threads of a workspace per state, in the order of
    /// [`ThreadState::ALL`]; states with none are left out.
    pub async fn count_threads_by_state(&self, workspace: &str) -> Result<Vec<(ThreadState, i64)>> {
        let rows = sqlx::query(
            "SELECT state, CAST(COUNT(*) AS BIGINT) AS n FROM threads WHERE workspace = $1 \
             GROUP BY state",
        )
        .bind(workspace)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = rows
            .iter()
            .map(|row| Ok((get_name(row, "threads.state")?, row.try_get::<i64, _>("n")?)))
            .collect::<Result<Vec<(ThreadState, i64)>>>()?;
        counts.sort();
        Ok(counts)
    }

    /// The participants of a thread, in the order they joined (the first
    /// ones in the order given at creation).
    /// [`Error::NotFound`] for no such thread.
    pub async fn thread_participants(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Vec<ParticipantRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM thread_participants p JOIN threads t ON t.id = p.thread_id \
             WHERE t.workspace = $1 AND t.id = $2 ORDER BY p.position",
            qualified("p", PARTICIPANT_COLUMNS)
        )))
        .bind(workspace)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            self.require_thread(workspace, id).await?;
        }
        rows.iter().map(participant_from_row).collect()
    }

    /// Adds a participant to a thread and audits it
    /// (`thread.participant.add`, actor `actor`). The bool is true when
    /// added; when the name is already a participant, that participant is
    /// returned unchanged, with false, and nothing is audited.
    ///
    /// [`Error::NotFound`] for no such thread, [`Error::ThreadClosed`] for
    /// a closed one.
    pub async fn add_thread_participant(
        &self,
        workspace: &str,
        id: &str,
        participant: &NewParticipant,
        actor: &str,
    ) -> Result<(ParticipantRow, bool)> {
        let mut tx = self.begin_write().await?;
        let thread = lock_thread(&mut tx, self.dialect, workspace, id).await?;
        if thread.state == ThreadState::Closed {
            return Err(Error::ThreadClosed {
                thread: id.to_string(),
            });
        }
        let existing = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PARTICIPANT_COLUMNS} FROM thread_participants WHERE thread_id = $1 AND name = $2"
        )))
        .bind(id)
        .bind(&participant.name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let found = participant_from_row(&row)?;
            tx.commit().await?;
            return Ok((found, false));
        }
        let joined: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM thread_participants WHERE thread_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let now = now_ms();
        let row = participant_row(id, participant, now);
        insert_participants(&mut tx, std::slice::from_ref(&row), joined).await?;
        sqlx::query(
            "UPDATE threads SET updated_at = CASE WHEN updated_at < $2 THEN $2 ELSE updated_at END \
             WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        append_audit_in(
            &mut tx,
            actor,
            workspace,
            "thread.participant.add",
            id,
            &participant_summary(&row),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok((row, true))
    }

    /// Changes a thread's state and audits it (`thread.state`, actor
    /// `change.actor`, detail `from`, `to`, `reason`). Returns the state
    /// before and after.
    ///
    /// A change to the state the thread is already in writes nothing
    /// (`from == to`). [`Error::NotFound`] for no such thread;
    /// [`Error::Conflict`] when `change.only_from` is not empty and the
    /// thread is in another state.
    pub async fn set_thread_state(
        &self,
        workspace: &str,
        id: &str,
        change: &StateChange,
    ) -> Result<Transition> {
        let mut tx = self.begin_write().await?;
        let before = lock_thread(&mut tx, self.dialect, workspace, id).await?;
        if !change.only_from.is_empty() && !change.only_from.contains(&before.state) {
            let allowed: Vec<&str> = change.only_from.iter().map(|s| s.as_str()).collect();
            return Err(Error::Conflict(format!(
                "thread \"{id}\" is {}, not {}: it cannot become {}",
                before.state,
                allowed.join(" or "),
                change.to
            )));
        }
        if before.state == change.to {
            tx.commit().await?;
            return Ok(Transition {
                from: before.state,
                to: change.to,
                thread: before,
            });
        }
        let now = now_ms();
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE threads SET state = $3, state_reason = $4, \
             updated_at = CASE WHEN updated_at < $5 THEN $5 ELSE updated_at END \
             WHERE workspace = $1 AND id = $2 RETURNING {THREAD_COLUMNS}"
        )))
        .bind(workspace)
        .bind(id)
        .bind(change.to.as_str())
        .bind(change.reason.as_deref())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let after = thread_from_row(&row)?;
        let detail = json!({
            "from": before.state,
            "to": change.to,
            "reason": change.reason,
        });
        append_audit_in(
            &mut tx,
            &change.actor,
            workspace,
            "thread.state",
            id,
            &detail,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Transition {
            from: before.state,
            to: after.state,
            thread: after,
        })
    }
}

/// The error of a thread that is not in the workspace.
fn not_found(id: &str) -> Error {
    Error::NotFound(format!("thread \"{id}\""))
}

/// The SQL condition "the message `m` is addressed to `name`" (a
/// broadcast, or `name` is among its recipients); `name` is a placeholder
/// or a column.
fn addressed_to(dialect: Dialect, name: &str) -> String {
    let each = match dialect {
        Dialect::Sqlite => "json_each(m.recipients) r",
        Dialect::Postgres => "json_array_elements_text(CAST(m.recipients AS json)) r(value)",
    };
    format!("(m.recipients IS NULL OR EXISTS (SELECT 1 FROM {each} WHERE r.value = {name}))")
}

/// `columns` (comma-separated) of the table aliased `alias`.
fn qualified(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a thread and locks it until the transaction ends (SQLite's
/// `BEGIN IMMEDIATE` already holds every writer off).
async fn lock_thread(
    conn: &mut AnyConnection,
    dialect: Dialect,
    workspace: &str,
    id: &str,
) -> Result<ThreadRow> {
    let lock = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    sqlx::query(AssertSqlSafe(format!(
        "SELECT {THREAD_COLUMNS} FROM threads WHERE workspace = $1 AND id = $2{lock}"
    )))
    .bind(workspace)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(thread_from_row)
    .transpose()?
    .ok_or_else(|| not_found(id))
}

/// The row of participant `p` joining thread `thread` at `at`.
fn participant_row(thread: &str, p: &NewParticipant, at: i64) -> ParticipantRow {
    ParticipantRow {
        thread_id: thread.to_string(),
        name: p.name.clone(),
        kind: p.kind,
        role: p.role.clone(),
        wake: p.wake.clone(),
        joined_at: at,
    }
}

/// A participant as its audit entry shows it.
fn participant_summary(p: &ParticipantRow) -> Value {
    json!({ "name": p.name, "kind": p.kind, "role": p.role, "wake": p.wake.is_some() })
}

/// Inserts participants at positions `first`, `first + 1`, ... (none:
/// nothing).
async fn insert_participants(
    conn: &mut AnyConnection,
    rows: &[ParticipantRow],
    first: i64,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(
        "INSERT INTO thread_participants (thread_id, name, kind, role, wake, joined_at, position) \
         VALUES ",
    );
    let values: Vec<String> = rows
        .iter()
        .zip(first..)
        .map(|(p, position)| {
            let values = [
                sql.arg(p.thread_id.as_str()),
                sql.arg(p.name.as_str()),
                sql.arg(p.kind.as_str()),
                sql.arg(p.role.as_str()),
                sql.arg(json_text_opt(p.wake.as_ref())),
                sql.arg(p.joined_at),
                sql.arg(position),
            ];
            format!("({})", values.join(", "))
        })
        .collect();
    sql.push(&values.join(", "));
    sql.build()?.execute(conn).await?;
    Ok(())
}

fn thread_from_row(row: &AnyRow) -> Result<ThreadRow> {
    Ok(ThreadRow {
        id: row.try_get("id")?,
        workspace: row.try_get("workspace")?,
        title: row.try_get("title")?,
        task_id: row.try_get("task_id")?,
        state: get_name(row, "threads.state")?,
        state_reason: row.try_get("state_reason")?,
        last_seq: row.try_get("last_seq")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn participant_from_row(row: &AnyRow) -> Result<ParticipantRow> {
    Ok(ParticipantRow {
        thread_id: row.try_get("thread_id")?,
        name: row.try_get("name")?,
        kind: get_name(row, "thread_participants.kind")?,
        role: row.try_get("role")?,
        wake: parse_json_opt("thread_participants.wake", row.try_get("wake")?)?,
        joined_at: row.try_get("joined_at")?,
    })
}

fn message_from_row(row: &AnyRow) -> Result<MessageRow> {
    let recipients: Option<String> = row.try_get("recipients")?;
    Ok(MessageRow {
        thread_id: row.try_get("thread_id")?,
        seq: row.try_get("seq")?,
        workspace: row.try_get("workspace")?,
        schema_version: row.try_get("schema_version")?,
        sender: row.try_get("sender")?,
        recipients: recipients
            .map(|text| parse_strings("thread_messages.recipients", &text))
            .transpose()?,
        kind: get_name(row, "thread_messages.kind")?,
        body: parse_json("thread_messages.body", &row.try_get::<String, _>("body")?)?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_at: row.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_unknown_ones_are_named() {
        for state in ThreadState::ALL {
            assert_eq!(state.as_str().parse::<ThreadState>(), Ok(*state));
        }
        assert_eq!(ThreadState::NAMES, ["active", "blocked", "closed"]);
        assert_eq!(ParticipantKind::NAMES, ["agent", "human"]);
        assert_eq!(
            MessageKind::NAMES,
            ["message", "finding", "decision", "status"]
        );
        assert_eq!(
            "open".parse::<ThreadState>().unwrap_err().to_string(),
            "unknown thread state \"open\""
        );
        assert_eq!(
            "bot".parse::<ParticipantKind>().unwrap_err().to_string(),
            "unknown participant kind \"bot\""
        );
    }

    #[test]
    fn a_notice_reads_back_from_its_payload() {
        let notice = ThreadNotice {
            workspace: "ws".into(),
            thread_id: "t1".into(),
            seq: 42,
        };
        let payload: Value = serde_json::from_str(&notice.payload()).unwrap();
        assert_eq!(
            payload,
            json!({"workspace": "ws", "thread_id": "t1", "seq": 42})
        );
        assert_eq!(ThreadNotice::parse(&notice.payload()), Some(notice));
        assert_eq!(ThreadNotice::parse("t1 42"), None);
    }

    #[test]
    fn visibility_follows_recipients() {
        let message = MessageRow {
            thread_id: "t".into(),
            seq: 1,
            workspace: "ws".into(),
            schema_version: 1,
            sender: "exec".into(),
            recipients: Some(vec!["review".into()]),
            kind: MessageKind::Message,
            body: json!({}),
            idempotency_key: None,
            created_at: 0,
        };
        assert!(message.is_visible_to("exec"));
        assert!(!message.is_addressed_to("exec"));
        assert!(message.is_visible_to("review"));
        assert!(!message.is_visible_to("human"));
        let broadcast = MessageRow {
            recipients: None,
            ..message
        };
        assert!(broadcast.is_visible_to("human"));
    }
}
