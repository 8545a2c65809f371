//! Compiling a [`Filter`] into the [`Node`] tree the matcher evaluates: the counterpart of
//! `filter.rs`, case by case (same dispatch on the field, same literal parsing, same errors).

use std::ops::Bound;

use crowsnest_model::{ecs, parse_timestamp};
use crowsnest_query::{Filter, RangeBound, Scalar};
use serde_json::Value;

use super::{KeywordValue, Node, Number, TextField};
use crate::schema::{cap_keyword, is_text_path, text_tokens, to_tantivy_time, TEXT_PATHS};
use crate::wildcard::Pattern;
use crate::StoreError;

/// Compiles `filter`; fails where `to_query` fails, with its message.
pub(super) fn compile(filter: &Filter) -> Result<Node, StoreError> {
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
            Some(path) => Node::Keyword(json_path(path), keyword_value(value)),
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
                json_path(path),
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
            Some(path) => Node::KeywordWildcard(json_path(path), Pattern::parse(pattern)),
        },
        Filter::Range {
            field,
            lower,
            upper,
        } => compile_range(field, lower, upper)?,
        Filter::Exists { field } if field == ecs::TIMESTAMP => Node::All,
        Filter::Exists { field } => match TEXT_PATHS.iter().find(|p| *p == field) {
            Some(path) => Node::TextExists(path),
            None => Node::KeywordExists(json_path(field)),
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
    // From here the bounds are all text or all numbers: the other arm of each closure is
    // never taken.
    if !numeric {
        let text = |s: &Scalar| match s {
            Scalar::Text(t) => Ok(cap_keyword(t).to_string()),
            Scalar::Number(n) => Ok(n.to_string()),
        };
        let node = Node::StringRange(
            range_path(path),
            map_bound(lower, text)?,
            map_bound(upper, text)?,
        );
        return Ok(unless_root(path, node));
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
    let node = Node::NumberRange(
        range_path(path),
        map_bound(lower, number)?,
        map_bound(upper, number)?,
    );
    Ok(unless_root(path, node))
}

/// The keyword path tantivy looks up for a query path: `\x` is `x` (an escaped dot still
/// separates segments, since dots are expanded; a lone trailing `\` is dropped), so
/// `a\b` finds the key `ab` and `a\\b` the key `a\b`.
fn json_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            other => out.push(other),
        }
    }
    out
}

/// The column a range reads: tantivy prints the term's path back as text and resolves it
/// again, so escapes are taken away twice: `a\\b` reads the column of `ab`, not the one of the
/// key `a\b` its terms find (a store quirk for keys with backslashes; reported).
fn range_path(path: &str) -> String {
    json_path(&json_path(path))
}

/// The fast-field range finds no column at the root of `fields` (the empty path, whose
/// leaves terms and `exists` do see): a valid range there matches nothing.
fn unless_root(path: &str, node: Node) -> Node {
    if range_path(path).is_empty() {
        Node::Nothing
    } else {
        node
    }
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
