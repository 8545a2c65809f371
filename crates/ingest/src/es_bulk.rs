//! Elasticsearch `_bulk` bodies, as Beats, Logstash, Fluent Bit, Vector and the official
//! clients send them.
//!
//! The body is NDJSON: an action line (`{"index": {"_index": "logs", "_id": "1"}}`), then for
//! `index` and `create` the document line. Every document becomes its events through the same
//! per-line detection as our NDJSON endpoint (a Kubernetes audit event shipped by Filebeat
//! gets the audit mapping; anything else is kept as it is), plus `es.index` (and `es.id` when
//! the client named one). A document that holds many events (an audit `EventList`, a
//! CloudWatch Logs subscription batch, also as a Lambda's gzip'd `awslogs.data`) becomes all
//! of them, each keeping its own item's text as `event.original`; [`BulkItem::events`] says
//! how many. Generic documents get `event.dataset` = the index name and
//! `event.module: elasticsearch` unless they carry their own.
//!
//! Errors mirror Elasticsearch: an action line that is not JSON or names no known action
//! fails the whole request ([`IngestError`]); a document that does not decode, a missing
//! index, or an `update`/`delete` (we are append-only) fails only its own item, reported in
//! [`BulkItem::error`] so the response can carry per-item statuses in request order. When some
//! records of a batch document decode and others do not, the good ones are stored (counted in
//! [`BulkItem::events`]) and the item still fails, its reason naming the bad records.

use crowsnest_model::Event;
use crowsnest_normalize::{Decoded, LineError};
use serde_json::{Map, Value};

use crate::common::{claim_module, is_name, json_text, within_room};
use crate::{IngestError, Limits};

/// What one bulk item asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    /// `index`: store the document.
    Index,
    /// `create`: store the document (what Beats and data streams use).
    Create,
    /// `update`: refused, events are immutable.
    Update,
    /// `delete`: refused, events are immutable.
    Delete,
}

impl BulkAction {
    /// The action's name in requests and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Index => "index",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "index" => Some(Self::Index),
            "create" => Some(Self::Create),
            "update" => Some(Self::Update),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// Why one item failed, in Elasticsearch's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItemError {
    /// HTTP-like status of the item (400, 405).
    pub status: u16,
    /// Elasticsearch error type (`mapper_parsing_exception`, ...).
    pub kind: &'static str,
    /// What was expected.
    pub reason: String,
}

/// One item of the request, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem {
    /// The action.
    pub action: BulkAction,
    /// The target index (from the action or the URL).
    pub index: String,
    /// The client's `_id`, if any.
    pub id: Option<String>,
    /// `None` when all the item's events are in [`BulkRequest::events`].
    pub error: Option<BulkItemError>,
    /// How many events of [`BulkRequest::events`] came from this item's document: usually 1;
    /// one per record of a batch document; 0 for a document that holds none (a CloudWatch
    /// `CONTROL_MESSAGE`) or failed.
    pub events: usize,
}

/// A decoded `_bulk` body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BulkRequest {
    /// The events of the items, in order (an item may hold several, see [`BulkItem::events`]).
    pub events: Vec<Event>,
    /// Every item, successful or not, in order.
    pub items: Vec<BulkItem>,
}

/// Decodes a `_bulk` body. `default_index` comes from `/{index}/_bulk`.
///
/// # Errors
///
/// [`IngestError::Invalid`] when an action line is not a JSON object with one known action
/// (Elasticsearch rejects the whole request then too), [`IngestError::Empty`] for an empty body.
pub fn decode(
    body: &[u8],
    default_index: Option<&str>,
    limits: &Limits,
) -> Result<BulkRequest, IngestError> {
    const EXPECTED: &str = "an Elasticsearch bulk body (action line, then document line)";
    let mut lines = body
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace));
    let mut request = BulkRequest::default();
    while let Some((number, line)) = lines.next() {
        let (action, meta) = parse_action(line).map_err(|reason| {
            IngestError::invalid(EXPECTED, format!("line {}: {reason}", number + 1))
        })?;
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(default_index)
            .map(str::to_string);
        let id = meta.get("_id").and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let document = match action {
            BulkAction::Delete => None,
            _ => match lines.next() {
                Some(doc) => Some(doc),
                None => {
                    return Err(IngestError::invalid(
                        EXPECTED,
                        format!("line {}: the action has no document line", number + 1),
                    ))
                }
            },
        };
        let mut item = BulkItem {
            action,
            index: index.clone().unwrap_or_default(),
            id: id.clone(),
            error: None,
            events: 0,
        };
        if request.items.len() >= limits.max_events || request.events.len() >= limits.max_events {
            // Nothing of this item was stored: the client may retry it.
            item.error = Some(item_error(
                429,
                "es_rejected_execution_exception",
                format!(
                    "expected at most {} items and events per request",
                    limits.max_events
                ),
            ));
            request.items.push(item);
            continue;
        }
        let outcome = match (action, index, document) {
            (BulkAction::Update | BulkAction::Delete, _, _) => Err(item_error(
                405,
                "action_request_validation_exception",
                format!(
                    "expected `index` or `create`: `{}` is not supported, events are immutable",
                    action.as_str()
                ),
            )),
            (_, None, _) => Err(item_error(
                400,
                "action_request_validation_exception",
                "expected an `_index` in the action or the URL",
            )),
            (_, Some(index), Some((doc_number, doc))) => {
                let room = limits.max_events.saturating_sub(request.events.len());
                let Decoded { events, errors } =
                    document_events(doc, &index, id.as_deref(), room, limits);
                item.events = events.len();
                request.events.extend(events);
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(item_error(
                        400,
                        "mapper_parsing_exception",
                        document_reason(doc_number + 1, item.events, &errors),
                    ))
                }
            }
            (_, Some(_), None) => Err(item_error(
                400,
                "action_request_validation_exception",
                "expected a document line",
            )),
        };
        if let Err(error) = outcome {
            item.error = Some(error);
        }
        request.items.push(item);
    }
    if request.items.is_empty() {
        return Err(IngestError::Empty { expected: EXPECTED });
    }
    Ok(request)
}

fn item_error(status: u16, kind: &'static str, reason: impl Into<String>) -> BulkItemError {
    BulkItemError {
        status,
        kind,
        reason: reason.into(),
    }
}

fn parse_action(line: &[u8]) -> Result<(BulkAction, Map<String, Value>), String> {
    if line.len() > 64 * 1024 {
        return Err("expected an action line of at most 64 KiB".to_string());
    }
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| format!("expected an action object such as {{\"create\":{{}}}}: {e}"))?;
    let Value::Object(object) = value else {
        return Err("expected an action object such as {\"create\":{}}".to_string());
    };
    let mut entries = object.into_iter();
    let (Some((name, meta)), None) = (entries.next(), entries.next()) else {
        return Err("expected exactly one action per action line".to_string());
    };
    let action = BulkAction::parse(&name)
        .ok_or_else(|| format!("expected one of index, create, update, delete, found `{name}`"))?;
    match meta {
        Value::Object(meta) => Ok((action, meta)),
        Value::Null => Ok((action, Map::new())),
        _ => Err(format!(
            "expected the `{name}` action's metadata to be an object"
        )),
    }
}

/// The reason a document (on `line`) failed: its errors, and how many of its events were
/// stored anyway.
fn document_reason(line: usize, stored: usize, errors: &[LineError]) -> String {
    let mut reason = format!("line {line}: ");
    for (index, error) in errors.iter().enumerate() {
        if index > 0 {
            reason.push_str("; ");
        }
        if index == 5 {
            reason.push_str(&format!("and {} more", errors.len() - 5));
            break;
        }
        match &error.field {
            Some(field) => reason.push_str(&format!("`{field}`: {}", error.reason)),
            None => reason.push_str(&error.reason),
        }
    }
    if stored > 0 {
        reason.push_str(&format!(
            " ({stored} other event(s) of this document were stored)"
        ));
    }
    reason
}

/// The events of one document (at most `room`), with `es.*` and the module set.
fn document_events(
    doc: &[u8],
    index: &str,
    id: Option<&str>,
    room: usize,
    limits: &Limits,
) -> Decoded {
    let dataset = if is_name(index) {
        index
    } else {
        "elasticsearch"
    };
    let Decoded { events, errors } = within_room(json_text(doc, dataset, limits), room, limits);
    let original = String::from_utf8_lossy(doc);
    let original = original.trim();
    let events = events
        .into_iter()
        .map(|mut event| {
            claim_module(&mut event, "elasticsearch");
            event.set("es.index", Value::String(index.to_string()));
            if let Some(id) = id {
                event.set("es.id", Value::String(id.to_string()));
            }
            crowsnest_normalize::finish(event, original, &limits.decode)
        })
        .collect();
    Decoded { events, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_create_items_become_events_in_order() {
        let body = b"{\"index\":{\"_index\":\"app\",\"_id\":\"7\"}}\n{\"message\":\"one\",\"@timestamp\":\"2024-05-01T10:00:00Z\"}\n{\"create\":{}}\n{\"msg\":\"two\"}\n";
        let request = decode(body, Some("logs-x"), &Limits::default()).expect("decodes");
        assert_eq!(request.events.len(), 2);
        assert_eq!(request.items[0].index, "app");
        assert_eq!(request.items[0].id.as_deref(), Some("7"));
        assert_eq!(request.items[1].index, "logs-x");
        let first = &request.events[0];
        assert_eq!(first.get_str("es.index"), Some("app"));
        assert_eq!(first.get_str("es.id"), Some("7"));
        assert_eq!(first.get_str("event.module"), Some("elasticsearch"));
        assert_eq!(first.get_str("event.dataset"), Some("app"));
        assert_eq!(
            first.get_str("event.original"),
            Some("{\"message\":\"one\",\"@timestamp\":\"2024-05-01T10:00:00Z\"}")
        );
        assert_eq!(request.events[1].get_str("message"), Some("two"));
    }

    #[test]
    fn bad_documents_and_refused_actions_fail_only_their_item() {
        let body = b"{\"index\":{\"_index\":\"a\"}}\nnot json\n{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"index\":{}}\n{\"x\":1}\n{\"index\":{\"_index\":\"a\"}}\n{\"ok\":true}\n";
        let request = decode(body, None, &Limits::default()).expect("decodes");
        let statuses: Vec<Option<u16>> = request
            .items
            .iter()
            .map(|i| i.error.as_ref().map(|e| e.status))
            .collect();
        assert_eq!(statuses, vec![Some(400), Some(405), Some(400), None]);
        assert_eq!(request.events.len(), 1);
        let reason = &request.items[0].error.as_ref().expect("error").reason;
        assert!(reason.starts_with("line 2:"), "{reason}");
    }

    #[test]
    fn a_bad_action_line_fails_the_request() {
        assert!(decode(b"{\"frobnicate\":{}}\n{}\n", None, &Limits::default()).is_err());
        assert!(decode(b"nope\n", None, &Limits::default()).is_err());
        assert!(decode(
            b"{\"index\":{\"_index\":\"a\"}}\n",
            None,
            &Limits::default()
        )
        .is_err());
        assert!(matches!(
            decode(b"\n \n", None, &Limits::default()),
            Err(IngestError::Empty { .. })
        ));
    }
}
