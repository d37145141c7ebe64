//! The host's managed processes (SPEC RL-2), and the model gateway's
//! recorded calls and their usage summed per group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warden_core::gateway::ProviderStatus;
use warden_core::processes::ProcessStatus;
use warden_core::time::{opt_time, time};
use warden_store::gateway::{GatewayCallRow, UsageDim, UsageGroup};

/// A managed process.
///
/// Not a schema of its own: the document lists processes as objects (see
/// [`Processes`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub name: String,
    /// `starting`, `running`, `backing-off` or `down`.
    pub state: String,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub failed_restarts: u32,
    pub last_exit: Option<String>,
    pub since: String,
    pub next_restart_at: Option<String>,
    /// The state of its breaker, `process:<name>`.
    pub breaker: String,
}

impl From<&ProcessStatus> for Process {
    fn from(p: &ProcessStatus) -> Process {
        Process {
            name: p.name.clone(),
            state: p.state.name().to_string(),
            pid: p.pid,
            restarts: p.restarts,
            failed_restarts: p.failed_restarts,
            last_exit: p.last_exit.clone(),
            since: time(p.since),
            next_restart_at: opt_time(p.next_restart_at),
            breaker: p.breaker.to_string(),
        }
    }
}

/// `processes::list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Processes {
    #[schema(value_type = Vec<Object>)]
    pub processes: Vec<Process>,
}

/// A model provider with its breaker.
///
/// Not a schema of its own: the document lists providers as objects (see
/// [`Providers`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    pub name: String,
    pub base_url: String,
    pub models: Vec<String>,
    pub price_input_per_1k: f64,
    pub price_output_per_1k: f64,
    pub max_context: u32,
    /// `closed`, `open` or `half-open`.
    pub breaker: String,
    pub failures: u32,
    pub retry_at: Option<String>,
}

impl From<&ProviderStatus> for Provider {
    fn from(p: &ProviderStatus) -> Provider {
        Provider {
            name: p.name.clone(),
            base_url: p.base_url.clone(),
            models: p.models.clone(),
            price_input_per_1k: p.price_input_per_1k,
            price_output_per_1k: p.price_output_per_1k,
            max_context: p.max_context,
            breaker: p.breaker.to_string(),
            failures: p.failures,
            retry_at: opt_time(p.retry_at),
        }
    }
}

/// `gateway::providers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Providers {
    #[schema(value_type = Vec<Object>)]
    pub providers: Vec<Provider>,
}

/// A call through the model gateway, as recorded.
///
/// Not a schema of its own: the document lists calls as objects (see
/// [`GatewayCalls`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayCall {
    pub id: String,
    pub task_id: Option<String>,
    pub stage: Option<String>,
    pub mode: String,
    pub requested_model: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The routing policy build that chose the provider, and why.
    pub policy: CallPolicy,
    pub stream: bool,
    pub status: String,
    pub http_status: i64,
    pub attempts: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub at: String,
}

/// The routing of a [`GatewayCall`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallPolicy {
    pub name: String,
    pub version: String,
    pub digest: String,
    pub reason: String,
}

impl From<&GatewayCallRow> for GatewayCall {
    fn from(c: &GatewayCallRow) -> GatewayCall {
        GatewayCall {
            id: c.id.clone(),
            task_id: c.task_id.clone(),
            stage: c.stage.clone(),
            mode: c.mode.clone(),
            requested_model: c.requested_model.clone(),
            provider: c.provider.clone(),
            model: c.model.clone(),
            policy: CallPolicy {
                name: c.policy.clone(),
                version: c.policy_version.clone(),
                digest: c.policy_digest.clone(),
                reason: c.route_reason.clone(),
            },
            stream: c.stream,
            status: c.status.clone(),
            http_status: c.http_status,
            attempts: c.attempts,
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
            cost_usd: c.cost_micros as f64 / 1e6,
            latency_ms: c.latency_ms,
            error: c.error.clone(),
            at: time(c.created_at),
        }
    }
}

/// `gateway::calls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GatewayCalls {
    #[schema(value_type = Vec<Object>)]
    pub calls: Vec<GatewayCall>,
}

/// `gateway::usage`: the gateway's calls summed per group, and in all.
///
/// Not a schema of its own: the document describes the answer as an
/// object, since each group has a key per dimension asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayUsage {
    pub workspace: String,
    pub since: String,
    /// The dimensions the groups are by: `provider`, `model`, `task`,
    /// `stage`, `mode`.
    pub group_by: Vec<String>,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
    pub groups: Vec<GatewayUsageGroup>,
}

impl GatewayUsage {
    /// The usage of `workspace` since `since` (ms), in `groups` by `dims`.
    pub fn new(
        workspace: &str,
        since: i64,
        dims: &[UsageDim],
        groups: &[UsageGroup],
    ) -> GatewayUsage {
        let micros: i64 = groups.iter().map(|g| g.cost_micros).sum();
        GatewayUsage {
            workspace: workspace.to_string(),
            since: time(since),
            group_by: dims.iter().map(|d| d.name().to_string()).collect(),
            calls: groups.iter().map(|g| g.calls).sum(),
            prompt_tokens: groups.iter().map(|g| g.prompt_tokens).sum(),
            completion_tokens: groups.iter().map(|g| g.completion_tokens).sum(),
            cost_usd: micros as f64 / 1e6,
            groups: groups
                .iter()
                .map(|g| GatewayUsageGroup::new(dims, g))
                .collect(),
        }
    }
}

/// One group of [`GatewayUsage`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayUsageGroup {
    pub calls: i64,
    pub failed: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost_usd: f64,
    /// The group's value of each dimension, under the dimension's name
    /// (`null` where its calls had none, e.g. no task).
    #[serde(flatten)]
    pub key: BTreeMap<String, Option<String>>,
}

impl GatewayUsageGroup {
    fn new(dims: &[UsageDim], g: &UsageGroup) -> GatewayUsageGroup {
        GatewayUsageGroup {
            calls: g.calls,
            failed: g.failed,
            prompt_tokens: g.prompt_tokens,
            completion_tokens: g.completion_tokens,
            total_tokens: g.prompt_tokens + g.completion_tokens,
            cost_usd: g.cost_micros as f64 / 1e6,
            key: dims
                .iter()
                .zip(&g.key)
                .map(|(dim, value)| (dim.name().to_string(), value.clone()))
                .collect(),
        }
    }
}
