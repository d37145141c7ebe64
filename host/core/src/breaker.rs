//! The circuit breaker (SPEC RL-1, GW-4): closed, open, half-open; opens
//! after consecutive failures or, when a window is set, after too many
//! failures among the last outcomes; stays open for a backoff that grows with each
//! opening in a row (by default 1, 2, 4, 8 minutes), then lets exactly one
//! probe through: its success closes the breaker, its failure opens it
//! again for the next backoff.
//!
//! The state machine is pure (times are passed in, in ms since the epoch),
//! so that it is tested without clocks; its owner keeps it in memory on the
//! hot path and persists the changes it reports to the `breakers` table.

use warden_store::Store;
use warden_store::breakers::BreakerRow;

use crate::alerts::{Alerts, Severity};

/// When a breaker opens and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open a closed breaker.
    pub failures: u32,
    /// Backoff of the first opening, the second in a row, ...; the last
    /// value repeats.
    pub backoff_ms: Vec<u64>,
    /// The rate-over-window trigger (off when its size is 0).
    pub window: RateWindow,
}

/// Opens a closed breaker when more than `over_percent` % of the last
/// `size` outcomes failed (once there are `size` of them), however they
/// alternate: what consecutive failures miss in a flapping dependency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateWindow {
    /// Outcomes looked at; 0 turns the trigger off.
    pub size: u32,
    /// Share of failures, in percent, above which it trips.
    pub over_percent: u32,
}

impl RateWindow {
    /// Whether `outcomes` (newest first, `true` for a failure) trip it:
    /// the failures among the newest `size`, when they do.
    pub fn tripped(&self, outcomes: impl IntoIterator<Item = bool>) -> Option<u32> {
        if self.size == 0 {
            return None;
        }
        let (mut n, mut failed) = (0u32, 0u32);
        for failure in outcomes.into_iter().take(self.size as usize) {
            n += 1;
            failed += u32::from(failure);
        }
        (n == self.size && u64::from(failed) * 100 > u64::from(self.over_percent) * u64::from(n))
            .then_some(failed)
    }
}

/// Outcomes a breaker remembers for its window.
const MAX_WINDOW: usize = 256;

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            backoff_ms: vec![60_000, 120_000, 240_000, 480_000],
            window: RateWindow::default(),
        }
    }
}

impl BreakerPolicy {
    /// Checks the values; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.failures == 0 {
            return Err("breaker_failures must be at least 1".to_string());
        }
        if self.backoff_ms.is_empty() || self.backoff_ms.contains(&0) {
            return Err("breaker_backoff_ms must list at least one positive duration".to_string());
        }
        if self.window.size as usize > MAX_WINDOW || self.window.over_percent > 100 {
            return Err(format!(
                "a breaker window is at most {MAX_WINDOW} outcomes and its rate at most 100 %"
            ));
        }
        Ok(())
    }

    fn backoff(&self, opening: u32) -> u64 {
        let i = (opening as usize).min(self.backoff_ms.len().saturating_sub(1));
        self.backoff_ms.get(i).copied().unwrap_or(60_000)
    }
}

/// The three states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Requests pass.
    Closed,
    /// Requests are refused until `retry_at`.
    Open,
    /// One probe is in flight.
    HalfOpen,
}

impl State {
    /// `closed`, `open` or `half-open`, as stored.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "open" => State::Open,
            "half-open" => State::HalfOpen,
            _ => State::Closed,
        }
    }
}

/// Whether a request may go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Closed: go.
    Pass,
    /// The backoff is over and this request is the probe: go, and report
    /// its outcome.
    Probe,
    /// Open (or a probe is already in flight): do not call.
    Refuse {
        /// When the next probe may go, ms since the epoch.
        retry_at: i64,
    },
}

/// A change its owner should persist (and alert on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing to persist.
    None,
    /// The breaker opened (or opened again after a failed probe).
    Opened {
        /// Why, for the record.
        reason: String,
        /// When the probe may go.
        retry_at: i64,
    },
    /// A probe succeeded: closed again.
    Closed,
}

/// Stores a breaker's change, then raises the critical `breaker_open`
/// alert (dedup key `breaker:<name>`) with its summary and detail when it
/// opened (`Some`), or resolves that alert when it closed (`None`). Both
/// are attempted; the first error is returned.
pub async fn record_change(
    store: &Store,
    alerts: &Alerts,
    workspace: Option<&str>,
    row: &BreakerRow,
    opened: Option<(String, serde_json::Value)>,
) -> crate::error::Result<()> {
    let stored = store.put_breaker(row).await;
    let key = format!("breaker:{}", row.name);
    let alerted = match opened {
        Some((summary, detail)) => alerts
            .raise(
                workspace,
                "breaker_open",
                Severity::Critical,
                &key,
                &summary,
                detail,
            )
            .await
            .map(drop),
        None => alerts.resolve(&key).await.map(drop),
    };
    stored?;
    alerted
}

/// The persisted breakers, plus a closed one for every configured provider
/// that has no row yet: a provider shows from the start, not only once it
/// first failed.
pub fn with_providers<'a>(
    mut rows: Vec<BreakerRow>,
    providers: impl IntoIterator<Item = &'a str>,
) -> Vec<BreakerRow> {
    for p in providers {
        let name = format!("provider:{p}");
        if !rows.iter().any(|r| r.name == name) {
            rows.push(BreakerRow {
                name,
                state: State::Closed.name().to_string(),
                failures: 0,
                reason: None,
                opened_at: None,
                retry_at: None,
                updated_at: 0,
            });
        }
    }
    rows
}

/// A probe that never reports back (its request was dropped) stops
/// blocking further probes after this long.
const PROBE_TIMEOUT_MS: i64 = 120_000;

/// One breaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breaker {
    state: State,
    /// Consecutive failures.
    failures: u32,
    /// Openings in a row since the breaker was last closed by a probe.
    openings: u32,
    opened_at: Option<i64>,
    retry_at: i64,
    probe_started: Option<i64>,
    reason: Option<String>,
    updated_at: i64,
    /// Recent outcomes, newest first (`true`: failed), for the window.
    recent: std::collections::VecDeque<bool>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: State::Closed,
            failures: 0,
            openings: 0,
            opened_at: None,
            retry_at: 0,
            probe_started: None,
            reason: None,
            updated_at: 0,
            recent: std::collections::VecDeque::new(),
        }
    }
}

impl Breaker {
    /// The state now.
    pub fn state(&self) -> State {
        self.state
    }

    /// The state as a caller deciding where to send a request should see
    /// it at `now`: an open breaker whose backoff is over is `half-open`
    /// (its probe may go), so that routing still offers it.
    pub fn state_at(&self, now: i64) -> State {
        match self.state {
            State::Open if now >= self.retry_at => State::HalfOpen,
            s => s,
        }
    }

    /// Consecutive failures counted.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When an open breaker lets its probe through.
    pub fn retry_at(&self) -> Option<i64> {
        (self.state != State::Closed).then_some(self.retry_at)
    }

    /// Decides whether a request may go now.
    pub fn admit(&mut self, now: i64) -> Admit {
        match self.state {
            State::Closed => Admit::Pass,
            State::Open if now >= self.retry_at => {
                self.state = State::HalfOpen;
                self.probe_started = Some(now);
                Admit::Probe
            }
            State::HalfOpen
                if self
                    .probe_started
                    .is_none_or(|s| now - s > PROBE_TIMEOUT_MS) =>
            {
                self.probe_started = Some(now);
                Admit::Probe
            }
            State::Open | State::HalfOpen => Admit::Refuse {
                retry_at: self.retry_at,
            },
        }
    }

    /// A probe that was admitted but never sent (no free slot, say) is
    /// given back: the breaker stays half-open and the next call probes.
    pub fn release_probe(&mut self) {
        if self.state == State::HalfOpen {
            self.probe_started = None;
        }
    }

    /// A request went through and succeeded.
    pub fn success(&mut self, now: i64) -> Change {
        self.failures = 0;
        self.remember(false);
        if self.state == State::Closed {
            return Change::None;
        }
        self.state = State::Closed;
        self.openings = 0;
        self.opened_at = None;
        self.probe_started = None;
        self.reason = Some("a probe succeeded".to_string());
        self.updated_at = now;
        Change::Closed
    }

    /// A request went through and failed (`why`, for the record).
    pub fn failure(&mut self, now: i64, policy: &BreakerPolicy, why: &str) -> Change {
        self.failures = self.failures.saturating_add(1);
        self.remember(true);
        let windowed = policy.window.tripped(self.recent.iter().copied());
        let reason = match self.state {
            State::HalfOpen => format!("the probe failed: {why}"),
            State::Closed if self.failures >= policy.failures => {
                format!("{} consecutive failures, the last: {why}", self.failures)
            }
            State::Closed if let Some(failed) = windowed => {
                format!(
                    "{failed} of the last {} outcomes failed, the last: {why}",
                    policy.window.size
                )
            }
            // Failures of requests admitted before it opened.
            State::Closed | State::Open => return Change::None,
        };
        let backoff = policy.backoff(self.openings);
        self.openings = self.openings.saturating_add(1);
        self.state = State::Open;
        self.opened_at = Some(now);
        self.retry_at = now + backoff as i64;
        self.probe_started = None;
        self.reason = Some(reason.clone());
        self.updated_at = now;
        Change::Opened {
            reason,
            retry_at: self.retry_at,
        }
    }

    fn remember(&mut self, failed: bool) {
        self.recent.push_front(failed);
        self.recent.truncate(MAX_WINDOW);
    }

    /// The row to persist under `name`.
    pub fn row(&self, name: &str) -> BreakerRow {
        BreakerRow {
            name: name.to_string(),
            state: self.state.name().to_string(),
            failures: i64::from(self.failures),
            reason: self.reason.clone(),
            opened_at: self.opened_at,
            retry_at: self.retry_at().map(|r| r.max(0)),
            updated_at: self.updated_at,
        }
    }

    /// Takes a persisted state newer than this one: set by an operator
    /// (`PUT /v1/breakers/{name}`) or another host. An open row without a
    /// retry time stays open until it is closed by hand.
    pub fn adopt(&mut self, row: &BreakerRow) -> bool {
        if row.updated_at <= self.updated_at {
            return false;
        }
        self.state = State::parse(&row.state);
        if self.state == State::HalfOpen {
            // Its probe belongs to the host that started it.
            self.state = State::Open;
        }
        self.failures = u32::try_from(row.failures.max(0)).unwrap_or(u32::MAX);
        self.opened_at = row.opened_at;
        self.retry_at = row.retry_at.unwrap_or(i64::MAX);
        self.probe_started = None;
        self.reason = row.reason.clone();
        self.updated_at = row.updated_at;
        if self.state == State::Closed {
            self.openings = 0;
            self.failures = 0;
        } else if self.openings == 0 {
            self.openings = 1;
        }
        true
    }
}

/// Whether a breaker bears on `workspace`: every host-wide breaker
/// (providers, the routing policy, sinks, processes), and of the gates'
/// and playbooks' only its own.
pub fn breaker_bears_on(name: &str, workspace: &str) -> bool {
    name.strip_prefix("gate:")
        .or_else(|| name.strip_prefix("playbook:"))
        .is_none_or(|rest| rest.starts_with(&format!("{workspace}:")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 5,
            backoff_ms: vec![1_000, 2_000, 4_000],
            window: RateWindow::default(),
        }
    }

    #[test]
    fn a_flapping_dependency_trips_the_rate_window() {
        let p = BreakerPolicy {
            failures: 5,
            backoff_ms: vec![1_000],
            window: RateWindow {
                size: 10,
                over_percent: 50,
            },
        };
        let mut b = Breaker::default();
        // Fail, succeed, fail, ...: never two failures in a row, so the
        // consecutive trigger never fires; 5 of 10 is not over half.
        for i in 0..10 {
            let change = if i % 2 == 0 {
                b.failure(i, &p, "HTTP 503")
            } else {
                b.success(i)
            };
            assert_eq!(change, Change::None, "outcome {i}");
        }
        // A failure replaces the oldest (a failure): still 5 of 10. The
        // next replaces a success: 6 of the last 10 opens it.
        assert_eq!(b.failure(10, &p, "HTTP 503"), Change::None, "5 of 10");
        match b.failure(11, &p, "HTTP 503") {
            Change::Opened { reason, retry_at } => {
                assert_eq!(retry_at, 1_011);
                assert!(
                    reason.starts_with("6 of the last 10 outcomes failed"),
                    "{reason}"
                );
            }
            other => panic!("expected it to open: {other:?}"),
        }
        assert_eq!(b.state(), State::Open);
    }

    #[test]
    fn the_window_needs_a_full_window() {
        let w = RateWindow {
            size: 10,
            over_percent: 50,
        };
        assert_eq!(
            w.tripped([true; 9]),
            None,
            "9 outcomes are not a window of 10"
        );
        assert_eq!(w.tripped([true; 10]), Some(10));
        let mut six = vec![true; 6];
        six.extend([false; 4]);
        assert_eq!(w.tripped(six.iter().copied()), Some(6));
        let mut five = vec![true; 5];
        five.extend([false; 5]);
        assert_eq!(w.tripped(five), None, "half is not over half");
        assert_eq!(RateWindow::default().tripped([true; 300]), None, "off");
    }

    #[test]
    fn five_consecutive_failures_open_it() {
        let p = policy();
        let mut b = Breaker::default();
        for i in 0..4 {
            assert_eq!(b.admit(i), Admit::Pass);
            assert_eq!(b.failure(i, &p, "HTTP 500"), Change::None);
        }
        // A success in between starts the count again.
        b.success(4);
        for i in 0..4 {
            assert_eq!(b.failure(10 + i, &p, "HTTP 500"), Change::None);
        }
        assert_eq!(
            b.failure(20, &p, "timeout"),
            Change::Opened {
                reason: "5 consecutive failures, the last: timeout".to_string(),
                retry_at: 1_020
            }
        );
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.admit(500), Admit::Refuse { retry_at: 1_020 });
        // A straggler admitted before the opening changes nothing.
        assert_eq!(b.failure(600, &p, "HTTP 500"), Change::None);
        assert_eq!(b.retry_at(), Some(1_020));
    }

    #[test]
    fn one_probe_after_the_backoff_and_the_backoff_grows() {
        let p = policy();
        let mut b = Breaker::default();
        for i in 0..5 {
            b.failure(i, &p, "x");
        }
        assert_eq!(b.retry_at(), Some(1_004));
        assert_eq!(b.state_at(1_003), State::Open);
        assert_eq!(b.state_at(1_004), State::HalfOpen, "its probe may go");
        assert_eq!(b.admit(1_004), Admit::Probe);
        assert_eq!(b.state(), State::HalfOpen);
        // Only one probe at a time.
        assert_eq!(b.admit(1_005), Admit::Refuse { retry_at: 1_004 });
        // The probe fails: open again, for the next backoff.
        assert!(matches!(
            b.failure(1_010, &p, "HTTP 503"),
            Change::Opened {
                retry_at: 3_010,
                ..
            }
        ));
        assert_eq!(b.admit(3_010), Admit::Probe);
        assert!(matches!(
            b.failure(3_011, &p, "x"),
            Change::Opened {
                retry_at: 7_011,
                ..
            }
        ));
        // The last backoff repeats.
        assert_eq!(b.admit(7_011), Admit::Probe);
        assert!(matches!(
            b.failure(7_012, &p, "x"),
            Change::Opened {
                retry_at: 11_012,
                ..
            }
        ));
        // A successful probe closes it and the backoff starts over.
        assert_eq!(b.admit(11_012), Admit::Probe);
        assert_eq!(b.success(11_020), Change::Closed);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(11_021), Admit::Pass);
        for i in 0..5 {
            b.failure(20_000 + i, &p, "x");
        }
        assert_eq!(b.retry_at(), Some(21_004));
    }

    #[test]
    fn a_lost_probe_stops_blocking_after_its_timeout() {
        let p = policy();
        let mut b = Breaker::default();
        for i in 0..5 {
            b.failure(i, &p, "x");
        }
        assert_eq!(b.admit(2_000), Admit::Probe);
        assert!(matches!(b.admit(2_001), Admit::Refuse { .. }));
        assert_eq!(b.admit(2_000 + PROBE_TIMEOUT_MS + 1), Admit::Probe);
    }

    #[test]
    fn persisted_rows_round_trip_and_newer_rows_win() {
        let p = policy();
        let mut b = Breaker::default();
        for i in 0..5 {
            b.failure(100 + i, &p, "x");
        }
        let row = b.row("provider:primary");
        assert_eq!(row.state, "open");
        assert_eq!(row.retry_at, Some(1_104));
        let mut other = Breaker::default();
        assert!(other.adopt(&row));
        assert_eq!(other.state(), State::Open);
        assert_eq!(other.admit(1_103), Admit::Refuse { retry_at: 1_104 });
        // An older row is ignored.
        assert!(!other.adopt(&BreakerRow {
            updated_at: 1,
            ..row.clone()
        }));
        // An operator closes it by hand.
        let closed = BreakerRow {
            state: "closed".to_string(),
            failures: 0,
            retry_at: None,
            updated_at: 5_000,
            ..row
        };
        assert!(other.adopt(&closed));
        assert_eq!(other.admit(5_001), Admit::Pass);
    }
}
