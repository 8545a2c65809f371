//! Retry delays: exponential growth from `retry_initial_ms` to `retry_max_ms`, with jitter.
//!
//! Attempt *n* (counting from 0) has a base of `initial * 2^n`, capped at `max`; the delay is
//! drawn uniformly from `[base/2, base]` ("equal jitter"), so outputs that failed together do
//! not retry in lockstep, yet a delay never drops below half its base. When the receiver said
//! how long to wait (`Retry-After`), that is used instead, capped at [`MAX_RETRY_AFTER`] so a
//! wrong header cannot park an output for a day. A success resets the sequence.
//!
//! ```
//! use std::time::Duration;
//! use crowsnest_output::Backoff;
//! let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
//! let first = backoff.next_delay(None);
//! assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
//! assert_eq!(backoff.next_delay(Some(Duration::from_secs(3))), Duration::from_secs(3));
//! backoff.reset();
//! assert_eq!(backoff.attempts(), 0);
//! ```

use std::time::Duration;

use rand::Rng;

/// The longest `Retry-After` that is honoured as given.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Exponential backoff with equal jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max` (`max` below `initial` is raised to it).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            attempts: 0,
        }
    }

    /// The backoff of an output's `retry_initial_ms`/`retry_max_ms`.
    pub fn from_config(config: &crate::OutputConfig) -> Self {
        Self::new(
            Duration::from_millis(config.retry_initial_ms),
            Duration::from_millis(config.retry_max_ms),
        )
    }

    /// The base (jitter-free upper bound) of the next delay.
    pub fn base(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempts.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The delay before the next attempt; `retry_after` (the receiver's hint) wins when given.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let base = self.base();
        self.attempts = self.attempts.saturating_add(1);
        if let Some(hint) = retry_after {
            return hint.min(MAX_RETRY_AFTER);
        }
        let half = base / 2;
        let spread = u64::try_from((base - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::thread_rng().gen_range(0..=spread))
    }

    /// Failed attempts since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_cap_and_reset() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let mut backoff = Backoff::new(initial, max);
        let mut previous_base = Duration::ZERO;
        for attempt in 0..10 {
            let base = backoff.base();
            assert!(base >= previous_base, "attempt {attempt}: base shrank");
            assert!(base <= max);
            let delay = backoff.next_delay(None);
            assert!(
                delay >= base / 2 && delay <= base,
                "{delay:?} outside {base:?}"
            );
            previous_base = base;
        }
        assert_eq!(backoff.base(), max, "ten doublings of 100 ms reach the cap");
        backoff.reset();
        assert_eq!(backoff.base(), initial);
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(100_000))),
            MAX_RETRY_AFTER
        );
        assert_eq!(backoff.attempts(), 2);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            assert!(backoff.next_delay(None) <= Duration::from_secs(30));
        }
    }
}
