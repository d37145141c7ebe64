//! Integration tests of the runtime against real components from
//! `tests/plugins`.

mod bounds;
mod gate;
mod hostile;
mod load;
mod route;
mod run;

use std::sync::Arc;

use warden_runtime::meta::{CapabilitySet, Limits};
use warden_runtime::types::Mode;
use warden_runtime::{
    CallInfo, MemoryBackend, Plugin, RunOutcome, RunRequest, Runtime, RuntimeConfig,
};

pub fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::default()).expect("runtime")
}

pub fn load(rt: &Runtime, path: &str) -> Plugin {
    let bytes = std::fs::read(path).expect("plugin file");
    rt.load(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Everything a test may want to vary about a run.
pub struct Run<'a> {
    pub mode: Mode,
    pub input: &'a str,
    pub grants: &'a [&'a str],
    pub limits: Limits,
    pub workspace: &'a str,
}

impl Default for Run<'_> {
    fn default() -> Self {
        Run {
            mode: Mode::Apply,
            input: "null",
            grants: &["health:read", "tasks:read", "tasks:write", "kv"],
            limits: Limits::default(),
            workspace: "ws",
        }
    }
}

pub async fn run(
    rt: &Runtime,
    plugin: &Plugin,
    backend: &Arc<MemoryBackend>,
    spec: Run<'_>,
) -> RunOutcome {
    let req = RunRequest {
        info: CallInfo {
            run_id: format!("run-{}", plugin.meta().name),
            workspace: spec.workspace.to_string(),
            plugin: plugin.meta().name.clone(),
            version: plugin.meta().version.to_string(),
            digest: plugin.digest().to_string(),
            mode: spec.mode,
            actor: "test".to_string(),
        },
        input: spec.input.to_string(),
        granted: CapabilitySet::parse(spec.grants).expect("grants"),
        config: Arc::new(
            [("greeting".to_string(), "hi".to_string())]
                .into_iter()
                .collect(),
        ),
        limits: spec.limits,
        backend: backend.clone(),
    };
    rt.run_playbook(plugin, req).await
}

pub fn error_text(outcome: &RunOutcome) -> String {
    match &outcome.result {
        Ok(r) => panic!("expected an error, got a report: {}", r.summary),
        Err(e) => e.to_string(),
    }
}
