//! OTLP/HTTP logs: the batch as one `ExportLogsServiceRequest`, protobuf
//! (`application/x-protobuf`) or the OTLP/JSON mapping (`application/json`).
//!
//! Events are grouped by resource (one `ResourceLogs` per distinct set of resource
//! attributes), each with one `ScopeLogs` whose scope is `crowsnest` and this crate's version.
//!
//! | event | OTLP |
//! |---|---|
//! | `host.name`, `kubernetes.namespace`, `kubernetes.pod.name`/`uid`, `kubernetes.container.name`, `kubernetes.node.name`, `orchestrator.cluster.name`, `container.id`/`name`/`image.name`/`image.tag`/`runtime` (strings) | resource attributes `host.name`, `k8s.namespace.name`, `k8s.pod.name`/`uid`, `k8s.container.name`, `k8s.node.name`, `k8s.cluster.name`, `container.*` ([`RESOURCE`]) |
//! | `@timestamp` | `timeUnixNano` (`observedTimeUnixNano` is the send time) |
//! | `message` | `body` (a string); the event JSON when there is no message |
//! | `event.action` | `eventName` |
//! | `trace.id` / `span.id` (32 / 16 hex digits) | `traceId` / `spanId` |
//! | `log.level` | `severityText` and `severityNumber` (debug 5, info 9, warn 13, error 17, fatal 21) |
//! | alert level | `severityNumber`: critical 21, high 17, medium 13, low 10, informational 9 |
//! | every other field | a record attribute named by its dotted path (`user.name`, `k8s.audit.verb`); arrays stay arrays; `process.executable` is sent as the semantic convention's `process.executable.path` |
//!
//! `event.original` is not sent (the body and attributes carry the event). Our own receiver
//! (`crowsnest-ingest`'s `otlp`) maps the resource attributes, body, time, `eventName` and
//! `log.level` back to the same fields, and keeps the rest under `otel.attributes.*`.
//!
//! Example (JSON encoding, abridged):
//!
//! ```text
//! {"resourceLogs":[{"resource":{"attributes":[{"key":"k8s.namespace.name","value":{"stringValue":"prod"}}]},
//!   "scopeLogs":[{"scope":{"name":"crowsnest","version":"0.1.0"},"logRecords":[{"timeUnixNano":"1714557600000000000",
//!   "body":{"stringValue":"GET /healthz"},"attributes":[{"key":"event.dataset","value":{"stringValue":"container.logs"}}]}]}]}]}
//! ```
//!
//! A 2xx answer whose `partialSuccess` names rejected records is delivery with
//! [`Delivery::rejected_unattributed`] set (OTLP does not say which records); 429/5xx are
//! retryable, other statuses permanent.

use std::collections::HashMap;

use crowsnest_model::Event;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Map, Value};

use crate::fields::{alert_severity, otel_severity, to_json};
use crate::http::{check_url, HttpClient, Post};
use crate::webhook::checked_headers;
use crate::{ConfigError, Delivery, OtlpConfig, OtlpEncoding, OutputConfig, Sink, SinkError};

/// Event fields sent as resource attributes: `(event path, semantic-convention name)`.
pub const RESOURCE: &[(&str, &str)] = &[
    ("host.name", "host.name"),
    ("orchestrator.cluster.name", "k8s.cluster.name"),
    ("kubernetes.node.name", "k8s.node.name"),
    ("kubernetes.namespace", "k8s.namespace.name"),
    ("kubernetes.pod.name", "k8s.pod.name"),
    ("kubernetes.pod.uid", "k8s.pod.uid"),
    ("kubernetes.container.name", "k8s.container.name"),
    ("container.id", "container.id"),
    ("container.name", "container.name"),
    ("container.image.name", "container.image.name"),
    ("container.image.tag", "container.image.tag"),
    ("container.runtime", "container.runtime"),
];

/// Fields never sent as attributes (they travel elsewhere or not at all).
const SKIPPED: &[&str] = &["@timestamp", "message", "event.original"];

/// Attributes renamed to their semantic-convention names.
const RENAMED: &[(&str, &str)] = &[("process.executable", "process.executable.path")];

/// The resource attributes of an event: `(semantic-convention name, value)` in [`RESOURCE`]
/// order, which is also the grouping key.
type ResourceKey = Vec<(&'static str, String)>;

/// Builds the export request for a batch.
pub fn encode_request(batch: &[Event]) -> ExportLogsServiceRequest {
    let observed = now_nanos();
    let mut groups: Vec<(ResourceKey, Vec<LogRecord>)> = Vec::new();
    let mut index: HashMap<ResourceKey, usize> = HashMap::new();
    for event in batch {
        let resource = resource_of(event);
        let record = record_of(event, &resource, observed);
        let slot = *index.entry(resource.clone()).or_insert_with(|| {
            groups.push((resource, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(record);
    }
    let scope = InstrumentationScope {
        name: "crowsnest".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    };
    let resource_logs = groups
        .into_iter()
        .map(|(resource, log_records)| ResourceLogs {
            resource: Some(Resource {
                attributes: resource
                    .into_iter()
                    .map(|(key, value)| key_value(key.to_string(), string_value(value)))
                    .collect(),
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope.clone()),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// Encodes the request body; returns it with its content type.
///
/// # Errors
///
/// [`SinkError::Permanent`] if the JSON mapping fails (it does not for events we build).
pub fn encode_body(
    batch: &[Event],
    encoding: OtlpEncoding,
) -> Result<(Vec<u8>, &'static str), SinkError> {
    let request = encode_request(batch);
    match encoding {
        OtlpEncoding::Protobuf => Ok((request.encode_to_vec(), "application/x-protobuf")),
        OtlpEncoding::Json => serde_json::to_vec(&request)
            .map(|body| (body, "application/json"))
            .map_err(|e| SinkError::Permanent(format!("encoding OTLP/JSON failed: {e}"))),
    }
}

fn resource_of(event: &Event) -> ResourceKey {
    RESOURCE
        .iter()
        .filter_map(|(path, name)| {
            event
                .get_str(path)
                .filter(|v| !v.is_empty())
                .map(|v| (*name, v.to_string()))
        })
        .collect()
}

fn record_of(event: &Event, resource: &[(&'static str, String)], observed: u64) -> LogRecord {
    let time = event
        .timestamp()
        .and_then(|t| t.timestamp_nanos_opt())
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let body = event
        .get_str("message")
        .map_or_else(|| to_json(event), str::to_string);
    let level_text = event.get_str("log.level").unwrap_or("");
    let severity_number = match alert_severity(event) {
        Some(level) => otel_severity(level).0,
        None => level_number(level_text),
    };
    let trace_id = hex_id(event, "trace.id", 16);
    let span_id = hex_id(event, "span.id", 8);
    let skip = |path: &str| {
        SKIPPED.contains(&path)
            || (path == "trace.id" && trace_id.is_some())
            || (path == "span.id" && span_id.is_some())
            || RESOURCE
                .iter()
                .any(|(p, name)| *p == path && resource.iter().any(|(n, _)| n == name))
    };
    let mut attributes = Vec::new();
    flatten(event.as_map(), "", &skip, &mut attributes);
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        severity_number,
        severity_text: level_text.to_string(),
        body: Some(string_value(body)),
        attributes,
        event_name: event.get_str("event.action").unwrap_or("").to_string(),
        trace_id: trace_id.unwrap_or_default(),
        span_id: span_id.unwrap_or_default(),
        ..Default::default()
    }
}

/// A hex id of `bytes` bytes (`trace.id`: 16, `span.id`: 8), if the field holds one.
fn hex_id(event: &Event, path: &str, bytes: usize) -> Option<Vec<u8>> {
    hex::decode(event.get_str(path)?)
        .ok()
        .filter(|id| id.len() == bytes)
}

fn level_number(text: &str) -> i32 {
    match text.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" | "information" | "informational" => 9,
        "notice" => 10,
        "warn" | "warning" => 13,
        "error" | "err" => 17,
        "fatal" | "critical" | "crit" | "alert" | "emerg" | "emergency" => 21,
        _ => 0,
    }
}

fn flatten(
    map: &Map<String, Value>,
    prefix: &str,
    skip: &dyn Fn(&str) -> bool,
    out: &mut Vec<KeyValue>,
) {
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if skip(&path) {
            continue;
        }
        match value {
            Value::Object(inner) => flatten(inner, &path, skip, out),
            Value::Null => {}
            other => {
                let name = RENAMED
                    .iter()
                    .find(|(from, _)| *from == path)
                    .map_or(path, |(_, to)| (*to).to_string());
                out.push(key_value(name, any(other)));
            }
        }
    }
}

fn any(value: &Value) -> AnyValue {
    let inner = match value {
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items.iter().map(any).collect(),
        }),
        Value::Object(map) => any_value::Value::KvlistValue(KeyValueList {
            values: map
                .iter()
                .map(|(k, v)| key_value(k.clone(), any(v)))
                .collect(),
        }),
        Value::Null => return AnyValue { value: None },
    };
    AnyValue { value: Some(inner) }
}

fn string_value(value: String) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value)),
    }
}

fn key_value(key: String, value: AnyValue) -> KeyValue {
    KeyValue {
        key,
        value: Some(value),
        ..Default::default()
    }
}

fn now_nanos() -> u64 {
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// Reads a 2xx answer: how many records the receiver says it rejected.
pub fn rejected_in_response(body: &[u8], encoding: OtlpEncoding) -> (usize, String) {
    let response = match encoding {
        OtlpEncoding::Protobuf => ExportLogsServiceResponse::decode(body).ok(),
        OtlpEncoding::Json => serde_json::from_slice::<ExportLogsServiceResponse>(body).ok(),
    };
    response
        .and_then(|r| r.partial_success)
        .map(|p| {
            (
                usize::try_from(p.rejected_log_records).unwrap_or(0),
                p.error_message,
            )
        })
        .unwrap_or((0, String::new()))
}

/// The OTLP/HTTP sink.
pub struct OtlpSink {
    client: HttpClient,
    url: String,
    encoding: OtlpEncoding,
    headers: Vec<(String, String)>,
}

impl OtlpSink {
    /// Builds the sink, checking the URL, headers and TLS settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a bad URL, header or TLS file.
    pub fn new(config: &OutputConfig, otlp: &OtlpConfig) -> Result<Self, ConfigError> {
        check_url(&config.name, "url", &otlp.url)?;
        Ok(Self {
            client: HttpClient::new(config, &otlp.tls)?,
            url: otlp.url.clone(),
            encoding: otlp.encoding,
            headers: checked_headers(&config.name, &otlp.headers)?,
        })
    }
}

impl Sink for OtlpSink {
    fn send(&mut self, batch: &[Event]) -> Result<Delivery, SinkError> {
        if batch.is_empty() {
            return Ok(Delivery::default());
        }
        let (body, content_type) = encode_body(batch, self.encoding)?;
        let response = self.client.post(Post {
            url: &self.url,
            content_type,
            headers: &self.headers,
            body,
            gzip: false,
        })?;
        let (rejected, message) = rejected_in_response(&response.body, self.encoding);
        let rejected = rejected.min(batch.len());
        if rejected > 0 {
            tracing::warn!(rejected, message, "OTLP receiver rejected records");
        }
        Ok(Delivery {
            delivered: batch.len() - rejected,
            rejected: Vec::new(),
            rejected_unattributed: rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn text(value: Option<&any_value::Value>) -> Option<&str> {
        match value {
            Some(any_value::Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    fn batch() -> Vec<Event> {
        [
            json!({"@timestamp": "2024-05-01T10:00:00.5Z", "message": "GET /healthz",
                   "event": {"dataset": "container.logs", "original": "raw", "action": "log"},
                   "log": {"level": "WARN"}, "kubernetes": {"namespace": "prod", "pod": {"name": "web-1"}},
                   "process": {"executable": "/bin/sh", "args": ["sh", "-c"], "pid": 7}}),
            json!({"@timestamp": "2024-05-01T10:00:01Z", "message": "second",
                   "kubernetes": {"namespace": "dev", "pod": {"name": "web-2"}}}),
            json!({"@timestamp": "2024-05-01T10:00:02Z", "event": {"kind": "alert"},
                   "rule": {"level": "high"}, "kubernetes": {"namespace": "prod", "pod": {"name": "web-1"}}}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("event"))
        .collect()
    }

    #[test]
    fn protobuf_decodes_back_grouped_by_resource() {
        let (body, content_type) = encode_body(&batch(), OtlpEncoding::Protobuf).expect("encodes");
        assert_eq!(content_type, "application/x-protobuf");
        let request = ExportLogsServiceRequest::decode(body.as_slice()).expect("decodes");
        assert_eq!(request.resource_logs.len(), 2, "prod/web-1 and dev/web-2");
        let prod = &request.resource_logs[0];
        let resource = &prod.resource.as_ref().expect("resource").attributes;
        assert_eq!(
            text(attribute(resource, "k8s.namespace.name")),
            Some("prod")
        );
        assert_eq!(text(attribute(resource, "k8s.pod.name")), Some("web-1"));
        let scope = &prod.scope_logs[0];
        assert_eq!(
            scope.scope.as_ref().map(|s| s.name.as_str()),
            Some("crowsnest")
        );
        assert_eq!(scope.log_records.len(), 2);
        let first = &scope.log_records[0];
        assert_eq!(first.time_unix_nano, 1_714_557_600_500_000_000);
        assert!(first.observed_time_unix_nano > first.time_unix_nano);
        assert_eq!(
            text(first.body.as_ref().and_then(|b| b.value.as_ref())),
            Some("GET /healthz")
        );
        assert_eq!(
            (first.severity_number, first.severity_text.as_str()),
            (13, "WARN")
        );
        assert_eq!(first.event_name, "log");
        assert_eq!(
            text(attribute(&first.attributes, "event.dataset")),
            Some("container.logs")
        );
        assert_eq!(
            text(attribute(&first.attributes, "process.executable.path")),
            Some("/bin/sh")
        );
        assert_eq!(
            attribute(&first.attributes, "process.pid"),
            Some(&any_value::Value::IntValue(7))
        );
        assert!(matches!(
            attribute(&first.attributes, "process.args"),
            Some(any_value::Value::ArrayValue(a)) if a.values.len() == 2
        ));
        for gone in [
            "event.original",
            "message",
            "@timestamp",
            "kubernetes.namespace",
            "kubernetes.pod.name",
        ] {
            assert!(
                attribute(&first.attributes, gone).is_none(),
                "{gone} must not be an attribute"
            );
        }
        let alert = &scope.log_records[1];
        assert_eq!(alert.severity_number, 17, "a high alert is ERROR");
        let body = text(alert.body.as_ref().and_then(|b| b.value.as_ref())).expect("body");
        let json: Value =
            serde_json::from_str(body).expect("without a message the body is the event JSON");
        assert_eq!(json["rule"]["level"], "high");
    }

    #[test]
    fn json_encoding_uses_the_otlp_json_mapping() {
        let (body, content_type) = encode_body(&batch()[..1], OtlpEncoding::Json).expect("encodes");
        assert_eq!(content_type, "application/json");
        let value: Value = serde_json::from_slice(&body).expect("json");
        let record = &value["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(record["timeUnixNano"], json!("1714557600500000000"));
        assert_eq!(record["body"]["stringValue"], "GET /healthz");
        let request: ExportLogsServiceRequest = serde_json::from_slice(&body).expect("reads back");
        assert_eq!(request.resource_logs[0].scope_logs[0].log_records.len(), 1);
    }

    #[test]
    fn partial_success_counts_rejections() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let response = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too old".into(),
            }),
        };
        let bytes = response.encode_to_vec();
        assert_eq!(
            rejected_in_response(&bytes, OtlpEncoding::Protobuf),
            (2, "too old".into())
        );
        assert_eq!(rejected_in_response(b"", OtlpEncoding::Protobuf).0, 0);
        assert_eq!(rejected_in_response(b"{}", OtlpEncoding::Json).0, 0);
    }
}
