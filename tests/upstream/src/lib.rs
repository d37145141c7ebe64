//! A local stand-in for an OpenAI-compatible model provider: the remote
//! party of the gateway's tests and benches (README.md says how to drive
//! it).
//!
//! It answers `POST /v1/chat/completions` (plain, or streamed as OpenAI
//! streams, with the usage chunk when `stream_options.include_usage` asks)
//! and `GET /v1/models`, and can be told, at run time, to fail, to be slow,
//! to hang or to break its responses off: through its [`Handle`] in the same
//! process, or `POST /_control` from another one.
//!
//! Token counts are deterministic: `prompt_tokens` is the characters of
//! every message's content divided by 4, rounded up; `completion_tokens` is
//! the number of content chunks, one word each ([`Options::chunks`], at
//! most the request's `max_tokens`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How the upstream answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Behavior {
    /// Answers every request.
    Healthy,
    /// Answers every request with `status` and an OpenAI-shaped error.
    Fail {
        /// e.g. 500, 503, 429.
        status: u16,
    },
    /// The next `count` requests fail with `status`, then healthy.
    FailNext {
        /// How many.
        count: u32,
        /// e.g. 500.
        status: u16,
    },
    /// Waits `delay_ms` before the response headers.
    Slow {
        /// Milliseconds.
        delay_ms: u64,
    },
    /// Never answers.
    Hang,
    /// Breaks the connection off (before or just after the headers).
    BreakBody,
}

/// Settings at start.
#[derive(Clone, Debug)]
pub struct Options {
    /// Names the upstream in its replies (`reply from <name>`).
    pub name: String,
    /// Served by `/v1/models`; requests for other models are still
    /// answered.
    pub models: Vec<String>,
    /// When set, `Authorization: Bearer <key>` is required.
    pub api_key: Option<String>,
    /// Content chunks (words) per reply.
    pub chunks: u32,
    /// Delay between two stream chunks.
    pub chunk_delay_ms: u64,
    /// Keep every request for [`Handle::requests`] (benches turn it off).
    pub record: bool,
    /// Port on 127.0.0.1 (0: any free one).
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: "stand-in".to_string(),
            models: vec!["stand-in-small".to_string()],
            api_key: None,
            chunks: 5,
            chunk_delay_ms: 0,
            record: true,
            port: 0,
        }
    }
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `/v1/chat/completions` or `/v1/models`.
    pub path: String,
    /// The `model` asked for.
    pub model: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The parsed body (`null` for GET).
    pub body: Value,
}

/// When one stream chunk was handed to the connection.
#[derive(Clone, Copy, Debug)]
pub struct ChunkTiming {
    /// Its index (0: the role chunk).
    pub index: usize,
    /// When, in this process.
    pub at: Instant,
    /// When, in nanoseconds since the epoch (for other processes).
    pub unix_nanos: u128,
}

struct Control {
    behavior: Behavior,
    chunks: u32,
    chunk_delay_ms: u64,
}

struct Shared {
    name: String,
    models: Vec<String>,
    api_key: Option<String>,
    record: bool,
    control: Mutex<Control>,
    requests: Mutex<Vec<Recorded>>,
    count: AtomicU64,
    timings: Mutex<Vec<ChunkTiming>>,
}

impl Shared {
    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Drives a running upstream from the same process.
#[derive(Clone)]
pub struct Handle(Arc<Shared>);

impl Handle {
    /// Changes how it answers from the next request on.
    pub fn set(&self, behavior: Behavior) {
        self.0.control().behavior = behavior;
    }

    /// Changes the stream's chunk count and pacing.
    pub fn set_stream(&self, chunks: u32, chunk_delay_ms: u64) {
        let mut c = self.0.control();
        c.chunks = chunks;
        c.chunk_delay_ms = chunk_delay_ms;
    }

    /// Requests received so far (recorded ones only; see
    /// [`Options::record`]).
    pub fn requests(&self) -> Vec<Recorded> {
        self.0
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Chat completion requests received, recorded or not.
    pub fn request_count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    /// Forgets the requests and timings so far.
    pub fn clear(&self) {
        self.0
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.0
            .timings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.0.count.store(0, Ordering::Relaxed);
    }

    /// When each chunk of the last streamed reply was sent.
    pub fn last_stream_timings(&self) -> Vec<ChunkTiming> {
        self.0
            .timings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A running upstream.
pub struct Upstream {
    addr: SocketAddr,
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Binds 127.0.0.1 and serves in a task of the current runtime.
    pub async fn start(options: Options) -> std::io::Result<Upstream> {
        let shared = Arc::new(Shared {
            name: options.name,
            models: options.models,
            api_key: options.api_key,
            record: options.record,
            control: Mutex::new(Control {
                behavior: Behavior::Healthy,
                chunks: options.chunks,
                chunk_delay_ms: options.chunk_delay_ms,
            }),
            requests: Mutex::default(),
            count: AtomicU64::new(0),
            timings: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/_control", post(control))
            .route("/_stats", get(stats))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Upstream {
            addr,
            handle: Handle(shared),
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/v1`, what a client's base URL is.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The control handle.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops serving.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An OpenAI-shaped error.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": kind, "code": status.as_u16() } });
    (status, axum::Json(body)).into_response()
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Characters of every message's content / 4, rounded up.
pub fn prompt_tokens(messages: &[Value]) -> u64 {
    let mut chars = 0usize;
    for m in messages {
        match m.get("content") {
            Some(Value::String(s)) => chars += s.chars().count(),
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        chars += t.chars().count();
                    }
                }
            }
            _ => {}
        }
    }
    (chars as u64).div_ceil(4)
}

async fn chat(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    s.count.fetch_add(1, Ordering::Relaxed);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = parsed
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    if s.record {
        s.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Recorded {
                path: "/v1/chat/completions".to_string(),
                model: model.clone(),
                authorization: authorization.clone(),
                body: parsed.clone(),
            });
    }
    if let Some(key) = &s.api_key
        && authorization.as_deref() != Some(&format!("Bearer {key}"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Incorrect API key provided",
        );
    }
    let (behavior, chunks, delay) = {
        let mut c = s.control();
        let b = c.behavior.clone();
        if let Behavior::FailNext { count, status } = b {
            c.behavior = if count > 1 {
                Behavior::FailNext {
                    count: count - 1,
                    status,
                }
            } else {
                Behavior::Healthy
            };
            (Behavior::Fail { status }, c.chunks, c.chunk_delay_ms)
        } else {
            (b, c.chunks, c.chunk_delay_ms)
        }
    };
    match behavior {
        Behavior::Fail { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(
                status,
                "server_error",
                &format!("{} is failing on purpose", s.name),
            );
        }
        Behavior::Slow { delay_ms } => tokio::time::sleep(Duration::from_millis(delay_ms)).await,
        Behavior::Hang => {
            std::future::pending::<()>().await;
        }
        Behavior::BreakBody => {
            let broken = futures::stream::iter([
                Ok(Bytes::from_static(b"{\"id\":")),
                Err(std::io::Error::other("broken on purpose")),
            ]);
            return Response::new(Body::from_stream(broken));
        }
        Behavior::Healthy | Behavior::FailNext { .. } => {}
    }
    let Some(model) = model.filter(|m| !m.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "you must provide a model parameter",
        );
    };
    let Some(messages) = parsed
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages must be a non-empty array",
        );
    };
    let prompt = prompt_tokens(messages);
    let cap = ["max_completion_tokens", "max_tokens"]
        .iter()
        .filter_map(|k| parsed.get(*k).and_then(Value::as_u64))
        .min()
        .unwrap_or(u64::MAX);
    let words = u64::from(chunks).min(cap);
    let id = format!("chatcmpl-{}", s.count.load(Ordering::Relaxed));
    let stream = parsed
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !stream {
        let content: Vec<String> = (0..words).map(|i| word(&s.name, i)).collect();
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": now_secs(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": content.join(" ") },
                "finish_reason": "stop",
            }],
            "usage": { "prompt_tokens": prompt, "completion_tokens": words, "total_tokens": prompt + words },
        });
        return axum::Json(body).into_response();
    }
    let include_usage = parsed
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    s.timings.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let events = sse_events(&id, &model, &s.name, words, prompt, include_usage);
    let delay = Duration::from_millis(delay);
    let shared = s.clone();
    let body = futures::stream::unfold(
        (events.into_iter().enumerate(), shared),
        move |(mut it, shared)| async move {
            let (index, event) = it.next()?;
            // The role chunk goes at once; each later chunk after the delay.
            if index > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            shared
                .timings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(ChunkTiming {
                    index,
                    at: Instant::now(),
                    unix_nanos: unix_nanos(),
                });
            Some((Ok::<Bytes, std::io::Error>(event), (it, shared)))
        },
    );
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    r
}

/// The `i`-th word of a reply.
fn word(name: &str, i: u64) -> String {
    format!("{name}-{i}")
}

/// Every event of a streamed reply, as OpenAI sends them.
fn sse_events(
    id: &str,
    model: &str,
    name: &str,
    words: u64,
    prompt: u64,
    usage: bool,
) -> Vec<Bytes> {
    let created = now_secs();
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let mut out = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    for i in 0..words {
        let sep = if i == 0 { "" } else { " " };
        out.push(chunk(
            json!({ "content": format!("{sep}{}", word(name, i)) }),
            Value::Null,
        ));
    }
    out.push(chunk(json!({}), json!("stop")));
    if usage {
        out.push(json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [],
            "usage": { "prompt_tokens": prompt, "completion_tokens": words, "total_tokens": prompt + words },
        }));
    }
    let mut events: Vec<Bytes> = out
        .into_iter()
        .map(|v| Bytes::from(format!("data: {v}\n\n")))
        .collect();
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

async fn models(State(s): State<Arc<Shared>>) -> Response {
    let data: Vec<Value> = s
        .models
        .iter()
        .map(|m| json!({ "id": m, "object": "model", "created": 0, "owned_by": s.name }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

/// `POST /_control`: `{"behavior": {"mode": "fail", "status": 500}, "chunks": 5, "chunk_delay_ms": 0, "clear": true}`,
/// every key optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    behavior: Option<Behavior>,
    chunks: Option<u32>,
    chunk_delay_ms: Option<u64>,
    #[serde(default)]
    clear: bool,
}

async fn control(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: ControlBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("bad control body: {e}"),
            );
        }
    };
    let handle = Handle(s.clone());
    if body.clear {
        handle.clear();
    }
    {
        let mut c = s.control();
        if let Some(b) = body.behavior {
            c.behavior = b;
        }
        if let Some(n) = body.chunks {
            c.chunks = n;
        }
        if let Some(d) = body.chunk_delay_ms {
            c.chunk_delay_ms = d;
        }
    }
    stats(State(s)).await
}

/// `GET /_stats`: the behaviour and the requests received, per model.
async fn stats(State(s): State<Arc<Shared>>) -> Response {
    let mut by_model: BTreeMap<String, u64> = BTreeMap::new();
    for r in s.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        *by_model
            .entry(r.model.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let c = s.control();
    axum::Json(json!({
        "name": s.name,
        "behavior": c.behavior,
        "chunks": c.chunks,
        "chunk_delay_ms": c.chunk_delay_ms,
        "requests": s.count.load(Ordering::Relaxed),
        "by_model": by_model,
    }))
    .into_response()
}
