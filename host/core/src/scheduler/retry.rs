//! When a failed stage is tried again (SPEC TS-4): exponential backoff
//! with "equal jitter", a delay drawn between half and all of
//! `backoff_base_ms × 2^(attempt−1)`, capped at `backoff_max_ms`. Half the
//! delay is certain, so a retry storm still spreads out but no retry comes
//! back at once; the other half is random, so the workers that failed
//! together do not come back together.

use crate::config::scheduler::SchedulerConfig;

/// The retry backoff of `[scheduler]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry's ceiling.
    pub base_ms: u64,
    /// No ceiling above this.
    pub max_ms: u64,
}

impl RetryPolicy {
    /// The policy `[scheduler]` sets.
    pub fn of(config: &SchedulerConfig) -> Self {
        RetryPolicy {
            base_ms: config.backoff_base_ms,
            max_ms: config.backoff_max_ms,
        }
    }

    /// The longest delay before retry number `attempt` (1 is the first
    /// failure): `base × 2^(attempt−1)`, capped.
    pub fn ceiling_ms(&self, attempt: i64) -> u64 {
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.base_ms.saturating_mul(1u64 << exp).min(self.max_ms)
    }

    /// The delay before retry number `attempt`, for a `jitter` drawn
    /// uniformly from `0.0..=1.0` (clamped to it): between half and all of
    /// the ceiling.
    pub fn delay_ms(&self, attempt: i64, jitter: f64) -> i64 {
        let ceiling = self.ceiling_ms(attempt);
        let floor = ceiling / 2;
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let delay = floor + ((ceiling - floor) as f64 * jitter) as u64;
        i64::try_from(delay).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base_ms: 1_000,
            max_ms: 300_000,
        }
    }

    #[test]
    fn the_ceiling_doubles_per_attempt_up_to_the_cap() {
        let p = policy();
        assert_eq!(p.ceiling_ms(1), 1_000);
        assert_eq!(p.ceiling_ms(2), 2_000);
        assert_eq!(p.ceiling_ms(5), 16_000);
        assert_eq!(p.ceiling_ms(9), 256_000);
        assert_eq!(p.ceiling_ms(10), 300_000);
        assert_eq!(p.ceiling_ms(i64::MAX), 300_000);
        // Attempt 0 or below counts as the first.
        assert_eq!(p.ceiling_ms(0), 1_000);
        assert_eq!(p.ceiling_ms(-5), 1_000);
    }

    #[test]
    fn retries_back_off_between_half_and_all_of_the_ceiling() {
        let p = policy();
        assert_eq!(p.delay_ms(3, 0.0), 2_000);
        assert_eq!(p.delay_ms(3, 1.0), 4_000);
        assert_eq!(p.delay_ms(3, 0.5), 3_000);
        // Out-of-range draws are clamped, never beyond the bounds.
        assert_eq!(p.delay_ms(3, -1.0), 2_000);
        assert_eq!(p.delay_ms(3, 7.0), 4_000);
        assert_eq!(p.delay_ms(3, f64::NAN), 2_000);
        for attempt in 1..40 {
            for jitter in [0.0, 0.25, 0.999, 1.0] {
                let d = p.delay_ms(attempt, jitter) as u64;
                let c = p.ceiling_ms(attempt);
                assert!(
                    d >= c / 2 && d <= c,
                    "attempt {attempt}: {d} not in {}..={c}",
                    c / 2
                );
            }
        }
    }

    #[test]
    fn a_huge_base_saturates_instead_of_overflowing() {
        let p = RetryPolicy {
            base_ms: u64::MAX / 2,
            max_ms: u64::MAX,
        };
        assert_eq!(p.ceiling_ms(40), u64::MAX);
        assert_eq!(p.delay_ms(40, 1.0), i64::MAX);
    }
}
