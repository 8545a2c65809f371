//! The index schema of a partition and how an [`Event`] becomes a tantivy document.
//!
//! | field     | type                     | fed from                         | used for                        |
//! |-----------|--------------------------|----------------------------------|---------------------------------|
//! | `_ts`     | date, fast column, µs    | `@timestamp`                     | time bounds, sort, `timechart`  |
//! | `_source` | stored text (zstd)       | the event as JSON, without `event.original` | hits                 |
//! | `_orig`   | stored bytes (zstd)      | `event.original`, verbatim       | hits (put back in `_source`)    |
//! | `fields`  | JSON, raw tokens, fast   | every leaf except the full text, [`UNIQUE_PATHS`] and an audit event's [`twins::AUDIT_TWINS`] | exact/wildcard/range/exists, aggregations |
//! | `_unique` | JSON, raw tokens, not fast | [`UNIQUE_PATHS`] (ids, exact times) | exact/wildcard/range/exists (no aggregations) |
//! | `_text`   | text, lowercased, positions | `message`                     | free text, phrases              |
//! | `_raw`    | text, lowercased, no positions | the words of `event.original`'s values (`raw_words.rs`), but for `message` when it holds that whole | free text (words, wildcards) |
//! | `_has`    | raw string, indexed      | names of the full-text and unique paths present; [`MESSAGE_IN_RAW`]; [`twins::MARKER`] | `_exists_:message`, `_exists_:event.id`, words of the raw input, audit twins |
//!
//! `fields` receives the event's leaves with dot expansion on, so `{"a": {"b": 1}}` and
//! `{"a.b": 1}` are the same path `a.b` (Kubernetes annotation keys contain dots). tantivy reads
//! them straight from the event's JSON tree (see `keywords.rs`); only events with very many or
//! very deep leaves are first flattened to dotted keys. Strings are keywords: case-sensitive, not tokenized, and capped at
//! [`MAX_KEYWORD_BYTES`] (queries cap their value the same way, so an exact match on a very long
//! value compares its first [`MAX_KEYWORD_BYTES`] bytes). At most [`MAX_LEAVES`] leaf values of an
//! event are indexed; the rest stays in `_source` only. Strings are never turned into dates
//! (tantivy would do so for RFC 3339 text), so `event.ingested:>=2024-01-01` compares text.
//!
//! The raw input is kept apart from the structured event for size: stored as plain bytes next
//! to `_source` in the same docstore block, zstd finds it again in the structured copy (an
//! audit event's `k8s.audit`, a generic event's own fields) instead of compressing an escaped
//! JSON string that matches nothing; and its words are indexed without positions, because
//! positions of every raw event cost about a fifth of the index. Phrases therefore match
//! `message` exactly and the raw text by all of their words (see `filter.rs`).
//!
//! Most raw inputs carry the message whole: a Docker or CRI log line's `log`, an NDJSON
//! event's `msg`. Its words are indexed once, in `_text`: `_raw` gets the raw input with that
//! value emptied and `_has` gets [`MESSAGE_IN_RAW`], and a query for a word of the raw input
//! asks `_raw`, or `_text` where `_has` says the message was left out (`filter.rs`). On the
//! 100k-event benchmark corpus this took `_raw` from 5.65 to 4.22 MB (`examples/ingest.rs`).

use chrono::{DateTime, Utc};
use crowsnest_model::{ecs, record, Event};
use serde_json::Value;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, OwnedValue,
    Schema, TextFieldIndexing, TextOptions, STORED,
};
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::TantivyDocument;

use crate::StoreError;

mod delta;
mod keywords;
mod raw_words;
pub(crate) mod route;
pub(crate) mod twins;

pub(crate) use raw_words::RAW_WORDS;

/// Name of the timestamp field.
pub(crate) const TS: &str = "_ts";
/// Name of the stored source field.
pub(crate) const SOURCE: &str = "_source";
/// Name of the keyword JSON field.
pub(crate) const FIELDS: &str = "fields";
/// Name of the full-text field (`message`, with positions).
pub(crate) const TEXT: &str = "_text";
/// Name of the raw-text field (`event.original`, words only).
pub(crate) const RAW: &str = "_raw";
/// Name of the stored raw input.
pub(crate) const ORIGINAL: &str = "_orig";
/// Name of the field listing which full-text fields an event has.
pub(crate) const HAS: &str = "_has";
/// Name of the keyword JSON field of [`UNIQUE_PATHS`] (indexed, not fast).
pub(crate) const UNIQUE: &str = "_unique";
/// The `_has` value of an event whose `_raw` leaves out its `message` (which `_text` holds):
/// the words of its raw input are those of `_raw` and of `_text` together.
pub(crate) const MESSAGE_IN_RAW: &str = "message in event.original";

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

/// Paths whose values are unique, or nearly, to each event: identifiers and exact times.
///
/// They are indexed in `_unique`, like `fields` but without fast columns: a column of values
/// that never repeat costs a dictionary entry and an ordinal per event and serves no
/// aggregation (nobody groups by event id). On the 100k-event benchmark corpus, moving these
/// nine paths out of the columns took the store from 77 to 72 µs of CPU per event and from 0.46
/// to 0.42 of the raw size (`examples/ingest.rs`). They are found
/// by term, phrase, wildcard, range and exists queries like any keyword; `stats`, `timechart`
/// and `dc` over them are refused with an error naming the path. Below them, a (rare) object
/// value is indexed in `_unique` too.
pub const UNIQUE_PATHS: [&str; 9] = [
    "event.id",
    "event.ingested",
    "event.created",
    "event.start",
    "event.end",
    "k8s.audit.auditID",
    "k8s.audit.requestReceivedTimestamp",
    "k8s.audit.stageTimestamp",
    "k8s.audit.objectRef.resourceVersion",
];

/// The entry of [`UNIQUE_PATHS`] that `path` is, or is below.
pub(crate) fn unique_root(path: &str) -> Option<&'static str> {
    UNIQUE_PATHS.iter().copied().find(|unique| {
        path.strip_prefix(unique)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// Handles on the fields of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaFields {
    pub ts: Field,
    pub source: Field,
    pub fields: Field,
    pub text: Field,
    pub raw: Field,
    pub original: Field,
    pub has: Field,
    /// `_unique` (the last field: it was added after the others).
    pub unique: Field,
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
            .set_indexing_options(keyword_indexing.clone())
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
    let raw_indexing = TextFieldIndexing::default()
        .set_tokenizer(RAW_WORDS)
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    let raw = builder.add_text_field(
        RAW,
        TextOptions::default().set_indexing_options(raw_indexing),
    );
    let original = builder.add_bytes_field(ORIGINAL, STORED);
    // Filtered on, never scored: no field norms (they were a byte per event).
    let has = builder.add_text_field(
        HAS,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        ),
    );
    let unique = builder.add_json_field(
        UNIQUE,
        JsonObjectOptions::default()
            .set_indexing_options(keyword_indexing)
            .set_expand_dots_enabled(),
    );
    let schema = builder.build();
    (
        schema,
        SchemaFields {
            ts,
            source,
            fields,
            text,
            raw,
            original,
            has,
            unique,
        },
    )
}

/// Converts a chrono time to a tantivy one (microsecond precision). tantivy counts nanoseconds
/// in an `i64` (years 1678 to 2261): times outside are clamped to its ends, which keeps range
/// bounds meaningful (an `end` in the year 4000 still means "everything") instead of
/// overflowing (found by schemathesis: a search with `end` in year 4706 panicked).
pub(crate) fn to_tantivy_time(ts: DateTime<Utc>) -> tantivy::DateTime {
    let micros = ts
        .timestamp_micros()
        .clamp(i64::MIN / 1_000 + 1, i64::MAX / 1_000 - 1);
    tantivy::DateTime::from_timestamp_micros(micros)
}

/// Converts tantivy microseconds back to a chrono time.
pub(crate) fn micros_to_time(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

/// Builds the document of one event stamped at `ts`.
///
/// `record` is the event's WAL record ([`crowsnest_model::record`]) when the caller has it:
/// its JSON is the stored `_source` as it is. Without one (or for a record of plain JSON), the
/// event is serialized into `scratch`, a buffer reused from one event to the next (tantivy
/// copies the text into the document).
pub(crate) fn to_document(
    event: &Event,
    record: Option<&[u8]>,
    ts: DateTime<Utc>,
    schema: &SchemaFields,
    scratch: &mut Vec<u8>,
    router: &mut route::Router<'_>,
) -> Result<TantivyDocument, StoreError> {
    let parts = match record.map(record::parts).transpose() {
        Ok(parts) => parts.flatten(),
        Err(error) => return Err(StoreError::Index(format!("unreadable wal record: {error}"))),
    };
    let parts = match parts {
        Some(parts) => parts,
        None => {
            scratch.clear();
            record::encode(event, scratch)
                .map_err(|error| StoreError::Index(format!("cannot serialize event: {error}")))?;
            match record::parts(scratch) {
                Ok(Some(parts)) => parts,
                _ => return Err(StoreError::Index("cannot frame the event".to_owned())),
            }
        }
    };
    // tantivy copies every value into one buffer: sized for the event's JSON, its raw input
    // and their words' fields, it is allocated once instead of grown from 1 KiB.
    let mut doc = TantivyDocument::with_capacity(
        2 * parts.json.len() + 2 * parts.original.map_or(0, <[u8]>::len) + 1024,
    );
    doc.add_date(schema.ts, to_tantivy_time(ts));
    let source = std::str::from_utf8(parts.json)
        .map_err(|error| StoreError::Index(format!("serialized event is not UTF-8: {error}")))?;
    // What normalization added, where the raw input is JSON holding the rest (`delta.rs`).
    match parts
        .original
        .filter(|_| router.delta)
        .and_then(|original| delta::delta(event.as_map(), parts.json, original))
    {
        Some(delta) => doc.add_text(schema.source, delta),
        None => doc.add_text(schema.source, source),
    }
    if let Some(original) = parts.original {
        doc.add_bytes(schema.original, original);
    }
    let original = event.get(ecs::EVENT_ORIGINAL);
    let unique_leaves = if keywords::borrowable(event.as_map()) {
        // The flattened form below (rare) indexes an audit event whole.
        let twins = twins::holds(event);
        if twins {
            doc.add_text(schema.has, twins::MARKER);
        }
        let skip = keywords::Skip::root(twins);
        let (diverted, routed) = keywords::route(event.as_map(), skip, router);
        doc.add_field_value(
            schema.fields,
            keywords::Node::Root(event.as_map(), skip, &diverted),
        );
        let mut unique = keywords::unique_values(event.as_map(), twins);
        if !routed.is_empty() {
            unique.extend(group_leaves(routed));
        }
        unique
    } else {
        let (leaves, unique_leaves) = flattened(event, router);
        if !leaves.is_empty() {
            doc.add_field_value(schema.fields, &OwnedValue::Object(leaves));
        }
        unique_leaves
    };
    if !unique_leaves.is_empty() {
        // `_has` names each unique path present, since `_unique` has no column for `exists`.
        for (path, _) in &unique_leaves {
            if let Some(root) = unique_root(path) {
                doc.add_text(schema.has, root);
            }
        }
        doc.add_field_value(schema.unique, &OwnedValue::Object(unique_leaves));
    }
    let message = event.get(ecs::MESSAGE);
    for (text_path, field, value) in [
        (ecs::MESSAGE, schema.text, message),
        (ecs::EVENT_ORIGINAL, schema.raw, original),
    ] {
        match (text_path, value) {
            (_, None | Some(Value::Null)) => continue,
            (ecs::EVENT_ORIGINAL, Some(Value::String(raw))) => {
                let cut = match message {
                    Some(Value::String(message)) => raw_words::without_message(raw, message),
                    _ => None,
                };
                match cut {
                    Some(cut) => {
                        doc.add_text(field, cut);
                        doc.add_text(schema.has, MESSAGE_IN_RAW);
                    }
                    None => doc.add_text(field, raw),
                }
            }
            (_, Some(Value::String(text))) => doc.add_text(field, text),
            (_, Some(other)) => doc.add_text(field, other.to_string()),
        }
        doc.add_text(schema.has, text_path);
    }
    Ok(doc)
}

/// Rebuilds a hit: the stored event with its raw input put back at `event.original`.
pub(crate) fn hit_from_stored(source: &str, original: Option<&[u8]>) -> Result<Value, String> {
    let mut value: Value = match source.strip_prefix(delta::DELTA_V1) {
        Some(delta) => delta::rebuild(delta, original)?,
        None if source.starts_with('\u{1}') => {
            return Err("stored event of an unknown version (written by a newer build)".into())
        }
        None => {
            serde_json::from_str(source).map_err(|e| format!("stored event is not JSON: {e}"))?
        }
    };
    if let (Some(bytes), Value::Object(map)) = (original, &mut value) {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let mut event = Event::from_map(std::mem::take(map));
        event.set(ecs::EVENT_ORIGINAL, Value::String(text));
        *map = event.0;
    }
    Ok(value)
}

/// `(dotted path, leaf or array of leaves)` pairs of a JSON field's value.
pub(crate) type Leaves = Vec<(String, OwnedValue)>;

/// The `fields` value of an event as `(dotted path, leaf or array of leaves)` pairs, and the
/// `_unique` one: the form for events [`keywords::borrowable`] turns
/// down (more than [`MAX_LEAVES`] leaves, or very deep ones), which it cuts at [`MAX_LEAVES`]
/// and keeps two levels deep.
fn flattened(event: &Event, router: &mut route::Router<'_>) -> (Leaves, Leaves) {
    let mut leaves = Leaves::new();
    let mut unique_leaves = Leaves::new();
    let mut path = String::new();
    for (key, value) in event.as_map() {
        flatten(&mut path, key, value, &mut leaves, Some(&mut unique_leaves));
    }
    let mut unique_leaves = group_leaves(unique_leaves);
    let (kept, routed): (Leaves, Leaves) = leaves
        .into_iter()
        .partition(|(path, leaf)| router.columns(path, route::Leaf::from(leaf)));
    unique_leaves.extend(group_leaves(routed));
    (group_leaves(kept), unique_leaves)
}

/// Collects `(dotted path, leaf)` pairs below `value` into `out`, or into `unique` for
/// [`UNIQUE_PATHS`] when it is given.
fn flatten(
    path: &mut String,
    key: &str,
    value: &Value,
    out: &mut Leaves,
    unique: Option<&mut Leaves>,
) {
    let before = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    if path != ecs::TIMESTAMP && !is_text_path(path) {
        match unique {
            Some(unique) if UNIQUE_PATHS.contains(&path.as_str()) => {
                flatten_value(path, value, unique)
            }
            unique => flatten_below(path, value, out, unique),
        }
    }
    path.truncate(before);
}

/// [`flatten_value`], still routing [`UNIQUE_PATHS`] below `path` to `unique`.
fn flatten_below(
    path: &mut String,
    value: &Value,
    out: &mut Leaves,
    mut unique: Option<&mut Leaves>,
) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(path, key, inner, out, unique.as_deref_mut());
            }
        }
        Value::Array(items) => {
            for item in items {
                flatten_below(path, item, out, unique.as_deref_mut());
            }
        }
        leaf => flatten_value(path, leaf, out),
    }
}

/// Collects the leaves at and below `path` into `out`.
pub(crate) fn flatten_value(path: &mut String, value: &Value, out: &mut Leaves) {
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
                flatten(path, key, inner, out, None);
            }
            return;
        }
    };
    out.push((path.clone(), leaf));
}

/// Groups repeated paths (array elements) into arrays, keeping first-seen order.
pub(crate) fn group_leaves(leaves: Vec<(String, OwnedValue)>) -> Vec<(String, OwnedValue)> {
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

/// The analyzer of the raw input's words (`_raw`, registered as [`RAW_WORDS`]): the words of
/// its values, JSON escapes decoded (see `raw_words.rs`), cut and lowercased like
/// [`text_analyzer`]'s.
pub(crate) fn raw_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(raw_words::RawWordsTokenizer::default())
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

    #[test]
    fn times_beyond_tantivys_range_are_clamped_not_overflowed() {
        for text in [
            "0005-12-19T00:51:01Z",
            "4706-01-26T23:27:30Z",
            "2024-05-01T10:00:00Z",
        ] {
            let ts = DateTime::parse_from_rfc3339(text)
                .expect("time")
                .with_timezone(&Utc);
            let converted = to_tantivy_time(ts).into_timestamp_micros();
            if text.starts_with("2024") {
                assert_eq!(converted, ts.timestamp_micros());
            } else {
                assert_eq!(converted.signum(), ts.timestamp_micros().signum(), "{text}");
            }
        }
    }
    use super::*;
    use serde_json::json;

    fn leaves_of(value: Value) -> Vec<(String, OwnedValue)> {
        let event: Event = serde_json::from_value(value).expect("object");
        flattened(&event, &mut route::ColumnPaths::default().keep_all()).0
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
