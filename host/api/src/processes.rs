//! Managed processes (SPEC RL-2): their state, for operators.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::Result;
use crate::views::{self, Answer};
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
        (status = 200, description = "the processes", body = crate::views::Processes),
        crate::openapi::Authenticated
    )
)]
pub async fn list(State(state): State<AppState>, _principal: Principal) -> Result<Response> {
    let processes = state.app.processes.list();
    let processes = processes.iter().map(views::Process::from).collect();
    Ok(Answer(views::Processes { processes }).into_response())
}
