//! Alert notifications (SPEC AL-2, AL-3): a notifier that turns alerts into
//! notifications for the configured sinks (routing by severity, grouping,
//! repeats, resolves, silences) and delivers them from a durable outbox.
//!
//! Alerts are raised anywhere through [`crate::alerts::Alerts`], which wakes
//! the notifier. The notifier runs on one host at a time (a singleton lock
//! on PostgreSQL): it queues notifications in the same transaction that
//! marks their alerts notified, then each sink's worker sends its queue
//! oldest first. A sink that fails is retried behind its breaker, alone: the
//! others go on. Nothing is lost: a notification leaves the queue only when
//! its sink took it.

pub use crate::config::alerting as config;
pub mod sinks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Mutex, Notify, watch};
use warden_store::Store;
use warden_store::alerts::AlertRow;
use warden_store::notifications::{NewNotification, SilenceRow};

use crate::alerts::{Alerts, Severity};
use crate::breaker::{Admit, Breaker, BreakerPolicy, Change};
pub use config::{AlertingConfig, SinkConfig, SinkKind};
use sinks::{Kind, Target};

/// One sink and its delivery state.
struct Sink {
    target: Target,
    breaker: Mutex<Breaker>,
    /// A delivery worker is running.
    running: AtomicBool,
    /// Work was queued since the worker last looked.
    dirty: AtomicBool,
}

/// The notifier.
pub struct Notifier {
    store: Store,
    config: AlertingConfig,
    alerts: Alerts,
    sinks: Vec<Arc<Sink>>,
    client: Arc<dyn crate::outbound::Client>,
    policy: BreakerPolicy,
    source: String,
}

impl Notifier {
    /// Over the store, with the sinks of `[alerting]`; a file sink's
    /// relative path is under `data_dir`.
    pub fn new(
        store: Store,
        config: AlertingConfig,
        data_dir: &std::path::Path,
        connector: &dyn crate::outbound::Connector,
        alerts: Alerts,
    ) -> Result<Arc<Notifier>, crate::outbound::Error> {
        let sinks = config
            .effective_sinks()
            .into_iter()
            .map(|cfg| {
                Arc::new(Sink {
                    target: Target {
                        file: cfg.file(data_dir),
                        cfg,
                    },
                    breaker: Mutex::new(Breaker::default()),
                    running: AtomicBool::new(false),
                    dirty: AtomicBool::new(false),
                })
            })
            .collect();
        // Redirects are never followed (outbound::Connector): alerts (and
        // a PagerDuty routing key) go only where the operator pointed them.
        let client = connector.client(&crate::outbound::Options {
            connect_timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        })?;
        Ok(Arc::new(Notifier {
            store,
            config,
            alerts,
            sinks,
            client,
            // A sink is retried 1, 2, 4, 8 s after failing, then every 15 s.
            policy: BreakerPolicy {
                failures: 1,
                backoff_ms: vec![1_000, 2_000, 4_000, 8_000, 15_000],
                window: crate::breaker::RateWindow::default(),
            },
            source: format!("warden@{}", hostname()),
        }))
    }

    /// The configured sinks.
    pub fn sink_configs(&self) -> Vec<SinkConfig> {
        self.sinks.iter().map(|s| s.target.cfg.clone()).collect()
    }

    /// Runs until `shutdown`: on the host that holds the `alerting` lock,
    /// queues due notifications whenever an alert changes (or every
    /// `poll_ms`) and keeps every sink's worker going.
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.config.poll_ms);
        let mut leadership = crate::leader::Leadership::new("alerting");
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => return,
            }
            if !leadership.held(&self.store).await {
                continue;
            }
            if let Err(e) = self.queue_due().await {
                tracing::warn!(error = %e, "cannot queue alert notifications");
            }
            match self.store.sinks_with_pending().await {
                Ok(names) => {
                    for sink in self
                        .sinks
                        .iter()
                        .filter(|s| names.contains(&s.target.cfg.name))
                    {
                        self.kick(sink);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the notification queue"),
            }
        }
    }

    /// Queues the notifications that are due now. Returns how many.
    pub async fn queue_due(&self) -> crate::error::Result<usize> {
        let now = warden_store::now_ms();
        let cfg = &self.config;
        let due = self
            .store
            .alerts_to_notify(now - cfg.repeat_interval_ms as i64, 2000)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let silences = self.store.list_silences(Some(now)).await?;
        let window = |severity: &str| match severity {
            "critical" => cfg.critical_group_window_ms as i64,
            _ => cfg.warning_group_window_ms as i64,
        };
        // Group by what a human reads as one event: the same rule in the
        // same workspace, told the same way.
        let mut groups: BTreeMap<(Kind, Option<String>, String), Vec<AlertRow>> = BTreeMap::new();
        let mut silenced: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in due {
            let kind = if a.status == "resolved" {
                Kind::Resolve
            } else if a.notified_at.is_none() {
                Kind::Trigger
            } else {
                Kind::Repeat
            };
            // Resolves go out even under a silence: they close what was
            // sent, and wake nobody.
            if kind != Kind::Resolve
                && let Some(s) = silence_for(&silences, &a)
            {
                if a.silenced_by.as_deref() != Some(s.id.as_str()) {
                    silenced.entry(s.id.clone()).or_default().push(a.id.clone());
                }
                continue;
            }
            groups
                .entry((kind, a.workspace.clone(), a.rule.clone()))
                .or_default()
                .push(a);
        }
        for (silence, ids) in &silenced {
            self.store.mark_alerts_silenced(ids, silence).await?;
        }
        let mut batch = Vec::new();
        let mut notified = Vec::new();
        let mut resolved = Vec::new();
        let muted = &cfg.rules.mute;
        for ((kind, _, rule), alerts) in groups {
            // A group goes when its oldest member's window is over; the
            // others ride along.
            if kind == Kind::Trigger
                && !alerts
                    .iter()
                    .any(|a| a.first_at + window(&a.severity) <= now)
            {
                continue;
            }
            // A muted rule's alerts are recorded and marked notified, and
            // go nowhere.
            for sink in self.sinks.iter().filter(|_| !muted.contains(&rule)) {
                let cfg = &sink.target.cfg;
                let routed: Vec<AlertRow> = alerts
                    .iter()
                    .filter(|a| cfg.routes(&a.severity))
                    .cloned()
                    .collect();
                let Some(first) = routed.first() else {
                    continue;
                };
                let chunks: Vec<Vec<AlertRow>> = if sinks::groups(cfg.kind) {
                    vec![routed.clone()]
                } else {
                    routed.iter().map(|a| vec![a.clone()]).collect()
                };
                for chunk in chunks {
                    let lead = chunk.first().unwrap_or(first);
                    batch.push(NewNotification {
                        sink: cfg.name.clone(),
                        kind: kind.name().to_string(),
                        severity: highest(&chunk).to_string(),
                        dedup_key: lead.dedup_key.clone(),
                        alert_ids: chunk.iter().map(|a| a.id.clone()).collect(),
                        payload: sinks::render(cfg.kind, kind, &chunk, &self.source),
                    });
                }
            }
            let ids = alerts.iter().map(|a| a.id.clone());
            if kind == Kind::Resolve {
                resolved.extend(ids);
            } else {
                notified.extend(ids);
            }
        }
        if notified.is_empty() && resolved.is_empty() {
            return Ok(0);
        }
        let queued = batch.len();
        self.store
            .queue_notifications(&batch, &notified, &resolved, now)
            .await?;
        for sink in &self.sinks {
            if batch.iter().any(|n| n.sink == sink.target.cfg.name) {
                self.kick(sink);
            }
        }
        Ok(queued)
    }

    /// Makes sure the sink's worker runs and looks at its queue again.
    fn kick(&self, sink: &Arc<Sink>) {
        sink.dirty.store(true, Ordering::SeqCst);
        if sink.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let sink = sink.clone();
        let store = self.store.clone();
        let client = self.client.clone();
        let alerts = self.alerts.clone();
        let policy = self.policy.clone();
        tokio::spawn(async move {
            loop {
                sink.dirty.store(false, Ordering::SeqCst);
                deliver(&store, client.as_ref(), &alerts, &policy, &sink).await;
                sink.running.store(false, Ordering::SeqCst);
                // Work queued after the last look and before `running` went
                // down found the worker still running: take it now.
                if !sink.dirty.load(Ordering::SeqCst) || sink.running.swap(true, Ordering::SeqCst) {
                    break;
                }
            }
        });
    }
}

/// Sends the sink's queue, oldest first, until it is empty or the sink
/// fails (then its breaker and the notification's `next_at` say when to
/// try again).
async fn deliver(
    store: &Store,
    client: &dyn crate::outbound::Client,
    alerts: &Alerts,
    policy: &BreakerPolicy,
    sink: &Sink,
) {
    let name = &sink.target.cfg.name;
    loop {
        let rows = match store.pending_notifications(name, 20).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(sink = %name, error = %e, "cannot read the notification queue");
                return;
            }
        };
        if rows.is_empty() {
            return;
        }
        for row in rows {
            let now = warden_store::now_ms();
            if row.next_at > now {
                return;
            }
            if let Admit::Refuse { .. } = sink.breaker.lock().await.admit(now) {
                return;
            }
            let attempts = row.attempts + 1;
            match sink.target.send(client, &row.payload).await {
                Ok(()) => {
                    let now = warden_store::now_ms();
                    // The sink has it: recording that must not fail, or the
                    // next worker would send it again.
                    let mut delay = Duration::from_millis(50);
                    while let Err(e) = store.notification_delivered(&row.id, attempts, now).await {
                        tracing::warn!(sink = %name, error = %e, "cannot record a delivery; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    let change = sink.breaker.lock().await.success(now);
                    if change == Change::Closed {
                        sink_breaker(store, alerts, sink, false).await;
                    }
                }
                Err(f) if f.retry => {
                    let now = warden_store::now_ms();
                    let (change, retry_at) = {
                        let mut b = sink.breaker.lock().await;
                        let change = b.failure(now, policy, &f.message);
                        (change, b.retry_at().unwrap_or(now + 1_000))
                    };
                    tracing::warn!(sink = %name, notification = %row.id, attempts, error = %f.message, "alert sink failed; retrying");
                    if let Err(e) = store
                        .notification_failed(&row.id, attempts, &f.message, retry_at, false)
                        .await
                    {
                        tracing::warn!(sink = %name, error = %e, "cannot record a failed delivery");
                    }
                    if matches!(change, Change::Opened { .. }) {
                        sink_breaker(store, alerts, sink, true).await;
                    }
                    return;
                }
                Err(f) => {
                    tracing::error!(sink = %name, notification = %row.id, error = %f.message, "alert sink refused a notification; it is kept as failed and not retried");
                    if let Err(e) = store
                        .notification_failed(&row.id, attempts, &f.message, now, true)
                        .await
                    {
                        tracing::warn!(sink = %name, error = %e, "cannot record a failed delivery");
                    }
                }
            }
        }
    }
}

/// Persists the sink's breaker and raises (or resolves) its alert.
async fn sink_breaker(store: &Store, alerts: &Alerts, sink: &Sink, opened: bool) {
    let name = format!("sink:{}", sink.target.cfg.name);
    let row = sink.breaker.lock().await.row(&name);
    if let Err(e) = store.put_breaker(&row).await {
        tracing::warn!(breaker = %name, error = %e, "cannot persist a breaker change");
    }
    let key = format!("breaker:{name}");
    if opened {
        let until = row.retry_at.map(crate::time::time).unwrap_or_default();
        alerts
            .raise_logged(
                None,
                "sink_down",
                Severity::Critical,
                &key,
                &format!(
                    "alert sink {} is failing; its notifications are kept and retried (next at {until}): {}",
                    sink.target.cfg.name,
                    row.reason.as_deref().unwrap_or("")
                ),
                json!({ "breaker": name, "sink": sink.target.cfg.name, "retry_at": until, "reason": row.reason }),
            )
            .await;
    } else if let Err(e) = alerts.resolve(&key).await {
        tracing::warn!(breaker = %name, error = %e, "cannot resolve a sink alert");
    }
}

fn silence_for<'s>(silences: &'s [SilenceRow], a: &AlertRow) -> Option<&'s SilenceRow> {
    silences
        .iter()
        .find(|s| s.matches(a.workspace.as_deref(), &a.rule, &a.severity, &a.dedup_key))
}

fn highest(alerts: &[AlertRow]) -> &'static str {
    if alerts.iter().any(|a| a.severity == "critical") {
        "critical"
    } else if alerts.iter().any(|a| a.severity == "warning") {
        "warning"
    } else {
        "info"
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
