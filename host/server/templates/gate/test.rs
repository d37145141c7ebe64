//! Runs the built gate against the test kit's fake host.

use warden_testkit::{Decision, FakeHost, TestPlugin, submission};

#[tokio::test]
async fn rejects_new_todos_beyond_the_allowance() {
    let gate = TestPlugin::build(env!("CARGO_MANIFEST_DIR")).expect("build the gate");
    let host = FakeHost::new();
    let diff = "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1,2 @@\n fn a() {}\n+// TODO: b\n";

    let checked = gate
        .evaluate(&host, &submission("implement").diff(diff))
        .await;
    let verdict = checked.verdict().expect("a verdict");
    assert_eq!(verdict.decision, Decision::Reject);
    assert_eq!(
        verdict.reasons[0].message,
        "new TODO: src/lib.rs:2: // TODO: b"
    );

    host.set_config("max", "1");
    let checked = gate
        .evaluate(&host, &submission("implement").diff(diff))
        .await;
    assert_eq!(checked.decision(), Some(Decision::Approve));
}
