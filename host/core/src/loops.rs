//! Background loops (SPEC ST-2, RL-4, AL-1): the lease sweeper, the stuck
//! and backlog detectors, the alert rules ([`crate::rules`]) and the
//! vacuuming of the scheduler's busiest tables on PostgreSQL
//! ([`warden_store::Store::vacuum_hot_tables`]) run on one host at a time, under a singleton lock (a PostgreSQL advisory lock;
//! always granted on SQLite); the wake-up listener runs on every host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::alerts::Alerts;
use crate::leader::Leadership;
use crate::scheduler::Scheduler;
use crate::sync::Unpoisoned as _;
use crate::wake::WAKE_CHANNEL;

/// How often the leader requeues expired leases.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// How often the leader looks for stuck tasks and backlogs.
const DETECT_EVERY: Duration = Duration::from_secs(15);
/// How often the leader looks at the busiest tables' dead row versions
/// (PostgreSQL) ...
const VACUUM_EVERY: Duration = Duration::from_secs(5);
/// ... and how many a table may have before it is vacuumed (and no more
/// than its live rows).
const VACUUM_MIN_DEAD: i64 = 10_000;
/// After a failed vacuum (say, the database user does not own the tables),
/// the next try waits this long.
const VACUUM_AFTER_FAILURE: Duration = Duration::from_secs(600);

/// What the loops use.
pub struct LoopServices {
    /// The database.
    pub store: warden_store::Store,
    /// Tasks: the sweeper, the stuck detector and the wake-ups.
    pub scheduler: Arc<Scheduler>,
    /// Where the alert rules raise.
    pub alerts: Alerts,
    /// The alert rules' settings.
    pub rules: crate::rules::Rules,
}

/// Starts the loops; they stop when `shutdown` fires.
pub fn start(services: LoopServices, shutdown: watch::Receiver<bool>) {
    let svc = Arc::new(services);
    tokio::spawn(leader(svc.clone(), shutdown.clone()));
    tokio::spawn(listener(svc, shutdown));
}

async fn leader(svc: Arc<LoopServices>, mut shutdown: watch::Receiver<bool>) {
    let mut leadership = Leadership::new("scheduler");
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_detect = tokio::time::Instant::now();
    let mut last_rules = tokio::time::Instant::now();
    let rules_every = Duration::from_millis(svc.rules.rules.every_ms);
    let vacuum = Vacuum::default();
    loop {
        tokio::select! {
            _ = sweep.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !leadership.held(&svc.store).await {
            continue;
        }
        if let Err(e) = svc.scheduler.sweep().await {
            tracing::warn!(error = %e, "lease sweep failed");
            // A lost connection may mean a lost lock: take it again.
            leadership.release();
            continue;
        }
        if last_rules.elapsed() >= rules_every {
            last_rules = tokio::time::Instant::now();
            match svc.store.list_workspaces().await {
                Ok(ws) => {
                    for w in ws {
                        if let Err(e) =
                            crate::rules::evaluate_with(&svc.store, &svc.alerts, &svc.rules, &w)
                                .await
                        {
                            tracing::warn!(workspace = %w, error = %e, "alert rules failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list workspaces"),
            }
        }
        vacuum.maybe_start(&svc.store);
        if last_detect.elapsed() >= DETECT_EVERY {
            last_detect = tokio::time::Instant::now();
            match svc.store.list_workspaces().await {
                Ok(ws) => {
                    if let Err(e) = svc.scheduler.detect_stuck(&ws).await {
                        tracing::warn!(error = %e, "stuck detection failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list workspaces"),
            }
        }
    }
}

/// The leader's vacuuming: at most one at a time, off the sweeper's loop
/// (a vacuum can take a while), backing off after a failure.
struct Vacuum {
    running: Arc<AtomicBool>,
    next: Arc<std::sync::Mutex<tokio::time::Instant>>,
}

impl Default for Vacuum {
    fn default() -> Self {
        Vacuum {
            running: Arc::new(AtomicBool::new(false)),
            next: Arc::new(std::sync::Mutex::new(
                tokio::time::Instant::now() + VACUUM_EVERY,
            )),
        }
    }
}

impl Vacuum {
    fn maybe_start(&self, store: &warden_store::Store) {
        let now = tokio::time::Instant::now();
        {
            let mut next = self.next.locked();
            if now < *next || self.running.swap(true, Ordering::SeqCst) {
                return;
            }
            *next = now + VACUUM_EVERY;
        }
        let (store, running, next) = (store.clone(), self.running.clone(), self.next.clone());
        tokio::spawn(async move {
            match store.vacuum_hot_tables(VACUUM_MIN_DEAD).await {
                Ok(done) => {
                    for v in done {
                        tracing::info!(
                            table = v.table,
                            dead = v.dead,
                            live = v.live,
                            "vacuumed a busy table"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot vacuum the scheduler's tables; trying again in 10 min");
                    *next.locked() = tokio::time::Instant::now() + VACUUM_AFTER_FAILURE;
                }
            }
            running.store(false, Ordering::SeqCst);
        });
    }
}

async fn listener(svc: Arc<LoopServices>, shutdown: watch::Receiver<bool>) {
    let wake = svc.scheduler.wake();
    crate::wake::follow(
        &svc.store,
        WAKE_CHANNEL,
        "wake-ups",
        shutdown,
        |ws| wake.local(&ws),
        || wake.all(),
    )
    .await;
}
