//! Capabilities (SPEC PL-2): what a plugin asks for and an operator grants.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// One capability a plugin may request and an operator may grant.
///
/// `log` and `config` are always available and have no capability.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// `health:read`: the system snapshot.
    HealthRead,
    /// `tasks:read`: list and get tasks.
    TasksRead,
    /// `tasks:write`: requeue, reset, block, unblock and create tasks.
    TasksWrite,
    /// `alerts:write`: raise and resolve alerts.
    AlertsWrite,
    /// `kv`: the plugin's own key/value state.
    Kv,
    /// `http:<host>`: outbound HTTP to one host.
    Http(String),
    /// `processes:restart`: restart a supervised process.
    ProcessesRestart,
    /// `artifacts:read`: read evidence artifacts.
    ArtifactsRead,
    /// `artifacts:compact`: compress old evidence artifacts.
    ArtifactsCompact,
}

/// Every capability name without an argument, in the order the docs list them.
const NAMES: &[(&str, Capability)] = &[
    ("health:read", Capability::HealthRead),
    ("tasks:read", Capability::TasksRead),
    ("tasks:write", Capability::TasksWrite),
    ("alerts:write", Capability::AlertsWrite),
    ("kv", Capability::Kv),
    ("processes:restart", Capability::ProcessesRestart),
    ("artifacts:read", Capability::ArtifactsRead),
    ("artifacts:compact", Capability::ArtifactsCompact),
];

impl Capability {
    /// True for capabilities whose calls change the system and so are
    /// audited, counted against the step budget and withheld in `diagnose`.
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Capability::TasksWrite
                | Capability::AlertsWrite
                | Capability::ProcessesRestart
                | Capability::ArtifactsCompact
        )
    }

    /// The names of every capability, for help texts.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .map(|(n, _)| *n)
            .chain(std::iter::once("http:<host>"))
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Capability::Http(host) = self {
            return write!(f, "http:{host}");
        }
        let name = NAMES
            .iter()
            .find(|(_, c)| c == self)
            .map(|(n, _)| *n)
            .unwrap_or("unknown");
        f.write_str(name)
    }
}

impl FromStr for Capability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some((_, cap)) = NAMES.iter().find(|(n, _)| *n == s) {
            return Ok(cap.clone());
        }
        if let Some(host) = s.strip_prefix("http:") {
            let valid = !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*'));
            if valid {
                return Ok(Capability::Http(host.to_ascii_lowercase()));
            }
            return Err(Error::UnknownCapability {
                name: s.to_string(),
                suggestion: None,
            });
        }
        Err(Error::UnknownCapability {
            name: s.to_string(),
            suggestion: closest(s),
        })
    }
}

impl Serialize for Capability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The known name nearest to `s`, when it is near enough to be a typo.
fn closest(s: &str) -> Option<String> {
    NAMES
        .iter()
        .map(|(n, _)| (*n, edit_distance(s, n)))
        .filter(|(_, d)| *d <= 3)
        .min_by_key(|(_, d)| *d)
        .map(|(n, _)| n.to_string())
}

/// Levenshtein distance, small inputs only.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A set of capabilities, ordered so that it prints the same every time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CapabilitySet(BTreeSet<Capability>);

impl CapabilitySet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses capability names, failing on the first unknown one.
    pub fn parse<I, S>(names: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names
            .into_iter()
            .map(|n| n.as_ref().parse())
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    /// True when `cap` is in the set. `http:*.example.com` covers
    /// `http:api.example.com`.
    pub fn allows(&self, cap: &Capability) -> bool {
        if self.0.contains(cap) {
            return true;
        }
        if let Capability::Http(host) = cap {
            return self.0.iter().any(|c| match c {
                Capability::Http(pattern) => pattern
                    .strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}"))),
                _ => false,
            });
        }
        false
    }

    /// What both sets hold (PL-6: a plugin runs with the intersection of
    /// what it requests and what is granted).
    pub fn intersect(&self, other: &CapabilitySet) -> CapabilitySet {
        CapabilitySet(self.0.iter().filter(|c| other.allows(c)).cloned().collect())
    }

    /// Adds one capability.
    pub fn insert(&mut self, cap: Capability) {
        self.0.insert(cap);
    }

    /// Iterates in order.
    pub fn iter(&self) -> impl Iterator<Item = &Capability> {
        self.0.iter()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set without its mutating capabilities (what `diagnose` runs get).
    pub fn read_only(&self) -> CapabilitySet {
        CapabilitySet(
            self.0
                .iter()
                .filter(|c| !c.is_mutating())
                .cloned()
                .collect(),
        )
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<T: IntoIterator<Item = Capability>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_name() {
        for name in NAMES
            .iter()
            .map(|(n, _)| *n)
            .chain(["http:api.example.com"])
        {
            let cap: Capability = name.parse().unwrap();
            assert_eq!(cap.to_string(), name);
        }
    }

    #[test]
    fn typo_gets_a_suggestion() {
        let err = "tasks:wirte".parse::<Capability>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown capability "tasks:wirte" (did you mean "tasks:write"?)"#
        );
        let err = "everything".parse::<Capability>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"unknown capability "everything""#)
        );
    }

    #[test]
    fn intersection_and_wildcard_hosts() {
        let requested =
            CapabilitySet::parse(["tasks:read", "tasks:write", "http:api.example.com"]).unwrap();
        let granted = CapabilitySet::parse(["tasks:read", "http:*.example.com"]).unwrap();
        let effective = requested.intersect(&granted);
        assert_eq!(
            effective.names(),
            vec!["tasks:read", "http:api.example.com"]
        );
        assert!(!effective.allows(&Capability::TasksWrite));
        assert_eq!(
            requested.read_only().names(),
            vec!["tasks:read", "http:api.example.com"]
        );
    }
}
