//! Detection-to-sink latency of a critical alert (run with `cargo bench -p
//! warden-server --bench alerting`; release build). A server runs in this
//! process on SQLite with one webhook sink pointing at a local receiver on
//! loopback. Each round raises one new critical alert through the domain
//! function every subsystem calls when it detects a condition
//! (`Alerts::raise`), and measures the time from just before that call to
//! the receiver having parsed the webhook's body: the row written, the
//! notifier woken, the notification queued in the outbox in one
//! transaction, sent, and its delivery recorded. Rounds are spaced so that
//! each alert goes out alone, as a critical one does (no grouping window).
//!
//! The baseline, measured in the same run and interleaved with the alert
//! rounds: the bench itself POSTing the same kind of body to the same
//! receiver (one HTTP round trip on loopback). Target: p99 < 100 ms.
//!
//! `WARDEN_BENCH_ROUNDS` sets the number of alerts (default 300).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use warden_server::alerts::Severity;

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

type Arrivals = Arc<Mutex<mpsc::UnboundedSender<(String, Instant)>>>;

async fn receive(State(tx): State<Arrivals>, axum::Json(body): axum::Json<Value>) -> &'static str {
    let at = Instant::now();
    let key = body["alerts"][0]["dedup_key"]
        .as_str()
        .or_else(|| body["probe"].as_str())
        .unwrap_or("")
        .to_string();
    if let Ok(tx) = tx.lock() {
        let _ = tx.send((key, at));
    }
    "ok"
}

/// The arrival time of the body carrying `key`.
async fn wait(rx: &mut mpsc::UnboundedReceiver<(String, Instant)>, key: String) -> Instant {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some((k, at))) if k == key => return at,
            Ok(Some(_)) => continue,
            _ => panic!("{key} never arrived"),
        }
    }
}

fn main() {
    let rounds: usize = std::env::var("WARDEN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let receiver = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(Arc::new(Mutex::new(tx)));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            r#"listen = "127.0.0.1:0"
data_dir = "{data}"
plugin_dir = "{plugins}"
[auth]
admin_token = "{ADMIN}"
[alerting]
critical_group_window_ms = 0
[[alerting.sinks]]
name = "hook"
kind = "webhook"
url = "http://{receiver}/hook"
severities = ["critical"]
"#,
            data = dir.path().join("data").display(),
            plugins = dir.path().join("plugins").display(),
        );
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, config).expect("config");
        let config = warden_server::Config::load(Some(&path)).expect("config loads");
        let server = warden_server::start(config).await.expect("server starts");
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .expect("client");
        let url = format!("http://{receiver}/hook");

        let mut alert = Vec::with_capacity(rounds);
        let mut direct = Vec::with_capacity(rounds);
        for i in 0..rounds + 20 {
            // Baseline: one POST of a similar body, straight to the receiver.
            let probe = format!("probe-{i}");
            let sent = Instant::now();
            client
                .post(&url)
                .json(&json!({ "probe": probe, "alerts": [], "status": "firing" }))
                .send()
                .await
                .expect("direct post");
            let at = wait(&mut rx, probe).await;
            let d = at - sent;

            let key = format!("bench:{i}");
            let detected = Instant::now();
            server
                .app
                .alerts
                .raise(
                    None,
                    "breaker_open",
                    Severity::Critical,
                    &key,
                    "provider primary is failing; its breaker is open",
                    json!({ "round": i }),
                )
                .await
                .expect("raise");
            let at = wait(&mut rx, key).await;
            // The first rounds warm connections and caches.
            if i >= 20 {
                direct.push(d);
                alert.push(at - detected);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        alert.sort();
        direct.sort();
        let (a50, a99, amax) = (
            percentile(&alert, 0.5),
            percentile(&alert, 0.99),
            alert.last().copied().unwrap_or_default(),
        );
        let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
        println!("alerting: {rounds} critical alerts, one webhook sink on loopback, SQLite");
        println!(
            "  direct POST (baseline):  p50 {:.3} ms  p99 {:.3} ms",
            ms(d50),
            ms(d99)
        );
        println!(
            "  detection to sink:       p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({:.1}x / {:.1}x the baseline)",
            ms(a50),
            ms(a99),
            ms(amax),
            ms(a50) / ms(d50).max(1e-9),
            ms(a99) / ms(d99).max(1e-9)
        );
        println!(
            "  target p99 < 100 ms: {}",
            if a99 < Duration::from_millis(100) { "met" } else { "NOT met" }
        );
        let delivered = server
            .app
            .store
            .list_notifications(&warden_store::notifications::NotificationFilter {
                status: Some("delivered".to_string()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("history")
            .len();
        println!("  notifications recorded as delivered: {delivered}");
        server.shutdown(Duration::from_secs(5)).await;
    });
}
