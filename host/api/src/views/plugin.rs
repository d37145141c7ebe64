//! Plugins as a workspace sees them (SPEC LC-7), version pins (LC-4) and
//! capability grants (PL-6).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::registry::Entry;
use warden_core::time::time;
use warden_store::grants::GrantRow;
use warden_store::pins::PinRow;

/// A plugin as a workspace sees it (`plugins::plugin_view`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Plugin {
    pub name: String,
    /// `playbook`, `quality-gate` or `routing-policy`.
    pub kind: String,
    pub description: String,
    pub latest: Option<String>,
    pub versions: Vec<PluginVersion>,
    pub workspace: String,
    pub pin: PinInForce,
    pub pinned_version: Option<String>,
    pub pinned_digest: Option<String>,
    pub capabilities_requested: Vec<String>,
    pub capabilities_granted: Vec<String>,
    pub missing_grants: Vec<String>,
    /// `active` or `retired`.
    pub state: String,
}

/// The pin in force of a [`Plugin`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PinInForce {
    pub selector: String,
    /// `api`, `config` or `default`.
    pub source: String,
}

/// One version of a plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PluginVersion {
    pub version: String,
    pub digest: String,
    pub size: u64,
    /// `bundled`, `directory` or `upload`.
    pub source: String,
    pub source_path: Option<String>,
    /// `active` or `retired`.
    pub state: String,
    pub added_at: String,
    pub capabilities_requested: Vec<String>,
    pub capabilities_required: Vec<String>,
    /// Only when one plugin is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imports: Option<Vec<String>>,
    /// Only when one plugin is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    pub idempotent: bool,
    pub concurrent: bool,
}

impl PluginVersion {
    /// The view of `e`, `live` when a workspace may still run it; its
    /// imports and limits only in `detail` (one plugin shown).
    pub fn new(e: &Entry, live: bool, detail: bool) -> PluginVersion {
        let p = &e.plugin;
        let meta = p.meta();
        PluginVersion {
            version: meta.version.to_string(),
            digest: p.digest().to_string(),
            size: u64::try_from(p.size()).unwrap_or(u64::MAX),
            source: e.source.clone(),
            source_path: e.source_path.clone(),
            state: if live { "active" } else { "retired" }.to_string(),
            added_at: time(e.added_at),
            capabilities_requested: meta.capabilities.names(),
            capabilities_required: p.required_capabilities().names(),
            imports: detail.then(|| p.imports().iter().map(ToString::to_string).collect()),
            // A `Limits` is plain fields and options: it always serialises.
            limits: detail.then(|| serde_json::to_value(&meta.limits).unwrap_or_default()),
            idempotent: meta.idempotent,
            concurrent: meta.concurrent,
        }
    }
}

/// `plugins::list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<Plugin>,
    /// Files that were not loaded, and why.
    pub rejected: Vec<Rejection>,
}

/// A plugin file that was not loaded (`registry::Rejection`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rejection {
    pub source: String,
    pub digest: Option<String>,
    pub reason: String,
    /// Milliseconds since the epoch.
    pub at: i64,
}

impl From<&warden_core::registry::Rejection> for Rejection {
    fn from(r: &warden_core::registry::Rejection) -> Rejection {
        Rejection {
            source: r.source.clone(),
            digest: r.digest.clone(),
            reason: r.reason.clone(),
            at: r.at,
        }
    }
}

/// `plugins::upload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PluginUploaded {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub version: PluginVersion,
}

/// A version pin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pin {
    pub plugin: String,
    pub selector: String,
    pub actor: String,
    pub updated_at: String,
    /// Only in the answer to a `PUT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolves_to: Option<PinTarget>,
}

impl From<&PinRow> for Pin {
    /// The view of a stored pin, without what it resolves to.
    fn from(p: &PinRow) -> Pin {
        Pin {
            plugin: p.plugin.clone(),
            selector: p.selector.clone(),
            actor: p.actor.clone(),
            updated_at: time(p.updated_at),
            resolves_to: None,
        }
    }
}

/// What a [`Pin`] resolves to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PinTarget {
    pub version: String,
    pub digest: String,
}

/// `plugins::list_pins`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PinList {
    pub pins: Vec<Pin>,
}

/// Capabilities granted over the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Grant {
    pub plugin: String,
    pub capabilities: Vec<String>,
    pub actor: String,
    pub updated_at: String,
}

impl From<&GrantRow> for Grant {
    fn from(g: &GrantRow) -> Grant {
        Grant {
            plugin: g.plugin.clone(),
            capabilities: g.capabilities.clone(),
            actor: g.actor.clone(),
            updated_at: time(g.updated_at),
        }
    }
}

/// `plugins::list_grants`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GrantList {
    pub grants: Vec<Grant>,
}
