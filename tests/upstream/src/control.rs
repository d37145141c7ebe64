//! The control routes, for users in another process: `POST /_control`,
//! `GET /_stats`, `GET /_requests`, `GET /_timings`. They are never
//! recorded, counted or subject to the behaviour.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::Behavior;
use crate::error::{Error, Result};
use crate::handle::{ChunkTiming, Handle, Shared};
use crate::openai::error;

/// The body of `POST /_control`, also taken by [`Handle::control`]. Every
/// field is optional; those present are applied in this order: `clear`,
/// `record`, `behavior`, `chunks`, `chunk_delay_ms`. Unknown fields are
/// refused.
///
/// ```json
/// {"behavior": {"mode": "fail_next", "count": 2, "status": 503},
///  "chunks": 5, "chunk_delay_ms": 20, "record": true, "clear": true}
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    /// The new behaviour ([`Handle::set`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Behavior>,
    /// The new number of content chunks per reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
    /// The new delay between stream events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_delay_ms: Option<u64>,
    /// Recording on or off ([`Handle::set_record`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// Forget the requests, counts and timings so far ([`Handle::clear`]).
    #[serde(default)]
    pub clear: bool,
}

impl ControlRequest {
    /// Checks that a failure status in it is 400 to 599, and a redirect
    /// status 300 to 399.
    pub fn validate(&self) -> Result<()> {
        match self.behavior {
            Some(Behavior::Fail { status } | Behavior::FailNext { status, .. })
                if !(400..=599).contains(&status) =>
            {
                Err(Error::Status(status))
            }
            Some(Behavior::Redirect { status, .. }) if !(300..=399).contains(&status) => {
                Err(Error::RedirectStatus(status))
            }
            _ => Ok(()),
        }
    }
}

/// The body of `GET /_timings`.
#[derive(Serialize)]
struct Timings {
    /// [`Handle::last_stream_timings`].
    last_stream: Vec<ChunkTiming>,
    /// [`Handle::stream_timings`].
    streams: Vec<Vec<ChunkTiming>>,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_control", post(control))
        .route("/_stats", get(stats))
        .route("/_requests", get(requests))
        .route("/_timings", get(timings))
}

async fn control(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: ControlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("bad control request: {e}"),
                None,
                None,
            );
        }
    };
    match Handle(s).control(request) {
        Ok(stats) => axum::Json(stats).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string(), None, None),
    }
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(Handle(s).stats()).into_response()
}

async fn requests(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(Handle(s).requests()).into_response()
}

async fn timings(State(s): State<Arc<Shared>>) -> Response {
    let h = Handle(s);
    axum::Json(Timings {
        last_stream: h.last_stream_timings(),
        streams: h.stream_timings(),
    })
    .into_response()
}
