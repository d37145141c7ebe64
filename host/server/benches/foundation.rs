//! The foundation benchmark (run with `cargo bench -p warden-server --bench
//! foundation`; release build). Prints, from one run:
//!
//! 1. the median time to instantiate and call a no-op playbook through
//!    Warden's runtime and through bare wasmtime, with the same `.wasm` and
//!    the same engine (so the same settings), and their ratio (target <= 1.2);
//! 2. HTTP-triggered runs per second of that playbook with persistence on
//!    SQLite, with p50 and p99 latency;
//! 3. cold versus warm (compile cache) start with 20 plugins in the plugin
//!    directory (target: warm < 1 s).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_runtime::meta::{CapabilitySet, Limits};
use warden_runtime::types::Mode;
use warden_runtime::{CallInfo, MemoryBackend, RunRequest, Runtime, RuntimeConfig};
use wasmtime::Store;
use wasmtime::component::{ComponentType, Lift, Linker, Lower, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

// The playbook world's types, declared by hand for the bare-wasmtime side
// (no Warden code involved).
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(enum)]
#[repr(u8)]
enum BareMode {
    #[component(name = "diagnose")]
    Diagnose,
    #[component(name = "plan")]
    #[expect(dead_code, reason = "part of the WIT enum")]
    Plan,
    #[component(name = "apply")]
    #[expect(dead_code, reason = "part of the WIT enum")]
    Apply,
}

#[derive(ComponentType, Lower)]
#[component(record)]
struct BareContext {
    #[component(name = "run-id")]
    run_id: String,
    workspace: String,
    mode: BareMode,
}

#[derive(ComponentType, Lift, Debug)]
#[component(enum)]
#[repr(u8)]
enum BareSeverity {
    #[component(name = "info")]
    #[expect(dead_code, reason = "built by Lift from the guest's answer only")]
    Info,
    #[component(name = "warning")]
    #[expect(dead_code, reason = "part of the WIT enum")]
    Warning,
    #[component(name = "critical")]
    #[expect(dead_code, reason = "part of the WIT enum")]
    Critical,
}

#[derive(ComponentType, Lift, Debug)]
#[component(record)]
struct BareFinding {
    severity: BareSeverity,
    code: String,
    summary: String,
    evidence: Option<String>,
}

#[derive(ComponentType, Lift, Debug)]
#[component(record)]
struct BareReport {
    summary: String,
    findings: Vec<BareFinding>,
    #[component(name = "manual-actions")]
    manual_actions: Vec<String>,
}

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn runtime_vs_bare() {
    let bytes = std::fs::read(warden_test_artifacts::NOOP).expect("noop.wasm");
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let plugin = runtime.load(&bytes).expect("noop loads");
    let backend = Arc::new(MemoryBackend::new());
    let config = Arc::new(BTreeMap::new());

    // Bare wasmtime: the same engine, a linker with WASI only, a typed call.
    let engine = runtime.engine().clone();
    let component = wasmtime::component::Component::new(&engine, &bytes).expect("compile");
    let mut linker = Linker::<BareState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    let pre = linker.instantiate_pre(&component).expect("pre");

    let warden_call = || {
        let req = RunRequest {
            info: CallInfo {
                run_id: "bench".into(),
                workspace: "bench".into(),
                plugin: "noop".into(),
                version: "1.0.0".into(),
                digest: plugin.digest().to_string(),
                mode: Mode::Diagnose,
                actor: "bench".into(),
            },
            input: "null".into(),
            granted: CapabilitySet::new(),
            config: config.clone(),
            limits: Limits::default(),
            backend: backend.clone(),
        };
        runtime.run_playbook(&plugin, req)
    };
    let bare_call = || async {
        let mut store = Store::new(
            &engine,
            BareState {
                wasi: WasiCtxBuilder::new().build(),
                table: ResourceTable::new(),
            },
        );
        store.set_fuel(1_000_000_000_000).expect("fuel");
        store.set_epoch_deadline(500);
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .expect("instantiate");
        let run = instance
            .get_typed_func::<(BareContext, &str), (Result<BareReport, String>,)>(&mut store, "run")
            .expect("run export");
        let ctx = BareContext {
            run_id: "bench".into(),
            workspace: "bench".into(),
            mode: BareMode::Diagnose,
        };
        let (out,) = run
            .call_async(&mut store, (ctx, "null"))
            .await
            .expect("call");
        out.expect("report")
    };

    // Warm up both, then interleave blocks so that drift hits both alike.
    for _ in 0..500 {
        let _ = warden_call().await.result.expect("warden run");
        let _ = bare_call().await;
    }
    let (mut warden, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        for _ in 0..250 {
            let t = Instant::now();
            let o = warden_call().await;
            warden.push(t.elapsed());
            assert!(o.result.is_ok());
        }
        for _ in 0..250 {
            let t = Instant::now();
            let r = bare_call().await;
            bare.push(t.elapsed());
            // Both sides lift the whole report; check it is the same one.
            let f = &r.findings[0];
            assert!(r.summary == "nothing to do" && r.manual_actions.is_empty());
            assert!(
                matches!(f.severity, BareSeverity::Info)
                    && f.code == "noop"
                    && f.summary == "ran"
                    && f.evidence.is_none()
            );
        }
    }
    warden.sort();
    bare.sort();
    let (wm, bm) = (percentile(&warden, 0.5), percentile(&bare, 0.5));
    println!(
        "1. instantiate + call of a no-op playbook, {} calls each",
        warden.len()
    );
    println!(
        "   bare wasmtime      median {:8.1} µs   p99 {:8.1} µs",
        us(bm),
        us(percentile(&bare, 0.99))
    );
    println!(
        "   warden runtime     median {:8.1} µs   p99 {:8.1} µs",
        us(wm),
        us(percentile(&warden, 0.99))
    );
    let ratio = wm.as_secs_f64() / bm.as_secs_f64();
    println!(
        "   ratio warden/bare  {ratio:.3}   (target <= 1.2: {})",
        if ratio <= 1.2 { "met" } else { "NOT met" }
    );
}

/// HTTP-triggered runs on SQLite at the default `synchronous = NORMAL`
/// (an acknowledged run survives a crash of Warden) and at `FULL` (the
/// `?synchronous=full` opt-in: it survives a power cut too), one after
/// the other in the same run, and their ratio: what that costs on this
/// machine's disk.
async fn http_runs() {
    let normal = http_runs_at(None).await;
    let full = http_runs_at(Some("full")).await;
    for ((clients, f), (_, n)) in full.iter().zip(&normal) {
        println!(
            "   {clients} client(s): synchronous=FULL / NORMAL runs/s {:.2}",
            f / n
        );
    }
}

/// Runs/s per client count, printed with latencies.
async fn http_runs_at(synchronous: Option<&str>) -> Vec<(usize, f64)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(warden_test_artifacts::NOOP, plugins.join("noop.wasm")).expect("copy");
    let database = match synchronous {
        Some(level) => format!(
            "database_url = \"sqlite://{}?synchronous={level}\"\n",
            dir.path().join("warden.db").display()
        ),
        None => String::new(),
    };
    let config = warden_server::Config::parse(&format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nplugin_dir = \"{}\"\n{database}[auth]\nadmin_token = \"bench-admin-token-0123456789\"\n[http]\nrate_limit_per_sec = 1000000\n",
        dir.path().join("data").display(),
        plugins.display()
    ))
    .expect("config");
    let level = synchronous.unwrap_or("normal (default)");
    let mut rates = Vec::new();
    let server = warden_server::start(config).await.expect("server");
    let url = format!(
        "http://{}/v1/workspaces/bench/playbooks/noop/runs?wait=true",
        server.addr
    );
    let client = reqwest::Client::new();

    let one = |client: reqwest::Client, url: String| async move {
        let t = Instant::now();
        let resp = client
            .post(&url)
            .bearer_auth("bench-admin-token-0123456789")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["status"], "succeeded");
        t.elapsed()
    };
    for _ in 0..50 {
        one(client.clone(), url.clone()).await;
    }
    for concurrency in [1usize, 8] {
        let duration = Duration::from_secs(5);
        let started = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..concurrency {
            let (client, url) = (client.clone(), url.clone());
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while started.elapsed() < duration {
                    lat.push(one(client.clone(), url.clone()).await);
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.expect("client"));
        }
        let elapsed = started.elapsed();
        all.sort();
        let rate = all.len() as f64 / elapsed.as_secs_f64();
        rates.push((concurrency, rate));
        println!(
            "2. HTTP-triggered runs (?wait=true, SQLite, synchronous={level}), {concurrency} client(s): {:.0} runs/s over {} runs, p50 {:.2} ms, p99 {:.2} ms",
            rate,
            all.len(),
            us(percentile(&all, 0.5)) / 1000.0,
            us(percentile(&all, 0.99)) / 1000.0
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
    rates
}

/// 20 distinct plugins: the no-op playbook as versions 1.0.0 to 1.0.9 and
/// 1.1.0 to 1.1.9, each with its own digest and its own compilation (a
/// version is immutable, so 20 builds of one version would load as one).
/// The version is rewritten in place, at the same length, so every size
/// in the binary stays right.
fn twenty_plugins(dir: &std::path::Path) {
    let bytes = std::fs::read(warden_test_artifacts::NOOP).expect("noop.wasm");
    // The metadata is in the binary twice: the custom section the host
    // reads at load, and the data the guest's own `meta` export returns.
    let from = br#""version":"1.0.0""#;
    let at: Vec<usize> = (0..bytes.len().saturating_sub(from.len()))
        .filter(|&i| bytes[i..].starts_with(from))
        .collect();
    assert!(!at.is_empty(), "noop's metadata names version 1.0.0");
    std::fs::create_dir_all(dir).expect("dir");
    for i in 0..20u8 {
        let mut b = bytes.clone();
        let version = format!(r#""version":"1.{}.{}""#, i / 10, i % 10);
        for &a in &at {
            b[a..a + from.len()].copy_from_slice(version.as_bytes());
        }
        std::fs::write(dir.join(format!("plugin-{i:02}.wasm")), b).expect("write");
    }
}

async fn cold_and_warm_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    twenty_plugins(&plugins);
    let config = || {
        warden_server::Config::parse(&format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nplugin_dir = \"{}\"\nbundled_plugins = false\n[auth]\nadmin_token = \"bench-admin-token-0123456789\"\n",
            dir.path().join("data").display(),
            plugins.display()
        ))
        .expect("config")
    };
    let t = Instant::now();
    let server = warden_server::start(config()).await.expect("cold start");
    let cold = t.elapsed();
    let loaded = server.app.registry.versions("noop").len();
    server.shutdown(Duration::from_secs(5)).await;
    let t = Instant::now();
    let server = warden_server::start(config()).await.expect("warm start");
    let warm = t.elapsed();
    let loaded_warm = server.app.registry.versions("noop").len();
    server.shutdown(Duration::from_secs(5)).await;
    assert_eq!((loaded, loaded_warm), (20, 20));
    println!("3. start with 20 plugins in the plugin directory (until ready to serve)");
    println!(
        "   cold (compiling)     {:8.1} ms",
        cold.as_secs_f64() * 1000.0
    );
    println!(
        "   warm (compile cache) {:8.1} ms   (target < 1 s: {}), {:.1}x faster than cold",
        warm.as_secs_f64() * 1000.0,
        if warm < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        },
        cold.as_secs_f64() / warm.as_secs_f64()
    );
}

fn main() {
    // `cargo test --benches` runs benches with --test: keep that quick.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    // WARDEN_BENCH=runtime,http,start picks sections (default: all).
    let only = std::env::var("WARDEN_BENCH").unwrap_or_default();
    let on = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    rt.block_on(async {
        if on("runtime") {
            runtime_vs_bare().await;
        }
        if on("http") {
            http_runs().await;
        }
        if on("start") {
            cold_and_warm_start().await;
        }
    });
}
