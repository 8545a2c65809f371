//! Rendering helpers shared by the pages: values, cut long text, flattened events, links.

use crowsnest_query::{Filter, Query};
use maud::{html, Markup};
use serde_json::Value;

/// Longest value shown whole; past it the rest is cut and counted ("N bytes more").
pub(crate) const MAX_VALUE_BYTES: usize = 8 * 1024;

/// A JSON value as text: strings as they are, the rest as JSON.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `text` cut at `max` bytes (on a character boundary), and how many bytes were cut.
pub(crate) fn cut(text: &str, max: usize) -> (&str, usize) {
    if text.len() <= max {
        return (text, 0);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], text.len() - end)
}

/// A value, cut at [`MAX_VALUE_BYTES`] with the count of what was left out.
pub(crate) fn value(text: &str) -> Markup {
    let (shown, more) = cut(text, MAX_VALUE_BYTES);
    html! {
        (shown)
        @if more > 0 { " " span.more { "… " (more) " bytes more" } }
    }
}

/// An event's fields as `(dotted.path, value)`, sorted by path; arrays of scalars give one
/// pair per element.
pub(crate) fn flatten(event: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>, depth: usize) {
        match value {
            Value::Object(map) if depth < 16 => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out, depth + 1);
                }
            }
            Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
                for item in items {
                    out.push((prefix.to_string(), item.clone()));
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    let mut out = Vec::new();
    walk("", event, &mut out, 0);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A field of an event by dotted path (`kubernetes.pod.name`).
pub(crate) fn field<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = event.get(path) {
        return Some(v);
    }
    let mut current = event;
    for part in path.split('.') {
        current = current.get(part)?;
    }
    Some(current)
}

/// The query with `field:value` added (ANDed), as canonical query text; `None` when the
/// query does not parse.
pub(crate) fn with_filter(query: &str, field: &str, value: &str) -> Option<String> {
    let mut parsed: Query = crowsnest_query::parse(query).ok()?;
    let term = Filter::Term {
        field: Some(field.to_string()),
        value: value.to_string(),
    };
    parsed.filter = match parsed.filter {
        Filter::All => term,
        Filter::And(mut parts) => {
            parts.push(term);
            Filter::And(parts)
        }
        other => Filter::And(vec![other, term]),
    };
    Some(parsed.to_string())
}

/// A URL of this site with query parameters (empty values left out).
pub(crate) fn link(path: &str, params: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if kept.is_empty() {
        return path.to_string();
    }
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(kept).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character_boundary_and_counted() {
        let text = "é".repeat(5000); // 10 000 bytes
        let (shown, more) = cut(&text, MAX_VALUE_BYTES);
        assert_eq!(shown.len(), MAX_VALUE_BYTES);
        assert_eq!(more, 10_000 - MAX_VALUE_BYTES);
        let html = value(&text).into_string();
        assert!(html.contains(&format!("{} bytes more", 10_000 - MAX_VALUE_BYTES)));
        assert_eq!(cut("short", 10), ("short", 0));
    }

    #[test]
    fn a_clicked_value_becomes_a_filter_that_parses_back() {
        for value in [
            "alice",
            "system:serviceaccount:kube-system:x",
            "a \"quoted\" (value) OR *",
            "<script>",
        ] {
            let text = with_filter("verb:get OR verb:list", "user.name", value).expect("parses");
            let parsed = crowsnest_query::parse(&text).expect("reads back");
            let Filter::And(parts) = parsed.filter else {
                panic!("{text}")
            };
            assert_eq!(
                parts[1],
                Filter::Term {
                    field: Some("user.name".into()),
                    value: value.into()
                },
                "{text}"
            );
        }
        assert_eq!(with_filter("", "a", "b").as_deref(), Some("a:b"));
        assert_eq!(with_filter("(unclosed", "a", "b"), None);
    }

    #[test]
    fn events_flatten_to_sorted_paths() {
        let event = serde_json::json!({"b": {"c": 1, "a": ["x", "y"]}, "@timestamp": "t"});
        let paths: Vec<_> = flatten(&event)
            .into_iter()
            .map(|(p, v)| format!("{p}={}", text(&v)))
            .collect();
        assert_eq!(paths, ["@timestamp=t", "b.a=x", "b.a=y", "b.c=1"]);
        assert_eq!(field(&event, "b.c"), Some(&serde_json::json!(1)));
    }
}
