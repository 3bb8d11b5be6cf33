//! The retry schedule, in one place: exponential backoff with full jitter.

use std::time::Duration;

/// When to try again after a failure that may pass.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Ceiling of the first retry's delay.
    pub first: Duration,
    /// The ceiling doubles per attempt up to this.
    pub cap: Duration,
    /// Keep retrying at least this long after the first failure, then give up.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            cap: Duration::from_secs(10 * 60),
            give_up_after: Duration::from_secs(72 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempt counts from 1), given a
    /// uniform draw `unit` in [0, 1): "full jitter" over [0, ceiling].
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let ceiling = self.first.saturating_mul(1 << doublings).min(self.cap);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Whether a client failing since `failing_for` should be given up.
    pub fn exhausted(&self, failing_for: Duration) -> bool {
        failing_for >= self.give_up_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_comes_within_a_second_and_ceilings_double_to_the_cap() {
        let p = RetryPolicy::default();
        assert!(p.delay(1, 0.999) <= Duration::from_secs(1));
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(5, 1.0), Duration::from_secs(16));
        assert_eq!(p.delay(30, 1.0), Duration::from_secs(600));
        assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_secs(600));
    }

    #[test]
    fn jitter_spreads_the_delay_over_the_whole_range() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(10, 0.0), Duration::ZERO);
        assert_eq!(p.delay(10, 0.5), Duration::from_secs(256));
    }

    #[test]
    fn a_client_is_given_up_only_after_72_hours_of_failures() {
        let p = RetryPolicy::default();
        assert!(!p.exhausted(Duration::from_secs(72 * 3600 - 1)));
        assert!(p.exhausted(Duration::from_secs(72 * 3600)));
        // With the cap at 10 minutes, 72 h is hundreds of attempts, not a handful.
        let mut elapsed = Duration::ZERO;
        let mut attempts = 0;
        while !p.exhausted(elapsed) {
            attempts += 1;
            elapsed += p.delay(attempts, 1.0);
        }
        assert!(attempts > 400, "{attempts}");
    }
}
