//! Errors of the ingest decoders and listeners.
//!
//! Like `crowsnest-normalize`, two levels: an [`IngestError`] rejects a whole body or frame
//! (nothing in it was decoded); a [`crowsnest_normalize::LineError`] in
//! [`crowsnest_normalize::Decoded::errors`] reports one bad item while its neighbours decode.

/// A failure of a whole body, frame or connection setup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The body is empty.
    #[error("expected {expected}, found an empty body")]
    Empty {
        /// What the endpoint accepts.
        expected: &'static str,
    },
    /// The body or frame is larger than a configured limit.
    #[error("expected at most {limit} bytes, found {found} bytes or more")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The size seen (at least).
        found: usize,
    },
    /// A compressed body or chunk could not be decompressed.
    #[error("expected a valid {encoding} stream: {reason}")]
    Decompress {
        /// `gzip`, `zlib`, ...
        encoding: &'static str,
        /// What the decompressor reported.
        reason: String,
    },
    /// The body is not valid in its format (JSON, protobuf, msgpack).
    #[error("expected {expected}: {reason}")]
    Invalid {
        /// What the endpoint accepts.
        expected: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A TLS certificate or key could not be loaded.
    #[error("expected a PEM {what} in `{path}`: {reason}")]
    Tls {
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// An input's configuration is incomplete or contradicts itself.
    #[error("{0}")]
    Config(String),
    /// A listener could not be bound or a file it needs read.
    #[error("{what}: {reason}")]
    Io {
        /// What was being done (`binding 127.0.0.1:6514`).
        what: String,
        /// The operating system's answer.
        reason: String,
    },
}

impl IngestError {
    /// An [`IngestError::Io`].
    pub(crate) fn io(what: impl Into<String>, error: &std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            reason: error.to_string(),
        }
    }

    /// An [`IngestError::Invalid`].
    pub(crate) fn invalid(expected: &'static str, reason: impl ToString) -> Self {
        Self::Invalid {
            expected,
            reason: reason.to_string(),
        }
    }
}
