//! The OpenAI routes: `POST /v1/chat/completions`, `GET /v1/models` and
//! `GET /v1/models/{model}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures::StreamExt as _;
use serde::Serialize;
use serde_json::Value;

use crate::Behavior;
use crate::conn::{Conn, ConnRef};
use crate::handle::{ChunkTiming, Recorded, Shared, StreamLog, lock, unix_nanos};

/// The chat completions path.
pub(crate) const CHAT: &str = "/v1/chat/completions";
/// The model list path.
const MODELS: &str = "/v1/models";
/// The path of one model, as counted and recorded.
const MODEL: &str = "/v1/models/{model}";
/// Request bodies up to this size are accepted (axum's default, 2 MiB, is
/// small for long prompts).
const BODY_LIMIT: usize = 64 << 20;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(CHAT, post(chat))
        .route(MODELS, get(models))
        .route(MODEL, get(model))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// The number of prompt tokens the stand-in reports for `messages`: the
/// characters (Unicode scalar values) of every message's `content`, summed
/// over all messages, divided by 4 and rounded up. A `content` given as an
/// array of parts counts the `text` of each part; other fields (`role`,
/// `name`, tool calls) and non-text parts count nothing.
///
/// `[{"role": "user", "content": "Say hello to the gateway test."}]` is 29
/// characters, so 8 tokens.
pub fn prompt_tokens(messages: &[Value]) -> u64 {
    let mut chars = 0u64;
    for m in messages {
        match m.get("content") {
            Some(Value::String(s)) => chars += s.chars().count() as u64,
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        chars += t.chars().count() as u64;
                    }
                }
            }
            _ => {}
        }
    }
    chars.div_ceil(4)
}

/// The content of a reply of `words` words by the upstream named `name`:
/// `<name>-0 <name>-1 ... <name>-<words - 1>`; empty for 0 words. A stream
/// sends word `i` as content chunk `i + 1`, with the separating space in
/// front of every word but the first.
pub fn reply_content(name: &str, words: u64) -> String {
    let mut out = String::with_capacity((name.len() + 4) * words as usize);
    for i in 0..words {
        push_word(&mut out, name, i);
    }
    out
}

/// Appends word `i` to `out`, with a space in front unless it is the first.
fn push_word(out: &mut String, name: &str, i: u64) {
    use std::fmt::Write as _;
    if i > 0 {
        out.push(' ');
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{name}-{i}");
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An OpenAI-shaped error:
/// `{"error": {"message", "type", "param", "code"}}`, with the `type`
/// OpenAI uses for `status`.
pub(crate) fn error(
    status: StatusCode,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    #[derive(Serialize)]
    struct Detail<'a> {
        message: &'a str,
        r#type: &'a str,
        param: Option<&'a str>,
        code: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        error: Detail<'a>,
    }
    let r#type = match status.as_u16() {
        403 => "permission_error",
        429 => "requests",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    let body = Body {
        error: Detail {
            message,
            r#type,
            param,
            code,
        },
    };
    (status, axum::Json(body)).into_response()
}

/// The answer of an upstream failing on purpose with `status`.
fn failure(name: &str, status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limit_exceeded"
    } else {
        "injected_failure"
    };
    let message = format!("{name} is failing on purpose with {}", status.as_u16());
    error(status, &message, None, Some(code))
}

/// A `200` response whose body breaks off at once, after its first bytes
/// (`{"id":`). Both parts are ready together, so hyper meets the error
/// before it flushes anything and aborts the connection: the client sees it
/// close without a response ([`Behavior::BreakBody`]).
fn broken_body() -> Response {
    let broken = futures::stream::iter([
        Ok(Bytes::from_static(b"{\"id\":")),
        Err(std::io::Error::other("broken off on purpose")),
    ]);
    json_body(Body::from_stream(broken))
}

/// A `200` response whose headers and first bytes (`{"id":`) reach the
/// client before the connection breaks off (a plain reply under
/// [`Behavior::BreakStream`]).
fn broken_after_headers() -> Response {
    let start = futures::stream::once(async { Ok(Bytes::from_static(b"{\"id\":")) });
    let end = futures::stream::once(async {
        flush_first().await;
        Err(std::io::Error::other("broken off on purpose"))
    });
    json_body(Body::from_stream(start.chain(end)))
}

fn json_body(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Lets hyper write what the body gave it so far: a body that is not ready
/// makes hyper flush its buffer before it polls the body again.
async fn flush_first() {
    tokio::task::yield_now().await;
}

/// A redirect to `location` ([`Behavior::Redirect`]).
fn redirect(status: u16, location: &str) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(StatusCode::is_redirection)
        .unwrap_or(StatusCode::TEMPORARY_REDIRECT);
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A plain reply whose headers and first bytes (`{"id":`) reach the
/// client, then nothing more while the connection stays open
/// ([`Behavior::StallStream`]).
fn stalled_after_headers() -> Response {
    let start =
        futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{\"id\":")) });
    let end = futures::stream::once(async { match forever().await {} });
    json_body(Body::from_stream(start.chain(end)))
}

/// A `200` body of `bytes` bytes, generated 64 KiB at a time as the
/// client reads it ([`Behavior::HugeBody`]): a JSON object padded with
/// `x`, or for a stream one `data:` line that never ends.
fn huge(bytes: u64, stream: bool) -> Response {
    const PIECE: usize = 64 << 10;
    let head: &'static [u8] = if stream {
        b"data: {\"pad\":\""
    } else {
        b"{\"id\":\"huge\",\"pad\":\""
    };
    let pieces = futures::stream::unfold(0u64, move |sent| async move {
        if sent >= bytes {
            return None;
        }
        let mut piece = Vec::with_capacity(PIECE);
        if sent == 0 {
            piece.extend_from_slice(head);
        }
        let left = usize::try_from(bytes - sent).unwrap_or(usize::MAX);
        let fill = PIECE
            .saturating_sub(piece.len())
            .min(left.saturating_sub(piece.len()));
        piece.resize(piece.len() + fill, b'x');
        let len = piece.len() as u64;
        Some((
            Ok::<_, std::io::Error>(Bytes::from(piece)),
            sent + len.max(1),
        ))
    });
    let mut r = Response::new(Body::from_stream(pieces));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if stream {
            "text/event-stream"
        } else {
            "application/json"
        }),
    );
    r
}

/// Waits forever (`match forever().await {}`): the request is dropped with
/// its connection.
async fn forever() -> Infallible {
    std::future::pending().await
}

/// How a request that got past the behaviour and the API key goes on.
enum Go {
    Normally,
    /// A stream breaks off after this many events.
    BreakStreamAfter(u32),
    /// A stream goes silent after this many events.
    StallStreamAfter(u32),
    /// A stream sends an error event after this many events.
    ErrorChunkAfter(u32),
    /// The reply is this many bytes of padding.
    Huge(u64),
    /// The reply carries this `usage`.
    Usage(Value),
}

/// Applies `behavior`, then checks the API key: `Err` is the answer when
/// the request goes no further. Hangs and dropped connections never return.
async fn admit(
    s: &Shared,
    behavior: Behavior,
    conn: Option<&ConnRef>,
    headers: &HeaderMap,
) -> Result<Go, Response> {
    let mut go = Go::Normally;
    match behavior {
        Behavior::Healthy | Behavior::FailNext { .. } => {}
        Behavior::Fail { status } => return Err(failure(&s.name, status)),
        Behavior::Slow { delay_ms } => tokio::time::sleep(Duration::from_millis(delay_ms)).await,
        Behavior::Hang => match forever().await {},
        Behavior::DropConnection => {
            s.dropped();
            if let Some(conn) = conn {
                conn.0.drop_connection();
            }
            match forever().await {}
        }
        Behavior::BreakBody => return Err(broken_body()),
        Behavior::BreakStream { after } => go = Go::BreakStreamAfter(after),
        Behavior::StallStream { after } => go = Go::StallStreamAfter(after),
        Behavior::ErrorChunk { after } => go = Go::ErrorChunkAfter(after),
        Behavior::Redirect { status, location } => return Err(redirect(status, &location)),
        Behavior::HugeBody { bytes } => go = Go::Huge(bytes),
        Behavior::Usage { usage } => go = Go::Usage(usage),
    }
    if let Some(key) = &s.api_key {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match given {
            None => {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    None,
                    Some("invalid_api_key"),
                ));
            }
            Some(given) if given.strip_prefix("Bearer ") != Some(key.as_str()) => {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "Incorrect API key provided.",
                    None,
                    Some("invalid_api_key"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(go)
}

/// The record of a request, built only when recording.
fn record(path: &str, model: Option<&str>, headers: &HeaderMap, body: Value) -> Recorded {
    Recorded {
        path: path.to_string(),
        model: model.map(str::to_string),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    }
}

async fn chat(
    State(s): State<Arc<Shared>>,
    conn: Option<Extension<ConnRef>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed: Option<Value> = body
        .as_ref()
        .ok()
        .and_then(|b| serde_json::from_slice(b).ok());
    let model = parsed
        .as_ref()
        .and_then(|v| v.get("model"))
        .and_then(Value::as_str);
    s.received(CHAT, model, || {
        record(CHAT, model, &headers, parsed.clone().unwrap_or_default())
    });
    let r = answer_chat(&s, conn.as_deref(), &headers, body, parsed.as_ref()).await;
    s.answered(r.status().as_u16());
    r
}

async fn answer_chat(
    s: &Shared,
    conn: Option<&ConnRef>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    parsed: Option<&Value>,
) -> Response {
    let (behavior, chunks, chunk_delay_ms) = s.take_behavior();
    let go = match admit(s, behavior, conn, headers).await {
        Ok(go) => go,
        Err(r) => return r,
    };
    if let Err(rejection) = body {
        return error(rejection.status(), &rejection.body_text(), None, None);
    }
    let Some(request) = parsed.and_then(Value::as_object) else {
        return error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request: the API expects a JSON object.",
            None,
            None,
        );
    };
    let Some(model) = request
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
            Some("model"),
            None,
        );
    };
    let messages = match request.get("messages") {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            );
        }
        Some(Value::Array(m)) if m.is_empty() => {
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                Some("messages"),
                Some("empty_array"),
            );
        }
        Some(Value::Array(m)) => m,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid type for 'messages': expected an array of objects.",
                Some("messages"),
                Some("invalid_type"),
            );
        }
    };
    let cap = ["max_completion_tokens", "max_tokens"]
        .iter()
        .filter_map(|k| request.get(*k).and_then(Value::as_u64))
        .min();
    let words = cap.map_or(u64::from(chunks), |cap| u64::from(chunks).min(cap));
    let reply = Reply {
        id: format!("chatcmpl-{}-{}", s.name, s.next_id()),
        created: now_secs(),
        model,
        name: &s.name,
        words,
        finish_reason: if words < u64::from(chunks) {
            "length"
        } else {
            "stop"
        },
        usage: match &go {
            Go::Usage(usage) => usage.clone(),
            _ => {
                serde_json::to_value(Usage::new(prompt_tokens(messages), words)).unwrap_or_default()
            }
        },
    };
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !stream {
        return match go {
            Go::Normally | Go::ErrorChunkAfter(_) | Go::Usage(_) => reply.completion(),
            Go::BreakStreamAfter(_) => broken_after_headers(),
            Go::StallStreamAfter(_) => stalled_after_headers(),
            Go::Huge(bytes) => huge(bytes, false),
        };
    }
    let include_usage = matches!(go, Go::Usage(_))
        || request
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let end = match go {
        Go::Normally | Go::Usage(_) => End::Complete,
        Go::BreakStreamAfter(n) => End::Break(n as usize),
        Go::StallStreamAfter(n) => End::Stall(n as usize),
        Go::ErrorChunkAfter(n) => End::Error(n as usize),
        Go::Huge(bytes) => return huge(bytes, true),
    };
    let events = reply.events(include_usage);
    let log = s.stream_started();
    let conn = conn.map(|c| c.0.clone());
    sse(
        events,
        Duration::from_millis(chunk_delay_ms),
        end,
        conn,
        log,
        &s.name,
    )
}

/// `usage` of a reply.
#[derive(Clone, Copy, Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl Usage {
    fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// Everything a reply is made of, plain or streamed.
struct Reply<'a> {
    id: String,
    created: u64,
    model: &'a str,
    name: &'a str,
    words: u64,
    finish_reason: &'static str,
    usage: Value,
}

impl Reply<'_> {
    /// The `chat.completion` object.
    fn completion(&self) -> Response {
        #[derive(Serialize)]
        struct Message<'a> {
            role: &'a str,
            content: String,
            refusal: Option<()>,
        }
        #[derive(Serialize)]
        struct Choice<'a> {
            index: u32,
            message: Message<'a>,
            logprobs: Option<()>,
            finish_reason: &'a str,
        }
        #[derive(Serialize)]
        struct Completion<'a> {
            id: &'a str,
            object: &'a str,
            created: u64,
            model: &'a str,
            choices: [Choice<'a>; 1],
            usage: &'a Value,
        }
        axum::Json(Completion {
            id: &self.id,
            object: "chat.completion",
            created: self.created,
            model: self.model,
            choices: [Choice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content: reply_content(self.name, self.words),
                    refusal: None,
                },
                logprobs: None,
                finish_reason: self.finish_reason,
            }],
            usage: &self.usage,
        })
        .into_response()
    }

    /// The SSE events of the stream, as OpenAI sends them: the role chunk,
    /// one chunk per word, the chunk with `finish_reason`, with
    /// `include_usage` a chunk with `choices: []` and `usage` (every other
    /// chunk then has `"usage": null`), and `data: [DONE]`.
    fn events(&self, include_usage: bool) -> Vec<Bytes> {
        #[derive(Serialize)]
        struct Delta<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            role: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            content: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Choice<'a> {
            index: u32,
            delta: Delta<'a>,
            logprobs: Option<()>,
            finish_reason: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Chunk<'a> {
            id: &'a str,
            object: &'a str,
            created: u64,
            model: &'a str,
            choices: Vec<Choice<'a>>,
            // Absent without include_usage; `null`, then the usage, with it.
            #[serde(skip_serializing_if = "Option::is_none")]
            usage: Option<Option<&'a Value>>,
        }
        let chunk = |delta: Delta<'_>, finish_reason: Option<&str>| {
            event(&Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: self.model,
                choices: vec![Choice {
                    index: 0,
                    delta,
                    logprobs: None,
                    finish_reason,
                }],
                usage: include_usage.then_some(None),
            })
        };
        let mut events = Vec::with_capacity(self.words as usize + 4);
        events.push(chunk(
            Delta {
                role: Some("assistant"),
                content: Some(""),
            },
            None,
        ));
        let mut word = String::new();
        for i in 0..self.words {
            word.clear();
            push_word(&mut word, self.name, i);
            events.push(chunk(
                Delta {
                    role: None,
                    content: Some(&word),
                },
                None,
            ));
        }
        events.push(chunk(
            Delta {
                role: None,
                content: None,
            },
            Some(self.finish_reason),
        ));
        if include_usage {
            events.push(event(&Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: self.model,
                choices: Vec::new(),
                usage: Some(Some(&self.usage)),
            }));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }
}

/// The error event OpenAI sends when a model fails mid-stream.
fn error_event(name: &str) -> Bytes {
    let message = format!("{name} failed mid-stream on purpose");
    event(&serde_json::json!({
        "error": { "message": message, "type": "server_error", "param": null, "code": "injected_failure" }
    }))
}

/// `data: <json>\n\n`.
fn event(chunk: &impl Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(320);
    buf.extend_from_slice(b"data: ");
    // Serializing these structs to a Vec cannot fail (no maps with
    // non-string keys, no I/O).
    let _ = serde_json::to_writer(&mut buf, chunk);
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// How a stream ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// With `[DONE]`.
    Complete,
    /// The connection breaks off after this many events.
    Break(usize),
    /// Silence, with the connection open, after this many events.
    Stall(usize),
    /// An error event after this many events, then the end.
    Error(usize),
}

/// Where a stream body is.
struct Sending {
    events: std::vec::IntoIter<Bytes>,
    next: usize,
    delay: Duration,
    end: End,
    conn: Option<Arc<Conn>>,
    log: Arc<StreamLog>,
    name: String,
}

/// The `text/event-stream` response sending `events`, `delay` apart, each
/// handed to hyper as soon as it is due (hyper flushes when the body has
/// nothing more to give).
fn sse(
    events: Vec<Bytes>,
    delay: Duration,
    end: End,
    conn: Option<Arc<Conn>>,
    log: Arc<StreamLog>,
    name: &str,
) -> Response {
    let state = Sending {
        events: events.into_iter(),
        next: 0,
        delay,
        end,
        conn,
        log,
        name: name.to_string(),
    };
    let body = futures::stream::unfold(state, |mut st| async move {
        let mut event = st.events.next()?;
        if st.next > 0 && !st.delay.is_zero() {
            tokio::time::sleep(st.delay).await;
        }
        match st.end {
            End::Break(n) if n == st.next => {
                // The events before reach the client, then hyper aborts
                // the connection on the error; nothing comes after it.
                st.events = Vec::new().into_iter();
                flush_first().await;
                return Some((Err(std::io::Error::other("broken off on purpose")), st));
            }
            End::Stall(n) if n == st.next => {
                // The events before reach the client; the connection
                // stays open and silent until the client goes away.
                flush_first().await;
                match forever().await {}
            }
            End::Error(n) if n == st.next => {
                st.events = Vec::new().into_iter();
                event = error_event(&st.name);
            }
            _ => {}
        }
        let index = st.next;
        st.next += 1;
        match &st.conn {
            Some(conn) => conn.handed_over(index, st.log.clone()),
            // Not served by `conn::serve` (never the case today): stamp at
            // hand-over, which is a little early.
            None => lock(&st.log).push(ChunkTiming {
                index,
                at: std::time::Instant::now(),
                unix_nanos: unix_nanos(),
            }),
        }
        Some((Ok(event), st))
    });
    let mut r = Response::new(Body::from_stream(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'a str,
    created: u64,
    owned_by: &'a str,
}

fn model_object<'a>(s: &'a Shared, id: &'a str) -> ModelObject<'a> {
    ModelObject {
        id,
        object: "model",
        created: 0,
        owned_by: &s.name,
    }
}

async fn models(
    State(s): State<Arc<Shared>>,
    conn: Option<Extension<ConnRef>>,
    headers: HeaderMap,
) -> Response {
    s.received(MODELS, None, || record(MODELS, None, &headers, Value::Null));
    let r = answer_models(&s, conn.as_deref(), &headers).await;
    s.answered(r.status().as_u16());
    r
}

async fn answer_models(s: &Shared, conn: Option<&ConnRef>, headers: &HeaderMap) -> Response {
    #[derive(Serialize)]
    struct List<'a> {
        object: &'a str,
        data: Vec<ModelObject<'a>>,
    }
    let (behavior, _, _) = s.take_behavior();
    if let Err(r) = admit(s, behavior, conn, headers).await {
        return r;
    }
    let data = s.models.iter().map(|m| model_object(s, m)).collect();
    axum::Json(List {
        object: "list",
        data,
    })
    .into_response()
}

async fn model(
    State(s): State<Arc<Shared>>,
    conn: Option<Extension<ConnRef>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.received(MODEL, None, || {
        record(&format!("/v1/models/{id}"), None, &headers, Value::Null)
    });
    let r = answer_model(&s, conn.as_deref(), &id, &headers).await;
    s.answered(r.status().as_u16());
    r
}

async fn answer_model(
    s: &Shared,
    conn: Option<&ConnRef>,
    id: &str,
    headers: &HeaderMap,
) -> Response {
    let (behavior, _, _) = s.take_behavior();
    if let Err(r) = admit(s, behavior, conn, headers).await {
        return r;
    }
    match s.models.iter().find(|m| *m == id) {
        Some(m) => axum::Json(model_object(s, m)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("The model `{id}` does not exist or you do not have access to it."),
            Some("model"),
            Some("model_not_found"),
        ),
    }
}

/// Any other route, as OpenAI answers it.
async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({method} {})", uri.path()),
        None,
        None,
    )
}
