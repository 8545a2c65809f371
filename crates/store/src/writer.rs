//! The write side: routing events to partitions, bounded open writers, commits with payloads.
//!
//! Invariants:
//! - One lock (`Store::write`) serializes `add`, `commit`, retention and close. Searches never
//!   take it; they read the partition map and each partition's reader.
//! - At most `max_open_writers` tantivy writers are open (LRU). Opening one more first commits
//!   the least recently used writer (with the current payload) and closes it. After each
//!   `commit`, writers that received nothing since the previous commit are closed too, so a
//!   partition that stops receiving events (yesterday's) releases its memory.
//! - A partition commits with payload `wal_position = highest position added so far`. Because
//!   positions only grow, every event added to that partition before the commit has a position
//!   at or below the payload and every later one above it; `add` skips events at or below
//!   their partition's payload, which makes a WAL replay after a crash exactly-once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crowsnest_model::Event;
use serde::{Deserialize, Serialize};
use tantivy::IndexWriter;

use crate::partition::{aligned_start, hours_delta, Partition};
use crate::schema::route::Router;
use crate::schema::to_document;
use crate::{Store, StoreError};

/// tantivy's smallest per-thread indexing budget.
pub(crate) const MIN_WRITER_BYTES: usize = 15_000_000;
/// Most writers open at once, whatever the budget.
const MAX_OPEN_WRITERS: usize = 4;
/// File holding the position of the last full commit.
pub(crate) const COMMITTED_FILE: &str = "committed.json";

/// An open writer of one partition.
pub(crate) struct OpenWriter {
    pub partition: Arc<Partition>,
    pub writer: IndexWriter,
    /// Holds documents not yet committed.
    pub dirty: bool,
    /// Received documents since the last `commit`.
    pub touched: bool,
}

/// State guarded by the write lock.
#[derive(Default)]
pub(crate) struct WriteState {
    /// Open writers, least recently used first.
    pub writers: Vec<OpenWriter>,
    /// Highest WAL position added (or durable at open).
    pub max_added: Option<u64>,
    /// Position of the last full commit.
    pub durable: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct CommittedFile {
    wal_position: u64,
}

/// Reads the position of the last full commit.
pub(crate) fn read_committed(root: &Path) -> Result<Option<u64>, StoreError> {
    let path = root.join(COMMITTED_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let file: CommittedFile =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    partition: COMMITTED_FILE.into(),
                    reason: format!("expected {{\"wal_position\": N}}: {e}"),
                })?;
            Ok(Some(file.wal_position))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(
            format!("cannot read `{}`", path.display()),
            e,
        )),
    }
}

fn write_committed(root: &Path, position: u64) -> Result<(), StoreError> {
    let path = root.join(COMMITTED_FILE);
    let body = serde_json::to_vec(&CommittedFile {
        wal_position: position,
    })
    .map_err(|e| StoreError::Index(format!("cannot encode commit position: {e}")))?;
    crowsnest_util::write_atomic(&path, &body)
        .map_err(|e| StoreError::io(format!("cannot write `{}`", path.display()), e))
}

/// How many writers may be open and the memory budget of each.
pub(crate) fn writer_budget(total_bytes: usize) -> (usize, usize) {
    let max_open = (total_bytes / MIN_WRITER_BYTES).clamp(1, MAX_OPEN_WRITERS);
    let per_writer = (total_bytes / max_open).max(MIN_WRITER_BYTES);
    (max_open, per_writer)
}

fn commit_writer(open: &mut OpenWriter, position: u64) -> Result<(), StoreError> {
    let mut prepared = open.writer.prepare_commit()?;
    prepared.set_payload(&open.partition.payload(position));
    prepared.commit()?;
    open.partition.set_committed(position);
    open.dirty = false;
    reload_reader(&open.partition)
}

/// Reloads a partition's reader. A merge finishing at the same moment can delete files of the
/// meta just read; the next attempt reads the newer meta, so retry a few times.
fn reload_reader(partition: &Partition) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        match partition.reader.reload() {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 5 => {
                tracing::debug!(partition = %partition.name, %error, attempt, "reader reload raced a merge; retrying");
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 << attempt));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Closes a writer, waiting for its merges; the partition's files then stop changing, so it is
/// sealed in the integrity chain when one is set (hashed once here, not per event).
fn close_writer(
    open: OpenWriter,
    chain: Option<&Arc<crowsnest_integrity::Chain>>,
) -> Result<(), StoreError> {
    let partition = Arc::clone(&open.partition);
    open.writer.wait_merging_threads()?;
    if let Some(chain) = chain {
        chain.seal_partition(&partition.dir);
    }
    Ok(())
}

impl Store {
    pub(crate) fn lock_write(&self) -> std::sync::MutexGuard<'_, WriteState> {
        self.write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Buffers events; see [`Store::add`] and [`Store::add_records`].
    pub(crate) fn add_batch(
        &self,
        batch: &[(u64, Event)],
        records: Option<&[Vec<u8>]>,
    ) -> Result<usize, StoreError> {
        if let Some(records) = records {
            if records.len() != batch.len() {
                return Err(StoreError::Index(format!(
                    "{} wal records given for {} events",
                    records.len(),
                    batch.len()
                )));
            }
        }
        let mut stamped = Vec::with_capacity(batch.len());
        for (position, event) in batch {
            let ts = event.timestamp().ok_or(StoreError::MissingTimestamp {
                position: *position,
            })?;
            stamped.push((*position, ts, self.routing_time(event, ts)));
        }
        let mut state = self.lock_write();
        let mut added = 0;
        let mut scratch = Vec::new();
        for (i, (position, ts, route)) in stamped.into_iter().enumerate() {
            let partition = self.partition_for(route)?;
            if partition.committed().is_some_and(|c| position <= c) {
                // Already durable there: a later commit may record it as such.
                state.max_added = Some(state.max_added.map_or(position, |m| m.max(position)));
                continue;
            }
            let record = records.map(|records| records[i].as_slice());
            let doc = {
                let mut columns = partition
                    .columns
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut router = Router {
                    declared: &self.config.aggregate_fields,
                    max_columns: self.config.max_columns,
                    columns: &mut columns,
                    delta: self.config.docstore_delta,
                };
                to_document(
                    &batch[i].1,
                    record,
                    ts,
                    &self.schema,
                    &mut scratch,
                    &mut router,
                )?
            };
            let slot = self.writer_for(&mut state, &partition)?;
            let open = &mut state.writers[slot];
            open.writer.add_document(doc)?;
            open.dirty = true;
            open.touched = true;
            partition.hold(ts);
            state.max_added = Some(state.max_added.map_or(position, |m| m.max(position)));
            added += 1;
        }
        Ok(added)
    }

    /// Commits every dirty partition; see [`Store::commit`].
    pub(crate) fn commit_all(&self) -> Result<Option<u64>, StoreError> {
        let mut state = self.lock_write();
        let Some(position) = state.max_added else {
            return Ok(state.durable);
        };
        for open in state.writers.iter_mut().filter(|w| w.dirty) {
            commit_writer(open, position)?;
        }
        let writers = std::mem::take(&mut state.writers);
        let (active, idle): (Vec<_>, Vec<_>) = writers.into_iter().partition(|w| w.touched);
        state.writers = active;
        for open in &mut state.writers {
            open.touched = false;
        }
        for open in idle {
            close_writer(open, self.chain())?;
        }
        if state.durable != Some(position) {
            write_committed(&self.root, position)?;
            state.durable = Some(position);
        }
        Ok(Some(position))
    }

    /// Rolls back and closes every open writer; see [`Store::abort`].
    pub(crate) fn abort_all(&self) -> Option<u64> {
        let mut state = self.lock_write();
        for mut open in std::mem::take(&mut state.writers) {
            if open.dirty {
                match open.writer.rollback() {
                    // The discarded segments' files would hold on to the space a full disk
                    // needs back; the next commit would delete them too, but it needs space.
                    Ok(_) => {
                        if let Err(error) = open.writer.garbage_collect_files().wait() {
                            tracing::debug!(partition = %open.partition.name, %error, "removing discarded segment files failed");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(partition = %open.partition.name, %error, "rolling back an index writer failed; it is closed all the same")
                    }
                }
            }
            if let Err(error) = open.writer.wait_merging_threads() {
                tracing::warn!(partition = %open.partition.name, %error, "closing an index writer after a failure");
            }
        }
        state.max_added = state.durable;
        state.durable
    }

    /// The time an event is routed by: its `@timestamp`, or its `event.ingested` time when the
    /// timestamp lies outside the window around it ([`crate::StoreConfig::window_past_hours`]).
    /// Both come from the event itself, so a WAL replay routes it to the same partition.
    fn routing_time(&self, event: &Event, ts: DateTime<Utc>) -> DateTime<Utc> {
        let Some(ingested) = event
            .get_str(crowsnest_model::ecs::EVENT_INGESTED)
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|t| t.with_timezone(&Utc))
        else {
            return ts;
        };
        match self.config.out_of_range(ts, ingested) {
            Some(_) => ingested,
            None => ts,
        }
    }

    /// Commits, then closes every writer waiting for its merges.
    pub(crate) fn close_all(&self) -> Result<Option<u64>, StoreError> {
        let position = self.commit_all()?;
        let mut state = self.lock_write();
        for open in std::mem::take(&mut state.writers) {
            close_writer(open, self.chain())?;
        }
        Ok(position)
    }

    /// Index of the open writer of `partition` in the LRU list, opening it if needed.
    fn writer_for(
        &self,
        state: &mut WriteState,
        partition: &Arc<Partition>,
    ) -> Result<usize, StoreError> {
        if let Some(i) = state
            .writers
            .iter()
            .position(|w| Arc::ptr_eq(&w.partition, partition))
        {
            let open = state.writers.remove(i);
            state.writers.push(open);
            return Ok(state.writers.len() - 1);
        }
        let (max_open, per_writer) = writer_budget(self.config.writer_memory_bytes);
        while state.writers.len() >= max_open {
            let mut evicted = state.writers.remove(0);
            if evicted.dirty {
                if let Some(position) = state.max_added {
                    commit_writer(&mut evicted, position)?;
                }
            }
            close_writer(evicted, self.chain())?;
        }
        if let Some(chain) = self.chain() {
            // A sealed partition takes (late) events again: its seal is superseded until the
            // writer closes and it is sealed anew.
            chain.open_partition(&partition.dir);
        }
        let writer = partition.index.writer_with_num_threads(1, per_writer)?;
        state.writers.push(OpenWriter {
            partition: Arc::clone(partition),
            writer,
            dirty: false,
            touched: false,
        });
        Ok(state.writers.len() - 1)
    }

    /// The partition holding `ts`, created (aligned, clipped to its neighbours) if missing.
    fn partition_for(&self, ts: DateTime<Utc>) -> Result<Arc<Partition>, StoreError> {
        if let Some(found) = find_partition(&self.read_partitions(), ts) {
            return Ok(found);
        }
        let mut partitions = self.write_partitions();
        if let Some(found) = find_partition(&partitions, ts) {
            return Ok(found);
        }
        let mut start = aligned_start(ts, self.config.partition_hours);
        let mut end = start + hours_delta(self.config.partition_hours);
        if let Some((_, prev)) = partitions.range(..=ts).next_back() {
            start = start.max(prev.end);
        }
        if let Some((_, next)) = partitions.range(ts..).next() {
            end = end.min(next.start);
        }
        let partition = Arc::new(Partition::create(
            &self.partitions_dir,
            start,
            end,
            self.config.docstore_zstd_level,
        )?);
        partitions.insert(start, Arc::clone(&partition));
        tracing::debug!(partition = %partition.name, "created partition");
        Ok(partition)
    }
}

fn find_partition(
    partitions: &BTreeMap<DateTime<Utc>, Arc<Partition>>,
    ts: DateTime<Utc>,
) -> Option<Arc<Partition>> {
    let (_, candidate) = partitions.range(..=ts).next_back()?;
    (candidate.end > ts).then(|| Arc::clone(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_respects_tantivy_minimum_and_cap() {
        assert_eq!(writer_budget(64 * 1024 * 1024), (4, 16_777_216));
        assert_eq!(writer_budget(1_000_000), (1, MIN_WRITER_BYTES));
        assert_eq!(writer_budget(1 << 30), (4, (1 << 30) / 4));
    }
}
