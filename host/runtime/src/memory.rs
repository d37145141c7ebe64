//! An in-memory [`Backend`]: the fake host of `warden-testkit` and of this
//! crate's own tests. It follows the same rules as the server's database
//! backend (workspaces isolated, state transitions checked, every applied
//! action recorded) so that a plugin behaves the same against both.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use crate::backend::{ActionRecord, ActionStatus, Applied, Backend, CallInfo, Mutation, RunEvent};
use crate::types::{
    Database, EvidenceFile, EvidenceUsage, HealthSnapshot, HostError, RunStats, StateCount,
    TaskFilter, TaskSummary, Worker,
};

/// A task as the fake host keeps it.
#[derive(Clone, Debug)]
pub struct MemoryTask {
    /// Workspace.
    pub workspace: String,
    /// The task as plugins see it.
    pub summary: TaskSummary,
    /// Dedup key it was created with.
    pub dedup_key: Option<String>,
    /// When the lease of a running task expires.
    pub lease_expires: Option<Instant>,
}

/// An evidence file as the fake host keeps it: only its name, size, age
/// and whether it was compressed (no bytes on disk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryEvidence {
    /// Workspace.
    pub workspace: String,
    /// Relative path, e.g. `runs/r1.json`.
    pub path: String,
    /// Size before compression.
    pub bytes: u64,
    /// Seconds since it was written.
    pub age_secs: u64,
    /// True once `evidence.compress` was applied to it.
    pub compressed: bool,
}

/// Size of the fake evidence file system.
const FAKE_DISK_BYTES: u64 = 100 << 30;

#[derive(Default)]
struct Inner {
    tasks: Vec<MemoryTask>,
    evidence: Vec<MemoryEvidence>,
    evidence_used_pct: f64,
    kv: BTreeMap<(String, String, String), Vec<u8>>,
    actions: Vec<(String, ActionRecord)>,
    events: Vec<(String, RunEvent)>,
    workers: Vec<Worker>,
    next_id: u64,
}

impl Inner {
    /// `evidence.compress` of the file at `path`.
    fn compress_evidence(&mut self, call: &CallInfo, path: &str) -> Result<Applied, HostError> {
        let file = self
            .evidence
            .iter_mut()
            .find(|f| f.workspace == call.workspace && f.path == *path && !f.compressed)
            .ok_or_else(|| HostError::NotFound(format!("no evidence file \"{path}\"")))?;
        file.compressed = true;
        // JSON compresses about tenfold with zstd; the fake says so.
        let compressed_bytes = file.bytes / 10;
        Ok(Applied {
            before: Some(json!({ "path": path, "bytes": file.bytes })),
            after: Some(json!({
                "path": format!("{path}.zst"),
                "original_bytes": file.bytes,
                "compressed_bytes": compressed_bytes,
            })),
            created_id: None,
        })
    }

    /// `tasks.create`: a new queued task at the first stage, or the
    /// unfinished task that holds `dedup_key` already.
    fn create_task(
        &mut self,
        call: &CallInfo,
        title: &str,
        priority: &str,
        dedup_key: Option<&str>,
    ) -> Applied {
        let existing = dedup_key.and_then(|k| {
            self.tasks.iter().find(|t| {
                t.workspace == call.workspace
                    && t.dedup_key.as_deref() == Some(k)
                    && !matches!(t.summary.state.as_str(), "done" | "cancelled" | "dead")
            })
        });
        let id = match existing {
            Some(t) => t.summary.id.clone(),
            None => {
                self.next_id += 1;
                let id = format!("t{}", self.next_id);
                self.tasks.push(MemoryTask {
                    workspace: call.workspace.clone(),
                    summary: TaskSummary {
                        id: id.clone(),
                        title: title.to_string(),
                        stage: "spec".into(),
                        state: "queued".into(),
                        priority: priority.to_string(),
                        attempts: 0,
                        age_secs: 0,
                        last_event_age_secs: 0,
                        last_error: None,
                        lease_expired: false,
                    },
                    dedup_key: dedup_key.map(String::from),
                    lease_expires: None,
                });
                id
            }
        };
        Applied {
            before: None,
            after: Some(json!({ "id": id })),
            created_id: Some(id),
        }
    }

    /// A mutation of an existing task (requeue, reset, block, unblock),
    /// its state transition checked.
    fn change_task(&mut self, call: &CallInfo, mutation: &Mutation) -> Result<Applied, HostError> {
        let id = mutation.target().unwrap_or_default();
        let task = self
            .tasks
            .iter_mut()
            .find(|t| t.workspace == call.workspace && t.summary.id == id)
            .ok_or_else(|| not_found(id))?;
        let before = snapshot_of(&task.summary);
        let s = &mut task.summary;
        match mutation {
            Mutation::Requeue { .. } | Mutation::Reset { .. } => {
                if !matches!(
                    s.state.as_str(),
                    "running" | "failed" | "blocked" | "queued"
                ) {
                    return Err(HostError::Invalid(format!(
                        "task {id} is {} and cannot be requeued",
                        s.state
                    )));
                }
                s.state = "queued".into();
                s.lease_expired = false;
                if matches!(mutation, Mutation::Reset { .. }) {
                    s.attempts = 0;
                    s.last_error = None;
                }
            }
            Mutation::Block { .. } => s.state = "blocked".into(),
            Mutation::Unblock { .. } => {
                if s.state != "blocked" {
                    return Err(HostError::Invalid(format!("task {id} is not blocked")));
                }
                s.state = "queued".into();
            }
            Mutation::Create { .. } | Mutation::CompressEvidence { .. } => {}
        }
        s.last_event_age_secs = 0;
        Ok(Applied {
            before: Some(before),
            after: Some(snapshot_of(s)),
            created_id: None,
        })
    }
}

/// In-memory tasks, kv, actions and events.
#[derive(Default)]
pub struct MemoryBackend {
    inner: Mutex<Inner>,
}

impl MemoryBackend {
    /// An empty host.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds a task in `workspace` and returns its id.
    pub fn add_task(&self, workspace: &str, title: &str, stage: &str, state: &str) -> String {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = format!("t{}", inner.next_id);
        inner.tasks.push(MemoryTask {
            workspace: workspace.to_string(),
            summary: TaskSummary {
                id: id.clone(),
                title: title.to_string(),
                stage: stage.to_string(),
                state: state.to_string(),
                priority: "normal".to_string(),
                attempts: 0,
                age_secs: 0,
                last_event_age_secs: 0,
                last_error: None,
                lease_expired: false,
            },
            dedup_key: None,
            lease_expires: None,
        });
        id
    }

    /// Makes a task look stuck: running with an expired lease and no event
    /// for `idle`.
    pub fn make_stuck(&self, id: &str, idle: Duration) {
        let mut inner = self.lock();
        if let Some(t) = inner.tasks.iter_mut().find(|t| t.summary.id == id) {
            t.summary.state = "running".into();
            t.summary.last_event_age_secs = idle.as_secs();
            t.lease_expires = Instant::now().checked_sub(Duration::from_secs(1));
            t.summary.lease_expired = true;
        }
    }

    /// Adds a worker with its heartbeat age.
    pub fn add_worker(&self, id: &str, heartbeat_age_secs: u64) {
        self.lock().workers.push(Worker {
            id: id.to_string(),
            last_heartbeat_age_secs: heartbeat_age_secs,
            active_leases: 0,
        });
    }

    /// Adds an evidence file of `bytes`, written `age_secs` ago.
    pub fn add_evidence(&self, workspace: &str, path: &str, bytes: u64, age_secs: u64) {
        self.lock().evidence.push(MemoryEvidence {
            workspace: workspace.to_string(),
            path: path.to_string(),
            bytes,
            age_secs,
            compressed: false,
        });
    }

    /// Sets how full the fake evidence file system is, in percent.
    pub fn set_evidence_used_pct(&self, pct: f64) {
        self.lock().evidence_used_pct = pct;
    }

    /// Every evidence file of every workspace.
    pub fn evidence(&self) -> Vec<MemoryEvidence> {
        self.lock().evidence.clone()
    }

    /// Every task of every workspace.
    pub fn tasks(&self) -> Vec<MemoryTask> {
        self.lock().tasks.clone()
    }

    /// One task.
    pub fn task(&self, id: &str) -> Option<TaskSummary> {
        self.lock()
            .tasks
            .iter()
            .find(|t| t.summary.id == id)
            .map(|t| t.summary.clone())
    }

    /// Every recorded action, with its run id.
    pub fn actions(&self) -> Vec<(String, ActionRecord)> {
        self.lock().actions.clone()
    }

    /// Every event, with its run id.
    pub fn events(&self) -> Vec<(String, RunEvent)> {
        self.lock().events.clone()
    }

    /// A kv value.
    pub fn kv_value(&self, workspace: &str, plugin: &str, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .kv
            .get(&(workspace.into(), plugin.into(), key.into()))
            .cloned()
    }
}

fn not_found(id: &str) -> HostError {
    HostError::NotFound(format!("task {id}"))
}

fn snapshot_of(t: &TaskSummary) -> serde_json::Value {
    json!({ "state": t.state, "stage": t.stage, "attempts": t.attempts, "last_error": t.last_error })
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn health(&self, call: &CallInfo) -> Result<HealthSnapshot, HostError> {
        let inner = self.lock();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for t in inner.tasks.iter().filter(|t| t.workspace == call.workspace) {
            *counts.entry(t.summary.state.clone()).or_default() += 1;
        }
        let stuck = inner
            .tasks
            .iter()
            .filter(|t| t.workspace == call.workspace && t.summary.lease_expired)
            .count() as u32;
        Ok(HealthSnapshot {
            mode: "normal".into(),
            queue: counts
                .into_iter()
                .map(|(state, count)| StateCount { state, count })
                .collect(),
            stuck_tasks: stuck,
            workers: inner.workers.clone(),
            breakers: Vec::new(),
            disks: Vec::new(),
            error_rate_per_min: 0.0,
            top_errors: Vec::new(),
            database: Database {
                reachable: true,
                dialect: "memory".into(),
                latency_us: 0,
            },
            plugins: Vec::new(),
            runs: RunStats {
                succeeded_1h: 0,
                failed_1h: 0,
                interrupted_1h: 0,
            },
        })
    }

    async fn list_tasks(
        &self,
        call: &CallInfo,
        filter: &TaskFilter,
    ) -> Result<Vec<TaskSummary>, HostError> {
        let inner = self.lock();
        Ok(inner
            .tasks
            .iter()
            .filter(|t| t.workspace == call.workspace)
            .filter(|t| filter.states.is_empty() || filter.states.contains(&t.summary.state))
            .filter(|t| {
                filter
                    .stuck_for_secs
                    .is_none_or(|s| t.summary.last_event_age_secs >= s)
            })
            .filter(|t| !filter.lease_expired || t.summary.lease_expired)
            .take(filter.limit as usize)
            .map(|t| t.summary.clone())
            .collect())
    }

    async fn get_task(&self, call: &CallInfo, id: &str) -> Result<TaskSummary, HostError> {
        self.lock()
            .tasks
            .iter()
            .find(|t| t.workspace == call.workspace && t.summary.id == id)
            .map(|t| t.summary.clone())
            .ok_or_else(|| not_found(id))
    }

    async fn apply(
        &self,
        call: &CallInfo,
        seq: u32,
        mutation: &Mutation,
    ) -> Result<Applied, HostError> {
        let mut inner = self.lock();
        let applied = match mutation {
            Mutation::CompressEvidence { path } => inner.compress_evidence(call, path)?,
            Mutation::Create {
                title,
                priority,
                dedup_key,
                ..
            } => inner.create_task(call, title, priority, dedup_key.as_deref()),
            _ => inner.change_task(call, mutation)?,
        };
        let record = ActionRecord {
            seq,
            mutation: mutation.clone(),
            status: ActionStatus::Applied,
            before: applied.before.clone(),
            after: applied.after.clone(),
            detail: applied.created_id.clone(),
        };
        inner.actions.push((call.run_id.clone(), record));
        Ok(applied)
    }

    async fn evidence_usage(&self, _call: &CallInfo) -> Result<EvidenceUsage, HostError> {
        let pct = self.lock().evidence_used_pct;
        Ok(EvidenceUsage {
            path: "/fake/evidence".to_string(),
            total_bytes: FAKE_DISK_BYTES,
            free_bytes: (FAKE_DISK_BYTES as f64 * (100.0 - pct) / 100.0) as u64,
            used_pct: pct,
            recording_paused: false,
        })
    }

    async fn evidence_list_old(
        &self,
        call: &CallInfo,
        older_than_secs: u64,
    ) -> Result<Vec<EvidenceFile>, HostError> {
        let mut files: Vec<EvidenceFile> = self
            .lock()
            .evidence
            .iter()
            .filter(|f| {
                f.workspace == call.workspace && !f.compressed && f.age_secs >= older_than_secs
            })
            .map(|f| EvidenceFile {
                path: f.path.clone(),
                bytes: f.bytes,
                age_secs: f.age_secs,
            })
            .collect();
        files.sort_by(|a, b| b.age_secs.cmp(&a.age_secs).then(a.path.cmp(&b.path)));
        Ok(files)
    }

    async fn record(&self, call: &CallInfo, action: &ActionRecord) -> Result<(), HostError> {
        self.lock()
            .actions
            .push((call.run_id.clone(), action.clone()));
        Ok(())
    }

    async fn kv_get(&self, call: &CallInfo, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.kv_value(&call.workspace, &call.plugin, key))
    }

    async fn kv_set(&self, call: &CallInfo, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.lock().kv.insert(
            (call.workspace.clone(), call.plugin.clone(), key.to_string()),
            value.to_vec(),
        );
        Ok(())
    }

    async fn kv_delete(&self, call: &CallInfo, key: &str) -> Result<bool, HostError> {
        Ok(self
            .lock()
            .kv
            .remove(&(call.workspace.clone(), call.plugin.clone(), key.to_string()))
            .is_some())
    }

    async fn kv_list(&self, call: &CallInfo, prefix: &str) -> Result<Vec<String>, HostError> {
        Ok(self
            .lock()
            .kv
            .keys()
            .filter(|(w, p, k)| *w == call.workspace && *p == call.plugin && k.starts_with(prefix))
            .map(|(_, _, k)| k.clone())
            .collect())
    }

    fn event(&self, call: &CallInfo, event: RunEvent) {
        self.lock().events.push((call.run_id.clone(), event));
    }
}
