//! The `warden` binary's library: the wiring that starts the services of
//! warden-core and serves warden-api's router (`app`), the command line
//! (`cli`), `warden demo`, and the reqwest client behind warden-core's
//! outbound HTTP (`outbound`).
//!
//! The HTTP API and the domain modules are re-exported under their old
//! paths (`warden_server::api`, `warden_server::scheduler`, …).
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod demo;
pub mod outbound;

pub use app::{Server, start};
pub use warden_api as api;
pub use warden_api::{error, serve};
pub use warden_core::config::Config;
pub use warden_core::{
    alerting, alerts, auth, autoheal, breaker, checkpoints, completions, config, dashboard, events,
    evidence, fingerprint, gates, gateway, heal, health, loops, metrics, processes, registry,
    rules, scheduler, services, streams, time, validate,
};
