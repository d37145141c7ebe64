//! Runs the built playbook against the test kit's fake host.

use std::time::Duration;

use warden_testkit::{FakeHost, Mode, TestPlugin};

#[tokio::test]
async fn reports_a_stuck_task() {
    let plugin = TestPlugin::build(env!("CARGO_MANIFEST_DIR")).expect("build the playbook");
    let host = FakeHost::new();
    let id = host.add_task("build the thing", "implement", "running");
    host.make_stuck(&id, Duration::from_secs(3600));
    host.add_task("fresh", "plan", "queued");

    let run = plugin.run(&host, Mode::Diagnose, "null").await;
    let report = run.report().expect("a report");
    assert_eq!(report.summary, "1 queued, 1 running, 1 stuck for over 900s");
    assert_eq!(report.findings[0].code, "tasks.stuck");
    assert_eq!(report.manual_actions.len(), 1);
    assert!(run.actions().is_empty(), "a diagnosis changes nothing");
}
