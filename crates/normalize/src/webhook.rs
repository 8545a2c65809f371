//! The audit webhook body: what kube-apiserver's webhook backend posts.
//!
//! The backend batches events into an `audit.k8s.io/v1` `EventList`
//! (`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[...]}`; the
//! items carry no `kind`/`apiVersion` of their own). A single `Event` object is accepted too,
//! as are objects without `apiVersion` that carry the audit event's fields.
//!
//! The body is checked as a whole (UTF-8, nesting depth, JSON, `kind`) and fails with a
//! [`DecodeError`] if it is not one of those. Items are then decoded one by one: each keeps
//! its exact text (borrowed through [`RawValue`], never re-serialized) as `event.original`,
//! and a bad item becomes a [`LineError`] numbered from 1 while the others still decode.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{describe, DecodeError, FieldError, LineError};
use crate::k8s_audit::{looks_like_audit_event, map_audit_event, quoted, Origin};
use crate::limits::{check_depth, parse_json, Limits};
use crate::{finish, Decoded};

/// The top level of a webhook body: only what tells an `EventList` from an `Event`.
#[derive(Deserialize)]
struct Envelope<'a> {
    kind: Option<Value>,
    #[serde(rename = "apiVersion")]
    api_version: Option<Value>,
    #[serde(borrow)]
    items: Option<&'a RawValue>,
}

/// Decodes a webhook body: an `EventList` or a single `Event`.
pub(crate) fn decode_body(body: &[u8], limits: &Limits) -> Result<Decoded, DecodeError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|error| DecodeError::InvalidUtf8 {
        offset: error.valid_up_to(),
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    // One level more than an item may use: the list itself.
    if check_depth(text.as_bytes(), limits.max_depth.saturating_add(1)).is_err() {
        return Err(DecodeError::TooDeep {
            max_depth: limits.max_depth,
        });
    }
    let raw: &RawValue = serde_json::from_str(text).map_err(|error| DecodeError::InvalidJson {
        reason: error.to_string(),
    })?;
    if !raw.get().starts_with('{') {
        let value: Value =
            serde_json::from_str(raw.get()).map_err(|error| DecodeError::InvalidJson {
                reason: error.to_string(),
            })?;
        return Err(DecodeError::NotAuditEvent {
            found: describe(&value),
        });
    }
    let envelope: Envelope<'_> =
        serde_json::from_str(text).map_err(|error| DecodeError::InvalidJson {
            reason: error.to_string(),
        })?;
    if let Some(version) = &envelope.api_version {
        if !version
            .as_str()
            .is_some_and(|v| v.starts_with("audit.k8s.io/"))
        {
            return Err(DecodeError::NotAuditEvent {
                found: format!("`apiVersion` {}", quoted(version)),
            });
        }
    }
    if envelope.kind.as_ref().and_then(Value::as_str) == Some("EventList") {
        return decode_list(envelope.items, limits);
    }
    let mut decoded = Decoded::default();
    let value: Value = serde_json::from_str(text).map_err(|error| DecodeError::InvalidJson {
        reason: error.to_string(),
    })?;
    let Value::Object(obj) = value else {
        return Err(DecodeError::NotAuditEvent {
            found: "not an object".to_string(),
        });
    };
    let is_event = envelope.kind.as_ref().and_then(Value::as_str) == Some("Event")
        || looks_like_audit_event(&obj);
    if !is_event {
        let found = match &envelope.kind {
            Some(kind) => format!("`kind` {}", quoted(kind)),
            None => "an object without `kind`".to_string(),
        };
        return Err(DecodeError::NotAuditEvent { found });
    }
    push_item(&mut decoded, 1, obj, text, limits);
    Ok(decoded)
}

fn decode_list(items: Option<&RawValue>, limits: &Limits) -> Result<Decoded, DecodeError> {
    let mut decoded = Decoded::default();
    let Some(items) = items else {
        return Ok(decoded);
    };
    let items: Option<Vec<&RawValue>> =
        serde_json::from_str(items.get()).map_err(|_| DecodeError::NotAuditEvent {
            found: "an `EventList` whose `items` is not an array".to_string(),
        })?;
    for (index, item) in items.unwrap_or_default().into_iter().enumerate() {
        let number = index + 1;
        let item_text = item.get();
        if item_text.len() > limits.max_line_bytes {
            decoded.errors.push(LineError::new(
                number,
                format!(
                    "expected at most {} bytes per item, found {} bytes",
                    limits.max_line_bytes,
                    item_text.len()
                ),
            ));
            continue;
        }
        match parse_json(item_text, limits) {
            Ok(Value::Object(obj)) => push_item(&mut decoded, number, obj, item_text, limits),
            Ok(other) => decoded.errors.push(LineError::new(
                number,
                format!(
                    "expected an audit `Event` object, found {}",
                    describe(&other)
                ),
            )),
            Err(reason) => decoded.errors.push(LineError::new(number, reason)),
        }
    }
    Ok(decoded)
}

fn push_item(
    decoded: &mut Decoded,
    number: usize,
    obj: Map<String, Value>,
    original: &str,
    limits: &Limits,
) {
    match map_audit_event(obj, &Origin::default()) {
        Ok(event) => decoded.events.push(finish(event, original, limits)),
        Err(error) => decoded.errors.push(error.at(number)),
    }
}

/// Whether a JSON object is an audit `EventList`: `kind: EventList` with an
/// `audit.k8s.io/*` `apiVersion`, or without `apiVersion` but with an `items` array. (A core
/// `v1` `EventList` of Kubernetes Events is something else and stays a generic object.)
pub(crate) fn is_event_list(obj: &Map<String, Value>) -> bool {
    if obj.get("kind").and_then(Value::as_str) != Some("EventList") {
        return false;
    }
    match obj.get("apiVersion") {
        Some(Value::String(version)) => version.starts_with("audit.k8s.io/"),
        Some(_) => false,
        None => obj.get("items").is_some_and(Value::is_array),
    }
}

/// Decodes an `EventList` found on one NDJSON line (`line_text` is the line, already checked
/// for length, depth and JSON syntax): one event per item, each keeping its item's exact text
/// as `event.original`; a bad item becomes a [`LineError`] of this line whose field names the
/// item (`items[2]`, `items[2].verb`) while the other items still decode.
pub(crate) fn decode_list_line(
    line_text: &str,
    line: usize,
    origin: &Origin,
    limits: &Limits,
    out: &mut Decoded,
) {
    let items = serde_json::from_str::<Envelope<'_>>(line_text)
        .ok()
        .and_then(|envelope| envelope.items)
        .map(|items| serde_json::from_str::<Option<Vec<&RawValue>>>(items.get()));
    let items = match items {
        None | Some(Ok(None)) => return,
        Some(Ok(Some(items))) => items,
        Some(Err(_)) => {
            return out.errors.push(
                FieldError::field("items", "expected an array of audit `Event` objects").at(line),
            )
        }
    };
    for (index, item) in items.into_iter().enumerate() {
        let field = format!("items[{index}]");
        let item_text = item.get();
        let obj = match parse_json(item_text, limits) {
            Ok(Value::Object(obj)) => obj,
            Ok(other) => {
                let reason = format!(
                    "expected an audit `Event` object, found {}",
                    describe(&other)
                );
                out.errors.push(FieldError::field(field, reason).at(line));
                continue;
            }
            Err(reason) => {
                out.errors.push(FieldError::field(field, reason).at(line));
                continue;
            }
        };
        match map_audit_event(obj, origin) {
            Ok(event) => out.events.push(finish(event, item_text, limits)),
            Err(error) => out.errors.push(error.within(&field).at(line)),
        }
    }
}
