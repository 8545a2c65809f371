//! Forwarding outputs: events and alerts sent on to other systems (`[[outputs]]`).
//!
//! ```text
//!  WAL (acknowledged) ─► WalTail (own cursor) ─► decode ─► kind + query filter ─► batch ─► Sink
//!                                                                                 │ retry with
//!                                                                                 └ backoff
//! ```
//!
//! * **The WAL is the disk buffer.** Each output is a thread with its own position in the log
//!   (`<data-dir>/outputs/<name>.cursor`). It reads acknowledged records from the segment files
//!   and delivers them; the log is not truncated past the oldest undelivered record of any
//!   output, so a destination that is down for a while loses nothing and a restart resumes
//!   where delivery stopped (at-least-once; Elasticsearch deduplicates by `_id`).
//! * **Bounded.** An output may hold back at most `max_buffer_bytes` of log. Past that the log is
//!   truncated as if the output did not exist, the output skips to the oldest record still on
//!   disk, and the skipped records are counted in `crowsnest_output_events_total{result="dropped"}`
//!   and logged: ingest never stops because a destination is down.
//! * **Filtered.** `kinds` picks events, alerts or both; `query` is a search filter (the same
//!   language and the same answers as search, via [`crowsnest_store::Matcher`]); pipes are refused.
//! * **Retry.** Connection errors, timeouts, 429 and 5xx are retried with exponential backoff and
//!   jitter (honouring `Retry-After`). A request refused for its content (400) is split in halves
//!   until the refused events are isolated; those are dropped and counted as `rejected`, so one bad
//!   event cannot block an output. Refusals of the credentials or the address (401/403/404) are
//!   retried like outages: they are configuration errors the operator fixes, and the data waits.
//! * A new output starts at the end of the log: it forwards what arrives after it was added.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use crowsnest_model::{ecs, record, Event};
use crowsnest_output::{Backoff, Kinds, OutputConfig, Sink, SinkError};
use crowsnest_store::Matcher;
use crowsnest_wal::WalTail;
use serde::Serialize;

use crate::metrics::Metrics;

/// How often an idle output looks for new records.
const POLL: Duration = Duration::from_millis(100);

/// What the API shows about one output; shared between its thread and the server.
#[derive(Debug)]
pub struct OutputStatus {
    /// The output's name.
    pub name: String,
    /// The destination type (`elasticsearch`, `splunk_hec`, ...).
    pub kind: String,
    /// One past the last position delivered (or filtered out); `u64::MAX` before it started.
    next: AtomicU64,
    max_buffer_bytes: u64,
    over_budget: AtomicBool,
    delivered: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
    last_delivery: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

/// One output as `GET /api/v1/outputs` lists it.
#[derive(Debug, Serialize)]
pub struct OutputReport {
    /// The output's name.
    pub name: String,
    /// The destination type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The next WAL position it will deliver.
    pub position: u64,
    /// Acknowledged events it has not delivered yet.
    pub lag_events: u64,
    /// Events delivered since the server started.
    pub delivered: u64,
    /// Events the destination refused for their content (dropped).
    pub rejected: u64,
    /// Events skipped because the output fell more than `max_buffer_bytes` behind.
    pub dropped: u64,
    /// The last delivery error, cleared by the next success.
    pub last_error: Option<String>,
    /// When a batch was last delivered.
    pub last_delivery: Option<chrono::DateTime<chrono::Utc>>,
}

impl OutputStatus {
    /// The WAL position this output still needs (truncation keeps it), or `None` when the output
    /// may be ignored: not started, or further behind than its buffer allows.
    pub(crate) fn holds(&self, wal: &crowsnest_wal::Wal) -> Option<u64> {
        let next = self.next.load(Ordering::SeqCst);
        if next == u64::MAX {
            return None;
        }
        let held = wal.bytes_from(next);
        let over = held > self.max_buffer_bytes;
        // Said when it starts, not at every truncation.
        if over && !self.over_budget.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                output = %self.name,
                held_bytes = held,
                max_buffer_bytes = self.max_buffer_bytes,
                "output is further behind than its buffer allows; its oldest events will be dropped"
            );
        } else if !over {
            self.over_budget.store(false, Ordering::Relaxed);
        }
        (!over).then_some(next)
    }

    /// A snapshot for the API.
    pub fn report(&self, acked_next: u64) -> OutputReport {
        let position = self.next.load(Ordering::SeqCst);
        OutputReport {
            name: self.name.clone(),
            kind: self.kind.clone(),
            position,
            lag_events: acked_next.saturating_sub(position),
            delivered: self.delivered.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
            last_delivery: *lock(&self.last_delivery),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Which events an output takes.
struct Selection {
    kinds: Kinds,
    matcher: Option<Matcher>,
}

impl Selection {
    fn new(config: &OutputConfig) -> anyhow::Result<Self> {
        let matcher = match config.query.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let query = crowsnest_query::parse(text)
                    .map_err(|e| anyhow::anyhow!("output `{}`: query: {e}", config.name))?;
                anyhow::ensure!(
                    query.pipes.is_empty(),
                    "output `{}`: query `{text}` has pipes; an output takes a filter only",
                    config.name
                );
                Some(
                    Matcher::new(&query.filter)
                        .map_err(|e| anyhow::anyhow!("output `{}`: query: {e}", config.name))?,
                )
            }
        };
        Ok(Self {
            kinds: config.kinds,
            matcher,
        })
    }

    fn wants(&self, event: &Event) -> bool {
        self.kinds.admits(event) && self.matcher.as_ref().is_none_or(|m| m.matches(event))
    }
}

/// One output's thread state.
pub struct OutputWorker {
    config: OutputConfig,
    sink: Box<dyn Sink>,
    selection: Selection,
    tail: Option<WalTail>,
    /// The saved position, until [`OutputWorker::begin`].
    cursor: Option<u64>,
    cursor_path: PathBuf,
    status: Arc<OutputStatus>,
    backoff: Backoff,
    saved: Instant,
    warned: Option<Instant>,
}

/// The cursor file of an output.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    next: u64,
}

impl OutputWorker {
    /// Checks the configuration, builds the sink and reads the output's cursor. The output
    /// starts reading when the pipeline has opened the log ([`OutputWorker::begin`]).
    pub fn open(config: OutputConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let selection = Selection::new(&config)?;
        let sink = crowsnest_output::build(&config)
            .with_context(|| format!("output `{}`", config.name))?;
        let dir = data_dir.join("outputs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
        let cursor_path = dir.join(format!("{}.cursor", config.name));
        let cursor = match std::fs::read(&cursor_path) {
            Ok(bytes) => Some(
                serde_json::from_slice::<Cursor>(&bytes)
                    .with_context(|| format!("reading `{}`", cursor_path.display()))?
                    .next,
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error).with_context(|| format!("reading `{}`", cursor_path.display()))
            }
        };
        let status = Arc::new(OutputStatus {
            name: config.name.clone(),
            kind: config.sink.kind().to_string(),
            next: AtomicU64::new(u64::MAX),
            max_buffer_bytes: config.max_buffer_bytes,
            over_budget: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
            last_delivery: Mutex::new(None),
        });
        let backoff = crowsnest_output::backoff::from_config(&config);
        Ok(Self {
            tail: None,
            cursor,
            config,
            sink,
            selection,
            cursor_path,
            status,
            backoff,
            saved: Instant::now(),
            warned: None,
        })
    }

    /// Places the output in the log opened in `wal_dir`: at its saved cursor, or at `wal_next`
    /// (the end of the log) when it is new. Call before the log is first truncated.
    pub(crate) fn begin(&mut self, wal_dir: &Path, wal_next: u64) {
        let next = self.cursor.map_or(wal_next, |c| c.min(wal_next));
        self.status.next.store(next, Ordering::SeqCst);
        self.tail = Some(WalTail::new(wal_dir, next));
        if self.cursor != Some(next) {
            // A new output: its starting point must survive a crash before its first delivery,
            // or a restart would start it again at the (later) end of the log.
            self.save_cursor();
        }
    }

    /// The status shared with the API and the WAL truncation.
    pub fn status(&self) -> Arc<OutputStatus> {
        self.status.clone()
    }

    /// Delivers until `stop` is set, then makes one last attempt at a batch of what is
    /// acknowledged and saves the cursor.
    pub(crate) fn run(mut self, acked_next: &AtomicU64, stop: &AtomicBool, metrics: &Metrics) {
        let Some(mut tail) = self.tail.take() else {
            tracing::error!(output = %self.config.name, "output started before the log was opened");
            return;
        };
        let name = self.config.name.clone();
        let max_events = self.config.batch_max_events.max(1);
        let max_bytes = self.config.batch_max_bytes.max(1);
        let flush = Duration::from_millis(self.config.flush_interval_ms);
        let mut batch: Vec<Event> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut oldest: Option<Instant> = None;
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            let until = acked_next.load(Ordering::SeqCst);
            let room = max_events - batch.len();
            let selection = &self.selection;
            let mut filtered = 0u64;
            let mut undecodable = 0u64;
            let read = tail.read(
                until,
                room,
                max_bytes.saturating_sub(batch_bytes),
                |_, payload| match record::decode(&payload) {
                    Ok(event) if selection.wants(&event) => {
                        batch_bytes += payload.len();
                        batch.push(event);
                    }
                    Ok(_) => filtered += 1,
                    Err(_) => undecodable += 1,
                },
            );
            let read = match read {
                Ok(read) => read,
                Err(error) => {
                    self.fail(&format!("reading the wal: {error}"));
                    if sleep_unless(stop, self.backoff.next_delay(None)) {
                        break;
                    }
                    continue;
                }
            };
            if read.skipped > 0 {
                tracing::warn!(output = %name, skipped = read.skipped, "events were dropped: the output fell further behind than max_buffer_bytes");
                self.status
                    .dropped
                    .fetch_add(read.skipped, Ordering::Relaxed);
                metrics.output_events(&name, "dropped").inc_by(read.skipped);
            }
            metrics.output_events(&name, "filtered").inc_by(filtered);
            if undecodable > 0 {
                tracing::error!(output = %name, undecodable, "wal records that are not events were skipped");
            }
            if !batch.is_empty() && oldest.is_none() {
                oldest = Some(Instant::now());
            }
            let caught_up = tail.next_position() >= until;
            let full = batch.len() >= max_events || batch_bytes >= max_bytes;
            let due = oldest.is_some_and(|t| t.elapsed() >= flush);
            if !batch.is_empty() && (full || due || caught_up || stopping) {
                if !self.deliver(&batch, stop, metrics) {
                    // Stopping with the batch undelivered: the cursor stays before it.
                    break;
                }
                batch.clear();
                batch_bytes = 0;
                oldest = None;
            }
            if batch.is_empty() {
                self.advance(tail.next_position());
            }
            metrics.output_lag(&name).set(
                i64::try_from(until.saturating_sub(self.status.next.load(Ordering::SeqCst)))
                    .unwrap_or(i64::MAX),
            );
            if stopping {
                // One last read and one attempt after the stop; what is left stays in the WAL
                // for the next start, so a long backlog does not hold up the shutdown.
                break;
            }
            if caught_up {
                // When woken by stop, the next round takes what was acknowledged meanwhile.
                sleep_unless(stop, POLL);
            }
        }
        self.save_cursor();
    }

    /// Sends `batch` until it is delivered; false when stopping first.
    fn deliver(&mut self, batch: &[Event], stop: &AtomicBool, metrics: &Metrics) -> bool {
        let name = self.config.name.clone();
        loop {
            match self.send_isolating(batch, metrics) {
                Ok(()) => {
                    self.backoff.reset();
                    *lock(&self.status.last_error) = None;
                    *lock(&self.status.last_delivery) = Some(chrono::Utc::now());
                    metrics.output_up(&name).set(1);
                    return true;
                }
                Err(error) => {
                    metrics.output_up(&name).set(0);
                    metrics.output_retries(&name).inc();
                    self.fail(&error.to_string());
                    let delay = self.backoff.next_delay(error.retry_after());
                    if stop.load(Ordering::SeqCst) || sleep_unless(stop, delay) {
                        return false;
                    }
                }
            }
        }
    }

    /// Sends `batch`; a content refusal splits it until the refused events are isolated and
    /// dropped. Returns the error to retry on.
    fn send_isolating(&mut self, batch: &[Event], metrics: &Metrics) -> Result<(), SinkError> {
        let name = &self.config.name;
        match self.sink.send(batch) {
            Ok(delivery) => {
                for (index, reason) in &delivery.rejected {
                    tracing::warn!(output = %name, event_id = batch.get(*index).and_then(|e| e.get_str(ecs::EVENT_ID)).unwrap_or("?"), %reason, "destination refused an event; dropped");
                }
                let rejected = (delivery.rejected.len() + delivery.rejected_unattributed) as u64;
                let delivered = delivery.delivered as u64;
                self.status
                    .delivered
                    .fetch_add(delivered, Ordering::Relaxed);
                self.status.rejected.fetch_add(rejected, Ordering::Relaxed);
                metrics.output_events(name, "delivered").inc_by(delivered);
                metrics.output_events(name, "rejected").inc_by(rejected);
                Ok(())
            }
            Err(SinkError::Rejected(reason)) if batch.len() > 1 => {
                tracing::debug!(output = %name, %reason, events = batch.len(), "batch refused; splitting it");
                let (left, right) = batch.split_at(batch.len() / 2);
                self.send_isolating(left, metrics)?;
                self.send_isolating(right, metrics)
            }
            Err(SinkError::Rejected(reason)) => {
                tracing::warn!(output = %name, event_id = batch[0].get_str(ecs::EVENT_ID).unwrap_or("?"), %reason, "destination refused an event; dropped");
                self.status.rejected.fetch_add(1, Ordering::Relaxed);
                metrics.output_events(name, "rejected").inc();
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    fn fail(&mut self, message: &str) {
        // Say it when it starts, when it changes, and then once a minute; not at every retry.
        let mut last = lock(&self.status.last_error);
        let changed = last.as_deref() != Some(message);
        if changed
            || self
                .warned
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(output = %self.config.name, error = message, "output delivery failed; will retry");
            self.warned = Some(Instant::now());
        }
        *last = Some(message.to_string());
    }

    fn advance(&mut self, next: u64) {
        let previous = self.status.next.swap(next, Ordering::SeqCst);
        // Saving about once a second is enough: a stale cursor only re-sends (at-least-once).
        if next != previous && self.saved.elapsed() >= Duration::from_secs(1) {
            self.save_cursor();
        }
    }

    fn save_cursor(&mut self) {
        self.saved = Instant::now();
        let next = self.status.next.load(Ordering::SeqCst);
        let result = serde_json::to_vec(&Cursor { next })
            .map_err(std::io::Error::other)
            .and_then(|bytes| crowsnest_util::write_atomic(&self.cursor_path, &bytes));
        if let Err(error) = result {
            tracing::warn!(output = %self.config.name, %error, "saving the output cursor failed");
        }
    }
}

/// Sleeps up to `delay` in short steps; true when `stop` was set.
fn sleep_unless(stop: &AtomicBool, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    loop {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowsnest_output::Delivery;

    /// Refuses (for its content) any batch holding an event whose message is `poison`, and
    /// refuses the credentials while `locked` is set.
    struct Picky {
        delivered: Arc<Mutex<Vec<String>>>,
        locked: Arc<AtomicBool>,
    }

    impl Sink for Picky {
        fn send(&mut self, batch: &[Event]) -> Result<Delivery, SinkError> {
            if self.locked.load(Ordering::SeqCst) {
                return Err(SinkError::Permanent("HTTP 401: bad token".into()));
            }
            let messages: Vec<String> = batch
                .iter()
                .map(|e| e.get_str(ecs::MESSAGE).unwrap_or_default().to_string())
                .collect();
            if messages.iter().any(|m| m == "poison") {
                return Err(SinkError::Rejected("HTTP 400: mapping error".into()));
            }
            lock(&self.delivered).extend(messages);
            Ok(Delivery::all(batch.len()))
        }
    }

    fn worker(dir: &Path, query: Option<&str>, sink: Picky) -> OutputWorker {
        let config: OutputConfig = toml::from_str(&format!(
            "name = \"t\"\n{}type = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nretry_initial_ms = 10\nretry_max_ms = 20\n",
            query.map(|q| format!("query = '{q}'\n")).unwrap_or_default()
        ))
        .expect("config");
        let mut worker = OutputWorker::open(config, dir).expect("open");
        worker.sink = Box::new(sink);
        worker
    }

    fn event(message: &str) -> Event {
        let mut event = Event::new();
        event.set(ecs::MESSAGE, message.into());
        event.set(ecs::EVENT_ID, format!("id-{message}").into());
        event
    }

    #[test]
    fn a_refused_event_is_isolated_and_only_it_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let sink = Picky {
            delivered: delivered.clone(),
            locked: Arc::new(AtomicBool::new(false)),
        };
        let mut worker = worker(dir.path(), None, sink);
        let metrics = Metrics::new();
        let batch: Vec<Event> = ["a", "b", "poison", "c", "d", "e", "f"]
            .into_iter()
            .map(event)
            .collect();
        let stop = AtomicBool::new(false);
        assert!(worker.deliver(&batch, &stop, &metrics));
        assert_eq!(*lock(&delivered), ["a", "b", "c", "d", "e", "f"]);
        let report = worker.status.report(0);
        assert_eq!((report.delivered, report.rejected), (6, 1));
    }

    #[test]
    fn refused_credentials_are_retried_not_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let locked = Arc::new(AtomicBool::new(true));
        let sink = Picky {
            delivered: delivered.clone(),
            locked: locked.clone(),
        };
        let mut worker = worker(dir.path(), None, sink);
        let metrics = Metrics::new();
        let batch = vec![event("a"), event("b")];
        let unlock = {
            let locked = locked.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                locked.store(false, Ordering::SeqCst);
            })
        };
        let stop = AtomicBool::new(false);
        assert!(worker.deliver(&batch, &stop, &metrics));
        unlock.join().expect("unlock");
        assert_eq!(*lock(&delivered), ["a", "b"]);
        let report = worker.status.report(0);
        assert_eq!((report.delivered, report.rejected), (2, 0));
        assert!(metrics.output_retries("t").get() >= 1);
    }

    #[test]
    fn the_query_and_kinds_select_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = Picky {
            delivered: Arc::new(Mutex::new(Vec::new())),
            locked: Arc::new(AtomicBool::new(false)),
        };
        let worker = worker(dir.path(), Some("message:keep*"), sink);
        assert!(worker.selection.wants(&event("keep-me")));
        assert!(!worker.selection.wants(&event("drop-me")));
        let config: OutputConfig = toml::from_str(
            "name = \"x\"\nquery = 'a | stats count()'\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n",
        )
        .expect("config");
        let error = OutputWorker::open(config, dir.path())
            .err()
            .expect("pipes are refused");
        assert!(error.to_string().contains("pipes"), "{error}");
    }
}
