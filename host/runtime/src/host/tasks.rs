//! `warden:plugin/tasks`: `tasks:read` for `list` and `get`, `tasks:write`
//! for the audited mutations.

use serde_json::json;
use warden_meta::Capability;

use super::args::{self, MAX_ID};

use crate::backend::Mutation;
use crate::bindings::iface::tasks::{Host, NewTask, TaskFilter};
use crate::types::{HostError, TaskSummary};

use super::HostState;

/// Most tasks one `list` returns.
const MAX_LIST: u32 = 500;

impl HostState {
    async fn mutate_unit(&mut self, mutation: Mutation) -> wasmtime::Result<Result<(), HostError>> {
        Ok(self
            .call
            .mutate(Capability::TasksWrite, mutation)
            .await?
            .map(|_| ()))
    }
}

impl Host for HostState {
    async fn list(
        &mut self,
        mut filter: TaskFilter,
    ) -> wasmtime::Result<Result<Vec<TaskSummary>, HostError>> {
        filter.limit = match filter.limit {
            0 => 100,
            n => n.min(MAX_LIST),
        };
        let call = self.call.tool_start(
            "tasks.list",
            json!({
                "states": args::abridged_states(&filter.states),
                "stuck_for_secs": filter.stuck_for_secs,
                "lease_expired": filter.lease_expired,
                "limit": filter.limit,
            }),
        );
        let result = match args::check_states(&filter.states)
            .and_then(|()| self.call.require(Capability::TasksRead))
        {
            Ok(()) => self.call.backend.list_tasks(&self.call.info, &filter).await,
            Err(e) => Err(e),
        };
        Ok(self.call.tool_result(call, "tasks.list", result, |t| {
            format!("{} task(s)", t.len())
        }))
    }

    async fn get(&mut self, id: String) -> wasmtime::Result<Result<TaskSummary, HostError>> {
        let call = self
            .call
            .tool_start("tasks.get", json!({ "id": args::abridged(&id) }));
        let result = match args::check_name("task id", &id, MAX_ID)
            .and_then(|()| self.call.require(Capability::TasksRead))
        {
            Ok(()) => self.call.backend.get_task(&self.call.info, &id).await,
            Err(e) => Err(e),
        };
        Ok(self.call.tool_result(call, "tasks.get", result, |t| {
            format!("{} is {} at {}", t.id, t.state, t.stage)
        }))
    }

    async fn requeue(
        &mut self,
        id: String,
        reason: String,
    ) -> wasmtime::Result<Result<(), HostError>> {
        self.mutate_unit(Mutation::Requeue { id, reason }).await
    }

    async fn reset(
        &mut self,
        id: String,
        reason: String,
    ) -> wasmtime::Result<Result<(), HostError>> {
        self.mutate_unit(Mutation::Reset { id, reason }).await
    }

    async fn block(
        &mut self,
        id: String,
        reason: String,
    ) -> wasmtime::Result<Result<(), HostError>> {
        self.mutate_unit(Mutation::Block { id, reason }).await
    }

    async fn unblock(
        &mut self,
        id: String,
        reason: String,
    ) -> wasmtime::Result<Result<(), HostError>> {
        self.mutate_unit(Mutation::Unblock { id, reason }).await
    }

    async fn create(&mut self, task: NewTask) -> wasmtime::Result<Result<String, HostError>> {
        let mutation = Mutation::Create {
            title: task.title,
            body: task.body,
            priority: task.priority,
            dedup_key: task.dedup_key,
        };
        Ok(self
            .call
            .mutate(Capability::TasksWrite, mutation)
            .await?
            .map(Option::unwrap_or_default))
    }
}
