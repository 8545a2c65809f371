//! A borrowed view of a [`crowsnest_model::Event`] as an `rsigma_eval` event.
//!
//! rsigma's own [`rsigma_eval::JsonEvent`] wraps a `&serde_json::Value`, but our event is a
//! `serde_json::Map` (the root object without the `Value::Object` wrapper). Wrapping it would
//! mean cloning the whole map into a `Value` for every event, so [`EventView`] implements
//! [`rsigma_eval::Event`] directly over `&Map` instead: field lookups walk the nested objects
//! in place and hand out borrowed strings, exactly like `JsonEvent` does.
//!
//! Path semantics follow `JsonEvent`: a flat top-level key that equals the whole path wins;
//! otherwise the path is split on `.`, a key step crossing an array fans out over every
//! element (any-member semantics, several hits come back as an array), and `name[N]` picks
//! one element (negative `N` counts from the end). `\[` escapes a literal bracket.

use std::borrow::Cow;

use rsigma_eval::{Event as SigmaEvent, EventValue};
use rsigma_parser::fieldpath::{first_unescaped, unescape_brackets};
use serde_json::{Map, Value};

/// Recursion cap, the same as rsigma's JSON event.
const MAX_DEPTH: usize = 64;

/// Zero-copy adapter from our event map to rsigma's event trait.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> EventView<'a> {
    /// Views `event` without copying it.
    pub fn new(event: &'a crowsnest_model::Event) -> Self {
        Self {
            map: event.as_map(),
        }
    }

    /// Views a bare JSON object map.
    pub fn from_map(map: &'a Map<String, Value>) -> Self {
        Self { map }
    }
}

/// One navigation step of a field path.
enum Step<'p> {
    Key(Cow<'p, str>),
    Index(i64),
}

fn parse_steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        match first_unescaped(part, b'[')
            .and_then(|pos| index_groups(&part[pos..]).map(|g| (pos, g)))
        {
            Some((pos, groups)) => {
                if pos > 0 {
                    steps.push(Step::Key(unescape_brackets(&part[..pos])));
                }
                steps.extend(groups.into_iter().map(Step::Index));
            }
            None => steps.push(Step::Key(unescape_brackets(part))),
        }
    }
    steps
}

fn index_groups(mut rest: &str) -> Option<Vec<i64>> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        out.push(inner[..close].parse().ok()?);
        rest = &inner[close + 1..];
    }
    Some(out)
}

fn resolve_index(index: i64, len: usize) -> Option<usize> {
    if index >= 0 {
        usize::try_from(index).ok().filter(|&i| i < len)
    } else {
        usize::try_from(index.unsigned_abs())
            .ok()
            .and_then(|abs| len.checked_sub(abs))
    }
}

fn collect<'a>(current: &'a Value, steps: &[Step<'_>], out: &mut Vec<EventValue<'a>>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(EventValue::from(current));
        return;
    };
    match (step, current) {
        (Step::Key(key), Value::Object(map)) => {
            if let Some(next) = map.get(key.as_ref()) {
                collect(next, rest, out);
            }
        }
        (Step::Key(_), Value::Array(items)) => {
            for item in items {
                collect(item, steps, out);
            }
        }
        (Step::Index(i), Value::Array(items)) => {
            if let Some(next) = resolve_index(*i, items.len()).and_then(|i| items.get(i)) {
                collect(next, rest, out);
            }
        }
        _ => {}
    }
}

/// [`collect`] for a path of keys only: `rest` is what follows the current value's key
/// (`None` past the last key), so no steps are parsed or allocated.
fn collect_dotted<'a>(current: &'a Value, rest: Option<&str>, out: &mut Vec<EventValue<'a>>) {
    let Some(rest) = rest else {
        out.push(EventValue::from(current));
        return;
    };
    match current {
        Value::Object(map) => {
            let (key, after) = match rest.split_once('.') {
                Some((key, after)) => (key, Some(after)),
                None => (rest, None),
            };
            if let Some(next) = map.get(key) {
                collect_dotted(next, after, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_dotted(item, Some(rest), out);
            }
        }
        _ => {}
    }
}

fn any_string(value: &Value, pred: &dyn Fn(&str) -> bool, depth: usize) -> bool {
    if depth == 0 {
        return false;
    }
    match value {
        Value::String(s) => pred(s),
        Value::Object(map) => map.values().any(|v| any_string(v, pred, depth - 1)),
        Value::Array(items) => items.iter().any(|v| any_string(v, pred, depth - 1)),
        _ => false,
    }
}

fn visit_strings<'a>(value: &'a Value, visit: &mut dyn FnMut(&'a str), depth: usize) {
    if depth == 0 {
        return;
    }
    match value {
        Value::String(s) => visit(s),
        Value::Object(map) => map
            .values()
            .for_each(|v| visit_strings(v, visit, depth - 1)),
        Value::Array(items) => items
            .iter()
            .for_each(|v| visit_strings(v, visit, depth - 1)),
        _ => {}
    }
}

impl SigmaEvent for EventView<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if let Some(v) = self.map.get(path) {
            return Some(EventValue::from(v));
        }
        if !path.contains(['.', '[', '\\']) {
            return None;
        }
        let mut hits = Vec::new();
        if path.contains(['[', '\\']) {
            let steps = parse_steps(path);
            let (Step::Key(root), rest) = steps.split_first()? else {
                return None;
            };
            let first = self.map.get(root.as_ref())?;
            collect(first, rest, &mut hits);
        } else {
            // Plain dotted paths (nearly every rule field): walked without parsing into steps.
            let (root, rest) = path.split_once('.')?;
            collect_dotted(self.map.get(root)?, Some(rest), &mut hits);
        }
        match hits.len() {
            0 => None,
            1 => hits.pop(),
            _ => Some(EventValue::Array(hits)),
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.map.values().any(|v| any_string(v, pred, MAX_DEPTH))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        for v in self.map.values() {
            visit_strings(v, &mut |s| out.push(Cow::Borrowed(s)), MAX_DEPTH);
        }
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for v in self.map.values() {
            visit_strings(v, &mut |s| visit(s), MAX_DEPTH);
        }
    }

    fn to_json(&self) -> Value {
        Value::Object(self.map.clone())
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        Some(self.map.keys().map(|k| Cow::Borrowed(k.as_str())).collect())
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        self.map.keys().for_each(|k| visit(k));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn view_of(value: &Value) -> EventView<'_> {
        match value {
            Value::Object(map) => EventView::from_map(map),
            _ => panic!("test value must be an object"),
        }
    }

    #[test]
    fn nested_paths_arrays_and_indexes() {
        let v = json!({
            "k8s": {"audit": {"verb": "create", "sourceIPs": ["10.0.0.1", "10.0.0.2"],
                "requestObject": {"spec": {"volumes": [{"hostPath": {"path": "/"}}, {"name": "x"}, {"hostPath": {"path": "/etc"}}]}}}},
            "flat.key": "yes"
        });
        let ev = view_of(&v);
        assert_eq!(
            ev.get_field("k8s.audit.verb"),
            Some(EventValue::Str("create".into()))
        );
        assert_eq!(
            ev.get_field("flat.key"),
            Some(EventValue::Str("yes".into()))
        );
        assert_eq!(
            ev.get_field("k8s.audit.requestObject.spec.volumes.hostPath.path"),
            Some(EventValue::Array(vec![
                EventValue::Str("/".into()),
                EventValue::Str("/etc".into())
            ]))
        );
        assert_eq!(
            ev.get_field("k8s.audit.sourceIPs[-1]"),
            Some(EventValue::Str("10.0.0.2".into()))
        );
        assert_eq!(ev.get_field("k8s.audit.nope"), None);
        assert_eq!(ev.get_field("verb"), None);
        assert!(ev.any_string_value(&|s| s == "/etc"));
        assert!(!ev.any_string_value(&|s| s == "/proc"));
        assert_eq!(ev.all_string_values().len(), 7);
    }

    fn tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i32>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[ab]{0,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// A plain dotted path finds exactly what the general step walker finds, arrays fanned
        /// out the same way, empty keys and trailing dots included.
        #[test]
        fn dotted_paths_walk_like_parsed_steps(
            root in prop::collection::btree_map("[ab]{0,2}", tree(), 1..4),
            path in "[ab]{0,2}(\\.[ab]{0,2}){1,4}",
        ) {
            let map: Map<String, Value> = root.into_iter().collect();
            let steps = parse_steps(&path);
            let mut expected = Vec::new();
            if let Some((Step::Key(first), rest)) = steps.split_first() {
                if let Some(value) = map.get(first.as_ref()) {
                    collect(value, rest, &mut expected);
                }
            }
            let mut got = Vec::new();
            if let Some((first, rest)) = path.split_once('.') {
                if let Some(value) = map.get(first) {
                    collect_dotted(value, Some(rest), &mut got);
                }
            }
            prop_assert_eq!(got, expected);
        }
    }
}
