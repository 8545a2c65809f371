//! Errors of the detection crate.

use thiserror::Error;

/// What can go wrong outside the per-file load report.
#[derive(Debug, Error)]
pub enum DetectError {
    /// A correlation checkpoint could not be written or read.
    #[error("expected a JSON correlation checkpoint: {0}")]
    Checkpoint(#[source] serde_json::Error),
    /// A checkpoint from an incompatible rsigma snapshot version.
    #[error("expected a correlation checkpoint of the current snapshot version")]
    CheckpointVersion,
    /// A test-event file line that is not `{"expect": ..., "event": {...}}`.
    #[error("{path}:{line}: expected {{\"expect\": \"match\"|\"nomatch\", \"event\": {{...}}}}: {reason}")]
    TestLine {
        /// The test file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
