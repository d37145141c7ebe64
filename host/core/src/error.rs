//! The one error type of the domain. Each variant says what happened and
//! keeps its source; warden-api maps every variant to its SPEC SE-2 code
//! and HTTP status, in one place (`warden_api::error`).
//!
//! The first variants are generic, a message for a kind that no code and
//! no caller tells apart from others of its code; the rest name the kinds
//! that are told apart. The text of each is what the client reads: it does
//! not change when a kind gets a variant of its own.

/// An error with its sources, outermost first, joined by `: `: for
/// messages and logs.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; the message names what and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// No or an unknown bearer token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token may not do this (other workspace, too weak a role).
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
    /// A limit is reached (a rate limit, a cap on open streams or on
    /// stored checkpoints, the routing policy's `max_iterations`).
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (the database, an upstream) is down, or this host is
    /// shutting down; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure. Logged in full; the client gets a
    /// generic `UNAVAILABLE` with the request id, never details.
    #[error("internal error: {0}")]
    Internal(String),

    /// A worker used a fencing token that is not the task's lease: the
    /// lease expired and the stage was claimed again (`current` is the new
    /// lease), or the task holds no lease at all (requeued, cancelled or
    /// finished).
    #[error("{}", stale_lease(task, *token, *current))]
    StaleLease {
        /// The task.
        task: String,
        /// The token the worker sent.
        token: i64,
        /// The task's lease now, when it holds one.
        current: Option<i64>,
    },
    /// A worker's lease is still the task's, but its time is over.
    #[error(
        "the lease {token} of task {task} expired at {}; claim the stage again",
        crate::time::time(*expired_at)
    )]
    LeaseExpired {
        /// The task.
        task: String,
        /// The lease.
        token: i64,
        /// When it expired (ms since the epoch).
        expired_at: i64,
    },
    /// The workspace's degradation mode (`read-only`, `emergency-stop`)
    /// refuses the action.
    #[error(
        "workspace \"{workspace}\" is in {mode} mode{}: {what} is refused; switch it back with PUT /v1/workspaces/{workspace}/mode",
        reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    ModeRefuses {
        /// The workspace.
        workspace: String,
        /// The mode's name.
        mode: &'static str,
        /// Why the operator set it, when they said.
        reason: Option<String>,
        /// What is refused (`claiming`, `creating tasks`).
        what: String,
    },
    /// A budget that refuses more work is spent: a workspace's hourly
    /// budget at claim or at a model call, a task's budget at a model call.
    #[error("{budget} is spent{figures}")]
    BudgetSpent {
        /// Which budget.
        budget: Budget,
        /// How much of it is spent, as the message shows it after the
        /// budget's name (with its separator): ` (5 of 5 tokens this hour)`
        /// at claim, `: 5 tokens of 5 tokens` at a model call.
        figures: String,
    },
    /// A playbook imports a capability the workspace does not grant it.
    #[error(
        "{source}; grant it in warden.toml ([workspaces.{workspace}.plugins.{plugin}] grants) or with PUT /v1/workspaces/{workspace}/grants/{plugin}"
    )]
    NotGranted {
        /// The plugin.
        plugin: String,
        /// The workspace it was to run in.
        workspace: String,
        /// The runtime's refusal, naming the capability and the import.
        source: warden_runtime::RunError,
    },
    /// A plugin has no stored version a selector picks.
    #[error("{}", no_version(plugin, selector.as_deref()))]
    NoVersion {
        /// The plugin.
        plugin: String,
        /// The selector; `None` for `latest` (no live version left).
        selector: Option<String>,
    },
    /// A file operation of the host failed (its data directory, the admin
    /// token, the plugin store): an internal error, with its source.
    #[error("internal error: {doing}: {source}")]
    Io {
        /// What the host was doing: `cannot create <path>`.
        doing: String,
        /// The file system's error.
        source: std::io::Error,
    },
    /// The store failed. Its `NotFound`, `AlreadyExists` and `Conflict`
    /// are answers to the client (`NOT_FOUND`, `ALREADY_EXISTS`,
    /// `FAILED_PRECONDITION`), a transient failure is `UNAVAILABLE`, any
    /// other an internal error. The text is the one the client reads.
    #[error("{}", store_message(.0))]
    Store(#[from] warden_store::Error),
}

/// A budget, as errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Budget {
    /// A workspace's hourly budget of `measure` (`token`, `cost`).
    Hourly {
        /// The workspace.
        workspace: String,
        /// What it counts.
        measure: &'static str,
    },
    /// A task's own budget of `measure` (`token`, `cost`).
    Task {
        /// The task.
        task: String,
        /// What it counts.
        measure: &'static str,
    },
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Hourly { workspace, measure } => {
                write!(
                    f,
                    "the hourly {measure} budget of workspace \"{workspace}\""
                )
            }
            Budget::Task { task, measure } => write!(f, "the {measure} budget of task {task}"),
        }
    }
}

impl Error {
    /// Shorthand for a bad argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
}

fn stale_lease(task: &str, token: i64, current: Option<i64>) -> String {
    match current {
        Some(current) => format!(
            "stale fencing token {token} for task {task}: the current lease is {current}; this worker's lease expired and the stage was claimed again"
        ),
        None => format!(
            "stale fencing token {token} for task {task}: the task holds no lease (it was requeued, cancelled or finished)"
        ),
    }
}

fn no_version(plugin: &str, selector: Option<&str>) -> String {
    match selector {
        None => format!(
            "plugin \"{plugin}\" has no live version (its files were removed); pin a version or digest to use a stored one"
        ),
        Some(s) => format!("plugin \"{plugin}\" has no version matching \"{s}\""),
    }
}

/// The text of a store error: its own for the answers (`... not found`,
/// `... already exists`, a conflict's reason), else said as the outage or
/// the internal error it is.
fn store_message(e: &warden_store::Error) -> String {
    use warden_store::Error as S;
    match e {
        S::NotFound(_)
        | S::AlreadyExists(_)
        | S::Conflict(_)
        | S::ThreadClosed { .. }
        | S::NotParticipant { .. }
        | S::TooLarge { .. } => e.to_string(),
        e if e.is_transient() => format!("the database is unavailable: {e}"),
        e => format!("internal error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_read_as_before() {
        let e = Error::from(warden_store::Error::NotFound("task t1".into()));
        assert_eq!(e.to_string(), "task t1 not found");
        let e = Error::from(warden_store::Error::AlreadyExists("token \"a\"".into()));
        assert_eq!(e.to_string(), "token \"a\" already exists");
        let e = Error::from(warden_store::Error::Conflict("task t1 is done".into()));
        assert_eq!(e.to_string(), "task t1 is done");
        let e = Error::from(warden_store::Error::Connect("refused".into()));
        assert_eq!(
            e.to_string(),
            "the database is unavailable: cannot connect to the database: refused"
        );
        let e = Error::from(warden_store::Error::Migrate("bad".into()));
        assert_eq!(
            e.to_string(),
            "internal error: database migration failed: bad"
        );
        // The store's error stays the source.
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("database migration failed: bad"));
    }

    #[test]
    fn typed_variants_keep_the_messages_clients_read() {
        let e = Error::StaleLease {
            task: "t1".into(),
            token: 3,
            current: Some(4),
        };
        assert_eq!(
            e.to_string(),
            "stale fencing token 3 for task t1: the current lease is 4; this worker's lease expired and the stage was claimed again"
        );
        let e = Error::StaleLease {
            task: "t1".into(),
            token: 3,
            current: None,
        };
        assert!(
            e.to_string()
                .ends_with("the task holds no lease (it was requeued, cancelled or finished)")
        );
        let e = Error::BudgetSpent {
            budget: Budget::Hourly {
                workspace: "acct".into(),
                measure: "token",
            },
            figures: " (10 of 10 tokens this hour)".into(),
        };
        assert_eq!(
            e.to_string(),
            "the hourly token budget of workspace \"acct\" is spent (10 of 10 tokens this hour)"
        );
        let e = Error::BudgetSpent {
            budget: Budget::Task {
                task: "t1".into(),
                measure: "token",
            },
            figures: ": 100 tokens of 100 tokens".into(),
        };
        assert_eq!(
            e.to_string(),
            "the token budget of task t1 is spent: 100 tokens of 100 tokens"
        );
        let e = Error::ModeRefuses {
            workspace: "w".into(),
            mode: "read-only",
            reason: Some("maintenance".into()),
            what: "claiming".into(),
        };
        assert_eq!(
            e.to_string(),
            "workspace \"w\" is in read-only mode (maintenance): claiming is refused; switch it back with PUT /v1/workspaces/w/mode"
        );
        let e = Error::NoVersion {
            plugin: "p".into(),
            selector: Some("^2".into()),
        };
        assert_eq!(e.to_string(), "plugin \"p\" has no version matching \"^2\"");
        let e = Error::NoVersion {
            plugin: "p".into(),
            selector: None,
        };
        assert!(e.to_string().contains("has no live version"));
    }
}
