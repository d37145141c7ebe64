//! The error host calls answer with.

use std::fmt;

use crate::wit::playbook::warden::plugin::types as wit;

/// Why a host call did not do what was asked. The plugin may handle it; a
/// run that abuses a limit is ended by the host instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The capability is not granted, or the run's mode forbids the call.
    Denied(String),
    /// The run's budget of mutating actions is spent; a further mutating
    /// call ends the run. Report what is left as manual actions.
    StepBudgetSpent,
    /// The named object does not exist in this workspace.
    NotFound(String),
    /// An argument was rejected.
    Invalid(String),
    /// The host cannot serve the call right now.
    Unavailable(String),
}

impl From<wit::HostError> for HostError {
    fn from(e: wit::HostError) -> Self {
        match e {
            wit::HostError::Denied(m) => HostError::Denied(m),
            wit::HostError::StepBudgetSpent => HostError::StepBudgetSpent,
            wit::HostError::NotFound(m) => HostError::NotFound(m),
            wit::HostError::Invalid(m) => HostError::Invalid(m),
            wit::HostError::Unavailable(m) => HostError::Unavailable(m),
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Denied(m) => write!(f, "denied: {m}"),
            HostError::StepBudgetSpent => f.write_str("step budget spent"),
            HostError::NotFound(m) => write!(f, "not found: {m}"),
            HostError::Invalid(m) => write!(f, "invalid: {m}"),
            HostError::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for HostError {}
