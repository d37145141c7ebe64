//! Playbooks that run by themselves (SPEC PB-5, AL-4): auto-heal bindings
//! (an alert rule triggers a playbook in a chosen mode) and schedules
//! (`every = "5m"`), each with a cooldown and a cap on runs per hour.
//!
//! Bindings fire on the host that raised the alert; schedules run on the
//! host that holds the `schedules` lock. Cooldown and cap are counted from
//! the runs table, so they hold across hosts and restarts.
//!
//! A playbook that keeps failing is not run again and again: its breaker
//! (`playbook:<ws>:<name>`, the one breaker type of SPEC RL-1) opens after
//! three failed runs in a row and holds automatic runs back for a backoff
//! (5, 10, 20, 40 min), then lets one through as a probe. Its state is
//! replayed from the playbook's recent runs (so it too holds across hosts
//! and restarts); a successful run, automatic or started by hand, closes
//! it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Mutex, broadcast, watch};
use warden_store::alerts::AlertRow;
use warden_store::runs::RunStatus;

use crate::alerts::Alerts;
use crate::breaker::{Admit, Breaker, BreakerPolicy, RateWindow};
use crate::config::Workspaces;
pub use crate::config::autoheal::HealBinding;
use crate::heal::Trigger;

/// When a playbook's breaker opens: 3 failed runs in a row; then 5, 10,
/// 20, 40 minutes before the probe.
fn playbook_breaker_policy() -> BreakerPolicy {
    BreakerPolicy {
        failures: 3,
        backoff_ms: vec![300_000, 600_000, 1_200_000, 2_400_000],
        window: RateWindow::default(),
    }
}

/// Runs looked at to replay a playbook's breaker.
const BREAKER_HISTORY: i64 = 50;

/// What became of an automatic trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fired {
    /// A run started.
    Started(String),
    /// Held back, and why.
    Skipped(String),
}

/// What automatic runs use.
pub struct AutoHealServices {
    /// The database.
    pub store: warden_store::Store,
    /// Starts the runs.
    pub heal: Arc<crate::heal::Heal>,
    /// Alerts: what triggers runs, and where a failing playbook raises.
    pub alerts: Alerts,
    /// The `[workspaces.*]` tables: their `[[heal]]` bindings and
    /// schedules.
    pub workspaces: Workspaces,
}

/// Runs the bindings and schedules.
pub struct AutoHeal {
    svc: Arc<AutoHealServices>,
    /// One decision at a time on this host, so that two alerts raised
    /// together do not both pass the cooldown.
    deciding: Mutex<()>,
}

impl AutoHeal {
    /// Starts listening for alerts and running schedules.
    pub fn start(services: AutoHealServices, shutdown: watch::Receiver<bool>) -> Arc<AutoHeal> {
        let svc = Arc::new(services);
        let me = Arc::new(AutoHeal {
            svc: svc.clone(),
            deciding: Mutex::new(()),
        });
        let has_bindings = bindings(&svc).any(|(_, b)| b.on_alert.is_some());
        let has_schedules = bindings(&svc).any(|(_, b)| b.every.is_some());
        if has_bindings {
            tokio::spawn(
                me.clone()
                    .on_alerts(svc.alerts.subscribe(), shutdown.clone()),
            );
        }
        if has_schedules {
            tokio::spawn(me.clone().schedules(shutdown));
        }
        me
    }

    async fn on_alerts(
        self: Arc<Self>,
        mut rx: broadcast::Receiver<AlertRow>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let alert = tokio::select! {
                got = rx.recv() => match got {
                    Ok(a) => a,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "auto-heal fell behind the alerts; some bindings did not fire");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = shutdown.changed() => return,
            };
            let matching: Vec<(String, HealBinding)> = bindings(&self.svc)
                .filter(|(_, b)| b.on_alert.as_deref() == Some(alert.rule.as_str()))
                .filter_map(|(ws, b)| {
                    let target = match (ws.as_str(), alert.workspace.as_deref()) {
                        ("*", Some(aw)) => aw.to_string(),
                        ("*", None) => return None,
                        (w, Some(aw)) if w != aw => return None,
                        (w, _) => w.to_string(),
                    };
                    Some((target, b.clone()))
                })
                .collect();
            for (ws, b) in matching {
                let mut input = b.input_json();
                let alert_json = crate::alerting::sinks::alert_json(&alert);
                match input.as_object_mut() {
                    Some(o) => {
                        o.insert("alert".to_string(), alert_json);
                    }
                    None => input = json!({ "alert": alert_json }),
                }
                let trigger = format!("alert:{}", alert.rule);
                let key = format!("alert:{}:{}", alert.id, b.playbook);
                let fired = self.fire(&ws, &b, &trigger, key, input).await;
                tracing::info!(workspace = %ws, playbook = %b.playbook, alert = %alert.dedup_key, ?fired, "auto-heal binding");
            }
        }
    }

    async fn schedules(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut leadership = crate::leader::Leadership::new("schedules");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
            if !leadership.held(&self.svc.store).await {
                continue;
            }
            let now = warden_store::now_ms();
            let due: Vec<(String, HealBinding, i64)> = bindings(&self.svc)
                .filter_map(|(ws, b)| b.every_ms().map(|e| (ws.clone(), b.clone(), e)))
                .collect();
            for (ws, b, every) in due {
                let last = match self
                    .svc
                    .store
                    .triggered_runs_since(&ws, &b.playbook, "schedule", now - every)
                    .await
                {
                    Ok((n, _)) => n,
                    Err(e) => {
                        tracing::warn!(workspace = %ws, playbook = %b.playbook, error = %e, "cannot read scheduled runs");
                        continue;
                    }
                };
                if last > 0 {
                    continue;
                }
                // One run per period, whichever host fires it.
                let key = format!("schedule:{}", now / every);
                let fired = self.fire(&ws, &b, "schedule", key, b.input_json()).await;
                tracing::info!(workspace = %ws, playbook = %b.playbook, ?fired, "scheduled playbook");
            }
        }
    }

    /// Starts a run unless the cooldown or the hourly cap holds it back.
    pub async fn fire(
        &self,
        workspace: &str,
        b: &HealBinding,
        trigger: &str,
        idempotency_key: String,
        input: Value,
    ) -> Fired {
        let _one = self.deciding.lock().await;
        let now = warden_store::now_ms();
        match self.breaker(workspace, &b.playbook, now).await {
            Ok(Some(why)) => return Fired::Skipped(why),
            Ok(None) => {}
            Err(e) => return Fired::Skipped(format!("cannot read the playbook's runs: {e}")),
        }
        // Cooldown and cap count every automatic run of the playbook here
        // (alerts and schedules), not the ones people started.
        let (auto_runs, auto_last) = match self.auto_runs(workspace, &b.playbook, now).await {
            Ok(x) => x,
            Err(e) => return Fired::Skipped(format!("cannot count recent runs: {e}")),
        };
        if let Some(last) = auto_last
            && now - last < b.cooldown_ms()
        {
            return Fired::Skipped(format!(
                "in cooldown: the last automatic run started {} s ago (cooldown {})",
                (now - last) / 1000,
                b.cooldown
            ));
        }
        if auto_runs >= b.max_runs_per_hour as i64 {
            return Fired::Skipped(format!(
                "{auto_runs} automatic runs in the last hour, the cap (max_runs_per_hour = {})",
                b.max_runs_per_hour
            ));
        }
        let mode = match crate::heal::parse_mode(&b.mode) {
            Ok(m) => m,
            Err(e) => return Fired::Skipped(e.to_string()),
        };
        let t = Trigger {
            mode,
            input,
            idempotency_key: Some(idempotency_key),
            actor: "auto-heal".to_string(),
            trigger: trigger.to_string(),
        };
        match self.svc.heal.trigger(workspace, &b.playbook, t).await {
            Ok((run, _)) => Fired::Started(run.id),
            Err(e) => {
                tracing::warn!(workspace, playbook = %b.playbook, error = %e, "auto-heal could not start a run");
                Fired::Skipped(e.to_string())
            }
        }
    }

    /// The playbook's breaker, replayed from its recent runs (oldest
    /// first: each run admitted at its start, its outcome recorded at its
    /// end), stored when its state changed (with the `breaker_open` alert
    /// raised or resolved); why an automatic run must wait, if it must.
    async fn breaker(
        &self,
        workspace: &str,
        playbook: &str,
        now: i64,
    ) -> crate::error::Result<Option<String>> {
        let store = &self.svc.store;
        let mut runs = store
            .list_runs(
                workspace,
                &warden_store::runs::RunQuery {
                    plugin: Some(playbook.to_string()),
                    limit: BREAKER_HISTORY,
                    ..Default::default()
                },
            )
            .await?;
        runs.reverse();
        let policy = playbook_breaker_policy();
        let mut breaker = Breaker::default();
        for r in &runs {
            let (Some(started), Some(finished)) = (r.started_at, r.finished_at) else {
                continue;
            };
            breaker.admit(started);
            match r.status {
                RunStatus::Succeeded => {
                    breaker.success(finished);
                }
                RunStatus::Failed => {
                    let why = r.error.as_deref().unwrap_or("failed");
                    breaker.failure(finished, &policy, why);
                }
                _ => {}
            }
        }
        let name = format!("playbook:{workspace}:{playbook}");
        let row = breaker.row(&name);
        let stored = store.get_breaker(&name).await?;
        if stored.as_ref().map(|s| (&s.state, s.retry_at)) != Some((&row.state, row.retry_at))
            && (stored.is_some() || row.state != "closed")
        {
            // Alert on opening from closed; a failed probe keeps it open.
            let newly_open =
                row.state != "closed" && stored.as_ref().is_none_or(|s| s.state == "closed");
            let alert = newly_open.then(|| {
                let until = row.retry_at.map(crate::time::time).unwrap_or_default();
                (
                    format!(
                        "playbook {playbook} keeps failing in workspace {workspace}; its breaker holds automatic runs back until a probe at {until}: {}",
                        row.reason.as_deref().unwrap_or("")
                    ),
                    json!({ "breaker": name, "playbook": playbook, "retry_at": until, "reason": row.reason }),
                )
            });
            if row.state == "closed" || alert.is_some() {
                crate::breaker::record_change(
                    store,
                    &self.svc.alerts,
                    Some(workspace),
                    &row,
                    alert,
                )
                .await?;
            } else {
                store.put_breaker(&row).await?;
            }
        }
        Ok(match breaker.admit(now) {
            Admit::Pass | Admit::Probe => None,
            Admit::Refuse { retry_at } => Some(format!(
                "breaker {name} is open until {}: {}",
                crate::time::time(retry_at),
                row.reason.as_deref().unwrap_or("its last runs failed")
            )),
        })
    }

    async fn auto_runs(
        &self,
        workspace: &str,
        playbook: &str,
        now: i64,
    ) -> crate::error::Result<(i64, Option<i64>)> {
        let since = now - 3_600_000;
        let (a, la) = self
            .svc
            .store
            .triggered_runs_since(workspace, playbook, "alert:", since)
            .await?;
        let (s, ls) = self
            .svc
            .store
            .triggered_runs_since(workspace, playbook, "schedule", since)
            .await?;
        Ok((a + s, la.max(ls)))
    }
}

/// Every binding of the configuration with its workspace key.
fn bindings(svc: &AutoHealServices) -> impl Iterator<Item = (&String, &HealBinding)> {
    svc.workspaces
        .iter()
        .flat_map(|(ws, wc)| wc.heal.iter().map(move |b| (ws, b)))
}
