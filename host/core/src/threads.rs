//! Agent threads (SPEC TH-1, TH-2, TH-5): agents and humans working one
//! task together in a thread of messages, read with cursors and
//! long-polls, with audited state changes.
//!
//! The rules live here, over the store's `threads` module: which message
//! format versions are understood, who a caller posts and reads as, which
//! state changes are allowed and who may make them, and how long a read
//! waits. A post wakes this host's long-polling readers of the thread at
//! once; readers on other hosts learn of it from the store's PostgreSQL
//! notification ([`MESSAGES_CHANNEL`]), which [`Threads::listen`] turns
//! into the same local wake-up.
//!
//! Who is who: an agent token posts and reads as its own name (the
//! token's name is its participant name), so one agent cannot speak for
//! another; an operator (or admin) posts as itself or as a human
//! participant it names, since people use the operator's tools; a viewer
//! reads everything but posts nothing and moves no cursor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, watch};
use warden_store::Store;
use warden_store::audit::AuditRow;
use warden_store::threads::{
    MessageKind, MessageRow, NewMessage, NewParticipant, NewThread, ParticipantCursor,
    ParticipantKind, ParticipantRow, Posted, StateChange, ThreadNotice, ThreadQuery, ThreadRow,
    ThreadState, Transition,
};

pub use warden_store::threads::{MAX_BODY_BYTES, MESSAGES_CHANNEL};

use crate::auth::{Principal, Role};
use crate::error::{Error, Result};
use crate::sync::Unpoisoned as _;
use crate::validate::truncate;

/// The message format versions this host understands; a post with any
/// other `schema_version` is refused, naming these.
pub const SCHEMA_VERSIONS: &[i64] = &[1];

/// The longest a read waits for a new message (`wait`), whatever the
/// caller asks.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// The longest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 200;

/// The longest participant name or role, in bytes (a token's name is at
/// most 100).
pub const MAX_NAME_BYTES: usize = 100;

/// The most participants a thread has.
pub const MAX_PARTICIPANTS: usize = 32;

/// The longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 200;

/// The longest reason of a state change, in bytes.
pub const MAX_REASON_BYTES: usize = 2_000;

/// What a reason of an override-close starts with: it records that a
/// person decided to end the thread against the agents' state.
pub const OVERRIDE_PREFIX: &str = "human_override:";

/// The state changes of a thread (SPEC TH-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `active` → `blocked`: a participant or an operator asks a human to
    /// step in. An agent participant may escalate.
    Escalate,
    /// `blocked` → `active`. Operators only.
    Unblock,
    /// `active` or `blocked` → `closed`. Operators only.
    Close,
    /// `active` or `blocked` → `closed`, a person overriding the agents;
    /// the reason starts with [`OVERRIDE_PREFIX`]. Operators only.
    OverrideClose,
}

impl Change {
    /// The name of the change, as routes and messages call it.
    pub fn name(self) -> &'static str {
        match self {
            Change::Escalate => "escalate",
            Change::Unblock => "unblock",
            Change::Close => "close",
            Change::OverrideClose => "override-close",
        }
    }

    /// The state it leads to, and the states it is allowed from.
    fn rule(self) -> (ThreadState, &'static [ThreadState]) {
        use ThreadState::{Active, Blocked, Closed};
        match self {
            Change::Escalate => (Blocked, &[Active]),
            Change::Unblock => (Active, &[Blocked]),
            Change::Close | Change::OverrideClose => (Closed, &[Active, Blocked]),
        }
    }
}

/// A participant to add, as a caller gives it.
#[derive(Clone, Debug)]
pub struct Participant {
    /// Its name in the thread: an agent's token name, a person's login.
    pub name: String,
    /// Agent or human.
    pub kind: ParticipantKind,
    /// Its role, e.g. `executor`, `reviewer`.
    pub role: String,
}

/// A thread to create.
#[derive(Clone, Debug)]
pub struct Create {
    /// Its title.
    pub title: String,
    /// The task it is about (a task of the workspace).
    pub task_id: Option<String>,
    /// Its first participants.
    pub participants: Vec<Participant>,
}

/// A message to post.
#[derive(Clone, Debug)]
pub struct Post {
    /// The message format version the sender speaks.
    pub schema_version: i64,
    /// Who it posts as: `None` for the caller itself; an operator may
    /// name a human participant.
    pub sender: Option<String>,
    /// Its recipients; `None`: a broadcast.
    pub recipients: Option<Vec<String>>,
    /// What it is, by name (`message`, `finding`, `decision`, `status`).
    pub kind: String,
    /// The content.
    pub body: Value,
    /// A retry with the same key returns the first message.
    pub idempotency_key: Option<String>,
}

/// A cursor read.
#[derive(Clone, Debug, Default)]
pub struct Read {
    /// Messages with a seq above this.
    pub after: i64,
    /// How long to wait when there is none yet (at most [`MAX_WAIT`]).
    pub wait: Duration,
    /// Read as this participant: only what it may see, and its cursor
    /// moves to the last message returned. `None`: an agent reads as
    /// itself, an operator or viewer sees every message.
    pub as_participant: Option<String>,
    /// At most this many (the store's default and cap apply).
    pub limit: i64,
}

/// What a read returned.
#[derive(Clone, Debug)]
pub struct Messages {
    /// The messages, in seq order.
    pub messages: Vec<MessageRow>,
    /// Who it read as, when a participant.
    pub reader: Option<String>,
    /// The thread's newest seq when the read ended.
    pub last_seq: i64,
}

/// A thread with its participants, their cursors and unread counts.
#[derive(Clone, Debug)]
pub struct Detail {
    /// The thread.
    pub thread: ThreadRow,
    /// Its participants.
    pub participants: Vec<ParticipantCursor>,
}

/// Threads of every workspace.
pub struct Threads {
    store: Store,
    waiters: Arc<Waiters>,
}

impl Threads {
    /// The threads service over `store`.
    pub fn new(store: Store) -> Arc<Threads> {
        Arc::new(Threads {
            store,
            waiters: Arc::default(),
        })
    }

    /// Creates a thread, `active`, with its first participants; audited
    /// with the caller as its actor.
    pub async fn create(
        &self,
        ws: &str,
        who: &Principal,
        c: Create,
    ) -> Result<(ThreadRow, Vec<ParticipantRow>)> {
        check_text("title", &c.title, MAX_TITLE_BYTES)?;
        if let Some(task) = &c.task_id {
            crate::validate::id("task", task).map_err(Error::InvalidArgument)?;
        }
        if c.participants.len() > MAX_PARTICIPANTS {
            return Err(Error::invalid(format!(
                "{} participants, more than the {MAX_PARTICIPANTS} a thread takes",
                c.participants.len()
            )));
        }
        let participants = c
            .participants
            .iter()
            .map(new_participant)
            .collect::<Result<Vec<_>>>()?;
        let thread = NewThread {
            id: warden_store::new_id(),
            workspace: ws.to_string(),
            title: c.title,
            task_id: c.task_id,
            created_by: who.name.clone(),
            participants,
        };
        Ok(self.store.create_thread(&thread).await?)
    }

    /// Threads of a workspace, newest activity first.
    pub async fn list(
        &self,
        ws: &str,
        state: Option<ThreadState>,
        task_id: Option<String>,
        limit: i64,
    ) -> Result<Vec<ThreadRow>> {
        let query = ThreadQuery {
            state,
            task_id,
            limit,
        };
        Ok(self.store.list_threads(ws, &query).await?)
    }

    /// A thread with its participants' cursors.
    pub async fn get(&self, ws: &str, id: &str) -> Result<Detail> {
        check_id(id)?;
        let thread = self.require(ws, id).await?;
        let participants = self.store.thread_cursors(ws, id).await?;
        Ok(Detail {
            thread,
            participants,
        })
    }

    /// Adds a participant; the bool is false when the name was one
    /// already (that participant is returned unchanged).
    pub async fn add_participant(
        &self,
        ws: &str,
        id: &str,
        who: &Principal,
        p: &Participant,
    ) -> Result<(ParticipantRow, bool)> {
        check_id(id)?;
        let participant = new_participant(p)?;
        let current = self.store.thread_participants(ws, id).await?;
        if current.len() >= MAX_PARTICIPANTS && !current.iter().any(|c| c.name == p.name) {
            return Err(Error::invalid(format!(
                "thread \"{id}\" has {MAX_PARTICIPANTS} participants, the most it takes"
            )));
        }
        Ok(self
            .store
            .add_thread_participant(ws, id, &participant, &who.name)
            .await?)
    }

    /// Posts a message as the caller ([`Post::sender`]); wakes the
    /// thread's readers unless it was a replay of an earlier post.
    pub async fn post(&self, ws: &str, id: &str, who: &Principal, p: Post) -> Result<Posted> {
        check_id(id)?;
        check_schema_version(p.schema_version)?;
        let kind = p.kind.parse::<MessageKind>().map_err(|_| {
            Error::invalid(format!(
                "unknown message kind \"{}\": expected one of {}",
                truncate(&p.kind, 40),
                MessageKind::NAMES.join(", ")
            ))
        })?;
        if p.body.is_null() {
            return Err(Error::invalid(
                "body must not be null: send the content as a JSON string or object",
            ));
        }
        if let Some(key) = &p.idempotency_key {
            check_text("idempotency_key", key, MAX_KEY_BYTES)?;
        }
        let recipients = match p.recipients {
            Some(names) if names.is_empty() => {
                return Err(Error::invalid(
                    "recipients is empty: omit it for a broadcast, or name participants",
                ));
            }
            Some(names) => {
                if names.len() > MAX_PARTICIPANTS {
                    return Err(Error::invalid(format!(
                        "{} recipients, more than a thread's {MAX_PARTICIPANTS} participants",
                        names.len()
                    )));
                }
                for n in &names {
                    check_text("a recipient", n, MAX_NAME_BYTES)?;
                }
                Some(names)
            }
            None => None,
        };
        let sender = self
            .acting_as(ws, id, who, p.sender.as_deref(), "post")
            .await?;
        let message = NewMessage {
            workspace: ws.to_string(),
            thread_id: id.to_string(),
            schema_version: p.schema_version,
            sender,
            recipients,
            kind,
            body: p.body,
            idempotency_key: p.idempotency_key,
            at: warden_store::now_ms(),
        };
        let posted = self.store.post_thread_message(&message).await?;
        if !posted.replay {
            self.waiters.wake(ws, id);
        }
        Ok(posted)
    }

    /// A cursor read (SPEC TH-2): the messages after `r.after` the reader
    /// may see, at once when there are some, else as soon as one is
    /// posted (on any host), else none once `r.wait` (at most
    /// [`MAX_WAIT`]) has passed. Reading as a participant moves its
    /// cursor to the last message returned.
    pub async fn read(&self, ws: &str, id: &str, who: &Principal, r: Read) -> Result<Messages> {
        check_id(id)?;
        if r.after < 0 {
            return Err(Error::invalid("after must be 0 or more"));
        }
        let reader = self
            .reader(ws, id, who, r.as_participant.as_deref())
            .await?;
        if let Some(name) = &reader {
            // Refused now rather than after a long wait.
            let participants = self.store.thread_participants(ws, id).await?;
            if !participants.iter().any(|p| &p.name == name) {
                return Err(warden_store::Error::NotParticipant {
                    thread: id.to_string(),
                    name: name.clone(),
                }
                .into());
            }
        }
        let deadline = tokio::time::Instant::now() + r.wait.min(MAX_WAIT);
        let notify = self.waiters.of(ws, id);
        let messages = loop {
            // Registered before reading, so a post committed between the
            // read and the wait still wakes it.
            let notified = notify.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let messages = self
                .store
                .thread_messages_after(ws, id, r.after, r.limit, reader.as_deref())
                .await?;
            let now = tokio::time::Instant::now();
            if !messages.is_empty() || now >= deadline {
                break messages;
            }
            let _ = tokio::time::timeout(deadline - now, notified).await;
        };
        drop(notify);
        if let Some(name) = &reader {
            let seq = messages.last().map_or(r.after, |m| m.seq);
            self.store
                .mark_thread_read(ws, id, name, seq, warden_store::now_ms())
                .await?;
        }
        let last_seq = self.require(ws, id).await?.last_seq;
        Ok(Messages {
            messages,
            reader,
            last_seq,
        })
    }

    /// Changes a thread's state (SPEC TH-5), audited with the caller as
    /// its actor and `reason`. An agent may escalate a thread it takes
    /// part in; every other change needs an operator.
    pub async fn change(
        &self,
        ws: &str,
        id: &str,
        who: &Principal,
        change: Change,
        reason: &str,
    ) -> Result<Transition> {
        check_id(id)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid(format!(
                "{} needs a reason: say why in \"reason\"",
                change.name()
            )));
        }
        check_text("reason", reason, MAX_REASON_BYTES)?;
        if change == Change::OverrideClose && !reason.starts_with(OVERRIDE_PREFIX) {
            return Err(Error::invalid(format!(
                "an override-close reason must start with \"{OVERRIDE_PREFIX}\" (e.g. \"{OVERRIDE_PREFIX} shipping as is\"), got \"{}\"",
                truncate(reason, 40)
            )));
        }
        if who.role < Role::Operator {
            let participant = change == Change::Escalate
                && who.role >= Role::Agent
                && self
                    .store
                    .thread_participants(ws, id)
                    .await?
                    .iter()
                    .any(|p| p.name == who.name);
            if !participant {
                return Err(Error::PermissionDenied(format!(
                    "{} a thread needs the operator role{}; the token has {}",
                    change.name(),
                    if change == Change::Escalate {
                        ", or an agent token that is a participant of it"
                    } else {
                        ""
                    },
                    who.role
                )));
            }
        }
        let (to, from) = change.rule();
        let request = StateChange {
            to,
            actor: who.name.clone(),
            reason: Some(reason.to_string()),
            only_from: from.to_vec(),
        };
        Ok(self.store.set_thread_state(ws, id, &request).await?)
    }

    /// The audit trail of a thread, newest first.
    pub async fn audit(&self, ws: &str, id: &str, limit: i64) -> Result<Vec<AuditRow>> {
        check_id(id)?;
        self.require(ws, id).await?;
        Ok(self.store.list_thread_audit(ws, id, limit).await?)
    }

    /// Wakes this host's readers when another host posts (PostgreSQL
    /// `LISTEN` on [`MESSAGES_CHANNEL`]); returns at once on SQLite (one
    /// host: posts wake readers directly). Ends when `shutdown` fires.
    pub async fn listen(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        crate::wake::follow(
            &self.store,
            MESSAGES_CHANNEL,
            "thread messages",
            shutdown,
            |payload| match ThreadNotice::parse(&payload) {
                Some(n) => self.waiters.wake(&n.workspace, &n.thread_id),
                None => {
                    tracing::warn!(payload = %truncate(&payload, 200), "unknown thread notice")
                }
            },
            // A notice may have been missed: every reader reads again.
            || self.waiters.wake_all(),
        )
        .await;
    }

    /// Who the caller posts as: itself, or, for an operator, the human
    /// participant it names.
    async fn acting_as(
        &self,
        ws: &str,
        id: &str,
        who: &Principal,
        named: Option<&str>,
        doing: &str,
    ) -> Result<String> {
        if who.role < Role::Agent {
            return Err(Error::PermissionDenied(format!(
                "a {} token cannot {doing} in a thread: it needs the agent role",
                who.role
            )));
        }
        let Some(name) = named.filter(|n| *n != who.name) else {
            return Ok(who.name.clone());
        };
        check_text("a participant name", name, MAX_NAME_BYTES)?;
        if who.role < Role::Operator {
            return Err(Error::PermissionDenied(format!(
                "an agent token acts as itself (\"{}\"), not as \"{}\"; only an operator acts for a human participant",
                truncate(&who.name, 100),
                truncate(name, 100)
            )));
        }
        let participants = self.store.thread_participants(ws, id).await?;
        match participants.iter().find(|p| p.name == name) {
            Some(p) if p.kind == ParticipantKind::Human => Ok(name.to_string()),
            Some(_) => Err(Error::PermissionDenied(format!(
                "\"{}\" is an agent participant: an agent acts with its own token",
                truncate(name, 100)
            ))),
            None => Err(warden_store::Error::NotParticipant {
                thread: id.to_string(),
                name: name.to_string(),
            }
            .into()),
        }
    }

    /// Who the caller reads as: an agent as itself; an operator as the
    /// participant it names, or as nobody (every message); a viewer as
    /// nobody.
    async fn reader(
        &self,
        ws: &str,
        id: &str,
        who: &Principal,
        named: Option<&str>,
    ) -> Result<Option<String>> {
        match (named, who.role) {
            (None, Role::Viewer) => Ok(None),
            (None, Role::Agent) => Ok(Some(who.name.clone())),
            (None, _) => Ok(None),
            (Some(name), _) => self
                .acting_as(ws, id, who, Some(name), "read")
                .await
                .map(Some),
        }
    }

    async fn require(&self, ws: &str, id: &str) -> Result<ThreadRow> {
        self.store.get_thread(ws, id).await?.ok_or_else(|| {
            Error::NotFound(format!("thread \"{id}\" not found in workspace \"{ws}\""))
        })
    }
}

/// Refuses a `schema_version` this host does not speak, naming those it
/// does.
pub fn check_schema_version(version: i64) -> Result<()> {
    if SCHEMA_VERSIONS.contains(&version) {
        return Ok(());
    }
    let known: Vec<String> = SCHEMA_VERSIONS.iter().map(i64::to_string).collect();
    Err(Error::invalid(format!(
        "unsupported schema_version {version}: this server speaks {}",
        known.join(", ")
    )))
}

/// A read's `wait`: a number with a unit (`30s`, `500ms`, `1m`) or bare
/// seconds (`30`); more than [`MAX_WAIT`] is [`MAX_WAIT`].
pub fn parse_wait(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (number, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000)
    } else {
        (t, 1_000)
    };
    let n: u64 = number.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "invalid wait \"{}\": use a duration such as 30s, 500ms or 1m (at most {} s)",
            truncate(text, 40),
            MAX_WAIT.as_secs()
        ))
    })?;
    Ok(Duration::from_millis(n.saturating_mul(unit_ms)).min(MAX_WAIT))
}

/// Refuses a thread id that is not one ([`crate::validate::id`]).
fn check_id(id: &str) -> Result<()> {
    crate::validate::id("thread", id).map_err(Error::InvalidArgument)
}

/// A name, role, title or key: 1 to `max` bytes, no control character,
/// not blank.
fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(format!("{field} must not be empty")));
    }
    crate::validate::text(field, value, max).map_err(Error::InvalidArgument)?;
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} \"{}\" holds a control character",
            truncate(&value.escape_default().to_string(), 60)
        )));
    }
    Ok(())
}

fn new_participant(p: &Participant) -> Result<NewParticipant> {
    check_text("a participant name", &p.name, MAX_NAME_BYTES)?;
    check_text("a participant role", &p.role, MAX_NAME_BYTES)?;
    Ok(NewParticipant {
        name: p.name.clone(),
        kind: p.kind,
        role: p.role.clone(),
        // Wake targets come with the wake triggers (SPEC TH-3).
        wake: None,
    })
}

/// A thread's long-polling readers on this host.
struct Waiter {
    notify: Notify,
}

/// The readers waiting on each thread of this host, by workspace and
/// thread. An entry lives while a reader holds it; a wake-up drops the
/// entries nobody holds, so the map stays as small as the set of threads
/// being read.
#[derive(Default)]
struct Waiters {
    threads: Mutex<HashMap<(String, String), Arc<Waiter>>>,
}

impl Waiters {
    fn of(&self, ws: &str, id: &str) -> Arc<Waiter> {
        let mut map = self.threads.locked();
        // Forget the threads nobody waits on any more.
        if map.len() > 1_024 {
            map.retain(|_, w| Arc::strong_count(w) > 1);
        }
        map.entry((ws.to_string(), id.to_string()))
            .or_insert_with(|| {
                Arc::new(Waiter {
                    notify: Notify::new(),
                })
            })
            .clone()
    }

    fn wake(&self, ws: &str, id: &str) {
        let mut map = self.threads.locked();
        let key = (ws.to_string(), id.to_string());
        if let Some(w) = map.get(&key) {
            w.notify.notify_waiters();
            if Arc::strong_count(w) == 1 {
                map.remove(&key);
            }
        }
    }

    fn wake_all(&self) {
        let mut map = self.threads.locked();
        for w in map.values() {
            w.notify.notify_waiters();
        }
        map.retain(|_, w| Arc::strong_count(w) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_schema_version_1_is_spoken() {
        assert!(check_schema_version(1).is_ok());
        let e = check_schema_version(2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported schema_version 2: this server speaks 1"
        );
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert!(check_schema_version(0).is_err());
    }

    #[test]
    fn changes_lead_where_the_spec_says() {
        use ThreadState::*;
        assert_eq!(Change::Escalate.rule(), (Blocked, &[Active][..]));
        assert_eq!(Change::Unblock.rule(), (Active, &[Blocked][..]));
        assert_eq!(Change::Close.rule(), (Closed, &[Active, Blocked][..]));
        assert_eq!(
            Change::OverrideClose.rule(),
            (Closed, &[Active, Blocked][..])
        );
    }

    #[test]
    fn waits_read_with_units_and_are_capped() {
        assert_eq!(parse_wait("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_wait("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_wait("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_wait("10m").unwrap(), MAX_WAIT);
        assert_eq!(parse_wait("99999999999999999s").unwrap(), MAX_WAIT);
        assert!(parse_wait("soon").is_err());
        assert!(parse_wait("-1s").is_err());
    }

    #[test]
    fn texts_are_bounded_and_printable() {
        assert!(check_text("f", "ok", 10).is_ok());
        assert!(check_text("f", " ", 10).is_err());
        assert!(check_text("f", "a\nb", 10).is_err());
        assert!(check_text("f", &"x".repeat(11), 10).is_err());
    }

    fn principal(name: &str, role: Role) -> Principal {
        Principal {
            name: name.into(),
            role,
            workspace: Some("ws".into()),
            token_id: format!("id-{name}"),
        }
    }

    /// A thread of `ws` with the agents `exec` and `review` and the human
    /// `alice`, over a fresh database.
    async fn thread() -> (Arc<Threads>, Store, String) {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let threads = Threads::new(store.clone());
        let p = |name: &str, kind| Participant {
            name: name.into(),
            kind,
            role: "r".into(),
        };
        let (t, _) = threads
            .create(
                "ws",
                &principal("exec", Role::Agent),
                Create {
                    title: "t".into(),
                    task_id: None,
                    participants: vec![
                        p("exec", ParticipantKind::Agent),
                        p("review", ParticipantKind::Agent),
                        p("alice", ParticipantKind::Human),
                    ],
                },
            )
            .await
            .unwrap();
        (threads, store, t.id)
    }

    fn post(sender: Option<&str>) -> Post {
        Post {
            schema_version: 1,
            sender: sender.map(str::to_string),
            recipients: None,
            kind: "message".into(),
            body: Value::String("hi".into()),
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn callers_post_as_themselves_and_operators_for_humans() {
        let (threads, _, id) = thread().await;
        let exec = principal("exec", Role::Agent);
        let ops = principal("ops", Role::Operator);
        let posted = threads.post("ws", &id, &exec, post(None)).await.unwrap();
        assert_eq!(posted.message.sender, "exec");
        let posted = threads
            .post("ws", &id, &exec, post(Some("exec")))
            .await
            .unwrap();
        assert_eq!(posted.message.sender, "exec");
        let e = threads.post("ws", &id, &exec, post(Some("alice"))).await;
        assert!(matches!(e, Err(Error::PermissionDenied(_))), "{e:?}");
        let posted = threads
            .post("ws", &id, &ops, post(Some("alice")))
            .await
            .unwrap();
        assert_eq!(posted.message.sender, "alice");
        let e = threads.post("ws", &id, &ops, post(Some("review"))).await;
        assert!(matches!(e, Err(Error::PermissionDenied(_))), "{e:?}");
        let e = threads.post("ws", &id, &ops, post(Some("bob"))).await;
        assert!(
            matches!(
                e,
                Err(Error::Store(warden_store::Error::NotParticipant { .. }))
            ),
            "{e:?}"
        );
        let viewer = principal("view", Role::Viewer);
        let e = threads.post("ws", &id, &viewer, post(None)).await;
        assert!(matches!(e, Err(Error::PermissionDenied(_))), "{e:?}");
        let bad = Post {
            schema_version: 2,
            ..post(None)
        };
        let e = threads.post("ws", &id, &exec, bad).await;
        assert!(matches!(e, Err(Error::InvalidArgument(_))), "{e:?}");
    }

    #[tokio::test]
    async fn a_waiting_read_is_woken_by_a_post_and_moves_the_cursor() {
        let (threads, store, id) = thread().await;
        let reader = {
            let (threads, id) = (threads.clone(), id.clone());
            tokio::spawn(async move {
                let read = Read {
                    wait: Duration::from_secs(20),
                    ..Read::default()
                };
                let review = principal("review", Role::Agent);
                threads.read("ws", &id, &review, read).await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let exec = principal("exec", Role::Agent);
        threads.post("ws", &id, &exec, post(None)).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("woken before its wait ends")
            .unwrap()
            .unwrap();
        assert_eq!(read.messages.len(), 1);
        assert_eq!(read.reader.as_deref(), Some("review"));
        let cursors = store.thread_cursors("ws", &id).await.unwrap();
        let review = cursors.iter().find(|c| c.participant == "review").unwrap();
        assert_eq!((review.last_read_seq, review.unread), (1, 0));
    }

    #[tokio::test]
    async fn state_changes_follow_roles_and_states() {
        let (threads, _, id) = thread().await;
        let outsider = principal("other", Role::Agent);
        let review = principal("review", Role::Agent);
        let ops = principal("ops", Role::Operator);
        let e = threads
            .change("ws", &id, &outsider, Change::Escalate, "why")
            .await;
        assert!(matches!(e, Err(Error::PermissionDenied(_))), "{e:?}");
        let t = threads
            .change("ws", &id, &review, Change::Escalate, "why")
            .await
            .unwrap();
        assert_eq!((t.from, t.to), (ThreadState::Active, ThreadState::Blocked));
        let e = threads
            .change("ws", &id, &review, Change::Unblock, "why")
            .await;
        assert!(matches!(e, Err(Error::PermissionDenied(_))), "{e:?}");
        let e = threads.change("ws", &id, &ops, Change::Close, " ").await;
        assert!(matches!(e, Err(Error::InvalidArgument(_))), "{e:?}");
        let e = threads
            .change("ws", &id, &ops, Change::OverrideClose, "enough")
            .await;
        assert!(matches!(e, Err(Error::InvalidArgument(_))), "{e:?}");
        threads
            .change(
                "ws",
                &id,
                &ops,
                Change::OverrideClose,
                "human_override: enough",
            )
            .await
            .unwrap();
        let e = threads
            .change("ws", &id, &ops, Change::Unblock, "why")
            .await;
        assert!(
            matches!(e, Err(Error::Store(warden_store::Error::Conflict(_)))),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_wake_reaches_a_waiter_and_forgets_idle_threads() {
        let waiters = Waiters::default();
        let w = waiters.of("ws", "t");
        {
            let notified = w.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            waiters.wake("ws", "t");
            tokio::time::timeout(Duration::from_secs(1), notified)
                .await
                .unwrap();
        }
        assert_eq!(waiters.threads.locked().len(), 1, "held by its reader");
        drop(w);
        waiters.wake("ws", "t");
        assert!(waiters.threads.locked().is_empty());
    }
}
