//! Exactly-once ingest for shippers that retry: batch ids, the highest acknowledged sequence
//! per stream, and how that state survives `kill -9` exactly as the WAL does.
//!
//! A shipper (the `crowsnest agent`) sends each batch with
//! `X-Crowsnest-Batch: <agent-id>:<stream>:<seq>`, `seq` strictly increasing per
//! `<agent-id>:<stream>` and retried until acknowledged. The server:
//!
//! 1. [`Dedup::begin`]: a `seq` at or below the stream's acknowledged one is a duplicate
//!    (answered 200 with `duplicate: true`, nothing stored); one already in flight is answered
//!    503 so the retry comes back after the first attempt finished;
//! 2. stamps every event of the batch with [`BATCH_FIELD`] = the header value, so the batch id
//!    is written in the *same* WAL append (and fsync) as the events;
//! 3. [`Dedup::finish`] after the append: the sequence counts as acknowledged.
//!
//! Durability: the in-memory map only holds sequences whose events are in the WAL. The indexer
//! [`observe`](Dedup::observe)s every event it indexes and [`persist`](Dedup::persist)s the map
//! (write, fsync, rename) after each store commit and *before* it truncates the WAL; on start the
//! snapshot is loaded and WAL replay observes the rest. So a batch is either in the WAL/store with
//! its id known after a restart, or not stored at all and its retry is taken.
//!
//! Memory is bounded: at most [`MAX_STREAMS`] streams are remembered (the least recently
//! acknowledged are forgotten first, which can only let an ancient retry through, never drop
//! data). The streams of one-off senders (agent id starting with [`ONE_OFF_PREFIX`]: each
//! `crowsnest ingest` run names its own) are forgotten [`ONE_OFF_TTL`] after their last batch,
//! so a cron job of ingest runs does not fill the map or the snapshot.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crowsnest_model::Event;

/// Field stamped on every event of a deduplicated batch (`crowsnest.batch`).
pub const BATCH_FIELD: &str = "crowsnest.batch";
/// The request header carrying the batch id.
pub const BATCH_HEADER: &str = "x-crowsnest-batch";
/// Most streams remembered.
pub const MAX_STREAMS: usize = 100_000;
/// Agent ids of one-off senders (`crowsnest ingest` runs): their streams are forgotten
/// [`ONE_OFF_TTL`] after their last batch.
pub const ONE_OFF_PREFIX: &str = "crowsnest-ingest-";
/// How long a one-off sender's stream is remembered after its last batch (its retries end
/// within minutes).
pub const ONE_OFF_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
const STATE_FILE: &str = "dedup.json";

/// A parsed batch id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchId {
    /// `<agent-id>:<stream>`.
    pub stream: String,
    /// The batch's sequence number.
    pub seq: u64,
}

/// Why a batch id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchIdError {
    /// Not `<agent-id>:<stream>:<seq>` with a decimal seq and at most 200 bytes.
    #[error("expected `<agent-id>:<stream>:<seq>` (seq a decimal integer, at most 200 bytes), found `{0}`")]
    Malformed(String),
}

impl BatchId {
    /// Parses `<agent-id>:<stream>:<seq>`.
    pub fn parse(text: &str) -> Result<Self, BatchIdError> {
        let bad = || BatchIdError::Malformed(text.chars().take(200).collect());
        if text.len() > 200 {
            return Err(bad());
        }
        let (stream, seq) = text.rsplit_once(':').ok_or_else(bad)?;
        if !stream.contains(':') || stream.starts_with(':') || stream.ends_with(':') {
            return Err(bad());
        }
        let seq = seq.parse::<u64>().map_err(|_| bad())?;
        Ok(Self {
            stream: stream.to_string(),
            seq,
        })
    }

    /// The header/field form.
    pub fn render(&self) -> String {
        format!("{}:{}", self.stream, self.seq)
    }
}

/// What [`Dedup::begin`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// New: store it, then call [`Dedup::finish`].
    Accept,
    /// Already acknowledged: answer success without storing.
    Duplicate,
    /// The same batch is being stored right now: ask the client to retry.
    InFlight,
}

#[derive(Default)]
struct State {
    /// stream → (highest acknowledged seq, logical clock of the last update).
    acked: HashMap<String, (u64, u64)>,
    in_flight: HashSet<(String, u64)>,
    clock: u64,
    dirty: bool,
    /// One-off streams and when each last moved.
    one_off: HashMap<String, std::time::Instant>,
}

impl State {
    fn raise(&mut self, stream: &str, seq: u64) {
        if stream.starts_with(ONE_OFF_PREFIX) {
            self.one_off
                .insert(stream.to_string(), std::time::Instant::now());
        }
        self.clock += 1;
        let clock = self.clock;
        match self.acked.get_mut(stream) {
            Some(entry) => {
                if seq > entry.0 {
                    *entry = (seq, clock);
                    self.dirty = true;
                }
            }
            None => {
                self.acked.insert(stream.to_string(), (seq, clock));
                self.dirty = true;
                if self.acked.len() > MAX_STREAMS {
                    self.evict();
                }
            }
        }
    }

    /// Forgets one-off streams idle for `ttl`.
    fn expire(&mut self, ttl: std::time::Duration) {
        let before = self.acked.len();
        let acked = &mut self.acked;
        self.one_off.retain(|stream, seen| {
            let keep = seen.elapsed() < ttl;
            if !keep {
                acked.remove(stream);
            }
            keep
        });
        if self.acked.len() != before {
            self.dirty = true;
        }
    }

    fn evict(&mut self) {
        let mut by_age: Vec<(u64, String)> =
            self.acked.iter().map(|(k, v)| (v.1, k.clone())).collect();
        by_age.sort_unstable();
        let excess = self.acked.len().saturating_sub(MAX_STREAMS * 9 / 10);
        for (_, stream) in by_age.into_iter().take(excess) {
            self.acked.remove(&stream);
            self.one_off.remove(&stream);
        }
    }
}

/// The deduplication state of one server.
pub struct Dedup {
    path: PathBuf,
    state: Mutex<State>,
}

impl Dedup {
    /// Loads `<data_dir>/dedup.json` (absent: empty).
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(STATE_FILE);
        let mut state = State::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let map: HashMap<String, u64> = serde_json::from_slice(&bytes).map_err(|e| {
                    anyhow::anyhow!(
                        "`{}` should be a JSON object of stream → seq: {e}",
                        path.display()
                    )
                })?;
                for (stream, seq) in map {
                    state.raise(&stream, seq);
                }
                state.dirty = false;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(anyhow::anyhow!("reading `{}`: {error}", path.display())),
        }
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides whether a batch is new; an accepted one is in flight until [`Dedup::finish`].
    pub fn begin(&self, id: &BatchId) -> Admission {
        let mut state = self.lock();
        if state
            .acked
            .get(&id.stream)
            .is_some_and(|(acked, _)| id.seq <= *acked)
        {
            return Admission::Duplicate;
        }
        if !state.in_flight.insert((id.stream.clone(), id.seq)) {
            return Admission::InFlight;
        }
        Admission::Accept
    }

    /// Ends an accepted batch: `stored` when its events are in the WAL.
    pub fn finish(&self, id: &BatchId, stored: bool) {
        let mut state = self.lock();
        state.in_flight.remove(&(id.stream.clone(), id.seq));
        if stored {
            state.raise(&id.stream, id.seq);
        }
    }

    /// Learns a batch id from an event read back from the WAL or being indexed.
    pub fn observe(&self, event: &Event) {
        if let Some(id) = event
            .get_str(BATCH_FIELD)
            .and_then(|t| BatchId::parse(t).ok())
        {
            self.lock().raise(&id.stream, id.seq);
        }
    }

    /// The highest acknowledged sequence of a stream.
    pub fn acked(&self, stream: &str) -> Option<u64> {
        self.lock().acked.get(stream).map(|(seq, _)| *seq)
    }

    /// [`Dedup::persist`], logging a failure; the WAL must not be truncated when false.
    pub fn persisted(&self) -> bool {
        match self.persist() {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, "writing the dedup state failed; wal kept");
                false
            }
        }
    }

    /// Writes the state durably (temp file, fsync, rename, directory fsync) when it changed.
    /// Call before the WAL is truncated.
    pub fn persist(&self) -> std::io::Result<()> {
        self.persist_expiring(ONE_OFF_TTL)
    }

    fn persist_expiring(&self, ttl: std::time::Duration) -> std::io::Result<()> {
        let snapshot: HashMap<String, u64> = {
            let mut state = self.lock();
            state.expire(ttl);
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            state
                .acked
                .iter()
                .map(|(k, (seq, _))| (k.clone(), *seq))
                .collect()
        };
        let result = write_atomic(&self.path, &snapshot);
        if result.is_err() {
            self.lock().dirty = true;
        }
        result
    }
}

/// An accepted batch: stamps its events, and on drop (also when the request is cancelled)
/// ends it, as stored only after [`Admitted::stored`].
pub struct Admitted<'a> {
    dedup: &'a Dedup,
    id: BatchId,
    stored: bool,
}

impl Admitted<'_> {
    /// Writes the batch id into every event (so it is in the same WAL append).
    pub fn stamp(&self, events: &mut [Event]) {
        let text = serde_json::Value::String(self.id.render());
        for event in events {
            event.set(BATCH_FIELD, text.clone());
        }
    }

    /// The batch's events are durable.
    pub fn stored(mut self) {
        self.stored = true;
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.dedup.finish(&self.id, self.stored);
    }
}

/// What an ingest handler does with a request.
pub enum Gate<'a> {
    /// No batch id: store as usual.
    Plain,
    /// A new batch.
    New(Admitted<'a>),
    /// Already stored: answer success, store nothing.
    Duplicate,
}

/// Why [`gate`] refused a request; the HTTP layer answers 400 for a bad header and 503 (retry
/// after a second) while the same batch is in flight.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GateError {
    /// The header holds more than visible ASCII.
    #[error("`X-Crowsnest-Batch` should be ASCII")]
    NotAscii,
    /// The header is not a batch id.
    #[error("`X-Crowsnest-Batch`: {0}")]
    Malformed(#[from] BatchIdError),
    /// The same batch is being stored by another request.
    #[error("batch `{0}` is being stored by another request; retry")]
    InFlight(String),
}

/// Admits the batch named by the raw value of the `X-Crowsnest-Batch` header ([`BATCH_HEADER`]),
/// when the request has one; this module knows nothing of HTTP.
///
/// # Errors
///
/// [`GateError`]: a header that is not an ASCII batch id, or a batch in flight.
pub fn gate<'a>(dedup: &'a Dedup, header: Option<&[u8]>) -> Result<Gate<'a>, GateError> {
    let Some(value) = header else {
        return Ok(Gate::Plain);
    };
    // Visible ASCII (and tab), as HTTP header values are read as text.
    let text = std::str::from_utf8(value)
        .ok()
        .filter(|t| t.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
        .ok_or(GateError::NotAscii)?;
    let id = BatchId::parse(text)?;
    Ok(match dedup.begin(&id) {
        Admission::Duplicate => Gate::Duplicate,
        Admission::InFlight => return Err(GateError::InFlight(id.render())),
        Admission::Accept => Gate::New(Admitted {
            dedup,
            id,
            stored: false,
        }),
    })
}

fn write_atomic(path: &Path, snapshot: &HashMap<String, u64>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
    crowsnest_util::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(text: &str) -> BatchId {
        BatchId::parse(text).expect("valid id")
    }

    #[test]
    fn one_off_streams_are_forgotten_after_their_ttl_and_agents_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dedup = Dedup::open(dir.path()).expect("open");
        for text in [
            "crowsnest-ingest-7-1f:f0l0:1",
            "crowsnest-ingest-7-1f:f0l0:2",
            "node-a:spool:5",
        ] {
            let id = id(text);
            assert_eq!(dedup.begin(&id), Admission::Accept);
            dedup.finish(&id, true);
        }
        dedup
            .persist_expiring(std::time::Duration::from_secs(3600))
            .expect("persist");
        assert_eq!(
            dedup.acked("crowsnest-ingest-7-1f:f0l0"),
            Some(2),
            "kept within its TTL"
        );
        assert_eq!(
            dedup.begin(&id("crowsnest-ingest-7-1f:f0l0:2")),
            Admission::Duplicate
        );
        dedup
            .persist_expiring(std::time::Duration::ZERO)
            .expect("persist");
        assert_eq!(
            dedup.acked("crowsnest-ingest-7-1f:f0l0"),
            None,
            "forgotten past its TTL"
        );
        assert_eq!(
            dedup.acked("node-a:spool"),
            Some(5),
            "an agent's stream stays"
        );
        let snapshot: HashMap<String, u64> =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATE_FILE)).expect("read"))
                .expect("json");
        assert_eq!(snapshot.len(), 1, "{snapshot:?}");
    }

    #[test]
    fn the_gate_admits_a_batch_once_and_refuses_bad_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dedup = Dedup::open(dir.path()).expect("open");
        assert!(matches!(gate(&dedup, None), Ok(Gate::Plain)));
        let header: Option<&[u8]> = Some(b"agent-1:spool:7");
        let Ok(Gate::New(admitted)) = gate(&dedup, header) else {
            panic!("a new batch is admitted");
        };
        assert_eq!(
            gate(&dedup, header).err(),
            Some(GateError::InFlight("agent-1:spool:7".into())),
            "the same batch while the first is in flight"
        );
        admitted.stored();
        assert!(matches!(gate(&dedup, header), Ok(Gate::Duplicate)));
        assert_eq!(
            gate(&dedup, Some("a:s:1\u{e9}".as_bytes())).err(),
            Some(GateError::NotAscii)
        );
        let error = gate(&dedup, Some(b"no-colons")).err();
        assert!(matches!(error, Some(GateError::Malformed(_))), "{error:?}");
        assert!(error
            .map(|e| e.to_string())
            .is_some_and(|m| m.starts_with("`X-Crowsnest-Batch`: expected")));
    }

    #[test]
    fn parses_and_refuses_ids() {
        assert_eq!(
            id("node-1:logs:42"),
            BatchId {
                stream: "node-1:logs".into(),
                seq: 42
            }
        );
        for bad in ["", "a:1", "a:b:c", ":b:1", "a:b:-1", "a::"] {
            assert!(BatchId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicate_in_flight_and_new() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dedup = Dedup::open(dir.path()).expect("open");
        let first = id("a:s:1");
        assert_eq!(dedup.begin(&first), Admission::Accept);
        assert_eq!(dedup.begin(&first), Admission::InFlight);
        dedup.finish(&first, true);
        assert_eq!(dedup.begin(&first), Admission::Duplicate);
        let failed = id("a:s:2");
        assert_eq!(dedup.begin(&failed), Admission::Accept);
        dedup.finish(&failed, false);
        assert_eq!(dedup.begin(&failed), Admission::Accept);
        assert_eq!(dedup.acked("a:s"), Some(1));
    }

    #[test]
    fn survives_reopen_only_after_persist_and_learns_from_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dedup = Dedup::open(dir.path()).expect("open");
        let first = id("a:s:7");
        assert_eq!(dedup.begin(&first), Admission::Accept);
        dedup.finish(&first, true);
        assert_eq!(Dedup::open(dir.path()).expect("reopen").acked("a:s"), None);
        dedup.persist().expect("persist");
        let reopened = Dedup::open(dir.path()).expect("reopen");
        assert_eq!(reopened.acked("a:s"), Some(7));
        let mut event = Event::default();
        event.set(BATCH_FIELD, json!("a:s:9"));
        reopened.observe(&event);
        assert_eq!(reopened.begin(&id("a:s:9")), Admission::Duplicate);
        assert_eq!(reopened.begin(&id("a:s:10")), Admission::Accept);
    }
}
