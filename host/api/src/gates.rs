//! Quality gates (SPEC QG-1..QG-4): bindings per stage, verdicts per task
//! and per gate, and approval statistics with the top rejection reasons.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::views::{self, Answer};
use crate::{AppState, Json, Operator, Path, Query, Viewer, Workspace};
use warden_core::gates::Binding;

fn check_stage(stage: &str) -> Result<()> {
    Ok(warden_core::validate::id("stage", stage).map_err(Error::InvalidArgument)?)
}

/// `GET /v1/workspaces/{ws}/gates`: the bindings in force, by stage.
#[utoipa::path(
    get,
    operation_id = "gates_list",
    path = "/v1/workspaces/{ws}/gates",
    tag = "gates",
    summary = "the gate bindings in force, by stage",
    params(crate::openapi::WsPath),
    responses(
        (status = 200, description = "the bindings", body = crate::views::GateBindings),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
) -> Result<Response> {
    let bindings = state.app.gates.bindings(&ws).await?;
    let bindings = bindings
        .iter()
        .map(|(stage, (b, source))| views::GateBinding::new(stage, b, source))
        .collect();
    Ok(Answer(views::GateBindings { bindings }).into_response())
}

/// `GET /v1/workspaces/{ws}/gates/{stage}`
#[utoipa::path(
    get,
    operation_id = "gates_get",
    path = "/v1/workspaces/{ws}/gates/{stage}",
    tag = "gates",
    summary = "the gates bound to a stage",
    params(crate::openapi::WsPath, ("stage" = String, Path, description = "the stage", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "the binding", body = crate::views::GateBinding),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Path((_, stage)): Path<(String, String)>,
) -> Result<Response> {
    check_stage(&stage)?;
    match state.app.gates.binding(&ws, &stage).await? {
        Some((b, api)) => {
            let source = if api { "api" } else { "config" };
            Ok(Answer(views::GateBinding::new(&stage, &b, source)).into_response())
        }
        None => Err(Error::NotFound(format!(
            "no gates are bound to stage \"{stage}\" in workspace {ws}"
        ))
        .into()),
    }
}

/// `PUT /v1/workspaces/{ws}/gates/{stage}`: binds gates to a stage
/// (replacing warden.toml's binding of that stage).
#[utoipa::path(
    put,
    operation_id = "gates_put",
    path = "/v1/workspaces/{ws}/gates/{stage}",
    tag = "gates",
    summary = "bind gates to a stage",
    params(crate::openapi::WsPath, ("stage" = String, Path, description = "the stage", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    request_body = crate::schema::Binding,
    responses(
        (status = 200, description = "the binding", body = crate::views::GateBinding),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn put(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, stage)): Path<(String, String)>,
    Json(binding): Json<Binding>,
) -> Result<Response> {
    check_stage(&stage)?;
    state
        .app
        .gates
        .put_binding(&ws, &stage, &binding, &principal.name)
        .await?;
    state
        .app
        .audit(
            &principal,
            Some(&ws),
            "gates.bind",
            &stage,
            serde_json::to_value(&binding).unwrap_or_default(),
        )
        .await;
    Ok(Answer(views::GateBinding::new(&stage, &binding, "api")).into_response())
}

/// `DELETE /v1/workspaces/{ws}/gates/{stage}`: removes the API's binding.
#[utoipa::path(
    delete,
    operation_id = "gates_delete",
    path = "/v1/workspaces/{ws}/gates/{stage}",
    tag = "gates",
    summary = "remove the API binding of a stage",
    params(crate::openapi::WsPath, ("stage" = String, Path, description = "the stage", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "removed", body = crate::views::Deleted),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, stage)): Path<(String, String)>,
) -> Result<Response> {
    check_stage(&stage)?;
    if !state.app.gates.delete_binding(&ws, &stage).await? {
        return Err(Error::NotFound(format!(
            "no gate binding set over the API for stage \"{stage}\" in workspace {ws}"
        ))
        .into());
    }
    state
        .app
        .audit(&principal, Some(&ws), "gates.unbind", &stage, json!({}))
        .await;
    Ok(Answer(views::Deleted { deleted: true }).into_response())
}

/// `GET /v1/workspaces/{ws}/tasks/{id}/verdicts`: the gated transitions of
/// a task, oldest first, each with its verdicts.
#[utoipa::path(
    get,
    operation_id = "gates_task_verdicts",
    path = "/v1/workspaces/{ws}/tasks/{id}/verdicts",
    tag = "gates",
    summary = "the gated transitions of a task with their verdicts",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    responses(
        (status = 200, description = "the decisions", body = crate::views::TaskVerdicts),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn task_verdicts(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    warden_core::validate::id("task", &id).map_err(Error::InvalidArgument)?;
    let store = &state.app.store;
    if store.get_task(&ws, &id).await?.is_none() {
        return Err(Error::NotFound(format!("task \"{id}\" not found")).into());
    }
    let decisions = store.list_gate_decisions(&ws, &id).await?;
    let verdicts = store.list_task_verdicts(&ws, &id).await?;
    let decisions = decisions
        .iter()
        .map(|d| views::GateDecision::new(d, &verdicts))
        .collect();
    Ok(Answer(views::TaskVerdicts {
        task_id: id,
        decisions,
    })
    .into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VerdictQuery {
    #[param(pattern = "^[a-z][a-z0-9-]{0,63}$")]
    gate: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/verdicts?gate=&limit=`: newest first.
#[utoipa::path(
    get,
    operation_id = "gates_verdicts",
    path = "/v1/workspaces/{ws}/verdicts",
    tag = "gates",
    summary = "verdicts, newest first",
    params(crate::openapi::WsPath, VerdictQuery),
    responses(
        (status = 200, description = "the verdicts", body = crate::views::VerdictList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn verdicts(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Query(q): Query<VerdictQuery>,
) -> Result<Response> {
    if let Some(g) = &q.gate {
        warden_core::validate::plugin(g).map_err(Error::InvalidArgument)?;
    }
    let rows = state
        .app
        .store
        .list_gate_verdicts(&ws, q.gate.as_deref(), q.limit.unwrap_or(100))
        .await?;
    let verdicts = rows.iter().map(views::Verdict::from).collect();
    Ok(Answer(views::VerdictList { verdicts }).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Look back this many hours (default 24, at most 720).
    #[param(minimum = 1, maximum = 720)]
    hours: Option<i64>,
    #[param(pattern = "^[a-z][a-z0-9-]{0,63}$")]
    gate: Option<String>,
}

/// `GET /v1/workspaces/{ws}/gate-stats?hours=&gate=`: per gate, verdict
/// counts and approval rate; the top rejection reasons; breaker states.
#[utoipa::path(
    get,
    operation_id = "gates_stats",
    path = "/v1/workspaces/{ws}/gate-stats",
    tag = "gates",
    summary = "approval statistics per gate and the top rejection reasons",
    params(crate::openapi::WsPath, StatsQuery),
    responses(
        (status = 200, description = "the statistics", body = crate::openapi::AnyObject),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Query(q): Query<StatsQuery>,
) -> Result<Response> {
    if let Some(g) = &q.gate {
        warden_core::validate::plugin(g).map_err(Error::InvalidArgument)?;
    }
    let hours = q.hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(Error::invalid("hours: must be between 1 and 720").into());
    }
    let since = warden_store::now_ms() - hours * 3_600_000;
    let store = &state.app.store;
    let stats = store.gate_stats(&ws, since).await?;
    let top = store
        .top_rejection_reasons(&ws, q.gate.as_deref(), since, 10)
        .await?;
    let mut gates = Vec::new();
    for s in stats
        .iter()
        .filter(|s| q.gate.as_ref().is_none_or(|g| *g == s.gate))
    {
        let breaker = store.get_breaker(&format!("gate:{ws}:{}", s.gate)).await?;
        let recent = store
            .recent_gate_decisions(&ws, &s.gate, warden_core::gates::BREAKER_WINDOW)
            .await?;
        gates.push(views::GateStatistic::new(s, breaker.as_ref(), &recent));
    }
    Ok(Answer(views::GateStatistics::new(&ws, since, &stats, gates, &top)).into_response())
}
