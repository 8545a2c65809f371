//! Translation of a query [`Filter`] into a tantivy query.
//!
//! | filter                      | keyword path (`fields`)                              | `message` / `event.original` / free text |
//! |-----------------------------|------------------------------------------------------|------------------------------------------|
//! | `Term`                      | exact string, OR the i64/u64/f64/bool term when the value parses as one | token; several tokens = phrase |
//! | `Phrase`                    | exact string                                         | phrase of tokens (positions)             |
//! | `Wildcard`                  | glob over the path's string terms                    | glob over lowercased tokens              |
//! | `Range`                     | fast-field range: numeric if the bounds are numbers, else lexicographic | refused                |
//! | `Exists`                    | any value at the path or below it                    | the event has that text field            |
//!
//! Full text lives in two fields: `message` with positions (`_text`), the raw event without
//! (`_raw`). Free text (no field) matches either: the phrase in `message`, or all of its words
//! in the raw event. `event.original:...` matches all of the words in the raw event. The raw
//! event's words are `_raw`'s, and `_text`'s for an event whose `_raw` leaves out the message
//! it holds (`_has` then says [`MESSAGE_IN_RAW`]; see `schema.rs`).
//!
//! `@timestamp` maps to the `_ts` date field: `Term` is an instant, `Range` bounds are parsed
//! with [`crowsnest_model::parse_timestamp`] (RFC 3339, epochs, ...), `Exists` is always true.

use std::ops::Bound;

use crowsnest_model::{ecs, parse_timestamp};
use crowsnest_query::{Filter, RangeBound, Scalar};
use tantivy::columnar::ColumnType;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, EnableScoring, ExistsQuery, Occur, PhraseQuery, Query,
    RangeQuery, TermQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

use crate::schema::{
    cap_keyword, is_text_path, text_tokens, to_tantivy_time, twins, unique_root, SchemaFields,
    FIELDS, MESSAGE_IN_RAW, UNIQUE_PATHS,
};
use crate::wildcard::{explain_match, prefix_end, Pattern, WildcardQuery};
use crate::StoreError;

/// Builds the tantivy query of `filter`.
pub(crate) fn to_query(
    filter: &Filter,
    schema: &SchemaFields,
) -> Result<Box<dyn Query>, StoreError> {
    match filter {
        Filter::Term {
            field: Some(path), ..
        }
        | Filter::Phrase {
            field: Some(path), ..
        }
        | Filter::Wildcard {
            field: Some(path), ..
        }
        | Filter::Range { field: path, .. }
        | Filter::Exists { field: path } => with_twins(filter, path, schema),
        other => path_query(other, schema),
    }
}

/// The query of a filter on `path`, and for a path of the audit copy that has an ECS twin
/// (`schema/twins.rs`), the same filter on the twin for the events indexed with their twins
/// once.
fn with_twins(
    filter: &Filter,
    path: &str,
    schema: &SchemaFields,
) -> Result<Box<dyn Query>, StoreError> {
    let own = path_query(filter, schema)?;
    let on_twins = match filter {
        Filter::Exists { .. } => {
            let mut clauses = Vec::new();
            for twin in twins::twins_at_or_below(path) {
                let exists = Filter::Exists {
                    field: twin.to_owned(),
                };
                clauses.push((Occur::Should, path_query(&exists, schema)?));
            }
            (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
        }
        _ => match twins::twin_of(path) {
            Some(twin) => Some(path_query(&on_path(filter, twin), schema)?),
            None => None,
        },
    };
    let Some(on_twins) = on_twins else {
        return Ok(own);
    };
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Should, own),
        (
            Occur::Should,
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, has(schema.has, twins::MARKER)),
                (Occur::Must, on_twins),
            ])),
        ),
    ])))
}

/// `filter`, a filter on one path, on `path` instead.
fn on_path(filter: &Filter, path: &str) -> Filter {
    let mut moved = filter.clone();
    match &mut moved {
        Filter::Term { field, .. }
        | Filter::Phrase { field, .. }
        | Filter::Wildcard { field, .. } => *field = Some(path.to_owned()),
        Filter::Range { field, .. } | Filter::Exists { field } => *field = path.to_owned(),
        Filter::All | Filter::And(_) | Filter::Or(_) | Filter::Not(_) => {}
    }
    moved
}

/// [`to_query`] without the audit twins of the paths it names.
fn path_query(filter: &Filter, schema: &SchemaFields) -> Result<Box<dyn Query>, StoreError> {
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
            Some(path) if is_text_path(path) => Ok(raw_words(schema, value)),
            Some(ecs::TIMESTAMP) => {
                let bound = timestamp_term(schema.ts, &Scalar::Text(value.clone()))?;
                Ok(Box::new(RangeQuery::new(
                    Bound::Included(bound.clone()),
                    Bound::Included(bound),
                )))
            }
            Some(path) => Ok(keyword(schema, path, |field| {
                keyword_term_query(field, path, value)
            })),
        },
        Filter::Phrase { field, text } => match field.as_deref() {
            None => Ok(free_text(schema, text)),
            Some(ecs::MESSAGE) => Ok(text_query(schema.text, text)),
            Some(path) if is_text_path(path) => Ok(raw_words(schema, text)),
            Some(ecs::TIMESTAMP) => to_query(
                &Filter::Term {
                    field: field.clone(),
                    value: text.clone(),
                },
                schema,
            ),
            Some(path) => Ok(keyword(schema, path, |field| {
                Box::new(TermQuery::new(
                    keyword_str_term(field, path, text),
                    IndexRecordOption::Basic,
                ))
            })),
        },
        Filter::Wildcard { field, pattern } => match field.as_deref() {
            None => Ok(Box::new(BooleanQuery::new(vec![
                (Occur::Should, text_wildcard(schema.text, pattern)),
                (Occur::Should, text_wildcard(schema.raw, pattern)),
            ]))),
            Some(ecs::MESSAGE) => Ok(text_wildcard(schema.text, pattern)),
            Some(path) if is_text_path(path) => Ok(raw_or_message(schema, |field| {
                text_wildcard(field, pattern)
            })),
            Some(ecs::TIMESTAMP) => Err(StoreError::InvalidQuery(
                "wildcards on `@timestamp` are not supported; expected a range such as `@timestamp:[2024-01-01 TO 2024-01-02]`".into(),
            )),
            Some(path) => Ok(keyword(schema, path, |field| {
                let prefix_term = keyword_str_term(field, path, "");
                Box::new(WildcardQuery::new(
                    field,
                    prefix_term.serialized_value_bytes().to_vec(),
                    Pattern::parse(pattern),
                ))
            })),
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
                return Ok(has(schema.has, field));
            }
            Ok(exists_query(schema, field))
        }
    }
}

/// The events whose `_has` field (`has`) names `name`: a full-text or unique path they hold,
/// or a marker of how they were indexed.
pub(crate) fn has(has: Field, name: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(has, name),
        IndexRecordOption::Basic,
    ))
}

/// The query of a keyword path: on `_unique` for [`crate::UNIQUE_PATHS`] (and below), else on
/// `fields` or `_unique` (where leaves without a column go, `schema/route.rs`).
fn keyword(
    schema: &SchemaFields,
    path: &str,
    build: impl Fn(Field) -> Box<dyn Query>,
) -> Box<dyn Query> {
    if unique_root(path).is_none() {
        Box::new(BooleanQuery::new(vec![
            (Occur::Should, build(schema.fields)),
            (Occur::Should, build(schema.unique)),
        ]))
    } else {
        build(schema.unique)
    }
}

/// The events with a value at exactly `path` in `_unique` (a walk over its terms there).
pub(crate) fn in_unique(unique: Field, path: &str) -> Box<dyn Query> {
    let exact = Term::from_field_json_path(unique, path, true)
        .serialized_value_bytes()
        .to_vec();
    Box::new(WildcardQuery::prefixes(unique, vec![exact]))
}

/// The events with a value at `path` or below it in `_unique`.
fn in_unique_at_or_below(unique: Field, path: &str) -> Box<dyn Query> {
    let exact = Term::from_field_json_path(unique, path, true)
        .serialized_value_bytes()
        .to_vec();
    let mut deeper = exact.clone();
    if let Some(end) = deeper.last_mut() {
        // The path's end marker (0) becomes the segment separator (1): paths below.
        *end = 1;
    }
    Box::new(WildcardQuery::prefixes(unique, vec![exact, deeper]))
}

/// Any value at `path` or below it. Fast columns answer for `fields`; `_unique` has none, so
/// its paths are named in `_has` (and a path below one is found by walking its terms).
fn exists_query(schema: &SchemaFields, path: &str) -> Box<dyn Query> {
    match unique_root(path) {
        Some(root) if root == path => has(schema.has, root),
        Some(_) => in_unique_at_or_below(schema.unique, path),
        None => {
            let in_fields: Box<dyn Query> =
                Box::new(ExistsQuery::new(format!("{FIELDS}.{path}"), true));
            let mut clauses = vec![
                (Occur::Should, in_fields),
                (Occur::Should, in_unique_at_or_below(schema.unique, path)),
            ];
            for unique in UNIQUE_PATHS {
                if unique
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.'))
                {
                    clauses.push((Occur::Should, has(schema.has, unique)));
                }
            }
            if clauses.len() == 1 {
                return clauses.remove(0).1;
            }
            Box::new(BooleanQuery::new(clauses))
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
        (Occur::Should, raw_words(schema, text)),
    ]))
}

/// Every word of `text` among the words of the raw input (indexed without positions).
fn raw_words(schema: &SchemaFields, text: &str) -> Box<dyn Query> {
    let tokens = text_tokens(text);
    if tokens.is_empty() {
        return Box::new(EmptyQuery);
    }
    Box::new(BooleanQuery::new(
        tokens
            .iter()
            .map(|t| {
                let word = raw_or_message(schema, |field| {
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, t),
                        IndexRecordOption::Basic,
                    ))
                });
                (Occur::Must, word)
            })
            .collect(),
    ))
}

/// `words` of the raw input: the query on `_raw`, or on `_text` for the events whose `_raw`
/// leaves out the message it holds ([`MESSAGE_IN_RAW`], see `schema.rs`).
fn raw_or_message(
    schema: &SchemaFields,
    words: impl Fn(Field) -> Box<dyn Query>,
) -> Box<dyn Query> {
    let in_message: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
        (Occur::Must, has(schema.has, MESSAGE_IN_RAW)),
        (Occur::Must, words(schema.text)),
    ]));
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, words(schema.raw)),
        (Occur::Should, in_message),
    ]))
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
    if unique_root(path).is_none() {
        Ok(Box::new(BooleanQuery::new(vec![
            (
                Occur::Should,
                fields_range(schema.fields, path, lower, upper)?,
            ),
            (
                Occur::Should,
                unique_range(schema.unique, path, lower, upper)?,
            ),
        ])))
    } else {
        unique_range(schema.unique, path, lower, upper)
    }
}

/// A range over the fast column of a `fields` path: numeric if the bounds are, else text.
fn fields_range(
    field: Field,
    path: &str,
    lower: &RangeBound,
    upper: &RangeBound,
) -> Result<Box<dyn Query>, StoreError> {
    let numeric = [lower, upper].iter().any(|b| {
        matches!(
            b,
            RangeBound::Inclusive(Scalar::Number(_)) | RangeBound::Exclusive(Scalar::Number(_))
        )
    });
    if numeric {
        let (lower, upper) = numeric_bounds(path, lower, upper)?;
        return Ok(Box::new(NumericRange {
            field,
            path: path.to_string(),
            lower,
            upper,
        }));
    }
    let to_term = |scalar: &Scalar| -> Result<Term, StoreError> {
        let mut term = Term::from_field_json_path(field, path, true);
        match scalar {
            Scalar::Text(t) => term.append_type_and_str(cap_keyword(t)),
            Scalar::Number(n) => term.append_type_and_fast_value(*n),
        }
        Ok(term)
    };
    let lower = map_bound(lower, to_term)?;
    let upper = map_bound(upper, to_term)?;
    Ok(Box::new(RangeQuery::new(lower, upper)))
}

/// The bounds of a numeric range (text bounds, refused with numbers before, count as open);
/// an error names a bound that is not a finite number.
fn numeric_bounds(
    path: &str,
    lower: &RangeBound,
    upper: &RangeBound,
) -> Result<(Bound<f64>, Bound<f64>), StoreError> {
    let number = |b: &RangeBound| match b {
        RangeBound::Inclusive(Scalar::Number(n)) | RangeBound::Exclusive(Scalar::Number(n))
            if !n.is_finite() =>
        {
            Err(StoreError::InvalidQuery(format!(
                "range bound {n} on `{path}` is not a finite number"
            )))
        }
        RangeBound::Inclusive(Scalar::Number(n)) => Ok(Bound::Included(*n)),
        RangeBound::Exclusive(Scalar::Number(n)) => Ok(Bound::Excluded(*n)),
        _ => Ok(Bound::Unbounded),
    };
    Ok((number(lower)?, number(upper)?))
}

/// The bounds of a range over the integers of a type spanning `[min, max]`: a non-integral
/// bound rounded inwards (`>= 2.5` is `>= 3`, `< -0.5` is `<= -1`), a bound beyond the type
/// dropped, and `None` when no integer of the type can be in range.
fn integer_bounds(
    lower: Bound<f64>,
    upper: Bound<f64>,
    min: f64,
    max: f64,
) -> Option<(Bound<f64>, Bound<f64>)> {
    let lower = match lower {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(v) | Bound::Excluded(v) if v > max => return None,
        Bound::Included(v) | Bound::Excluded(v) if v < min => Bound::Unbounded,
        Bound::Excluded(v) if v.fract() == 0.0 => Bound::Excluded(v),
        Bound::Included(v) | Bound::Excluded(v) => Bound::Included(v.ceil()),
    };
    let upper = match upper {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(v) | Bound::Excluded(v) if v < min => return None,
        Bound::Included(v) | Bound::Excluded(v) if v > max => Bound::Unbounded,
        Bound::Excluded(v) if v.fract() == 0.0 => Bound::Excluded(v),
        Bound::Included(v) | Bound::Excluded(v) => Bound::Included(v.floor()),
    };
    Some((lower, upper))
}

/// A numeric range over a `fields` path. tantivy keeps one numeric column per path and
/// segment, and its range over a JSON path (0.25) goes wrong three ways this works around: on an
/// integer column it truncates a non-integral bound toward zero and makes it inclusive
/// (`count:>=2.5` would match 2, `count:<=-0.5` 0), it reads an upper bound below the integer
/// type's minimum as no bound at all (`x:<-1e19` would match every integer), and it panics when
/// the two bounds' terms differ in type (`[1 TO 1e19]`: an i64 and an f64). So each segment gets
/// the range its column needs, both bounds in the column's own type (see `for_column`);
/// `random_numeric_ranges_agree_on_every_column_type` checks it against the matcher.
#[derive(Debug, Clone)]
struct NumericRange {
    field: Field,
    path: String,
    lower: Bound<f64>,
    upper: Bound<f64>,
}

impl NumericRange {
    /// The range tantivy answers right on a segment whose numeric column is of type
    /// `column`, or `None` when no value of that type can be in range. Integer columns get
    /// integer bounds of their own type, rounded inwards and clamped to the type (tantivy would
    /// turn an upper bound below the type's minimum into no bound at all); float columns get
    /// the bounds as they are. Both bounds get one type (tantivy reads the second bound as the
    /// first one's type).
    fn for_column(&self, column: ColumnType) -> Option<RangeQuery> {
        let term = || Term::from_field_json_path(self.field, &self.path, true);
        if column == ColumnType::F64 {
            let bound = |b: Bound<f64>| {
                b.map(|v| {
                    let mut t = term();
                    t.append_type_and_fast_value(v);
                    t
                })
            };
            return Some(RangeQuery::new(bound(self.lower), bound(self.upper)));
        }
        let (min, max) = if column == ColumnType::U64 {
            (0.0, u64::MAX as f64)
        } else {
            (i64::MIN as f64, i64::MAX as f64)
        };
        let (lower, upper) = integer_bounds(self.lower, self.upper, min, max)?;
        // tantivy needs one bound: "any value of the type" is [min, ∞).
        let lower = match (lower, upper) {
            (Bound::Unbounded, Bound::Unbounded) => Bound::Included(min),
            (lower, _) => lower,
        };
        let typed = |v: f64| {
            let mut t = term();
            if column == ColumnType::U64 {
                t.append_type_and_fast_value(v as u64);
            } else {
                t.append_type_and_fast_value(v as i64);
            }
            t
        };
        Some(RangeQuery::new(lower.map(typed), upper.map(typed)))
    }
}

impl Query for NumericRange {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for NumericRange {
    fn scorer(
        &self,
        reader: &tantivy::SegmentReader,
        boost: tantivy::Score,
    ) -> tantivy::Result<Box<dyn tantivy::query::Scorer>> {
        let name = format!("{FIELDS}.{}", self.path);
        let numeric = [ColumnType::I64, ColumnType::U64, ColumnType::F64];
        let Some((_, column_type)) = reader
            .fast_fields()
            .u64_lenient_for_type(Some(&numeric), &name)?
        else {
            return Ok(Box::new(tantivy::query::EmptyScorer));
        };
        match self.for_column(column_type) {
            Some(range) => range
                .weight(EnableScoring::disabled_from_schema(reader.schema()))?
                .scorer(reader, boost),
            None => Ok(Box::new(tantivy::query::EmptyScorer)),
        }
    }

    fn explain(
        &self,
        reader: &tantivy::SegmentReader,
        doc: tantivy::DocId,
    ) -> tantivy::Result<tantivy::query::Explanation> {
        explain_match(self, reader, doc, "NumericRange")
    }
}

/// A range over the terms of a `_unique` path (no fast column there): text bounds walk its
/// string terms; number bounds walk its i64, u64 and f64 terms, each with the bounds in that
/// type (an integer range rounds non-integral bounds inwards).
fn unique_range(
    field: Field,
    path: &str,
    lower: &RangeBound,
    upper: &RangeBound,
) -> Result<Box<dyn Query>, StoreError> {
    let base = Term::from_field_json_path(field, path, true);
    let bytes = |term: &Term| term.serialized_value_bytes().to_vec();
    // The terms of one type at the path: [type prefix, end of that type).
    let typed = |make: &dyn Fn(&mut Term)| -> Vec<u8> {
        let mut term = base.clone();
        make(&mut term);
        bytes(&term)
    };
    let mut ranges = Vec::new();
    let text = [lower, upper].iter().any(|b| {
        matches!(
            b,
            RangeBound::Inclusive(Scalar::Text(_)) | RangeBound::Exclusive(Scalar::Text(_))
        )
    });
    if text {
        let prefix = typed(&|t| t.append_type_and_str(""));
        let bound = |b: &RangeBound, unbounded: Bound<Vec<u8>>| match b {
            RangeBound::Unbounded => unbounded,
            RangeBound::Inclusive(Scalar::Text(v)) => {
                Bound::Included(typed(&|t| t.append_type_and_str(cap_keyword(v))))
            }
            RangeBound::Exclusive(Scalar::Text(v)) => {
                Bound::Excluded(typed(&|t| t.append_type_and_str(cap_keyword(v))))
            }
            RangeBound::Inclusive(Scalar::Number(_)) | RangeBound::Exclusive(Scalar::Number(_)) => {
                unbounded
            }
        };
        let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        ranges.push((
            bound(lower, Bound::Included(prefix.clone())),
            bound(upper, end),
        ));
        return Ok(Box::new(WildcardQuery::ranges(field, ranges)));
    }
    let (low, high) = numeric_bounds(path, lower, upper)?;
    // Each numeric type's terms, from the type's first term to its last: f64 with the bounds
    // as they are, i64 and u64 with integer bounds.
    let f64_term = |v: f64| typed(&|t| t.append_type_and_fast_value(v));
    let i64_term = |v: f64| typed(&|t| t.append_type_and_fast_value(v as i64));
    let u64_term = |v: f64| typed(&|t| t.append_type_and_fast_value(v as u64));
    type TermOf<'a> = &'a dyn Fn(f64) -> Vec<u8>;
    let spans: [(TermOf, f64, f64, bool); 3] = [
        (&f64_term, f64::MIN, f64::MAX, false),
        (&i64_term, i64::MIN as f64, i64::MAX as f64, true),
        (&u64_term, 0.0, u64::MAX as f64, true),
    ];
    for (term, min, max, integer) in spans {
        let bounds = if integer {
            integer_bounds(low, high, min, max)
        } else {
            Some((low, high))
        };
        let Some((lower, upper)) = bounds else {
            continue;
        };
        let bound = |b: Bound<f64>, open: f64| match b {
            Bound::Included(v) => Bound::Included(term(v)),
            Bound::Excluded(v) => Bound::Excluded(term(v)),
            Bound::Unbounded => Bound::Included(term(open)),
        };
        ranges.push((bound(lower, min), bound(upper, max)));
    }
    Ok(Box::new(WildcardQuery::ranges(field, ranges)))
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
