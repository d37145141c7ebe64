//! Raising and resolving alerts: the one domain function every subsystem
//! calls (SPEC AL-3). An alert is a row deduplicated by key while open; a
//! new or resolved one wakes the notifier ([`crate::alerting`]), which sends
//! it to the sinks, and a new one is offered to the auto-heal bindings
//! ([`crate::autoheal`]).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{Notify, broadcast};
use warden_store::Store;
use warden_store::alerts::{AlertRow, NewAlert};

use crate::error::Result;

/// Alert severities (SPEC AL-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Log only.
    Info,
    /// Someone should look today.
    Warning,
    /// Someone should look now.
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The severity named `name`, as stored.
    pub fn parse(name: &str) -> Option<Severity> {
        match name {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// Raises and resolves alerts.
#[derive(Clone)]
pub struct Alerts {
    store: Store,
    wake: Arc<Notify>,
    created: broadcast::Sender<AlertRow>,
}

impl Alerts {
    /// Over the store.
    pub fn new(store: Store) -> Self {
        let (created, _) = broadcast::channel(1024);
        Alerts {
            store,
            wake: Arc::new(Notify::new()),
            created,
        }
    }

    /// Notified whenever an alert is created or resolved here.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Every alert created on this host from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertRow> {
        self.created.subscribe()
    }

    /// Raises (or refreshes, when open under the same `dedup_key`) an alert.
    pub async fn raise(
        &self,
        workspace: Option<&str>,
        rule: &str,
        severity: Severity,
        dedup_key: &str,
        summary: &str,
        detail: Value,
    ) -> Result<AlertRow> {
        let alert = NewAlert {
            dedup_key: dedup_key.to_string(),
            workspace: workspace.map(str::to_string),
            rule: rule.to_string(),
            severity: severity.name().to_string(),
            summary: summary.to_string(),
            detail,
        };
        let (row, created) = self
            .store
            .raise_alert(&alert, warden_store::now_ms())
            .await?;
        if created {
            self.wake.notify_one();
            let _ = self.created.send(row.clone());
            match severity {
                Severity::Critical => tracing::error!(rule, workspace, dedup_key, "{summary}"),
                Severity::Warning => tracing::warn!(rule, workspace, dedup_key, "{summary}"),
                Severity::Info => tracing::info!(rule, workspace, dedup_key, "{summary}"),
            }
        }
        Ok(row)
    }

    /// Best effort: an alert that cannot be written is logged, never fails
    /// the operation that raised it.
    pub async fn raise_logged(
        &self,
        workspace: Option<&str>,
        rule: &str,
        severity: Severity,
        dedup_key: &str,
        summary: &str,
        detail: Value,
    ) {
        if let Err(e) = self
            .raise(workspace, rule, severity, dedup_key, summary, detail)
            .await
        {
            tracing::error!(rule, dedup_key, error = %e, "cannot record alert: {summary}");
        }
    }

    /// Resolves the alert with this key, if one is unresolved.
    pub async fn resolve(&self, dedup_key: &str) -> Result<Option<AlertRow>> {
        let resolved = self
            .store
            .resolve_alert(dedup_key, warden_store::now_ms())
            .await?;
        if let Some(a) = &resolved {
            self.wake.notify_one();
            tracing::info!(rule = %a.rule, workspace = a.workspace.as_deref(), dedup_key, "resolved: {}", a.summary);
        }
        Ok(resolved)
    }
}

/// The info rules of SPEC AL-1 (task started and completed, gate decision,
/// plan delta) are log only: one line each under the `warden::alerts`
/// target with the rule's name, read off the task events that carry them.
pub fn info_rule(task: &warden_store::tasks::TaskRow, kind: &str, data: &Value) {
    let rule = match kind {
        // The task's first claim ever (a rejection that sends it back to
        // its first stage starts an attempt 1 there again).
        "status" if data["state"] == "running" && task.total_attempts == 1 => "task_started",
        "stop_reason" if data["reason"] == "done" => "task_completed",
        "gate" if data["outcome"] == "reject" => "plan_delta",
        "gate" => "gate_decision",
        _ => return,
    };
    tracing::info!(target: "warden::alerts", rule, severity = "info", workspace = %task.workspace, task = %task.id, stage = %task.stage, detail = %data, "{rule}");
}
