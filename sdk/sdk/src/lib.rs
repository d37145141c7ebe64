//! Write Warden plugins (playbooks, quality gates and routing policies) in
//! Rust.
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
//! A quality gate (see [`mod@gate`]):
//!
//! ```no_run
//! use warden_sdk::gate::{Submission, Verdict};
//!
//! #[warden_sdk::gate]
//! fn evaluate(submission: &Submission) -> Result<Verdict, String> {
//!     match &submission.tests {
//!         Some(t) if t.failed > 0 => Ok(Verdict::reject(0).reason("tests", format!("{} failed", t.failed))),
//!         Some(_) => Ok(Verdict::approve(100)),
//!         None => Ok(Verdict::escalate(50).reason("tests", "no test results")),
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! A routing policy (see [`mod@router`]) picks the provider and model of
//! each model call that goes through the gateway, in order of preference:
//!
//! ```no_run
//! use warden_sdk::router::{RouteDecision, RouteRequest};
//!
//! #[warden_sdk::router]
//! fn route(request: &RouteRequest) -> Result<RouteDecision, String> {
//!     let mut decision = RouteDecision::new("cheapest healthy provider that fits");
//!     for p in request.cheapest_first().into_iter().filter(|p| request.fits(p)) {
//!         if let Some(model) = p.models.first() {
//!             decision = decision.candidate(&p.name, model);
//!         }
//!     }
//!     Ok(decision.max_price_per_1k(0.01).max_iterations(20))
//! }
//! # fn main() {}
//! ```
//!
//! A crate is one plugin: a playbook, a gate or a routing policy.
//!
//! Build it with `cargo build --release --target wasm32-wasip2` and copy the
//! `.wasm` into the host's plugin directory. The `warden-testkit` crate runs
//! it against a fake host inside `cargo test`.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod wit {
    //! Bindings generated from `wit/`; use the safe wrappers instead.
    #![allow(missing_docs)]

    // The three worlds are generated here, each with a public export macro. With
    // `pub_export_macro`, wit-bindgen embeds a world's exports (the
    // `component-type` section that makes a component export `run` or
    // `evaluate`) only where its export macro is invoked, and unused imports
    // are dropped when the component is linked. So a crate whose
    // `#[playbook]` invokes `export_playbook!` becomes a playbook, one whose
    // `#[gate]` invokes `export_gate!` becomes a quality gate, one whose
    // `#[router]` invokes `export_router!` becomes a routing policy, and
    // none carries another's exports.
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

    pub mod gate {
        // The interfaces both worlds import are generated once (above), so
        // `log`, `config` and `kv` have one set of types and functions.
        wit_bindgen::generate!({
            world: "quality-gate",
            path: "../../wit",
            pub_export_macro: true,
            export_macro_name: "export_gate",
            default_bindings_module: "warden_sdk::wit::gate",
            runtime_path: "warden_sdk::wit::wit_bindgen::rt",
            additional_derives: [PartialEq],
            with: {
                "warden:plugin/types@0.1.0": warden_sdk::wit::playbook::warden::plugin::types,
                "warden:plugin/log@0.1.0": warden_sdk::wit::playbook::warden::plugin::log,
                "warden:plugin/config@0.1.0": warden_sdk::wit::playbook::warden::plugin::config,
                "warden:plugin/kv@0.1.0": warden_sdk::wit::playbook::warden::plugin::kv,
            },
        });
    }

    pub mod router {
        wit_bindgen::generate!({
            world: "routing-policy",
            path: "../../wit",
            pub_export_macro: true,
            export_macro_name: "export_router",
            default_bindings_module: "warden_sdk::wit::router",
            runtime_path: "warden_sdk::wit::wit_bindgen::rt",
            additional_derives: [PartialEq],
            with: {
                "warden:plugin/log@0.1.0": warden_sdk::wit::playbook::warden::plugin::log,
                "warden:plugin/config@0.1.0": warden_sdk::wit::playbook::warden::plugin::config,
            },
        });
    }

    pub use wit_bindgen;
}

// The generated code names this crate by its public path, also from inside.
extern crate self as warden_sdk;

mod host_error;
mod playbook;

pub mod config;
pub mod evidence;
pub mod gate;
pub mod health;
pub mod kv;
pub mod log;
pub mod router;
pub mod tasks;

pub use host_error::HostError;
pub use playbook::{Context, Finding, Mode, Report, Severity};
pub use warden_sdk_macros::{gate, playbook, router};

#[doc(hidden)]
pub mod __private {
    //! Glue called by the code the macros emit.
    pub use crate::gate::evaluate_gate;
    pub use crate::playbook::run_playbook;
    pub use crate::router::route_request;
}
