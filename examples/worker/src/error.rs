//! The error of every call to the Warden API.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call to the Warden API did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached, or the connection broke before an
    /// answer arrived (server down, wrong URL, network).
    #[error("cannot reach the Warden server at {url}: {source}")]
    Transport {
        /// The URL of the request.
        url: String,
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error (the SPEC SE-2 envelope).
    #[error("{method} {path} answered {status} {code}: {message}")]
    Api {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The error code (`FAILED_PRECONDITION`, `RESOURCE_EXHAUSTED`, ...).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server answered 2xx with a body that is not what the API
    /// documents (a proxy in the way, or a server of another version).
    #[error("unexpected answer to {method} {path}: {message}")]
    Decode {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// What did not fit.
        message: String,
    },
    /// A setting of the worker is out of range.
    #[error("invalid worker setting: {0}")]
    Config(String),
}

impl Error {
    /// True for a stale or expired fencing token (409 `FAILED_PRECONDITION`
    /// on heartbeat, complete or fail): the lease was lost and the stage
    /// belongs to someone else now.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Error::Api { status: 409, code, .. } if code == "FAILED_PRECONDITION")
    }

    /// True when retrying the same request later may succeed: the server is
    /// unreachable, rate-limits this token, or is unavailable (shutting
    /// down, database down).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Api { status: 503, .. } => true,
            _ => self.is_rate_limit(),
        }
    }

    /// True for the per-token rate limit (as opposed to a spent budget,
    /// which is also 429 `RESOURCE_EXHAUSTED` but does not pass by itself).
    pub fn is_rate_limit(&self) -> bool {
        matches!(self, Error::Api { status: 429, message, .. } if message.contains("rate limit"))
    }

    /// True when the server could not be reached at all.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport { .. })
    }
}
