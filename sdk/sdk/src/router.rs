//! The routing-policy world: which provider and model serve a model call
//! (SPEC GW-3).
//!
//! The gateway asks the workspace's pinned policy for every call. The
//! policy gets a [`RouteRequest`] (mode, model hint, estimated prompt
//! tokens, task and stage, budget left, every provider with its prices,
//! context and breaker state) and answers with a [`RouteDecision`]:
//! candidates in order of preference, and optionally the limits the host
//! enforces (`max_price_per_1k`, `max_context`, `max_iterations`). Declare
//! it with [`#[warden_sdk::router]`](crate::router):
//!
//! ```no_run
//! use warden_sdk::router::{RouteDecision, RouteRequest};
//!
//! #[warden_sdk::router]
//! fn route(request: &RouteRequest) -> Result<RouteDecision, String> {
//!     let mut decision = RouteDecision::new("cheapest healthy provider first");
//!     for p in request.cheapest_first() {
//!         if let Some(model) = p.models.first() {
//!             decision = decision.candidate(&p.name, model);
//!         }
//!     }
//!     Ok(decision.max_iterations(20))
//! }
//! # fn main() {}
//! ```
//!
//! A policy should be a pure function of its request and its
//! [`config`](crate::config): it is called on every model request, in a
//! fresh instance, under a deadline. It may [`log`](crate::log); the world
//! offers nothing else.

use std::fmt::Display;

pub use crate::wit::router::warden::plugin::routing_types::{
    Candidate, ProviderStatus, RouteDecision, RouteRequest,
};

/// The modes a request can name.
pub const MODES: [&str; 4] = ["normal", "deep_research", "code", "ops"];

impl RouteDecision {
    /// A decision without candidates yet; `reason` says why, for the
    /// call's record.
    pub fn new(reason: impl Into<String>) -> Self {
        RouteDecision {
            candidates: Vec::new(),
            max_price_per_1k: None,
            max_context: None,
            max_iterations: None,
            reason: reason.into(),
        }
    }

    /// Adds a candidate after those already chosen (a pair already in the
    /// list is not added twice).
    pub fn candidate(mut self, provider: impl Into<String>, model: impl Into<String>) -> Self {
        let c = Candidate {
            provider: provider.into(),
            model: model.into(),
        };
        if !self.candidates.contains(&c) {
            self.candidates.push(c);
        }
        self
    }

    /// Refuses providers whose input or output price per 1k tokens is
    /// higher.
    pub fn max_price_per_1k(mut self, dollars: f64) -> Self {
        self.max_price_per_1k = Some(dollars);
        self
    }

    /// Refuses requests needing more context (prompt plus `max_tokens`).
    pub fn max_context(mut self, tokens: u32) -> Self {
        self.max_context = Some(tokens);
        self
    }

    /// Refuses the task's stage more model calls than this.
    pub fn max_iterations(mut self, calls: u32) -> Self {
        self.max_iterations = Some(calls);
        self
    }
}

impl ProviderStatus {
    /// True when its breaker is open: the host skips it anyway.
    pub fn is_open(&self) -> bool {
        self.breaker == "open"
    }

    /// True when its breaker is closed.
    pub fn is_healthy(&self) -> bool {
        self.breaker == "closed"
    }

    /// Input plus output price per 1k tokens.
    pub fn blended_price(&self) -> f64 {
        self.price_input_per_1k + self.price_output_per_1k
    }

    /// True when it lists `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
    }
}

impl RouteRequest {
    /// Prompt tokens plus the completion asked for.
    pub fn needed_context(&self) -> u64 {
        u64::from(self.prompt_tokens) + u64::from(self.max_output_tokens.unwrap_or(0))
    }

    /// True when `provider`'s context holds this request (see
    /// [`needed_context`](Self::needed_context)); the host refuses a
    /// candidate that does not.
    pub fn fits(&self, provider: &ProviderStatus) -> bool {
        u64::from(provider.max_context) >= self.needed_context()
    }

    /// Providers whose breaker is not open, in the configured order.
    pub fn healthy_providers(&self) -> impl Iterator<Item = &ProviderStatus> {
        self.providers.iter().filter(|p| !p.is_open())
    }

    /// Providers whose breaker is not open, cheapest first (by blended
    /// price; ties keep the configured order).
    pub fn cheapest_first(&self) -> Vec<&ProviderStatus> {
        let mut v: Vec<&ProviderStatus> = self.healthy_providers().collect();
        v.sort_by(|a, b| a.blended_price().total_cmp(&b.blended_price()));
        v
    }
}

/// Calls the user's `route` function; used by the `#[router]` macro.
#[doc(hidden)]
pub fn route_request<E: Display>(
    request: RouteRequest,
    f: fn(&RouteRequest) -> Result<RouteDecision, E>,
) -> Result<RouteDecision, String> {
    f(&request).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, price: f64, breaker: &str) -> ProviderStatus {
        ProviderStatus {
            name: name.into(),
            breaker: breaker.into(),
            models: vec![format!("{name}-model")],
            price_input_per_1k: price,
            price_output_per_1k: price,
            max_context: 8_000,
        }
    }

    #[test]
    fn the_builder_keeps_order_and_skips_repeats() {
        let d = RouteDecision::new("why")
            .candidate("a", "m1")
            .candidate("b", "m2")
            .candidate("a", "m1")
            .max_price_per_1k(0.01)
            .max_context(4_000)
            .max_iterations(3);
        assert_eq!(d.candidates.len(), 2);
        assert_eq!(d.candidates[1].provider, "b");
        assert_eq!(
            (d.max_price_per_1k, d.max_context, d.max_iterations),
            (Some(0.01), Some(4_000), Some(3))
        );
    }

    #[test]
    fn cheapest_first_skips_open_breakers() {
        let r = RouteRequest {
            workspace: "w".into(),
            mode: "normal".into(),
            model_hint: None,
            prompt_tokens: 100,
            max_output_tokens: Some(50),
            task_id: None,
            stage: None,
            budget_left_usd: None,
            budget_left_tokens: None,
            providers: vec![
                provider("dear", 0.03, "closed"),
                provider("broken", 0.0, "open"),
                provider("cheap", 0.001, "half-open"),
            ],
        };
        let names: Vec<&str> = r.cheapest_first().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["cheap", "dear"]);
        assert_eq!(r.needed_context(), 150);
        assert!(r.fits(&r.providers[0]));
        let mut tight = provider("tight", 0.0, "closed");
        tight.max_context = 149;
        assert!(!r.fits(&tight));
        tight.max_context = 150;
        assert!(r.fits(&tight));
        assert!(r.providers[0].serves("dear-model") && r.providers[0].is_healthy());
    }
}
