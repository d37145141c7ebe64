//! The one error type of the domain (SPEC SE-2): each variant is one code
//! of the API's error envelope; warden-server turns it into an answer.

use http::StatusCode;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its SPEC SE-2 code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Bad input; the message names what and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// No or an unknown bearer token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token may not do this (other workspace, too weak a role, a
    /// capability not granted).
    #[error("{0}")]
    PermissionDenied(String),
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// The object exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The system is not in a state that allows this.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit or budget is spent.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (the database) is down; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure. Logged in full; the client gets a
    /// generic `UNAVAILABLE` with the request id, never details.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The code of the envelope.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::PermissionDenied(_) => "PERMISSION_DENIED",
            Error::NotFound(_) => "NOT_FOUND",
            Error::AlreadyExists(_) => "ALREADY_EXISTS",
            Error::FailedPrecondition(_) => "FAILED_PRECONDITION",
            Error::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
            Error::Unavailable(_) | Error::Internal(_) => "UNAVAILABLE",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::AlreadyExists(_) | Error::FailedPrecondition(_) => StatusCode::CONFLICT,
            Error::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) | Error::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Shorthand for a bad argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
}

impl From<warden_store::Error> for Error {
    fn from(e: warden_store::Error) -> Self {
        use warden_store::Error as S;
        match e {
            S::NotFound(m) => Error::NotFound(format!("{m} not found")),
            S::AlreadyExists(m) => Error::AlreadyExists(format!("{m} already exists")),
            S::Conflict(m) => Error::FailedPrecondition(m),
            e if e.is_transient() => {
                Error::Unavailable(format!("the database is unavailable: {e}"))
            }
            e => Error::Internal(e.to_string()),
        }
    }
}
