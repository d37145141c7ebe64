//! A validated, compiled plugin (SPEC LC-2, PL-4, PL-6).

use std::fmt;

use sha2::{Digest as _, Sha256};
use warden_meta::{Capability, CapabilitySet, PluginKind, PluginMeta, SECTION};
use wasmparser::{Encoding, Parser, Payload};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::bindings::{PlaybookPre, QualityGatePre, RoutingPolicyPre};
use crate::error::{LoadError, RunError};
use crate::host::HostState;

/// The package every host interface belongs to.
const PACKAGE: &str = "warden:plugin";

/// One function a component imports from a Warden host interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedFn {
    /// e.g. `tasks`.
    pub interface: String,
    /// e.g. `requeue`.
    pub function: String,
    /// What calling it needs; `None` for `log` and `config`.
    pub capability: Option<Capability>,
}

impl fmt::Display for ImportedFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PACKAGE}/{}#{}", self.interface, self.function)
    }
}

/// The pre-instantiated component, typed by its world.
#[derive(Clone)]
pub(crate) enum Exports {
    Playbook(PlaybookPre<HostState>),
    Gate(QualityGatePre<HostState>),
    Router(RoutingPolicyPre<HostState>),
}

/// A plugin that passed validation and is ready to run.
#[derive(Clone)]
pub struct Plugin {
    digest: String,
    meta: PluginMeta,
    size: usize,
    imports: Vec<ImportedFn>,
    pub(crate) exports: Exports,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("digest", &self.digest)
            .field("meta", &self.meta)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// `sha256:<hex>` of the `.wasm` bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The metadata from its custom section.
    pub fn meta(&self) -> &PluginMeta {
        &self.meta
    }

    /// Size of the `.wasm` in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Every Warden host function it imports.
    pub fn imports(&self) -> &[ImportedFn] {
        &self.imports
    }

    /// The capabilities its imports need (a subset of what it requests).
    pub fn required_capabilities(&self) -> CapabilitySet {
        self.imports
            .iter()
            .filter_map(|i| i.capability.clone())
            .collect()
    }

    /// What it may use in a workspace that grants `granted`: the
    /// intersection with what it requests (SPEC PL-6).
    pub fn effective_grants(&self, granted: &CapabilitySet) -> CapabilitySet {
        self.meta.capabilities.intersect(granted)
    }

    /// Refuses to run when an import needs a capability outside `effective`,
    /// naming the first missing grant.
    pub fn check_grants(&self, effective: &CapabilitySet) -> Result<(), RunError> {
        for import in &self.imports {
            if let Some(cap) = &import.capability
                && !effective.allows(cap)
            {
                return Err(RunError::NotGranted {
                    capability: cap.clone(),
                    import: import.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The checks that need no compilation: header, kind of binary, metadata.
pub(crate) fn inspect(bytes: &[u8]) -> Result<PluginMeta, LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm(
            "missing the \\0asm header (is the file a .wasm, and was it copied completely?)"
                .to_string(),
        ));
    }
    let mut meta = None;
    let mut outer = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::Invalid(e.to_string()))?;
        match payload {
            Payload::Version { encoding, .. } if outer.is_none() => {
                if encoding == Encoding::Module {
                    return Err(LoadError::CoreModule);
                }
                outer = Some(encoding);
            }
            Payload::CustomSection(reader) if reader.name() == SECTION => {
                if meta.is_some() {
                    return Err(LoadError::BadMetadata(format!(
                        "more than one \"{SECTION}\" section"
                    )));
                }
                meta = Some(
                    PluginMeta::decode(reader.data())
                        .map_err(|e| LoadError::BadMetadata(e.to_string()))?,
                );
            }
            _ => {}
        }
    }
    meta.ok_or(LoadError::NoMetadata)
}

/// The capability a Warden host function needs; `Err` when the host has
/// no such function.
fn capability_of(interface: &str, function: &str) -> Result<Option<Capability>, ()> {
    Ok(match (interface, function) {
        ("log", "log") | ("config", "get" | "all") => None,
        ("health", "take") => Some(Capability::HealthRead),
        ("tasks", "list" | "get") => Some(Capability::TasksRead),
        ("tasks", "requeue" | "reset" | "block" | "unblock" | "create") => {
            Some(Capability::TasksWrite)
        }
        ("kv", "get" | "set" | "delete" | "list-keys") => Some(Capability::Kv),
        ("evidence", "usage" | "list-old") => Some(Capability::ArtifactsRead),
        ("evidence", "compress") => Some(Capability::ArtifactsCompact),
        _ => return Err(()),
    })
}

/// The Warden interfaces a world imports (SPEC PL-1): a component may import
/// no other, whatever it requests.
fn world_interfaces(kind: PluginKind) -> &'static [&'static str] {
    match kind {
        PluginKind::Playbook => &[
            "types", "log", "config", "health", "tasks", "kv", "evidence",
        ],
        PluginKind::QualityGate => &["types", "gate-types", "log", "config", "kv"],
        PluginKind::RoutingPolicy => &["routing-types", "log", "config"],
    }
}

/// Refuses a function import from a Warden interface that `kind`'s world
/// does not offer. Only functions count: an instance of records alone gives
/// no authority, and components built by the SDK may carry one from a world
/// they do not implement (wit-component keeps type-only interfaces).
fn check_world(kind: PluginKind, interface: &str, import: &str) -> Result<(), LoadError> {
    let offered = world_interfaces(kind);
    let known = [
        PluginKind::Playbook,
        PluginKind::QualityGate,
        PluginKind::RoutingPolicy,
    ]
    .iter()
    .any(|k| world_interfaces(*k).contains(&interface));
    if known && !offered.contains(&interface) {
        return Err(LoadError::OutsideWorld {
            import: import.to_string(),
            world: kind.world(),
            offered: offered
                .iter()
                .filter(|i| !i.ends_with("types"))
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(())
}

/// Lists the Warden functions a component imports and checks them against
/// what its world offers, what the host provides and what the metadata
/// requests.
pub(crate) fn check_imports(
    engine: &wasmtime::Engine,
    component: &Component,
    meta: &PluginMeta,
) -> Result<Vec<ImportedFn>, LoadError> {
    let mut imports = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        let unversioned = name.split('@').next().unwrap_or(name);
        if unversioned.starts_with("wasi:") {
            // WASI is linked without ambient authority (SPEC PL-3); whether
            // this version is provided is checked when pre-instantiating.
            continue;
        }
        let Some(interface) = unversioned
            .strip_prefix(PACKAGE)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return Err(LoadError::UnknownImport(name.to_string()));
        };
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            return Err(LoadError::UnknownImport(name.to_string()));
        };
        for (function, export) in instance.exports(engine) {
            if !matches!(export.ty, ComponentItem::ComponentFunc(_)) {
                continue;
            }
            check_world(meta.kind, interface, name)?;
            let capability = capability_of(interface, function)
                .map_err(|()| LoadError::UnknownImport(format!("{name}#{function}")))?;
            let import = ImportedFn {
                interface: interface.to_string(),
                function: function.to_string(),
                capability,
            };
            if let Some(cap) = &import.capability
                && !meta.capabilities.allows(cap)
            {
                return Err(LoadError::UndeclaredCapability {
                    import: import.to_string(),
                    capability: cap.clone(),
                });
            }
            imports.push(import);
        }
    }
    Ok(imports)
}

/// Pre-instantiates the component as the world its metadata claims.
pub(crate) fn pre_instantiate(
    linker: &wasmtime::component::Linker<HostState>,
    component: &Component,
    kind: PluginKind,
) -> Result<Exports, LoadError> {
    let instance_pre = linker.instantiate_pre(component).map_err(|e| {
        // An import the linker cannot satisfy: usually a WASI or Warden
        // interface of another version than this host's.
        LoadError::UnknownImport(format!("{e:#}"))
    })?;
    let wrong = |e: wasmtime::Error| LoadError::WrongWorld {
        world: kind.world(),
        detail: format!("{e:#}"),
    };
    Ok(match kind {
        PluginKind::Playbook => Exports::Playbook(PlaybookPre::new(instance_pre).map_err(wrong)?),
        PluginKind::QualityGate => Exports::Gate(QualityGatePre::new(instance_pre).map_err(wrong)?),
        PluginKind::RoutingPolicy => {
            Exports::Router(RoutingPolicyPre::new(instance_pre).map_err(wrong)?)
        }
    })
}

impl Plugin {
    pub(crate) fn new(
        digest: String,
        meta: PluginMeta,
        size: usize,
        imports: Vec<ImportedFn>,
        exports: Exports,
    ) -> Self {
        Plugin {
            digest,
            meta,
            size,
            imports,
            exports,
        }
    }
}
