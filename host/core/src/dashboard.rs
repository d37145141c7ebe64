//! What the status endpoints and the dashboard show (SPEC TS-8, OB-1,
//! OB-2): one snapshot per workspace, gathered from the store and the
//! scheduler, and which workspaces a caller may see. The API renders
//! snapshots as JSON (`api::status`); the page itself is in `assets/`.
//!
//! A snapshot is a handful of indexed queries; the live streams of one
//! workspace and window share one, recomputed about once a second however
//! many dashboards are open (`api::status::StatusStreams`), and send it
//! only when it changed.

use std::collections::BTreeSet;

use warden_store::alerts::AlertRow;
use warden_store::breakers::BreakerRow;
use warden_store::gates::{GateStats, StageGateStats};
use warden_store::gateway::{UsageDim, UsageGroup};
use warden_store::runs::{RunQuery, RunRow};
use warden_store::settings::SettingsRow;
use warden_store::stages::{FailureCount, StageDuration};
use warden_store::tasks::{TaskQuery, TaskRow, TaskState};
use warden_store::workers::WorkerRow;

use crate::auth::Principal;
pub use crate::breaker::breaker_bears_on;
use crate::error::Result;
use crate::scheduler::Idle;
use crate::services::App;

/// Tasks in the recent activity list (SPEC OB-1).
pub const RECENT_TASKS: i64 = 50;

/// Attempts, gate rejections or same failures in a row from which an
/// unfinished task counts as looping (attempt 3 of 5 is the warning of
/// SPEC AL-1).
pub const LOOP_REPEATS: i64 = 3;

/// The window of rates, usage and stage times unless the caller asks for
/// another one, in hours.
pub const DEFAULT_WINDOW_HOURS: i64 = 24;

/// Playbook runs in a snapshot.
pub const RECENT_RUNS: i64 = 10;

/// Failure fingerprints in a snapshot.
pub const TOP_ERRORS: i64 = 10;

/// Everything the status of one workspace shows.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The workspace.
    pub workspace: String,
    /// When it was taken (ms).
    pub now: i64,
    /// Start of the window of rates, usage and stage times (ms).
    pub since: i64,
    /// Mode, budgets.
    pub settings: SettingsRow,
    /// Tasks per state, in the order of `warden_store::tasks::STATES`.
    pub tasks_by_state: Vec<(String, i64)>,
    /// Running tasks (at most 100).
    pub running: Vec<TaskRow>,
    /// Workers seen recently.
    pub workers: Vec<WorkerRow>,
    /// Why nothing runs, when nothing does.
    pub idle: Option<Idle>,
    /// Open alerts of the workspace (at most 50).
    pub alerts: Vec<AlertRow>,
    /// The breakers that bear on the workspace (providers, sinks,
    /// processes, its own gates).
    pub breakers: Vec<BreakerRow>,
    /// Tokens and cost (micro-dollars) booked this hour.
    pub usage_this_hour: (i64, i64),
    /// The newest activity.
    pub recent_tasks: Vec<TaskRow>,
    /// Unfinished tasks in a resolution loop.
    pub loops: Vec<TaskRow>,
    /// Verdicts per gate in the window.
    pub gates: Vec<GateStats>,
    /// Quorum outcomes per stage in the window.
    pub gates_by_stage: Vec<StageGateStats>,
    /// Gateway usage per provider in the window.
    pub usage_by_provider: Vec<UsageGroup>,
    /// Gateway usage per stage in the window.
    pub usage_by_stage: Vec<UsageGroup>,
    /// Time per stage in the window, largest total first.
    pub stage_durations: Vec<StageDuration>,
    /// The most frequent stage failures in the window.
    pub top_errors: Vec<FailureCount>,
    /// The newest playbook runs.
    pub runs: Vec<RunRow>,
}

impl Snapshot {
    /// The stage that took the most time in the window, when any ran.
    pub fn bottleneck(&self) -> Option<&StageDuration> {
        bottleneck(&self.stage_durations)
    }
}

/// The stage with the largest total time (ties: the longer single run,
/// then the name).
pub fn bottleneck(durations: &[StageDuration]) -> Option<&StageDuration> {
    durations.iter().max_by(|a, b| {
        a.total_ms
            .cmp(&b.total_ms)
            .then(a.max_ms.cmp(&b.max_ms))
            .then(b.stage.cmp(&a.stage))
    })
}

/// Takes the snapshot of `workspace` with a window of `hours`.
pub async fn snapshot(app: &App, workspace: &str, hours: i64) -> Result<Snapshot> {
    let store = &app.store;
    let now = warden_store::now_ms();
    let since = now - hours * 3_600_000;
    let settings = app.scheduler.settings(workspace).await?;
    let tasks_by_state = store.count_tasks_by_state(workspace).await?;
    let running = store
        .list_tasks(
            workspace,
            &TaskQuery {
                states: vec![TaskState::Running],
                limit: 100,
                now,
                ..TaskQuery::default()
            },
        )
        .await?;
    let gone_after = i64::try_from(app.scheduler.config().worker_gone_after_ms).unwrap_or(60_000);
    let workers = store.list_workers(workspace, now - gone_after).await?;
    let idle = if running.is_empty() {
        Some(app.scheduler.why_idle(workspace).await?)
    } else {
        None
    };
    let alerts = store.list_alerts(Some(workspace), Some("open"), 50).await?;
    let usage_this_hour = store.hourly_usage(workspace, now).await?;
    let providers = app.config.gateway.providers.iter().map(|p| p.name.as_str());
    let breakers = crate::breaker::with_providers(store.list_breakers().await?, providers)
        .into_iter()
        .filter(|b| breaker_bears_on(&b.name, workspace))
        .collect();
    let until = now + 1;
    Ok(Snapshot {
        workspace: workspace.to_string(),
        now,
        since,
        settings,
        tasks_by_state,
        running,
        workers,
        idle,
        alerts,
        breakers,
        usage_this_hour,
        recent_tasks: store.recent_tasks(workspace, RECENT_TASKS).await?,
        loops: store.looping_tasks(workspace, LOOP_REPEATS, 50).await?,
        gates: store.gate_stats(workspace, since).await?,
        gates_by_stage: store.gate_stats_by_stage(workspace, since).await?,
        usage_by_provider: store
            .gateway_usage(workspace, &[UsageDim::Provider], since, until)
            .await?,
        usage_by_stage: store
            .gateway_usage(workspace, &[UsageDim::Stage], since, until)
            .await?,
        stage_durations: store.stage_durations(workspace, since).await?,
        top_errors: store
            .top_stage_failures(workspace, since, TOP_ERRORS)
            .await?,
        runs: store
            .list_runs(
                workspace,
                &RunQuery {
                    limit: RECENT_RUNS,
                    ..RunQuery::default()
                },
            )
            .await?,
    })
}

/// The workspaces `principal` may see, by name: its own for a token
/// scoped to one; for the bootstrap admin every workspace that has tasks,
/// settings, alerts or gateway calls, and `default`.
pub async fn visible_workspaces(app: &App, principal: &Principal) -> Result<Vec<String>> {
    if let Some(own) = &principal.workspace {
        return Ok(vec![own.clone()]);
    }
    let store = &app.store;
    let mut names: BTreeSet<String> = store.list_workspaces().await?.into_iter().collect();
    names.extend(
        store
            .list_settings()
            .await?
            .into_iter()
            .map(|s| s.workspace),
    );
    names.extend(store.list_gateway_workspaces().await?);
    names.extend(
        store
            .list_alerts(None, Some("open"), 500)
            .await?
            .into_iter()
            .filter_map(|a| a.workspace),
    );
    names.insert("default".to_string());
    Ok(names.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(stage: &str, total_ms: i64, max_ms: i64) -> StageDuration {
        StageDuration {
            stage: stage.to_string(),
            runs: 1,
            total_ms,
            max_ms,
        }
    }

    #[test]
    fn the_bottleneck_is_the_largest_total() {
        assert_eq!(bottleneck(&[]), None);
        let all = [
            d("plan", 100, 100),
            d("review", 900, 300),
            d("verify", 500, 500),
        ];
        assert_eq!(bottleneck(&all).map(|s| s.stage.as_str()), Some("review"));
        let tie = [d("b", 900, 300), d("a", 900, 300), d("c", 900, 100)];
        assert_eq!(bottleneck(&tie).map(|s| s.stage.as_str()), Some("a"));
    }

    #[test]
    fn a_workspace_sees_host_breakers_and_only_its_own_gates() {
        assert!(breaker_bears_on("provider:openai", "acme"));
        assert!(breaker_bears_on("sink:slack", "acme"));
        assert!(breaker_bears_on("gate:acme:diff-size", "acme"));
        assert!(!breaker_bears_on("gate:other:diff-size", "acme"));
        assert!(!breaker_bears_on("gate:acme-2:diff-size", "acme"));
        assert!(breaker_bears_on("playbook:acme:disk-cleanup", "acme"));
        assert!(!breaker_bears_on("playbook:other:disk-cleanup", "acme"));
        assert!(breaker_bears_on("plugin:cost-aware-router", "acme"));
    }
}
