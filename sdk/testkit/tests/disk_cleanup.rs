//! The bundled `disk-cleanup` playbook (SPEC PB-6) through the test kit:
//! the fake host's evidence files stand in for the server's directory.

use warden_test_artifacts as artifacts;
use warden_testkit::{ActionStatus, FakeHost, Mode, Mutation, TestPlugin};

fn plugin() -> TestPlugin {
    let plugin = TestPlugin::load(artifacts::BUNDLED_DISK_CLEANUP).expect("disk-cleanup loads");
    assert_eq!(plugin.meta().name, "disk-cleanup");
    plugin
}

fn host() -> FakeHost {
    let host = FakeHost::new();
    host.set_evidence_used_pct(93.0);
    host.add_evidence("runs/old-a.json", 40_000, 7200);
    host.add_evidence("runs/old-b.json", 10_000, 3700);
    host.add_evidence("runs/new.json", 5_000, 60);
    host
}

#[tokio::test]
async fn diagnose_reports_a_full_disk_and_the_old_files() {
    let host = host();
    let run = plugin().run(&host, Mode::Diagnose, "null").await;
    let report = run.report().unwrap();
    assert_eq!(report.summary, "2 file(s) to compress");
    let codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(codes, ["evidence.disk", "evidence.old"]);
    assert_eq!(
        report.findings[0].severity,
        warden_testkit::Severity::Critical
    );
    assert_eq!(
        report.findings[1].summary,
        "2 evidence file(s), 48.8 KiB, older than 3600s are not compressed"
    );
    assert!(run.actions().is_empty());
    assert!(host.evidence().iter().all(|f| !f.compressed));
}

#[tokio::test]
async fn plan_records_and_apply_compresses_oldest_first() {
    let host = host();
    let run = plugin().run(&host, Mode::Plan, "null").await;
    assert!(
        run.actions()
            .iter()
            .all(|a| a.status == ActionStatus::Planned)
    );
    assert_eq!(run.actions().len(), 2);
    assert!(host.evidence().iter().all(|f| !f.compressed));

    let run = plugin().run(&host, Mode::Apply, "null").await;
    let targets: Vec<&Mutation> = run.actions().iter().map(|a| &a.mutation).collect();
    assert_eq!(
        targets,
        [
            &Mutation::CompressEvidence {
                path: "runs/old-a.json".into()
            },
            &Mutation::CompressEvidence {
                path: "runs/old-b.json".into()
            },
        ]
    );
    let compressed: Vec<(String, bool)> = host
        .evidence()
        .into_iter()
        .map(|f| (f.path, f.compressed))
        .collect();
    assert_eq!(
        compressed,
        [
            ("runs/old-a.json".to_string(), true),
            ("runs/old-b.json".to_string(), true),
            ("runs/new.json".to_string(), false),
        ]
    );
    assert_eq!(
        run.report().unwrap().summary,
        "2 of 2 file(s) compressed, 43.9 KiB saved, 0 failed, 0 left as manual actions"
    );
}

#[tokio::test]
async fn a_spent_step_budget_leaves_the_rest_as_manual_actions() {
    let host = host();
    let limits = warden_runtime::meta::Limits {
        steps: Some(1),
        ..Default::default()
    };
    let run = plugin()
        .run_with_limits(&host, Mode::Apply, "null", limits)
        .await;
    let report = run.report().unwrap();
    assert_eq!(
        report.manual_actions,
        ["compress evidence runs/old-b.json (step budget spent)"]
    );
    assert_eq!(host.evidence().iter().filter(|f| f.compressed).count(), 1);
}
