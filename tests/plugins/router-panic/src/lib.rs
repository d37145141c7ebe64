use warden_sdk::router::{RouteDecision, RouteRequest};

#[warden_sdk::router]
fn route(request: &RouteRequest) -> Result<RouteDecision, String> {
    let v: Vec<u32> = std::hint::black_box(Vec::new());
    if v.is_empty() {
        panic!("router exploded on purpose in mode {}", request.mode);
    }
    Ok(RouteDecision::new("never"))
}
