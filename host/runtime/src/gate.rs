//! The quality-gate world: one `evaluate` call under its limits (SPEC
//! QG-2).
//!
//! A gate runs through the same machinery as a playbook (limits, grants,
//! captured stdio, logs, usage); its answer is then checked: a score is 0 to
//! 100, and the verdict fits the output cap.

use std::collections::BTreeMap;
use std::sync::Arc;

use warden_meta::{CapabilitySet, Limits};
use wasmtime::Store;

use crate::backend::{CallInfo, LogLine, SharedBackend};
use crate::bindings::QualityGatePre;
use crate::call::{CallSetup, Entry, Usage};
use crate::engine::{EffectiveLimits, Runtime};
use crate::error::RunError;
use crate::host::{HostState, strip_nul};
use crate::plugin::{Exports, Plugin};
use crate::types::{Mode, Submission, Verdict};

/// The highest score a verdict may carry.
pub(crate) const MAX_SCORE: u8 = 100;

/// Which gate evaluates what, and with which rights.
pub struct GateRequest {
    /// Who evaluates what. `info.run_id` identifies the evaluation; a gate
    /// has no modes, so `info.mode` is always treated as `apply` (its `kv`
    /// writes are real).
    pub info: CallInfo,
    /// What the operator granted this gate in this workspace; the call gets
    /// the intersection with what the gate requests.
    pub granted: CapabilitySet,
    /// The gate's configuration values in this workspace.
    pub config: Arc<BTreeMap<String, String>>,
    /// The operator's limit overrides for this gate.
    pub limits: Limits,
    /// Data and records (the gate's `kv`, its log events).
    pub backend: SharedBackend,
}

/// How an evaluation ended and what it left behind.
#[derive(Debug)]
pub struct GateOutcome {
    /// The verdict, or why there is none. A verdict is only `Ok` when its
    /// score is 0 to 100 and it fits the output cap.
    pub result: Result<Verdict, RunError>,
    /// The log: `log` lines, then captured stdout and stderr.
    pub logs: Vec<LogLine>,
    /// Lines dropped over the cap.
    pub logs_dropped: u64,
    /// Resources used.
    pub usage: Usage,
    /// The limits that applied.
    pub limits: EffectiveLimits,
}

impl Runtime {
    /// Calls a quality gate's `evaluate` export once, in a fresh instance,
    /// under its limits, and checks the verdict. Never panics and never
    /// fails the host: every way the call can end is in the outcome.
    pub async fn evaluate_gate(
        &self,
        plugin: &Plugin,
        req: GateRequest,
        submission: &Submission,
    ) -> GateOutcome {
        let setup = CallSetup {
            info: CallInfo {
                mode: Mode::Apply,
                ..req.info
            },
            granted: req.granted,
            config: req.config,
            limits: req.limits,
            backend: req.backend,
        };
        let ended = self.call(plugin, setup, &GateEvaluate { submission }).await;
        GateOutcome {
            result: ended.result.and_then(check_verdict),
            logs: ended.logs,
            logs_dropped: ended.logs_dropped,
            usage: ended.usage,
            limits: ended.limits,
        }
    }
}

/// Refuses a verdict the WIT types allow but the contract does not.
fn check_verdict(verdict: Verdict) -> Result<Verdict, RunError> {
    if verdict.score > MAX_SCORE {
        return Err(RunError::InvalidOutput(format!(
            "verdict: score {} is over {MAX_SCORE}",
            verdict.score
        )));
    }
    Ok(verdict)
}

/// The `evaluate` export of the quality-gate world, with its argument.
struct GateEvaluate<'a> {
    submission: &'a Submission,
}

impl Entry for GateEvaluate<'_> {
    type Pre = QualityGatePre<HostState>;
    type Output = Verdict;
    const WORLD: &'static str = "quality-gate";
    const RESERVED_SLOTS: bool = true;

    fn pre(exports: &Exports) -> Option<&Self::Pre> {
        match exports {
            Exports::Gate(pre) => Some(pre),
            _ => None,
        }
    }

    async fn call(
        &self,
        pre: &Self::Pre,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Result<Verdict, String>> {
        let instance = pre.instantiate_async(&mut *store).await?;
        instance.call_evaluate(&mut *store, self.submission).await
    }

    /// Bytes of the reasons' strings, plus a little per reason.
    fn output_bytes(verdict: &Verdict) -> usize {
        8 + verdict
            .reasons
            .iter()
            .map(|r| r.category.len() + r.message.len() + 16)
            .sum::<usize>()
    }

    fn strip_nul(verdict: &mut Verdict) {
        for r in &mut verdict.reasons {
            strip_nul(&mut r.category);
            strip_nul(&mut r.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Decision, Reason};

    fn verdict(score: u8) -> Verdict {
        Verdict {
            decision: Decision::Approve,
            score,
            reasons: vec![Reason {
                category: "size".to_string(),
                message: "small".to_string(),
            }],
        }
    }

    #[test]
    fn scores_over_100_are_refused() {
        assert!(check_verdict(verdict(0)).is_ok());
        assert!(check_verdict(verdict(100)).is_ok());
        let err = check_verdict(verdict(140)).unwrap_err();
        assert_eq!(err.to_string(), "invalid verdict: score 140 is over 100");
        assert_eq!(err.code(), "invalid_output");
    }

    #[test]
    fn output_size_counts_the_reasons() {
        assert_eq!(GateEvaluate::output_bytes(&verdict(1)), 8 + 4 + 5 + 16);
    }
}
