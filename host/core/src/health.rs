//! The system snapshot behind the `health` host interface (SPEC PL-2):
//! queue depth by state, workers, breakers, disks, error rates, top error
//! fingerprints, the database, plugins and recent runs.
//!
//! Error fingerprints of ingested logs come with the logs issue; until then
//! that list is empty, which is the truth about this host.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use warden_runtime::types::{
    Breaker, Database, Disk, HealthSnapshot, PluginState, RunStats, StateCount, Worker,
};
use warden_store::Store;

use crate::error::Result;
use crate::registry::Registry;

/// A running task with no event for this long counts as stuck.
pub const STUCK_AFTER_MS: i64 = 15 * 60 * 1000;

/// Builds snapshots.
pub struct Health {
    store: Store,
    registry: Arc<Registry>,
    disk_paths: Vec<PathBuf>,
    /// Configured model providers: each shows as a breaker, closed until
    /// it first fails.
    providers: Vec<String>,
}

impl Health {
    /// Lists these model providers among the breakers.
    pub fn with_providers(mut self, names: Vec<String>) -> Self {
        self.providers = names;
        self
    }

    /// Watches the disks holding `paths`.
    pub fn new(store: Store, registry: Arc<Registry>, disk_paths: Vec<PathBuf>) -> Self {
        Health {
            store,
            registry,
            disk_paths,
            providers: Vec::new(),
        }
    }

    /// The snapshot of one workspace.
    pub async fn snapshot(&self, workspace: &str) -> Result<HealthSnapshot> {
        let started = Instant::now();
        let ping = self.store.ping().await;
        let database = Database {
            reachable: ping.is_ok(),
            dialect: self.store.dialect().name().to_string(),
            latency_us: ping
                .map(|d| d.as_micros() as u64)
                .unwrap_or_else(|_| started.elapsed().as_micros() as u64),
        };
        let now = warden_store::now_ms();
        let (mut mode, mut workers, mut breakers) = ("normal".to_string(), Vec::new(), Vec::new());
        let (queue, stuck, runs) = if database.reachable {
            if let Some(s) = self.store.get_settings(workspace).await? {
                mode = s.mode.to_string();
            }
            workers = self
                .store
                .list_workers(workspace, now - 24 * 3_600_000)
                .await?
                .into_iter()
                .map(|w| Worker {
                    id: w.id,
                    last_heartbeat_age_secs: ((now - w.last_heartbeat_at).max(0) / 1000) as u64,
                    active_leases: w.active_leases.clamp(0, i64::from(u32::MAX)) as u32,
                })
                .collect();
            // A plugin runs for one workspace: it sees the host-wide
            // breakers and its workspace's gates' and playbooks', never
            // another workspace's (SPEC SE-1, SE-4).
            let providers = self.providers.iter().map(String::as_str);
            breakers = crate::breaker::with_providers(self.store.list_breakers().await?, providers)
                .into_iter()
                .filter(|b| crate::breaker::breaker_bears_on(&b.name, workspace))
                .map(|b| Breaker {
                    name: b.name,
                    state: b.state,
                    consecutive_failures: b.failures.clamp(0, i64::from(u32::MAX)) as u32,
                })
                .collect();
            let queue = self
                .store
                .count_tasks_by_state(workspace)
                .await?
                .into_iter()
                .map(|(state, count)| StateCount {
                    state,
                    count: count.max(0) as u64,
                })
                .collect();
            let stuck = self
                .store
                .count_stuck_tasks(workspace, now, STUCK_AFTER_MS)
                .await?;
            let counts = self
                .store
                .count_runs_since(workspace, now - 3_600_000)
                .await?;
            let runs = RunStats {
                succeeded_1h: counts.succeeded as u32,
                failed_1h: counts.failed as u32,
                interrupted_1h: counts.interrupted as u32,
            };
            (queue, stuck as u32, runs)
        } else {
            (
                Vec::new(),
                0,
                RunStats {
                    succeeded_1h: 0,
                    failed_1h: 0,
                    interrupted_1h: 0,
                },
            )
        };
        Ok(HealthSnapshot {
            mode,
            queue,
            stuck_tasks: stuck,
            workers,
            breakers,
            disks: self.disk_paths.iter().filter_map(|p| disk(p)).collect(),
            error_rate_per_min: 0.0,
            top_errors: Vec::new(),
            database,
            plugins: self.plugin_states(),
            runs,
        })
    }

    fn plugin_states(&self) -> Vec<PluginState> {
        let mut states = Vec::new();
        for name in self.registry.names() {
            for entry in self.registry.versions(&name) {
                let digest = entry.plugin.digest();
                states.push(PluginState {
                    name: name.clone(),
                    version: entry.plugin.meta().version.to_string(),
                    state: if self.registry.is_live(digest) {
                        "active".to_string()
                    } else {
                        "retired".to_string()
                    },
                    reason: None,
                });
            }
        }
        for r in self.registry.rejected() {
            states.push(PluginState {
                name: r.source.clone(),
                version: String::new(),
                state: "rejected".to_string(),
                reason: Some(r.reason),
            });
        }
        states.retain(|s| s.state != "retired");
        states
    }
}

/// Size and free space of the file system holding `path`.
pub fn disk(path: &Path) -> Option<Disk> {
    let stat = rustix::fs::statvfs(path).ok()?;
    let frsize = stat.f_frsize.max(1);
    Some(Disk {
        path: path.display().to_string(),
        total_bytes: stat.f_blocks.saturating_mul(frsize),
        free_bytes: stat.f_bavail.saturating_mul(frsize),
    })
}
