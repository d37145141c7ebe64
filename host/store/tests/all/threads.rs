//! `threads`: agent threads (SPEC TH-1), their messages and sequence
//! numbers, cursor reads (TH-2) and audit trail (TH-5).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use warden_store::threads::{
    MAX_BODY_BYTES, MAX_READ_LIMIT, MESSAGES_CHANNEL, MessageKind, NewMessage, NewParticipant,
    NewThread, ParticipantKind, StateChange, ThreadNotice, ThreadQuery, ThreadState,
};
use warden_store::{Error, Store, new_id, now_ms};

use crate::common::{TestResult, database_url, new_task};

conformance!(
    a_thread_is_created_with_its_participants_and_audited,
    messages_are_numbered_and_a_retry_returns_the_original,
    a_closed_thread_refuses_posts_and_participants,
    state_changes_are_audited_and_can_be_conditional,
    directed_messages_are_visible_to_their_recipients_and_sender,
    reads_are_bounded_and_paged,
    cursors_never_move_back_and_count_what_is_unread,
    bodies_over_the_limit_are_refused,
    a_post_notifies_every_host_once_it_commits,
    concurrent_posts_from_several_hosts_number_without_gaps,
);

fn participant(name: &str, kind: ParticipantKind, role: &str) -> NewParticipant {
    NewParticipant {
        name: name.to_string(),
        kind,
        role: role.to_string(),
        wake: None,
    }
}

/// A thread in `ws` with an executor and a reviewer (agents) and a human.
fn new_thread(ws: &str) -> NewThread {
    NewThread {
        id: new_id(),
        workspace: ws.to_string(),
        title: "fix the login bug".to_string(),
        task_id: None,
        created_by: "operator".to_string(),
        participants: vec![
            NewParticipant {
                wake: Some(json!({"command": ["codex", "exec", "resume"]})),
                ..participant("exec", ParticipantKind::Agent, "executor")
            },
            participant("review", ParticipantKind::Agent, "reviewer"),
            participant("ana", ParticipantKind::Human, "approver"),
        ],
    }
}

/// A broadcast `message` from `sender` in `thread` of `ws`, without a key.
fn message(ws: &str, thread: &str, sender: &str, text: &str) -> NewMessage {
    NewMessage {
        workspace: ws.to_string(),
        thread_id: thread.to_string(),
        schema_version: 1,
        sender: sender.to_string(),
        recipients: None,
        kind: MessageKind::Message,
        body: json!({ "text": text }),
        idempotency_key: None,
        at: now_ms(),
    }
}

fn keyed(mut m: NewMessage, key: &str) -> NewMessage {
    m.idempotency_key = Some(key.to_string());
    m
}

fn to(mut m: NewMessage, recipients: &[&str]) -> NewMessage {
    m.recipients = Some(recipients.iter().map(|r| r.to_string()).collect());
    m
}

fn close(actor: &str) -> StateChange {
    StateChange {
        to: ThreadState::Closed,
        actor: actor.to_string(),
        reason: Some("done".to_string()),
        only_from: Vec::new(),
    }
}

async fn seqs_for(
    store: &Store,
    ws: &str,
    thread: &str,
    reader: Option<&str>,
) -> anyhow::Result<Vec<i64>> {
    Ok(store
        .thread_messages_after(ws, thread, 0, 0, reader)
        .await?
        .iter()
        .map(|m| m.seq)
        .collect())
}

async fn a_thread_is_created_with_its_participants_and_audited(store: Store) -> TestResult {
    let before = now_ms();
    let (thread, participants) = store.create_thread(&new_thread("ws")).await?;
    assert_eq!(thread.state, ThreadState::Active);
    assert_eq!(thread.last_seq, 0);
    assert_eq!(thread.created_by, "operator");
    assert!(thread.created_at >= before && thread.updated_at == thread.created_at);
    assert_eq!(
        store.get_thread("ws", &thread.id).await?,
        Some(thread.clone())
    );
    assert_eq!(store.get_thread("other", &thread.id).await?, None);

    let stored = store.thread_participants("ws", &thread.id).await?;
    assert_eq!(stored, participants);
    let names: Vec<(&str, ParticipantKind, &str)> = stored
        .iter()
        .map(|p| (p.name.as_str(), p.kind, p.role.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("exec", ParticipantKind::Agent, "executor"),
            ("review", ParticipantKind::Agent, "reviewer"),
            ("ana", ParticipantKind::Human, "approver"),
        ]
    );
    assert_eq!(
        stored[0].wake,
        Some(json!({"command": ["codex", "exec", "resume"]}))
    );
    assert_eq!(stored[1].wake, None);

    // Linked to a task of the workspace; a task elsewhere is not found.
    let (task, _) = store.create_task(&new_task("ws", "login")).await?;
    let linked = NewThread {
        task_id: Some(task.id.clone()),
        ..new_thread("ws")
    };
    let (linked, _) = store.create_thread(&linked).await?;
    assert_eq!(linked.task_id.as_deref(), Some(task.id.as_str()));
    let elsewhere = NewThread {
        task_id: Some(task.id.clone()),
        ..new_thread("other")
    };
    let err = store.create_thread(&elsewhere).await.expect_err("no task");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(store.get_thread("other", &elsewhere.id).await?, None);

    // A taken id and a participant named twice are refused, and nothing is
    // left behind.
    let again = NewThread {
        id: thread.id.clone(),
        ..new_thread("ws")
    };
    let err = store.create_thread(&again).await.expect_err("id taken");
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    let mut twice = new_thread("ws");
    twice
        .participants
        .push(participant("exec", ParticipantKind::Human, "x"));
    let err = store.create_thread(&twice).await.expect_err("named twice");
    assert_eq!(
        err.to_string(),
        format!(
            "participant \"exec\" of thread \"{}\" already exists",
            twice.id
        )
    );
    assert_eq!(store.get_thread("ws", &twice.id).await?, None);

    // Listing: newest activity first, by state and by task.
    let listed: Vec<String> = store
        .list_threads("ws", &ThreadQuery::default())
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&thread.id) && listed.contains(&linked.id));
    store
        .set_thread_state("ws", &thread.id, &close("ops"))
        .await?;
    let closed = ThreadQuery {
        state: Some(ThreadState::Closed),
        ..ThreadQuery::default()
    };
    let ids: Vec<String> = store
        .list_threads("ws", &closed)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, [thread.id.as_str()]);
    let by_task = ThreadQuery {
        task_id: Some(task.id.clone()),
        ..ThreadQuery::default()
    };
    assert_eq!(store.list_threads("ws", &by_task).await?.len(), 1);
    assert!(
        store
            .list_threads("other", &ThreadQuery::default())
            .await?
            .is_empty()
    );
    assert_eq!(
        store.count_threads_by_state("ws").await?,
        [(ThreadState::Active, 1), (ThreadState::Closed, 1)]
    );

    // The creation is audited with its actor.
    let audit = store.list_thread_audit("ws", &linked.id, 0).await?;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "thread.create");
    assert_eq!(audit[0].actor, "operator");
    assert_eq!(audit[0].workspace.as_deref(), Some("ws"));
    assert_eq!(audit[0].detail["task_id"], json!(task.id));
    assert_eq!(audit[0].detail["participants"][2]["kind"], json!("human"));
    assert!(
        store
            .list_thread_audit("other", &linked.id, 0)
            .await?
            .is_empty()
    );
    Ok(())
}

async fn messages_are_numbered_and_a_retry_returns_the_original(store: Store) -> TestResult {
    let (thread, _) = store.create_thread(&new_thread("ws")).await?;
    let id = thread.id.as_str();
    let first = store
        .post_thread_message(&keyed(message("ws", id, "exec", "plan"), "k1"))
        .await?;
    assert!(!first.replay);
    assert_eq!(first.message.seq, 1);
    assert_eq!(first.message.body, json!({"text": "plan"}));
    assert_eq!(first.message.idempotency_key.as_deref(), Some("k1"));
    assert_eq!(first.message.schema_version, 1);
    for (i, sender) in ["review", "exec", "ana"].iter().enumerate() {
        let posted = store
            .post_thread_message(&message("ws", id, sender, "more"))
            .await?;
        assert_eq!(posted.message.seq, i as i64 + 2);
        assert!(!posted.replay);
    }

    // The retry, even with another body, gets the original back and
    // writes nothing.
    let retry = NewMessage {
        body: json!({"text": "plan, again"}),
        kind: MessageKind::Decision,
        ..keyed(message("ws", id, "exec", "plan"), "k1")
    };
    let replayed = store.post_thread_message(&retry).await?;
    assert!(replayed.replay);
    assert_eq!(replayed.message, first.message);
    // The same key is another sender's own.
    let other = store
        .post_thread_message(&keyed(message("ws", id, "review", "ok"), "k1"))
        .await?;
    assert!(!other.replay);
    assert_eq!(other.message.seq, 5);

    let thread = store.get_thread("ws", id).await?.expect("thread");
    assert_eq!(thread.last_seq, 5);
    assert_eq!(seqs_for(&store, "ws", id, None).await?, [1, 2, 3, 4, 5]);
    let stored = store.get_thread_message("ws", id, 1).await?.expect("seq 1");
    assert_eq!(stored, first.message);
    assert_eq!(store.get_thread_message("ws", id, 6).await?, None);

    // Each thread counts on its own.
    let (second, _) = store.create_thread(&new_thread("ws")).await?;
    let posted = store
        .post_thread_message(&keyed(message("ws", &second.id, "exec", "plan"), "k1"))
        .await?;
    assert_eq!((posted.message.seq, posted.replay), (1, false));

    // Only threads of the workspace, only participants.
    let err = store
        .post_thread_message(&message("other", id, "exec", "x"))
        .await
        .expect_err("another workspace");
    assert_eq!(err.to_string(), format!("thread \"{id}\" not found"));
    let err = store
        .post_thread_message(&message("ws", id, "mallory", "x"))
        .await
        .expect_err("not a participant");
    assert!(
        matches!(&err, Error::NotParticipant { name, .. } if name == "mallory"),
        "{err:?}"
    );
    let err = store
        .post_thread_message(&to(message("ws", id, "exec", "x"), &["review", "ghost"]))
        .await
        .expect_err("a recipient that is not a participant");
    assert_eq!(
        err.to_string(),
        format!("\"ghost\" is not a participant of thread \"{id}\" (add it to the thread first)")
    );
    assert_eq!(
        store.get_thread("ws", id).await?.expect("thread").last_seq,
        5
    );
    Ok(())
}

async fn a_closed_thread_refuses_posts_and_participants(store: Store) -> TestResult {
    let (thread, _) = store.create_thread(&new_thread("ws")).await?;
    let id = thread.id.as_str();
    let first = store
        .post_thread_message(&keyed(message("ws", id, "exec", "done"), "k1"))
        .await?;
    let closed = store.set_thread_state("ws", id, &close("ops")).await?;
    assert_eq!(
        (closed.from, closed.to),
        (ThreadState::Active, ThreadState::Closed)
    );
    assert_eq!(closed.thread.state, ThreadState::Closed);
    assert_eq!(closed.thread.state_reason.as_deref(), Some("done"));

    for post in [
        message("ws", id, "review", "late"),
        keyed(message("ws", id, "exec", "late"), "k2"),
    ] {
        let err = store.post_thread_message(&post).await.expect_err("closed");
        assert!(
            matches!(&err, Error::ThreadClosed { thread } if thread == id),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "thread \"{id}\" is closed and takes no new messages or participants (reopen it first)"
            )
        );
    }
    // A retry of a post that went through before the close still gets its
    // message.
    let retry = store
        .post_thread_message(&keyed(message("ws", id, "exec", "done"), "k1"))
        .await?;
    assert!(retry.replay);
    assert_eq!(retry.message, first.message);
    let err = store
        .add_thread_participant(
            "ws",
            id,
            &participant("late", ParticipantKind::Agent, "x"),
            "ops",
        )
        .await
        .expect_err("closed");
    assert!(matches!(err, Error::ThreadClosed { .. }), "{err:?}");
    assert_eq!(store.thread_participants("ws", id).await?.len(), 3);
    assert_eq!(
        store.get_thread("ws", id).await?.expect("thread").last_seq,
        1
    );
    // Reading a closed thread still works, and so do cursors.
    assert_eq!(seqs_for(&store, "ws", id, Some("review")).await?, [1]);
    store
        .mark_thread_read("ws", id, "review", 1, now_ms())
        .await?;

    // Reopened, it takes posts again, numbered on.
    let reopen = StateChange {
        to: ThreadState::Active,
        ..close("ops")
    };
    store.set_thread_state("ws", id, &reopen).await?;
    let posted = store
        .post_thread_message(&message("ws", id, "review", "reopened"))
        .await?;
    assert_eq!(posted.message.seq, 2);
    Ok(())
}

async fn state_changes_are_audited_and_can_be_conditional(store: Store) -> TestResult {
    let (thread, _) = store.create_thread(&new_thread("ws")).await?;
    let id = thread.id.as_str();
    // A loop guard blocks only an active thread.
    let block = StateChange {
        to: ThreadState::Blocked,
        actor: "loop-guard".to_string(),
        reason: Some("no progress in 20 turns".to_string()),
        only_from: vec![ThreadState::Active],
    };
    let blocked = store.set_thread_state("ws", id, &block).await?;
    assert_eq!(
        (blocked.from, blocked.to),
        (ThreadState::Active, ThreadState::Blocked)
    );
    assert!(blocked.thread.updated_at >= thread.updated_at);
    // A blocked thread still takes posts (a human answers there).
    store
        .post_thread_message(&message("ws", id, "ana", "looking"))
        .await?;

    let close_active = StateChange {
        only_from: vec![ThreadState::Active],
        ..close("ops")
    };
    let err = store
        .set_thread_state("ws", id, &close_active)
        .await
        .expect_err("not active");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("thread \"{id}\" is blocked, not active: it cannot become closed")
    );
    let err = store
        .set_thread_state("ws", id, &block)
        .await
        .expect_err("only from active");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    // Asking for the state it is in changes and audits nothing.
    let again = StateChange {
        only_from: Vec::new(),
        ..block.clone()
    };
    let noop = store.set_thread_state("ws", id, &again).await?;
    assert_eq!(
        (noop.from, noop.to),
        (ThreadState::Blocked, ThreadState::Blocked)
    );

    let unblock = StateChange {
        to: ThreadState::Active,
        actor: "ana".to_string(),
        reason: Some("human_override: looked at it".to_string()),
        only_from: vec![ThreadState::Blocked],
    };
    store.set_thread_state("ws", id, &unblock).await?;
    let err = store
        .set_thread_state("other", id, &unblock)
        .await
        .expect_err("another workspace");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    let audit = store.list_thread_audit("ws", id, 0).await?;
    let trail: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.actor.as_str()))
        .collect();
    assert_eq!(
        trail,
        [
            ("thread.state", "ana"),
            ("thread.state", "loop-guard"),
            ("thread.create", "operator"),
        ]
    );
    assert_eq!(
        audit[1].detail,
        json!({"from": "active", "to": "blocked", "reason": "no progress in 20 turns"})
    );
    assert_eq!(audit[0].detail["from"], json!("blocked"));
    assert_eq!(audit[0].target, id);
    assert_eq!(store.list_thread_audit("ws", id, 1).await?.len(), 1);

    // Adding a participant is audited once; adding it again changes
    // nothing.
    let late = NewParticipant {
        wake: Some(json!({"webhook": "https://example.test/wake"})),
        ..participant("late", ParticipantKind::Agent, "tester")
    };
    let (added, created) = store.add_thread_participant("ws", id, &late, "ops").await?;
    assert!(created);
    assert_eq!(added.name, "late");
    assert_eq!(added.wake, late.wake);
    let (existing, created) = store
        .add_thread_participant(
            "ws",
            id,
            &participant("late", ParticipantKind::Human, "other"),
            "ops",
        )
        .await?;
    assert!(!created);
    assert_eq!(existing, added);
    let audit = store.list_thread_audit("ws", id, 0).await?;
    assert_eq!(audit.len(), 4);
    assert_eq!(audit[0].action, "thread.participant.add");
    assert_eq!(audit[0].actor, "ops");
    assert_eq!(audit[0].detail["name"], json!("late"));
    let names: Vec<String> = store
        .thread_participants("ws", id)
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["exec", "review", "ana", "late"]);
    let err = store
        .add_thread_participant("other", id, &late, "ops")
        .await
        .expect_err("another workspace");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    Ok(())
}

async fn directed_messages_are_visible_to_their_recipients_and_sender(store: Store) -> TestResult {
    let (thread, _) = store.create_thread(&new_thread("ws")).await?;
    let id = thread.id.as_str();
    // 1 broadcast, 2 exec → review, 3 review → exec and ana, 4 ana → ana.
    store
        .post_thread_message(&message("ws", id, "exec", "hello all"))
        .await?;
    let directed = store
        .post_thread_message(&to(message("ws", id, "exec", "please review"), &["review"]))
        .await?;
    assert_eq!(
        directed.message.recipients,
        Some(vec!["review".to_string()])
    );
    // Duplicates are dropped.
    let both = store
        .post_thread_message(&to(
            message("ws", id, "review", "finding"),
            &["exec", "ana", "exec"],
        ))
        .await?;
    assert_eq!(
        both.message.recipients,
        Some(vec!["exec".to_string(), "ana".to_string()])
    );
    store
        .post_thread_message(&to(message("ws", id, "ana", "note to self"), &["ana"]))
        .await?;

    assert_eq!(seqs_for(&store, "ws", id, None).await?, [1, 2, 3, 4]);
    assert_eq!(seqs_for(&store, "ws", id, Some("exec")).await?, [1, 2, 3]);
    assert_eq!(seqs_for(&store, "ws", id, Some("review")).await?, [1, 2, 3]);
    assert_eq!(seqs_for(&store, "ws", id, Some("ana")).await?, [1, 3, 4]);
    // A stranger sees the broadcasts only.
    assert_eq!(seqs_for(&store, "ws", id, Some("mallory")).await?, [1]);
    // The filter applies before the limit: a page holds visible messages.
    let page = store
        .thread_messages_after("ws", id, 1, 1, Some("ana"))
        .await?;
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [3]);
    assert!(
        store
            .thread_messages_after("ws", id, 4, 10, Some("ana"))
            .await?
            .is_empty()
    );
    for (ws, thread) in [("other", id), ("ws", "missing")] {
        let err = store
            .thread_messages_after(ws, thread, 0, 10, None)
            .await
            .expect_err("no such thread");
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    }
    Ok(())
}

async fn reads_are_bounded_and_paged(store: Store) -> TestResult {
    let (thread, _) = store.create_thread(&new_thread("ws")).await?;
    let id = thread.id.as_str();
    let total = MAX_READ_LIMIT + 20;
    for i in 0..total {
        store
            .post_thread_message(&message("ws", id, "exec", &format!("m{i}")))
            .await?;
    }
    let default = store.thread_messages_after("ws", id, 0, 0, None).await?;
    assert_eq!(default.len(), 100, "the default page");
    let capped = store
        .thread_messages_after("ws", id, 0, 10_000, None)
        .await?;
    assert_eq!(capped.len() as i64, MAX_READ_LIMIT, "the cap");
    assert_eq!(capped.last().map(|m| m.seq), Some(MAX_READ_LIMIT));
    let rest = store
        .thread_messages_after("ws", id, MAX_READ_LIMIT, 10_000, None)
        .await?;
    let seqs: Vec<i64> = rest.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (MAX_READ_LIMIT + 1..=total).collect::<Vec<_>>());
    assert_eq!(rest[0].body, json!({"text": format!("m{MAX_READ_LIMIT}")}));
    Ok(())
}

async fn cursors_never_move_back_and_count_what_is_unread(store: Store) -> TestResult {
    let (thread, _) = store.create_thread(&new_thread("ws")).await?;
    let id = thread.id.as_str();
    // 1 broadcast by exec, 2 exec → review, 3 broadcast by review.
    store
        .post_thread_message(&message("ws", id, "exec", "one"))
        .await?;
    store
        .post_thread_message(&to(message("ws", id, "exec", "two"), &["review"]))
        .await?;
    store
        .post_thread_message(&message("ws", id, "review", "three"))
        .await?;

    // Nobody has read: own messages and others' directed ones do not count.
    let unread = |name: &'static str| {
        let store = store.clone();
        let id = id.to_string();
        async move { store.thread_unread_count("ws", &id, name).await }
    };
    assert_eq!(unread("exec").await?, 1);
    assert_eq!(unread("review").await?, 2);
    assert_eq!(unread("ana").await?, 2);
    assert_eq!(
        store.thread_message_unread_by("ws", id, 1).await?,
        ["review", "ana"]
    );
    assert_eq!(
        store.thread_message_unread_by("ws", id, 2).await?,
        ["review"]
    );

    let cursor = store.mark_thread_read("ws", id, "review", 2, 1_000).await?;
    assert_eq!((cursor.last_read_seq, cursor.read_at), (2, 1_000));
    assert_eq!(unread("review").await?, 0);
    assert!(
        store
            .thread_message_unread_by("ws", id, 2)
            .await?
            .is_empty()
    );
    assert_eq!(store.thread_message_unread_by("ws", id, 1).await?, ["ana"]);
    // Never back: a lower seq or an earlier time keeps what is stored; a
    // re-read of the same seq later moves the time.
    let cursor = store.mark_thread_read("ws", id, "review", 1, 900).await?;
    assert_eq!((cursor.last_read_seq, cursor.read_at), (2, 1_000));
    let cursor = store.mark_thread_read("ws", id, "review", 2, 2_000).await?;
    assert_eq!((cursor.last_read_seq, cursor.read_at), (2, 2_000));
    // Capped at the newest message: a cursor ahead would hide the next.
    let cursor = store.mark_thread_read("ws", id, "ana", 99, 3_000).await?;
    assert_eq!(cursor.last_read_seq, 3);
    assert_eq!(unread("ana").await?, 0);
    store
        .post_thread_message(&message("ws", id, "exec", "four"))
        .await?;
    assert_eq!(unread("ana").await?, 1);
    assert_eq!(
        store.thread_message_unread_by("ws", id, 4).await?,
        ["review", "ana"]
    );

    let cursors = store.thread_cursors("ws", id).await?;
    let seen: Vec<(&str, i64, Option<i64>, i64)> = cursors
        .iter()
        .map(|c| (c.participant.as_str(), c.last_read_seq, c.read_at, c.unread))
        .collect();
    assert_eq!(
        seen,
        [
            ("exec", 0, None, 1),
            ("review", 2, Some(2_000), 1),
            ("ana", 3, Some(3_000), 1),
        ]
    );
    assert_eq!(cursors[2].kind, ParticipantKind::Human);

    let err = store
        .mark_thread_read("ws", id, "mallory", 1, 1)
        .await
        .expect_err("not a participant");
    assert!(matches!(err, Error::NotParticipant { .. }), "{err:?}");
    let err = unread("mallory").await.expect_err("not a participant");
    assert!(matches!(err, Error::NotParticipant { .. }), "{err:?}");
    let err = store
        .mark_thread_read("other", id, "ana", 1, 1)
        .await
        .expect_err("another workspace");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    let err = store
        .thread_message_unread_by("ws", id, 5)
        .await
        .expect_err("no message 5");
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    Ok(())
}

async fn bodies_over_the_limit_are_refused(store: Store) -> TestResult {
    let (thread, _) = store.create_thread(&new_thread("ws")).await?;
    let id = thread.id.as_str();
    // A JSON string: its text plus two quotes.
    let at_limit = NewMessage {
        body: json!("x".repeat(MAX_BODY_BYTES - 2)),
        ..message("ws", id, "exec", "")
    };
    let posted = store.post_thread_message(&at_limit).await?;
    assert_eq!(posted.message.body, at_limit.body);
    let over = NewMessage {
        body: json!("x".repeat(MAX_BODY_BYTES - 1)),
        ..message("ws", id, "exec", "")
    };
    let err = store.post_thread_message(&over).await.expect_err("too big");
    assert!(
        matches!(err, Error::TooLarge { size, max, .. } if size == MAX_BODY_BYTES + 1 && max == MAX_BODY_BYTES),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "message body is {} bytes, more than the {MAX_BODY_BYTES} allowed (make it smaller)",
            MAX_BODY_BYTES + 1
        )
    );
    assert_eq!(
        store.get_thread("ws", id).await?.expect("thread").last_seq,
        1
    );
    Ok(())
}

/// The next notice `listener` receives, within 5 s.
async fn next_notice(
    listener: &mut warden_store::notify::Listener,
) -> anyhow::Result<Option<ThreadNotice>> {
    let payload = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await??;
    Ok(ThreadNotice::parse(&payload))
}

async fn a_post_notifies_every_host_once_it_commits(store: Store) -> TestResult {
    let (thread, _) = store.create_thread(&new_thread("ws")).await?;
    let id = thread.id.as_str();
    let Some(mut listener) = store.listen(MESSAGES_CHANNEL).await? else {
        // SQLite is one host: nothing to notify, and nothing is sent.
        assert_eq!(store.dialect(), warden_store::Dialect::Sqlite);
        return Ok(());
    };
    let first = keyed(message("ws", id, "exec", "one"), "k1");
    store.post_thread_message(&first).await?;
    let expected = |seq| ThreadNotice {
        workspace: "ws".to_string(),
        thread_id: id.to_string(),
        seq,
    };
    assert_eq!(next_notice(&mut listener).await?, Some(expected(1)));
    // A replay writes nothing and notifies nothing: the next notice is
    // the next message's.
    assert!(store.post_thread_message(&first).await?.replay);
    store
        .post_thread_message(&message("ws", id, "review", "two"))
        .await?;
    assert_eq!(next_notice(&mut listener).await?, Some(expected(2)));
    Ok(())
}

/// Writers, each through a pool of its own (a host), and posts per writer.
const WRITERS: usize = 8;
const POSTS: usize = 200;

async fn concurrent_posts_from_several_hosts_number_without_gaps(store: Store) -> TestResult {
    let mut new = new_thread("ws");
    new.participants = (0..WRITERS)
        .map(|w| participant(&format!("agent{w}"), ParticipantKind::Agent, "worker"))
        .collect();
    let (thread, _) = store.create_thread(&new).await?;
    let mut hosts = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        hosts.push(Store::connect(&database_url()).await?);
    }
    let post =
        |w: usize, key: String| keyed(message("ws", &thread.id, &format!("agent{w}"), &key), &key);

    // Every writer posts its messages, one after the other.
    let writers: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(w, host)| {
            let host = host.clone();
            let posts: Vec<NewMessage> = (0..POSTS).map(|i| post(w, format!("w{w}-{i}"))).collect();
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(posts.len());
                for m in posts {
                    let posted = host.post_thread_message(&m).await?;
                    anyhow::ensure!(!posted.replay, "a first post was taken for a replay");
                    got.push((m.idempotency_key.unwrap_or_default(), posted.message.seq));
                }
                anyhow::Ok(got)
            })
        })
        .collect();
    let mut first: Vec<(String, i64)> = Vec::new();
    for writer in writers {
        first.extend(writer.await??);
    }
    let total = (WRITERS * POSTS) as i64;
    let seqs: BTreeSet<i64> = first.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs.len(), first.len(), "a seq was handed out twice");
    assert_eq!(seqs, (1..=total).collect(), "the seqs have a gap");

    // Every writer retries a sample of every writer's keys, and all of
    // them post the same new keys at once: each retry gets the original,
    // each new key makes one message.
    let sample: Vec<(usize, String, i64)> = first
        .iter()
        .step_by(37)
        .map(|(key, seq)| {
            let w: usize = key[1..key.find('-').unwrap_or(1)].parse().unwrap_or(0);
            (w, key.clone(), *seq)
        })
        .collect();
    let racers: Vec<_> = hosts
        .iter()
        .map(|host| {
            let host = host.clone();
            let retries: Vec<(NewMessage, i64)> = sample
                .iter()
                .map(|(w, key, seq)| (post(*w, key.clone()), *seq))
                .collect();
            let fresh: Vec<NewMessage> = (0..10).map(|k| post(0, format!("race-{k}"))).collect();
            tokio::spawn(async move {
                for (m, seq) in retries {
                    let posted = host.post_thread_message(&m).await?;
                    anyhow::ensure!(
                        posted.replay,
                        "retry of {:?} was not a replay",
                        m.idempotency_key
                    );
                    anyhow::ensure!(posted.message.seq == seq, "retry got another message");
                    anyhow::ensure!(posted.message.body == m.body, "retry got another body");
                }
                let mut got = Vec::new();
                for m in fresh {
                    let posted = host.post_thread_message(&m).await?;
                    got.push((
                        m.idempotency_key.unwrap_or_default(),
                        posted.message.seq,
                        posted.replay,
                    ));
                }
                anyhow::Ok(got)
            })
        })
        .collect();
    let mut raced: Vec<(String, i64, bool)> = Vec::new();
    for racer in racers {
        raced.extend(racer.await??);
    }
    for k in 0..10 {
        let key = format!("race-{k}");
        let posts: Vec<&(String, i64, bool)> = raced.iter().filter(|r| r.0 == key).collect();
        assert_eq!(posts.len(), WRITERS);
        assert_eq!(
            posts.iter().filter(|r| !r.2).count(),
            1,
            "{key} made exactly one message"
        );
        let seq = posts[0].1;
        assert!(posts.iter().all(|r| r.1 == seq), "{key} has one seq");
    }
    for host in &hosts {
        host.close().await;
    }

    // Readers see exactly 1..=total+10, in order, page by page.
    let expected = total + 10;
    assert_eq!(
        store
            .get_thread("ws", &thread.id)
            .await?
            .expect("thread")
            .last_seq,
        expected
    );
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .thread_messages_after("ws", &thread.id, after, MAX_READ_LIMIT, None)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        read.extend(page.iter().map(|m| m.seq));
    }
    assert_eq!(read, (1..=expected).collect::<Vec<_>>());
    Ok(())
}
