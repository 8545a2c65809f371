//! Splunk HTTP Event Collector (`/services/collector/event`).
//!
//! The body is HEC's concatenated JSON objects, one per event:
//!
//! ```text
//! {"time":1714557600.123,"host":"node-1","source":"kubernetes.audit","sourcetype":"crowsnest:event","event":{...}}
//! {"time":1714557601.0,"host":"node-1","source":"crowsnest.alert","sourcetype":"crowsnest:alert","index":"sec","event":{...}}
//! ```
//!
//! - `time`: `@timestamp` as epoch seconds with milliseconds;
//! - `host`: `host.name` (left out when absent: Splunk then uses the HEC client's address);
//! - `source`: the configured `source`, else `event.dataset`;
//! - `sourcetype`: the configured one, else `crowsnest:event` or `crowsnest:alert` by `event.kind`;
//! - `index`: the configured one, else absent (the token's default index);
//! - `event`: the whole event.
//!
//! `Authorization: Splunk <token>`; bodies above 1 KiB are gzipped. A `{"text":"Success",
//! "code":0}` answer is delivery; 400 (bad data), 401/403 (token) are permanent; 503 (HEC's
//! "server is busy", code 9) and 429 are retryable.

use crowsnest_model::Event;
use serde_json::{Map, Value};

use crate::config::is_alert;
use crate::fields::event_time;
use crate::http::{check_url, quote, HttpClient, Post};
use crate::{ConfigError, Delivery, OutputConfig, Sink, SinkError, SplunkHecConfig};

/// The path of HEC's JSON event endpoint.
pub const EVENT_PATH: &str = "/services/collector/event";

/// Encodes one event as a HEC event object.
pub fn encode_event(event: &Event, config: &SplunkHecConfig) -> Value {
    let mut object = Map::new();
    let millis = event_time(event).timestamp_millis();
    // Whole milliseconds over 1000 print exactly (`1714557600.123`) with serde_json's shortest
    // float form.
    let time =
        serde_json::Number::from_f64(millis as f64 / 1000.0).map_or(Value::Null, Value::Number);
    object.insert("time".into(), time);
    if let Some(host) = event.get_str("host.name") {
        object.insert("host".into(), host.into());
    }
    let source = config
        .source
        .as_deref()
        .or_else(|| event.get_str("event.dataset"));
    if let Some(source) = source {
        object.insert("source".into(), source.into());
    }
    let sourcetype = config.sourcetype.clone().unwrap_or_else(|| {
        let kind = if is_alert(event) { "alert" } else { "event" };
        format!("crowsnest:{kind}")
    });
    object.insert("sourcetype".into(), sourcetype.into());
    if let Some(index) = &config.index {
        object.insert("index".into(), index.clone().into());
    }
    object.insert("event".into(), Value::Object(event.as_map().clone()));
    Value::Object(object)
}

/// Encodes a batch as concatenated HEC objects (newline-separated for readability).
pub fn encode_batch(batch: &[Event], config: &SplunkHecConfig) -> Vec<u8> {
    let mut body = Vec::with_capacity(batch.len() * 512);
    for event in batch {
        body.extend_from_slice(encode_event(event, config).to_string().as_bytes());
        body.push(b'\n');
    }
    body
}

/// The event endpoint for a configured URL: a base URL gets [`EVENT_PATH`] appended, a URL
/// already naming a collector endpoint is kept.
pub fn endpoint(url: &str) -> String {
    if url.contains("/services/collector") {
        url.to_string()
    } else {
        format!("{}{EVENT_PATH}", url.trim_end_matches('/'))
    }
}

/// Reads a 2xx HEC answer.
///
/// # Errors
///
/// [`SinkError::Rejected`] when the answer carries a non-zero `code`.
pub fn parse_response(body: &str, n: usize) -> Result<Delivery, SinkError> {
    let Ok(answer) = serde_json::from_str::<Value>(body) else {
        // A 2xx without HEC's JSON (a proxy's page): the request was accepted.
        return Ok(Delivery::all(n));
    };
    match answer.get("code").and_then(Value::as_i64) {
        None | Some(0) => Ok(Delivery::all(n)),
        Some(code) => Err(SinkError::Rejected(format!(
            "HEC code {code}: {}",
            quote(answer.get("text").and_then(Value::as_str).unwrap_or(body))
        ))),
    }
}

/// The HEC sink.
pub struct SplunkHecSink {
    client: HttpClient,
    url: String,
    headers: Vec<(String, String)>,
    config: SplunkHecConfig,
}

impl SplunkHecSink {
    /// Builds the sink, checking the URL, token and TLS settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a bad URL, an empty token or a bad TLS file.
    pub fn new(config: &OutputConfig, hec: &SplunkHecConfig) -> Result<Self, ConfigError> {
        check_url(&config.name, "url", &hec.url)?;
        if hec.token.trim().is_empty() {
            return Err(ConfigError::invalid(
                &config.name,
                "token",
                "a HEC token",
                "",
            ));
        }
        Ok(Self {
            client: HttpClient::new(config, &hec.tls)?,
            url: endpoint(&hec.url),
            headers: vec![("Authorization".into(), format!("Splunk {}", hec.token))],
            config: hec.clone(),
        })
    }
}

impl Sink for SplunkHecSink {
    fn send(&mut self, batch: &[Event]) -> Result<Delivery, SinkError> {
        if batch.is_empty() {
            return Ok(Delivery::default());
        }
        let response = self.client.post(Post {
            url: &self.url,
            content_type: "application/json",
            headers: &self.headers,
            body: encode_batch(batch, &self.config),
            gzip: true,
        })?;
        parse_response(&String::from_utf8_lossy(&response.body), batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> SplunkHecConfig {
        SplunkHecConfig {
            url: "http://127.0.0.1:8088".into(),
            token: "t".into(),
            index: None,
            sourcetype: None,
            source: None,
            tls: Default::default(),
        }
    }

    #[test]
    fn events_and_alerts_get_their_hec_fields() {
        let event: Event = serde_json::from_value(json!({
            "@timestamp": "2024-05-01T10:00:00.123456Z", "host": {"name": "node-1"},
            "event": {"dataset": "kubernetes.audit", "kind": "event"}
        }))
        .expect("event");
        assert_eq!(
            encode_event(&event, &config()).to_string(),
            r#"{"time":1714557600.123,"host":"node-1","source":"kubernetes.audit","sourcetype":"crowsnest:event","event":{"@timestamp":"2024-05-01T10:00:00.123456Z","host":{"name":"node-1"},"event":{"dataset":"kubernetes.audit","kind":"event"}}}"#
        );
        let alert: Event = serde_json::from_value(json!({
            "@timestamp": "2024-05-01T10:00:01Z", "event": {"kind": "alert"}
        }))
        .expect("alert");
        let configured = SplunkHecConfig {
            index: Some("sec".into()),
            source: Some("crowsnest".into()),
            ..config()
        };
        let object = encode_event(&alert, &configured);
        assert_eq!(object["sourcetype"], "crowsnest:alert");
        assert_eq!(object["index"], "sec");
        assert_eq!(object["source"], "crowsnest");
        assert_eq!(object["time"], json!(1714557601.0));
        assert!(object.get("host").is_none());
    }

    #[test]
    fn endpoints_and_answers() {
        assert_eq!(
            endpoint("https://s:8088/"),
            "https://s:8088/services/collector/event"
        );
        assert_eq!(
            endpoint("https://s:8088/services/collector/event"),
            "https://s:8088/services/collector/event"
        );
        assert_eq!(
            parse_response(r#"{"text":"Success","code":0}"#, 2),
            Ok(Delivery::all(2))
        );
        assert!(!parse_response(r#"{"text":"No data","code":5}"#, 2)
            .expect_err("code 5")
            .is_retryable());
    }
}
