//! Errors of loading and running plugins.

use warden_meta::Capability;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The wasmtime engine, linker or pooling allocator refused the
    /// configuration.
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    /// The compiled-artifact cache directory cannot be created.
    #[error("cannot use the compile cache at {path}: {source}")]
    Cache {
        /// The cache directory.
        path: std::path::PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// Why a `.wasm` was not accepted as a plugin (SPEC LC-2). Each message
/// names what is wrong and, where there is one, the fix.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file: {0}")]
    NotWasm(String),
    /// A core module, not a component.
    #[error(
        "a core WebAssembly module, not a component: build the plugin with `cargo build --target wasm32-wasip2`"
    )]
    CoreModule,
    /// The component does not parse or validate.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// No `warden:plugin-meta` section.
    #[error(
        "no plugin metadata (custom section \"warden:plugin-meta\"): declare the plugin with a warden-sdk macro such as #[warden_sdk::playbook]"
    )]
    NoMetadata,
    /// The metadata section is present but wrong.
    #[error("bad plugin metadata: {0}")]
    BadMetadata(String),
    /// The component imports something the host does not provide.
    #[error("imports \"{0}\", which this host does not provide")]
    UnknownImport(String),
    /// The component imports a Warden interface that the world its metadata
    /// claims does not offer (e.g. a quality gate importing `tasks`).
    #[error("imports \"{import}\", which the {world} world does not offer (it offers {offered})")]
    OutsideWorld {
        /// The imported interface.
        import: String,
        /// The claimed world.
        world: &'static str,
        /// The interfaces the world offers, comma-separated.
        offered: String,
    },
    /// The component imports a function whose capability its metadata does
    /// not request.
    #[error(
        "imports {import}, which needs capability \"{capability}\", but its metadata does not request it"
    )]
    UndeclaredCapability {
        /// `interface#function`.
        import: String,
        /// The capability that function needs.
        capability: Capability,
    },
    /// The component does not export the world its metadata claims.
    #[error("does not implement the {world} world its metadata claims: {detail}")]
    WrongWorld {
        /// The claimed world.
        world: &'static str,
        /// What did not match.
        detail: String,
    },
    /// Compilation failed.
    #[error("cannot compile: {0}")]
    Compile(String),
    /// The host refused an otherwise valid plugin: another build of its
    /// `name@version` is stored already (a version is immutable), or it
    /// could not be stored.
    #[error("{0}")]
    Refused(String),
    /// The file is larger than the host accepts.
    #[error("file of {size} bytes is larger than the {limit} byte limit")]
    TooLarge {
        /// Size of the file.
        size: usize,
        /// The host's limit.
        limit: usize,
    },
}

/// How a plugin call ended when it did not return a value (SPEC PL-5). The
/// messages are the ones users see in run records.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    /// The wall-clock deadline passed.
    #[error("deadline of {ms} ms exceeded")]
    Deadline {
        /// The deadline.
        ms: u64,
    },
    /// The fuel budget ran out.
    #[error("fuel exhausted after {fuel}")]
    FuelExhausted {
        /// The budget that was spent.
        fuel: u64,
    },
    /// Linear memory would have grown past the cap.
    #[error("memory limit {mib} MiB exceeded")]
    Memory {
        /// The cap.
        mib: u64,
    },
    /// The plugin kept making mutating calls after its step budget was spent.
    #[error("step budget {steps} spent")]
    StepBudget {
        /// The budget.
        steps: u64,
    },
    /// The returned value is larger than allowed.
    #[error("output of {bytes} bytes exceeds the {limit_kib} KiB limit")]
    OutputTooLarge {
        /// Size of the output.
        bytes: usize,
        /// The limit.
        limit_kib: u64,
    },
    /// The wasm call stack overflowed.
    #[error("stack overflow (call stack exhausted)")]
    StackOverflow,
    /// The plugin panicked; the message is its panic message.
    #[error("plugin panicked: {0}")]
    Panic(String),
    /// Any other trap.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin returned an error value.
    #[error("plugin returned an error: {0}")]
    Plugin(String),
    /// The plugin returned a value its world's contract forbids, e.g. a
    /// verdict with a score over 100. The text names the value and the rule.
    #[error("invalid {0}")]
    InvalidOutput(String),
    /// A function the component imports needs a capability the operator did
    /// not grant in this workspace.
    #[error("capability \"{capability}\" not granted (the plugin imports {import})")]
    NotGranted {
        /// The missing grant.
        capability: Capability,
        /// `interface#function`.
        import: String,
    },
    /// The plugin is of another kind than the call needs.
    #[error("plugin is a {actual}, not a {expected}")]
    WrongKind {
        /// The kind the call needs.
        expected: &'static str,
        /// The plugin's kind.
        actual: &'static str,
    },
    /// Every instance slot stayed busy until the deadline.
    #[error("no free plugin instance slot within the deadline of {ms} ms (host at capacity)")]
    Busy {
        /// The deadline that passed while waiting.
        ms: u64,
    },
    /// The host failed (not the plugin's fault).
    #[error("host error: {0}")]
    Host(String),
}

impl RunError {
    /// True when the call ended because a limit was hit (as opposed to a
    /// plugin bug or a host fault). Used for canary and breaker accounting.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            RunError::Deadline { .. }
                | RunError::FuelExhausted { .. }
                | RunError::Memory { .. }
                | RunError::StepBudget { .. }
                | RunError::OutputTooLarge { .. }
                | RunError::StackOverflow
        )
    }

    /// A short stable code for the kind of ending, for metrics and records.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::Deadline { .. } => "deadline",
            RunError::FuelExhausted { .. } => "fuel",
            RunError::Memory { .. } => "memory",
            RunError::StepBudget { .. } => "steps",
            RunError::OutputTooLarge { .. } => "output",
            RunError::StackOverflow => "stack",
            RunError::Panic(_) => "panic",
            RunError::Trap(_) => "trap",
            RunError::Plugin(_) => "plugin_error",
            RunError::InvalidOutput(_) => "invalid_output",
            RunError::NotGranted { .. } => "not_granted",
            RunError::WrongKind { .. } => "wrong_kind",
            RunError::Busy { .. } => "busy",
            RunError::Host(_) => "host",
        }
    }
}
