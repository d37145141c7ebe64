//! The playbook world: one `run` call under its limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use warden_meta::{CapabilitySet, Limits};
use wasmtime::Store;

use crate::backend::{ActionRecord, CallInfo, LogLine, SharedBackend};
use crate::bindings::PlaybookPre;
use crate::call::{CallSetup, Entry, Usage};
use crate::engine::{EffectiveLimits, Runtime};
use crate::error::RunError;
use crate::host::{HostState, strip_nul};
use crate::plugin::{Exports, Plugin};
use crate::types::{Report, RunContext};

/// What to run and with which rights.
pub struct RunRequest {
    /// Who runs what; `info.mode` is the run's mode.
    pub info: CallInfo,
    /// The input JSON (`null` when none).
    pub input: String,
    /// What the operator granted this plugin in this workspace; the run
    /// gets the intersection with what the plugin requests.
    pub granted: CapabilitySet,
    /// The plugin's configuration values in this workspace.
    pub config: Arc<BTreeMap<String, String>>,
    /// The operator's limit overrides for this plugin.
    pub limits: Limits,
    /// Data and records.
    pub backend: SharedBackend,
}

/// How a call ended and what it left behind.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report, or why there is none.
    pub result: Result<Report, RunError>,
    /// Every mutating call, in order (applied, planned or refused).
    pub actions: Vec<ActionRecord>,
    /// The log: `log` lines, then captured stdout and stderr.
    pub logs: Vec<LogLine>,
    /// Lines dropped over the cap.
    pub logs_dropped: u64,
    /// Resources used.
    pub usage: Usage,
    /// The limits that applied.
    pub limits: EffectiveLimits,
}

impl Runtime {
    /// Runs a playbook's `run` export once, in a fresh instance, under its
    /// limits. Never panics and never fails the host: every way the call
    /// can end is in the outcome.
    pub async fn run_playbook(&self, plugin: &Plugin, req: RunRequest) -> RunOutcome {
        let entry = PlaybookRun {
            ctx: RunContext {
                run_id: req.info.run_id.clone(),
                workspace: req.info.workspace.clone(),
                mode: req.info.mode,
            },
            input: req.input,
        };
        let setup = CallSetup {
            info: req.info,
            granted: req.granted,
            config: req.config,
            limits: req.limits,
            backend: req.backend,
        };
        let ended = self.call(plugin, setup, &entry).await;
        RunOutcome {
            result: ended.result,
            actions: ended.actions,
            logs: ended.logs,
            logs_dropped: ended.logs_dropped,
            usage: ended.usage,
            limits: ended.limits,
        }
    }
}

/// The `run` export of the playbook world, with its arguments.
struct PlaybookRun {
    ctx: RunContext,
    input: String,
}

impl Entry for PlaybookRun {
    type Pre = PlaybookPre<HostState>;
    type Output = Report;
    const WORLD: &'static str = "playbook";
    const RESERVED_SLOTS: bool = false;

    fn pre(exports: &Exports) -> Option<&Self::Pre> {
        match exports {
            Exports::Playbook(pre) => Some(pre),
            _ => None,
        }
    }

    async fn call(
        &self,
        pre: &Self::Pre,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Result<Report, String>> {
        let instance = pre.instantiate_async(&mut *store).await?;
        instance.call_run(&mut *store, &self.ctx, &self.input).await
    }

    /// Bytes of the report's strings.
    fn output_bytes(report: &Report) -> usize {
        report.summary.len()
            + report
                .findings
                .iter()
                .map(|f| {
                    f.code.len() + f.summary.len() + f.evidence.as_ref().map_or(0, String::len) + 16
                })
                .sum::<usize>()
            + report.manual_actions.iter().map(String::len).sum::<usize>()
    }

    fn strip_nul(report: &mut Report) {
        strip_nul(&mut report.summary);
        for f in &mut report.findings {
            strip_nul(&mut f.code);
            strip_nul(&mut f.summary);
            if let Some(e) = &mut f.evidence {
                strip_nul(e);
            }
        }
        report.manual_actions.iter_mut().for_each(strip_nul);
    }
}
