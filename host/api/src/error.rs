//! The API's answer for a domain error (SPEC SE-2): the envelope
//! `{"error": {"code", "message"}}` with the status of its code. Which
//! code each variant of the domain error is, and which status each code
//! has, is decided here and nowhere else.

use axum::Json;
use axum::http::StatusCode;
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

/// The codes of SPEC SE-2, and the internal error, which is answered as
/// `UNAVAILABLE` without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `INVALID_ARGUMENT`, 400.
    InvalidArgument,
    /// `UNAUTHENTICATED`, 401.
    Unauthenticated,
    /// `PERMISSION_DENIED`, 403.
    PermissionDenied,
    /// `NOT_FOUND`, 404.
    NotFound,
    /// `ALREADY_EXISTS`, 409.
    AlreadyExists,
    /// `FAILED_PRECONDITION`, 409.
    FailedPrecondition,
    /// `RESOURCE_EXHAUSTED`, 429.
    ResourceExhausted,
    /// `UNAVAILABLE`, 503.
    Unavailable,
    /// A bug or an unexpected failure: logged in full, answered
    /// `UNAVAILABLE`, 503, with a generic message.
    Internal,
}

impl Code {
    /// The code of a domain error.
    pub fn of(e: &Error) -> Code {
        use warden_store::Error as S;
        match e {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) | Error::NotGranted { .. } => Code::PermissionDenied,
            Error::NotFound(_) | Error::NoVersion { .. } => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_)
            | Error::StaleLease { .. }
            | Error::LeaseExpired { .. }
            | Error::ModeRefuses { .. } => Code::FailedPrecondition,
            Error::ResourceExhausted(_) | Error::BudgetSpent { .. } => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) | Error::Io { .. } => Code::Internal,
            Error::Store(s) => match s {
                S::NotFound(_) => Code::NotFound,
                S::AlreadyExists(_) => Code::AlreadyExists,
                S::Conflict(_) | S::ThreadClosed { .. } => Code::FailedPrecondition,
                S::NotParticipant { .. } | S::TooLarge { .. } => Code::InvalidArgument,
                s if s.is_transient() => Code::Unavailable,
                _ => Code::Internal,
            },
        }
    }

    /// The code as the envelope names it.
    pub fn name(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unavailable | Code::Internal => "UNAVAILABLE",
        }
    }

    /// The HTTP status of the answer.
    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::FailedPrecondition => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable | Code::Internal => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The SE-2 envelope `{"error": {"code", "message"}}` of `e`, and its
/// code. An internal error is logged in full (as `what`) and answered
/// with `internal`, never its details.
pub(crate) fn envelope(e: &Error, what: &str, internal: &str) -> (Code, serde_json::Value) {
    let code = Code::of(e);
    let message = if code == Code::Internal {
        tracing::error!(error = %warden_core::error::chain(e), "{what}");
        internal.to_string()
    } else {
        e.to_string()
    };
    let body = json!({ "error": { "code": code.name(), "message": message } });
    (code, body)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The request id is on the request's span.
        let (code, body) = envelope(
            &self.0,
            "internal error",
            "the server could not complete the request; it has been logged (see x-request-id)",
        );
        (code.status(), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::error::Budget;

    fn answer(e: Error) -> (StatusCode, &'static str) {
        let code = Code::of(&e);
        (code.status(), code.name())
    }

    #[test]
    fn each_variant_has_its_code_and_status() {
        let cases = [
            (Error::invalid("x"), 400, "INVALID_ARGUMENT"),
            (Error::Unauthenticated("x".into()), 401, "UNAUTHENTICATED"),
            (
                Error::PermissionDenied("x".into()),
                403,
                "PERMISSION_DENIED",
            ),
            (Error::NotFound("x".into()), 404, "NOT_FOUND"),
            (
                Error::NoVersion {
                    plugin: "p".into(),
                    selector: None,
                },
                404,
                "NOT_FOUND",
            ),
            (Error::AlreadyExists("x".into()), 409, "ALREADY_EXISTS"),
            (
                Error::FailedPrecondition("x".into()),
                409,
                "FAILED_PRECONDITION",
            ),
            (
                Error::StaleLease {
                    task: "t".into(),
                    token: 1,
                    current: None,
                },
                409,
                "FAILED_PRECONDITION",
            ),
            (
                Error::LeaseExpired {
                    task: "t".into(),
                    token: 1,
                    expired_at: 0,
                },
                409,
                "FAILED_PRECONDITION",
            ),
            (
                Error::ModeRefuses {
                    workspace: "w".into(),
                    mode: "read-only",
                    reason: None,
                    what: "claiming".into(),
                },
                409,
                "FAILED_PRECONDITION",
            ),
            (
                Error::ResourceExhausted("x".into()),
                429,
                "RESOURCE_EXHAUSTED",
            ),
            (
                Error::BudgetSpent {
                    budget: Budget::Hourly {
                        workspace: "w".into(),
                        measure: "token",
                    },
                    figures: String::new(),
                },
                429,
                "RESOURCE_EXHAUSTED",
            ),
            (Error::Unavailable("x".into()), 503, "UNAVAILABLE"),
            (Error::Internal("x".into()), 503, "UNAVAILABLE"),
            (
                Error::Io {
                    doing: "cannot create /x".into(),
                    source: std::io::Error::other("denied"),
                },
                503,
                "UNAVAILABLE",
            ),
        ];
        for (e, status, code) in cases {
            let shown = format!("{e:?}");
            assert_eq!(
                answer(e),
                (StatusCode::from_u16(status).unwrap(), code),
                "{shown}"
            );
        }
    }

    #[test]
    fn store_errors_keep_their_answers() {
        use warden_store::Error as S;
        let cases = [
            (
                S::NotFound("task t".into()),
                404,
                "NOT_FOUND",
                Code::NotFound,
            ),
            (
                S::AlreadyExists("token".into()),
                409,
                "ALREADY_EXISTS",
                Code::AlreadyExists,
            ),
            (
                S::Conflict("task t is done".into()),
                409,
                "FAILED_PRECONDITION",
                Code::FailedPrecondition,
            ),
            (
                S::ThreadClosed { thread: "t".into() },
                409,
                "FAILED_PRECONDITION",
                Code::FailedPrecondition,
            ),
            (
                S::NotParticipant {
                    thread: "t".into(),
                    name: "bob".into(),
                },
                400,
                "INVALID_ARGUMENT",
                Code::InvalidArgument,
            ),
            (
                S::TooLarge {
                    what: "message body",
                    size: 70_000,
                    max: 65_536,
                },
                400,
                "INVALID_ARGUMENT",
                Code::InvalidArgument,
            ),
            (
                S::Connect("refused".into()),
                503,
                "UNAVAILABLE",
                Code::Unavailable,
            ),
            (S::Migrate("bad".into()), 503, "UNAVAILABLE", Code::Internal),
        ];
        for (s, status, name, code) in cases {
            let e = Error::from(s);
            assert_eq!(Code::of(&e), code, "{e}");
            assert_eq!(answer(e), (StatusCode::from_u16(status).unwrap(), name));
        }
    }

    #[tokio::test]
    async fn an_internal_error_is_answered_without_its_details() {
        let e = Error::from(warden_store::Error::Migrate("secret detail".into()));
        let response = ApiError(e).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "UNAVAILABLE");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("x-request-id"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
