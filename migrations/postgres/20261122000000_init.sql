-- Warden's initial schema, PostgreSQL dialect. The SQLite twin is
-- migrations/sqlite/20261122000000_init.sql and must stay equivalent.
--
-- Conventions (see host/store/src/lib.rs): times are BIGINT milliseconds
-- since the Unix epoch, JSON is TEXT holding serialized JSON, ids are TEXT.
-- Only BIGINT, TEXT and BYTEA are declared, the types sqlx's Any driver maps
-- on both dialects (it cannot decode NUMERIC). Text columns that are ordered
-- or range-compared (ids, names, keys) use COLLATE "C" so that they sort
-- byte-wise, as SQLite does, whatever the database's locale. No foreign
-- keys: runs, events and actions are kept and pruned by the server, and an
-- audited action may name a run id that is not a playbook run (an
-- operator's change).

-- Every accepted plugin version (SPEC LC-3, LC-4).
CREATE TABLE plugins (
    digest      TEXT NOT NULL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    version     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    meta        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    source      TEXT NOT NULL,
    source_path TEXT,
    added_at    BIGINT NOT NULL
);
CREATE INDEX plugins_name ON plugins (name, added_at);

-- The version of a plugin each workspace uses (SPEC LC-4, LC-5).
CREATE TABLE pins (
    workspace      TEXT NOT NULL,
    plugin         TEXT COLLATE "C" NOT NULL,
    selector       TEXT NOT NULL,
    canary         TEXT,
    canary_percent BIGINT NOT NULL DEFAULT 0,
    actor          TEXT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (workspace, plugin)
);

-- Capabilities granted over the API (SPEC PL-6); `capabilities` is a JSON
-- array of strings.
CREATE TABLE grants (
    workspace    TEXT NOT NULL,
    plugin       TEXT COLLATE "C" NOT NULL,
    capabilities TEXT NOT NULL,
    actor        TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace, plugin)
);

-- Playbook runs (SPEC PB-1..PB-3, RL-4). `exclusive_key` is
-- "<workspace>/<plugin>" while a run of a plugin that does not allow
-- concurrency is queued or running, NULL otherwise; its unique index is what
-- enforces one active run per workspace and plugin.
CREATE TABLE runs (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace       TEXT NOT NULL,
    plugin          TEXT NOT NULL,
    version         TEXT NOT NULL,
    digest          TEXT NOT NULL,
    mode            TEXT NOT NULL,
    status          TEXT NOT NULL,
    input           TEXT NOT NULL,
    report          TEXT,
    error           TEXT,
    error_code      TEXT,
    usage           TEXT,
    limits          TEXT,
    actor           TEXT NOT NULL,
    trigger         TEXT NOT NULL,
    idempotency_key TEXT,
    plan_run_id     TEXT,
    retry_of        TEXT,
    exclusive_key   TEXT,
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT
);
CREATE UNIQUE INDEX runs_idempotency ON runs (workspace, plugin, idempotency_key);
CREATE UNIQUE INDEX runs_exclusive ON runs (exclusive_key);
CREATE INDEX runs_workspace ON runs (workspace, id);
CREATE INDEX runs_status ON runs (status, created_at);
CREATE INDEX runs_finished ON runs (workspace, finished_at);

-- The event stream of each run (SPEC PB-1, OB-3).
CREATE TABLE run_events (
    run_id TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    data   TEXT NOT NULL,
    at     BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Every mutating host call of every run (SPEC PB-4).
CREATE TABLE actions (
    run_id    TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    workspace TEXT NOT NULL,
    plugin    TEXT NOT NULL,
    digest    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    call      TEXT NOT NULL,
    target    TEXT,
    args      TEXT NOT NULL,
    status    TEXT NOT NULL,
    before    TEXT,
    after     TEXT,
    detail    TEXT,
    at        BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX actions_workspace ON actions (workspace, at);

-- Tasks (SPEC TS-1); the scheduler adds its columns in later migrations.
CREATE TABLE tasks (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace        TEXT NOT NULL,
    title            TEXT NOT NULL,
    body             TEXT NOT NULL,
    stage            TEXT NOT NULL,
    state            TEXT NOT NULL,
    priority         TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    dedup_key        TEXT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_event_at    BIGINT NOT NULL
);
CREATE INDEX tasks_state ON tasks (workspace, state, last_event_at);
CREATE INDEX tasks_last_event ON tasks (workspace, last_event_at);
-- At most one unfinished task per dedup key and workspace, so that two
-- concurrent creates with one key cannot both insert.
CREATE UNIQUE INDEX tasks_dedup ON tasks (workspace, dedup_key)
    WHERE dedup_key IS NOT NULL AND state NOT IN ('done', 'cancelled', 'dead');

-- Bearer tokens, by SHA-256 hash only (SPEC SE-1).
CREATE TABLE tokens (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name         TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    role         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX tokens_hash ON tokens (hash);
CREATE INDEX tokens_workspace ON tokens (workspace, created_at);

-- Per-plugin, per-workspace key/value state (SPEC PL-2 `kv`).
CREATE TABLE kv (
    workspace  TEXT NOT NULL,
    plugin     TEXT NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, plugin, key)
);

-- Every mutation made through the API (SPEC SE-3).
CREATE TABLE audit_log (
    id        BIGSERIAL PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    workspace TEXT,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX audit_log_workspace ON audit_log (workspace, id);
