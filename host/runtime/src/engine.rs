//! The engine: one wasmtime `Engine` and `Linker`, the pooling allocator,
//! the epoch ticker, the compiled-artifact cache, and plugin loading.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cap_std::fs::Dir;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;
use warden_meta::Limits;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{Playbook, gate_types};
use crate::error::{Error, LoadError, Result};
use crate::files::{self, ReadError};
use crate::host::HostState;
use crate::plugin::{self, Plugin, digest_of};

/// How often the epoch advances. Deadlines are checked (and CPU-bound
/// guests yield to the async executor) once per tick.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Length of the sha256 that ends every compile cache entry.
const SUM_LEN: usize = 32;

/// Dirty bytes of a memory or table that a pool slot restores in place (and
/// keeps resident) when a call ends; a slot with more is reset with
/// `madvise`. A routing policy or a gate dirties well under this.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// Core instances, memories and tables of one instance slot of the pool:
/// what one call's component may use. A component the SDK builds uses
/// well under each (one memory, a few tables and core instances).
const CORE_INSTANCES_PER_SLOT: u32 = 16;
const MEMORIES_PER_SLOT: u32 = 2;
const TABLES_PER_SLOT: u32 = 16;

/// Limits the host applies when a plugin asks for none, and the most it
/// grants when a plugin asks for more (SPEC PL-5).
#[derive(Clone, Debug)]
pub struct HostLimits {
    /// Default wall-clock deadline of a call.
    pub deadline_ms: u64,
    /// Largest deadline.
    pub max_deadline_ms: u64,
    /// Default linear-memory cap.
    pub memory_mib: u64,
    /// Largest memory cap; also the pooling allocator's slot size.
    pub max_memory_mib: u64,
    /// Default fuel per call.
    pub fuel: u64,
    /// Largest fuel per call.
    pub max_fuel: u64,
    /// Default mutating steps per playbook run.
    pub steps: u64,
    /// Largest step budget.
    pub max_steps: u64,
    /// Default cap on the returned value.
    pub output_kib: u64,
    /// Largest output cap.
    pub max_output_kib: u64,
    /// Cap on captured stdout and on stderr, each.
    pub stdio_kib: u64,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            deadline_ms: 5_000,
            max_deadline_ms: 300_000,
            memory_mib: 64,
            max_memory_mib: 256,
            fuel: 1_000_000_000_000,
            max_fuel: 100_000_000_000_000,
            steps: 10,
            max_steps: 1_000,
            output_kib: 1_024,
            max_output_kib: 16 * 1_024,
            stdio_kib: 64,
        }
    }
}

/// The limits in force for one call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EffectiveLimits {
    /// Wall-clock deadline.
    pub deadline_ms: u64,
    /// Linear-memory cap.
    pub memory_mib: u64,
    /// Fuel.
    pub fuel: u64,
    /// Mutating steps.
    pub steps: u64,
    /// Output cap.
    pub output_kib: u64,
}

impl HostLimits {
    /// Resolves what applies: the operator's override, else the plugin's
    /// request, else the host default; always capped by the host maximum.
    pub fn resolve(&self, requested: &Limits, overrides: &Limits) -> EffectiveLimits {
        let pick = |o: Option<u64>, r: Option<u64>, default: u64, max: u64| {
            o.or(r).unwrap_or(default).clamp(1, max)
        };
        EffectiveLimits {
            deadline_ms: pick(
                overrides.deadline_ms,
                requested.deadline_ms,
                self.deadline_ms,
                self.max_deadline_ms,
            ),
            memory_mib: pick(
                overrides.memory_mib,
                requested.memory_mib,
                self.memory_mib,
                self.max_memory_mib,
            ),
            fuel: pick(overrides.fuel, requested.fuel, self.fuel, self.max_fuel),
            steps: pick(overrides.steps, requested.steps, self.steps, self.max_steps),
            output_kib: pick(
                overrides.output_kib,
                requested.output_kib,
                self.output_kib,
                self.max_output_kib,
            ),
        }
    }
}

/// How to build a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled artifacts are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Plugin calls that may run at once (instance slots of the pool).
    pub max_concurrent_calls: u32,
    /// Slots playbook runs may never take: kept for quality gates and
    /// routing policies, which a stage completion or a model request waits
    /// for. At most `max_concurrent_calls - 1`.
    pub reserved_calls: u32,
    /// Largest `.wasm` accepted.
    pub max_wasm_bytes: usize,
    /// Limits.
    pub limits: HostLimits,
}

impl RuntimeConfig {
    /// How many calls playbook runs may make at once: every slot but the
    /// reserved ones, and at least one.
    pub fn playbook_slots(&self) -> u32 {
        let slots = self.max_concurrent_calls.max(1);
        slots - self.reserved_calls.min(slots - 1)
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            max_concurrent_calls: 32,
            reserved_calls: 8,
            max_wasm_bytes: 32 << 20,
            limits: HostLimits::default(),
        }
    }
}

/// Advances the engine's epoch every [`TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("warden-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs plugins. Cheap to share behind an `Arc`; every call gets its own
/// store, instance and limits.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) config: RuntimeConfig,
    pub(crate) slots: Semaphore,
    /// The share of `slots` playbook runs may hold: all but the reserved
    /// ones. A playbook call takes one of these before one of `slots`.
    pub(crate) playbook_slots: Semaphore,
    pub(crate) stats: crate::stats::CallStats,
    /// The compile cache directory, opened once.
    cache: Option<Dir>,
    cache_key: String,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine, the linker with WASI and every Warden interface,
    /// and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let engine =
            Engine::new(&engine_config(&config)).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::Engine(format!("{e:#}")))?;
        Playbook::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| Error::Engine(format!("{e:#}")))?;
        // The quality-gate world shares the playbook's interfaces; only its
        // records interface is its own. Every component built by the SDK
        // imports that (type-only) interface, playbooks too: wit-component
        // keeps type-only interfaces of the worlds the SDK generates.
        gate_types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| Error::Engine(format!("{e:#}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(files::open_root(dir).map_err(|source| Error::Cache {
                path: dir.clone(),
                source,
            })?),
            None => None,
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache_key = format!("{:016x}", hasher.finish());
        let ticker =
            EpochTicker::start(engine.clone()).map_err(|e| Error::Engine(e.to_string()))?;
        Ok(Runtime {
            slots: Semaphore::new(config.max_concurrent_calls as usize),
            playbook_slots: Semaphore::new(config.playbook_slots() as usize),
            stats: crate::stats::CallStats::default(),
            engine,
            linker,
            config,
            cache,
            cache_key,
            _ticker: ticker,
        })
    }

    /// Plugin calls made by this runtime so far, for `/metrics`.
    pub fn stats(&self) -> &crate::stats::CallStats {
        &self.stats
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Validates and compiles a `.wasm` (SPEC LC-2). Compilation is CPU
    /// work: call it from a blocking thread when latency matters.
    pub fn load(&self, bytes: &[u8]) -> Result<Plugin, LoadError> {
        if bytes.len() > self.config.max_wasm_bytes {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit: self.config.max_wasm_bytes,
            });
        }
        let meta = plugin::inspect(bytes)?;
        let digest = digest_of(bytes);
        let component = self.compile(&digest, bytes)?;
        let imports = plugin::check_imports(&self.engine, &component, &meta)?;
        let exports = plugin::pre_instantiate(&self.linker, &component, meta.kind)?;
        Ok(Plugin::new(digest, meta, bytes.len(), imports, exports))
    }

    /// Compiles, or loads the cached artifact of the same digest compiled by
    /// a compatible engine (SPEC LC-3).
    #[expect(
        unsafe_code,
        reason = "loads precompiled artifacts from the compile cache"
    )]
    fn compile(&self, digest: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        let Some(cache) = &self.cache else {
            return Component::new(&self.engine, bytes).map_err(compile_error);
        };
        let hex = digest.trim_start_matches("sha256:");
        let name = format!("{hex}-{}.cwasm", self.cache_key);
        if let Some(artifact) = self.cached(cache, &name) {
            // SAFETY: the entry is one this runtime wrote (below) into its
            // own cache directory, named by the digest of the source and
            // the engine's compatibility hash, so it was produced by
            // `Engine::precompile_component` for a compatible engine; its
            // sha256 matched, so it is whole. wasmtime still checks its
            // header and refuses a mismatch.
            match unsafe { Component::deserialize(&self.engine, &artifact) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(entry = %name, error = %e, "discarding unusable compile cache entry");
                    let _ = cache.remove_file(&name);
                }
            }
        }
        let mut entry = self
            .engine
            .precompile_component(bytes)
            .map_err(compile_error)?;
        let artifact_len = entry.len();
        let sum = Sha256::digest(&entry);
        entry.extend_from_slice(&sum);
        // Not synced: an entry torn by a crash fails its sha256 and is
        // compiled again, and a sync would slow down every new plugin.
        if let Err(e) = files::write_replace(cache, &name, &entry) {
            tracing::warn!(entry = %name, error = %e, "cannot write compile cache entry");
        }
        // SAFETY: the artifact was produced just above by this engine's
        // `precompile_component`.
        unsafe { Component::deserialize(&self.engine, &entry[..artifact_len]) }
            .map_err(compile_error)
    }

    /// The artifact of cache entry `name` when it is whole: an entry is the
    /// artifact followed by its sha256, so one torn by a crash or damaged
    /// on disk is discarded (and compiled again) rather than run. Read into
    /// memory rather than mapped: a file truncated under a mapping would
    /// crash the host (SIGBUS).
    fn cached(&self, cache: &Dir, name: &str) -> Option<Vec<u8>> {
        // Artifacts are a few times the size of their source.
        let limit = (self.config.max_wasm_bytes as u64)
            .saturating_mul(16)
            .max(64 << 20);
        let mut entry = match files::read_bounded(cache, name, limit) {
            Ok((_, entry)) => entry,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(entry = %name, error = ?e, "discarding unreadable compile cache entry");
                let _ = cache.remove_file(name);
                return None;
            }
        };
        let whole = entry.len() >= SUM_LEN && {
            let (artifact, sum) = entry.split_at(entry.len() - SUM_LEN);
            Sha256::digest(artifact).as_slice() == sum
        };
        if !whole {
            tracing::warn!(entry = %name, "discarding a torn or damaged compile cache entry");
            let _ = cache.remove_file(name);
            return None;
        }
        entry.truncate(entry.len() - SUM_LEN);
        Some(entry)
    }

    /// The wasmtime engine, for benchmarks that compare against bare
    /// wasmtime with identical settings.
    #[doc(hidden)]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn compile_error(e: wasmtime::Error) -> LoadError {
    // A component that fails validation or type-checking lands here too.
    LoadError::Compile(format!("{e:#}"))
}

/// The engine settings every store of this runtime shares.
fn engine_config(config: &RuntimeConfig) -> Config {
    let slots = config.max_concurrent_calls.max(1);
    let mut pool = PoolingAllocationConfig::default();
    // One component instance may use exactly one slot's share of the pool,
    // no more: a component with more memories, tables or core instances
    // than that fails its own instantiation instead of leaving the calls
    // that hold the other slots without.
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_SLOT)
        .total_memories(slots * MEMORIES_PER_SLOT)
        .total_tables(slots * TABLES_PER_SLOT)
        .total_stacks(slots)
        .max_memories_per_component(MEMORIES_PER_SLOT)
        .max_tables_per_component(TABLES_PER_SLOT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_SLOT)
        .max_memory_size((config.limits.max_memory_mib as usize) << 20);
    // Every call gets a fresh instance, so every call ends by resetting its
    // pool slot. By default that is an `madvise` per memory, and the next
    // instance then takes a page fault for each page it touches. Where the
    // kernel has PAGEMAP_SCAN (Linux 6.7+), wasmtime instead restores just
    // the pages the instance dirtied, with `memset`, and keeps them
    // resident: a call to a small plugin (a routing policy, on every model
    // request) takes about half the time (`benches/route.rs`). Without the
    // scan, keep-resident would `memset` the lowest bytes of each memory
    // whether touched or not, so it stays off there.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES);
    }
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}
