//! The machinery every plugin call shares, whatever its world: limits,
//! grants, an instance slot, a WASI context without ambient authority and
//! with captured stdio, fuel, the epoch deadline and a timeout around the
//! whole call, trap classification, the output cap, logs and usage.
//!
//! Each world's export plugs in as an [`Entry`]: `run.rs` (playbooks),
//! `gate.rs` (quality gates) and `route.rs` (routing policies).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::SemaphorePermit;
use tokio::time::error::Elapsed;
use warden_meta::{CapabilitySet, Limits};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use crate::backend::{ActionRecord, CallInfo, LogLevel, LogLine, LogSource, SharedBackend};
use crate::engine::{EffectiveLimits, Runtime, TICK};
use crate::error::RunError;
use crate::host::{CallState, HostState, Limiter, strip_nul};
use crate::plugin::{Exports, Plugin};
use crate::stdio::CapturePipe;

/// Resources one call used.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Usage {
    /// Wall time from the start of instantiation to the end of the call.
    pub wall_ms: u64,
    /// Fuel consumed.
    pub fuel: u64,
    /// Largest linear memory, in bytes.
    pub peak_memory_bytes: u64,
    /// Mutating steps spent.
    pub steps: u64,
    /// Host calls made.
    pub host_calls: u32,
    /// True when the plugin was told its step budget was spent.
    pub step_budget_hit: bool,
}

/// What every call needs besides the export's arguments: who, with which
/// rights, configuration, limits and data.
pub(crate) struct CallSetup {
    pub info: CallInfo,
    pub granted: CapabilitySet,
    pub config: Arc<BTreeMap<String, String>>,
    pub limits: Limits,
    pub backend: SharedBackend,
}

/// One world's export, as the shared machinery sees it: where its typed
/// pre-instance is, how to call it, and how large its answer is.
pub(crate) trait Entry: Sync {
    /// The typed pre-instance of the world.
    type Pre: Sync;
    /// What the export returns on success.
    type Output: Send;
    /// The world's name, for [`RunError::WrongKind`].
    const WORLD: &'static str;
    /// True when the call may use the instance slots reserved for calls
    /// someone waits for (gates, routing policies); playbook runs may not.
    const RESERVED_SLOTS: bool;

    /// The pre-instance, when the plugin is of this world.
    fn pre(exports: &Exports) -> Option<&Self::Pre>;

    /// Instantiates the component in `store` and calls the export.
    fn call<'a>(
        &'a self,
        pre: &'a Self::Pre,
        store: &'a mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Result<Self::Output, String>>> + Send + 'a;

    /// Bytes of the answer: what it costs to store and send, checked
    /// against the output cap.
    fn output_bytes(output: &Self::Output) -> usize;

    /// Removes NUL characters (U+0000) from every string of the answer:
    /// the host stores them in `text` columns, where PostgreSQL takes no
    /// NUL.
    fn strip_nul(output: &mut Self::Output);
}

/// How a call ended, whatever the world, and what it left behind.
pub(crate) struct Ended<T> {
    pub result: Result<T, RunError>,
    pub actions: Vec<ActionRecord>,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u64,
    pub usage: Usage,
    pub limits: EffectiveLimits,
}

impl<T> Ended<T> {
    /// A call that ended before an instance was created.
    fn early(error: RunError, limits: EffectiveLimits) -> Self {
        Ended {
            result: Err(error),
            actions: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            usage: Usage::default(),
            limits,
        }
    }
}

impl Runtime {
    /// Calls `entry`'s export once, in a fresh instance of `plugin`, under
    /// its limits. Never panics and never fails the host: every way the
    /// call can end is in the result, and is counted in [`Runtime::stats`].
    pub(crate) async fn call<E: Entry>(
        &self,
        plugin: &Plugin,
        setup: CallSetup,
        entry: &E,
    ) -> Ended<E::Output> {
        let started = Instant::now();
        let ended = self.call_once(plugin, setup, entry).await;
        self.stats.record(
            &plugin.meta().name,
            E::WORLD,
            &ended.result,
            started.elapsed(),
        );
        ended
    }

    async fn call_once<E: Entry>(
        &self,
        plugin: &Plugin,
        setup: CallSetup,
        entry: &E,
    ) -> Ended<E::Output> {
        let limits = self
            .config
            .limits
            .resolve(&plugin.meta().limits, &setup.limits);
        let Some(pre) = E::pre(&plugin.exports) else {
            let actual = plugin.meta().kind.world();
            return Ended::early(
                RunError::WrongKind {
                    expected: E::WORLD,
                    actual,
                },
                limits,
            );
        };
        let grants = plugin.effective_grants(&setup.granted);
        if let Err(e) = plugin.check_grants(&grants) {
            return Ended::early(e, limits);
        }

        let deadline = Duration::from_millis(limits.deadline_ms);
        let started = Instant::now();
        let Some(_permits) = self.take_slots::<E>(deadline).await else {
            return Ended::early(
                RunError::Busy {
                    ms: limits.deadline_ms,
                },
                limits,
            );
        };

        let stdio_cap = (self.config.limits.stdio_kib as usize) << 10;
        let stdout = CapturePipe::new(stdio_cap);
        let stderr = CapturePipe::new(stdio_cap);
        let mut store = self.new_store(setup, grants, &limits, &stdout, &stderr);
        let fuel_set = store.set_fuel(limits.fuel);
        arm_deadline(&mut store, started + deadline, limits.deadline_ms);

        let outcome = match fuel_set {
            Err(e) => Ok(Err(e)),
            Ok(()) => {
                let call = entry.call(pre, &mut store);
                // The epoch callback stops a spinning guest; this bounds the
                // time spent waiting inside host calls as well.
                tokio::time::timeout(deadline + TICK * 5, call).await
            }
        };

        let wall_ms = started.elapsed().as_millis() as u64;
        let result = settle::<E>(outcome, &stderr, &limits);

        let fuel_left = store.get_fuel().unwrap_or(0);
        let state = store.into_data();
        let mut call = state.call;
        log_stdio(&mut call, &stdout, &stderr, stdio_cap);
        Ended {
            result,
            usage: Usage {
                wall_ms,
                fuel: limits.fuel.saturating_sub(fuel_left),
                peak_memory_bytes: state.limiter.peak_memory as u64,
                steps: call.steps_used,
                host_calls: call.next_call,
                step_budget_hit: call.over_budget > 0,
            },
            actions: call.actions,
            logs: call.logs,
            logs_dropped: call.logs_dropped,
            limits,
        }
    }

    /// An instance slot for a call of `E`, waited for until `deadline`;
    /// `None` when none came free in time.
    async fn take_slots<E: Entry>(
        &self,
        deadline: Duration,
    ) -> Option<(Option<SemaphorePermit<'_>>, SemaphorePermit<'_>)> {
        // A playbook takes a slot of its share first, so that however many
        // runs there are, the reserved slots stay free for gates and
        // routing policies.
        let permits = async {
            let share = if E::RESERVED_SLOTS {
                None
            } else {
                Some(self.playbook_slots.acquire().await?)
            };
            Ok::<_, tokio::sync::AcquireError>((share, self.slots.acquire().await?))
        };
        match tokio::time::timeout(deadline, permits).await {
            Ok(Ok(permits)) => Some(permits),
            _ => None,
        }
    }

    /// The store of one call: its WASI context, writing to `stdout` and
    /// `stderr`, its memory limiter and its state.
    fn new_store(
        &self,
        setup: CallSetup,
        grants: CapabilitySet,
        limits: &EffectiveLimits,
        stdout: &CapturePipe,
        stderr: &CapturePipe,
    ) -> Store<HostState> {
        // No preopens, no environment, no arguments, no network: the only
        // authority a plugin has is what its granted imports give it.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_cap: (limits.memory_mib as usize) << 20,
                peak_memory: 0,
            },
            call: CallState::new(
                Arc::new(setup.info),
                setup.backend,
                grants,
                setup.config,
                limits.steps,
            ),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }
}

/// How the export's call came back: `Err` when the timeout around it
/// elapsed, else the trap or the export's answer.
type Outcome<T> = Result<wasmtime::Result<Result<T, String>>, Elapsed>;

/// Ends the call at `deadline_at` (after `deadline_ms`).
fn arm_deadline(store: &mut Store<HostState>, deadline_at: Instant, deadline_ms: u64) {
    store.set_epoch_deadline(1);
    // Once per tick: end the call if the deadline passed, else yield to
    // the executor so that a spinning guest never starves the host.
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline_at {
            Err(wasmtime::Error::new(RunError::Deadline { ms: deadline_ms }))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

/// The call's result from its `outcome`: the trap classified, NULs
/// stripped, the output cap checked.
fn settle<E: Entry>(
    outcome: Outcome<E::Output>,
    stderr: &CapturePipe,
    limits: &EffectiveLimits,
) -> Result<E::Output, RunError> {
    match outcome {
        Err(_elapsed) => Err(RunError::Deadline {
            ms: limits.deadline_ms,
        }),
        Ok(Err(trap)) => Err(classify(trap, stderr, limits.fuel)),
        Ok(Ok(Err(mut message))) => {
            strip_nul(&mut message);
            Err(RunError::Plugin(message))
        }
        Ok(Ok(Ok(mut output))) => {
            E::strip_nul(&mut output);
            let bytes = E::output_bytes(&output);
            if bytes > (limits.output_kib as usize) << 10 {
                Err(RunError::OutputTooLarge {
                    bytes,
                    limit_kib: limits.output_kib,
                })
            } else {
                Ok(output)
            }
        }
    }
}

/// Logs what the plugin wrote to stdout and stderr, a line each, and what
/// the `stdio_cap` dropped.
fn log_stdio(call: &mut CallState, stdout: &CapturePipe, stderr: &CapturePipe, stdio_cap: usize) {
    for (pipe, source, level) in [
        (stdout, LogSource::Stdout, LogLevel::Info),
        (stderr, LogSource::Stderr, LogLevel::Warn),
    ] {
        let (bytes, dropped) = pipe.take();
        for line in String::from_utf8_lossy(&bytes).lines() {
            if !line.trim().is_empty() {
                call.push_log(level, source, line.to_string(), Vec::new());
            }
        }
        if dropped > 0 {
            call.push_log(
                LogLevel::Warn,
                LogSource::Host,
                format!(
                    "{dropped} byte(s) of {source:?} dropped over the {} KiB cap",
                    stdio_cap >> 10
                ),
                Vec::new(),
            );
        }
    }
}

/// Turns a trap into the precise error users see (SPEC PL-5).
fn classify(error: wasmtime::Error, stderr: &CapturePipe, fuel: u64) -> RunError {
    if let Some(e) = error.downcast_ref::<RunError>() {
        return e.clone();
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => RunError::FuelExhausted { fuel },
            Trap::StackOverflow => RunError::StackOverflow,
            Trap::MemoryOutOfBounds if looks_like_recursion(&error) => RunError::StackOverflow,
            Trap::UnreachableCodeReached => match panic_message(stderr) {
                Some(message) => RunError::Panic(message),
                None => RunError::Trap("unreachable code reached".to_string()),
            },
            other => RunError::Trap(other.to_string()),
        };
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return RunError::Trap(format!("plugin exited with status {}", exit.0));
    }
    RunError::Trap(format!("{error:#}"))
}

/// Rust guests keep most of their stack in linear memory, below address
/// 1 MiB and growing down: when deep recursion exhausts it, the guest
/// faults out of bounds rather than overflowing the wasm stack. A fault whose
/// backtrace is one function calling itself over and over is that case.
fn looks_like_recursion(error: &wasmtime::Error) -> bool {
    let Some(trace) = error.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let frames = trace.frames();
    if frames.len() < 16 {
        return false;
    }
    let mut counts = std::collections::HashMap::new();
    for f in frames {
        *counts.entry(f.func_index()).or_insert(0usize) += 1;
    }
    counts.values().any(|&n| n * 4 >= frames.len() * 3)
}

/// The panic message a Rust guest printed to stderr before aborting.
fn panic_message(stderr: &CapturePipe) -> Option<String> {
    let (bytes, _) = stderr.peek();
    let text = String::from_utf8_lossy(&bytes);
    let start = text.find("panicked at ")?;
    let rest = &text[start + "panicked at ".len()..];
    let end = rest.find("\nnote:").unwrap_or(rest.len());
    let mut message = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
    strip_nul(&mut message);
    Some(message)
}
