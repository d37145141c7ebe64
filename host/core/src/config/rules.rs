//! `[alerting.rules]`.

use serde::Deserialize;

/// `[alerting.rules]`: thresholds of the rules evaluated here, and the
/// rules whose alerts are recorded but never notified.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// How often the rules are evaluated.
    pub every_ms: u64,
    /// Rules whose alerts are recorded but not sent to any sink.
    pub mute: Vec<String>,
    /// `build_test_failures` (critical): stages that build or test.
    pub build_test_stages: Vec<String>,
    /// ... and how many tasks failing at them at once raise the alert.
    pub build_test_failing_tasks: u32,
    /// `gate_rejection_spike` (warning): the share of rejections over the
    /// window above which it fires ...
    pub gate_rejection_rate: f64,
    /// ... the window ...
    pub gate_rejection_window_ms: u64,
    /// ... and the fewest verdicts in the window for a rate to count.
    pub gate_rejection_min_verdicts: u32,
    /// `new_error_fingerprint` (warning): a failure fingerprint never seen
    /// before this window; the alert resolves when the window passes it.
    pub new_fingerprint_window_ms: u64,
    /// `error_rate_spike` (warning): failures in this window ...
    pub error_spike_window_ms: u64,
    /// ... above this many times the rate of the rest of the hour ...
    pub error_spike_factor: f64,
    /// ... and at least this many.
    pub error_spike_min_failures: u32,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            every_ms: 5_000,
            mute: Vec::new(),
            build_test_stages: vec!["implement".to_string(), "verify".to_string()],
            build_test_failing_tasks: 3,
            gate_rejection_rate: 0.30,
            gate_rejection_window_ms: 3_600_000,
            gate_rejection_min_verdicts: 5,
            new_fingerprint_window_ms: 3_600_000,
            error_spike_window_ms: 300_000,
            error_spike_factor: 3.0,
            error_spike_min_failures: 5,
        }
    }
}

impl RulesConfig {
    /// Checks the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let at = "[alerting.rules]";
        if self.every_ms < 100 {
            return Err(format!("{at} every_ms must be at least 100"));
        }
        if !(0.0..=1.0).contains(&self.gate_rejection_rate) {
            return Err(format!("{at} gate_rejection_rate must be between 0 and 1"));
        }
        if !self.error_spike_factor.is_finite() || self.error_spike_factor < 1.0 {
            return Err(format!("{at} error_spike_factor must be at least 1"));
        }
        if self.error_spike_window_ms == 0 || self.error_spike_window_ms >= 3_600_000 {
            return Err(format!(
                "{at} error_spike_window_ms must be more than 0 and less than an hour"
            ));
        }
        if self.gate_rejection_window_ms == 0 || self.new_fingerprint_window_ms == 0 {
            return Err(format!("{at} windows must be more than 0"));
        }
        if self.build_test_failing_tasks == 0 {
            return Err(format!("{at} build_test_failing_tasks must be at least 1"));
        }
        Ok(())
    }
}
