//! The byte form of an [`Event`] in the write-ahead log: its JSON without the raw input, then
//! the raw input verbatim.
//!
//! ```text
//! tag (1 byte) | JSON length (u32, little endian) | JSON of the event without event.original | raw input
//! ```
//!
//! * The tag is [`WITH_ORIGINAL`] (or [`WITH_FLAT_ORIGINAL`] for the one-key spelling) when the
//!   event has a string `event.original` (its bytes follow the JSON), [`WITHOUT_ORIGINAL`] when
//!   it has none. Neither byte can start a JSON text,
//!   so a record written as plain JSON by an earlier version ([`decode`] still reads those) is
//!   told apart by its first byte.
//! * Keeping the raw input out of the JSON saves escaping it (every quote of a JSON line would
//!   become `\"`) when the event is written and unescaping it when it is read, and it lets the
//!   store take the JSON as the event's stored source and the raw bytes as its stored original
//!   without serializing the event a second time.
//!
//! Hand-written because it is twelve lines of framing around `serde_json`; a general format
//! (bincode, MessagePack) would encode the event's tree again instead of reusing its JSON.

use serde_json::{Map, Value};

use crate::{ecs, Event};

/// Tag of a record whose event has no `event.original` string.
pub const WITHOUT_ORIGINAL: u8 = 0x01;
/// Tag of a record followed by the event's `event.original` bytes.
pub const WITH_ORIGINAL: u8 = 0x02;
/// Like [`WITH_ORIGINAL`], for an event that spelled the path as one key `"event.original"`.
pub const WITH_FLAT_ORIGINAL: u8 = 0x03;

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The record is empty.
    #[error("empty record")]
    Empty,
    /// The record is shorter than its header says.
    #[error("record of {len} bytes is shorter than its header says ({needed} bytes)")]
    Truncated {
        /// Bytes in the record.
        len: usize,
        /// Bytes the header needs.
        needed: usize,
    },
    /// The first byte is neither a known tag nor the start of a JSON object.
    #[error("unknown record tag {0:#04x}")]
    UnknownTag(u8),
    /// The JSON part is not an event, or the raw input is not UTF-8.
    #[error("record is not an event: {0}")]
    Json(#[from] serde_json::Error),
    /// The raw input is not UTF-8.
    #[error("raw input of the record is not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
}

/// The two parts of a record in this format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    /// JSON of the event without `event.original` (valid UTF-8 when written by [`encode`]).
    pub json: &'a [u8],
    /// The raw input, when the event had one.
    pub original: Option<&'a [u8]>,
    /// The event spelled the raw input's path as the one key `"event.original"`.
    pub flat: bool,
}

/// Appends the record of `event` to `out`.
pub fn encode(event: &Event, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let original = original_of(event.as_map());
    let start = out.len();
    out.push(match original {
        None => WITHOUT_ORIGINAL,
        Some((_, true)) => WITH_FLAT_ORIGINAL,
        Some((_, false)) => WITH_ORIGINAL,
    });
    out.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *out, &WithoutOriginal(event.as_map()))?;
    let json_len = out.len() - start - 5;
    let Ok(json_len) = u32::try_from(json_len) else {
        out.truncate(start);
        return Err(serde::ser::Error::custom(format!(
            "event of {json_len} bytes of JSON is too large for a record"
        )));
    };
    out[start + 1..start + 5].copy_from_slice(&json_len.to_le_bytes());
    if let Some((original, _)) = original {
        out.extend_from_slice(original.as_bytes());
    }
    Ok(())
}

/// The record of `event` as a new buffer.
pub fn to_vec(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    encode(event, &mut out)?;
    Ok(out)
}

/// Splits a record of this format into its parts; `None` for a record written as plain JSON.
pub fn parts(record: &[u8]) -> Result<Option<Parts<'_>>, RecordError> {
    let (&tag, rest) = record.split_first().ok_or(RecordError::Empty)?;
    match tag {
        WITH_ORIGINAL | WITH_FLAT_ORIGINAL | WITHOUT_ORIGINAL => {}
        b'{' | b' ' | b'\t' | b'\r' | b'\n' => return Ok(None),
        other => return Err(RecordError::UnknownTag(other)),
    }
    let truncated = || RecordError::Truncated {
        len: record.len(),
        needed: 5,
    };
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(RecordError::Truncated {
            len: record.len(),
            needed: 5 + len,
        });
    }
    let (json, original) = rest.split_at(len);
    Ok(Some(Parts {
        json,
        original: (tag != WITHOUT_ORIGINAL).then_some(original),
        flat: tag == WITH_FLAT_ORIGINAL,
    }))
}

/// Reads an event back from its record (this format, or plain JSON from earlier versions).
pub fn decode(record: &[u8]) -> Result<Event, RecordError> {
    let Some(parts) = parts(record)? else {
        return Ok(serde_json::from_slice(record)?);
    };
    let mut event: Event = serde_json::from_slice(parts.json)?;
    if let Some(original) = parts.original {
        let text = Value::String(std::str::from_utf8(original)?.to_owned());
        if parts.flat {
            event.0.insert(ecs::EVENT_ORIGINAL.to_owned(), text);
        } else {
            event.set(ecs::EVENT_ORIGINAL, text);
        }
    }
    Ok(event)
}

/// The event's `event.original` when it is a string, and whether it is spelled as one key.
fn original_of(map: &Map<String, Value>) -> Option<(&str, bool)> {
    match map.get(ecs::EVENT_ORIGINAL) {
        Some(Value::String(text)) => Some((text, true)),
        _ => match map.get("event") {
            Some(Value::Object(inner)) => inner
                .get("original")
                .and_then(Value::as_str)
                .map(|text| (text, false)),
            _ => None,
        },
    }
}

/// Serializes an event's map without the string [`original_of`] returns.
///
/// Only the one value `original_of` picks is left out, so an event with both spellings keeps
/// the other in its JSON and reads back with both.
pub struct WithoutOriginal<'a>(pub &'a Map<String, Value>);

impl serde::Serialize for WithoutOriginal<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let flat = matches!(self.0.get(ecs::EVENT_ORIGINAL), Some(Value::String(_)));
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0 {
            match (key.as_str(), value) {
                (ecs::EVENT_ORIGINAL, Value::String(_)) => {}
                ("event", Value::Object(inner))
                    if !flat && matches!(inner.get("original"), Some(Value::String(_))) =>
                {
                    map.serialize_entry(key, &WithoutKey(inner, "original"))?;
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

struct WithoutKey<'a>(&'a Map<String, Value>, &'a str);

impl serde::Serialize for WithoutKey<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0 {
            if key != self.1 {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(value: Value) -> Event {
        match value {
            Value::Object(map) => Event::from_map(map),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn an_event_with_its_raw_input_reads_back_equal() {
        let raw = r#"{"kind":"Event","msg":"say \"hi\"\n"}"#;
        let original = event(json!({
            "@timestamp": "2024-01-01T00:00:00Z",
            "event": {"dataset": "k8s.audit", "original": raw},
            "user": {"name": "alice"},
        }));
        let record = to_vec(&original).expect("encodes");
        assert_eq!(record[0], WITH_ORIGINAL);
        let parts = parts(&record).expect("reads").expect("framed");
        assert_eq!(parts.original, Some(raw.as_bytes()));
        let json: Value = serde_json::from_slice(parts.json).expect("json");
        assert_eq!(json["event"], json!({"dataset": "k8s.audit"}));
        // The raw input is not escaped into the JSON.
        assert!(!String::from_utf8_lossy(parts.json).contains("kind"));
        assert_eq!(decode(&record).expect("decodes"), original);
    }

    #[test]
    fn an_event_without_raw_input_reads_back_equal() {
        let original =
            event(json!({"@timestamp": "2024-01-01T00:00:00Z", "event": {"original": 5}}));
        let record = to_vec(&original).expect("encodes");
        assert_eq!(record[0], WITHOUT_ORIGINAL);
        assert_eq!(
            parts(&record).expect("reads").expect("framed").original,
            None
        );
        assert_eq!(decode(&record).expect("decodes"), original);
    }

    #[test]
    fn the_dotted_spelling_of_the_raw_input_is_kept_apart_too() {
        let original = event(json!({"event.original": "raw line", "a": 1}));
        let record = to_vec(&original).expect("encodes");
        let parts = parts(&record).expect("reads").expect("framed");
        assert_eq!(parts.json, br#"{"a":1}"#);
        assert_eq!(parts.original, Some(&b"raw line"[..]));
        assert_eq!(record[0], WITH_FLAT_ORIGINAL);
        assert_eq!(decode(&record).expect("decodes"), original);
    }

    #[test]
    fn records_of_plain_json_from_earlier_versions_still_read() {
        let old = br#"{"event":{"original":"x"},"a":1}"#;
        assert_eq!(parts(old).expect("reads"), None);
        let event = decode(old).expect("decodes");
        assert_eq!(event.get_str("event.original"), Some("x"));
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z.]{0,6}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any event, with or without a raw input of any text under either spelling, reads
        /// back equal; and any bytes at all decode to an event or an error, never a panic.
        #[test]
        fn every_event_reads_back_equal(
            fields in prop::collection::btree_map("[a-z@.]{1,8}", tree(), 0..5),
            original in proptest::option::of(".{0,40}"),
            flat in any::<bool>(),
            noise in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut event = Event::from_map(fields.into_iter().collect());
            if let Some(original) = original {
                if flat {
                    event.0.insert(ecs::EVENT_ORIGINAL.to_owned(), Value::String(original));
                } else {
                    event.set(ecs::EVENT_ORIGINAL, Value::String(original));
                }
            }
            let record = to_vec(&event).expect("encodes");
            prop_assert_eq!(decode(&record).expect("decodes"), event);
            let _ = decode(&noise);
        }
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        assert!(matches!(decode(b""), Err(RecordError::Empty)));
        assert!(matches!(
            decode(&[0x07, 1]),
            Err(RecordError::UnknownTag(7))
        ));
        assert!(matches!(
            decode(&[WITH_ORIGINAL, 1, 0]),
            Err(RecordError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[WITH_ORIGINAL, 9, 0, 0, 0, b'{', b'}']),
            Err(RecordError::Truncated { needed: 14, .. })
        ));
        assert!(matches!(
            decode(&[WITH_ORIGINAL, 2, 0, 0, 0, b'{', b'}', 0xff]),
            Err(RecordError::Utf8(_))
        ));
        assert!(matches!(
            decode(&[WITHOUT_ORIGINAL, 1, 0, 0, 0, b'[']),
            Err(RecordError::Json(_))
        ));
    }
}
