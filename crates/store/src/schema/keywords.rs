//! The `fields` value of a document, read straight from the event's JSON tree.
//!
//! tantivy accepts any type implementing its [`Value`](DocValue) trait as a field value and
//! copies it into the document once. [`Node`] is such a view over the event: it walks the
//! event's own maps and arrays and leaves out what `fields` must not hold (`@timestamp`,
//! `message`, `event.original`), caps keywords at [`MAX_KEYWORD_BYTES`] bytes and never turns a
//! string into a date. Building the flattened `(dotted path, value)` list instead (the
//! fallback in `schema.rs`) cloned every path and every string and grouped repeated paths
//! through a hash map: about a tenth of the store's CPU per event.
//!
//! The two are indexed alike because tantivy expands dots in `fields` keys: `{"a": {"b": 1}}`
//! and `{"a.b": 1}` are the same path, and a path's values keep their order either way (the
//! unit tests and the proptest below compare both per path). The view is used only when
//! [`borrowable`] says so: at most [`MAX_LEAVES`] leaves (the flattened form cuts the rest)
//! and no leaf deeper than [`MAX_LEVEL`] (tantivy's fast-field writer stops at 20 levels,
//! which the flattened form, two levels deep, never reaches).

use serde_json::{map, Map, Value};
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf};
use tantivy::schema::Value as DocValue;

#[cfg(doc)]
use super::MAX_KEYWORD_BYTES;
use super::{cap_keyword, is_text_path, MAX_LEAVES};
use crowsnest_model::ecs;

/// Deepest leaf the view hands to tantivy (its fast-field writer keeps 20 levels).
pub(crate) const MAX_LEVEL: usize = 16;

/// A node of an event as the `fields` value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node<'a> {
    /// The event's top-level object: `@timestamp` and the full-text paths are left out.
    Root(&'a Map<String, Value>),
    /// The value at `event` (an object, or arrays of them): its `original` is left out.
    Event(&'a Value),
    /// Any other value, as it is.
    Plain(&'a Value),
}

/// Which keys an object leaves out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Root,
    Event,
    Plain,
}

/// The entries of an object node.
pub(crate) struct Entries<'a> {
    iter: map::Iter<'a>,
    scope: Scope,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (key, value) = self.iter.next()?;
            match self.scope {
                Scope::Root if key == ecs::TIMESTAMP || is_text_path(key) => continue,
                Scope::Root if key == "event" => return Some((key, Node::Event(value))),
                Scope::Event if key == "original" => continue,
                _ => return Some((key, Node::Plain(value))),
            }
        }
    }
}

/// The items of an array node (items of an array at `event` are still at `event`).
pub(crate) struct Items<'a> {
    iter: std::slice::Iter<'a, Value>,
    at_event: bool,
}

impl<'a> Iterator for Items<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let value = self.iter.next()?;
        Some(if self.at_event {
            Node::Event(value)
        } else {
            Node::Plain(value)
        })
    }
}

impl<'a> DocValue<'a> for Node<'a> {
    type ArrayIter = Items<'a>;
    type ObjectIter = Entries<'a>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        let (value, at_event) = match *self {
            Node::Root(map) => {
                return ReferenceValue::Object(Entries {
                    iter: map.iter(),
                    scope: Scope::Root,
                })
            }
            Node::Event(value) => (value, true),
            Node::Plain(value) => (value, false),
        };
        let leaf = match value {
            Value::Null => ReferenceValueLeaf::Null,
            Value::Bool(b) => ReferenceValueLeaf::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    ReferenceValueLeaf::I64(i)
                } else if let Some(u) = n.as_u64() {
                    ReferenceValueLeaf::U64(u)
                } else if let Some(f) = n.as_f64() {
                    ReferenceValueLeaf::F64(f)
                } else {
                    ReferenceValueLeaf::Null
                }
            }
            Value::String(s) => ReferenceValueLeaf::Str(cap_keyword(s)),
            Value::Array(items) => {
                return ReferenceValue::Array(Items {
                    iter: items.iter(),
                    at_event,
                })
            }
            Value::Object(map) => {
                return ReferenceValue::Object(Entries {
                    iter: map.iter(),
                    scope: if at_event { Scope::Event } else { Scope::Plain },
                })
            }
        };
        ReferenceValue::Leaf(leaf)
    }
}

/// True when [`Node::Root`] of `map` indexes exactly what the flattened form would: at most
/// [`MAX_LEAVES`] non-null leaves in the whole event (left-out paths included, so nothing is
/// cut either way), none deeper than [`MAX_LEVEL`], and no empty top-level key (the flattened
/// form writes `{"": {"a": 1}}` as path `a`, the view as `.a`). A linear walk, no allocation.
pub(crate) fn borrowable(map: &Map<String, Value>) -> bool {
    let mut leaves = 0;
    !map.contains_key("") && map.values().all(|value| within(value, 1, &mut leaves))
}

fn within(value: &Value, level: usize, leaves: &mut usize) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().all(|item| within(item, level + 1, leaves)),
        Value::Object(map) => map.values().all(|item| within(item, level + 1, leaves)),
        _ => {
            *leaves += 1;
            *leaves <= MAX_LEAVES && level <= MAX_LEVEL
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::json;
    use tantivy::schema::{OwnedValue, TantivyDocument};

    use super::*;
    use crate::schema::{build_schema, flattened, MAX_KEYWORD_BYTES};
    use crowsnest_model::Event;

    /// What tantivy indexes from a document's `fields`: every non-null leaf under its dotted
    /// path, in the order tantivy meets it, and the deepest level it meets one at.
    fn indexed(doc: &TantivyDocument) -> (BTreeMap<String, Vec<String>>, usize) {
        let (_, fields) = build_schema();
        let mut out = BTreeMap::new();
        let mut deepest = 0;
        for value in doc.get_all(fields.fields) {
            if let ReferenceValue::Object(entries) = value.as_value() {
                for (key, child) in entries {
                    walk(key.to_string(), child, 1, &mut out, &mut deepest);
                }
            }
        }
        (out, deepest)
    }

    fn walk<'a, V: DocValue<'a>>(
        path: String,
        value: V,
        level: usize,
        out: &mut BTreeMap<String, Vec<String>>,
        deepest: &mut usize,
    ) {
        match value.as_value() {
            ReferenceValue::Leaf(ReferenceValueLeaf::Null) => {}
            ReferenceValue::Leaf(leaf) => {
                *deepest = (*deepest).max(level);
                out.entry(path).or_default().push(format!("{leaf:?}"));
            }
            ReferenceValue::Array(items) => {
                for item in items {
                    walk(path.clone(), item, level + 1, out, deepest);
                }
            }
            ReferenceValue::Object(entries) => {
                for (key, child) in entries {
                    walk(format!("{path}.{key}"), child, level + 1, out, deepest);
                }
            }
        }
    }

    /// The `fields` of `event` built both ways: through the view and flattened.
    fn both(value: Value) -> (TantivyDocument, TantivyDocument) {
        let event: Event = serde_json::from_value(value).expect("object");
        let (_, fields) = build_schema();
        let mut viewed = TantivyDocument::default();
        viewed.add_field_value(fields.fields, Node::Root(event.as_map()));
        let mut flat = TantivyDocument::default();
        let leaves = flattened(&event);
        if !leaves.is_empty() {
            flat.add_field_value(fields.fields, &OwnedValue::Object(leaves));
        }
        (viewed, flat)
    }

    #[test]
    fn the_view_indexes_what_the_flattened_form_does() {
        let long = "x".repeat(MAX_KEYWORD_BYTES + 10);
        let (viewed, flat) = both(json!({
            "@timestamp": "2024-01-01T00:00:00Z",
            "message": "hello",
            "event.original": "raw",
            "event": [{"original": "raw too", "dataset": "k8s"}, {"kind": "event"}],
            "a": {"b": [1, [2, {"c": null, "d": 3.5}]], "b.x": true},
            "a.b": u64::MAX,
            "k8s": {"audit": {"annotations": {"authorization.k8s.io/decision": "allow"}}},
            "long": long,
            "when": "2024-05-01T10:00:00Z",
            "empty": {"o": {}, "a": []},
        }));
        let (view_paths, _) = indexed(&viewed);
        let (flat_paths, _) = indexed(&flat);
        assert_eq!(view_paths, flat_paths);
        assert_eq!(
            view_paths["a.b"],
            vec!["I64(1)", "I64(2)", "U64(18446744073709551615)"]
        );
        assert!(!view_paths.contains_key("event.original"));
        assert!(!view_paths.contains_key("message"));
        assert!(!view_paths.contains_key("@timestamp"));
        assert_eq!(view_paths["event.dataset"], vec!["Str(\"k8s\")"]);
        assert_eq!(view_paths["when"], vec!["Str(\"2024-05-01T10:00:00Z\")"]);
        let capped = format!("Str({:?})", "x".repeat(MAX_KEYWORD_BYTES));
        assert_eq!(view_paths["long"], vec![capped]);
    }

    #[test]
    fn many_or_deep_leaves_are_not_borrowable() {
        let wide: Map<String, Value> = (0..=MAX_LEAVES)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        assert!(!borrowable(&wide));
        let mut narrow = wide.clone();
        narrow.remove("k0");
        assert!(borrowable(&narrow));
        narrow.insert(String::new(), json!({"a": 1}));
        assert!(!borrowable(&narrow));
        let mut deep = json!("leaf");
        for _ in 0..=MAX_LEVEL {
            deep = json!({ "d": deep });
        }
        let map = |value: Value| match value {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        assert!(!borrowable(&map(deep.clone())));
        assert!(borrowable(&map(deep["d"].clone())));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "a",
            "b",
            "a.b",
            "event",
            "original",
            "message",
            "@timestamp",
            "event.original",
            "",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1e9f64..1e9).prop_map(|f| json!(f)),
            "[a-z0-9:. -]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..5).prop_map(
                    |entries| Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect()
                    )
                ),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_event_is_indexed_alike_both_ways(value in json_value()) {
            let Value::Object(map) = value else { return Ok(()) };
            prop_assume!(borrowable(&map));
            let (viewed, flat) = both(Value::Object(map));
            let (view_paths, deepest) = indexed(&viewed);
            let (flat_paths, _) = indexed(&flat);
            prop_assert_eq!(view_paths, flat_paths);
            prop_assert!(deepest <= 20);
        }
    }
}
