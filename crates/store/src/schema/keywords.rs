//! The `fields` value of a document, read straight from the event's JSON tree.
//!
//! tantivy accepts any type implementing its [`Value`](DocValue) trait as a field value and
//! copies it into the document once. [`Node`] is such a view over the event: it walks the
//! event's own maps and arrays and leaves out what `fields` must not hold (`@timestamp`,
//! `message`, `event.original`, and the [`UNIQUE_PATHS`], which [`unique_values`] collects for
//! `_unique` by the same walk), caps keywords at [`MAX_KEYWORD_BYTES`] bytes and never turns a
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

use std::collections::HashSet;

use serde_json::{map, Map, Value};
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf};
use tantivy::schema::Value as DocValue;

use super::route::{Leaf, Router};
use super::twins::{is_twin, AUDIT_TWINS};
#[cfg(doc)]
use super::MAX_KEYWORD_BYTES;
use super::{cap_keyword, flatten_value, group_leaves, Leaves, MAX_LEAVES, UNIQUE_PATHS};
use crowsnest_model::ecs;

/// Deepest leaf the view hands to tantivy (its fast-field writer keeps 20 levels).
pub(crate) const MAX_LEVEL: usize = 16;

/// Index in [`SKIPPED`] of the first of [`UNIQUE_PATHS`].
const FIRST_UNIQUE: usize = 3;
/// Index in [`SKIPPED`] of the first audit path of [`AUDIT_TWINS`].
const FIRST_TWIN: usize = FIRST_UNIQUE + UNIQUE_PATHS.len();

/// The paths `fields` leaves out: the timestamp and the full-text paths (indexed elsewhere),
/// then [`UNIQUE_PATHS`] (indexed in `_unique`), then, for an event whose audit twins hold
/// (`twins.rs`), the audit side of [`AUDIT_TWINS`]. A bit of [`Skip::mask`] per entry.
const SKIPPED: [&str; FIRST_TWIN + AUDIT_TWINS.len()] = {
    let mut all = [""; FIRST_TWIN + AUDIT_TWINS.len()];
    all[0] = ecs::TIMESTAMP;
    all[1] = ecs::MESSAGE;
    all[2] = ecs::EVENT_ORIGINAL;
    let mut i = 0;
    while i < UNIQUE_PATHS.len() {
        all[FIRST_UNIQUE + i] = UNIQUE_PATHS[i];
        i += 1;
    }
    let mut i = 0;
    while i < AUDIT_TWINS.len() {
        all[FIRST_TWIN + i] = AUDIT_TWINS[i].0;
        i += 1;
    }
    all
};
const _: () = assert!(SKIPPED.len() <= 32, "Skip::mask has 32 bits");

/// Which of [`SKIPPED`] an object may still lead to: the entries whose first `offset` bytes
/// are the path walked so far. Keys may hold dots (`{"event.id": ..}` is path `event.id`), so
/// a key is compared with the rest of each candidate, not with one segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Skip {
    mask: u32,
    offset: usize,
}

/// What a key of an object is, given the [`Skip`] of the object.
enum Step {
    /// The key's value is [`SKIPPED`]`[i]`.
    Skipped(usize),
    /// The key leads towards skipped paths.
    Into(Skip),
    /// Nothing below the key is skipped.
    Plain,
}

impl Skip {
    /// The scope of an event's top level: every path of [`SKIPPED`] but the audit twins.
    pub(crate) const ROOT: Self = Self {
        mask: (1u32 << FIRST_TWIN) - 1,
        offset: 0,
    };

    /// The scope of the top level of an event whose audit twins hold: every path of
    /// [`SKIPPED`].
    pub(crate) const ROOT_AND_TWINS: Self = Self {
        mask: u32::MAX >> (32 - SKIPPED.len()),
        offset: 0,
    };

    /// The top-level scope of an event, `twins` telling whether its audit twins hold.
    pub(crate) fn root(twins: bool) -> Self {
        if twins {
            Self::ROOT_AND_TWINS
        } else {
            Self::ROOT
        }
    }

    const NONE: Self = Self { mask: 0, offset: 0 };

    fn step(self, key: &str) -> Step {
        if self.mask == 0 {
            return Step::Plain;
        }
        let mut into = 0u32;
        for (i, path) in SKIPPED.iter().enumerate() {
            if self.mask & (1 << i) == 0 {
                continue;
            }
            // The first byte rules out nearly every key without a call to `memcmp`.
            let Some(rest) = path.get(self.offset..) else {
                continue;
            };
            if rest.as_bytes().first() != key.as_bytes().first() {
                continue;
            }
            let Some(after) = rest.strip_prefix(key) else {
                continue;
            };
            if after.is_empty() {
                return Step::Skipped(i);
            }
            if after.starts_with('.') {
                into |= 1 << i;
            }
        }
        if into == 0 {
            Step::Plain
        } else {
            Step::Into(Self {
                mask: into,
                offset: self.offset + key.len() + 1,
            })
        }
    }
}

/// The leaves of an event that `fields` leaves out for `_unique` (`route.rs`), by address: the
/// view walks the event itself, so a leaf is the same `&Value` in both walks.
pub(crate) type Diverted = HashSet<usize>;

fn address(value: &Value) -> usize {
    value as *const Value as usize
}

/// A node of an event as the `fields` value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node<'a> {
    /// The event's top-level object.
    Root(&'a Map<String, Value>, Skip, &'a Diverted),
    /// A value below it, with what its keys may still lead to.
    Inner(&'a Value, Skip, &'a Diverted),
}

/// The entries of an object node.
pub(crate) struct Entries<'a> {
    iter: map::Iter<'a>,
    skip: Skip,
    diverted: &'a Diverted,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (key, value) = self.iter.next()?;
            if !self.diverted.is_empty() && self.diverted.contains(&address(value)) {
                continue;
            }
            match self.skip.step(key) {
                Step::Skipped(_) => continue,
                Step::Into(skip) => return Some((key, Node::Inner(value, skip, self.diverted))),
                Step::Plain => return Some((key, Node::Inner(value, Skip::NONE, self.diverted))),
            }
        }
    }
}

/// The items of an array node (items of an array are at the array's path).
pub(crate) struct Items<'a> {
    iter: std::slice::Iter<'a, Value>,
    skip: Skip,
    diverted: &'a Diverted,
}

impl<'a> Iterator for Items<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let value = self.iter.next()?;
            if !self.diverted.is_empty() && self.diverted.contains(&address(value)) {
                continue;
            }
            return Some(Node::Inner(value, self.skip, self.diverted));
        }
    }
}

impl<'a> DocValue<'a> for Node<'a> {
    type ArrayIter = Items<'a>;
    type ObjectIter = Entries<'a>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        let (value, skip, diverted) = match *self {
            Node::Root(map, skip, diverted) => {
                return ReferenceValue::Object(Entries {
                    iter: map.iter(),
                    skip,
                    diverted,
                })
            }
            Node::Inner(value, skip, diverted) => (value, skip, diverted),
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
                    skip,
                    diverted,
                })
            }
            Value::Object(map) => {
                return ReferenceValue::Object(Entries {
                    iter: map.iter(),
                    skip,
                    diverted,
                })
            }
        };
        ReferenceValue::Leaf(leaf)
    }
}

/// The values of an event at [`UNIQUE_PATHS`], as `(path, value)` pairs for `_unique`: found
/// by the same walk that leaves them out of `fields`, so each value lands in exactly one. With
/// `twins` (the event's audit twins hold), a unique path that is an audit twin is left out too.
pub(crate) fn unique_values(map: &Map<String, Value>, twins: bool) -> Leaves {
    let mut out = Vec::new();
    collect_unique(map, Skip::ROOT, twins, &mut out);
    group_leaves(out)
}

fn collect_unique(map: &Map<String, Value>, skip: Skip, twins: bool, out: &mut Leaves) {
    for (key, value) in map {
        match skip.step(key) {
            Step::Skipped(i) if i >= FIRST_UNIQUE && !(twins && is_twin(SKIPPED[i])) => {
                let mut path = SKIPPED[i].to_string();
                flatten_value(&mut path, value, out);
            }
            Step::Into(inner) => collect_unique_in(value, inner, twins, out),
            Step::Skipped(_) | Step::Plain => {}
        }
    }
}

fn collect_unique_in(value: &Value, skip: Skip, twins: bool, out: &mut Leaves) {
    match value {
        Value::Object(map) => collect_unique(map, skip, twins, out),
        Value::Array(items) => {
            for item in items {
                collect_unique_in(item, skip, twins, out);
            }
        }
        _ => {}
    }
}

/// Walks the leaves `fields` would hold (the same [`Skip`]s as the view) and asks `router`
/// which keep their columns; the others are returned by address, for the view to leave out,
/// and as `(path, value)` pairs for `_unique`.
pub(crate) fn route(
    map: &Map<String, Value>,
    skip: Skip,
    router: &mut Router<'_>,
) -> (Diverted, Leaves) {
    let mut diverted = Diverted::new();
    let mut out = Leaves::new();
    let mut path = String::new();
    route_map(map, skip, &mut path, router, &mut diverted, &mut out);
    (diverted, out)
}

fn route_map(
    map: &Map<String, Value>,
    skip: Skip,
    path: &mut String,
    router: &mut Router<'_>,
    diverted: &mut Diverted,
    out: &mut Leaves,
) {
    for (key, value) in map {
        let inner = match skip.step(key) {
            Step::Skipped(_) => continue,
            Step::Into(inner) => inner,
            Step::Plain => Skip::NONE,
        };
        let before = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        route_value(value, inner, path, router, diverted, out);
        path.truncate(before);
    }
}

fn route_value(
    value: &Value,
    skip: Skip,
    path: &mut String,
    router: &mut Router<'_>,
    diverted: &mut Diverted,
    out: &mut Leaves,
) {
    match value {
        Value::Null => {}
        Value::Object(map) => route_map(map, skip, path, router, diverted, out),
        Value::Array(items) => {
            for item in items {
                route_value(item, skip, path, router, diverted, out);
            }
        }
        leaf => {
            if !router.columns(path, Leaf::from(leaf)) {
                diverted.insert(address(leaf));
                let mut at = path.clone();
                flatten_value(&mut at, leaf, out);
            }
        }
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
    use crate::schema::route::ColumnPaths;
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

    /// The `fields` of `event` built both ways: through the view and flattened. The `_unique`
    /// values of both ways go to `fields` of a second pair of documents.
    fn both(value: Value) -> (TantivyDocument, TantivyDocument) {
        let (viewed, flat, _, _) = both_with_unique(value);
        (viewed, flat)
    }

    /// Both ways with every column kept.
    fn both_with_unique(value: Value) -> Docs {
        both_routed(value, &["*".to_owned()], usize::MAX)
    }

    type Docs = (
        TantivyDocument,
        TantivyDocument,
        TantivyDocument,
        TantivyDocument,
    );

    /// Both ways, routed alike by routers of the same settings.
    fn both_routed(value: Value, declared: &[String], max_columns: usize) -> Docs {
        let event: Event = serde_json::from_value(value).expect("object");
        let (_, fields) = build_schema();
        let mut view_columns = ColumnPaths::default();
        let mut view_router = Router {
            declared,
            max_columns,
            columns: &mut view_columns,
            delta: false,
        };
        let (diverted, routed) = route(event.as_map(), Skip::ROOT, &mut view_router);
        let mut viewed = TantivyDocument::default();
        viewed.add_field_value(
            fields.fields,
            Node::Root(event.as_map(), Skip::ROOT, &diverted),
        );
        let mut flat = TantivyDocument::default();
        let mut flat_columns = ColumnPaths::default();
        let mut flat_router = Router {
            declared,
            max_columns,
            columns: &mut flat_columns,
            delta: false,
        };
        let (leaves, unique) = flattened(&event, &mut flat_router);
        if !leaves.is_empty() {
            flat.add_field_value(fields.fields, &OwnedValue::Object(leaves));
        }
        let mut unique_view = unique_values(event.as_map(), false);
        unique_view.extend(group_leaves(routed));
        let mut viewed_unique = TantivyDocument::default();
        if !unique_view.is_empty() {
            viewed_unique.add_field_value(fields.fields, &OwnedValue::Object(unique_view));
        }
        let mut flat_unique = TantivyDocument::default();
        if !unique.is_empty() {
            flat_unique.add_field_value(fields.fields, &OwnedValue::Object(unique));
        }
        (viewed, flat, viewed_unique, flat_unique)
    }

    #[test]
    fn unique_paths_leave_fields_for_unique_whatever_their_shape() {
        let (viewed, flat, viewed_unique, flat_unique) = both_with_unique(json!({
            "event": [{"id": "e1", "kind": "event"}, {"ingested": "2024-01-01T00:00:01Z"}],
            "event.end": "2024-01-01T00:00:02Z",
            "k8s": {"audit.auditID": "a1", "audit": {"objectRef": {"resourceVersion": "7", "name": "p"}}},
            "eventx": {"id": "kept"},
            "event.idx": "kept too",
        }));
        let (view_paths, _) = indexed(&viewed);
        assert_eq!(view_paths, indexed(&flat).0);
        let kept: Vec<&str> = view_paths.keys().map(String::as_str).collect();
        assert_eq!(
            kept,
            vec![
                "event.idx",
                "event.kind",
                "eventx.id",
                "k8s.audit.objectRef.name"
            ]
        );
        let (unique_paths, _) = indexed(&viewed_unique);
        assert_eq!(unique_paths, indexed(&flat_unique).0);
        let moved: Vec<&str> = unique_paths.keys().map(String::as_str).collect();
        assert_eq!(
            moved,
            vec![
                "event.end",
                "event.id",
                "event.ingested",
                "k8s.audit.auditID",
                "k8s.audit.objectRef.resourceVersion"
            ]
        );
    }

    #[test]
    fn no_skipped_path_is_below_another() {
        for a in SKIPPED {
            for b in SKIPPED {
                assert!(
                    a == b || !a.starts_with(&format!("{b}.")),
                    "{a} is below {b}"
                );
            }
        }
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
            "id",
            "event.id",
            "k8s",
            "audit",
            "auditID",
            "k8s.audit",
            "audit.auditID",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1e9f64..1e9).prop_map(|f| json!(f)),
            "[a-z0-9:. -]{0,12}".prop_map(Value::String),
            Just(json!("e9f2963f-15ad-11e8-9a06-0800279e0d30")),
            "[a-z ]{50,70}".prop_map(Value::String),
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
            // A small cap and a declared path: both ways route leaves alike.
            let (viewed, flat, viewed_unique, flat_unique) =
                both_routed(Value::Object(map), &["a.b".to_owned()], 3);
            let (view_paths, deepest) = indexed(&viewed);
            let (flat_paths, _) = indexed(&flat);
            prop_assert_eq!(view_paths, flat_paths);
            prop_assert!(deepest <= 20);
            prop_assert_eq!(indexed(&viewed_unique).0, indexed(&flat_unique).0);
        }
    }
}
