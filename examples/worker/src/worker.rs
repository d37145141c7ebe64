//! The worker loop: claim, report, (heartbeat,) complete or fail, repeat.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng as _;
use serde_json::json;
use tokio::sync::watch;

use crate::client::{Claim, Client};
use crate::error::{Error, Result};

/// What a worker does and how much of it.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The workspace whose stages it claims.
    pub workspace: String,
    /// Its id; with `concurrency > 1` each loop is `<id>-<n>`.
    pub worker_id: String,
    /// Claim loops running in parallel.
    pub concurrency: usize,
    /// Stages asked for per claim (the API's `max`, 1 to 100).
    pub batch: u32,
    /// Lease length asked for (at least 1000 ms).
    pub lease_ms: u64,
    /// How long a claim waits on the server for work (long poll).
    pub wait_ms: u64,
    /// Simulated work per stage.
    pub work: Duration,
    /// Share of stages failed on purpose, 0.0 to 1.0.
    pub failure_rate: f64,
    /// Reports `status`, `tool_start`, `tool_result` and `token` events for
    /// each stage (four requests more per stage).
    pub events: bool,
    /// Only these stages (empty: any).
    pub stages: Vec<String>,
    /// Stop once this many tasks reached `done` through this worker (or
    /// through all the workers sharing its count, see
    /// [`Worker::share_progress`]; each of those stops when it sees the
    /// target passed after one of its own completions).
    pub target_tasks: Option<u64>,
    /// How long a loop keeps retrying while the server is unreachable or
    /// unavailable before it gives up (zero: stop at the first such error,
    /// abandoning its leases).
    pub retry_for: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            workspace: "default".to_string(),
            worker_id: "example-worker".to_string(),
            concurrency: 4,
            batch: 1,
            lease_ms: 30_000,
            wait_ms: 20_000,
            work: Duration::from_millis(100),
            failure_rate: 0.0,
            events: true,
            stages: Vec::new(),
            target_tasks: None,
            retry_for: Duration::from_secs(60),
        }
    }
}

impl WorkerConfig {
    fn check(&self) -> Result<()> {
        let id_ok = !self.worker_id.is_empty()
            && self.worker_id.len() <= 120
            && self
                .worker_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(Error::Config(format!(
                "worker id \"{}\" must be 1 to 120 letters, digits, '-' or '_'",
                self.worker_id
            )));
        }
        if self.concurrency == 0 {
            return Err(Error::Config("concurrency must be at least 1".into()));
        }
        if !(1..=100).contains(&self.batch) {
            return Err(Error::Config(format!(
                "batch size {} is out of range (1 to 100)",
                self.batch
            )));
        }
        if self.lease_ms < 1000 {
            return Err(Error::Config(format!(
                "lease of {} ms is too short (at least 1000)",
                self.lease_ms
            )));
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(Error::Config(format!(
                "failure rate {} is out of range (0.0 to 1.0)",
                self.failure_rate
            )));
        }
        Ok(())
    }
}

/// What the worker did.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Stages completed (`completed: true`).
    pub stages_completed: u64,
    /// Stages failed on purpose.
    pub stages_failed: u64,
    /// Tasks whose last stage this worker completed.
    pub tasks_done: u64,
    /// Stages whose lease was lost before they finished (stale or expired
    /// fencing token).
    pub leases_lost: u64,
    /// Claims that returned at least one stage.
    pub claims: u64,
    /// Claims that returned nothing (long poll ran out).
    pub empty_claims: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
    /// Per stage: the time from the claim's answer to the completion's.
    pub latencies: BTreeMap<String, Vec<Duration>>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.stages_completed += other.stages_completed;
        self.stages_failed += other.stages_failed;
        self.tasks_done += other.tasks_done;
        self.leases_lost += other.leases_lost;
        self.claims += other.claims;
        self.empty_claims += other.empty_claims;
        self.heartbeats += other.heartbeats;
        for (stage, mut l) in other.latencies {
            self.latencies.entry(stage).or_default().append(&mut l);
        }
    }

    /// The `p` quantile (0.0 to 1.0) of `stage`'s latencies (all stages
    /// with `None`), by nearest rank; `None` without samples.
    pub fn percentile(&self, stage: Option<&str>, p: f64) -> Option<Duration> {
        let mut all: Vec<Duration> = match stage {
            Some(s) => self.latencies.get(s)?.clone(),
            None => self.latencies.values().flatten().copied().collect(),
        };
        percentile(&mut all, p)
    }
}

/// The `p` quantile (0.0 to 1.0) of `samples` by nearest rank (sorts them);
/// `None` when empty.
pub fn percentile(samples: &mut [Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = (p.clamp(0.0, 1.0) * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

/// The end of a run: what was done, and why loops stopped early.
#[derive(Debug, Default)]
pub struct Summary {
    /// Totals over every loop.
    pub stats: Stats,
    /// One error per loop that stopped on an error (server gone, token
    /// refused, ...) rather than on the stop signal or the target.
    pub errors: Vec<Error>,
}

/// A worker: `concurrency` claim loops sharing one client.
pub struct Worker {
    client: Client,
    config: WorkerConfig,
    done: Arc<AtomicU64>,
}

struct Shared {
    client: Client,
    config: WorkerConfig,
    done: Arc<AtomicU64>,
    heartbeats: AtomicU64,
    stop: watch::Sender<bool>,
}

impl Worker {
    /// A worker of `client`'s server; checks the settings.
    pub fn new(client: Client, config: WorkerConfig) -> Result<Worker> {
        config.check()?;
        Ok(Worker {
            client,
            config,
            done: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Counts finished tasks in `done`, which other workers (of other
    /// hosts, say) may share: `target_tasks` then applies to their sum, and
    /// a caller can watch the progress.
    pub fn share_progress(mut self, done: Arc<AtomicU64>) -> Worker {
        self.done = done;
        self
    }

    /// Runs the loops until `stop` resolves, the target number of tasks is
    /// done, or every loop has stopped on an error. A loop that holds a
    /// lease when asked to stop finishes that stage first; one waiting for
    /// work stops at once.
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) -> Summary {
        let started = Instant::now();
        let (tx, rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            client: self.client,
            config: self.config,
            done: self.done,
            heartbeats: AtomicU64::new(0),
            stop: tx,
        });
        let stopper = {
            let shared = shared.clone();
            tokio::spawn(async move {
                stop.await;
                shared.stop.send_replace(true);
            })
        };
        let n = shared.config.concurrency;
        let mut loops = Vec::with_capacity(n);
        for i in 0..n {
            let id = if n == 1 {
                shared.config.worker_id.clone()
            } else {
                format!("{}-{i}", shared.config.worker_id)
            };
            loops.push(tokio::spawn(run_loop(shared.clone(), id, rx.clone())));
        }
        let mut summary = Summary::default();
        for l in loops {
            match l.await {
                Ok((stats, error)) => {
                    summary.stats.merge(stats);
                    summary.errors.extend(error);
                }
                Err(e) => summary
                    .errors
                    .push(Error::Config(format!("a worker loop panicked: {e}"))),
            }
        }
        stopper.abort();
        summary.stats.heartbeats = shared.heartbeats.load(Ordering::SeqCst);
        summary.stats.elapsed = started.elapsed();
        summary
    }
}

/// Sleeps with exponential backoff while `retry_for` allows, else gives the
/// error back.
struct Retry {
    first: Option<Instant>,
    delay: Duration,
}

impl Retry {
    fn new() -> Retry {
        Retry {
            first: None,
            delay: Duration::from_millis(50),
        }
    }

    async fn again(&mut self, e: Error, retry_for: Duration, worker: &str) -> Result<()> {
        if !e.is_retryable() {
            return Err(e);
        }
        let first = *self.first.get_or_insert_with(Instant::now);
        if first.elapsed() >= retry_for {
            return Err(e);
        }
        if !e.is_rate_limit() {
            tracing::warn!(worker, error = %e, "retrying in {:?}", self.delay);
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        Ok(())
    }

    fn ok(&mut self) {
        self.first = None;
        self.delay = Duration::from_millis(50);
    }
}

async fn run_loop(
    shared: Arc<Shared>,
    id: String,
    mut stop: watch::Receiver<bool>,
) -> (Stats, Option<Error>) {
    let mut stats = Stats::default();
    let c = &shared.config;
    let mut retry = Retry::new();
    loop {
        if *stop.borrow() {
            return (stats, None);
        }
        let claimed = tokio::select! {
            r = shared.client.claim(&c.workspace, &id, c.batch, c.lease_ms, c.wait_ms, &c.stages) => r,
            // A loop waiting for work stops at once; its claim request is
            // dropped (a stage granted at that very moment expires).
            _ = stop.changed() => return (stats, None),
        };
        let claims = match claimed {
            Ok(c) => {
                retry.ok();
                c
            }
            Err(e) => match retry.again(e, c.retry_for, &id).await {
                Ok(()) => continue,
                Err(e) => return (stats, Some(e)),
            },
        };
        if claims.claims.is_empty() {
            stats.empty_claims += 1;
            if let Some(idle) = &claims.idle {
                tracing::debug!(worker = %id, reason = %idle.reason, "{}", idle.message);
            }
            continue;
        }
        stats.claims += 1;
        let held_at = Instant::now();
        let results = futures::future::join_all(
            claims
                .claims
                .iter()
                .map(|claim| process(&shared, &id, claim, held_at)),
        )
        .await;
        let mut fatal = None;
        for (claim, result) in claims.claims.iter().zip(results) {
            match result {
                Ok(Done::Completed { task_done, latency }) => {
                    stats.stages_completed += 1;
                    stats
                        .latencies
                        .entry(claim.stage.clone())
                        .or_default()
                        .push(latency);
                    if task_done {
                        stats.tasks_done += 1;
                        let total = shared.done.fetch_add(1, Ordering::SeqCst) + 1;
                        if c.target_tasks.is_some_and(|t| total >= t) {
                            shared.stop.send_replace(true);
                        }
                    }
                }
                Ok(Done::Failed) => stats.stages_failed += 1,
                Ok(Done::Repeat) => {}
                Err(e) if e.is_lease_lost() => {
                    stats.leases_lost += 1;
                    tracing::warn!(worker = %id, task = %claim.task_id, stage = %claim.stage, error = %e, "lease lost");
                }
                Err(e) => {
                    tracing::warn!(worker = %id, task = %claim.task_id, stage = %claim.stage, error = %e, "stage abandoned");
                    fatal.get_or_insert(e);
                }
            }
        }
        if let Some(e) = fatal {
            // The server gave up on us (or went away) mid-stage, even after
            // retries: stop, leaving the leases to expire.
            return (stats, Some(e));
        }
    }
}

enum Done {
    Completed {
        task_done: bool,
        latency: Duration,
    },
    Failed,
    /// This token had completed or failed the stage already.
    Repeat,
}

/// Calls `f` until it succeeds, retrying what is retryable within
/// `retry_for`.
async fn with_retry<T, F, Fut>(retry_for: Duration, worker: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut retry = Retry::new();
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => retry.again(e, retry_for, worker).await?,
        }
    }
}

/// One stage: events, simulated work with heartbeats, then complete or
/// fail.
async fn process(shared: &Shared, id: &str, claim: &Claim, held_at: Instant) -> Result<Done> {
    let c = &shared.config;
    let client = &shared.client;
    let ws = c.workspace.as_str();
    // An event the server refuses (4xx) is logged and the stage goes on:
    // events are a report, not the work. Only an unreachable server stops
    // the stage.
    let event = |kind: &'static str, data: serde_json::Value| async move {
        let sent = with_retry(c.retry_for, id, || {
            client.report(ws, &claim.task_id, kind, data.clone())
        })
        .await;
        match sent {
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                tracing::warn!(worker = %id, task = %claim.task_id, kind, error = %e, "event refused");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    };
    if c.events {
        let status = json!({ "state": "working", "stage": claim.stage, "worker": id, "attempt": claim.attempt });
        event("status", status).await?;
        let start = json!({ "name": "synthetic_work", "stage": claim.stage });
        event("tool_start", start).await?;
    }
    work(shared, id, claim).await?;
    let fails = c.failure_rate > 0.0 && rand::rng().random_bool(c.failure_rate);
    if c.events {
        let result = json!({ "name": "synthetic_work", "ok": !fails });
        event("tool_result", result).await?;
        let (input, output) = {
            let mut rng = rand::rng();
            (rng.random_range(200..2000), rng.random_range(50..500))
        };
        let tokens = json!({ "input_tokens": input, "output_tokens": output });
        event("token", tokens).await?;
    }
    if fails {
        let error = format!("synthetic failure at stage \"{}\"", claim.stage);
        let out = with_retry(c.retry_for, id, || client.fail(ws, claim, &error, true)).await?;
        return Ok(if out.completed {
            Done::Failed
        } else {
            Done::Repeat
        });
    }
    let output = json!({ "worker": id, "stage": claim.stage, "attempt": claim.attempt });
    // Completion is idempotent per token, so retrying it after a broken
    // connection is safe: a repeat answers `completed: false`.
    let out = with_retry(c.retry_for, id, || {
        client.complete(ws, claim, output.clone())
    })
    .await?;
    if !out.completed {
        return Ok(Done::Repeat);
    }
    Ok(Done::Completed {
        task_done: out.task.state == "done",
        latency: held_at.elapsed(),
    })
}

/// Simulated work; heartbeats every third of the lease while it lasts
/// longer than that.
async fn work(shared: &Shared, id: &str, claim: &Claim) -> Result<()> {
    let c = &shared.config;
    let every = Duration::from_millis(c.lease_ms / 3);
    let end = tokio::time::Instant::now() + c.work;
    loop {
        let now = tokio::time::Instant::now();
        if now >= end {
            return Ok(());
        }
        if end - now <= every {
            tokio::time::sleep_until(end).await;
            return Ok(());
        }
        tokio::time::sleep(every).await;
        with_retry(c.retry_for, id, || {
            shared.client.heartbeat(&c.workspace, claim, c.lease_ms)
        })
        .await?;
        shared.heartbeats.fetch_add(1, Ordering::Relaxed);
    }
}
