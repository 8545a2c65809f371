//! Splunk HTTP Event Collector bodies: `/services/collector/event` and `/services/collector/raw`.
//!
//! The event endpoint takes one or more JSON objects, concatenated (with or without
//! whitespace between them, as the Splunk logging libraries, Fluent Bit, Vector and OTel's
//! `splunk_hec` exporter send them):
//!
//! ```json
//! {"time": 1714557600.5, "host": "web-1", "source": "app", "sourcetype": "nginx",
//!  "index": "main", "event": "GET / 200", "fields": {"cluster": "prod"}}
//! ```
//!
//! `event` is a string (→ `message`) or an object (kept as it is, with the same detection as
//! our NDJSON endpoint). An object that holds many events (an audit `EventList`, a CloudWatch
//! Logs subscription batch, also as a Lambda's gzip'd `awslogs.data`) becomes all of them,
//! each with the envelope's fields and its own item's text as `event.original` (a single event
//! keeps the whole envelope's text); a bad record inside it is an error of that object whose
//! field names the record (`event.items[2]`) while the good ones are stored. The envelope goes to `splunk.source|sourcetype|index|fields`,
//! `host` to `host.name`, `time` (epoch seconds) to `@timestamp`; `event.dataset` is the
//! sourcetype when it is a plain name, else `splunk.hec`. The raw endpoint takes text, one
//! event per line, with the envelope from the query string ([`RawMeta`]).
//!
//! One bad object fails only itself; since concatenated JSON cannot be resynchronised after
//! a syntax error, the rest of the body after one is reported as one error.

use std::collections::BTreeMap;

use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use crowsnest_normalize::{finish, Decoded, LineError};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::common::{claim_module, is_name, json_object, json_text, within_room};
use crate::Limits;

/// The envelope of raw-endpoint events (from the query string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawMeta {
    /// `host` parameter.
    pub host: Option<String>,
    /// `source` parameter.
    pub source: Option<String>,
    /// `sourcetype` parameter.
    pub sourcetype: Option<String>,
    /// `index` parameter.
    pub index: Option<String>,
    /// The `X-Splunk-Request-Channel` header or `channel` parameter.
    pub channel: Option<String>,
}

/// Decodes an event-endpoint body. Item numbers in errors count objects from 1.
pub fn decode_events(body: &[u8], channel: Option<&str>, limits: &Limits) -> Decoded {
    let mut decoded = Decoded::default();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let mut number = 0;
    loop {
        let start = stream.byte_offset();
        let next = stream.next();
        let end = stream.byte_offset();
        let Some(next) = next else { break };
        number += 1;
        if decoded.events.len() >= limits.max_events && next.is_ok() {
            // Every refused object is reported (and counted in the answer).
            decoded.errors.push(LineError::new(
                number,
                format!("expected at most {} events per request", limits.max_events),
            ));
            continue;
        }
        let value = match next {
            Ok(value) => value,
            Err(error) => {
                decoded.errors.push(LineError::new(
                    number,
                    format!("expected concatenated JSON objects: {error}; the rest of the body was skipped"),
                ));
                break;
            }
        };
        let text = String::from_utf8_lossy(&body[start..end]);
        let text = text.trim();
        if text.len() > limits.decode.max_line_bytes {
            decoded.errors.push(LineError::new(
                number,
                format!(
                    "expected at most {} bytes per event",
                    limits.decode.max_line_bytes
                ),
            ));
            continue;
        }
        let room = limits.max_events.saturating_sub(decoded.events.len());
        match map_event(value, raw_event(text), channel, room, limits) {
            Ok(Decoded { events, errors }) => {
                decoded
                    .events
                    .extend(events.into_iter().map(|e| finish(e, text, &limits.decode)));
                decoded
                    .errors
                    .extend(errors.into_iter().map(|error| LineError {
                        line: number,
                        field: Some(match error.field {
                            Some(field) => format!("event.{field}"),
                            None => "event".to_string(),
                        }),
                        reason: error.reason,
                    }));
            }
            Err((field, reason)) => decoded.errors.push(LineError {
                line: number,
                field: field.map(str::to_string),
                reason,
            }),
        }
    }
    decoded
}

/// The exact text of an envelope's `event` field, when it is an object.
fn raw_event(envelope: &str) -> Option<&str> {
    let fields: BTreeMap<String, &RawValue> = serde_json::from_str(envelope).ok()?;
    fields
        .get("event")
        .map(|raw| raw.get())
        .filter(|raw| raw.starts_with('{'))
}

/// Maps one envelope to its events: one, or all of those its `event` object holds (an audit
/// `EventList`, a CloudWatch Logs batch), each with the envelope's fields. A bad envelope
/// fails whole; bad records inside `event` are returned as errors beside the good ones.
fn map_event(
    value: Value,
    raw_event: Option<&str>,
    channel: Option<&str>,
    room: usize,
    limits: &Limits,
) -> Result<Decoded, (Option<&'static str>, String)> {
    let Value::Object(mut envelope) = value else {
        return Err((
            None,
            "expected a JSON object with an `event` field".to_string(),
        ));
    };
    let sourcetype = envelope
        .get("sourcetype")
        .and_then(Value::as_str)
        .map(str::to_string);
    let dataset = sourcetype
        .as_deref()
        .filter(|s| is_name(s))
        .unwrap_or("splunk.hec")
        .to_string();
    let time = match envelope.get("time") {
        None => None,
        Some(time) => {
            let parsed = match time {
                Value::String(text) => text
                    .parse::<f64>()
                    .ok()
                    .map(Value::from)
                    .and_then(|v| parse_timestamp(&v)),
                other => parse_timestamp(other),
            };
            match parsed {
                Some(time) => Some(format_timestamp(time)),
                None => {
                    return Err((
                        Some("time"),
                        "expected epoch seconds such as 1714557600.5".to_string(),
                    ))
                }
            }
        }
    };
    let mut splunk = Map::new();
    for key in ["source", "sourcetype", "index", "fields"] {
        if let Some(value) = envelope.remove(key) {
            if key == "fields" && !value.is_object() {
                return Err((
                    Some("fields"),
                    "expected `fields` to be an object".to_string(),
                ));
            }
            splunk.insert(key.to_string(), value);
        }
    }
    if let Some(channel) = channel {
        splunk.insert("channel".to_string(), Value::String(channel.to_string()));
    }
    let text_event = |text: String| {
        let mut event = Event::new();
        event.set(ecs::MESSAGE, Value::String(text));
        event.set(ecs::EVENT_DATASET, Value::String(dataset.clone()));
        Decoded {
            events: vec![event],
            errors: Vec::new(),
        }
    };
    let Decoded { events, errors } = match envelope.remove("event") {
        Some(Value::String(text)) if text.is_empty() => {
            return Err((Some("event"), "expected a non-empty event".to_string()))
        }
        Some(Value::String(text)) => text_event(text),
        Some(Value::Object(object)) => {
            let decoded = match raw_event {
                Some(raw) => json_text(raw.as_bytes(), &dataset, limits),
                None => json_object(&object, &dataset, limits),
            };
            within_room(decoded, room, limits)
        }
        Some(Value::Null) | None => {
            return Err((
                Some("event"),
                "expected an `event` field (string or object)".to_string(),
            ))
        }
        Some(other) => text_event(other.to_string()),
    };
    let host = envelope.get("host").and_then(Value::as_str);
    let events = events
        .into_iter()
        .map(|mut event| {
            event.set_default(ecs::EVENT_MODULE, Value::String("splunk".to_string()));
            claim_module(&mut event, "splunk");
            if let Some(time) = &time {
                // The envelope's time is the record's; records split from a batch (they
                // carry their own text) keep their own time when they have one.
                if event.get_str(ecs::EVENT_ORIGINAL).is_some() {
                    event.set_default(ecs::TIMESTAMP, Value::String(time.clone()));
                } else {
                    event.set(ecs::TIMESTAMP, Value::String(time.clone()));
                }
            }
            if let Some(host) = host {
                event.set_default("host.name", Value::String(host.to_string()));
            }
            if !splunk.is_empty() {
                event.set("splunk", Value::Object(splunk.clone()));
            }
            event
        })
        .collect();
    Ok(Decoded { events, errors })
}

/// Decodes a raw-endpoint body: one event per non-blank line.
pub fn decode_raw(body: &[u8], meta: &RawMeta, limits: &Limits) -> Decoded {
    let mut decoded = Decoded::default();
    let dataset = meta
        .sourcetype
        .as_deref()
        .filter(|s| is_name(s))
        .unwrap_or("splunk.raw");
    for (index, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if decoded.events.len() >= limits.max_events {
            decoded.errors.push(LineError::new(
                index + 1,
                format!("expected at most {} events per request", limits.max_events),
            ));
            continue;
        }
        if line.len() > limits.decode.max_line_bytes {
            decoded.errors.push(LineError::new(
                index + 1,
                format!(
                    "expected at most {} bytes per line",
                    limits.decode.max_line_bytes
                ),
            ));
            continue;
        }
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(error) => {
                decoded.errors.push(LineError::new(
                    index + 1,
                    format!(
                        "expected UTF-8 text, found invalid UTF-8 at byte {}",
                        error.valid_up_to()
                    ),
                ));
                continue;
            }
        };
        let mut event = Event::new();
        event.set(ecs::MESSAGE, Value::String(text.to_string()));
        event.set(ecs::EVENT_DATASET, Value::String(dataset.to_string()));
        event.set(ecs::EVENT_MODULE, Value::String("splunk".to_string()));
        if let Some(host) = &meta.host {
            event.set("host.name", Value::String(host.clone()));
        }
        for (key, value) in [
            ("splunk.source", &meta.source),
            ("splunk.sourcetype", &meta.sourcetype),
            ("splunk.index", &meta.index),
            ("splunk.channel", &meta.channel),
        ] {
            if let Some(value) = value {
                event.set(key, Value::String(value.clone()));
            }
        }
        decoded.events.push(finish(event, text, &limits.decode));
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenated_objects_map_envelope_and_event() {
        let body = br#"{"time": 1714557600.5, "host": "web-1", "sourcetype": "nginx", "index": "main", "event": "GET / 200", "fields": {"cluster": "prod"}}{"event": {"msg": "structured", "user": {"name": "alice"}}, "source": "app"}
 {"event": "third"}"#;
        let decoded = decode_events(body, Some("ch-1"), &Limits::default());
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        assert_eq!(decoded.events.len(), 3);
        let first = &decoded.events[0];
        assert_eq!(first.get_str("message"), Some("GET / 200"));
        assert_eq!(
            first.get_str("@timestamp"),
            Some("2024-05-01T10:00:00.500000Z")
        );
        assert_eq!(first.get_str("host.name"), Some("web-1"));
        assert_eq!(first.get_str("event.dataset"), Some("nginx"));
        assert_eq!(first.get_str("event.module"), Some("splunk"));
        assert_eq!(first.get_str("splunk.index"), Some("main"));
        assert_eq!(first.get_str("splunk.fields.cluster"), Some("prod"));
        assert_eq!(first.get_str("splunk.channel"), Some("ch-1"));
        assert!(first
            .get_str("event.original")
            .is_some_and(|o| o.starts_with("{\"time\"")));
        let second = &decoded.events[1];
        assert_eq!(second.get_str("message"), Some("structured"));
        assert_eq!(second.get_str("user.name"), Some("alice"));
        assert_eq!(second.get_str("event.dataset"), Some("splunk.hec"));
    }

    #[test]
    fn bad_objects_fail_alone_and_syntax_errors_stop_the_stream() {
        let body = br#"{"event": "ok"}{"no_event": 1}{"event": "x", "time": "soon"}{"event": "after"}{"broken"#;
        let decoded = decode_events(body, None, &Limits::default());
        assert_eq!(decoded.events.len(), 2);
        let lines: Vec<usize> = decoded.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 5]);
        assert_eq!(decoded.errors[1].field.as_deref(), Some("time"));
    }

    #[test]
    fn raw_lines_take_the_query_envelope() {
        let meta = RawMeta {
            host: Some("h".into()),
            sourcetype: Some("syslog".into()),
            ..RawMeta::default()
        };
        let decoded = decode_raw(b"one\r\n\ntwo\n\xff\n", &meta, &Limits::default());
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(decoded.events[1].get_str("message"), Some("two"));
        assert_eq!(decoded.events[1].get_str("event.dataset"), Some("syslog"));
        assert_eq!(decoded.events[0].get_str("host.name"), Some("h"));
        assert_eq!(decoded.errors[0].line, 4);
    }
}
