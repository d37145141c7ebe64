//! Status (SPEC TS-8, OB-1): `GET /v1/workspaces/{ws}/status`, the global
//! `GET /v1/status`, and the live stream of a workspace's status that the
//! dashboard follows (`GET /v1/workspaces/{ws}/status/stream`, SSE).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::WatchStream;
use warden_store::gateway::UsageGroup;
use warden_store::stages::StageDuration;
use warden_store::tasks::{STATES, TaskRow, TaskState};

use crate::error::{Error, Result};
use crate::views;
use crate::{AppState, Query, Viewer, Workspace, opt_time, time};
use warden_core::auth::Principal;
use warden_core::dashboard::{self, DEFAULT_WINDOW_HOURS, RECENT_TASKS, Snapshot};
use warden_core::services::App;
use warden_core::sync::Unpoisoned as _;

/// How often the stream looks for a change when nothing wakes it.
const STREAM_TICK: Duration = Duration::from_secs(1);

/// A comment line on an idle stream, so that proxies and the page know it
/// is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// The window of rates, usage and stage times, in hours (1 to 720).
    #[param(minimum = 1, maximum = 720)]
    hours: Option<i64>,
}

fn window_hours(q: &StatusQuery) -> Result<i64> {
    let hours = q.hours.unwrap_or(DEFAULT_WINDOW_HOURS);
    if !(1..=720).contains(&hours) {
        return Err(Error::invalid("hours: must be between 1 and 720").into());
    }
    Ok(hours)
}

/// `GET /v1/workspaces/{ws}/status[?hours=24]`: what runs or why nothing
/// does, and everything the dashboard shows of one workspace.
#[utoipa::path(
    get,
    operation_id = "status_workspace",
    path = "/v1/workspaces/{ws}/status",
    tag = "workspace",
    summary = "what runs, or why nothing does, and everything the dashboard shows of the workspace",
    params(crate::openapi::WsPath, StatusQuery),
    responses(
        (status = 200, description = "the status", body = crate::views::WorkspaceStatus),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn workspace(
    State(state): State<AppState>,
    Workspace { ws, .. }: Workspace<Viewer>,
    Query(q): Query<StatusQuery>,
) -> Result<Response> {
    let hours = window_hours(&q)?;
    let snap = dashboard::snapshot(&state.app, &ws, hours).await?;
    let mut view = workspace_view(&snap, hours);
    stamp(&mut view, &snap);
    Ok(views::Answer(view).into_response())
}

/// `GET /v1/workspaces/{ws}/status/stream[?hours=24]`: the workspace's
/// status as SSE events `status`, one at once and one whenever it changes
/// (looked at on every scheduler wake-up of the workspace and at least once
/// a second), with a keep-alive comment every 10 s. Every stream of one
/// workspace and window follows one snapshot ([`StatusStreams`]).
#[utoipa::path(
    get,
    operation_id = "status_stream",
    path = "/v1/workspaces/{ws}/status/stream",
    tag = "workspace",
    summary = "the workspace's status as server-sent events, at once and on every change",
    params(crate::openapi::WsPath, StatusQuery),
    responses(
        (status = 200, description = "`status` events, each the workspace's status", body = crate::openapi::SseEvent, content_type = "text/event-stream"),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    Workspace { ws, principal, .. }: Workspace<Viewer>,
    Query(q): Query<StatusQuery>,
) -> Result<Response> {
    let hours = window_hours(&q)?;
    let slot = state.app.streams.open(&principal.token_id)?;
    let streams = &state.streams;
    let frames = match streams.follow(&ws, hours) {
        Some(rx) => rx,
        None => {
            // The first snapshot is taken here, so that a failure is an
            // HTTP error rather than a stream that never says anything.
            let first = dashboard::snapshot(&state.app, &ws, hours).await?;
            state.app.metrics.status_snapshot_taken();
            streams.start(&state.app, &ws, hours, Frame::of(&first, hours))
        }
    };
    let events = WatchStream::new(frames).map(|frame| {
        Ok::<_, Infallible>(Event::default().event("status").data(frame.data.as_str()))
    });
    let mut resp = Sse::new(state.app.streams.guard(slot, events))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    // Reverse proxies (nginx) would otherwise buffer the stream.
    resp.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(resp)
}

/// The live status streams (issue 15, item 10): one producer per
/// workspace and window takes the snapshot once a second and on every
/// scheduler wake-up of the workspace, and every stream of that workspace
/// and window follows it, so twenty open dashboards cost the database
/// what one does. A producer ends with its last stream, and when the host
/// starts draining (which ends its streams).
#[derive(Default)]
pub struct StatusStreams {
    producers: Mutex<Producers>,
}

/// The producer of each workspace and window (in hours), by the sender
/// its streams subscribe to.
type Producers = HashMap<(String, i64), Arc<watch::Sender<Arc<Frame>>>>;

/// One snapshot as the streams send it.
pub struct Frame {
    /// The status without what changes on every snapshot, to tell a
    /// change from the same state.
    view: String,
    /// The event's data: the status with `generated_at`.
    data: String,
}

impl Frame {
    fn of(snap: &Snapshot, hours: i64) -> Frame {
        let mut status = workspace_view(snap, hours);
        let view = status_json(&status).to_string();
        stamp(&mut status, snap);
        Frame {
            view,
            data: status_json(&status).to_string(),
        }
    }
}

impl StatusStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, Producers> {
        self.producers.locked()
    }

    /// Follows the producer of `workspace` and `hours`, if one runs.
    fn follow(&self, workspace: &str, hours: i64) -> Option<watch::Receiver<Arc<Frame>>> {
        self.lock()
            .get(&(workspace.to_string(), hours))
            .map(|tx| tx.subscribe())
    }

    /// Starts the producer of `workspace` and `hours` from its first
    /// snapshot, or follows the one another stream started meanwhile.
    fn start(
        self: &Arc<Self>,
        app: &Arc<App>,
        workspace: &str,
        hours: i64,
        first: Frame,
    ) -> watch::Receiver<Arc<Frame>> {
        let key = (workspace.to_string(), hours);
        let mut producers = self.lock();
        if let Some(tx) = producers.get(&key) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(Arc::new(first));
        let tx = Arc::new(tx);
        producers.insert(key.clone(), tx.clone());
        let retire = Retire {
            streams: self.clone(),
            key,
            tx,
        };
        tokio::spawn(produce(app.clone(), retire));
        rx
    }

    /// Ends the producer of `key` if no stream follows it (checked under
    /// the lock that [`StatusStreams::follow`] takes, so that no stream
    /// joins a producer that is going away).
    fn retire_if_unfollowed(&self, retire: &Retire) -> bool {
        let mut producers = self.lock();
        if retire.tx.receiver_count() > 0 {
            return false;
        }
        if producers
            .get(&retire.key)
            .is_some_and(|tx| Arc::ptr_eq(tx, &retire.tx))
        {
            producers.remove(&retire.key);
        }
        true
    }
}

/// A producer's place in [`StatusStreams`], given up when the producer
/// ends, however it ends (a panic included): the streams that follow it
/// then end too, and the next stream starts a new one.
struct Retire {
    streams: Arc<StatusStreams>,
    key: (String, i64),
    tx: Arc<watch::Sender<Arc<Frame>>>,
}

impl Drop for Retire {
    fn drop(&mut self) {
        let mut producers = self.streams.lock();
        if producers
            .get(&self.key)
            .is_some_and(|tx| Arc::ptr_eq(tx, &self.tx))
        {
            producers.remove(&self.key);
        }
    }
}

/// The producer of one workspace and window.
async fn produce(app: Arc<App>, retire: Retire) {
    let (workspace, hours) = (retire.key.0.clone(), retire.key.1);
    let wake = app.scheduler.wake().of(&workspace);
    loop {
        tokio::select! {
            _ = retire.tx.closed() => {
                if retire.streams.retire_if_unfollowed(&retire) {
                    return;
                }
                continue;
            }
            _ = wake.notified() => {}
            _ = tokio::time::sleep(STREAM_TICK) => {}
        }
        if app.scheduler.is_draining() {
            // Shutting down: end the streams so HTTP can drain.
            return;
        }
        match dashboard::snapshot(&app, &workspace, hours).await {
            Ok(snap) => {
                app.metrics.status_snapshot_taken();
                let frame = Frame::of(&snap, hours);
                // The newest snapshot is kept either way, so that a stream
                // that joins gets a fresh `generated_at`; the streams that
                // follow are told only of a change.
                retire.tx.send_if_modified(|current| {
                    let changed = current.view != frame.view;
                    *current = Arc::new(frame);
                    changed
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, workspace = %workspace, "status stream: cannot take a snapshot");
            }
        }
    }
}

/// `GET /v1/status[?hours=24]`: the global status (SPEC OB-1). The
/// bootstrap admin sees every workspace and the host's alerts; a token
/// scoped to a workspace sees that workspace only.
#[utoipa::path(
    get,
    operation_id = "status_global",
    path = "/v1/status",
    tag = "workspace",
    summary = "the status of every workspace the token may see, summed and one by one",
    params(StatusQuery),
    responses(
        (status = 200, description = "the global status", body = crate::openapi::AnyObject),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated
    )
)]
pub async fn global(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<StatusQuery>,
) -> Result<Response> {
    let hours = window_hours(&q)?;
    let app = &state.app;
    let names = dashboard::visible_workspaces(app, &principal).await?;
    let mut snaps = Vec::with_capacity(names.len());
    for ws in &names {
        snaps.push(dashboard::snapshot(app, ws, hours).await?);
    }
    let now = warden_store::now_ms();
    let mut totals = Totals::default();
    for s in &snaps {
        totals.add(s);
    }
    let (alerts, breakers) = if principal.workspace.is_none() {
        let providers = app.config.gateway.providers.iter().map(|p| p.name.as_str());
        (
            app.store.list_alerts(None, Some("open"), 100).await?,
            warden_core::breaker::with_providers(app.store.list_breakers().await?, providers),
        )
    } else {
        let s = snaps.first();
        (
            s.map(|s| s.alerts.clone()).unwrap_or_default(),
            s.map(|s| s.breakers.clone()).unwrap_or_default(),
        )
    };
    let mut body = totals.finish();
    body["generated_at"] = json!(time(now));
    body["window"] = json!({ "hours": hours, "since": time(now - hours * 3_600_000) });
    body["scope"] = json!(principal.workspace.as_deref().unwrap_or("all"));
    body["workspaces"] = json!(names);
    body["breakers"] = json!(
        breakers
            .iter()
            .map(views::Breaker::from)
            .collect::<Vec<_>>()
    );
    body["alerts"] = json!(alerts.iter().map(views::Alert::from).collect::<Vec<_>>());
    Ok(axum::Json(body).into_response())
}

/// The sums over every visible workspace's snapshot that `GET /v1/status`
/// reports.
#[derive(Default)]
struct Totals<'a> {
    by_state: BTreeMap<String, i64>,
    by_workspace: Map<String, Value>,
    mode: Map<String, Value>,
    why_idle: Map<String, Value>,
    this_hour: Vec<Value>,
    recent: Vec<&'a TaskRow>,
    loops: Vec<Value>,
    by_gate: Vec<Value>,
    by_stage_gates: Vec<Value>,
    /// Decisions, verdicts, approvals, rejections, escalations.
    gate_counts: (i64, i64, i64, i64, i64),
    providers: BTreeMap<String, UsageGroup>,
    stages: BTreeMap<String, UsageGroup>,
    durations: BTreeMap<String, StageDuration>,
    errors: Vec<(i64, i64, Value)>,
}

impl<'a> Totals<'a> {
    /// Adds one workspace's snapshot.
    fn add(&mut self, s: &'a Snapshot) {
        let ws = s.workspace.as_str();
        for (state, n) in &s.tasks_by_state {
            *self.by_state.entry(state.clone()).or_default() += n;
        }
        self.by_workspace
            .insert(ws.to_string(), Value::Object(state_counts(s)));
        self.mode.insert(
            ws.to_string(),
            json!({ "mode": s.settings.mode, "reason": s.settings.mode_reason }),
        );
        self.why_idle.insert(ws.to_string(), idle_view(s));
        self.this_hour.push(json!({
            "workspace": ws,
            "tokens": s.usage_this_hour.0,
            "cost_usd": micros(s.usage_this_hour.1),
        }));
        self.recent.extend(s.recent_tasks.iter());
        self.loops.extend(s.loops.iter().map(loop_view));
        self.add_gates(s);
        for (into, groups) in [
            (&mut self.providers, &s.usage_by_provider),
            (&mut self.stages, &s.usage_by_stage),
        ] {
            for g in groups {
                let key = g.key.first().cloned().flatten().unwrap_or_default();
                let sum = into.entry(key).or_default();
                sum.calls += g.calls;
                sum.failed += g.failed;
                sum.prompt_tokens += g.prompt_tokens;
                sum.completion_tokens += g.completion_tokens;
                sum.cost_micros += g.cost_micros;
            }
        }
        for d in &s.stage_durations {
            let sum = self
                .durations
                .entry(d.stage.clone())
                .or_insert_with(|| StageDuration {
                    stage: d.stage.clone(),
                    runs: 0,
                    total_ms: 0,
                    max_ms: 0,
                });
            sum.runs += d.runs;
            sum.total_ms += d.total_ms;
            sum.max_ms = sum.max_ms.max(d.max_ms);
        }
        for e in &s.top_errors {
            let mut v = json!({ "fingerprint": e.fingerprint, "count": e.count, "sample": e.sample, "last_at": time(e.last_at) });
            v["workspace"] = Value::from(ws);
            self.errors.push((e.count, e.last_at, v));
        }
    }

    /// Adds one workspace's gate verdicts and decisions.
    fn add_gates(&mut self, s: &Snapshot) {
        let ws = s.workspace.as_str();
        let (decisions, verdicts, approvals, rejections, escalations) = &mut self.gate_counts;
        for g in &s.gates {
            *verdicts += g.total;
            *approvals += g.approvals;
            *rejections += g.rejections;
            *escalations += g.escalations;
            let mut v = gate_view(g);
            v["workspace"] = Value::from(ws);
            self.by_gate.push(v);
        }
        for g in &s.gates_by_stage {
            *decisions += g.decisions;
            let mut v = stage_gate_view(g);
            v["workspace"] = Value::from(ws);
            self.by_stage_gates.push(v);
        }
    }

    /// The summed part of the answer: every key but those the caller
    /// adds (time, window, scope, workspaces, breakers and alerts).
    fn finish(self) -> Value {
        let Totals {
            mut by_state,
            mut recent,
            mut errors,
            ..
        } = self;
        recent.sort_by(|a, b| b.last_event_at.cmp(&a.last_event_at).then(b.id.cmp(&a.id)));
        recent.truncate(RECENT_TASKS as usize);
        errors.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        errors.truncate(dashboard::TOP_ERRORS as usize);
        let mut durations: Vec<StageDuration> = self.durations.into_values().collect();
        durations.sort_by(|a, b| b.total_ms.cmp(&a.total_ms).then(a.stage.cmp(&b.stage)));
        let mut tasks_by_state = Map::new();
        for st in STATES {
            if let Some(n) = by_state.remove(*st) {
                tasks_by_state.insert((*st).to_string(), Value::from(n));
            }
        }
        for (st, n) in by_state {
            tasks_by_state.insert(st, Value::from(n));
        }
        let (decisions, verdicts, approvals, rejections, escalations) = self.gate_counts;
        json!({
            "tasks_by_state": tasks_by_state,
            "tasks_by_workspace": self.by_workspace,
            "quality_gates": gates_summary(decisions, verdicts, approvals, rejections, escalations, self.by_gate, self.by_stage_gates),
            "recent_tasks": recent.into_iter().map(task_brief).collect::<Vec<_>>(),
            "token_usage": usage_summary(
                self.providers.into_iter().collect(),
                self.stages.into_iter().collect(),
                json!({ "by_workspace": self.this_hour }),
            ),
            "stage_durations": durations.iter().map(duration_view).collect::<Vec<_>>(),
            "bottleneck_stage": bottleneck_view(&durations),
            "mode": self.mode,
            "active_loops": self.loops,
            "why_idle": self.why_idle,
            "top_errors": errors.into_iter().map(|e| e.2).collect::<Vec<_>>(),
        })
    }
}

fn micros(m: i64) -> f64 {
    m as f64 / 1e6
}

fn rate(part: i64, total: i64) -> f64 {
    if total > 0 {
        part as f64 / total as f64
    } else {
        0.0
    }
}

fn state_counts(s: &Snapshot) -> Map<String, Value> {
    s.tasks_by_state
        .iter()
        .map(|(st, n)| (st.clone(), Value::from(*n)))
        .collect()
}

fn idle_view(s: &Snapshot) -> Value {
    match &s.idle {
        Some(i) => {
            json!({ "idle": i.reason != "not_idle", "reason": i.reason, "message": i.message })
        }
        None => json!({
            "idle": false,
            "reason": "not_idle",
            "message": format!("{} stage(s) running", s.running.len()),
        }),
    }
}

/// A task in a list: what a row of the recent activity shows.
fn task_brief(t: &TaskRow) -> Value {
    json!({
        "id": t.id,
        "workspace": t.workspace,
        "title": t.title,
        "stage": t.stage,
        "state": t.state,
        "priority": t.priority,
        "attempts": t.attempts,
        "max_attempts": t.max_attempts,
        "worker": if t.state == TaskState::Running { t.lease_owner.clone() } else { None },
        "last_error": t.last_error.as_deref().map(|e| warden_core::validate::truncate(e, 300)),
        "used": { "tokens": t.used.tokens, "cost_usd": micros(t.used.cost_micros) },
        "created_at": time(t.created_at),
        "last_event_at": time(t.last_event_at),
        "finished_at": opt_time(t.finished_at),
    })
}

fn loop_view(t: &TaskRow) -> Value {
    let why = if t.state == TaskState::Blocked {
        "blocked"
    } else if t.gate_rejections >= dashboard::LOOP_REPEATS {
        "gate_rejections"
    } else if t.fingerprint_streak >= dashboard::LOOP_REPEATS {
        "same_failure"
    } else {
        "attempts"
    };
    let mut v = task_brief(t);
    v["why"] = Value::from(why);
    v["gate_rejections"] = Value::from(t.gate_rejections);
    v["same_failures"] = Value::from(t.fingerprint_streak);
    v["total_attempts"] = Value::from(t.total_attempts);
    v
}

fn gate_view(g: &warden_store::gates::GateStats) -> Value {
    json!({
        "gate": g.gate,
        "verdicts": g.total,
        "approvals": g.approvals,
        "rejections": g.rejections,
        "escalations": g.escalations,
        "errors": g.errors,
        "approval_rate": rate(g.approvals, g.total),
        "rejection_rate": rate(g.rejections, g.total),
        "mean_score": g.mean_score,
    })
}

fn stage_gate_view(g: &warden_store::gates::StageGateStats) -> Value {
    json!({
        "stage": g.stage,
        "decisions": g.decisions,
        "approved": g.approved,
        "rejected": g.rejected,
        "waiting": g.waiting,
        "approval_rate": rate(g.approved, g.decisions),
        "rejection_rate": rate(g.rejected, g.decisions),
    })
}

fn gates_summary(
    decisions: i64,
    verdicts: i64,
    approvals: i64,
    rejections: i64,
    escalations: i64,
    by_gate: Vec<Value>,
    by_stage: Vec<Value>,
) -> Value {
    json!({
        "decisions": decisions,
        "verdicts": verdicts,
        "approvals": approvals,
        "rejections": rejections,
        "escalations": escalations,
        "approval_rate": rate(approvals, verdicts),
        "rejection_rate": rate(rejections, verdicts),
        "by_gate": by_gate,
        "by_stage": by_stage,
    })
}

fn usage_group_view(dim: &str, key: &str, g: &UsageGroup) -> Value {
    json!({
        dim: key,
        "calls": g.calls,
        "failed": g.failed,
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.completion_tokens,
        "tokens": g.prompt_tokens + g.completion_tokens,
        "cost_usd": micros(g.cost_micros),
    })
}

/// Token use and its cost at the providers' prices: totals, per provider
/// and per stage (calls without a stage under `""`), largest cost first.
fn usage_summary(
    mut providers: Vec<(String, UsageGroup)>,
    mut stages: Vec<(String, UsageGroup)>,
    extra: Value,
) -> Value {
    let by_cost = |a: &(String, UsageGroup), b: &(String, UsageGroup)| {
        b.1.cost_micros
            .cmp(&a.1.cost_micros)
            .then(b.1.calls.cmp(&a.1.calls))
            .then(a.0.cmp(&b.0))
    };
    providers.sort_by(by_cost);
    stages.sort_by(by_cost);
    let total = providers
        .iter()
        .fold(UsageGroup::default(), |mut sum, (_, g)| {
            sum.calls += g.calls;
            sum.failed += g.failed;
            sum.prompt_tokens += g.prompt_tokens;
            sum.completion_tokens += g.completion_tokens;
            sum.cost_micros += g.cost_micros;
            sum
        });
    let mut v = json!({
        "calls": total.calls,
        "failed": total.failed,
        "prompt_tokens": total.prompt_tokens,
        "completion_tokens": total.completion_tokens,
        "tokens": total.prompt_tokens + total.completion_tokens,
        "cost_usd": micros(total.cost_micros),
        "by_provider": providers.iter().map(|(k, g)| usage_group_view("provider", k, g)).collect::<Vec<_>>(),
        "by_stage": stages.iter().map(|(k, g)| usage_group_view("stage", k, g)).collect::<Vec<_>>(),
    });
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            v.insert(k.clone(), x.clone());
        }
    }
    v
}

fn duration_view(d: &StageDuration) -> Value {
    json!({
        "stage": d.stage,
        "runs": d.runs,
        "total_ms": d.total_ms,
        "mean_ms": if d.runs > 0 { d.total_ms / d.runs } else { 0 },
        "max_ms": d.max_ms,
    })
}

fn bottleneck_view(durations: &[StageDuration]) -> Value {
    let all: i64 = durations.iter().map(|d| d.total_ms).sum();
    match dashboard::bottleneck(durations) {
        Some(d) => {
            let mut v = duration_view(d);
            v["share"] = Value::from(rate(d.total_ms, all));
            v
        }
        None => Value::Null,
    }
}

fn run_brief(r: &warden_store::runs::RunRow) -> Value {
    json!({
        "id": r.id,
        "plugin": r.plugin,
        "version": r.version,
        "mode": r.mode,
        "status": r.status,
        "trigger": r.trigger,
        "actor": r.actor,
        "error": r.error.as_deref().map(|e| warden_core::validate::truncate(e, 300)),
        "created_at": time(r.created_at),
        "finished_at": opt_time(r.finished_at),
    })
}

/// Adds what changes on every snapshot: `generated_at` and the window's
/// start.
pub(crate) fn stamp(status: &mut views::WorkspaceStatus, s: &Snapshot) {
    let board = &mut status.dashboard;
    board.insert("generated_at".to_string(), Value::from(time(s.now)));
    if let Some(Value::Object(window)) = board.get_mut("window") {
        window.insert("since".to_string(), Value::from(time(s.since)));
    }
}

/// `status` as the JSON a stream sends. A status is strings, numbers and
/// JSON values, which always serialise; were one not to, the frame would
/// be `null`, and the error logged.
fn status_json(status: &views::WorkspaceStatus) -> Value {
    views::to_json(status).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialise a workspace status");
        Value::Null
    })
}

/// The status of one workspace, without `generated_at` and the window's
/// start (so that two snapshots of the same state compare equal).
pub fn workspace_view(s: &Snapshot, hours: i64) -> views::WorkspaceStatus {
    views::WorkspaceStatus::new(s, dashboard_view(s, hours))
}

/// What the dashboard shows of a workspace beside its status: the window,
/// recent tasks, loops, gates, token usage, stage times, top errors and
/// playbook runs.
fn dashboard_view(s: &Snapshot, hours: i64) -> Map<String, Value> {
    let key = |g: &UsageGroup| g.key.first().cloned().flatten().unwrap_or_default();
    let (mut verdicts, mut approvals, mut rejections, mut escalations) = (0, 0, 0, 0);
    for g in &s.gates {
        verdicts += g.total;
        approvals += g.approvals;
        rejections += g.rejections;
        escalations += g.escalations;
    }
    let decisions = s.gates_by_stage.iter().map(|g| g.decisions).sum();
    let board = json!({
        "window": { "hours": hours },
        "recent_tasks": s.recent_tasks.iter().map(task_brief).collect::<Vec<_>>(),
        "active_loops": s.loops.iter().map(loop_view).collect::<Vec<_>>(),
        "quality_gates": gates_summary(
            decisions, verdicts, approvals, rejections, escalations,
            s.gates.iter().map(gate_view).collect(),
            s.gates_by_stage.iter().map(stage_gate_view).collect(),
        ),
        "token_usage": usage_summary(
            s.usage_by_provider.iter().map(|g| (key(g), g.clone())).collect(),
            s.usage_by_stage.iter().map(|g| (key(g), g.clone())).collect(),
            json!({}),
        ),
        "stage_durations": s.stage_durations.iter().map(duration_view).collect::<Vec<_>>(),
        "bottleneck_stage": bottleneck_view(&s.stage_durations),
        "top_errors": s.top_errors.iter().map(|e| json!({ "fingerprint": e.fingerprint, "count": e.count, "sample": e.sample, "last_at": time(e.last_at) })).collect::<Vec<_>>(),
        "playbook_runs": s.runs.iter().map(run_brief).collect::<Vec<_>>(),
    });
    match board {
        Value::Object(board) => board,
        _ => Map::new(),
    }
}
