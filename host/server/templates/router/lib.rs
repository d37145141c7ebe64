//! A routing policy: the cheapest healthy provider whose context holds the
//! request first, a provider named "local" before the others unless the
//! workspace says otherwise.
//!
//! Everything Warden needs to know about it is declared in the attribute
//! below and in Cargo.toml (name, version, description): the SDK embeds it
//! in the `.wasm`. The guide is docs/router-authoring.md.

use warden_sdk::config;
use warden_sdk::router::{RouteDecision, RouteRequest};

#[warden_sdk::router(deadline_ms = 100)]
fn route(request: &RouteRequest) -> Result<RouteDecision, String> {
    // Configurable per workspace in warden.toml:
    // [workspaces.<ws>.plugins.{{name}}.config] local_first = false
    let local_first: bool = config::get_parsed("local_first", true)?;
    let mut providers = request.cheapest_first();
    providers.retain(|p| request.fits(p));
    if local_first {
        // A stable sort: the price order holds among the others.
        providers.sort_by_key(|p| p.name != "local");
    }
    let mut decision = RouteDecision::new(format!("{{name}}, mode {}", request.mode));
    for p in providers {
        let model = match &request.model_hint {
            Some(hint) if p.serves(hint) => Some(hint),
            _ => p.models.first(),
        };
        if let Some(model) = model {
            decision = decision.candidate(&p.name, model);
        }
    }
    Ok(decision.max_iterations(25))
}
