//! The Fluentd forward protocol (v1), as Fluentd's `out_forward`, Fluent Bit's `forward`
//! output and the `fluent-logger` libraries speak it over TCP.
//!
//! Every message is one MessagePack array, in one of four modes:
//!
//! | mode | shape |
//! |---|---|
//! | Message | `[tag, time, record, option?]` |
//! | Forward | `[tag, [[time, record], ...], option?]` |
//! | PackedForward | `[tag, bin(concatenated [time, record] entries), option?]` |
//! | CompressedPackedForward | as PackedForward, gzip'd, with `option.compressed: "gzip"` |
//!
//! `time` is an integer (seconds) or the `EventTime` extension (type 0: 4-byte seconds and
//! 4-byte nanoseconds, big-endian). When `option.chunk` is set the sender waits for
//! `{"ack": chunk}`, which the listener sends only after the events are durable.
//!
//! Each record becomes its events, mapped like any other JSON object (so `log` becomes
//! `message`; a record that holds many events, such as an audit `EventList` or a CloudWatch
//! Logs batch, becomes all of them, each keeping its own item's text as `event.original` and
//! its own time), plus `fluent.tag`, `@timestamp` from the entry time, `event.dataset` = the tag
//! (when it is a plain name) and `event.module: fluent`. Container log records that Fluent Bit's
//! or Fluentd's `kubernetes` filter enriched, and records of Docker's `fluentd` log driver, are
//! recognised per record by the registry (`crowsnest_normalize::kubernetes_meta`,
//! `crowsnest_normalize::docker_drivers`): their metadata lands in the common container and pod
//! fields, `stream` in `log.iostream`, the log line once in `message`, and they are
//! `event.dataset: container.logs` (the tag stays in `fluent.tag`).

use std::io::Cursor;

use crowsnest_model::{ecs, format_timestamp};
use crowsnest_normalize::{Decoded, LineError};
use rmpv::Value as Pack;
use serde_json::{Map, Value};

use crate::common::{claim_module, is_name, json_text, within_room};
use crate::limits::{decompress, Encoding};
use crate::Limits;

/// The outcome of looking for one forward message at the start of a stream buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum ForwardFrame {
    /// One message was read.
    Complete {
        /// Bytes to drop from the buffer.
        consumed: usize,
        /// Its events and per-entry errors.
        decoded: Decoded,
        /// The `chunk` option to acknowledge, when the sender asked for an ack.
        chunk: Option<String>,
    },
    /// The buffer holds no complete message yet.
    Incomplete,
    /// The stream cannot be decoded further (not MessagePack, or over the size limit).
    Invalid(String),
}

/// Reads the first forward message in `buffer`.
pub fn next_message(buffer: &[u8], limits: &Limits) -> ForwardFrame {
    if buffer.is_empty() {
        return ForwardFrame::Incomplete;
    }
    let mut cursor = Cursor::new(buffer);
    match rmpv::decode::read_value_with_max_depth(&mut cursor, limits.decode.max_depth) {
        Ok(value) => {
            let consumed = usize::try_from(cursor.position()).unwrap_or(buffer.len());
            match decode_value(value, limits) {
                Ok((decoded, chunk)) => ForwardFrame::Complete {
                    consumed,
                    decoded,
                    chunk,
                },
                Err(reason) => ForwardFrame::Invalid(reason),
            }
        }
        Err(error) if is_eof(&error) => {
            if buffer.len() > limits.max_frame_bytes {
                ForwardFrame::Invalid(format!(
                    "expected forward messages of at most {} bytes",
                    limits.max_frame_bytes
                ))
            } else {
                ForwardFrame::Incomplete
            }
        }
        Err(error) => ForwardFrame::Invalid(format!("expected a MessagePack array: {error}")),
    }
}

fn is_eof(error: &rmpv::decode::Error) -> bool {
    match error {
        rmpv::decode::Error::InvalidMarkerRead(io) | rmpv::decode::Error::InvalidDataRead(io) => {
            io.kind() == std::io::ErrorKind::UnexpectedEof
        }
        _ => false,
    }
}

/// Decodes one forward message that is already a MessagePack value.
///
/// # Errors
///
/// A reason when the value is not a forward message (not an array with a string tag and
/// entries), or a packed stream cannot be decompressed.
pub fn decode_value(value: Pack, limits: &Limits) -> Result<(Decoded, Option<String>), String> {
    let Pack::Array(mut parts) = value else {
        return Err("expected a forward message array [tag, ...]".to_string());
    };
    if parts.len() < 2 {
        return Err("expected a forward message array [tag, entries or time, ...]".to_string());
    }
    let tag = match &parts[0] {
        Pack::String(tag) => tag.as_str().unwrap_or_default().to_string(),
        Pack::Binary(tag) => String::from_utf8_lossy(tag).into_owned(),
        _ => return Err("expected the tag to be a string".to_string()),
    };
    let mut decoded = Decoded::default();
    let second = std::mem::replace(&mut parts[1], Pack::Nil);
    let (entries, option) = match second {
        Pack::Array(entries) => (entries, parts.get(2)),
        packed @ (Pack::Binary(_) | Pack::String(_)) => {
            let bytes = match packed {
                Pack::Binary(bytes) => bytes,
                Pack::String(text) => text.into_bytes(),
                _ => Vec::new(),
            };
            let option = parts.get(2);
            let compressed = option
                .and_then(|o| map_get(o, "compressed"))
                .and_then(Pack::as_str);
            let stream = match compressed {
                Some("gzip") => decompress(&bytes, Encoding::Gzip, limits.max_decompressed_bytes)
                    .map_err(|e| e.to_string())?,
                Some(other) => return Err(format!("expected `compressed: gzip`, found `{other}`")),
                None => bytes,
            };
            (unpack_stream(&stream, limits, &mut decoded)?, option)
        }
        time => {
            let record = parts.get_mut(2).map(|r| std::mem::replace(r, Pack::Nil));
            let Some(record) = record else {
                return Err("expected [tag, time, record] in message mode".to_string());
            };
            (vec![Pack::Array(vec![time, record])], parts.get(3))
        }
    };
    let chunk = option
        .and_then(|o| map_get(o, "chunk"))
        .and_then(|c| c.as_str().map(str::to_string));
    for (index, entry) in entries.into_iter().enumerate() {
        if decoded.events.len() >= limits.max_events {
            // Every refused entry is reported, so none is lost without a word.
            decoded.errors.push(LineError::new(
                index + 1,
                format!("expected at most {} events per message", limits.max_events),
            ));
            continue;
        }
        let room = limits.max_events - decoded.events.len();
        match entry_events(entry, &tag, room, limits) {
            Ok(Decoded { events, errors }) => {
                decoded.events.extend(events);
                decoded
                    .errors
                    .extend(errors.into_iter().map(|error| LineError {
                        line: index + 1,
                        ..error
                    }));
            }
            Err(reason) => decoded.errors.push(LineError::new(index + 1, reason)),
        }
    }
    Ok((decoded, chunk))
}

fn unpack_stream(
    stream: &[u8],
    limits: &Limits,
    decoded: &mut Decoded,
) -> Result<Vec<Pack>, String> {
    let mut cursor = Cursor::new(stream);
    let mut entries = Vec::new();
    while usize::try_from(cursor.position()).unwrap_or(usize::MAX) < stream.len() {
        match rmpv::decode::read_value_with_max_depth(&mut cursor, limits.decode.max_depth) {
            Ok(entry) => entries.push(entry),
            Err(error) => {
                decoded.errors.push(LineError::new(
                    entries.len() + 1,
                    format!("expected packed [time, record] entries: {error}"),
                ));
                break;
            }
        }
    }
    Ok(entries)
}

fn map_get<'a>(map: &'a Pack, key: &str) -> Option<&'a Pack> {
    match map {
        Pack::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The events of one `[time, record]` entry: one, or one per record of a batch the record
/// holds (an audit `EventList`, a CloudWatch Logs batch), each with the tag. The entry time
/// is the record's time; events split from a batch keep their own when they have one.
fn entry_events(entry: Pack, tag: &str, room: usize, limits: &Limits) -> Result<Decoded, String> {
    let Pack::Array(mut pair) = entry else {
        return Err("expected an entry [time, record]".to_string());
    };
    if pair.len() != 2 {
        return Err(format!(
            "expected an entry [time, record], found {} elements",
            pair.len()
        ));
    }
    let record = pack_to_json(pair.pop().unwrap_or(Pack::Nil));
    let time = pair.pop().unwrap_or(Pack::Nil);
    let Value::Object(record) = record else {
        return Err("expected the record to be a map".to_string());
    };
    let original = Value::Object(record.clone()).to_string();
    if original.len() > limits.decode.max_line_bytes {
        return Err(format!(
            "expected records of at most {} bytes",
            limits.decode.max_line_bytes
        ));
    }
    let time = event_time(&time)?.map(|time| Value::String(format_timestamp(time)));
    let dataset = if is_name(tag) { tag } else { "fluent" };
    let Decoded { events, errors } = within_room(
        json_text(original.as_bytes(), dataset, limits),
        room,
        limits,
    );
    let events = events
        .into_iter()
        .map(|mut event| {
            let split = event.get_str(ecs::EVENT_ORIGINAL).is_some();
            claim_module(&mut event, "fluent");
            event.set("fluent.tag", Value::String(tag.to_string()));
            if let Some(time) = &time {
                if split {
                    event.set_default(ecs::TIMESTAMP, time.clone());
                } else {
                    event.set(ecs::TIMESTAMP, time.clone());
                }
            }
            crowsnest_normalize::finish(event, &original, &limits.decode)
        })
        .collect();
    Ok(Decoded { events, errors })
}

fn event_time(time: &Pack) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    match time {
        Pack::Integer(seconds) => Ok(seconds
            .as_i64()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))),
        Pack::F64(seconds) => Ok(chrono::DateTime::from_timestamp_micros(
            (seconds * 1e6) as i64,
        )),
        Pack::Ext(0, bytes) if bytes.len() == 8 => {
            let seconds = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let nanos = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            Ok(chrono::DateTime::from_timestamp(i64::from(seconds), nanos))
        }
        Pack::Nil => Ok(None),
        _ => Err("expected the entry time to be an integer or EventTime".to_string()),
    }
}

/// Converts MessagePack to JSON: binary strings become (lossy) text, map keys become text.
fn pack_to_json(value: Pack) -> Value {
    match value {
        Pack::Nil => Value::Null,
        Pack::Boolean(b) => Value::Bool(b),
        Pack::Integer(i) => i
            .as_i64()
            .map(Value::from)
            .or_else(|| i.as_u64().map(Value::from))
            .unwrap_or(Value::Null),
        Pack::F32(f) => {
            serde_json::Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number)
        }
        Pack::F64(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Pack::String(s) => Value::String(String::from_utf8_lossy(&s.into_bytes()).into_owned()),
        Pack::Binary(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        Pack::Array(items) => Value::Array(items.into_iter().map(pack_to_json).collect()),
        Pack::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key = match key {
                    Pack::String(s) => s.into_str().unwrap_or_default(),
                    Pack::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                    other => other.to_string(),
                };
                map.insert(key, pack_to_json(value));
            }
            Value::Object(map)
        }
        Pack::Ext(kind, bytes) => Value::String(format!("ext{kind}:{}", hex::encode(bytes))),
    }
}

/// The acknowledgement for `chunk`: the MessagePack map `{"ack": chunk}`.
pub fn ack(chunk: &str) -> Vec<u8> {
    let value = Pack::Map(vec![(Pack::from("ack"), Pack::from(chunk))]);
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn encode(value: &Pack) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).expect("encode");
        out
    }

    fn record(message: &str) -> Pack {
        Pack::Map(vec![
            (Pack::from("log"), Pack::from(message)),
            (Pack::from("stream"), Pack::from("stderr")),
            (
                Pack::from("kubernetes"),
                Pack::Map(vec![
                    (Pack::from("namespace_name"), Pack::from("prod")),
                    (Pack::from("pod_name"), Pack::from("web-1")),
                ]),
            ),
        ])
    }

    fn event_time(seconds: u32, nanos: u32) -> Pack {
        let mut bytes = seconds.to_be_bytes().to_vec();
        bytes.extend_from_slice(&nanos.to_be_bytes());
        Pack::Ext(0, bytes)
    }

    #[test]
    fn message_mode_with_event_time_and_chunk() {
        let option = Pack::Map(vec![(Pack::from("chunk"), Pack::from("abc=="))]);
        let message = Pack::Array(vec![
            Pack::from("app.web"),
            event_time(1_714_557_600, 500_000_000),
            record("hello"),
            option,
        ]);
        let bytes = encode(&message);
        let ForwardFrame::Complete {
            consumed,
            decoded,
            chunk,
        } = next_message(&bytes, &Limits::default())
        else {
            panic!("expected a message");
        };
        assert_eq!(consumed, bytes.len());
        assert_eq!(chunk.as_deref(), Some("abc=="));
        let event = &decoded.events[0];
        assert_eq!(event.get_str("message"), Some("hello"));
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2024-05-01T10:00:00.500000Z")
        );
        assert_eq!(event.get_str("fluent.tag"), Some("app.web"));
        // A Fluent Bit Kubernetes record is a container log line, whatever its tag.
        assert_eq!(event.get_str("event.dataset"), Some("container.logs"));
        assert_eq!(event.get_str("event.module"), Some("kubernetes"));
        assert_eq!(event.get_str("kubernetes.namespace"), Some("prod"));
        assert_eq!(event.get_str("kubernetes.pod.name"), Some("web-1"));
        assert_eq!(event.get_str("log.iostream"), Some("stderr"));
        assert!(
            !event.get("log").is_some_and(Value::is_string),
            "the line once"
        );
        for cut in 0..bytes.len() {
            assert_eq!(
                next_message(&bytes[..cut], &Limits::default()),
                ForwardFrame::Incomplete
            );
        }
    }

    #[test]
    fn forward_packed_and_compressed_modes_give_the_same_events() {
        let entries = vec![
            Pack::Array(vec![Pack::from(1_714_557_600u32), record("one")]),
            Pack::Array(vec![Pack::from(1_714_557_601u32), record("two")]),
        ];
        let forward = Pack::Array(vec![Pack::from("t"), Pack::Array(entries.clone())]);
        let mut packed_stream = Vec::new();
        for entry in &entries {
            packed_stream.extend(encode(entry));
        }
        let packed = Pack::Array(vec![Pack::from("t"), Pack::Binary(packed_stream.clone())]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&packed_stream).expect("gzip");
        let compressed = Pack::Array(vec![
            Pack::from("t"),
            Pack::Binary(gz.finish().expect("gzip")),
            Pack::Map(vec![(Pack::from("compressed"), Pack::from("gzip"))]),
        ]);
        let limits = Limits::default();
        let mut messages = Vec::new();
        for message in [forward, packed, compressed] {
            let (decoded, _) = decode_value(message, &limits).expect("decodes");
            assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
            let texts: Vec<String> = decoded
                .events
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e.get_str("@timestamp").unwrap_or(""),
                        e.get_str("message").unwrap_or("")
                    )
                })
                .collect();
            messages.push(texts);
        }
        assert_eq!(messages[0].len(), 2);
        assert_eq!(messages[0], messages[1]);
        assert_eq!(messages[0], messages[2]);
    }

    #[test]
    fn bad_messages_are_rejected_without_panics() {
        let limits = Limits::default();
        assert!(matches!(
            next_message(&encode(&Pack::from(5)), &limits),
            ForwardFrame::Invalid(_)
        ));
        assert!(matches!(
            next_message(&[0xc1], &limits),
            ForwardFrame::Invalid(_)
        ));
        let bad_entry = Pack::Array(vec![
            Pack::from("t"),
            Pack::Array(vec![
                Pack::from(1),
                Pack::Array(vec![Pack::from(1), Pack::from("not a map")]),
            ]),
        ]);
        let (decoded, _) = decode_value(bad_entry, &limits).expect("array");
        assert_eq!(decoded.errors.len(), 2);
        let tiny = Limits {
            max_frame_bytes: 4,
            ..Limits::default()
        };
        let big = encode(&Pack::Array(vec![
            Pack::from("t"),
            Pack::Binary(vec![0; 100]),
        ]));
        assert!(matches!(
            next_message(&big[..20], &tiny),
            ForwardFrame::Invalid(_)
        ));
        assert_eq!(
            ack("x"),
            encode(&Pack::Map(vec![(Pack::from("ack"), Pack::from("x"))]))
        );
    }
}
