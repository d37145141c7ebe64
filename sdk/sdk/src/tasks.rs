//! Tasks of the run's workspace.
//!
//! [`list`] and [`get`] need `tasks:read`. The others need `tasks:write`:
//! each is an audited action that spends one step of the run's budget, is
//! denied in `diagnose` mode and only recorded (not applied) in `plan` mode.

use crate::HostError;
use crate::wit::playbook::warden::plugin::tasks as wit;

pub use crate::wit::playbook::warden::plugin::types::TaskSummary as Task;
pub use wit::NewTask;

/// Which tasks [`list`] returns.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    states: Vec<String>,
    stuck_for_secs: Option<u64>,
    lease_expired: bool,
    limit: u32,
}

impl Filter {
    /// Every task, up to 100.
    pub fn new() -> Self {
        Filter {
            limit: 100,
            ..Filter::default()
        }
    }

    /// Only tasks in one of these states.
    pub fn states(mut self, states: &[&str]) -> Self {
        self.states = states.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Only tasks without any event for at least `secs` seconds.
    pub fn stuck_for(mut self, secs: u64) -> Self {
        self.stuck_for_secs = Some(secs);
        self
    }

    /// Only running tasks whose lease has expired.
    pub fn lease_expired(mut self) -> Self {
        self.lease_expired = true;
        self
    }

    /// At most `n` tasks (the host caps this at 500).
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = n;
        self
    }
}

/// Tasks matching `filter`, oldest event first.
pub fn list(filter: &Filter) -> Result<Vec<Task>, HostError> {
    wit::list(&wit::TaskFilter {
        states: filter.states.clone(),
        stuck_for_secs: filter.stuck_for_secs,
        lease_expired: filter.lease_expired,
        limit: filter.limit,
    })
    .map_err(Into::into)
}

/// One task by id.
pub fn get(id: &str) -> Result<Task, HostError> {
    wit::get(id).map_err(Into::into)
}

/// Puts a running or failed task back in the queue at its stage.
pub fn requeue(id: &str, reason: &str) -> Result<(), HostError> {
    wit::requeue(id, reason).map_err(Into::into)
}

/// Like [`requeue`], and also clears its attempts and last error.
pub fn reset(id: &str, reason: &str) -> Result<(), HostError> {
    wit::reset(id, reason).map_err(Into::into)
}

/// Blocks a task so that no worker claims it.
pub fn block(id: &str, reason: &str) -> Result<(), HostError> {
    wit::block(id, reason).map_err(Into::into)
}

/// Unblocks a blocked task.
pub fn unblock(id: &str, reason: &str) -> Result<(), HostError> {
    wit::unblock(id, reason).map_err(Into::into)
}

/// Creates a task; with a `dedup_key`, an unfinished task with the same key
/// is reused. Returns its id (`planned-N` in `plan` mode).
pub fn create(task: &NewTask) -> Result<String, HostError> {
    wit::create(task).map_err(Into::into)
}
