-- Alert notifications (SPEC AL-2, AL-3), SQLite dialect. The PostgreSQL
-- twin is migrations/postgres/20261201000000_alerting.sql and must stay
-- equivalent. Same conventions as the initial schema.

-- Where each alert stands with its notifications: when its trigger (or
-- last repeat) was queued, whether its resolve was, and the silence that
-- held it back last.
ALTER TABLE alerts ADD COLUMN notified_at INTEGER;
ALTER TABLE alerts ADD COLUMN resolve_notified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN silenced_by TEXT;
CREATE INDEX alerts_status ON alerts (status, severity);

-- The durable outbox and the history of every notification: a row is
-- written in the same transaction that marks its alerts notified, and is
-- sent (and retried with backoff) from here, oldest first per sink, so a
-- sink that is down loses nothing and blocks nothing else.
CREATE TABLE notifications (
    id           TEXT NOT NULL PRIMARY KEY,
    sink         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    dedup_key    TEXT NOT NULL,
    alert_ids    TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error   TEXT
);
CREATE INDEX notifications_pending ON notifications (status, sink, id);
CREATE INDEX notifications_dedup ON notifications (dedup_key, id);

-- Silences: matching alerts are not notified until `ends_at`. A NULL
-- matcher matches anything; `dedup_key` may end in `*` (a prefix).
CREATE TABLE silences (
    id         TEXT NOT NULL PRIMARY KEY,
    workspace  TEXT,
    rule       TEXT,
    severity   TEXT,
    dedup_key  TEXT,
    comment    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL
);
CREATE INDEX silences_ends ON silences (ends_at);

-- The new-error-fingerprint rule asks whether a fingerprint was seen before.
CREATE INDEX stage_runs_fingerprint ON stage_runs (workspace, fingerprint, ended_at);
