//! Sample rows for the views' tests: one of each object, with nulls and
//! values both, so that a test of a view sees every field's spelling.

use serde_json::json;
use warden_store::actions::ActionRow;
use warden_store::alerts::AlertRow;
use warden_store::breakers::BreakerRow;
use warden_store::runs::RunRow;
use warden_store::stages::{Claimed, StageRunRow};
use warden_store::tasks::{TaskBudget, TaskRow, TaskUsage};

/// 2026-01-02T03:04:05.678Z.
pub const AT: i64 = 1_767_323_045_678;

/// 2100-01-01T00:00:00.000Z: a retry time still ahead whenever the tests run.
pub const FAR: i64 = 4_102_444_800_000;

/// A running task: lease set, some budgets, a plan delta.
pub fn running_task() -> TaskRow {
    TaskRow {
        id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string(),
        workspace: "acme".to_string(),
        title: "Fix the \"login\" bug".to_string(),
        body: "steps:\n1. reproduce".to_string(),
        stage: "implement".to_string(),
        state: warden_store::tasks::TaskState::Running,
        priority: "urgent".to_string(),
        attempts: 2,
        last_error: Some("tests failed".to_string()),
        dedup_key: Some("login-bug".to_string()),
        lease_owner: Some("worker-1".to_string()),
        lease_expires_at: Some(AT + 30_000),
        created_at: AT - 60_000,
        updated_at: AT,
        last_event_at: AT - 1,
        pipeline: vec![
            "plan".to_string(),
            "implement".to_string(),
            "review".to_string(),
        ],
        stage_index: 1,
        high_water: 1,
        priority_rank: 0,
        max_attempts: 3,
        total_attempts: 4,
        next_attempt_at: 0,
        lease_token: Some(42),
        last_fingerprint: Some("f00d".to_string()),
        fingerprint_streak: 1,
        depends_on: vec!["0190a1b2-0000-7000-8000-000000000001".to_string()],
        requires: vec!["provider:openai".to_string()],
        budget: TaskBudget {
            tokens: Some(100_000),
            cost_micros: Some(1_500_000),
            steps: None,
            wall_ms: Some(600_000),
        },
        used: TaskUsage {
            tokens: 1234,
            cost_micros: 250_001,
            steps: 7,
            wall_ms: 0,
        },
        finished_at: None,
        gate_rejections: 1,
        plan_delta: Some(json!({ "reasons": [{ "category": "tests", "message": "2 failed" }] })),
    }
}

/// A queued task waiting for its retry backoff: no lease, no budgets,
/// nothing used, nulls where the running one has values.
pub fn queued_task() -> TaskRow {
    TaskRow {
        id: "0190a1b2-c3d4-7e5f-8a9b-000000000002".to_string(),
        workspace: "default".to_string(),
        title: "Write docs".to_string(),
        body: String::new(),
        stage: "plan".to_string(),
        state: warden_store::tasks::TaskState::Queued,
        priority: "normal".to_string(),
        attempts: 1,
        last_error: None,
        dedup_key: None,
        lease_owner: None,
        lease_expires_at: None,
        created_at: AT,
        updated_at: AT,
        last_event_at: AT,
        pipeline: vec!["plan".to_string()],
        stage_index: 0,
        high_water: 0,
        priority_rank: 1,
        max_attempts: 5,
        total_attempts: 1,
        next_attempt_at: FAR,
        lease_token: None,
        last_fingerprint: None,
        fingerprint_streak: 0,
        depends_on: Vec::new(),
        requires: Vec::new(),
        budget: TaskBudget::default(),
        used: TaskUsage::default(),
        finished_at: Some(AT + 5),
        gate_rejections: 0,
        plan_delta: None,
    }
}

/// An ended stage run with an output, and one still held.
pub fn stage_runs() -> Vec<StageRunRow> {
    vec![
        StageRunRow {
            id: 41,
            task_id: running_task().id,
            workspace: "acme".to_string(),
            stage: "plan".to_string(),
            attempt: 1,
            worker_id: "worker-1".to_string(),
            claimed_at: AT - 50_000,
            expires_at: AT - 20_000,
            ended_at: Some(AT - 40_000),
            outcome: Some("completed".to_string()),
            error: None,
            fingerprint: None,
            output: Some(json!({ "plan": ["a", "b"] })),
        },
        StageRunRow {
            id: 42,
            task_id: running_task().id,
            workspace: "acme".to_string(),
            stage: "implement".to_string(),
            attempt: 2,
            worker_id: "worker-1".to_string(),
            claimed_at: AT - 10_000,
            expires_at: AT + 30_000,
            ended_at: None,
            outcome: None,
            error: Some("previous: tests failed".to_string()),
            fingerprint: Some("f00d".to_string()),
            output: None,
        },
    ]
}

/// A claim that took over an expired lease.
pub fn claimed() -> Claimed {
    let mut runs = stage_runs();
    Claimed {
        task: running_task(),
        run: runs.remove(1),
        took_over: Some(40),
    }
}

/// A finished apply run with a report and usage.
pub fn run() -> RunRow {
    RunRow {
        id: "0190a1b2-aaaa-7bbb-8ccc-000000000003".to_string(),
        workspace: "acme".to_string(),
        plugin: "stuck-tasks".to_string(),
        version: "1.2.0".to_string(),
        digest: "sha256:abcd".to_string(),
        mode: warden_store::runs::RunMode::Apply,
        status: warden_store::runs::RunStatus::Succeeded,
        input: json!({ "older_than": "1h" }),
        report: Some(json!({ "summary": "2 requeued", "findings": [] })),
        error: None,
        error_code: None,
        usage: Some(json!({ "wall_ms": 12, "fuel": 3400, "steps": 2 })),
        limits: Some(json!({ "steps": 100 })),
        actor: "admin".to_string(),
        trigger: "http".to_string(),
        idempotency_key: Some("k-1".to_string()),
        plan_run_id: Some("0190a1b2-aaaa-7bbb-8ccc-000000000001".to_string()),
        retry_of: None,
        created_at: AT,
        started_at: Some(AT + 1),
        finished_at: None,
    }
}

/// Actions of [`run`], one of each status.
pub fn actions() -> Vec<ActionRow> {
    ["applied", "planned", "denied", "over_budget", "failed"]
        .iter()
        .enumerate()
        .map(|(i, status)| ActionRow {
            run_id: run().id,
            seq: i as i64 + 1,
            workspace: "acme".to_string(),
            plugin: "stuck-tasks".to_string(),
            digest: "sha256:abcd".to_string(),
            actor: "admin".to_string(),
            call: "tasks.requeue".to_string(),
            target: (i % 2 == 0).then(|| format!("task-{i}")),
            args: json!({ "id": i }),
            status: status.to_string(),
            before: (i == 0).then(|| json!({ "state": "running" })),
            after: (i == 0).then(|| json!({ "state": "queued" })),
            detail: (i == 4).then(|| "no such task".to_string()),
            at: AT + i as i64,
        })
        .collect()
}

/// An acknowledged alert of a workspace.
pub fn alert() -> AlertRow {
    AlertRow {
        id: "0190a1b2-bbbb-7ccc-8ddd-000000000004".to_string(),
        dedup_key: "budget_80:acme".to_string(),
        workspace: Some("acme".to_string()),
        rule: "budget_80".to_string(),
        severity: "warning".to_string(),
        status: "acknowledged".to_string(),
        summary: "80% of the hourly budget".to_string(),
        detail: json!({ "used_pct": 81.5 }),
        first_at: AT - 5,
        last_at: AT,
        count: 3,
        resolved_at: None,
        acked_by: Some("admin".to_string()),
        acked_at: Some(AT + 2),
        notified_at: Some(AT - 4),
        resolve_notified: false,
        silenced_by: None,
    }
}

/// A host alert (no workspace), resolved and notified.
pub fn host_alert() -> AlertRow {
    AlertRow {
        workspace: None,
        status: "resolved".to_string(),
        resolved_at: Some(AT + 9),
        acked_by: None,
        acked_at: None,
        notified_at: None,
        resolve_notified: true,
        silenced_by: Some("0190a1b2-cccc-7ddd-8eee-000000000005".to_string()),
        detail: json!(null),
        ..alert()
    }
}

/// An open breaker, and a closed one never changed.
pub fn breakers() -> Vec<BreakerRow> {
    vec![
        BreakerRow {
            name: "provider:openai".to_string(),
            state: "open".to_string(),
            failures: 5,
            reason: Some("5 failures in a row".to_string()),
            opened_at: Some(AT),
            retry_at: Some(AT + 30_000),
            updated_at: AT,
        },
        BreakerRow {
            name: "gate:acme:lint".to_string(),
            state: "closed".to_string(),
            failures: 0,
            reason: None,
            opened_at: None,
            retry_at: None,
            updated_at: 0,
        },
    ]
}
