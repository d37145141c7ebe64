//! `ordered-router` 2.0.0: every provider in reverse order, each with its
//! first model: the same request routes elsewhere than with 1.0.0.

use warden_sdk::router::{RouteDecision, RouteRequest};

#[warden_sdk::router(name = "ordered-router", version = "2.0.0")]
fn route(request: &RouteRequest) -> Result<RouteDecision, String> {
    let mut d = RouteDecision::new("ordered-router 2.0.0: reverse order");
    for p in request.providers.iter().rev() {
        if let Some(m) = p.models.first() {
            d = d.candidate(&p.name, m);
        }
    }
    Ok(d)
}
