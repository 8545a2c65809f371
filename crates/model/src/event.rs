//! [`Event`]: the normalized event, a nested JSON object addressed by dotted paths.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ecs, time};

/// One normalized event: a JSON object with ECS-aligned nested fields.
///
/// Paths are dotted (`kubernetes.pod.name`). A key may itself contain dots (Kubernetes
/// annotation keys such as `authorization.k8s.io/decision` do): lookups try the longest literal
/// key first at each level, so both shapes are found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Event(pub Map<String, Value>);

impl Event {
    /// Creates an empty event.
    pub fn new() -> Self {
        Self(Map::new())
    }

    /// Wraps a JSON object.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// The JSON object behind the event.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Consumes the event into its JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// Returns the value at a dotted path.
    pub fn get(&self, path: &str) -> Option<&Value> {
        lookup(&self.0, path)
    }

    /// Returns the value at a dotted path if it is a string.
    pub fn get_str(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }

    /// Sets the value at a dotted path, creating intermediate objects. A non-object value in
    /// the way is replaced by an object.
    pub fn set(&mut self, path: &str, value: Value) {
        let mut map = &mut self.0;
        let mut segments = path.split('.').peekable();
        while let Some(segment) = segments.next() {
            if segments.peek().is_none() {
                map.insert(segment.to_string(), value);
                return;
            }
            let slot = map
                .entry(segment.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            map = match slot {
                Value::Object(inner) => inner,
                _ => unreachable!("slot was just made an object"),
            };
        }
    }

    /// Sets the value at a path unless the value is null or an empty string/array.
    pub fn set_if_present(&mut self, path: &str, value: Option<Value>) {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(v) => self.set(path, v),
        }
    }

    /// Sets the value at a path unless one is already there.
    pub fn set_default(&mut self, path: &str, value: Value) {
        if self.get(path).is_none() {
            self.set(path, value);
        }
    }

    /// The event time (`@timestamp`), if present and parseable.
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        self.get(ecs::TIMESTAMP).and_then(time::parse_timestamp)
    }

    /// The event id (`event.id`), if assigned.
    pub fn id(&self) -> Option<&str> {
        self.get_str(ecs::EVENT_ID)
    }
}

fn lookup<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = map.get(path) {
        return Some(value);
    }
    // Try the longest literal key first so `a.b.c` prefers `{"a.b": {"c": ..}}` over nothing
    // (right to left over the dots, without collecting them: this runs for every field read).
    for (i, _) in path.rmatch_indices('.') {
        if let Some(Value::Object(inner)) = map.get(&path[..i]) {
            if let Some(found) = lookup(inner, &path[i + 1..]) {
                return Some(found);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_then_get_nested_paths() {
        let mut event = Event::new();
        event.set("kubernetes.pod.name", json!("web-1"));
        event.set("kubernetes.namespace", json!("prod"));
        assert_eq!(event.get_str("kubernetes.pod.name"), Some("web-1"));
        assert_eq!(
            event.into_value(),
            json!({"kubernetes": {"pod": {"name": "web-1"}, "namespace": "prod"}})
        );
    }

    #[test]
    fn get_finds_keys_that_contain_dots() {
        let event: Event = serde_json::from_value(json!({
            "k8s": {"audit": {"annotations": {"authorization.k8s.io/decision": "allow"}}}
        }))
        .expect("object");
        assert_eq!(
            event.get_str("k8s.audit.annotations.authorization.k8s.io/decision"),
            Some("allow")
        );
        assert_eq!(event.get("k8s.audit.missing"), None);
    }

    #[test]
    fn set_replaces_scalars_in_the_way() {
        let mut event = Event::new();
        event.set("a", json!(1));
        event.set("a.b", json!(2));
        assert_eq!(event.get("a.b"), Some(&json!(2)));
    }

    #[test]
    fn set_if_present_skips_empty_values() {
        let mut event = Event::new();
        event.set_if_present("a", Some(json!("")));
        event.set_if_present("b", Some(json!([])));
        event.set_if_present("c", None);
        event.set_if_present("d", Some(json!("x")));
        assert_eq!(event.into_value(), json!({"d": "x"}));
    }
}
