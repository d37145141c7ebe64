//! `warden.toml` (SPEC IF-2). Every key is optional; unknown keys are an
//! error naming the key, so that a typo never silently does nothing.
//! Secrets come from the environment, which overrides the file.
//!
//! The configuration types live here, below every service (the bottom
//! layer with `error`, `time` and `validate`): a service's module uses
//! its slice of them and re-exports it under its own path.

pub mod alerting;
pub mod autoheal;
pub mod gates;
pub mod gateway;
pub mod processes;
pub mod rules;
pub mod scheduler;
pub mod selector;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use warden_meta::{CapabilitySet, Limits};

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP server.
    pub listen: SocketAddr,
    /// Where Warden keeps its state: the SQLite database (by default), the
    /// plugin store, the compile cache and the generated admin token.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: `sqlite://<data_dir>/warden.db`.
    /// Environment: `WARDEN_DATABASE_URL`.
    pub database_url: Option<String>,
    /// The watched plugin directory.
    pub plugin_dir: PathBuf,
    /// Load the plugins built into the binary (`diagnose-system`, ...).
    pub bundled_plugins: bool,
    /// Authentication.
    pub auth: AuthConfig,
    /// Plugin limits.
    pub limits: LimitsConfig,
    /// HTTP server settings.
    pub http: HttpConfig,
    /// Task scheduling.
    pub scheduler: scheduler::SchedulerConfig,
    /// The model gateway: providers, routing policy, breakers.
    pub gateway: gateway::GatewayConfig,
    /// Alert notifications: sinks, routing, grouping, repeats.
    pub alerting: alerting::AlertingConfig,
    /// The disk guard of the evidence directory (SPEC RL-3).
    pub disk_guard: crate::evidence::DiskGuardConfig,
    /// Per workspace (or `"*"` for every workspace): pins, grants, config
    /// and limits of each plugin.
    pub workspaces: BTreeMap<String, WorkspaceConfig>,
    /// `[[processes]]`: managed processes (SPEC RL-2).
    pub processes: Vec<processes::ProcessConfig>,
    /// Agent checkpoints (SPEC TS-9).
    pub checkpoints: crate::checkpoints::CheckpointsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("warden-data"),
            database_url: None,
            plugin_dir: PathBuf::from("plugins"),
            bundled_plugins: true,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            http: HttpConfig::default(),
            scheduler: scheduler::SchedulerConfig::default(),
            gateway: gateway::GatewayConfig::default(),
            alerting: alerting::AlertingConfig::default(),
            disk_guard: crate::evidence::DiskGuardConfig::default(),
            workspaces: BTreeMap::new(),
            processes: Vec::new(),
            checkpoints: crate::checkpoints::CheckpointsConfig::default(),
        }
    }
}

/// `[auth]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The bootstrap admin token. Prefer the environment variable named
    /// by `admin_token_env`; when neither is set, Warden generates one and
    /// writes it to `<data_dir>/admin.token`.
    pub admin_token: Option<String>,
    /// Environment variable holding the admin token.
    pub admin_token_env: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            admin_token: None,
            admin_token_env: "WARDEN_ADMIN_TOKEN".to_string(),
        }
    }
}

/// `[limits]`: host defaults and maxima for plugin calls (SPEC PL-5).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Default deadline of a call.
    pub deadline_ms: u64,
    /// Largest deadline a plugin or grant may ask for.
    pub max_deadline_ms: u64,
    /// Default memory cap.
    pub memory_mib: u64,
    /// Largest memory cap.
    pub max_memory_mib: u64,
    /// Default fuel per call.
    pub fuel: u64,
    /// Default step budget of a playbook run.
    pub steps: u64,
    /// Default output cap.
    pub output_kib: u64,
    /// Plugin calls running at once.
    pub max_concurrent_calls: u32,
    /// Largest `.wasm` accepted.
    pub max_plugin_mib: u64,
    /// Of `max_concurrent_calls`, the calls playbook runs may never take:
    /// kept for quality gates and routing policies. Default: a quarter
    /// (8 of 32).
    pub reserved_calls: Option<u32>,
    /// Playbook runs of one workspace running at once; more wait queued.
    pub max_runs_per_workspace: u32,
    /// Most events a plugin's host calls, log lines and actions add to one
    /// run.
    pub max_run_events: i64,
    /// Most KiB those events add to one run.
    pub max_run_event_kib: usize,
    /// Most KiB of run events waiting to be written to the database.
    pub max_event_queue_kib: usize,
}

impl LimitsConfig {
    /// The calls kept for gates and routing policies.
    pub fn reserved_calls(&self) -> u32 {
        self.reserved_calls.unwrap_or(self.max_concurrent_calls / 4)
    }

    /// The bounds of run events.
    pub fn event_limits(&self) -> crate::events::EventLimits {
        crate::events::EventLimits {
            max_run_events: self.max_run_events,
            max_run_event_kib: self.max_run_event_kib,
            max_event_queue_kib: self.max_event_queue_kib,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.max_concurrent_calls == 0 {
            return Err("[limits] max_concurrent_calls must be at least 1".to_string());
        }
        if let Some(n) = self.reserved_calls
            && n >= self.max_concurrent_calls
        {
            return Err(format!(
                "[limits] reserved_calls {n} must be below max_concurrent_calls {} (playbook runs need at least one)",
                self.max_concurrent_calls
            ));
        }
        for (key, value) in [
            ("max_runs_per_workspace", self.max_runs_per_workspace as i64),
            ("max_run_events", self.max_run_events),
            ("max_run_event_kib", self.max_run_event_kib as i64),
            ("max_event_queue_kib", self.max_event_queue_kib as i64),
        ] {
            if value < 1 {
                return Err(format!("[limits] {key} must be at least 1, not {value}"));
            }
        }
        Ok(())
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let h = warden_runtime::HostLimits::default();
        let events = crate::events::EventLimits::default();
        LimitsConfig {
            deadline_ms: h.deadline_ms,
            max_deadline_ms: h.max_deadline_ms,
            memory_mib: h.memory_mib,
            max_memory_mib: h.max_memory_mib,
            fuel: h.fuel,
            steps: h.steps,
            output_kib: h.output_kib,
            max_concurrent_calls: 32,
            max_plugin_mib: 32,
            reserved_calls: None,
            max_runs_per_workspace: 8,
            max_run_events: events.max_run_events,
            max_run_event_kib: events.max_run_event_kib,
            max_event_queue_kib: events.max_event_queue_kib,
        }
    }
}

/// `[http]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest JSON request body.
    pub max_body_kib: usize,
    /// Requests per second per token (burst: twice that).
    pub rate_limit_per_sec: u32,
    /// How long `?wait=true` waits at most beyond the run's deadline.
    pub wait_slack_ms: u64,
    // Connection and stream bounds (issue 15, item 10; SPEC RL-5, SE-4).
    /// How long a client has to send a request's headers, counted from
    /// the moment the connection is ready for its next request (so also
    /// how long an idle keep-alive connection stays open).
    pub header_read_timeout_ms: u64,
    /// A request body that sends nothing for this long is refused.
    pub body_idle_timeout_ms: u64,
    /// Open connections, all clients together.
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_connections_per_addr: usize,
    /// Server-sent event streams (task, run and status streams) open at
    /// once per token.
    pub max_streams_per_token: usize,
    /// At shutdown, how long in-flight requests and playbook runs get to
    /// finish before connections are closed and leases released.
    pub drain_ms: u64,
    // Rate limit by address (issue 15, item 12).
    /// Requests per second per IP address that are not authenticated yet:
    /// no token, a bad one, or one that must be looked up in the database
    /// (bursts of twice that). Checked before the lookup.
    pub unauthenticated_per_sec: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_kib: 1024,
            rate_limit_per_sec: 100,
            wait_slack_ms: 2_000,
            header_read_timeout_ms: 30_000,
            body_idle_timeout_ms: 30_000,
            max_connections: 1_024,
            max_connections_per_addr: 256,
            max_streams_per_token: 32,
            drain_ms: 10_000,
            unauthenticated_per_sec: 20,
        }
    }
}

impl HttpConfig {
    /// Checks the connection and stream bounds; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, value, min) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms, 100),
            ("body_idle_timeout_ms", self.body_idle_timeout_ms, 100),
            ("max_connections", self.max_connections as u64, 1),
            (
                "max_connections_per_addr",
                self.max_connections_per_addr as u64,
                1,
            ),
            (
                "max_streams_per_token",
                self.max_streams_per_token as u64,
                1,
            ),
            (
                "unauthenticated_per_sec",
                u64::from(self.unauthenticated_per_sec),
                1,
            ),
        ] {
            if value < min {
                return Err(format!("[http] {key} must be at least {min}, not {value}"));
            }
        }
        Ok(())
    }
}

/// `[workspaces.<name>]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkspaceConfig {
    /// Per plugin name.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Quality gates per stage: the gates that judge the stage's result
    /// when it completes (SPEC QG-1).
    pub gates: BTreeMap<String, gates::Binding>,
    /// The model gateway's routing policy and default mode here.
    pub gateway: gateway::WorkspaceGateway,
    /// Playbooks that run by themselves: on an alert, or on a schedule
    /// (SPEC PB-5).
    pub heal: Vec<autoheal::HealBinding>,
    /// Managed processes this workspace's tasks need: while one is not
    /// healthy, claims here return nothing (SPEC RL-2).
    pub needs: Vec<String>,
}

/// `[workspaces.<name>.plugins.<plugin>]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    /// `1.2.0`, `sha256:<hex>` or `latest` (the default). A pin set over
    /// the API takes precedence.
    pub pin: Option<String>,
    /// Capabilities granted (added to those granted over the API).
    pub grants: Vec<String>,
    /// Values the plugin reads with `config.get`.
    pub config: BTreeMap<String, toml::Value>,
    /// Limit overrides.
    pub limits: Limits,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown key.
    #[error("invalid {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message (names the key and line).
        message: String,
    },
    /// A value is wrong.
    #[error("invalid {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What and why.
        message: String,
    },
}

impl Config {
    /// Reads `path` when given (or `./warden.toml` when it exists), then
    /// applies environment overrides, then validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let default_path = Path::new("warden.toml");
        let (mut config, path) = match path {
            Some(p) => (Self::parse_file(p)?, p.to_path_buf()),
            None if default_path.exists() => {
                (Self::parse_file(default_path)?, default_path.to_path_buf())
            }
            None => (Config::default(), PathBuf::from("(defaults)")),
        };
        config.apply_env();
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path, message })?;
        Ok(config)
    }

    fn parse_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
    }

    fn apply_env(&mut self) {
        if let Ok(url) = std::env::var("WARDEN_DATABASE_URL")
            && !url.is_empty()
        {
            self.database_url = Some(url);
        }
        if let Ok(listen) = std::env::var("WARDEN_LISTEN")
            && let Ok(addr) = listen.parse()
        {
            self.listen = addr;
        }
        if let Ok(token) = std::env::var(&self.auth.admin_token_env)
            && !token.is_empty()
        {
            self.auth.admin_token = Some(token);
        }
    }

    /// Checks what serde cannot: workspace names, capability names, pins.
    pub fn validate(&self) -> Result<(), String> {
        self.alerting.validate()?;
        self.limits.validate()?;
        for (ws, wc) in &self.workspaces {
            for (i, b) in wc.heal.iter().enumerate() {
                b.validate(ws).map_err(|e| {
                    format!("[[workspaces.{ws}.heal]] #{} ({}): {e}", i + 1, b.playbook)
                })?;
            }
            if ws != "*" {
                crate::validate::workspace(ws).map_err(|e| format!("[workspaces.{ws}]: {e}"))?;
            }
            for (name, pc) in &wc.plugins {
                let at = format!("[workspaces.{ws}.plugins.{name}]");
                warden_meta::validate_name(name).map_err(|e| format!("{at}: {e}"))?;
                CapabilitySet::parse(&pc.grants).map_err(|e| format!("{at} grants: {e}"))?;
                if let Some(pin) = &pc.pin {
                    selector::Selector::parse(pin).map_err(|e| format!("{at} pin: {e}"))?;
                }
            }
            if let Some(policy) = &wc.gateway.policy {
                warden_meta::validate_name(policy)
                    .map_err(|e| format!("[workspaces.{ws}.gateway] policy: {e}"))?;
            }
            if let Some(mode) = &wc.gateway.default_mode {
                gateway::check_mode(mode)
                    .map_err(|e| format!("[workspaces.{ws}.gateway] default_mode: {e}"))?;
            }
            for (stage, binding) in &wc.gates {
                let at = format!("[workspaces.{ws}.gates.{stage}]");
                crate::validate::id("stage", stage).map_err(|e| format!("{at}: {e}"))?;
                binding.validate().map_err(|e| format!("{at} {e}"))?;
            }
        }
        self.gateway.validate()?;
        self.scheduler.validate()?;
        self.http.validate()?;
        if self.checkpoints.max_agents_per_workspace == 0 {
            return Err("[checkpoints] max_agents_per_workspace must be at least 1".to_string());
        }
        processes::validate(self)?;
        self.disk_guard
            .validate()
            .map_err(|e| format!("[disk_guard] {e}"))?;
        if let Some(token) = &self.auth.admin_token
            && token.len() < 16
        {
            return Err("the admin token must be at least 16 characters".to_string());
        }
        Ok(())
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("warden.db").display()))
    }

    /// Host limits for the runtime.
    pub fn host_limits(&self) -> warden_runtime::HostLimits {
        let l = &self.limits;
        warden_runtime::HostLimits {
            deadline_ms: l.deadline_ms,
            max_deadline_ms: l.max_deadline_ms.max(l.deadline_ms),
            memory_mib: l.memory_mib,
            max_memory_mib: l.max_memory_mib.max(l.memory_mib),
            fuel: l.fuel,
            steps: l.steps,
            output_kib: l.output_kib,
            ..warden_runtime::HostLimits::default()
        }
    }

    /// The `[workspaces.*]` tables as the services that read plugin
    /// settings, grants and gate bindings hold them.
    pub fn workspace_settings(&self) -> Workspaces {
        Workspaces(Arc::new(self.workspaces.clone()))
    }
}

/// The `[workspaces.*]` tables (plugin settings, grants, gate bindings,
/// gateway and heal settings per workspace, `"*"` for every workspace):
/// the slice of the configuration the registry, gates, runs and the
/// gateway's policies are built with. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Workspaces(Arc<BTreeMap<String, WorkspaceConfig>>);

impl Workspaces {
    /// The settings of `workspace` itself (not merged with `"*"`).
    pub fn get(&self, workspace: &str) -> Option<&WorkspaceConfig> {
        self.0.get(workspace)
    }

    /// Each workspace key (`"*"` included) with its settings.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &WorkspaceConfig)> {
        self.0.iter()
    }

    /// The plugin settings of `plugin` in `workspace`, merged with those
    /// of `"*"` (the workspace's own values win for pin, config and
    /// limits; grants are added together).
    pub fn plugin(&self, workspace: &str, plugin: &str) -> PluginConfig {
        let get = |ws: &str| self.0.get(ws).and_then(|w| w.plugins.get(plugin)).cloned();
        let mut merged = get("*").unwrap_or_default();
        if let Some(own) = get(workspace) {
            merged.pin = own.pin.or(merged.pin);
            merged.grants.extend(own.grants);
            merged.config.extend(own.config);
            let l = own.limits;
            let m = &mut merged.limits;
            m.deadline_ms = l.deadline_ms.or(m.deadline_ms);
            m.memory_mib = l.memory_mib.or(m.memory_mib);
            m.fuel = l.fuel.or(m.fuel);
            m.steps = l.steps.or(m.steps);
            m.output_kib = l.output_kib.or(m.output_kib);
        }
        merged
    }

    /// warden.toml's gate binding of `stage` in `workspace`, else `"*"`'s.
    pub fn gate_binding(&self, workspace: &str, stage: &str) -> Option<gates::Binding> {
        [workspace, "*"]
            .iter()
            .find_map(|ws| self.0.get(*ws)?.gates.get(stage).cloned())
    }

    /// warden.toml's gate bindings of `workspace`, by stage (`"*"`'s
    /// under the workspace's own).
    pub fn gate_bindings(&self, workspace: &str) -> BTreeMap<String, gates::Binding> {
        let mut all = BTreeMap::new();
        for ws in ["*", workspace] {
            if let Some(w) = self.0.get(ws) {
                all.extend(w.gates.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        all
    }

    /// True when warden.toml says anything about grants for this plugin
    /// in this workspace (or `"*"`).
    pub fn has_grant_config(&self, workspace: &str, plugin: &str) -> bool {
        [workspace, "*"].iter().any(|ws| {
            self.0
                .get(*ws)
                .and_then(|w| w.plugins.get(plugin))
                .is_some_and(|p| !p.grants.is_empty())
        })
    }
}

/// A TOML value as the string a plugin reads from `config.get`.
pub fn config_value_string(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_is_valid() {
        let text = include_str!("../../../../examples/warden.toml");
        let config = Config::parse(text).unwrap();
        config.validate().unwrap();
        let review = config
            .workspace_settings()
            .gate_binding("acme", "review")
            .unwrap();
        assert_eq!(review.quorum.to_string(), "2-of-3");
        assert!(
            config
                .workspace_settings()
                .gate_binding("other", "review")
                .is_none()
        );
    }

    #[test]
    fn reserved_calls_leave_playbooks_a_slot_and_bounds_are_positive() {
        let config =
            Config::parse("[limits]\nmax_concurrent_calls = 4\nreserved_calls = 4\n").unwrap();
        assert_eq!(
            config.validate().unwrap_err(),
            "[limits] reserved_calls 4 must be below max_concurrent_calls 4 (playbook runs need at least one)"
        );
        // By default a quarter of the slots is reserved.
        let config = Config::parse("[limits]\nmax_concurrent_calls = 4\n").unwrap();
        config.validate().unwrap();
        assert_eq!(config.limits.reserved_calls(), 1);
        assert_eq!(Config::default().limits.reserved_calls(), 8);
        for key in [
            "max_runs_per_workspace",
            "max_run_events",
            "max_run_event_kib",
            "max_event_queue_kib",
        ] {
            let config = Config::parse(&format!("[limits]\n{key} = 0\n")).unwrap();
            assert_eq!(
                config.validate().unwrap_err(),
                format!("[limits] {key} must be at least 1, not 0")
            );
        }
    }

    #[test]
    fn a_bad_gate_binding_is_named_with_its_place() {
        let config = Config::parse(
            "[workspaces.acme.gates.review]\ngates = [\"a\", \"b\"]\nquorum = \"3-of-2\"\n",
        );
        assert!(config.unwrap_err().contains("k must be between 1 and n"));
        let config =
            Config::parse("[workspaces.acme.gates.review]\ngates = [\"a\"]\nquorum = \"2-of-2\"\n")
                .unwrap();
        assert_eq!(
            config.validate().unwrap_err(),
            "[workspaces.acme.gates.review] quorum 2-of-2: n must be the number of gates (1)"
        );
    }

    #[test]
    fn bad_http_and_checkpoint_bounds_are_named() {
        assert_eq!(
            invalid("[http]\nheader_read_timeout_ms = 10\n"),
            "[http] header_read_timeout_ms must be at least 100, not 10"
        );
        assert_eq!(
            invalid("[http]\nmax_streams_per_token = 0\n"),
            "[http] max_streams_per_token must be at least 1, not 0"
        );
        assert_eq!(
            invalid("[checkpoints]\nmax_agents_per_workspace = 0\n"),
            "[checkpoints] max_agents_per_workspace must be at least 1"
        );
        let defaults = Config::default();
        assert_eq!(defaults.http.header_read_timeout_ms, 30_000);
        assert_eq!(defaults.http.max_connections_per_addr, 256);
        assert_eq!(defaults.http.unauthenticated_per_sec, 20);
        assert_eq!(defaults.checkpoints.max_agents_per_workspace, 1_000);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("listen = \"127.0.0.1:1\"\nplugin_dri = \"x\"").unwrap_err();
        assert!(err.contains("unknown field `plugin_dri`"), "{err}");
    }

    #[test]
    fn bad_capability_is_named_with_its_place() {
        let config = Config::parse(
            r#"
            [workspaces.acme.plugins.diagnose-system]
            grants = ["tasks:wirte"]
            "#,
        )
        .unwrap();
        let err = config.validate().unwrap_err();
        assert_eq!(
            err,
            "[workspaces.acme.plugins.diagnose-system] grants: unknown capability \"tasks:wirte\" (did you mean \"tasks:write\"?)"
        );
    }

    #[test]
    fn wildcard_workspace_merges_under_the_specific_one() {
        let config = Config::parse(
            r#"
            [workspaces."*".plugins.p]
            grants = ["health:read"]
            pin = "1.0.0"
            config = { a = "1", b = 2 }
            [workspaces.acme.plugins.p]
            grants = ["tasks:read"]
            config = { b = 3 }
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        let p = config.workspace_settings().plugin("acme", "p");
        assert_eq!(p.grants, vec!["health:read", "tasks:read"]);
        assert_eq!(p.pin.as_deref(), Some("1.0.0"));
        assert_eq!(config_value_string(&p.config["a"]), "1");
        assert_eq!(config_value_string(&p.config["b"]), "3");
        assert_eq!(
            config.workspace_settings().plugin("other", "p").grants,
            vec!["health:read"]
        );
    }

    fn invalid(text: &str) -> String {
        match Config::parse(text) {
            Ok(c) => c.validate().expect_err("invalid"),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_alerting_and_heal_settings_are_named() {
        let e = invalid("[[alerting.sinks]]\nname = \"s\"\nkind = \"slack\"\n");
        assert!(
            e.contains("\"s\": a slack sink needs url or url_env"),
            "{e}"
        );
        let e = invalid("[[alerting.sinks]]\nname = \"p\"\nkind = \"pagerduty\"\n");
        assert!(e.contains("needs routing_key_env"), "{e}");
        let e = invalid(
            "[[alerting.sinks]]\nname = \"f\"\nkind = \"jsonl\"\npath = \"a\"\nseverities = [\"urgent\"]\n",
        );
        assert!(e.contains("unknown severity \"urgent\""), "{e}");
        let e = invalid("[[alerting.sinks]]\nname = \"x\"\nkind = \"email\"\n");
        assert!(e.contains("unknown variant `email`"), "{e}");
        let e = invalid("[alerting.rules]\ngate_rejection_rate = 1.5\n");
        assert!(
            e.contains("gate_rejection_rate must be between 0 and 1"),
            "{e}"
        );
        let e = invalid(
            "[[workspaces.a.heal]]\nplaybook = \"repair-common-issues\"\non_alert = \"stuck_task\"\nevery = \"5m\"\n",
        );
        assert!(
            e.contains(
                "[[workspaces.a.heal]] #1 (repair-common-issues): set on_alert or every, not both"
            ),
            "{e}"
        );
        let e = invalid("[[workspaces.a.heal]]\nplaybook = \"p\"\nevery = \"soon\"\n");
        assert!(e.contains("every = \"soon\" is not a duration"), "{e}");
        let e = invalid("[[workspaces.\"*\".heal]]\nplaybook = \"p\"\nevery = \"5m\"\n");
        assert!(e.contains("needs a named workspace"), "{e}");
        let e =
            invalid("[[workspaces.a.heal]]\nplaybook = \"p\"\non_alert = \"x\"\nmode = \"fix\"\n");
        assert!(e.contains("invalid mode \"fix\""), "{e}");
        let ok = Config::parse(
            "[[workspaces.a.heal]]\nplaybook = \"p\"\non_alert = \"stuck_task\"\n[[alerting.sinks]]\nname = \"f\"\nkind = \"jsonl\"\npath = \"a.jsonl\"\n",
        )
        .unwrap();
        ok.validate().unwrap();
        assert_eq!(ok.workspaces["a"].heal[0].mode, "apply");
    }
}
