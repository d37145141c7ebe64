//! `warden:plugin/log`: always available.

use crate::backend::{LogLevel, LogSource};
use crate::bindings::iface::log::{Host, Level};

use super::{HostState, MAX_LOG_MESSAGE};

/// Most key/value fields kept per line.
const MAX_FIELDS: usize = 16;

impl Host for HostState {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        mut fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        fields.truncate(MAX_FIELDS);
        for (k, v) in &mut fields {
            super::truncate_utf8(k, 128);
            super::truncate_utf8(v, MAX_LOG_MESSAGE / 4);
        }
        self.call
            .push_log(level, LogSource::Plugin, message, fields);
        Ok(())
    }
}
