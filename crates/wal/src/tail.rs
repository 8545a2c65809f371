//! Reading a live log from a position on, without the writer's lock.
//!
//! Forwarding outputs keep their own place in the log: the log is their disk buffer. A
//! [`WalTail`] follows the segment files as the writer appends to them, reading only records
//! below a position the caller knows to be acknowledged (`until`), so a record that is still
//! being written is never looked at.
//!
//! The writer may delete old segments while a tail lags behind (the server caps how much log an
//! output may hold back). The tail notices the gap, continues at the oldest record still on disk
//! and reports how many records it skipped, so the loss is counted rather than silent.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{io_err, list_segments, WalError, HEADER_LEN, MAGIC, MAX_RECORD_BYTES};

/// How much a tail reads from a segment file at once.
const CHUNK: usize = 1 << 20;

/// A reader that follows the log from a position on.
#[derive(Debug)]
pub struct WalTail {
    dir: PathBuf,
    next: u64,
    open: Option<OpenSegment>,
}

/// What one [`WalTail::read`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TailRead {
    /// Records passed to the callback.
    pub records: usize,
    /// Payload bytes passed to the callback.
    pub bytes: usize,
    /// Positions that were wanted but are gone (deleted segments) or unreadable (damage).
    pub skipped: u64,
}

#[derive(Debug)]
struct OpenSegment {
    first: u64,
    path: PathBuf,
    file: File,
    /// File offset of `buf[0]`.
    buf_start: u64,
    buf: Vec<u8>,
    /// File offset of the next record header.
    offset: u64,
}

enum Step {
    /// A whole record at the current offset.
    Record { position: u64, size: usize },
    /// Nothing more in this file for now.
    End,
    /// Bytes at the current offset are not a valid record.
    Damaged,
}

impl WalTail {
    /// A tail of the log in `dir` that will read from position `from` on.
    pub fn new(dir: &Path, from: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            next: from,
            open: None,
        }
    }

    /// The position of the next record this tail will hand out.
    pub fn next_position(&self) -> u64 {
        self.next
    }

    /// Reads records with positions in `[next_position, until)`, oldest first, stopping after
    /// `max_records` records or `max_bytes` payload bytes (at least one record is read when one
    /// is there). Returns what it read; `skipped` counts positions lost to deleted or damaged
    /// segments.
    ///
    /// # Errors
    ///
    /// When the directory or a segment cannot be read.
    pub fn read(
        &mut self,
        until: u64,
        max_records: usize,
        max_bytes: usize,
        mut f: impl FnMut(u64, Vec<u8>),
    ) -> Result<TailRead, WalError> {
        let mut read = TailRead::default();
        while self.next < until && read.records < max_records.max(1) && read.bytes < max_bytes {
            let Some(segment) = self.open_segment(until, &mut read)? else {
                break;
            };
            match segment.step()? {
                Step::Record { position, size } => {
                    if position >= until {
                        break;
                    }
                    let start = (segment.offset - segment.buf_start) as usize + HEADER_LEN;
                    let payload = segment.buf[start..start + size].to_vec();
                    segment.offset += (HEADER_LEN + size) as u64;
                    if position < self.next {
                        continue;
                    }
                    if position > self.next {
                        read.skipped += position - self.next;
                    }
                    self.next = position + 1;
                    read.records += 1;
                    read.bytes += size;
                    f(position, payload);
                }
                Step::End | Step::Damaged => {
                    // Move on only if a later segment exists; otherwise this is the active
                    // segment and the records below `until` are simply not written yet (which
                    // cannot happen for acknowledged ones) or the file is damaged at its end.
                    let first = segment.first;
                    let later = list_segments(&self.dir)?
                        .into_iter()
                        .find(|s| s.first > first);
                    match later {
                        Some(later) => {
                            if later.first > self.next {
                                read.skipped += later.first - self.next;
                                self.next = later.first;
                            }
                            self.open = None;
                        }
                        None => break,
                    }
                }
            }
        }
        Ok(read)
    }

    /// The segment holding `self.next`, opened if needed. `None` when there is nothing to read.
    fn open_segment(
        &mut self,
        until: u64,
        read: &mut TailRead,
    ) -> Result<Option<&mut OpenSegment>, WalError> {
        if self.open.is_none() {
            let segments = list_segments(&self.dir)?;
            let Some(oldest) = segments.first() else {
                return Ok(None);
            };
            if oldest.first > self.next {
                // Deleted before we read them.
                let resume = oldest.first.min(until);
                read.skipped += resume - self.next;
                self.next = resume;
            }
            let Some(segment) = segments.iter().rev().find(|s| s.first <= self.next) else {
                return Ok(None);
            };
            self.open = Some(OpenSegment::open(segment.first, &segment.path)?);
        }
        Ok(self.open.as_mut())
    }
}

impl OpenSegment {
    fn open(first: u64, path: &Path) -> Result<Self, WalError> {
        let file = File::open(path).map_err(io_err("open", path))?;
        let mut segment = Self {
            first,
            path: path.to_path_buf(),
            file,
            buf_start: 0,
            buf: Vec::new(),
            offset: 0,
        };
        if segment.fill(MAGIC.len())? {
            if &segment.buf[..MAGIC.len()] != MAGIC {
                return Err(WalError::NotASegment(path.to_path_buf()));
            }
            segment.offset = MAGIC.len() as u64;
        }
        Ok(segment)
    }

    /// Makes `buf` cover `need` bytes from `offset`; false when the file is shorter.
    fn fill(&mut self, need: usize) -> Result<bool, WalError> {
        let have = (self.buf_start + self.buf.len() as u64).saturating_sub(self.offset);
        if self.offset >= self.buf_start && have >= need as u64 {
            return Ok(true);
        }
        let want = need.max(CHUNK);
        self.buf.clear();
        self.buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            let n = self
                .file
                .read_at(&mut self.buf[got..], self.offset + got as u64)
                .map_err(io_err("read", &self.path))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        self.buf.truncate(got);
        self.buf_start = self.offset;
        Ok(got >= need)
    }

    fn step(&mut self) -> Result<Step, WalError> {
        if self.offset < MAGIC.len() as u64 {
            // The file was shorter than its magic when opened: look again.
            if !self.fill(MAGIC.len())? {
                return Ok(Step::End);
            }
            if &self.buf[..MAGIC.len()] != MAGIC {
                return Ok(Step::Damaged);
            }
            self.offset = MAGIC.len() as u64;
        }
        if !self.fill(HEADER_LEN)? {
            return Ok(Step::End);
        }
        let at = (self.offset - self.buf_start) as usize;
        let header = &self.buf[at..at + HEADER_LEN];
        let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut pos_bytes = [0u8; 8];
        pos_bytes.copy_from_slice(&header[8..16]);
        let position = u64::from_le_bytes(pos_bytes);
        if size > MAX_RECORD_BYTES {
            return Ok(Step::Damaged);
        }
        if !self.fill(HEADER_LEN + size)? {
            return Ok(Step::End);
        }
        let at = (self.offset - self.buf_start) as usize;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&pos_bytes);
        hasher.update(&self.buf[at + HEADER_LEN..at + HEADER_LEN + size]);
        if hasher.finalize() != crc {
            return Ok(Step::Damaged);
        }
        Ok(Step::Record { position, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Wal, WalConfig};

    fn collect(tail: &mut WalTail, until: u64, max: usize) -> (Vec<(u64, Vec<u8>)>, TailRead) {
        let mut out = Vec::new();
        let read = tail
            .read(until, max, usize::MAX, |p, d| out.push((p, d)))
            .expect("read");
        (out, read)
    }

    fn small() -> WalConfig {
        WalConfig {
            segment_bytes: 100,
            fsync: false,
        }
    }

    #[test]
    fn follows_appends_across_segments_and_stops_at_until() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) = Wal::open(dir.path(), small(), 0).expect("open");
        let mut tail = WalTail::new(dir.path(), 0);
        assert_eq!(collect(&mut tail, 0, 10).0, vec![]);
        for i in 0..20u32 {
            let payload = format!("record-{i:02}-{}", "x".repeat(i as usize));
            wal.append(&[payload.as_bytes()]).expect("append");
        }
        assert!(wal.segment_count() > 3, "the test wants several segments");
        // Only the first 5 are "acknowledged".
        let (got, read) = collect(&mut tail, 5, 100);
        assert_eq!(
            got.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(got[3].1, b"record-03-xxx");
        assert_eq!(read.skipped, 0);
        // In pieces of 4, the rest.
        let mut positions = Vec::new();
        loop {
            let (got, _) = collect(&mut tail, 20, 4);
            if got.is_empty() {
                break;
            }
            assert!(got.len() <= 4);
            positions.extend(got.into_iter().map(|(p, _)| p));
        }
        assert_eq!(positions, (5..20).collect::<Vec<_>>());
        assert_eq!(tail.next_position(), 20);
        // New appends after catching up are seen.
        wal.append(&[b"late".as_slice()]).expect("append");
        let (got, _) = collect(&mut tail, 21, 10);
        assert_eq!(got, vec![(20, b"late".to_vec())]);
    }

    #[test]
    fn starts_in_the_middle_of_a_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) = Wal::open(dir.path(), WalConfig::default(), 0).expect("open");
        wal.append(&[b"a".as_slice(), b"b", b"c", b"d"])
            .expect("append");
        let mut tail = WalTail::new(dir.path(), 2);
        let (got, _) = collect(&mut tail, 4, 10);
        assert_eq!(got, vec![(2, b"c".to_vec()), (3, b"d".to_vec())]);
    }

    #[test]
    fn counts_records_lost_to_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) = Wal::open(dir.path(), small(), 0).expect("open");
        for i in 0..30u32 {
            wal.append(&[format!("payload number {i:03}").as_bytes()])
                .expect("append");
        }
        let mut tail = WalTail::new(dir.path(), 0);
        let (got, _) = collect(&mut tail, 30, 2);
        assert_eq!(got.len(), 2);
        wal.truncate_through(14).expect("truncate");
        let mut positions = Vec::new();
        let mut skipped = 0;
        loop {
            let (got, read) = collect(&mut tail, 30, 100);
            skipped += read.skipped;
            if got.is_empty() {
                break;
            }
            positions.extend(got.into_iter().map(|(p, _)| p));
        }
        // The tail had a segment open, which it may finish reading (the file stays readable);
        // every position is either read or counted as skipped, none twice.
        assert_eq!(positions.first(), Some(&2));
        assert_eq!(positions.len() as u64 + skipped + 2, 30);
        assert!(positions.windows(2).all(|w| w[1] > w[0]));
        // A tail that starts after the truncation skips what is gone, and says how much.
        let mut late = WalTail::new(dir.path(), 0);
        let (got, read) = collect(&mut late, 30, 100);
        let first = got.first().expect("some records survive").0;
        assert!(first > 0 && first <= 15, "resumed at {first}");
        assert_eq!(read.skipped, first);
        assert_eq!(got.last().map(|(p, _)| *p), Some(29));
    }

    #[test]
    fn damaged_closed_segment_is_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) = Wal::open(dir.path(), small(), 0).expect("open");
        for i in 0..12u32 {
            wal.append(&[format!("payload number {i:03}").as_bytes()])
                .expect("append");
        }
        let first_segment = wal.segments[0].path.clone();
        let bytes = std::fs::read(&first_segment).expect("read");
        let mut broken = bytes.clone();
        let last = broken.len() - 1;
        broken[last] ^= 0xff;
        std::fs::write(&first_segment, broken).expect("write");
        let mut tail = WalTail::new(dir.path(), 0);
        let mut positions = Vec::new();
        let mut skipped = 0;
        loop {
            let (got, read) = collect(&mut tail, 12, 100);
            skipped += read.skipped;
            if got.is_empty() {
                break;
            }
            positions.extend(got.into_iter().map(|(p, _)| p));
        }
        assert_eq!(positions.len() as u64 + skipped, 12);
        assert!(skipped >= 1);
        assert_eq!(positions.last(), Some(&11));
    }
}
