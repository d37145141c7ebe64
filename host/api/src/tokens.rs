//! Tokens of a workspace (SPEC SE-1) and its audit log (SE-3).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::views::{self, Answer};
use crate::{Admin, AppState, Json, Path, Query, Workspace};
use warden_core::auth::Role;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[schema(pattern = "^(admin|operator|agent|viewer)$")]
    role: String,
}

/// `POST /v1/workspaces/{ws}/tokens`: the secret is in the response only.
#[utoipa::path(
    post,
    operation_id = "tokens_create",
    path = "/v1/workspaces/{ws}/tokens",
    tag = "tokens",
    summary = "create a token (the secret is in this response only)",
    params(crate::openapi::WsPath),
    request_body = CreateBody,
    responses(
        (status = 201, description = "the token with its secret", body = crate::views::TokenCreated),
        crate::openapi::BadRequest,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Admin>,
    Json(b): Json<CreateBody>,
) -> Result<Response> {
    let role = Role::parse(&b.role)?;
    if b.name.trim().is_empty() || b.name.len() > 100 {
        return Err(Error::invalid("name must be 1 to 100 characters").into());
    }
    let (row, secret) = state
        .app
        .auth
        .create_token(&ws, b.name.trim(), role)
        .await?;
    state
        .app
        .audit(
            &principal,
            Some(&ws),
            "token.create",
            &row.id,
            json!({ "name": row.name, "role": row.role }),
        )
        .await;
    let view = views::TokenCreated::new(&row, &secret);
    Ok((StatusCode::CREATED, Answer(view)).into_response())
}

/// `GET /v1/workspaces/{ws}/tokens`
#[utoipa::path(
    get,
    operation_id = "tokens_list",
    path = "/v1/workspaces/{ws}/tokens",
    tag = "tokens",
    summary = "the workspace's tokens",
    params(crate::openapi::WsPath),
    responses(
        (status = 200, description = "the tokens", body = crate::views::TokenList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Admin>,
) -> Result<Response> {
    let tokens = state.app.store.list_tokens(&ws).await?;
    let tokens = tokens.iter().map(views::TokenInfo::from).collect();
    Ok(Answer(views::TokenList { tokens }).into_response())
}

/// `DELETE /v1/workspaces/{ws}/tokens/{id}`
#[utoipa::path(
    delete,
    operation_id = "tokens_revoke",
    path = "/v1/workspaces/{ws}/tokens/{id}",
    tag = "tokens",
    summary = "revoke a token",
    params(crate::openapi::WsPath, ("id" = String, Path, description = "the token", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 204, description = "revoked"),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Admin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    warden_core::validate::id("token", &id).map_err(Error::InvalidArgument)?;
    if !state.app.store.revoke_token(&ws, &id).await? {
        return Err(Error::NotFound(format!("token {id} not found in workspace \"{ws}\"")).into());
    }
    state.app.auth.forget_cache();
    state
        .app
        .audit(&principal, Some(&ws), "token.revoke", &id, json!({}))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/audit`
#[utoipa::path(
    get,
    operation_id = "tokens_audit",
    path = "/v1/workspaces/{ws}/audit",
    tag = "tokens",
    summary = "the workspace's audit log",
    params(crate::openapi::WsPath, AuditQuery),
    responses(
        (status = 200, description = "the entries", body = crate::views::AuditLog),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Admin>,
    Query(q): Query<AuditQuery>,
) -> Result<Response> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::invalid("limit must be between 1 and 1000").into());
    }
    let rows = state.app.store.list_audit(Some(&ws), limit).await?;
    let entries = rows.iter().map(views::AuditEntry::from).collect();
    Ok(Answer(views::AuditLog { entries }).into_response())
}
