//! Any other JSON object → the common event, keeping the object as it is.
//!
//! Users and shippers often send ECS-shaped JSON already, so the object's own fields *are*
//! the event. The decoder only adds what the rest of crowsnest needs:
//!
//! * `@timestamp`, normalized to RFC 3339 UTC with microseconds, from the first of
//!   [`TIME_KEYS`] that parses (RFC 3339, RFC 2822, `YYYY-MM-DD HH:MM:SS`, epoch s/ms/µs/ns);
//! * `message` from `msg`, `log` or `MESSAGE` when there is no `message` (the alias is kept);
//! * `event.dataset` and `event.module` unless the object has its own;
//! * the web fields of an access log ([`crate::access_log::enrich`]) when the object is a JSON
//!   access record or its message is an access line.
//!
//! Values that would be clobbered by these ECS fields are moved, never dropped: an
//! `@timestamp` that does not parse and a top-level `event` that is not an object go to
//! `crowsnest.displaced.<key>`.

use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use serde_json::{json, Map, Value};

use crate::registry::{Context, Parser, Record};
use crate::{finish, Decoded};

/// `event.module` of generic events.
pub(crate) const MODULE: &str = "ndjson";
/// `event.dataset` of generic events when the request names no `source`.
pub(crate) const DATASET: &str = "ndjson";

/// Keys tried, in order, for the event time.
pub const TIME_KEYS: &[&str] = &[
    "@timestamp",
    "timestamp",
    "time",
    "ts",
    "date",
    "datetime",
    "eventTime",
    "_time",
];

/// Keys tried, in order, for `message` when the object has none.
pub const MESSAGE_KEYS: &[&str] = &["msg", "log", "MESSAGE"];

/// The generic parser (`generic`): any JSON object, kept as it is. Last in detection order.
#[derive(Debug)]
pub(crate) struct Generic;

impl Parser for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }

    fn detect(&self, _object: &Map<String, Value>) -> bool {
        true
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let (text, object) = match record {
            Record::Json { text, object } => (text, object),
            Record::Text(text) => {
                let mut object = Map::new();
                object.insert(ecs::MESSAGE.to_string(), Value::String(text.to_string()));
                (text, object)
            }
        };
        let mut event = map_generic(object, cx.dataset);
        // A JSON access record, or a shipper's record whose message is an access line.
        crate::access_log::enrich(&mut event);
        out.events.push(finish(event, text, cx.limits));
    }
}

/// Maps an arbitrary JSON object (without `event.original`).
pub(crate) fn map_generic(mut obj: Map<String, Value>, dataset: &str) -> Event {
    let mut displaced = Map::new();
    if obj.get("event").is_some_and(|v| !v.is_object()) {
        if let Some(value) = obj.remove("event") {
            displaced.insert("event".to_string(), value);
        }
    }
    let time = TIME_KEYS
        .iter()
        .find_map(|key| obj.get(*key).and_then(parse_timestamp));
    match time {
        Some(time) => {
            obj.insert(
                ecs::TIMESTAMP.to_string(),
                Value::String(format_timestamp(time)),
            );
        }
        None => {
            if let Some(value) = obj.remove(ecs::TIMESTAMP) {
                displaced.insert(ecs::TIMESTAMP.to_string(), value);
            }
        }
    }
    if !obj.contains_key(ecs::MESSAGE) {
        let alias = MESSAGE_KEYS
            .iter()
            .find_map(|key| obj.get(*key).filter(|v| v.is_string()).cloned());
        if let Some(message) = alias {
            obj.insert(ecs::MESSAGE.to_string(), message);
        }
    }
    let mut event = Event::from_map(obj);
    event.set_default(ecs::EVENT_DATASET, json!(dataset));
    event.set_default(ecs::EVENT_MODULE, json!(MODULE));
    if !displaced.is_empty() {
        event.set("crowsnest.displaced", Value::Object(displaced));
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn scalar_event_and_bad_timestamp_are_displaced_not_lost() {
        let event = map_generic(obj(json!({"event": "login", "@timestamp": "soon"})), "app");
        assert_eq!(event.get_str("crowsnest.displaced.event"), Some("login"));
        assert_eq!(
            event.get_str("crowsnest.displaced.@timestamp"),
            Some("soon")
        );
        assert_eq!(event.get(ecs::TIMESTAMP), None);
        assert_eq!(event.get_str(ecs::EVENT_DATASET), Some("app"));
    }

    #[test]
    fn own_dataset_wins() {
        let event = map_generic(obj(json!({"event": {"dataset": "mine"}})), "app");
        assert_eq!(event.get_str(ecs::EVENT_DATASET), Some("mine"));
        assert_eq!(event.get_str(ecs::EVENT_MODULE), Some(MODULE));
    }

    #[test]
    fn a_carried_original_is_kept_and_an_absent_one_is_the_line() {
        let limits = crate::Limits::default();
        let body = br#"{"message":"boom","event":{"original":"2024-05-01 boom \"quoted\""}}
{"message":"plain"}
"#;
        let decoded = crate::decode_ndjson(body, Some("generic"), &limits);
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        assert_eq!(
            decoded.events[0].get_str(ecs::EVENT_ORIGINAL),
            Some("2024-05-01 boom \"quoted\"")
        );
        assert_eq!(
            decoded.events[1].get_str(ecs::EVENT_ORIGINAL),
            Some(r#"{"message":"plain"}"#)
        );
    }
}
