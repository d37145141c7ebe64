//! Plugin metadata and capabilities: the one definition shared by the Warden
//! host (which reads it out of a `.wasm`), the SDK macros (which write it into
//! one) and the test kit.
//!
//! A plugin's metadata travels inside its component as a custom section named
//! [`SECTION`], holding [`PluginMeta`] as JSON (SPEC PL-4):
//!
//! ```
//! use warden_meta::{PluginMeta, PluginKind};
//!
//! let meta = PluginMeta::builder("diagnose-system", "1.0.0", PluginKind::Playbook)
//!     .description("workers, queue, errors, database and disk, as a report")
//!     .capabilities(["health:read", "tasks:read"])
//!     .build()
//!     .unwrap();
//! let bytes = meta.encode();
//! assert_eq!(PluginMeta::decode(&bytes).unwrap(), meta);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod capability;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use capability::{Capability, CapabilitySet};

/// Name of the custom section that carries the metadata.
pub const SECTION: &str = "warden:plugin-meta";

/// Version of the metadata layout. The host refuses a section whose schema is
/// newer than it knows.
pub const SCHEMA: u32 = 1;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can be wrong with metadata.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A capability name that does not exist.
    #[error("unknown capability \"{name}\"{}", suggestion.as_ref().map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default())]
    UnknownCapability {
        /// The name as written.
        name: String,
        /// The nearest known name, when it looks like a typo.
        suggestion: Option<String>,
    },
    /// A plugin kind that does not exist.
    #[error("unknown plugin kind \"{0}\" (expected playbook, quality-gate or routing-policy)")]
    UnknownKind(String),
    /// The name breaks the naming rule.
    #[error(
        "invalid plugin name \"{0}\": use 1 to 64 lowercase letters, digits and dashes, starting with a letter"
    )]
    InvalidName(String),
    /// The version is not semver.
    #[error("invalid plugin version \"{0}\": expected a semantic version such as 1.2.0")]
    InvalidVersion(String),
    /// A limit is zero or above what any host allows.
    #[error("invalid limit {name} = {value}: {why}")]
    InvalidLimit {
        /// Which limit.
        name: &'static str,
        /// The value given.
        value: u64,
        /// Why it is refused.
        why: &'static str,
    },
    /// The section is not valid metadata JSON.
    #[error("metadata is not valid: {0}")]
    Malformed(String),
    /// The section was written by a newer SDK.
    #[error("metadata schema {0} is newer than this host understands ({SCHEMA})")]
    SchemaTooNew(u32),
}

/// The three kinds of plugin, one per WIT world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// World `playbook`: diagnose and repair.
    Playbook,
    /// World `quality-gate`: approve, reject or escalate a stage output.
    QualityGate,
    /// World `routing-policy`: choose a provider and model.
    RoutingPolicy,
}

impl PluginKind {
    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Playbook => "playbook",
            PluginKind::QualityGate => "quality-gate",
            PluginKind::RoutingPolicy => "routing-policy",
        }
    }

    /// The function the world exports.
    pub fn export(self) -> &'static str {
        match self {
            PluginKind::Playbook => "run",
            PluginKind::QualityGate => "evaluate",
            PluginKind::RoutingPolicy => "route",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

impl FromStr for PluginKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "playbook" => Ok(PluginKind::Playbook),
            "quality-gate" | "gate" => Ok(PluginKind::QualityGate),
            "routing-policy" | "router" => Ok(PluginKind::RoutingPolicy),
            other => Err(Error::UnknownKind(other.to_string())),
        }
    }
}

/// Limits a plugin asks for. The host applies them, capped by its own
/// maxima; a field left out takes the host default (SPEC PL-5).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock deadline of one call, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Linear memory cap, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Fuel (roughly, wasm instructions) for one call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Mutating host calls one run may make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Size of the returned value, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_kib: Option<u64>,
}

impl Limits {
    fn validate(&self) -> Result<()> {
        let checks: [(&'static str, Option<u64>, u64); 5] = [
            ("deadline_ms", self.deadline_ms, 10 * 60 * 1000),
            ("memory_mib", self.memory_mib, 4096),
            ("fuel", self.fuel, u64::MAX / 2),
            ("steps", self.steps, 10_000),
            ("output_kib", self.output_kib, 64 * 1024),
        ];
        for (name, value, max) in checks {
            match value {
                Some(0) => {
                    return Err(Error::InvalidLimit {
                        name,
                        value: 0,
                        why: "must be at least 1",
                    });
                }
                Some(v) if v > max => {
                    return Err(Error::InvalidLimit {
                        name,
                        value: v,
                        why: "above the largest value any host accepts",
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Everything the host needs to know about a plugin before running it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginMeta {
    /// Layout version, [`SCHEMA`] when written by this crate.
    pub schema: u32,
    /// `[a-z][a-z0-9-]{0,63}`.
    pub name: String,
    /// Semantic version.
    pub version: semver::Version,
    /// Which world the component implements.
    pub kind: PluginKind,
    /// One line for listings.
    #[serde(default)]
    pub description: String,
    /// What the plugin asks to be granted.
    #[serde(default)]
    pub capabilities: CapabilitySet,
    /// Limits it asks for.
    #[serde(default)]
    pub limits: Limits,
    /// Safe to run again after an interruption (RL-4).
    #[serde(default)]
    pub idempotent: bool,
    /// Several runs per workspace may be active at once (PB-5).
    #[serde(default)]
    pub concurrent: bool,
}

impl PluginMeta {
    /// Starts a builder with the required fields.
    pub fn builder(name: &str, version: &str, kind: PluginKind) -> Builder {
        Builder {
            name: name.to_string(),
            version: version.to_string(),
            kind,
            description: String::new(),
            capabilities: Vec::new(),
            limits: Limits::default(),
            idempotent: false,
            concurrent: false,
        }
    }

    /// The JSON bytes for the custom section.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads and validates the custom section's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            schema: Option<u32>,
        }
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        match probe.schema {
            None => return Err(Error::Malformed("missing field `schema`".into())),
            Some(s) if s > SCHEMA => return Err(Error::SchemaTooNew(s)),
            Some(_) => {}
        }
        let meta: PluginMeta =
            serde_json::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        meta.validate()?;
        Ok(meta)
    }

    /// Checks the rules serde cannot express.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        self.limits.validate()
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// Checks a plugin name: `[a-z][a-z0-9-]{0,63}`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

/// Builds and validates a [`PluginMeta`].
#[derive(Clone, Debug)]
pub struct Builder {
    name: String,
    version: String,
    kind: PluginKind,
    description: String,
    capabilities: Vec<String>,
    limits: Limits,
    idempotent: bool,
    concurrent: bool,
}

impl Builder {
    /// Sets the one-line description.
    pub fn description(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }

    /// Adds requested capabilities by name.
    pub fn capabilities<I, S>(mut self, caps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.capabilities
            .extend(caps.into_iter().map(|c| c.as_ref().to_string()));
        self
    }

    /// Sets the requested limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Marks the plugin safe to retry after an interruption.
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    /// Allows several active runs per workspace.
    pub fn concurrent(mut self, yes: bool) -> Self {
        self.concurrent = yes;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<PluginMeta> {
        let version = semver::Version::parse(&self.version)
            .map_err(|_| Error::InvalidVersion(self.version.clone()))?;
        let meta = PluginMeta {
            schema: SCHEMA,
            name: self.name,
            version,
            kind: self.kind,
            description: self.description,
            capabilities: CapabilitySet::parse(&self.capabilities)?,
            limits: self.limits,
            idempotent: self.idempotent,
            concurrent: self.concurrent,
        };
        meta.validate()?;
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_names_versions_and_limits() {
        let b =
            |name: &str, version: &str| PluginMeta::builder(name, version, PluginKind::Playbook);
        assert!(matches!(
            b("Bad_Name", "1.0.0").build(),
            Err(Error::InvalidName(_))
        ));
        assert!(matches!(
            b("ok", "one").build(),
            Err(Error::InvalidVersion(_))
        ));
        let err = b("ok", "1.0.0")
            .limits(Limits {
                memory_mib: Some(0),
                ..Limits::default()
            })
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid limit memory_mib = 0: must be at least 1"
        );
    }

    #[test]
    fn decode_refuses_newer_schema_and_missing_fields() {
        assert_eq!(
            PluginMeta::decode(br#"{"schema": 99}"#).unwrap_err(),
            Error::SchemaTooNew(99)
        );
        let err = PluginMeta::decode(br#"{"schema": 1, "name": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `version`"), "{err}");
        let err = PluginMeta::decode(b"not json").unwrap_err();
        assert!(matches!(err, Error::Malformed(_)));
    }
}
