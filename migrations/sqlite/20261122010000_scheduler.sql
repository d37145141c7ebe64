-- The scheduler's storage (SPEC TS-1..TS-9, ST-2, AL-3, RL-1), SQLite
-- dialect. The PostgreSQL twin is
-- migrations/postgres/20261122010000_scheduler.sql and must stay equivalent.
-- Same conventions as the initial schema.

-- Tasks gain their pipeline, claim order, retries, lease token, loop-guard
-- counters, budgets and usage. `pipeline`, `requires` and `depends_on` are
-- JSON arrays of strings, fixed at creation; `depends_on` is kept here for
-- reading and in `task_deps` for the claim query. `event_seq` is the last
-- `task_events.seq` of the task.
ALTER TABLE tasks ADD COLUMN pipeline TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN stage_index INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN high_water INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN priority_rank INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;
ALTER TABLE tasks ADD COLUMN total_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_token INTEGER;
ALTER TABLE tasks ADD COLUMN last_fingerprint TEXT;
ALTER TABLE tasks ADD COLUMN fingerprint_streak INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN depends_on TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN requires TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN budget_tokens INTEGER;
ALTER TABLE tasks ADD COLUMN budget_cost_micros INTEGER;
ALTER TABLE tasks ADD COLUMN budget_steps INTEGER;
ALTER TABLE tasks ADD COLUMN budget_wall_ms INTEGER;
ALTER TABLE tasks ADD COLUMN used_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN used_cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN used_steps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN used_wall_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN finished_at INTEGER;
ALTER TABLE tasks ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;

-- Tasks created before this migration: a one-stage pipeline, their
-- priority's rank, and finished ones finished at their last change.
UPDATE tasks SET
    pipeline = json_array(stage),
    priority_rank = CASE priority WHEN 'urgent' THEN 0 WHEN 'low' THEN 2 ELSE 1 END,
    next_attempt_at = created_at,
    finished_at = CASE WHEN state IN ('done', 'cancelled', 'dead') THEN updated_at END;

-- Partial indexes, so that they hold only the tasks the scheduler looks
-- for and finished tasks cost them nothing. The claim query: queued tasks
-- of a workspace in claim order.
CREATE INDEX tasks_claim ON tasks (workspace, priority_rank, created_at, id)
    WHERE state = 'queued';
-- Leases by expiry: expired ones (the sweeper) and held ones (the global
-- cap) ...
CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE state = 'running';
-- ... and the same per workspace (takeovers, workspace and stage caps).
CREATE INDEX tasks_workspace_lease ON tasks (workspace, lease_expires_at)
    WHERE state = 'running';

-- Dependencies (SPEC TS-3): `task_id` waits until `depends_on` is done.
CREATE TABLE task_deps (
    task_id    TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX task_deps_reverse ON task_deps (depends_on, task_id);

-- One row per claim of a stage (SPEC TS-2). The id is the fencing token:
-- AUTOINCREMENT never reuses one, even after the newest row is deleted.
-- `outcome` is NULL while the lease is held, then `completed`, `failed`,
-- `expired` or `cancelled`.
CREATE TABLE stage_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    stage       TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    worker_id   TEXT NOT NULL,
    claimed_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT,
    error       TEXT,
    fingerprint TEXT,
    output      TEXT
);
CREATE INDEX stage_runs_task ON stage_runs (task_id, id);
CREATE INDEX stage_runs_ended ON stage_runs (workspace, ended_at);

-- What happened to each task, in order (SPEC OB-3).
CREATE TABLE task_events (
    task_id   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    workspace TEXT NOT NULL,
    kind      TEXT NOT NULL,
    data      TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- Workers and their heartbeats (SPEC TS-2, TS-8).
CREATE TABLE workers (
    workspace         TEXT NOT NULL,
    id                TEXT NOT NULL,
    first_seen_at     INTEGER NOT NULL,
    last_heartbeat_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, id)
);
CREATE INDEX workers_heartbeat ON workers (workspace, last_heartbeat_at);

-- Per-workspace mode, pipeline, limits and hourly budgets (SPEC TS-1, TS-3,
-- TS-5, TS-7). `pipeline` is a JSON array or NULL, `limits` a JSON object.
CREATE TABLE workspace_settings (
    workspace          TEXT NOT NULL PRIMARY KEY,
    mode               TEXT NOT NULL,
    mode_reason        TEXT,
    pipeline           TEXT,
    limits             TEXT NOT NULL,
    hourly_tokens      INTEGER,
    hourly_cost_micros INTEGER,
    actor              TEXT NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- Usage per workspace and hour (`hour` = ms since the epoch / 3_600_000)
-- (SPEC TS-5, GW-5).
CREATE TABLE usage_hourly (
    workspace   TEXT NOT NULL,
    hour        INTEGER NOT NULL,
    tokens      INTEGER NOT NULL DEFAULT 0,
    cost_micros INTEGER NOT NULL DEFAULT 0,
    steps       INTEGER NOT NULL DEFAULT 0,
    wall_ms     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace, hour)
);

-- Alerts (SPEC AL-3). At most one unresolved alert per dedup key: raising
-- it again is an upsert on `alerts_unresolved`.
CREATE TABLE alerts (
    id          TEXT NOT NULL PRIMARY KEY,
    dedup_key   TEXT NOT NULL,
    workspace   TEXT,
    rule        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    status      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    first_at    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    resolved_at INTEGER,
    acked_by    TEXT,
    acked_at    INTEGER
);
CREATE UNIQUE INDEX alerts_unresolved ON alerts (dedup_key)
    WHERE status IN ('open', 'acknowledged');
CREATE INDEX alerts_workspace ON alerts (workspace, id);

-- Agent checkpoints, versioned per agent (SPEC TS-9).
CREATE TABLE checkpoints (
    workspace  TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    version    INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, agent_id, version)
);

-- Circuit breakers, shared by every host (SPEC RL-1).
CREATE TABLE breakers (
    name       TEXT NOT NULL PRIMARY KEY,
    state      TEXT NOT NULL,
    failures   INTEGER NOT NULL,
    reason     TEXT,
    opened_at  INTEGER,
    retry_at   INTEGER,
    updated_at INTEGER NOT NULL
);
