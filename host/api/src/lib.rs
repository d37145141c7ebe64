//! The HTTP API of the Warden control plane: translates HTTP to domain
//! calls of warden-core and back. No SQL and no wasm here; every error
//! leaves as the SE-2 envelope (`error`). `serve` is the accept loop with
//! the connection limits; `views` the objects it answers, typed;
//! `openapi` the document of [`router`].
#![forbid(unsafe_code)]

mod alerting;
mod dashboard;
mod disk;
pub mod error;
mod extract;
mod gates;
mod gateway;
pub mod mcp;
pub mod openapi;
mod plugins;
mod processes;
mod runs;
pub mod schema;
pub mod serve;
mod status;
mod system;
mod tasks;
mod threads;
mod tokens;
pub mod views;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Error};
use warden_core::services::App;

pub use warden_core::time::{opt_time, time};

pub use extract::{
    Admin, Agent, Body, Json, MinRole, Operator, OptionalJson, Path, Query, Viewer, Workspace,
};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub app: Arc<App>,
    /// The producers of the live status streams, shared by every stream
    /// of one workspace and window.
    pub(crate) streams: Arc<status::StatusStreams>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The body limits that differ by route (from warden.toml).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `POST /v1/plugins`: the `.wasm`.
    pub upload: usize,
    /// `POST /v1/chat/completions`.
    pub gateway: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            upload: 64 << 20,
            gateway: 1 << 20,
        }
    }
}

/// Every route, built from the handlers' `#[utoipa::path]` annotations:
/// the router and the OpenAPI document come out of the same list, so a
/// route cannot be served undocumented or documented unserved. Add a
/// route here with `routes!` only (tests/e2e/openapi.rs fails on a plain
/// `.route(` in this file). Handlers on one path may share a `routes!` or
/// not: axum merges the methods of one path.
pub fn routes(limits: &Limits) -> OpenApiRouter<AppState> {
    let plugins = OpenApiRouter::default()
        .routes(routes!(plugins::list, plugins::upload))
        .layer(DefaultBodyLimit::max(limits.upload));
    let chat = OpenApiRouter::default()
        .routes(routes!(gateway::chat))
        .layer(DefaultBodyLimit::max(limits.gateway));
    let sleep = OpenApiRouter::default()
        .routes(routes!(workspace::sleep))
        .layer(DefaultBodyLimit::max(
            warden_core::checkpoints::MAX_BYTES + 1024,
        ));
    OpenApiRouter::default()
        .routes(routes!(dashboard::page))
        .routes(routes!(dashboard::asset))
        .routes(routes!(status::global))
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(system::metrics))
        .routes(routes!(openapi::openapi_json))
        .merge(plugins)
        .routes(routes!(plugins::inspect))
        .merge(chat)
        .routes(routes!(gateway::models))
        .routes(routes!(gateway::providers))
        .routes(routes!(workspace::breakers))
        .routes(routes!(workspace::set_breaker))
        .routes(routes!(alerting::list))
        .routes(routes!(alerting::ack))
        .routes(routes!(alerting::notifications))
        .routes(routes!(alerting::silences, alerting::create_silence))
        .routes(routes!(alerting::expire_silence))
        .routes(routes!(alerting::sinks))
        .routes(routes!(processes::list))
        .routes(routes!(disk::get, disk::put))
        // /v1/workspaces/{ws}/...
        .routes(routes!(runs::trigger))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get))
        .routes(routes!(runs::actions))
        .routes(routes!(runs::events))
        .routes(routes!(runs::apply_plan))
        .routes(routes!(tasks::create, tasks::list))
        .routes(routes!(tasks::claim))
        .routes(routes!(tasks::get))
        .routes(routes!(tasks::cancel))
        .routes(routes!(tasks::unblock))
        .routes(routes!(tasks::heartbeat))
        .routes(routes!(tasks::complete))
        .routes(routes!(tasks::fail))
        .routes(routes!(tasks::decide))
        .routes(routes!(tasks::report, tasks::events))
        .routes(routes!(tasks::stream))
        .routes(routes!(gates::task_verdicts))
        .routes(routes!(gates::list))
        .routes(routes!(gates::stats))
        .routes(routes!(gates::get, gates::put, gates::delete))
        .routes(routes!(gates::verdicts))
        .routes(routes!(tasks::dead_letters))
        .routes(routes!(tasks::redrive))
        .routes(routes!(status::workspace))
        .routes(routes!(status::stream))
        .routes(routes!(workspace::get_mode, workspace::set_mode))
        .routes(routes!(workspace::get_settings, workspace::set_settings))
        .routes(routes!(workspace::workers))
        .routes(routes!(workspace::alerts))
        .routes(routes!(workspace::ack_alert))
        .merge(sleep)
        .routes(routes!(workspace::wake))
        .routes(routes!(workspace::forget_agent))
        .routes(routes!(plugins::list_pins))
        .routes(routes!(plugins::set_pin, plugins::delete_pin))
        .routes(routes!(plugins::list_grants))
        .routes(routes!(plugins::set_grant, plugins::delete_grant))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::audit))
        .routes(routes!(gateway::usage))
        .routes(routes!(gateway::calls))
        .merge(threads_routes())
}

/// The routes of agent threads (SPEC TH-1, TH-2, TH-5).
fn threads_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(threads::create, threads::list))
        .routes(routes!(threads::get))
        .routes(routes!(threads::add_participant))
        .routes(routes!(threads::post, threads::read))
        .routes(routes!(threads::escalate))
        .routes(routes!(threads::unblock))
        .routes(routes!(threads::close))
        .routes(routes!(threads::override_close))
        .routes(routes!(threads::audit))
}

/// The whole router.
pub fn router(app: Arc<App>) -> Router {
    let limits = Limits {
        upload: (app.config.limits.max_plugin_mib as usize) << 20,
        gateway: app.config.gateway.max_body_kib << 10,
    };
    let body_limit = app.config.http.max_body_kib << 10;
    let state = AppState {
        app,
        streams: Arc::default(),
    };
    let (routes, _) = routes(&limits).split_for_parts();
    routes
        .merge(mcp::router(&state, mcp::MAX_SESSIONS))
        .route_layer(axum::middleware::from_fn(route_of))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            ApiError(Error::Internal("handler panicked".into())).into_response()
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
struct RouteOf(Arc<str>);

async fn route_of(
    path: Option<axum::extract::MatchedPath>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let mut res = next.run(req).await;
    if let Some(p) = path {
        res.extensions_mut().insert(RouteOf(Arc::from(p.as_str())));
    }
    res
}

/// Counts every request for `/metrics`: method, route, status, time to the
/// response headers. The method and the route are typed labels
/// ([`warden_core::metrics::Method`], [`warden_core::metrics::Route`]): whatever a
/// client sends, they take a bounded set of values.
async fn measure(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let res = next.run(req).await;
    let route = res
        .extensions()
        .get::<RouteOf>()
        .map(|r| warden_core::metrics::Route::Template(r.0.clone()));
    state
        .app
        .metrics
        .observe_request(&method, route, res.status().as_u16(), started.elapsed());
    res
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError(Error::NotFound(format!(
        "no route for {}",
        warden_core::validate::truncate(uri.path(), 200)
    )))
    .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let mut r = ApiError(Error::invalid(format!(
        "method {method} is not allowed on {}",
        warden_core::validate::truncate(uri.path(), 200)
    )))
    .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// Validates a workspace path segment.
pub fn check_ws(ws: &str) -> Result<(), Error> {
    warden_core::validate::workspace(ws).map_err(Error::InvalidArgument)
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
