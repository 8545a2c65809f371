//! [`StoreError`]: everything that can go wrong in the store.

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
    /// A setting of [`crate::StoreConfig`] is out of its range.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The query cannot be executed (unknown function for the field type, bad range, ...).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The search ran past its time budget and was stopped (nothing of it is returned).
    #[error("search stopped after its time budget of {budget_ms} ms")]
    Timeout {
        /// The budget, in milliseconds.
        budget_ms: u64,
    },
    /// The search was cancelled through its [`crate::SearchControl`] (its client went away).
    #[error("search cancelled")]
    Cancelled,
    /// An event handed to [`crate::Store::add`] has no parseable `@timestamp`.
    #[error(
        "event at wal position {position} has no parseable `@timestamp`; expected an RFC 3339 time"
    )]
    MissingTimestamp {
        /// The WAL position of the offending event.
        position: u64,
    },
    /// A partition directory or commit payload could not be understood.
    #[error("corrupt partition `{partition}`: {reason}")]
    Corrupt {
        /// The partition directory name.
        partition: String,
        /// What was expected.
        reason: String,
    },
    /// A partition was written in an on-disk format this build does not read (see
    /// [`crate::Store::open`], which sets such partitions aside).
    #[error(
        "partition `{partition}` is in store format {found}; this build reads format {expected}"
    )]
    Format {
        /// The partition directory name.
        partition: String,
        /// The partition's format.
        found: u32,
        /// The format this build reads.
        expected: u32,
    },
}

impl From<tantivy::TantivyError> for StoreError {
    fn from(error: tantivy::TantivyError) -> Self {
        StoreError::Index(error.to_string())
    }
}

impl StoreError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}
