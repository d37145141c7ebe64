//! Agent threads (SPEC TH-1, TH-2, TH-5): threads, their participants
//! and read cursors, messages, state changes and the audit trail.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::threads::{Detail, Messages};
use warden_core::time::{opt_time, time};
use warden_store::audit::AuditRow;
use warden_store::threads::{MessageRow, ParticipantCursor, ParticipantRow, ThreadRow, Transition};

/// A thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Thread {
    pub id: String,
    pub workspace: String,
    pub title: String,
    /// The task it is about.
    pub task_id: Option<String>,
    /// `active`, `blocked` or `closed`.
    pub state: String,
    /// The reason given with the last state change.
    pub state_reason: Option<String>,
    /// The seq of its newest message; 0 before the first.
    pub last_seq: i64,
    /// Who created it (a token's name).
    pub created_by: String,
    pub created_at: String,
    /// Its last change or message.
    pub updated_at: String,
}

impl From<&ThreadRow> for Thread {
    fn from(t: &ThreadRow) -> Thread {
        Thread {
            id: t.id.clone(),
            workspace: t.workspace.clone(),
            title: t.title.clone(),
            task_id: t.task_id.clone(),
            state: t.state.as_str().to_string(),
            state_reason: t.state_reason.clone(),
            last_seq: t.last_seq,
            created_by: t.created_by.clone(),
            created_at: time(t.created_at),
            updated_at: time(t.updated_at),
        }
    }
}

/// Threads of a workspace, newest activity first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThreadList {
    pub threads: Vec<Thread>,
}

/// A participant as it joined.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Participant {
    /// Its name in the thread: an agent's token name, a person's login.
    pub name: String,
    /// `agent` or `human`.
    pub kind: String,
    /// Its role, e.g. `executor`, `reviewer`.
    pub role: String,
    pub joined_at: String,
}

impl From<&ParticipantRow> for Participant {
    fn from(p: &ParticipantRow) -> Participant {
        Participant {
            name: p.name.clone(),
            kind: p.kind.as_str().to_string(),
            role: p.role.clone(),
            joined_at: time(p.joined_at),
        }
    }
}

/// A participant added (201), or the one already there (200).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParticipantAdded {
    pub participant: Participant,
    /// False when the name was a participant already.
    pub added: bool,
}

/// A participant with its read cursor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParticipantState {
    pub name: String,
    /// `agent` or `human`.
    pub kind: String,
    pub role: String,
    /// The highest seq it has read; 0 before its first read.
    pub last_read_seq: i64,
    /// When it last read; null before its first read.
    pub read_at: Option<String>,
    /// Messages after its cursor addressed to it (broadcasts and
    /// messages directed to it) that it did not send.
    pub unread: i64,
}

impl From<&ParticipantCursor> for ParticipantState {
    fn from(c: &ParticipantCursor) -> ParticipantState {
        ParticipantState {
            name: c.participant.clone(),
            kind: c.kind.as_str().to_string(),
            role: c.role.clone(),
            last_read_seq: c.last_read_seq,
            read_at: opt_time(c.read_at),
            unread: c.unread,
        }
    }
}

/// A thread with its participants, their cursors and unread counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThreadDetail {
    pub thread: Thread,
    pub participants: Vec<ParticipantState>,
}

impl From<&Detail> for ThreadDetail {
    fn from(d: &Detail) -> ThreadDetail {
        ThreadDetail {
            thread: Thread::from(&d.thread),
            participants: d.participants.iter().map(ParticipantState::from).collect(),
        }
    }
}

/// A message of a thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub thread_id: String,
    /// Its number in the thread: 1, 2, 3, ... with no gap.
    pub seq: i64,
    /// The message format version it was posted with.
    pub schema_version: i64,
    /// Who posted it.
    pub sender: String,
    /// Who it is addressed to; null: everyone (a broadcast).
    pub recipients: Option<Vec<String>>,
    /// `message`, `finding`, `decision` or `status`.
    pub kind: String,
    pub body: Value,
    pub idempotency_key: Option<String>,
    pub created_at: String,
}

impl From<&MessageRow> for Message {
    fn from(m: &MessageRow) -> Message {
        Message {
            thread_id: m.thread_id.clone(),
            seq: m.seq,
            schema_version: m.schema_version,
            sender: m.sender.clone(),
            recipients: m.recipients.clone(),
            kind: m.kind.as_str().to_string(),
            body: m.body.clone(),
            idempotency_key: m.idempotency_key.clone(),
            created_at: time(m.created_at),
        }
    }
}

/// What a cursor read returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageList {
    /// The messages after `after`, in seq order; empty when none came
    /// before the wait ended.
    pub messages: Vec<Message>,
    /// Who it read as (whose cursor moved); null for every message, read
    /// by an operator or viewer.
    pub reader: Option<String>,
    /// What to pass as `after` next: the last seq returned, else the
    /// `after` given.
    pub next_after: i64,
    /// The thread's newest seq.
    pub last_seq: i64,
}

impl MessageList {
    /// The view of a read that asked for messages after `after`.
    pub fn of(read: &Messages, after: i64) -> MessageList {
        MessageList {
            messages: read.messages.iter().map(Message::from).collect(),
            reader: read.reader.clone(),
            next_after: read.messages.last().map_or(after, |m| m.seq),
            last_seq: read.last_seq,
        }
    }
}

/// A state change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThreadTransition {
    /// The state before.
    pub from: String,
    /// The state after.
    pub to: String,
    /// The thread after the change.
    pub thread: Thread,
}

impl From<&Transition> for ThreadTransition {
    fn from(t: &Transition) -> ThreadTransition {
        ThreadTransition {
            from: t.from.as_str().to_string(),
            to: t.to.as_str().to_string(),
            thread: Thread::from(&t.thread),
        }
    }
}

/// One entry of a thread's audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThreadAuditEntry {
    pub id: i64,
    pub at: String,
    /// Who: a token's name.
    pub actor: String,
    /// `thread.create`, `thread.participant.add` or `thread.state`.
    pub action: String,
    pub detail: Value,
}

impl From<&AuditRow> for ThreadAuditEntry {
    fn from(a: &AuditRow) -> ThreadAuditEntry {
        ThreadAuditEntry {
            id: a.id,
            at: time(a.at),
            actor: a.actor.clone(),
            action: a.action.clone(),
            detail: a.detail.clone(),
        }
    }
}

/// A thread's audit trail, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThreadAudit {
    pub entries: Vec<ThreadAuditEntry>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use warden_store::threads::MessageKind;

    use super::*;

    #[test]
    fn a_directed_message_reads_back_as_sent() {
        let row = MessageRow {
            thread_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            seq: 7,
            workspace: "acme".into(),
            schema_version: 1,
            sender: "executor".into(),
            recipients: Some(vec!["reviewer".into()]),
            kind: MessageKind::Finding,
            body: json!({ "text": "the diff is ready" }),
            idempotency_key: Some("k-1".into()),
            created_at: 1_767_323_045_678,
        };
        let view = Message::from(&row);
        let sent = serde_json::to_string(&crate::views::to_json(&view).unwrap()).unwrap();
        assert_eq!(
            sent,
            r#"{"body":{"text":"the diff is ready"},"created_at":"2026-01-02T03:04:05.678Z","idempotency_key":"k-1","kind":"finding","recipients":["reviewer"],"schema_version":1,"sender":"executor","seq":7,"thread_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}"#
        );
        let back: Message = serde_json::from_str(&sent).unwrap();
        assert_eq!(back, view);
        let read = Messages {
            messages: vec![row],
            reader: Some("reviewer".into()),
            last_seq: 9,
        };
        let list = MessageList::of(&read, 3);
        assert_eq!((list.next_after, list.last_seq), (7, 9));
        let empty = Messages {
            messages: vec![],
            reader: None,
            last_seq: 9,
        };
        assert_eq!(MessageList::of(&empty, 3).next_after, 3);
    }
}
