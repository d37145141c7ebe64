//! The Warden control plane's domain: everything the host decides and
//! keeps, with no HTTP server in it (the `warden` binary's HTTP API, in
//! warden-server, translates requests to these services and back).
//!
//! One module per domain: `registry` (plugins, pins, grants), `heal`
//! (playbook runs), `events` (run event streams), `health` (snapshots),
//! `auth` (tokens and roles), `scheduler` (tasks), `gates` (quality
//! gates), `gateway` (the model gateway), `breaker` (circuit breakers),
//! `processes` (managed processes), `threads` (agent threads), `alerts`
//! and `alerting` (raising and notifying), `autoheal` (playbooks that
//! run by themselves), `dashboard` and `metrics` (read models);
//! `services` builds them all.
#![forbid(unsafe_code)]

pub mod alerting;
pub mod alerts;
pub mod auth;
pub mod autoheal;
pub mod breaker;
pub mod checkpoints;
pub mod completions;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod evidence;
pub mod fingerprint;
pub mod gates;
pub mod gateway;
pub mod heal;
pub mod health;
pub mod kv;
pub mod leader;
pub mod loops;
pub mod metrics;
pub mod outbound;
pub mod processes;
pub mod registry;
pub mod rules;
pub mod scheduler;
pub mod services;
pub mod streams;
pub mod sync;
pub mod threads;
pub mod time;
pub mod validate;
pub mod wake;

pub use config::Config;
pub use error::{Error, Result};
pub use services::App;
