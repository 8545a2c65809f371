//! CRI log lines (`cri`): what containerd and CRI-O write under `/var/log/pods`,
//! `<RFC 3339 time> <stdout|stderr> <P|F>[:<more tags>] <text>`, where `P` marks a partial
//! piece and `F` the final one.
//!
//! The registry parser maps each physical line on its own (a `P` piece is an event); the node
//! agent joins the pieces first ([`crate::container::Reassembler`]). Either way the event is
//! [`crate::container::log_event`]'s. A text format: selected by name, or for a file of text
//! lines by [`Parser::detect_text`] (a line that parses).
//!
//! Old CRI-O wrote no tag: when the third field is neither `P` nor `F` (with or without
//! `:`-separated tags after it), the line is taken as a whole line whose text starts there.
//! A line whose time does not parse as RFC 3339 or whose stream is not `stdout`/`stderr` is
//! not a CRI line.

use chrono::DateTime;

use crate::container::{log_event, Format, LogLine, Piece, PieceError};
use crate::registry::{Context, Input, Parser, Record};
use crate::{finish, Decoded, LineError};

/// The CRI parser.
#[derive(Debug)]
pub struct Cri;

impl Parser for Cri {
    fn name(&self) -> &'static str {
        "cri"
    }

    fn input(&self) -> Input {
        Input::Text
    }

    fn detect_text(&self, line: &str) -> bool {
        piece(line).is_ok()
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let text = record.text();
        match piece(text) {
            Ok(piece) => {
                let event = log_event(&LogLine::from(piece), Format::Cri);
                out.events.push(finish(event, text, cx.limits));
            }
            Err(error) => out.errors.push(LineError::new(cx.line, error.to_string())),
        }
    }
}

/// Parses one physical CRI line.
pub(crate) fn piece(raw: &str) -> Result<Piece, PieceError> {
    let mut parts = raw.splitn(3, ' ');
    let (Some(time), Some(stream), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(PieceError::Cri);
    };
    if !matches!(stream, "stdout" | "stderr") || DateTime::parse_from_rfc3339(time).is_err() {
        return Err(PieceError::Cri);
    }
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let (text, last) = match tag.split(':').next() {
        Some("F") => (text, true),
        Some("P") => (text, false),
        // No tag (old CRI-O): the tag position is already text.
        _ => (rest, true),
    };
    Ok(Piece {
        time: time.to_string(),
        stream: stream.to_string(),
        text: text.to_string(),
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_partial_and_tagless_lines() {
        let p = piece("2016-10-20T18:39:20.57606443Z stdout P:TAG1:TAG2 partial log").expect("cri");
        assert_eq!((p.text.as_str(), p.last), ("partial log", false));
        let p = piece("2016-10-06T00:17:09.669794202Z stderr The content").expect("cri");
        assert_eq!((p.text.as_str(), p.last), ("The content", true));
        let p = piece("2016-10-06T00:17:09Z stdout F").expect("cri");
        assert_eq!((p.text.as_str(), p.last), ("", true));
        assert_eq!(
            piece("unsupported log format test log"),
            Err(PieceError::Cri)
        );
        assert_eq!(piece("yesterday stdout F text"), Err(PieceError::Cri));
        assert_eq!(
            piece("2016-10-06T00:17:09Z stdin F text"),
            Err(PieceError::Cri)
        );
    }
}
