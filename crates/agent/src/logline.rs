//! Container log line formats, and joining the pieces of one long line.
//!
//! * Docker `json-file`: one JSON object per physical line,
//!   `{"log":"text\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`. The engine
//!   splits lines longer than 16 KiB; every piece but the last lacks the trailing `\n`.
//! * CRI (containerd, CRI-O; `/var/log/pods`): `<RFC 3339 time> <stream> <P|F> <text>`, where
//!   `P` marks a partial piece and `F` the final one.
//!
//! [`Reassembler`] turns physical lines into complete [`LogLine`]s; a logical line is cut at
//! [`MAX_LINE_BYTES`] so a writer that never ends its line cannot grow memory. [`Joiner`] then
//! joins stack traces (indented lines, `Caused by:`) into the line they belong to.

use serde::Deserialize;

/// Longest logical line kept; the rest of a longer one starts a new line.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Which on-disk format a container log file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker's `json-file` driver.
    DockerJson,
    /// The CRI text format.
    Cri,
}

/// One complete line a container wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// RFC 3339 time the runtime recorded (of the first piece).
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, without its line ending.
    pub text: String,
}

/// One physical line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    time: String,
    stream: String,
    text: String,
    last: bool,
}

#[derive(Deserialize)]
struct DockerLine {
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: String,
}

/// Why a physical line was not understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    /// Not a json-file object with a string `log`.
    #[error("expected a docker json-file object with a string `log`: {0}")]
    Docker(String),
    /// Not `<time> <stream> <P|F> <text>`.
    #[error("expected a CRI log line `<time> <stream> <P|F> <text>`")]
    Cri,
}

fn parse(format: Format, raw: &str) -> Result<Piece, LineError> {
    match format {
        Format::DockerJson => {
            let line: DockerLine =
                serde_json::from_str(raw).map_err(|e| LineError::Docker(e.to_string()))?;
            let (text, last) = match line.log.strip_suffix('\n') {
                Some(text) => (text.strip_suffix('\r').unwrap_or(text).to_string(), true),
                None => (line.log, false),
            };
            Ok(Piece {
                time: line.time,
                stream: line.stream,
                text,
                last,
            })
        }
        Format::Cri => {
            let mut parts = raw.splitn(4, ' ');
            let (time, stream, tag) = (parts.next(), parts.next(), parts.next());
            let (Some(time), Some(stream), Some(tag)) = (time, stream, tag) else {
                return Err(LineError::Cri);
            };
            let last = match tag {
                "F" => true,
                "P" => false,
                // Old CRI-O wrote no tag: the tag position is already text.
                _ => return Err(LineError::Cri),
            };
            Ok(Piece {
                time: time.to_string(),
                stream: stream.to_string(),
                text: parts.next().unwrap_or("").to_string(),
                last,
            })
        }
    }
}

/// Joins partial pieces, per stream, into complete lines.
#[derive(Debug)]
pub struct Reassembler {
    format: Format,
    pending: Vec<Piece>,
}

impl Reassembler {
    /// A reassembler for one file of this format.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            pending: Vec::new(),
        }
    }

    /// Whether part of a line is waiting for its end.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Drops a waiting partial line (the file it came from went away).
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    /// Feeds one physical line; returns a line when one is complete.
    pub fn push(&mut self, raw: &str) -> Result<Option<LogLine>, LineError> {
        let piece = parse(self.format, raw)?;
        let index = self.pending.iter().position(|p| p.stream == piece.stream);
        let Some(index) = index else {
            if piece.last {
                return Ok(Some(LogLine {
                    time: piece.time,
                    stream: piece.stream,
                    text: piece.text,
                }));
            }
            self.pending.push(piece);
            return Ok(None);
        };
        let pending = &mut self.pending[index];
        let room = MAX_LINE_BYTES.saturating_sub(pending.text.len());
        let take = floor_char_boundary(&piece.text, room);
        pending.text.push_str(&piece.text[..take]);
        if piece.last || pending.text.len() >= MAX_LINE_BYTES {
            let done = self.pending.remove(index);
            return Ok(Some(LogLine {
                time: done.time,
                stream: done.stream,
                text: done.text,
            }));
        }
        Ok(None)
    }
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

/// Most lines one multi-line event joins.
pub const MAX_JOINED_LINES: usize = 500;

/// Whether a line continues the previous one: a stack-trace frame or cause, an indented line.
pub fn is_continuation(text: &str) -> bool {
    text.starts_with([' ', '\t']) || text.starts_with("Caused by:") || text.starts_with("... ")
}

/// Joins stack traces and other continuation lines into the line they belong to.
///
/// A line is held until the next line of its stream shows whether it continues (or until
/// [`Joiner::flush`], which the collector calls when the file has nothing new), so a Java or
/// Python trace becomes one event with `\n` between its lines. `T` is what travels with a line
/// (the collector's cursor); the joined line carries its last line's.
#[derive(Debug)]
pub struct Joiner<T> {
    pending: Option<(LogLine, T, usize)>,
}

impl<T> Default for Joiner<T> {
    fn default() -> Self {
        Self { pending: None }
    }
}

impl<T> Joiner<T> {
    /// Feeds a complete line; returns the previous one when this line does not continue it.
    pub fn push(&mut self, line: LogLine, tag: T) -> Option<(LogLine, T)> {
        if let Some((held, held_tag, count)) = &mut self.pending {
            let fits = held.text.len() + line.text.len() < MAX_LINE_BYTES;
            if held.stream == line.stream
                && is_continuation(&line.text)
                && *count < MAX_JOINED_LINES
                && fits
            {
                held.text.push('\n');
                held.text.push_str(&line.text);
                *held_tag = tag;
                *count += 1;
                return None;
            }
        }
        self.pending
            .replace((line, tag, 1))
            .map(|(line, tag, _)| (line, tag))
    }

    /// Hands on the held line.
    pub fn flush(&mut self) -> Option<(LogLine, T)> {
        self.pending.take().map(|(line, tag, _)| (line, tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_json_lines_and_split_pieces() {
        let mut r = Reassembler::new(Format::DockerJson);
        let whole = r
            .push(r#"{"log":"hello world\n","stream":"stdout","time":"2024-05-01T10:00:00.1Z"}"#)
            .expect("valid");
        assert_eq!(
            whole,
            Some(LogLine {
                time: "2024-05-01T10:00:00.1Z".into(),
                stream: "stdout".into(),
                text: "hello world".into()
            })
        );
        assert_eq!(
            r.push(r#"{"log":"abc","stream":"stderr","time":"t1"}"#)
                .expect("valid"),
            None
        );
        // An interleaved stdout line does not disturb the pending stderr line.
        let other = r
            .push(r#"{"log":"x\n","stream":"stdout","time":"t2"}"#)
            .expect("valid")
            .expect("complete");
        assert_eq!(other.text, "x");
        assert!(r.has_pending());
        let joined = r
            .push(r#"{"log":"def\r\n","stream":"stderr","time":"t3"}"#)
            .expect("valid")
            .expect("complete");
        assert_eq!(
            (joined.text.as_str(), joined.time.as_str()),
            ("abcdef", "t1")
        );
        assert!(!r.has_pending());
        assert!(r.push("not json").is_err());
    }

    #[test]
    fn cri_partial_and_final() {
        let mut r = Reassembler::new(Format::Cri);
        assert_eq!(
            r.push("2024-05-01T10:00:00.000000001Z stdout P part one, ")
                .expect("valid"),
            None
        );
        let line = r
            .push("2024-05-01T10:00:00.000000002Z stdout F part two")
            .expect("valid")
            .expect("complete");
        assert_eq!(line.text, "part one, part two");
        assert_eq!(line.time, "2024-05-01T10:00:00.000000001Z");
        let empty = r
            .push("2024-05-01T10:00:00Z stderr F ")
            .expect("valid")
            .expect("complete");
        assert_eq!((empty.text.as_str(), empty.stream.as_str()), ("", "stderr"));
        assert_eq!(r.push("garbage"), Err(LineError::Cri));
    }

    fn line(text: &str) -> LogLine {
        LogLine {
            time: "t".into(),
            stream: "stderr".into(),
            text: text.into(),
        }
    }

    #[test]
    fn stack_traces_join_into_one_line_with_the_last_cursor() {
        let mut j = Joiner::default();
        assert_eq!(
            j.push(line("Exception in thread main java.lang.Error: boom"), 1),
            None
        );
        assert_eq!(j.push(line("\tat app.Main.run(Main.java:10)"), 2), None);
        assert_eq!(j.push(line("Caused by: java.io.IOException"), 3), None);
        let (joined, cursor) = j.push(line("next event"), 4).expect("flushed");
        assert_eq!(
            joined.text,
            "Exception in thread main java.lang.Error: boom\n\tat app.Main.run(Main.java:10)\nCaused by: java.io.IOException"
        );
        assert_eq!(cursor, 3);
        let (last, cursor) = j.flush().expect("held");
        assert_eq!((last.text.as_str(), cursor), ("next event", 4));
        assert_eq!(j.flush(), None);
        // A continuation on another stream does not join.
        j.push(line("a"), 5);
        let mut other = line(" b");
        other.stream = "stdout".into();
        assert!(j.push(other, 6).is_some());
    }

    #[test]
    fn endless_line_is_cut() {
        let mut r = Reassembler::new(Format::Cri);
        let chunk = "é".repeat(300 * 1024);
        let mut lines = Vec::new();
        for _ in 0..5 {
            if let Some(line) = r.push(&format!("t stdout P {chunk}")).expect("valid") {
                lines.push(line);
            }
        }
        // 3 MB in pieces of 600 KB: cut twice at the limit, the rest still pending.
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert!(line.text.len() <= MAX_LINE_BYTES);
            assert!(line.text.len() > MAX_LINE_BYTES - 4);
        }
        assert!(r.has_pending());
    }
}
