-- The model gateway (SPEC GW-1..GW-5), PostgreSQL dialect. The SQLite twin
-- is migrations/sqlite/20261122030000_gateway.sql and must stay equivalent.
-- Same conventions as the initial schema (BIGINT, TEXT; COLLATE "C" on ids
-- and names that are compared or ordered).

-- One row per model call that reached routing: who made it (workspace,
-- task, stage, mode), which policy version decided (`policy_digest`), which
-- provider and model served it after how many attempts, and the upstream's
-- usage with its cost. `status` is `ok` or `failed` (every candidate failed,
-- or the stream broke); `error` says why. Costs are micro-dollars.
CREATE TABLE gateway_calls (
    id                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace         TEXT COLLATE "C" NOT NULL,
    task_id           TEXT COLLATE "C",
    stage             TEXT COLLATE "C",
    mode              TEXT NOT NULL,
    requested_model   TEXT NOT NULL,
    provider          TEXT COLLATE "C",
    model             TEXT COLLATE "C",
    policy            TEXT NOT NULL,
    policy_version    TEXT NOT NULL,
    policy_digest     TEXT NOT NULL,
    route_reason      TEXT NOT NULL,
    stream            BIGINT NOT NULL,
    status            TEXT NOT NULL,
    http_status       BIGINT NOT NULL,
    attempts          BIGINT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_micros       BIGINT NOT NULL,
    latency_ms        BIGINT NOT NULL,
    error             TEXT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX gateway_calls_workspace ON gateway_calls (workspace, created_at);
CREATE INDEX gateway_calls_task ON gateway_calls (workspace, task_id, stage);
