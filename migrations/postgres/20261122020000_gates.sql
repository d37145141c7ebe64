-- Quality gates (SPEC QG-1..QG-4), PostgreSQL dialect. The SQLite twin is
-- migrations/sqlite/20261122020000_gates.sql and must stay equivalent.
-- Same conventions as the initial schema (BIGINT, TEXT; COLLATE "C" on ids
-- and names that are compared or ordered).

-- A task sent back by a gate: how many times in a row without progress
-- (the loop guard counts them), and the reasons, as the delta its next plan
-- must address (JSON, NULL when none).
ALTER TABLE tasks ADD COLUMN gate_rejections BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN plan_delta TEXT;

-- Gate bindings set over the API, per workspace and stage: they replace
-- warden.toml's binding of that stage. `binding` is a JSON object
-- (gates, quorum, reject_to, on_error, relax).
CREATE TABLE gate_bindings (
    workspace  TEXT COLLATE "C" NOT NULL,
    stage      TEXT COLLATE "C" NOT NULL,
    binding    TEXT NOT NULL,
    actor      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, stage)
);

-- One row per gated transition: the quorum's outcome (`approve`,
-- `reject` or `waiting`) over the verdicts below.
CREATE TABLE gate_decisions (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace   TEXT COLLATE "C" NOT NULL,
    task_id     TEXT COLLATE "C" NOT NULL,
    stage       TEXT COLLATE "C" NOT NULL,
    token       BIGINT NOT NULL,
    quorum      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    approvals   BIGINT NOT NULL,
    rejections  BIGINT NOT NULL,
    escalations BIGINT NOT NULL,
    summary     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX gate_decisions_task ON gate_decisions (task_id, created_at);
CREATE INDEX gate_decisions_workspace ON gate_decisions (workspace, created_at);

-- One row per gate's verdict. `error` is set when the gate failed (trap,
-- timeout, limit) and its configured decision stood in for a verdict;
-- `relaxed` is 1 when its breaker's relaxed config applied.
CREATE TABLE gate_verdicts (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    decision_id TEXT COLLATE "C" NOT NULL,
    workspace   TEXT COLLATE "C" NOT NULL,
    task_id     TEXT COLLATE "C" NOT NULL,
    stage       TEXT COLLATE "C" NOT NULL,
    gate        TEXT COLLATE "C" NOT NULL,
    version     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    decision    TEXT NOT NULL,
    score       BIGINT NOT NULL,
    error       TEXT,
    relaxed     BIGINT NOT NULL,
    wall_ms     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX gate_verdicts_decision ON gate_verdicts (decision_id);
CREATE INDEX gate_verdicts_gate ON gate_verdicts (workspace, gate, created_at);

-- The categorized reasons of each verdict, in order.
CREATE TABLE gate_reasons (
    verdict_id TEXT COLLATE "C" NOT NULL,
    seq        BIGINT NOT NULL,
    workspace  TEXT COLLATE "C" NOT NULL,
    gate       TEXT COLLATE "C" NOT NULL,
    decision   TEXT NOT NULL,
    category   TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (verdict_id, seq)
);
CREATE INDEX gate_reasons_gate ON gate_reasons (workspace, gate, created_at);
