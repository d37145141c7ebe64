//! The quality-gate benchmark (run with `cargo bench -p warden-server
//! --bench gates`; release build). A server runs in this process on SQLite
//! with its bundled gates; the bench completes stages through the
//! scheduler, the same call the HTTP handler makes, and prints from one
//! run:
//!
//! - the time of a stage completion without gates (the baseline) and of a
//!   completion through three gates (`diff-size`, `secret-scan`,
//!   `tests-pass`, quorum `all`) with a realistic 200-line diff and test
//!   results, each median and p99, and
//! - the overhead of the gates: the difference of the medians and of the
//!   p99s (target: median overhead < 1 ms).
//!
//! Both kinds of completion are interleaved, so machine noise falls on
//! both alike. Each completion is timed alone; claiming and creating tasks
//! are not timed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_server::gates::StageResult;
use warden_server::scheduler::{ClaimOptions, CreateTask};

const ROUNDS: usize = 600;
const WARMUP: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A 200-line unified diff over 4 files, clean of secrets.
fn diff() -> String {
    let mut d = String::new();
    for f in 0..4 {
        d.push_str(&format!(
            "diff --git a/src/module_{f}.rs b/src/module_{f}.rs\n--- a/src/module_{f}.rs\n+++ b/src/module_{f}.rs\n@@ -1,10 +1,60 @@\n"
        ));
        for i in 0..50 {
            if i % 5 == 0 {
                d.push_str(&format!("-    let old_{i} = compute({i});\n"));
            } else {
                d.push_str(&format!(
                    "+    let value_{i} = compute_checked({i}).map_err(|e| Error::new(\"step {i}\", e))?;\n"
                ));
            }
        }
    }
    d
}

async fn create(app: &warden_server::app::App, ws: &str) -> String {
    let task: CreateTask = serde_json::from_value(json!({
        "title": "bench",
        "pipeline": ["implement", "verify"],
    }))
    .expect("task body");
    let (t, _) = app.scheduler.create(ws, task).await.expect("create");
    t.id
}

async fn claim(app: &warden_server::app::App, ws: &str) -> (String, i64) {
    let opts = ClaimOptions {
        worker_id: "bench".to_string(),
        max: 1,
        lease_ms: None,
        stages: Vec::new(),
        wait: Duration::ZERO,
    };
    let (claims, _) = app.scheduler.claim(ws, opts).await.expect("claim");
    let c = claims.first().expect("a claim");
    (c.task.id.clone(), c.run.id)
}

async fn complete_once(
    app: &warden_server::app::App,
    ws: &str,
    result: Option<StageResult>,
) -> Duration {
    create(app, ws).await;
    let (id, token) = claim(app, ws).await;
    let started = Instant::now();
    let (t, _) = app
        .scheduler
        .complete(ws, &id, token, Value::Null, result)
        .await
        .expect("complete");
    let took = started.elapsed();
    assert_eq!(t.stage, "verify", "the gates approved: {t:?}");
    // Out of the queue, so that the next claim finds the next task.
    app.scheduler.cancel(ws, &id).await.expect("cancel");
    took
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nplugin_dir = \"{}\"\n\
             [workspaces.gated.gates.implement]\ngates = [\"diff-size\", \"secret-scan\", \"tests-pass\"]\n\
             [auth]\nadmin_token = \"bench-admin-token-0123456789\"\n",
            dir.path().join("data").display(),
            dir.path().join("plugins").display()
        );
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, config).expect("config");
        let config = warden_server::Config::load(Some(&path)).expect("config loads");
        let server = warden_server::start(config).await.expect("server starts");
        let app = server.app.clone();
        let result: StageResult = serde_json::from_value(json!({
            "diff": diff(),
            "diff_stats": { "files_changed": 4, "insertions": 160, "deletions": 40 },
            "tests": { "passed": 412, "failed": 0, "skipped": 3 },
            "text": "implemented the checked computation",
        }))
        .expect("stage result");

        let (mut plain, mut gated) = (Vec::new(), Vec::new());
        for i in 0..WARMUP + ROUNDS {
            let p = complete_once(&app, "plain", Some(result.clone())).await;
            let g = complete_once(&app, "gated", Some(result.clone())).await;
            if i >= WARMUP {
                plain.push(p);
                gated.push(g);
            }
        }
        plain.sort();
        gated.sort();
        let (p50, p99) = (percentile(&plain, 0.5), percentile(&plain, 0.99));
        let (g50, g99) = (percentile(&gated, 0.5), percentile(&gated, 0.99));
        let over50 = ms(g50) - ms(p50);
        let over99 = ms(g99) - ms(p99);
        println!("gates: {ROUNDS} stage completions of each kind on SQLite, interleaved");
        println!(
            "  without gates (baseline)        median {:.3} ms  p99 {:.3} ms",
            ms(p50),
            ms(p99)
        );
        println!(
            "  through 3 gates (quorum all)    median {:.3} ms  p99 {:.3} ms",
            ms(g50),
            ms(g99)
        );
        println!(
            "  overhead of the three gates     median {over50:.3} ms  p99 {over99:.3} ms  \
             (ratio of medians {:.2}; target median overhead < 1 ms: {})",
            ms(g50) / ms(p50),
            if over50 < 1.0 { "met" } else { "NOT met" }
        );
        let verdicts = app
            .store
            .list_gate_verdicts("gated", None, 3)
            .await
            .expect("verdicts");
        let mut mean_gate_ms = 0.0;
        for v in &verdicts {
            assert_eq!(v.decision, "approve", "{v:?}");
            mean_gate_ms += v.wall_ms as f64 / verdicts.len() as f64;
        }
        println!("  (last transition's verdicts: {} approvals; each gate took {mean_gate_ms:.1} ms by its own wall clock, rounded down)", verdicts.len());
        server.shutdown(Duration::from_secs(5)).await;
    });
}
