//! Run event streams (SPEC PB-1, OB-3): every event of a run gets the next
//! sequence number of that run, is broadcast to live subscribers at once,
//! and is written to `run_events` in batches so that a client reconnecting
//! with `Last-Event-ID` gets what it missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};
use warden_store::Store;
use warden_store::run_events::RunEventRow;

/// Most events kept per run; a plugin that makes more host calls than this
/// loses the surplus events, not its run.
pub const MAX_EVENTS_PER_RUN: i64 = 20_000;

/// An event as subscribers see it.
#[derive(Clone, Debug)]
pub struct LiveEvent {
    /// The run.
    pub run_id: String,
    /// Order within the run, from 1.
    pub seq: i64,
    /// `status`, `tool_start`, `tool_result`, `log`, `action`, `budget`,
    /// `guardrails`, `stop_reason`.
    pub kind: String,
    /// The body.
    pub data: Value,
    /// Milliseconds since the epoch.
    pub at: i64,
}

enum Command {
    Write(RunEventRow),
    Flush(oneshot::Sender<()>),
}

/// The hub. Cheap to share behind an `Arc`.
pub struct EventHub {
    seqs: Mutex<HashMap<String, i64>>,
    live: broadcast::Sender<Arc<LiveEvent>>,
    tx: mpsc::UnboundedSender<Command>,
}

impl EventHub {
    /// Starts the hub and its writer task.
    pub fn start(store: Store) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(4096);
        tokio::spawn(writer(store, rx));
        Arc::new(EventHub {
            seqs: Mutex::default(),
            live,
            tx,
        })
    }

    /// Subscribes to every event of every run from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Appends an event to a run's stream. Never blocks.
    pub fn push(&self, run_id: &str, kind: &str, data: Value) {
        let seq = {
            let mut seqs = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
            let seq = seqs.entry(run_id.to_string()).or_insert(0);
            if *seq >= MAX_EVENTS_PER_RUN {
                return;
            }
            *seq += 1;
            *seq
        };
        let event = LiveEvent {
            run_id: run_id.to_string(),
            seq,
            kind: kind.to_string(),
            data,
            at: warden_store::now_ms(),
        };
        let _ = self.tx.send(Command::Write(RunEventRow {
            run_id: event.run_id.clone(),
            seq,
            kind: event.kind.clone(),
            data: event.data.clone(),
            at: event.at,
        }));
        let _ = self.live.send(Arc::new(event));
    }

    /// Continues a run's numbering after `last` (a run of an earlier host
    /// process, e.g. one being marked interrupted after a restart).
    pub fn resume(&self, run_id: &str, last: i64) {
        self.seqs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run_id.to_string(), last);
    }

    /// Forgets a finished run's counter.
    pub fn close(&self, run_id: &str) {
        self.seqs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run_id);
    }

    /// Waits until every event pushed so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Writes events in batches of up to 500, at most 50 ms after they come.
async fn writer(store: Store, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut batch: Vec<RunEventRow> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let command = if batch.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                Ok(c) => c,
                Err(_) => {
                    write(&store, &mut batch).await;
                    continue;
                }
            }
        };
        match command {
            Some(Command::Write(row)) => {
                batch.push(row);
                if batch.len() >= 500 {
                    write(&store, &mut batch).await;
                }
            }
            Some(Command::Flush(done)) => {
                waiters.push(done);
                // Take whatever else is queued, then write once.
                while let Ok(c) = rx.try_recv() {
                    match c {
                        Command::Write(row) => batch.push(row),
                        Command::Flush(d) => waiters.push(d),
                    }
                }
                write(&store, &mut batch).await;
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            None => {
                write(&store, &mut batch).await;
                return;
            }
        }
    }
}

async fn write(store: &Store, batch: &mut Vec<RunEventRow>) {
    if batch.is_empty() {
        return;
    }
    for attempt in 0..3u32 {
        match store.append_run_events(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, events = batch.len(), "cannot write run events");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    tracing::error!(
        events = batch.len(),
        "dropping run events the database would not take"
    );
    batch.clear();
}
