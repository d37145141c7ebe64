//! Tasks (SPEC TS-1..TS-6): create, list, get, cancel, unblock, events,
//! and the worker protocol: claim, heartbeat, complete, fail.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_store::tasks::{STATES, TaskQuery, TaskRow, TaskState};

use crate::error::{Error, Result};
use crate::views::{self, Answer};
use crate::{
    Agent, AppState, Json, Operator, OptionalJson, Path, Query, Viewer, Workspace, opt_time, time,
};
use warden_core::App;
use warden_core::scheduler::{ClaimOptions, CreateTask};

/// `POST /v1/workspaces/{ws}/tasks`
#[utoipa::path(
    post,
    operation_id = "tasks_create",
    path = "/v1/workspaces/{ws}/tasks",
    tag = "tasks",
    summary = "create a task",
    params(crate::openapi::WsPath),
    request_body = crate::schema::CreateTask,
    responses(
        (status = 201, description = "created", body = crate::views::Task),
        (status = 200, description = "an unfinished task with the same dedup_key", body = crate::views::Task),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Agent>,
    Json(body): Json<CreateTask>,
) -> Result<Response> {
    let (task, created) = state.app.scheduler.create(&ws, body).await?;
    if created {
        state
            .app
            .audit(
                &principal,
                Some(&ws),
                "task.create",
                &task.id,
                json!({ "title": task.title }),
            )
            .await;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Answer(views::Task::from(&task))).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    state: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/tasks[?state=&limit=]`
#[utoipa::path(
    get,
    operation_id = "tasks_list",
    path = "/v1/workspaces/{ws}/tasks",
    tag = "tasks",
    summary = "tasks",
    params(crate::openapi::WsPath, ListQuery),
    responses(
        (status = 200, description = "the tasks", body = crate::views::TaskList),
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
    let states = q
        .state
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| {
            s.parse::<TaskState>().map_err(|_| {
                Error::invalid(format!(
                    "invalid state \"{}\": expected one of {}",
                    warden_core::validate::truncate(s, 40),
                    STATES.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid("limit must be between 1 and 500").into());
    }
    let query = TaskQuery {
        states,
        stuck_for_ms: None,
        lease_expired: false,
        limit,
        now: warden_store::now_ms(),
    };
    let tasks = state.app.store.list_tasks(&ws, &query).await?;
    let tasks = tasks.iter().map(views::Task::from).collect();
    Ok(Answer(views::TaskList { tasks }).into_response())
}

async fn load(state: &AppState, ws: &str, id: &str) -> Result<TaskRow> {
    warden_core::validate::id("task", id).map_err(Error::InvalidArgument)?;
    let task = state.app.store.get_task(ws, id).await?;
    Ok(task.ok_or_else(|| Error::NotFound(format!("task {id} not found in workspace \"{ws}\"")))?)
}

/// `GET /v1/workspaces/{ws}/tasks/{id}`: the task and its stage runs.
#[utoipa::path(
    get,
    operation_id = "tasks_get",
    path = "/v1/workspaces/{ws}/tasks/{id}",
    tag = "tasks",
    summary = "one task with its stage runs",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    responses(
        (status = 200, description = "the task", body = crate::views::TaskDetail),
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
    let task = load(&state, &ws, &id).await?;
    let runs = state.app.store.list_stage_runs(&id).await?;
    let task = views::Task::from(&task);
    let stage_runs = runs.iter().map(views::StageRun::from).collect();
    Ok(Answer(views::TaskDetail { task, stage_runs }).into_response())
}

/// `POST /v1/workspaces/{ws}/tasks/{id}/cancel`
#[utoipa::path(
    post,
    operation_id = "tasks_cancel",
    path = "/v1/workspaces/{ws}/tasks/{id}/cancel",
    tag = "tasks",
    summary = "cancel a task",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    responses(
        (status = 200, description = "the task", body = crate::views::Task),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    warden_core::validate::id("task", &id).map_err(Error::InvalidArgument)?;
    let t = state.app.scheduler.cancel(&ws, &id).await?;
    state
        .app
        .audit(&principal, Some(&ws), "task.cancel", &id, json!({}))
        .await;
    Ok(Answer(views::Task::from(&t)).into_response())
}

/// `POST /v1/workspaces/{ws}/tasks/{id}/unblock`
#[utoipa::path(
    post,
    operation_id = "tasks_unblock",
    path = "/v1/workspaces/{ws}/tasks/{id}/unblock",
    tag = "tasks",
    summary = "unblock a blocked task",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    responses(
        (status = 200, description = "the task", body = crate::views::Task),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn unblock(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    warden_core::validate::id("task", &id).map_err(Error::InvalidArgument)?;
    let t = state.app.scheduler.unblock(&ws, &id).await?;
    state
        .app
        .audit(&principal, Some(&ws), "task.unblock", &id, json!({}))
        .await;
    Ok(Answer(views::Task::from(&t)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub(crate) worker_id: String,
    #[schema(minimum = 1, maximum = 100)]
    max: Option<u32>,
    #[schema(minimum = 1000)]
    lease_ms: Option<u64>,
    #[serde(default)]
    stages: Vec<String>,
    /// Long-poll: wait up to this long for work (at most 60 s).
    wait_ms: Option<u64>,
}

/// `POST /v1/workspaces/{ws}/tasks/claim`
#[utoipa::path(
    post,
    operation_id = "tasks_claim",
    path = "/v1/workspaces/{ws}/tasks/claim",
    tag = "tasks",
    summary = "claim stages to work on (long-poll with wait_ms)",
    params(crate::openapi::WsPath),
    request_body = ClaimBody,
    responses(
        (status = 200, description = "the claims, or why there is nothing to claim", body = crate::views::ClaimResponse),
        crate::openapi::BadRequest,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn claim(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Agent>,
    Json(b): Json<ClaimBody>,
) -> Result<Response> {
    Ok(Answer(claim_in(&state.app, &ws, b).await?).into_response())
}

/// Claims for `ws` as `b` asks (the HTTP route and the MCP tool).
pub(crate) async fn claim_in(app: &App, ws: &str, b: ClaimBody) -> Result<views::ClaimResponse> {
    let opts = ClaimOptions {
        worker_id: b.worker_id,
        max: b.max.unwrap_or(1),
        lease_ms: b.lease_ms,
        stages: b.stages,
        wait: Duration::from_millis(b.wait_ms.unwrap_or(0)),
    };
    let (claims, idle) = app.scheduler.claim(ws, opts).await?;
    let claims = claims.iter().map(views::Claim::from).collect();
    let idle = idle.as_ref().map(views::to_json).transpose()?;
    Ok(views::ClaimResponse { claims, idle })
}

#[derive(Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub(crate) token: i64,
    lease_ms: Option<u64>,
}

/// `POST /v1/workspaces/{ws}/tasks/{id}/heartbeat`
#[utoipa::path(
    post,
    operation_id = "tasks_heartbeat",
    path = "/v1/workspaces/{ws}/tasks/{id}/heartbeat",
    tag = "tasks",
    summary = "extend a lease",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    request_body = TokenBody,
    responses(
        (status = 200, description = "the new expiry", body = crate::views::HeartbeatResponse),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Agent>,
    Path((_, id)): Path<(String, String)>,
    Json(b): Json<TokenBody>,
) -> Result<Response> {
    Ok(Answer(heartbeat_in(&state.app, &ws, &id, b).await?).into_response())
}

/// Extends the lease of task `id` (the HTTP route and the MCP tool).
pub(crate) async fn heartbeat_in(
    app: &App,
    ws: &str,
    id: &str,
    b: TokenBody,
) -> Result<views::HeartbeatResponse> {
    warden_core::validate::id("task", id).map_err(Error::InvalidArgument)?;
    let t = app.scheduler.heartbeat(ws, id, b.token, b.lease_ms).await?;
    Ok(views::HeartbeatResponse {
        token: b.token,
        lease_expires_at: opt_time(t.lease_expires_at),
    })
}

#[derive(Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    token: i64,
    #[serde(default)]
    output: Value,
    /// The stage result the stage's gates judge (SPEC QG-1).
    #[schema(value_type = Option<crate::schema::StageResult>)]
    #[schemars(with = "Option<crate::schema::StageResult>")]
    result: Option<warden_core::gates::StageResult>,
}

/// `POST /v1/workspaces/{ws}/tasks/{id}/complete`: 200 and the task; the
/// same token again is 200 with `"completed": false` (idempotent); a stale
/// token is 409 FAILED_PRECONDITION.
#[utoipa::path(
    post,
    operation_id = "tasks_complete",
    path = "/v1/workspaces/{ws}/tasks/{id}/complete",
    tag = "tasks",
    summary = "complete the claimed stage",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    request_body = CompleteBody,
    responses(
        (status = 200, description = "the task", body = crate::views::CompleteResponse),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Agent>,
    Path((_, id)): Path<(String, String)>,
    Json(b): Json<CompleteBody>,
) -> Result<Response> {
    Ok(Answer(complete_in(&state.app, &ws, &id, b).await?).into_response())
}

/// Completes the claimed stage of task `id` (the HTTP route and the MCP
/// tool).
pub(crate) async fn complete_in(
    app: &App,
    ws: &str,
    id: &str,
    b: CompleteBody,
) -> Result<views::CompleteResponse> {
    warden_core::validate::id("task", id).map_err(Error::InvalidArgument)?;
    if serde_json::to_string(&b.output).map_or(0, |s| s.len()) > 256 * 1024 {
        return Err(Error::invalid("output is over the 256 KiB limit").into());
    }
    let (t, completed) = app
        .scheduler
        .complete(ws, id, b.token, b.output, b.result)
        .await?;
    let task = views::Task::from(&t);
    Ok(views::CompleteResponse { completed, task })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `approve` or `reject`.
    #[schema(pattern = "^(approve|reject)$")]
    decision: String,
    /// Why (becomes the plan delta of a rejection).
    #[serde(default)]
    reason: String,
}

/// `POST /v1/workspaces/{ws}/tasks/{id}/decision`: a human's decision on a
/// task waiting for approval (SPEC QG-2, QG-3); 409 FAILED_PRECONDITION
/// when it does not wait.
#[utoipa::path(
    post,
    operation_id = "tasks_decide",
    path = "/v1/workspaces/{ws}/tasks/{id}/decision",
    tag = "tasks",
    summary = "a human decision on a task waiting for approval",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "the task", body = crate::views::DecisionResponse),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, id)): Path<(String, String)>,
    Json(b): Json<DecisionBody>,
) -> Result<Response> {
    warden_core::validate::id("task", &id).map_err(Error::InvalidArgument)?;
    let approve = match b.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(Error::invalid(format!(
                "decision \"{}\": expected approve or reject",
                warden_core::validate::truncate(other, 40)
            ))
            .into());
        }
    };
    let t = state
        .app
        .scheduler
        .decide_approval(&ws, &id, approve, &b.reason, &principal.name)
        .await?;
    state
        .app
        .audit(
            &principal,
            Some(&ws),
            "task.decide",
            &id,
            json!({ "decision": b.decision, "reason": b.reason }),
        )
        .await;
    let task = views::Task::from(&t);
    Ok(Answer(views::DecisionResponse { task }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    token: i64,
    error: String,
    /// False sends the task straight to the dead-letter queue.
    retryable: Option<bool>,
}

/// `POST /v1/workspaces/{ws}/tasks/{id}/fail`
#[utoipa::path(
    post,
    operation_id = "tasks_fail",
    path = "/v1/workspaces/{ws}/tasks/{id}/fail",
    tag = "tasks",
    summary = "fail the claimed stage",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    request_body = FailBody,
    responses(
        (status = 200, description = "the task", body = crate::views::FailResponse),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn fail(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Agent>,
    Path((_, id)): Path<(String, String)>,
    Json(b): Json<FailBody>,
) -> Result<Response> {
    Ok(Answer(fail_in(&state.app, &ws, &id, b).await?).into_response())
}

/// Fails the claimed stage of task `id` (the HTTP route and the MCP tool).
pub(crate) async fn fail_in(
    app: &App,
    ws: &str,
    id: &str,
    b: FailBody,
) -> Result<views::FailResponse> {
    warden_core::validate::id("task", id).map_err(Error::InvalidArgument)?;
    let (t, failed) = app
        .scheduler
        .fail(ws, id, b.token, &b.error, b.retryable.unwrap_or(true))
        .await?;
    let task = views::Task::from(&t);
    Ok(views::FailResponse { failed, task })
}

#[derive(Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// `status`, `tool_start`, `tool_result`, `token`, `budget`,
    /// `stop_reason`, `guardrails` or `log`.
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

/// `POST /v1/workspaces/{ws}/tasks/{id}/events`
#[utoipa::path(
    post,
    operation_id = "tasks_report",
    path = "/v1/workspaces/{ws}/tasks/{id}/events",
    tag = "tasks",
    summary = "report progress of a running task",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    request_body = EventBody,
    responses(
        (status = 201, description = "recorded", body = crate::views::EventSeq),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn report(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Agent>,
    Path((_, id)): Path<(String, String)>,
    Json(b): Json<EventBody>,
) -> Result<Response> {
    let seq = report_in(&state.app, &ws, &id, b).await?;
    Ok((StatusCode::CREATED, Answer(views::EventSeq { seq })).into_response())
}

/// Records a progress event of task `id`: its sequence number (the HTTP
/// route and the MCP tool).
pub(crate) async fn report_in(app: &App, ws: &str, id: &str, b: EventBody) -> Result<i64> {
    warden_core::validate::id("task", id).map_err(Error::InvalidArgument)?;
    Ok(app.scheduler.report(ws, id, &b.kind, b.data).await?)
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/tasks/{id}/events`
#[utoipa::path(
    get,
    operation_id = "tasks_events",
    path = "/v1/workspaces/{ws}/tasks/{id}/events",
    tag = "tasks",
    summary = "the events of a task",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath, EventsQuery),
    responses(
        (status = 200, description = "the events", body = crate::views::TaskEvents),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn events(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<EventsQuery>,
) -> Result<Response> {
    load(&state, &ws, &id).await?;
    let rows = state
        .app
        .store
        .list_task_events(&ws, &id, q.after.unwrap_or(0), q.limit.unwrap_or(500))
        .await?;
    let events = rows.iter().map(views::TaskEvent::from).collect();
    Ok(Answer(views::TaskEvents { events }).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this sequence number (like `Last-Event-ID`).
    after: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/tasks/{id}/events/stream`: the task's events as
/// Server-Sent Events (SPEC OB-3), `id` = the event's sequence number and
/// `event` = its type, from the one after `Last-Event-ID` (or `?after=`)
/// on. Ends once the task is done, cancelled or dead and every event was
/// sent.
#[utoipa::path(
    get,
    operation_id = "tasks_stream",
    path = "/v1/workspaces/{ws}/tasks/{id}/events/stream",
    tag = "tasks",
    summary = "the task's events as server-sent events; ends once the task is finished",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath, StreamQuery, ("last-event-id" = Option<String>, Header, description = "resume after this sequence number")),
    responses(
        (status = 200, description = "one event per task event, `id` its sequence number, `event` its type", body = crate::openapi::SseEvent, content_type = "text/event-stream"),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Viewer>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<StreamQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt as _;

    load(&state, &ws, &id).await?;
    let slot = state.app.streams.open(&principal.token_id)?;
    let last = crate::resume_after(&headers, q.after);
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(256);
    let app = state.app.clone();
    // Subscribed before the first read, so that no event falls between.
    let mut live = app.scheduler.subscribe_task_events();
    tokio::spawn(async move {
        let mut next = last;
        loop {
            // Read the task's state before its events: an event written
            // after this read is read below or on the next round.
            let finished = match app.store.get_task(&ws, &id).await {
                Ok(Some(t)) => t.state.is_finished(),
                _ => return,
            };
            loop {
                let Ok(rows) = app.store.list_task_events(&ws, &id, next, 500).await else {
                    return;
                };
                let full = rows.len() == 500;
                for e in rows {
                    let data =
                        json!({ "seq": e.seq, "type": e.kind, "data": e.data, "at": time(e.at) });
                    let event = Event::default()
                        .id(e.seq.to_string())
                        .event(e.kind.as_str())
                        .data(data.to_string());
                    if tx.send(event).await.is_err() {
                        return;
                    }
                    next = e.seq;
                }
                if !full {
                    break;
                }
            }
            if finished {
                return;
            }
            // Wait for an event of this task on this host, or poll each
            // second for those written by other hosts.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            loop {
                match tokio::time::timeout_at(deadline, live.recv()).await {
                    Ok(Ok(task)) if *task == *id => break,
                    Ok(Ok(_)) => {}
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) | Err(_) => {
                        break;
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    let stream =
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
    // Ends at shutdown (the producer sees the channel closed and stops).
    let stream = state.app.streams.guard(slot, stream);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /v1/workspaces/{ws}/dead-letters`
#[utoipa::path(
    get,
    operation_id = "tasks_dead_letters",
    path = "/v1/workspaces/{ws}/dead-letters",
    tag = "tasks",
    summary = "the dead-letter queue",
    params(crate::openapi::WsPath),
    responses(
        (status = 200, description = "dead tasks", body = crate::views::DeadLetters),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn dead_letters(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
) -> Result<Response> {
    let tasks = state.app.store.list_dead_letters(&ws, 500).await?;
    let dead_letters = tasks.iter().map(views::Task::from).collect();
    Ok(Answer(views::DeadLetters { dead_letters }).into_response())
}

/// `POST /v1/workspaces/{ws}/dead-letters/{id}/redrive`
#[utoipa::path(
    post,
    operation_id = "tasks_redrive",
    path = "/v1/workspaces/{ws}/dead-letters/{id}/redrive",
    tag = "tasks",
    summary = "send a dead task back to the queue",
    params(crate::openapi::WsPath, crate::openapi::TaskIdPath),
    request_body(content = Option<crate::openapi::AnyObject>, description = "ignored; may be empty"),
    responses(
        (status = 200, description = "the task", body = crate::views::Task),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn redrive(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, id)): Path<(String, String)>,
    OptionalJson(_body): OptionalJson<Value>,
) -> Result<Response> {
    warden_core::validate::id("task", &id).map_err(Error::InvalidArgument)?;
    let t = state.app.scheduler.redrive(&ws, &id).await?;
    state
        .app
        .audit(&principal, Some(&ws), "task.redrive", &id, json!({}))
        .await;
    Ok(Answer(views::Task::from(&t)).into_response())
}
