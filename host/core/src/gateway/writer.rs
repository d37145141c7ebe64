//! Books the gateway's calls off the request path: one transaction per
//! batch (calls, task usage, workspace hours), then the budget checks of
//! the tasks and workspaces they touched; and persists breaker changes
//! with their alerts, in the order they happened.
//!
//! A batch that cannot be written while the database is unreachable (or
//! busy, or its disk full) is retried until it is: an outage loses nothing
//! a running host recorded, and a crash at most the calls of the batch in
//! flight. A batch whose data the database refuses (a constraint, a value
//! it cannot take), a few times in a row, is split in halves that are
//! written on their own, down to the one call at fault: that call is set
//! aside (logged in full at error level and counted in
//! `warden_gateway_rows_set_aside_total`), so that one bad row never holds
//! up the booking of every call after it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use warden_store::Store;
use warden_store::breakers::BreakerRow;
use warden_store::gateway::GatewayCallRow;
use warden_store::tasks::TaskRow;

use crate::alerts::Alerts;
use crate::scheduler::Scheduler;

/// Largest batch booked in one transaction.
const BATCH: usize = 512;

/// Times a batch is tried while the database answers but refuses it,
/// before it is split (or, for one call, set aside).
const ATTEMPTS: u32 = 3;

/// What the writer does.
pub enum Msg {
    /// Book a call.
    Call(Box<GatewayCallRow>),
    /// Persist a provider breaker's change; alert on opening, resolve on
    /// closing.
    Breaker {
        /// The row to store.
        row: BreakerRow,
        /// True when it opened.
        opened: bool,
    },
    /// Answer once everything sent before is written.
    Flush(oneshot::Sender<()>),
}

/// The writer's queue.
pub struct Writer {
    tx: mpsc::UnboundedSender<Msg>,
    set_aside: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer task.
    pub fn start(store: Store, scheduler: Arc<Scheduler>, alerts: Alerts) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        let set_aside = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(rx, store, scheduler, alerts, set_aside.clone()));
        Writer { tx, set_aside }
    }

    /// Calls set aside since start because the database refused them.
    pub fn set_aside(&self) -> u64 {
        self.set_aside.load(Ordering::Relaxed)
    }

    /// Queues a message (never blocks).
    pub fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_err() {
            tracing::error!(
                "the gateway's writer has stopped; a call or breaker change was not recorded"
            );
        }
    }

    /// Waits until everything queued so far is written (5 s at most).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Flush(tx));
        if tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .is_err()
        {
            tracing::warn!("gateway calls still unwritten after 5 s at shutdown");
        }
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Msg>,
    store: Store,
    scheduler: Arc<Scheduler>,
    alerts: Alerts,
    set_aside: Arc<AtomicU64>,
) {
    let mut buf = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut buf, BATCH).await > 0 {
        let mut calls = Vec::new();
        let mut flushes = Vec::new();
        for msg in buf.drain(..) {
            match msg {
                Msg::Call(c) => calls.push(*c),
                Msg::Breaker { row, opened } => breaker(&store, &alerts, row, opened).await,
                Msg::Flush(done) => flushes.push(done),
            }
        }
        if !calls.is_empty() {
            book(&store, &scheduler, calls, &set_aside).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Writes a batch; a batch the database keeps refusing is split until
/// the call at fault is alone, and that call is set aside.
async fn book(
    store: &Store,
    scheduler: &Scheduler,
    calls: Vec<GatewayCallRow>,
    set_aside: &AtomicU64,
) {
    let mut todo = vec![calls];
    while let Some(mut batch) = todo.pop() {
        match write(store, &batch).await {
            Ok(tasks) => check_budgets(scheduler, &batch, tasks).await,
            Err(e) if batch.len() > 1 => {
                let second = batch.split_off(batch.len() / 2);
                tracing::warn!(calls = batch.len() + second.len(), error = %e, "the database refuses a batch of gateway calls; writing it in halves to find the call at fault");
                todo.push(second);
                todo.push(batch);
            }
            Err(e) => {
                for call in batch {
                    set_aside.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(call = ?call, error = %e, "the database refuses a gateway call; it is set aside, not booked (its record is in this line), and the calls after it are booked");
                }
            }
        }
    }
}

/// Writes one batch. A refusal of its data (a constraint, a value the
/// database cannot take: [`warden_store::Error::is_refusal`]) is tried
/// `ATTEMPTS` times in all and then returned; any other error (the
/// database unreachable, contention, a full disk) is retried, with
/// backoff, until the batch is written: an outage loses nothing.
async fn write(
    store: &Store,
    calls: &[GatewayCallRow],
) -> Result<Vec<TaskRow>, warden_store::Error> {
    let mut outage = Duration::from_millis(100);
    let mut refused = 0;
    loop {
        let e = match store.record_gateway_calls(calls).await {
            Ok(tasks) => return Ok(tasks),
            Err(e) => e,
        };
        let delay = if e.is_refusal() {
            refused += 1;
            if refused >= ATTEMPTS {
                return Err(e);
            }
            Duration::from_millis(50) * refused
        } else {
            let delay = outage;
            outage = (outage * 2).min(Duration::from_secs(5));
            delay
        };
        tracing::warn!(calls = calls.len(), error = %e, retry_in_ms = delay.as_millis() as u64, "cannot record gateway calls; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// After a batch was booked: the budget checks of the tasks and
/// workspaces it touched.
async fn check_budgets(scheduler: &Scheduler, calls: &[GatewayCallRow], tasks: Vec<TaskRow>) {
    let mut per_workspace: BTreeMap<String, Vec<TaskRow>> = calls
        .iter()
        .map(|c| (c.workspace.clone(), Vec::new()))
        .collect();
    for t in tasks {
        if let Some(list) = per_workspace.get_mut(&t.workspace) {
            list.push(t);
        }
    }
    for (workspace, tasks) in per_workspace {
        if let Err(e) = scheduler.usage_booked(&workspace, &tasks).await {
            tracing::warn!(%workspace, error = %e, "cannot check budgets after booking gateway calls");
        }
    }
}

async fn breaker(store: &Store, alerts: &Alerts, row: BreakerRow, opened: bool) {
    let provider = row.name.trim_start_matches("provider:").to_string();
    let policy = row.name.strip_prefix("plugin:").map(str::to_string);
    let alert = opened.then(|| {
        let until = row.retry_at.map(crate::time::time).unwrap_or_default();
        let reason = row.reason.as_deref().unwrap_or("");
        match &policy {
            Some(p) => (
                format!(
                    "routing policy {p} is failing; its breaker is open and requests go to providers in configuration order, without calling it, until a probe at {until}: {reason}"
                ),
                json!({ "breaker": row.name, "plugin": p, "retry_at": until, "reason": row.reason }),
            ),
            None => (
                format!(
                    "provider {provider} is failing; its breaker is open and requests go to the next candidate until a probe at {until}: {reason}"
                ),
                json!({ "breaker": row.name, "provider": provider, "retry_at": until, "reason": row.reason }),
            ),
        }
    });
    if let Err(e) = crate::breaker::record_change(store, alerts, None, &row, alert).await {
        tracing::warn!(breaker = %row.name, error = %e, "cannot record a breaker change");
    }
}
