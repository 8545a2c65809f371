//! The index schema of a partition and how an [`Event`] becomes a tantivy document.
//!
//! | field     | type                     | fed from                         | used for                        |
//! |-----------|--------------------------|----------------------------------|---------------------------------|
//! | `_ts`     | date, fast column, µs    | `@timestamp`                     | time bounds, sort, `timechart`  |
//! | `_source` | stored text (zstd)       | the whole event as JSON          | hits                            |
//! | `fields`  | JSON, raw tokens, fast   | every leaf except the full text  | exact/wildcard/range/exists, aggregations |
//! | `_text`   | text, lowercased, positions | `message`, `event.original`   | free text, phrases              |
//! | `_has`    | raw string, indexed      | names of the full-text fields present | `_exists_:message`          |
//!
//! `fields` receives the event *flattened* to dotted keys with dot expansion on, so
//! `{"a": {"b": 1}}` and `{"a.b": 1}` are the same path `a.b` (Kubernetes annotation keys contain
//! dots). Strings are keywords: case-sensitive, not tokenized, and capped at
//! [`MAX_KEYWORD_BYTES`] (queries cap their value the same way, so an exact match on a very long
//! value compares its first [`MAX_KEYWORD_BYTES`] bytes). At most [`MAX_LEAVES`] leaf values of an
//! event are indexed; the rest stays in `_source` only. Strings are never turned into dates
//! (tantivy would do so for RFC 3339 text), so `event.ingested:>=2024-01-01` compares text.

use chrono::{DateTime, Utc};
use crowsnest_model::{ecs, Event};
use serde_json::Value;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, OwnedValue,
    Schema, TextFieldIndexing, TextOptions, STORED, STRING,
};
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::TantivyDocument;

use crate::StoreError;

/// Name of the timestamp field.
pub(crate) const TS: &str = "_ts";
/// Name of the stored source field.
pub(crate) const SOURCE: &str = "_source";
/// Name of the keyword JSON field.
pub(crate) const FIELDS: &str = "fields";
/// Name of the full-text field.
pub(crate) const TEXT: &str = "_text";
/// Name of the field listing which full-text fields an event has.
pub(crate) const HAS: &str = "_has";

/// Longest keyword indexed, in bytes; longer strings are cut (on a character boundary).
pub const MAX_KEYWORD_BYTES: usize = 512;
/// Most leaf values of one event indexed in `fields`.
pub const MAX_LEAVES: usize = 1_000;

/// The event paths that are full text, not keywords.
pub(crate) const TEXT_PATHS: [&str; 2] = [ecs::MESSAGE, ecs::EVENT_ORIGINAL];

/// True when `path` is fed to the full-text field instead of `fields`.
pub(crate) fn is_text_path(path: &str) -> bool {
    TEXT_PATHS.contains(&path)
}

/// Handles on the fields of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaFields {
    pub ts: Field,
    pub source: Field,
    pub fields: Field,
    pub text: Field,
    pub has: Field,
}

/// Builds the schema every partition uses.
pub(crate) fn build_schema() -> (Schema, SchemaFields) {
    let mut builder = Schema::builder();
    let ts = builder.add_date_field(
        TS,
        DateOptions::default()
            .set_fast()
            .set_precision(DateTimePrecision::Microseconds),
    );
    let source = builder.add_text_field(SOURCE, STORED);
    let keyword_indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    let fields = builder.add_json_field(
        FIELDS,
        JsonObjectOptions::default()
            .set_indexing_options(keyword_indexing)
            .set_fast(Some("raw"))
            .set_expand_dots_enabled(),
    );
    let text_indexing = TextFieldIndexing::default()
        .set_tokenizer("default")
        .set_index_option(IndexRecordOption::WithFreqsAndPositions)
        .set_fieldnorms(false);
    let text = builder.add_text_field(
        TEXT,
        TextOptions::default().set_indexing_options(text_indexing),
    );
    let has = builder.add_text_field(HAS, STRING);
    let schema = builder.build();
    (
        schema,
        SchemaFields {
            ts,
            source,
            fields,
            text,
            has,
        },
    )
}

/// Converts a chrono time to a tantivy one (microsecond precision).
pub(crate) fn to_tantivy_time(ts: DateTime<Utc>) -> tantivy::DateTime {
    tantivy::DateTime::from_timestamp_micros(ts.timestamp_micros())
}

/// Converts tantivy microseconds back to a chrono time.
pub(crate) fn micros_to_time(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

/// Builds the document of one event stamped at `ts`.
pub(crate) fn to_document(
    event: &Event,
    ts: DateTime<Utc>,
    schema: &SchemaFields,
) -> Result<TantivyDocument, StoreError> {
    let mut doc = TantivyDocument::default();
    doc.add_date(schema.ts, to_tantivy_time(ts));
    let source = serde_json::to_string(event.as_map())
        .map_err(|error| StoreError::Index(format!("cannot serialize event: {error}")))?;
    doc.add_text(schema.source, source);
    let mut leaves: Vec<(String, OwnedValue)> = Vec::new();
    let mut path = String::new();
    for (key, value) in event.as_map() {
        flatten(&mut path, key, value, &mut leaves);
    }
    if !leaves.is_empty() {
        doc.add_field_value(schema.fields, &OwnedValue::Object(group_leaves(leaves)));
    }
    for text_path in TEXT_PATHS {
        if let Some(value) = event.get(text_path) {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            doc.add_text(schema.text, text);
            doc.add_text(schema.has, text_path);
        }
    }
    Ok(doc)
}

/// Collects `(dotted path, leaf)` pairs below `value` into `out`.
fn flatten(path: &mut String, key: &str, value: &Value, out: &mut Vec<(String, OwnedValue)>) {
    let before = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    if path != ecs::TIMESTAMP && !is_text_path(path) {
        flatten_value(path, value, out);
    }
    path.truncate(before);
}

fn flatten_value(path: &mut String, value: &Value, out: &mut Vec<(String, OwnedValue)>) {
    if out.len() >= MAX_LEAVES {
        return;
    }
    let leaf = match value {
        Value::Null => return,
        Value::Bool(b) => OwnedValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                OwnedValue::I64(i)
            } else if let Some(u) = n.as_u64() {
                OwnedValue::U64(u)
            } else if let Some(f) = n.as_f64() {
                OwnedValue::F64(f)
            } else {
                return;
            }
        }
        Value::String(s) => OwnedValue::Str(cap_keyword(s).to_string()),
        Value::Array(items) => {
            for item in items {
                flatten_value(path, item, out);
            }
            return;
        }
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(path, key, inner, out);
            }
            return;
        }
    };
    out.push((path.clone(), leaf));
}

/// Groups repeated paths (array elements) into arrays, keeping first-seen order.
fn group_leaves(leaves: Vec<(String, OwnedValue)>) -> Vec<(String, OwnedValue)> {
    let mut grouped: Vec<(String, OwnedValue)> = Vec::with_capacity(leaves.len());
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (path, leaf) in leaves {
        match index.get(&path) {
            Some(&i) => {
                let slot = &mut grouped[i].1;
                if let OwnedValue::Array(items) = slot {
                    items.push(leaf);
                } else {
                    let first = std::mem::replace(slot, OwnedValue::Null);
                    *slot = OwnedValue::Array(vec![first, leaf]);
                }
            }
            None => {
                index.insert(path.clone(), grouped.len());
                grouped.push((path, leaf));
            }
        }
    }
    grouped
}

/// Cuts a keyword to [`MAX_KEYWORD_BYTES`] on a character boundary.
pub(crate) fn cap_keyword(text: &str) -> &str {
    if text.len() <= MAX_KEYWORD_BYTES {
        return text;
    }
    let mut end = MAX_KEYWORD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The analyzer of the full-text field (must match tantivy's `default` tokenizer).
pub(crate) fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .build()
}

/// Splits text into the tokens the full-text field holds.
pub(crate) fn text_tokens(text: &str) -> Vec<String> {
    let mut analyzer = text_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while stream.advance() {
        tokens.push(stream.token().text.clone());
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaves_of(value: Value) -> Vec<(String, OwnedValue)> {
        let event: Event = serde_json::from_value(value).expect("object");
        let mut out = Vec::new();
        let mut path = String::new();
        for (key, value) in event.as_map() {
            flatten(&mut path, key, value, &mut out);
        }
        group_leaves(out)
    }

    #[test]
    fn flattening_skips_text_and_timestamp_and_groups_arrays() {
        let leaves = leaves_of(json!({
            "@timestamp": "2024-01-01T00:00:00Z",
            "message": "hello",
            "event": {"original": "raw", "dataset": "k8s"},
            "user": {"roles": ["a", "b"]},
            "n": null,
            "k": {"a.b": 1}
        }));
        let paths: Vec<&str> = leaves.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, vec!["event.dataset", "user.roles", "k.a.b"]);
        assert!(matches!(&leaves[1].1, OwnedValue::Array(items) if items.len() == 2));
        assert!(matches!(leaves[2].1, OwnedValue::I64(1)));
    }

    #[test]
    fn keywords_are_capped_on_char_boundaries() {
        let long = "é".repeat(MAX_KEYWORD_BYTES);
        let capped = cap_keyword(&long);
        assert!(capped.len() <= MAX_KEYWORD_BYTES);
        assert!(capped.len() > MAX_KEYWORD_BYTES - 2);
        assert_eq!(cap_keyword("short"), "short");
    }

    #[test]
    fn text_tokens_are_lowercased_words() {
        assert_eq!(
            text_tokens("Failed LOGIN from 10.0.0.1"),
            vec!["failed", "login", "from", "10", "0", "0", "1"]
        );
    }
}
