//! Evaluating a query [`Filter`] against one event in memory, with the answer search gives.
//!
//! Outputs (forwarding) and rules need "does this event match?" without indexing the event.
//! [`Matcher`] answers it by reading the event the way `schema.rs` indexes it and the filter the
//! way `filter.rs` turns it into a tantivy query, so the semantics table of `filter.rs` holds
//! here too:
//!
//! * **Keyword paths** see the event *flattened*: a leaf at `a.b` is found under `{"a": {"b":
//!   ..}}`, `{"a.b": ..}` and through arrays (`{"a": [{"b": ..}]}`), every shape at once. The
//!   subtrees of `@timestamp`, `message` and `event.original` are not keywords; strings compare
//!   capped at [`MAX_KEYWORD_BYTES`](crate::MAX_KEYWORD_BYTES); only the first
//!   [`MAX_LEAVES`](crate::MAX_LEAVES) leaves of an event count, as in the index.
//! * A keyword `Term` is the exact string, or the number/bool the text spells (`5` finds `5`
//!   and `5.0`, `true` finds `true`); a `Phrase` there is the exact string only.
//! * **Full text** is the token list of the analyzer of the index (words, lowercased, tokens
//!   of 40 bytes or more dropped but still counted as positions). `message` keeps positions
//!   (a phrase needs consecutive ones), `event.original` is a bag of words. Free text matches
//!   the phrase in `message` or all of its words in the raw text.
//! * **Ranges** compare numbers numerically, strings byte-wise, `@timestamp` in microseconds;
//!   **exists** is true for any indexed value at the path or below it.
//!
//! Compiling ([`Matcher::new`]) prepares patterns, tokens and bounds once and fails exactly
//! where `to_query` fails; [`Matcher::matches`] allocates nothing for keyword comparisons
//! (text predicates tokenize the event's text once per call, shared by all of them).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::ops::Bound;

use crowsnest_model::{ecs, parse_timestamp, Event};
use crowsnest_query::{Filter, RangeBound, Scalar};
use serde_json::{Map, Value};

use crate::schema::{
    cap_keyword, is_text_path, text_analyzer, text_tokens, to_tantivy_time, MAX_LEAVES,
};
use crate::wildcard::Pattern;
use crate::StoreError;

/// Paths whose subtree is never indexed as keywords.
const NOT_KEYWORDS: [&str; 3] = [ecs::TIMESTAMP, ecs::MESSAGE, ecs::EVENT_ORIGINAL];

/// A filter compiled for evaluation against single events (wildcards, tokens and range bounds
/// prepared once). Gives the same answer as [`crate::Store::search`] for the indexed event.
///
/// ```
/// use crowsnest_query::Filter;
/// use crowsnest_store::Matcher;
///
/// let filter = crowsnest_query::parse("user.name:alice AND message:\"login failed\"")?.filter;
/// let matcher = Matcher::new(&filter)?;
/// let event = serde_json::from_value(serde_json::json!({
///     "@timestamp": "2024-03-01T12:00:00Z",
///     "user": {"name": "alice"},
///     "message": "Login FAILED for alice"
/// }))?;
/// assert!(matcher.matches(&event));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Matcher {
    node: Node,
}

/// One compiled filter node.
#[derive(Debug, Clone)]
enum Node {
    All,
    Nothing,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// Tokens of `message`: one is a term, several a phrase (consecutive positions).
    Message(Vec<String>),
    /// All of these words among the tokens of `event.original` (at least one word).
    RawWords(Vec<String>),
    /// Some token of the text field matches (literals already lowercased).
    TextWildcard(TextField, Pattern),
    Keyword(String, KeywordValue),
    KeywordWildcard(String, Pattern),
    NumberRange(String, Bound<Number>, Bound<Number>),
    StringRange(String, Bound<String>, Bound<String>),
    /// `@timestamp` bounds in microseconds.
    TimeRange(Bound<i64>, Bound<i64>),
    KeywordExists(String),
    TextExists(&'static str),
}

/// A full-text field of the index.
#[derive(Debug, Clone, Copy)]
enum TextField {
    /// `message`, with positions.
    Message,
    /// `event.original`, words only.
    Raw,
}

/// The values a keyword `Term` finds: the string, and the numbers/bool it spells.
#[derive(Debug, Clone, Default)]
struct KeywordValue {
    text: String,
    ints: Vec<i64>,
    unsigned: Option<u64>,
    /// `f64::to_bits` (the index tells `0.0` from `-0.0`).
    floats: Vec<u64>,
    boolean: Option<bool>,
}

/// A numeric range bound, typed as the term `filter.rs` builds.
#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

/// One indexed keyword leaf.
enum Leaf<'v> {
    Str(&'v str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl Matcher {
    /// Compiles `filter`. Fails ([`StoreError::InvalidQuery`], same message) exactly where
    /// search would refuse it: a range on a full-text field, a range mixing a number and
    /// text, a non-finite bound, a `@timestamp` value that is not a time, a wildcard on
    /// `@timestamp`.
    pub fn new(filter: &Filter) -> Result<Self, StoreError> {
        Ok(Self {
            node: compile(filter)?,
        })
    }

    /// True when search would return `event` for the filter once it is indexed.
    pub fn matches(&self, event: &Event) -> bool {
        self.node.eval(&Ctx::new(event))
    }
}

fn compile(filter: &Filter) -> Result<Node, StoreError> {
    let node = match filter {
        Filter::All => Node::All,
        Filter::And(parts) if parts.is_empty() => Node::All,
        Filter::And(parts) => Node::And(parts.iter().map(compile).collect::<Result<_, _>>()?),
        Filter::Or(parts) => Node::Or(parts.iter().map(compile).collect::<Result<_, _>>()?),
        Filter::Not(inner) => Node::Not(Box::new(compile(inner)?)),
        Filter::Term { field, value } => match field.as_deref() {
            None => free_text(value),
            Some(ecs::MESSAGE) => message_node(value),
            Some(path) if is_text_path(path) => raw_words(value),
            Some(ecs::TIMESTAMP) => {
                let at = timestamp_micros(&Scalar::Text(value.clone()))?;
                Node::TimeRange(Bound::Included(at), Bound::Included(at))
            }
            Some(path) => Node::Keyword(path.to_string(), keyword_value(value)),
        },
        Filter::Phrase { field, text } => match field.as_deref() {
            None => free_text(text),
            Some(ecs::MESSAGE) => message_node(text),
            Some(path) if is_text_path(path) => raw_words(text),
            Some(ecs::TIMESTAMP) => compile(&Filter::Term {
                field: field.clone(),
                value: text.clone(),
            })?,
            Some(path) => Node::Keyword(
                path.to_string(),
                KeywordValue {
                    text: cap_keyword(text).to_string(),
                    ..KeywordValue::default()
                },
            ),
        },
        Filter::Wildcard { field, pattern } => match field.as_deref() {
            None => Node::Or(vec![
                text_wildcard(TextField::Message, pattern),
                text_wildcard(TextField::Raw, pattern),
            ]),
            Some(ecs::MESSAGE) => text_wildcard(TextField::Message, pattern),
            Some(path) if is_text_path(path) => text_wildcard(TextField::Raw, pattern),
            Some(ecs::TIMESTAMP) => return Err(StoreError::InvalidQuery(
                "wildcards on `@timestamp` are not supported; expected a range such as `@timestamp:[2024-01-01 TO 2024-01-02]`".into(),
            )),
            Some(path) => Node::KeywordWildcard(path.to_string(), Pattern::parse(pattern)),
        },
        Filter::Range {
            field,
            lower,
            upper,
        } => compile_range(field, lower, upper)?,
        Filter::Exists { field } if field == ecs::TIMESTAMP => Node::All,
        Filter::Exists { field } => match crate::schema::TEXT_PATHS.iter().find(|p| *p == field) {
            Some(path) => Node::TextExists(path),
            None => Node::KeywordExists(field.clone()),
        },
    };
    Ok(node)
}

/// `message` tokens: nothing when the text has no token.
fn message_node(text: &str) -> Node {
    let tokens = text_tokens(text);
    if tokens.is_empty() {
        Node::Nothing
    } else {
        Node::Message(tokens)
    }
}

/// All words of `text` in `event.original`: nothing when the text has no token.
fn raw_words(text: &str) -> Node {
    let tokens = text_tokens(text);
    if tokens.is_empty() {
        Node::Nothing
    } else {
        Node::RawWords(tokens)
    }
}

/// Free text: the phrase in `message`, or all of its words in the raw text.
fn free_text(text: &str) -> Node {
    Node::Or(vec![message_node(text), raw_words(text)])
}

fn text_wildcard(field: TextField, pattern: &str) -> Node {
    let pattern = Pattern::parse(pattern).map_literals(|c| c.to_lowercase().next().unwrap_or(c));
    Node::TextWildcard(field, pattern)
}

/// The string, and the i64/u64/f64/bool values `value` spells (as `filter.rs` builds them).
fn keyword_value(value: &str) -> KeywordValue {
    let mut out = KeywordValue {
        text: cap_keyword(value).to_string(),
        ..KeywordValue::default()
    };
    if let Ok(i) = value.parse::<i64>() {
        out.ints.push(i);
        out.floats.push((i as f64).to_bits());
    } else if let Ok(u) = value.parse::<u64>() {
        out.unsigned = Some(u);
        out.floats.push((u as f64).to_bits());
    } else if let Ok(f) = value.trim().parse::<f64>() {
        if f.is_finite() && looks_numeric(value) {
            out.floats.push(f.to_bits());
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                out.ints.push(f as i64);
            }
        }
    }
    out.boolean = value.parse::<bool>().ok();
    out
}

/// True for text made of digits, sign, dot and exponent only (not `inf`, `NaN`).
fn looks_numeric(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
}

/// Microseconds of a `@timestamp` literal, clamped as the index clamps them.
fn timestamp_micros(scalar: &Scalar) -> Result<i64, StoreError> {
    let value = match scalar {
        Scalar::Number(n) => serde_json::Number::from_f64(*n).map(Value::Number),
        Scalar::Text(t) => Some(Value::String(t.clone())),
    };
    let parsed = value.as_ref().and_then(parse_timestamp).ok_or_else(|| {
        StoreError::InvalidQuery(format!(
            "`@timestamp` bound {scalar:?} is not a time; expected RFC 3339 such as 2024-03-01T12:00:00Z or an epoch"
        ))
    })?;
    Ok(to_tantivy_time(parsed).into_timestamp_micros())
}

fn compile_range(path: &str, lower: &RangeBound, upper: &RangeBound) -> Result<Node, StoreError> {
    if matches!(
        (lower, upper),
        (RangeBound::Unbounded, RangeBound::Unbounded)
    ) {
        return compile(&Filter::Exists {
            field: path.to_string(),
        });
    }
    if is_text_path(path) {
        return Err(StoreError::InvalidQuery(format!(
            "ranges on the full-text field `{path}` are not supported; expected a keyword or numeric field"
        )));
    }
    if path == ecs::TIMESTAMP {
        return Ok(Node::TimeRange(
            map_bound(lower, timestamp_micros)?,
            map_bound(upper, timestamp_micros)?,
        ));
    }
    let is = |b: &RangeBound, number: bool| match b {
        RangeBound::Inclusive(s) | RangeBound::Exclusive(s) => {
            matches!(s, Scalar::Number(_)) == number
        }
        RangeBound::Unbounded => false,
    };
    let numeric = is(lower, true) || is(upper, true);
    if numeric && (is(lower, false) || is(upper, false)) {
        return Err(StoreError::InvalidQuery(format!(
            "range on `{path}` mixes a number and text; expected both bounds of the same kind"
        )));
    }
    if !numeric {
        let text = |s: &Scalar| match s {
            Scalar::Text(t) => Ok(cap_keyword(t).to_string()),
            Scalar::Number(n) => Ok(n.to_string()),
        };
        return Ok(Node::StringRange(
            path.to_string(),
            map_bound(lower, text)?,
            map_bound(upper, text)?,
        ));
    }
    let number = |s: &Scalar| match s {
        Scalar::Number(n) if n.is_finite() => Ok(if n.fract() == 0.0 && n.abs() < 9.0e15 {
            Number::Int(*n as i64)
        } else {
            Number::Float(*n)
        }),
        Scalar::Number(n) => Err(StoreError::InvalidQuery(format!(
            "range bound {n} on `{path}` is not a finite number"
        ))),
        Scalar::Text(t) => Err(StoreError::InvalidQuery(format!(
            "range bound {t:?} on `{path}` is not a number; expected a number"
        ))),
    };
    Ok(Node::NumberRange(
        path.to_string(),
        map_bound(lower, number)?,
        map_bound(upper, number)?,
    ))
}

fn map_bound<T>(
    bound: &RangeBound,
    f: impl Fn(&Scalar) -> Result<T, StoreError>,
) -> Result<Bound<T>, StoreError> {
    Ok(match bound {
        RangeBound::Unbounded => Bound::Unbounded,
        RangeBound::Inclusive(s) => Bound::Included(f(s)?),
        RangeBound::Exclusive(s) => Bound::Excluded(f(s)?),
    })
}

/// True when `ordering` (value compared to the bound) satisfies a lower/upper bound.
fn within<T>(lower: &Bound<T>, upper: &Bound<T>, cmp: impl Fn(&T) -> Option<Ordering>) -> bool {
    let lower_ok = match lower {
        Bound::Unbounded => true,
        Bound::Included(b) => matches!(cmp(b), Some(Ordering::Greater | Ordering::Equal)),
        Bound::Excluded(b) => matches!(cmp(b), Some(Ordering::Greater)),
    };
    lower_ok
        && match upper {
            Bound::Unbounded => true,
            Bound::Included(b) => matches!(cmp(b), Some(Ordering::Less | Ordering::Equal)),
            Bound::Excluded(b) => matches!(cmp(b), Some(Ordering::Less)),
        }
}

/// Compares a numeric leaf with a bound: integers exactly, anything else as `f64` in the
/// total order the fast field uses (so `-0.0` sorts below `0.0`, and `n:[0 TO 1]` misses it).
fn compare_number(leaf: &Leaf<'_>, bound: &Number) -> Option<Ordering> {
    Some(match (leaf, bound) {
        (Leaf::I64(v), Number::Int(b)) => v.cmp(b),
        (Leaf::U64(v), Number::Int(b)) => i128::from(*v).cmp(&i128::from(*b)),
        (Leaf::I64(v), Number::Float(b)) => (*v as f64).total_cmp(b),
        (Leaf::U64(v), Number::Float(b)) => (*v as f64).total_cmp(b),
        (Leaf::F64(v), Number::Int(b)) => v.total_cmp(&(*b as f64)),
        (Leaf::F64(v), Number::Float(b)) => v.total_cmp(b),
        (Leaf::Str(_) | Leaf::Bool(_), _) => return None,
    })
}

impl KeywordValue {
    fn matches(&self, leaf: &Leaf<'_>) -> bool {
        match leaf {
            Leaf::Str(s) => cap_keyword(s) == self.text,
            Leaf::I64(i) => self.ints.contains(i),
            Leaf::U64(u) => self.unsigned == Some(*u),
            Leaf::F64(f) => self.floats.contains(&f.to_bits()),
            Leaf::Bool(b) => self.boolean == Some(*b),
        }
    }
}

/// The indexed form of a scalar, as `schema.rs` flattens it.
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

impl Node {
    fn eval(&self, ctx: &Ctx<'_>) -> bool {
        match self {
            Node::All => true,
            Node::Nothing => false,
            Node::And(parts) => parts.iter().all(|p| p.eval(ctx)),
            Node::Or(parts) => parts.iter().any(|p| p.eval(ctx)),
            Node::Not(inner) => !inner.eval(ctx),
            Node::Message(words) => ctx
                .tokens(TextField::Message)
                .is_some_and(|tokens| has_phrase(tokens, words)),
            Node::RawWords(words) => ctx
                .tokens(TextField::Raw)
                .is_some_and(|tokens| words.iter().all(|w| tokens.iter().any(|(t, _)| t == w))),
            Node::TextWildcard(field, pattern) => ctx
                .tokens(*field)
                .is_some_and(|tokens| tokens.iter().any(|(t, _)| pattern.matches(t))),
            Node::Keyword(path, value) => ctx.any_leaf_at(path, &|leaf| value.matches(&leaf)),
            Node::KeywordWildcard(path, pattern) => ctx.any_leaf_at(path, &|leaf| match leaf {
                Leaf::Str(s) => pattern.matches(cap_keyword(s)),
                _ => false,
            }),
            Node::NumberRange(path, lower, upper) => ctx.any_leaf_at(path, &|leaf| {
                within(lower, upper, |b| compare_number(&leaf, b))
            }),
            Node::StringRange(path, lower, upper) => ctx.any_leaf_at(path, &|leaf| match leaf {
                Leaf::Str(s) => within(lower, upper, |b| Some(cap_keyword(s).cmp(b.as_str()))),
                _ => false,
            }),
            Node::TimeRange(lower, upper) => ctx.event.timestamp().is_some_and(|ts| {
                let micros = to_tantivy_time(ts).into_timestamp_micros();
                within(lower, upper, |b| Some(micros.cmp(b)))
            }),
            Node::KeywordExists(path) => ctx.exists_below(path),
            Node::TextExists(path) => !matches!(ctx.event.get(path), None | Some(Value::Null)),
        }
    }
}

/// True when `words` occur at consecutive positions (one word: anywhere).
fn has_phrase(tokens: &[(String, usize)], words: &[String]) -> bool {
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

/// What one evaluation computes lazily about its event, shared by all nodes.
struct Ctx<'e> {
    event: &'e Event,
    message: OnceCell<Option<Vec<(String, usize)>>>,
    raw: OnceCell<Option<Vec<(String, usize)>>>,
    /// `None` when every leaf is indexed, else the leaves that are (by address).
    indexed: OnceCell<Option<HashSet<*const Value>>>,
}

impl<'e> Ctx<'e> {
    fn new(event: &'e Event) -> Self {
        Self {
            event,
            message: OnceCell::new(),
            raw: OnceCell::new(),
            indexed: OnceCell::new(),
        }
    }

    /// Tokens with positions of a text field, `None` when the event does not have it.
    fn tokens(&self, field: TextField) -> Option<&[(String, usize)]> {
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
            let mut analyzer = text_analyzer();
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
    fn any_leaf_at(&self, path: &str, test: &dyn Fn(Leaf<'_>) -> bool) -> bool {
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
        let rest = &path[start..];
        let ends = rest.match_indices('.').map(|(i, _)| start + i);
        ends.chain(std::iter::once(path.len())).any(|end| {
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

    /// True when an indexed leaf is at `path` or below it (`path.x`, ...).
    fn exists_below(&self, path: &str) -> bool {
        self.exists_in_object(self.event.as_map(), path, 0)
    }

    fn exists_in_object(&self, map: &Map<String, Value>, path: &str, start: usize) -> bool {
        let rest = &path[start..];
        map.iter().any(|(key, value)| {
            if key == rest {
                !NOT_KEYWORDS.contains(&path) && self.any_leaf_below(value, path)
            } else if rest.len() > key.len()
                && rest.starts_with(key.as_str())
                && rest[key.len()..].starts_with('.')
            {
                let end = start + key.len();
                !NOT_KEYWORDS.contains(&&path[..end]) && self.exists_in_value(value, path, end + 1)
            } else if key.len() > rest.len()
                && key.starts_with(rest)
                && key[rest.len()..].starts_with('.')
            {
                let full = format!("{}{key}", &path[..start]);
                !NOT_KEYWORDS.contains(&full.as_str()) && self.any_leaf_below(value, &full)
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

    /// True when `value` (at dotted `path`) holds an indexed leaf.
    fn any_leaf_below(&self, value: &Value, path: &str) -> bool {
        match value {
            Value::Null => false,
            Value::Array(items) => items.iter().any(|item| self.any_leaf_below(item, path)),
            Value::Object(map) => map.iter().any(|(key, inner)| {
                let inner_path = format!("{path}.{key}");
                !NOT_KEYWORDS.contains(&inner_path.as_str())
                    && self.any_leaf_below(inner, &inner_path)
            }),
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
