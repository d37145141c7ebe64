//! Sample rows for the views' tests: one of each object, with nulls and
//! values both, so that a test of a view sees every field's spelling.

use serde_json::json;
use warden_core::dashboard::Snapshot;
use warden_core::gates::{Binding, OnError, Quorum};
use warden_core::processes::{ProcessState, ProcessStatus};
use warden_core::scheduler::Idle;
use warden_store::actions::ActionRow;
use warden_store::alerts::AlertRow;
use warden_store::audit::AuditRow;
use warden_store::breakers::BreakerRow;
use warden_store::gates::{DecisionRow, GateStats, ReasonCount, ReasonRow, VerdictRow};
use warden_store::gateway::{GatewayCallRow, UsageGroup};
use warden_store::grants::GrantRow;
use warden_store::notifications::{NotificationRow, SilenceRow};
use warden_store::pins::PinRow;
use warden_store::runs::RunRow;
use warden_store::settings::SettingsRow;
use warden_store::stages::{Claimed, StageRunRow};
use warden_store::task_events::TaskEventRow;
use warden_store::tasks::{TaskBudget, TaskRow, TaskUsage};
use warden_store::tokens::TokenRow;
use warden_store::workers::WorkerRow;

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

/// A token used and revoked, and one never used.
pub fn tokens() -> Vec<TokenRow> {
    vec![
        TokenRow {
            id: "0190a1b2-dddd-7eee-8fff-000000000006".to_string(),
            name: "ci \"runner\"".to_string(),
            workspace: "acme".to_string(),
            role: "agent".to_string(),
            hash: "not shown".to_string(),
            created_at: AT - 60_000,
            last_used_at: Some(AT - 1),
            revoked_at: Some(AT),
        },
        TokenRow {
            id: "0190a1b2-dddd-7eee-8fff-000000000007".to_string(),
            name: "cli".to_string(),
            workspace: "acme".to_string(),
            role: "viewer".to_string(),
            hash: "not shown either".to_string(),
            created_at: AT,
            last_used_at: None,
            revoked_at: None,
        },
    ]
}

/// Audit entries, with details and without.
pub fn audit() -> Vec<AuditRow> {
    vec![
        AuditRow {
            id: 17,
            at: AT,
            actor: "admin".to_string(),
            workspace: Some("acme".to_string()),
            action: "pin.set".to_string(),
            target: "stuck-tasks".to_string(),
            detail: json!({ "selector": "^1.2", "digest": "sha256:abcd" }),
        },
        AuditRow {
            id: 18,
            at: AT + 1,
            actor: "bootstrap-admin".to_string(),
            workspace: None,
            action: "grant.delete".to_string(),
            target: "stuck-tasks".to_string(),
            detail: json!({}),
        },
    ]
}

/// A pin set over the API.
pub fn pin() -> PinRow {
    PinRow {
        workspace: "acme".to_string(),
        plugin: "stuck-tasks".to_string(),
        selector: "^1.2".to_string(),
        canary: Some("1.3.0".to_string()),
        canary_percent: 10,
        actor: "ops".to_string(),
        updated_at: AT,
    }
}

/// A grant of two capabilities, and one of none.
pub fn grants() -> Vec<GrantRow> {
    vec![
        GrantRow {
            workspace: "acme".to_string(),
            plugin: "stuck-tasks".to_string(),
            capabilities: vec!["tasks:read".to_string(), "tasks:write".to_string()],
            actor: "admin".to_string(),
            updated_at: AT,
        },
        GrantRow {
            workspace: "acme".to_string(),
            plugin: "lint".to_string(),
            capabilities: Vec::new(),
            actor: "admin".to_string(),
            updated_at: AT + 1,
        },
    ]
}

/// A silence of one workspace's rule still in force at [`AT`], and a
/// host-wide one of a dedup-key prefix that ended.
pub fn silences() -> Vec<SilenceRow> {
    vec![
        SilenceRow {
            id: "0190a1b2-eeee-7fff-8aaa-000000000008".to_string(),
            workspace: Some("acme".to_string()),
            rule: Some("budget_80".to_string()),
            severity: Some("warning".to_string()),
            dedup_key: None,
            comment: "known: the \"big\" migration".to_string(),
            created_by: "admin".to_string(),
            created_at: AT - 60_000,
            ends_at: AT + 7_200_000,
        },
        SilenceRow {
            id: "0190a1b2-eeee-7fff-8aaa-000000000009".to_string(),
            workspace: None,
            rule: None,
            severity: None,
            dedup_key: Some("breaker:*".to_string()),
            comment: String::new(),
            created_by: "bootstrap-admin".to_string(),
            created_at: AT - 120_000,
            ends_at: AT,
        },
    ]
}

/// A notification delivered, and one failing.
pub fn notifications() -> Vec<NotificationRow> {
    vec![
        NotificationRow {
            id: "0190a1b2-ffff-7aaa-8bbb-00000000000a".to_string(),
            sink: "ops-webhook".to_string(),
            kind: "trigger".to_string(),
            severity: "warning".to_string(),
            dedup_key: "budget_80:acme".to_string(),
            alert_ids: vec!["0190a1b2-bbbb-7ccc-8ddd-000000000004".to_string()],
            payload: json!({ "text": "80% of the hourly budget", "count": 3 }),
            status: "delivered".to_string(),
            attempts: 1,
            next_at: AT,
            created_at: AT - 5,
            delivered_at: Some(AT + 2),
            last_error: None,
        },
        NotificationRow {
            id: "0190a1b2-ffff-7aaa-8bbb-00000000000b".to_string(),
            sink: "pager".to_string(),
            kind: "resolve".to_string(),
            severity: "critical".to_string(),
            dedup_key: "breaker:provider:openai".to_string(),
            alert_ids: Vec::new(),
            payload: json!(null),
            status: "pending".to_string(),
            attempts: 3,
            next_at: AT + 30_000,
            created_at: AT,
            delivered_at: None,
            last_error: Some("HTTP 502".to_string()),
        },
    ]
}

/// A worker holding two leases, and one idle.
pub fn workers() -> Vec<WorkerRow> {
    vec![
        WorkerRow {
            workspace: "acme".to_string(),
            id: "worker-1".to_string(),
            first_seen_at: AT - 3_600_000,
            last_heartbeat_at: AT,
            active_leases: 2,
        },
        WorkerRow {
            workspace: "acme".to_string(),
            id: "worker-\"2\"".to_string(),
            first_seen_at: AT - 1,
            last_heartbeat_at: AT - 1,
            active_leases: 0,
        },
    ]
}

/// Settings changed over the API, and the defaults never changed.
pub fn settings() -> Vec<SettingsRow> {
    vec![
        SettingsRow {
            workspace: "acme".to_string(),
            mode: warden_store::settings::WorkspaceMode::ReadOnly,
            mode_reason: Some("breaker \"provider:openai\" open".to_string()),
            pipeline: Some(vec!["plan".to_string(), "implement".to_string()]),
            limits: json!({ "lease_ms": 30000, "max_running": 4 }),
            hourly_tokens: Some(1_000_000),
            hourly_cost_micros: Some(2_500_000),
            actor: "ops".to_string(),
            updated_at: AT,
        },
        SettingsRow {
            workspace: "default".to_string(),
            mode: warden_store::settings::WorkspaceMode::Normal,
            mode_reason: None,
            pipeline: None,
            limits: json!({}),
            hourly_tokens: None,
            hourly_cost_micros: None,
            actor: "system".to_string(),
            updated_at: 0,
        },
    ]
}

/// A binding by quorum with relaxed config, and one with the defaults.
pub fn bindings() -> Vec<(String, Binding, &'static str)> {
    let relax = [(
        "lint".to_string(),
        [("max_warnings".to_string(), json!(50))]
            .into_iter()
            .collect(),
    )]
    .into_iter()
    .collect();
    vec![
        (
            "review".to_string(),
            Binding {
                gates: vec!["lint".to_string(), "tests".to_string(), "size".to_string()],
                quorum: Quorum::KOfN { k: 2, n: 3 },
                reject_to: "implement".to_string(),
                on_error: OnError::Reject,
                relax,
                relax_minutes: 15,
            },
            "api",
        ),
        (
            "implement".to_string(),
            Binding {
                gates: vec!["lint".to_string()],
                quorum: Quorum::All,
                reject_to: "plan".to_string(),
                on_error: OnError::Escalate,
                relax: Default::default(),
                relax_minutes: 30,
            },
            "config",
        ),
    ]
}

/// A decision of two verdicts, one of them failed, and a decision of
/// none yet.
pub fn decisions() -> Vec<DecisionRow> {
    let decision = |id: &str, outcome: &str, token: i64| DecisionRow {
        id: id.to_string(),
        workspace: "acme".to_string(),
        task_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string(),
        stage: "review".to_string(),
        token,
        quorum: "2-of-3".to_string(),
        outcome: outcome.to_string(),
        approvals: 1,
        rejections: 1,
        escalations: 0,
        summary: "lint: \"too long\"".to_string(),
        created_at: AT + token,
    };
    vec![
        decision("0190a1b2-abab-7cdc-8efe-00000000000c", "reject", 42),
        decision("0190a1b2-abab-7cdc-8efe-00000000000d", "pending", 43),
    ]
}

/// The verdicts of the first of [`decisions`].
pub fn verdicts() -> Vec<VerdictRow> {
    let verdict = |id: &str, gate: &str| VerdictRow {
        id: id.to_string(),
        decision_id: "0190a1b2-abab-7cdc-8efe-00000000000c".to_string(),
        workspace: "acme".to_string(),
        task_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string(),
        stage: "review".to_string(),
        gate: gate.to_string(),
        version: "0.3.1".to_string(),
        digest: "sha256:beef".to_string(),
        decision: "approve".to_string(),
        score: 87,
        error: None,
        relaxed: false,
        wall_ms: 12,
        created_at: AT,
        reasons: Vec::new(),
    };
    vec![
        verdict("0190a1b2-acac-7ded-8fef-00000000000e", "tests"),
        VerdictRow {
            decision: "reject".to_string(),
            score: -1,
            error: Some("trap: \"unreachable\"".to_string()),
            relaxed: true,
            reasons: vec![
                ReasonRow {
                    category: "size".to_string(),
                    message: "diff too long".to_string(),
                },
                ReasonRow {
                    category: "quality".to_string(),
                    message: "line 3: \"todo\"".to_string(),
                },
            ],
            ..verdict("0190a1b2-acac-7ded-8fef-00000000000f", "lint")
        },
    ]
}

/// Events of a task: a status change and a log line.
pub fn task_events() -> Vec<TaskEventRow> {
    vec![
        TaskEventRow {
            task_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string(),
            workspace: "acme".to_string(),
            seq: 1,
            kind: "status".to_string(),
            data: json!({ "state": "running", "stage": "implement" }),
            at: AT,
        },
        TaskEventRow {
            task_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string(),
            workspace: "acme".to_string(),
            seq: 2,
            kind: "log".to_string(),
            data: json!("compiling \"core\""),
            at: AT + 1,
        },
    ]
}

/// A busy workspace's snapshot, and an empty one that is not idle.
pub fn snapshots() -> Vec<Snapshot> {
    let busy = Snapshot {
        workspace: "acme".to_string(),
        now: AT,
        since: AT - 86_400_000,
        settings: settings()[0].clone(),
        tasks_by_state: vec![("queued".to_string(), 3), ("running".to_string(), 1)],
        running: vec![running_task()],
        workers: workers(),
        idle: Some(Idle {
            reason: "budget_spent",
            message: "the hourly \"tokens\" budget is spent".to_string(),
        }),
        alerts: vec![alert()],
        breakers: breakers(),
        usage_this_hour: (1234, 2_500_001),
        recent_tasks: vec![running_task(), queued_task()],
        loops: vec![queued_task()],
        gates: vec![GateStats {
            gate: "lint".to_string(),
            total: 4,
            approvals: 3,
            rejections: 1,
            escalations: 0,
            errors: 0,
            mean_score: 72.5,
        }],
        gates_by_stage: Vec::new(),
        usage_by_provider: Vec::new(),
        usage_by_stage: Vec::new(),
        stage_durations: Vec::new(),
        top_errors: Vec::new(),
        runs: vec![run()],
    };
    let empty = Snapshot {
        workspace: "default".to_string(),
        settings: settings()[1].clone(),
        tasks_by_state: Vec::new(),
        running: Vec::new(),
        workers: Vec::new(),
        idle: None,
        alerts: Vec::new(),
        breakers: Vec::new(),
        usage_this_hour: (0, 0),
        recent_tasks: Vec::new(),
        loops: Vec::new(),
        gates: Vec::new(),
        runs: Vec::new(),
        ..busy.clone()
    };
    vec![busy, empty]
}

/// A process backing off after an exit, and one running.
pub fn processes() -> Vec<ProcessStatus> {
    vec![
        ProcessStatus {
            name: "agent-\"a\"".to_string(),
            state: ProcessState::BackingOff,
            pid: None,
            restarts: 4,
            failed_restarts: 2,
            last_exit: Some("exited with exit status: 3".to_string()),
            since: AT - 5_000,
            next_restart_at: Some(AT + 2_000),
            breaker: "open",
        },
        ProcessStatus {
            name: "indexer".to_string(),
            state: ProcessState::Running,
            pid: Some(4242),
            restarts: 0,
            failed_restarts: 0,
            last_exit: None,
            since: AT,
            next_restart_at: None,
            breaker: "closed",
        },
    ]
}

/// A routed call that succeeded, and one that failed before any provider.
pub fn gateway_calls() -> Vec<GatewayCallRow> {
    vec![
        GatewayCallRow {
            id: "0190a1b2-adad-7eae-8faf-000000000010".to_string(),
            workspace: "acme".to_string(),
            task_id: Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string()),
            stage: Some("implement".to_string()),
            mode: "apply".to_string(),
            requested_model: "auto".to_string(),
            provider: Some("openai".to_string()),
            model: Some("gpt-4o-mini".to_string()),
            policy: "cheapest".to_string(),
            policy_version: "1.0.0".to_string(),
            policy_digest: "sha256:cafe".to_string(),
            route_reason: "the \"cheapest\" model".to_string(),
            stream: true,
            status: "ok".to_string(),
            http_status: 200,
            attempts: 1,
            prompt_tokens: 1200,
            completion_tokens: 340,
            cost_micros: 1_234,
            latency_ms: 850,
            error: None,
            created_at: AT,
        },
        GatewayCallRow {
            id: "0190a1b2-adad-7eae-8faf-000000000011".to_string(),
            workspace: "acme".to_string(),
            task_id: None,
            stage: None,
            mode: "plan".to_string(),
            requested_model: "gpt-5".to_string(),
            provider: None,
            model: None,
            policy: "default".to_string(),
            policy_version: String::new(),
            policy_digest: String::new(),
            route_reason: String::new(),
            stream: false,
            status: "error".to_string(),
            http_status: 404,
            attempts: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_micros: 0,
            latency_ms: 3,
            error: Some("no provider serves \"gpt-5\"".to_string()),
            created_at: AT + 1,
        },
    ]
}

/// Usage by provider and task: a group with a task, one without.
pub fn usage_groups() -> Vec<UsageGroup> {
    vec![
        UsageGroup {
            key: vec![
                Some("openai".to_string()),
                Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string()),
            ],
            calls: 12,
            failed: 1,
            prompt_tokens: 12_000,
            completion_tokens: 3_400,
            cost_micros: 12_345,
        },
        UsageGroup {
            key: vec![Some("anthropic".to_string()), None],
            calls: 2,
            failed: 0,
            prompt_tokens: 100,
            completion_tokens: 30,
            cost_micros: 7,
        },
    ]
}

/// Verdict counts of two gates in a window: one with verdicts, one with
/// none.
pub fn gate_stats() -> Vec<GateStats> {
    vec![
        GateStats {
            gate: "lint".to_string(),
            total: 3,
            approvals: 2,
            rejections: 1,
            escalations: 0,
            errors: 1,
            mean_score: 66.666_666_666_666_67,
        },
        GateStats {
            gate: "tests".to_string(),
            total: 0,
            approvals: 0,
            rejections: 0,
            escalations: 0,
            errors: 0,
            mean_score: 0.0,
        },
    ]
}

/// The most given rejection reasons.
pub fn top_reasons() -> Vec<ReasonCount> {
    vec![ReasonCount {
        gate: "lint".to_string(),
        category: "size".to_string(),
        message: "diff \"too\" long".to_string(),
        count: 4,
    }]
}

/// Two providers: one whose breaker is open, one never failed.
pub fn providers() -> Vec<warden_core::gateway::ProviderStatus> {
    vec![
        warden_core::gateway::ProviderStatus {
            name: "openai".to_string(),
            base_url: "https://api.openai.com/v1".to_string(),
            models: vec!["gpt-4o".to_string(), "gpt-4o-mini".to_string()],
            price_input_per_1k: 0.5,
            price_output_per_1k: 2.0,
            max_context: 128_000,
            breaker: "open",
            failures: 5,
            retry_at: Some(AT + 30_000),
        },
        warden_core::gateway::ProviderStatus {
            name: "local".to_string(),
            base_url: "http://127.0.0.1:9000".to_string(),
            models: Vec::new(),
            price_input_per_1k: 0.0,
            price_output_per_1k: 0.0,
            max_context: 8192,
            breaker: "closed",
            failures: 0,
            retry_at: None,
        },
    ]
}
