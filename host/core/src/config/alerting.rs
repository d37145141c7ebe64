//! `[alerting]` in warden.toml: sinks, routing by severity, grouping,
//! repeats (SPEC AL-2, AL-3).

use std::path::Path;

use serde::Deserialize;

/// `[alerting]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Where notifications go. When absent, one `jsonl` sink writes
    /// critical and warning alerts to `<data_dir>/alerts.jsonl`; `sinks = []`
    /// sends none.
    pub sinks: Option<Vec<SinkConfig>>,
    /// An open, unacknowledged alert is notified again this often.
    pub repeat_interval_ms: u64,
    /// Critical alerts raised within this window of the first one of
    /// their rule and workspace go out in one notification (0: at once).
    pub critical_group_window_ms: u64,
    /// The same for warnings.
    pub warning_group_window_ms: u64,
    /// How often the notifier looks for due notifications when nothing
    /// woke it (repeats, retries, alerts raised on other hosts).
    pub poll_ms: u64,
    /// Thresholds of the rules, and muted rules.
    pub rules: super::rules::RulesConfig,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            sinks: None,
            repeat_interval_ms: 4 * 3_600_000,
            critical_group_window_ms: 0,
            warning_group_window_ms: 5_000,
            poll_ms: 500,
            rules: super::rules::RulesConfig::default(),
        }
    }
}

/// The kinds of sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A Slack incoming webhook (`url`).
    Slack,
    /// PagerDuty Events API v2 (`routing_key`; `url` defaults to
    /// `https://events.pagerduty.com/v2/enqueue`).
    Pagerduty,
    /// Any HTTP endpoint that takes a JSON POST (`url`).
    Webhook,
    /// An append-only file of one JSON object per line (`path`).
    Jsonl,
}

impl SinkKind {
    /// As written in warden.toml.
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Slack => "slack",
            SinkKind::Pagerduty => "pagerduty",
            SinkKind::Webhook => "webhook",
            SinkKind::Jsonl => "jsonl",
        }
    }
}

/// `[[alerting.sinks]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Unique name, used in the history and the breaker `sink:<name>`.
    pub name: String,
    /// `slack`, `pagerduty`, `webhook` or `jsonl`.
    pub kind: SinkKind,
    /// The endpoint (slack, pagerduty, webhook). Prefer `url_env` for a
    /// Slack URL, which is a secret.
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the URL; overrides `url`.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Environment variable holding the PagerDuty routing key.
    #[serde(default)]
    pub routing_key_env: Option<String>,
    /// The file (jsonl); relative to the data directory.
    #[serde(default)]
    pub path: Option<String>,
    /// Severities sent here; default critical and warning.
    #[serde(default = "default_severities")]
    pub severities: Vec<String>,
    /// Per request.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_severities() -> Vec<String> {
    vec!["critical".to_string(), "warning".to_string()]
}

fn default_timeout_ms() -> u64 {
    5_000
}

/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

impl AlertingConfig {
    /// The sinks in force: the configured ones, or the default file.
    pub fn effective_sinks(&self) -> Vec<SinkConfig> {
        match &self.sinks {
            Some(s) => s.clone(),
            None => vec![SinkConfig {
                name: "file".to_string(),
                kind: SinkKind::Jsonl,
                url: None,
                url_env: None,
                routing_key_env: None,
                path: Some("alerts.jsonl".to_string()),
                severities: default_severities(),
                timeout_ms: default_timeout_ms(),
            }],
        }
    }

    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.rules.validate()?;
        if self.poll_ms == 0 {
            return Err("[alerting] poll_ms must be at least 1".to_string());
        }
        if self.repeat_interval_ms < 1_000 {
            return Err("[alerting] repeat_interval_ms must be at least 1000".to_string());
        }
        let mut names = std::collections::BTreeSet::new();
        for s in self.sinks.iter().flatten() {
            let at = format!("[[alerting.sinks]] \"{}\"", s.name);
            if warden_meta::validate_name(&s.name).is_err() {
                return Err(format!(
                    "{at}: invalid sink name: use 1 to 64 lowercase letters, digits and dashes"
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err(format!("{at}: a sink with this name is already configured"));
            }
            for sev in &s.severities {
                if !["critical", "warning", "info"].contains(&sev.as_str()) {
                    return Err(format!(
                        "{at}: severities: unknown severity \"{sev}\": expected critical, warning or info"
                    ));
                }
            }
            if s.timeout_ms == 0 {
                return Err(format!("{at}: timeout_ms must be at least 1"));
            }
            match s.kind {
                SinkKind::Slack | SinkKind::Webhook => {
                    if s.url.is_none() && s.url_env.is_none() {
                        return Err(format!(
                            "{at}: a {} sink needs url or url_env",
                            s.kind.name()
                        ));
                    }
                }
                SinkKind::Pagerduty => {
                    if s.routing_key_env.is_none() {
                        return Err(format!(
                            "{at}: a pagerduty sink needs routing_key_env (the environment variable holding the routing key)"
                        ));
                    }
                }
                SinkKind::Jsonl => {
                    if s.path.as_deref().is_none_or(str::is_empty) {
                        return Err(format!("{at}: a jsonl sink needs path"));
                    }
                }
            }
            if let Some(url) = &s.url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(format!("{at}: url must start with http:// or https://"));
            }
        }
        Ok(())
    }
}

impl SinkConfig {
    /// The URL to post to, from the environment when `url_env` names a set
    /// variable.
    pub fn resolved_url(&self) -> Option<String> {
        if let Some(var) = &self.url_env
            && let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return Some(v);
        }
        match self.kind {
            SinkKind::Pagerduty => Some(
                self.url
                    .clone()
                    .unwrap_or_else(|| PAGERDUTY_URL.to_string()),
            ),
            _ => self.url.clone(),
        }
    }

    /// The PagerDuty routing key from the environment.
    pub fn routing_key(&self) -> Option<String> {
        let var = self.routing_key_env.as_ref()?;
        std::env::var(var).ok().filter(|v| !v.is_empty())
    }

    /// The file of a jsonl sink.
    pub fn file(&self, data_dir: &Path) -> Option<std::path::PathBuf> {
        self.path.as_ref().map(|p| data_dir.join(p))
    }

    /// Whether alerts of `severity` go here.
    pub fn routes(&self, severity: &str) -> bool {
        self.severities.iter().any(|s| s == severity)
    }
}
