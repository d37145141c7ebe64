//! The model gateway benchmark (run with `cargo bench -p warden-server
//! --bench gateway`; release build). A server runs in this process on
//! SQLite with the bundled `cost-aware-router`, in front of the local
//! stand-in upstream (`tests/upstream`, request recording off), and a
//! reqwest client sends chat completions over loopback. It prints, from one
//! run:
//!
//! - **overhead**: at 100 and at 1,000 requests per second (open loop: each
//!   request leaves at its scheduled time, whatever the others do), the
//!   latency of calling the stand-in directly (the baseline) and through
//!   the gateway (routing policy call, budgets, accounting on), p50 / p99,
//!   and the added latency, p50 / p99 (target: p99 added < 1 ms at 1,000
//!   rps). Direct and gateway phases alternate in slices of a second so
//!   that machine noise falls on both alike;
//! - **failover**: with the primary's breaker open, the latency of a
//!   request answered by the backup through the gateway against calling
//!   the backup directly (target: < 5 ms added);
//! - **stream**: how long a stream chunk takes from the stand-in writing it
//!   to the client reading it, through the gateway and directly.
//!
//! `WARDEN_BENCH=overhead,failover,stream` picks parts (default: all);
//! `WARDEN_BENCH_SECS` sets the seconds per rate (default 6).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_test_upstream::{Behavior, Options, Upstream};

const ADMIN: &str = "bench-admin-token-0123456789";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn body() -> Value {
    json!({
        "model": "auto",
        "max_tokens": 16,
        "messages": [
            { "role": "system", "content": "You are a careful coding agent working on a Rust repository." },
            { "role": "user", "content": "Summarise the failing test output in one sentence and propose the next step." },
        ],
    })
}

/// Sends `n` requests at `rate` per second to `url` (open loop); returns
/// each one's latency, sorted, and the failures.
async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    rate: u32,
    n: usize,
) -> (Vec<Duration>, usize) {
    let payload = Arc::new(serde_json::to_vec(&body()).expect("body"));
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let at = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        tokio::time::sleep_until(at).await;
        let client = client.clone();
        let url = url.to_string();
        let key = key.to_string();
        let payload = payload.clone();
        handles.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = client
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(payload.as_ref().clone())
                .send()
                .await;
            let ok = match r {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            (sent.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0;
    for h in handles {
        match h.await {
            Ok((d, true)) => latencies.push(d),
            _ => failed += 1,
        }
    }
    latencies.sort();
    (latencies, failed)
}

async fn start_server(dir: &std::path::Path, primary: &str, backup: &str) -> warden_server::Server {
    let config = format!(
        r#"listen = "127.0.0.1:0"
data_dir = "{data}"
plugin_dir = "{plugins}"
[auth]
admin_token = "{ADMIN}"
[http]
rate_limit_per_sec = 100000
[gateway]
breaker_backoff_ms = [600000]
[[gateway.providers]]
name = "primary"
base_url = "{primary}"
models = ["small"]
price_input_per_1k = 0.0001
price_output_per_1k = 0.0004
[[gateway.providers]]
name = "backup"
base_url = "{backup}"
models = ["large"]
price_input_per_1k = 0.001
price_output_per_1k = 0.002
"#,
        data = dir.join("data").display(),
        plugins = dir.join("plugins").display(),
    );
    let path = dir.join("warden.toml");
    std::fs::write(&path, config).expect("config");
    let config = warden_server::Config::load(Some(&path)).expect("config loads");
    warden_server::start(config).await.expect("server starts")
}

async fn overhead(client: &reqwest::Client, gateway: &str, direct: &str) {
    let secs: u32 = std::env::var("WARDEN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    println!(
        "overhead: chat completions, open loop, {secs} s per rate and path, alternating 1 s slices"
    );
    for rate in [100u32, 1_000] {
        // Warm the pools and caches.
        open_loop(client, gateway, ADMIN, rate, rate as usize / 2).await;
        open_loop(client, direct, "", rate, rate as usize / 2).await;
        let (mut g, mut d) = (Vec::new(), Vec::new());
        let (mut gf, mut df) = (0, 0);
        for _ in 0..secs {
            let (l, f) = open_loop(client, direct, "", rate, rate as usize).await;
            d.extend(l);
            df += f;
            let (l, f) = open_loop(client, gateway, ADMIN, rate, rate as usize).await;
            g.extend(l);
            gf += f;
        }
        d.sort();
        g.sort();
        let (d50, d99) = (percentile(&d, 0.5), percentile(&d, 0.99));
        let (g50, g99) = (percentile(&g, 0.5), percentile(&g, 0.99));
        println!(
            "  {rate:>5} rps  direct p50 {:.3} ms p99 {:.3} ms ({} ok, {df} failed) | gateway p50 {:.3} ms p99 {:.3} ms ({} ok, {gf} failed)",
            ms(d50),
            ms(d99),
            d.len(),
            ms(g50),
            ms(g99),
            g.len()
        );
        println!(
            "  {rate:>5} rps  added p50 {:.3} ms, p99 {:.3} ms (gateway/direct: p50 {:.2}x, p99 {:.2}x){}",
            ms(g50.saturating_sub(d50)),
            ms(g99.saturating_sub(d99)),
            g50.as_secs_f64() / d50.as_secs_f64().max(1e-9),
            g99.as_secs_f64() / d99.as_secs_f64().max(1e-9),
            if rate == 1_000 {
                if g99.saturating_sub(d99) < Duration::from_millis(1) {
                    "  [target p99 added < 1 ms: met]"
                } else {
                    "  [target p99 added < 1 ms: NOT met]"
                }
            } else {
                ""
            }
        );
    }
}

/// Sequential requests: each one's latency, sorted.
async fn sequential(client: &reqwest::Client, url: &str, key: &str, n: usize) -> Vec<Duration> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = Instant::now();
        let r = client
            .post(url)
            .bearer_auth(key)
            .json(&body())
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "status {}", r.status());
        r.bytes().await.expect("body");
        v.push(sent.elapsed());
    }
    v.sort();
    v
}

async fn failover(client: &reqwest::Client, gateway: &str, primary: &Upstream, backup: &Upstream) {
    println!("failover: the primary fails; after 5 failures its breaker is open");
    primary.handle().set(Behavior::Fail { status: 503 });
    for _ in 0..5 {
        let r = client
            .post(gateway)
            .bearer_auth(ADMIN)
            .json(&body())
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success());
    }
    let direct = format!("{}/chat/completions", backup.base_url());
    let before = primary.handle().request_count();
    let (mut g, mut d) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        d.extend(sequential(client, &direct, "", 30).await);
        g.extend(sequential(client, gateway, ADMIN, 30).await);
    }
    assert_eq!(
        primary.handle().request_count(),
        before,
        "nothing reached the open primary"
    );
    d.sort();
    g.sort();
    let (d50, d99, g50, g99) = (
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        percentile(&g, 0.5),
        percentile(&g, 0.99),
    );
    println!(
        "  backup direct p50 {:.3} ms p99 {:.3} ms | through the gateway, primary open: p50 {:.3} ms p99 {:.3} ms",
        ms(d50),
        ms(d99),
        ms(g50),
        ms(g99)
    );
    println!(
        "  added p50 {:.3} ms, p99 {:.3} ms{}",
        ms(g50.saturating_sub(d50)),
        ms(g99.saturating_sub(d99)),
        if g50.saturating_sub(d50) < Duration::from_millis(5) {
            "  [target < 5 ms added: met]"
        } else {
            "  [target < 5 ms added: NOT met]"
        }
    );
    primary.handle().set(Behavior::Healthy);
}

/// Streams `n` replies with 20 ms between chunks; for every content chunk,
/// the time from the stand-in writing it to the client reading it.
async fn stream_delays(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    upstream: &Upstream,
    n: usize,
) -> Vec<Duration> {
    let mut delays = Vec::new();
    upstream.handle().set_stream(5, 20);
    for _ in 0..n {
        let mut b = body();
        b["model"] = json!("small");
        b["stream"] = json!(true);
        let mut r = client
            .post(url)
            .bearer_auth(key)
            .json(&b)
            .send()
            .await
            .expect("request");
        let mut reads = Vec::new();
        while let Ok(Some(chunk)) = r.chunk().await {
            reads.push((Instant::now(), chunk));
        }
        let sent = upstream.handle().last_stream_timings();
        // Content chunks are 1..=5; each is read in its own read (20 ms
        // apart): match each to the first read after it was written.
        for s in sent.iter().filter(|s| (1..=5).contains(&s.index)) {
            if let Some((at, _)) = reads.iter().find(|(at, _)| *at >= s.at) {
                delays.push(at.duration_since(s.at));
            }
        }
    }
    upstream.handle().set_stream(5, 0);
    delays.sort();
    delays
}

async fn stream(client: &reqwest::Client, gateway: &str, primary: &Upstream) {
    println!(
        "stream: chunk written by the stand-in -> read by the client (5 chunks, 20 ms apart, 40 streams)"
    );
    let direct = format!("{}/chat/completions", primary.base_url());
    let d = stream_delays(client, &direct, "", primary, 40).await;
    let g = stream_delays(client, gateway, ADMIN, primary, 40).await;
    println!(
        "  direct p50 {:.3} ms p99 {:.3} ms | through the gateway p50 {:.3} ms p99 {:.3} ms ({} chunks){}",
        ms(percentile(&d, 0.5)),
        ms(percentile(&d, 0.99)),
        ms(percentile(&g, 0.5)),
        ms(percentile(&g, 0.99)),
        g.len(),
        match (
            percentile(&g, 0.5) < Duration::from_millis(1),
            percentile(&g, 0.99) < Duration::from_millis(1),
        ) {
            (true, true) => "  [target: within 1 ms: met at p50 and p99]",
            (true, false) => "  [target: within 1 ms: met at p50, NOT at p99]",
            _ => "  [target: within 1 ms: NOT met]",
        }
    );
}

fn main() {
    let parts =
        std::env::var("WARDEN_BENCH").unwrap_or_else(|_| "overhead,failover,stream".to_string());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let stand_in = |name: &str, model: &str| Options {
            name: name.to_string(),
            models: vec![model.to_string()],
            record: false,
            ..Options::default()
        };
        let primary = Upstream::start(stand_in("primary", "small"))
            .await
            .expect("primary");
        let backup = Upstream::start(stand_in("backup", "large"))
            .await
            .expect("backup");
        let dir = tempfile::tempdir().expect("tempdir");
        let server = start_server(dir.path(), &primary.base_url(), &backup.base_url()).await;
        let gateway = format!("http://{}/v1/chat/completions", server.addr);
        let direct = format!("{}/chat/completions", primary.base_url());
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .tcp_nodelay(true)
            .build()
            .expect("client");
        // The gateway answers through the primary (cheapest first).
        let r: Value = client
            .post(&gateway)
            .bearer_auth(ADMIN)
            .json(&body())
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert!(
            r["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or("")
                .starts_with("primary"),
            "{r}"
        );
        if parts.contains("overhead") {
            overhead(&client, &gateway, &direct).await;
        }
        if parts.contains("stream") {
            stream(&client, &gateway, &primary).await;
        }
        if parts.contains("failover") {
            failover(&client, &gateway, &primary, &backup).await;
        }
        server.app.gateway.flush().await;
        let calls = server
            .app
            .store
            .gateway_usage("default", &[], 0, i64::MAX)
            .await
            .expect("usage");
        if let Some(total) = calls.first() {
            println!(
                "accounting: {} calls booked, {} prompt + {} completion tokens, ${:.4}",
                total.calls,
                total.prompt_tokens,
                total.completion_tokens,
                total.cost_micros as f64 / 1e6
            );
        }
        server.shutdown(Duration::from_secs(5)).await;
    });
}
