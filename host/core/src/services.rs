//! Wiring: builds every service from the configuration, each from the
//! part of it that it needs, and starts the background loops. The HTTP
//! server and the binary (warden-server) put an API in front of this.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio::sync::watch;
use warden_runtime::{Runtime, RuntimeConfig};
use warden_store::Store;

use crate::alerts::Alerts;
use crate::auth::{Auth, Principal};
use crate::config::{Config, Workspaces};
use crate::events::EventHub;
use crate::gates::Gates;
use crate::gateway::Gateway;
use crate::heal::Heal;
use crate::health::Health;
use crate::outbound::Connector;
use crate::processes::Processes;
use crate::registry::Registry;
use crate::scheduler::Scheduler;

/// Every service of a running host.
pub struct App {
    /// The configuration.
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// The plugin runtime.
    pub runtime: Arc<Runtime>,
    /// Plugins.
    pub registry: Arc<Registry>,
    /// Playbook runs.
    pub heal: Arc<Heal>,
    /// Tasks.
    pub scheduler: Arc<Scheduler>,
    /// Quality gates.
    pub gates: Arc<Gates>,
    /// The model gateway.
    pub gateway: Arc<Gateway>,
    /// Alerts.
    pub alerts: Alerts,
    /// Alert notifications.
    pub notifier: Arc<crate::alerting::Notifier>,
    /// Tokens.
    pub auth: Auth,
    /// Snapshots.
    pub health: Arc<Health>,
    /// Managed processes.
    pub processes: Arc<Processes>,
    /// Evidence files and the disk guard (SPEC RL-3).
    pub evidence: Arc<crate::evidence::Evidence>,
    /// The counters of this process for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Agent threads.
    pub threads: Arc<crate::threads::Threads>,
    /// Event streams open per token; every stream ends at shutdown.
    pub streams: Arc<crate::streams::StreamSlots>,
    /// True once start-up finished.
    pub ready: AtomicBool,
}

impl App {
    /// What a `/metrics` scrape reads.
    pub fn metric_sources(&self) -> crate::metrics::Sources<'_> {
        crate::metrics::Sources {
            metrics: &self.metrics,
            store: &self.store,
            config: &self.config,
            runtime: &self.runtime,
            gateway: &self.gateway,
            notifier: &self.notifier,
        }
    }

    /// Appends an audit entry for an API mutation (SPEC SE-3). A failure
    /// is logged; the mutation it describes has already happened.
    pub async fn audit(
        &self,
        who: &Principal,
        workspace: Option<&str>,
        action: &str,
        target: &str,
        detail: Value,
    ) {
        if let Err(e) = self
            .store
            .append_audit(&who.name, workspace, action, target, &detail)
            .await
        {
            tracing::error!(error = %e, action, target, "cannot append to the audit log");
        }
    }
}

/// A host's services, built and running, and the switch that stops them.
pub struct Built {
    /// Every service.
    pub app: Arc<App>,
    /// Sending `true` stops the background loops and ends event streams.
    pub shutdown: watch::Sender<bool>,
    /// Where the admin token came from, for the start-up line.
    pub admin_from: String,
}

/// Builds every service from `config`, with `connector` for the outbound
/// HTTP of the gateway, the alert sinks and the health probes, adds the
/// `bundled` plugins (name, component bytes) when the configuration asks
/// for them, recovers interrupted runs and starts the background loops. The caller serves
/// the API and sets [`App::ready`].
pub async fn build(
    config: Config,
    bundled: &[(&str, &[u8])],
    connector: &dyn Connector,
) -> anyhow::Result<Built> {
    let config = Arc::new(config);
    crate::auth::private_dir(&config.data_dir).with_context(|| {
        format!(
            "cannot prepare the data directory {}",
            config.data_dir.display()
        )
    })?;
    let (admin_secret, admin_from) =
        crate::auth::bootstrap_secret(config.auth.admin_token.as_deref(), &config.data_dir)?;
    let store = open_store(&config).await?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        cache_dir: Some(config.data_dir.join("cache")),
        max_concurrent_calls: config.limits.max_concurrent_calls,
        reserved_calls: config.limits.reserved_calls(),
        max_wasm_bytes: (config.limits.max_plugin_mib as usize) << 20,
        limits: config.host_limits(),
    })?);
    // The [workspaces.*] tables, copied once, shared by every service
    // that reads them.
    let workspaces = config.workspace_settings();
    let registry = Registry::open(
        runtime.clone(),
        store.clone(),
        crate::registry::RegistryConfig {
            data_dir: config.data_dir.clone(),
            plugin_dir: config.plugin_dir.clone(),
            workspaces: workspaces.clone(),
        },
    )
    .await?;
    if config.bundled_plugins {
        for (name, bytes) in bundled {
            if let Err(e) = registry.add_bundled(name, bytes).await {
                tracing::error!(plugin = name, error = %e, "bundled plugin refused");
            }
        }
    }
    registry.rescan().await;

    let (shutdown, rx) = watch::channel(false);
    let app = Arc::new(
        services(
            config,
            &workspaces,
            Foundation {
                store,
                runtime,
                registry,
            },
            &admin_secret,
            connector,
            &rx,
        )
        .await?,
    );
    start_loops(&app, &workspaces, &rx);
    Ok(Built {
        app,
        shutdown,
        admin_from,
    })
}

/// Opens and migrates the database, and logs when it calls a commit
/// durable.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&url)))?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    match store.sync_mode().await {
        Ok(mode) => tracing::info!(
            database = %store.dialect().name(),
            synchronous = %mode,
            "commits are acknowledged once the database says they are durable at this level"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot read the database's synchronous setting"),
    }
    Ok(store)
}

/// The health snapshots (over the data directory and the providers) and
/// the evidence store that runs write to.
fn health_and_evidence(
    config: &Config,
    store: &Store,
    registry: &Arc<Registry>,
) -> anyhow::Result<(Arc<Health>, Arc<crate::evidence::Evidence>)> {
    let providers = config.gateway.providers.iter().map(|p| p.name.clone());
    let health = Arc::new(
        Health::new(
            store.clone(),
            registry.clone(),
            vec![config.data_dir.clone()],
        )
        .with_providers(providers.collect()),
    );
    let evidence_dir = config.disk_guard.evidence_dir(&config.data_dir);
    let evidence = Arc::new(
        crate::evidence::Evidence::new(evidence_dir.clone(), config.disk_guard.thresholds())
            .with_context(|| {
                format!(
                    "cannot create the evidence directory {}",
                    evidence_dir.display()
                )
            })?,
    );
    Ok((health, evidence))
}

/// What every service is built over.
struct Foundation {
    store: Store,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
}

/// Builds every service over the store, the runtime and the registry,
/// with `connector` for their outbound HTTP; interrupted runs are
/// recovered and the gateway's writer is started, but no background loop
/// yet ([`start_loops`]).
async fn services(
    config: Arc<Config>,
    workspaces: &Workspaces,
    foundation: Foundation,
    admin_secret: &str,
    connector: &dyn Connector,
    rx: &watch::Receiver<bool>,
) -> anyhow::Result<App> {
    let Foundation {
        store,
        runtime,
        registry,
    } = foundation;
    let alerts = Alerts::new(store.clone());
    let gates = Gates::new(
        store.clone(),
        runtime.clone(),
        registry.clone(),
        workspaces.clone(),
        alerts.clone(),
    );
    let scheduler = Scheduler::new(
        store.clone(),
        config.scheduler.clone(),
        alerts.clone(),
        Some(gates.clone()),
    );
    let hub = EventHub::start_with(store.clone(), config.limits.event_limits());
    let (health, evidence) = health_and_evidence(&config, &store, &registry)?;
    let heal = Heal::new(
        store.clone(),
        registry.clone(),
        runtime.clone(),
        hub,
        health.clone(),
        scheduler.clone(),
        crate::heal::RunsConfig {
            workspaces: workspaces.clone(),
            max_runs_per_workspace: config.limits.max_runs_per_workspace,
            wait_slack_ms: config.http.wait_slack_ms,
        },
        evidence.clone(),
    );
    heal.recover().await?;
    let policies = crate::gateway::Policies::new(
        registry.clone(),
        runtime.clone(),
        &config.gateway,
        workspaces.clone(),
        alerts.clone(),
    );
    let gateway = Gateway::start(
        config.gateway.clone(),
        policies,
        connector,
        store.clone(),
        scheduler.clone(),
        alerts.clone(),
        rx.clone(),
    )
    .await
    .context("cannot start the model gateway")?;
    let auth = Auth::new(
        store.clone(),
        admin_secret,
        config.http.rate_limit_per_sec,
        config.http.unauthenticated_per_sec,
    );
    let notifier = crate::alerting::Notifier::new(
        store.clone(),
        config.alerting.clone(),
        &config.data_dir,
        connector,
        alerts.clone(),
    )
    .context("cannot start the alert notifier")?;
    let processes = Processes::start(
        &config.processes,
        workspaces,
        connector,
        store.clone(),
        alerts.clone(),
        scheduler.wake().clone(),
    )
    .context("cannot start the managed processes")?;
    scheduler.set_processes(processes.clone());
    Ok(App {
        threads: crate::threads::Threads::new(store.clone()),
        streams: crate::streams::StreamSlots::new(config.http.max_streams_per_token, rx.clone()),
        config,
        store,
        runtime,
        registry,
        heal,
        scheduler,
        gates,
        gateway,
        alerts,
        notifier,
        auth,
        health,
        processes,
        evidence,
        metrics: crate::metrics::Metrics::default(),
        ready: AtomicBool::new(false),
    })
}

/// Starts the background loops: the plugin directory's watcher, the
/// scheduler's and alerts' loops, the notifier, auto-heal, the threads'
/// message listener and the disk guard. Each ends when `rx` says so.
fn start_loops(app: &Arc<App>, workspaces: &Workspaces, rx: &watch::Receiver<bool>) {
    app.registry.clone().watch(rx.clone());
    crate::loops::start(
        crate::loops::LoopServices {
            store: app.store.clone(),
            scheduler: app.scheduler.clone(),
            alerts: app.alerts.clone(),
            rules: crate::rules::Rules {
                rules: app.config.alerting.rules.clone(),
                backlog_threshold: app.config.scheduler.backlog_threshold,
            },
        },
        rx.clone(),
    );
    tokio::spawn(
        app.notifier
            .clone()
            .run(app.alerts.wake_handle(), rx.clone()),
    );
    crate::autoheal::AutoHeal::start(
        crate::autoheal::AutoHealServices {
            store: app.store.clone(),
            heal: app.heal.clone(),
            alerts: app.alerts.clone(),
            workspaces: workspaces.clone(),
        },
        rx.clone(),
    );
    tokio::spawn(app.threads.clone().listen(rx.clone()));
    // Every host guards its own disk, so this loop is not a singleton.
    app.evidence.clone().start(
        app.alerts.clone(),
        Duration::from_millis(app.config.disk_guard.check_every_ms),
        rx.clone(),
    );
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
