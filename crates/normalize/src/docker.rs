//! Docker `json-file` log lines (`docker`, also `docker-json`, `json-file`):
//! `{"log":"text\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`, one object per
//! physical line of `/var/lib/docker/containers/<id>/<id>-json.log`.
//!
//! The engine splits lines longer than 16 KiB; every piece but the last lacks the trailing
//! `\n`. The registry parser maps each physical line on its own (a piece is an event); the node
//! agent joins the pieces first ([`crate::container::Reassembler`]). Either way the event is
//! [`crate::container::log_event`]'s. Detected in NDJSON by its exact shape: a string `log`,
//! `stream` `stdout`/`stderr`, a string `time`, and no keys besides those and `attrs`.
//!
//! A line whose `log` is missing or not a string is an error; a missing, unparseable or
//! non-string `time` is not (the line is kept, see [`crate::container`]).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::container::{log_event, Format, LogLine, Piece, PieceError};
use crate::error::FieldError;
use crate::registry::{Context, Parser, Record};
use crate::{finish, Decoded};

/// The Docker json-file parser.
#[derive(Debug)]
pub struct DockerJsonFile;

impl Parser for DockerJsonFile {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["docker-json", "json-file"]
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        object.get("log").is_some_and(Value::is_string)
            && object.get("time").is_some_and(Value::is_string)
            && matches!(
                object.get("stream").and_then(Value::as_str),
                Some("stdout" | "stderr")
            )
            && object
                .keys()
                .all(|k| matches!(k.as_str(), "log" | "stream" | "time" | "attrs"))
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let text = record.text();
        let piece = match record {
            Record::Json { ref object, .. } => piece_of(object),
            Record::Text(text) => piece(text).map_err(|e| FieldError {
                field: None,
                reason: e.to_string(),
            }),
        };
        match piece {
            Ok(piece) => {
                let event = log_event(&LogLine::from(piece), Format::DockerJson);
                out.events.push(finish(event, text, cx.limits));
            }
            Err(error) => out.errors.push(error.at(cx.line)),
        }
    }
}

#[derive(Deserialize)]
struct DockerLine {
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: String,
}

/// Parses one physical json-file line.
pub(crate) fn piece(raw: &str) -> Result<Piece, PieceError> {
    let line: DockerLine =
        serde_json::from_str(raw).map_err(|e| PieceError::Docker(e.to_string()))?;
    Ok(split_ending(line.log, line.stream, line.time))
}

/// The piece of an already parsed json-file object.
fn piece_of(object: &Map<String, Value>) -> Result<Piece, FieldError> {
    let log = match object.get("log") {
        Some(Value::String(log)) => log.clone(),
        _ => {
            return Err(FieldError::field(
                "log",
                "expected a docker json-file object with a string `log`",
            ))
        }
    };
    let stream = match object.get("stream") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(stream)) => stream.clone(),
        Some(_) => return Err(FieldError::field("stream", "expected `stdout` or `stderr`")),
    };
    // A time of the wrong type is kept as its JSON text (and displaced), like a bad one.
    let time = match object.get("time") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(time)) => time.clone(),
        Some(other) => other.to_string(),
    };
    Ok(split_ending(log, stream, time))
}

fn split_ending(log: String, stream: String, time: String) -> Piece {
    let (text, last) = match log.strip_suffix('\n') {
        Some(text) => (text.strip_suffix('\r').unwrap_or(text).to_string(), true),
        None => (log, false),
    };
    Piece {
        time,
        stream,
        text,
        last,
    }
}
