//! An example Warden worker (SPEC TS-2): claims task stages over the HTTP
//! API with a lease, reports events for each (`status`, `tool_start`,
//! `tool_result`, `token`), heartbeats when work outlasts a third of the
//! lease, and completes the stage with its fencing token, or fails it.
//!
//! The work itself is simulated (a sleep), so the crate doubles as a load
//! generator: the `warden-worker` binary runs it from the command line, and
//! the scheduler benchmark and end-to-end tests drive it as a library.
//!
//! ```no_run
//! use std::time::Duration;
//! use warden_example_worker::{Client, Worker, WorkerConfig};
//!
//! # async fn example() -> Result<(), warden_example_worker::Error> {
//! let client = Client::new("http://127.0.0.1:8080", "my-agent-token")?;
//! let config = WorkerConfig {
//!     workspace: "acme".into(),
//!     concurrency: 8,
//!     work: Duration::from_millis(50),
//!     target_tasks: Some(100),
//!     ..WorkerConfig::default()
//! };
//! let summary = Worker::new(client, config)?.run(std::future::pending()).await;
//! println!("{} stages completed", summary.stats.stages_completed);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod client;
mod error;
mod worker;

pub use client::{Claim, Claims, Client, Idle, Outcome, Task};
pub use error::{Error, Result};
pub use worker::{Stats, Summary, Worker, WorkerConfig, percentile};
