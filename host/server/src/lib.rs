//! The Warden control plane: domain services, the HTTP API and the
//! `warden` binary.
//!
//! One module per domain: `registry` (plugins, pins, grants), `heal`
//! (playbook runs), `events` (run event streams), `health` (snapshots),
//! `auth` (tokens and roles), `scheduler` (tasks), `gates` (quality
//! gates), `gateway` (the model gateway), `breaker` (circuit breakers), `processes` (managed processes),
//! `dashboard` (what the status endpoints and the dashboard show); `api` only translates HTTP to those and back;
//! `cli` is the command line; `app` wires everything together.
#![forbid(unsafe_code)]

pub mod alerting;
pub mod alerts;
pub mod api;
pub mod app;
pub mod auth;
pub mod autoheal;
pub mod breaker;
pub mod checkpoints;
pub mod cli;
pub mod completions;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod events;
pub mod evidence;
pub mod fingerprint;
pub mod gates;
pub mod gateway;
pub mod heal;
pub mod health;
pub mod loops;
pub mod metrics;
pub mod processes;
pub mod registry;
pub mod rules;
pub mod scheduler;
pub mod serve;
pub mod validate;

pub use app::{Server, start};
pub use config::Config;
