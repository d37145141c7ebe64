//! Run event streams (SPEC PB-1, OB-3): every event of a run gets the next
//! sequence number of that run, is broadcast to live subscribers at once,
//! and is written to `run_events` in batches so that a client reconnecting
//! with `Last-Event-ID` gets what it missed.
//!
//! A plugin decides how many events its run makes (one per host call, log
//! line and action), so those are bounded: in number and in bytes per run,
//! and in bytes waiting for the database over all runs. Events past a
//! bound are dropped (the run says so once, in a `guardrails` event); the
//! host's own events of a run (`status`, `stop_reason`, `budget`,
//! `guardrails`) always pass, so that every run's end is recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::Unpoisoned as _;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};
use warden_store::Store;
use warden_store::run_events::RunEventRow;

/// The bounds of run events (`[limits]` keys of the same names).
#[derive(Clone, Copy, Debug)]
pub struct EventLimits {
    /// Most events a plugin's host calls, log lines and actions add to one
    /// run; a plugin that makes more loses the surplus events, not its run.
    pub max_run_events: i64,
    /// Most bytes (kind and JSON body) those events add to one run.
    pub max_run_event_kib: usize,
    /// Most bytes of events of all runs waiting to be written to the
    /// database; past it, plugin events are dropped until the writer
    /// catches up.
    pub max_event_queue_kib: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            max_run_events: 20_000,
            max_run_event_kib: 4 * 1024,
            max_event_queue_kib: 64 * 1024,
        }
    }
}

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
    /// A row and the bytes it counts for in the queue.
    Write(RunEventRow, usize),
    Flush(oneshot::Sender<()>),
}

/// What a run has added so far.
#[derive(Default)]
struct RunCount {
    /// The last sequence number given out.
    seq: i64,
    /// Plugin events kept, and their bytes.
    events: i64,
    bytes: usize,
    /// True once the run reached its cap (and was told).
    capped: bool,
    /// True once an event of the run was dropped because the queue was
    /// full (and the run was told).
    told_queue_full: bool,
}

/// One of the host's own events in a run's stream (SPEC OB-3), as it is
/// stored: its kind and its data, the same JSON as always.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// `status` `{"status": "queued", "digest"}`: the run was created.
    Queued { digest: String },
    /// `status` `{"status"}`: the run started (`running`) or was found
    /// cut off by a restart (`interrupted`).
    Status(warden_store::runs::RunStatus),
    /// `status` `{"status", "error"}`: the run ended (`error` is null
    /// when it succeeded).
    Ended {
        status: warden_store::runs::RunStatus,
        error: Option<String>,
    },
    /// `budget` `{"budget": "steps", "limit", "spent"}`: the step budget
    /// ran out.
    StepBudget { limit: u64, spent: u64 },
    /// `stop_reason` `{"reason": "completed"}`.
    Completed,
    /// `stop_reason` `{"reason", "message"}`: the run stopped on an error
    /// (`reason` is its code).
    Stopped { reason: String, message: String },
    /// `guardrails` `{"limit", "message"}`: a limit stopped the run, or
    /// the run's events are capped from here on (`limit` `events`).
    Guardrails { limit: String, message: String },
}

impl HostEvent {
    /// The events that close a run's stream before its final status
    /// (SPEC OB-3): the step budget when it ran out, a limit that stopped
    /// the run, then why it stopped.
    pub fn closing(outcome: &warden_runtime::RunOutcome) -> Vec<HostEvent> {
        let mut events = Vec::with_capacity(3);
        if outcome.usage.step_budget_hit {
            events.push(HostEvent::StepBudget {
                limit: outcome.limits.steps,
                spent: outcome.usage.steps,
            });
        }
        match &outcome.result {
            Ok(_) => events.push(HostEvent::Completed),
            Err(e) => {
                if e.is_limit() {
                    events.push(HostEvent::Guardrails {
                        limit: e.code().to_string(),
                        message: e.to_string(),
                    });
                }
                events.push(HostEvent::Stopped {
                    reason: e.code().to_string(),
                    message: e.to_string(),
                });
            }
        }
        events
    }

    /// The event's kind, as stored and streamed.
    pub fn kind(&self) -> &'static str {
        match self {
            HostEvent::Queued { .. } | HostEvent::Status(_) | HostEvent::Ended { .. } => "status",
            HostEvent::StepBudget { .. } => "budget",
            HostEvent::Completed | HostEvent::Stopped { .. } => "stop_reason",
            HostEvent::Guardrails { .. } => "guardrails",
        }
    }

    /// The event's data, as stored and streamed.
    pub fn data(&self) -> Value {
        match self {
            HostEvent::Queued { digest } => json!({ "status": "queued", "digest": digest }),
            HostEvent::Status(status) => json!({ "status": status.as_str() }),
            HostEvent::Ended { status, error } => {
                json!({ "status": status.as_str(), "error": error })
            }
            HostEvent::StepBudget { limit, spent } => {
                json!({ "budget": "steps", "limit": limit, "spent": spent })
            }
            HostEvent::Completed => json!({ "reason": "completed" }),
            HostEvent::Stopped { reason, message } => {
                json!({ "reason": reason, "message": message })
            }
            HostEvent::Guardrails { limit, message } => {
                json!({ "limit": limit, "message": message })
            }
        }
    }
}

/// The hub. Cheap to share behind an `Arc`.
pub struct EventHub {
    runs: Mutex<HashMap<String, RunCount>>,
    live: broadcast::Sender<Arc<LiveEvent>>,
    tx: mpsc::UnboundedSender<Command>,
    limits: EventLimits,
    /// Bytes sent to the writer and not yet written (or dropped by it).
    queued: Arc<AtomicUsize>,
    /// When a full queue was last logged.
    full_logged: Mutex<Option<Instant>>,
}

/// Whose event it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The host's account of the run: always kept.
    Host,
    /// Made by what the plugin does: within the bounds.
    Plugin,
}

impl EventHub {
    /// Starts the hub and its writer task.
    pub fn start_with(store: Store, limits: EventLimits) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(4096);
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(writer(store, rx, queued.clone()));
        Arc::new(EventHub {
            runs: Mutex::default(),
            live,
            tx,
            limits,
            queued,
            full_logged: Mutex::new(None),
        })
    }

    /// Subscribes to every event of every run from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Appends one of the host's own events to a run's stream (`status`,
    /// `stop_reason`, `budget`, `guardrails`). Never blocks; never dropped.
    pub fn push(&self, run_id: &str, event: HostEvent) {
        self.append(run_id, event.kind(), event.data(), Origin::Host);
    }

    /// Appends an event a plugin's run made (`tool_start`, `tool_result`,
    /// `log`, `action`), within the bounds. Never blocks.
    pub fn push_plugin(&self, run_id: &str, kind: &str, data: Value) {
        self.append(run_id, kind, data, Origin::Plugin);
    }

    fn append(&self, run_id: &str, kind: &str, data: Value, origin: Origin) {
        let bytes = kind.len() + json_len(&data);
        let max_bytes = self.limits.max_run_event_kib << 10;
        let queue_full = origin == Origin::Plugin
            && self.queued.load(Ordering::Relaxed) + bytes > self.limits.max_event_queue_kib << 10;
        let (seq, notice) = {
            let mut runs = self.runs.locked();
            let run = runs.entry(run_id.to_string()).or_default();
            if origin == Origin::Plugin {
                let over =
                    run.events >= self.limits.max_run_events || run.bytes + bytes > max_bytes;
                if over || queue_full {
                    // The first event dropped for a reason is replaced by a
                    // notice; the ones after it go silently. A full queue
                    // passes: once the writer caught up, events are kept
                    // again.
                    let told = if over {
                        &mut run.capped
                    } else {
                        &mut run.told_queue_full
                    };
                    if *told {
                        return;
                    }
                    *told = true;
                    run.seq += 1;
                    (run.seq, Some(over))
                } else {
                    run.events += 1;
                    run.bytes += bytes;
                    run.seq += 1;
                    (run.seq, None)
                }
            } else {
                run.seq += 1;
                (run.seq, None)
            }
        };
        match notice {
            None => self.send(run_id, seq, kind, data, bytes),
            Some(over_run_cap) => {
                let message = if over_run_cap {
                    format!(
                        "the run reached its cap of {} events or {} KiB of events; later host calls, log lines and actions are not recorded as events",
                        self.limits.max_run_events, self.limits.max_run_event_kib
                    )
                } else {
                    self.log_full_queue();
                    format!(
                        "the host's event queue is full ({} KiB); later host calls, log lines and actions of this run are not recorded as events",
                        self.limits.max_event_queue_kib
                    )
                };
                let event = HostEvent::Guardrails {
                    limit: "events".to_string(),
                    message,
                };
                let data = event.data();
                let bytes = event.kind().len() + json_len(&data);
                self.send(run_id, seq, event.kind(), data, bytes);
            }
        }
    }

    fn send(&self, run_id: &str, seq: i64, kind: &str, data: Value, bytes: usize) {
        let event = LiveEvent {
            run_id: run_id.to_string(),
            seq,
            kind: kind.to_string(),
            data,
            at: warden_store::now_ms(),
        };
        self.queued.fetch_add(bytes, Ordering::Relaxed);
        let row = RunEventRow {
            run_id: event.run_id.clone(),
            seq,
            kind: event.kind.clone(),
            data: event.data.clone(),
            at: event.at,
        };
        if self.tx.send(Command::Write(row, bytes)).is_err() {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
        }
        let _ = self.live.send(Arc::new(event));
    }

    /// Logs a full queue at most once a minute.
    fn log_full_queue(&self) {
        let mut last = self.full_logged.locked();
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!(
                queued_kib = self.queued.load(Ordering::Relaxed) >> 10,
                limit_kib = self.limits.max_event_queue_kib,
                "run event queue full: dropping plugin events until the database catches up"
            );
        }
    }

    /// Continues a run's numbering after `last` (a run of an earlier host
    /// process, e.g. one being marked interrupted after a restart).
    pub fn resume(&self, run_id: &str, last: i64) {
        self.runs
            .locked()
            .entry(run_id.to_string())
            .or_default()
            .seq = last;
    }

    /// Forgets a finished run's counter.
    pub fn close(&self, run_id: &str) {
        self.runs.locked().remove(run_id);
    }

    /// Waits until every event pushed so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Bytes of `value` as JSON text, counted without building the text.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// A batch on its way to the database, with its bytes in the queue.
#[derive(Default)]
struct Batch {
    rows: Vec<RunEventRow>,
    bytes: usize,
}

/// Writes events in batches of up to 500, at most 50 ms after they come.
async fn writer(store: Store, mut rx: mpsc::UnboundedReceiver<Command>, queued: Arc<AtomicUsize>) {
    let mut batch = Batch::default();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let command = if batch.rows.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                Ok(c) => c,
                Err(_) => {
                    write(&store, &mut batch, &queued).await;
                    continue;
                }
            }
        };
        match command {
            Some(Command::Write(row, bytes)) => {
                batch.rows.push(row);
                batch.bytes += bytes;
                if batch.rows.len() >= 500 {
                    write(&store, &mut batch, &queued).await;
                }
            }
            Some(Command::Flush(done)) => {
                waiters.push(done);
                // Take whatever else is queued, then write once.
                while let Ok(c) = rx.try_recv() {
                    match c {
                        Command::Write(row, bytes) => {
                            batch.rows.push(row);
                            batch.bytes += bytes;
                        }
                        Command::Flush(d) => waiters.push(d),
                    }
                }
                write(&store, &mut batch, &queued).await;
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            None => {
                write(&store, &mut batch, &queued).await;
                return;
            }
        }
    }
}

async fn write(store: &Store, batch: &mut Batch, queued: &AtomicUsize) {
    if batch.rows.is_empty() {
        return;
    }
    let mut attempt = 0u32;
    loop {
        match store.append_run_events(&batch.rows).await {
            Ok(()) => break,
            Err(e) if attempt < 2 => {
                tracing::warn!(error = %e, attempt, events = batch.rows.len(), "cannot write run events");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                attempt += 1;
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    events = batch.rows.len(),
                    "dropping run events the database would not take"
                );
                break;
            }
        }
    }
    queued.fetch_sub(batch.bytes, Ordering::Relaxed);
    batch.rows.clear();
    batch.bytes = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn hub(limits: EventLimits) -> (Store, Arc<EventHub>) {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let hub = EventHub::start_with(store.clone(), limits);
        (store, hub)
    }

    /// Each host event is stored as the `json!` it replaced wrote it:
    /// same kind, same keys, same nulls.
    #[test]
    fn host_events_keep_their_kinds_and_json() {
        use warden_store::runs::RunStatus;
        let cases = [
            (
                HostEvent::Queued {
                    digest: "sha256:ab".into(),
                },
                "status",
                r#"{"digest":"sha256:ab","status":"queued"}"#,
            ),
            (
                HostEvent::Ended {
                    status: RunStatus::Succeeded,
                    error: None,
                },
                "status",
                r#"{"error":null,"status":"succeeded"}"#,
            ),
            (
                HostEvent::Ended {
                    status: RunStatus::Failed,
                    error: Some("trap".into()),
                },
                "status",
                r#"{"error":"trap","status":"failed"}"#,
            ),
            (
                HostEvent::Status(RunStatus::Interrupted),
                "status",
                r#"{"status":"interrupted"}"#,
            ),
            (
                HostEvent::StepBudget {
                    limit: 100,
                    spent: 101,
                },
                "budget",
                r#"{"budget":"steps","limit":100,"spent":101}"#,
            ),
            (
                HostEvent::Completed,
                "stop_reason",
                r#"{"reason":"completed"}"#,
            ),
            (
                HostEvent::Stopped {
                    reason: "timeout".into(),
                    message: "over 5 s".into(),
                },
                "stop_reason",
                r#"{"message":"over 5 s","reason":"timeout"}"#,
            ),
            (
                HostEvent::Guardrails {
                    limit: "fuel".into(),
                    message: "out of fuel".into(),
                },
                "guardrails",
                r#"{"limit":"fuel","message":"out of fuel"}"#,
            ),
        ];
        for (event, kind, data) in cases {
            assert_eq!(event.kind(), kind, "{event:?}");
            assert_eq!(event.data().to_string(), data, "{event:?}");
        }
    }

    async fn stored(store: &Store, run: &str) -> Vec<RunEventRow> {
        store.list_run_events(run, 0, 1000).await.unwrap()
    }

    #[tokio::test]
    async fn a_run_keeps_at_most_its_cap_of_event_bytes_and_says_so_once() {
        let (store, hub) = hub(EventLimits {
            max_run_event_kib: 4,
            ..EventLimits::default()
        })
        .await;
        hub.push(
            "r",
            HostEvent::Queued {
                digest: "sha256:00".into(),
            },
        );
        let text = "x".repeat(1000);
        for _ in 0..10 {
            hub.push_plugin("r", "log", json!({ "message": text }));
        }
        hub.push(
            "r",
            HostEvent::Ended {
                status: warden_store::runs::RunStatus::Succeeded,
                error: None,
            },
        );
        hub.flush().await;
        let rows = stored(&store, "r").await;
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        // 4 KiB holds four 1 KiB lines; the fifth becomes the notice.
        assert_eq!(
            kinds,
            ["status", "log", "log", "log", "log", "guardrails", "status"]
        );
        assert_eq!(rows[5].data["limit"], "events");
        // Numbers have no gaps: a dropped event gets none.
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
        // Another run has its own cap.
        hub.push_plugin("other", "log", json!({ "message": text }));
        hub.flush().await;
        assert_eq!(stored(&store, "other").await.len(), 1);
    }

    #[tokio::test]
    async fn a_run_keeps_at_most_its_cap_of_events() {
        let (store, hub) = hub(EventLimits {
            max_run_events: 3,
            ..EventLimits::default()
        })
        .await;
        for i in 0..10 {
            hub.push_plugin("r", "tool_start", json!({ "call": i }));
        }
        hub.push("r", HostEvent::Completed);
        hub.flush().await;
        let kinds: Vec<String> = stored(&store, "r")
            .await
            .into_iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "tool_start",
                "tool_start",
                "tool_start",
                "guardrails",
                "stop_reason"
            ]
        );
    }

    #[tokio::test]
    async fn plugin_events_wait_for_the_database_only_up_to_the_queue_cap() {
        let (store, hub) = hub(EventLimits {
            max_event_queue_kib: 2,
            ..EventLimits::default()
        })
        .await;
        let text = "x".repeat(600);
        // Pushed at once, faster than anything is written: past 2 KiB in
        // the queue, plugin events are dropped; the host's are not.
        for _ in 0..10 {
            hub.push_plugin("r", "log", json!({ "message": text }));
        }
        hub.push(
            "r",
            HostEvent::Ended {
                status: warden_store::runs::RunStatus::Succeeded,
                error: None,
            },
        );
        hub.flush().await;
        let kinds: Vec<String> = stored(&store, "r")
            .await
            .into_iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, ["log", "log", "log", "guardrails", "status"]);
        assert_eq!(hub.queued.load(Ordering::Relaxed), 0);
        // Once written, the queue takes events again, of that run too.
        hub.push_plugin("r", "log", json!({ "message": text }));
        hub.flush().await;
        assert_eq!(stored(&store, "r").await.len(), 6);
    }

    #[test]
    fn json_len_counts_the_text() {
        let v = json!({ "a": [1, "x\u{0}é"], "b": null });
        assert_eq!(json_len(&v), v.to_string().len());
    }
}
