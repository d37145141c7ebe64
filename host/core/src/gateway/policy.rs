//! Calling the workspace's pinned routing policy (SPEC GW-3).
//!
//! A policy that cannot decide (not loaded, trapped, out of limits, an
//! invalid decision) does not stop the agents: the request falls back to
//! the configuration's order of providers, the reason says why, and a
//! warning alert (at most one a minute per workspace and policy) tells the
//! operator. A policy that keeps failing opens its breaker (`plugin:<name>`,
//! SPEC RL-1, the providers' policy): while it is open the policy is not
//! called at all, so a broken policy costs no latency, and after its
//! backoff one request probes it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use warden_meta::{CapabilitySet, PluginKind};
use warden_runtime::types::{HealthSnapshot, HostError, Mode, TaskFilter, TaskSummary};
use warden_runtime::{ActionRecord, Applied, Backend, CallInfo, Mutation, RunEvent, Runtime};

use super::ChatRequest;
use super::budget::Left;
use crate::alerts::{Alerts, Severity};
use crate::breaker::{Admit, Breaker, BreakerPolicy, Change};
use crate::config::{Workspaces, config_value_string};
use crate::registry::{Entry, Registry};
use crate::sync::Unpoisoned as _;

/// How long a workspace's resolved policy (pin, config) is reused.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// One alert a minute at most per workspace and policy.
const ALERT_EVERY: Duration = Duration::from_secs(60);

/// A provider as the policy sees it.
#[derive(Clone, Debug)]
pub struct ProviderView {
    pub name: String,
    pub breaker: String,
    pub models: Vec<String>,
    pub price_input_per_1k: f64,
    pub price_output_per_1k: f64,
    pub max_context: u32,
}

/// A candidate to try.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub provider: String,
    pub model: String,
}

/// The decision, with which policy build made it.
#[derive(Clone, Debug)]
pub struct Route {
    pub policy: String,
    pub version: String,
    pub digest: String,
    pub reason: String,
    pub candidates: Vec<Candidate>,
    pub max_price_per_1k: Option<f64>,
    pub max_context: Option<u32>,
    pub max_iterations: Option<u32>,
    /// A change of the policy's breaker to persist (and alert on): the row
    /// and whether it opened.
    pub breaker_change: Option<(warden_store::breakers::BreakerRow, bool)>,
}

#[derive(Clone)]
struct Resolved {
    at: Instant,
    name: String,
    entry: Result<Entry, String>,
    config: Arc<BTreeMap<String, String>>,
    limits: warden_meta::Limits,
}

/// The policies of every workspace.
pub struct Policies {
    registry: Arc<Registry>,
    runtime: Arc<Runtime>,
    /// `[gateway] policy`: the policy of a workspace that names none.
    default_policy: String,
    /// The `[workspaces.*]` tables: each workspace's policy, mode and the
    /// policy plugins' settings.
    config: Workspaces,
    alerts: Alerts,
    cache: Mutex<HashMap<String, Resolved>>,
    alerted: Mutex<HashMap<String, Instant>>,
    backend: Arc<RouterBackend>,
    /// Per policy plugin, by name (`plugin:<name>` when stored).
    breakers: Mutex<HashMap<String, Breaker>>,
    breaker_policy: BreakerPolicy,
}

impl Policies {
    /// The policies under `[gateway]` (`gateway`) and the workspaces'
    /// settings.
    pub fn new(
        registry: Arc<Registry>,
        runtime: Arc<Runtime>,
        gateway: &super::GatewayConfig,
        config: Workspaces,
        alerts: Alerts,
    ) -> Self {
        Policies {
            registry,
            runtime,
            alerts,
            cache: Mutex::default(),
            alerted: Mutex::default(),
            backend: Arc::new(RouterBackend),
            breakers: Mutex::default(),
            breaker_policy: gateway.breaker_policy(),
            default_policy: gateway.policy.clone(),
            config,
        }
    }

    /// Takes a stored state of a policy's breaker written by an operator
    /// or another host; false when `row` is not a plugin breaker or not
    /// newer.
    pub fn adopt_breaker(&self, row: &warden_store::breakers::BreakerRow) -> bool {
        let Some(name) = row.name.strip_prefix("plugin:") else {
            return false;
        };
        self.breakers
            .locked()
            .entry(name.to_string())
            .or_default()
            .adopt(row)
    }

    /// `[workspaces.<ws>.gateway]`, else `"*"`'s.
    pub fn workspace_gateway(&self, workspace: &str) -> super::WorkspaceGateway {
        let get = |ws: &str| self.config.get(ws).map(|w| w.gateway.clone());
        let mut merged = get("*").unwrap_or_default();
        if let Some(own) = get(workspace) {
            merged.policy = own.policy.or(merged.policy);
            merged.default_mode = own.default_mode.or(merged.default_mode);
        }
        merged
    }

    async fn resolve(&self, workspace: &str) -> Resolved {
        if let Some(r) = self.cache.locked().get(workspace)
            && r.at.elapsed() < CACHE_TTL
        {
            return r.clone();
        }
        let name = self
            .workspace_gateway(workspace)
            .policy
            .unwrap_or_else(|| self.default_policy.clone());
        let entry = match self.registry.pinned(workspace, &name).await {
            Ok(e) if e.plugin.meta().kind != PluginKind::RoutingPolicy => Err(format!(
                "plugin \"{name}\" is a {}, not a routing-policy",
                e.plugin.meta().kind
            )),
            Ok(e) => Ok(e),
            Err(e) => Err(e.to_string()),
        };
        let settings = self.config.plugin(workspace, &name);
        let resolved = Resolved {
            at: Instant::now(),
            name,
            entry,
            config: Arc::new(
                settings
                    .config
                    .iter()
                    .map(|(k, v)| (k.clone(), config_value_string(v)))
                    .collect(),
            ),
            limits: settings.limits,
        };
        self.cache
            .locked()
            .insert(workspace.to_string(), resolved.clone());
        resolved
    }

    /// Decides where a request goes.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn route(
        &self,
        workspace: &str,
        call_id: &str,
        mode: &str,
        req: &ChatRequest,
        task: Option<&str>,
        stage: Option<&str>,
        left: Left,
        providers: &[ProviderView],
    ) -> Route {
        let resolved = self.resolve(workspace).await;
        let entry = match resolved.entry {
            Ok(e) => e,
            Err(why) => {
                return self
                    .fallback(workspace, &resolved.name, None, &why, req, providers)
                    .await;
            }
        };
        let meta = entry.plugin.meta();
        let now = warden_store::now_ms();
        let admit = self
            .breakers
            .locked()
            .entry(meta.name.clone())
            .or_default()
            .admit(now);
        if let Admit::Refuse { retry_at } = admit {
            // Its breaker says it is broken: do not call it, and do not
            // alert again (the breaker_open alert is raised).
            let why = format!(
                "its breaker plugin:{} is open until {}",
                meta.name,
                crate::time::time(retry_at)
            );
            return Self::configuration_order(&meta.name, Some(&entry), &why, req, providers);
        }
        let request = route_request(workspace, mode, req, task, stage, left, providers);
        let call = self.route_call(
            call_id,
            workspace,
            &entry,
            resolved.config.clone(),
            resolved.limits.clone(),
        );
        let outcome = self
            .runtime
            .route_request(&entry.plugin, call, &request)
            .await;
        for line in &outcome.logs {
            tracing::debug!(policy = %meta.name, "{}", line.message);
        }
        let change = self.breaker_outcome(&meta.name, now, &outcome.result);
        let mut route = match outcome.result {
            Ok(d) => decided(&entry, d),
            Err(e) => {
                let why = format!("{}: {e}", e.code());
                self.fallback(workspace, &meta.name, Some(&entry), &why, req, providers)
                    .await
            }
        };
        route.breaker_change = change;
        route
    }

    /// The call of the pinned policy `entry`, with its settings, for
    /// model call `call_id`.
    fn route_call(
        &self,
        call_id: &str,
        workspace: &str,
        entry: &Entry,
        config: Arc<BTreeMap<String, String>>,
        limits: warden_meta::Limits,
    ) -> warden_runtime::RouteCall {
        let meta = entry.plugin.meta();
        warden_runtime::RouteCall {
            info: CallInfo {
                run_id: call_id.to_string(),
                workspace: workspace.to_string(),
                plugin: meta.name.clone(),
                version: meta.version.to_string(),
                digest: entry.plugin.digest().to_string(),
                mode: Mode::Apply,
                actor: "gateway".to_string(),
            },
            granted: CapabilitySet::default(),
            config,
            limits,
            backend: self.backend.clone(),
        }
    }

    /// Tells policy `name`'s breaker how its call went; the change to
    /// persist, when it opened or closed.
    fn breaker_outcome<T>(
        &self,
        name: &str,
        now: i64,
        result: &Result<T, warden_runtime::RunError>,
    ) -> Option<(warden_store::breakers::BreakerRow, bool)> {
        let mut breakers = self.breakers.locked();
        let b = breakers.entry(name.to_string()).or_default();
        let change = match result {
            Ok(_) => b.success(now),
            Err(e) => b.failure(now, &self.breaker_policy, &format!("{}: {e}", e.code())),
        };
        match change {
            Change::None => None,
            Change::Opened { .. } => Some((b.row(&format!("plugin:{name}")), true)),
            Change::Closed => Some((b.row(&format!("plugin:{name}")), false)),
        }
    }

    /// The configuration's order: the providers that list the requested
    /// model, else every provider with its first model.
    async fn fallback(
        &self,
        workspace: &str,
        name: &str,
        entry: Option<&Entry>,
        why: &str,
        req: &ChatRequest,
        providers: &[ProviderView],
    ) -> Route {
        self.alert(workspace, name, why).await;
        Self::configuration_order(name, entry, why, req, providers)
    }

    /// The route of a policy that did not decide.
    fn configuration_order(
        name: &str,
        entry: Option<&Entry>,
        why: &str,
        req: &ChatRequest,
        providers: &[ProviderView],
    ) -> Route {
        let serving: Vec<Candidate> = providers
            .iter()
            .filter(|p| p.models.contains(&req.model))
            .map(|p| Candidate {
                provider: p.name.clone(),
                model: req.model.clone(),
            })
            .collect();
        let candidates = if serving.is_empty() {
            providers
                .iter()
                .filter_map(|p| {
                    Some(Candidate {
                        provider: p.name.clone(),
                        model: p.models.first()?.clone(),
                    })
                })
                .collect()
        } else {
            serving
        };
        Route {
            policy: name.to_string(),
            version: entry
                .map(|e| e.plugin.meta().version.to_string())
                .unwrap_or_default(),
            digest: entry
                .map(|e| e.plugin.digest().to_string())
                .unwrap_or_default(),
            reason: format!("routing policy {name} could not decide ({why}); configuration order"),
            candidates,
            max_price_per_1k: None,
            max_context: None,
            max_iterations: None,
            breaker_change: None,
        }
    }

    async fn alert(&self, workspace: &str, name: &str, why: &str) {
        let key = format!("routing_policy:{workspace}:{name}");
        {
            let mut alerted = self.alerted.locked();
            if alerted
                .get(&key)
                .is_some_and(|at| at.elapsed() < ALERT_EVERY)
            {
                return;
            }
            alerted.insert(key.clone(), Instant::now());
        }
        tracing::warn!(
            workspace,
            policy = name,
            error = why,
            "routing policy failed; falling back to the configuration's order"
        );
        self.alerts
            .raise_logged(
                Some(workspace),
                "routing_policy_failed",
                Severity::Warning,
                &key,
                &format!("routing policy {name} could not decide in workspace {workspace}: {why}; requests go to providers in configuration order"),
                json!({ "policy": name, "error": why }),
            )
            .await;
    }

    /// Forgets old cache entries.
    pub fn prune(&self) {
        self.cache
            .locked()
            .retain(|_, r| r.at.elapsed() < CACHE_TTL);
        self.alerted
            .locked()
            .retain(|_, at| at.elapsed() < ALERT_EVERY);
    }
}

/// What the policy is asked: the request, the budget left and the
/// providers.
fn route_request(
    workspace: &str,
    mode: &str,
    req: &ChatRequest,
    task: Option<&str>,
    stage: Option<&str>,
    left: Left,
    providers: &[ProviderView],
) -> warden_runtime::types::RouteRequest {
    warden_runtime::types::RouteRequest {
        workspace: workspace.to_string(),
        mode: mode.to_string(),
        model_hint: (req.model != "auto").then(|| req.model.clone()),
        prompt_tokens: u32::try_from(req.prompt_tokens).unwrap_or(u32::MAX),
        max_output_tokens: req.max_tokens.map(|m| u32::try_from(m).unwrap_or(u32::MAX)),
        task_id: task.map(str::to_string),
        stage: stage.map(str::to_string),
        budget_left_usd: left.cost_micros.map(|c| c as f64 / 1e6),
        budget_left_tokens: left.tokens.map(|t| t.max(0) as u64),
        providers: providers
            .iter()
            .map(|p| warden_runtime::types::ProviderStatus {
                name: p.name.clone(),
                breaker: p.breaker.clone(),
                models: p.models.clone(),
                price_input_per_1k: p.price_input_per_1k,
                price_output_per_1k: p.price_output_per_1k,
                max_context: p.max_context,
            })
            .collect(),
    }
}

/// The route policy `entry` decided.
fn decided(entry: &Entry, d: warden_runtime::types::RouteDecision) -> Route {
    let meta = entry.plugin.meta();
    Route {
        policy: meta.name.clone(),
        version: meta.version.to_string(),
        digest: entry.plugin.digest().to_string(),
        reason: d.reason,
        candidates: d
            .candidates
            .into_iter()
            .map(|c| Candidate {
                provider: c.provider,
                model: c.model,
            })
            .collect(),
        max_price_per_1k: d.max_price_per_1k,
        max_context: d.max_context,
        max_iterations: d.max_iterations,
        breaker_change: None,
    }
}

/// A routing policy imports `log` and `config` only: no data behind it.
struct RouterBackend;

fn not_for_policies() -> HostError {
    HostError::Denied("not available to routing policies".to_string())
}

#[async_trait]
impl Backend for RouterBackend {
    async fn health(&self, _: &CallInfo) -> Result<HealthSnapshot, HostError> {
        Err(not_for_policies())
    }

    async fn list_tasks(
        &self,
        _: &CallInfo,
        _: &TaskFilter,
    ) -> Result<Vec<TaskSummary>, HostError> {
        Err(not_for_policies())
    }

    async fn get_task(&self, _: &CallInfo, _: &str) -> Result<TaskSummary, HostError> {
        Err(not_for_policies())
    }

    async fn apply(&self, _: &CallInfo, _: u32, _: &Mutation) -> Result<Applied, HostError> {
        Err(not_for_policies())
    }

    async fn record(&self, _: &CallInfo, _: &ActionRecord) -> Result<(), HostError> {
        Err(not_for_policies())
    }

    async fn kv_get(&self, _: &CallInfo, _: &str) -> Result<Option<Vec<u8>>, HostError> {
        Err(not_for_policies())
    }

    async fn kv_set(&self, _: &CallInfo, _: &str, _: &[u8]) -> Result<(), HostError> {
        Err(not_for_policies())
    }

    async fn kv_delete(&self, _: &CallInfo, _: &str) -> Result<bool, HostError> {
        Err(not_for_policies())
    }

    async fn kv_list(&self, _: &CallInfo, _: &str) -> Result<Vec<String>, HostError> {
        Err(not_for_policies())
    }

    fn event(&self, _: &CallInfo, _: RunEvent) {}
}
