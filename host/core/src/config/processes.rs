//! `[[processes]]`: the managed processes (SPEC RL-2).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;

use super::Config;

/// How a process's health is judged.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheck {
    /// Healthy while the process runs.
    #[default]
    Pid,
    /// Healthy while `health_url` answers 2xx within `health_timeout_ms`.
    Http,
}

/// `[[processes]]`: one managed process.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Unique name; the breaker is `process:<name>`.
    pub name: String,
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    /// Working directory; Warden's own by default.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// The process's environment, on top of the variables named by
    /// `inherit_env`. Nothing else of Warden's environment reaches it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables copied from Warden's own environment when set (default:
    /// `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `TZ`,
    /// `TMPDIR`). Warden's secrets (the admin token, provider keys, the
    /// database URL) stay out unless named here.
    #[serde(default = "defaults::inherit_env")]
    pub inherit_env: Vec<String>,
    /// Longer lines of its stdout and stderr are cut to this many bytes in
    /// the log (the rest is counted and dropped, never buffered).
    #[serde(default = "defaults::max_line_bytes")]
    pub max_line_bytes: usize,
    /// `pid` (default) or `http`.
    #[serde(default)]
    pub health: HealthCheck,
    /// The probe's URL, for `health = "http"`.
    #[serde(default)]
    pub health_url: Option<String>,
    /// A probe slower than this fails.
    #[serde(default = "defaults::health_timeout_ms")]
    pub health_timeout_ms: u64,
    /// How often the health check runs.
    #[serde(default = "defaults::check_every_ms")]
    pub check_every_ms: u64,
    /// Wait before the first restart, the second in a row, ...; the last
    /// value repeats.
    #[serde(default = "defaults::restart_backoff_ms")]
    pub restart_backoff_ms: Vec<u64>,
    /// Failed restarts in a row that raise the critical alert.
    #[serde(default = "defaults::alert_after_restarts")]
    pub alert_after_restarts: u32,
    /// How long an HTTP-checked process may take to answer its first probe.
    #[serde(default = "defaults::startup_grace_ms")]
    pub startup_grace_ms: u64,
    /// A restart that stays healthy this long succeeded: the count of
    /// failed restarts starts again and the alert is resolved.
    #[serde(default = "defaults::stable_after_ms")]
    pub stable_after_ms: u64,
}

mod defaults {
    pub fn health_timeout_ms() -> u64 {
        2_000
    }
    pub fn check_every_ms() -> u64 {
        1_000
    }
    pub fn restart_backoff_ms() -> Vec<u64> {
        vec![1_000, 2_000, 4_000, 8_000, 30_000]
    }
    pub fn alert_after_restarts() -> u32 {
        3
    }
    pub fn startup_grace_ms() -> u64 {
        30_000
    }
    pub fn stable_after_ms() -> u64 {
        30_000
    }
    pub fn inherit_env() -> Vec<String> {
        [
            "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
        ]
        .map(String::from)
        .to_vec()
    }
    pub fn max_line_bytes() -> usize {
        16 * 1024
    }
}

/// Checks `[[processes]]` and every workspace's `needs`; the message names
/// the key.
pub fn validate(config: &Config) -> Result<(), String> {
    let mut names = BTreeSet::new();
    for (i, p) in config.processes.iter().enumerate() {
        let at = if p.name.is_empty() {
            format!("[[processes]] #{}", i + 1)
        } else {
            format!(
                "[[processes]] \"{}\"",
                crate::validate::truncate(&p.name, 80)
            )
        };
        warden_meta::validate_name(&p.name).map_err(|_| {
            format!("{at}: name must be 1 to 64 lowercase letters, digits and dashes")
        })?;
        if !names.insert(p.name.as_str()) {
            return Err(format!("{at}: name is declared twice"));
        }
        match p.command.first() {
            Some(program) if !program.is_empty() => {}
            _ => {
                return Err(format!(
                    "{at}: command must name a program, e.g. command = [\"mcp-server\", \"--port\", \"7000\"]"
                ));
            }
        }
        match (p.health, &p.health_url) {
            (HealthCheck::Http, None) => {
                return Err(format!("{at}: health = \"http\" needs health_url"));
            }
            (HealthCheck::Http, Some(url)) => {
                let parsed =
                    url::Url::parse(url).map_err(|e| format!("{at}: health_url \"{url}\": {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!(
                        "{at}: health_url \"{url}\" must be an http or https URL"
                    ));
                }
            }
            (HealthCheck::Pid, Some(_)) => {
                return Err(format!(
                    "{at}: health_url is set but health is \"pid\"; set health = \"http\" to use it"
                ));
            }
            (HealthCheck::Pid, None) => {}
        }
        for (key, value) in [
            ("check_every_ms", p.check_every_ms),
            ("health_timeout_ms", p.health_timeout_ms),
        ] {
            if value == 0 {
                return Err(format!("{at}: {key} must be at least 1"));
            }
        }
        if p.restart_backoff_ms.is_empty() || p.restart_backoff_ms.contains(&0) {
            return Err(format!(
                "{at}: restart_backoff_ms must list at least one positive duration"
            ));
        }
        if p.alert_after_restarts == 0 {
            return Err(format!("{at}: alert_after_restarts must be at least 1"));
        }
        for name in p.inherit_env.iter().chain(p.env.keys()) {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!(
                    "{at}: invalid environment variable name \"{}\"",
                    crate::validate::truncate(name, 80)
                ));
            }
        }
        if p.max_line_bytes < 256 {
            return Err(format!(
                "{at}: max_line_bytes must be at least 256, not {}",
                p.max_line_bytes
            ));
        }
    }
    for (ws, wc) in &config.workspaces {
        for need in &wc.needs {
            if !names.contains(need.as_str()) {
                let declared: Vec<&str> = names.iter().copied().collect();
                return Err(format!(
                    "[workspaces.{ws}] needs: no managed process \"{}\" (declared: {})",
                    crate::validate::truncate(need, 80),
                    if declared.is_empty() {
                        "none; add a [[processes]] entry".to_string()
                    } else {
                        declared.join(", ")
                    }
                ));
            }
        }
    }
    Ok(())
}
