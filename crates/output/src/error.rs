//! Errors: why a batch was not delivered ([`SinkError`]) and why an output cannot be built
//! ([`ConfigError`]).

use std::time::Duration;

/// Why a batch was not delivered. The server retries [`SinkError::Retryable`] after a backoff;
/// it splits a [`SinkError::Rejected`] batch until the refused events are isolated and drops
/// only those; and it retries [`SinkError::Permanent`] slowly, because refused credentials or a
/// wrong address are fixed by the operator, not by dropping the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// A transient failure: connect/timeout/IO, HTTP 408/429/5xx, Elasticsearch items with
    /// 429/5xx. Sending the same batch again may succeed.
    #[error("retryable: {message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// How long the receiver asked us to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// The receiver refused the request as a whole for a reason other than its content
    /// (401/403/404, other 4xx) or the batch cannot be encoded: sending it again unchanged would
    /// fail the same way until the configuration or the receiver changes.
    #[error("permanent: {0}")]
    Permanent(String),
    /// The receiver refused the batch for its content (400, 413, 422; a HEC error code):
    /// some event in it is unacceptable, or the batch is too large.
    #[error("rejected: {0}")]
    Rejected(String),
}

impl SinkError {
    /// A retryable error without a `Retry-After` hint.
    pub fn retryable(message: impl Into<String>) -> Self {
        SinkError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Whether sending again may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable { .. })
    }

    /// The receiver's `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Retryable { retry_after, .. } => *retry_after,
            SinkError::Permanent(_) | SinkError::Rejected(_) => None,
        }
    }
}

/// Why an output could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value we cannot use.
    #[error("output {output:?}: {field}: expected {expected}, got {got:?}")]
    Invalid {
        /// The output's name.
        output: String,
        /// The setting.
        field: &'static str,
        /// What a good value looks like.
        expected: String,
        /// What was configured.
        got: String,
    },
    /// A file named by the configuration cannot be read or holds nothing usable.
    #[error("output {output:?}: {field}: expected {expected} in {path}: {reason}")]
    File {
        /// The output's name.
        output: String,
        /// The setting.
        field: &'static str,
        /// What the file should hold.
        expected: &'static str,
        /// The path.
        path: String,
        /// The underlying failure.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        output: &str,
        field: &'static str,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            output: output.to_string(),
            field,
            expected: expected.into(),
            got: got.into(),
        }
    }
}
