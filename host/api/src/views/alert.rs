//! Alerts, their silences and notifications, and circuit breakers (SPEC
//! AL-1..AL-3, TS-8).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::time::{opt_time, time};
use warden_store::alerts::AlertRow;
use warden_store::breakers::BreakerRow;
use warden_store::notifications::{NotificationRow, SilenceRow};

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

/// A silence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Silence {
    pub id: String,
    pub workspace: Option<String>,
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub dedup_key: Option<String>,
    pub comment: String,
    pub created_by: String,
    pub created_at: String,
    pub ends_at: String,
    pub active: bool,
}

impl Silence {
    /// The view of `s` at `now` (ms since the epoch): `active` until it
    /// ends.
    pub fn at(s: &SilenceRow, now: i64) -> Silence {
        Silence {
            id: s.id.clone(),
            workspace: s.workspace.clone(),
            rule: s.rule.clone(),
            severity: s.severity.clone(),
            dedup_key: s.dedup_key.clone(),
            comment: s.comment.clone(),
            created_by: s.created_by.clone(),
            created_at: time(s.created_at),
            ends_at: time(s.ends_at),
            active: s.ends_at > now,
        }
    }
}

/// `alerting::silences`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SilenceList {
    pub silences: Vec<Silence>,
}

/// A notification of a sink: queued, delivered or refused for good.
///
/// Not a schema of its own: the document lists notifications as objects
/// (see [`Notifications`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub sink: String,
    /// `trigger`, `repeat` or `resolve`.
    pub kind: String,
    pub severity: String,
    pub dedup_key: String,
    pub alert_ids: Vec<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_at: String,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub last_error: Option<String>,
    /// The body as the sink receives it.
    pub payload: Value,
}

impl From<&NotificationRow> for Notification {
    fn from(n: &NotificationRow) -> Notification {
        Notification {
            id: n.id.clone(),
            sink: n.sink.clone(),
            kind: n.kind.clone(),
            severity: n.severity.clone(),
            dedup_key: n.dedup_key.clone(),
            alert_ids: n.alert_ids.clone(),
            status: n.status.clone(),
            attempts: n.attempts,
            next_at: time(n.next_at),
            created_at: time(n.created_at),
            delivered_at: opt_time(n.delivered_at),
            last_error: n.last_error.clone(),
            payload: n.payload.clone(),
        }
    }
}

/// A list of objects under one key: `{"<key>": [ {...}, ... ]}` (`key`
/// is named in the response's description).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notifications {
    #[schema(value_type = Vec<Object>)]
    pub notifications: Vec<Notification>,
}
