//! End-to-end tests of the `warden` binary and server: real HTTP on
//! loopback, real SQLite (and PostgreSQL where a test says so), real
//! compiled plugins from `tests/plugins` and `examples/`.
#![expect(
    clippy::unwrap_used,
    reason = "a test helper that cannot go on fails the test loudly"
)]

mod accounting;
mod alerting;
mod api;
mod bounds;
mod crash;
mod dashboard;
mod disk;
mod fresh;
mod gates;
mod gateway;
mod gateway_limits;
mod hostile;
mod isolation;
mod lifecycle;
mod logs;
mod mcp;
mod metrics;
mod openapi;
mod plugindir;
mod processes;
mod quickstart;
mod repair;
mod rules;
mod runs;
mod scheduler;
mod secrets;
mod server_bounds;
mod streams;
mod support;
mod threads;

pub use support::*;
