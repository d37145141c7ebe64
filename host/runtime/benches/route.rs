//! What one routing-policy call costs (run with `cargo bench -p
//! warden-runtime --bench route`; release build). The gateway asks the
//! policy on every model request, so this is overhead every request pays.
//!
//! Each call is what the gateway makes: [`Runtime::route_request`] on a
//! loaded plugin, a fresh instance from the pre-instantiated component,
//! the decision checked. Calls run one after another on a multi-threaded
//! tokio runtime, after a warm-up; it prints the first call after loading,
//! then the mean, p50, p99 and max of the rest, for:
//!
//! - the bundled `cost-aware-router` on a request with four providers
//!   (reads its config, sorts, builds the decision);
//! - `ordered-router-v1`, a policy that does almost nothing: the floor of
//!   the call path;
//! - the bundled `tests-pass` gate through [`Runtime::evaluate_gate`]: the
//!   same machinery for another world, for comparison.
//!
//! `WARDEN_BENCH_CALLS` sets the measured calls per case (default 5,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_runtime::meta::{CapabilitySet, Limits};
use warden_runtime::types::{Mode, ProviderStatus, RouteRequest, Submission, TestResults};
use warden_runtime::{
    CallInfo, GateRequest, MemoryBackend, Plugin, RouteCall, Runtime, RuntimeConfig, SharedBackend,
};
use warden_test_artifacts as artifacts;

const WARM_UP: usize = 500;

fn provider(name: &str, models: &[&str], input: f64, output: f64, context: u32) -> ProviderStatus {
    ProviderStatus {
        name: name.into(),
        breaker: "closed".into(),
        models: models.iter().map(|m| m.to_string()).collect(),
        price_input_per_1k: input,
        price_output_per_1k: output,
        max_context: context,
    }
}

/// A request as the gateway builds it for a coding agent's call.
fn request() -> RouteRequest {
    RouteRequest {
        workspace: "acme".into(),
        mode: "normal".into(),
        model_hint: None,
        prompt_tokens: 2_400,
        max_output_tokens: Some(512),
        task_id: Some("01JD3Q1V5M8K2W4X6Y8Z0A1B2C".into()),
        stage: Some("implement".into()),
        budget_left_usd: Some(42.0),
        budget_left_tokens: Some(1_500_000),
        providers: vec![
            provider("openai", &["gpt-4o", "gpt-4o-mini"], 0.0025, 0.01, 128_000),
            provider(
                "openrouter",
                &["anthropic/claude-sonnet-4"],
                0.003,
                0.015,
                200_000,
            ),
            provider("vllm", &["qwen2.5-coder-32b"], 0.0002, 0.0006, 32_000),
            provider("ollama", &["llama3.1:8b"], 0.0, 0.0, 8_192),
        ],
    }
}

fn info(plugin: &Plugin) -> CallInfo {
    CallInfo {
        run_id: "bench".into(),
        workspace: "acme".into(),
        plugin: plugin.meta().name.clone(),
        version: plugin.meta().version.to_string(),
        digest: plugin.digest().to_string(),
        mode: Mode::Apply,
        actor: "bench".into(),
    }
}

fn load(rt: &Runtime, path: &str) -> Plugin {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    rt.load(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `calls` calls of `one` after the warm-up and prints a line.
/// `one` returns the fuel the call consumed (about one unit per wasm
/// instruction), which tells the guest's work from the host's.
async fn measure<F, Fut>(label: &str, calls: usize, mut one: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = u64>,
{
    let started = Instant::now();
    one().await;
    let first = started.elapsed();
    for _ in 0..WARM_UP {
        one().await;
    }
    let mut times = Vec::with_capacity(calls);
    let mut fuel = 0;
    for _ in 0..calls {
        let started = Instant::now();
        fuel = one().await;
        times.push(started.elapsed());
    }
    times.sort();
    let total: Duration = times.iter().sum();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "{label:<30} first {:>6.1} µs | mean {:>5.1} µs  p50 {:>5.1} µs  p99 {:>6.1} µs  max {:>6.1} µs | fuel {fuel:>6} | {calls} calls",
        micros(first),
        micros(total / calls as u32),
        micros(at(0.5)),
        micros(at(0.99)),
        micros(times[times.len() - 1]),
    );
}

async fn bench(calls: usize) {
    let rt = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let backend: SharedBackend = Arc::new(MemoryBackend::new());
    let config = Arc::new(Default::default());
    let req = request();

    for (label, path) in [
        (
            "route: cost-aware-router",
            artifacts::BUNDLED_COST_AWARE_ROUTER,
        ),
        ("route: ordered-router-v1", artifacts::ORDERED_ROUTER_V1),
    ] {
        let plugin = load(&rt, path);
        measure(label, calls, || {
            let call = RouteCall {
                info: info(&plugin),
                granted: CapabilitySet::default(),
                config: Arc::clone(&config),
                limits: Limits::default(),
                backend: backend.clone(),
            };
            let (rt, plugin, req) = (&rt, &plugin, &req);
            async move {
                let outcome = rt.route_request(plugin, call, req).await;
                assert!(outcome.result.is_ok(), "{:?}", outcome.result);
                outcome.usage.fuel
            }
        })
        .await;
    }

    let gate = load(&rt, artifacts::BUNDLED_TESTS_PASS);
    let submission = Submission {
        workspace: "acme".into(),
        task_id: "t1".into(),
        stage: "implement".into(),
        attempt: 1,
        diff: None,
        diff_stats: None,
        tests: Some(TestResults {
            passed: 120,
            failed: 0,
            skipped: 3,
            failures: Vec::new(),
        }),
        rubric: Vec::new(),
        artifacts: Vec::new(),
        text: None,
    };
    measure("gate: tests-pass (reference)", calls, || {
        let req = GateRequest {
            info: info(&gate),
            granted: CapabilitySet::default(),
            config: Arc::clone(&config),
            limits: Limits::default(),
            backend: backend.clone(),
        };
        let (rt, gate, submission) = (&rt, &gate, &submission);
        async move {
            let outcome = rt.evaluate_gate(gate, req, submission).await;
            assert!(outcome.result.is_ok(), "{:?}", outcome.result);
            outcome.usage.fuel
        }
    })
    .await;
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let calls = std::env::var("WARDEN_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000usize)
        .max(1);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    tokio.block_on(bench(calls));
}
