//! What each kind of sink receives, and sending it (SPEC AL-2).
//!
//! Payloads are rendered when a notification is queued and stored as they
//! are sent, without secrets: the PagerDuty routing key and the URLs are
//! added at send time, from the environment.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use warden_store::alerts::AlertRow;

use super::config::{SinkConfig, SinkKind};
use crate::outbound::{Client, Request};
use crate::time::{opt_time, time};

/// `trigger`, `repeat` or `resolve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// First notification of an alert.
    Trigger,
    /// Still open after the repeat interval.
    Repeat,
    /// Resolved.
    Resolve,
}

impl Kind {
    /// As stored.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Trigger => "trigger",
            Kind::Repeat => "repeat",
            Kind::Resolve => "resolve",
        }
    }
}

/// Whether a sink takes several alerts in one notification: the chat and
/// webhook sinks do; PagerDuty and the file take one alert per event.
pub fn groups(kind: SinkKind) -> bool {
    matches!(kind, SinkKind::Slack | SinkKind::Webhook)
}

/// An alert as sinks and the API show it.
pub fn alert_json(a: &AlertRow) -> Value {
    json!({
        "id": a.id,
        "dedup_key": a.dedup_key,
        "workspace": a.workspace,
        "rule": a.rule,
        "severity": a.severity,
        "status": a.status,
        "summary": a.summary,
        "detail": a.detail,
        "first_at": time(a.first_at),
        "last_at": time(a.last_at),
        "count": a.count,
        "resolved_at": opt_time(a.resolved_at),
        "acked_by": a.acked_by,
    })
}

/// The body for `sink` telling of `alerts` (one, unless the sink groups).
pub fn render(sink: SinkKind, kind: Kind, alerts: &[AlertRow], source: &str) -> Value {
    match sink {
        SinkKind::Slack => slack(kind, alerts),
        SinkKind::Webhook => json!({
            "version": 1,
            "source": source,
            "status": if kind == Kind::Resolve { "resolved" } else { "firing" },
            "kind": kind.name(),
            "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
        }),
        SinkKind::Jsonl => {
            let mut line = alerts.first().map(alert_json).unwrap_or(Value::Null);
            if let Some(o) = line.as_object_mut() {
                o.insert("notification".to_string(), json!(kind.name()));
                o.insert("source".to_string(), json!(source));
            }
            line
        }
        SinkKind::Pagerduty => pagerduty(kind, alerts.first(), source),
    }
}

fn slack(kind: Kind, alerts: &[AlertRow]) -> Value {
    let Some(first) = alerts.first() else {
        return json!({ "text": "" });
    };
    let tag = match kind {
        Kind::Resolve => "RESOLVED".to_string(),
        _ => first.severity.to_uppercase(),
    };
    let again = if kind == Kind::Repeat {
        " (still open)"
    } else {
        ""
    };
    let ws = first
        .workspace
        .as_deref()
        .map(|w| format!(" in workspace {w}"))
        .unwrap_or_default();
    let head = if alerts.len() == 1 {
        format!("[{tag}] {}{ws}{again}: {}", first.rule, first.summary)
    } else {
        format!("[{tag}] {} × {}{ws}{again}", alerts.len(), first.rule)
    };
    let mut lines = vec![format!("*{}*", escape(&head))];
    if alerts.len() > 1 {
        for a in alerts.iter().take(20) {
            lines.push(format!("• {}", escape(&a.summary)));
        }
        if alerts.len() > 20 {
            lines.push(format!("… and {} more", alerts.len() - 20));
        }
    }
    lines.push(format!(
        "dedup key `{}` · first seen {}",
        escape(&first.dedup_key),
        time(first.first_at)
    ));
    json!({
        "text": head,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": lines.join("\n") } }
        ],
    })
}

/// Slack's three control characters in mrkdwn.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Events API v2: <https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>.
/// The routing key is added when sending.
fn pagerduty(kind: Kind, alert: Option<&AlertRow>, source: &str) -> Value {
    let Some(a) = alert else {
        return Value::Null;
    };
    let dedup_key: String = a.dedup_key.chars().take(255).collect();
    if kind == Kind::Resolve {
        return json!({ "event_action": "resolve", "dedup_key": dedup_key });
    }
    let summary: String = a.summary.chars().take(1024).collect();
    let severity = match a.severity.as_str() {
        "critical" => "critical",
        "warning" => "warning",
        _ => "info",
    };
    json!({
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "Warden",
        "payload": {
            "summary": summary,
            "source": source,
            "severity": severity,
            "timestamp": time(a.first_at),
            "component": a.workspace.as_deref().unwrap_or("warden"),
            "group": a.workspace.as_deref().unwrap_or("warden"),
            "class": a.rule,
            "custom_details": { "detail": a.detail, "count": a.count, "alert_id": a.id },
        },
    })
}

/// Why a delivery failed.
#[derive(Debug)]
pub struct Failed {
    /// What happened.
    pub message: String,
    /// Whether trying again may help (down, timed out, 5xx, 429); a sink
    /// that refuses the payload (4xx) will refuse it again.
    pub retry: bool,
}

/// A sink ready to send to.
pub struct Target {
    /// Its configuration.
    pub cfg: SinkConfig,
    /// Where a jsonl sink writes.
    pub file: Option<PathBuf>,
}

impl Target {
    /// Sends one payload.
    pub async fn send(&self, client: &dyn Client, payload: &Value) -> Result<(), Failed> {
        match self.cfg.kind {
            SinkKind::Jsonl => self.append(payload).await,
            SinkKind::Pagerduty => {
                let Some(key) = self.cfg.routing_key() else {
                    return Err(Failed {
                        message: format!(
                            "the routing key variable {} is not set",
                            self.cfg.routing_key_env.as_deref().unwrap_or("")
                        ),
                        retry: true,
                    });
                };
                let mut body = payload.clone();
                if let Some(o) = body.as_object_mut() {
                    o.insert("routing_key".to_string(), json!(key));
                }
                self.post(client, &body).await
            }
            SinkKind::Slack | SinkKind::Webhook => self.post(client, payload).await,
        }
    }

    async fn post(&self, client: &dyn Client, body: &Value) -> Result<(), Failed> {
        let Some(url) = self.cfg.resolved_url() else {
            return Err(Failed {
                message: format!(
                    "no URL: the variable {} is not set",
                    self.cfg.url_env.as_deref().unwrap_or("")
                ),
                retry: true,
            });
        };
        let mut request = Request::post_json(&url, body);
        request.timeout = Some(Duration::from_millis(self.cfg.timeout_ms));
        match client.send(request).await {
            Ok(r) if r.status.is_success() => Ok(()),
            Ok(r) if r.status.is_redirection() => Err(Failed {
                message: format!(
                    "HTTP {}: the sink answered with a redirect, which is not followed (it could send alerts anywhere); set its url to the final address",
                    r.status
                ),
                retry: false,
            }),
            Ok(r) => {
                let status = r.status;
                // 300 characters of at most 4 bytes each.
                let text: String = r.text_prefix(1200).await.chars().take(300).collect();
                Err(Failed {
                    // An error page may echo the address it was posted to.
                    message: crate::gateway::scrub_url(&format!("HTTP {status}: {text}"), &url),
                    retry: status.is_server_error()
                        || status == http::StatusCode::TOO_MANY_REQUESTS
                        || status == http::StatusCode::REQUEST_TIMEOUT,
                })
            }
            Err(e) => Err(Failed {
                message: crate::gateway::scrub_url(&e.to_string(), &url),
                retry: true,
            }),
        }
    }

    async fn append(&self, payload: &Value) -> Result<(), Failed> {
        // (A file sink's path is the operator's, not a secret.)
        let Some(path) = self.file.clone() else {
            return Err(Failed {
                message: "no path".to_string(),
                retry: false,
            });
        };
        let line = format!("{payload}\n");
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            // One write of the whole line: appends of a line each never
            // interleave.
            f.write_all(line.as_bytes())?;
            f.sync_data()
        })
        .await
        .map_err(|e| Failed {
            message: e.to_string(),
            retry: true,
        })?
        .map_err(|e| Failed {
            message: format!("cannot append to the alert file: {e}"),
            retry: true,
        })
    }
}
