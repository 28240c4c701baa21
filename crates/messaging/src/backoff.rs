//! Capped exponential backoff with jitter, shared by reconnects, the outbox relay and consumer retries.

use std::time::Duration;

/// An exponential backoff schedule: `initial * multiplier^(n-1)`, capped at `max`.
///
/// Reconnect loops use [`Backoff::jittered`] so that many replicas losing the
/// same broker do not reconnect in lockstep; consumer retry tiers use the plain
/// [`Backoff::delay`] because each delay names a retry queue and must be stable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Growth factor between consecutive delays (>= 1).
    pub multiplier: f64,
}

impl Backoff {
    /// A schedule starting at `initial`, doubling, capped at `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            multiplier: 2.0,
        }
    }

    /// The un-jittered delay before retry number `n` (1-based; 0 is treated as 1).
    pub fn delay(&self, n: u32) -> Duration {
        let exponent = n.saturating_sub(1).min(63);
        let factor = self.multiplier.max(1.0).powi(exponent as i32);
        let nanos = (self.initial.as_nanos() as f64) * factor;
        let max = self.max.max(self.initial);
        if !nanos.is_finite() || nanos >= max.as_nanos() as f64 {
            max
        } else {
            Duration::from_nanos(nanos as u64)
        }
    }

    /// The delay before retry number `n` with "equal jitter": uniformly drawn
    /// from `[delay/2, delay]`, so the wait never collapses to zero but
    /// replicas spread out.
    pub fn jittered(&self, n: u32) -> Duration {
        let full = self.delay(n);
        let half = full / 2;
        let spread = full - half;
        let extra = if spread.is_zero() {
            Duration::ZERO
        } else {
            spread.mul_f64(rand::random::<f64>())
        };
        half + extra
    }
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s: fast recovery from a blip, gentle on a broker that is down.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_initial_value() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let delays: Vec<_> = (1..=5).map(|n| backoff.delay(n)).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600].map(Duration::from_millis),
            "schedule must be initial * 2^(n-1)"
        );
    }

    #[test]
    fn delays_are_capped_at_the_maximum() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        assert_eq!(backoff.delay(4), Duration::from_millis(500));
        assert_eq!(backoff.delay(1_000), Duration::from_millis(500));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn attempt_zero_is_treated_as_the_first_retry() {
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        assert_eq!(backoff.delay(0), backoff.delay(1));
    }

    #[test]
    fn a_maximum_below_the_initial_delay_never_shortens_it() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(backoff.delay(3), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_between_half_and_the_full_delay() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        for n in 1..=8 {
            let full = backoff.delay(n);
            for _ in 0..200 {
                let jittered = backoff.jittered(n);
                assert!(
                    jittered >= full / 2 && jittered <= full,
                    "jittered delay {jittered:?} for retry {n} outside [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
    }

    #[test]
    fn a_multiplier_below_one_does_not_shrink_delays() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 0.5,
        };
        assert_eq!(backoff.delay(5), Duration::from_millis(100));
    }
}
