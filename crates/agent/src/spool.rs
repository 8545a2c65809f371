//! The disk buffer between the collectors and the server, and the checkpoints that go with it.
//!
//! Collectors send [`Record`]s (an event and/or the cursor just past it) into a bounded channel.
//! The batcher ([`run_batcher`]) groups them and, for each batch:
//!
//! 1. writes `spool/<seq>.ndjson.gz` (temp name, fsync, rename);
//! 2. writes `state.json` with `next_seq = seq + 1` and every cursor as of the batch's end
//!    (temp name, fsync, rename).
//!
//! The `state.json` rename is the commit point. On start ([`Spool::open`]) spool files at or
//! past `next_seq` are removed (their lines are read again from the committed cursors), so an
//! agent killed at any moment neither loses nor repeats a line: every spooled batch keeps its
//! `seq` until the server acknowledges it, and the server drops a `seq` it already has.
//!
//! Backpressure: while the spool holds more than `max_bytes`, the batcher stops taking records;
//! the channel fills and the collectors stop reading (files stay where they are on disk).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One thing a collector hands on.
#[derive(Debug)]
pub struct Record {
    /// The normalized event, if the input produced one.
    pub event: Option<Map<String, Value>>,
    /// The collector's resume point after this record: (key, cursor).
    pub cursor: Option<(String, Value)>,
}

/// The persisted agent state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// This agent's id (in every batch id).
    pub agent_id: String,
    /// The next batch sequence number.
    pub next_seq: u64,
    /// Resume points, by collector key.
    pub cursors: BTreeMap<String, Value>,
}

/// Batching and buffering limits.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Most uncompressed bytes in one batch.
    pub max_batch_bytes: usize,
    /// Longest wait before a non-empty batch is written.
    pub flush_interval: Duration,
    /// Most bytes the spool holds before collectors are pushed back.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_batch_events: 5_000,
            max_batch_bytes: 4 * 1024 * 1024,
            flush_interval: Duration::from_millis(500),
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The state directory: `state.json` and `spool/`.
pub struct Spool {
    dir: PathBuf,
    state: State,
    /// Bytes of spooled batches not yet acknowledged.
    pub(crate) bytes: Arc<AtomicU64>,
}

/// A spooled batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFile {
    /// Its sequence number.
    pub seq: u64,
    /// Its path.
    pub path: PathBuf,
}

impl Spool {
    /// Opens (or creates) the state directory and drops uncommitted batch files.
    pub fn open(dir: &Path, agent_id: Option<&str>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("spool"))
            .map_err(|e| anyhow::anyhow!("creating `{}`: {e}", dir.display()))?;
        let path = dir.join("state.json");
        let mut state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<State>(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "`{}` should be the agent state (agent_id, next_seq, cursors): {e}",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(anyhow::anyhow!("reading `{}`: {e}", path.display())),
        };
        if let Some(id) = agent_id {
            state.agent_id = id.to_string();
        }
        if state.agent_id.is_empty() {
            state.agent_id = format!("{}-{}", crate::hostname(), ulid::Ulid::new());
        }
        state.agent_id = state
            .agent_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let spool = Self {
            dir: dir.to_path_buf(),
            state,
            bytes: Arc::new(AtomicU64::new(0)),
        };
        let mut total = 0;
        for entry in std::fs::read_dir(dir.join("spool"))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match parse_name(&name) {
                Some(seq) if seq < spool.state.next_seq => {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
                _ => {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        spool.bytes.store(total, Ordering::SeqCst);
        spool.save_state()?;
        Ok(spool)
    }

    /// The committed state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Spooled batches waiting for the server, oldest first.
    pub fn pending(dir: &Path) -> std::io::Result<Vec<BatchFile>> {
        let mut files: Vec<BatchFile> = std::fs::read_dir(dir.join("spool"))?
            .flatten()
            .filter_map(|entry| {
                let seq = parse_name(&entry.file_name().to_string_lossy())?;
                Some(BatchFile {
                    seq,
                    path: entry.path(),
                })
            })
            .collect();
        files.sort_by_key(|f| f.seq);
        Ok(files)
    }

    fn save_state(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&self.state).map_err(std::io::Error::other)?;
        crowsnest_util::write_atomic(&self.dir.join("state.json"), &bytes)
    }

    /// Writes one batch and commits the cursors that come with it.
    pub fn commit(
        &mut self,
        lines: &[u8],
        cursors: BTreeMap<String, Value>,
    ) -> std::io::Result<()> {
        if !lines.is_empty() {
            let seq = self.state.next_seq;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(lines)?;
            let body = gz.finish()?;
            let path = self.dir.join("spool").join(format!("{seq:020}.ndjson.gz"));
            crowsnest_util::write_atomic(&path, &body)?;
            self.bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
            self.state.next_seq = seq + 1;
        }
        self.state.cursors.extend(cursors);
        self.save_state()
    }
}

fn parse_name(name: &str) -> Option<u64> {
    name.strip_suffix(".ndjson.gz")?.parse().ok()
}

/// Takes records until the channel closes or `stop` is set, writing batches into the spool.
pub fn run_batcher(
    mut spool: Spool,
    rx: Receiver<Record>,
    config: &SpoolConfig,
    stop: &AtomicBool,
    wake_sender: &dyn Fn(),
) -> std::io::Result<()> {
    let mut lines: Vec<u8> = Vec::new();
    let mut events = 0usize;
    let mut cursors: BTreeMap<String, Value> = BTreeMap::new();
    let mut since = Instant::now();
    loop {
        let wait = config.flush_interval.saturating_sub(since.elapsed());
        let closed = match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(record) => {
                if let Some(event) = record.event {
                    if serde_json::to_writer(&mut lines, &Value::Object(event)).is_ok() {
                        lines.push(b'\n');
                        events += 1;
                    }
                }
                if let Some((key, cursor)) = record.cursor {
                    cursors.insert(key, cursor);
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let full = events >= config.max_batch_events || lines.len() >= config.max_batch_bytes;
        let due = since.elapsed() >= config.flush_interval;
        if (full || due || closed) && (events > 0 || !cursors.is_empty()) {
            // Backpressure: wait for room before spooling (and before reading more).
            while spool.bytes.load(Ordering::SeqCst) > config.max_bytes
                && !stop.load(Ordering::SeqCst)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            spool.commit(&lines, std::mem::take(&mut cursors))?;
            if events > 0 {
                wake_sender();
            }
            lines.clear();
            events = 0;
            since = Instant::now();
        } else if due {
            since = Instant::now();
        }
        if closed || (stop.load(Ordering::SeqCst) && events == 0 && cursors.is_empty()) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uncommitted_batches_are_dropped_on_open_and_cursors_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(dir.path(), Some("node:1")).expect("open");
        assert_eq!(spool.state().agent_id, "node_1");
        let mut cursors = BTreeMap::new();
        cursors.insert("file:/a".to_string(), json!({"inode": 1, "offset": 10}));
        spool.commit(b"{\"a\":1}\n", cursors).expect("commit");
        assert_eq!(Spool::pending(dir.path()).expect("pending").len(), 1);
        // A batch file written without its state commit (a crash in between).
        std::fs::write(
            dir.path().join("spool/00000000000000000001.ndjson.gz"),
            b"x",
        )
        .expect("orphan");
        let reopened = Spool::open(dir.path(), None).expect("reopen");
        assert_eq!(reopened.state().next_seq, 1);
        assert_eq!(reopened.state().agent_id, "node_1");
        assert_eq!(
            reopened.state().cursors["file:/a"],
            json!({"inode": 1, "offset": 10})
        );
        let pending = Spool::pending(dir.path()).expect("pending");
        assert_eq!(pending.iter().map(|f| f.seq).collect::<Vec<_>>(), [0]);
    }
}
