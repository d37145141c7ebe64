//! Agent threads (SPEC TH-1, TH-2, TH-5): create, list, inspect, add
//! participants, post, read with long-poll, change state, audit. The
//! rules (who posts as whom, which changes are allowed, how long a read
//! waits) are warden-core's `threads`; this module translates.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use warden_core::threads::{Change, Create, Participant, Post, Read};
use warden_store::threads::{ParticipantKind, ThreadState};

use crate::error::{Error, Result};
use crate::views::{self, Answer};
use crate::{Agent, AppState, Json, Operator, Path, Query, Viewer, Workspace};
use warden_core::App;
use warden_core::auth::Principal;

/// `{id}` of a thread.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ThreadIdPath {
    /// the thread
    #[expect(
        dead_code,
        reason = "only the OpenAPI document reads it; handlers take the id with Path"
    )]
    #[param(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub id: String,
}

/// A participant to add.
#[derive(Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantBody {
    /// Its name in the thread: for an agent, its token's name (an agent
    /// token posts and reads as its name).
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// `agent` or `human`.
    #[schema(pattern = "^(agent|human)$")]
    kind: String,
    /// Its role, e.g. `executor`, `reviewer`, `approver`.
    #[schema(min_length = 1, max_length = 100)]
    role: String,
}

impl ParticipantBody {
    fn domain(self) -> Result<Participant> {
        let kind = self.kind.parse::<ParticipantKind>().map_err(|_| {
            Error::invalid(format!(
                "unknown participant kind \"{}\": expected one of {}",
                warden_core::validate::truncate(&self.kind, 40),
                ParticipantKind::NAMES.join(", ")
            ))
        })?;
        Ok(Participant {
            name: self.name,
            kind,
            role: self.role,
        })
    }
}

/// A thread to create.
#[derive(Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    /// The task it is about: a task of the workspace.
    task_id: Option<String>,
    /// Its first participants (at most 32), names unique.
    #[serde(default)]
    participants: Vec<ParticipantBody>,
}

/// `POST /v1/workspaces/{ws}/threads`
#[utoipa::path(
    post,
    operation_id = "threads_create",
    path = "/v1/workspaces/{ws}/threads",
    tag = "threads",
    summary = "create a thread",
    params(crate::openapi::WsPath),
    request_body = CreateBody,
    responses(
        (status = 201, description = "created, active", body = crate::views::ThreadDetail),
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
    Json(b): Json<CreateBody>,
) -> Result<Response> {
    let detail = create_in(&state.app, &ws, &principal, b).await?;
    Ok((StatusCode::CREATED, Answer(detail)).into_response())
}

/// Creates a thread in `ws` for `principal` (the HTTP route and the MCP
/// tool).
pub(crate) async fn create_in(
    app: &App,
    ws: &str,
    principal: &Principal,
    b: CreateBody,
) -> Result<views::ThreadDetail> {
    let participants = b
        .participants
        .into_iter()
        .map(ParticipantBody::domain)
        .collect::<Result<Vec<_>>>()?;
    let create = Create {
        title: b.title,
        task_id: b.task_id,
        participants,
    };
    let (thread, _) = app.threads.create(ws, principal, create).await?;
    let detail = app.threads.get(ws, &thread.id).await?;
    Ok(views::ThreadDetail::from(&detail))
}

#[derive(Deserialize, Default, utoipa::IntoParams, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `active`, `blocked` or `closed`.
    state: Option<String>,
    /// Only threads about this task.
    task_id: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/threads[?state=&task_id=&limit=]`
#[utoipa::path(
    get,
    operation_id = "threads_list",
    path = "/v1/workspaces/{ws}/threads",
    tag = "threads",
    summary = "threads, newest activity first",
    params(crate::openapi::WsPath, ListQuery),
    responses(
        (status = 200, description = "the threads", body = crate::views::ThreadList),
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
    Ok(Answer(list_in(&state.app, &ws, q).await?).into_response())
}

/// Threads of `ws` as `q` asks (the HTTP route and the MCP tool).
pub(crate) async fn list_in(app: &App, ws: &str, q: ListQuery) -> Result<views::ThreadList> {
    let thread_state = q
        .state
        .as_deref()
        .map(|s| {
            s.parse::<ThreadState>().map_err(|_| {
                Error::invalid(format!(
                    "invalid state \"{}\": expected one of {}",
                    warden_core::validate::truncate(s, 40),
                    ThreadState::NAMES.join(", ")
                ))
            })
        })
        .transpose()?;
    if let Some(task) = &q.task_id {
        warden_core::validate::id("task", task).map_err(Error::InvalidArgument)?;
    }
    let limit = bounded_limit(q.limit)?;
    let rows = app.threads.list(ws, thread_state, q.task_id, limit).await?;
    let threads = rows.iter().map(views::Thread::from).collect();
    Ok(views::ThreadList { threads })
}

/// `GET /v1/workspaces/{ws}/threads/{id}`: the thread, its participants,
/// their cursors and unread counts.
#[utoipa::path(
    get,
    operation_id = "threads_get",
    path = "/v1/workspaces/{ws}/threads/{id}",
    tag = "threads",
    summary = "one thread with its participants' cursors",
    params(crate::openapi::WsPath, ThreadIdPath),
    responses(
        (status = 200, description = "the thread", body = crate::views::ThreadDetail),
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
    let detail = state.app.threads.get(&ws, &id).await?;
    Ok(Answer(views::ThreadDetail::from(&detail)).into_response())
}

/// `POST /v1/workspaces/{ws}/threads/{id}/participants`
#[utoipa::path(
    post,
    operation_id = "threads_add_participant",
    path = "/v1/workspaces/{ws}/threads/{id}/participants",
    tag = "threads",
    summary = "add a participant",
    params(crate::openapi::WsPath, ThreadIdPath),
    request_body = ParticipantBody,
    responses(
        (status = 201, description = "added", body = crate::views::ParticipantAdded),
        (status = 200, description = "a participant already; unchanged", body = crate::views::ParticipantAdded),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn add_participant(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Agent>,
    Path((_, id)): Path<(String, String)>,
    Json(b): Json<ParticipantBody>,
) -> Result<Response> {
    let participant = b.domain()?;
    let (row, added) = state
        .app
        .threads
        .add_participant(&ws, &id, &principal, &participant)
        .await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = views::ParticipantAdded {
        participant: views::Participant::from(&row),
        added,
    };
    Ok((status, Answer(view)).into_response())
}

/// A message to post.
#[derive(Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostBody {
    /// The message format version; this server speaks 1.
    schema_version: i64,
    /// `message` (the default), `finding`, `decision` or `status`.
    kind: Option<String>,
    /// The content: any JSON but null, at most 64 KiB.
    #[schema(value_type = Object)]
    body: Value,
    /// The participants it is for; absent: everyone (a broadcast).
    recipients: Option<Vec<String>>,
    /// Post as this human participant (operators only); absent: as the
    /// token's own name.
    sender: Option<String>,
    /// A retry with the same key returns the first message (200) instead
    /// of posting again; the `Idempotency-Key` header does the same.
    #[schema(max_length = 200)]
    idempotency_key: Option<String>,
}

/// `POST /v1/workspaces/{ws}/threads/{id}/messages`: 201 and the new
/// message, or 200 and the first message posted with the same
/// idempotency key by the same sender.
#[utoipa::path(
    post,
    operation_id = "threads_post",
    path = "/v1/workspaces/{ws}/threads/{id}/messages",
    tag = "threads",
    summary = "post a message",
    params(
        crate::openapi::WsPath,
        ThreadIdPath,
        ("Idempotency-Key" = Option<String>, Header, description = "the same as the body's idempotency_key")
    ),
    request_body = PostBody,
    responses(
        (status = 201, description = "posted", body = crate::views::Message),
        (status = 200, description = "a retry: the message first posted with this key", body = crate::views::Message),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn post(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Agent>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(b): Json<PostBody>,
) -> Result<Response> {
    let header = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Error::invalid("the Idempotency-Key header is not visible ASCII"))?
                .to_string(),
        ),
    };
    let posted = post_in(&state.app, &ws, &id, &principal, b, header).await?;
    let status = if posted.replay {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Answer(views::Message::from(&posted.message))).into_response())
}

/// Posts `b` to thread `id` for `principal`, with the key of an
/// `Idempotency-Key` header if one came (the HTTP route and the MCP tool).
pub(crate) async fn post_in(
    app: &App,
    ws: &str,
    id: &str,
    principal: &Principal,
    b: PostBody,
    header: Option<String>,
) -> Result<warden_store::threads::Posted> {
    let idempotency_key = match (b.idempotency_key, header) {
        (Some(body), Some(header)) if body != header => {
            return Err(Error::invalid(
                "the Idempotency-Key header and the body's idempotency_key differ: send one",
            )
            .into());
        }
        (body, header) => body.or(header),
    };
    let post = Post {
        schema_version: b.schema_version,
        sender: b.sender,
        recipients: b.recipients,
        kind: b.kind.unwrap_or_else(|| "message".to_string()),
        body: b.body,
        idempotency_key,
    };
    Ok(app.threads.post(ws, id, principal, post).await?)
}

#[derive(Deserialize, Default, utoipa::IntoParams, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// Messages with a seq above this (default 0: from the first).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Long-poll: wait up to this long for a message when there is none
    /// yet (`30s`, `500ms`, bare seconds; default 0, at most 30 s).
    wait: Option<String>,
    /// Read as this participant: what it may see, and its cursor moves.
    /// An agent token reads as itself; an operator may name a human.
    #[serde(rename = "for")]
    #[param(rename = "for")]
    reader: Option<String>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/threads/{id}/messages?after=N&wait=30s&for=P&limit=L`
#[utoipa::path(
    get,
    operation_id = "threads_read",
    path = "/v1/workspaces/{ws}/threads/{id}/messages",
    tag = "threads",
    summary = "read messages after a seq (long-poll with wait)",
    params(crate::openapi::WsPath, ThreadIdPath, ReadQuery),
    responses(
        (status = 200, description = "the messages, possibly none", body = crate::views::MessageList),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn read(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Viewer>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
) -> Result<Response> {
    Ok(Answer(read_in(&state.app, &ws, &id, &principal, q).await?).into_response())
}

/// Reads thread `id` for `principal` as `q` asks, waiting as it says (the
/// HTTP route and the MCP tool).
pub(crate) async fn read_in(
    app: &App,
    ws: &str,
    id: &str,
    principal: &Principal,
    q: ReadQuery,
) -> Result<views::MessageList> {
    let wait = q
        .wait
        .as_deref()
        .map(warden_core::threads::parse_wait)
        .transpose()?
        .unwrap_or_default();
    let after = q.after.unwrap_or(0);
    let read = Read {
        after,
        wait,
        as_participant: q.reader,
        limit: bounded_limit(q.limit)?,
    };
    let messages = app.threads.read(ws, id, principal, read).await?;
    Ok(views::MessageList::of(&messages, after))
}

/// Why a state changes.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why; an override-close's starts with `human_override:`.
    #[schema(min_length = 1, max_length = 2000)]
    reason: String,
}

async fn change(
    state: &AppState,
    ws: &str,
    id: &str,
    principal: &warden_core::auth::Principal,
    to: Change,
    reason: &str,
) -> Result<Response> {
    let t = state
        .app
        .threads
        .change(ws, id, principal, to, reason)
        .await?;
    Ok(Answer(views::ThreadTransition::from(&t)).into_response())
}

/// `POST /v1/workspaces/{ws}/threads/{id}/escalate`: active → blocked.
/// An operator, or an agent that is a participant.
#[utoipa::path(
    post,
    operation_id = "threads_escalate",
    path = "/v1/workspaces/{ws}/threads/{id}/escalate",
    tag = "threads",
    summary = "block a thread for a human (active → blocked)",
    params(crate::openapi::WsPath, ThreadIdPath),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "the change", body = crate::views::ThreadTransition),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn escalate(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Agent>,
    Path((_, id)): Path<(String, String)>,
    Json(b): Json<ReasonBody>,
) -> Result<Response> {
    change(&state, &ws, &id, &principal, Change::Escalate, &b.reason).await
}

/// `POST /v1/workspaces/{ws}/threads/{id}/unblock`: blocked → active.
#[utoipa::path(
    post,
    operation_id = "threads_unblock",
    path = "/v1/workspaces/{ws}/threads/{id}/unblock",
    tag = "threads",
    summary = "unblock a thread (blocked → active)",
    params(crate::openapi::WsPath, ThreadIdPath),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "the change", body = crate::views::ThreadTransition),
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
    Json(b): Json<ReasonBody>,
) -> Result<Response> {
    change(&state, &ws, &id, &principal, Change::Unblock, &b.reason).await
}

/// `POST /v1/workspaces/{ws}/threads/{id}/close`: active or blocked →
/// closed.
#[utoipa::path(
    post,
    operation_id = "threads_close",
    path = "/v1/workspaces/{ws}/threads/{id}/close",
    tag = "threads",
    summary = "close a thread",
    params(crate::openapi::WsPath, ThreadIdPath),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "the change", body = crate::views::ThreadTransition),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn close(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, id)): Path<(String, String)>,
    Json(b): Json<ReasonBody>,
) -> Result<Response> {
    change(&state, &ws, &id, &principal, Change::Close, &b.reason).await
}

/// `POST /v1/workspaces/{ws}/threads/{id}/override-close`: a person
/// closes the thread; the reason starts with `human_override:`.
#[utoipa::path(
    post,
    operation_id = "threads_override_close",
    path = "/v1/workspaces/{ws}/threads/{id}/override-close",
    tag = "threads",
    summary = "close a thread by human override",
    params(crate::openapi::WsPath, ThreadIdPath),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "the change", body = crate::views::ThreadTransition),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn override_close(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Operator>,
    Path((_, id)): Path<(String, String)>,
    Json(b): Json<ReasonBody>,
) -> Result<Response> {
    change(
        &state,
        &ws,
        &id,
        &principal,
        Change::OverrideClose,
        &b.reason,
    )
    .await
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/threads/{id}/audit`
#[utoipa::path(
    get,
    operation_id = "threads_audit",
    path = "/v1/workspaces/{ws}/threads/{id}/audit",
    tag = "threads",
    summary = "a thread's audit trail, newest first",
    params(crate::openapi::WsPath, ThreadIdPath, AuditQuery),
    responses(
        (status = 200, description = "the entries", body = crate::views::ThreadAudit),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<AuditQuery>,
) -> Result<Response> {
    let limit = bounded_limit(q.limit)?;
    let rows = state.app.threads.audit(&ws, &id, limit).await?;
    let entries = rows.iter().map(views::ThreadAuditEntry::from).collect();
    Ok(Answer(views::ThreadAudit { entries }).into_response())
}

/// A `limit` of 1 to 500; 100 when absent.
fn bounded_limit(limit: Option<i64>) -> Result<i64> {
    let limit = limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid("limit must be between 1 and 500").into());
    }
    Ok(limit)
}
