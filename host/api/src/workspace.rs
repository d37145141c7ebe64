//! Workspace-level operations: mode (TS-7; the status and why idle of
//! TS-8 are in `status`), settings, workers, alerts, agent checkpoints (TS-9), breakers.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_store::breakers::BreakerRow;

use crate::error::{Error, Result};
use crate::views::{self, Answer};
use crate::{
    Admin, Agent, AppState, Body, Json, Operator, OptionalJson, Path, Query, Viewer, Workspace,
};
use warden_core::auth::Principal;
use warden_core::scheduler::{WorkspaceLimits, parse_mode};

/// `GET /v1/workspaces/{ws}/mode`
#[utoipa::path(
    get,
    operation_id = "workspace_get_mode",
    path = "/v1/workspaces/{ws}/mode",
    tag = "workspace",
    summary = "the workspace mode",
    params(crate::openapi::WsPath),
    responses(
        (status = 200, description = "the mode", body = crate::views::ModeView),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn get_mode(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
) -> Result<Response> {
    let s = state.app.scheduler.settings(&ws).await?;
    Ok(Answer(views::ModeView::from(&s)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    #[schema(pattern = "^(normal|minimal|read-only|emergency-stop)$")]
    mode: String,
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// `PUT /v1/workspaces/{ws}/mode`
#[utoipa::path(
    put,
    operation_id = "workspace_set_mode",
    path = "/v1/workspaces/{ws}/mode",
    tag = "workspace",
    summary = "set the workspace mode (normal, minimal, read-only, emergency-stop)",
    params(crate::openapi::WsPath),
    request_body = ModeBody,
    responses(
        (status = 200, description = "the mode", body = crate::views::ModeView),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn set_mode(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Json(b): Json<ModeBody>,
) -> Result<Response> {
    let mode = parse_mode(&b.mode)?;
    if let Some(r) = &b.reason {
        warden_core::validate::text("reason", r, 500).map_err(Error::InvalidArgument)?;
    }
    let s = state
        .app
        .scheduler
        .set_mode(&ws, mode, b.reason, &principal.name)
        .await?;
    state
        .app
        .audit(
            &principal,
            Some(&ws),
            "mode.set",
            &ws,
            views::to_json(&views::ModeView::from(&s))?,
        )
        .await;
    Ok(Answer(views::ModeView::from(&s)).into_response())
}

/// `GET /v1/workspaces/{ws}/settings`
#[utoipa::path(
    get,
    operation_id = "workspace_get_settings",
    path = "/v1/workspaces/{ws}/settings",
    tag = "workspace",
    summary = "the workspace settings",
    params(crate::openapi::WsPath),
    responses(
        (status = 200, description = "the settings", body = crate::views::Settings),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn get_settings(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
) -> Result<Response> {
    let s = state.app.scheduler.settings(&ws).await?;
    Ok(Answer(views::Settings::from(&s)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pipeline: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = crate::schema::WorkspaceLimits)]
    limits: WorkspaceLimits,
    #[serde(default)]
    hourly_budget: HourlyBudget,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HourlyBudgetInput)]
pub struct HourlyBudget {
    tokens: Option<i64>,
    cost_usd: Option<f64>,
}

/// `PUT /v1/workspaces/{ws}/settings`
#[utoipa::path(
    put,
    operation_id = "workspace_set_settings",
    path = "/v1/workspaces/{ws}/settings",
    tag = "workspace",
    summary = "change the workspace settings (admin)",
    params(crate::openapi::WsPath),
    request_body = SettingsBody,
    responses(
        (status = 200, description = "the settings", body = crate::views::Settings),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn set_settings(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Admin>,
    Json(b): Json<SettingsBody>,
) -> Result<Response> {
    if b.hourly_budget.tokens.is_some_and(|t| t <= 0)
        || b.hourly_budget
            .cost_usd
            .is_some_and(|c| !(c > 0.0 && c.is_finite()))
    {
        return Err(Error::invalid("hourly budgets must be positive").into());
    }
    let s = state
        .app
        .scheduler
        .set_settings(
            &ws,
            b.pipeline,
            b.limits,
            b.hourly_budget.tokens,
            b.hourly_budget.cost_usd,
            &principal.name,
        )
        .await?;
    state
        .app
        .audit(
            &principal,
            Some(&ws),
            "settings.set",
            &ws,
            views::to_json(&views::Settings::from(&s))?,
        )
        .await;
    Ok(Answer(views::Settings::from(&s)).into_response())
}

/// `GET /v1/workspaces/{ws}/workers`
#[utoipa::path(
    get,
    operation_id = "workspace_workers",
    path = "/v1/workspaces/{ws}/workers",
    tag = "workspace",
    summary = "every worker seen",
    params(crate::openapi::WsPath),
    responses(
        (status = 200, description = "the workers", body = crate::views::WorkerList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn workers(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
) -> Result<Response> {
    let rows = state.app.store.list_workers(&ws, 0).await?;
    let workers = rows.iter().map(views::Worker::from).collect();
    Ok(Answer(views::WorkerList { workers }).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    #[param(pattern = "^(open|acknowledged|resolved)$")]
    status: Option<String>,
    limit: Option<i64>,
}

/// Checks an alert status filter.
pub(crate) fn check_alert_status(status: Option<&str>) -> Result<()> {
    match status {
        None | Some("open" | "acknowledged" | "resolved") => Ok(()),
        Some(_) => Err(Error::invalid("status must be open, acknowledged or resolved").into()),
    }
}

/// `GET /v1/workspaces/{ws}/alerts[?status=open]`
#[utoipa::path(
    get,
    operation_id = "workspace_alerts",
    path = "/v1/workspaces/{ws}/alerts",
    tag = "alerts",
    summary = "the workspace's alerts",
    params(crate::openapi::WsPath, AlertsQuery),
    responses(
        (status = 200, description = "the alerts", body = crate::views::AlertList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn alerts(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Query(q): Query<AlertsQuery>,
) -> Result<Response> {
    check_alert_status(q.status.as_deref())?;
    let rows = state
        .app
        .store
        .list_alerts(
            Some(&ws),
            q.status.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 500),
        )
        .await?;
    let alerts = rows.iter().map(views::Alert::from).collect();
    Ok(Answer(views::AlertList { alerts }).into_response())
}

/// `POST /v1/workspaces/{ws}/alerts/{id}/ack`
#[utoipa::path(
    post,
    operation_id = "workspace_ack_alert",
    path = "/v1/workspaces/{ws}/alerts/{id}/ack",
    tag = "alerts",
    summary = "acknowledge an alert of the workspace",
    params(crate::openapi::WsPath, ("id" = String, Path, description = "the alert", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    request_body(content = Option<crate::openapi::AnyObject>, description = "ignored; may be empty"),
    responses(
        (status = 200, description = "the alert", body = crate::views::Alert),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn ack_alert(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, id)): Path<(String, String)>,
    OptionalJson(_b): OptionalJson<Value>,
) -> Result<Response> {
    warden_core::validate::id("alert", &id).map_err(Error::InvalidArgument)?;
    let a = state
        .app
        .store
        .ack_alert(Some(&ws), &id, &principal.name, warden_store::now_ms())
        .await?;
    state
        .app
        .audit(&principal, Some(&ws), "alert.ack", &id, json!({}))
        .await;
    Ok(Answer(views::Alert::from(&a)).into_response())
}

/// `POST /v1/workspaces/{ws}/agents/{id}/sleep`: the body is the state blob.
#[utoipa::path(
    post,
    operation_id = "workspace_sleep",
    path = "/v1/workspaces/{ws}/agents/{id}/sleep",
    tag = "workspace",
    summary = "store an agent checkpoint (the body is the state blob)",
    params(crate::openapi::WsPath, ("id" = String, Path, description = "the agent", pattern = "^[A-Za-z0-9_-]{1,128}$"), ("x-checksum-sha256" = Option<String>, Header, description = "hex SHA-256 of the body; a mismatch is refused")),
    request_body(content = crate::openapi::Binary, content_type = "application/octet-stream", description = "the state blob"),
    responses(
        (status = 201, description = "stored", body = crate::schema::Checkpoint),
        crate::openapi::BadRequest,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn sleep(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Agent>,
    Path((_, agent)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response> {
    let declared = headers
        .get("x-checksum-sha256")
        .and_then(|v| v.to_str().ok());
    let cp = warden_core::checkpoints::sleep(
        &state.app.store,
        &state.app.config.checkpoints,
        &ws,
        &agent,
        &body,
        declared,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(cp)).into_response())
}

/// `DELETE /v1/workspaces/{ws}/agents/{id}/checkpoints`: forgets an agent,
/// freeing its place under `[checkpoints] max_agents_per_workspace`.
#[utoipa::path(
    delete,
    operation_id = "workspace_forget_agent",
    path = "/v1/workspaces/{ws}/agents/{id}/checkpoints",
    tag = "workspace",
    summary = "delete every checkpoint of an agent",
    params(crate::openapi::WsPath, ("id" = String, Path, description = "the agent", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "how many versions were deleted", body = crate::openapi::DeletedCheckpoints),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn forget_agent(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, agent)): Path<(String, String)>,
) -> Result<Response> {
    let deleted = warden_core::checkpoints::forget(&state.app.store, &ws, &agent).await?;
    state
        .app
        .audit(
            &principal,
            Some(&ws),
            "agent.checkpoints.delete",
            &agent,
            json!({ "versions": deleted }),
        )
        .await;
    Ok(axum::Json(json!({ "deleted": true, "versions": deleted })).into_response())
}

/// `GET /v1/workspaces/{ws}/agents/{id}/wake`: the newest blob that
/// verifies, with `x-checkpoint-version` and `x-checksum-sha256`.
#[utoipa::path(
    method(get, post),
    operation_id = "workspace_wake",
    path = "/v1/workspaces/{ws}/agents/{id}/wake",
    tag = "workspace",
    summary = "the newest agent checkpoint that verifies",
    params(crate::openapi::WsPath, ("id" = String, Path, description = "the agent", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "the state blob", body = crate::openapi::Binary, content_type = "application/octet-stream",
            headers(("x-checkpoint-version" = i64, description = "its version"), ("x-checksum-sha256" = String, description = "its hex SHA-256"))),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn wake(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Agent>,
    Path((_, agent)): Path<(String, String)>,
) -> Result<Response> {
    let (cp, data) = warden_core::checkpoints::wake(&state.app.store, &ws, &agent).await?;
    let mut resp = (StatusCode::OK, data).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&cp.version.to_string()) {
        h.insert("x-checkpoint-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&cp.sha256) {
        h.insert("x-checksum-sha256", v);
    }
    if !cp.skipped_corrupt.is_empty()
        && let Ok(v) = HeaderValue::from_str(&format!("{:?}", cp.skipped_corrupt))
    {
        h.insert("x-checkpoint-skipped-corrupt", v);
    }
    Ok(resp)
}

/// `GET /v1/breakers`: every breaker for the bootstrap admin; for a token
/// scoped to a workspace, those that bear on it (SPEC SE-1): the host-wide
/// ones (providers, the routing policy, sinks, processes) and its own
/// gates' and playbooks', never another workspace's.
#[utoipa::path(
    get,
    operation_id = "workspace_breakers",
    path = "/v1/breakers",
    tag = "breakers",
    summary = "the circuit breakers the token may see (a workspace's token: the host-wide ones and its own)",
    responses(
        (status = 200, description = "the breakers", body = crate::views::BreakerList),
        crate::openapi::Authenticated
    )
)]
pub async fn breakers(State(state): State<AppState>, principal: Principal) -> Result<Response> {
    let mut rows = state.app.store.list_breakers().await?;
    if let Some(ws) = &principal.workspace {
        rows.retain(|b| warden_core::dashboard::breaker_bears_on(&b.name, ws));
    }
    let breakers = rows.iter().map(views::Breaker::from).collect();
    Ok(Answer(views::BreakerList { breakers }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerBody {
    /// `open` or `closed`.
    #[schema(pattern = "^(open|closed)$")]
    state: String,
    reason: Option<String>,
}

/// `PUT /v1/breakers/{name}`: an operator opens or closes a breaker by hand
/// (bootstrap admin; breakers span workspaces).
#[utoipa::path(
    put,
    operation_id = "workspace_set_breaker",
    path = "/v1/breakers/{name}",
    tag = "breakers",
    summary = "open or close a breaker by hand (bootstrap admin)",
    params(("name" = String, Path, description = "the breaker, e.g. `provider:openai`", pattern = "^[A-Za-z0-9:._@-]{1,200}$")),
    request_body = BreakerBody,
    responses(
        (status = 200, description = "the breaker", body = crate::views::Breaker),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn set_breaker(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Json(b): Json<BreakerBody>,
) -> Result<Response> {
    principal.require_root()?;
    warden_core::validate::text("breaker name", &name, 200).map_err(Error::InvalidArgument)?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '@'))
    {
        return Err(Error::invalid(format!(
            "invalid breaker name \"{}\"",
            warden_core::validate::truncate(&name, 80)
        ))
        .into());
    }
    if !matches!(b.state.as_str(), "open" | "closed") {
        return Err(Error::invalid("state must be open or closed").into());
    }
    let now = warden_store::now_ms();
    let row = BreakerRow {
        name: name.clone(),
        state: b.state.clone(),
        failures: 0,
        reason: b.reason.clone(),
        opened_at: (b.state == "open").then_some(now),
        retry_at: None,
        updated_at: now,
    };
    state.app.store.put_breaker(&row).await?;
    state.app.scheduler.wake().all();
    state
        .app
        .audit(
            &principal,
            None,
            "breaker.set",
            &name,
            json!({ "state": b.state, "reason": b.reason }),
        )
        .await;
    Ok(Answer(views::Breaker::from(&row)).into_response())
}
