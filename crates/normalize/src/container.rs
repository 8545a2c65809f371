//! What the container log formats share: a physical line's [`Piece`], the complete
//! [`LogLine`] pieces add up to, the event a line becomes, and joining the pieces of one long
//! line ([`Reassembler`]) and the lines of one stack trace ([`Joiner`]).
//!
//! The formats themselves are [`crate::docker`] (Docker `json-file`) and [`crate::cri`] (CRI:
//! containerd, CRI-O, `/var/log/pods`). Their registry parsers read one physical line at a
//! time; the node agent, which follows the files, feeds the same lines through a
//! [`Reassembler`] and a [`Joiner`] and maps what comes out with [`log_event`], so a line
//! becomes the same event whichever way it arrives.
//!
//! | field | from |
//! |---|---|
//! | `@timestamp` | the runtime's time (RFC 3339 with nanoseconds), of the first piece |
//! | `message` | the text, without its line ending |
//! | `log.iostream` | `stdout` / `stderr` |
//! | `event.kind`, `event.module`, `event.dataset` | `event`, `docker` (json-file) or `kubernetes` (CRI), `container.logs` |
//! | `url.*`, `http.*`, `user_agent.original`, `source.ip`, `event.category: web` | an access-log line, see [`crate::access_log`] |
//!
//! A time that does not parse is kept under `crowsnest.displaced.@timestamp`, never dropped.

use chrono::{DateTime, Utc};
use crowsnest_model::{ecs, format_timestamp, Event};
use serde_json::{json, Value};

use crate::{cri, docker};

/// `event.dataset` of container log lines.
pub const DATASET: &str = "container.logs";

/// Longest logical line kept; the rest of a longer one starts a new line.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Most lines one multi-line event joins.
pub const MAX_JOINED_LINES: usize = 500;

/// Which on-disk format a container log file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker's `json-file` driver.
    DockerJson,
    /// The CRI text format.
    Cri,
}

impl Format {
    /// Parses one physical line of this format.
    ///
    /// # Errors
    ///
    /// A [`PieceError`] saying what the line should have looked like.
    pub fn piece(self, raw: &str) -> Result<Piece, PieceError> {
        match self {
            Format::DockerJson => docker::piece(raw),
            Format::Cri => cri::piece(raw),
        }
    }

    /// `event.module` of this format's lines.
    pub fn module(self) -> &'static str {
        match self {
            Format::DockerJson => "docker",
            Format::Cri => "kubernetes",
        }
    }
}

/// One physical line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The runtime's time (RFC 3339), as written.
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, without its line ending.
    pub text: String,
    /// Whether this piece ends its line (Docker: the log ends in `\n`; CRI: tag `F`).
    pub last: bool,
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

impl From<Piece> for LogLine {
    fn from(piece: Piece) -> Self {
        Self {
            time: piece.time,
            stream: piece.stream,
            text: piece.text,
        }
    }
}

/// Why a physical line was not understood.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PieceError {
    /// Not a json-file object with a string `log`.
    #[error("expected a docker json-file object with a string `log`: {0}")]
    Docker(String),
    /// Not `<time> <stream> <P|F> <text>`.
    #[error("expected a CRI log line `<RFC 3339 time> <stdout|stderr> <P|F> <text>`")]
    Cri,
}

/// The event of one complete line (without `event.original`: the caller knows the text the
/// line came from and passes it to [`crate::finish`]).
pub fn log_event(line: &LogLine, format: Format) -> Event {
    let mut event = Event::new();
    match DateTime::parse_from_rfc3339(&line.time) {
        Ok(time) => {
            let time = time.with_timezone(&Utc);
            event.set(ecs::TIMESTAMP, Value::String(format_timestamp(time)));
        }
        Err(_) if !line.time.is_empty() => {
            event.set("crowsnest.displaced.@timestamp", json!(line.time));
        }
        Err(_) => {}
    }
    event.set(ecs::MESSAGE, json!(line.text));
    event.set(ecs::EVENT_KIND, json!("event"));
    event.set(ecs::EVENT_MODULE, json!(format.module()));
    event.set(ecs::EVENT_DATASET, json!(DATASET));
    if !line.stream.is_empty() {
        event.set("log.iostream", json!(line.stream));
    }
    // A web server's access line gets url.*, http.*, user_agent.*, source.ip.
    crate::access_log::enrich(&mut event);
    event
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
    ///
    /// # Errors
    ///
    /// A [`PieceError`] when the line is not of this reassembler's format; nothing changes.
    pub fn push(&mut self, raw: &str) -> Result<Option<LogLine>, PieceError> {
        let piece = self.format.piece(raw)?;
        let index = self.pending.iter().position(|p| p.stream == piece.stream);
        let Some(index) = index else {
            if piece.last {
                return Ok(Some(piece.into()));
            }
            self.pending.push(piece);
            return Ok(None);
        };
        let pending = &mut self.pending[index];
        let room = MAX_LINE_BYTES.saturating_sub(pending.text.len());
        let take = floor_char_boundary(&piece.text, room);
        pending.text.push_str(&piece.text[..take]);
        if piece.last || pending.text.len() >= MAX_LINE_BYTES {
            return Ok(Some(self.pending.remove(index).into()));
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
        assert_eq!(r.push("garbage"), Err(PieceError::Cri));
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
            let raw = format!("2024-05-01T10:00:00Z stdout P {chunk}");
            if let Some(line) = r.push(&raw).expect("valid") {
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

    #[test]
    fn a_line_becomes_a_container_event_and_a_bad_time_is_displaced() {
        let mut good = line("hello");
        good.time = "2024-05-01T10:00:00.123456789Z".into();
        let event = log_event(&good, Format::Cri);
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2024-05-01T10:00:00.123456Z")
        );
        assert_eq!(event.get_str("event.module"), Some("kubernetes"));
        assert_eq!(event.get_str("event.dataset"), Some("container.logs"));
        assert_eq!(event.get_str("log.iostream"), Some("stderr"));
        let event = log_event(&line("x"), Format::DockerJson);
        assert_eq!(event.get("@timestamp"), None);
        assert_eq!(event.get_str("crowsnest.displaced.@timestamp"), Some("t"));
        assert_eq!(event.get_str("event.module"), Some("docker"));
    }
}
