//! The API's answer for a domain error (SPEC SE-2): the envelope
//! `{"error": {"code", "message"}}` with the status of its code, in one
//! place.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use warden_core::error::Error;

/// Result alias of the API: a handler's error is answered as an envelope.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A domain error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<warden_store::Error> for ApiError {
    fn from(e: warden_store::Error) -> Self {
        ApiError(e.into())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let message = match &e {
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "the server could not complete the request; it has been logged (see x-request-id)"
                    .to_string()
            }
            other => other.to_string(),
        };
        let body = json!({ "error": { "code": e.code(), "message": message } });
        (e.status(), Json(body)).into_response()
    }
}
