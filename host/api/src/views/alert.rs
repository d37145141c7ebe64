//! Alerts and circuit breakers (SPEC AL-1..AL-3, TS-8).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::time::{opt_time, time};
use warden_store::alerts::AlertRow;
use warden_store::breakers::BreakerRow;

/// An alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    pub id: String,
    pub dedup_key: String,
    /// `null` for the host's own alerts.
    pub workspace: Option<String>,
    pub rule: String,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    pub summary: String,
    pub detail: Value,
    pub first_at: String,
    pub last_at: String,
    pub count: i64,
    pub resolved_at: Option<String>,
    pub acked_by: Option<String>,
    pub acked_at: Option<String>,
    pub notified_at: Option<String>,
    pub resolve_notified: bool,
    pub silenced_by: Option<String>,
}

impl From<&AlertRow> for Alert {
    fn from(a: &AlertRow) -> Alert {
        Alert {
            id: a.id.clone(),
            dedup_key: a.dedup_key.clone(),
            workspace: a.workspace.clone(),
            rule: a.rule.clone(),
            severity: a.severity.clone(),
            status: a.status.clone(),
            summary: a.summary.clone(),
            detail: a.detail.clone(),
            first_at: time(a.first_at),
            last_at: time(a.last_at),
            count: a.count,
            resolved_at: opt_time(a.resolved_at),
            acked_by: a.acked_by.clone(),
            acked_at: opt_time(a.acked_at),
            notified_at: opt_time(a.notified_at),
            resolve_notified: a.resolve_notified,
            silenced_by: a.silenced_by.clone(),
        }
    }
}

/// A list of alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<Alert>,
}

/// A circuit breaker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Breaker {
    pub name: String,
    /// `closed`, `open` or `half-open`.
    pub state: String,
    pub failures: i64,
    pub reason: Option<String>,
    pub opened_at: Option<String>,
    pub retry_at: Option<String>,
    pub updated_at: Option<String>,
}

impl From<&BreakerRow> for Breaker {
    /// The view of `b`; `updated_at` is null for a breaker never changed
    /// (a provider's, listed before its first call).
    fn from(b: &BreakerRow) -> Breaker {
        Breaker {
            name: b.name.clone(),
            state: b.state.clone(),
            failures: b.failures,
            reason: b.reason.clone(),
            opened_at: opt_time(b.opened_at),
            retry_at: opt_time(b.retry_at),
            updated_at: (b.updated_at > 0).then(|| time(b.updated_at)),
        }
    }
}

/// `workspace::breakers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BreakerList {
    pub breakers: Vec<Breaker>,
}
