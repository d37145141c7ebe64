//! Routing policies through the test kit (SPEC GW-3, GW-6): the bundled
//! `cost-aware-router` in each mode, and the routing test plugins the
//! gateway's end-to-end tests rely on.

use warden_runtime::meta::Limits;
use warden_test_artifacts as artifacts;
use warden_testkit::{FakeHost, TestPlugin, provider, route_request};

fn load(path: &str, name: &str, version: &str) -> TestPlugin {
    let p = TestPlugin::load(path).expect("the router loads");
    assert_eq!(p.meta().name, name);
    assert_eq!(p.meta().version.to_string(), version);
    assert_eq!(p.meta().kind.world(), "routing-policy");
    p
}

fn router() -> TestPlugin {
    load(
        artifacts::BUNDLED_COST_AWARE_ROUTER,
        "cost-aware-router",
        "1.0.0",
    )
}

/// Three providers: a dear large one, a cheap small one, a mid-priced one
/// with a code model.
fn three(mode: &str) -> warden_testkit::RouteRequestBuilder {
    route_request(mode)
        .provider(
            provider("big", "big-model")
                .price(0.005, 0.015)
                .max_context(200_000),
        )
        .provider(
            provider("small", "small-model")
                .price(0.0001, 0.0004)
                .max_context(16_000),
        )
        .provider(
            provider("coder", "general")
                .model("qwen-coder")
                .price(0.001, 0.002)
                .max_context(64_000),
        )
}

#[tokio::test]
async fn normal_goes_cheapest_first_with_its_limits() {
    let host = FakeHost::new();
    let r = router().route(&host, &three("normal").build()).await;
    assert_eq!(
        r.candidates(),
        ["small/small-model", "coder/general", "big/big-model"]
    );
    let d = r.decision().unwrap();
    assert_eq!(
        (d.max_price_per_1k, d.max_context, d.max_iterations),
        (Some(0.01), None, Some(20))
    );
    assert!(
        d.reason.contains("mode normal: cheapest first"),
        "{}",
        d.reason
    );
}

#[tokio::test]
async fn deep_research_prefers_large_contexts_and_capable_models() {
    let host = FakeHost::new();
    let r = router().route(&host, &three("deep_research").build()).await;
    assert_eq!(
        r.candidates(),
        ["big/big-model", "coder/general", "small/small-model"]
    );
    assert_eq!(r.decision().unwrap().max_iterations, Some(50));
}

#[tokio::test]
async fn code_prefers_code_models() {
    let host = FakeHost::new();
    let r = router().route(&host, &three("code").build()).await;
    assert_eq!(
        r.candidates(),
        ["coder/qwen-coder", "small/small-model", "big/big-model"]
    );
    // The operator names what a code model is.
    host.set_config("code_models", "big-");
    let r = router().route(&host, &three("code").build()).await;
    assert_eq!(r.candidates()[0], "big/big-model");
}

#[tokio::test]
async fn ops_is_cheap_short_and_bounded() {
    let host = FakeHost::new();
    let r = router().route(&host, &three("ops").build()).await;
    assert_eq!(r.candidates()[0], "small/small-model");
    let d = r.decision().unwrap();
    assert_eq!(
        (d.max_price_per_1k, d.max_context, d.max_iterations),
        (Some(0.002), Some(16_000), Some(10))
    );
    // Every default is config; 0 removes a limit.
    host.set_config("ops_max_context", "0");
    host.set_config("ops_max_iterations", "3");
    let d = router().route(&host, &three("ops").build()).await;
    let d = d.decision().unwrap();
    assert_eq!((d.max_context, d.max_iterations), (None, Some(3)));
}

#[tokio::test]
async fn open_breakers_are_skipped_and_half_open_ones_come_last() {
    let host = FakeHost::new();
    let req = route_request("normal")
        .provider(provider("a", "m").price(0.001, 0.001).breaker("open"))
        .provider(provider("b", "m").price(0.002, 0.002).breaker("half-open"))
        .provider(provider("c", "m").price(0.003, 0.003));
    let r = router().route(&host, &req.build()).await;
    assert_eq!(r.candidates(), ["c/m", "b/m"]);
    // Nothing healthy: everything is offered, for the host to probe.
    let req = route_request("normal").provider(provider("a", "m").breaker("open"));
    let r = router().route(&host, &req.build()).await;
    assert_eq!(r.candidates(), ["a/m"]);
    assert!(r.decision().unwrap().reason.contains("offering all"));
}

#[tokio::test]
async fn providers_too_small_for_the_request_are_left_out() {
    let host = FakeHost::new();
    let r = router()
        .route(
            &host,
            &three("normal")
                .prompt_tokens(30_000)
                .max_output_tokens(4_000)
                .build(),
        )
        .await;
    assert_eq!(r.candidates(), ["coder/general", "big/big-model"]);
}

#[tokio::test]
async fn the_hint_comes_first_unless_the_budget_is_low() {
    let host = FakeHost::new();
    let r = router()
        .route(&host, &three("normal").hint("big-model").build())
        .await;
    assert_eq!(r.candidates()[0], "big/big-model");
    let r = router()
        .route(
            &host,
            &three("normal")
                .hint("big-model")
                .budget_left_usd(0.5)
                .build(),
        )
        .await;
    assert_eq!(r.candidates()[0], "small/small-model");
    assert!(
        r.decision()
            .unwrap()
            .reason
            .contains("budget left under $1"),
        "{}",
        r.decision().unwrap().reason
    );
    // Even deep research goes cheap on a low budget.
    let r = router()
        .route(&host, &three("deep_research").budget_left_usd(0.01).build())
        .await;
    assert_eq!(r.candidates()[0], "small/small-model");
}

#[tokio::test]
async fn an_unknown_mode_is_an_error_naming_the_valid_ones() {
    let host = FakeHost::new();
    let r = router().route(&host, &three("turbo").build()).await;
    let err = r.error().expect("refused").to_string();
    assert!(
        err.contains("unknown mode \"turbo\": expected normal, deep_research, code or ops"),
        "{err}"
    );
    // A bad config value is named too.
    host.set_config("normal_max_price_per_1k", "cheap");
    let r = router().route(&host, &three("normal").build()).await;
    assert!(
        r.error()
            .expect("refused")
            .to_string()
            .contains("normal_max_price_per_1k")
    );
}

#[tokio::test]
async fn code_mode_honours_the_hint_and_keeps_its_limits() {
    let host = FakeHost::new();
    let r = router()
        .route(&host, &three("code").hint("big-model").build())
        .await;
    assert_eq!(
        r.candidates(),
        ["big/big-model", "coder/qwen-coder", "small/small-model"]
    );
    let d = r.decision().unwrap();
    assert_eq!(
        (d.max_price_per_1k, d.max_context, d.max_iterations),
        (Some(0.03), None, Some(30))
    );
    assert!(
        d.reason
            .contains("mode code: code models first, then cheapest"),
        "{}",
        d.reason
    );
}

#[tokio::test]
async fn deep_research_has_the_higher_price_cap() {
    let host = FakeHost::new();
    let r = router().route(&host, &three("deep_research").build()).await;
    let d = r.decision().unwrap();
    assert_eq!(
        (d.max_price_per_1k, d.max_context, d.max_iterations),
        (Some(0.1), None, Some(50))
    );
    // Equal contexts: the dearer (more capable) provider first.
    let req = route_request("deep_research")
        .provider(provider("lesser", "l").price(0.001, 0.001))
        .provider(provider("greater", "g").price(0.01, 0.03));
    let r = router().route(&host, &req.build()).await;
    assert_eq!(r.candidates(), ["greater/g", "lesser/l"]);
}

#[tokio::test]
async fn every_default_is_a_config_key() {
    let host = FakeHost::new();
    host.set_config("normal_max_price_per_1k", "0.5");
    host.set_config("normal_max_context", "64000");
    host.set_config("normal_max_iterations", "0");
    let r = router().route(&host, &three("normal").build()).await;
    let d = r.decision().unwrap();
    assert_eq!(
        (d.max_price_per_1k, d.max_context, d.max_iterations),
        (Some(0.5), Some(64_000), None)
    );
    // A mode's keys leave the other modes alone.
    host.set_config("deep_research_max_price_per_1k", "0");
    let r = router().route(&host, &three("deep_research").build()).await;
    let d = r.decision().unwrap();
    assert_eq!(
        (d.max_price_per_1k, d.max_context, d.max_iterations),
        (None, None, Some(50))
    );
    // A higher low-budget line makes $3 left a low budget.
    host.set_config("low_budget_usd", "5");
    let r = router()
        .route(&host, &three("deep_research").budget_left_usd(3.0).build())
        .await;
    assert_eq!(r.candidates()[0], "small/small-model");
    assert!(
        r.decision()
            .unwrap()
            .reason
            .contains("budget left under $5: cheapest first")
    );
    // At exactly the line, the budget is not low.
    let r = router()
        .route(&host, &three("deep_research").budget_left_usd(5.0).build())
        .await;
    assert_eq!(r.candidates()[0], "big/big-model");
}

#[tokio::test]
async fn dotted_config_keys_are_refused_with_the_flat_key() {
    // TOML turns `normal.max_price_per_1k = 0.5` into a table under
    // `normal`; quoted, the dotted key arrives as it is. Either way the
    // limit would be silently lost.
    let host = FakeHost::new();
    host.set_config("normal.max_price_per_1k", "0.5");
    let r = router().route(&host, &three("normal").build()).await;
    let err = r.error().expect("refused").to_string();
    assert!(
        err.ends_with(
            "config key \"normal.max_price_per_1k\" is not one of cost-aware-router's (keys are flat: write normal_max_price_per_1k)"
        ),
        "{err}"
    );

    let host = FakeHost::new();
    host.set_config("code", r#"{ models = ["qwen"] }"#);
    let r = router().route(&host, &three("ops").build()).await;
    let err = r.error().expect("refused").to_string();
    assert!(
        err.contains("config key \"code\" is not one of cost-aware-router's"),
        "{err}"
    );
    assert!(err.contains("code_max_iterations, code_models;"), "{err}");
}

#[tokio::test]
async fn prices_in_config_must_be_dollars() {
    for bad in ["-0.01", "NaN", "inf"] {
        let host = FakeHost::new();
        host.set_config("ops_max_price_per_1k", bad);
        let r = router().route(&host, &three("ops").build()).await;
        let err = r.error().expect("refused").to_string();
        assert!(
            err.contains("invalid config value ops_max_price_per_1k = ")
                && err.ends_with("expected dollars, 0 or more"),
            "{bad}: {err}"
        );
    }
    let host = FakeHost::new();
    host.set_config("low_budget_usd", "-1");
    let r = router().route(&host, &three("normal").build()).await;
    assert!(
        r.error()
            .expect("refused")
            .to_string()
            .contains("low_budget_usd")
    );
}

#[tokio::test]
async fn a_provider_fits_when_its_context_holds_prompt_and_completion() {
    let host = FakeHost::new();
    let req = |max_output| {
        route_request("normal")
            .prompt_tokens(15_000)
            .max_output_tokens(max_output)
            .provider(provider("small", "s").max_context(16_000))
            .provider(provider("large", "l").price(0.001, 0.001))
            .build()
    };
    // 15,000 + 1,000 fits 16,000 exactly.
    let r = router().route(&host, &req(1_000)).await;
    assert_eq!(r.candidates(), ["small/s", "large/l"]);
    let r = router().route(&host, &req(1_001)).await;
    assert_eq!(r.candidates(), ["large/l"]);
}

#[tokio::test]
async fn router_config_returns_what_its_config_says() {
    let p = load(artifacts::ROUTER_CONFIG, "router-config", "1.0.0");
    let host = FakeHost::new();
    let req = route_request("code")
        .provider(provider("primary", "m1"))
        .provider(provider("backup", "m2").breaker("open"));
    let r = p.route(&host, &req.clone().build()).await;
    assert!(
        r.error()
            .unwrap()
            .to_string()
            .contains("config key candidates is not set")
    );
    host.set_config("candidates", "primary:m1, backup:m2");
    host.set_config("max_price_per_1k", "0.5");
    host.set_config("max_context", "1000");
    host.set_config("max_iterations", "4");
    let r = p.route(&host, &req.clone().build()).await;
    assert_eq!(r.candidates(), ["primary/m1"], "backup's breaker is open");
    let d = r.decision().unwrap();
    assert_eq!(
        (d.max_price_per_1k, d.max_context, d.max_iterations),
        (Some(0.5), Some(1000), Some(4))
    );
    host.set_config("skip_open", "false");
    let r = p.route(&host, &req.clone().hint("m2").build()).await;
    assert_eq!(r.candidates(), ["backup/m2", "primary/m1"]);
    assert!(r.logs().iter().any(|l| {
        l.message
            .contains("router-config: call 1 of this instance, 2 candidate(s) in mode code")
    }));
}

#[tokio::test]
async fn two_versions_of_ordered_router_disagree() {
    let v1 = load(artifacts::ORDERED_ROUTER_V1, "ordered-router", "1.0.0");
    let v2 = load(artifacts::ORDERED_ROUTER_V2, "ordered-router", "2.0.0");
    let host = FakeHost::new();
    let req = route_request("normal")
        .provider(provider("primary", "m1"))
        .provider(provider("backup", "m2"))
        .build();
    assert_eq!(
        v1.route(&host, &req).await.candidates(),
        ["primary/m1", "backup/m2"]
    );
    assert_eq!(
        v2.route(&host, &req).await.candidates(),
        ["backup/m2", "primary/m1"]
    );
}

#[tokio::test]
async fn broken_routers_end_in_errors_not_panics() {
    let host = FakeHost::new();
    let req = route_request("normal").provider(provider("a", "m")).build();
    let panicked = load(artifacts::ROUTER_PANIC, "router-panic", "1.0.0")
        .route(&host, &req)
        .await;
    assert_eq!(panicked.error().expect("panicked").code(), "panic");
    let empty = load(artifacts::ROUTER_EMPTY, "router-empty", "1.0.0")
        .route(&host, &req)
        .await;
    let err = empty.error().expect("refused");
    assert_eq!(err.code(), "invalid_output");
    assert_eq!(
        err.to_string(),
        "invalid route decision: it names no candidate"
    );
    // Limits apply to routers too.
    let limited = router()
        .route_with_limits(
            &host,
            &req,
            Limits {
                fuel: Some(1),
                ..Limits::default()
            },
        )
        .await;
    assert!(limited.error().is_some());
}
