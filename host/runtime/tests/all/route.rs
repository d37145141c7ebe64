//! Routing policies: `route` through the shared call machinery, decision
//! checks, and the routing-policy world's limits (SPEC GW-3, PL-1, PL-5),
//! with the routers of `tests/plugins`.

use std::sync::Arc;

use warden_runtime::meta::{CapabilitySet, Limits, PluginKind};
use warden_runtime::types::{Mode, ProviderStatus, RouteDecision, RouteRequest};
use warden_runtime::{
    CallInfo, LogSource, MemoryBackend, Plugin, RouteCall, RouteOutcome, RunError, Runtime,
};
use warden_test_artifacts as artifacts;

use crate::{Run, load, run, runtime};

fn provider(name: &str, breaker: &str, models: &[&str]) -> ProviderStatus {
    ProviderStatus {
        name: name.into(),
        breaker: breaker.into(),
        models: models.iter().map(|m| m.to_string()).collect(),
        price_input_per_1k: 0.001,
        price_output_per_1k: 0.002,
        max_context: 32_000,
    }
}

/// A request in `normal` mode with three providers; `backup`'s breaker is
/// open.
fn request() -> RouteRequest {
    RouteRequest {
        workspace: "ws".into(),
        mode: "normal".into(),
        model_hint: None,
        prompt_tokens: 1_200,
        max_output_tokens: Some(256),
        task_id: Some("t42".into()),
        stage: Some("implement".into()),
        budget_left_usd: Some(12.5),
        budget_left_tokens: None,
        providers: vec![
            provider("primary", "closed", &["model-a", "model-a-mini"]),
            provider("backup", "open", &["model-b"]),
            provider("local", "half-open", &["qwen-coder"]),
        ],
    }
}

/// Asks `plugin` where `request` goes, with `config` and `limits`. The
/// caller's mode is `diagnose`: a policy has no modes, so it must not
/// matter.
async fn route(
    rt: &Runtime,
    plugin: &Plugin,
    config: &[(&str, &str)],
    limits: Limits,
    request: &RouteRequest,
) -> RouteOutcome {
    let call = RouteCall {
        info: CallInfo {
            run_id: format!("route-{}", plugin.meta().name),
            workspace: "ws".into(),
            plugin: plugin.meta().name.clone(),
            version: plugin.meta().version.to_string(),
            digest: plugin.digest().to_string(),
            mode: Mode::Diagnose,
            actor: "test".into(),
        },
        granted: CapabilitySet::default(),
        config: Arc::new(
            config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        limits,
        backend: Arc::new(MemoryBackend::new()),
    };
    rt.route_request(plugin, call, request).await
}

fn candidates(outcome: &RouteOutcome) -> Vec<String> {
    match &outcome.result {
        Ok(d) => d
            .candidates
            .iter()
            .map(|c| format!("{}/{}", c.provider, c.model))
            .collect(),
        Err(e) => panic!("expected a decision, got: {e}"),
    }
}

fn decision(outcome: &RouteOutcome) -> &RouteDecision {
    outcome.result.as_ref().expect("a decision")
}

const CANDIDATES: (&str, &str) = (
    "candidates",
    "primary:model-a, backup:model-b, local:qwen-coder",
);

#[tokio::test]
async fn a_router_decides_from_its_request_and_config() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::ROUTER_CONFIG);
    assert_eq!(plugin.meta().kind, PluginKind::RoutingPolicy);
    assert!(plugin.meta().capabilities.names().is_empty());
    // The world offers log and config only, and neither needs a grant.
    for import in plugin.imports() {
        assert!(
            ["log", "config"].contains(&import.interface.as_str()),
            "{import}"
        );
        assert_eq!(import.capability, None);
    }

    let config = [
        CANDIDATES,
        ("max_price_per_1k", "0.25"),
        ("max_context", "16000"),
        ("max_iterations", "7"),
    ];
    let outcome = route(&rt, &plugin, &config, Limits::default(), &request()).await;
    // `backup`'s breaker is open: router-config leaves it out by default.
    assert_eq!(
        candidates(&outcome),
        ["primary/model-a", "local/qwen-coder"]
    );
    let d = decision(&outcome);
    assert_eq!(
        (d.max_price_per_1k, d.max_context, d.max_iterations),
        (Some(0.25), Some(16_000), Some(7))
    );
    assert_eq!(d.reason, "router-config in mode normal");
    let logs: Vec<(LogSource, &str)> = outcome
        .logs
        .iter()
        .map(|l| (l.source, l.message.as_str()))
        .collect();
    assert_eq!(
        logs,
        [(
            LogSource::Plugin,
            "router-config: call 1 of this instance, 2 candidate(s) in mode normal"
        )]
    );
    assert!(outcome.usage.fuel > 0);
    // A log line and config reads: no step is spent, nothing is audited.
    assert_eq!(outcome.usage.steps, 0);
    assert_eq!(outcome.usage.host_calls, 0);
}

#[tokio::test]
async fn the_hint_and_the_open_breakers_reach_the_policy() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::ROUTER_CONFIG);
    let mut req = request();
    req.model_hint = Some("qwen-coder".into());
    req.mode = "code".into();
    let outcome = route(&rt, &plugin, &[CANDIDATES], Limits::default(), &req).await;
    assert_eq!(
        candidates(&outcome),
        ["local/qwen-coder", "primary/model-a"]
    );
    let d = decision(&outcome);
    assert_eq!(d.reason, "router-config in mode code");
    assert_eq!(
        (d.max_price_per_1k, d.max_context, d.max_iterations),
        (None, None, None)
    );

    // With skip_open = false the open provider is offered as well (the
    // host skips it anyway; the policy may choose to list it).
    let outcome = route(
        &rt,
        &plugin,
        &[CANDIDATES, ("skip_open", "false")],
        Limits::default(),
        &request(),
    )
    .await;
    assert_eq!(
        candidates(&outcome),
        ["primary/model-a", "backup/model-b", "local/qwen-coder"]
    );
}

#[tokio::test]
async fn a_policy_error_is_passed_on_as_it_said_it() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::ROUTER_CONFIG);
    let outcome = route(&rt, &plugin, &[], Limits::default(), &request()).await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::Plugin("config key candidates is not set".into())
    );
    let outcome = route(
        &rt,
        &plugin,
        &[CANDIDATES, ("max_context", "lots")],
        Limits::default(),
        &request(),
    )
    .await;
    let text = outcome.result.unwrap_err().to_string();
    assert!(
        text.starts_with("plugin returned an error: invalid config value max_context = \"lots\""),
        "{text}"
    );
}

#[tokio::test]
async fn unsound_decisions_are_refused_with_what_is_wrong() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::ROUTER_CONFIG);
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("candidates", "primary:model-a, local:")],
            "candidate 2 (provider \"local\", model \"\") has an empty name",
        ),
        (
            &[("candidates", ":model-a")],
            "candidate 1 (provider \"\", model \"model-a\") has an empty name",
        ),
        (
            &[CANDIDATES, ("max_price_per_1k", "NaN")],
            "max_price_per_1k NaN is not a price (expected a finite number of dollars, 0 or more)",
        ),
        (
            &[CANDIDATES, ("max_price_per_1k", "-0.5")],
            "max_price_per_1k -0.5 is not a price (expected a finite number of dollars, 0 or more)",
        ),
        (
            &[CANDIDATES, ("max_context", "0")],
            "max_context 0 would refuse every request (leave it unset for no limit)",
        ),
        (
            &[CANDIDATES, ("max_iterations", "0")],
            "max_iterations 0 would refuse every request (leave it unset for no limit)",
        ),
    ];
    for (config, why) in cases {
        let outcome = route(&rt, &plugin, config, Limits::default(), &request()).await;
        let err = outcome.result.unwrap_err();
        assert_eq!(
            err,
            RunError::InvalidOutput(format!("route decision: {why}"))
        );
        assert_eq!(err.code(), "invalid_output");
        assert!(!err.is_limit());
    }

    // Every provider's breaker is open and skip_open holds: no candidate.
    let outcome = route(
        &rt,
        &plugin,
        &[("candidates", "backup:model-b")],
        Limits::default(),
        &request(),
    )
    .await;
    assert_eq!(
        outcome.result.unwrap_err().to_string(),
        "invalid route decision: it names no candidate"
    );
}

#[tokio::test]
async fn a_decision_without_candidates_is_refused() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::ROUTER_EMPTY);
    let outcome = route(&rt, &plugin, &[], Limits::default(), &request()).await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::InvalidOutput("route decision: it names no candidate".into())
    );
}

#[tokio::test]
async fn an_oversized_decision_is_refused() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::ROUTER_CONFIG);
    let many = (0..200)
        .map(|i| format!("provider-{i}:model-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let config = [("candidates", many.as_str())];
    let outcome = route(
        &rt,
        &plugin,
        &config,
        Limits {
            output_kib: Some(1),
            ..Limits::default()
        },
        &request(),
    )
    .await;
    match outcome.result {
        Err(RunError::OutputTooLarge { bytes, limit_kib }) => {
            assert!(bytes > 1024, "{bytes}");
            assert_eq!(limit_kib, 1);
        }
        other => panic!("expected OutputTooLarge, got {other:?}"),
    }
    // The same decision fits the default cap.
    let outcome = route(&rt, &plugin, &config, Limits::default(), &request()).await;
    assert_eq!(candidates(&outcome).len(), 200);
}

#[tokio::test]
async fn two_versions_of_one_policy_load_side_by_side() {
    let rt = runtime();
    let v1 = load(&rt, artifacts::ORDERED_ROUTER_V1);
    let v2 = load(&rt, artifacts::ORDERED_ROUTER_V2);
    for (p, version) in [(&v1, "1.0.0"), (&v2, "2.0.0")] {
        assert_eq!(p.meta().name, "ordered-router");
        assert_eq!(p.meta().version.to_string(), version);
        assert_eq!(p.meta().kind, PluginKind::RoutingPolicy);
    }
    assert_ne!(v1.digest(), v2.digest());

    let first = route(&rt, &v1, &[], Limits::default(), &request()).await;
    assert_eq!(
        candidates(&first),
        ["primary/model-a", "backup/model-b", "local/qwen-coder"]
    );
    assert_eq!(
        decision(&first).reason,
        "ordered-router 1.0.0: configuration order"
    );
    let second = route(&rt, &v2, &[], Limits::default(), &request()).await;
    assert_eq!(
        candidates(&second),
        ["local/qwen-coder", "backup/model-b", "primary/model-a"]
    );
    assert_eq!(
        decision(&second).reason,
        "ordered-router 2.0.0: reverse order"
    );
}

#[tokio::test]
async fn a_panicking_router_reports_its_message() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::ROUTER_PANIC);
    let outcome = route(&rt, &plugin, &[], Limits::default(), &request()).await;
    let err = outcome.result.unwrap_err();
    assert_eq!(err.code(), "panic");
    let text = err.to_string();
    assert!(text.starts_with("plugin panicked: "), "{text}");
    assert!(
        text.contains("router exploded on purpose in mode normal"),
        "{text}"
    );
    assert!(
        outcome.logs.iter().any(|l| l.source == LogSource::Stderr),
        "the panic message is kept in the log"
    );
}

#[tokio::test]
async fn a_router_runs_under_its_limits() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::ROUTER_CONFIG);
    let outcome = route(
        &rt,
        &plugin,
        &[CANDIDATES],
        Limits {
            fuel: Some(1_000),
            ..Limits::default()
        },
        &request(),
    )
    .await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::FuelExhausted { fuel: 1_000 }
    );
    assert_eq!(outcome.limits.fuel, 1_000);
}

#[tokio::test]
async fn every_call_gets_a_fresh_instance() {
    // Concurrent calls on one loaded plugin, each with its own request:
    // each answer is its own request's, whatever ran beside it.
    let rt = Arc::new(runtime());
    let plugin = Arc::new(load(&rt, artifacts::ROUTER_CONFIG));
    let mut calls = Vec::new();
    for i in 0..24 {
        let (rt, plugin) = (rt.clone(), plugin.clone());
        calls.push(tokio::spawn(async move {
            let mut req = request();
            let hinted = if i % 2 == 0 { "qwen-coder" } else { "model-a" };
            req.model_hint = Some(hinted.into());
            let outcome = route(&rt, &plugin, &[CANDIDATES], Limits::default(), &req).await;
            (hinted, candidates(&outcome))
        }));
    }
    for call in calls {
        let (hinted, got) = call.await.expect("the call's task");
        let want = if hinted == "qwen-coder" {
            ["local/qwen-coder", "primary/model-a"]
        } else {
            ["primary/model-a", "local/qwen-coder"]
        };
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn nothing_survives_from_one_call_to_the_next() {
    // router-config counts its calls in a static. Calls one after another
    // reuse the same pool slots, whose memory is restored in place when
    // the kernel allows it, else reset with madvise; a small decision and
    // one of 200 candidates dirty different amounts of it. Each call must
    // still see a fresh instance.
    let rt = runtime();
    let plugin = load(&rt, artifacts::ROUTER_CONFIG);
    let many = (0..200)
        .map(|i| format!("provider-{i}:model-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    for i in 0..60 {
        let list = if i % 3 == 2 {
            many.as_str()
        } else {
            CANDIDATES.1
        };
        let outcome = route(
            &rt,
            &plugin,
            &[("candidates", list)],
            Limits::default(),
            &request(),
        )
        .await;
        assert!(outcome.result.is_ok(), "call {i}: {:?}", outcome.result);
        let logged = &outcome.logs[0].message;
        assert!(
            logged.starts_with("router-config: call 1 of this instance,"),
            "call {i}: {logged}"
        );
    }
}

#[tokio::test]
async fn routers_run_only_as_routers() {
    let rt = runtime();
    let backend = Arc::new(MemoryBackend::new());
    let gate = load(&rt, artifacts::GATE_ECHO);
    let outcome = route(&rt, &gate, &[], Limits::default(), &request()).await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::WrongKind {
            expected: "routing-policy",
            actual: "quality-gate"
        }
    );
    let router = load(&rt, artifacts::ROUTER_CONFIG);
    let outcome = run(&rt, &router, &backend, Run::default()).await;
    assert_eq!(
        outcome.result.unwrap_err().to_string(),
        "plugin is a routing-policy, not a playbook"
    );
}
