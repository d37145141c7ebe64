//! Background loops (SPEC ST-2, RL-4, AL-1): the lease sweeper, the stuck
//! and backlog detectors, the alert rules ([`crate::rules`]) and the
//! vacuuming of the scheduler's busiest tables on PostgreSQL
//! ([`warden_store::Store::vacuum_hot_tables`]) run on one host at a time, under a singleton lock (a PostgreSQL advisory lock;
//! always granted on SQLite); the wake-up listener runs on every host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::scheduler::WAKE_CHANNEL;
use crate::services::App;

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

/// A singleton lock held across the iterations of a loop that must run on
/// one host at a time: taken when free, its connection checked every 5 s,
/// given up when that connection is lost (another host may then take it).
pub struct Leadership {
    name: &'static str,
    lock: Option<warden_store::notify::Singleton>,
    checked: tokio::time::Instant,
}

impl Leadership {
    /// For the lock named `name` (not held yet).
    pub fn new(name: &'static str) -> Self {
        Leadership {
            name,
            lock: None,
            checked: tokio::time::Instant::now(),
        }
    }

    /// Whether this host holds the lock now, taking it when it is free.
    pub async fn held(&mut self, store: &warden_store::Store) -> bool {
        if self.checked.elapsed() >= Duration::from_secs(5) {
            self.checked = tokio::time::Instant::now();
            if let Some(l) = self.lock.as_mut()
                && !l.alive().await
            {
                tracing::warn!(
                    lock = self.name,
                    "lost a singleton lock's connection; another host may take over"
                );
                self.lock = None;
            }
        }
        if self.lock.is_none() {
            match store.try_singleton(self.name).await {
                Ok(Some(l)) => {
                    tracing::info!(
                        lock = self.name,
                        "this host now runs the {} loop",
                        self.name
                    );
                    self.lock = Some(l);
                }
                Ok(None) => return false,
                Err(e) => {
                    tracing::warn!(lock = self.name, error = %e, "cannot take a singleton lock");
                    return false;
                }
            }
        }
        true
    }

    /// Gives the lock up, to take it again on the next `held` (after a
    /// database error that may have cost its connection).
    pub fn release(&mut self) {
        self.lock = None;
    }
}

/// Starts the loops; they stop when `shutdown` fires.
pub fn start(app: Arc<App>, shutdown: watch::Receiver<bool>) {
    tokio::spawn(leader(app.clone(), shutdown.clone()));
    tokio::spawn(listener(app, shutdown));
}

async fn leader(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut leadership = Leadership::new("scheduler");
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_detect = tokio::time::Instant::now();
    let mut last_rules = tokio::time::Instant::now();
    let rules_every = Duration::from_millis(app.config.alerting.rules.every_ms);
    let vacuum = Vacuum::default();
    loop {
        tokio::select! {
            _ = sweep.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !leadership.held(&app.store).await {
            continue;
        }
        if let Err(e) = app.scheduler.sweep().await {
            tracing::warn!(error = %e, "lease sweep failed");
            // A lost connection may mean a lost lock: take it again.
            leadership.release();
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
        vacuum.maybe_start(&app.store);
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
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
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
                    *next.lock().unwrap_or_else(|p| p.into_inner()) =
                        tokio::time::Instant::now() + VACUUM_AFTER_FAILURE;
                }
            }
            running.store(false, Ordering::SeqCst);
        });
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
