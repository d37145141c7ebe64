//! The model gateway (SPEC GW-1..GW-5): an OpenAI-compatible endpoint that
//! agents use as their base URL. Each request is routed by the workspace's
//! pinned routing-policy component, checked against the policy's limits and
//! the budgets, sent to the first healthy candidate (moving down the list
//! when one fails, skipping providers whose breaker is open), and its
//! upstream usage is booked per workspace, task, stage, provider and model.
//!
//! The request path touches no database while its caches are warm: pins,
//! budgets and task budgets are read at most every second or two, breakers
//! and reservations live in memory, and calls are recorded by a writer task
//! that books each batch in one transaction once the response is on its way.

mod budget;
mod limits;
pub use crate::config::gateway as config;
mod policy;
mod routing;
mod stream;
mod upstream;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use warden_store::Store;
use warden_store::gateway::GatewayCallRow;

use crate::alerts::Alerts;
use crate::breaker::{Admit, Breaker, BreakerPolicy, Change};
use crate::error::{Error, Result};
use crate::scheduler::Scheduler;
use budget::{Account, Amount, Ledger, Limits, Reservation};
pub use config::{GatewayConfig, ProviderConfig, WorkspaceGateway};

/// The gateway's answer to a call: status, headers and a body the HTTP
/// layer sends as it is.
pub type Response = http::Response<ReplyBody>;

/// The body of a [`Response`].
pub enum ReplyBody {
    /// All of it at once.
    Full(Bytes),
    /// Server-sent events, passed on as they arrive.
    Stream(BoxStream<'static, std::result::Result<Bytes, std::io::Error>>),
}
use crate::sync::Unpoisoned as _;
pub use policy::Policies;
use policy::Route;
use stream::{Splitter, Usage};
use writer::{Msg, Writer};

/// How long a workspace's hourly budgets and a task's budget are cached.
const SETTINGS_TTL: Duration = Duration::from_secs(1);

/// How often breakers are read back from the database (operators' changes
/// and other hosts' openings).
const SYNC_EVERY: Duration = Duration::from_secs(2);

/// Who is calling and about what: from the API key and the `x-warden-*`
/// headers.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The API key's workspace.
    pub workspace: String,
    /// `x-warden-task`.
    pub task: Option<String>,
    /// `x-warden-stage`.
    pub stage: Option<String>,
    /// `x-warden-mode`.
    pub mode: Option<String>,
}

/// One configured upstream.
struct Provider {
    cfg: ProviderConfig,
    /// `<base_url>/chat/completions`.
    url: String,
    /// `Bearer <key>`, when the provider has a key.
    auth: Option<HeaderValue>,
    slots: Option<Arc<Semaphore>>,
    timeout: Duration,
}

impl Provider {
    fn serves(&self, model: &str) -> bool {
        self.cfg.models.iter().any(|m| m == model)
    }

    /// Micro-dollars for these tokens (a float cast saturates: a huge
    /// count cannot wrap into a negative cost).
    fn cost_micros(&self, prompt: u64, completion: u64) -> i64 {
        let dollars = prompt as f64 * self.cfg.price_input_per_1k / 1_000.0
            + completion as f64 * self.cfg.price_output_per_1k / 1_000.0;
        (dollars * 1e6).ceil() as i64
    }

    /// The most completion tokens one choice can have on this provider
    /// after a prompt of `prompt` tokens: its `max_output_tokens`, within
    /// the context the prompt leaves.
    fn output_cap(&self, prompt: u64) -> u64 {
        let left = u64::from(self.cfg.max_context).saturating_sub(prompt);
        match self.cfg.max_output_tokens {
            Some(max) => left.min(u64::from(max)),
            None => left,
        }
    }
}

/// A parsed chat completion request.
struct ChatRequest {
    body: Map<String, Value>,
    model: String,
    stream: bool,
    /// The client asked for the usage chunk itself.
    wants_usage: bool,
    max_tokens: Option<u64>,
    /// Choices asked for (`n`, default 1).
    n: u64,
    /// Estimated prompt tokens (characters / 4, plus 4 per message).
    prompt_tokens: u64,
}

/// A task's budget and stage, as last read.
#[derive(Clone)]
struct TaskInfo {
    stage: String,
    limits: Limits,
    used: Amount,
}

/// A provider as operators see it: its configuration (never its key)
/// and its breaker.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderStatus {
    pub name: String,
    /// Its API root without a query, user or password
    /// ([`redact_url`]).
    pub base_url: String,
    pub models: Vec<String>,
    pub price_input_per_1k: f64,
    pub price_output_per_1k: f64,
    pub max_context: u32,
    /// `closed`, `open` or `half-open`.
    pub breaker: &'static str,
    /// Failures in a row.
    pub failures: u32,
    /// When the next probe may go, while the breaker is not closed (ms).
    pub retry_at: Option<i64>,
}

/// The gateway of one host.
pub struct Gateway {
    cfg: GatewayConfig,
    providers: Vec<Provider>,
    client: Arc<dyn crate::outbound::Client>,
    breaker_policy: BreakerPolicy,
    breakers: Mutex<HashMap<String, Breaker>>,
    ledger: Arc<Ledger>,
    policies: Policies,
    store: Store,
    /// Hourly budgets per workspace.
    hourly: Mutex<HashMap<String, (Instant, Limits)>>,
    tasks: Mutex<HashMap<(String, String), (Instant, TaskInfo)>>,
    /// Calls made per (workspace, task, stage), for `max_iterations`.
    iterations: Mutex<HashMap<(String, String, String), i64>>,
    writer: Writer,
}

impl Gateway {
    /// Builds the gateway under `[gateway]` (`cfg`) with the workspaces'
    /// routing `policies`, calling providers through a client of
    /// `connector`, and starts its writer and breaker sync.
    pub async fn start(
        cfg: GatewayConfig,
        policies: Policies,
        connector: &dyn crate::outbound::Connector,
        store: Store,
        scheduler: Arc<Scheduler>,
        alerts: Alerts,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Gateway>> {
        let mut providers = Vec::with_capacity(cfg.providers.len());
        for p in &cfg.providers {
            let key = p.api_key_env.as_deref().and_then(|var| match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v),
                _ => {
                    tracing::warn!(provider = %p.name, env = var, "the provider's API key variable is not set; calling it without a key");
                    None
                }
            });
            let auth = match key {
                Some(k) => Some(HeaderValue::try_from(format!("Bearer {k}")).map_err(|_| {
                    anyhow::anyhow!(
                        "the API key of provider {} is not a valid header value",
                        p.name
                    )
                })?),
                None => None,
            };
            providers.push(Provider {
                url: chat_url(&p.base_url)
                    .map_err(|e| anyhow::anyhow!("provider {}: base_url: {e}", p.name))?,
                auth,
                slots: p
                    .max_concurrent
                    .map(|n| Arc::new(Semaphore::new(n as usize))),
                timeout: Duration::from_millis(p.timeout_ms.unwrap_or(cfg.timeout_ms)),
                cfg: p.clone(),
            });
        }
        if cfg.reserve_output_tokens.is_some() {
            tracing::warn!(
                "[gateway] reserve_output_tokens is no longer used and can be removed: a request without max_tokens reserves n times its provider's max_output_tokens (else the context its prompt leaves)"
            );
        }
        // Redirects are not followed: a provider that answers one is
        // failing (it counts against its breaker), and following it would
        // send the prompt and the key to an address nobody configured.
        let client = connector.client(&crate::outbound::Options {
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: Some(256),
            tcp_nodelay: true,
            ..Default::default()
        })?;
        let mut breakers = HashMap::new();
        for row in store.list_breakers().await? {
            if let Some(name) = row.name.strip_prefix("provider:") {
                let mut b = Breaker::default();
                b.adopt(&row);
                breakers.insert(name.to_string(), b);
            }
        }
        let writer = Writer::start(store.clone(), scheduler, alerts.clone());
        let gateway = Arc::new(Gateway {
            breaker_policy: cfg.breaker_policy(),
            policies,
            cfg,
            providers,
            client,
            breakers: Mutex::new(breakers),
            ledger: Arc::new(Ledger::default()),
            store,
            hourly: Mutex::default(),
            tasks: Mutex::default(),
            iterations: Mutex::default(),
            writer,
        });
        tokio::spawn(sync_loop(Arc::downgrade(&gateway), stop));
        Ok(gateway)
    }

    /// Books every call recorded so far (at shutdown).
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// Calls the writer set aside since start because the database kept
    /// refusing them (`warden_gateway_rows_set_aside_total`).
    pub fn rows_set_aside(&self) -> u64 {
        self.writer.set_aside()
    }

    /// `GET /v1/models`: every model of every provider.
    pub fn models(&self) -> Value {
        let mut seen = std::collections::BTreeSet::new();
        let data: Vec<Value> = self
            .providers
            .iter()
            .flat_map(|p| p.cfg.models.iter().map(move |m| (m, &p.cfg.name)))
            .filter(|(m, _)| seen.insert(m.as_str()))
            .map(|(m, p)| json!({ "id": m, "object": "model", "created": 0, "owned_by": p }))
            .collect();
        json!({ "object": "list", "data": data })
    }

    /// The providers with their breakers, for the status API.
    pub fn providers(&self) -> Vec<ProviderStatus> {
        let breakers = self.breakers.locked();
        self.providers
            .iter()
            .map(|p| {
                let b = breakers.get(&p.cfg.name).cloned().unwrap_or_default();
                ProviderStatus {
                    name: p.cfg.name.clone(),
                    base_url: redact_url(&p.cfg.base_url, true),
                    models: p.cfg.models.clone(),
                    price_input_per_1k: p.cfg.price_input_per_1k,
                    price_output_per_1k: p.cfg.price_output_per_1k,
                    max_context: p.cfg.max_context,
                    breaker: b.state().name(),
                    failures: b.failures(),
                    retry_at: b.retry_at(),
                }
            })
            .collect()
    }

    /// `POST /v1/chat/completions`.
    ///
    /// The call runs in a task of its own: a client that goes away while
    /// the upstream works does not cancel it, so what the upstream did is
    /// still booked and its reservation settled with the real usage.
    pub async fn chat(self: &Arc<Self>, caller: Caller, body: Bytes) -> Result<Response> {
        let started = Instant::now();
        let gateway = self.clone();
        let call = tokio::spawn(async move { gateway.chat_inner(caller, body, started).await });
        match call.await {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!(
                "a gateway call ended abnormally: {e}"
            ))),
        }
    }

    async fn chat_inner(
        self: &Arc<Self>,
        caller: Caller,
        body: Bytes,
        started: Instant,
    ) -> Result<Response> {
        let req = parse_request(&body)?;
        let workspace = caller.workspace.clone();
        let mode = match caller.mode.clone() {
            Some(m) => m,
            None => self.default_mode(&workspace),
        };
        config::check_mode(&mode).map_err(|e| Error::invalid(format!("x-warden-mode: {e}")))?;
        let task = match &caller.task {
            Some(id) => Some((id.clone(), self.task(&workspace, id).await?)),
            None => None,
        };
        let stage = caller
            .stage
            .clone()
            .or_else(|| task.as_ref().map(|(_, t)| t.stage.clone()));
        let now = warden_store::now_ms();
        let budgets = self.budgets(&workspace, task.as_ref(), now).await?;
        let left = self.budget_left(&budgets);

        let call_id = warden_store::new_id();
        let mut route = self
            .policies
            .route(
                &workspace,
                &call_id,
                &mode,
                &req,
                task.as_ref().map(|(id, _)| id.as_str()),
                stage.as_deref(),
                left,
                &self.provider_status(),
            )
            .await;
        if let Some((row, opened)) = route.breaker_change.take() {
            tracing::warn!(breaker = %row.name, state = %row.state, reason = ?row.reason, "routing policy breaker changed");
            self.writer.send(Msg::Breaker { row, opened });
        }
        let plan = self.plan(&route, &req, &mode)?;
        if let (Some((id, _)), Some(stage)) = (&task, &stage) {
            self.count_iteration(&workspace, id, stage, route.max_iterations)
                .await?;
        }
        let reservation = self.ledger.reserve(&budgets, plan.reserve)?;
        let record = GatewayCallRow {
            id: call_id,
            workspace,
            task_id: task.map(|(id, _)| id),
            stage,
            mode,
            requested_model: req.model.clone(),
            policy: route.policy,
            policy_version: route.version,
            policy_digest: route.digest,
            route_reason: route.reason,
            stream: req.stream,
            created_at: now,
            ..GatewayCallRow::default()
        };
        match self
            .attempt(req, plan, record.clone(), reservation, started)
            .await
        {
            Ok(response) => Ok(response),
            Err(failure) => {
                let record = GatewayCallRow {
                    status: "failed".to_string(),
                    http_status: i64::from(Failure::STATUS.as_u16()),
                    attempts: failure.attempts,
                    provider: failure.provider,
                    model: failure.model,
                    error: Some(failure.error.to_string()),
                    latency_ms: started.elapsed().as_millis() as i64,
                    ..record
                };
                self.writer.send(Msg::Call(Box::new(record)));
                Err(failure.error)
            }
        }
    }

    fn default_mode(&self, workspace: &str) -> String {
        self.policies
            .workspace_gateway(workspace)
            .default_mode
            .unwrap_or_else(|| self.cfg.default_mode.clone())
    }
}

/// What the candidates left to try are, and what the call reserves.
struct Plan {
    candidates: Vec<(usize, String)>,
    reserve: Amount,
}

/// A request that got no upstream answer.
struct Failure {
    /// `Unavailable` (no candidate took the call) or `Internal` (the
    /// request could not be sent): both answered [`Failure::STATUS`].
    error: Error,
    attempts: i64,
    provider: Option<String>,
    model: Option<String>,
}

impl Failure {
    /// What the client is answered, and the call's record keeps: 503
    /// `UNAVAILABLE` (docs/gateway.md, "every candidate failed").
    const STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

    fn new(error: Error, attempts: i64, last: Option<(String, String)>) -> Failure {
        let (provider, model) = last.map_or((None, None), |(p, m)| (Some(p), Some(m)));
        Failure {
            error,
            attempts,
            provider,
            model,
        }
    }
}

#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<Usage>,
}

/// What a finished stream books.
struct Finish {
    provider: usize,
    record: GatewayCallRow,
    reservation: Reservation,
    prompt_estimate: u64,
    started: Instant,
    /// The provider's `max_concurrent` slot, held until the stream ends.
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Reads upstream bytes and hands whole events on; books the call when the
/// stream ends or the client goes away (drop).
///
/// A stream that stalls, breaks off, ends before its answer is complete,
/// sends an error event or an event over `max_stream_event_kib` does not
/// look complete to the client: it ends with an error event that OpenAI's
/// clients raise as an error, and no `[DONE]`; the call is booked as
/// failed with what was delivered.
struct Pump {
    gateway: Arc<Gateway>,
    upstream: crate::outbound::Body,
    splitter: Splitter,
    pending: std::collections::VecDeque<Bytes>,
    idle: Duration,
    /// Largest event, in bytes.
    max_event: usize,
    wants_usage: bool,
    usage: Option<Usage>,
    chunks: u64,
    /// `[DONE]` arrived.
    done: bool,
    /// A choice's `finish_reason` arrived: the answer is whole.
    finished: bool,
    /// Why the stream ended early, when it did.
    ended: Option<String>,
    finish: Option<Finish>,
}

impl Pump {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Some(b);
            }
            // Finished: nothing more to read.
            self.finish.as_ref()?;
            match tokio::time::timeout(self.idle, self.upstream.next()).await {
                Ok(Some(Ok(bytes))) => {
                    for event in self.splitter.push(&bytes) {
                        let seen = stream::inspect(&event);
                        if seen.usage.is_some() {
                            self.usage = seen.usage;
                        }
                        if seen.chunk {
                            self.chunks += 1;
                        }
                        self.done |= seen.done;
                        self.finished |= seen.finish;
                        if let Some(message) = seen.error {
                            // The client gets the upstream's own error
                            // event, and nothing after it.
                            self.pending.push_back(event);
                            self.fail(
                                format!("the upstream sent an error mid-stream: {message}"),
                                false,
                            );
                            break;
                        }
                        if seen.usage_only && !self.wants_usage {
                            continue;
                        }
                        self.pending.push_back(event);
                    }
                    if self.finish.is_some() && self.splitter.buffered() > self.max_event {
                        self.fail(
                            format!(
                                "the upstream sent an event over the {} KiB limit ([gateway] max_stream_event_kib)",
                                self.max_event / 1024
                            ),
                            true,
                        );
                    }
                }
                Ok(None) => {
                    let rest = std::mem::take(&mut self.splitter).rest();
                    if self.done || self.finished {
                        if !rest.is_empty() {
                            self.pending.push_back(rest);
                        }
                        if !self.done {
                            self.ended =
                                Some("the upstream ended the stream without [DONE]".to_string());
                        }
                        self.finish(false);
                    } else {
                        // The bytes of an event that never ended are not
                        // an event: they are dropped with the rest.
                        self.fail(
                            "the upstream ended the stream before its answer was complete (no finish_reason, no [DONE])".to_string(),
                            true,
                        );
                    }
                }
                Ok(Some(Err(e))) => {
                    self.fail(format!("the stream broke off: {e}"), true);
                }
                Err(_) => {
                    self.fail(
                        format!(
                            "the upstream sent nothing for {} ms mid-stream",
                            self.idle.as_millis()
                        ),
                        true,
                    );
                }
            }
        }
    }

    /// Ends a stream that did not complete: the client gets an error event
    /// (unless the upstream's own error event is already on its way) and no
    /// `[DONE]`; the call is booked as failed, with the tokens delivered,
    /// and counts against the provider's breaker.
    fn fail(&mut self, why: String, tell: bool) {
        let Some(f) = &mut self.finish else { return };
        f.record.status = "failed".to_string();
        if tell {
            self.pending.push_back(error_event(&why, &f.record.id));
        }
        self.ended = Some(why);
        self.finish(true);
    }

    /// Books the call (once). `upstream_failed` counts against the
    /// provider's breaker.
    fn finish(&mut self, upstream_failed: bool) {
        let Some(f) = self.finish.take() else { return };
        let Finish {
            provider,
            mut record,
            reservation,
            prompt_estimate,
            started,
            slot,
        } = f;
        let p = &self.gateway.providers[provider];
        if upstream_failed && let Some(why) = &self.ended {
            self.gateway.breaker_failure(&p.cfg.name, why);
        }
        let usage = match self.usage {
            Some(u) => u,
            None => {
                let why = self
                    .ended
                    .clone()
                    .unwrap_or_else(|| "the upstream sent no usage".to_string());
                self.ended = Some(format!("{why}; tokens estimated"));
                Usage {
                    prompt_tokens: prompt_estimate,
                    completion_tokens: self.chunks,
                }
            }
        };
        record.error = self.ended.clone();
        self.gateway
            .book(&mut record, p, usage, reservation, started);
        drop(slot);
    }
}

/// The event that ends a stream that did not complete, as OpenAI ends a
/// stream whose model failed: its clients raise it as an error (the
/// Python client's `APIError`), so an agent never takes a cut-off answer
/// for a whole one.
fn error_event(why: &str, call_id: &str) -> Bytes {
    let body = json!({
        "error": {
            "message": format!("the answer is incomplete: {why} (warden call {call_id})"),
            "type": "server_error",
            "param": null,
            "code": "stream_incomplete",
        }
    });
    Bytes::from(format!("data: {body}\n\n"))
}

impl Drop for Pump {
    fn drop(&mut self) {
        if self.finish.is_some() {
            if self.ended.is_none() {
                self.ended = Some("the client closed the stream early".to_string());
            }
            self.finish(false);
        }
    }
}

/// The headers that tell a client how its call was routed.
fn warden_headers(record: &GatewayCallRow) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put("x-warden-call-id", &record.id);
    put(
        "x-warden-provider",
        record.provider.as_deref().unwrap_or(""),
    );
    put("x-warden-model", record.model.as_deref().unwrap_or(""));
    put(
        "x-warden-policy",
        &format!("{}@{}", record.policy, record.policy_version),
    );
    put("x-warden-policy-digest", &record.policy_digest);
    h
}

fn passthrough(
    status: StatusCode,
    body: Bytes,
    record: &GatewayCallRow,
    content_type: &str,
) -> Response {
    let mut r = Response::new(ReplyBody::Full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.extend(warden_headers(record));
    r
}

/// Statuses that blame the request, not the provider.
fn is_client_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 422)
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `text` without `url` or the parts of it that may be a secret (a
/// webhook's path, a query): an error page may echo the address it was
/// sent to, and these texts become log lines, call records, stored
/// notifications, breaker reasons and alert texts.
pub(crate) fn scrub_url(text: &str, url: &str) -> String {
    let mut out = text.replace(url, "<url>");
    if let Ok(u) = url::Url::parse(url) {
        let path = u.path().trim_end_matches('/');
        if path.trim_matches('/').len() >= 4 {
            out = out.replace(path, "/…");
        }
        if let Some(query) = u.query()
            && query.len() >= 4
        {
            out = out.replace(query, "…");
        }
    }
    out
}

/// A URL to show: its scheme, host and port, then its path when
/// `keep_path` (a provider's API root) or else `/…` (a webhook, whose path
/// is often its secret); a query, which may hold a key, and a user and
/// password are never shown.
pub fn redact_url(url: &str, keep_path: bool) -> String {
    let Ok(u) = url::Url::parse(url) else {
        return "(not a valid URL)".to_string();
    };
    let host = u.host_str().unwrap_or("");
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = if keep_path {
        u.path().trim_end_matches('/').to_string()
    } else if u.path().trim_matches('/').is_empty() {
        String::new()
    } else {
        "/…".to_string()
    };
    let query = if u.query().is_some() { "?…" } else { "" };
    format!("{}://{host}{port}{path}{query}", u.scheme())
}

/// `<base_url>/chat/completions`, with the base URL's query (some
/// providers take their key or API version there) after the path.
fn chat_url(base_url: &str) -> std::result::Result<String, String> {
    let mut url = url::Url::parse(base_url).map_err(|e| e.to_string())?;
    let path = format!("{}/chat/completions", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url.to_string())
}

/// A count as stored, saturating at the largest BIGINT.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Parses and checks a chat completion request.
fn parse_request(body: &[u8]) -> Result<ChatRequest> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(body) = value else {
        return Err(Error::invalid("the request body must be a JSON object"));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        _ => {
            return Err(Error::invalid(
                "model is required: a model name, or \"auto\" to let the routing policy choose",
            ));
        }
    };
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        _ => return Err(Error::invalid("messages must be a non-empty array")),
    };
    let mut chars = 0usize;
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(Error::invalid(format!("messages[{i}] must be an object")));
        };
        match m.get("content") {
            Some(Value::String(s)) => chars += s.len(),
            Some(Value::Array(parts)) => {
                for part in parts {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        chars += t.len();
                    }
                }
            }
            _ => {}
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Error::invalid("stream must be true or false")),
    };
    let wants_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut max_tokens = None;
    for key in ["max_completion_tokens", "max_tokens"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => {
                    max_tokens = Some(max_tokens.map_or(n, |m: u64| m.min(n)));
                }
                _ => return Err(Error::invalid(format!("{key} must be a positive integer"))),
            },
        }
    }
    // OpenAI allows 1 to 128 choices; each may be as long as max_tokens.
    let n = match body.get("n") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=128).contains(&n) => n,
            _ => {
                return Err(Error::invalid(format!(
                    "n must be an integer from 1 to 128, not \"{}\"",
                    crate::validate::truncate(&v.to_string(), 40)
                )));
            }
        },
    };
    let prompt_tokens = (chars as u64).div_ceil(4) + 4 * messages.len() as u64;
    Ok(ChatRequest {
        body,
        model,
        stream,
        wants_usage,
        max_tokens,
        n,
        prompt_tokens,
    })
}

async fn sync_loop(
    gateway: std::sync::Weak<Gateway>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(g) = gateway.upgrade() else { return };
        g.sync_breakers().await;
        rounds += 1;
        if rounds.is_multiple_of(300) {
            g.ledger.prune();
            g.policies.prune();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_with_clear_errors() {
        let err = |body: &str| parse_request(body.as_bytes()).err().unwrap().to_string();
        assert!(err("{").starts_with("the request body is not valid JSON"));
        assert_eq!(err("[]"), "the request body must be a JSON object");
        assert!(
            err(r#"{"messages":[{"role":"user","content":"hi"}]}"#)
                .starts_with("model is required")
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[]}"#),
            "messages must be a non-empty array"
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[1]}"#),
            "messages[0] must be an object"
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[{"content":"x"}],"max_tokens":-1}"#),
            "max_tokens must be a positive integer"
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[{"content":"x"}],"stream":"yes"}"#),
            "stream must be true or false"
        );
        let ok = parse_request(
            br#"{"model":"m","messages":[{"role":"user","content":"12345678"},{"role":"user","content":[{"type":"text","text":"abcd"}]}],
                "stream":true,"stream_options":{"include_usage":true},"max_tokens":100,"max_completion_tokens":50}"#,
        )
        .unwrap();
        assert_eq!(ok.prompt_tokens, 3 + 8);
        assert_eq!(ok.max_tokens, Some(50));
        assert!(ok.stream && ok.wants_usage);
    }

    #[test]
    fn cost_is_rounded_up_to_the_micro_dollar() {
        let p = Provider {
            cfg: ProviderConfig {
                name: "p".into(),
                base_url: "http://x/v1".into(),
                api_key_env: None,
                models: vec!["m".into()],
                price_input_per_1k: 0.001,
                price_output_per_1k: 0.002,
                max_context: 1000,
                max_output_tokens: None,
                max_concurrent: None,
                timeout_ms: None,
            },
            url: String::new(),
            auth: None,
            slots: None,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(p.cost_micros(1_000, 500), 2_000);
        assert_eq!(p.cost_micros(1, 0), 1);
        assert_eq!(p.cost_micros(0, 0), 0);
        // A count no call has saturates instead of wrapping negative.
        assert_eq!(p.cost_micros(u64::MAX, u64::MAX), i64::MAX);
        // Without max_output_tokens, the context bounds a choice.
        assert_eq!(p.output_cap(300), 700);
        assert_eq!(p.output_cap(5_000), 0);
    }

    #[test]
    fn urls_are_shown_without_what_may_be_a_key() {
        assert_eq!(
            redact_url("https://user:pw@api.example.com:8443/v1/?key=secret", true),
            "https://api.example.com:8443/v1?…"
        );
        assert_eq!(
            redact_url("https://hooks.example.com/services/T0/B0/secret", false),
            "https://hooks.example.com/…"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:9000", false),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            chat_url("http://h/v1/?key=k").unwrap(),
            "http://h/v1/chat/completions?key=k"
        );
        assert_eq!(
            chat_url("https://api.openai.com/v1").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        let url = "https://hooks.example.com/services/T0/B0/secret?sig=abcdef";
        assert_eq!(
            scrub_url(
                &format!("HTTP 404: no route {url}, nor /services/T0/B0/secret or sig=abcdef"),
                url
            ),
            "HTTP 404: no route <url>, nor /… or …"
        );
    }

    #[test]
    fn n_is_checked_and_counted() {
        let parse = |n: &str| {
            parse_request(
                format!(r#"{{"model":"m","messages":[{{"content":"x"}}],"n":{n}}}"#).as_bytes(),
            )
        };
        assert_eq!(parse("3").unwrap().n, 3);
        for bad in ["0", "129", "-1", "\"2\"", "1.5"] {
            let e = parse(bad).err().unwrap().to_string();
            assert!(
                e.starts_with("n must be an integer from 1 to 128"),
                "{bad}: {e}"
            );
        }
    }
}
