//! `/health` (liveness) and `/ready` (database reachable, plugins loaded),
//! unauthenticated (SPEC OB-4).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::AppState;
use crate::error::Error;

#[utoipa::path(
    get,
    operation_id = "system_health",
    path = "/health",
    tag = "system",
    summary = "liveness",
    security(()),
    responses(
        (status = 200, description = "alive", body = crate::api::openapi::Health)
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
        (status = 200, description = "ready", body = crate::api::openapi::Ready),
        crate::api::openapi::NotReady
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
        Ok(_) => Error::Unavailable("plugins are still loading".into()).into_response(),
        Err(e) => Error::Unavailable(format!("the database is unreachable: {e}")).into_response(),
    }
}

/// `GET /metrics`: the Prometheus text format (SPEC OB-4). Any valid token
/// (Prometheus sends one with `authorization: {credentials: ...}`), since
/// it names workspaces, providers and sinks.
#[utoipa::path(
    get,
    operation_id = "system_metrics",
    path = "/metrics",
    tag = "system",
    summary = "Prometheus metrics (any valid token)",
    responses(
        (status = 200, description = "the Prometheus text format", body = crate::api::openapi::Text, content_type = "text/plain"),
        crate::api::openapi::Authenticated
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    _principal: crate::auth::Principal,
) -> Result<Response, Error> {
    let body = crate::metrics::render(&state.app).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
