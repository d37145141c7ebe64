//! Playbook runs (SPEC PB-1..PB-3): trigger, read, list, actions, event
//! stream, plan approval.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::wrappers::ReceiverStream;
use warden_store::actions::ActionRow;
use warden_store::runs::{RunQuery, RunRow};

use crate::error::{Error, Result};
use crate::views::{self, Answer};
use crate::{AppState, Operator, OptionalJson, Path, Query, Viewer, Workspace, check_ws};
use warden_core::auth::{Principal, Role};
use warden_core::heal::{Trigger, is_terminal, parse_mode};

#[derive(Deserialize, Default, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// `diagnose` (default), `plan` or `apply`.
    #[schema(pattern = "^(diagnose|plan|apply)$")]
    mode: Option<String>,
    /// Any JSON; given to the plugin as text.
    input: Option<Value>,
    /// Same key, same run.
    #[schema(min_length = 1, max_length = 200)]
    idempotency_key: Option<String>,
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Return the finished run instead of 202 and its id.
    wait: Option<bool>,
}

/// Most actions the view of one run carries; `GET …/runs/{id}/actions`
/// pages through the rest.
pub const MAX_VIEW_ACTIONS: i64 = 100;

/// The first actions of a run (at most [`MAX_VIEW_ACTIONS`]) and how many
/// it has.
pub struct ViewActions {
    /// The first actions, in order.
    pub rows: Vec<ActionRow>,
    /// How many the run has.
    pub total: i64,
}

impl ViewActions {
    /// Reads them for `run_id`.
    pub async fn read(store: &warden_store::Store, run_id: &str) -> Result<ViewActions> {
        let (rows, total) = tokio::try_join!(
            store.list_actions_after(run_id, 0, MAX_VIEW_ACTIONS),
            store.count_actions(run_id),
        )?;
        Ok(ViewActions { rows, total })
    }
}

fn check_key(key: &Option<String>) -> Result<()> {
    if let Some(k) = key
        && (k.is_empty() || k.len() > 200)
    {
        return Err(Error::invalid("idempotency_key must be 1 to 200 characters").into());
    }
    Ok(())
}

async fn respond(state: &AppState, row: RunRow, created: bool, wait: bool) -> Result<Response> {
    let heal = &state.app.heal;
    if !wait {
        let status = if created {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        let body = views::RunAccepted::new(&row, created);
        return Ok((status, Answer(body)).into_response());
    }
    let budget = heal.wait_budget(&row);
    let row = heal.wait(&row.workspace, &row.id, budget).await?;
    let actions = ViewActions::read(&state.app.store, &row.id).await?;
    let status = if row.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let run = views::Run::with_actions(&row, &actions.rows, actions.total);
    Ok((status, Answer(run)).into_response())
}

/// `POST /v1/workspaces/{ws}/playbooks/{name}/runs[?wait=true]`
#[utoipa::path(
    post,
    operation_id = "runs_trigger",
    path = "/v1/workspaces/{ws}/playbooks/{name}/runs",
    tag = "runs",
    summary = "run a playbook",
    params(crate::openapi::WsPath, ("name" = String, Path, description = "the playbook plugin", pattern = "^[a-z][a-z0-9-]{0,63}$"), WaitQuery),
    request_body(content = Option<TriggerBody>, description = "may be empty: a diagnose run without input"),
    responses(
        (status = 202, description = "started (or, with `wait=true`, still running after the wait: the run)", body = crate::views::RunTriggered),
        (status = 200, description = "an existing run of the same idempotency key, or with `wait=true` the finished run", body = crate::views::RunTriggered),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn trigger(
    State(state): State<AppState>,
    principal: Principal,
    Path((ws, name)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    OptionalJson(body): OptionalJson<TriggerBody>,
) -> Result<Response> {
    let (row, created) = trigger_in(&state.app, &principal, &ws, &name, body, "http").await?;
    respond(&state, row, created, q.wait.unwrap_or(false)).await
}

/// Starts a run of playbook `name` in `ws` for `principal`, or finds the
/// one of the same idempotency key (`true` when it started one);
/// `via` is how it was asked for (`http`, `mcp`).
pub(crate) async fn trigger_in(
    app: &warden_core::App,
    principal: &Principal,
    ws: &str,
    name: &str,
    body: TriggerBody,
    via: &str,
) -> Result<(RunRow, bool)> {
    check_ws(ws)?;
    warden_core::validate::plugin(name).map_err(Error::InvalidArgument)?;
    let mode = parse_mode(body.mode.as_deref().unwrap_or("diagnose"))?;
    let needed = if mode == warden_runtime::types::Mode::Diagnose {
        Role::Agent
    } else {
        Role::Operator
    };
    principal.require(ws, needed)?;
    check_key(&body.idempotency_key)?;
    let input = body.input.unwrap_or(Value::Null);
    if serde_json::to_string(&input).map_or(0, |s| s.len()) > 256 * 1024 {
        return Err(Error::invalid("input is over the 256 KiB limit").into());
    }
    let trigger = Trigger {
        mode,
        input,
        idempotency_key: body.idempotency_key,
        actor: principal.name.clone(),
        trigger: via.to_string(),
    };
    let (row, created) = app.heal.trigger(ws, name, trigger).await?;
    if created {
        app.audit(
            principal,
            Some(ws),
            "run.create",
            &row.id,
            json!({ "plugin": name, "mode": row.mode, "digest": row.digest }),
        )
        .await;
    }
    Ok((row, created))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    #[schema(min_length = 1, max_length = 200)]
    idempotency_key: Option<String>,
}

/// `POST /v1/workspaces/{ws}/runs/{id}/apply[?wait=true]`: approve a plan.
#[utoipa::path(
    post,
    operation_id = "runs_apply_plan",
    path = "/v1/workspaces/{ws}/runs/{id}/apply",
    tag = "runs",
    summary = "approve a plan: apply it",
    params(crate::openapi::WsPath, ("id" = String, Path, description = "the plan run", pattern = "^[A-Za-z0-9_-]{1,128}$"), WaitQuery),
    request_body(content = Option<ApplyBody>, description = "may be empty"),
    responses(
        (status = 202, description = "started (or, with `wait=true`, still running after the wait: the run)", body = crate::views::RunTriggered),
        (status = 200, description = "an existing apply of the same idempotency key, or with `wait=true` the finished run", body = crate::views::RunTriggered),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn apply_plan(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    OptionalJson(body): OptionalJson<ApplyBody>,
) -> Result<Response> {
    warden_core::validate::id("run", &id).map_err(Error::InvalidArgument)?;
    check_key(&body.idempotency_key)?;
    let (row, created) = state
        .app
        .heal
        .apply_plan(&ws, &id, &principal.name, body.idempotency_key)
        .await?;
    if created {
        state
            .app
            .audit(
                &principal,
                Some(&ws),
                "run.apply_plan",
                &row.id,
                json!({ "plan": id }),
            )
            .await;
    }
    respond(&state, row, created, q.wait.unwrap_or(false)).await
}

/// `GET /v1/workspaces/{ws}/runs/{id}`
#[utoipa::path(
    get,
    operation_id = "runs_get",
    path = "/v1/workspaces/{ws}/runs/{id}",
    tag = "runs",
    summary = "one run with its actions",
    params(crate::openapi::WsPath, ("id" = String, Path, description = "the run", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "the run", body = crate::views::Run),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    warden_core::validate::id("run", &id).map_err(Error::InvalidArgument)?;
    let row = state.app.heal.get(&ws, &id).await?;
    let actions = ViewActions::read(&state.app.store, &id).await?;
    let run = views::Run::with_actions(&row, &actions.rows, actions.total);
    Ok(Answer(run).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    plugin: Option<String>,
    #[param(pattern = "^(queued|running|succeeded|failed|interrupted)$")]
    status: Option<String>,
    before: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/runs`
#[utoipa::path(
    get,
    operation_id = "runs_list",
    path = "/v1/workspaces/{ws}/runs",
    tag = "runs",
    summary = "runs, newest first",
    params(crate::openapi::WsPath, ListQuery),
    responses(
        (status = 200, description = "the runs", body = crate::views::RunList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    if let Some(s) = &q.status
        && !matches!(
            s.as_str(),
            "queued" | "running" | "succeeded" | "failed" | "interrupted"
        )
    {
        return Err(Error::invalid(format!(
            "invalid status \"{}\"",
            warden_core::validate::truncate(s, 40)
        ))
        .into());
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid("limit must be between 1 and 500").into());
    }
    let query = RunQuery {
        plugin: q.plugin,
        status: q.status,
        before_id: q.before,
        limit,
    };
    let runs = state.app.heal.list(&ws, &query).await?;
    let runs = runs.iter().map(views::Run::from).collect();
    Ok(Answer(views::RunList { runs }).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActionsQuery {
    /// The actions after this sequence number (`next_after` of the
    /// previous page).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/runs/{id}/actions[?after=N&limit=M]`: a page
/// of a run's actions, in order; `next_after` is set when there may be
/// more.
#[utoipa::path(
    get,
    operation_id = "runs_actions",
    path = "/v1/workspaces/{ws}/runs/{id}/actions",
    tag = "runs",
    summary = "the actions of a run, a page at a time",
    params(crate::openapi::WsPath, ("id" = String, Path, description = "the run", pattern = "^[A-Za-z0-9_-]{1,128}$"), ActionsQuery),
    responses(
        (status = 200, description = "the actions", body = crate::views::ActionList),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn actions(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<ActionsQuery>,
) -> Result<Response> {
    warden_core::validate::id("run", &id).map_err(Error::InvalidArgument)?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(Error::invalid(format!("after must be 0 or more, not {after}")).into());
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            Error::invalid(format!("limit must be between 1 and 1000, not {limit}")).into(),
        );
    }
    let actions = state.app.heal.actions(&ws, &id, after, limit).await?;
    let next_after = (actions.len() as i64 == limit)
        .then(|| actions.last().map(|a| a.seq))
        .flatten();
    let actions = actions.iter().map(views::Action::from).collect();
    Ok(Answer(views::ActionList {
        actions,
        next_after,
    })
    .into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Resume after this sequence number (like `Last-Event-ID`).
    after: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/runs/{id}/events`: Server-Sent Events, one per
/// run event, `id` = its sequence number. Ends after the final `status`.
#[utoipa::path(
    get,
    operation_id = "runs_events",
    path = "/v1/workspaces/{ws}/runs/{id}/events",
    tag = "runs",
    summary = "the run's events as server-sent events; ends after the final status",
    params(crate::openapi::WsPath, ("id" = String, Path, description = "the run", pattern = "^[A-Za-z0-9_-]{1,128}$"), EventsQuery, ("last-event-id" = Option<String>, Header, description = "resume after this sequence number")),
    responses(
        (status = 200, description = "one event per run event, `id` its sequence number", body = crate::openapi::SseEvent, content_type = "text/event-stream"),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn events(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Viewer>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    warden_core::validate::id("run", &id).map_err(Error::InvalidArgument)?;
    state.app.heal.get(&ws, &id).await?;
    let slot = state.app.streams.open(&principal.token_id)?;
    let last = crate::resume_after(&headers, q.after);
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(256);
    let app = state.app.clone();
    tokio::spawn(async move {
        let hub = app.heal.hub().clone();
        let mut live = hub.subscribe();
        let mut next = last;
        // Set once the run is known to have ended: after one more catch-up
        // the stream closes even if the final status event is missing.
        let mut closing = false;
        let send = |seq: i64, kind: &str, data: &Value| {
            Event::default()
                .id(seq.to_string())
                .event(kind)
                .data(data.to_string())
        };
        'outer: loop {
            // The client went away, or the host is shutting down.
            if tx.is_closed() {
                return;
            }
            // Catch up from the database.
            let rows = match app.store.list_run_events(&id, next, 500).await {
                Ok(r) => r,
                Err(_) => break,
            };
            let full = rows.len() == 500;
            for r in rows {
                let terminal =
                    r.kind == "status" && r.data["status"].as_str().is_some_and(is_terminal);
                if tx.send(send(r.seq, &r.kind, &r.data)).await.is_err() {
                    return;
                }
                next = r.seq;
                if terminal {
                    break 'outer;
                }
            }
            if full {
                continue;
            }
            let mut patience = Duration::from_secs(10);
            if closing {
                // The row is final and its final status event follows it
                // within moments; wait a little for it, then close.
                patience = Duration::from_secs(2);
            } else {
                match app.store.get_run(&ws, &id).await {
                    Ok(Some(run)) if run.status.is_terminal() => {
                        hub.flush().await;
                        closing = true;
                        continue;
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            // Then follow live events until a gap, a lag or the end.
            loop {
                match tokio::time::timeout(patience, live.recv()).await {
                    Ok(Ok(e)) if e.run_id == id => {
                        if e.seq <= next {
                            continue;
                        }
                        if e.seq > next + 1 {
                            hub.flush().await;
                            continue 'outer;
                        }
                        let terminal = e.kind == "status"
                            && e.data["status"].as_str().is_some_and(is_terminal);
                        if tx.send(send(e.seq, &e.kind, &e.data)).await.is_err() {
                            return;
                        }
                        next = e.seq;
                        if terminal {
                            break 'outer;
                        }
                    }
                    Ok(Ok(_)) => {}
                    Err(_) if closing => break 'outer,
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) | Err(_) => {
                        hub.flush().await;
                        // A run that ended before this stream started has
                        // all its events stored: the catch-up sends them.
                        match app.store.get_run(&ws, &id).await {
                            Ok(Some(run)) => {
                                closing = run.status.is_terminal();
                                continue 'outer;
                            }
                            _ => break 'outer,
                        }
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break 'outer,
                }
            }
        }
    });
    let stream = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    // Ends at shutdown (the producer sees the channel closed and stops).
    let stream = state.app.streams.guard(slot, stream);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
