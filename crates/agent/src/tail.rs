//! Following one file by name across rotation and truncation, with a resumable cursor.
//!
//! A [`Tail`] reads whole lines (split on `\n`) and reports, with each, the byte offset just
//! past it; the caller stores the offset of the last line it has *handed on* as the
//! [`Cursor`] `{inode, offset}`. Then:
//!
//! * **rotation** (the file is renamed, a new one created at the path: Docker's `max-size`,
//!   logrotate's `create`): the old file is read to its end through the open handle before the
//!   new one is opened from offset 0, so no line written before the rename is lost;
//! * **restart after a rotation**: a cursor whose inode is no longer at the path is looked
//!   for among the path's siblings (`x.log.1`, `x.log.2.gz` is skipped); found, the rest of
//!   that file is read first;
//! * **truncation** (`copytruncate`, `> file`): a file shorter than the read offset is read
//!   again from 0.
//!
//! Memory: at most one read chunk plus one unfinished line (bounded by `max_line`) per file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const CHUNK: usize = 64 * 1024;

/// Where reading stopped: the file's inode and the offset past the last line handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Inode of the file the offset is in.
    pub inode: u64,
    /// Byte offset just past the last line handed on.
    pub offset: u64,
}

/// One line read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// The bytes, without `\n` (lossily decoded as UTF-8).
    pub text: String,
    /// Resume here to read the next line.
    pub cursor: Cursor,
}

struct Open {
    file: File,
    inode: u64,
    /// Offset of the next byte to read.
    read: u64,
    /// Bytes read but not yet ended by `\n`.
    partial: Vec<u8>,
}

impl Open {
    fn at(file: File, offset: u64) -> std::io::Result<Self> {
        let meta = file.metadata()?;
        let mut open = Self {
            file,
            inode: meta.ino(),
            read: 0,
            partial: Vec::new(),
        };
        let start = if meta.len() < offset { 0 } else { offset };
        open.file.seek(SeekFrom::Start(start))?;
        open.read = start;
        Ok(open)
    }

    /// Reads what is there now; `out` gets complete lines, at most `budget` of them.
    fn drain(
        &mut self,
        out: &mut Vec<RawLine>,
        budget: usize,
        max_line: usize,
    ) -> std::io::Result<bool> {
        let len = self.file.metadata()?.len();
        if len < self.read {
            // Truncated in place: start over.
            self.file.seek(SeekFrom::Start(0))?;
            self.read = 0;
            self.partial.clear();
        }
        let mut buf = vec![0u8; CHUNK];
        let mut any = false;
        while out.len() < budget {
            let n = self.file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            any = true;
            let mut start = 0;
            for (i, byte) in buf[..n].iter().enumerate() {
                if *byte == b'\n' {
                    let room = max_line.saturating_sub(self.partial.len());
                    let piece = &buf[start..i];
                    self.partial
                        .extend_from_slice(&piece[..piece.len().min(room)]);
                    let end = self.read + i as u64 + 1;
                    let text = String::from_utf8_lossy(&self.partial).into_owned();
                    self.partial.clear();
                    out.push(RawLine {
                        text,
                        cursor: Cursor {
                            inode: self.inode,
                            offset: end,
                        },
                    });
                    start = i + 1;
                    if out.len() >= budget {
                        // Give back what follows: the next poll reads it again.
                        self.file.seek(SeekFrom::Start(end))?;
                        self.read = end;
                        return Ok(true);
                    }
                }
            }
            let rest = &buf[start..n];
            let room = max_line.saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&rest[..rest.len().min(room)]);
            self.read += n as u64;
        }
        Ok(any)
    }
}

/// A followed file.
pub struct Tail {
    path: PathBuf,
    current: Option<Open>,
    /// A rotated-away file still being read to its end.
    old: Option<Open>,
    max_line: usize,
}

impl Tail {
    /// Follows `path`, resuming at `cursor` when given (else from the start of the file).
    pub fn new(path: PathBuf, cursor: Option<Cursor>, max_line: usize) -> Self {
        let mut tail = Self {
            path,
            current: None,
            old: None,
            max_line,
        };
        if let Some(cursor) = cursor {
            tail.resume(cursor);
        }
        tail
    }

    fn resume(&mut self, cursor: Cursor) {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return;
        };
        if meta.ino() == cursor.inode {
            if let Ok(file) = File::open(&self.path) {
                self.current = Open::at(file, cursor.offset).ok();
            }
            return;
        }
        if let Some(rotated) = find_by_inode(&self.path, cursor.inode) {
            if let Ok(file) = File::open(rotated) {
                self.old = Open::at(file, cursor.offset).ok();
            }
        }
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads up to `budget` new lines. Returns them with a flag that is true when a rotation
    /// switched files (a partial line of the old file can never be completed).
    pub fn poll(&mut self, budget: usize) -> std::io::Result<(Vec<RawLine>, bool)> {
        let mut out = Vec::new();
        let mut switched = false;
        if let Some(old) = &mut self.old {
            old.drain(&mut out, budget, self.max_line)?;
            if out.len() >= budget {
                return Ok((out, false));
            }
            self.old = None;
            switched = true;
        }
        if self.current.is_none() {
            match File::open(&self.path) {
                Ok(file) => self.current = Some(Open::at(file, 0)?),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    return Ok((out, switched))
                }
                Err(error) => return Err(error),
            }
        }
        let Some(current) = &mut self.current else {
            return Ok((out, switched));
        };
        current.drain(&mut out, budget, self.max_line)?;
        if out.len() < budget {
            // At the end: has the path moved on to a new file?
            let inode_now = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
            if inode_now != Some(current.inode) {
                // Read what the old file got between our read and the rename, then switch.
                current.drain(&mut out, usize::MAX, self.max_line)?;
                self.current = None;
                switched = true;
                if inode_now.is_some() {
                    let (more, _) = self.poll(budget.saturating_sub(out.len()).max(1))?;
                    out.extend(more);
                }
            }
        }
        Ok((out, switched))
    }

    /// Whether the path is gone and everything was read.
    pub fn finished(&self) -> bool {
        self.current.is_none() && self.old.is_none() && !self.path.exists()
    }
}

/// A sibling of `path` (same directory, name starting with its name) with this inode.
fn find_by_inode(path: &Path, inode: u64) -> Option<PathBuf> {
    let dir = path.parent()?;
    let name = path.file_name()?.to_str()?;
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(name) && !n.ends_with(".gz"))
        })
        .find(|entry| entry.metadata().is_ok_and(|m| m.ino() == inode))
        .map(|entry| entry.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(text.as_bytes()).expect("write");
    }

    fn texts(lines: &[RawLine]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn follows_appends_partial_lines_and_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        append(&path, "one\ntw");
        let mut tail = Tail::new(path.clone(), None, 1024);
        let (lines, _) = tail.poll(100).expect("poll");
        assert_eq!(texts(&lines), ["one"]);
        assert_eq!(lines[0].cursor.offset, 4);
        append(&path, "o\nthree\n");
        let (lines, _) = tail.poll(100).expect("poll");
        assert_eq!(texts(&lines), ["two", "three"]);
        std::fs::write(&path, "x\n").expect("truncate");
        let (lines, _) = tail.poll(100).expect("poll");
        assert_eq!(texts(&lines), ["x"]);
    }

    #[test]
    fn rotation_loses_nothing_and_restart_finds_the_rotated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        append(&path, "1\n2\n");
        let mut tail = Tail::new(path.clone(), None, 1024);
        let (lines, _) = tail.poll(1).expect("poll");
        assert_eq!(texts(&lines), ["1"]);
        let cursor = lines[0].cursor;
        append(&path, "3\n");
        std::fs::rename(&path, dir.path().join("c-json.log.1")).expect("rotate");
        append(&path, "4\n");
        // A restarted reader resumes in the rotated file, then takes the new one.
        let mut restarted = Tail::new(path.clone(), Some(cursor), 1024);
        let (lines, switched) = restarted.poll(100).expect("poll");
        assert_eq!(texts(&lines), ["2", "3", "4"]);
        assert!(switched);
        // The running reader drains the old file before switching.
        let mut all = Vec::new();
        for _ in 0..3 {
            all.extend(tail.poll(100).expect("poll").0);
        }
        assert_eq!(texts(&all), ["2", "3", "4"]);
        append(&path, "5\n");
        assert_eq!(texts(&tail.poll(100).expect("poll").0), ["5"]);
    }

    #[test]
    fn resume_at_cursor_skips_what_was_handed_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.log");
        append(&path, "a\nb\nc\n");
        let first = Tail::new(path.clone(), None, 1024).poll(2).expect("poll").0;
        let cursor = first[1].cursor;
        let rest = Tail::new(path.clone(), Some(cursor), 1024)
            .poll(100)
            .expect("poll")
            .0;
        assert_eq!(texts(&rest), ["c"]);
    }
}
