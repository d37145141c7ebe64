use warden_sdk::router::{RouteDecision, RouteRequest};

/// A decision the host must refuse: no candidate.
#[warden_sdk::router]
fn route(_request: &RouteRequest) -> Result<RouteDecision, String> {
    Ok(RouteDecision::new("nothing to offer"))
}
