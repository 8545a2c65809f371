//! The write-ahead log: crowsnest's durability point.
//!
//! A sender is acknowledged only after its events are appended here and fsync'd. Everything
//! downstream (the index, detection) can be rebuilt from the log, so the store commits at its
//! own pace and the log is truncated only behind the store's durable position.
//!
//! # Why not `mrecordlog`
//! Quickwit's `mrecordlog` was the first candidate. Its latest release (0.4.0) ends every
//! "sync" with `BufWriter<tokio::fs::File>::flush()`, which hands bytes to the OS page cache but
//! never calls `fsync`/`fdatasync`, so an acknowledged batch can be lost on power failure; it
//! also keeps every untruncated record in memory, which would tie our memory use to the index
//! lag. What we need is small (append + fsync, replay, drop old segments), so it is written
//! here, with those two properties tested.
//!
//! # On-disk format
//! The log is a directory of segment files named `<first-position>.wal` (20 decimal digits, so
//! names sort by position). A segment starts with the 8-byte magic `CNWAL001`, then records:
//!
//! ```text
//! +----------------+----------------+----------------+-------------------+
//! | len: u32 LE    | crc32: u32 LE  | position: u64 LE | payload: len bytes |
//! +----------------+----------------+----------------+-------------------+
//! ```
//!
//! `crc32` (Castagnoli-free plain CRC-32, `crc32fast`) covers the position and the payload.
//! Positions are consecutive across segments and never reused, even after every segment has
//! been deleted: the newest segment is never deleted and its name carries the next position.
//!
//! # Invariants
//! * [`Wal::append`] writes a whole batch with one `write` and one `fdatasync` before returning;
//!   a batch is acknowledged only after that.
//! * A crash mid-append leaves a torn tail in the newest segment. [`Wal::open`] detects it (short
//!   header, short payload or checksum mismatch), truncates the file back to the last whole
//!   record and reports the bytes dropped; those records were never acknowledged.
//! * Damage inside an older segment is reported ([`ReplayStats::corrupt_segments`]) and replay
//!   continues with the next segment rather than stopping the server.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crowsnest_integrity::Chain;
use sha2::{Digest, Sha256};

mod tail;
pub use tail::{TailRead, WalTail};

const MAGIC: &[u8; 8] = b"CNWAL001";
const HEADER_LEN: usize = 16;
/// An active segment this large whose records are all durable downstream is closed (and
/// deleted) by [`Wal::truncate_through`].
pub const ROLL_DURABLE_BYTES: u64 = 1024 * 1024;
/// Largest payload one record may carry (a safety bound for replay, not a tuning knob).
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Errors of the write-ahead log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A filesystem operation failed.
    #[error("wal {op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A record is larger than [`MAX_RECORD_BYTES`].
    #[error("wal record of {0} bytes exceeds the limit of {MAX_RECORD_BYTES} bytes")]
    RecordTooLarge(usize),
    /// A file in the log directory is not a segment of ours.
    #[error("`{0}` is not a crowsnest wal segment (bad magic)")]
    NotASegment(PathBuf),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Tuning of the log.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// A segment is closed and a new one started once it is larger than this.
    pub segment_bytes: u64,
    /// `fdatasync` after each batch (turn off only for benchmarks measuring its cost).
    pub fsync: bool,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            fsync: true,
        }
    }
}

/// What [`Wal::open`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes of a torn tail cut off the newest segment (never acknowledged).
    pub torn_bytes_dropped: u64,
    /// Segments found.
    pub segments: usize,
}

/// What a replay read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records passed to the callback.
    pub records: u64,
    /// Segments in which damage stopped reading before their end.
    pub corrupt_segments: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    path: PathBuf,
}

/// An open write-ahead log. Not thread-safe by itself: one writer owns it.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    config: WalConfig,
    segments: Vec<Segment>,
    active: File,
    active_bytes: u64,
    next: u64,
    closed_bytes: u64,
    buffer: Vec<u8>,
    /// The integrity chain closed segments are sealed in ([`Wal::set_chain`]).
    chain: Option<Arc<Chain>>,
    /// SHA-256 of the active segment's bytes so far, kept while a chain is set: sealing a
    /// segment then costs no second read.
    hasher: Option<Sha256>,
}

impl Wal {
    /// Opens the log in `dir` (created if missing), repairing a torn tail.
    ///
    /// `min_next` is the smallest position the next append may use: pass one past the highest
    /// position the store has committed, so positions never go backwards even if the log
    /// directory was lost.
    pub fn open(
        dir: &Path,
        config: WalConfig,
        min_next: u64,
    ) -> Result<(Self, OpenReport), WalError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let mut segments = list_segments(dir)?;
        let mut report = OpenReport {
            segments: segments.len(),
            ..OpenReport::default()
        };
        let mut next = min_next;
        let mut closed_bytes = 0;
        for segment in segments.iter().rev().skip(1) {
            closed_bytes += file_len(&segment.path)?;
        }
        let (active, active_bytes) = match segments.last() {
            Some(last) => {
                let scan = scan_segment(&last.path, |_, _| {})?;
                next = next.max(scan.next.unwrap_or(last.first));
                next = next.max(last.first);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&last.path)
                    .map_err(io_err("open", &last.path))?;
                let len = file.metadata().map_err(io_err("stat", &last.path))?.len();
                if scan.valid_len < len {
                    report.torn_bytes_dropped = len - scan.valid_len;
                    tracing::warn!(
                        path = %last.path.display(),
                        bytes = report.torn_bytes_dropped,
                        "cut a torn tail off the newest wal segment"
                    );
                    file.set_len(scan.valid_len)
                        .map_err(io_err("truncate", &last.path))?;
                    file.sync_all().map_err(io_err("fsync", &last.path))?;
                }
                let mut file = file;
                let mut valid_len = scan.valid_len;
                if valid_len < MAGIC.len() as u64 {
                    // Crashed while creating the segment: write its header again.
                    file.seek(SeekFrom::Start(0))
                        .map_err(io_err("seek", &last.path))?;
                    file.write_all(MAGIC).map_err(io_err("write", &last.path))?;
                    file.sync_all().map_err(io_err("fsync", &last.path))?;
                    valid_len = MAGIC.len() as u64;
                }
                file.seek(SeekFrom::End(0))
                    .map_err(io_err("seek", &last.path))?;
                (file, valid_len)
            }
            None => {
                let (segment, file) = create_segment(dir, next)?;
                segments.push(segment);
                (file, MAGIC.len() as u64)
            }
        };
        let wal = Self {
            dir: dir.to_path_buf(),
            config,
            segments,
            active,
            active_bytes,
            next,
            closed_bytes,
            buffer: Vec::new(),
            chain: None,
            hasher: None,
        };
        Ok((wal, report))
    }

    /// Appends a batch of records and makes them durable (one write, one `fdatasync`).
    /// Returns the positions assigned, in order.
    pub fn append<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<Range<u64>, WalError> {
        let start = self.next;
        if payloads.is_empty() {
            return Ok(start..start);
        }
        if self.active_bytes >= self.config.segment_bytes {
            self.roll()?;
        }
        self.buffer.clear();
        let mut position = start;
        for payload in payloads {
            let payload = payload.as_ref();
            if payload.len() > MAX_RECORD_BYTES {
                return Err(WalError::RecordTooLarge(payload.len()));
            }
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&position.to_le_bytes());
            hasher.update(payload);
            // The length fits: it was checked against MAX_RECORD_BYTES above.
            self.buffer
                .extend_from_slice(&(payload.len() as u32).to_le_bytes());
            self.buffer
                .extend_from_slice(&hasher.finalize().to_le_bytes());
            self.buffer.extend_from_slice(&position.to_le_bytes());
            self.buffer.extend_from_slice(payload);
            position += 1;
        }
        let path = &self.segments[self.segments.len() - 1].path;
        if let Err(error) = self.active.write_all(&self.buffer) {
            // Leave no half batch behind that a later append would build on.
            let _ = self.active.set_len(self.active_bytes);
            let _ = self.active.seek(SeekFrom::Start(self.active_bytes));
            return Err(io_err("write", path)(error));
        }
        if self.config.fsync {
            if let Err(error) = self.active.sync_data() {
                // Not acknowledged, so not kept: after a failed fsync the kernel may have
                // dropped the dirty pages, and a later append must not build on them.
                let _ = self.active.set_len(self.active_bytes);
                let _ = self.active.seek(SeekFrom::Start(self.active_bytes));
                return Err(io_err("fsync", path)(error));
            }
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&self.buffer);
        }
        self.active_bytes += self.buffer.len() as u64;
        self.next = position;
        Ok(start..position)
    }

    /// Reads every record with a position >= `from`, oldest first, from disk.
    pub fn replay(
        &self,
        from: u64,
        mut f: impl FnMut(u64, Vec<u8>),
    ) -> Result<ReplayStats, WalError> {
        let mut stats = ReplayStats::default();
        for (i, segment) in self.segments.iter().enumerate() {
            let segment_end = self.segments.get(i + 1).map_or(u64::MAX, |s| s.first);
            if segment_end <= from {
                continue;
            }
            let scan = scan_segment(&segment.path, |position, payload| {
                if position >= from {
                    stats.records += 1;
                    f(position, payload);
                }
            })?;
            let is_active = i + 1 == self.segments.len();
            if scan.damaged && !is_active {
                tracing::error!(path = %segment.path.display(), "wal segment is damaged; records after the damage are skipped");
                stats.corrupt_segments.push(segment.path.clone());
            }
        }
        Ok(stats)
    }

    /// Deletes closed segments whose records are all at or below `position` (they are durable
    /// downstream). When every record of the active segment is at or below `position` too and it
    /// holds at least [`ROLL_DURABLE_BYTES`], a new active segment is started first so the old
    /// one can go: on a small disk the log then shrinks after each store commit instead of
    /// keeping up to a whole segment of durable records. Returns the number of segments deleted.
    pub fn truncate_through(&mut self, position: u64) -> Result<usize, WalError> {
        if self.next > 0 && self.next - 1 <= position && self.active_bytes >= ROLL_DURABLE_BYTES {
            self.roll()?;
        }
        let mut deleted = 0;
        while self.segments.len() > 1 && self.segments[1].first <= position + 1 {
            let segment = self.segments.remove(0);
            let len = file_len(&segment.path)?;
            fs::remove_file(&segment.path).map_err(io_err("remove", &segment.path))?;
            if let Some(chain) = &self.chain {
                chain.delete_wal_segment(
                    &segment.path,
                    &format!(
                        "wal truncated: records through position {position} are durable downstream"
                    ),
                );
            }
            self.closed_bytes = self.closed_bytes.saturating_sub(len);
            deleted += 1;
        }
        if deleted > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(deleted)
    }

    /// Starts a new segment now (called automatically when the active one is full).
    /// An empty active segment is kept as it is (its name already carries the next position).
    pub fn roll(&mut self) -> Result<(), WalError> {
        if self.active_bytes <= MAGIC.len() as u64 {
            return Ok(());
        }
        let (segment, file) = create_segment(&self.dir, self.next)?;
        if let (Some(chain), Some(hasher)) = (&self.chain, self.hasher.take()) {
            let closed = &self.segments[self.segments.len() - 1];
            chain.seal_wal_segment(
                &closed.path,
                hasher.finalize().into(),
                self.active_bytes,
                closed.first,
                self.next,
            );
            let mut fresh = Sha256::new();
            fresh.update(MAGIC);
            self.hasher = Some(fresh);
        }
        self.closed_bytes += self.active_bytes;
        self.segments.push(segment);
        self.active = file;
        self.active_bytes = MAGIC.len() as u64;
        Ok(())
    }

    /// Seals every segment closed from now on in `chain` (its SHA-256, once, as it is written)
    /// and records truncations there. Reads the active segment once to hash what it holds.
    pub fn set_chain(&mut self, chain: Arc<Chain>) -> Result<(), WalError> {
        let path = &self.segments[self.segments.len() - 1].path;
        let file = File::open(path).map_err(io_err("open", path))?;
        let mut reader = BufReader::with_capacity(1 << 20, file.take(self.active_bytes));
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(io_err("read", path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        self.hasher = Some(hasher);
        self.chain = Some(chain);
        Ok(())
    }

    /// The position the next appended record will get.
    pub fn next_position(&self) -> u64 {
        self.next
    }

    /// Bytes on disk, all segments.
    pub fn size_bytes(&self) -> u64 {
        self.closed_bytes + self.active_bytes
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Bytes on disk of the segments holding records at or after `position`: what a reader
    /// that still needs `position` keeps from being truncated.
    pub fn bytes_from(&self, position: u64) -> u64 {
        let last = self.segments.len().saturating_sub(1);
        let mut bytes = self.active_bytes;
        for (i, segment) in self.segments.iter().enumerate().take(last) {
            let end = self.segments[i + 1].first;
            if end > position {
                bytes += file_len(&segment.path).unwrap_or(0);
            }
        }
        bytes
    }
}

fn file_len(path: &Path) -> Result<u64, WalError> {
    Ok(fs::metadata(path).map_err(io_err("stat", path))?.len())
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn create_segment(dir: &Path, first: u64) -> Result<(Segment, File), WalError> {
    let path = dir.join(format!("{first:020}.wal"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    file.write_all(MAGIC).map_err(io_err("write", &path))?;
    file.sync_all().map_err(io_err("fsync", &path))?;
    sync_dir(dir)?;
    Ok((Segment { first, path }, file))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>, WalError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        let Ok(first) = stem.parse::<u64>() else {
            continue;
        };
        segments.push(Segment {
            first,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first);
    Ok(segments)
}

struct Scan {
    /// Offset just past the last whole, valid record.
    valid_len: u64,
    /// One past the last valid record's position.
    next: Option<u64>,
    /// Reading stopped before the end of the file.
    damaged: bool,
}

fn scan_segment(path: &Path, mut f: impl FnMut(u64, Vec<u8>)) -> Result<Scan, WalError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    if len < MAGIC.len() as u64 {
        // Crashed while creating the segment: treat as empty.
        return Ok(Scan {
            valid_len: 0,
            next: None,
            damaged: len > 0,
        });
    }
    reader
        .read_exact(&mut magic)
        .map_err(io_err("read", path))?;
    if &magic != MAGIC {
        return Err(WalError::NotASegment(path.to_path_buf()));
    }
    let mut offset = MAGIC.len() as u64;
    let mut next = None;
    let mut header = [0u8; HEADER_LEN];
    loop {
        if offset == len {
            return Ok(Scan {
                valid_len: offset,
                next,
                damaged: false,
            });
        }
        let damaged = Scan {
            valid_len: offset,
            next,
            damaged: true,
        };
        if len - offset < HEADER_LEN as u64 {
            return Ok(damaged);
        }
        reader
            .read_exact(&mut header)
            .map_err(io_err("read", path))?;
        let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut pos_bytes = [0u8; 8];
        pos_bytes.copy_from_slice(&header[8..16]);
        let position = u64::from_le_bytes(pos_bytes);
        if size > MAX_RECORD_BYTES || len - offset - (HEADER_LEN as u64) < size as u64 {
            return Ok(damaged);
        }
        let mut payload = vec![0u8; size];
        reader
            .read_exact(&mut payload)
            .map_err(io_err("read", path))?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&pos_bytes);
        hasher.update(&payload);
        if hasher.finalize() != crc || next.is_some_and(|n| n != position) {
            return Ok(damaged);
        }
        offset += (HEADER_LEN + size) as u64;
        next = Some(position + 1);
        f(position, payload);
    }
}

#[cfg(test)]
mod tests;
