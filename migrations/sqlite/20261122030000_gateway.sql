-- The model gateway (SPEC GW-1..GW-5), SQLite dialect. The PostgreSQL twin
-- is migrations/postgres/20261122030000_gateway.sql and must stay equivalent.
-- Same conventions as the initial schema.

-- One row per model call that reached routing: who made it (workspace,
-- task, stage, mode), which policy version decided (`policy_digest`), which
-- provider and model served it after how many attempts, and the upstream's
-- usage with its cost. `status` is `ok` or `failed` (every candidate failed,
-- or the stream broke); `error` says why. Costs are micro-dollars.
CREATE TABLE gateway_calls (
    id                TEXT NOT NULL PRIMARY KEY,
    workspace         TEXT NOT NULL,
    task_id           TEXT,
    stage             TEXT,
    mode              TEXT NOT NULL,
    requested_model   TEXT NOT NULL,
    provider          TEXT,
    model             TEXT,
    policy            TEXT NOT NULL,
    policy_version    TEXT NOT NULL,
    policy_digest     TEXT NOT NULL,
    route_reason      TEXT NOT NULL,
    stream            INTEGER NOT NULL,
    status            TEXT NOT NULL,
    http_status       INTEGER NOT NULL,
    attempts          INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_micros       INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    error             TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX gateway_calls_workspace ON gateway_calls (workspace, created_at);
CREATE INDEX gateway_calls_task ON gateway_calls (workspace, task_id, stage);
