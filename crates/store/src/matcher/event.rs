//! Reading one event the way `schema.rs` indexes it: the token lists of the full-text fields,
//! the keyword leaves at a dotted path in every shape the flattening merges (`{"a": {"b": ..}}`,
//! `{"a.b": ..}`, arrays of objects), what exists below a path, and which leaves the
//! [`MAX_LEAVES`] limit keeps.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashSet;

use crowsnest_model::{ecs, Event};
use serde_json::{Map, Value};

use super::TextField;
use crate::schema::{raw_analyzer, text_analyzer, MAX_LEAVES};

/// Paths whose subtree is never indexed as keywords.
const NOT_KEYWORDS: [&str; 3] = [ecs::TIMESTAMP, ecs::MESSAGE, ecs::EVENT_ORIGINAL];

/// One indexed keyword leaf, typed as the index types it.
pub(super) enum Leaf<'v> {
    Str(&'v str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// The indexed form of a scalar, as `schema.rs` flattens it (`None` for null and containers).
fn leaf_of(value: &Value) -> Option<Leaf<'_>> {
    match value {
        Value::String(s) => Some(Leaf::Str(s)),
        Value::Bool(b) => Some(Leaf::Bool(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(Leaf::I64)
            .or_else(|| n.as_u64().map(Leaf::U64))
            .or_else(|| n.as_f64().map(Leaf::F64)),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Tokens of a full-text field with their positions (a dropped long token leaves a gap).
pub(super) type Tokens = Vec<(String, usize)>;

/// True when `words` occur at consecutive positions (one word: anywhere).
pub(super) fn has_phrase(tokens: &[(String, usize)], words: &[String]) -> bool {
    let Some((first, rest)) = words.split_first() else {
        return false;
    };
    tokens.iter().enumerate().any(|(at, (token, position))| {
        token == first
            && rest.iter().enumerate().all(|(i, word)| {
                let wanted = position + i + 1;
                let after = &tokens[at + 1..];
                after
                    .binary_search_by_key(&wanted, |(_, p)| *p)
                    .is_ok_and(|k| after[k].0 == *word)
            })
    })
}

/// How a dotted path relates to the paths that are not keywords.
enum Reach {
    /// It is one of them: nothing below is a keyword.
    Excluded,
    /// One of them lies below it: keep checking deeper paths.
    Above,
    /// Neither: everything below is a keyword.
    Clear,
}

/// Where the dotted path `parts.concat()` stands, without building it.
fn reach(parts: [&str; 3]) -> Reach {
    for excluded in NOT_KEYWORDS {
        let mut rest = excluded;
        if !parts.iter().all(|part| match rest.strip_prefix(part) {
            Some(after) => {
                rest = after;
                true
            }
            None => false,
        }) {
            continue;
        }
        if rest.is_empty() {
            return Reach::Excluded;
        }
        if rest.starts_with('.') {
            return Reach::Above;
        }
    }
    Reach::Clear
}

/// What one evaluation computes lazily about its event, shared by all nodes.
pub(super) struct Ctx<'e> {
    pub(super) event: &'e Event,
    message: OnceCell<Option<Tokens>>,
    raw: OnceCell<Option<Tokens>>,
    /// `None` when every leaf is indexed, else the leaves that are (by address).
    indexed: OnceCell<Option<HashSet<*const Value>>>,
}

impl<'e> Ctx<'e> {
    pub(super) fn new(event: &'e Event) -> Self {
        Self {
            event,
            message: OnceCell::new(),
            raw: OnceCell::new(),
            indexed: OnceCell::new(),
        }
    }

    /// Tokens of a text field, `None` when the event does not have it (absent or null);
    /// any other JSON value is indexed as its JSON text.
    pub(super) fn tokens(&self, field: TextField) -> Option<&[(String, usize)]> {
        let (cell, path) = match field {
            TextField::Message => (&self.message, ecs::MESSAGE),
            TextField::Raw => (&self.raw, ecs::EVENT_ORIGINAL),
        };
        cell.get_or_init(|| {
            let text: Cow<'_, str> = match self.event.get(path)? {
                Value::Null => return None,
                Value::String(s) => Cow::Borrowed(s),
                other => Cow::Owned(other.to_string()),
            };
            let mut analyzer = match field {
                TextField::Message => text_analyzer(),
                TextField::Raw => raw_analyzer(),
            };
            let mut stream = analyzer.token_stream(&text);
            let mut tokens = Vec::new();
            while stream.advance() {
                let token = stream.token();
                tokens.push((token.text.clone(), token.position));
            }
            Some(tokens)
        })
        .as_deref()
    }

    /// True when `leaf` is among the first [`MAX_LEAVES`] leaves the index keeps.
    fn is_indexed(&self, leaf: &Value) -> bool {
        let indexed = self.indexed.get_or_init(|| {
            if count_leaves(self.event.as_map().values(), 0) <= MAX_LEAVES {
                return None;
            }
            let mut kept = HashSet::with_capacity(MAX_LEAVES);
            let mut path = String::new();
            for (key, value) in self.event.as_map() {
                collect_indexed(&mut path, key, value, &mut kept);
            }
            Some(kept)
        });
        indexed
            .as_ref()
            .is_none_or(|kept| kept.contains(&std::ptr::from_ref(leaf)))
    }

    /// True when `test` accepts an indexed leaf at exactly `path`.
    pub(super) fn any_leaf_at(&self, path: &str, test: &dyn Fn(Leaf<'_>) -> bool) -> bool {
        self.leaf_in_object(self.event.as_map(), path, 0, test)
    }

    /// Leaves at `path[start..]` below `map`: the keys that are `path[start..]` itself or the
    /// part of it before one of its dots (keys may contain dots).
    fn leaf_in_object(
        &self,
        map: &Map<String, Value>,
        path: &str,
        start: usize,
        test: &dyn Fn(Leaf<'_>) -> bool,
    ) -> bool {
        if start == 0
            && self.through_root_blank(map, &|inner| self.leaf_in_object(inner, path, 0, test))
        {
            return true;
        }
        let ends = path[start..].match_indices('.').map(|(i, _)| start + i);
        ends.chain(std::iter::once(path.len())).any(|end| {
            if start == 0 && end == 0 && !path.is_empty() {
                return false; // a top-level `""` adds no segment (see `through_root_blank`)
            }
            let Some(value) = map.get(&path[start..end]) else {
                return false;
            };
            if NOT_KEYWORDS.contains(&&path[..end]) {
                return false;
            }
            if end == path.len() {
                self.leaf_here(value, test)
            } else {
                self.leaf_in_value(value, path, end + 1, test)
            }
        })
    }

    fn leaf_in_value(
        &self,
        value: &Value,
        path: &str,
        start: usize,
        test: &dyn Fn(Leaf<'_>) -> bool,
    ) -> bool {
        match value {
            Value::Object(map) => self.leaf_in_object(map, path, start, test),
            Value::Array(items) => items
                .iter()
                .any(|item| self.leaf_in_value(item, path, start, test)),
            _ => false,
        }
    }

    /// Scalars of `value` at its own path (array elements included, object members not).
    fn leaf_here(&self, value: &Value, test: &dyn Fn(Leaf<'_>) -> bool) -> bool {
        match value {
            Value::Array(items) => items.iter().any(|item| self.leaf_here(item, test)),
            other => leaf_of(other).is_some_and(|leaf| self.is_indexed(other) && test(leaf)),
        }
    }

    /// The flattening joins keys with a dot only after a non-empty path, so the members of a
    /// top-level `""` object (or of objects in a top-level `""` array) sit at the top level:
    /// `{"": {"b": 1}}` is `b`, not `.b`. Runs `at_root` on each such object.
    fn through_root_blank(
        &self,
        map: &Map<String, Value>,
        at_root: &dyn Fn(&Map<String, Value>) -> bool,
    ) -> bool {
        fn visit(value: &Value, at_root: &dyn Fn(&Map<String, Value>) -> bool) -> bool {
            match value {
                Value::Object(inner) => at_root(inner),
                Value::Array(items) => items.iter().any(|item| visit(item, at_root)),
                _ => false,
            }
        }
        map.get("").is_some_and(|value| visit(value, at_root))
    }

    /// True when an indexed leaf is at `path` or below it (`path.x`, ...).
    pub(super) fn exists_below(&self, path: &str) -> bool {
        if path.is_empty() {
            // The root of `fields`: any keyword at all.
            return self.any_keyword_in(self.event.as_map());
        }
        self.exists_in_object(self.event.as_map(), path, 0)
    }

    /// Any indexed keyword in a top-level object (the event, or one under a top-level `""`).
    fn any_keyword_in(&self, map: &Map<String, Value>) -> bool {
        map.iter().any(|(key, inner)| {
            if key.is_empty() {
                self.any_keyword_at_blank(inner)
            } else {
                self.any_leaf_below(inner, [key, "", ""])
            }
        })
    }

    /// Any indexed keyword in `value`, found at the top-level path `""`.
    fn any_keyword_at_blank(&self, value: &Value) -> bool {
        match value {
            Value::Null => false,
            Value::Object(inner) => self.any_keyword_in(inner),
            Value::Array(items) => items.iter().any(|item| self.any_keyword_at_blank(item)),
            leaf => self.is_indexed(leaf),
        }
    }

    /// Like [`Ctx::leaf_in_object`], but every key is looked at: a key may also reach past
    /// the end of the path (`{"a.b": 1}` is below `a`).
    fn exists_in_object(&self, map: &Map<String, Value>, path: &str, start: usize) -> bool {
        if start == 0
            && self.through_root_blank(map, &|inner| self.exists_in_object(inner, path, 0))
        {
            return true;
        }
        let rest = &path[start..];
        map.iter().any(|(key, value)| {
            if start == 0 && key.is_empty() && !rest.is_empty() {
                false // a top-level `""` adds no segment (see `through_root_blank`)
            } else if key == rest {
                self.any_leaf_below(value, [path, "", ""])
            } else if let Some(after) = rest.strip_prefix(key.as_str()) {
                let end = start + key.len();
                after.starts_with('.')
                    && !NOT_KEYWORDS.contains(&&path[..end])
                    && self.exists_in_value(value, path, end + 1)
            } else if key.strip_prefix(rest).is_some_and(|r| r.starts_with('.')) {
                self.any_leaf_below(value, [&path[..start], key, ""])
            } else {
                false
            }
        })
    }

    fn exists_in_value(&self, value: &Value, path: &str, start: usize) -> bool {
        match value {
            Value::Object(map) => self.exists_in_object(map, path, start),
            Value::Array(items) => items
                .iter()
                .any(|item| self.exists_in_value(item, path, start)),
            _ => false,
        }
    }

    /// True when `value`, at the dotted path `parts.concat()`, holds an indexed leaf.
    fn any_leaf_below(&self, value: &Value, parts: [&str; 3]) -> bool {
        match reach(parts) {
            Reach::Excluded => false,
            Reach::Clear => self.any_indexed_leaf(value),
            Reach::Above => match value {
                Value::Array(items) => items.iter().any(|item| self.any_leaf_below(item, parts)),
                Value::Object(map) => {
                    // Rare (`event` above `event.original`): build the path to go deeper.
                    let path = parts.concat();
                    map.iter()
                        .any(|(key, inner)| self.any_leaf_below(inner, [&path, ".", key]))
                }
                leaf => self.any_indexed_leaf(leaf),
            },
        }
    }

    /// True when `value` holds an indexed leaf (no path below it is excluded).
    fn any_indexed_leaf(&self, value: &Value) -> bool {
        match value {
            Value::Null => false,
            Value::Array(items) => items.iter().any(|item| self.any_indexed_leaf(item)),
            Value::Object(map) => map.values().any(|inner| self.any_indexed_leaf(inner)),
            leaf => self.is_indexed(leaf),
        }
    }
}

/// Counts scalar leaves (an upper bound of the indexed ones), stopping past [`MAX_LEAVES`].
fn count_leaves<'v>(values: impl Iterator<Item = &'v Value>, mut count: usize) -> usize {
    for value in values {
        if count > MAX_LEAVES {
            break;
        }
        count = match value {
            Value::Null => count,
            Value::Array(items) => count_leaves(items.iter(), count),
            Value::Object(map) => count_leaves(map.values(), count),
            _ => count + 1,
        };
    }
    count
}

/// The first [`MAX_LEAVES`] keyword leaves in the order `schema.rs` flattens them.
fn collect_indexed(path: &mut String, key: &str, value: &Value, kept: &mut HashSet<*const Value>) {
    let before = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    if !NOT_KEYWORDS.contains(&path.as_str()) {
        collect_value(path, value, kept);
    }
    path.truncate(before);
}

fn collect_value(path: &mut String, value: &Value, kept: &mut HashSet<*const Value>) {
    if kept.len() >= MAX_LEAVES {
        return;
    }
    match value {
        Value::Null => {}
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_value(path, item, kept)),
        Value::Object(map) => map
            .iter()
            .for_each(|(key, inner)| collect_indexed(path, key, inner, kept)),
        leaf => {
            kept.insert(std::ptr::from_ref(leaf));
        }
    }
}
