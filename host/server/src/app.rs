//! The binary's wiring: builds the services (warden-core's
//! `services::build`) with the bundled plugins, then serves the HTTP API
//! with graceful shutdown (SPEC RL-5).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;

pub use warden_core::services::{App, redact};

use crate::config::Config;

/// The plugins built into the binary by `build.rs`.
pub mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The application, for tests.
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    http: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops accepting requests and claims, ends every event stream, lets
    /// in-flight requests and runs finish within `deadline` (one deadline
    /// for both: they run side by side), then releases the leases this
    /// host granted that are still held and returns (SPEC RL-5).
    pub async fn shutdown(self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        self.app.scheduler.drain();
        let _ = self.shutdown.send(true);
        let mut http = self.http;
        let drain_http = async {
            // The serve loop has its own drain deadline ([http] drain_ms);
            // this one is the caller's.
            if tokio::time::timeout_at(until, &mut http).await.is_err() {
                tracing::warn!("HTTP still draining at the shutdown deadline; closing connections");
                http.abort();
                let _ = http.await;
            }
        };
        tokio::join!(drain_http, self.app.processes.stop());
        self.app.gateway.flush().await;
        let left = self
            .app
            .heal
            .drain(until.saturating_duration_since(tokio::time::Instant::now()))
            .await;
        if left > 0 {
            tracing::warn!(
                runs = left,
                "runs still in flight at shutdown; they will show as interrupted after the next start"
            );
        }
        self.app.scheduler.release_leases().await;
        self.app.heal.hub().flush().await;
        self.app.store.close().await;
    }

    /// Runs until SIGINT or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        let drain = Duration::from_millis(self.app.config.http.drain_ms);
        tracing::info!(
            drain_ms = drain.as_millis() as u64,
            "shutting down: draining HTTP and in-flight runs, then releasing leases"
        );
        self.shutdown(drain).await;
    }
}

/// Builds everything and starts listening.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    let started = Instant::now();
    let warden_core::services::Built {
        app,
        shutdown,
        admin_from,
    } = warden_core::services::build(config, bundled::BUNDLED, &crate::outbound::Reqwest).await?;
    let config = app.config.clone();
    let rx = shutdown.subscribe();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let router = warden_api::router(app.clone());
    let http = tokio::spawn(warden_api::serve::serve(
        listener,
        router,
        warden_api::serve::HttpLimits::of(&config.http),
        rx,
    ));
    app.ready.store(true, Ordering::Release);
    tracing::info!(
        %addr,
        database = %app.store.dialect().name(),
        plugins = app.registry.names().len(),
        admin_token = %admin_from,
        startup_ms = started.elapsed().as_millis() as u64,
        "warden is serving; dashboard and API at http://{addr}/"
    );
    Ok(Server {
        addr,
        app,
        shutdown,
        http,
    })
}
