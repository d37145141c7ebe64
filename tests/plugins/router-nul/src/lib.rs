//! Picks the candidates its config lists (`candidates`: `provider:model`
//! pairs, comma-separated), with NUL characters (U+0000) in its reason and
//! around the names. PostgreSQL stores no NUL in `text`, so the host must
//! strip them where it lifts the decision.

use warden_sdk::config;
use warden_sdk::router::{RouteDecision, RouteRequest};

#[warden_sdk::router]
fn route(_request: &RouteRequest) -> Result<RouteDecision, String> {
    let list = config::get("candidates").ok_or("config key candidates is not set")?;
    let mut decision = RouteDecision::new("nul\0in a reason");
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (provider, model) = item
            .split_once(':')
            .ok_or_else(|| format!("candidate \"{item}\" is not provider:model"))?;
        decision = decision.candidate(format!("{provider}\0"), format!("\0{model}"));
    }
    Ok(decision)
}
