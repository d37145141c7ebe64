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
pub use crate::config::gateway as config;
mod policy;
mod stream;
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
use crate::config::Config;
use crate::error::{Error, Result};
use crate::registry::Registry;
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
use policy::{Policies, Route};
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

/// The gateway of one host.
pub struct Gateway {
    cfg: GatewayConfig,
    providers: Vec<Provider>,
    client: reqwest::Client,
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
    /// Builds the gateway and starts its writer and breaker sync.
    pub async fn start(
        config: Arc<Config>,
        store: Store,
        registry: Arc<Registry>,
        runtime: Arc<warden_runtime::Runtime>,
        scheduler: Arc<Scheduler>,
        alerts: Alerts,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Gateway>> {
        let cfg = config.gateway.clone();
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
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?;
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
            policies: Policies::new(registry, runtime, config.clone(), alerts),
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
    pub fn providers(&self) -> Vec<Value> {
        let breakers = self.breakers.locked();
        self.providers
            .iter()
            .map(|p| {
                let b = breakers.get(&p.cfg.name).cloned().unwrap_or_default();
                json!({
                    "name": p.cfg.name,
                    "base_url": redact_url(&p.cfg.base_url, true),
                    "models": p.cfg.models,
                    "price_input_per_1k": p.cfg.price_input_per_1k,
                    "price_output_per_1k": p.cfg.price_output_per_1k,
                    "max_context": p.cfg.max_context,
                    "breaker": b.state().name(),
                    "failures": b.failures(),
                    "retry_at": b.retry_at().map(crate::time::time),
                })
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
        let reservation = self
            .ledger
            .reserve(&budgets, plan.reserve)
            .map_err(Error::ResourceExhausted)?;
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
                    http_status: i64::from(failure.error.status().as_u16()),
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

    /// A task of the workspace, from the cache when fresh.
    async fn task(&self, workspace: &str, id: &str) -> Result<TaskInfo> {
        crate::validate::id("task", id)
            .map_err(|e| Error::invalid(format!("x-warden-task: {e}")))?;
        let key = (workspace.to_string(), id.to_string());
        if let Some((at, info)) = self.tasks.locked().get(&key)
            && at.elapsed() < SETTINGS_TTL
        {
            return Ok(info.clone());
        }
        let t = self.store.get_task(workspace, id).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "task {id} (from x-warden-task) not found in workspace \"{workspace}\""
            ))
        })?;
        let info = TaskInfo {
            stage: t.stage.clone(),
            limits: Limits {
                cost_micros: t.budget.cost_micros,
                tokens: t.budget.tokens,
            },
            used: Amount {
                cost_micros: t.used.cost_micros,
                tokens: t.used.tokens,
            },
        };
        let mut tasks = self.tasks.locked();
        if tasks.len() > 50_000 {
            tasks.clear();
        }
        tasks.insert(key, (Instant::now(), info.clone()));
        Ok(info)
    }

    /// The budgets a call counts against, with their spend refreshed.
    async fn budgets(
        &self,
        workspace: &str,
        task: Option<&(String, TaskInfo)>,
        now: i64,
    ) -> Result<Vec<(Account, Limits)>> {
        let mut budgets = Vec::with_capacity(2);
        let hourly = self.hourly_limits(workspace).await?;
        if !hourly.is_none() {
            let account = Account::Hour {
                workspace: workspace.to_string(),
                hour: now.div_euclid(3_600_000),
            };
            if self.ledger.stale(&account) {
                let (tokens, cost_micros) = self.store.hourly_usage(workspace, now).await?;
                self.ledger.refresh(
                    &account,
                    Amount {
                        cost_micros,
                        tokens,
                    },
                );
            }
            budgets.push((account, hourly));
        }
        if let Some((id, info)) = task
            && !info.limits.is_none()
        {
            let account = Account::Task {
                workspace: workspace.to_string(),
                id: id.clone(),
            };
            // The cached task is at most a second old: its usage is the
            // database's.
            if self.ledger.stale(&account) {
                self.ledger.refresh(&account, info.used);
            }
            budgets.push((account, info.limits));
        }
        Ok(budgets)
    }

    async fn hourly_limits(&self, workspace: &str) -> Result<Limits> {
        if let Some((at, limits)) = self.hourly.locked().get(workspace)
            && at.elapsed() < SETTINGS_TTL
        {
            return Ok(*limits);
        }
        let limits = match self.store.get_settings(workspace).await? {
            Some(s) => Limits {
                cost_micros: s.hourly_cost_micros,
                tokens: s.hourly_tokens,
            },
            None => Limits::default(),
        };
        self.hourly
            .locked()
            .insert(workspace.to_string(), (Instant::now(), limits));
        Ok(limits)
    }

    /// The smallest amount left over the call's budgets.
    fn budget_left(&self, budgets: &[(Account, Limits)]) -> budget::Left {
        let mut left = budget::Left::default();
        for (account, limits) in budgets {
            let l = self.ledger.left(account, *limits);
            left.cost_micros = min_opt(left.cost_micros, l.cost_micros);
            left.tokens = min_opt(left.tokens, l.tokens);
        }
        left
    }

    /// Counts one more model call of a task's stage; refuses it over the
    /// policy's `max_iterations`.
    async fn count_iteration(
        &self,
        workspace: &str,
        task: &str,
        stage: &str,
        max: Option<u32>,
    ) -> Result<()> {
        let key = (workspace.to_string(), task.to_string(), stage.to_string());
        let known = self.iterations.locked().get(&key).copied();
        let base = match known {
            Some(_) => 0,
            None => self.store.count_stage_calls(workspace, task, stage).await?,
        };
        let mut iterations = self.iterations.locked();
        if iterations.len() > 100_000 {
            iterations.clear();
        }
        let n = iterations.entry(key).or_insert(base);
        if let Some(max) = max
            && *n >= i64::from(max)
        {
            return Err(Error::ResourceExhausted(format!(
                "task {task} has made {n} model calls in stage {stage}; the routing policy allows at most {max} (max_iterations)"
            )));
        }
        *n += 1;
        Ok(())
    }

    /// Every provider with its breaker, for the policy.
    fn provider_status(&self) -> Vec<policy::ProviderView> {
        let now = warden_store::now_ms();
        let breakers = self.breakers.locked();
        self.providers
            .iter()
            .map(|p| policy::ProviderView {
                name: p.cfg.name.clone(),
                // Open with its backoff over reads half-open: the policy
                // keeps offering it, so that its probe can go.
                breaker: breakers
                    .get(&p.cfg.name)
                    .map_or("closed", |b| b.state_at(now).name())
                    .to_string(),
                models: p.cfg.models.clone(),
                price_input_per_1k: p.cfg.price_input_per_1k,
                price_output_per_1k: p.cfg.price_output_per_1k,
                max_context: p.cfg.max_context,
            })
            .collect()
    }

    /// Applies the policy's limits to its candidates: what is left is
    /// tried in order. Refuses the request, before any upstream, when it
    /// is over the policy's max context or every candidate is over its max
    /// price.
    fn plan(&self, route: &Route, req: &ChatRequest, mode: &str) -> Result<Plan> {
        let needed = req
            .prompt_tokens
            .saturating_add(req.max_tokens.unwrap_or(0));
        if let Some(max) = route.max_context
            && needed > u64::from(max)
        {
            return Err(Error::invalid(format!(
                "this request needs about {needed} tokens of context ({} prompt{}), over the {max} that routing policy {} allows in mode {mode} (max_context); shorten the prompt or lower max_tokens",
                req.prompt_tokens,
                req.max_tokens
                    .map(|m| format!(" + {m} max_tokens"))
                    .unwrap_or_default(),
                route.policy
            )));
        }
        let mut candidates = Vec::new();
        let mut skipped = Vec::new();
        let mut over_price = 0;
        for c in &route.candidates {
            let Some(i) = self.providers.iter().position(|p| p.cfg.name == c.provider) else {
                skipped.push(format!("{}: no such provider", c.provider));
                continue;
            };
            let p = &self.providers[i];
            if !p.serves(&c.model) {
                skipped.push(format!(
                    "{}/{}: the provider does not list this model",
                    c.provider, c.model
                ));
                continue;
            }
            if let Some(max) = route.max_price_per_1k {
                let price = p.cfg.price_input_per_1k.max(p.cfg.price_output_per_1k);
                if price > max {
                    over_price += 1;
                    skipped.push(format!(
                        "{}/{} costs ${price} per 1k tokens, over the max price of ${max} per 1k",
                        c.provider, c.model
                    ));
                    continue;
                }
            }
            if needed > u64::from(p.cfg.max_context) {
                skipped.push(format!(
                    "{}/{} has a context of {} tokens, this request needs about {needed}",
                    c.provider, c.model, p.cfg.max_context
                ));
                continue;
            }
            candidates.push((i, c.model.clone()));
        }
        if candidates.is_empty() {
            let why = if skipped.is_empty() {
                "it named no candidate".to_string()
            } else {
                skipped.join("; ")
            };
            let message = format!(
                "refused before any upstream: routing policy {} left no candidate for model \"{}\" in mode {mode}: {why}",
                route.policy, req.model
            );
            // Over price is the request's doing (its mode, its model); a
            // policy naming unknown providers is the operator's.
            return Err(if over_price > 0 || route.candidates.is_empty() {
                Error::InvalidArgument(message)
            } else {
                Error::FailedPrecondition(message)
            });
        }
        // The reservation: the largest the call can cost on any candidate,
        // every choice at its largest completion (`max_tokens`, else the
        // provider's output cap), so that calls in flight together can
        // pass a budget by no more than the one admitted last.
        let mut reserve = Amount::default();
        for (i, _) in &candidates {
            let p = &self.providers[*i];
            let per_choice = req
                .max_tokens
                .unwrap_or_else(|| p.output_cap(req.prompt_tokens));
            let completion = per_choice.saturating_mul(req.n);
            reserve.cost_micros = reserve
                .cost_micros
                .max(p.cost_micros(req.prompt_tokens, completion));
            reserve.tokens = reserve
                .tokens
                .max(to_i64(req.prompt_tokens.saturating_add(completion)));
        }
        Ok(Plan {
            candidates,
            reserve,
        })
    }

    /// Tries the candidates in order.
    async fn attempt(
        self: &Arc<Self>,
        req: ChatRequest,
        plan: Plan,
        mut record: GatewayCallRow,
        reservation: Reservation,
        started: Instant,
    ) -> std::result::Result<Response, Failure> {
        let mut body = req.body;
        if req.stream {
            // Ask for the usage chunk whatever the client asked: it is what
            // the call is booked from.
            let options = body
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(o) = options.as_object_mut() {
                o.insert("include_usage".to_string(), Value::Bool(true));
            }
        }
        let mut notes: Vec<String> = Vec::new();
        let mut attempts = 0i64;
        let mut last: Option<(String, String)> = None;
        for (i, model) in plan.candidates {
            let provider = &self.providers[i];
            let name = provider.cfg.name.clone();
            let probe = {
                let now = warden_store::now_ms();
                let mut breakers = self.breakers.locked();
                match breakers.entry(name.clone()).or_default().admit(now) {
                    Admit::Pass => false,
                    Admit::Probe => true,
                    Admit::Refuse { retry_at } => {
                        notes.push(format!(
                            "{name}: breaker open until {}",
                            crate::time::time(retry_at)
                        ));
                        continue;
                    }
                }
            };
            // Held until the call is over: for a stream, until it ends.
            let slot = match &provider.slots {
                Some(s) => match s.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        notes.push(format!(
                            "{name}: at its max_concurrent of {}",
                            provider.cfg.max_concurrent.unwrap_or(0)
                        ));
                        if probe {
                            self.breaker_success(&name);
                        }
                        continue;
                    }
                },
                None => None,
            };
            attempts += 1;
            last = Some((name.clone(), model.clone()));
            body.insert("model".to_string(), Value::String(model.clone()));
            let payload = match serde_json::to_vec(&body) {
                Ok(p) => p,
                Err(e) => {
                    return Err(Failure::new(
                        Error::Internal(format!("cannot serialize a request: {e}")),
                        attempts,
                        last,
                    ));
                }
            };
            let mut request = self
                .client
                .post(&provider.url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(payload);
            if let Some(auth) = &provider.auth {
                request = request.header(header::AUTHORIZATION, auth.clone());
            }
            let sent = tokio::time::timeout(provider.timeout, request.send()).await;
            let response = match sent {
                Err(_) => {
                    let why = format!("no response within {} ms", provider.timeout.as_millis());
                    self.breaker_failure(&name, &why);
                    notes.push(format!("{name}/{model}: {why}"));
                    continue;
                }
                Ok(Err(e)) => {
                    let why = format!("cannot reach it: {}", http_error(e));
                    self.breaker_failure(&name, &why);
                    notes.push(format!("{name}/{model}: {why}"));
                    continue;
                }
                Ok(Ok(r)) => r,
            };
            let status = response.status();
            if is_client_error(status) {
                // The request is at fault, not the provider: the client
                // gets the upstream's answer as it is.
                self.breaker_success(&name);
                let bytes = self.read_body(response).await.unwrap_or_default();
                record.status = "failed".to_string();
                record.http_status = i64::from(status.as_u16());
                record.attempts = attempts;
                record.provider = Some(name.clone());
                record.model = Some(model.clone());
                record.error = Some(scrub_url(
                    &format!(
                        "{name} refused the request with HTTP {}: {}",
                        status.as_u16(),
                        crate::validate::truncate(&String::from_utf8_lossy(&bytes), 300)
                    ),
                    &provider.url,
                ));
                record.latency_ms = started.elapsed().as_millis() as i64;
                reservation.settle(Amount::default());
                self.writer.send(Msg::Call(Box::new(record.clone())));
                return Ok(passthrough(status, bytes, &record, "application/json"));
            }
            if !status.is_success() {
                let bytes = self.read_body(response).await.unwrap_or_default();
                let why = scrub_url(
                    &format!(
                        "HTTP {}: {}",
                        status.as_u16(),
                        crate::validate::truncate(&String::from_utf8_lossy(&bytes), 200)
                    ),
                    &provider.url,
                );
                self.breaker_failure(&name, &why);
                notes.push(format!("{name}/{model}: {why}"));
                continue;
            }
            record.attempts = attempts;
            record.provider = Some(name.clone());
            record.model = Some(model.clone());
            record.http_status = i64::from(status.as_u16());
            if req.stream {
                self.breaker_success(&name);
                return Ok(self.stream(
                    response,
                    Finish {
                        provider: i,
                        record,
                        reservation,
                        prompt_estimate: req.prompt_tokens,
                        started,
                        slot,
                    },
                    req.wants_usage,
                ));
            }
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            let bytes = match self.read_body(response).await {
                Ok(b) => b,
                Err(why) => {
                    self.breaker_failure(&name, &why);
                    notes.push(format!("{name}/{model}: {why}"));
                    continue;
                }
            };
            self.breaker_success(&name);
            let usage = serde_json::from_slice::<UsageOnly>(&bytes)
                .ok()
                .and_then(|u| u.usage);
            let usage = match usage {
                Some(u) => u,
                None => {
                    record.error = Some("the upstream sent no usage; tokens estimated".to_string());
                    Usage {
                        prompt_tokens: req.prompt_tokens,
                        completion_tokens: (bytes.len() as u64).div_ceil(4),
                    }
                }
            };
            self.book(&mut record, provider, usage, reservation, started);
            drop(slot);
            return Ok(passthrough(status, bytes, &record, &content_type));
        }
        let error = if attempts == 0 {
            Error::Unavailable(format!(
                "no candidate could take the request: {}",
                notes.join("; ")
            ))
        } else {
            Error::Unavailable(format!(
                "every candidate failed ({attempts} tried): {}",
                notes.join("; ")
            ))
        };
        drop(reservation);
        Err(Failure::new(error, attempts, last))
    }

    /// Reads a whole response body under the idle timeout, up to
    /// `max_response_kib`.
    async fn read_body(&self, response: reqwest::Response) -> std::result::Result<Bytes, String> {
        let idle = Duration::from_millis(self.cfg.idle_timeout_ms);
        let limit = self.cfg.max_response_kib.saturating_mul(1024);
        let over = || {
            format!(
                "the response body is over the {} KiB limit ([gateway] max_response_kib)",
                self.cfg.max_response_kib
            )
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(over());
        }
        let read = async {
            let mut response = response;
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| format!("the response broke off: {}", http_error(e)))?
            {
                if body.len() + chunk.len() > limit {
                    return Err(over());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        match tokio::time::timeout(idle, read).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the response body did not arrive within {} ms",
                idle.as_millis()
            )),
        }
    }

    /// Books a call that got an answer: settles its reservation, queues
    /// its record (`ok` unless the caller marked it `failed`). Usage over
    /// `max_call_tokens` is booked at that, with a note in the error.
    fn book(
        &self,
        record: &mut GatewayCallRow,
        provider: &Provider,
        usage: Usage,
        reservation: Reservation,
        started: Instant,
    ) {
        let max = self.cfg.max_call_tokens;
        let usage = match usage.capped(max) {
            Ok(u) => u,
            Err(u) => {
                let note = format!(
                    "the upstream reported {} prompt and {} completion tokens, over the {max} one call may book ([gateway] max_call_tokens); booked {} and {}",
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    u.prompt_tokens,
                    u.completion_tokens
                );
                record.error = Some(match record.error.take() {
                    Some(e) => format!("{e}; {note}"),
                    None => note,
                });
                u
            }
        };
        let cost = provider.cost_micros(usage.prompt_tokens, usage.completion_tokens);
        if record.status.is_empty() {
            record.status = "ok".to_string();
        }
        record.prompt_tokens = to_i64(usage.prompt_tokens);
        record.completion_tokens = to_i64(usage.completion_tokens);
        record.cost_micros = cost;
        record.latency_ms = started.elapsed().as_millis() as i64;
        reservation.settle(Amount {
            cost_micros: cost,
            tokens: record
                .prompt_tokens
                .saturating_add(record.completion_tokens),
        });
        self.writer.send(Msg::Call(Box::new(record.clone())));
    }

    /// Passes a streamed response on, event by event, as it arrives.
    fn stream(
        self: &Arc<Self>,
        response: reqwest::Response,
        finish: Finish,
        wants_usage: bool,
    ) -> Response {
        let headers = warden_headers(&finish.record);
        let pump = Pump {
            gateway: self.clone(),
            upstream: Box::pin(response.bytes_stream()),
            splitter: Splitter::default(),
            pending: std::collections::VecDeque::new(),
            idle: Duration::from_millis(self.cfg.idle_timeout_ms),
            max_event: self.cfg.max_stream_event_kib.saturating_mul(1024),
            wants_usage,
            usage: None,
            chunks: 0,
            done: false,
            finished: false,
            ended: None,
            finish: Some(finish),
        };
        let body = ReplyBody::Stream(Box::pin(futures::stream::unfold(
            pump,
            |mut pump| async move {
                pump.next()
                    .await
                    .map(|b| (Ok::<Bytes, std::io::Error>(b), pump))
            },
        )));
        let mut r = Response::new(body);
        *r.status_mut() = StatusCode::OK;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.extend(headers);
        r
    }

    fn breaker_success(&self, provider: &str) {
        let now = warden_store::now_ms();
        let mut breakers = self.breakers.locked();
        let b = breakers.entry(provider.to_string()).or_default();
        if b.success(now) == Change::Closed {
            let row = b.row(&format!("provider:{provider}"));
            drop(breakers);
            tracing::info!(provider, "provider breaker closed: a probe succeeded");
            self.writer.send(Msg::Breaker { row, opened: false });
        }
    }

    fn breaker_failure(&self, provider: &str, why: &str) {
        tracing::warn!(provider, error = why, "provider call failed");
        let now = warden_store::now_ms();
        let mut breakers = self.breakers.locked();
        let b = breakers.entry(provider.to_string()).or_default();
        if let Change::Opened { reason, .. } = b.failure(now, &self.breaker_policy, why) {
            let row = b.row(&format!("provider:{provider}"));
            drop(breakers);
            tracing::warn!(provider, reason, "provider breaker opened");
            self.writer.send(Msg::Breaker { row, opened: true });
        }
    }

    /// Takes breaker states written by operators or other hosts.
    async fn sync_breakers(&self) {
        let rows = match self.store.list_breakers().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read breakers");
                return;
            }
        };
        let mut breakers = self.breakers.locked();
        for row in rows {
            if let Some(name) = row.name.strip_prefix("provider:")
                && self.providers.iter().any(|p| p.cfg.name == name)
                && breakers.entry(name.to_string()).or_default().adopt(&row)
            {
                tracing::info!(provider = name, state = %row.state, "provider breaker changed elsewhere");
            } else if self.policies.adopt_breaker(&row) {
                tracing::info!(breaker = %row.name, state = %row.state, "routing policy breaker changed elsewhere");
            }
        }
    }
}

/// What the candidates left to try are, and what the call reserves.
struct Plan {
    candidates: Vec<(usize, String)>,
    reserve: Amount,
}

/// A request that got no upstream answer.
struct Failure {
    error: Error,
    attempts: i64,
    provider: Option<String>,
    model: Option<String>,
}

impl Failure {
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
    upstream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Bytes>> + Send>>,
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
                    self.fail(format!("the stream broke off: {}", http_error(e)), true);
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

/// An error with its sources, for messages.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// A reqwest error for messages, without its URL: a provider's or a
/// sink's URL may hold a key (in its query or its path), and these texts
/// end up in logs, call records, breaker reasons and alerts.
pub(crate) fn http_error(e: reqwest::Error) -> String {
    error_chain(&e.without_url())
}

/// `text` without `url` or the parts of it that may be a secret (a
/// webhook's path, a query): an error page may echo the address it was
/// sent to, and these texts become log lines, call records, stored
/// notifications, breaker reasons and alert texts.
pub(crate) fn scrub_url(text: &str, url: &str) -> String {
    let mut out = text.replace(url, "<url>");
    if let Ok(u) = reqwest::Url::parse(url) {
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
    let Ok(u) = reqwest::Url::parse(url) else {
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
    let mut url = reqwest::Url::parse(base_url).map_err(|e| e.to_string())?;
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
