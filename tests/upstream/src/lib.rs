//! A local stand-in for an OpenAI-compatible model provider: the remote
//! party of the gateway's tests and benches, and of the Python `openai`
//! client test. Never used in production.
//!
//! It answers `POST /v1/chat/completions` (plain, or streamed as OpenAI
//! streams, with the usage chunk when `stream_options.include_usage` asks)
//! and `GET /v1/models`, records what it received, and can be told at run
//! time to fail, to be slow, to hang or to drop the connection: through its
//! [`Handle`] in the same process, or `POST /_control` from another one
//! (README.md lists the control API).
//!
//! Replies are deterministic so that tests can predict them:
//!
//! - the content is [`Options::chunks`] words `<name>-0 <name>-1 ...`
//!   ([`reply_content`]), at most the request's `max_tokens` /
//!   `max_completion_tokens` of them;
//! - `prompt_tokens` is the number of characters of every message's
//!   content, divided by 4 and rounded up ([`prompt_tokens`]);
//! - `completion_tokens` is the number of words.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use warden_test_upstream::{Behavior, Options, Upstream};
//!
//! let upstream = Upstream::start(Options {
//!     name: "primary".to_string(),
//!     models: vec!["model-a".to_string()],
//!     api_key: Some("primary-key".to_string()),
//!     ..Options::default()
//! })
//! .await?;
//! // Point the client under test at `upstream.base_url()`, then:
//! upstream.handle().set(Behavior::Fail { status: 503 });
//! assert_eq!(upstream.handle().request_count(), 0);
//! upstream.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod conn;
mod control;
mod error;
mod handle;
mod openai;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use control::ControlRequest;
pub use error::{Error, Result};
pub use handle::{ChunkTiming, Handle, Recorded, Stats};
pub use openai::{prompt_tokens, reply_content};

/// How the upstream answers its OpenAI routes (`/v1/...`); the control
/// routes (`/_...`) always answer.
///
/// A behaviour applies to every request before the API key is checked and
/// the body validated, as an outage would. In JSON (`POST /_control`) it is
/// tagged by `mode`: `{"mode": "fail", "status": 503}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Behavior {
    /// Answers every request normally (`{"mode": "healthy"}`).
    #[default]
    Healthy,
    /// Answers every request with `status` and an OpenAI-shaped error body
    /// (`{"mode": "fail", "status": 503}`).
    Fail {
        /// The status answered, 400 to 599 (anything else is answered as
        /// 500).
        status: u16,
    },
    /// The next `count` requests fail as with [`Behavior::Fail`], then the
    /// upstream is [`Behavior::Healthy`] again
    /// (`{"mode": "fail_next", "count": 2, "status": 500}`).
    FailNext {
        /// How many requests fail; 0 is the same as healthy.
        count: u32,
        /// The status answered, as for [`Behavior::Fail`].
        status: u16,
    },
    /// Waits `delay_ms` before answering (before the response headers), then
    /// answers normally (`{"mode": "slow", "delay_ms": 2000}`).
    Slow {
        /// Milliseconds to wait.
        delay_ms: u64,
    },
    /// Never answers; the connection stays open until the client gives up
    /// (`{"mode": "hang"}`).
    Hang,
    /// Closes the connection without sending a byte of response
    /// (`{"mode": "drop_connection"}`).
    DropConnection,
    /// Starts a `200` response whose body breaks off at once: hyper meets
    /// the break before it writes anything and aborts the connection, so the
    /// client sees the connection close without a response, as with
    /// [`Behavior::DropConnection`], but only after the stand-in handled the
    /// request (`{"mode": "break_body"}`). For a break after the headers or
    /// mid-stream, see [`Behavior::BreakStream`].
    BreakBody,
    /// A streamed reply sends its `200` headers and first `after` events
    /// (the role chunk is event 0), lets them reach the client, then the
    /// connection breaks off; a reply with fewer events ends normally. A
    /// plain reply sends its headers and `{"id":`, then breaks off
    /// (`{"mode": "break_stream", "after": 2}`).
    BreakStream {
        /// Events sent before the break.
        after: u32,
    },
    /// A streamed reply sends its `200` headers and first `after` events,
    /// then goes silent with the connection open, until the client gives
    /// up; a plain reply sends its headers and `{"id":`, then goes silent
    /// (`{"mode": "stall_stream", "after": 2}`).
    StallStream {
        /// Events sent before the silence.
        after: u32,
    },
    /// A streamed reply sends its first `after` events, then an OpenAI
    /// error event (`data: {"error": {...}}`, code `injected_failure`) and
    /// ends without `[DONE]`, as OpenAI does when a model fails
    /// mid-stream; a plain reply is answered normally
    /// (`{"mode": "error_chunk", "after": 2}`).
    ErrorChunk {
        /// Events sent before the error event.
        after: u32,
    },
    /// Answers `status` (300 to 399) with `Location: location` and no body
    /// (`{"mode": "redirect", "status": 307, "location": "http://..."}`).
    Redirect {
        /// The redirect status; anything outside 300 to 399 is answered
        /// as 307.
        status: u16,
        /// Where it points.
        location: String,
    },
    /// Answers `200` with a body of `bytes` bytes, sent as it is
    /// generated: a plain reply is one JSON object padded with `x`; a
    /// streamed one is a single `data:` line that never ends
    /// (`{"mode": "huge_body", "bytes": 67108864}`).
    HugeBody {
        /// The body's size.
        bytes: u64,
    },
    /// Answers normally, with `usage` replaced by this JSON value; a
    /// streamed reply sends it in its usage chunk, which it then sends
    /// whether the request asked for it or not
    /// (`{"mode": "usage", "usage": {"prompt_tokens": -5}}`).
    Usage {
        /// The `usage` sent.
        usage: serde_json::Value,
    },
}

/// Settings at start; every one but `port`, `models` and `api_key` can be
/// changed later through the [`Handle`] or `POST /_control`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Names the upstream in its replies (`<name>-0 <name>-1 ...`) and as the
    /// `owned_by` of its models. Default `stand-in`.
    pub name: String,
    /// Listed by `GET /v1/models`; requests for other models are answered
    /// all the same. Default `["stand-in-small"]`.
    pub models: Vec<String>,
    /// When set, every OpenAI route requires `Authorization: Bearer <key>`
    /// and answers 401 otherwise. Default none.
    pub api_key: Option<String>,
    /// Content chunks (words) per reply, before `max_tokens` caps them.
    /// Default 5.
    pub chunks: u32,
    /// Delay before every stream event after the first. Default 0.
    pub chunk_delay_ms: u64,
    /// Keep every request for [`Handle::requests`] and the timings of every
    /// stream for [`Handle::stream_timings`]; benches turn it off so that
    /// memory stays flat. Counts and [`Handle::last_stream_timings`] are
    /// kept either way. Default true.
    pub record: bool,
    /// Port on 127.0.0.1; 0 picks a free one. Default 0.
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

/// A running upstream. Dropping it stops it as [`Upstream::shutdown`] does,
/// without waiting.
#[derive(Debug)]
pub struct Upstream {
    handle: Handle,
    /// Tells the serving task to stop.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serving task; `None` once [`Upstream::shutdown`] took it.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Upstream {
    /// Binds `127.0.0.1:<port>` and serves in a task of the current tokio
    /// runtime; fails only when the port cannot be bound.
    pub async fn start(options: Options) -> std::io::Result<Upstream> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(handle::Shared::new(options, addr));
        let app = openai::routes()
            .merge(control::routes())
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(conn::serve(listener, app, stopped));
        Ok(Upstream {
            handle: Handle(shared),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr()
    }

    /// `http://127.0.0.1:<port>/v1`: what an OpenAI client takes as its base
    /// URL.
    pub fn base_url(&self) -> String {
        self.handle.base_url()
    }

    /// A control handle; clones drive the same upstream and stay usable
    /// after it stopped.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops listening and closes every open connection, hanging ones
    /// included; when it returns the port is free.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // The serving task closes the listener, then aborts its
            // connection tasks and waits for them to end.
            let _ = task.await;
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
