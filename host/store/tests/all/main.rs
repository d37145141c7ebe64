//! The conformance suite of `warden-store` (SPEC ST-1): every test runs
//! twice, on a fresh SQLite file and in a fresh PostgreSQL schema, and must
//! give the same outcome on both.
//!
//! PostgreSQL comes from `WARDEN_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it is unreachable the
//! PostgreSQL half is skipped with a warning, or fails when `CI=true`.

#[macro_use]
mod common;

mod alerts;
mod audit;
mod breakers;
mod checkpoints;
mod concurrency;
mod dashboard;
mod events_actions;
mod gates;
mod gateway;
mod kv;
mod maintenance;
mod notifications;
mod pins_grants;
mod plugins;
mod pool;
mod runs;
mod settings;
mod stages;
mod task_events;
mod tasks;
mod threads;
mod tokens;
mod usage;
mod workers;
