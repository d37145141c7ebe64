//! Write Warden plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`. This crate
//! hides the generated bindings of the `warden:plugin` WIT package behind
//! small safe functions, and its attribute macros declare the plugin's
//! metadata (name, version, capabilities, limits) in one place and embed it
//! in the `.wasm`.
//!
//! A playbook:
//!
//! ```no_run
//! use warden_sdk::{health, Context, Finding, Report};
//!
//! #[warden_sdk::playbook(capabilities = ["health:read"])]
//! fn run(ctx: &Context) -> Result<Report, warden_sdk::HostError> {
//!     let snapshot = health::snapshot()?;
//!     let mut report = Report::new(format!("{} worker(s)", snapshot.workers.len()));
//!     if snapshot.workers.is_empty() {
//!         report.push(Finding::warning("workers.none", "no worker has sent a heartbeat"));
//!     }
//!     Ok(report)
//! }
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` and copy the
//! `.wasm` into the host's plugin directory. The `warden-testkit` crate runs
//! it against a fake host inside `cargo test`.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod wit {
    //! Bindings generated from `wit/`; use the safe wrappers instead.
    #![allow(missing_docs)]

    pub mod playbook {
        wit_bindgen::generate!({
            world: "playbook",
            path: "../../wit",
            pub_export_macro: true,
            export_macro_name: "export_playbook",
            default_bindings_module: "warden_sdk::wit::playbook",
            runtime_path: "warden_sdk::wit::wit_bindgen::rt",
        });
    }

    pub use wit_bindgen;
}

// The generated code names this crate by its public path, also from inside.
extern crate self as warden_sdk;

mod host_error;
mod playbook;

pub mod config;
pub mod health;
pub mod kv;
pub mod log;
pub mod tasks;

pub use host_error::HostError;
pub use playbook::{Context, Finding, Mode, Report, Severity};
pub use warden_sdk_macros::playbook;

#[doc(hidden)]
pub mod __private {
    //! Glue called by the code the macros emit.
    pub use crate::playbook::run_playbook;
}
