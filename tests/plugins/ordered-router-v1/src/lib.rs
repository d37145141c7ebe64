//! `ordered-router` 1.0.0: every provider in the order the host lists
//! them, each with its first model.

use warden_sdk::router::{RouteDecision, RouteRequest};

#[warden_sdk::router(name = "ordered-router", version = "1.0.0")]
fn route(request: &RouteRequest) -> Result<RouteDecision, String> {
    let mut d = RouteDecision::new("ordered-router 1.0.0: configuration order");
    for p in &request.providers {
        if let Some(m) = p.models.first() {
            d = d.candidate(&p.name, m);
        }
    }
    Ok(d)
}
