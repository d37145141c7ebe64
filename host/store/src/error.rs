//! Errors of the store.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL is not one this store understands.
    #[error("unsupported database url \"{0}\": use sqlite://<path> or postgres://...")]
    UnsupportedUrl(String),
    /// The database cannot be reached or refused the connection.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// The row asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule would be broken (e.g. an idempotency key reused
    /// with different arguments).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The row is not in a state that allows the change; the text says why.
    #[error("{0}")]
    Conflict(String),
    /// A post to a closed thread, or a participant added to one (SPEC
    /// TH-1). Callers answer it as a failed precondition.
    #[error(
        "thread \"{thread}\" is closed and takes no new messages or participants (reopen it first)"
    )]
    ThreadClosed {
        /// The thread's id.
        thread: String,
    },
    /// A name that is not a participant of the thread: the sender or a
    /// recipient of a message, or the reader of a cursor. Callers answer
    /// it as an invalid argument.
    #[error("\"{name}\" is not a participant of thread \"{thread}\" (add it to the thread first)")]
    NotParticipant {
        /// The thread's id.
        thread: String,
        /// The name given.
        name: String,
    },
    /// A value is larger than the store takes (a thread message's body,
    /// [`crate::threads::MAX_BODY_BYTES`]). Callers answer it as an
    /// invalid argument.
    #[error("{what} is {size} bytes, more than the {max} allowed (make it smaller)")]
    TooLarge {
        /// What was too large, e.g. `message body`.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The most allowed, in bytes.
        max: usize,
    },
    /// A stored JSON column does not parse.
    #[error("stored {column} is not valid JSON: {message}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A stored name (a task's state, a run's status or mode, an event's
    /// kind) is not one this version knows.
    #[error(
        "stored {column} holds unknown value \"{value}\" (written by a newer version, or the row is corrupt)"
    )]
    UnknownValue {
        /// The column.
        column: &'static str,
        /// The value read.
        value: String,
    },
    /// Any other database error (connection lost, timeout, ...).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A name that is not one of a type's names (`"x".parse::<TaskState>()`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} \"{value}\"")]
pub struct UnknownName {
    /// What was parsed (`task state`, `run status`, ...).
    pub what: &'static str,
    /// The text given.
    pub value: String,
}

impl UnknownName {
    /// The store error of reading `self.value` from `column`.
    pub(crate) fn stored_in(self, column: &'static str) -> Error {
        Error::UnknownValue {
            column,
            value: self.value,
        }
    }
}

impl Error {
    /// True when retrying later may succeed (connection trouble, timeouts,
    /// lock contention).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect(_) => true,
            Error::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Error::Database(sqlx::Error::Database(db)) => is_contention(db.as_ref()),
            _ => false,
        }
    }
}

impl Error {
    /// True when the database refused the statement because of the data
    /// it carries: a constraint or a trigger, or a value it cannot store or
    /// compute (a NUL in text, a number out of range, a type it cannot
    /// read back), or a stored value that does not parse. The same data
    /// will be refused again, unlike an outage, lock contention or a full
    /// disk, which pass.
    pub fn is_refusal(&self) -> bool {
        match self {
            Error::Corrupt { .. } | Error::UnknownValue { .. } => true,
            Error::Database(
                sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. },
            ) => true,
            Error::Database(sqlx::Error::Database(db)) => is_data_refusal(db.as_ref()),
            _ => false,
        }
    }
}

/// SQLite's `SQLITE_TOOBIG`, `SQLITE_CONSTRAINT` (a `RAISE` in a trigger
/// too), `SQLITE_MISMATCH` and `SQLITE_RANGE`; PostgreSQL's data exceptions
/// (class 22: out of range, invalid encoding, ...), integrity constraint
/// violations (class 23) and exceptions raised by functions (`P0001`).
fn is_data_refusal(db: &dyn sqlx::error::DatabaseError) -> bool {
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let primary = db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        return matches!(primary, Some(18 | 19 | 20 | 25));
    }
    if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = e.code();
        return code.starts_with("22") || code.starts_with("23") || code == "P0001";
    }
    false
}

/// Lock contention: SQLite's `SQLITE_BUSY` / `SQLITE_LOCKED` (any extended
/// code), PostgreSQL's serialization failure, deadlock, lock not available
/// and the shutdown / cannot-connect-now codes of a restarting server.
fn is_contention(db: &dyn sqlx::error::DatabaseError) -> bool {
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let primary = db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        return matches!(primary, Some(5 | 6));
    }
    if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return matches!(e.code(), "40001" | "40P01" | "55P03" | "57P01" | "57P03");
    }
    false
}
