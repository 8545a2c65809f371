//! Helpers every decoder shares: JSON records through the registry, truncation. The last
//! step of every decoder is [`crowsnest_normalize::finish`], the one place that decides what
//! `event.original` is.

use std::borrow::Cow;

use base64::Engine;
use crowsnest_model::{ecs, Event};
use crowsnest_normalize::registry::{parse_lines, Source};
use crowsnest_normalize::{Decoded, LineError};
use serde_json::{Map, Value};

use crate::limits::{decompress, Encoding};
use crate::Limits;

/// Maps one JSON record (one object's text) to *all* the events it holds, with
/// `crowsnest-normalize`'s per-line detection: a Kubernetes audit event (native or managed)
/// gets the audit mapping; an audit `EventList`, a CloudWatch Logs subscription batch
/// (`logEvents`, also gzip'd and base64'd as a Lambda's `awslogs.data`) or an Azure `records`
/// batch yields one event per item; anything else is kept as it is with timestamp and message
/// aliases resolved. `dataset` names generic events.
///
/// An event that is the whole record has no `event.original` yet (the caller sets it, often
/// to a larger envelope, with [`crowsnest_normalize::finish`]); an event split from a batch keeps its own
/// item's exact text. Items that do not decode are [`LineError`]s numbered 1 (the record),
/// their field naming the item (`items[2].verb`, `logEvents[1].message`); the good items
/// still decode. A record that holds no events (an empty `EventList`, a CloudWatch
/// `CONTROL_MESSAGE`) yields neither events nor errors.
pub(crate) fn json_text(text: &[u8], dataset: &str, limits: &Limits) -> Decoded {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Decoded {
            events: Vec::new(),
            errors: vec![LineError::new(1, "expected a JSON object, found nothing")],
        };
    }
    if let Some(unwrapped) = awslogs_data(text, limits) {
        return match unwrapped {
            Ok(inner) => prefixed(json_record(&inner, dataset, limits), "awslogs.data"),
            Err(reason) => Decoded {
                events: Vec::new(),
                errors: vec![LineError {
                    line: 1,
                    field: Some("awslogs.data".to_string()),
                    reason,
                }],
            },
        };
    }
    json_record(text, dataset, limits)
}

fn json_record(text: &[u8], dataset: &str, limits: &Limits) -> Decoded {
    let source = if dataset.is_empty() {
        Source::from_name(None)
    } else {
        Source::Detect { dataset }
    };
    // Normalize reads one record per line; outside strings a newline is only whitespace
    // (inside them JSON allows no raw newline), so a pretty-printed record stays one record.
    let one_line: Cow<'_, [u8]> = if text.contains(&b'\n') {
        Cow::Owned(
            text.iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    };
    let mut decoded = parse_lines(&one_line, source, &limits.decode);
    let whole = std::str::from_utf8(&one_line).ok().map(str::trim);
    for event in &mut decoded.events {
        let is_whole =
            whole.is_some() && event.get_str(ecs::EVENT_ORIGINAL).map(str::trim) == whole;
        if is_whole {
            if let Some(Value::Object(meta)) = event.0.get_mut("event") {
                meta.remove("original");
            }
        }
    }
    decoded
}

/// Puts `prefix` in front of the fields of `decoded`'s errors.
fn prefixed(mut decoded: Decoded, prefix: &str) -> Decoded {
    for error in &mut decoded.errors {
        error.field = Some(match error.field.take() {
            Some(field) => format!("{prefix}.{field}"),
            None => prefix.to_string(),
        });
    }
    decoded
}

/// The CloudWatch Logs data a Lambda subscription receives, `{"awslogs": {"data": "<base64
/// of the gzip'd subscription batch>"}}`, decoded (capped by
/// [`Limits::max_decompressed_bytes`]); `None` when `text` is not that shape.
fn awslogs_data(text: &[u8], limits: &Limits) -> Option<Result<Vec<u8>, String>> {
    const KEY: &[u8] = b"\"awslogs\"";
    if !text.windows(KEY.len()).any(|w| w == KEY) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Lambda {
        awslogs: AwsLogs,
    }
    #[derive(serde::Deserialize)]
    struct AwsLogs {
        data: String,
    }
    let lambda: Lambda = serde_json::from_slice(text).ok()?;
    let compressed =
        match base64::engine::general_purpose::STANDARD.decode(lambda.awslogs.data.trim()) {
            Ok(bytes) => bytes,
            Err(error) => {
                return Some(Err(format!(
                    "expected base64 (gzip'd CloudWatch Logs data): {error}"
                )))
            }
        };
    Some(
        decompress(&compressed, Encoding::Gzip, limits.max_decompressed_bytes)
            .map_err(|error| format!("{error} (gzip'd CloudWatch Logs data)")),
    )
}

/// The events of one record, by the limits of one request: at most `room` of them are kept,
/// the rest become errors (never dropped without a word).
pub(crate) fn within_room(mut decoded: Decoded, room: usize, limits: &Limits) -> Decoded {
    if decoded.events.len() > room {
        let over = decoded.events.len() - room;
        decoded.events.truncate(room);
        decoded.errors.push(LineError::new(
            1,
            format!(
                "expected at most {} events per request: {over} event(s) of this record were refused",
                limits.max_events
            ),
        ));
    }
    decoded
}

/// Maps a JSON object (already parsed) the way [`json_text`] maps its text.
pub(crate) fn json_object(object: &Map<String, Value>, dataset: &str, limits: &Limits) -> Decoded {
    match serde_json::to_vec(object) {
        Ok(text) => json_text(&text, dataset, limits),
        Err(error) => Decoded {
            events: Vec::new(),
            errors: vec![LineError::new(1, error.to_string())],
        },
    }
}

/// Replaces the generic decoder's `event.module: ndjson` with the input's own module.
pub(crate) fn claim_module(event: &mut Event, module: &str) {
    if event.get_str(ecs::EVENT_MODULE) == Some("ndjson") {
        event.set(ecs::EVENT_MODULE, Value::String(module.to_string()));
    }
}

/// A valid `event.dataset`-like name: at most 64 letters, digits, `_`, `-` or `.`.
pub(crate) fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub(crate) use crowsnest_normalize::too_deep;

#[cfg(test)]
mod tests {
    use super::*;
    use crowsnest_normalize::truncate_strings;
    use serde_json::json;

    #[test]
    fn long_strings_are_cut_at_char_boundaries() {
        let mut event = json!({"a": {"b": "ééé"}, "c": ["xxxxx"], "d": "ok"});
        let map = event.as_object_mut().expect("object");
        truncate_strings(map, 3);
        assert_eq!(map["a"]["b"], json!("é"));
        assert_eq!(map["c"], json!(["xxx"]));
        assert_eq!(map["d"], json!("ok"));
        assert_eq!(map["crowsnest"]["truncated"], json!(["a.b", "c"]));
    }

    #[test]
    fn json_text_detects_audit_events_and_keeps_others() {
        let limits = Limits::default();
        let audit = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"1","verb":"get","user":{"username":"bob"},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;
        let decoded = json_text(audit, "logs-app", &limits);
        assert_eq!(decoded.events.len(), 1);
        let event = &decoded.events[0];
        assert_eq!(event.get_str("event.dataset"), Some("kubernetes.audit"));
        assert_eq!(event.get_str("event.original"), None, "the caller sets it");
        let plain = json_text(br#"{"msg":"hi"}"#, "logs-app", &limits);
        assert_eq!(plain.events[0].get_str("event.dataset"), Some("logs-app"));
        assert_eq!(plain.events[0].get_str("message"), Some("hi"));
        let bad = json_text(b"[1]", "x", &limits);
        assert_eq!((bad.events.len(), bad.errors.len()), (0, 1));
        assert_eq!(json_text(b"  ", "x", &limits).errors.len(), 1);
    }

    #[test]
    fn json_text_splits_lists_and_keeps_each_item_text() {
        let limits = Limits::default();
        let list = br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[
            {"auditID":"1","verb":"get","user":{"username":"bob"}},
            {"auditID":"2","verb":"list","user":{"username":"eve"}}, 7]}"#;
        let decoded = json_text(list, "x", &limits);
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(
            decoded.events[1].get_str("event.original"),
            Some(r#"{"auditID":"2","verb":"list","user":{"username":"eve"}}"#)
        );
        assert_eq!(decoded.errors.len(), 1);
        assert_eq!(decoded.errors[0].field.as_deref(), Some("items[2]"));
    }

    #[test]
    fn lambda_awslogs_data_is_unpacked_within_the_cap() {
        use std::io::Write;
        let batch = json!({"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "/aws/lambda/f",
            "logStream": "s", "logEvents": [
                {"id": "a", "timestamp": 1_714_557_600_000u64, "message": "one"},
                {"id": "b", "timestamp": 1_714_557_601_000u64, "message": "two"}]});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(batch.to_string().as_bytes()).expect("gzip");
        let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"));
        let text = json!({"awslogs": {"data": data}}).to_string();
        let decoded = json_text(text.as_bytes(), "x", &Limits::default());
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        let messages: Vec<_> = decoded
            .events
            .iter()
            .map(|e| e.get_str("message"))
            .collect();
        assert_eq!(messages, vec![Some("one"), Some("two")]);
        let tight = Limits {
            max_decompressed_bytes: 10,
            ..Limits::default()
        };
        let capped = json_text(text.as_bytes(), "x", &tight);
        assert_eq!(capped.events.len(), 0);
        assert_eq!(capped.errors[0].field.as_deref(), Some("awslogs.data"));
        let garbage = json_text(br#"{"awslogs":{"data":"%%%"}}"#, "x", &Limits::default());
        assert_eq!(garbage.errors.len(), 1);
    }
}
