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
