//! Falco alerts: Falco's own `http_output` (one JSON alert per request) and falcosidekick's
//! webhook output (the same object), also accepted as a JSON array or NDJSON: every alert of
//! an array or of the lines becomes its own event, keeping its own exact text as
//! `event.original`.
//!
//! This module only splits the body; each alert is mapped by the registry's Falco parser
//! ([`crowsnest_normalize::falco`], which documents the fields), the same one the node agent
//! uses for Falco's output file.

use crowsnest_normalize::falco::Falco;
use crowsnest_normalize::registry::{parse_record, Source};
use crowsnest_normalize::{Decoded, LineError};
use serde_json::value::RawValue;

use crate::common::too_deep;
use crate::{IngestError, Limits};

/// Decodes a Falco body: one alert object, an array of them, or one per line.
///
/// # Errors
///
/// [`IngestError::Empty`] for an empty body, [`IngestError::Invalid`] when it is too deep.
pub fn decode(body: &[u8], limits: &Limits) -> Result<Decoded, IngestError> {
    const EXPECTED: &str = "a Falco alert JSON object, an array of them, or one per line";
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(IngestError::Empty { expected: EXPECTED });
    }
    if too_deep(trimmed, limits.decode.max_depth) {
        return Err(IngestError::invalid(
            EXPECTED,
            format!("JSON nested deeper than {} levels", limits.decode.max_depth),
        ));
    }
    let mut decoded = Decoded::default();
    let push = |number: usize, text: &[u8], decoded: &mut Decoded| {
        if decoded.events.len() >= limits.max_events {
            decoded.errors.push(LineError::new(
                number,
                format!("expected at most {} alerts", limits.max_events),
            ));
            return;
        }
        parse_record(text, number, Source::Named(&Falco), &limits.decode, decoded);
    };
    let array = trimmed
        .starts_with(b"[")
        .then(|| serde_json::from_slice::<Vec<&RawValue>>(trimmed).ok())
        .flatten();
    if let Some(items) = array {
        // Each alert of an array keeps its own exact text.
        for (index, item) in items.into_iter().enumerate() {
            push(index + 1, item.get().as_bytes(), &mut decoded);
        }
        return Ok(decoded);
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_ok() {
        push(1, trimmed, &mut decoded);
        return Ok(decoded);
    }
    for (index, line) in trimmed.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if !line.is_empty() {
            push(index + 1, line, &mut decoded);
        }
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_of_one_alert_an_array_or_lines() {
        let alert =
            r#"{"output":"o","priority":"Warning","rule":"r","time":"2024-05-01T10:00:00Z"}"#;
        let one = decode(alert.as_bytes(), &Limits::default()).expect("decodes");
        assert_eq!(one.events[0].get_str("event.original"), Some(alert));
        let array = format!("[{alert}, 42,\n {alert}]");
        let decoded = decode(array.as_bytes(), &Limits::default()).expect("decodes");
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(decoded.events[1].get_str("event.original"), Some(alert));
        assert_eq!(decoded.errors[0].line, 2);
    }

    #[test]
    fn bad_alerts_fail_alone() {
        let body = b"{\"rule\":\"a\",\"time\":\"2024-05-01T10:00:00Z\"}\n{\"rule\":\"b\",\"time\":\"yesterday\"}\nnope\n{\"time\":\"2024-05-01T10:00:00Z\"}\n";
        let decoded = decode(body, &Limits::default()).expect("decodes");
        assert_eq!(decoded.events.len(), 1);
        let lines: Vec<usize> = decoded.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert!(decode(b"  ", &Limits::default()).is_err());
    }
}
