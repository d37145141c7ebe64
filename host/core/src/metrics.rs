//! `/metrics` (SPEC OB-4), written by the official Prometheus client,
//! `prometheus-client`: HTTP requests and their durations, plugin calls
//! with the limits they hit and the status snapshots of the live streams,
//! counted in process; tasks by state, stage durations, open alerts,
//! breaker states, notifications and the gateway's tokens and cost read
//! from the database at scrape time, so that every host reports the same
//! shared state and nothing is lost across restarts.
//!
//! Label sets are types, so a label whose values a client picks cannot
//! slip in: the HTTP method is [`Method`] (the eight of RFC 9110 and
//! PATCH, every other one `OTHER`) and the route is the template the
//! request matched or `unmatched` ([`Route`]). Anonymous requests can
//! therefore add at most 10 × (routes + 1) × (statuses the server answers)
//! series, whatever they send.
//!
//! The process's own families live in [`Metrics`] (one per host); a new
//! in-process counter is a field there, registered in
//! [`Metrics::register`]. Families read from the database are built
//! afresh on each scrape in [`render`].
//!
//! A scrape by a token scoped to a workspace (SPEC SE-1) gets that
//! workspace's series only: its tasks, stage durations, gateway usage and
//! open alerts, and the breakers that bear on it (host-wide ones and its
//! own gates' and playbooks'). The families that span workspaces (HTTP,
//! plugin calls, notifications, status snapshots) are the bootstrap
//! admin's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use warden_store::gateway::UsageDim;

use crate::breaker::breaker_bears_on;
use crate::error::{Error, Result};

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// An HTTP method as a label value: the methods of RFC 9110 and PATCH by
/// name, anything else (extension methods a client makes up) as `OTHER`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method.
    Other,
}

impl Method {
    /// The label of `method`.
    pub fn of(method: &http::Method) -> Method {
        match method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other => "OTHER",
        }
    }
}

impl EncodeLabelValue for Method {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        self.as_str().encode(encoder)
    }
}

/// The route of a request as a label value: the template it matched
/// (`/v1/workspaces/{ws}/tasks`), never the path, or `unmatched`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Route {
    /// A route of the router, by its template.
    Template(Arc<str>),
    /// No route matched.
    Unmatched,
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            Route::Template(t) => t.as_ref().encode(encoder),
            Route::Unmatched => "unmatched".encode(encoder),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: Method,
    route: Route,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: Method,
    route: Route,
}

fn http_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The families this process counts itself. Cheap to update: a read lock
/// and an atomic add per observation once a series exists.
pub struct Metrics {
    http_requests: Family<RequestLabels, Counter>,
    http_durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    status_snapshots: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            http_requests: Family::default(),
            http_durations: Family::new_with_constructor(http_histogram),
            status_snapshots: Counter::default(),
        }
    }
}

impl Metrics {
    /// Counts one request: its method, the route it matched (`None`: no
    /// route), its status and its time to the response headers.
    pub fn observe_request(
        &self,
        method: &http::Method,
        route: Option<Route>,
        status: u16,
        took: Duration,
    ) {
        let method = Method::of(method);
        let route = route.unwrap_or(Route::Unmatched);
        self.http_durations
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.http_requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// Counts one status snapshot taken for the live status streams.
    pub fn status_snapshot_taken(&self) {
        self.status_snapshots.inc();
    }

    /// Adds this process's families to `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "warden_http_requests",
            "HTTP requests handled, by method (OTHER for any method not in RFC 9110 or PATCH), route template (unmatched for none) and status",
            self.http_requests.clone(),
        );
        registry.register(
            "warden_http_request_duration_seconds",
            "Time to answer an HTTP request (to its response headers), by method and route",
            self.http_durations.clone(),
        );
        registry.register(
            "warden_status_snapshots",
            "Status snapshots taken for the live status streams (one per workspace and window at a time, however many streams follow it)",
            self.status_snapshots.clone(),
        );
    }
}

/// The exposition formats of `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4: what `promtool check
    /// metrics`, curl and every Prometheus read.
    Text,
    /// OpenMetrics 1.0.0, for a scraper that asks for it
    /// (`Accept: application/openmetrics-text`, as Prometheus does).
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when `accept` ranks it above the text format (or lists
    /// it without a rank), else the text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut open, mut text) = (0.0_f64, 0.0_f64);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f64>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => open = open.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if open > 0.0 && open >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Histograms whose buckets are counted elsewhere (the database, the
/// runtime), encoded as they are.
#[derive(Debug)]
struct Histograms<L> {
    series: Vec<(L, HistogramValue)>,
}

#[derive(Debug)]
struct HistogramValue {
    sum: f64,
    count: u64,
    /// Upper bound and the count in that bucket alone, `+Inf` last.
    buckets: Vec<(f64, u64)>,
}

impl HistogramValue {
    /// From the cumulative counts at `bounds` and the total `count`.
    fn from_cumulative(
        bounds: &[f64],
        cumulative: impl IntoIterator<Item = u64>,
        count: u64,
        sum: f64,
    ) -> HistogramValue {
        let mut below = 0;
        let mut buckets: Vec<(f64, u64)> = bounds
            .iter()
            .zip(cumulative)
            .map(|(bound, n)| {
                let here = n.saturating_sub(below);
                below = below.max(n);
                (*bound, here)
            })
            .collect();
        buckets.push((f64::INFINITY, count.saturating_sub(below)));
        HistogramValue {
            sum,
            count,
            buckets,
        }
    }
}

impl<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static> EncodeMetric for Histograms<L> {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        for (labels, h) in &self.series {
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }

    fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    workspace: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    rule: String,
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    sink: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsageLabels {
    workspace: String,
    provider: String,
    model: String,
}

/// Prompt or completion tokens.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum TokenKind {
    Prompt,
    Completion,
}

impl EncodeLabelValue for TokenKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            TokenKind::Prompt => "prompt",
            TokenKind::Completion => "completion",
        }
        .encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    workspace: String,
    provider: String,
    model: String,
    kind: TokenKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    workspace: String,
    stage: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginCallLabels {
    plugin: String,
    world: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLimitLabels {
    plugin: String,
    world: &'static str,
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    world: &'static str,
}

/// What a scrape reads: this process's counters and the services whose
/// state it shows.
pub struct Sources<'a> {
    /// The process's counters.
    pub metrics: &'a Metrics,
    /// The database.
    pub store: &'a warden_store::Store,
    /// The configuration.
    pub config: &'a std::sync::Arc<crate::config::Config>,
    /// The plugin runtime.
    pub runtime: &'a std::sync::Arc<warden_runtime::Runtime>,
    /// The model gateway.
    pub gateway: &'a std::sync::Arc<crate::gateway::Gateway>,
    /// Alert notifications.
    pub notifier: &'a std::sync::Arc<crate::alerting::Notifier>,
}

/// The whole exposition, as `scope` may see it: `None` for the bootstrap
/// admin (everything), a workspace for a token scoped to it.
pub async fn render(app: &Sources<'_>, scope: Option<&str>, format: Format) -> Result<String> {
    let mut registry = Registry::default();
    if scope.is_none() {
        app.metrics.register(&mut registry);
    }
    let store = &app.store;
    let workspaces = match scope {
        Some(ws) => vec![ws.to_string()],
        None => store.list_workspaces().await?,
    };

    let tasks = Family::<TaskLabels, Gauge>::default();
    for ws in &workspaces {
        for (state, n) in store.count_tasks_by_state(ws).await? {
            tasks
                .get_or_create(&TaskLabels {
                    workspace: ws.clone(),
                    state,
                })
                .set(n);
        }
    }
    registry.register("warden_tasks", "Tasks by workspace and state", tasks);

    let alerts = Family::<AlertLabels, Gauge>::default();
    for a in store.list_alerts(scope, Some("open"), 500).await? {
        alerts
            .get_or_create(&AlertLabels {
                rule: a.rule,
                severity: a.severity,
            })
            .inc();
    }
    registry.register(
        "warden_alerts_open",
        "Open (unacknowledged, unresolved) alerts by rule and severity",
        alerts,
    );

    let breakers = Family::<BreakerLabels, Gauge>::default();
    let providers = app.config.gateway.providers.iter().map(|p| p.name.as_str());
    for b in crate::breaker::with_providers(store.list_breakers().await?, providers) {
        if scope.is_some_and(|ws| !breaker_bears_on(&b.name, ws)) {
            continue;
        }
        let v = match b.state.as_str() {
            "open" => 2,
            "half-open" => 1,
            _ => 0,
        };
        breakers
            .get_or_create(&BreakerLabels { name: b.name })
            .set(v);
    }
    registry.register(
        "warden_breaker_state",
        "Circuit breakers: 0 closed, 1 half-open, 2 open",
        breakers,
    );

    if scope.is_none() {
        registry.register(
            "warden_alert_notifications",
            "Alert notifications by sink and status (pending: waiting in the outbox)",
            notifications(app).await?,
        );
    }

    render_gateway(&mut registry, app, scope).await?;
    render_stages(&mut registry, app, scope).await?;
    if scope.is_none() {
        render_plugins(&mut registry, app.runtime);
        // Host-wide: the records this host's gateway writer could not book
        // because the database kept refusing them (each logged in full).
        let set_aside = Counter::<u64>::default();
        set_aside.inc_by(app.gateway.rows_set_aside());
        registry.register(
            "warden_gateway_rows_set_aside",
            "Gateway call records this host could not book because the database refused them; each is logged at error level",
            set_aside,
        );
    }

    let mut out = String::with_capacity(16 * 1024);
    match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    }
    .map_err(|_| Error::Internal("cannot encode the metrics".into()))?;
    Ok(out)
}

/// Notifications of the last 1,000 by sink and status; every configured
/// sink shows, with zeros.
async fn notifications(app: &Sources<'_>) -> Result<Family<NotificationLabels, Gauge>> {
    let mut notes: BTreeMap<(String, String), i64> = BTreeMap::new();
    for sink in app.notifier.sink_configs() {
        for status in ["pending", "delivered", "failed"] {
            notes.insert((sink.name.clone(), status.to_string()), 0);
        }
    }
    for n in app
        .store
        .list_notifications(&warden_store::notifications::NotificationFilter {
            limit: 1000,
            ..Default::default()
        })
        .await?
    {
        *notes.entry((n.sink, n.status)).or_default() += 1;
    }
    let family = Family::<NotificationLabels, Gauge>::default();
    for ((sink, status), n) in notes {
        family
            .get_or_create(&NotificationLabels { sink, status })
            .set(n);
    }
    Ok(family)
}

/// The gateway's calls, tokens and cost by workspace, provider and model.
async fn render_gateway(
    registry: &mut Registry,
    app: &Sources<'_>,
    scope: Option<&str>,
) -> Result<()> {
    let calls = Family::<UsageLabels, Counter>::default();
    let tokens = Family::<TokenLabels, Counter>::default();
    let cost = Family::<UsageLabels, Counter<f64, AtomicU64>>::default();
    let store = &app.store;
    let workspaces = match scope {
        Some(ws) => vec![ws.to_string()],
        None => store.list_gateway_workspaces().await?,
    };
    for ws in workspaces {
        for g in store
            .gateway_usage(&ws, &[UsageDim::Provider, UsageDim::Model], 0, i64::MAX)
            .await?
        {
            let part = |i: usize| {
                g.key
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "none".to_string())
            };
            let labels = UsageLabels {
                workspace: ws.clone(),
                provider: part(0),
                model: part(1),
            };
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            calls.get_or_create(&labels).inc_by(count(g.calls));
            for (kind, n) in [
                (TokenKind::Prompt, g.prompt_tokens),
                (TokenKind::Completion, g.completion_tokens),
            ] {
                tokens
                    .get_or_create(&TokenLabels {
                        workspace: labels.workspace.clone(),
                        provider: labels.provider.clone(),
                        model: labels.model.clone(),
                        kind,
                    })
                    .inc_by(count(n));
            }
            cost.get_or_create(&labels)
                .inc_by(g.cost_micros.max(0) as f64 / 1e6);
        }
    }
    registry.register(
        "warden_gateway_calls",
        "Model calls through the gateway by workspace, provider and model",
        calls,
    );
    registry.register(
        "warden_gateway_tokens",
        "Tokens through the gateway by workspace, provider, model and kind (prompt, completion)",
        tokens,
    );
    registry.register(
        "warden_gateway_cost_usd",
        "Estimated cost of gateway calls in US dollars by workspace, provider and model",
        cost,
    );
    Ok(())
}

/// Upper bounds of the stage-duration histogram, in seconds: stages of
/// coding agents take from seconds to hours.
const STAGE_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// Stage durations, from the stage runs every host shares.
async fn render_stages(
    registry: &mut Registry,
    app: &Sources<'_>,
    scope: Option<&str>,
) -> Result<()> {
    let bounds: Vec<i64> = STAGE_BUCKETS.iter().map(|s| (s * 1000.0) as i64).collect();
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let series = app
        .store
        .stage_duration_histogram(&bounds)
        .await?
        .into_iter()
        .filter(|h| scope.is_none_or(|ws| h.workspace == ws))
        .map(|h| {
            let value = HistogramValue::from_cumulative(
                &STAGE_BUCKETS,
                h.cumulative.iter().map(|n| count(*n)),
                count(h.count),
                h.sum_ms as f64 / 1000.0,
            );
            (
                StageLabels {
                    workspace: h.workspace,
                    stage: h.stage,
                    outcome: h.outcome,
                },
                value,
            )
        })
        .collect();
    registry.register(
        "warden_stage_duration_seconds",
        "Time from claim to the end of a stage run, by workspace, stage and outcome (completed, failed, expired, ...)",
        Histograms { series },
    );
    Ok(())
}

/// Plugin calls of this process: by outcome, the limits hit, durations.
fn render_plugins(registry: &mut Registry, runtime: &warden_runtime::Runtime) {
    let counts = runtime.stats().counts();
    let calls = Family::<PluginCallLabels, Counter>::default();
    let limits = Family::<PluginLimitLabels, Counter>::default();
    for c in &counts {
        calls
            .get_or_create(&PluginCallLabels {
                plugin: c.plugin.clone(),
                world: c.world,
                outcome: c.outcome,
            })
            .inc_by(c.calls);
        if c.limit {
            limits
                .get_or_create(&PluginLimitLabels {
                    plugin: c.plugin.clone(),
                    world: c.world,
                    limit: c.outcome,
                })
                .inc_by(c.calls);
        }
    }
    registry.register(
        "warden_plugin_calls",
        "Plugin calls by plugin, world and outcome (ok, or how the call ended: fuel, deadline, memory, trap, ...)",
        calls,
    );
    registry.register(
        "warden_plugin_limit_hits",
        "Plugin calls ended by a limit, by plugin, world and limit (fuel, deadline, memory, steps, output, stack)",
        limits,
    );
    let series = runtime
        .stats()
        .durations()
        .into_iter()
        .map(|d| {
            let value = HistogramValue::from_cumulative(
                &warden_runtime::CALL_BUCKETS,
                d.cumulative.iter().copied(),
                d.count,
                d.sum,
            );
            (
                PluginLabels {
                    plugin: d.plugin,
                    world: d.world,
                },
                value,
            )
        })
        .collect();
    registry.register(
        "warden_plugin_call_duration_seconds",
        "Wall time of plugin calls, waiting for an instance slot included, by plugin and world",
        Histograms { series },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_outside_the_known_ten_is_other() {
        for (m, label) in [
            ("GET", "GET"),
            ("PATCH", "PATCH"),
            ("get", "OTHER"),
            ("MADEUP", "OTHER"),
            ("PROPFIND", "OTHER"),
        ] {
            let method = http::Method::from_bytes(m.as_bytes()).unwrap_or_default();
            assert_eq!(Method::of(&method).as_str(), label, "{m}");
        }
    }

    #[test]
    fn the_format_follows_the_accept_header() {
        for (accept, want) in [
            (None, Format::Text),
            (Some("*/*"), Format::Text),
            (Some("text/plain;version=0.0.4"), Format::Text),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            // What Prometheus sends.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Format::OpenMetrics,
            ),
            (
                Some("text/plain;q=1,application/openmetrics-text;q=0.5"),
                Format::Text,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Text),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn precomputed_histograms_are_encoded_cumulatively() {
        let h = HistogramValue::from_cumulative(&[1.0, 5.0], [2, 3], 4, 9.5);
        assert_eq!(h.buckets, vec![(1.0, 2), (5.0, 1), (f64::INFINITY, 1)]);
        let mut registry = Registry::default();
        registry.register(
            "x_seconds",
            "x",
            Histograms {
                series: vec![(
                    StageLabels {
                        workspace: "w".into(),
                        stage: "s".into(),
                        outcome: "completed".into(),
                    },
                    h,
                )],
            },
        );
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .unwrap_or_default();
        for line in [
            "# TYPE x_seconds histogram",
            "x_seconds_bucket{workspace=\"w\",stage=\"s\",outcome=\"completed\",le=\"1\"} 2",
            "x_seconds_bucket{workspace=\"w\",stage=\"s\",outcome=\"completed\",le=\"5\"} 3",
            "x_seconds_bucket{workspace=\"w\",stage=\"s\",outcome=\"completed\",le=\"+Inf\"} 4",
            "x_seconds_count{workspace=\"w\",stage=\"s\",outcome=\"completed\"} 4",
        ] {
            assert!(out.contains(line), "missing {line}:\n{out}");
        }
    }
}
