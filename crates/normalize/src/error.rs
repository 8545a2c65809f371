//! Errors of the decoders.
//!
//! Two levels, on purpose:
//!
//! * [`DecodeError`] rejects a whole request body. Only [`crate::decode_k8s_audit`] returns it,
//!   when the body as a whole is not what the endpoint accepts (not JSON, not an audit
//!   `Event`/`EventList`). The server answers such a body with a 400.
//! * [`LineError`] reports one bad line (NDJSON) or one bad item (`EventList` item, batch
//!   record). The decoders collect them next to the good events, so one bad line never costs
//!   the rest of the body.

use serde::Serialize;
use std::fmt;

/// A failure of a whole request body; nothing in it was decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is empty or only whitespace.
    #[error("expected an audit.k8s.io `Event` or `EventList` JSON object, found an empty body")]
    Empty,
    /// The body is not valid UTF-8.
    #[error("expected UTF-8 JSON, found invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The body nests arrays/objects deeper than [`crate::Limits::max_depth`].
    #[error("expected JSON nested at most {max_depth} levels deep")]
    TooDeep {
        /// The limit that was exceeded.
        max_depth: usize,
    },
    /// The body is not valid JSON.
    #[error("expected a JSON object, found invalid JSON: {reason}")]
    InvalidJson {
        /// What the JSON parser reported.
        reason: String,
    },
    /// The body is JSON but not an audit `Event` or `EventList`.
    #[error("expected an audit.k8s.io `Event` or `EventList`, found {found}")]
    NotAuditEvent {
        /// A short description of what was found instead.
        found: String,
    },
}

/// One line (NDJSON) or item (`EventList` item, batch record) that could not be decoded.
///
/// Serialized as `{"line": 3, "field": "verb", "reason": "expected a string, found 42"}` in
/// the ingest API's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line number in the body, or 1-based item number for `EventList` items.
    pub line: usize,
    /// Dotted path of the offending field, when one field is to blame.
    pub field: Option<String>,
    /// What was wrong, saying what was expected.
    pub reason: String,
}

impl LineError {
    /// Creates an error for a whole line or item.
    pub fn new(line: usize, reason: impl Into<String>) -> Self {
        Self {
            line,
            field: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: `{}`: {}", self.line, field, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// A problem with one field of an otherwise parseable record; becomes a [`LineError`] once
/// the line number is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// Dotted path of the field, relative to the record being mapped, or `None` for the
    /// record as a whole.
    pub field: Option<String>,
    /// What was expected.
    pub reason: String,
}

impl FieldError {
    /// A wrong or missing field.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            reason: reason.into(),
        }
    }

    /// Puts `prefix` in front of the field path (the record was nested inside `prefix`).
    pub fn within(self, prefix: &str) -> Self {
        let field = match self.field {
            Some(inner) => format!("{prefix}.{inner}"),
            None => prefix.to_string(),
        };
        Self {
            field: Some(field),
            reason: self.reason,
        }
    }

    /// Attaches the line (or item) number.
    pub fn at(self, line: usize) -> LineError {
        LineError {
            line,
            field: self.field,
            reason: self.reason,
        }
    }
}

/// Describes a JSON value's type for error messages (`a string`, `an array`, `42`).
pub(crate) fn describe(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => "a string".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}
