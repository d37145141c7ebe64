//! `[workspaces.<ws>.gates.<stage>]`: the gates bound to a stage, their
//! quorum and what a failing gate counts as (SPEC QG-1).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How several gates on one transition decide (SPEC QG-2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quorum {
    /// Every gate approves.
    #[default]
    All,
    /// More than half approve.
    Majority,
    /// At least `k` of the `n` gates approve.
    KOfN {
        /// Approvals needed.
        k: usize,
        /// Gates bound (must match the binding's list).
        n: usize,
    },
}

impl Quorum {
    /// Parses `all`, `majority` or `<k>-of-<n>`.
    pub fn parse(s: &str) -> Result<Quorum, String> {
        match s {
            "all" => Ok(Quorum::All),
            "majority" => Ok(Quorum::Majority),
            other => {
                let parsed = other
                    .split_once("-of-")
                    .and_then(|(k, n)| Some((k.parse().ok()?, n.parse().ok()?)));
                match parsed {
                    Some((k, n)) if k >= 1 && k <= n => Ok(Quorum::KOfN { k, n }),
                    Some(_) => Err(format!("quorum \"{other}\": k must be between 1 and n")),
                    None => Err(format!(
                        "unknown quorum \"{other}\" (expected all, majority or <k>-of-<n>, e.g. 2-of-3)"
                    )),
                }
            }
        }
    }

    /// Approvals needed out of `n` gates.
    pub fn needed(self, n: usize) -> usize {
        match self {
            Quorum::All => n,
            Quorum::Majority => n / 2 + 1,
            Quorum::KOfN { k, .. } => k,
        }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::All => f.write_str("all"),
            Quorum::Majority => f.write_str("majority"),
            Quorum::KOfN { k, n } => write!(f, "{k}-of-{n}"),
        }
    }
}

impl Serialize for Quorum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Quorum::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a failed gate counts as: never an approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Wait for a human (the default).
    #[default]
    Escalate,
    /// Send the task back.
    Reject,
}

/// The gates of one stage (warden.toml `[workspaces.<ws>.gates.<stage>]`,
/// or `PUT /v1/workspaces/{ws}/gates/{stage}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// Gate plugin names, each resolved with the workspace's pin.
    pub gates: Vec<String>,
    /// `all` (default), `majority` or `<k>-of-<n>`.
    #[serde(default)]
    pub quorum: Quorum,
    /// Where a rejected task goes back to (default `plan`; the first stage
    /// when its pipeline has no such stage).
    #[serde(default = "default_reject_to")]
    pub reject_to: String,
    /// What a gate that fails (trap, timeout, limit) counts as.
    #[serde(default)]
    pub on_error: OnError,
    /// Per gate: config values that replace its own while its breaker is
    /// open (SPEC QG-4 "relaxes its threshold").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub relax: BTreeMap<String, BTreeMap<String, Value>>,
    /// How long a tripped breaker relaxes the gate.
    #[serde(default = "default_relax_minutes")]
    pub relax_minutes: u64,
}

fn default_reject_to() -> String {
    "plan".to_string()
}

fn default_relax_minutes() -> u64 {
    30
}

impl Binding {
    /// Checks what serde cannot; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.gates.is_empty() {
            return Err("gates: at least one gate is needed".to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        for g in &self.gates {
            warden_meta::validate_name(g).map_err(|e| format!("gates: {e}"))?;
            if !seen.insert(g) {
                return Err(format!("gates: \"{g}\" is listed twice"));
            }
        }
        if let Quorum::KOfN { n, .. } = self.quorum
            && n != self.gates.len()
        {
            return Err(format!(
                "quorum {}: n must be the number of gates ({})",
                self.quorum,
                self.gates.len()
            ));
        }
        crate::validate::id("stage", &self.reject_to).map_err(|e| format!("reject_to: {e}"))?;
        for g in self.relax.keys() {
            if !self.gates.contains(g) {
                return Err(format!("relax: \"{g}\" is not one of the gates"));
            }
        }
        if self.relax_minutes == 0 || self.relax_minutes > 24 * 60 {
            return Err("relax_minutes: must be between 1 and 1440".to_string());
        }
        Ok(())
    }
}
