//! The routing-policy world: one `route` call under its limits (SPEC
//! GW-3).
//!
//! A policy runs through the same machinery as a playbook or a gate
//! (limits, captured stdio, logs, usage); its decision is then checked: at
//! least one candidate, no empty names, sensible limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use warden_meta::{CapabilitySet, Limits};
use wasmtime::Store;

use crate::backend::{CallInfo, LogLine, SharedBackend};
use crate::bindings::RoutingPolicyPre;
use crate::call::{CallSetup, Entry, Usage};
use crate::engine::{EffectiveLimits, Runtime};
use crate::error::RunError;
use crate::host::{HostState, strip_nul};
use crate::plugin::{Exports, Plugin};
use crate::types::{Mode, RouteDecision, RouteRequest};

/// Which policy decides for whom, and with which settings.
pub struct RouteCall {
    /// Who decides what. `info.run_id` identifies the model call; a policy
    /// has no modes, so `info.mode` is treated as `apply`.
    pub info: CallInfo,
    /// What the operator granted (a policy imports only `log` and
    /// `config`, which need no grant).
    pub granted: CapabilitySet,
    /// The policy's configuration values in this workspace.
    pub config: Arc<BTreeMap<String, String>>,
    /// The operator's limit overrides for this policy.
    pub limits: Limits,
    /// Where its log events go.
    pub backend: SharedBackend,
}

/// How a decision ended and what it left behind.
#[derive(Debug)]
pub struct RouteOutcome {
    /// The decision, or why there is none. Only `Ok` when it names at
    /// least one candidate and its limits make sense.
    pub result: Result<RouteDecision, RunError>,
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
    /// Calls a routing policy's `route` export once, in a fresh instance,
    /// under its limits, and checks the decision. Never panics and never
    /// fails the host: every way the call can end is in the outcome.
    pub async fn route_request(
        &self,
        plugin: &Plugin,
        call: RouteCall,
        request: &RouteRequest,
    ) -> RouteOutcome {
        let setup = CallSetup {
            info: CallInfo {
                mode: Mode::Apply,
                ..call.info
            },
            granted: call.granted,
            config: call.config,
            limits: call.limits,
            backend: call.backend,
        };
        let ended = self.call(plugin, setup, &Route { request }).await;
        RouteOutcome {
            result: ended.result.and_then(check_decision),
            logs: ended.logs,
            logs_dropped: ended.logs_dropped,
            usage: ended.usage,
            limits: ended.limits,
        }
    }
}

/// Refuses a decision the WIT types allow but the contract does not. The
/// messages use the SDK's names (`max_price_per_1k`), which is what the
/// policy's author wrote.
fn check_decision(d: RouteDecision) -> Result<RouteDecision, RunError> {
    let invalid = |m: String| Err(RunError::InvalidOutput(format!("route decision: {m}")));
    if d.candidates.is_empty() {
        return invalid("it names no candidate".to_string());
    }
    if let Some((i, c)) = d
        .candidates
        .iter()
        .enumerate()
        .find(|(_, c)| c.provider.trim().is_empty() || c.model.trim().is_empty())
    {
        return invalid(format!(
            "candidate {} (provider \"{}\", model \"{}\") has an empty name",
            i + 1,
            c.provider,
            c.model
        ));
    }
    if let Some(p) = d.max_price_per_1k
        && !(p.is_finite() && p >= 0.0)
    {
        return invalid(format!(
            "max_price_per_1k {p} is not a price (expected a finite number of dollars, 0 or more)"
        ));
    }
    for (name, value) in [
        ("max_context", d.max_context),
        ("max_iterations", d.max_iterations),
    ] {
        if value == Some(0) {
            return invalid(format!(
                "{name} 0 would refuse every request (leave it unset for no limit)"
            ));
        }
    }
    Ok(d)
}

/// The `route` export of the routing-policy world, with its argument.
struct Route<'a> {
    request: &'a RouteRequest,
}

impl Entry for Route<'_> {
    type Pre = RoutingPolicyPre<HostState>;
    type Output = RouteDecision;
    const WORLD: &'static str = "routing-policy";
    const RESERVED_SLOTS: bool = true;

    fn pre(exports: &Exports) -> Option<&Self::Pre> {
        match exports {
            Exports::Router(pre) => Some(pre),
            _ => None,
        }
    }

    async fn call(
        &self,
        pre: &Self::Pre,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Result<RouteDecision, String>> {
        let instance = pre.instantiate_async(&mut *store).await?;
        instance.call_route(&mut *store, self.request).await
    }

    /// Bytes of the names and the reason, plus a little per candidate.
    fn output_bytes(d: &RouteDecision) -> usize {
        32 + d.reason.len()
            + d.candidates
                .iter()
                .map(|c| c.provider.len() + c.model.len() + 16)
                .sum::<usize>()
    }

    fn strip_nul(d: &mut RouteDecision) {
        strip_nul(&mut d.reason);
        for c in &mut d.candidates {
            strip_nul(&mut c.provider);
            strip_nul(&mut c.model);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Candidate;

    fn decision(candidates: &[(&str, &str)]) -> RouteDecision {
        RouteDecision {
            candidates: candidates
                .iter()
                .map(|(p, m)| Candidate {
                    provider: p.to_string(),
                    model: m.to_string(),
                })
                .collect(),
            max_price_per_1k: Some(0.01),
            max_context: Some(8_000),
            max_iterations: None,
            reason: "cheapest".to_string(),
        }
    }

    fn refusal(d: RouteDecision) -> String {
        match check_decision(d) {
            Ok(d) => panic!("expected a refusal, got {d:?}"),
            Err(e) => {
                assert_eq!(e.code(), "invalid_output");
                e.to_string()
            }
        }
    }

    #[test]
    fn a_sound_decision_passes_unchanged() {
        let d = decision(&[("a", "m"), ("b", "n")]);
        let checked = check_decision(d.clone()).unwrap();
        assert_eq!(format!("{checked:?}"), format!("{d:?}"));
        // No limits at all, and a price of 0, are sound too.
        let mut free = decision(&[("a", "m")]);
        free.max_price_per_1k = Some(0.0);
        free.max_context = None;
        assert!(check_decision(free).is_ok());
    }

    #[test]
    fn a_decision_without_candidates_is_refused() {
        assert_eq!(
            refusal(decision(&[])),
            "invalid route decision: it names no candidate"
        );
    }

    #[test]
    fn empty_names_are_refused_with_their_place() {
        assert_eq!(
            refusal(decision(&[("a", "m"), ("b", " ")])),
            "invalid route decision: candidate 2 (provider \"b\", model \" \") has an empty name"
        );
        assert!(refusal(decision(&[("", "m")])).contains("candidate 1 (provider \"\""));
    }

    #[test]
    fn prices_must_be_finite_and_not_negative() {
        for bad in [f64::NAN, f64::INFINITY, -0.01] {
            let mut d = decision(&[("a", "m")]);
            d.max_price_per_1k = Some(bad);
            let text = refusal(d);
            assert!(
                text.starts_with(&format!("invalid route decision: max_price_per_1k {bad} ")),
                "{text}"
            );
            assert!(text.ends_with("(expected a finite number of dollars, 0 or more)"));
        }
    }

    #[test]
    fn zero_limits_are_refused() {
        let mut d = decision(&[("a", "m")]);
        d.max_context = Some(0);
        assert_eq!(
            refusal(d),
            "invalid route decision: max_context 0 would refuse every request (leave it unset for no limit)"
        );
        let mut d = decision(&[("a", "m")]);
        d.max_iterations = Some(0);
        assert!(refusal(d).contains("max_iterations 0 would refuse every request"));
    }

    #[test]
    fn output_size_counts_names_and_reason() {
        assert_eq!(
            Route::output_bytes(&decision(&[("ab", "cd")])),
            32 + 8 + 4 + 16
        );
    }
}
