//! `/health` (liveness) and `/ready` (database reachable, plugins loaded),
//! unauthenticated (SPEC OB-4).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::error::{ApiError, Error};

#[utoipa::path(
    get,
    operation_id = "system_health",
    path = "/health",
    tag = "system",
    summary = "liveness",
    security(()),
    responses(
        (status = 200, description = "alive", body = crate::openapi::Health)
    )
)]
pub async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

#[utoipa::path(
    get,
    operation_id = "system_ready",
    path = "/ready",
    tag = "system",
    summary = "readiness: the database answers and plugins are loaded",
    security(()),
    responses(
        (status = 200, description = "ready", body = crate::openapi::Ready),
        crate::openapi::NotReady
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    let app = &state.app;
    let db = app.store.ping().await;
    let plugins = app.registry.names().len();
    let loaded = app.ready.load(std::sync::atomic::Ordering::Acquire);
    match db {
        Ok(latency) if loaded => (
            StatusCode::OK,
            axum::Json(json!({
                "status": "ready",
                "database": { "dialect": app.store.dialect().name(), "latency_ms": latency.as_secs_f64() * 1000.0 },
                "plugins": plugins,
            })),
        )
            .into_response(),
        Ok(_) => ApiError(Error::Unavailable("plugins are still loading".into())).into_response(),
        Err(e) => {
            ApiError(Error::Unavailable(format!("the database is unreachable: {e}"))).into_response()
        }
    }
}

/// `GET /metrics` (SPEC OB-4): the Prometheus text format 0.0.4, or
/// OpenMetrics 1.0.0 when the scraper asks for it in `Accept`. Any valid
/// token (Prometheus sends one with `authorization: {credentials: ...}`):
/// the bootstrap admin gets every series, a token scoped to a workspace
/// only that workspace's (SPEC SE-1; see [`warden_core::metrics`]).
#[utoipa::path(
    get,
    operation_id = "system_metrics",
    path = "/metrics",
    tag = "system",
    summary = "Prometheus metrics (any valid token; a workspace's token gets that workspace's series)",
    responses(
        (status = 200, description = "the Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when `Accept` asks for `application/openmetrics-text`",
            content((crate::openapi::Text = "text/plain"), (crate::openapi::Text = "application/openmetrics-text"))),
        crate::openapi::Authenticated
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    principal: warden_core::auth::Principal,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = warden_core::metrics::Format::negotiate(accept);
    let body = warden_core::metrics::render(
        &state.app.metric_sources(),
        principal.workspace.as_deref(),
        format,
    )
    .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response())
}
