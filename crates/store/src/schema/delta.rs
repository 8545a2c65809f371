//! The stored event as what normalization added to the raw input (issue 23, the docstore's
//! largest lever).
//!
//! Every event is stored twice over: its raw input (`_orig`) and the normalized event
//! (`_source`), which for most shapes repeats much of the raw input: an audit event's whole
//! `k8s.audit`, a Falco alert's `falco`, a Fluent Bit record's labels and annotations. zstd
//! finds some of the repeats within a block, not all. So when an event has a raw input that
//! is a JSON object, `_source` holds a *delta*: the normalized event with each subtree equal
//! to a subtree of the raw input replaced by a reference to it, `{"\u{1}ref": "/pointer"}`
//! (an RFC 6901 JSON pointer into the raw input), after the version tag [`DELTA_V1`]. Reading
//! a hit parses the raw input and puts the referenced subtrees back (`rebuild`).
//!
//! Exactness: a delta is kept only when rebuilding it gives back the normalized event's JSON
//! byte for byte (checked at write time), else the event is stored whole as before. A
//! `_source` without the tag is a whole event, so partitions written before this stay
//! readable, and an unknown tag is an error, never a wrong answer.
//!
//! Where the subtrees are looked for: at the same path in the raw input (a normalizer keeping
//! the raw fields where they were), and, for an object of the normalized event that shares at
//! least two keys with the raw input's top level, at the raw input's top level (a normalizer
//! keeping the raw event under a key of its own: `k8s.audit`, `falco`, ...).

use serde_json::{Map, Value};

/// The tag of a `_source` that is a delta, version 1.
pub(crate) const DELTA_V1: &str = "\u{1}delta1\n";
/// The key of a reference object.
const REF: &str = "\u{1}ref";
/// Deepest object of the normalized event that is aligned with the raw input's top level.
const MAX_ALIGN_DEPTH: usize = 3;

/// The delta text of the normalized event `map` (whose `_source` JSON is `json`) against the
/// raw input `original`, when one exists, rebuilds exactly, and is shorter.
pub(crate) fn delta(map: &Map<String, Value>, json: &[u8], original: &[u8]) -> Option<String> {
    let root: Value = serde_json::from_slice(original).ok()?;
    let Value::Object(raw) = &root else {
        return None;
    };
    let skip = original_address(map);
    let mut refs = 0;
    let delta = object_delta(map, Some(&root), raw, "", skip, 0, &mut refs);
    if refs == 0 {
        return None;
    }
    let mut text = String::with_capacity(json.len() / 2);
    text.push_str(DELTA_V1);
    let delta = Value::Object(delta);
    // Serializing a `Value` to a `String` cannot fail.
    text.push_str(&serde_json::to_string(&delta).ok()?);
    if text.len() >= json.len() {
        return None;
    }
    let rebuilt = resolve(delta, &root).ok()?;
    let bytes = serde_json::to_vec(&rebuilt).ok()?;
    (bytes == json).then_some(text)
}

/// Rebuilds the normalized event's JSON value from a stored `_source` after [`DELTA_V1`] and
/// the raw input.
pub(crate) fn rebuild(delta: &str, original: Option<&[u8]>) -> Result<Value, String> {
    let original = original.ok_or("a delta without its raw input")?;
    let raw: Value = serde_json::from_slice(original)
        .map_err(|e| format!("the raw input of a delta is not JSON: {e}"))?;
    let delta: Value = serde_json::from_str(delta).map_err(|e| format!("delta: {e}"))?;
    resolve(delta, &raw)
}

/// The address of the `event.original` string `record::encode` leaves out of `_source`.
fn original_address(map: &Map<String, Value>) -> usize {
    let value = match map.get("event.original") {
        Some(value @ Value::String(_)) => Some(value),
        _ => match map.get("event") {
            Some(Value::Object(inner)) => inner.get("original").filter(|v| v.is_string()),
            _ => None,
        },
    };
    value.map_or(0, |v| v as *const Value as usize)
}

fn object_delta(
    map: &Map<String, Value>,
    here: Option<&Value>,
    raw: &Map<String, Value>,
    pointer: &str,
    skip: usize,
    depth: usize,
    refs: &mut usize,
) -> Map<String, Value> {
    // Aligned with the raw input at the same path, or with its top level.
    let (base, base_pointer): (Option<&Map<String, Value>>, Option<String>) = match here {
        Some(Value::Object(here)) => (Some(here), Some(pointer.to_owned())),
        _ if depth > 0
            && depth <= MAX_ALIGN_DEPTH
            && map.keys().filter(|k| raw.contains_key(*k)).take(2).count() == 2 =>
        {
            (Some(raw), Some(String::new()))
        }
        _ => (None, None),
    };
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        if value as *const Value as usize == skip {
            continue;
        }
        let child = base.and_then(|b| b.get(key));
        let replaced = match (&base_pointer, child) {
            (Some(at), Some(child)) => {
                let mut child_pointer = at.clone();
                push_segment(&mut child_pointer, key);
                value_delta(value, Some(child), raw, &child_pointer, skip, depth, refs)
            }
            _ => value_delta(value, None, raw, pointer, skip, depth, refs),
        };
        out.insert(key.clone(), replaced);
    }
    out
}

fn value_delta(
    value: &Value,
    here: Option<&Value>,
    raw: &Map<String, Value>,
    pointer: &str,
    skip: usize,
    depth: usize,
    refs: &mut usize,
) -> Value {
    if let Some(here) = here {
        if worth(value) && value == here && same_order(value, here) {
            *refs += 1;
            return reference(pointer);
        }
    }
    match value {
        Value::Object(map) => {
            if here.is_none()
                && depth < MAX_ALIGN_DEPTH
                && map.len() == raw.len()
                && map
                    .iter()
                    .zip(raw.iter())
                    .all(|((a, x), (b, y))| a == b && x == y)
                && !contains_address(value, skip)
            {
                *refs += 1;
                return reference("");
            }
            Value::Object(object_delta(map, here, raw, pointer, skip, depth + 1, refs))
        }
        other => other.clone(),
    }
}

fn contains_address(value: &Value, address: usize) -> bool {
    if address == 0 {
        return false;
    }
    if value as *const Value as usize == address {
        return true;
    }
    match value {
        Value::Object(map) => map.values().any(|v| contains_address(v, address)),
        Value::Array(items) => items.iter().any(|v| contains_address(v, address)),
        _ => false,
    }
}

/// Worth a reference: a reference object is about 20 bytes.
fn worth(value: &Value) -> bool {
    match value {
        Value::String(s) => s.len() >= 24,
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

/// Equal values with their keys in the same order (`==` ignores the order of keys).
fn same_order(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same_order(v1, v2))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v1, v2)| same_order(v1, v2))
        }
        _ => true,
    }
}

fn reference(pointer: &str) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(REF.to_owned(), Value::String(pointer.to_owned()));
    Value::Object(map)
}

/// Appends `/key` to a JSON pointer, escaped (RFC 6901).
fn push_segment(pointer: &mut String, key: &str) {
    pointer.push('/');
    for c in key.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// Puts the referenced subtrees of `raw` back into `delta`.
fn resolve(delta: Value, raw: &Value) -> Result<Value, String> {
    match delta {
        Value::Object(map) => {
            if map.len() == 1 {
                if let Some(Value::String(pointer)) = map.get(REF) {
                    return raw.pointer(pointer).cloned().ok_or_else(|| {
                        format!("delta reference `{pointer}` not in the raw input")
                    });
                }
            }
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map {
                out.insert(key, resolve(value, raw)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => Ok(Value::Array(
            items
                .into_iter()
                .map(|item| resolve(item, raw))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowsnest_model::{record, Event};
    use serde_json::json;

    /// The `_source` of `event` stored as a delta, rebuilt, equals the whole one.
    fn round_trip(event: Value) -> Option<usize> {
        let event: Event = serde_json::from_value(event).expect("object");
        let record = record::to_vec(&event).expect("record");
        let parts = record::parts(&record).expect("parts").expect("framed");
        let original = parts.original?;
        let text = delta(event.as_map(), parts.json, original)?;
        let rest = text.strip_prefix(DELTA_V1).expect("tagged");
        let rebuilt = rebuild(rest, Some(original)).expect("rebuilds");
        assert_eq!(
            serde_json::to_vec(&rebuilt).expect("json"),
            parts.json,
            "{text}"
        );
        Some(parts.json.len() - text.len())
    }

    #[test]
    fn a_raw_event_kept_under_a_key_of_its_own_is_referenced() {
        let raw = json!({"kind": "Event", "auditID": "e9f2963f-15ad-11e8-9a06-0800279e0d30", "verb": "create",
            "user": {"username": "alice", "groups": ["a", "b"]},
            "requestObject": {"metadata": {"name": "p", "labels": {"app": "x"}}}});
        let saved = round_trip(json!({
            "@timestamp": "2024-01-01T00:00:00Z",
            "event": {"original": raw.to_string(), "action": "create"},
            "user": {"name": "alice"},
            "k8s": {"audit": raw},
        }))
        .expect("a delta");
        assert!(saved > raw.to_string().len() / 2, "{saved}");
    }

    #[test]
    fn raw_fields_kept_in_place_are_referenced_and_changed_ones_kept() {
        let raw = json!({"log": "hello world\n", "stream": "stdout",
            "kubernetes": {"pod_name": "api-1", "labels": {"app": "api", "tier": "backend", "app.kubernetes.io/part-of": "checkout"},
            "annotations": {"prometheus.io/scrape": "true", "a~b": "c", "kubectl.kubernetes.io/restartedAt": "2026-11-30T08:12:44Z"}}});
        round_trip(json!({
            "@timestamp": "2024-01-01T00:00:00Z",
            "message": "hello world",
            "kubernetes": {"pod": {"name": "api-1"}, "labels": {"app": "api", "tier": "backend", "app.kubernetes.io/part-of": "checkout"},
                "annotations": {"prometheus.io/scrape": "true", "a~b": "c", "kubectl.kubernetes.io/restartedAt": "2026-11-30T08:12:44Z"}},
            "event": {"original": raw.to_string()},
        }))
        .expect("a delta");
    }

    #[test]
    fn reordered_keys_or_no_common_subtree_store_the_event_whole() {
        // The same object with its keys in another order is not referenced.
        let raw = json!({"a": {"x": 1, "y": 2, "z": "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"}});
        assert_eq!(
            round_trip(json!({
                "b": {"y": 2, "x": 1},
                "event": {"original": raw.to_string()},
            })),
            None
        );
        // A raw input that is not JSON has no delta.
        assert_eq!(
            round_trip(json!({"message": "x", "event": {"original": "plain text line"}})),
            None
        );
    }

    #[test]
    fn a_reference_key_in_the_event_itself_cannot_fool_the_rebuild() {
        let raw = json!({"a": {"x": "a long enough value to be referenced here"}});
        // The event holds what looks like a reference: the check at write time refuses a
        // delta that would not rebuild it.
        if let Some(saved) = round_trip(json!({
            "a": {"x": "a long enough value to be referenced here"},
            "trap": {"\u{1}ref": "/a"},
            "event": {"original": raw.to_string()},
        })) {
            assert!(saved > 0);
        }
    }
}
