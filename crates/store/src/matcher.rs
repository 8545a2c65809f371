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
//! Compiling ([`Matcher::new`], `compile.rs`) prepares patterns, tokens and bounds once and
//! fails exactly where `to_query` fails; [`Matcher::matches`] walks the event (`event.rs`) and
//! allocates nothing for exact keyword comparisons (text predicates tokenize the event's text
//! once per call, shared by all of them).
//!
//! Two consequences of matching "as indexed" that surprise: a key reached by two shapes at
//! once (`{"a.b": 1, "a": {"b": 2}}`) has both values at `a.b` (so [`Event::get`], which
//! returns one, is not used for keywords), and floats compare in the fast field's total order
//! (`-0.0` is below `0.0`). The differential test `tests/matcher_differential.rs` holds the
//! matcher to search on a few hundred varied events.

mod compile;
mod event;

use std::cmp::Ordering;
use std::ops::Bound;

use crowsnest_model::Event;
use crowsnest_query::Filter;
use serde_json::Value;

use crate::schema::{cap_keyword, to_tantivy_time};
use crate::wildcard::Pattern;
use crate::StoreError;
use event::{has_phrase, Ctx, Leaf};

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

impl Matcher {
    /// Compiles `filter`. Fails ([`StoreError::InvalidQuery`], same message) exactly where
    /// search would refuse it: a range on a full-text field, a range mixing a number and
    /// text, a non-finite bound, a `@timestamp` value that is not a time, a wildcard on
    /// `@timestamp`.
    pub fn new(filter: &Filter) -> Result<Self, StoreError> {
        Ok(Self {
            node: compile::compile(filter)?,
        })
    }

    /// True when search would return `event` for the filter once it is indexed. Pass the
    /// event as the store receives it (with the fields the server adds, such as `event.id`).
    /// An event without a parseable `@timestamp`, which the store refuses, fails every
    /// `@timestamp` range and term.
    pub fn matches(&self, event: &Event) -> bool {
        self.node.eval(&Ctx::new(event))
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

/// True when a value lies within `lower` and `upper`; `cmp` compares the value to a bound
/// (`None`: not comparable, outside).
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
