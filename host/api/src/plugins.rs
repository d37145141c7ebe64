//! `/v1/plugins` (SPEC LC-7), pins (LC-4) and grants (PL-6).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use warden_meta::CapabilitySet;
use warden_store::grants::GrantRow;
use warden_store::pins::PinRow;

use crate::error::{Error, Result};
use crate::views::{self, Answer};
use crate::{Admin, AppState, Body, Json, Operator, Path, Query, Viewer, Workspace, check_ws};
use warden_core::auth::{Principal, Role};
use warden_core::registry::{Entry, Selector};

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceQuery {
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    workspace: Option<String>,
}

/// Plugin `name` as workspace `workspace` sees it: the pin in force, the
/// version it picks and that version's grants; each version's imports and
/// limits only in `detail`.
async fn plugin_view(
    state: &AppState,
    name: &str,
    workspace: &str,
    detail: bool,
) -> Result<views::Plugin> {
    let registry = &state.app.registry;
    let versions = registry.versions(name);
    let Some(newest) = versions.first() else {
        return Err(Error::NotFound(format!("plugin \"{name}\" not found")).into());
    };
    let meta = newest.plugin.meta();
    let (selector, pin_source) = registry.selector_for(workspace, name).await?;
    let pinned = registry.resolve(name, &selector).ok();
    let (granted, missing) = match &pinned {
        Some(e) => {
            let granted = registry.granted(workspace, e).await?;
            let effective = e.plugin.effective_grants(&granted);
            let missing: Vec<String> = e
                .plugin
                .required_capabilities()
                .iter()
                .filter(|c| !effective.allows(c))
                .map(ToString::to_string)
                .collect();
            (effective.names(), missing)
        }
        None => (Vec::new(), Vec::new()),
    };
    let latest = registry.resolve(name, &Selector::Latest).ok();
    Ok(views::Plugin {
        name: name.to_string(),
        kind: meta.kind.to_string(),
        description: meta.description.clone(),
        latest: latest.as_ref().map(|e| e.plugin.meta().version.to_string()),
        versions: versions
            .iter()
            .map(|e| version_view(state, e, detail))
            .collect(),
        workspace: workspace.to_string(),
        pin: views::PinInForce {
            selector: selector.to_string(),
            source: pin_source.to_string(),
        },
        pinned_version: pinned.as_ref().map(|e| e.plugin.meta().version.to_string()),
        pinned_digest: pinned.as_ref().map(|e| e.plugin.digest().to_string()),
        capabilities_requested: pinned
            .as_ref()
            .map(|e| e.plugin.meta().capabilities.names())
            .unwrap_or_default(),
        capabilities_granted: granted,
        missing_grants: missing,
        state: if latest.is_some() {
            "active"
        } else {
            "retired"
        }
        .to_string(),
    })
}

/// Version `e`, active while the registry still runs it.
fn version_view(state: &AppState, e: &Entry, detail: bool) -> views::PluginVersion {
    let live = state.app.registry.is_live(e.plugin.digest());
    views::PluginVersion::new(e, live, detail)
}

/// `GET /v1/plugins[?workspace=]`
#[utoipa::path(
    get,
    operation_id = "plugins_list",
    path = "/v1/plugins",
    tag = "plugins",
    summary = "the plugins as a workspace sees them",
    params(WorkspaceQuery),
    responses(
        (status = 200, description = "the plugins and the rejected files", body = crate::views::PluginList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<WorkspaceQuery>,
) -> Result<Response> {
    let ws = q.workspace.unwrap_or_else(|| principal.home().to_string());
    check_ws(&ws)?;
    principal.require(&ws, Role::Viewer)?;
    let mut plugins = Vec::new();
    for name in state.app.registry.names() {
        plugins.push(plugin_view(&state, &name, &ws, false).await?);
    }
    let rejected = state.app.registry.rejected();
    let rejected = rejected.iter().map(views::Rejection::from).collect();
    Ok(Answer(views::PluginList { plugins, rejected }).into_response())
}

/// `GET /v1/plugins/{name}[?workspace=]`
#[utoipa::path(
    get,
    operation_id = "plugins_inspect",
    path = "/v1/plugins/{name}",
    tag = "plugins",
    summary = "one plugin, with each version's imports and limits",
    params(("name" = String, Path, description = "the plugin", pattern = "^[a-z][a-z0-9-]{0,63}$"), WorkspaceQuery),
    responses(
        (status = 200, description = "the plugin", body = crate::views::Plugin),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn inspect(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(q): Query<WorkspaceQuery>,
) -> Result<Response> {
    warden_core::validate::plugin(&name).map_err(Error::InvalidArgument)?;
    let ws = q.workspace.unwrap_or_else(|| principal.home().to_string());
    check_ws(&ws)?;
    principal.require(&ws, Role::Viewer)?;
    Ok(Answer(plugin_view(&state, &name, &ws, true).await?).into_response())
}

/// `POST /v1/plugins`: the body is the `.wasm`.
#[utoipa::path(
    post,
    operation_id = "plugins_upload",
    path = "/v1/plugins",
    tag = "plugins",
    summary = "upload a .wasm component (bootstrap admin)",
    request_body(content = crate::openapi::Binary, content_type = "application/octet-stream", description = "the .wasm component (any Content-Type)"),
    responses(
        (status = 201, description = "added", body = crate::views::PluginUploaded),
        (status = 200, description = "this exact file was known already", body = crate::views::PluginUploaded),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    Body(body): Body,
) -> Result<Response> {
    principal.require_root()?;
    if body.is_empty() {
        return Err(Error::invalid("empty body: send the .wasm file as the request body").into());
    }
    let digest = warden_runtime::digest_of(&body);
    let known = state.app.registry.by_digest(&digest).is_some();
    let entry = state
        .app
        .registry
        .add_upload(body.to_vec())
        .await
        .map_err(|e| Error::invalid(format!("plugin rejected: {e}")))?;
    let meta = entry.plugin.meta();
    state
        .app
        .audit(
            &principal,
            None,
            "plugin.upload",
            &meta.id(),
            json!({ "digest": digest }),
        )
        .await;
    let status = if known {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let view = views::PluginUploaded {
        name: meta.name.clone(),
        kind: meta.kind.to_string(),
        description: meta.description.clone(),
        version: version_view(&state, &entry, true),
    };
    Ok((status, Answer(view)).into_response())
}

/// `GET /v1/workspaces/{ws}/pins`
#[utoipa::path(
    get,
    operation_id = "plugins_list_pins",
    path = "/v1/workspaces/{ws}/pins",
    tag = "plugins",
    summary = "version pins set over the API",
    params(crate::openapi::WsPath),
    responses(
        (status = 200, description = "the pins", body = crate::views::PinList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn list_pins(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
) -> Result<Response> {
    let pins = state.app.store.list_pins(&ws).await?;
    let pins = pins.iter().map(views::Pin::from).collect();
    Ok(Answer(views::PinList { pins }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    /// `1.2.0`, `^1.2`, `sha256:...` or `latest`.
    #[serde(alias = "version")]
    selector: String,
}

/// `PUT /v1/workspaces/{ws}/pins/{plugin}`
#[utoipa::path(
    put,
    operation_id = "plugins_set_pin",
    path = "/v1/workspaces/{ws}/pins/{plugin}",
    tag = "plugins",
    summary = "pin a plugin to a version, range or digest",
    params(crate::openapi::WsPath, ("plugin" = String, Path, description = "the plugin", pattern = "^[a-z][a-z0-9-]{0,63}$")),
    request_body = PinBody,
    responses(
        (status = 200, description = "the pin and what it resolves to", body = crate::views::Pin),
        crate::openapi::BadRequest,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn set_pin(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, plugin)): Path<(String, String)>,
    Json(body): Json<PinBody>,
) -> Result<Response> {
    warden_core::validate::plugin(&plugin).map_err(Error::InvalidArgument)?;
    let selector = Selector::parse(&body.selector).map_err(Error::InvalidArgument)?;
    let entry = state
        .app
        .registry
        .resolve(&plugin, &selector)
        .map_err(|e| match e {
            e @ (Error::NotFound(_) | Error::NoVersion { .. }) => {
                Error::FailedPrecondition(format!("cannot pin: {e}"))
            }
            other => other,
        })?;
    let row = PinRow {
        workspace: ws.clone(),
        plugin: plugin.clone(),
        selector: selector.to_string(),
        canary: None,
        canary_percent: 0,
        actor: principal.name.clone(),
        updated_at: warden_store::now_ms(),
    };
    state.app.store.set_pin(&row).await?;
    state
        .app
        .audit(
            &principal,
            Some(&ws),
            "pin.set",
            &plugin,
            json!({ "selector": row.selector, "digest": entry.plugin.digest() }),
        )
        .await;
    let view = views::Pin {
        resolves_to: Some(views::PinTarget {
            version: entry.plugin.meta().version.to_string(),
            digest: entry.plugin.digest().to_string(),
        }),
        ..views::Pin::from(&row)
    };
    Ok(Answer(view).into_response())
}

/// `DELETE /v1/workspaces/{ws}/pins/{plugin}`
#[utoipa::path(
    delete,
    operation_id = "plugins_delete_pin",
    path = "/v1/workspaces/{ws}/pins/{plugin}",
    tag = "plugins",
    summary = "remove a pin",
    params(crate::openapi::WsPath, ("plugin" = String, Path, description = "the plugin", pattern = "^[a-z][a-z0-9-]{0,63}$")),
    responses(
        (status = 204, description = "removed"),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn delete_pin(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, plugin)): Path<(String, String)>,
) -> Result<Response> {
    warden_core::validate::plugin(&plugin).map_err(Error::InvalidArgument)?;
    if !state.app.store.delete_pin(&ws, &plugin).await? {
        return Err(Error::NotFound(format!(
            "no pin for plugin \"{plugin}\" in workspace \"{ws}\""
        ))
        .into());
    }
    state
        .app
        .audit(&principal, Some(&ws), "pin.delete", &plugin, json!({}))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/workspaces/{ws}/grants` (grants set over the API; warden.toml
/// grants show in `GET /v1/plugins`).
#[utoipa::path(
    get,
    operation_id = "plugins_list_grants",
    path = "/v1/workspaces/{ws}/grants",
    tag = "plugins",
    summary = "capability grants set over the API",
    params(crate::openapi::WsPath),
    responses(
        (status = 200, description = "the grants", body = crate::views::GrantList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn list_grants(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
) -> Result<Response> {
    let grants = state.app.store.list_grants(&ws).await?;
    let grants = grants.iter().map(views::Grant::from).collect();
    Ok(Answer(views::GrantList { grants }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    capabilities: Vec<String>,
}

/// `PUT /v1/workspaces/{ws}/grants/{plugin}`
#[utoipa::path(
    put,
    operation_id = "plugins_set_grant",
    path = "/v1/workspaces/{ws}/grants/{plugin}",
    tag = "plugins",
    summary = "grant capabilities to a plugin",
    params(crate::openapi::WsPath, ("plugin" = String, Path, description = "the plugin", pattern = "^[a-z][a-z0-9-]{0,63}$")),
    request_body = GrantBody,
    responses(
        (status = 200, description = "the grant", body = crate::views::Grant),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn set_grant(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Admin>,
    Path((_, plugin)): Path<(String, String)>,
    Json(body): Json<GrantBody>,
) -> Result<Response> {
    warden_core::validate::plugin(&plugin).map_err(Error::InvalidArgument)?;
    let caps =
        CapabilitySet::parse(&body.capabilities).map_err(|e| Error::invalid(e.to_string()))?;
    let row = GrantRow {
        workspace: ws.clone(),
        plugin: plugin.clone(),
        capabilities: caps.names(),
        actor: principal.name.clone(),
        updated_at: warden_store::now_ms(),
    };
    state.app.store.set_grant(&row).await?;
    state
        .app
        .audit(
            &principal,
            Some(&ws),
            "grant.set",
            &plugin,
            json!({ "capabilities": row.capabilities }),
        )
        .await;
    Ok(Answer(views::Grant::from(&row)).into_response())
}

/// `DELETE /v1/workspaces/{ws}/grants/{plugin}`
#[utoipa::path(
    delete,
    operation_id = "plugins_delete_grant",
    path = "/v1/workspaces/{ws}/grants/{plugin}",
    tag = "plugins",
    summary = "remove an API grant",
    params(crate::openapi::WsPath, ("plugin" = String, Path, description = "the plugin", pattern = "^[a-z][a-z0-9-]{0,63}$")),
    responses(
        (status = 204, description = "removed"),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn delete_grant(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Admin>,
    Path((_, plugin)): Path<(String, String)>,
) -> Result<Response> {
    warden_core::validate::plugin(&plugin).map_err(Error::InvalidArgument)?;
    if !state.app.store.delete_grant(&ws, &plugin).await? {
        return Err(Error::NotFound(format!(
            "no API grant for plugin \"{plugin}\" in workspace \"{ws}\""
        ))
        .into());
    }
    state
        .app
        .audit(&principal, Some(&ws), "grant.delete", &plugin, json!({}))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
