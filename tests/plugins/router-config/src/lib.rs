//! Returns the decision its config describes, so that each gateway test
//! chooses the routing it needs:
//!
//! - `candidates`: `provider:model` pairs, comma-separated (required);
//! - `max_price_per_1k`, `max_context`, `max_iterations`: the limits;
//! - `skip_open` (default true): drop candidates whose breaker is open.
//!
//! A request whose model hint is a candidate's model puts it first.
//!
//! It also counts its calls in a static and logs the count: the host gives
//! every call a fresh instance, so the count it logs is always 1, however
//! often pool slots are reused.

use std::sync::atomic::{AtomicU32, Ordering};

use warden_sdk::router::{RouteDecision, RouteRequest};
use warden_sdk::{config, log};

/// Calls made to this instance.
static CALLS: AtomicU32 = AtomicU32::new(0);

#[warden_sdk::router]
fn route(request: &RouteRequest) -> Result<RouteDecision, String> {
    let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let list = config::get("candidates").ok_or("config key candidates is not set")?;
    let skip_open: bool = config::get_parsed("skip_open", true)?;
    let mut pairs = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (provider, model) = item
            .split_once(':')
            .ok_or_else(|| format!("candidate \"{item}\" is not provider:model"))?;
        let open = request
            .providers
            .iter()
            .any(|p| p.name == provider && p.is_open());
        if skip_open && open {
            continue;
        }
        pairs.push((provider.to_string(), model.to_string()));
    }
    if let Some(hint) = &request.model_hint
        && let Some(i) = pairs.iter().position(|(_, m)| m == hint)
    {
        let hinted = pairs.remove(i);
        pairs.insert(0, hinted);
    }
    log::info(&format!(
        "router-config: call {call} of this instance, {} candidate(s) in mode {}",
        pairs.len(),
        request.mode
    ));
    let mut decision = RouteDecision::new(format!("router-config in mode {}", request.mode));
    for (p, m) in pairs {
        decision = decision.candidate(p, m);
    }
    if let Some(v) = config::get_parsed_opt::<f64>("max_price_per_1k")? {
        decision = decision.max_price_per_1k(v);
    }
    if let Some(v) = config::get_parsed_opt::<u32>("max_context")? {
        decision = decision.max_context(v);
    }
    if let Some(v) = config::get_parsed_opt::<u32>("max_iterations")? {
        decision = decision.max_iterations(v);
    }
    Ok(decision)
}
