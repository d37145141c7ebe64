//! The Warden plugin runtime: the only crate that touches wasmtime.
//!
//! It loads `.wasm` components (validation, metadata, capability checks,
//! compile cache), and runs them in fresh instances under limits: an epoch
//! deadline plus a timeout around the whole call, fuel, a memory cap, a step
//! budget for mutating host calls and an output cap (SPEC §1). The data
//! behind the host interfaces comes from a [`Backend`] that the server
//! implements over its database and the test kit implements in memory.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod bindings;
mod engine;
mod error;
mod host;
pub mod memory;
mod plugin;
mod run;
mod stdio;

pub use backend::{
    ActionRecord, ActionStatus, Applied, Backend, CallInfo, LogLevel, LogLine, LogSource, Mutation,
    RunEvent, SharedBackend, mode_name,
};
pub use bindings::types;
pub use engine::{EffectiveLimits, HostLimits, Runtime, RuntimeConfig};
pub use error::{Error, LoadError, Result, RunError};
pub use memory::MemoryBackend;
pub use plugin::{ImportedFn, Plugin, digest_of};
pub use run::{RunOutcome, RunRequest, Usage};
pub use warden_meta as meta;
