//! The HTTP API: translates HTTP to domain calls and back. No SQL and no
//! wasm here; every error leaves as the SE-2 envelope.

mod alerting;
mod dashboard;
mod disk;
mod extract;
mod gates;
mod gateway;
mod plugins;
mod processes;
mod runs;
mod status;
mod system;
mod tasks;
mod tokens;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::error::Error;

pub use extract::{Json, OptionalJson, Path, Query};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub app: Arc<App>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole router.
pub fn router(app: Arc<App>) -> Router {
    let upload_limit = (app.config.limits.max_plugin_mib as usize) << 20;
    let body_limit = app.config.http.max_body_kib << 10;
    let gateway_limit = app.config.gateway.max_body_kib << 10;
    let state = AppState { app };
    let ws = Router::new()
        .route("/playbooks/{name}/runs", post(runs::trigger))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/actions", get(runs::actions))
        .route("/runs/{id}/events", get(runs::events))
        .route("/runs/{id}/apply", post(runs::apply_plan))
        .route("/tasks", post(tasks::create).get(tasks::list))
        .route("/tasks/claim", post(tasks::claim))
        .route("/tasks/{id}", get(tasks::get))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/tasks/{id}/unblock", post(tasks::unblock))
        .route("/tasks/{id}/heartbeat", post(tasks::heartbeat))
        .route("/tasks/{id}/complete", post(tasks::complete))
        .route("/tasks/{id}/fail", post(tasks::fail))
        .route("/tasks/{id}/decision", post(tasks::decide))
        .route("/tasks/{id}/verdicts", get(gates::task_verdicts))
        .route("/gates", get(gates::list))
        .route("/gate-stats", get(gates::stats))
        .route(
            "/gates/{stage}",
            get(gates::get).put(gates::put).delete(gates::delete),
        )
        .route("/verdicts", get(gates::verdicts))
        .route("/tasks/{id}/events", post(tasks::report).get(tasks::events))
        .route("/tasks/{id}/events/stream", get(tasks::stream))
        .route("/dead-letters", get(tasks::dead_letters))
        .route("/dead-letters/{id}/redrive", post(tasks::redrive))
        .route("/status", get(status::workspace))
        .route("/status/stream", get(status::stream))
        .route("/mode", get(workspace::get_mode).put(workspace::set_mode))
        .route(
            "/settings",
            get(workspace::get_settings).put(workspace::set_settings),
        )
        .route("/workers", get(workspace::workers))
        .route("/alerts", get(workspace::alerts))
        .route("/alerts/{id}/ack", post(workspace::ack_alert))
        .route(
            "/agents/{id}/sleep",
            post(workspace::sleep)
                .layer(DefaultBodyLimit::max(crate::checkpoints::MAX_BYTES + 1024)),
        )
        .route(
            "/agents/{id}/wake",
            get(workspace::wake).post(workspace::wake),
        )
        .route("/pins", get(plugins::list_pins))
        .route(
            "/pins/{plugin}",
            put(plugins::set_pin).delete(plugins::delete_pin),
        )
        .route("/grants", get(plugins::list_grants))
        .route(
            "/grants/{plugin}",
            put(plugins::set_grant).delete(plugins::delete_grant),
        )
        .route("/tokens", post(tokens::create).get(tokens::list))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/audit", get(tokens::audit))
        .route("/usage", get(gateway::usage))
        .route("/gateway/calls", get(gateway::calls));
    Router::new()
        .route("/", get(dashboard::page))
        .route("/assets/{name}", get(dashboard::asset))
        .route("/v1/status", get(status::global))
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route(
            "/v1/plugins",
            get(plugins::list)
                .post(plugins::upload)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/v1/plugins/{name}", get(plugins::inspect))
        .route(
            "/v1/chat/completions",
            post(gateway::chat).layer(DefaultBodyLimit::max(gateway_limit)),
        )
        .route("/v1/models", get(gateway::models))
        .route("/v1/gateway/providers", get(gateway::providers))
        .route("/v1/breakers", get(workspace::breakers))
        .route("/v1/breakers/{name}", put(workspace::set_breaker))
        .route("/v1/alerts", get(alerting::list))
        .route("/v1/alerts/{id}/ack", post(alerting::ack))
        .route("/v1/notifications", get(alerting::notifications))
        .route(
            "/v1/silences",
            get(alerting::silences).post(alerting::create_silence),
        )
        .route(
            "/v1/silences/{id}",
            axum::routing::delete(alerting::expire_silence),
        )
        .route("/v1/alerting/sinks", get(alerting::sinks))
        .route("/v1/processes", get(processes::list))
        .route("/v1/disk-guard", get(disk::get).put(disk::put))
        .route("/metrics", get(system::metrics))
        .nest("/v1/workspaces/{ws}", ws)
        .route_layer(axum::middleware::from_fn(route_of))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            Error::Internal("handler panicked".into()).into_response()
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(330),
        ))
}

/// The route template a request matched, handed to [`measure`] on the
/// response (a layer outside the router cannot see it).
#[derive(Clone)]
struct RouteOf(String);

async fn route_of(
    path: Option<axum::extract::MatchedPath>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let mut res = next.run(req).await;
    if let Some(p) = path {
        res.extensions_mut().insert(RouteOf(p.as_str().to_string()));
    }
    res
}

/// Counts every request for `/metrics`: method, route, status, time to the
/// response headers.
async fn measure(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_string();
    let res = next.run(req).await;
    let route = res
        .extensions()
        .get::<RouteOf>()
        .map_or("unmatched", |r| r.0.as_str());
    state
        .app
        .http_metrics
        .observe(&method, route, res.status().as_u16(), started.elapsed());
    res
}

async fn not_found(uri: axum::http::Uri) -> Response {
    Error::NotFound(format!(
        "no route for {}",
        crate::validate::truncate(uri.path(), 200)
    ))
    .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let mut r = Error::invalid(format!(
        "method {method} is not allowed on {}",
        crate::validate::truncate(uri.path(), 200)
    ))
    .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// Validates a workspace path segment.
pub fn check_ws(ws: &str) -> Result<(), Error> {
    crate::validate::workspace(ws).map_err(Error::InvalidArgument)
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
pub fn time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Where an event stream resumes: after the `Last-Event-ID` a reconnecting
/// client sends, else after `?after=`, else from the start.
pub fn resume_after(headers: &axum::http::HeaderMap, after: Option<i64>) -> i64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(after)
        .unwrap_or(0)
        .max(0)
}

/// An optional time.
pub fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(time)
}
