-- Alert notifications (SPEC AL-2, AL-3), PostgreSQL dialect. The SQLite
-- twin is migrations/sqlite/20261201000000_alerting.sql and must stay
-- equivalent. Same conventions as the initial schema (BIGINT, TEXT; COLLATE
-- "C" on ids and names that are compared or ordered).

-- Where each alert stands with its notifications: when its trigger (or
-- last repeat) was queued, whether its resolve was, and the silence that
-- held it back last.
ALTER TABLE alerts ADD COLUMN notified_at BIGINT;
ALTER TABLE alerts ADD COLUMN resolve_notified BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN silenced_by TEXT COLLATE "C";
CREATE INDEX alerts_status ON alerts (status, severity);

-- The durable outbox and the history of every notification: a row is
-- written in the same transaction that marks its alerts notified, and is
-- sent (and retried with backoff) from here, oldest first per sink, so a
-- sink that is down loses nothing and blocks nothing else.
CREATE TABLE notifications (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    sink         TEXT COLLATE "C" NOT NULL,
    kind         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    dedup_key    TEXT COLLATE "C" NOT NULL,
    alert_ids    TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_at      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error   TEXT
);
CREATE INDEX notifications_pending ON notifications (status, sink, id);
CREATE INDEX notifications_dedup ON notifications (dedup_key, id);

-- Silences: matching alerts are not notified until `ends_at`. A NULL
-- matcher matches anything; `dedup_key` may end in `*` (a prefix).
CREATE TABLE silences (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace  TEXT COLLATE "C",
    rule       TEXT COLLATE "C",
    severity   TEXT,
    dedup_key  TEXT COLLATE "C",
    comment    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL
);
CREATE INDEX silences_ends ON silences (ends_at);

-- The new-error-fingerprint rule asks whether a fingerprint was seen before.
CREATE INDEX stage_runs_fingerprint ON stage_runs (workspace, fingerprint, ended_at);
