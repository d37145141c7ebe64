//! `/metrics` in the Prometheus text format (SPEC OB-4): HTTP requests and
//! their durations, and plugin calls with the limits they hit, counted in
//! process; tasks by state, stage durations, open alerts, breaker states,
//! notifications and the gateway's tokens and cost read from the database
//! at scrape time, so that every host reports the same shared
//! state and nothing is lost across restarts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use warden_store::gateway::UsageDim;

use crate::app::App;
use crate::error::Result;

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Count per bucket (not cumulative; summed when rendered).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// HTTP counters of this process.
#[derive(Default)]
pub struct HttpMetrics {
    inner: Mutex<HttpInner>,
}

#[derive(Default)]
struct HttpInner {
    requests: BTreeMap<(String, String, u16), u64>,
    durations: BTreeMap<(String, String), Histogram>,
}

impl HttpMetrics {
    /// Counts one request: its method, route template (`unmatched` for no
    /// route), status and duration.
    pub fn observe(&self, method: &str, route: &str, status: u16, took: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.requests
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let h = m
            .durations
            .entry((method.to_string(), route.to_string()))
            .or_default();
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum += secs;
    }

    fn render(&self, out: &mut String) {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        family(
            out,
            "warden_http_requests_total",
            "counter",
            "HTTP requests handled, by method, route and status.",
        );
        for ((method, route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "warden_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        family(
            out,
            "warden_http_request_duration_seconds",
            "histogram",
            "Time to answer an HTTP request (to its response headers), by method and route.",
        );
        for ((method, route), h) in &m.durations {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            let cumulative = h.buckets.iter().scan(0, |acc, n| {
                *acc += n;
                Some(*acc)
            });
            histogram(
                out,
                "warden_http_request_duration_seconds",
                &labels,
                BUCKETS.iter().copied().zip(cumulative),
                h.count,
                h.sum,
            );
        }
    }
}

/// One histogram series: its `_bucket` lines (bounds with their cumulative
/// counts, then `+Inf`), `_sum` and `_count`.
fn histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    buckets: impl IntoIterator<Item = (f64, u64)>,
    count: u64,
    sum: f64,
) {
    for (bound, n) in buckets {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub async fn render(app: &App) -> Result<String> {
    let mut out = String::with_capacity(16 * 1024);
    app.http_metrics.render(&mut out);
    let store = &app.store;
    let workspaces = store.list_workspaces().await?;

    family(
        &mut out,
        "warden_tasks",
        "gauge",
        "Tasks by workspace and state.",
    );
    for ws in &workspaces {
        for (state, n) in store.count_tasks_by_state(ws).await? {
            let _ = writeln!(
                out,
                "warden_tasks{{workspace=\"{}\",state=\"{}\"}} {n}",
                escape(ws),
                escape(&state)
            );
        }
    }

    family(
        &mut out,
        "warden_alerts_open",
        "gauge",
        "Open (unacknowledged, unresolved) alerts by rule and severity.",
    );
    let mut alerts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for a in store.list_alerts(None, Some("open"), 500).await? {
        *alerts.entry((a.rule, a.severity)).or_default() += 1;
    }
    for ((rule, severity), n) in alerts {
        let _ = writeln!(
            out,
            "warden_alerts_open{{rule=\"{}\",severity=\"{}\"}} {n}",
            escape(&rule),
            escape(&severity)
        );
    }

    family(
        &mut out,
        "warden_breaker_state",
        "gauge",
        "Circuit breakers: 0 closed, 1 half-open, 2 open.",
    );
    let providers = app.config.gateway.providers.iter().map(|p| p.name.as_str());
    let breakers: BTreeMap<String, u8> =
        crate::breaker::with_providers(store.list_breakers().await?, providers)
            .into_iter()
            .map(|b| {
                let v = match b.state.as_str() {
                    "open" => 2,
                    "half-open" => 1,
                    _ => 0,
                };
                (b.name, v)
            })
            .collect();
    for (name, v) in breakers {
        let _ = writeln!(
            out,
            "warden_breaker_state{{name=\"{}\"}} {v}",
            escape(&name)
        );
    }

    family(
        &mut out,
        "warden_alert_notifications",
        "gauge",
        "Alert notifications by sink and status (pending: waiting in the outbox).",
    );
    let mut notes: BTreeMap<(String, String), u64> = BTreeMap::new();
    for sink in app.notifier.sink_configs() {
        for status in ["pending", "delivered", "failed"] {
            notes.insert((sink.name.clone(), status.to_string()), 0);
        }
    }
    for n in store
        .list_notifications(&warden_store::notifications::NotificationFilter {
            limit: 1000,
            ..Default::default()
        })
        .await?
    {
        *notes.entry((n.sink, n.status)).or_default() += 1;
    }
    for ((sink, status), n) in notes {
        let _ = writeln!(
            out,
            "warden_alert_notifications{{sink=\"{}\",status=\"{}\"}} {n}",
            escape(&sink),
            escape(&status)
        );
    }

    family(
        &mut out,
        "warden_gateway_calls_total",
        "counter",
        "Model calls through the gateway by workspace, provider and model.",
    );
    let mut usage = Vec::new();
    for ws in store.list_gateway_workspaces().await? {
        for g in store
            .gateway_usage(&ws, &[UsageDim::Provider, UsageDim::Model], 0, i64::MAX)
            .await?
        {
            usage.push((ws.clone(), g));
        }
    }
    let labels = |ws: &str, g: &warden_store::gateway::UsageGroup| {
        let part = |i: usize| escape(g.key.get(i).cloned().flatten().as_deref().unwrap_or("none"));
        format!(
            "workspace=\"{}\",provider=\"{}\",model=\"{}\"",
            escape(ws),
            part(0),
            part(1)
        )
    };
    for (ws, g) in &usage {
        let _ = writeln!(
            out,
            "warden_gateway_calls_total{{{}}} {}",
            labels(ws, g),
            g.calls
        );
    }
    family(
        &mut out,
        "warden_gateway_tokens_total",
        "counter",
        "Tokens through the gateway by workspace, provider, model and kind (prompt, completion).",
    );
    for (ws, g) in &usage {
        let l = labels(ws, g);
        let _ = writeln!(
            out,
            "warden_gateway_tokens_total{{{l},kind=\"prompt\"}} {}",
            g.prompt_tokens
        );
        let _ = writeln!(
            out,
            "warden_gateway_tokens_total{{{l},kind=\"completion\"}} {}",
            g.completion_tokens
        );
    }
    family(
        &mut out,
        "warden_gateway_cost_usd_total",
        "counter",
        "Estimated cost of gateway calls in US dollars by workspace, provider and model.",
    );
    for (ws, g) in &usage {
        let _ = writeln!(
            out,
            "warden_gateway_cost_usd_total{{{}}} {}",
            labels(ws, g),
            g.cost_micros as f64 / 1e6
        );
    }
    render_gateway_set_aside(&mut out, app);
    render_stages(&mut out, app).await?;
    render_plugins(&mut out, &app.runtime);
    Ok(out)
}

/// Gateway calls this host's writer set aside because the database kept
/// refusing them (each is logged in full at error level).
fn render_gateway_set_aside(out: &mut String, app: &App) {
    family(
        out,
        "warden_gateway_rows_set_aside_total",
        "counter",
        "Gateway call records this host could not book because the database refused them; each is logged at error level.",
    );
    let _ = writeln!(
        out,
        "warden_gateway_rows_set_aside_total {}",
        app.gateway.rows_set_aside()
    );
}

/// Upper bounds of the stage-duration histogram, in seconds: stages of
/// coding agents take from seconds to hours.
const STAGE_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// Stage durations, from the stage runs every host shares.
async fn render_stages(out: &mut String, app: &App) -> Result<()> {
    family(
        out,
        "warden_stage_duration_seconds",
        "histogram",
        "Time from claim to the end of a stage run, by workspace, stage and outcome (completed, failed, expired, ...).",
    );
    let bounds: Vec<i64> = STAGE_BUCKETS.iter().map(|s| (s * 1000.0) as i64).collect();
    for h in app.store.stage_duration_histogram(&bounds).await? {
        let labels = format!(
            "workspace=\"{}\",stage=\"{}\",outcome=\"{}\"",
            escape(&h.workspace),
            escape(&h.stage),
            escape(&h.outcome)
        );
        histogram(
            out,
            "warden_stage_duration_seconds",
            &labels,
            STAGE_BUCKETS
                .iter()
                .copied()
                .zip(h.cumulative.iter().map(|n| u64::try_from(*n).unwrap_or(0))),
            u64::try_from(h.count).unwrap_or(0),
            h.sum_ms as f64 / 1000.0,
        );
    }
    Ok(())
}

/// Plugin calls of this process: by outcome, the limits hit, durations.
fn render_plugins(out: &mut String, runtime: &warden_runtime::Runtime) {
    let counts = runtime.stats().counts();
    family(
        out,
        "warden_plugin_calls_total",
        "counter",
        "Plugin calls by plugin, world and outcome (ok, or how the call ended: fuel, deadline, memory, trap, ...).",
    );
    for c in &counts {
        let _ = writeln!(
            out,
            "warden_plugin_calls_total{{plugin=\"{}\",world=\"{}\",outcome=\"{}\"}} {}",
            escape(&c.plugin),
            c.world,
            c.outcome,
            c.calls
        );
    }
    family(
        out,
        "warden_plugin_limit_hits_total",
        "counter",
        "Plugin calls ended by a limit, by plugin, world and limit (fuel, deadline, memory, steps, output, stack).",
    );
    for c in counts.iter().filter(|c| c.limit) {
        let _ = writeln!(
            out,
            "warden_plugin_limit_hits_total{{plugin=\"{}\",world=\"{}\",limit=\"{}\"}} {}",
            escape(&c.plugin),
            c.world,
            c.outcome,
            c.calls
        );
    }
    family(
        out,
        "warden_plugin_call_duration_seconds",
        "histogram",
        "Wall time of plugin calls, waiting for an instance slot included, by plugin and world.",
    );
    for d in runtime.stats().durations() {
        let labels = format!("plugin=\"{}\",world=\"{}\"", escape(&d.plugin), d.world);
        histogram(
            out,
            "warden_plugin_call_duration_seconds",
            &labels,
            warden_runtime::CALL_BUCKETS
                .iter()
                .copied()
                .zip(d.cumulative.iter().copied()),
            d.count,
            d.sum,
        );
    }
}
