//! The Warden plugin runtime: the only crate that touches wasmtime.
//!
//! It loads `.wasm` components (validation, metadata, capability checks,
//! compile cache), and calls them (a playbook's `run` with
//! [`Runtime::run_playbook`], a quality gate's `evaluate` with
//! [`Runtime::evaluate_gate`], a routing policy's `route` with
//! [`Runtime::route_request`]) in fresh instances under limits: an epoch
//! deadline plus a timeout around the whole call, fuel, a memory cap, a step
//! budget for mutating host calls and an output cap (SPEC §1). The data
//! behind the host interfaces comes from a [`Backend`] that the server
//! implements over its database and the test kit implements in memory.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod bindings;
mod call;
mod engine;
mod error;
pub mod files;
mod gate;
mod host;
pub mod memory;
mod plugin;
mod route;
mod run;
mod stats;
mod stdio;

pub use backend::{
    ActionRecord, ActionStatus, Applied, Backend, CallInfo, LogLevel, LogLine, LogSource, Mutation,
    RunEvent, SharedBackend, mode_name,
};
pub use bindings::types;
pub use call::Usage;
pub use engine::{EffectiveLimits, HostLimits, Runtime, RuntimeConfig};
pub use error::{Error, LoadError, Result, RunError};
pub use gate::{GateOutcome, GateRequest};
pub use memory::{MemoryBackend, MemoryEvidence};
pub use plugin::{ImportedFn, Plugin, digest_of};
pub use route::{RouteCall, RouteOutcome};
pub use run::{RunOutcome, RunRequest};
pub use stats::{CALL_BUCKETS, CallCount, CallDurations, CallStats};
pub use warden_meta as meta;
