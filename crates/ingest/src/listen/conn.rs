//! Connection limits shared by every listener: the stream listeners of this crate and the
//! server's HTTP listener.
//!
//! A [`ConnectionLimiter`] admits a connection only while its listener has fewer than
//! `max_connections` open and its source IP address fewer than `max_per_ip`; a refused
//! connection is closed at once by the caller (with a log line, at most one a second per
//! listener, saying how many were refused), so it never holds a file descriptor or memory.
//! Keeping every listener's cap below the process's file descriptor limit
//! ([`open_files_limit`]) leaves descriptors for the WAL and the store however many clients
//! connect.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The listener has `limit` connections open.
    #[error("the listener has its limit of {limit} connections open (max_connections)")]
    Listener {
        /// The per-listener limit.
        limit: usize,
    },
    /// The source address has `limit` connections open.
    #[error("{ip} has its limit of {limit} connections open (max_connections_per_ip)")]
    Address {
        /// The source address.
        ip: IpAddr,
        /// The per-address limit.
        limit: usize,
    },
}

#[derive(Debug)]
struct Inner {
    protocol: &'static str,
    max: usize,
    max_per_ip: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
    refused_since_log: u64,
    last_log: Option<Instant>,
}

/// Counts a listener's open connections, in all and per source address. Cloning shares it.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter(Arc<Inner>);

/// An admitted connection; its slot is given back when dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    limiter: Arc<Inner>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    /// At most `max` connections at once (at least 1), at most `max_per_ip` (at least 1)
    /// from one source address; `protocol` names the listener in logs.
    pub fn new(protocol: &'static str, max: usize, max_per_ip: usize) -> Self {
        Self(Arc::new(Inner {
            protocol,
            max: max.max(1),
            max_per_ip: max_per_ip.max(1),
            state: Mutex::new(State::default()),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a connection from `ip`, or says why not.
    ///
    /// # Errors
    ///
    /// A [`Refusal`] when the listener or the address is at its limit.
    pub fn try_admit(&self, ip: IpAddr) -> Result<ConnectionGuard, Refusal> {
        let mut state = self.state();
        if state.open >= self.0.max {
            return Err(Refusal::Listener { limit: self.0.max });
        }
        let from_ip = state.per_ip.entry(ip).or_default();
        if *from_ip >= self.0.max_per_ip {
            return Err(Refusal::Address {
                ip,
                limit: self.0.max_per_ip,
            });
        }
        *from_ip += 1;
        state.open += 1;
        Ok(ConnectionGuard {
            limiter: self.0.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state().open
    }

    /// Connections open now from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.state().per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Logs a refused connection: the first at once, then at most one line a second saying how
    /// many more were refused (a flood of connections must not flood the log).
    pub fn log_refusal(&self, refusal: &Refusal, peer: SocketAddr) {
        let mut state = self.state();
        state.refused_since_log += 1;
        let now = Instant::now();
        let due = state
            .last_log
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1));
        if due {
            let refused = std::mem::take(&mut state.refused_since_log);
            state.last_log = Some(now);
            drop(state);
            tracing::warn!(
                protocol = self.0.protocol,
                %peer,
                refused,
                reason = %refusal,
                "connection refused"
            );
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut state = self
            .limiter
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.open = state.open.saturating_sub(1);
        if let Some(count) = state.per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
    }
}

/// The process's soft limit on open file descriptors (`RLIMIT_NOFILE`, read from
/// `/proc/self/limits`); `None` when unknown or unlimited.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Waits after a failed `accept` (most often `EMFILE`: out of file descriptors): the failure
/// repeats at once otherwise, spinning a core. Doubles from 10 ms to 1 s while failures
/// repeat; logs at most once a second.
#[derive(Debug)]
pub struct AcceptBackoff {
    delay: Duration,
    last_log: Option<Instant>,
    failures: u64,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            last_log: None,
            failures: 0,
        }
    }
}

impl AcceptBackoff {
    /// A connection was accepted: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.delay = Duration::from_millis(10);
    }

    /// Logs `error` (rate-limited) and sleeps.
    pub async fn failed(&mut self, protocol: &'static str, error: &std::io::Error) {
        self.failures += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1))
        {
            tracing::warn!(
                protocol,
                %error,
                failures = std::mem::take(&mut self.failures),
                "accept failed; waiting before accepting again"
            );
            self.last_log = Some(now);
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_listener_and_per_address() {
        let limiter = ConnectionLimiter::new("test", 3, 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = limiter.try_admit(a).expect("first");
        let _second = limiter.try_admit(a).expect("second");
        assert_eq!(
            limiter.try_admit(a).expect_err("third from a"),
            Refusal::Address { ip: a, limit: 2 }
        );
        let _third = limiter.try_admit(b).expect("b");
        assert_eq!(
            limiter.try_admit(b).expect_err("listener full"),
            Refusal::Listener { limit: 3 }
        );
        drop(first);
        assert_eq!(limiter.open(), 2);
        assert_eq!(limiter.open_from(a), 1);
        let _again = limiter.try_admit(a).expect("a slot came back");
    }

    #[test]
    fn the_open_files_limit_is_read() {
        // Linux test machines always have /proc; the limit is a positive number or unlimited.
        if let Some(limit) = open_files_limit() {
            assert!(limit > 0);
        }
    }
}
