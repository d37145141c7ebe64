//! `warden-worker`: claims stages of a Warden workspace, simulates work on
//! them and completes them; prints per-stage latency when it stops (after
//! `--tasks N` finished tasks, or on Ctrl-C).

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use serde_json::json;
use warden_example_worker::{Client, Stats, Worker, WorkerConfig};

/// An example worker for Warden: claims task stages, reports events,
/// completes them.
#[derive(Parser, Debug)]
#[command(name = "warden-worker", version)]
struct Args {
    /// The Warden server.
    #[arg(long, env = "WARDEN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API token with the `agent` role (or above) in the workspace.
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true)]
    token: String,
    /// The workspace to work in.
    #[arg(long, short = 'w', default_value = "default")]
    workspace: String,
    /// The worker's id; parallel loops are `<id>-0`, `<id>-1`, ...
    #[arg(long, default_value = "example-worker")]
    worker_id: String,
    /// Claim loops running in parallel.
    #[arg(long, short = 'c', default_value_t = 4)]
    concurrency: usize,
    /// Stages asked for per claim (1 to 100).
    #[arg(long, short = 'b', default_value_t = 1)]
    batch: u32,
    /// Lease length in milliseconds (heartbeats keep longer work alive).
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
    /// How long a claim waits on the server for work, in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    wait_ms: u64,
    /// Simulated work per stage, in milliseconds.
    #[arg(long, default_value_t = 100)]
    work_ms: u64,
    /// Share of stages to fail on purpose (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// Do not report status, tool and token events.
    #[arg(long)]
    no_events: bool,
    /// Only these stages (repeat the flag; default: any).
    #[arg(long = "stage")]
    stages: Vec<String>,
    /// Stop after this many tasks reached `done`.
    #[arg(long)]
    tasks: Option<u64>,
    /// Create this many synthetic tasks before starting.
    #[arg(long, default_value_t = 0)]
    create: u64,
    /// Keep retrying this many seconds while the server is unreachable.
    #[arg(long, default_value_t = 60)]
    retry_secs: u64,
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".to_string(), |d| {
        format!("{:.1}", d.as_secs_f64() * 1000.0)
    })
}

fn print_stats(s: &Stats) {
    println!(
        "{} stage(s) completed, {} failed on purpose, {} task(s) done, {} lease(s) lost, {} heartbeat(s), in {:.2} s",
        s.stages_completed,
        s.stages_failed,
        s.tasks_done,
        s.leases_lost,
        s.heartbeats,
        s.elapsed.as_secs_f64()
    );
    if s.latencies.is_empty() {
        return;
    }
    println!("claim to completion, ms:");
    println!(
        "  {:<12} {:>6} {:>9} {:>9} {:>9}",
        "stage", "n", "p50", "p95", "p99"
    );
    for (stage, l) in &s.latencies {
        let p = |q| s.percentile(Some(stage), q);
        println!(
            "  {stage:<12} {:>6} {:>9} {:>9} {:>9}",
            l.len(),
            ms(p(0.5)),
            ms(p(0.95)),
            ms(p(0.99))
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let client = Client::new(&args.url, &args.token)?;
    for i in 0..args.create {
        let body = json!({ "title": format!("synthetic task {i}"), "body": "created by warden-worker --create" });
        client
            .create_task(&args.workspace, &body)
            .await
            .with_context(|| format!("creating synthetic task {i}"))?;
    }
    if args.create > 0 {
        eprintln!(
            "created {} task(s) in workspace \"{}\"",
            args.create, args.workspace
        );
    }
    let config = WorkerConfig {
        workspace: args.workspace,
        worker_id: args.worker_id,
        concurrency: args.concurrency,
        batch: args.batch,
        lease_ms: args.lease_ms,
        wait_ms: args.wait_ms,
        work: Duration::from_millis(args.work_ms),
        failure_rate: args.failure_rate,
        events: !args.no_events,
        stages: args.stages,
        target_tasks: args.tasks,
        retry_for: Duration::from_secs(args.retry_secs),
    };
    let worker = Worker::new(client, config)?;
    let summary = worker
        .run(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopping: finishing the stages in hand (Ctrl-C again to abort)");
                tokio::spawn(async {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        // Leases in hand are abandoned; they expire.
                        std::process::exit(130);
                    }
                });
            }
        })
        .await;
    print_stats(&summary.stats);
    if let Some(e) = summary.errors.first() {
        anyhow::bail!(
            "{} worker loop(s) stopped on an error; the first: {e}",
            summary.errors.len()
        );
    }
    Ok(())
}
