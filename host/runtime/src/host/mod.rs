//! The store data of one plugin call, and the host side of each WIT
//! interface (one file per interface).

mod args;
mod config;
mod evidence;
mod health;
mod kv;
mod log;
mod tasks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use warden_meta::{Capability, CapabilitySet};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::backend::{
    ActionRecord, ActionStatus, CallInfo, LogLevel, LogLine, LogSource, Mutation, RunEvent,
    SharedBackend,
};
use crate::error::RunError;
use crate::types::{HostError, Mode};

pub(crate) use args::strip_nul;

/// Most log lines a call keeps; the rest are counted and dropped.
pub(crate) const MAX_LOG_LINES: usize = 1000;
/// Longest log message kept, in bytes.
pub(crate) const MAX_LOG_MESSAGE: usize = 4096;

/// Everything a store holds for one call.
pub(crate) struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub call: CallState,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

// The `types` interface has no functions; its trait is empty.
impl crate::bindings::iface::types::Host for HostState {}
// Nor does the quality-gate world's `gate-types`.
impl crate::bindings::gate_types::Host for HostState {}

/// Memory, table and instance caps of one call (SPEC PL-5).
pub(crate) struct Limiter {
    pub memory_cap: usize,
    pub peak_memory: usize,
}

/// Caps on instances, tables and memories per store: generous for any
/// real component, small enough that a hostile one cannot hoard them.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 8;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            // An error (not `Ok(false)`) ends the call at once with a
            // precise message instead of a guest allocation failure.
            return Err(wasmtime::Error::new(RunError::Memory {
                mib: (self.memory_cap >> 20) as u64,
            }));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// The rules and records of one call: grants, mode, step budget, log.
pub(crate) struct CallState {
    pub info: Arc<CallInfo>,
    pub backend: SharedBackend,
    pub grants: CapabilitySet,
    pub config: Arc<BTreeMap<String, String>>,
    pub step_limit: u64,
    pub steps_used: u64,
    /// Mutating calls refused for budget; the second one ends the run.
    pub over_budget: u32,
    pub planned: u32,
    pub next_action: u32,
    pub next_call: u32,
    pub started: Instant,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u64,
    pub actions: Vec<ActionRecord>,
}

impl CallState {
    pub fn new(
        info: Arc<CallInfo>,
        backend: SharedBackend,
        grants: CapabilitySet,
        config: Arc<BTreeMap<String, String>>,
        step_limit: u64,
    ) -> Self {
        CallState {
            info,
            backend,
            grants,
            config,
            step_limit,
            steps_used: 0,
            over_budget: 0,
            planned: 0,
            next_action: 0,
            next_call: 0,
            started: Instant::now(),
            logs: Vec::new(),
            logs_dropped: 0,
            actions: Vec::new(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Denies the call unless `cap` is granted.
    fn require(&self, cap: Capability) -> Result<(), HostError> {
        if self.grants.allows(&cap) {
            Ok(())
        } else {
            Err(HostError::Denied(format!(
                "capability \"{cap}\" not granted"
            )))
        }
    }

    /// Announces a host call; returns its number.
    fn tool_start(&mut self, name: &'static str, args: Value) -> u32 {
        self.next_call += 1;
        let call = self.next_call;
        self.backend
            .event(&self.info, RunEvent::ToolStart { call, name, args });
        call
    }

    /// Reports how a host call ended and passes its result through.
    fn tool_result<T>(
        &mut self,
        call: u32,
        name: &'static str,
        result: Result<T, HostError>,
        summary: impl FnOnce(&T) -> String,
    ) -> Result<T, HostError> {
        let (ok, mut summary) = match &result {
            Ok(v) => (true, summary(v)),
            Err(e) => (false, host_error_text(e)),
        };
        truncate_utf8(&mut summary, args::MAX_SUMMARY);
        self.backend.event(
            &self.info,
            RunEvent::ToolResult {
                call,
                name,
                ok,
                summary,
            },
        );
        result
    }

    /// Adds a line to the run's log, within the caps.
    pub fn push_log(
        &mut self,
        level: LogLevel,
        source: LogSource,
        mut message: String,
        mut fields: Vec<(String, String)>,
    ) {
        if self.logs.len() >= MAX_LOG_LINES {
            self.logs_dropped += 1;
            return;
        }
        truncate_utf8(&mut message, MAX_LOG_MESSAGE);
        strip_nul(&mut message);
        for (k, v) in &mut fields {
            strip_nul(k);
            strip_nul(v);
        }
        let line = LogLine {
            at_ms: self.elapsed_ms(),
            level,
            source,
            message,
            fields,
        };
        self.backend.event(&self.info, RunEvent::Log(line.clone()));
        self.logs.push(line);
    }

    /// The one path of every mutating call (SPEC PB-2, PB-4, PL-5):
    /// arguments, grant, step budget, mode, audit. Returns the created id
    /// for `tasks.create`.
    ///
    /// The outer error ends the call (a plugin that keeps mutating after it
    /// was told its budget is spent); the inner one is the plugin's answer.
    pub async fn mutate(
        &mut self,
        cap: Capability,
        mut mutation: Mutation,
    ) -> wasmtime::Result<Result<Option<String>, HostError>> {
        let name = mutation.call();
        // The event shows a prefix of each argument: the whole of one may
        // be megabytes, and is not even checked yet.
        let call = self.tool_start(name, args::mutation_args(&mutation));
        let result = match args::check_mutation(&mut mutation) {
            Ok(()) => self.mutate_inner(cap, mutation).await,
            Err(e) => Ok(Err(e)),
        };
        match result {
            Ok(answer) => Ok(self.tool_result(call, name, answer, |id| {
                id.clone().unwrap_or_else(|| "done".to_string())
            })),
            Err(trap) => Err(trap),
        }
    }

    async fn mutate_inner(
        &mut self,
        cap: Capability,
        mutation: Mutation,
    ) -> wasmtime::Result<Result<Option<String>, HostError>> {
        if let Err(e) = self.require(cap) {
            return Ok(Err(e));
        }
        self.next_action += 1;
        let seq = self.next_action;
        let name = mutation.call();

        // Every mode spends the budget: a denied or planned call is an
        // audited action too, and without a budget a diagnose run could
        // write an action row per call until its deadline.
        if self.steps_used >= self.step_limit {
            self.over_budget += 1;
            if self.over_budget > 1 {
                return Err(wasmtime::Error::new(RunError::StepBudget {
                    steps: self.step_limit,
                }));
            }
            return Ok(self
                .record(seq, mutation, ActionStatus::OverBudget, None)
                .await
                .and(Err(HostError::StepBudgetSpent)));
        }
        self.steps_used += 1;

        if self.info.mode == Mode::Diagnose {
            let answer = HostError::Denied(format!(
                "mode diagnose is read-only: {name} was not applied"
            ));
            return Ok(self
                .record(seq, mutation, ActionStatus::Denied, None)
                .await
                .and(Err(answer)));
        }

        if self.info.mode == Mode::Plan {
            self.planned += 1;
            let placeholder = matches!(mutation, Mutation::Create { .. })
                .then(|| format!("planned-{}", self.planned));
            return Ok(self
                .record(seq, mutation, ActionStatus::Planned, placeholder.clone())
                .await
                .map(|()| placeholder));
        }

        match self.backend.apply(&self.info, seq, &mutation).await {
            Ok(applied) => {
                self.actions.push(ActionRecord {
                    seq,
                    mutation,
                    status: ActionStatus::Applied,
                    before: applied.before,
                    after: applied.after,
                    detail: applied.created_id.clone(),
                });
                if let Some(last) = self.actions.last() {
                    self.backend
                        .event(&self.info, RunEvent::Action(last.clone()));
                }
                Ok(Ok(applied.created_id))
            }
            Err(e) => {
                let text = host_error_text(&e);
                // The failure is recorded for the audit trail; if even that
                // fails the plugin still gets the original error.
                let _ = self
                    .record(seq, mutation, ActionStatus::Failed, Some(text))
                    .await;
                Ok(Err(e))
            }
        }
    }

    /// Records an action that was not applied; fails when the record cannot
    /// be written (then the plugin is told the host is unavailable).
    async fn record(
        &mut self,
        seq: u32,
        mutation: Mutation,
        status: ActionStatus,
        detail: Option<String>,
    ) -> Result<(), HostError> {
        let action = ActionRecord {
            seq,
            mutation,
            status,
            before: None,
            after: None,
            detail,
        };
        self.backend.record(&self.info, &action).await?;
        self.backend
            .event(&self.info, RunEvent::Action(action.clone()));
        self.actions.push(action);
        Ok(())
    }
}

/// One line for a host error, as logs and events show it.
pub(crate) fn host_error_text(e: &HostError) -> String {
    match e {
        HostError::Denied(m) => format!("denied: {m}"),
        HostError::StepBudgetSpent => "step budget spent".to_string(),
        HostError::NotFound(m) => format!("not found: {m}"),
        HostError::Invalid(m) => format!("invalid: {m}"),
        HostError::Unavailable(m) => format!("unavailable: {m}"),
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(" [truncated]");
}
