//! `[scheduler]`.

use serde::Deserialize;

/// The default stage pipeline (SPEC TS-1).
pub const DEFAULT_PIPELINE: &[&str] = &[
    "spec",
    "plan",
    "think",
    "implement",
    "verify",
    "review",
    "pr",
    "monitor",
];

/// Default of `[scheduler] max_event_tokens`: a billion tokens, far above
/// any one model call, and low enough that billions of events still sum
/// within a 64-bit counter.
pub const DEFAULT_MAX_EVENT_TOKENS: i64 = 1_000_000_000;

/// Default of `[scheduler] max_event_cost_usd`.
pub const DEFAULT_MAX_EVENT_COST_USD: f64 = 100_000.0;

/// `[scheduler]` in warden.toml.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Lease length when a claim asks for none.
    pub lease_ms: u64,
    /// Longest lease a claim may ask for.
    pub max_lease_ms: u64,
    /// Failures allowed per stage before the dead-letter queue.
    pub max_attempts: u32,
    /// Attempts at one stage without progress before the infinite-loop
    /// guard blocks the task (it blocks the attempt after this many).
    pub loop_limit: u32,
    /// The same failure fingerprint this many times in a row blocks.
    pub same_failure_limit: u32,
    /// First retry's longest delay; doubles per attempt; each delay is
    /// drawn between half and all of it ([`crate::scheduler::RetryPolicy`]).
    pub backoff_base_ms: u64,
    /// Largest retry delay.
    pub backoff_max_ms: u64,
    /// Leases held at once across all workspaces.
    pub max_leases: Option<u32>,
    /// Leases held at once per workspace.
    pub max_leases_per_workspace: Option<u32>,
    /// A running task without any event for this long is stuck.
    pub stuck_after_ms: u64,
    /// A worker not seen for this long does not count as present.
    pub worker_gone_after_ms: u64,
    /// More queued tasks than this raises the backlog warning.
    pub backlog_threshold: u32,
    /// The default pipeline of workspaces that set none.
    pub pipeline: Vec<String>,
    /// Most tokens one `token` event may report; more is refused (400),
    /// so that no report can push a task's or a workspace's counters past
    /// what their sums can hold.
    pub max_event_tokens: i64,
    /// Most dollars one `token` event may report; more is refused (400).
    pub max_event_cost_usd: f64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            lease_ms: 30_000,
            max_lease_ms: 3_600_000,
            max_attempts: 3,
            loop_limit: 5,
            same_failure_limit: 3,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            max_leases: None,
            max_leases_per_workspace: None,
            stuck_after_ms: 15 * 60_000,
            worker_gone_after_ms: 60_000,
            backlog_threshold: 20,
            pipeline: DEFAULT_PIPELINE.iter().map(|s| s.to_string()).collect(),
            max_event_tokens: DEFAULT_MAX_EVENT_TOKENS,
            max_event_cost_usd: DEFAULT_MAX_EVENT_COST_USD,
        }
    }
}

impl SchedulerConfig {
    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_event_tokens <= 0 {
            return Err(format!(
                "[scheduler] max_event_tokens must be positive, not \"{}\"",
                self.max_event_tokens
            ));
        }
        if !self.max_event_cost_usd.is_finite() || self.max_event_cost_usd <= 0.0 {
            return Err(format!(
                "[scheduler] max_event_cost_usd must be a positive number of dollars, not \"{}\"",
                self.max_event_cost_usd
            ));
        }
        Ok(())
    }
}
