//! Background loops (SPEC ST-2, RL-4, AL-1): the lease sweeper, the stuck
//! and backlog detectors and the alert rules ([`crate::rules`]) run on one
//! host at a time, under a singleton lock (a PostgreSQL advisory lock;
//! always granted on SQLite); the wake-up listener runs on every host.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::scheduler::WAKE_CHANNEL;

/// How often the leader requeues expired leases.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// How often the leader looks for stuck tasks and backlogs.
const DETECT_EVERY: Duration = Duration::from_secs(15);

/// Starts the loops; they stop when `shutdown` fires.
pub fn start(app: Arc<App>, shutdown: watch::Receiver<bool>) {
    tokio::spawn(leader(app.clone(), shutdown.clone()));
    tokio::spawn(listener(app, shutdown));
}

async fn leader(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut lock: Option<warden_store::notify::Singleton> = None;
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_detect = tokio::time::Instant::now();
    let mut last_rules = tokio::time::Instant::now();
    let rules_every = Duration::from_millis(app.config.alerting.rules.every_ms);
    let mut last_check = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = sweep.tick() => {}
            _ = shutdown.changed() => return,
        }
        if last_check.elapsed() >= Duration::from_secs(5) {
            last_check = tokio::time::Instant::now();
            if let Some(l) = lock.as_mut()
                && !l.alive().await
            {
                tracing::warn!("lost the scheduler lock's connection; another host may take over");
                lock = None;
            }
        }
        if lock.is_none() {
            match app.store.try_singleton("scheduler").await {
                Ok(Some(l)) => {
                    tracing::info!("this host now runs the scheduler loops");
                    lock = Some(l);
                }
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the scheduler lock");
                    continue;
                }
            }
        }
        if let Err(e) = app.scheduler.sweep().await {
            tracing::warn!(error = %e, "lease sweep failed");
            // A lost connection may mean a lost lock: take it again.
            lock = None;
            continue;
        }
        if last_rules.elapsed() >= rules_every {
            last_rules = tokio::time::Instant::now();
            match app.store.list_workspaces().await {
                Ok(ws) => {
                    for w in ws {
                        if let Err(e) =
                            crate::rules::evaluate(&app.store, &app.alerts, &app.config, &w).await
                        {
                            tracing::warn!(workspace = %w, error = %e, "alert rules failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list workspaces"),
            }
        }
        if last_detect.elapsed() >= DETECT_EVERY {
            last_detect = tokio::time::Instant::now();
            match app.store.list_workspaces().await {
                Ok(ws) => {
                    if let Err(e) = app.scheduler.detect_stuck(&ws).await {
                        tracing::warn!(error = %e, "stuck detection failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list workspaces"),
            }
        }
    }
}

async fn listener(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let mut listener = match app.store.listen(WAKE_CHANNEL).await {
            Ok(Some(l)) => l,
            // SQLite: one host, local wake-ups suffice.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for wake-ups; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        loop {
            tokio::select! {
                got = listener.recv() => match got {
                    Ok(ws) => app.scheduler.wake().local(&ws),
                    Err(e) => {
                        tracing::warn!(error = %e, "wake-up listener lost its connection; reconnecting");
                        // Wake everyone: a notification may have been missed.
                        app.scheduler.wake().all();
                        break;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}
