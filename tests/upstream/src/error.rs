//! The errors of this crate.

/// What can go wrong driving the stand-in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A control request asks to fail with a status that is not an HTTP
    /// error status.
    #[error("status {0} cannot be failed with (use 400 to 599)")]
    Status(u16),
    /// A control request asks to redirect with a status that is not a
    /// redirect status.
    #[error("status {0} is not a redirect (use 300 to 399)")]
    RedirectStatus(u16),
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
