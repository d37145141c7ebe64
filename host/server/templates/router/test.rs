//! Runs the built routing policy against the test kit's fake host.

use warden_testkit::{FakeHost, TestPlugin, provider, route_request};

#[tokio::test]
async fn local_comes_first_unless_configured_otherwise() {
    let router = TestPlugin::build(env!("CARGO_MANIFEST_DIR")).expect("build the policy");
    let host = FakeHost::new();
    let request = route_request("normal")
        .provider(provider("cloud", "gpt-4o-mini").price(0.00015, 0.0006))
        .provider(provider("local", "qwen2.5-coder").price(0.001, 0.001))
        .build();

    let routed = router.route(&host, &request).await;
    assert_eq!(
        routed.candidates(),
        ["local/qwen2.5-coder", "cloud/gpt-4o-mini"]
    );

    host.set_config("local_first", "false");
    let routed = router.route(&host, &request).await;
    assert_eq!(
        routed.candidates(),
        ["cloud/gpt-4o-mini", "local/qwen2.5-coder"]
    );
}
