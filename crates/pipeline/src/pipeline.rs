//! The durable ingest pipeline: group-committing WAL writer, then the indexer.
//!
//! * [`Pipeline::submit`] hands a decoded batch to the WAL writer through a bounded queue whose
//!   budget is counted in bytes; when the budget is spent the caller gets
//!   [`SubmitError::Busy`] at once (the API answers 503 with `Retry-After`) instead of buffering.
//! * The WAL writer thread takes every batch waiting, appends them with one write and one
//!   `fdatasync`, and only then acknowledges each batch with its positions.
//! * The indexer thread adds acknowledged events to the store and commits at most every
//!   `commit_interval_ms` (or `commit_max_events`); after a commit the WAL is truncated behind
//!   the store's durable position. Its in-memory queue is bounded: when it is full, the writer
//!   leaves the batch in the WAL (acknowledged, and handed to detection as usual) and the
//!   indexer reads it back from the WAL when it reaches that position. A burst above the
//!   indexing rate is so absorbed on disk; search falls behind for a while, detection does not.
//!   Past `max_index_lag_bytes` of WAL not yet in the store, the writer waits for the indexer,
//!   which fills the submit queue, which pushes back on clients.
//! * On start, everything left in the WAL is replayed into the store; the store skips positions
//!   it already committed, so a crash at any point loses no acknowledged event and duplicates
//!   none.
//! * A failed store `add` or `commit` (a full disk) never lets a later commit record lost
//!   events as durable: the indexer rolls the store back ([`Store::abort`]), rewinds to the
//!   last durable position and reads the events back from the WAL, retrying with backoff until
//!   it succeeds; health reports the failure meanwhile. Below the free-space watermark
//!   ([`PipelineConfig::min_free_bytes`]) the WAL writer refuses new batches
//!   ([`SubmitError::DiskFull`]: 507 with `Retry-After`) until space returns, so nothing is
//!   acknowledged that is not in the WAL, and everything acknowledged becomes searchable once
//!   the store can commit again, without a restart.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crowsnest_model::{ecs, record, Event};
use crowsnest_store::Store;
use crowsnest_wal::{Wal, WalConfig, WalTail};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::disk::{is_out_of_space, Disk};
pub use crate::handoff::SubmitError;
use crate::handoff::{Acked, Batch, DetectBatch, Refused, Submitter};
use crate::metrics::Metrics;

/// Pipeline tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Bytes of decoded batches that may wait for the WAL and the indexer together (256 MiB).
    /// Past this, ingest requests get 503 with `Retry-After`.
    pub max_queued_bytes: usize,
    /// Batches the indexer queue holds in memory. Past it, acknowledged batches are not queued:
    /// the indexer reads them back from the WAL when it gets there (a burst above the indexing
    /// rate is absorbed on disk, not in memory, and detection is not held up by indexing).
    pub index_queue_batches: usize,
    /// WAL bytes not yet in the store past which the WAL writer waits for the indexer instead
    /// of leaving batches in the WAL for it (1 GiB): how far search may fall behind ingest.
    pub max_index_lag_bytes: u64,
    /// Most events one WAL group commit takes.
    pub max_group_events: usize,
    /// Longest time between store commits (how fresh search is), in milliseconds.
    pub commit_interval_ms: u64,
    /// Commit early once this many events are waiting.
    pub commit_max_events: usize,
    /// WAL segment size in bytes.
    pub wal_segment_bytes: u64,
    /// fsync each WAL batch (leave on; off only to measure its cost).
    pub fsync: bool,
    /// Seconds clients are told to wait when the pipeline is saturated.
    pub retry_after_secs: u64,
    /// Free bytes on the data disk below which ingest is refused (507 with `Retry-After`)
    /// until space returns. Unset: 5 % of the filesystem, at most 1 GiB.
    pub min_free_bytes: Option<u64>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_queued_bytes: 256 * 1024 * 1024,
            index_queue_batches: 64,
            max_index_lag_bytes: 1 << 30,
            max_group_events: 50_000,
            commit_interval_ms: 1_000,
            commit_max_events: 200_000,
            wal_segment_bytes: 64 * 1024 * 1024,
            fsync: true,
            retry_after_secs: 1,
            min_free_bytes: None,
        }
    }
}

/// What [`Pipeline::submit_as`] does when the queue budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Refuse at once with [`SubmitError::Busy`].
    FailFast,
    /// Wait until the queue has room.
    Wait,
}

/// Something that keeps the server from working normally, as health reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What is affected: `disk`, `store`, `indexer`, `detector` or `output:<name>`.
    pub component: String,
    /// What is wrong, and what the server does about it.
    pub message: String,
    /// Since when.
    pub since: chrono::DateTime<chrono::Utc>,
}

/// Failures the threads report for health.
#[derive(Default)]
struct Faults {
    /// The store's last failure, while it lasts.
    store: Mutex<Option<Problem>>,
    /// Set when the indexer or the detector thread ended outside a shutdown.
    indexer_stopped: std::sync::atomic::AtomicBool,
    detector_stopped: std::sync::atomic::AtomicBool,
    shutting_down: std::sync::atomic::AtomicBool,
}

struct IndexBatch {
    events: Acked,
    /// The events' WAL records ([`crowsnest_model::record`]): the store keeps their JSON.
    records: Vec<Vec<u8>>,
    /// Its share of the queue budget, given back when the batch is dropped.
    permit: OwnedSemaphorePermit,
}

/// Positions shared between the threads and the API.
#[derive(Default)]
struct Progress {
    /// One past the last acknowledged position.
    acked_next: AtomicU64,
    /// One past the last position durable in the store.
    committed_next: AtomicU64,
    /// One past the last position whose detection state is checkpointed (`u64::MAX` without
    /// detection). The WAL is never truncated past it, so a restart can re-run detection.
    detected_next: AtomicU64,
    /// The forwarding outputs: the WAL is not truncated past what they still need.
    outputs: Vec<Arc<crate::outputs::OutputStatus>>,
    /// WAL size and segment count, kept here so health and metrics never wait on the WAL lock
    /// (held across fsync).
    wal_bytes: AtomicU64,
    wal_segments: AtomicU64,
    faults: Faults,
}

/// The running pipeline.
pub struct Pipeline {
    config: PipelineConfig,
    tx: Mutex<Option<mpsc::Sender<Batch>>>,
    budget: Arc<Semaphore>,
    progress: Arc<Progress>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Output threads, stopped after the others have drained.
    output_threads: Mutex<Vec<JoinHandle<()>>>,
    stop_outputs: Arc<std::sync::atomic::AtomicBool>,
    metrics: Arc<Metrics>,
    disk: Arc<Disk>,
    stop_disk: Arc<std::sync::atomic::AtomicBool>,
    disk_thread: Mutex<Option<JoinHandle<()>>>,
    /// The store's settings (the ingest-time window [`crate::submit`] flags events by).
    store_config: crowsnest_store::StoreConfig,
    /// The user-defined mappings every input's events go through (`[[mappings]]`).
    mappings: Arc<crowsnest_mapping::Mappings>,
}

impl Pipeline {
    /// Opens the WAL, replays it into the store (and into detection, from its checkpoint) and
    /// starts the writer, indexer and detector threads. Blocking: call from a blocking context.
    pub fn start(
        wal_dir: &Path,
        store: Arc<Store>,
        config: PipelineConfig,
        metrics: Arc<Metrics>,
        detection: Option<crate::detection::Worker>,
        dedup: Arc<crate::dedup::Dedup>,
        outputs: Vec<crate::outputs::OutputWorker>,
    ) -> anyhow::Result<Self> {
        let min_next = store.committed_position().map_or(0, |p| p + 1);
        let wal_config = WalConfig {
            segment_bytes: config.wal_segment_bytes,
            fsync: config.fsync,
        };
        let (mut wal, report) = Wal::open(wal_dir, wal_config, min_next)
            .with_context(|| format!("opening the wal in `{}`", wal_dir.display()))?;
        if let Some(chain) = store.chain() {
            wal.set_chain(chain.clone())
                .context("hashing the active wal segment for the integrity chain")?;
        }
        if report.torn_bytes_dropped > 0 {
            tracing::warn!(
                bytes = report.torn_bytes_dropped,
                "dropped an unacknowledged torn wal tail"
            );
        }
        let store_config = store.config().clone();
        let disk = Arc::new(Disk::new(
            vec![wal_dir.to_path_buf(), store.dir().to_path_buf()],
            config.min_free_bytes,
        ));
        let mut detection = detection;
        let (replayed, store_failure) = replay(&wal, &store, detection.as_mut(), &dedup)?;
        // A store that cannot take the replay (a full disk) does not keep the server from
        // starting: the events stay in the WAL and the indexer retries them.
        let committed = match store_failure {
            Some(error) => Err(error),
            None => store
                .commit()
                .map_err(|e| anyhow::Error::new(e).context("committing the replayed events")),
        };
        let mut outputs = outputs;
        for output in &mut outputs {
            output.begin(wal_dir, wal.next_position());
        }
        let progress = Arc::new(Progress {
            outputs: outputs
                .iter()
                .map(crate::outputs::OutputWorker::status)
                .collect(),
            ..Progress::default()
        });
        let detected_next = detection
            .as_ref()
            .map_or(u64::MAX, crate::detection::Worker::checkpointed_next);
        progress
            .detected_next
            .store(detected_next, Ordering::SeqCst);
        let next = wal.next_position();
        let committed_next = match committed {
            Ok(committed) => {
                if let Some(position) = committed.filter(|_| dedup.persisted()) {
                    truncate(&mut wal, position, &progress)?;
                }
                next
            }
            Err(error) => {
                if is_out_of_space(error.as_ref()) {
                    disk.write_failed();
                }
                disk.set_caught_up(false);
                let durable = store.abort();
                progress.faults.report_store(&error);
                durable.map_or(0, |p| p + 1)
            }
        };
        progress.acked_next.store(next, Ordering::SeqCst);
        progress
            .committed_next
            .store(committed_next, Ordering::SeqCst);
        progress.record_wal(&wal);
        tracing::info!(
            replayed,
            next_position = next,
            searchable_through = committed_next,
            "wal replayed into the store"
        );
        let wal = Arc::new(Mutex::new(wal));

        let (tx, rx) = mpsc::channel::<Batch>(1024);
        let budget = Arc::new(Semaphore::new(
            config.max_queued_bytes.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let (index_tx, index_rx) = sync_channel::<IndexBatch>(config.index_queue_batches.max(1));
        let mut threads = Vec::new();
        let detect_tx = match detection {
            Some(worker) => {
                let (detect_tx, detect_rx) =
                    sync_channel::<DetectBatch>(config.index_queue_batches.max(1));
                let submitter = Submitter {
                    tx: tx.downgrade(),
                    budget: budget.clone(),
                    disk: disk.clone(),
                };
                let progress = progress.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name("crowsnest-detect".into())
                        .spawn(move || {
                            worker.run(detect_rx, &submitter, &progress.detected_next);
                            progress.faults.stopped(&progress.faults.detector_stopped);
                        })
                        .context("spawning the detector")?,
                );
                Some(detect_tx)
            }
            None => None,
        };
        let writer = {
            let (wal, progress, metrics, max, max_lag) = (
                wal.clone(),
                progress.clone(),
                metrics.clone(),
                config.max_group_events,
                config.max_index_lag_bytes,
            );
            let outputs = Outputs {
                index: index_tx,
                detect: detect_tx,
            };
            let disk = disk.clone();
            std::thread::Builder::new()
                .name("crowsnest-wal".into())
                .spawn(move || {
                    let writer = Writer {
                        wal: &wal,
                        progress: &progress,
                        metrics: &metrics,
                        disk: &disk,
                        max_group_events: max,
                        max_index_lag_bytes: max_lag,
                    };
                    writer.run(rx, outputs);
                })
                .context("spawning the wal writer")?
        };
        let indexer = {
            let (wal, progress, metrics, config) = (
                wal.clone(),
                progress.clone(),
                metrics.clone(),
                config.clone(),
            );
            let indexer = Indexer {
                store,
                wal,
                wal_dir: wal_dir.to_path_buf(),
                progress,
                metrics,
                dedup,
                disk: disk.clone(),
            };
            std::thread::Builder::new()
                .name("crowsnest-indexer".into())
                .spawn(move || {
                    indexer.run(index_rx, &config);
                    let faults = &indexer.progress.faults;
                    faults.stopped(&faults.indexer_stopped);
                })
                .context("spawning the indexer")?
        };
        let stop_outputs = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut output_threads = Vec::new();
        for output in outputs {
            let (progress, stop, metrics) =
                (progress.clone(), stop_outputs.clone(), metrics.clone());
            output_threads.push(
                std::thread::Builder::new()
                    .name("crowsnest-output".into())
                    .spawn(move || output.run(&progress.acked_next, &stop, &metrics))
                    .context("spawning an output")?,
            );
        }
        // Join order matters at shutdown: the writer drains and closes the indexer's and the
        // detector's queues, the indexer commits, the detector checkpoints.
        threads.insert(0, indexer);
        threads.insert(0, writer);
        let stop_disk = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let disk_thread = {
            let (disk, stop) = (disk.clone(), stop_disk.clone());
            std::thread::Builder::new()
                .name("crowsnest-disk".into())
                .spawn(move || disk.watch(&stop))
                .context("spawning the disk monitor")?
        };
        Ok(Self {
            config,
            tx: Mutex::new(Some(tx)),
            budget,
            progress,
            threads: Mutex::new(threads),
            output_threads: Mutex::new(output_threads),
            stop_outputs,
            metrics,
            disk,
            stop_disk,
            disk_thread: Mutex::new(Some(disk_thread)),
            store_config,
            mappings: Arc::default(),
        })
    }

    /// Sets the user-defined mappings (`[[mappings]]`) every input's events go through before
    /// they are stamped and written to the WAL.
    #[must_use]
    pub fn with_mappings(mut self, mappings: Arc<crowsnest_mapping::Mappings>) -> Self {
        self.mappings = mappings;
        self
    }

    /// The user-defined mappings.
    pub fn mappings(&self) -> &Arc<crowsnest_mapping::Mappings> {
        &self.mappings
    }

    /// Makes a batch durable. Returns its WAL positions once fsync'd; fails fast with
    /// [`SubmitError::Busy`] when the queue budget is spent.
    pub async fn submit(
        &self,
        events: Vec<Event>,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Range<u64>, SubmitError> {
        self.submit_as(events, payloads, Admission::FailFast).await
    }

    /// Like [`Pipeline::submit`], choosing what happens when the queue budget is spent: fail
    /// at once (HTTP: the client retries) or wait for room (stream listeners: waiting stops
    /// reading the socket, which pushes back on the sender through TCP).
    pub async fn submit_as(
        &self,
        events: Vec<Event>,
        payloads: Vec<Vec<u8>>,
        admission: Admission,
    ) -> Result<Range<u64>, SubmitError> {
        let (mut events, mut payloads) = (events, payloads);
        loop {
            match self.submit_once(events, payloads, admission).await {
                // A stream listener cannot refuse its sender: its batch came back; wait for
                // space and submit it again (the wait below stops it reading its socket).
                Err(Failed::DiskFull(back, records)) if admission == Admission::Wait => {
                    (events, payloads) = (back, records);
                }
                Err(Failed::DiskFull(..)) => {
                    return Err(SubmitError::DiskFull(self.config.retry_after_secs))
                }
                Err(Failed::Other(error)) => return Err(error),
                Ok(range) => return Ok(range),
            }
        }
    }

    /// One attempt of [`Pipeline::submit_as`]; a batch refused for a full disk comes back.
    async fn submit_once(
        &self,
        events: Vec<Event>,
        payloads: Vec<Vec<u8>>,
        admission: Admission,
    ) -> Result<Range<u64>, Failed> {
        debug_assert_eq!(events.len(), payloads.len());
        // Below the free-space watermark nothing is taken in: refuse at once, or (stream
        // listeners) wait, which stops reading the socket until space returns.
        while self.disk.is_full() {
            self.metrics.refused_disk_full.inc();
            if admission == Admission::FailFast {
                return Err(Failed::DiskFull(events, payloads));
            }
            if self.is_closed() {
                return Err(Failed::Other(SubmitError::Closed));
            }
            tokio::time::sleep(crate::disk::WATCH_INTERVAL).await;
        }
        let cost = queued_cost(&events, &payloads);
        let cost = u32::try_from(cost.min(self.config.max_queued_bytes.max(1))).unwrap_or(u32::MAX);
        let permit = match self.budget.clone().try_acquire_many_owned(cost) {
            Ok(permit) => permit,
            Err(_) if admission == Admission::Wait => {
                self.metrics.throttled.inc();
                self.budget
                    .clone()
                    .acquire_many_owned(cost)
                    .await
                    .map_err(|_| Failed::Other(SubmitError::Closed))?
            }
            Err(_) => {
                self.metrics.throttled.inc();
                return Err(Failed::Other(SubmitError::Busy(
                    self.config.retry_after_secs,
                )));
            }
        };
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(Failed::Other(SubmitError::Closed))?;
        let (reply, answer) = oneshot::channel();
        tx.send(Batch {
            events,
            payloads,
            permit,
            reply,
            derived: false,
        })
        .await
        .map_err(|_| Failed::Other(SubmitError::Closed))?;
        self.metrics
            .wal_queue_depth
            .set(tx.max_capacity() as i64 - tx.capacity() as i64);
        match answer.await {
            Ok(Ok(range)) => Ok(range),
            Ok(Err(Refused::DiskFull(events, payloads))) => {
                self.metrics.refused_disk_full.inc();
                Err(Failed::DiskFull(events, payloads))
            }
            Ok(Err(Refused::Wal(message))) => Err(Failed::Other(SubmitError::Wal(message))),
            Err(_) => Err(Failed::Other(SubmitError::Closed)),
        }
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store's settings.
    pub fn store_config(&self) -> &crowsnest_store::StoreConfig {
        &self.store_config
    }

    fn is_closed(&self) -> bool {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none()
    }

    /// The data disk's free space and watermark.
    pub fn disk(&self) -> crate::disk::DiskStatus {
        self.disk.status()
    }

    /// What keeps the pipeline from working normally (empty when all is well): a full disk,
    /// failing store commits, a stopped indexer or detector, failing or lagging outputs.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let disk = self.disk.status();
        if disk.full {
            problems.push(Problem {
                component: "disk".into(),
                message: format!(
                    "{} bytes free on the data disk, below the watermark of {} bytes: ingest is refused with Retry-After until space returns",
                    disk.free_bytes, disk.watermark_bytes
                ),
                since: disk.since.unwrap_or_else(chrono::Utc::now),
            });
        }
        let faults = &self.progress.faults;
        if let Some(problem) = faults
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            problems.push(problem);
        }
        let now = chrono::Utc::now();
        if faults.indexer_stopped.load(Ordering::SeqCst) {
            problems.push(Problem {
                component: "indexer".into(),
                message: "the indexer stopped: new events are durable in the WAL but not searchable until a restart".into(),
                since: now,
            });
        }
        if faults.detector_stopped.load(Ordering::SeqCst) {
            problems.push(Problem {
                component: "detector".into(),
                message: "the detector stopped: no alerts until a restart (which re-runs detection from its checkpoint)".into(),
                since: now,
            });
        }
        for output in self.outputs() {
            if let Some(error) = &output.last_error {
                problems.push(Problem {
                    component: format!("output:{}", output.name),
                    message: format!(
                        "delivery failing ({} events behind): {error}",
                        output.lag_events
                    ),
                    since: output.last_delivery.unwrap_or(now),
                });
            }
        }
        problems
    }

    /// Takes the whole queue budget, as a flood of batches would, until the permit is dropped
    /// (for tests of back-pressure: ingest then answers 503).
    pub fn exhaust_budget(&self) -> Option<OwnedSemaphorePermit> {
        let available = u32::try_from(self.budget.available_permits()).ok()?;
        self.budget.clone().try_acquire_many_owned(available).ok()
    }

    /// One past the last acknowledged WAL position.
    pub fn acked_next(&self) -> u64 {
        self.progress.acked_next.load(Ordering::SeqCst)
    }

    /// One past the last position that is searchable and durable in the store.
    pub fn committed_next(&self) -> u64 {
        self.progress.committed_next.load(Ordering::SeqCst)
    }

    /// WAL size in bytes and segment count, as of the last append or truncation (never waits
    /// for the WAL, whose lock is held across fsync).
    pub fn wal_usage(&self) -> (u64, usize) {
        (
            self.progress.wal_bytes.load(Ordering::SeqCst),
            usize::try_from(self.progress.wal_segments.load(Ordering::SeqCst)).unwrap_or(0),
        )
    }

    /// Stops taking batches, drains both queues, commits the store. Blocking.
    pub fn shutdown(&self) -> anyhow::Result<()> {
        self.progress
            .faults
            .shutting_down
            .store(true, Ordering::SeqCst);
        self.stop_disk.store(true, Ordering::SeqCst);
        if let Some(thread) = self
            .disk_thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let threads = std::mem::take(
            &mut *self
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for thread in threads {
            if thread.join().is_err() {
                anyhow::bail!("a pipeline thread panicked");
            }
        }
        // Everything acknowledged is in the WAL now: outputs make a last attempt and save
        // their cursors (what they could not deliver is sent after the next start).
        self.stop_outputs.store(true, Ordering::SeqCst);
        let outputs = std::mem::take(
            &mut *self
                .output_threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for thread in outputs {
            if thread.join().is_err() {
                anyhow::bail!("an output thread panicked");
            }
        }
        Ok(())
    }

    /// The forwarding outputs' status.
    pub fn outputs(&self) -> Vec<crate::outputs::OutputReport> {
        let acked = self.acked_next();
        self.progress
            .outputs
            .iter()
            .map(|o| o.report(acked))
            .collect()
    }
}

/// Replays the WAL into detection and the store. A store failure does not stop the replay of
/// detection; it is returned beside the count (the indexer adds those events later).
fn replay(
    wal: &Wal,
    store: &Store,
    mut detection: Option<&mut crate::detection::Worker>,
    dedup: &crate::dedup::Dedup,
) -> anyhow::Result<(u64, Option<anyhow::Error>)> {
    const CHUNK: usize = 5_000;
    let mut chunk: Vec<(u64, Event)> = Vec::with_capacity(CHUNK);
    let mut records: Vec<Vec<u8>> = Vec::with_capacity(CHUNK);
    let mut failed: Option<anyhow::Error> = None;
    let mut undecodable = 0u64;
    let stats = wal.replay(0, |position, payload| {
        match record::decode(&payload) {
            Ok(event) => {
                if let Some(worker) = detection.as_deref_mut() {
                    worker.replay(position, &event);
                }
                dedup.observe(&event);
                if failed.is_none() {
                    chunk.push((position, event));
                    records.push(payload);
                }
            }
            Err(_) => undecodable += 1,
        }
        if chunk.len() >= CHUNK {
            if let Err(error) = store.add_records(&chunk, &records) {
                failed = Some(error.into());
            }
            chunk.clear();
            records.clear();
        }
    })?;
    if failed.is_none() {
        if let Err(error) = store.add_records(&chunk, &records) {
            failed = Some(error.into());
        }
    }
    if undecodable > 0 {
        tracing::error!(undecodable, "wal records that are not events were skipped");
    }
    Ok((
        stats.records,
        failed.map(|e| e.context("replaying the wal into the store")),
    ))
}

/// Why one attempt of [`Pipeline::submit_as`] failed: a full disk hands the batch back.
enum Failed {
    DiskFull(Vec<Event>, Vec<Vec<u8>>),
    Other(SubmitError),
}

/// Memory a batch holds while it waits for the WAL writer, the indexer or the detector, as
/// counted against `max_queued_bytes`: the WAL records, the decoded events (about twice their
/// serialized size, plus a fixed cost per event for the map and its keys) and, for Kubernetes
/// audit events, their many mapped fields. The per-event figures are the decoders' measured
/// ones (`crowsnest_ingest::limits::decode_cost`: 1.7 KB per event, about 9 KB more per audit
/// event), so a queue of small or audit events is not under-counted.
fn queued_cost(events: &[Event], payloads: &[Vec<u8>]) -> usize {
    const EVENT: usize = 2 * 1024;
    const AUDIT_EVENT: usize = 8 * 1024;
    let bytes: usize = payloads.iter().map(|p| p.len() * 3).sum();
    let audit = events
        .iter()
        .filter(|e| e.get_str(ecs::EVENT_DATASET) == Some("kubernetes.audit"))
        .count();
    bytes
        .saturating_add(events.len().saturating_mul(EVENT))
        .saturating_add(audit.saturating_mul(AUDIT_EVENT))
        .max(1)
}

/// Drops the WAL through `position`, but never past what detection has checkpointed or what an
/// output (within its buffer budget) has yet to deliver.
fn truncate(wal: &mut Wal, position: u64, progress: &Progress) -> anyhow::Result<()> {
    let detected_next = progress.detected_next.load(Ordering::SeqCst);
    let mut through = if detected_next == u64::MAX {
        Some(position)
    } else {
        detected_next.checked_sub(1).map(|d| d.min(position))
    };
    for output in &progress.outputs {
        if let Some(next) = output.holds(wal) {
            through = through.and_then(|t| next.checked_sub(1).map(|n| n.min(t)));
        }
    }
    if let Some(through) = through {
        wal.truncate_through(through)
            .context("truncating the wal")?;
    }
    Ok(())
}

/// Where acknowledged events go.
struct Outputs {
    index: SyncSender<IndexBatch>,
    detect: Option<SyncSender<DetectBatch>>,
}

/// The WAL writer thread.
struct Writer<'a> {
    wal: &'a Mutex<Wal>,
    progress: &'a Progress,
    metrics: &'a Metrics,
    disk: &'a Disk,
    max_group_events: usize,
    max_index_lag_bytes: u64,
}

impl Writer<'_> {
    fn run(&self, mut rx: mpsc::Receiver<Batch>, outputs: Outputs) {
        let (progress, metrics) = (self.progress, self.metrics);
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            let mut events = group[0].events.len();
            while events < self.max_group_events {
                match rx.try_recv() {
                    Ok(batch) => {
                        events += batch.events.len();
                        group.push(batch);
                    }
                    Err(_) => break,
                }
            }
            metrics.wal_queue_depth.set(rx.len() as i64);
            if self.disk.refresh_before_append() {
                // Below the watermark: nothing is acknowledged that might not be written, and
                // the store keeps the room it needs to commit what the WAL holds.
                for batch in group {
                    batch.refuse_disk_full();
                }
                continue;
            }
            let (appended, lag_bytes) = {
                let payloads: Vec<&[u8]> = group
                    .iter()
                    .flat_map(|b| b.payloads.iter().map(Vec::as_slice))
                    .collect();
                let mut wal = self
                    .wal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let result = wal.append(&payloads);
                record_wal_usage(metrics, progress, &wal);
                let lag_bytes = wal.bytes_from(progress.committed_next.load(Ordering::SeqCst));
                (result, lag_bytes)
            };
            let range = match appended {
                Ok(range) => range,
                Err(error) => {
                    let full = is_out_of_space(&error);
                    if full {
                        self.disk.write_failed();
                    } else {
                        tracing::error!(%error, "wal append failed; batches refused");
                    }
                    for batch in group {
                        if full {
                            batch.refuse_disk_full();
                        } else {
                            let _ = batch.reply.send(Err(Refused::Wal(error.to_string())));
                        }
                    }
                    continue;
                }
            };
            metrics.wal_fsyncs.inc();
            progress.acked_next.store(range.end, Ordering::SeqCst);
            let mut next = range.start;
            for batch in group {
                let count = batch.events.len() as u64;
                let _ = batch.reply.send(Ok(next..next + count));
                let events: Acked = Arc::new((next..).zip(batch.events).collect());
                next += count;
                let index_batch = IndexBatch {
                    events: events.clone(),
                    records: batch.payloads,
                    permit: batch.permit,
                };
                metrics.index_queue_depth.inc();
                let (queued, spilled_permit) = if lag_bytes > self.max_index_lag_bytes {
                    // Search is far behind: wait for the indexer (clients are pushed back).
                    (outputs.index.send(index_batch).is_ok(), None)
                } else {
                    match outputs.index.try_send(index_batch) {
                        Ok(()) => (true, None),
                        Err(TrySendError::Full(spilled)) => {
                            // Left in the WAL: the indexer reads it back from there.
                            metrics.index_queue_depth.dec();
                            metrics.index_spilled.inc_by(count);
                            (true, Some(spilled.permit))
                        }
                        Err(TrySendError::Disconnected(_)) => (false, None),
                    }
                };
                if !batch.derived {
                    if let Some(detect) = &outputs.detect {
                        let batch = DetectBatch {
                            events,
                            _permit: spilled_permit,
                        };
                        if detect.send(batch).is_err() {
                            tracing::error!("detector stopped; events stay in the wal for replay");
                        }
                    }
                }
                if !queued {
                    tracing::error!(
                        "indexer stopped; acknowledged events stay in the wal for replay"
                    );
                    return;
                }
            }
        }
    }
}

/// Sets the WAL size metrics (after an append or a truncation).
fn record_wal_usage(metrics: &Metrics, progress: &Progress, wal: &Wal) {
    metrics
        .wal_bytes
        .set(i64::try_from(wal.size_bytes()).unwrap_or(i64::MAX));
    metrics.wal_segments.set(wal.segment_count() as i64);
    progress.record_wal(wal);
}

impl Progress {
    fn record_wal(&self, wal: &Wal) {
        self.wal_bytes.store(wal.size_bytes(), Ordering::SeqCst);
        self.wal_segments
            .store(wal.segment_count() as u64, Ordering::SeqCst);
    }
}

impl Faults {
    fn report_store(&self, error: &anyhow::Error) {
        let mut slot = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let since = slot.as_ref().map_or_else(chrono::Utc::now, |p| p.since);
        *slot = Some(Problem {
            component: "store".into(),
            message: format!(
                "indexing failed, retrying (events stay in the WAL; search is behind): {error:#}"
            ),
            since,
        });
    }

    fn store_recovered(&self) {
        let mut slot = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.take().is_some() {
            tracing::warn!("the store commits again; indexing caught up from the wal");
        }
    }

    /// A thread ended: a fault unless the pipeline is shutting down.
    fn stopped(&self, flag: &std::sync::atomic::AtomicBool) {
        if !self.shutting_down.load(Ordering::SeqCst) {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// Most events, and payload bytes, the indexer reads back from the WAL at once.
const READ_BACK_EVENTS: usize = 10_000;
const READ_BACK_BYTES: usize = 32 << 20;

/// The indexer thread: adds acknowledged events to the store in WAL order, from its queue or,
/// for batches the writer left in the WAL, from the WAL; commits; truncates the WAL.
struct Indexer {
    store: Arc<Store>,
    wal: Arc<Mutex<Wal>>,
    wal_dir: std::path::PathBuf,
    progress: Arc<Progress>,
    metrics: Arc<Metrics>,
    dedup: Arc<crate::dedup::Dedup>,
    disk: Arc<Disk>,
}

/// First and longest wait before the indexer retries after a store failure.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Where the indexer is.
struct Cursor {
    /// The next WAL position to add to the store.
    next: u64,
    /// Positions below this are read back from the WAL before anything else.
    read_back_to: u64,
    /// Reads the WAL back; made on the first gap.
    tail: Option<WalTail>,
    /// The batch that showed a gap, added once the gap is read back.
    deferred: Option<IndexBatch>,
    /// Events added since the last commit, and per source.
    pending: usize,
    pending_sources: HashMap<String, u64>,
}

impl Indexer {
    fn run(&self, rx: Receiver<IndexBatch>, config: &PipelineConfig) {
        let interval = Duration::from_millis(config.commit_interval_ms.max(1));
        let mut retry = RETRY_FIRST;
        let mut last_commit = Instant::now();
        let mut cursor = Cursor {
            next: self.progress.committed_next.load(Ordering::SeqCst),
            read_back_to: 0,
            tail: None,
            deferred: None,
            pending: 0,
            pending_sources: HashMap::new(),
        };
        let mut closing = false;
        loop {
            let added = if cursor.next < cursor.read_back_to {
                self.read_back(&mut cursor)
            } else if let Some(batch) = cursor.deferred.take() {
                self.add(&mut cursor, &batch.events, &batch.records)
            } else if closing {
                Ok(())
            } else {
                let wait = interval.saturating_sub(last_commit.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(batch) => {
                        self.metrics.index_queue_depth.dec();
                        match batch.events.first() {
                            Some(&(first, _)) if first > cursor.next => {
                                // The batches before this one were left in the WAL.
                                cursor.read_back_to = first;
                                cursor.deferred = Some(batch);
                                Ok(())
                            }
                            _ => self.add(&mut cursor, &batch.events, &batch.records),
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        // Nothing queued: whatever is acknowledged and not added was left in
                        // the WAL (a batch on its way is skipped when it arrives).
                        cursor.read_back_to = self.progress.acked_next.load(Ordering::SeqCst);
                        Ok(())
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        // Shutting down: add what was left in the WAL, then commit.
                        closing = true;
                        cursor.read_back_to = self.progress.acked_next.load(Ordering::SeqCst);
                        Ok(())
                    }
                }
            };
            let closed = closing && cursor.next >= cursor.read_back_to && cursor.deferred.is_none();
            let due =
                last_commit.elapsed() >= interval || cursor.pending >= config.commit_max_events;
            let result = match added {
                Err(error) => Err(error),
                Ok(()) if cursor.pending > 0 && (due || closed) => {
                    last_commit = Instant::now();
                    let committed = self.commit(&mut cursor);
                    if committed.is_ok() {
                        retry = RETRY_FIRST;
                    }
                    committed
                }
                Ok(()) => {
                    if due {
                        last_commit = Instant::now();
                    }
                    Ok(())
                }
            };
            match result {
                Ok(()) => {}
                Err(error) => {
                    // Committing after this would mark lost positions durable: roll the store
                    // back and add everything after its durable position again, from the WAL.
                    self.rewind(&mut cursor, &error);
                    if closing {
                        tracing::error!("shutting down with events not in the store; they are indexed from the wal on the next start");
                        return;
                    }
                    std::thread::sleep(retry);
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            }
            let lag = self
                .progress
                .acked_next
                .load(Ordering::SeqCst)
                .saturating_sub(self.progress.committed_next.load(Ordering::SeqCst));
            self.metrics
                .index_lag_events
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
            if closed {
                return;
            }
        }
    }

    /// Adds the events at or after the cursor (earlier ones were read back from the WAL).
    fn add(
        &self,
        cursor: &mut Cursor,
        events: &[(u64, Event)],
        records: &[Vec<u8>],
    ) -> anyhow::Result<()> {
        let skip = events.partition_point(|(position, _)| *position < cursor.next);
        let (events, records) = (&events[skip..], &records[skip.min(records.len())..]);
        let Some(&(last, _)) = events.last() else {
            return Ok(());
        };
        for (_, event) in events {
            self.dedup.observe(event);
            let source = event.get_str(ecs::EVENT_DATASET).unwrap_or("unknown");
            match cursor.pending_sources.get_mut(source) {
                Some(count) => *count += 1,
                None => {
                    cursor.pending_sources.insert(source.to_string(), 1);
                }
            }
        }
        self.store.add_records(events, records)?;
        cursor.pending += events.len();
        cursor.next = last + 1;
        Ok(())
    }

    /// Reads the next events the writer left in the WAL and adds them.
    fn read_back(&self, cursor: &mut Cursor) -> anyhow::Result<()> {
        let tail = match &mut cursor.tail {
            Some(tail) if tail.next_position() == cursor.next => tail,
            slot => slot.insert(WalTail::new(&self.wal_dir, cursor.next)),
        };
        let mut events = Vec::new();
        let mut records = Vec::new();
        let mut undecodable = 0u64;
        let read = tail
            .read(
                cursor.read_back_to,
                READ_BACK_EVENTS,
                READ_BACK_BYTES,
                |position, payload| match record::decode(&payload) {
                    Ok(event) => {
                        events.push((position, event));
                        records.push(payload);
                    }
                    Err(_) => undecodable += 1,
                },
            )
            .context("reading acknowledged events back from the wal")?;
        if read.skipped > 0 || undecodable > 0 {
            tracing::error!(
                skipped = read.skipped,
                undecodable,
                "wal records the indexer could not read back were skipped"
            );
        }
        let next = tail.next_position();
        self.add(cursor, &events, &records)?;
        if read.records == 0 && read.skipped == 0 {
            // Nothing below `read_back_to` on disk (it cannot be: it was acknowledged).
            tracing::error!(
                from = cursor.next,
                to = cursor.read_back_to,
                "acknowledged wal records not found; indexing goes on after them"
            );
            cursor.next = cursor.read_back_to;
        } else {
            cursor.next = cursor.next.max(next);
        }
        Ok(())
    }

    fn commit(&self, cursor: &mut Cursor) -> anyhow::Result<()> {
        let durable = self.store.commit().context("committing the store")?;
        for (source, count) in cursor.pending_sources.drain() {
            self.metrics
                .stored
                .get_or_create(&self.metrics.source(&source))
                .inc_by(count);
        }
        cursor.pending = 0;
        self.progress
            .committed_next
            .store(cursor.next, Ordering::SeqCst);
        self.disk
            .set_caught_up(cursor.next >= self.progress.acked_next.load(Ordering::SeqCst));
        self.progress.faults.store_recovered();
        if let Some(position) = durable.filter(|_| self.dedup.persisted()) {
            let mut wal = self
                .wal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(error) = truncate(&mut wal, position, &self.progress) {
                tracing::warn!(error = format!("{error:#}"), "wal truncation failed");
            }
            record_wal_usage(&self.metrics, &self.progress, &wal);
        }
        Ok(())
    }

    /// After a failed add or commit: discards what the store buffered and moves the cursor
    /// back to the first position not durable in the store, to be read back from the WAL.
    fn rewind(&self, cursor: &mut Cursor, error: &anyhow::Error) {
        self.metrics.store_failures.inc();
        if is_out_of_space(error.as_ref()) {
            self.disk.write_failed();
        }
        let first_failure = self
            .progress
            .faults
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none();
        if first_failure {
            tracing::error!(
                error = format!("{error:#}"),
                "indexing failed; rolling back and retrying from the wal (search falls behind, nothing is lost)"
            );
        } else {
            tracing::debug!(error = format!("{error:#}"), "indexing failed again");
        }
        self.progress.faults.report_store(error);
        self.disk.set_caught_up(false);
        self.store.abort();
        let rewind_to = self.progress.committed_next.load(Ordering::SeqCst);
        cursor.next = cursor.next.min(rewind_to);
        cursor.read_back_to = cursor
            .read_back_to
            .max(self.progress.acked_next.load(Ordering::SeqCst));
        cursor.pending = 0;
        cursor.pending_sources.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> (Vec<Event>, Vec<Vec<u8>>) {
        let config = crowsnest_store::StoreConfig::default();
        let events = (0..n)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "@timestamp": "2026-12-07T00:00:00Z",
                    "event": {"dataset": "t"},
                    "n": i,
                }))
                .expect("event")
            })
            .collect();
        let (events, payloads, _) = crate::submit::prepare(events, &config).expect("prepare");
        (events, payloads)
    }

    /// The disk fills between a submitter's check and the WAL writer's: a submitter that waits
    /// (a stream listener) gets its batch back and stores it once space returns; one that fails
    /// fast is told the disk is full. Nothing is acknowledged that was not written.
    #[test]
    fn a_batch_refused_for_a_full_disk_comes_back_to_a_waiting_submitter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Arc::new(Store::open(&dir.path().join("store"), Default::default()).expect("store"));
        let dedup = Arc::new(crate::dedup::Dedup::open(dir.path()).expect("dedup"));
        let pipeline = Pipeline::start(
            &dir.path().join("wal"),
            store,
            PipelineConfig {
                min_free_bytes: Some(0),
                commit_interval_ms: 20,
                ..PipelineConfig::default()
            },
            Arc::new(Metrics::new()),
            None,
            dedup,
            Vec::new(),
        )
        .expect("start");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (batch, payloads) = events(3);
            pipeline.disk.fill_at_next_reading();
            let refused = pipeline
                .submit_as(batch, payloads, Admission::FailFast)
                .await;
            assert!(
                matches!(refused, Err(SubmitError::DiskFull(_))),
                "{refused:?}"
            );
            assert_eq!(pipeline.acked_next(), 0, "nothing was acknowledged");
            // The monitor thread reads the real disk again and clears the state.
            let (batch, payloads) = events(5);
            pipeline.disk.fill_at_next_reading();
            let range = tokio::time::timeout(
                Duration::from_secs(10),
                pipeline.submit_as(batch, payloads, Admission::Wait),
            )
            .await
            .expect("the waiting submitter went on once space was back")
            .expect("stored");
            assert_eq!(range, 0..5);
        });
        pipeline.shutdown().expect("shutdown");
        assert_eq!(pipeline.committed_next(), 5);
    }
}
