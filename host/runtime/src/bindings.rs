//! The host side of the WIT contract: the one place `bindgen!` runs.
//!
//! The three worlds share their imports; the second and third world reuse
//! the interfaces generated for the first, so each host interface has one
//! trait and one implementation (in `host/`).

#[expect(
    missing_docs,
    reason = "generated from the WIT, whose comments are the docs"
)]
mod generated {
    pub mod playbook {
        wasmtime::component::bindgen!({
            world: "playbook",
            path: "../../wit",
            imports: { default: async | trappable },
            exports: { default: async },
        });
    }

    pub mod gate {
        wasmtime::component::bindgen!({
            world: "quality-gate",
            path: "../../wit",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "warden:plugin/types": super::playbook::warden::plugin::types,
                "warden:plugin/log": super::playbook::warden::plugin::log,
                "warden:plugin/config": super::playbook::warden::plugin::config,
                "warden:plugin/kv": super::playbook::warden::plugin::kv,
            },
        });
    }

    pub mod router {
        wasmtime::component::bindgen!({
            world: "routing-policy",
            path: "../../wit",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "warden:plugin/log": super::playbook::warden::plugin::log,
                "warden:plugin/config": super::playbook::warden::plugin::config,
            },
        });
    }
}

pub(crate) use generated::gate::warden::plugin::gate_types;
pub(crate) use generated::playbook::warden::plugin as iface;
pub(crate) use generated::playbook::{Playbook, PlaybookPre};
pub(crate) use generated::{gate::QualityGatePre, router::RoutingPolicyPre};

/// Records of the WIT contract: what the host's backend fills in, what
/// playbooks report, what quality gates receive and answer, and what
/// routing policies receive and decide.
pub mod types {
    pub use super::generated::playbook::warden::plugin::evidence::{
        Compressed, EvidenceFile, EvidenceUsage,
    };
    pub use super::generated::playbook::warden::plugin::health::{
        Breaker, Database, Disk, ErrorFingerprint, PluginState, RunStats,
        Snapshot as HealthSnapshot, StateCount, Worker,
    };
    pub use super::generated::playbook::warden::plugin::tasks::{NewTask, TaskFilter};
    pub use super::generated::playbook::warden::plugin::types::{
        Finding, HostError, Mode, Severity, TaskSummary,
    };
    pub use super::generated::playbook::{Report, RunContext};

    pub use super::generated::gate::warden::plugin::gate_types::{
        Artifact, Decision, DiffStats, Reason, RubricScore, Submission, TestResults, Verdict,
    };

    pub use super::generated::router::warden::plugin::routing_types::{
        Candidate, ProviderStatus, RouteDecision, RouteRequest,
    };
}
