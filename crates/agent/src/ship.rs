//! Sending spooled batches to the server, oldest first, until each is acknowledged.
//!
//! Each batch file is already gzip'd NDJSON; it goes as is to
//! `POST <server>/api/v1/ingest/ndjson?source=crowsnest.agent` with
//! `Content-Encoding: gzip`, `Authorization: Bearer <ingest token>` and
//! `X-Crowsnest-Batch: <agent-id>:spool:<seq>`. The file is deleted only on a 2xx answer
//! (a duplicate the server already has is a 2xx too). Network errors, 429 and 5xx are retried
//! with capped exponential backoff and full jitter ([`crowsnest_util::Backoff`], 100 ms doubling
//! to 5 s, so agents that lost the server together do not come back in lockstep); other 4xx
//! answers mean the batch can never be taken (a bad
//! token is retried too, since an operator can fix it): the file is moved to `rejected/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crowsnest_util::Backoff;

use crate::spool::{BatchFile, Spool};

/// First retry delay of a failed delivery (the jitter draws below it).
const RETRY_INITIAL: Duration = Duration::from_millis(100);
/// Longest retry delay of a failed delivery.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// Server base URL (`http://host:8470`).
    pub server: String,
    /// The ingest token.
    pub token: String,
    /// This agent's id.
    pub agent_id: String,
    /// Request timeout.
    pub timeout: Duration,
}

/// Wakes the sender when a batch was spooled.
#[derive(Default)]
pub struct Bell {
    rung: Mutex<bool>,
    cond: Condvar,
}

impl Bell {
    /// Signals new work.
    pub fn ring(&self) {
        let mut rung = self
            .rung
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *rung = true;
        self.cond.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let rung = self
            .rung
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut rung, _) = self
            .cond
            .wait_timeout_while(rung, timeout, |r| !*r)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *rung = false;
    }
}

/// Counters the sender keeps.
#[derive(Debug, Default)]
pub struct ShipStats {
    /// Batches acknowledged.
    pub batches: AtomicU64,
    /// Failed attempts.
    pub failures: AtomicU64,
}

enum Outcome {
    Acked,
    Retry(String),
    Rejected(String),
}

fn send(agent: &ureq::Agent, config: &ShipConfig, batch: &BatchFile) -> Outcome {
    let body = match std::fs::read(&batch.path) {
        Ok(body) => body,
        Err(error) => return Outcome::Rejected(format!("unreadable batch file: {error}")),
    };
    let url = format!(
        "{}/api/v1/ingest/ndjson?source=crowsnest.agent",
        config.server.trim_end_matches('/')
    );
    let result = agent
        .post(&url)
        .set("Authorization", &format!("Bearer {}", config.token))
        .set("Content-Type", "application/x-ndjson")
        .set("Content-Encoding", "gzip")
        .set(
            "X-Crowsnest-Batch",
            &format!("{}:spool:{}", config.agent_id, batch.seq),
        )
        .send_bytes(&body);
    match result {
        Ok(_) => Outcome::Acked,
        Err(ureq::Error::Status(code, response)) => {
            let text = response.into_string().unwrap_or_default();
            let text: String = text.chars().take(500).collect();
            if code == 429 || code == 408 || code == 401 || code == 403 || code >= 500 {
                Outcome::Retry(format!("server answered {code}: {text}"))
            } else {
                Outcome::Rejected(format!("server answered {code}: {text}"))
            }
        }
        Err(error) => Outcome::Retry(error.to_string()),
    }
}

/// Sends spooled batches until `stop` is set and the spool is empty (or `stop` is set and
/// the server is unreachable: what is left stays spooled for the next start).
pub fn run_sender(
    dir: &Path,
    config: &ShipConfig,
    spool_bytes: Arc<AtomicU64>,
    bell: &Bell,
    stop: &AtomicBool,
    stats: &ShipStats,
) {
    let agent = ureq::AgentBuilder::new()
        .timeout(config.timeout)
        .no_delay(true)
        .build();
    let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX);
    loop {
        let pending = Spool::pending(dir).unwrap_or_default();
        if pending.is_empty() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            bell.wait(Duration::from_millis(500));
            continue;
        }
        for batch in pending {
            let size = std::fs::metadata(&batch.path).map(|m| m.len()).unwrap_or(0);
            match send(&agent, config, &batch) {
                Outcome::Acked => {
                    if std::fs::remove_file(&batch.path).is_ok() {
                        spool_bytes.fetch_sub(
                            size.min(spool_bytes.load(Ordering::SeqCst)),
                            Ordering::SeqCst,
                        );
                    }
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    backoff.reset();
                }
                Outcome::Rejected(reason) => {
                    tracing::error!(seq = batch.seq, %reason, "batch refused by the server; moved to rejected/");
                    let rejected: PathBuf = dir.join("rejected");
                    let _ = std::fs::create_dir_all(&rejected);
                    if let Some(name) = batch.path.file_name() {
                        let _ = std::fs::rename(&batch.path, rejected.join(name));
                    }
                    spool_bytes.fetch_sub(
                        size.min(spool_bytes.load(Ordering::SeqCst)),
                        Ordering::SeqCst,
                    );
                }
                Outcome::Retry(reason) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff.next_delay(None);
                    tracing::warn!(seq = batch.seq, %reason, retry_in_ms = delay.as_millis() as u64, "delivery failed; batch stays spooled");
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(delay);
                    break;
                }
            }
        }
    }
}
