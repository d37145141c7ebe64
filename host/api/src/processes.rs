//! Managed processes (SPEC RL-2): their state, for operators.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Result;
use crate::{AppState, opt_time, time};
use warden_core::auth::Principal;

/// `GET /v1/processes`: every managed process of this host, authorized as
/// `GET /v1/breakers` is (processes span workspaces).
#[utoipa::path(
    get,
    operation_id = "processes_list",
    path = "/v1/processes",
    tag = "system",
    summary = "the managed processes of this host",
    responses(
        (status = 200, description = "the processes", body = crate::openapi::Processes),
        crate::openapi::Authenticated
    )
)]
pub async fn list(State(state): State<AppState>, _principal: Principal) -> Result<Response> {
    let processes: Vec<_> = state
        .app
        .processes
        .list()
        .into_iter()
        .map(|p| {
            json!({
                "name": p.name,
                "state": p.state.name(),
                "pid": p.pid,
                "restarts": p.restarts,
                "failed_restarts": p.failed_restarts,
                "last_exit": p.last_exit,
                "since": time(p.since),
                "next_restart_at": opt_time(p.next_restart_at),
                "breaker": p.breaker,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "processes": processes })).into_response())
}
