//! The model gateway (SPEC GW-1, GW-5): the OpenAI-compatible endpoints,
//! the providers with their breakers, and usage per workspace, task,
//! stage, provider and model.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use warden_store::gateway::{CallFilter, UsageDim};

use crate::error::{Error, Result};
use crate::views::{self, Answer};
use crate::{AppState, Body, Query, Viewer, Workspace, check_ws};
use warden_core::auth::{Principal, Role};
use warden_core::gateway::{Caller, ReplyBody};

/// A header's value as text; an unreadable or over-long one is an error
/// naming it.
fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| Error::invalid(format!("{name} must be ASCII text")))?
                .trim();
            if s.len() > 200 {
                return Err(Error::invalid(format!("{name} is longer than 200 characters")).into());
            }
            Ok((!s.is_empty()).then(|| s.to_string()))
        }
    }
}

/// `POST /v1/chat/completions`: OpenAI's chat completions, plain or
/// streamed. The API key's workspace pays; `x-warden-task`,
/// `x-warden-stage` and `x-warden-mode` tie the call to a task, a stage
/// and a routing mode. The bootstrap admin token names the workspace with
/// `x-warden-workspace` (default `default`).
#[utoipa::path(
    post,
    operation_id = "gateway_chat",
    path = "/v1/chat/completions",
    tag = "gateway",
    summary = "OpenAI-compatible chat completions, plain or streamed",
    params(("x-warden-workspace" = Option<String>, Header, description = "the paying workspace (bootstrap admin token only; default `default`)"), ("x-warden-task" = Option<String>, Header, description = "the task the call belongs to"), ("x-warden-stage" = Option<String>, Header, description = "the stage the call belongs to"), ("x-warden-mode" = Option<String>, Header, description = "the routing mode")),
    request_body(content = crate::openapi::AnyObject, description = "an OpenAI chat completion request"),
    responses(
        (status = 200, description = "the completion; with `\"stream\": true`, server-sent events", content((crate::openapi::AnyObject = "application/json"), (crate::openapi::SseEvent = "text/event-stream"))),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn chat(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response> {
    let workspace = match (
        &principal.workspace,
        header(&headers, "x-warden-workspace")?,
    ) {
        (Some(own), _) => own.clone(),
        (None, Some(ws)) => ws,
        (None, None) => "default".to_string(),
    };
    check_ws(&workspace)?;
    principal.require(&workspace, Role::Agent)?;
    let stage = header(&headers, "x-warden-stage")?;
    if let Some(s) = &stage {
        warden_core::validate::id("stage", s)
            .map_err(|e| Error::invalid(format!("x-warden-stage: {e}")))?;
    }
    if warden_core::validate::json_has_nul(&body) {
        return Err(Error::invalid(warden_core::validate::NUL_MESSAGE).into());
    }
    let caller = Caller {
        workspace,
        task: header(&headers, "x-warden-task")?,
        stage,
        mode: header(&headers, "x-warden-mode")?,
    };
    let reply = state.app.gateway.chat(caller, body).await?;
    Ok(reply.map(|body| match body {
        ReplyBody::Full(bytes) => axum::body::Body::from(bytes),
        ReplyBody::Stream(events) => axum::body::Body::from_stream(events),
    }))
}

/// `GET /v1/models`: the models of every configured provider.
#[utoipa::path(
    get,
    operation_id = "gateway_models",
    path = "/v1/models",
    tag = "gateway",
    summary = "the models of every configured provider (OpenAI format)",
    responses(
        (status = 200, description = "`{\"object\": \"list\", \"data\": [...]}`", body = crate::openapi::AnyObject),
        crate::openapi::Authenticated
    )
)]
pub async fn models(State(state): State<AppState>, _principal: Principal) -> Result<Response> {
    Ok(axum::Json(state.app.gateway.models()).into_response())
}

/// `GET /v1/gateway/providers`: the providers (never their keys) with
/// their breakers.
#[utoipa::path(
    get,
    operation_id = "gateway_providers",
    path = "/v1/gateway/providers",
    tag = "gateway",
    summary = "the providers with their breakers",
    responses(
        (status = 200, description = "the providers", body = crate::views::Providers),
        crate::openapi::Authenticated
    )
)]
pub async fn providers(State(state): State<AppState>, _principal: Principal) -> Result<Response> {
    let providers = state.app.gateway.providers();
    let providers = providers.iter().map(views::Provider::from).collect();
    Ok(Answer(views::Providers { providers }).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    group_by: Option<String>,
    #[param(minimum = 1, maximum = 720)]
    hours: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/usage?group_by=provider,model&hours=24`:
/// tokens and cost of the gateway's calls, summed per group (any of
/// `provider`, `model`, `task`, `stage`, `mode`; none: one total).
#[utoipa::path(
    get,
    operation_id = "gateway_usage",
    path = "/v1/workspaces/{ws}/usage",
    tag = "gateway",
    summary = "tokens and cost of the gateway calls, summed per group",
    params(crate::openapi::WsPath, UsageQuery),
    responses(
        (status = 200, description = "the totals and `groups`", body = crate::openapi::AnyObject),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Query(q): Query<UsageQuery>,
) -> Result<Response> {
    let mut dims = Vec::new();
    for name in q
        .group_by
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let dim = UsageDim::parse(name).ok_or_else(|| {
            Error::invalid(format!(
                "group_by: unknown dimension \"{}\": use provider, model, task, stage or mode",
                warden_core::validate::truncate(name, 40)
            ))
        })?;
        if !dims.contains(&dim) {
            dims.push(dim);
        }
    }
    let hours = q.hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(Error::invalid("hours: must be between 1 and 720").into());
    }
    let until = warden_store::now_ms() + 1;
    let since = until - hours * 3_600_000;
    let groups = state
        .app
        .store
        .gateway_usage(&ws, &dims, since, until)
        .await?;
    Ok(Answer(views::GatewayUsage::new(&ws, since, &dims, &groups)).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CallsQuery {
    #[param(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    task: Option<String>,
    #[param(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    stage: Option<String>,
    #[param(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    provider: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/gateway/calls?task=&stage=&provider=&limit=`:
/// recorded calls, newest first, each with the policy build that routed it.
#[utoipa::path(
    get,
    operation_id = "gateway_calls",
    path = "/v1/workspaces/{ws}/gateway/calls",
    tag = "gateway",
    summary = "recorded gateway calls, newest first",
    params(crate::openapi::WsPath, CallsQuery),
    responses(
        (status = 200, description = "the calls", body = crate::views::GatewayCalls),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn calls(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Query(q): Query<CallsQuery>,
) -> Result<Response> {
    for (what, v) in [
        ("task", &q.task),
        ("stage", &q.stage),
        ("provider", &q.provider),
    ] {
        if let Some(v) = v {
            warden_core::validate::id(what, v).map_err(Error::InvalidArgument)?;
        }
    }
    let filter = CallFilter {
        task_id: q.task,
        stage: q.stage,
        provider: q.provider,
        limit: q.limit.unwrap_or(100),
    };
    let rows = state.app.store.list_gateway_calls(&ws, &filter).await?;
    let calls = rows.iter().map(views::GatewayCall::from).collect();
    Ok(Answer(views::GatewayCalls { calls }).into_response())
}
