//! Counts of plugin calls in this process, for `/metrics` (SPEC OB-4):
//! calls by plugin, world and how they ended, which of them hit a limit,
//! and how long they took. Every call, whatever its world, passes through
//! the runtime's one call path (`call.rs`), which records it here once.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::RunError;

/// Upper bounds of the call-duration histogram, in seconds.
pub const CALL_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Plugin calls of one plugin and world that ended one way.
#[derive(Clone, Debug, PartialEq)]
pub struct CallCount {
    /// The plugin's name.
    pub plugin: String,
    /// `playbook`, `quality-gate` or `routing-policy`.
    pub world: &'static str,
    /// `ok`, or the [`RunError::code`] of the ending.
    pub outcome: &'static str,
    /// True when the ending was a limit ([`RunError::is_limit`]).
    pub limit: bool,
    /// How many.
    pub calls: u64,
}

/// The duration histogram of one plugin and world.
#[derive(Clone, Debug, PartialEq)]
pub struct CallDurations {
    /// The plugin's name.
    pub plugin: String,
    /// The world.
    pub world: &'static str,
    /// Calls per bucket of [`CALL_BUCKETS`], cumulative.
    pub cumulative: [u64; CALL_BUCKETS.len()],
    /// Every call.
    pub count: u64,
    /// Seconds, summed.
    pub sum: f64,
}

#[derive(Default)]
struct Inner {
    counts: BTreeMap<(String, &'static str, &'static str), (bool, u64)>,
    durations: BTreeMap<(String, &'static str), ([u64; CALL_BUCKETS.len()], u64, f64)>,
}

/// The counters. Cheap to update: one short lock per call.
#[derive(Default)]
pub struct CallStats {
    inner: Mutex<Inner>,
}

impl CallStats {
    /// The counters; a panic elsewhere while they were held leaves them
    /// consistent (each update is one insertion or addition), so a
    /// poisoned lock is used as it is.
    fn locked(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one call.
    pub(crate) fn record<T>(
        &self,
        plugin: &str,
        world: &'static str,
        result: &Result<T, RunError>,
        took: Duration,
    ) {
        let (outcome, limit) = match result {
            Ok(_) => ("ok", false),
            Err(e) => (e.code(), e.is_limit()),
        };
        let secs = took.as_secs_f64();
        let mut m = self.locked();
        m.counts
            .entry((plugin.to_string(), world, outcome))
            .or_insert((limit, 0))
            .1 += 1;
        let d = m.durations.entry((plugin.to_string(), world)).or_insert((
            [0; CALL_BUCKETS.len()],
            0,
            0.0,
        ));
        if let Some(i) = CALL_BUCKETS.iter().position(|b| secs <= *b) {
            d.0[i] += 1;
        }
        d.1 += 1;
        d.2 += secs;
    }

    /// Every count so far, ordered by plugin, world, outcome.
    pub fn counts(&self) -> Vec<CallCount> {
        let m = self.locked();
        m.counts
            .iter()
            .map(|((plugin, world, outcome), (limit, calls))| CallCount {
                plugin: plugin.clone(),
                world,
                outcome,
                limit: *limit,
                calls: *calls,
            })
            .collect()
    }

    /// Every histogram so far, ordered by plugin, world.
    pub fn durations(&self) -> Vec<CallDurations> {
        let m = self.locked();
        m.durations
            .iter()
            .map(|((plugin, world), (buckets, count, sum))| {
                let mut cumulative = [0; CALL_BUCKETS.len()];
                let mut acc = 0;
                for (c, n) in cumulative.iter_mut().zip(buckets) {
                    acc += n;
                    *c = acc;
                }
                CallDurations {
                    plugin: plugin.clone(),
                    world,
                    cumulative,
                    count: *count,
                    sum: *sum,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_outcome_and_limits_are_marked() {
        let s = CallStats::default();
        s.record::<()>("p", "playbook", &Ok(()), Duration::from_micros(300));
        s.record::<()>("p", "playbook", &Ok(()), Duration::from_millis(2));
        s.record::<()>(
            "p",
            "playbook",
            &Err(RunError::FuelExhausted { fuel: 10 }),
            Duration::from_secs(60),
        );
        s.record::<()>(
            "p",
            "playbook",
            &Err(RunError::Plugin("no".into())),
            Duration::from_millis(1),
        );
        let counts = s.counts();
        let find = |o: &str| counts.iter().find(|c| c.outcome == o).cloned();
        assert_eq!(find("ok").map(|c| (c.calls, c.limit)), Some((2, false)));
        assert_eq!(find("fuel").map(|c| (c.calls, c.limit)), Some((1, true)));
        assert_eq!(
            find("plugin_error").map(|c| (c.calls, c.limit)),
            Some((1, false))
        );
        let d = &s.durations()[0];
        assert_eq!(d.count, 4);
        // 0.3 ms in the first bucket; 1 ms and 2 ms by 2.5 ms; 60 s in none.
        assert_eq!(d.cumulative[0], 1);
        assert_eq!(d.cumulative[2], 3);
        assert_eq!(d.cumulative[CALL_BUCKETS.len() - 1], 3);
        assert!((d.sum - 60.0033).abs() < 1e-6, "{}", d.sum);
    }
}
