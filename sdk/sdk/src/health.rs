//! The system snapshot. Needs capability `health:read`.

use crate::HostError;
use crate::wit::playbook::warden::plugin::health as wit;

pub use wit::{
    Breaker, Database, Disk, ErrorFingerprint, PluginState, RunStats, Snapshot, StateCount, Worker,
};

/// Queue depth by state, workers, breakers, disks, error rates, top error
/// fingerprints, database and plugin states, as of now.
pub fn snapshot() -> Result<Snapshot, HostError> {
    wit::take().map_err(Into::into)
}

impl Snapshot {
    /// How many tasks are in `state` (0 when none).
    pub fn count(&self, state: &str) -> u64 {
        self.queue
            .iter()
            .find(|c| c.state == state)
            .map_or(0, |c| c.count)
    }
}

impl Disk {
    /// Free space as a percentage of the total (100 when the size is unknown).
    pub fn free_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 100.0;
        }
        self.free_bytes as f64 * 100.0 / self.total_bytes as f64
    }
}
