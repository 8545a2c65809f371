//! Elasticsearch/OpenSearch `_bulk`.
//!
//! The body is NDJSON: per event an action line and the event itself,
//!
//! ```text
//! {"create":{"_index":"crowsnest-2024.05.01","_id":"01HX3Q6Z8K2J"}}
//! {"@timestamp":"2024-05-01T10:00:00Z","event":{"id":"01HX3Q6Z8K2J","kind":"event"},...}
//! ```
//!
//! `create` with the event's own id makes a retry idempotent: items written by an earlier,
//! partly failed attempt answer 409 and count as delivered. (Events without `event.id` get an
//! id from Elasticsearch, and may then be duplicated by a retry; the server always sets one.)
//! `create` is also what data streams require.
//!
//! The index comes from `index` (events) or `alerts_index` (alerts), `strftime` fields taken
//! from the event's `@timestamp` in UTC: the defaults `crowsnest-%Y.%m.%d` and
//! `crowsnest-alerts-%Y.%m.%d` keep alerts, which are few and kept long, out of the daily
//! event indices.
//!
//! Bodies above 1 KiB are gzipped. Authentication is one of `username`/`password` (Basic),
//! `api_key` (`ApiKey`) or `bearer_token` (`Bearer`).
//!
//! The answer's `items` are read one by one: 2xx and 409 are delivered; 429 and 5xx make the
//! whole batch [`SinkError::Retryable`] (sending it again is safe, see above); any other status
//! (a 400 mapping error, say) is a permanent rejection of that event, in
//! [`Delivery::rejected`].

use base64::Engine as _;
use chrono::format::{Item, StrftimeItems};
use crowsnest_model::Event;
use serde_json::{json, Value};

use crate::config::is_alert;
use crate::fields::{event_time, to_json};
use crate::http::{check_url, quote, HttpClient, Post};
use crate::{ConfigError, Delivery, ElasticsearchConfig, OutputConfig, Sink, SinkError};

/// An index name pattern, parsed once.
#[derive(Debug, Clone)]
pub struct IndexPattern(Vec<Item<'static>>);

impl IndexPattern {
    /// Parses a `strftime` pattern (`crowsnest-%Y.%m.%d`).
    ///
    /// # Errors
    ///
    /// A message saying what is wrong when the pattern has an unknown `%` field or is empty.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("an empty pattern".to_string());
        }
        let items = StrftimeItems::new(pattern)
            .parse_to_owned()
            .map_err(|e| format!("{e}"))?;
        if items.iter().any(|item| matches!(item, Item::Error)) {
            return Err("an unknown % field".to_string());
        }
        Ok(Self(items))
    }

    /// The index of an event.
    pub fn index_for(&self, event: &Event) -> String {
        event_time(event)
            .format_with_items(self.0.iter())
            .to_string()
    }
}

/// Encodes a `_bulk` body.
pub fn encode_bulk(batch: &[Event], events: &IndexPattern, alerts: &IndexPattern) -> Vec<u8> {
    let mut body = Vec::with_capacity(batch.len() * 512);
    for event in batch {
        let pattern = if is_alert(event) { alerts } else { events };
        let mut target = json!({"_index": pattern.index_for(event)});
        if let Some(id) = event.id() {
            target["_id"] = Value::String(id.to_string());
        }
        body.extend_from_slice(json!({ "create": target }).to_string().as_bytes());
        body.push(b'\n');
        body.extend_from_slice(to_json(event).as_bytes());
        body.push(b'\n');
    }
    body
}

/// Reads a `_bulk` answer for a batch of `n` events.
///
/// # Errors
///
/// [`SinkError::Retryable`] when some items failed with 429/5xx or the answer is unreadable
/// or does not list `n` items.
pub fn parse_bulk_response(body: &str, n: usize) -> Result<Delivery, SinkError> {
    let answer: Value = serde_json::from_str(body).map_err(|e| {
        SinkError::retryable(format!(
            "expected a _bulk JSON answer ({e}): {}",
            quote(body)
        ))
    })?;
    if answer.get("errors") == Some(&Value::Bool(false)) {
        return Ok(Delivery::all(n));
    }
    let items = answer
        .get("items")
        .and_then(Value::as_array)
        .filter(|items| items.len() == n)
        .ok_or_else(|| {
            SinkError::retryable(format!(
                "expected {n} items in the _bulk answer: {}",
                quote(body)
            ))
        })?;
    let mut delivery = Delivery::default();
    let mut retryable = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let result = item
            .as_object()
            .and_then(|o| o.values().next())
            .unwrap_or(&Value::Null);
        let status = result.get("status").and_then(Value::as_u64).unwrap_or(0);
        match status {
            200..=299 | 409 => delivery.delivered += 1,
            429 | 500..=599 | 0 => retryable.push((index, status, reason(result))),
            _ => delivery
                .rejected
                .push((index, format!("status {status}: {}", reason(result)))),
        }
    }
    if let Some((index, status, why)) = retryable.first() {
        return Err(SinkError::retryable(format!(
            "{} of {n} _bulk items failed transiently (first: item {index}, status {status}: {why})",
            retryable.len()
        )));
    }
    Ok(delivery)
}

fn reason(result: &Value) -> String {
    let error = &result["error"];
    match (error["type"].as_str(), error["reason"].as_str()) {
        (Some(kind), Some(reason)) => format!("{kind}: {reason}"),
        (Some(kind), None) => kind.to_string(),
        _ if error.is_string() => error.as_str().unwrap_or_default().to_string(),
        _ => "no reason given".to_string(),
    }
}

/// The `_bulk` sink.
pub struct ElasticsearchSink {
    client: HttpClient,
    url: String,
    headers: Vec<(String, String)>,
    events: IndexPattern,
    alerts: IndexPattern,
}

impl ElasticsearchSink {
    /// Builds the sink, checking the URL, index patterns and authentication.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a bad URL, pattern, TLS file or more than one authentication.
    pub fn new(config: &OutputConfig, es: &ElasticsearchConfig) -> Result<Self, ConfigError> {
        let name = &config.name;
        check_url(name, "url", &es.url)?;
        let pattern = |field, text: &str| {
            IndexPattern::parse(text).map_err(|why| {
                ConfigError::invalid(name, field, format!("an index pattern ({why})"), text)
            })
        };
        let events = pattern("index", &es.index)?;
        let alerts = pattern("alerts_index", &es.alerts_index)?;
        let mut auth = Vec::new();
        if let Some(user) = &es.username {
            let pair = format!("{user}:{}", es.password.as_deref().unwrap_or(""));
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            auth.push(format!("Basic {encoded}"));
        } else if es.password.is_some() {
            return Err(ConfigError::invalid(
                name,
                "password",
                "a username with it",
                "no username",
            ));
        }
        if let Some(key) = &es.api_key {
            auth.push(format!("ApiKey {key}"));
        }
        if let Some(token) = &es.bearer_token {
            auth.push(format!("Bearer {token}"));
        }
        if auth.len() > 1 {
            return Err(ConfigError::invalid(
                name,
                "username/api_key/bearer_token",
                "at most one way to authenticate",
                format!("{} of them", auth.len()),
            ));
        }
        let headers = auth
            .into_iter()
            .map(|value| ("Authorization".to_string(), value))
            .collect();
        Ok(Self {
            client: HttpClient::new(config, &es.tls)?,
            url: format!("{}/_bulk", es.url.trim_end_matches('/')),
            headers,
            events,
            alerts,
        })
    }
}

impl Sink for ElasticsearchSink {
    fn send(&mut self, batch: &[Event]) -> Result<Delivery, SinkError> {
        if batch.is_empty() {
            return Ok(Delivery::default());
        }
        let response = self.client.post(Post {
            url: &self.url,
            content_type: "application/x-ndjson",
            headers: &self.headers,
            body: encode_bulk(batch, &self.events, &self.alerts),
            gzip: true,
        })?;
        parse_bulk_response(&String::from_utf8_lossy(&response.body), batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(value: Value) -> Event {
        serde_json::from_value(value).expect("object")
    }

    #[test]
    fn action_lines_name_the_dated_index_and_the_event_id() {
        let events = IndexPattern::parse("crowsnest-%Y.%m.%d").expect("pattern");
        let alerts = IndexPattern::parse("alerts-%Y").expect("pattern");
        let batch = [
            event(
                json!({"@timestamp": "2024-05-01T23:59:59Z", "event": {"id": "a1", "kind": "event"}}),
            ),
            event(
                json!({"@timestamp": "2023-01-02T00:00:00Z", "event": {"id": "b2", "kind": "alert"}}),
            ),
        ];
        let body = String::from_utf8(encode_bulk(&batch, &events, &alerts)).expect("utf-8");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            r#"{"create":{"_index":"crowsnest-2024.05.01","_id":"a1"}}"#
        );
        assert_eq!(
            lines[2],
            r#"{"create":{"_index":"alerts-2023","_id":"b2"}}"#
        );
        let source: Value = serde_json::from_str(lines[1]).expect("event line");
        assert_eq!(source["event"]["id"], "a1");
        assert!(body.ends_with('\n'), "a _bulk body ends in a newline");
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(IndexPattern::parse("").is_err());
        assert!(IndexPattern::parse("x-%Q").is_err());
        assert!(IndexPattern::parse("plain").is_ok());
    }

    #[test]
    fn items_split_into_delivered_rejected_and_retryable() {
        let ok = r#"{"errors":false,"items":[]}"#;
        assert_eq!(parse_bulk_response(ok, 3), Ok(Delivery::all(3)));
        let mixed = r#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception"}}},
            {"create":{"status":400,"error":{"type":"mapping_parser_exception","reason":"bad date"}}}]}"#;
        let delivery = parse_bulk_response(mixed, 3).expect("no transient failure");
        assert_eq!(delivery.delivered, 2);
        assert_eq!(delivery.rejected.len(), 1);
        assert_eq!(delivery.rejected[0].0, 2);
        assert!(delivery.rejected[0]
            .1
            .contains("mapping_parser_exception: bad date"));
        let busy = r#"{"errors":true,"items":[{"create":{"status":201}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}}]}"#;
        let error = parse_bulk_response(busy, 2).expect_err("429 item");
        assert!(error.is_retryable());
        assert!(error.to_string().contains("item 1, status 429"));
        assert!(parse_bulk_response(r#"{"errors":true,"items":[]}"#, 1).is_err());
        assert!(parse_bulk_response("<html>", 1).is_err());
    }
}
