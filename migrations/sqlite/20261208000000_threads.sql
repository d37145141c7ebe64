-- Agent threads (SPEC TH-1, TH-2, TH-5), SQLite dialect. The PostgreSQL
-- twin is migrations/postgres/20261208000000_threads.sql and must stay
-- equivalent. Same conventions as the initial schema (no foreign keys).
-- Thread mutations (creation, participants, state changes) are audited in
-- `audit_log` with `target` = the thread id; a message is its own record.

-- One thread of a workspace. `last_seq` is the seq of its newest message:
-- a post increments it (which locks the row until the post commits) and
-- inserts the message with the new value in the same transaction, so the
-- seqs of a thread are 1, 2, 3, ... with no gap and no duplicate, and
-- commit in that order.
CREATE TABLE threads (
    id           TEXT NOT NULL PRIMARY KEY,
    workspace    TEXT NOT NULL,
    title        TEXT NOT NULL,
    task_id      TEXT,
    state        TEXT NOT NULL,
    state_reason TEXT,
    last_seq     INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX threads_workspace ON threads (workspace, state, updated_at);
CREATE INDEX threads_task ON threads (workspace, task_id);

-- Who takes part in a thread: agents and humans, each with a role and an
-- optional wake target (JSON: a command or a webhook). `position` orders
-- them as they joined (0, 1, 2, ...; the first ones in the order given).
CREATE TABLE thread_participants (
    thread_id TEXT NOT NULL,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    role      TEXT NOT NULL,
    wake      TEXT,
    joined_at INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (thread_id, name)
);

-- The messages of a thread, numbered by `seq`. `recipients` is a JSON
-- array of participant names, NULL for a broadcast. A retried post (same
-- sender and idempotency key) finds the first one through
-- `thread_messages_idempotency`; NULL keys never collide.
CREATE TABLE thread_messages (
    thread_id       TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    workspace       TEXT NOT NULL,
    schema_version  INTEGER NOT NULL,
    sender          TEXT NOT NULL,
    recipients      TEXT,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (thread_id, seq)
);
CREATE UNIQUE INDEX thread_messages_idempotency
    ON thread_messages (thread_id, sender, idempotency_key);

-- How far each participant has read (TH-2): the highest seq it marked
-- read, which never goes back, and when it last read.
CREATE TABLE thread_cursors (
    thread_id     TEXT NOT NULL,
    participant   TEXT NOT NULL,
    last_read_seq INTEGER NOT NULL,
    read_at       INTEGER NOT NULL,
    PRIMARY KEY (thread_id, participant)
);

-- A thread's audit trail (TH-5) is read by target.
CREATE INDEX audit_log_target ON audit_log (target, id);
