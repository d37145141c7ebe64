//! The MCP server at `/mcp` (SPEC TH-6): the worker protocol as MCP tools,
//! over streamable HTTP, so that coding agents call Warden natively.
//!
//! The bearer token is the caller's API token; its workspace is the one
//! the tools act in (the bootstrap admin token names one in the
//! `x-warden-workspace` header, as for the gateway). Each tool takes the
//! body of its HTTP route, the same type (so its input schema is that
//! type's), plus the path parameters as fields (`task_id`, `playbook`),
//! and answers the HTTP route's view as structured content. A refused
//! call is a tool error (`isError`) whose structured content is the SE-2
//! envelope, `{"error": {"code", "message"}}`.
//!
//! Tool names end in `_v1`: a change that breaks a tool's input or output
//! comes as `_v2` beside it.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use warden_core::App;
use warden_core::auth::Principal;

use crate::error::{ApiError, Error};
use crate::runs::TriggerBody;
use crate::tasks::{ClaimBody, CompleteBody, EventBody, FailBody, TokenBody};
use crate::{AppState, views};

/// The largest MCP request body: the largest HTTP body the worker
/// protocol takes (`[http] max_body_kib`) applies here too.
fn max_body(app: &App) -> usize {
    app.config.http.max_body_kib << 10
}

/// MCP sessions open at once on this host, at most: each holds a task
/// and its channels until the client ends it or it is idle for 5 minutes
/// (rmcp's keep-alive). A new session over the limit is refused with
/// RESOURCE_EXHAUSTED.
pub const MAX_SESSIONS: usize = 256;

/// `/mcp`: the MCP service behind [`authenticate`]. Its sessions end when
/// the host starts shutting down.
pub fn router(state: &AppState, max_sessions: usize) -> axum::Router<AppState> {
    let stop = tokio_util::sync::CancellationToken::new();
    let mut stopping = state.app.streams.stopping();
    let cancel = stop.clone();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            while !*stopping.borrow() {
                if stopping.changed().await.is_err() {
                    break;
                }
            }
            cancel.cancel();
        });
    }
    let sessions = Arc::new(LocalSessionManager::default());
    let config = StreamableHttpServerConfig::default()
        // Every request carries a bearer token, which a page that rebinds
        // a name to this host cannot have: any Host is accepted, as for
        // the rest of the API.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(max_body(&state.app))
        .with_cancellation_token(stop);
    let app = state.app.clone();
    let service = StreamableHttpService::new(
        move || Ok(Warden::new(app.clone())),
        sessions.clone(),
        config,
    );
    let gate = Gate {
        state: state.clone(),
        sessions,
        max_sessions,
    };
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(gate, authenticate))
}

/// What [`authenticate`] checks with.
#[derive(Clone)]
pub struct Gate {
    state: AppState,
    sessions: Arc<LocalSessionManager>,
    max_sessions: usize,
}

/// Authenticates every `/mcp` request as the rest of the API does and
/// hands the caller to the tools in the request's extensions; a request
/// without a valid token is answered 401 before MCP sees it. A request
/// that would open a session over the limit is answered 429.
pub async fn authenticate(
    State(gate): State<Gate>,
    mut req: axum::http::Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let peer = req
        .extensions()
        .get::<crate::serve::PeerAddr>()
        .map(|p| p.0.ip());
    let principal = match gate.state.app.auth.authenticate(header, peer).await {
        Ok(p) => p,
        Err(e) => return ApiError(e).into_response(),
    };
    let opens =
        req.method() == axum::http::Method::POST && !req.headers().contains_key("mcp-session-id");
    if opens && gate.sessions.sessions.read().await.len() >= gate.max_sessions {
        return ApiError(Error::ResourceExhausted(format!(
            "{} MCP sessions are open on this host, the limit; end one (DELETE /mcp with its mcp-session-id) or retry later",
            gate.max_sessions
        )))
        .into_response();
    }
    let ends = req.method() == axum::http::Method::DELETE;
    req.extensions_mut().insert(principal);
    let mut res = next.run(req).await;
    // rmcp answers an ended session 202; the official Python client takes
    // only 200 or 204 and logs a warning on each close otherwise.
    if ends && res.status() == axum::http::StatusCode::ACCEPTED {
        *res.status_mut() = axum::http::StatusCode::NO_CONTENT;
    }
    res
}

/// The MCP server of one session.
#[derive(Clone)]
pub struct Warden {
    app: Arc<App>,
    tool_router: ToolRouter<Warden>,
}

/// A path parameter a tool takes as a field beside its HTTP body.
pub trait Key: Send + Sync + 'static {
    /// The field's name; empty for none.
    const NAME: &'static str;
    /// What it is, for the input schema.
    const DESCRIPTION: &'static str;
}

/// No path parameter.
pub struct NoKey;
impl Key for NoKey {
    const NAME: &'static str = "";
    const DESCRIPTION: &'static str = "";
}

/// `task_id`: the task a worker acts on.
pub struct TaskId;
impl Key for TaskId {
    const NAME: &'static str = "task_id";
    const DESCRIPTION: &'static str = "the task (its id, as a claim answered it)";
}

/// `thread_id`: the thread a call is about.
pub struct ThreadId;
impl Key for ThreadId {
    const NAME: &'static str = "thread_id";
    const DESCRIPTION: &'static str = "the thread (its id)";
}

/// No fields besides the key.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

/// `playbook`: the playbook to run.
pub struct Playbook;
impl Key for Playbook {
    const NAME: &'static str = "playbook";
    const DESCRIPTION: &'static str = "the playbook plugin's name";
}

/// A tool's arguments: an HTTP body `T` with the string field `K` beside
/// its own fields. Reading them never fails as a protocol error: what
/// does not parse (a missing or unknown field, a wrong type; `T` keeps
/// its own checks) is kept as the message of the INVALID_ARGUMENT tool
/// error the call answers, as the HTTP route answers it.
pub struct Args<K, T> {
    parsed: Result<(String, T), String>,
    _key: PhantomData<K>,
}

impl<K: Key, T: DeserializeOwned> Args<K, T> {
    /// The key and the body, or why the arguments are invalid.
    fn get(self) -> crate::error::Result<(String, T)> {
        self.parsed
            .map_err(|m| Error::invalid(format!("invalid arguments: {m}")).into())
    }

    fn parse(value: Value) -> Result<(String, T), String> {
        let Value::Object(mut map) = value else {
            return Err("the arguments must be a JSON object".to_string());
        };
        let key = if K::NAME.is_empty() {
            String::new()
        } else {
            match map.remove(K::NAME) {
                Some(Value::String(s)) => s,
                Some(_) => return Err(format!("{} must be a string", K::NAME)),
                None => return Err(format!("missing field `{}`", K::NAME)),
            }
        };
        let body = T::deserialize(Value::Object(map)).map_err(|e| e.to_string())?;
        Ok((key, body))
    }
}

impl<'de, K: Key, T: DeserializeOwned> Deserialize<'de> for Args<K, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(Args {
            parsed: Self::parse(value),
            _key: PhantomData,
        })
    }
}

impl<K: Key, T: JsonSchema> JsonSchema for Args<K, T> {
    fn schema_name() -> Cow<'static, str> {
        if K::NAME.is_empty() {
            T::schema_name()
        } else {
            format!("{}With_{}", T::schema_name(), K::NAME).into()
        }
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = T::json_schema(generator);
        if K::NAME.is_empty() {
            return schema;
        }
        if let Some(object) = schema.as_object_mut() {
            let properties = object
                .entry("properties")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(p) = properties.as_object_mut() {
                p.insert(
                    K::NAME.to_string(),
                    json!({ "type": "string", "description": K::DESCRIPTION }),
                );
            }
            let required = object
                .entry("required")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(r) = required.as_array_mut() {
                r.insert(0, Value::String(K::NAME.to_string()));
            }
        }
        schema
    }
}

/// A tool's answer: the view as structured content (and as text, for
/// clients that read only text), or the SE-2 envelope as a tool error.
fn answer<T: Serialize>(result: crate::error::Result<T>) -> CallToolResult {
    match result.and_then(|v| Ok(views::to_json(&v)?)) {
        Ok(value) => CallToolResult::structured(value),
        Err(ApiError(e)) => refused(&e),
    }
}

/// `e` as a tool error carrying its SE-2 code; an internal error is
/// logged and answered without its details, as over HTTP.
fn refused(e: &Error) -> CallToolResult {
    let (_, body) = crate::error::envelope(
        e,
        "internal error in an MCP tool",
        "the server could not complete the call; it has been logged",
    );
    CallToolResult::structured_error(body)
}

/// The caller and the workspace the call acts in, from the HTTP request
/// the call came in.
fn caller(ctx: &RequestContext<RoleServer>) -> crate::error::Result<(Principal, String)> {
    let parts = ctx
        .extensions
        .get::<Parts>()
        .ok_or_else(|| Error::Internal("an MCP call without its HTTP request".into()))?;
    let principal = parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Error::Unauthenticated("no bearer token".into()))?;
    let named = parts
        .headers
        .get("x-warden-workspace")
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| Error::invalid("x-warden-workspace is not ASCII text"))
        })
        .transpose()?;
    let ws = match (&principal.workspace, named) {
        (Some(own), Some(named)) if *own != named => {
            return Err(Error::PermissionDenied(format!(
                "the token belongs to workspace {own}, not {}",
                warden_core::validate::truncate(&named, 64)
            ))
            .into());
        }
        (Some(own), _) => own.clone(),
        (None, Some(named)) => named,
        (None, None) => "default".to_string(),
    };
    crate::check_ws(&ws)?;
    Ok((principal, ws))
}

/// The caller, allowed `role` in its workspace.
fn caller_as(
    ctx: &RequestContext<RoleServer>,
    role: warden_core::auth::Role,
) -> crate::error::Result<(Principal, String)> {
    let (principal, ws) = caller(ctx)?;
    principal.require(&ws, role)?;
    Ok((principal, ws))
}

use warden_core::auth::Role;

#[tool_router]
impl Warden {
    fn new(app: Arc<App>) -> Warden {
        Warden {
            app,
            tool_router: Self::tool_router() + Self::thread_router(),
        }
    }

    /// `POST /v1/workspaces/{ws}/tasks/claim`
    #[tool(
        name = "claim_task_v1",
        description = "Claim task stages to work on in the token's workspace (long-poll with wait_ms, at most 60 s). Answers the claims, each with its task, lease token and expiry, or why there is nothing to claim."
    )]
    async fn claim_task(
        &self,
        Parameters(args): Parameters<Args<NoKey, ClaimBody>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (_, ws) = caller_as(&ctx, Role::Agent)?;
            let (_, body) = args.get()?;
            crate::tasks::claim_in(&self.app, &ws, body).await
        };
        Ok(answer(call.await))
    }

    /// `POST /v1/workspaces/{ws}/tasks/{id}/heartbeat`
    #[tool(
        name = "heartbeat_v1",
        description = "Extend the lease of a claimed stage (token from the claim). Answers the new expiry."
    )]
    async fn heartbeat(
        &self,
        Parameters(args): Parameters<Args<TaskId, TokenBody>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (_, ws) = caller_as(&ctx, Role::Agent)?;
            let (task, body) = args.get()?;
            crate::tasks::heartbeat_in(&self.app, &ws, &task, body).await
        };
        Ok(answer(call.await))
    }

    /// `POST /v1/workspaces/{ws}/tasks/{id}/events`
    #[tool(
        name = "report_event_v1",
        description = "Report progress of a running task: type status, tool_start, tool_result, token, budget, stop_reason, guardrails or log, with its data. Answers the event's sequence number."
    )]
    async fn report_event(
        &self,
        Parameters(args): Parameters<Args<TaskId, EventBody>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (_, ws) = caller_as(&ctx, Role::Agent)?;
            let (task, body) = args.get()?;
            let seq = crate::tasks::report_in(&self.app, &ws, &task, body).await?;
            Ok(views::EventSeq { seq })
        };
        Ok(answer(call.await))
    }

    /// `POST /v1/workspaces/{ws}/tasks/{id}/complete`
    #[tool(
        name = "complete_stage_v1",
        description = "Complete the claimed stage with its output (and the stage result its quality gates judge). The same token again is not an error: completed is false. Answers the task."
    )]
    async fn complete_stage(
        &self,
        Parameters(args): Parameters<Args<TaskId, CompleteBody>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (_, ws) = caller_as(&ctx, Role::Agent)?;
            let (task, body) = args.get()?;
            crate::tasks::complete_in(&self.app, &ws, &task, body).await
        };
        Ok(answer(call.await))
    }

    /// `POST /v1/workspaces/{ws}/tasks/{id}/fail`
    #[tool(
        name = "fail_stage_v1",
        description = "Fail the claimed stage with an error; retryable false sends the task straight to the dead-letter queue. Answers the task."
    )]
    async fn fail_stage(
        &self,
        Parameters(args): Parameters<Args<TaskId, FailBody>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (_, ws) = caller_as(&ctx, Role::Agent)?;
            let (task, body) = args.get()?;
            crate::tasks::fail_in(&self.app, &ws, &task, body).await
        };
        Ok(answer(call.await))
    }

    /// `POST /v1/workspaces/{ws}/playbooks/{name}/runs`
    #[tool(
        name = "run_playbook_v1",
        description = "Run a self-heal playbook in the token's workspace: mode diagnose (default; agents may), plan or apply (operators). Answers the run's id and status at once; read the run over HTTP for its report."
    )]
    async fn run_playbook(
        &self,
        Parameters(args): Parameters<Args<Playbook, TriggerBody>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (principal, ws) = caller(&ctx)?;
            let (playbook, body) = args.get()?;
            let (row, created) =
                crate::runs::trigger_in(&self.app, &principal, &ws, &playbook, body, "mcp").await?;
            Ok(views::RunAccepted::new(&row, created))
        };
        Ok(answer(call.await))
    }
}

#[tool_router(router = thread_router)]
impl Warden {
    /// `POST /v1/workspaces/{ws}/threads`
    #[tool(
        name = "thread_create_v1",
        description = "Create a thread in the token's workspace: a title, an optional task it is about, its first participants (name, kind agent or human, role). Answers the thread with its participants."
    )]
    async fn thread_create(
        &self,
        Parameters(args): Parameters<Args<NoKey, crate::threads::CreateBody>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (principal, ws) = caller_as(&ctx, Role::Agent)?;
            let (_, body) = args.get()?;
            crate::threads::create_in(&self.app, &ws, &principal, body).await
        };
        Ok(answer(call.await))
    }

    /// `POST /v1/workspaces/{ws}/threads/{id}/messages`
    #[tool(
        name = "thread_post_v1",
        description = "Post a message to a thread as the token's participant: schema_version 1, a kind (message, finding, decision, status), a JSON body, recipients (absent: everyone), an idempotency_key so that a retry returns the first message. Answers the message with its seq."
    )]
    async fn thread_post(
        &self,
        Parameters(args): Parameters<Args<ThreadId, crate::threads::PostBody>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (principal, ws) = caller_as(&ctx, Role::Agent)?;
            let (thread, body) = args.get()?;
            let posted =
                crate::threads::post_in(&self.app, &ws, &thread, &principal, body, None).await?;
            Ok(views::Message::from(&posted.message))
        };
        Ok(answer(call.await))
    }

    /// `GET /v1/workspaces/{ws}/threads/{id}/messages`
    #[tool(
        name = "thread_read_v1",
        description = "Read a thread's messages after a seq, as a participant (`for`; an agent reads as itself): answers at once when there are newer ones, else waits up to `wait` (e.g. 30s, at most 30 s) for one. Moves the reader's cursor."
    )]
    async fn thread_read(
        &self,
        Parameters(args): Parameters<Args<ThreadId, crate::threads::ReadQuery>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (principal, ws) = caller_as(&ctx, Role::Viewer)?;
            let (thread, query) = args.get()?;
            crate::threads::read_in(&self.app, &ws, &thread, &principal, query).await
        };
        Ok(answer(call.await))
    }

    /// `GET /v1/workspaces/{ws}/threads`
    #[tool(
        name = "thread_list_v1",
        description = "List the workspace's threads, newest activity first: optionally by state (active, blocked, closed) or by task."
    )]
    async fn thread_list(
        &self,
        Parameters(args): Parameters<Args<NoKey, crate::threads::ListQuery>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (_, ws) = caller_as(&ctx, Role::Viewer)?;
            let (_, query) = args.get()?;
            crate::threads::list_in(&self.app, &ws, query).await
        };
        Ok(answer(call.await))
    }

    /// `GET /v1/workspaces/{ws}/threads/{id}`
    #[tool(
        name = "thread_status_v1",
        description = "A thread's state, participants, their read cursors and unread counts."
    )]
    async fn thread_status(
        &self,
        Parameters(args): Parameters<Args<ThreadId, Nothing>>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let call = async {
            let (_, ws) = caller_as(&ctx, Role::Viewer)?;
            let (thread, _) = args.get()?;
            let detail = self.app.threads.get(&ws, &thread).await?;
            Ok(views::ThreadDetail::from(&detail))
        };
        Ok(answer(call.await))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Warden {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("warden", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Warden's worker protocol: claim a task stage, heartbeat it, report events, complete or fail it; run a playbook. The bearer token's workspace is the one acted in.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn args<K: Key, T: DeserializeOwned>(v: Value) -> crate::error::Result<(String, T)> {
        serde_json::from_value::<Args<K, T>>(v).unwrap().get()
    }

    fn message<T>(r: crate::error::Result<T>) -> String {
        match r {
            Ok(_) => panic!("accepted"),
            Err(ApiError(e)) => {
                assert_eq!(Code::of(&e), Code::InvalidArgument, "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn arguments_are_the_http_body_with_the_path_parameter_beside() {
        let (task, body) =
            args::<TaskId, TokenBody>(json!({ "task_id": "t-1", "token": 3 })).unwrap();
        assert_eq!(task, "t-1");
        assert_eq!(body.token, 3);
        let (key, body) = args::<NoKey, ClaimBody>(json!({ "worker_id": "w" })).unwrap();
        assert_eq!((key.as_str(), body.worker_id.as_str()), ("", "w"));
    }

    #[test]
    fn bad_arguments_are_invalid_argument_naming_what_is_wrong() {
        let m = message(args::<TaskId, TokenBody>(
            json!({ "task_id": "t", "token": 3, "bogus": 1 }),
        ));
        assert!(m.contains("bogus"), "{m}");
        let m = message(args::<TaskId, TokenBody>(json!({ "token": 3 })));
        assert!(m.contains("task_id"), "{m}");
        let m = message(args::<TaskId, TokenBody>(
            json!({ "task_id": 7, "token": 3 }),
        ));
        assert!(m.contains("task_id must be a string"), "{m}");
        let m = message(args::<NoKey, ClaimBody>(json!([1, 2])));
        assert!(m.contains("JSON object"), "{m}");
        // The body's own checks hold: a missing field.
        let m = message(args::<TaskId, TokenBody>(json!({ "task_id": "t" })));
        assert!(m.contains("token"), "{m}");
    }

    #[test]
    fn the_input_schema_is_the_bodys_with_the_path_parameter_required() {
        let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        let schema = generator.into_root_schema_for::<Args<TaskId, FailBody>>();
        let v = serde_json::to_value(schema).unwrap();
        assert_eq!(v["type"], "object", "{v}");
        assert_eq!(v["properties"]["task_id"]["type"], "string", "{v}");
        assert!(v["properties"]["error"].is_object(), "{v}");
        assert_eq!(v["required"], json!(["task_id", "token", "error"]), "{v}");
        assert_eq!(v["additionalProperties"], false, "{v}");
    }
}
