//! The test kit runs the playbook template of `examples/`, as a plugin
//! author's `cargo test` would.

use std::time::Duration;

use warden_testkit::{ActionStatus, FakeHost, Mode, TestPlugin};

#[tokio::test]
async fn template_reports_a_stuck_task() {
    let plugin = TestPlugin::load(warden_test_artifacts::TEMPLATE_MY_PLAYBOOK).unwrap();
    assert_eq!(plugin.meta().name, "my-playbook");
    let host = FakeHost::new();
    let id = host.add_task("build the thing", "implement", "running");
    host.make_stuck(&id, Duration::from_secs(3600));
    host.add_task("fresh", "plan", "queued");

    let run = plugin.run(&host, Mode::Diagnose, "null").await;
    let report = run.report().unwrap();
    assert_eq!(report.summary, "1 queued, 1 running, 1 stuck for over 900s");
    assert_eq!(report.findings[0].code, "tasks.stuck");

    host.set_config("stuck_after_secs", "7200");
    let run = plugin.run(&host, Mode::Diagnose, "null").await;
    assert_eq!(
        run.report().unwrap().summary,
        "1 queued, 1 running, 0 stuck for over 7200s"
    );
}

#[tokio::test]
async fn a_strict_grant_is_enforced_by_the_fake_host_too() {
    let plugin = TestPlugin::load(warden_test_artifacts::PLAN_MUTATOR).unwrap();
    let host = FakeHost::new();
    host.grant_only(&["tasks:read"]).unwrap();
    let run = plugin.run(&host, Mode::Apply, "null").await;
    assert_eq!(
        run.error().map(ToString::to_string).as_deref(),
        Some(
            "capability \"tasks:write\" not granted (the plugin imports warden:plugin/tasks#requeue)"
        )
    );

    let host = FakeHost::new();
    let id = host.add_task("t", "plan", "running");
    let run = plugin.run(&host, Mode::Plan, "null").await;
    assert!(
        run.actions()
            .iter()
            .all(|a| a.status == ActionStatus::Planned)
    );
    assert_eq!(host.task(&id).unwrap().state, "running");
}
