//! Properties every decoder output must have, whatever the input: the bodies of the fuzz
//! targets (`fuzz/fuzz_targets/*.rs`) and of the property tests, kept here so that stable
//! `cargo test` exercises the same checks nightly-only `cargo fuzz` does.
//!
//! Each check decodes the input itself and returns `Err(description)` on the first violated
//! property; callers turn that into a panic (fuzzer) or a test failure (proptest).

use crowsnest_model::{ecs, parse_timestamp, Event};

use crate::{decode_k8s_audit, decode_ndjson, ndjson::is_blank, Decoded, Limits};

/// Limits small enough that fuzz inputs reach them.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_line_bytes: 4096,
        max_depth: 16,
        max_field_bytes: 64,
    }
}

/// Decodes `body` as NDJSON (with each forced `source` in turn) and checks:
///
/// * every error names a non-blank line within the body;
/// * every event carries `event.dataset`, `event.module`, and an `event.original` that is a
///   verbatim slice of the body;
/// * `@timestamp`, when present, is normalized RFC 3339 UTC with microseconds;
/// * when no line can be a batch (no `logEvents`/`records` key, no `\u` escapes), each
///   non-blank line yields exactly one event or one error.
pub fn check_ndjson(body: &[u8], limits: &Limits) -> Result<(), String> {
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let non_blank = lines
        .iter()
        .enumerate()
        .filter(|(index, line)| !is_blank(strip(line, *index)))
        .count();
    let may_batch =
        contains(body, b"logEvents") || contains(body, b"records") || contains(body, b"\\u");
    let mut sources: Vec<Option<&str>> = vec![None, Some("some-app")];
    sources.extend(crate::known_sources().iter().map(|s| Some(*s)));
    for source in sources {
        let decoded = decode_ndjson(body, source, limits);
        for error in &decoded.errors {
            let Some(line) = error.line.checked_sub(1).and_then(|i| lines.get(i)) else {
                return Err(format!(
                    "error names line {} of {}",
                    error.line,
                    lines.len()
                ));
            };
            if is_blank(strip(line, error.line - 1)) {
                return Err(format!("error names blank line {}", error.line));
            }
        }
        check_events(&decoded, body)?;
        let total = decoded.events.len() + decoded.errors.len();
        if !may_batch && total != non_blank {
            return Err(format!(
                "source {source:?}: {} events + {} errors for {non_blank} non-blank lines",
                decoded.events.len(),
                decoded.errors.len()
            ));
        }
    }
    Ok(())
}

/// Decodes `body` as an audit webhook body and checks: a whole-body error has a message;
/// item errors are numbered from 1; every event has `event.dataset: kubernetes.audit`, a
/// normalized `@timestamp` if any, and an `event.original` that is a verbatim slice of the body.
pub fn check_k8s_audit(body: &[u8], limits: &Limits) -> Result<(), String> {
    match decode_k8s_audit(body, limits) {
        Err(error) => {
            if error.to_string().is_empty() {
                return Err("empty error message".to_string());
            }
            Ok(())
        }
        Ok(decoded) => {
            if decoded.errors.iter().any(|e| e.line == 0) {
                return Err("item error numbered 0".to_string());
            }
            for event in &decoded.events {
                if event.get_str(ecs::EVENT_DATASET) != Some("kubernetes.audit") {
                    return Err(format!(
                        "audit event with dataset {:?}",
                        event.get(ecs::EVENT_DATASET)
                    ));
                }
            }
            check_events(&decoded, body)
        }
    }
}

fn check_events(decoded: &Decoded, body: &[u8]) -> Result<(), String> {
    for event in &decoded.events {
        check_event(event, body)?;
    }
    Ok(())
}

fn check_event(event: &Event, body: &[u8]) -> Result<(), String> {
    let Some(original) = event.get_str(ecs::EVENT_ORIGINAL) else {
        return Err("event without `event.original`".to_string());
    };
    // Either a slice of the body, or a string the line carried itself (then its JSON form is).
    let carried = serde_json::to_string(original)
        .ok()
        .is_some_and(|quoted| contains(body, quoted.trim_matches('"').as_bytes()));
    if !contains(body, original.as_bytes()) && !carried {
        return Err(format!(
            "`event.original` is not a slice of the body: {original:?}"
        ));
    }
    for field in [ecs::EVENT_DATASET, ecs::EVENT_MODULE] {
        if event.get(field).is_none() {
            return Err(format!("event without `{field}`"));
        }
    }
    if let Some(time) = event.get(ecs::TIMESTAMP) {
        let normalized = time
            .as_str()
            .is_some_and(|s| s.len() == 27 && s.ends_with('Z') && parse_timestamp(time).is_some());
        if !normalized {
            return Err(format!("`@timestamp` not normalized: {time}"));
        }
    }
    Ok(())
}

fn strip(line: &[u8], index: usize) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if index == 0 {
        line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
    } else {
        line
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
