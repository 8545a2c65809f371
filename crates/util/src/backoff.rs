//! Retry delays: exponential growth from an initial delay to a cap, with full jitter.
//!
//! Attempt *n* (counting from 0) has a base of `initial * 2^n`, capped at `max`; the delay is
//! drawn uniformly from `[0, base]` ("full jitter"), so clients that failed together (agents
//! after a server restart, outputs after a receiver outage) spread their retries over the
//! whole window instead of returning in lockstep. When the receiver said how long to wait
//! (`Retry-After`), that is used instead, capped at [`MAX_RETRY_AFTER`] so a wrong header
//! cannot park a client for a day. A success resets the sequence.
//!
//! ```
//! use std::time::Duration;
//! use crowsnest_util::Backoff;
//! let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
//! let first = backoff.next_delay(None);
//! assert!(first <= Duration::from_millis(100));
//! assert_eq!(backoff.next_delay(Some(Duration::from_secs(3))), Duration::from_secs(3));
//! backoff.reset();
//! assert_eq!(backoff.attempts(), 0);
//! ```

use std::time::Duration;

use rand::Rng;

/// The longest `Retry-After` that is honoured as given.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max` (`initial` is at least 1 ms; `max` below
    /// `initial` is raised to it).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            attempts: 0,
        }
    }

    /// The base (the upper bound of the jitter) of the next delay.
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
        rand::thread_rng().gen_range(Duration::ZERO..=base)
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
            assert!(delay <= base, "{delay:?} above {base:?}");
            previous_base = base;
        }
        assert_eq!(backoff.base(), max, "ten doublings of 100 ms reach the cap");
        backoff.reset();
        assert_eq!(backoff.base(), initial);
    }

    #[test]
    fn delays_spread_over_the_whole_window() {
        // Full jitter: over many draws at the cap, delays land in every tenth of [0, base].
        let mut backoff = Backoff::new(Duration::from_millis(1000), Duration::from_millis(1000));
        let mut tenths = [0u32; 10];
        for _ in 0..2_000 {
            let delay = backoff.next_delay(None);
            assert!(delay <= Duration::from_millis(1000));
            let tenth = (delay.as_millis() / 100).min(9) as usize;
            tenths[tenth] += 1;
        }
        // Each tenth expects 200 draws; below 100 would be a broken distribution
        // (the chance of a false failure is far below one in a billion).
        assert!(tenths.iter().all(|&n| n >= 100), "{tenths:?}");
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
