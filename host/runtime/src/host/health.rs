//! `warden:plugin/health`: capability `health:read`.

use serde_json::Value;
use warden_meta::Capability;

use crate::bindings::iface::health::{Host, Snapshot};
use crate::types::HostError;

use super::HostState;

impl Host for HostState {
    async fn take(&mut self) -> wasmtime::Result<Result<Snapshot, HostError>> {
        let call = self.call.tool_start("health.take", Value::Null);
        let result = match self.call.require(Capability::HealthRead) {
            Ok(()) => self.call.backend.health(&self.call.info).await,
            Err(e) => Err(e),
        };
        Ok(self.call.tool_result(call, "health.take", result, |s| {
            let queued: u64 = s.queue.iter().map(|c| c.count).sum();
            format!(
                "{queued} task(s), {} worker(s), {} breaker(s)",
                s.workers.len(),
                s.breakers.len()
            )
        }))
    }
}
