//! Size and shape limits, and the checks that enforce them before and after parsing.
//!
//! Every decoder runs untrusted bytes through the same three guards:
//!
//! 1. [`check_line`]: the line is at most [`Limits::max_line_bytes`] long and valid UTF-8;
//! 2. [`check_depth`]: a byte scan (no allocation) proves the JSON nests at most
//!    [`Limits::max_depth`] levels before `serde_json` recurses into it;
//! 3. [`truncate_strings`]: after mapping, string values longer than
//!    [`Limits::max_field_bytes`] are cut at a character boundary and their paths recorded in
//!    `crowsnest.truncated`, so one huge field cannot bloat the index.
//!
//! Together they bound the memory a decoder uses to a small multiple of the body size.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Limits applied to every decoded line or item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted line (NDJSON) or item (`EventList` item), in bytes. Default 1 MiB.
    pub max_line_bytes: usize,
    /// Deepest accepted nesting of JSON arrays and objects. Default 64.
    pub max_depth: usize,
    /// Longest string value kept whole, in bytes; longer ones are truncated. Default 32 KiB.
    pub max_field_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: 1024 * 1024,
            max_depth: 64,
            max_field_bytes: 32 * 1024,
        }
    }
}

/// Checks a line's length and encoding, returning it as text.
pub(crate) fn check_line<'a>(line: &'a [u8], limits: &Limits) -> Result<&'a str, String> {
    if line.len() > limits.max_line_bytes {
        return Err(format!(
            "expected at most {} bytes per line, found {} bytes",
            limits.max_line_bytes,
            line.len()
        ));
    }
    std::str::from_utf8(line).map_err(|error| {
        format!(
            "expected UTF-8 text, found invalid UTF-8 at byte {}",
            error.valid_up_to()
        )
    })
}

/// Whether JSON text nests arrays/objects deeper than `max_depth` (a byte scan that skips
/// strings: run it before `serde_json` recurses into untrusted input).
pub fn too_deep(text: &[u8], max_depth: usize) -> bool {
    check_depth(text, max_depth).is_err()
}

/// Returns `Err(())` if the JSON text nests arrays/objects deeper than `max_depth`.
///
/// A linear scan that tracks strings and escapes, so brackets inside strings do not count.
/// It does not validate the JSON; the parser does that afterwards. Inside a string it jumps
/// to the next quote or backslash with `memchr` (most of an event's bytes are string
/// contents), which made the scan about five times faster than looking at every byte.
pub(crate) fn check_depth(text: &[u8], max_depth: usize) -> Result<(), ()> {
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = text.get(at) {
        at += 1;
        match byte {
            b'"' => at = string_end(text, at),
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(());
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Index just after the quote closing the string whose contents start at `from` (the end of
/// `text` when it is never closed); a backslash escapes the byte after it.
fn string_end(text: &[u8], mut from: usize) -> usize {
    loop {
        let Some(rest) = text.get(from..) else {
            return text.len();
        };
        match memchr::memchr2(b'"', b'\\', rest) {
            None => return text.len(),
            Some(i) if rest[i] == b'"' => return from + i + 1,
            Some(i) => from += i + 2,
        }
    }
}

/// The reason given when [`check_depth`] fails.
pub(crate) fn too_deep_reason(max_depth: usize) -> String {
    format!("expected JSON nested at most {max_depth} levels deep")
}

/// Parses one JSON text after the depth guard, as a [`Value`].
pub(crate) fn parse_json(text: &str, limits: &Limits) -> Result<Value, String> {
    if check_depth(text.as_bytes(), limits.max_depth).is_err() {
        return Err(too_deep_reason(limits.max_depth));
    }
    serde_json::from_str(text).map_err(|error| format!("expected valid JSON: {error}"))
}

/// Truncates every string value longer than `max_field_bytes` (at a character boundary) and
/// records the dotted paths (array indexes left out) in `crowsnest.truncated`.
/// Cuts every string value longer than `max_field_bytes` (at a character boundary) and lists the
/// dotted paths it cut in `crowsnest.truncated`; other decoders (crates/ingest) use it too.
pub fn truncate_strings(event: &mut Map<String, Value>, max_field_bytes: usize) {
    // Almost no event has a string this long: find that out without building paths.
    if !event
        .values()
        .any(|value| has_long_string(value, max_field_bytes))
    {
        return;
    }
    let mut truncated = BTreeSet::new();
    let mut path = String::new();
    for (key, value) in event.iter_mut() {
        walk(value, key, &mut path, max_field_bytes, &mut truncated);
    }
    if truncated.is_empty() {
        return;
    }
    let paths: Vec<Value> = truncated.into_iter().map(Value::String).collect();
    let mut crowsnest = match event.remove("crowsnest") {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    crowsnest.insert("truncated".to_string(), Value::Array(paths));
    event.insert("crowsnest".to_string(), Value::Object(crowsnest));
}

fn has_long_string(value: &Value, max: usize) -> bool {
    match value {
        Value::String(text) => text.len() > max,
        Value::Array(items) => items.iter().any(|item| has_long_string(item, max)),
        Value::Object(map) => map.values().any(|item| has_long_string(item, max)),
        _ => false,
    }
}

fn walk(
    value: &mut Value,
    key: &str,
    path: &mut String,
    max: usize,
    truncated: &mut BTreeSet<String>,
) {
    let parent_len = path.len();
    if !key.is_empty() {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    }
    match value {
        Value::String(text) if text.len() > max => {
            let mut cut = max;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            truncated.insert(path.clone());
        }
        Value::Array(items) => {
            for item in items {
                walk(item, "", path, max, truncated);
            }
        }
        Value::Object(map) => {
            for (child, item) in map.iter_mut() {
                walk(item, child, path, max, truncated);
            }
        }
        _ => {}
    }
    path.truncate(parent_len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(check_depth(br#"{"a":[{"b":1}]}"#, 3).is_ok());
        assert!(check_depth(br#"{"a":[{"b":1}]}"#, 2).is_err());
        assert!(check_depth(br#"{"a":"[[[[[[\"[[["}"#, 1).is_ok());
    }

    /// The byte-at-a-time scan `check_depth` replaced, kept as the reference.
    fn depth_by_bytes(text: &[u8], max_depth: usize) -> Result<(), ()> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &byte in text {
            if in_string {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > max_depth {
                        return Err(());
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn depth_scan_agrees_with_the_byte_at_a_time_scan(
            text in proptest::collection::vec(proptest::sample::select(
                b"{}[]\"\\ax".to_vec()), 0..64),
            max in 0usize..6,
        ) {
            proptest::prop_assert_eq!(check_depth(&text, max), depth_by_bytes(&text, max));
        }
    }

    #[test]
    fn depth_scan_handles_escapes_and_unclosed_strings() {
        assert!(check_depth(br#"{"a\\":[[1]]}"#, 3).is_ok());
        assert!(check_depth(br#"{"a\\":[[1]]}"#, 2).is_err());
        assert!(check_depth(br#"{"a\"[[[[":1}"#, 1).is_ok());
        assert!(check_depth(br#"{"unclosed [[[["#, 1).is_ok());
        assert!(check_depth(b"{\"ends with a backslash\\", 1).is_ok());
    }

    #[test]
    fn truncation_cuts_at_char_boundaries_and_records_paths() {
        let mut event = json!({
            "a": {"b": "ééé", "c": ["xxxxx", "y"]},
            "short": "ok",
        });
        let map = event.as_object_mut().expect("object");
        truncate_strings(map, 3);
        assert_eq!(map["a"]["b"], json!("é"));
        assert_eq!(map["a"]["c"], json!(["xxx", "y"]));
        assert_eq!(map["short"], json!("ok"));
        assert_eq!(map["crowsnest"]["truncated"], json!(["a.b", "a.c"]));
    }

    #[test]
    fn line_checks_report_length_and_encoding() {
        let limits = Limits {
            max_line_bytes: 4,
            ..Limits::default()
        };
        assert!(check_line(b"12345", &limits)
            .expect_err("too long")
            .contains("at most 4 bytes"));
        assert!(check_line(b"a\xffb", &limits)
            .expect_err("bad utf-8")
            .contains("at byte 1"));
        assert_eq!(check_line(b"abc", &limits), Ok("abc"));
    }
}
