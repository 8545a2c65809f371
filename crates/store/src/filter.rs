//! Translation of a query [`Filter`] into a tantivy query.
//!
//! | filter                      | keyword path (`fields`)                              | `message` / `event.original` / free text |
//! |-----------------------------|------------------------------------------------------|------------------------------------------|
//! | `Term`                      | exact string, OR the i64/u64/f64/bool term when the value parses as one | token; several tokens = phrase |
//! | `Phrase`                    | exact string                                         | phrase of tokens (positions)             |
//! | `Wildcard`                  | glob over the path's string terms                    | glob over lowercased tokens              |
//!
//! Full text lives in two fields: `message` with positions (`_text`), the raw event without
//! (`_raw`). Free text (no field) matches either: the phrase in `message`, or all of its words
//! in the raw event. `event.original:...` matches all of the words in the raw event.
//! | `Range`                     | fast-field range: numeric if the bounds are numbers, else lexicographic | refused                |
//! | `Exists`                    | any value at the path or below it                    | the event has that text field            |
//!
//! `@timestamp` maps to the `_ts` date field: `Term` is an instant, `Range` bounds are parsed
//! with [`crowsnest_model::parse_timestamp`] (RFC 3339, epochs, ...), `Exists` is always true.

use std::ops::Bound;

use crowsnest_model::{ecs, parse_timestamp};
use crowsnest_query::{Filter, RangeBound, Scalar};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, ExistsQuery, Occur, PhraseQuery, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

use crate::schema::{
    cap_keyword, is_text_path, text_tokens, to_tantivy_time, SchemaFields, FIELDS,
};
use crate::wildcard::{Pattern, WildcardQuery};
use crate::StoreError;

/// Builds the tantivy query of `filter`.
pub(crate) fn to_query(
    filter: &Filter,
    schema: &SchemaFields,
) -> Result<Box<dyn Query>, StoreError> {
    match filter {
        Filter::All => Ok(Box::new(AllQuery)),
        Filter::And(parts) => {
            if parts.is_empty() {
                return Ok(Box::new(AllQuery));
            }
            let mut clauses = Vec::with_capacity(parts.len());
            for part in parts {
                clauses.push((Occur::Must, to_query(part, schema)?));
            }
            Ok(Box::new(BooleanQuery::new(clauses)))
        }
        Filter::Or(parts) => {
            if parts.is_empty() {
                return Ok(Box::new(EmptyQuery));
            }
            let mut clauses = Vec::with_capacity(parts.len());
            for part in parts {
                clauses.push((Occur::Should, to_query(part, schema)?));
            }
            Ok(Box::new(BooleanQuery::new(clauses)))
        }
        Filter::Not(inner) => Ok(Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
            (Occur::MustNot, to_query(inner, schema)?),
        ]))),
        Filter::Term { field, value } => match field.as_deref() {
            None => Ok(free_text(schema, value)),
            Some(ecs::MESSAGE) => Ok(text_query(schema.text, value)),
            Some(path) if is_text_path(path) => Ok(all_words(schema.raw, value)),
            Some(ecs::TIMESTAMP) => {
                let bound = timestamp_term(schema.ts, &Scalar::Text(value.clone()))?;
                Ok(Box::new(RangeQuery::new(
                    Bound::Included(bound.clone()),
                    Bound::Included(bound),
                )))
            }
            Some(path) => Ok(keyword_term_query(schema.fields, path, value)),
        },
        Filter::Phrase { field, text } => match field.as_deref() {
            None => Ok(free_text(schema, text)),
            Some(ecs::MESSAGE) => Ok(text_query(schema.text, text)),
            Some(path) if is_text_path(path) => Ok(all_words(schema.raw, text)),
            Some(ecs::TIMESTAMP) => to_query(
                &Filter::Term {
                    field: field.clone(),
                    value: text.clone(),
                },
                schema,
            ),
            Some(path) => Ok(Box::new(TermQuery::new(
                keyword_str_term(schema.fields, path, text),
                IndexRecordOption::Basic,
            ))),
        },
        Filter::Wildcard { field, pattern } => match field.as_deref() {
            None => Ok(Box::new(BooleanQuery::new(vec![
                (Occur::Should, text_wildcard(schema.text, pattern)),
                (Occur::Should, text_wildcard(schema.raw, pattern)),
            ]))),
            Some(ecs::MESSAGE) => Ok(text_wildcard(schema.text, pattern)),
            Some(path) if is_text_path(path) => Ok(text_wildcard(schema.raw, pattern)),
            Some(ecs::TIMESTAMP) => Err(StoreError::InvalidQuery(
                "wildcards on `@timestamp` are not supported; expected a range such as `@timestamp:[2024-01-01 TO 2024-01-02]`".into(),
            )),
            Some(path) => {
                let prefix_term = keyword_str_term(schema.fields, path, "");
                Ok(Box::new(WildcardQuery::new(
                    schema.fields,
                    prefix_term.serialized_value_bytes().to_vec(),
                    Pattern::parse(pattern),
                )))
            }
        },
        Filter::Range {
            field,
            lower,
            upper,
        } => range_query(schema, field, lower, upper),
        Filter::Exists { field } => {
            if field == ecs::TIMESTAMP {
                return Ok(Box::new(AllQuery));
            }
            if is_text_path(field) {
                return Ok(Box::new(TermQuery::new(
                    Term::from_field_text(schema.has, field),
                    IndexRecordOption::Basic,
                )));
            }
            Ok(Box::new(ExistsQuery::new(format!("{FIELDS}.{field}"), true)))
        }
    }
}

/// The string term of `value` at a keyword path.
fn keyword_str_term(field: Field, path: &str, value: &str) -> Term {
    let mut term = Term::from_field_json_path(field, path, true);
    term.append_type_and_str(cap_keyword(value));
    term
}

/// Exact keyword match: the string, or the number/bool the text spells.
fn keyword_term_query(field: Field, path: &str, value: &str) -> Box<dyn Query> {
    let mut terms = vec![keyword_str_term(field, path, value)];
    let base = Term::from_field_json_path(field, path, true);
    let push_i64 = |terms: &mut Vec<Term>, v: i64| {
        let mut t = base.clone();
        t.append_type_and_fast_value(v);
        terms.push(t);
    };
    let push_f64 = |terms: &mut Vec<Term>, v: f64| {
        let mut t = base.clone();
        t.append_type_and_fast_value(v);
        terms.push(t);
    };
    if let Ok(i) = value.parse::<i64>() {
        push_i64(&mut terms, i);
        push_f64(&mut terms, i as f64);
    } else if let Ok(u) = value.parse::<u64>() {
        let mut t = base.clone();
        t.append_type_and_fast_value(u);
        terms.push(t);
        push_f64(&mut terms, u as f64);
    } else if let Ok(f) = value.trim().parse::<f64>() {
        if f.is_finite() && looks_numeric(value) {
            push_f64(&mut terms, f);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                push_i64(&mut terms, f as i64);
            }
        }
    }
    if let Ok(b) = value.parse::<bool>() {
        let mut t = base.clone();
        t.append_type_and_fast_value(b);
        terms.push(t);
    }
    if terms.len() == 1 {
        return Box::new(TermQuery::new(terms.remove(0), IndexRecordOption::Basic));
    }
    let clauses = terms
        .into_iter()
        .map(|t| {
            (
                Occur::Should,
                Box::new(TermQuery::new(t, IndexRecordOption::Basic)) as Box<dyn Query>,
            )
        })
        .collect();
    Box::new(BooleanQuery::new(clauses))
}

/// True for text made of digits, sign, dot and exponent only (not `inf`, `NaN`).
fn looks_numeric(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
}

/// Full-text match of `text`: one token = term, several = phrase, none = nothing.
fn text_query(field: Field, text: &str) -> Box<dyn Query> {
    let mut tokens = text_tokens(text);
    match tokens.len() {
        0 => Box::new(EmptyQuery),
        1 => Box::new(TermQuery::new(
            Term::from_field_text(field, &tokens.remove(0)),
            IndexRecordOption::Basic,
        )),
        _ => Box::new(PhraseQuery::new(
            tokens
                .iter()
                .map(|t| Term::from_field_text(field, t))
                .collect(),
        )),
    }
}

/// Free text: the words (or phrase) in `message`, or all of the words in the raw event.
fn free_text(schema: &SchemaFields, text: &str) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, text_query(schema.text, text)),
        (Occur::Should, all_words(schema.raw, text)),
    ]))
}

/// Every word of `text` in a field indexed without positions.
fn all_words(field: Field, text: &str) -> Box<dyn Query> {
    let tokens = text_tokens(text);
    if tokens.is_empty() {
        return Box::new(EmptyQuery);
    }
    Box::new(BooleanQuery::new(
        tokens
            .iter()
            .map(|t| {
                let query: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(field, t),
                    IndexRecordOption::Basic,
                ));
                (Occur::Must, query)
            })
            .collect(),
    ))
}

/// Glob over the lowercased tokens of the text field.
fn text_wildcard(field: Field, pattern: &str) -> Box<dyn Query> {
    let pattern = Pattern::parse(pattern).map_literals(|c| c.to_lowercase().next().unwrap_or(c));
    Box::new(WildcardQuery::new(field, Vec::new(), pattern))
}

/// The `_ts` term of a timestamp literal.
fn timestamp_term(field: Field, scalar: &Scalar) -> Result<Term, StoreError> {
    let value = match scalar {
        Scalar::Number(n) => serde_json::Number::from_f64(*n).map(serde_json::Value::Number),
        Scalar::Text(t) => Some(serde_json::Value::String(t.clone())),
    };
    let parsed = value.as_ref().and_then(parse_timestamp).ok_or_else(|| {
        StoreError::InvalidQuery(format!(
            "`@timestamp` bound {scalar:?} is not a time; expected RFC 3339 such as 2024-03-01T12:00:00Z or an epoch"
        ))
    })?;
    Ok(Term::from_field_date(field, to_tantivy_time(parsed)))
}

fn range_query(
    schema: &SchemaFields,
    path: &str,
    lower: &RangeBound,
    upper: &RangeBound,
) -> Result<Box<dyn Query>, StoreError> {
    if matches!(
        (lower, upper),
        (RangeBound::Unbounded, RangeBound::Unbounded)
    ) {
        return to_query(
            &Filter::Exists {
                field: path.to_string(),
            },
            schema,
        );
    }
    if is_text_path(path) {
        return Err(StoreError::InvalidQuery(format!(
            "ranges on the full-text field `{path}` are not supported; expected a keyword or numeric field"
        )));
    }
    if path == ecs::TIMESTAMP {
        let lower = map_bound(lower, |s| timestamp_term(schema.ts, s))?;
        let upper = map_bound(upper, |s| timestamp_term(schema.ts, s))?;
        return Ok(Box::new(RangeQuery::new(lower, upper)));
    }
    let numeric = [lower, upper].iter().any(|b| {
        matches!(
            b,
            RangeBound::Inclusive(Scalar::Number(_)) | RangeBound::Exclusive(Scalar::Number(_))
        )
    });
    let textual = [lower, upper].iter().any(|b| {
        matches!(
            b,
            RangeBound::Inclusive(Scalar::Text(_)) | RangeBound::Exclusive(Scalar::Text(_))
        )
    });
    if numeric && textual {
        return Err(StoreError::InvalidQuery(format!(
            "range on `{path}` mixes a number and text; expected both bounds of the same kind"
        )));
    }
    let to_term = |scalar: &Scalar| -> Result<Term, StoreError> {
        let mut term = Term::from_field_json_path(schema.fields, path, true);
        match scalar {
            Scalar::Number(n) if n.is_finite() => {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    term.append_type_and_fast_value(*n as i64);
                } else {
                    term.append_type_and_fast_value(*n);
                }
            }
            Scalar::Number(n) => {
                return Err(StoreError::InvalidQuery(format!(
                    "range bound {n} on `{path}` is not a finite number"
                )))
            }
            Scalar::Text(t) => term.append_type_and_str(cap_keyword(t)),
        }
        Ok(term)
    };
    let lower = map_bound(lower, to_term)?;
    let upper = map_bound(upper, to_term)?;
    Ok(Box::new(RangeQuery::new(lower, upper)))
}

fn map_bound(
    bound: &RangeBound,
    f: impl Fn(&Scalar) -> Result<Term, StoreError>,
) -> Result<Bound<Term>, StoreError> {
    Ok(match bound {
        RangeBound::Unbounded => Bound::Unbounded,
        RangeBound::Inclusive(s) => Bound::Included(f(s)?),
        RangeBound::Exclusive(s) => Bound::Excluded(f(s)?),
    })
}

/// The `_ts` range of a search window `[start, end)`, if bounded.
pub(crate) fn time_window_query(
    schema: &SchemaFields,
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<Box<dyn Query>> {
    if start.is_none() && end.is_none() {
        return None;
    }
    let lower = match start {
        Some(t) => Bound::Included(Term::from_field_date(schema.ts, to_tantivy_time(t))),
        None => Bound::Unbounded,
    };
    let upper = match end {
        Some(t) => Bound::Excluded(Term::from_field_date(schema.ts, to_tantivy_time(t))),
        None => Bound::Unbounded,
    };
    Some(Box::new(RangeQuery::new(lower, upper)))
}
