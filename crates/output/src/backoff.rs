//! Retry delays of an output: [`crowsnest_util::Backoff`] (exponential growth with full
//! jitter, `Retry-After` honoured up to [`MAX_RETRY_AFTER`]) from `retry_initial_ms` to
//! `retry_max_ms`. The agent's shipper uses the same backoff.
//!
//! ```
//! use std::time::Duration;
//! use crowsnest_output::{backoff, OutputConfig};
//! let config: OutputConfig = toml::from_str(
//!     "name = 'w'\nretry_initial_ms = 200\nretry_max_ms = 5000\ntype = 'webhook'\nurl = 'http://127.0.0.1:9/'",
//! ).expect("valid");
//! let mut backoff = backoff::from_config(&config);
//! assert_eq!(backoff.base(), Duration::from_millis(200));
//! assert!(backoff.next_delay(None) <= Duration::from_millis(200));
//! ```

pub use crowsnest_util::{Backoff, MAX_RETRY_AFTER};

/// The backoff of an output's `retry_initial_ms`/`retry_max_ms`.
pub fn from_config(config: &crate::OutputConfig) -> Backoff {
    Backoff::new(
        std::time::Duration::from_millis(config.retry_initial_ms),
        std::time::Duration::from_millis(config.retry_max_ms),
    )
}
