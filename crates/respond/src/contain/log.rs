//! The action log: append-only, hash-chained JSON lines.
//!
//! Each line is one [`LogRecord`] serialized as compact JSON with its fields in a fixed order:
//! its canonical bytes, exactly as written. `prev` holds the SHA-256 (hex) of the previous
//! line's bytes (64 zeros for the first record), and `seq` counts from 0; so changing, removing,
//! reordering or inserting a record breaks the chain at that record, and
//! [`verify`] names the first broken one. Every append is fsynced before it returns.
//!
//! A line cut short by a crash in the middle of an append (the last line, without its
//! newline) was never acknowledged: opening the log drops it. Anything else that does not
//! verify stops appends (the log refuses to grow a broken chain).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use crowsnest_model::{format_timestamp, Event};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// What happened to an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Planned (the detail is the [`PlannedAction`](super::PlannedAction), its decision included).
    Planned,
    /// A guard refused it.
    Refused,
    /// Someone approved it (`actor`).
    Approved,
    /// An approval was refused (forged, expired, replayed, unknown action).
    ApprovalRefused,
    /// Its operations ran (the detail holds the steps with their answers' hashes).
    Executed,
    /// An operation failed.
    Failed,
    /// Undone (by its TTL or by someone).
    Undone,
    /// The undo failed.
    UndoFailed,
    /// Someone rejected it while it waited for approval.
    Rejected,
}

impl RecordKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Refused => "refused",
            Self::Approved => "approved",
            Self::ApprovalRefused => "approval_refused",
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::Undone => "undone",
            Self::UndoFailed => "undo_failed",
            Self::Rejected => "rejected",
        }
    }
}

/// One record of the action log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: RecordKind,
    /// The action.
    pub action_id: String,
    /// Who did it (the approver, `auto`, `ttl`, a token name).
    pub actor: Option<String>,
    /// Details (the plan, the steps, the error).
    pub detail: Value,
    /// SHA-256 of the previous record's canonical bytes, hex.
    pub prev: String,
}

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl LogRecord {
    /// The record's canonical bytes (its line, without the newline).
    pub fn canonical(&self) -> Vec<u8> {
        // A struct of strings, numbers and JSON values: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The record as an event (`event.dataset: crowsnest.response`), for the WAL and the
    /// store: `event.action` is the kind, `crowsnest.response.*` the rest.
    pub fn to_event(&self) -> Event {
        let mut e = Event::new();
        e.set("@timestamp", json!(format_timestamp(self.at)));
        e.set(
            "event.id",
            json!(format!("{}-{}", self.action_id, self.seq)),
        );
        e.set("event.kind", json!("event"));
        e.set("event.module", json!("crowsnest"));
        e.set("event.dataset", json!("crowsnest.response"));
        e.set("event.category", json!(["process"]));
        e.set("event.action", json!(self.kind.as_str()));
        let outcome = match self.kind {
            RecordKind::Executed
            | RecordKind::Undone
            | RecordKind::Approved
            | RecordKind::Rejected => "success",
            RecordKind::Failed
            | RecordKind::UndoFailed
            | RecordKind::Refused
            | RecordKind::ApprovalRefused => "failure",
            RecordKind::Planned => "unknown",
        };
        e.set("event.outcome", json!(outcome));
        if let Some(actor) = &self.actor {
            e.set("user.name", json!(actor));
        }
        e.set("crowsnest.response.seq", json!(self.seq));
        e.set("crowsnest.response.action_id", json!(self.action_id));
        e.set("crowsnest.response.prev", json!(self.prev));
        e.set("crowsnest.response.detail", self.detail.clone());
        if let Some(action) = self.detail.get("action") {
            e.set("crowsnest.response.action", action.clone());
        }
        let message = match self.detail.get("action").and_then(Value::as_str) {
            Some(action) => format!(
                "response {action} {} {}",
                self.action_id,
                self.kind.as_str()
            ),
            None => format!("response {} {}", self.action_id, self.kind.as_str()),
        };
        e.set("message", json!(message));
        e
    }
}

/// Why the log cannot be appended to or read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Reading or writing failed.
    #[error("action log `{path}`: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The chain is broken: appending would hide it.
    #[error("action log `{path}` does not verify: {error}")]
    Broken {
        /// The file.
        path: PathBuf,
        /// The first broken record.
        error: VerifyError,
    },
}

/// The first broken record.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("record {index} (line {line}) is broken: {reason}")]
pub struct VerifyError {
    /// Its index (0-based).
    pub index: u64,
    /// Its line (1-based).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// What [`verify`] found in a good log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records.
    pub records: u64,
    /// Hash of the last record's canonical bytes ([`GENESIS`] when empty).
    pub head: String,
    /// Whether the last line was cut short (a crash in the middle of an append; not counted).
    pub torn_tail: bool,
}

/// Verifies a log's text: every line a record, `seq` in order, each `prev` the hash of the
/// line before. (The last record's own hash is the log's head: the events in the store carry
/// each record's `prev`, which anchors it outside the file.)
///
/// # Errors
///
/// The first [`VerifyError`].
pub fn verify_bytes(bytes: &[u8]) -> Result<Verified, VerifyError> {
    let mut prev = GENESIS.to_string();
    let mut index = 0u64;
    let mut torn_tail = false;
    let ends_cleanly = bytes.is_empty() || bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let count = lines.len();
    for (n, line) in lines.into_iter().enumerate() {
        let last = n + 1 == count;
        if last && line.is_empty() {
            break;
        }
        let broken = |reason: String| VerifyError {
            index,
            line: n as u64 + 1,
            reason,
        };
        let record: LogRecord = match serde_json::from_slice(line) {
            Ok(record) => record,
            Err(_) if last && !ends_cleanly => {
                torn_tail = true;
                break;
            }
            Err(e) => return Err(broken(format!("not a log record: {e}"))),
        };
        if record.seq != index {
            return Err(broken(format!(
                "seq is {}, expected {index} (a record was removed, inserted or reordered)",
                record.seq
            )));
        }
        if record.prev != prev {
            return Err(broken(format!(
                "prev is {}, but the previous record hashes to {prev} (the previous record was changed, or this one moved)",
                record.prev
            )));
        }
        prev = hex::encode(Sha256::digest(line));
        index += 1;
    }
    Ok(Verified {
        records: index,
        head: prev,
        torn_tail,
    })
}

/// Verifies the log at `path`.
///
/// # Errors
///
/// [`LogError::Io`], or [`LogError::Broken`] naming the first broken record.
pub fn verify(path: &Path) -> Result<Verified, LogError> {
    let bytes = std::fs::read(path).map_err(|error| LogError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    verify_bytes(&bytes).map_err(|error| LogError::Broken {
        path: path.to_path_buf(),
        error,
    })
}

/// The action log, open for appending.
#[derive(Debug)]
pub struct ActionLog {
    path: Option<PathBuf>,
    next_seq: u64,
    head: String,
}

impl ActionLog {
    /// Opens (or creates) the log at `path`, verifying it; a torn last line is dropped.
    ///
    /// # Errors
    ///
    /// [`LogError::Io`], or [`LogError::Broken`] when it does not verify.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let io = |error| LogError::Io {
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let verified = verify_bytes(&bytes).map_err(|error| LogError::Broken {
            path: path.to_path_buf(),
            error,
        })?;
        if verified.torn_tail {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io)?;
            file.set_len(keep as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(Self {
            path: Some(path.to_path_buf()),
            next_seq: verified.records,
            head: verified.head,
        })
    }

    /// A log kept nowhere (`simulate`): records are chained and returned, not written.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            next_seq: 0,
            head: GENESIS.into(),
        }
    }

    /// Records in the log.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    /// Whether it has no record.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// Appends a record (durably: fsynced before this returns) and returns it.
    ///
    /// # Errors
    ///
    /// [`LogError::Io`]; the record is then not part of the chain.
    pub fn append(
        &mut self,
        at: DateTime<Utc>,
        kind: RecordKind,
        action_id: &str,
        actor: Option<&str>,
        detail: Value,
    ) -> Result<LogRecord, LogError> {
        let record = LogRecord {
            seq: self.next_seq,
            at,
            kind,
            action_id: action_id.to_string(),
            actor: actor.map(String::from),
            detail,
            prev: self.head.clone(),
        };
        let mut line = record.canonical();
        let hash = hex::encode(Sha256::digest(&line));
        if let Some(path) = &self.path {
            line.push(b'\n');
            let io = |error| LogError::Io {
                path: path.clone(),
                error,
            };
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io)?;
            file.write_all(&line).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        self.head = hash;
        self.next_seq += 1;
        Ok(record)
    }

    /// Every record of the log at `path`, in order (for rebuilding state after a restart).
    ///
    /// # Errors
    ///
    /// [`LogError`] as for [`ActionLog::open`].
    pub fn read_all(path: &Path) -> Result<Vec<LogRecord>, LogError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(LogError::Io {
                    path: path.to_path_buf(),
                    error,
                })
            }
        };
        verify_bytes(&bytes).map_err(|error| LogError::Broken {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice(line).ok())
            .collect())
    }
}
