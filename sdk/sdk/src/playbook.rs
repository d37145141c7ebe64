//! The playbook world: context, report and findings.

use std::fmt::Display;

use serde::de::DeserializeOwned;

use crate::wit::playbook as wit;

pub use crate::wit::playbook::warden::plugin::types::{Finding, Mode, Severity};

/// What a run knows about itself.
#[derive(Debug)]
pub struct Context {
    run_id: String,
    workspace: String,
    mode: Mode,
    input: String,
}

impl Context {
    /// The run's id, as the host records it.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The workspace the run belongs to.
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// `Diagnose`, `Plan` or `Apply`.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The input JSON as sent (`null` when none was).
    pub fn input_json(&self) -> &str {
        &self.input
    }

    /// The input parsed into `T`.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.input).map_err(|e| format!("invalid input: {e}"))
    }
}

/// What a playbook run found and what a human should do.
///
/// The actions the run applied or planned are not part of it: the host
/// records those itself as they happen.
pub type Report = wit::Report;

impl Report {
    /// An empty report with a one-line summary.
    pub fn new(summary: impl Into<String>) -> Self {
        Report {
            summary: summary.into(),
            findings: Vec::new(),
            manual_actions: Vec::new(),
        }
    }

    /// Adds a finding.
    pub fn push(&mut self, finding: Finding) -> &mut Self {
        self.findings.push(finding);
        self
    }

    /// Adds an action a human must take.
    pub fn manual(&mut self, action: impl Into<String>) -> &mut Self {
        self.manual_actions.push(action.into());
        self
    }

    /// The most severe finding's severity (`Info` when there are none).
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max_by_key(|s| *s as u8)
            .unwrap_or(Severity::Info)
    }
}

impl Finding {
    fn with(severity: Severity, code: &str, summary: impl Into<String>) -> Self {
        Finding {
            severity,
            code: code.to_string(),
            summary: summary.into(),
            evidence: None,
        }
    }

    /// An informational finding.
    pub fn info(code: &str, summary: impl Into<String>) -> Self {
        Self::with(Severity::Info, code, summary)
    }

    /// A warning.
    pub fn warning(code: &str, summary: impl Into<String>) -> Self {
        Self::with(Severity::Warning, code, summary)
    }

    /// A critical finding.
    pub fn critical(code: &str, summary: impl Into<String>) -> Self {
        Self::with(Severity::Critical, code, summary)
    }

    /// Attaches evidence (a short excerpt, ids, numbers).
    pub fn evidence(mut self, evidence: impl Into<String>) -> Self {
        self.evidence = Some(evidence.into());
        self
    }
}

/// Called by the code `#[playbook]` emits.
#[doc(hidden)]
pub fn run_playbook<E: Display>(
    ctx: wit::RunContext,
    input: String,
    f: fn(&Context) -> Result<Report, E>,
) -> Result<Report, String> {
    let ctx = Context {
        run_id: ctx.run_id,
        workspace: ctx.workspace,
        mode: ctx.mode,
        input,
    };
    f(&ctx).map_err(|e| e.to_string())
}
