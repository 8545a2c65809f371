//! Embedded event store: time-partitioned tantivy indexes, retention, search.
//!
//! CONTRACT (used by the server; keep these signatures):
//!
//! ```ignore
//! let store = Store::open(dir, StoreConfig::default())?;
//! store.add(&[(wal_position, event)])?;   // buffered, not yet searchable
//! store.commit()?;                        // searchable + durable; returns the max position committed
//! store.search(&SearchRequest { .. })?;
//! ```

use std::path::Path;

use chrono::{DateTime, Utc};
use crowsnest_model::Event;
use serde::Serialize;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An index operation failed.
    #[error("index error: {0}")]
    Index(String),
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The query cannot be executed (unknown function for the field type, bad range, ...).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
}

/// How the store partitions, retains and bounds memory.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
    /// Time taken, in milliseconds.
    pub took_ms: u64,
}

/// The store.
pub struct Store {}

impl Store {
    /// Opens (or creates) a store in `dir`.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Self, StoreError> {
        let _ = (dir, config);
        Ok(Self {})
    }
    /// Buffers events with their WAL positions for indexing; events whose position is already
    /// committed in their partition are skipped (replay after a crash). Returns how many were
    /// added.
    pub fn add(&self, batch: &[(u64, Event)]) -> Result<usize, StoreError> {
        let _ = batch;
        Ok(0)
    }
    /// Commits all buffered events (searchable and durable). Returns the highest WAL position
    /// now durable in the store, if any.
    pub fn commit(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// Runs a search.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResponse, StoreError> {
        let _ = request;
        Err(StoreError::InvalidQuery("not implemented".into()))
    }
}
