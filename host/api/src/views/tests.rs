//! Each view answers exactly what the `json!` function it replaced did:
//! the expected strings are that function's output for the same sample
//! row, captured before it was deleted (same keys in the same order,
//! same nulls, same number formats), and each parses back into the view
//! as the `warden` command line reads it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::samples;
use super::*;

/// `view` as an answer's bytes, and read back as a client reads it.
fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(view: T, expected: &str) {
    let sent = serde_json::to_string(&to_json(&view).unwrap()).unwrap();
    assert_eq!(sent, expected);
    let back: T = serde_json::from_str(&sent).unwrap();
    assert_eq!(back, view);
}

#[test]
fn a_running_task_keeps_its_keys_and_values() {
    check(
        Task::at(&samples::running_task(), samples::AT),
        r#"{"attempts":2,"body":"steps:\n1. reproduce","budget":{"cost_usd":1.5,"steps":null,"tokens":100000,"wall_ms":600000},"created_at":"2026-01-02T03:03:05.678Z","dedup_key":"login-bug","depends_on":["0190a1b2-0000-7000-8000-000000000001"],"finished_at":null,"gate_rejections":1,"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","last_error":"tests failed","last_event_at":"2026-01-02T03:04:05.677Z","last_fingerprint":"f00d","lease":{"expires_at":"2026-01-02T03:04:35.678Z","token":42,"worker":"worker-1"},"max_attempts":3,"next_attempt_at":null,"pipeline":["plan","implement","review"],"plan_delta":{"reasons":[{"category":"tests","message":"2 failed"}]},"priority":"urgent","requires":["provider:openai"],"stage":"implement","state":"running","title":"Fix the \"login\" bug","total_attempts":4,"updated_at":"2026-01-02T03:04:05.678Z","used":{"cost_usd":0.250001,"steps":7,"tokens":1234,"wall_ms":0},"workspace":"acme"}"#,
    );
}

#[test]
fn a_queued_task_keeps_its_nulls_and_its_retry_time() {
    check(
        Task::at(&samples::queued_task(), samples::AT),
        r#"{"attempts":1,"body":"","budget":{"cost_usd":null,"steps":null,"tokens":null,"wall_ms":null},"created_at":"2026-01-02T03:04:05.678Z","dedup_key":null,"depends_on":[],"finished_at":"2026-01-02T03:04:05.683Z","gate_rejections":0,"id":"0190a1b2-c3d4-7e5f-8a9b-000000000002","last_error":null,"last_event_at":"2026-01-02T03:04:05.678Z","last_fingerprint":null,"lease":null,"max_attempts":5,"next_attempt_at":"2100-01-01T00:00:00.000Z","pipeline":["plan"],"plan_delta":null,"priority":"normal","requires":[],"stage":"plan","state":"queued","title":"Write docs","total_attempts":1,"updated_at":"2026-01-02T03:04:05.678Z","used":{"cost_usd":0.0,"steps":0,"tokens":0,"wall_ms":0},"workspace":"default"}"#,
    );
}

#[test]
fn a_task_with_its_stage_runs_is_one_flat_object() {
    check(
        TaskDetail {
            task: Task::at(&samples::running_task(), samples::AT),
            stage_runs: samples::stage_runs().iter().map(StageRun::from).collect(),
        },
        r#"{"attempts":2,"body":"steps:\n1. reproduce","budget":{"cost_usd":1.5,"steps":null,"tokens":100000,"wall_ms":600000},"created_at":"2026-01-02T03:03:05.678Z","dedup_key":"login-bug","depends_on":["0190a1b2-0000-7000-8000-000000000001"],"finished_at":null,"gate_rejections":1,"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","last_error":"tests failed","last_event_at":"2026-01-02T03:04:05.677Z","last_fingerprint":"f00d","lease":{"expires_at":"2026-01-02T03:04:35.678Z","token":42,"worker":"worker-1"},"max_attempts":3,"next_attempt_at":null,"pipeline":["plan","implement","review"],"plan_delta":{"reasons":[{"category":"tests","message":"2 failed"}]},"priority":"urgent","requires":["provider:openai"],"stage":"implement","stage_runs":[{"attempt":1,"claimed_at":"2026-01-02T03:03:15.678Z","ended_at":"2026-01-02T03:03:25.678Z","error":null,"expires_at":"2026-01-02T03:03:45.678Z","fingerprint":null,"outcome":"completed","output":{"plan":["a","b"]},"stage":"plan","token":41,"worker":"worker-1"},{"attempt":2,"claimed_at":"2026-01-02T03:03:55.678Z","ended_at":null,"error":"previous: tests failed","expires_at":"2026-01-02T03:04:35.678Z","fingerprint":"f00d","outcome":null,"output":null,"stage":"implement","token":42,"worker":"worker-1"}],"state":"running","title":"Fix the \"login\" bug","total_attempts":4,"updated_at":"2026-01-02T03:04:05.678Z","used":{"cost_usd":0.250001,"steps":7,"tokens":1234,"wall_ms":0},"workspace":"acme"}"#,
    );
}

#[test]
fn a_claim_carries_its_task() {
    check(
        Claim::from(&samples::claimed()),
        r#"{"attempt":2,"lease_expires_at":"2026-01-02T03:04:35.678Z","stage":"implement","task":{"attempts":2,"body":"steps:\n1. reproduce","budget":{"cost_usd":1.5,"steps":null,"tokens":100000,"wall_ms":600000},"created_at":"2026-01-02T03:03:05.678Z","dedup_key":"login-bug","depends_on":["0190a1b2-0000-7000-8000-000000000001"],"finished_at":null,"gate_rejections":1,"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","last_error":"tests failed","last_event_at":"2026-01-02T03:04:05.677Z","last_fingerprint":"f00d","lease":{"expires_at":"2026-01-02T03:04:35.678Z","token":42,"worker":"worker-1"},"max_attempts":3,"next_attempt_at":null,"pipeline":["plan","implement","review"],"plan_delta":{"reasons":[{"category":"tests","message":"2 failed"}]},"priority":"urgent","requires":["provider:openai"],"stage":"implement","state":"running","title":"Fix the \"login\" bug","total_attempts":4,"updated_at":"2026-01-02T03:04:05.678Z","used":{"cost_usd":0.250001,"steps":7,"tokens":1234,"wall_ms":0},"workspace":"acme"},"task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","token":42,"took_over":40}"#,
    );
}

#[test]
fn a_run_without_its_actions_has_no_actions_key() {
    check(
        Run::from(&samples::run()),
        r#"{"actor":"admin","created_at":"2026-01-02T03:04:05.678Z","digest":"sha256:abcd","error":null,"error_code":null,"finished_at":null,"id":"0190a1b2-aaaa-7bbb-8ccc-000000000003","idempotency_key":"k-1","input":{"older_than":"1h"},"limits":{"steps":100},"mode":"apply","plan_run_id":"0190a1b2-aaaa-7bbb-8ccc-000000000001","plugin":"stuck-tasks","report":{"findings":[],"summary":"2 requeued"},"retry_of":null,"started_at":"2026-01-02T03:04:05.679Z","status":"succeeded","trigger":"http","usage":{"fuel":3400,"steps":2,"wall_ms":12},"version":"1.2.0","workspace":"acme"}"#,
    );
}

#[test]
fn a_run_with_its_actions_splits_them() {
    check(
        Run::with_actions(&samples::run(), &samples::actions(), 7),
        r#"{"actions":{"applied":[{"actor":"admin","after":{"state":"queued"},"args":{"id":0},"at":"2026-01-02T03:04:05.678Z","before":{"state":"running"},"call":"tasks.requeue","detail":null,"digest":"sha256:abcd","seq":1,"status":"applied","target":"task-0"}],"planned":[{"actor":"admin","after":null,"args":{"id":1},"at":"2026-01-02T03:04:05.679Z","before":null,"call":"tasks.requeue","detail":null,"digest":"sha256:abcd","seq":2,"status":"planned","target":null}],"refused":[{"actor":"admin","after":null,"args":{"id":2},"at":"2026-01-02T03:04:05.680Z","before":null,"call":"tasks.requeue","detail":null,"digest":"sha256:abcd","seq":3,"status":"denied","target":"task-2"},{"actor":"admin","after":null,"args":{"id":3},"at":"2026-01-02T03:04:05.681Z","before":null,"call":"tasks.requeue","detail":null,"digest":"sha256:abcd","seq":4,"status":"over_budget","target":null},{"actor":"admin","after":null,"args":{"id":4},"at":"2026-01-02T03:04:05.682Z","before":null,"call":"tasks.requeue","detail":"no such task","digest":"sha256:abcd","seq":5,"status":"failed","target":"task-4"}],"total":7,"truncated":true},"actor":"admin","created_at":"2026-01-02T03:04:05.678Z","digest":"sha256:abcd","error":null,"error_code":null,"finished_at":null,"id":"0190a1b2-aaaa-7bbb-8ccc-000000000003","idempotency_key":"k-1","input":{"older_than":"1h"},"limits":{"steps":100},"mode":"apply","plan_run_id":"0190a1b2-aaaa-7bbb-8ccc-000000000001","plugin":"stuck-tasks","report":{"findings":[],"summary":"2 requeued"},"retry_of":null,"started_at":"2026-01-02T03:04:05.679Z","status":"succeeded","trigger":"http","usage":{"fuel":3400,"steps":2,"wall_ms":12},"version":"1.2.0","workspace":"acme"}"#,
    );
}

#[test]
fn a_triggered_run_carries_the_run() {
    check(
        RunAccepted::new(&samples::run(), true),
        r#"{"created":true,"digest":"sha256:abcd","id":"0190a1b2-aaaa-7bbb-8ccc-000000000003","run":{"actor":"admin","created_at":"2026-01-02T03:04:05.678Z","digest":"sha256:abcd","error":null,"error_code":null,"finished_at":null,"id":"0190a1b2-aaaa-7bbb-8ccc-000000000003","idempotency_key":"k-1","input":{"older_than":"1h"},"limits":{"steps":100},"mode":"apply","plan_run_id":"0190a1b2-aaaa-7bbb-8ccc-000000000001","plugin":"stuck-tasks","report":{"findings":[],"summary":"2 requeued"},"retry_of":null,"started_at":"2026-01-02T03:04:05.679Z","status":"succeeded","trigger":"http","usage":{"fuel":3400,"steps":2,"wall_ms":12},"version":"1.2.0","workspace":"acme"},"status":"succeeded"}"#,
    );
}

#[test]
fn a_page_of_actions() {
    check(
        ActionList {
            actions: samples::actions().iter().map(Action::from).collect(),
            next_after: Some(5),
        },
        r#"{"actions":[{"actor":"admin","after":{"state":"queued"},"args":{"id":0},"at":"2026-01-02T03:04:05.678Z","before":{"state":"running"},"call":"tasks.requeue","detail":null,"digest":"sha256:abcd","seq":1,"status":"applied","target":"task-0"},{"actor":"admin","after":null,"args":{"id":1},"at":"2026-01-02T03:04:05.679Z","before":null,"call":"tasks.requeue","detail":null,"digest":"sha256:abcd","seq":2,"status":"planned","target":null},{"actor":"admin","after":null,"args":{"id":2},"at":"2026-01-02T03:04:05.680Z","before":null,"call":"tasks.requeue","detail":null,"digest":"sha256:abcd","seq":3,"status":"denied","target":"task-2"},{"actor":"admin","after":null,"args":{"id":3},"at":"2026-01-02T03:04:05.681Z","before":null,"call":"tasks.requeue","detail":null,"digest":"sha256:abcd","seq":4,"status":"over_budget","target":null},{"actor":"admin","after":null,"args":{"id":4},"at":"2026-01-02T03:04:05.682Z","before":null,"call":"tasks.requeue","detail":"no such task","digest":"sha256:abcd","seq":5,"status":"failed","target":"task-4"}],"next_after":5}"#,
    );
}

#[test]
fn an_alert_of_a_workspace() {
    check(
        Alert::from(&samples::alert()),
        r#"{"acked_at":"2026-01-02T03:04:05.680Z","acked_by":"admin","count":3,"dedup_key":"budget_80:acme","detail":{"used_pct":81.5},"first_at":"2026-01-02T03:04:05.673Z","id":"0190a1b2-bbbb-7ccc-8ddd-000000000004","last_at":"2026-01-02T03:04:05.678Z","notified_at":"2026-01-02T03:04:05.674Z","resolve_notified":false,"resolved_at":null,"rule":"budget_80","severity":"warning","silenced_by":null,"status":"acknowledged","summary":"80% of the hourly budget","workspace":"acme"}"#,
    );
}

#[test]
fn a_host_alert_keeps_its_nulls() {
    check(
        Alert::from(&samples::host_alert()),
        r#"{"acked_at":null,"acked_by":null,"count":3,"dedup_key":"budget_80:acme","detail":null,"first_at":"2026-01-02T03:04:05.673Z","id":"0190a1b2-bbbb-7ccc-8ddd-000000000004","last_at":"2026-01-02T03:04:05.678Z","notified_at":null,"resolve_notified":true,"resolved_at":"2026-01-02T03:04:05.687Z","rule":"budget_80","severity":"warning","silenced_by":"0190a1b2-cccc-7ddd-8eee-000000000005","status":"resolved","summary":"80% of the hourly budget","workspace":null}"#,
    );
}

#[test]
fn breakers_open_and_never_changed() {
    check(
        BreakerList {
            breakers: samples::breakers().iter().map(Breaker::from).collect(),
        },
        r#"{"breakers":[{"failures":5,"name":"provider:openai","opened_at":"2026-01-02T03:04:05.678Z","reason":"5 failures in a row","retry_at":"2026-01-02T03:04:35.678Z","state":"open","updated_at":"2026-01-02T03:04:05.678Z"},{"failures":0,"name":"gate:acme:lint","opened_at":null,"reason":null,"retry_at":null,"state":"closed","updated_at":null}]}"#,
    );
}

#[test]
fn a_claim_answer_sorts_the_keys_of_why_idle() {
    let idle = warden_core::scheduler::Idle {
        reason: "no_workers",
        message: "no worker".to_string(),
    };
    let claims = vec![Claim::from(&samples::claimed())];
    let idle = Some(to_json(&idle).unwrap());
    check(
        ClaimResponse { claims, idle },
        r#"{"claims":[{"attempt":2,"lease_expires_at":"2026-01-02T03:04:35.678Z","stage":"implement","task":{"attempts":2,"body":"steps:\n1. reproduce","budget":{"cost_usd":1.5,"steps":null,"tokens":100000,"wall_ms":600000},"created_at":"2026-01-02T03:03:05.678Z","dedup_key":"login-bug","depends_on":["0190a1b2-0000-7000-8000-000000000001"],"finished_at":null,"gate_rejections":1,"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","last_error":"tests failed","last_event_at":"2026-01-02T03:04:05.677Z","last_fingerprint":"f00d","lease":{"expires_at":"2026-01-02T03:04:35.678Z","token":42,"worker":"worker-1"},"max_attempts":3,"next_attempt_at":null,"pipeline":["plan","implement","review"],"plan_delta":{"reasons":[{"category":"tests","message":"2 failed"}]},"priority":"urgent","requires":["provider:openai"],"stage":"implement","state":"running","title":"Fix the \"login\" bug","total_attempts":4,"updated_at":"2026-01-02T03:04:05.678Z","used":{"cost_usd":0.250001,"steps":7,"tokens":1234,"wall_ms":0},"workspace":"acme"},"task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","token":42,"took_over":40}],"idle":{"message":"no worker","reason":"no_workers"}}"#,
    );
    let (claims, idle) = (Vec::new(), None);
    check(
        ClaimResponse { claims, idle },
        r#"{"claims":[],"idle":null}"#,
    );
}

/// The triggered run's answer reads back as the variant it is.
#[test]
fn a_triggered_run_reads_back_as_accepted_or_waited() {
    let accepted = to_json(&RunAccepted::new(&samples::run(), false)).unwrap();
    let got: RunTriggered = serde_json::from_value(accepted).unwrap();
    assert!(matches!(got, RunTriggered::Accepted(a) if !a.created));
    let waited = to_json(&Run::with_actions(&samples::run(), &samples::actions(), 5)).unwrap();
    let got: RunTriggered = serde_json::from_value(waited).unwrap();
    assert!(
        matches!(got, RunTriggered::Waited(r) if r.actions.as_ref().is_some_and(|a| !a.truncated))
    );
}

/// A retry time already past is not shown.
#[test]
fn a_retry_time_past_is_null() {
    let task = Task::at(&samples::queued_task(), samples::FAR + 1);
    assert_eq!(task.next_attempt_at, None);
}

#[test]
fn a_token_just_created_shows_its_secret() {
    check(
        TokenCreated::new(&samples::tokens()[0], "wdn_secret\"1"),
        r#"{"created_at":"2026-01-02T03:03:05.678Z","id":"0190a1b2-dddd-7eee-8fff-000000000006","name":"ci \"runner\"","role":"agent","token":"wdn_secret\"1","workspace":"acme"}"#,
    );
}

#[test]
fn tokens_keep_their_nulls_and_hide_their_hash() {
    check(
        TokenList {
            tokens: samples::tokens().iter().map(TokenInfo::from).collect(),
        },
        r#"{"tokens":[{"created_at":"2026-01-02T03:03:05.678Z","id":"0190a1b2-dddd-7eee-8fff-000000000006","last_used_at":"2026-01-02T03:04:05.677Z","name":"ci \"runner\"","revoked_at":"2026-01-02T03:04:05.678Z","role":"agent","workspace":"acme"},{"created_at":"2026-01-02T03:04:05.678Z","id":"0190a1b2-dddd-7eee-8fff-000000000007","last_used_at":null,"name":"cli","revoked_at":null,"role":"viewer","workspace":"acme"}]}"#,
    );
}

#[test]
fn an_audit_log_keeps_its_details() {
    check(
        AuditLog {
            entries: samples::audit().iter().map(AuditEntry::from).collect(),
        },
        r#"{"entries":[{"action":"pin.set","actor":"admin","at":"2026-01-02T03:04:05.678Z","detail":{"digest":"sha256:abcd","selector":"^1.2"},"id":17,"target":"stuck-tasks"},{"action":"grant.delete","actor":"bootstrap-admin","at":"2026-01-02T03:04:05.679Z","detail":{},"id":18,"target":"stuck-tasks"}]}"#,
    );
}

#[test]
fn a_listed_pin_has_no_resolves_to_key() {
    check(
        PinList {
            pins: vec![Pin::from(&samples::pin())],
        },
        r#"{"pins":[{"actor":"ops","plugin":"stuck-tasks","selector":"^1.2","updated_at":"2026-01-02T03:04:05.678Z"}]}"#,
    );
}

#[test]
fn a_pin_just_set_says_what_it_resolves_to() {
    check(
        Pin {
            resolves_to: Some(PinTarget {
                version: "1.2.3".to_string(),
                digest: "sha256:abcd".to_string(),
            }),
            ..Pin::from(&samples::pin())
        },
        r#"{"actor":"ops","plugin":"stuck-tasks","resolves_to":{"digest":"sha256:abcd","version":"1.2.3"},"selector":"^1.2","updated_at":"2026-01-02T03:04:05.678Z"}"#,
    );
}

#[test]
fn grants_listed_and_one_just_set() {
    let grants = samples::grants();
    check(
        GrantList {
            grants: grants.iter().map(Grant::from).collect(),
        },
        r#"{"grants":[{"actor":"admin","capabilities":["tasks:read","tasks:write"],"plugin":"stuck-tasks","updated_at":"2026-01-02T03:04:05.678Z"},{"actor":"admin","capabilities":[],"plugin":"lint","updated_at":"2026-01-02T03:04:05.679Z"}]}"#,
    );
    check(
        Grant::from(&grants[0]),
        r#"{"actor":"admin","capabilities":["tasks:read","tasks:write"],"plugin":"stuck-tasks","updated_at":"2026-01-02T03:04:05.678Z"}"#,
    );
}

/// A version of the sample plugin as `PluginVersion::new` builds it (a
/// unit test has no compiled plugin to build it from).
fn plugin_version(live: bool, source_path: Option<&str>, detail: bool) -> PluginVersion {
    let limits = warden_meta::Limits {
        deadline_ms: Some(5000),
        fuel: Some(1_000_000),
        ..Default::default()
    };
    PluginVersion {
        version: "1.2.3".to_string(),
        digest: "sha256:abcd".to_string(),
        size: 12345,
        source: "directory".to_string(),
        source_path: source_path.map(str::to_string),
        state: if live { "active" } else { "retired" }.to_string(),
        added_at: warden_core::time::time(samples::AT),
        capabilities_requested: vec!["tasks:read".to_string(), "tasks:write".to_string()],
        capabilities_required: vec!["tasks:read".to_string()],
        imports: detail.then(|| vec!["warden:plugin/tasks@0.1.0".to_string()]),
        limits: detail.then(|| serde_json::to_value(&limits).unwrap()),
        idempotent: true,
        concurrent: false,
    }
}

/// The sample plugin, pinned to a live version or with nothing to pin to.
fn plugin(detail: bool, pinned: bool) -> Plugin {
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Plugin {
        name: "stuck-tasks".to_string(),
        kind: "playbook".to_string(),
        description: "requeues \"stuck\" tasks".to_string(),
        latest: pinned.then(|| "1.2.3".to_string()),
        versions: vec![
            plugin_version(true, Some("/plugins/stuck.wasm"), detail),
            plugin_version(false, None, detail),
        ],
        workspace: "acme".to_string(),
        pin: PinInForce {
            selector: "^1.2".to_string(),
            source: "api".to_string(),
        },
        pinned_version: pinned.then(|| "1.2.3".to_string()),
        pinned_digest: pinned.then(|| "sha256:abcd".to_string()),
        capabilities_requested: if pinned {
            names(&["tasks:read"])
        } else {
            Vec::new()
        },
        capabilities_granted: if pinned {
            names(&["tasks:read"])
        } else {
            Vec::new()
        },
        missing_grants: if pinned {
            names(&["tasks:write"])
        } else {
            Vec::new()
        },
        state: if pinned { "active" } else { "retired" }.to_string(),
    }
}

#[test]
fn one_plugin_shows_its_imports_and_limits() {
    check(
        plugin(true, true),
        r#"{"capabilities_granted":["tasks:read"],"capabilities_requested":["tasks:read"],"description":"requeues \"stuck\" tasks","kind":"playbook","latest":"1.2.3","missing_grants":["tasks:write"],"name":"stuck-tasks","pin":{"selector":"^1.2","source":"api"},"pinned_digest":"sha256:abcd","pinned_version":"1.2.3","state":"active","versions":[{"added_at":"2026-01-02T03:04:05.678Z","capabilities_requested":["tasks:read","tasks:write"],"capabilities_required":["tasks:read"],"concurrent":false,"digest":"sha256:abcd","idempotent":true,"imports":["warden:plugin/tasks@0.1.0"],"limits":{"deadline_ms":5000,"fuel":1000000},"size":12345,"source":"directory","source_path":"/plugins/stuck.wasm","state":"active","version":"1.2.3"},{"added_at":"2026-01-02T03:04:05.678Z","capabilities_requested":["tasks:read","tasks:write"],"capabilities_required":["tasks:read"],"concurrent":false,"digest":"sha256:abcd","idempotent":true,"imports":["warden:plugin/tasks@0.1.0"],"limits":{"deadline_ms":5000,"fuel":1000000},"size":12345,"source":"directory","source_path":null,"state":"retired","version":"1.2.3"}],"workspace":"acme"}"#,
    );
}

#[test]
fn listed_plugins_leave_out_imports_and_limits_and_list_the_rejected() {
    let rejected = [
        warden_core::registry::Rejection {
            source: "/plugins/bad.wasm".to_string(),
            digest: Some("sha256:dead".to_string()),
            reason: "not a \"component\"".to_string(),
            at: samples::AT,
        },
        warden_core::registry::Rejection {
            source: "upload".to_string(),
            digest: None,
            reason: "empty".to_string(),
            at: samples::AT + 1,
        },
    ];
    check(
        PluginList {
            plugins: vec![plugin(false, true), plugin(false, false)],
            rejected: rejected.iter().map(Rejection::from).collect(),
        },
        r#"{"plugins":[{"capabilities_granted":["tasks:read"],"capabilities_requested":["tasks:read"],"description":"requeues \"stuck\" tasks","kind":"playbook","latest":"1.2.3","missing_grants":["tasks:write"],"name":"stuck-tasks","pin":{"selector":"^1.2","source":"api"},"pinned_digest":"sha256:abcd","pinned_version":"1.2.3","state":"active","versions":[{"added_at":"2026-01-02T03:04:05.678Z","capabilities_requested":["tasks:read","tasks:write"],"capabilities_required":["tasks:read"],"concurrent":false,"digest":"sha256:abcd","idempotent":true,"size":12345,"source":"directory","source_path":"/plugins/stuck.wasm","state":"active","version":"1.2.3"},{"added_at":"2026-01-02T03:04:05.678Z","capabilities_requested":["tasks:read","tasks:write"],"capabilities_required":["tasks:read"],"concurrent":false,"digest":"sha256:abcd","idempotent":true,"size":12345,"source":"directory","source_path":null,"state":"retired","version":"1.2.3"}],"workspace":"acme"},{"capabilities_granted":[],"capabilities_requested":[],"description":"requeues \"stuck\" tasks","kind":"playbook","latest":null,"missing_grants":[],"name":"stuck-tasks","pin":{"selector":"^1.2","source":"api"},"pinned_digest":null,"pinned_version":null,"state":"retired","versions":[{"added_at":"2026-01-02T03:04:05.678Z","capabilities_requested":["tasks:read","tasks:write"],"capabilities_required":["tasks:read"],"concurrent":false,"digest":"sha256:abcd","idempotent":true,"size":12345,"source":"directory","source_path":"/plugins/stuck.wasm","state":"active","version":"1.2.3"},{"added_at":"2026-01-02T03:04:05.678Z","capabilities_requested":["tasks:read","tasks:write"],"capabilities_required":["tasks:read"],"concurrent":false,"digest":"sha256:abcd","idempotent":true,"size":12345,"source":"directory","source_path":null,"state":"retired","version":"1.2.3"}],"workspace":"acme"}],"rejected":[{"at":1767323045678,"digest":"sha256:dead","reason":"not a \"component\"","source":"/plugins/bad.wasm"},{"at":1767323045679,"digest":null,"reason":"empty","source":"upload"}]}"#,
    );
    check(
        PluginList {
            plugins: Vec::new(),
            rejected: Vec::new(),
        },
        r#"{"plugins":[],"rejected":[]}"#,
    );
}

#[test]
fn an_uploaded_plugin_shows_its_version_in_detail() {
    check(
        PluginUploaded {
            name: "stuck-tasks".to_string(),
            kind: "playbook".to_string(),
            description: String::new(),
            version: plugin_version(true, None, true),
        },
        r#"{"description":"","kind":"playbook","name":"stuck-tasks","version":{"added_at":"2026-01-02T03:04:05.678Z","capabilities_requested":["tasks:read","tasks:write"],"capabilities_required":["tasks:read"],"concurrent":false,"digest":"sha256:abcd","idempotent":true,"imports":["warden:plugin/tasks@0.1.0"],"limits":{"deadline_ms":5000,"fuel":1000000},"size":12345,"source":"directory","source_path":null,"state":"active","version":"1.2.3"}}"#,
    );
}

#[test]
fn silences_in_force_and_ended() {
    check(
        SilenceList {
            silences: samples::silences()
                .iter()
                .map(|s| Silence::at(s, samples::AT))
                .collect(),
        },
        r#"{"silences":[{"active":true,"comment":"known: the \"big\" migration","created_at":"2026-01-02T03:03:05.678Z","created_by":"admin","dedup_key":null,"ends_at":"2026-01-02T05:04:05.678Z","id":"0190a1b2-eeee-7fff-8aaa-000000000008","rule":"budget_80","severity":"warning","workspace":"acme"},{"active":false,"comment":"","created_at":"2026-01-02T03:02:05.678Z","created_by":"bootstrap-admin","dedup_key":"breaker:*","ends_at":"2026-01-02T03:04:05.678Z","id":"0190a1b2-eeee-7fff-8aaa-000000000009","rule":null,"severity":null,"workspace":null}]}"#,
    );
}

#[test]
fn notifications_delivered_and_pending() {
    check(
        Notifications {
            notifications: samples::notifications()
                .iter()
                .map(Notification::from)
                .collect(),
        },
        r#"{"notifications":[{"alert_ids":["0190a1b2-bbbb-7ccc-8ddd-000000000004"],"attempts":1,"created_at":"2026-01-02T03:04:05.673Z","dedup_key":"budget_80:acme","delivered_at":"2026-01-02T03:04:05.680Z","id":"0190a1b2-ffff-7aaa-8bbb-00000000000a","kind":"trigger","last_error":null,"next_at":"2026-01-02T03:04:05.678Z","payload":{"count":3,"text":"80% of the hourly budget"},"severity":"warning","sink":"ops-webhook","status":"delivered"},{"alert_ids":[],"attempts":3,"created_at":"2026-01-02T03:04:05.678Z","dedup_key":"breaker:provider:openai","delivered_at":null,"id":"0190a1b2-ffff-7aaa-8bbb-00000000000b","kind":"resolve","last_error":"HTTP 502","next_at":"2026-01-02T03:04:35.678Z","payload":null,"severity":"critical","sink":"pager","status":"pending"}]}"#,
    );
}

#[test]
fn workers_busy_and_idle() {
    check(
        WorkerList {
            workers: samples::workers().iter().map(Worker::from).collect(),
        },
        r#"{"workers":[{"active_leases":2,"first_seen_at":"2026-01-02T02:04:05.678Z","id":"worker-1","last_heartbeat_at":"2026-01-02T03:04:05.678Z"},{"active_leases":0,"first_seen_at":"2026-01-02T03:04:05.677Z","id":"worker-\"2\"","last_heartbeat_at":"2026-01-02T03:04:05.677Z"}]}"#,
    );
}

#[test]
fn settings_changed_and_never_changed() {
    let settings = samples::settings();
    check(
        Settings::from(&settings[0]),
        r#"{"actor":"ops","hourly_budget":{"cost_usd":2.5,"tokens":1000000},"limits":{"lease_ms":30000,"max_running":4},"mode":"read-only","mode_reason":"breaker \"provider:openai\" open","pipeline":["plan","implement"],"updated_at":"2026-01-02T03:04:05.678Z"}"#,
    );
    check(
        Settings::from(&settings[1]),
        r#"{"actor":"system","hourly_budget":{"cost_usd":null,"tokens":null},"limits":{},"mode":"normal","mode_reason":null,"pipeline":null,"updated_at":null}"#,
    );
}

#[test]
fn modes_with_and_without_a_reason() {
    let settings = samples::settings();
    check(
        ModeView::from(&settings[0]),
        r#"{"mode":"read-only","reason":"breaker \"provider:openai\" open"}"#,
    );
    check(
        ModeView::from(&settings[1]),
        r#"{"mode":"normal","reason":null}"#,
    );
}

#[test]
fn bindings_by_quorum_with_relaxed_config_and_by_default() {
    let bindings = samples::bindings();
    check(
        GateBindings {
            bindings: bindings
                .iter()
                .map(|(stage, b, source)| GateBinding::new(stage, b, source))
                .collect(),
        },
        r#"{"bindings":[{"gates":["lint","tests","size"],"on_error":"reject","quorum":"2-of-3","reject_to":"implement","relax":{"lint":{"max_warnings":50}},"relax_minutes":15,"source":"api","stage":"review"},{"gates":["lint"],"on_error":"escalate","quorum":"all","reject_to":"plan","relax_minutes":30,"source":"config","stage":"implement"}]}"#,
    );
    let (stage, b, source) = &bindings[0];
    check(
        GateBinding::new(stage, b, source),
        r#"{"gates":["lint","tests","size"],"on_error":"reject","quorum":"2-of-3","reject_to":"implement","relax":{"lint":{"max_warnings":50}},"relax_minutes":15,"source":"api","stage":"review"}"#,
    );
}

#[test]
fn a_task_s_decisions_each_carry_their_own_verdicts() {
    let verdicts = samples::verdicts();
    check(
        TaskVerdicts {
            task_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string(),
            decisions: samples::decisions()
                .iter()
                .map(|d| GateDecision::new(d, &verdicts))
                .collect(),
        },
        r#"{"decisions":[{"approvals":1,"at":"2026-01-02T03:04:05.720Z","escalations":0,"id":"0190a1b2-abab-7cdc-8efe-00000000000c","outcome":"reject","quorum":"2-of-3","rejections":1,"stage":"review","summary":"lint: \"too long\"","token":42,"verdicts":[{"at":"2026-01-02T03:04:05.678Z","decision":"approve","decision_id":"0190a1b2-abab-7cdc-8efe-00000000000c","digest":"sha256:beef","error":null,"gate":"tests","id":"0190a1b2-acac-7ded-8fef-00000000000e","reasons":[],"relaxed":false,"score":87,"stage":"review","task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","version":"0.3.1","wall_ms":12},{"at":"2026-01-02T03:04:05.678Z","decision":"reject","decision_id":"0190a1b2-abab-7cdc-8efe-00000000000c","digest":"sha256:beef","error":"trap: \"unreachable\"","gate":"lint","id":"0190a1b2-acac-7ded-8fef-00000000000f","reasons":[{"category":"size","message":"diff too long"},{"category":"quality","message":"line 3: \"todo\""}],"relaxed":true,"score":-1,"stage":"review","task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","version":"0.3.1","wall_ms":12}]},{"approvals":1,"at":"2026-01-02T03:04:05.721Z","escalations":0,"id":"0190a1b2-abab-7cdc-8efe-00000000000d","outcome":"pending","quorum":"2-of-3","rejections":1,"stage":"review","summary":"lint: \"too long\"","token":43,"verdicts":[]}],"task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}"#,
    );
}

#[test]
fn verdicts_with_reasons_and_an_error() {
    check(
        VerdictList {
            verdicts: samples::verdicts().iter().map(Verdict::from).collect(),
        },
        r#"{"verdicts":[{"at":"2026-01-02T03:04:05.678Z","decision":"approve","decision_id":"0190a1b2-abab-7cdc-8efe-00000000000c","digest":"sha256:beef","error":null,"gate":"tests","id":"0190a1b2-acac-7ded-8fef-00000000000e","reasons":[],"relaxed":false,"score":87,"stage":"review","task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","version":"0.3.1","wall_ms":12},{"at":"2026-01-02T03:04:05.678Z","decision":"reject","decision_id":"0190a1b2-abab-7cdc-8efe-00000000000c","digest":"sha256:beef","error":"trap: \"unreachable\"","gate":"lint","id":"0190a1b2-acac-7ded-8fef-00000000000f","reasons":[{"category":"size","message":"diff too long"},{"category":"quality","message":"line 3: \"todo\""}],"relaxed":true,"score":-1,"stage":"review","task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","version":"0.3.1","wall_ms":12}]}"#,
    );
    check(Deleted { deleted: true }, r#"{"deleted":true}"#);
}

#[test]
fn task_events_name_their_kind_type() {
    check(
        TaskEvents {
            events: samples::task_events().iter().map(TaskEvent::from).collect(),
        },
        r#"{"events":[{"at":"2026-01-02T03:04:05.678Z","data":{"stage":"implement","state":"running"},"seq":1,"type":"status"},{"at":"2026-01-02T03:04:05.679Z","data":"compiling \"core\"","seq":2,"type":"log"}]}"#,
    );
    check(EventSeq { seq: 7 }, r#"{"seq":7}"#);
}

/// The status answer: the documented fields typed, the dashboard's beside
/// them, stamped with the time of the snapshot and the window's start.
#[test]
fn a_workspace_status_busy_and_empty() {
    for (i, snap) in samples::snapshots().iter().enumerate() {
        let mut status = crate::status::workspace_view(snap, 24);
        let expected = [
            r#"{"active_loops":[{"attempts":1,"created_at":"2026-01-02T03:04:05.678Z","finished_at":"2026-01-02T03:04:05.683Z","gate_rejections":0,"id":"0190a1b2-c3d4-7e5f-8a9b-000000000002","last_error":null,"last_event_at":"2026-01-02T03:04:05.678Z","max_attempts":5,"priority":"normal","same_failures":0,"stage":"plan","state":"queued","title":"Write docs","total_attempts":1,"used":{"cost_usd":0.0,"tokens":0},"why":"attempts","worker":null,"workspace":"default"}],"alerts":[{"acked_at":"2026-01-02T03:04:05.680Z","acked_by":"admin","count":3,"dedup_key":"budget_80:acme","detail":{"used_pct":81.5},"first_at":"2026-01-02T03:04:05.673Z","id":"0190a1b2-bbbb-7ccc-8ddd-000000000004","last_at":"2026-01-02T03:04:05.678Z","notified_at":"2026-01-02T03:04:05.674Z","resolve_notified":false,"resolved_at":null,"rule":"budget_80","severity":"warning","silenced_by":null,"status":"acknowledged","summary":"80% of the hourly budget","workspace":"acme"}],"bottleneck_stage":null,"breakers":[{"failures":5,"name":"provider:openai","opened_at":"2026-01-02T03:04:05.678Z","reason":"5 failures in a row","retry_at":"2026-01-02T03:04:35.678Z","state":"open","updated_at":"2026-01-02T03:04:05.678Z"},{"failures":0,"name":"gate:acme:lint","opened_at":null,"reason":null,"retry_at":null,"state":"closed","updated_at":null}],"hourly_budget":{"cost_usd":2.5,"tokens":1000000},"idle":true,"mode":"read-only","mode_reason":"breaker \"provider:openai\" open","playbook_runs":[{"actor":"admin","created_at":"2026-01-02T03:04:05.678Z","error":null,"finished_at":null,"id":"0190a1b2-aaaa-7bbb-8ccc-000000000003","mode":"apply","plugin":"stuck-tasks","status":"succeeded","trigger":"http","version":"1.2.0"}],"quality_gates":{"approval_rate":0.75,"approvals":3,"by_gate":[{"approval_rate":0.75,"approvals":3,"errors":0,"escalations":0,"gate":"lint","mean_score":72.5,"rejection_rate":0.25,"rejections":1,"verdicts":4}],"by_stage":[],"decisions":0,"escalations":0,"rejection_rate":0.25,"rejections":1,"verdicts":4},"recent_tasks":[{"attempts":2,"created_at":"2026-01-02T03:03:05.678Z","finished_at":null,"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","last_error":"tests failed","last_event_at":"2026-01-02T03:04:05.677Z","max_attempts":3,"priority":"urgent","stage":"implement","state":"running","title":"Fix the \"login\" bug","used":{"cost_usd":0.250001,"tokens":1234},"worker":"worker-1","workspace":"acme"},{"attempts":1,"created_at":"2026-01-02T03:04:05.678Z","finished_at":"2026-01-02T03:04:05.683Z","id":"0190a1b2-c3d4-7e5f-8a9b-000000000002","last_error":null,"last_event_at":"2026-01-02T03:04:05.678Z","max_attempts":5,"priority":"normal","stage":"plan","state":"queued","title":"Write docs","used":{"cost_usd":0.0,"tokens":0},"worker":null,"workspace":"default"}],"running":[{"attempt":2,"lease_expires_at":"2026-01-02T03:04:35.678Z","stage":"implement","task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","title":"Fix the \"login\" bug","token":42,"worker":"worker-1"}],"stage_durations":[],"tasks_by_state":{"queued":3,"running":1},"token_usage":{"by_provider":[],"by_stage":[],"calls":0,"completion_tokens":0,"cost_usd":0.0,"failed":0,"prompt_tokens":0,"tokens":0},"top_errors":[],"usage_this_hour":{"cost_usd":2.500001,"tokens":1234},"why_idle":{"message":"the hourly \"tokens\" budget is spent","reason":"budget_spent"},"window":{"hours":24},"workers":[{"active_leases":2,"id":"worker-1","last_heartbeat_at":"2026-01-02T03:04:05.678Z"},{"active_leases":0,"id":"worker-\"2\"","last_heartbeat_at":"2026-01-02T03:04:05.677Z"}],"workspace":"acme"}"#,
            r#"{"active_loops":[],"alerts":[],"bottleneck_stage":null,"breakers":[],"hourly_budget":{"cost_usd":null,"tokens":null},"idle":false,"mode":"normal","mode_reason":null,"playbook_runs":[],"quality_gates":{"approval_rate":0.0,"approvals":0,"by_gate":[],"by_stage":[],"decisions":0,"escalations":0,"rejection_rate":0.0,"rejections":0,"verdicts":0},"recent_tasks":[],"running":[],"stage_durations":[],"tasks_by_state":{},"token_usage":{"by_provider":[],"by_stage":[],"calls":0,"completion_tokens":0,"cost_usd":0.0,"failed":0,"prompt_tokens":0,"tokens":0},"top_errors":[],"usage_this_hour":{"cost_usd":0.0,"tokens":0},"why_idle":null,"window":{"hours":24},"workers":[],"workspace":"default"}"#,
        ];
        check(status.clone(), expected[i]);
        crate::status::stamp(&mut status, snap);
        let expected = [
            r#"{"active_loops":[{"attempts":1,"created_at":"2026-01-02T03:04:05.678Z","finished_at":"2026-01-02T03:04:05.683Z","gate_rejections":0,"id":"0190a1b2-c3d4-7e5f-8a9b-000000000002","last_error":null,"last_event_at":"2026-01-02T03:04:05.678Z","max_attempts":5,"priority":"normal","same_failures":0,"stage":"plan","state":"queued","title":"Write docs","total_attempts":1,"used":{"cost_usd":0.0,"tokens":0},"why":"attempts","worker":null,"workspace":"default"}],"alerts":[{"acked_at":"2026-01-02T03:04:05.680Z","acked_by":"admin","count":3,"dedup_key":"budget_80:acme","detail":{"used_pct":81.5},"first_at":"2026-01-02T03:04:05.673Z","id":"0190a1b2-bbbb-7ccc-8ddd-000000000004","last_at":"2026-01-02T03:04:05.678Z","notified_at":"2026-01-02T03:04:05.674Z","resolve_notified":false,"resolved_at":null,"rule":"budget_80","severity":"warning","silenced_by":null,"status":"acknowledged","summary":"80% of the hourly budget","workspace":"acme"}],"bottleneck_stage":null,"breakers":[{"failures":5,"name":"provider:openai","opened_at":"2026-01-02T03:04:05.678Z","reason":"5 failures in a row","retry_at":"2026-01-02T03:04:35.678Z","state":"open","updated_at":"2026-01-02T03:04:05.678Z"},{"failures":0,"name":"gate:acme:lint","opened_at":null,"reason":null,"retry_at":null,"state":"closed","updated_at":null}],"generated_at":"2026-01-02T03:04:05.678Z","hourly_budget":{"cost_usd":2.5,"tokens":1000000},"idle":true,"mode":"read-only","mode_reason":"breaker \"provider:openai\" open","playbook_runs":[{"actor":"admin","created_at":"2026-01-02T03:04:05.678Z","error":null,"finished_at":null,"id":"0190a1b2-aaaa-7bbb-8ccc-000000000003","mode":"apply","plugin":"stuck-tasks","status":"succeeded","trigger":"http","version":"1.2.0"}],"quality_gates":{"approval_rate":0.75,"approvals":3,"by_gate":[{"approval_rate":0.75,"approvals":3,"errors":0,"escalations":0,"gate":"lint","mean_score":72.5,"rejection_rate":0.25,"rejections":1,"verdicts":4}],"by_stage":[],"decisions":0,"escalations":0,"rejection_rate":0.25,"rejections":1,"verdicts":4},"recent_tasks":[{"attempts":2,"created_at":"2026-01-02T03:03:05.678Z","finished_at":null,"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","last_error":"tests failed","last_event_at":"2026-01-02T03:04:05.677Z","max_attempts":3,"priority":"urgent","stage":"implement","state":"running","title":"Fix the \"login\" bug","used":{"cost_usd":0.250001,"tokens":1234},"worker":"worker-1","workspace":"acme"},{"attempts":1,"created_at":"2026-01-02T03:04:05.678Z","finished_at":"2026-01-02T03:04:05.683Z","id":"0190a1b2-c3d4-7e5f-8a9b-000000000002","last_error":null,"last_event_at":"2026-01-02T03:04:05.678Z","max_attempts":5,"priority":"normal","stage":"plan","state":"queued","title":"Write docs","used":{"cost_usd":0.0,"tokens":0},"worker":null,"workspace":"default"}],"running":[{"attempt":2,"lease_expires_at":"2026-01-02T03:04:35.678Z","stage":"implement","task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","title":"Fix the \"login\" bug","token":42,"worker":"worker-1"}],"stage_durations":[],"tasks_by_state":{"queued":3,"running":1},"token_usage":{"by_provider":[],"by_stage":[],"calls":0,"completion_tokens":0,"cost_usd":0.0,"failed":0,"prompt_tokens":0,"tokens":0},"top_errors":[],"usage_this_hour":{"cost_usd":2.500001,"tokens":1234},"why_idle":{"message":"the hourly \"tokens\" budget is spent","reason":"budget_spent"},"window":{"hours":24,"since":"2026-01-01T03:04:05.678Z"},"workers":[{"active_leases":2,"id":"worker-1","last_heartbeat_at":"2026-01-02T03:04:05.678Z"},{"active_leases":0,"id":"worker-\"2\"","last_heartbeat_at":"2026-01-02T03:04:05.677Z"}],"workspace":"acme"}"#,
            r#"{"active_loops":[],"alerts":[],"bottleneck_stage":null,"breakers":[],"generated_at":"2026-01-02T03:04:05.678Z","hourly_budget":{"cost_usd":null,"tokens":null},"idle":false,"mode":"normal","mode_reason":null,"playbook_runs":[],"quality_gates":{"approval_rate":0.0,"approvals":0,"by_gate":[],"by_stage":[],"decisions":0,"escalations":0,"rejection_rate":0.0,"rejections":0,"verdicts":0},"recent_tasks":[],"running":[],"stage_durations":[],"tasks_by_state":{},"token_usage":{"by_provider":[],"by_stage":[],"calls":0,"completion_tokens":0,"cost_usd":0.0,"failed":0,"prompt_tokens":0,"tokens":0},"top_errors":[],"usage_this_hour":{"cost_usd":0.0,"tokens":0},"why_idle":null,"window":{"hours":24,"since":"2026-01-01T03:04:05.678Z"},"workers":[],"workspace":"default"}"#,
        ];
        check(status, expected[i]);
    }
}

#[test]
fn processes_backing_off_and_running() {
    check(
        Processes {
            processes: samples::processes().iter().map(Process::from).collect(),
        },
        r#"{"processes":[{"breaker":"open","failed_restarts":2,"last_exit":"exited with exit status: 3","name":"agent-\"a\"","next_restart_at":"2026-01-02T03:04:07.678Z","pid":null,"restarts":4,"since":"2026-01-02T03:04:00.678Z","state":"backing-off"},{"breaker":"closed","failed_restarts":0,"last_exit":null,"name":"indexer","next_restart_at":null,"pid":4242,"restarts":0,"since":"2026-01-02T03:04:05.678Z","state":"running"}]}"#,
    );
}

/// The bytes the `json!` of `Gateway::providers` wrote: keys sorted,
/// prices as JSON floats, `retry_at` null while the breaker is closed.
#[test]
fn providers_with_an_open_and_a_closed_breaker() {
    check(
        Providers {
            providers: samples::providers().iter().map(Provider::from).collect(),
        },
        r#"{"providers":[{"base_url":"https://api.openai.com/v1","breaker":"open","failures":5,"max_context":128000,"models":["gpt-4o","gpt-4o-mini"],"name":"openai","price_input_per_1k":0.5,"price_output_per_1k":2.0,"retry_at":"2026-01-02T03:04:35.678Z"},{"base_url":"http://127.0.0.1:9000","breaker":"closed","failures":0,"max_context":8192,"models":[],"name":"local","price_input_per_1k":0.0,"price_output_per_1k":0.0,"retry_at":null}]}"#,
    );
}

#[test]
fn gateway_calls_routed_and_refused() {
    check(
        GatewayCalls {
            calls: samples::gateway_calls()
                .iter()
                .map(GatewayCall::from)
                .collect(),
        },
        r#"{"calls":[{"at":"2026-01-02T03:04:05.678Z","attempts":1,"completion_tokens":340,"cost_usd":0.001234,"error":null,"http_status":200,"id":"0190a1b2-adad-7eae-8faf-000000000010","latency_ms":850,"mode":"apply","model":"gpt-4o-mini","policy":{"digest":"sha256:cafe","name":"cheapest","reason":"the \"cheapest\" model","version":"1.0.0"},"prompt_tokens":1200,"provider":"openai","requested_model":"auto","stage":"implement","status":"ok","stream":true,"task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},{"at":"2026-01-02T03:04:05.679Z","attempts":0,"completion_tokens":0,"cost_usd":0.0,"error":"no provider serves \"gpt-5\"","http_status":404,"id":"0190a1b2-adad-7eae-8faf-000000000011","latency_ms":3,"mode":"plan","model":null,"policy":{"digest":"","name":"default","reason":"","version":""},"prompt_tokens":0,"provider":null,"requested_model":"gpt-5","stage":null,"status":"error","stream":false,"task_id":null}]}"#,
    );
}

#[test]
fn usage_by_provider_and_task_and_in_all() {
    use warden_store::gateway::UsageDim;
    let since = samples::AT - 3_600_000;
    let dims = [UsageDim::Provider, UsageDim::Task];
    check(
        GatewayUsage::new("acme", since, &dims, &samples::usage_groups()),
        r#"{"calls":14,"completion_tokens":3430,"cost_usd":0.012352,"group_by":["provider","task"],"groups":[{"calls":12,"completion_tokens":3400,"cost_usd":0.012345,"failed":1,"prompt_tokens":12000,"provider":"openai","task":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","total_tokens":15400},{"calls":2,"completion_tokens":30,"cost_usd":7e-6,"failed":0,"prompt_tokens":100,"provider":"anthropic","task":null,"total_tokens":130}],"prompt_tokens":12100,"since":"2026-01-02T02:04:05.678Z","workspace":"acme"}"#,
    );
    check(
        GatewayUsage::new("acme", since, &[], &[]),
        r#"{"calls":0,"completion_tokens":0,"cost_usd":0.0,"group_by":[],"groups":[],"prompt_tokens":0,"since":"2026-01-02T02:04:05.678Z","workspace":"acme"}"#,
    );
}

#[test]
fn gate_statistics_with_a_breaker_and_without() {
    let since = samples::AT - 86_400_000;
    let stats = samples::gate_stats();
    let breakers = samples::breakers();
    let recent = ["reject", "approve", "reject"].map(str::to_string);
    let gates = vec![
        GateStatistic::new(&stats[0], Some(&breakers[0]), &recent),
        GateStatistic::new(&stats[1], None, &[]),
    ];
    check(
        GateStatistics::new("acme", since, &stats, gates, &samples::top_reasons()),
        r#"{"approval_rate":0.6666666666666666,"gates":[{"approval_rate":0.6666666666666666,"approvals":2,"breaker":{"reason":"5 failures in a row","state":"open","until":"2026-01-02T03:04:35.678Z"},"errors":1,"escalations":0,"gate":"lint","mean_score":66.66666666666667,"recent_rejections":2,"recent_window":3,"rejection_rate":0.3333333333333333,"rejections":1,"verdicts":3},{"approval_rate":0.0,"approvals":0,"breaker":null,"errors":0,"escalations":0,"gate":"tests","mean_score":0.0,"recent_rejections":0,"recent_window":0,"rejection_rate":0.0,"rejections":0,"verdicts":0}],"since":"2026-01-01T03:04:05.678Z","top_rejection_reasons":[{"category":"size","count":4,"gate":"lint","message":"diff \"too\" long"}],"verdicts":3,"workspace":"acme"}"#,
    );
    check(
        GateStatistics::new("acme", since, &[], Vec::new(), &[]),
        r#"{"approval_rate":0.0,"gates":[],"since":"2026-01-01T03:04:05.678Z","top_rejection_reasons":[],"verdicts":0,"workspace":"acme"}"#,
    );
}

/// With `?gate=`, the totals stay those of every gate.
#[test]
fn gate_statistics_of_one_gate_keep_the_totals_of_all() {
    let stats = samples::gate_stats();
    let one = vec![GateStatistic::new(&stats[1], None, &[])];
    let shown = GateStatistics::new("acme", samples::AT, &stats, one, &[]);
    assert_eq!(shown.verdicts, 3);
    assert_eq!(shown.gates.len(), 1);
}
