//! The Warden control plane's HTTP API and the `warden` binary, over the
//! domain in warden-core.
//!
//! `api` only translates HTTP to the services of warden-core and back;
//! `serve` is the accept loop; `cli` is the command line; `app` starts the
//! services and the HTTP server. The domain modules are re-exported under
//! their old paths (`warden_server::scheduler`, …).
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod demo;
pub mod error;
pub mod serve;

pub use app::{Server, start};
pub use warden_core::config::Config;
pub use warden_core::{
    alerting, alerts, auth, autoheal, breaker, checkpoints, completions, config, dashboard, events,
    evidence, fingerprint, gates, gateway, heal, health, loops, metrics, processes, registry,
    rules, scheduler, services, streams, time, validate,
};
