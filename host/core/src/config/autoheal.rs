//! `[[workspaces.<ws>.heal]]`: playbooks that run by themselves (SPEC PB-5).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// `[[workspaces.<ws>.heal]]`: one binding or schedule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealBinding {
    /// The playbook (the version the workspace pins).
    pub playbook: String,
    /// `diagnose`, `plan` or `apply`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// The alert rule that triggers it (e.g. `stuck_task`).
    #[serde(default)]
    pub on_alert: Option<String>,
    /// Or: run this often (`30s`, `5m`, `1h`).
    #[serde(default)]
    pub every: Option<String>,
    /// No automatic run of this playbook here within this long of the last
    /// one.
    #[serde(default = "default_cooldown")]
    pub cooldown: String,
    /// At most this many automatic runs in any hour.
    #[serde(default = "default_max_runs")]
    pub max_runs_per_hour: u32,
    /// Input of the runs; an alert's run gets `{"alert": ...}` merged in.
    #[serde(default)]
    pub input: Option<toml::Value>,
}

fn default_mode() -> String {
    "apply".to_string()
}

fn default_cooldown() -> String {
    "10m".to_string()
}

fn default_max_runs() -> u32 {
    6
}

impl HealBinding {
    /// Checks the values; the message names the bad one.
    pub fn validate(&self, workspace: &str) -> Result<(), String> {
        crate::validate::plugin(&self.playbook)?;
        crate::validate::parse_mode(&self.mode).map_err(|e| e.to_string())?;
        match (&self.on_alert, &self.every) {
            (Some(_), Some(_)) => {
                return Err("set on_alert or every, not both".to_string());
            }
            (None, None) => {
                return Err("set on_alert (an alert rule) or every (a period)".to_string());
            }
            (None, Some(every)) => {
                let d = parse_duration("every", every)?;
                if d < Duration::from_secs(10) {
                    return Err(format!("every = \"{every}\" is under the 10 s minimum"));
                }
                if workspace == "*" {
                    return Err("a schedule (every) needs a named workspace, not \"*\"".to_string());
                }
            }
            (Some(rule), None) => {
                if rule.is_empty() {
                    return Err("on_alert must name a rule".to_string());
                }
            }
        }
        parse_duration("cooldown", &self.cooldown)?;
        if self.max_runs_per_hour == 0 {
            return Err("max_runs_per_hour must be at least 1".to_string());
        }
        Ok(())
    }

    pub(crate) fn cooldown_ms(&self) -> i64 {
        parse_duration("cooldown", &self.cooldown)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(600_000)
    }

    pub(crate) fn every_ms(&self) -> Option<i64> {
        self.every
            .as_deref()
            .and_then(|e| parse_duration("every", e).ok())
            .map(|d| d.as_millis() as i64)
    }

    pub(crate) fn input_json(&self) -> Value {
        self.input
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or(Value::Null)
    }
}

fn parse_duration(key: &str, s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{key} = \"{s}\" is not a duration like 30s, 5m or 1h: {e}"))
}
