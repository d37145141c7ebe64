//! The scheduler benchmark (run with `cargo bench -p warden-server --bench
//! scheduler`; release build). Every host is a real `warden serve` process
//! on loopback, driven over HTTP by the example worker (`examples/worker`)
//! running in this process. Prints, from one run:
//!
//! 1. `pipeline`: 100 synthetic tasks taken through every stage of the
//!    default 8-stage pipeline on SQLite by the example worker (with its
//!    four events per stage): per-stage p50 / p95 / p99 latency from claim
//!    to completion, and the total time;
//! 2. `throughput`: stage claim+complete throughput on SQLite (one host)
//!    and on PostgreSQL with one and with three hosts sharing the database,
//!    with batch size 1 and 10 (target: >= 5,000 completions per second on
//!    PostgreSQL with one host);
//! 3. `latency`: enqueue-to-claim latency, p50 / p99: workers long-poll, a
//!    task is created, and the clock stops when a worker's claim returns
//!    it (target: p50 < 2 ms).
//!
//! `WARDEN_BENCH=pipeline,throughput,latency` picks sections (default:
//! all); `WARDEN_BENCH_TASKS` sets the tasks of each throughput run
//! (default 2,500, of 4 stages each). PostgreSQL is `WARDEN_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each run works in a fresh
//! schema, dropped afterwards. Without PostgreSQL its figures are skipped,
//! loudly.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{AssertSqlSafe, Connection};
use tokio::sync::{mpsc, watch};
use warden_example_worker::{Client, Worker, WorkerConfig, percentile};

const ADMIN: &str = "bench-admin-token-0123456789";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A `warden serve` child process; killed when dropped.
struct Host {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `warden serve` on its own data directory, on `database_url` when
/// given (else its own SQLite file), and waits until it is ready.
async fn spawn_host(database_url: Option<&str>) -> Host {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let db = database_url
        .map(|u| format!("database_url = \"{u}\"\n"))
        .unwrap_or_default();
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nplugin_dir = \"{}\"\nbundled_plugins = false\n{db}\
         [http]\nrate_limit_per_sec = 10000000\n[auth]\nadmin_token = \"{ADMIN}\"\n",
        dir.path().join("data").display(),
        dir.path().join("plugins").display(),
    );
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, config).expect("write warden.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn warden serve");
    let mut host = Host {
        url: format!("http://127.0.0.1:{port}"),
        child,
        _dir: dir,
    };
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{}/ready", host.url)).send().await
            && r.status() == 200
        {
            return host;
        }
        if let Ok(Some(status)) = host.child.try_wait() {
            panic!("warden serve exited before it was ready: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "warden serve at {} not ready after 60 s",
            host.url
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh PostgreSQL schema: the URL that selects it, and how to drop it.
struct Schema {
    base: String,
    name: String,
    url: String,
}

impl Schema {
    async fn create() -> Option<Schema> {
        let base = std::env::var("WARDEN_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
        let connect = sqlx::PgConnection::connect(&base);
        let mut conn = match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                eprintln!("\nWARNING: PostgreSQL figures SKIPPED: {base} is unreachable: {e}\n");
                return None;
            }
            Err(_) => {
                eprintln!("\nWARNING: PostgreSQL figures SKIPPED: {base} did not answer in 10 s\n");
                return None;
            }
        };
        let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .expect("create the bench schema");
        let _ = conn.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
        Some(Schema { base, name, url })
    }

    async fn drop_it(self) {
        let mut conn = sqlx::PgConnection::connect(&self.base)
            .await
            .expect("connect to drop the bench schema");
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&mut conn)
            .await
            .expect("drop the bench schema");
        let _ = conn.close().await;
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".to_string(), |d| {
        format!("{:.2}", d.as_secs_f64() * 1000.0)
    })
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// Creates `n` tasks with `pipeline` in `ws`, 16 requests at a time,
/// spread over `hosts`.
async fn create_tasks(hosts: &[Client], ws: &str, n: usize, pipeline: &[&str]) {
    let next = Arc::new(AtomicU64::new(0));
    let mut creators = Vec::new();
    for i in 0..16 {
        let client = hosts[i % hosts.len()].clone();
        let (next, ws) = (next.clone(), ws.to_string());
        let pipeline: Vec<String> = pipeline.iter().map(|s| s.to_string()).collect();
        creators.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::SeqCst) as usize;
                if k >= n {
                    return;
                }
                let body = json!({ "title": format!("bench task {k}"), "pipeline": pipeline });
                client.create_task(&ws, &body).await.expect("create a task");
            }
        }));
    }
    for c in creators {
        c.await.expect("creator");
    }
}

/// Runs one worker per host, `loops` claim loops in all, until `tasks`
/// tasks are done; returns the wall time until the last one was and the
/// stage completions counted.
async fn drive(
    hosts: &[Client],
    ws: &str,
    loops: usize,
    config: WorkerConfig,
    tasks: u64,
) -> (Duration, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut workers = Vec::new();
    for (i, client) in hosts.iter().enumerate() {
        let share = loops / hosts.len() + usize::from(i < loops % hosts.len());
        let config = WorkerConfig {
            workspace: ws.to_string(),
            worker_id: format!("bench-h{i}"),
            concurrency: share.max(1),
            ..config.clone()
        };
        let worker = Worker::new(client.clone(), config)
            .expect("worker settings")
            .share_progress(done.clone());
        let mut rx = stop_rx.clone();
        workers.push(tokio::spawn(worker.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        })));
    }
    while done.load(Ordering::SeqCst) < tasks {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    stop_tx.send_replace(true);
    let mut completed = 0;
    for w in workers {
        let summary = w.await.expect("worker");
        if let Some(e) = summary.errors.first() {
            panic!("a worker loop failed: {e}");
        }
        completed += summary.stats.stages_completed;
    }
    (elapsed, completed)
}

async fn pipeline() {
    const TASKS: usize = 100;
    let host = spawn_host(None).await;
    let client = Client::new(&host.url, ADMIN).expect("client");
    let ws = "pipeline";
    // The default pipeline, as the scheduler defines it.
    let pipeline = warden_server::scheduler::DEFAULT_PIPELINE;
    create_tasks(std::slice::from_ref(&client), ws, TASKS, pipeline).await;
    let config = WorkerConfig {
        workspace: ws.to_string(),
        worker_id: "pipeline".to_string(),
        concurrency: 8,
        batch: 1,
        wait_ms: 1000,
        work: Duration::ZERO,
        events: true,
        target_tasks: Some(TASKS as u64),
        ..WorkerConfig::default()
    };
    let summary = Worker::new(client.clone(), config)
        .expect("worker settings")
        .run(std::future::pending())
        .await;
    if let Some(e) = summary.errors.first() {
        panic!("a worker loop failed: {e}");
    }
    let s = &summary.stats;
    println!(
        "1. {TASKS} tasks through the default 8-stage pipeline on SQLite, example worker: 8 loops, batch 1, \
         4 events per stage (status, tool_start, tool_result, token), no simulated work"
    );
    println!(
        "   {} stage completions, {} tasks done, in {:.2} s ({:.0} stages/s incl. events)",
        s.stages_completed,
        s.tasks_done,
        s.elapsed.as_secs_f64(),
        s.stages_completed as f64 / s.elapsed.as_secs_f64()
    );
    println!("   claim to completion, ms (the 4 event reports are part of it):");
    println!(
        "   {:<10} {:>5} {:>8} {:>8} {:>8}",
        "stage", "n", "p50", "p95", "p99"
    );
    for &stage in pipeline {
        let n = s.latencies.get(stage).map_or(0, Vec::len);
        let p = |q| s.percentile(Some(stage), q);
        println!(
            "   {stage:<10} {n:>5} {:>8} {:>8} {:>8}",
            ms(p(0.5)),
            ms(p(0.95)),
            ms(p(0.99))
        );
    }
    let p = |q| s.percentile(None, q);
    println!(
        "   {:<10} {:>5} {:>8} {:>8} {:>8}",
        "all",
        s.stages_completed,
        ms(p(0.5)),
        ms(p(0.95)),
        ms(p(0.99))
    );
    assert_eq!(
        (s.stages_completed, s.tasks_done),
        (8 * TASKS as u64, TASKS as u64),
        "every stage of every task exactly once"
    );
}

/// Throughput of one database set-up: each batch size in its own
/// workspace, tasks of `STAGES` stages created first (not timed).
async fn throughput_on(label: &str, hosts: &[Host]) -> Vec<(u32, f64)> {
    let tasks: u64 = std::env::var("WARDEN_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_500);
    const STAGES: [&str; 4] = ["a", "b", "c", "d"];
    const LOOPS: usize = 32;
    let clients: Vec<Client> = hosts
        .iter()
        .map(|h| Client::new(&h.url, ADMIN).expect("client"))
        .collect();
    let mut out = Vec::new();
    for batch in [1u32, 10] {
        let ws = format!("tp-b{batch}");
        create_tasks(&clients, &ws, tasks as usize, &STAGES).await;
        let config = WorkerConfig {
            batch,
            wait_ms: 1000,
            work: Duration::ZERO,
            events: false,
            ..WorkerConfig::default()
        };
        let (elapsed, completed) = drive(&clients, &ws, LOOPS, config, tasks).await;
        let rate = completed as f64 / elapsed.as_secs_f64();
        println!(
            "   {label:<28} batch {batch:>2}: {rate:>7.0} completions/s ({completed} stages of {tasks} tasks in {:.2} s, {LOOPS} loops)",
            elapsed.as_secs_f64()
        );
        out.push((batch, rate));
    }
    out
}

async fn throughput() {
    println!(
        "2. stage claim+complete throughput over HTTP (example worker, no events, no work; the worker runs \
         on the same 2 cores as the hosts)"
    );
    let sqlite = spawn_host(None).await;
    let normal = throughput_on("SQLite, 1 host", std::slice::from_ref(&sqlite)).await;
    drop(sqlite);
    // The same on `synchronous = FULL` (the opt-in that survives a power
    // cut), in this run: what that durability costs on this machine's disk.
    let full_dir = tempfile::tempdir().expect("tempdir");
    let full_url = format!(
        "sqlite://{}?synchronous=full",
        full_dir.path().join("warden.db").display()
    );
    let sqlite = spawn_host(Some(&full_url)).await;
    let full = throughput_on("SQLite, synchronous=full", std::slice::from_ref(&sqlite)).await;
    drop(sqlite);
    for ((batch, f), (_, n)) in full.iter().zip(&normal) {
        println!(
            "   SQLite synchronous=FULL / NORMAL, batch {batch:>2}: {:.2}",
            f / n
        );
    }
    println!("   (SQLite is single-host: three hosts need PostgreSQL)");
    let Some(schema) = Schema::create().await else {
        println!("   PostgreSQL: SKIPPED (unreachable)");
        return;
    };
    let one = spawn_host(Some(&schema.url)).await;
    let pg1 = throughput_on("PostgreSQL, 1 host", std::slice::from_ref(&one)).await;
    drop(one);
    schema.drop_it().await;
    let best = pg1.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    let b1 = pg1.first().map_or(0.0, |(_, r)| *r);
    println!(
        "   target >= 5,000 completions/s on PostgreSQL with one host: batch 1 {} ({b1:.0}), best batch {} ({best:.0})",
        met(b1 >= 5000.0),
        met(best >= 5000.0)
    );
    let Some(schema) = Schema::create().await else {
        return;
    };
    let mut three = vec![spawn_host(Some(&schema.url)).await];
    for _ in 0..2 {
        three.push(spawn_host(Some(&schema.url)).await);
    }
    let pg3 = throughput_on("PostgreSQL, 3 hosts", &three).await;
    drop(three);
    schema.drop_it().await;
    for ((batch, r1), (_, r3)) in pg1.iter().zip(&pg3) {
        println!(
            "   PostgreSQL 3 hosts / 1 host, batch {batch:>2}: {:.2}x",
            r3 / r1
        );
    }
}

/// Enqueue-to-claim latency: `waiters` loops long-poll on `claim_hosts`;
/// tasks are created one at a time on `create_host`; the clock runs from
/// sending the create request to a claim's answer holding the task.
async fn latency_on(
    label: &str,
    ws: &'static str,
    create_host: &Client,
    claim_hosts: &[Client],
    samples: usize,
) -> Option<Duration> {
    const WAITERS: usize = 4;
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let mut loops = Vec::new();
    for i in 0..WAITERS {
        let client = claim_hosts[i % claim_hosts.len()].clone();
        let tx = tx.clone();
        loops.push(tokio::spawn(async move {
            let id = format!("waiter-{i}");
            loop {
                let claims = client
                    .claim(ws, &id, 1, 30_000, 30_000, &[])
                    .await
                    .expect("claim");
                let at = Instant::now();
                for c in &claims.claims {
                    let _ = tx.send((c.task_id.clone(), at));
                }
                for c in &claims.claims {
                    client.complete(ws, c, json!({})).await.expect("complete");
                }
            }
        }));
    }
    // Let every waiter reach its long poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut lat = Vec::with_capacity(samples);
    let mut create_rtt = Vec::with_capacity(samples);
    let mut probes = Vec::with_capacity(samples);
    for k in 0..samples + 20 {
        let t0 = Instant::now();
        let body = json!({ "title": format!("latency probe {k}"), "pipeline": ["work"] });
        let task = create_host.create_task(ws, &body).await.expect("create");
        let created = t0.elapsed();
        let claimed_at = loop {
            let (id, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a claim within 10 s")
                .expect("waiters alive");
            if id == task.id {
                break at;
            }
        };
        // The first 20 warm connections and caches up.
        if k >= 20 {
            lat.push(claimed_at.saturating_duration_since(t0));
            create_rtt.push(created);
            probes.push(task.id);
        }
        // Let the claimer complete and go back to its long poll.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for l in loops {
        l.abort();
    }
    // The hosts' own view: the task's creation to its stage run's claim,
    // both stamped in the database (millisecond resolution).
    let mut server_side = Vec::with_capacity(samples);
    let http = reqwest::Client::new();
    for id in &probes {
        let url = format!("{}/v1/workspaces/{ws}/tasks/{id}", create_host.base_url());
        let task: serde_json::Value = http
            .get(url)
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("get the task")
            .json()
            .await
            .expect("a task");
        let at = |v: &serde_json::Value| {
            humantime::parse_rfc3339(v.as_str().expect("a time")).expect("an RFC 3339 time")
        };
        let created = at(&task["created_at"]);
        let claimed = at(&task["stage_runs"][0]["claimed_at"]);
        server_side.push(claimed.duration_since(created).unwrap_or_default());
    }
    let p50 = percentile(&mut lat, 0.5);
    println!(
        "   {label:<46} p50 {:>7} ms  p99 {:>7} ms  ({samples} samples)",
        ms(p50),
        ms(percentile(&mut lat, 0.99)),
    );
    println!(
        "   {:<46} create request alone p50 {} ms; in the database, created_at to claimed_at p50 {} ms, p99 {} ms",
        "",
        ms(percentile(&mut create_rtt, 0.5)),
        ms(percentile(&mut server_side, 0.5)),
        ms(percentile(&mut server_side, 0.99)),
    );
    p50
}

async fn latency() {
    const SAMPLES: usize = 500;
    println!(
        "3. enqueue-to-claim latency (4 workers long-polling; from sending the create request to the claim's answer)"
    );
    let sqlite = spawn_host(None).await;
    let c = Client::new(&sqlite.url, ADMIN).expect("client");
    let p50 = latency_on(
        "SQLite, 1 host",
        "latency",
        &c,
        std::slice::from_ref(&c),
        SAMPLES,
    )
    .await;
    println!(
        "   target p50 < 2 ms on SQLite: {}",
        met(p50.is_some_and(|p| p < Duration::from_millis(2)))
    );
    drop(sqlite);
    let Some(schema) = Schema::create().await else {
        println!("   PostgreSQL: SKIPPED (unreachable)");
        return;
    };
    {
        let hosts = [
            spawn_host(Some(&schema.url)).await,
            spawn_host(Some(&schema.url)).await,
        ];
        let clients: Vec<Client> = hosts
            .iter()
            .map(|h| Client::new(&h.url, ADMIN).expect("client"))
            .collect();
        let p50 = latency_on(
            "PostgreSQL, same host",
            "latency-local",
            &clients[0],
            &clients[..1],
            SAMPLES,
        )
        .await;
        println!(
            "   target p50 < 2 ms on PostgreSQL: {}",
            met(p50.is_some_and(|p| p < Duration::from_millis(2)))
        );
        latency_on(
            "PostgreSQL, created on another host (wake-up)",
            "latency-remote",
            &clients[0],
            &clients[1..],
            SAMPLES,
        )
        .await;
    }
    schema.drop_it().await;
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
    // WARDEN_BENCH=pipeline,throughput,latency picks sections (default: all).
    let only = std::env::var("WARDEN_BENCH").unwrap_or_default();
    let on = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    rt.block_on(async {
        if on("pipeline") {
            pipeline().await;
        }
        if on("throughput") {
            throughput().await;
        }
        if on("latency") {
            latency().await;
        }
    });
}
