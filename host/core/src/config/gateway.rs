//! `[gateway]` and `[[gateway.providers]]` in warden.toml (SPEC GW-2).

use serde::Deserialize;

use crate::breaker::BreakerPolicy;

/// The routing modes a request may name with `x-warden-mode` (SPEC GW-3).
pub const MODES: [&str; 4] = ["normal", "deep_research", "code", "ops"];

/// `[gateway]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// The routing-policy plugin every workspace uses unless its own
    /// `[workspaces.<name>.gateway] policy` says otherwise; its version
    /// is the workspace's pin.
    pub policy: String,
    /// The mode of a request without `x-warden-mode`.
    pub default_mode: String,
    /// Time an upstream has to send its response headers, per attempt.
    pub timeout_ms: u64,
    /// Time an upstream may stay silent while sending its body (between
    /// two stream chunks, or the whole body of a plain response).
    pub idle_timeout_ms: u64,
    /// Consecutive failures that open a provider's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before its probe: the first
    /// opening, the second in a row, ...; the last value repeats.
    pub breaker_backoff_ms: Vec<u64>,
    /// Also open a breaker when more than `breaker_window_percent` % of a
    /// provider's last `breaker_window` calls failed (0: off).
    pub breaker_window: u32,
    /// See `breaker_window`.
    pub breaker_window_percent: u32,
    /// No longer used, kept so that configurations that set it still
    /// load (a warning says so): a request without `max_tokens` now
    /// reserves `n` times its provider's `max_output_tokens` (else the
    /// context its prompt leaves), a bound the call cannot pass.
    pub reserve_output_tokens: Option<u32>,
    /// Largest request body.
    pub max_body_kib: usize,
    /// Most tokens one call is booked for: an upstream `usage` reporting
    /// more (or a count that does not fit) is booked at this, and the
    /// call's error says so.
    pub max_call_tokens: u64,
    /// Largest upstream response body (a plain completion, or an error);
    /// a larger one fails the attempt, which moves to the next candidate.
    pub max_response_kib: usize,
    /// Largest server-sent event of an upstream stream; a larger one (or a
    /// line that never ends) ends the client's stream with an error event.
    pub max_stream_event_kib: usize,
    /// The upstreams, in order of preference for policies that keep it.
    pub providers: Vec<ProviderConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let breaker = BreakerPolicy::default();
        GatewayConfig {
            policy: "cost-aware-router".to_string(),
            default_mode: "normal".to_string(),
            timeout_ms: 60_000,
            idle_timeout_ms: 120_000,
            breaker_failures: breaker.failures,
            breaker_backoff_ms: breaker.backoff_ms,
            breaker_window: 0,
            breaker_window_percent: 50,
            reserve_output_tokens: None,
            max_body_kib: 4_096,
            max_call_tokens: 1_000_000_000,
            max_response_kib: 16_384,
            max_stream_event_kib: 1_024,
            providers: Vec::new(),
        }
    }
}

/// `[[gateway.providers]]`: one OpenAI-compatible upstream (OpenAI,
/// OpenRouter, vLLM, Ollama, ...).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// A name for policies, records and the breaker (`provider:<name>`).
    pub name: String,
    /// The API root, e.g. `https://api.openai.com/v1`; requests go to
    /// `<base_url>/chat/completions`.
    pub base_url: String,
    /// The environment variable holding the API key (none: no
    /// `Authorization` header, as for a local Ollama).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The models it serves.
    pub models: Vec<String>,
    /// Dollars per 1,000 prompt tokens.
    #[serde(default)]
    pub price_input_per_1k: f64,
    /// Dollars per 1,000 completion tokens.
    #[serde(default)]
    pub price_output_per_1k: f64,
    /// Largest context (prompt plus completion tokens) of its models.
    #[serde(default = "default_max_context")]
    pub max_context: u32,
    /// Most completion tokens its models write per choice when a request
    /// sets no `max_tokens`: what such a request reserves against budgets
    /// (times `n`). None: the context the prompt leaves.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// Requests in flight at once (a stream counts until it ends); beyond,
    /// the request goes to the next candidate. None: no limit.
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    /// Overrides `[gateway] timeout_ms` for this provider.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn default_max_context() -> u32 {
    128_000
}

/// `[workspaces.<name>.gateway]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkspaceGateway {
    /// The routing-policy plugin of this workspace.
    pub policy: Option<String>,
    /// The mode of a request without `x-warden-mode`.
    pub default_mode: Option<String>,
}

impl GatewayConfig {
    /// The breaker policy of every provider.
    pub fn breaker_policy(&self) -> BreakerPolicy {
        BreakerPolicy {
            failures: self.breaker_failures,
            backoff_ms: self.breaker_backoff_ms.clone(),
            window: crate::breaker::RateWindow {
                size: self.breaker_window,
                over_percent: self.breaker_window_percent,
            },
        }
    }

    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        warden_meta::validate_name(&self.policy).map_err(|e| format!("[gateway] policy: {e}"))?;
        check_mode(&self.default_mode).map_err(|e| format!("[gateway] default_mode: {e}"))?;
        self.breaker_policy()
            .validate()
            .map_err(|e| format!("[gateway] {e}"))?;
        if self.timeout_ms == 0 || self.idle_timeout_ms == 0 {
            return Err("[gateway] timeout_ms and idle_timeout_ms must be positive".to_string());
        }
        if self.max_call_tokens == 0
            || self.max_call_tokens > i64::MAX as u64
            || self.max_response_kib == 0
            || self.max_stream_event_kib == 0
        {
            return Err(format!(
                "[gateway] max_call_tokens (up to {}), max_response_kib and max_stream_event_kib must be positive",
                i64::MAX
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.providers {
            let at = format!("[[gateway.providers]] \"{}\"", p.name);
            crate::validate::id("provider name", &p.name).map_err(|e| format!("{at}: {e}"))?;
            if !seen.insert(p.name.as_str()) {
                return Err(format!("{at}: the name is used twice"));
            }
            let url = url::Url::parse(&p.base_url)
                .map_err(|e| format!("{at}: base_url \"{}\": {e}", p.base_url))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("{at}: base_url must be http:// or https://"));
            }
            if p.models.is_empty() || p.models.iter().any(|m| m.trim().is_empty()) {
                return Err(format!("{at}: models must list at least one model name"));
            }
            for (key, price) in [
                ("price_input_per_1k", p.price_input_per_1k),
                ("price_output_per_1k", p.price_output_per_1k),
            ] {
                if !price.is_finite() || price < 0.0 {
                    return Err(format!(
                        "{at}: {key} must be a number of dollars, 0 or more"
                    ));
                }
            }
            if p.max_context == 0
                || p.max_concurrent == Some(0)
                || p.timeout_ms == Some(0)
                || p.max_output_tokens == Some(0)
            {
                return Err(format!(
                    "{at}: max_context, max_output_tokens, max_concurrent and timeout_ms must be positive"
                ));
            }
        }
        Ok(())
    }
}

/// Checks a routing mode.
pub fn check_mode(mode: &str) -> Result<(), String> {
    if MODES.contains(&mode) {
        Ok(())
    } else {
        Err(format!(
            "unknown mode \"{}\": expected normal, deep_research, code or ops",
            crate::validate::truncate(mode, 40)
        ))
    }
}
