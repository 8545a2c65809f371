//! Helpers every decoder shares: the last step (`finish`), generic JSON objects, truncation.

use crowsnest_model::{ecs, Event};
use crowsnest_normalize::Decoded;
use serde_json::{Map, Value};

use crate::Limits;

/// Applies the field-size limit and records the original text: the last step of every
/// decoder.
pub(crate) fn finish(mut event: Event, original: &str, limits: &Limits) -> Event {
    truncate_strings(&mut event.0, limits.decode.max_field_bytes);
    event.set(ecs::EVENT_ORIGINAL, Value::String(original.to_string()));
    event
}

/// Maps one JSON text with `crowsnest-normalize`'s per-line detection: Kubernetes audit
/// events (native or managed) get the audit mapping, anything else is kept as it is with
/// timestamp and message aliases resolved. `dataset` names generic events.
pub(crate) fn json_text(text: &[u8], dataset: &str, limits: &Limits) -> Result<Event, String> {
    let source = if crowsnest_normalize::known_sources().contains(&dataset) {
        None
    } else {
        Some(dataset)
    };
    let Decoded { mut events, errors } =
        crowsnest_normalize::decode_ndjson(text, source, &limits.decode);
    if let Some(error) = errors.into_iter().next() {
        return Err(error.reason);
    }
    match events.len() {
        1 => Ok(events.remove(0)),
        0 => Err("expected a JSON object, found nothing".to_string()),
        _ => Ok(events.remove(0)),
    }
}

/// Maps a JSON object (already parsed) the way [`json_text`] maps its text.
pub(crate) fn json_object(
    object: &Map<String, Value>,
    dataset: &str,
    limits: &Limits,
) -> Result<Event, String> {
    let text = serde_json::to_vec(object).map_err(|e| e.to_string())?;
    json_text(&text, dataset, limits)
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

pub(crate) use crowsnest_normalize::{too_deep, truncate_strings};

#[cfg(test)]
mod tests {
    use super::*;
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
        let event = json_text(audit, "logs-app", &limits).expect("audit");
        assert_eq!(event.get_str("event.dataset"), Some("kubernetes.audit"));
        let plain = json_text(br#"{"msg":"hi"}"#, "logs-app", &limits).expect("generic");
        assert_eq!(plain.get_str("event.dataset"), Some("logs-app"));
        assert_eq!(plain.get_str("message"), Some("hi"));
        assert!(json_text(b"[1]", "x", &limits).is_err());
    }
}
