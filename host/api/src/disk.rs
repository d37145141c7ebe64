//! `GET` and `PUT /v1/disk-guard` (SPEC RL-3): the evidence disk guard's
//! usage, thresholds and counters; an operator tunes the thresholds without
//! a restart.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{Error, Result};
use crate::{AppState, Json};
use warden_core::auth::Principal;
use warden_core::evidence::ThresholdsUpdate;

/// `GET /v1/disk-guard`: any token (it shows no workspace data).
#[utoipa::path(
    get,
    operation_id = "disk_get",
    path = "/v1/disk-guard",
    tag = "system",
    summary = "the evidence disk guard",
    responses(
        (status = 200, description = "its status", body = crate::schema::GuardStatus),
        crate::openapi::Authenticated
    )
)]
pub async fn get(State(state): State<AppState>, _principal: Principal) -> Result<Response> {
    Ok(axum::Json(state.app.evidence.status()).into_response())
}

/// `PUT /v1/disk-guard` (bootstrap admin; the disk spans workspaces):
/// changes the thresholds, then measures at once so that the answer shows
/// their effect. Not kept across a restart: warden.toml `[disk_guard]` is
/// the lasting setting.
#[utoipa::path(
    put,
    operation_id = "disk_put",
    path = "/v1/disk-guard",
    tag = "system",
    summary = "change the disk guard thresholds (bootstrap admin)",
    request_body = crate::schema::ThresholdsUpdate,
    responses(
        (status = 200, description = "its status after a measurement", body = crate::schema::GuardStatus),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    Json(update): Json<ThresholdsUpdate>,
) -> Result<Response> {
    principal.require_root()?;
    let app = &state.app;
    let thresholds = app
        .evidence
        .set_thresholds(&update)
        .map_err(Error::InvalidArgument)?;
    app.audit(
        &principal,
        None,
        "disk_guard.set",
        &app.evidence.dir().display().to_string(),
        json!(thresholds),
    )
    .await;
    let status = app.evidence.check(&app.alerts).await;
    Ok(axum::Json(status).into_response())
}
