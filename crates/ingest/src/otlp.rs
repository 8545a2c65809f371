//! OTLP/HTTP logs (`POST /v1/logs`): an `ExportLogsServiceRequest` as protobuf or JSON.
//!
//! Each `LogRecord` becomes one event:
//!
//! | OTLP | event |
//! |---|---|
//! | `timeUnixNano`, else `observedTimeUnixNano` | `@timestamp` |
//! | `body` (string) | `message`; a structured body goes to `otel.body` and `message` is its JSON |
//! | `severityText` / `severityNumber` | `log.level` / `otel.severity_number` |
//! | `traceId` / `spanId` | `trace.id` / `span.id` (hex) |
//! | `eventName` | `event.action` |
//! | record attributes | `otel.attributes.*` |
//! | resource attributes | `otel.resource.*` (and the fields below) |
//! | scope name and version | `otel.scope.name`, `otel.scope.version` |
//!
//! Resource (then record) attributes named by the semantic conventions are also mapped to our
//! fields, the same ones every other container source fills, so a rule or a search over
//! `kubernetes.namespace` matches logs from the OTel collector's `k8sattributes` processor and
//! `filelog` receiver unchanged:
//!
//! | OTel attribute | event |
//! |---|---|
//! | `k8s.namespace.name`, `k8s.namespace.uid` | `kubernetes.namespace`, `kubernetes.namespace_uid` |
//! | `k8s.pod.name`, `k8s.pod.uid`, `k8s.pod.ip` | `kubernetes.pod.name`, `.uid`, `.ip` |
//! | `k8s.container.name` | `kubernetes.container.name`, and `container.name` unless `container.name` is set |
//! | `k8s.node.name` | `kubernetes.node.name`, and `host.name` unless `host.name` is set |
//! | `k8s.deployment.name`, `k8s.replicaset.name`, `k8s.statefulset.name`, `k8s.daemonset.name`, `k8s.job.name`, `k8s.cronjob.name` | `kubernetes.<kind>.name` |
//! | `k8s.cluster.name`, `k8s.cluster.uid` | `orchestrator.cluster.name`, `orchestrator.cluster.id` |
//! | `k8s.pod.labels.<key>` / `k8s.pod.label.<key>`, `k8s.pod.annotations.<key>` / `.annotation.` | `kubernetes.labels.<key>`, `kubernetes.annotations.<key>` (dots in the key → `_`) |
//! | `k8s.namespace.labels.<key>` / `.label.`, `k8s.node.labels.<key>` / `.label.` | `kubernetes.namespace_labels.<key>`, `kubernetes.node.labels.<key>` |
//! | `container.id`, `container.name`, `container.runtime` | the same |
//! | `container.image.name`, `container.image.tag` (or the first of `container.image.tags`), `container.image.repo_digests` | `container.image.name`, `.tag`, `.hash.all` |
//! | `host.name`, `service.*`, `process.pid`, `process.executable.path`, `process.command_line` | `host.name`, `service.*`, `process.pid`, `process.executable`, `process.command_line` |
//! | `log.iostream`, `log.file.path` (the `filelog` receiver's record attributes) | the same |
//!
//! ([`SEMCONV`], [`SEMCONV_PREFIXES`].) A record that names a container or a pod's container
//! is `event.dataset: container.logs` (so container-log rules see it) unless it carries its
//! own `event.dataset` attribute; others are `otel.logs`. `event.original` is the record as
//! OTLP JSON (the protobuf bytes are not text).

use crowsnest_model::{ecs, format_timestamp, Event};
use crowsnest_normalize::{Decoded, LineError};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use serde_json::{Map, Value};

use crate::{IngestError, Limits};

/// How the request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpFormat {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON: camelCase, hex ids, 64-bit integers as strings).
    Json,
}

/// Semantic-convention attributes copied to our fields: `(otel name, event path)`.
pub const SEMCONV: &[(&str, &str)] = &[
    ("k8s.namespace.name", "kubernetes.namespace"),
    ("k8s.pod.name", "kubernetes.pod.name"),
    ("k8s.pod.uid", "kubernetes.pod.uid"),
    ("k8s.container.name", "kubernetes.container.name"),
    ("k8s.node.name", "kubernetes.node.name"),
    ("k8s.pod.ip", "kubernetes.pod.ip"),
    ("k8s.deployment.name", "kubernetes.deployment.name"),
    ("k8s.replicaset.name", "kubernetes.replicaset.name"),
    ("k8s.statefulset.name", "kubernetes.statefulset.name"),
    ("k8s.daemonset.name", "kubernetes.daemonset.name"),
    ("k8s.job.name", "kubernetes.job.name"),
    ("k8s.cronjob.name", "kubernetes.cronjob.name"),
    ("k8s.namespace.uid", "kubernetes.namespace_uid"),
    ("k8s.cluster.name", "orchestrator.cluster.name"),
    ("k8s.cluster.uid", "orchestrator.cluster.id"),
    ("container.id", "container.id"),
    ("container.name", "container.name"),
    ("container.image.name", "container.image.name"),
    ("container.image.tag", "container.image.tag"),
    ("container.runtime", "container.runtime"),
    ("container.image.repo_digests", "container.image.hash.all"),
    ("host.name", "host.name"),
    ("service.name", "service.name"),
    ("service.version", "service.version"),
    ("service.namespace", "service.namespace"),
    ("process.pid", "process.pid"),
    ("process.executable.path", "process.executable"),
    ("process.command_line", "process.command_line"),
    ("log.iostream", "log.iostream"),
    ("log.file.path", "log.file.path"),
];

/// Semantic-convention attribute prefixes whose rest is a label or annotation key: `(otel
/// prefix, event path)`. Keys are stored with dots replaced by `_`, as Filebeat and the node
/// agent store labels (`k8s.pod.labels.app.kubernetes.io/name` →
/// `kubernetes.labels.app_kubernetes_io/name`); the singular forms are the newer conventions'.
pub const SEMCONV_PREFIXES: &[(&str, &str)] = &[
    ("k8s.pod.labels.", "kubernetes.labels"),
    ("k8s.pod.label.", "kubernetes.labels"),
    ("k8s.pod.annotations.", "kubernetes.annotations"),
    ("k8s.pod.annotation.", "kubernetes.annotations"),
    ("k8s.namespace.labels.", "kubernetes.namespace_labels"),
    ("k8s.namespace.label.", "kubernetes.namespace_labels"),
    (
        "k8s.namespace.annotations.",
        "kubernetes.namespace_annotations",
    ),
    (
        "k8s.namespace.annotation.",
        "kubernetes.namespace_annotations",
    ),
    ("k8s.node.labels.", "kubernetes.node.labels"),
    ("k8s.node.label.", "kubernetes.node.labels"),
];

/// Decodes an export request.
///
/// # Errors
///
/// [`IngestError::Invalid`] when the body is not an `ExportLogsServiceRequest` in `format`.
pub fn decode(body: &[u8], format: OtlpFormat, limits: &Limits) -> Result<Decoded, IngestError> {
    const EXPECTED: &str = "an OTLP ExportLogsServiceRequest";
    let request = match format {
        OtlpFormat::Protobuf => ExportLogsServiceRequest::decode(body)
            .map_err(|e| IngestError::invalid(EXPECTED, format!("invalid protobuf: {e}")))?,
        OtlpFormat::Json => {
            if crate::common::too_deep(body, limits.decode.max_depth) {
                return Err(IngestError::invalid(
                    EXPECTED,
                    format!("JSON nested deeper than {} levels", limits.decode.max_depth),
                ));
            }
            serde_json::from_slice(body)
                .map_err(|e| IngestError::invalid(EXPECTED, format!("invalid OTLP/JSON: {e}")))?
        }
    };
    Ok(map_request(request, limits))
}

/// Encodes the `ExportLogsServiceResponse` for `format`: empty on full success, else a
/// `partial_success` with the number of rejected records and the first reason.
pub fn encode_response(rejected: usize, message: &str, format: OtlpFormat) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceResponse,
    };
    let response = ExportLogsServiceResponse {
        partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: message.to_string(),
        }),
    };
    match format {
        OtlpFormat::Protobuf => response.encode_to_vec(),
        OtlpFormat::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// Maps a decoded request (useful to tests and other transports).
pub fn map_request(request: ExportLogsServiceRequest, limits: &Limits) -> Decoded {
    let mut decoded = Decoded::default();
    let mut number = 0usize;
    for resource_logs in request.resource_logs {
        let resource_attributes = resource_logs
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        let resource = attributes_object(&resource_attributes);
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs.scope.unwrap_or_default();
            for record in scope_logs.log_records {
                number += 1;
                if decoded.events.len() >= limits.max_events {
                    // Every refused record is counted (the answer's `rejected_log_records`).
                    decoded.errors.push(LineError::new(
                        number,
                        format!(
                            "expected at most {} log records per request",
                            limits.max_events
                        ),
                    ));
                    continue;
                }
                let original = serde_json::to_string(&record).unwrap_or_default();
                if original.len() > limits.decode.max_line_bytes {
                    decoded.errors.push(LineError::new(
                        number,
                        format!(
                            "expected at most {} bytes per log record",
                            limits.decode.max_line_bytes
                        ),
                    ));
                    continue;
                }
                let mut event = map_record(record, &resource_attributes, &resource);
                if !scope.name.is_empty() {
                    event.set("otel.scope.name", Value::String(scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    event.set("otel.scope.version", Value::String(scope.version.clone()));
                }
                decoded.events.push(crowsnest_normalize::finish(
                    event,
                    &original,
                    &limits.decode,
                ));
            }
        }
    }
    decoded
}

fn map_record(
    record: LogRecord,
    resource_attributes: &[KeyValue],
    resource: &Map<String, Value>,
) -> Event {
    let mut event = Event::new();
    let nanos = if record.time_unix_nano != 0 {
        record.time_unix_nano
    } else {
        record.observed_time_unix_nano
    };
    if nanos != 0 {
        let time = chrono::DateTime::from_timestamp_nanos(i64::try_from(nanos).unwrap_or(i64::MAX));
        event.set(ecs::TIMESTAMP, Value::String(format_timestamp(time)));
    }
    match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => {
            event.set(ecs::MESSAGE, Value::String(text.clone()));
        }
        Some(other) => {
            let body = any_to_json(other);
            event.set(ecs::MESSAGE, Value::String(body.to_string()));
            event.set("otel.body", body);
        }
        None => {}
    }
    if !record.severity_text.is_empty() {
        event.set(
            "log.level",
            Value::String(record.severity_text.to_lowercase()),
        );
    }
    if record.severity_number != 0 {
        event.set("otel.severity_number", Value::from(record.severity_number));
    }
    if !record.trace_id.is_empty() {
        event.set("trace.id", Value::String(hex::encode(&record.trace_id)));
    }
    if !record.span_id.is_empty() {
        event.set("span.id", Value::String(hex::encode(&record.span_id)));
    }
    if !record.event_name.is_empty() {
        event.set(ecs::EVENT_ACTION, Value::String(record.event_name.clone()));
    }
    if !resource.is_empty() {
        event.set("otel.resource", Value::Object(resource.clone()));
    }
    let attributes = attributes_object(&record.attributes);
    if !attributes.is_empty() {
        event.set("otel.attributes", Value::Object(attributes));
    }
    for source in [resource_attributes, &record.attributes[..]] {
        for attribute in source {
            let Some(value) = attribute.value.as_ref().and_then(|v| v.value.as_ref()) else {
                continue;
            };
            if let Some((_, path)) = SEMCONV.iter().find(|(name, _)| *name == attribute.key) {
                event.set(path, any_to_json(value));
            } else if let Some((key, path)) = SEMCONV_PREFIXES.iter().find_map(|(prefix, path)| {
                attribute
                    .key
                    .strip_prefix(prefix)
                    .filter(|key| !key.is_empty())
                    .map(|key| (key, path))
            }) {
                event.set(
                    &format!("{path}.{}", key.replace('.', "_")),
                    any_to_json(value),
                );
            } else if attribute.key == "container.image.tags" {
                // The newer conventions' list of tags; our field holds one.
                if let Some(Value::String(tag)) = any_to_json(value).get(0) {
                    event.set_default("container.image.tag", Value::String(tag.clone()));
                }
            }
        }
    }
    // As the other container sources: the pod's container name is the container's name, and
    // the node is the host the line was written on, unless the record says otherwise.
    if let Some(name) = event.get("kubernetes.container.name").cloned() {
        event.set_default(ecs::CONTAINER_NAME, name);
    }
    if let Some(node) = event.get("kubernetes.node.name").cloned() {
        event.set_default(ecs::HOST_NAME, node);
    }
    let container_log =
        event.get("kubernetes.container.name").is_some() || event.get(ecs::CONTAINER_ID).is_some();
    let dataset = record
        .attributes
        .iter()
        .find(|a| a.key == "event.dataset")
        .and_then(|a| a.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| {
            if container_log {
                "container.logs".to_string()
            } else {
                "otel.logs".to_string()
            }
        });
    event.set(ecs::EVENT_DATASET, Value::String(dataset));
    event.set(ecs::EVENT_MODULE, Value::String("otel".to_string()));
    event.set(ecs::EVENT_KIND, Value::String("event".to_string()));
    event
}

/// Attributes as a JSON object keyed by their (dotted) names, kept flat so
/// `otel.resource.k8s.pod.name` reads as the attribute's own name.
fn attributes_object(attributes: &[KeyValue]) -> Map<String, Value> {
    let mut object = Map::new();
    for attribute in attributes {
        let value = attribute
            .value
            .as_ref()
            .and_then(|v| v.value.as_ref())
            .map(any_to_json)
            .unwrap_or(Value::Null);
        object.insert(attribute.key.clone(), value);
    }
    object
}

fn any_to_json(value: &any_value::Value) -> Value {
    match value {
        any_value::Value::StringValue(s) => Value::String(s.clone()),
        any_value::Value::BoolValue(b) => Value::Bool(*b),
        any_value::Value::IntValue(i) => Value::from(*i),
        any_value::Value::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        any_value::Value::ArrayValue(array) => Value::Array(
            array
                .values
                .iter()
                .map(|v: &AnyValue| v.value.as_ref().map(any_to_json).unwrap_or(Value::Null))
                .collect(),
        ),
        any_value::Value::KvlistValue(list) => Value::Object(attributes_object(&list.values)),
        any_value::Value::BytesValue(bytes) => Value::String(hex::encode(bytes)),
        any_value::Value::StringValueStrindex(index) => Value::from(*index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"resourceLogs":[{"resource":{"attributes":[
        {"key":"k8s.namespace.name","value":{"stringValue":"payments"}},
        {"key":"k8s.pod.name","value":{"stringValue":"api-7f9"}},
        {"key":"service.name","value":{"stringValue":"api"}},
        {"key":"process.pid","value":{"intValue":"42"}}]},
      "scopeLogs":[{"scope":{"name":"app.logger","version":"1.0"},"logRecords":[
        {"timeUnixNano":"1714557600000000000","severityText":"WARN","severityNumber":13,
         "body":{"stringValue":"disk almost full"},
         "attributes":[{"key":"disk","value":{"stringValue":"/dev/sda1"}}],
         "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"},
        {"observedTimeUnixNano":"1714557601000000000",
         "body":{"kvlistValue":{"values":[{"key":"user","value":{"stringValue":"bob"}}]}}}]}]}]}"#;

    #[test]
    fn json_records_map_resource_and_record_fields() {
        let decoded =
            decode(JSON.as_bytes(), OtlpFormat::Json, &Limits::default()).expect("decodes");
        assert_eq!(decoded.events.len(), 2);
        let first = &decoded.events[0];
        assert_eq!(
            first.get_str("@timestamp"),
            Some("2024-05-01T10:00:00.000000Z")
        );
        assert_eq!(first.get_str("message"), Some("disk almost full"));
        assert_eq!(first.get_str("log.level"), Some("warn"));
        assert_eq!(first.get_str("kubernetes.namespace"), Some("payments"));
        assert_eq!(first.get_str("kubernetes.pod.name"), Some("api-7f9"));
        assert_eq!(first.get_str("service.name"), Some("api"));
        assert_eq!(first.get("process.pid"), Some(&Value::from(42)));
        assert_eq!(
            first.get_str("trace.id"),
            Some("5b8efff798038103d269b633813fc60c")
        );
        assert_eq!(first.get_str("otel.scope.name"), Some("app.logger"));
        assert_eq!(first.get_str("event.dataset"), Some("otel.logs"));
        assert!(first
            .get_str("event.original")
            .is_some_and(|o| o.contains("disk almost full")));
        let second = &decoded.events[1];
        assert_eq!(
            second.get_str("@timestamp"),
            Some("2024-05-01T10:00:01.000000Z")
        );
        assert_eq!(second.get_str("otel.body.user"), Some("bob"));
    }

    #[test]
    fn k8sattributes_and_filelog_records_land_in_the_container_fields() {
        // What the collector's `filelog` receiver (container operator) and `k8sattributes`
        // processor attach to a pod's log line.
        let body = r#"{"resourceLogs":[{"resource":{"attributes":[
            {"key":"k8s.namespace.name","value":{"stringValue":"payments"}},
            {"key":"k8s.pod.name","value":{"stringValue":"api-7d5b5dd9cf-t8ngb"}},
            {"key":"k8s.pod.uid","value":{"stringValue":"76e27404-d87c-11e8-88b6-080027728ac4"}},
            {"key":"k8s.container.name","value":{"stringValue":"api"}},
            {"key":"k8s.container.restart_count","value":{"stringValue":"0"}},
            {"key":"k8s.node.name","value":{"stringValue":"node-1"}},
            {"key":"k8s.deployment.name","value":{"stringValue":"api"}},
            {"key":"k8s.replicaset.name","value":{"stringValue":"api-7d5b5dd9cf"}},
            {"key":"k8s.pod.labels.app.kubernetes.io/name","value":{"stringValue":"api"}},
            {"key":"k8s.pod.annotation.prometheus.io/scrape","value":{"stringValue":"true"}},
            {"key":"container.id","value":{"stringValue":"3f2a9c1be47d"}},
            {"key":"container.image.name","value":{"stringValue":"registry.example.com/payments/api"}},
            {"key":"container.image.tags","value":{"arrayValue":{"values":[{"stringValue":"1.4.2"}]}}}]},
          "scopeLogs":[{"logRecords":[
            {"timeUnixNano":"1714557600000000000","body":{"stringValue":"charge accepted"},
             "attributes":[{"key":"log.iostream","value":{"stringValue":"stdout"}},
              {"key":"log.file.path","value":{"stringValue":"/var/log/pods/payments_api-7d5b5dd9cf-t8ngb_76e27404/api/0.log"}},
              {"key":"logtag","value":{"stringValue":"F"}}]}]}]}]}"#;
        let decoded =
            decode(body.as_bytes(), OtlpFormat::Json, &Limits::default()).expect("decodes");
        let event = &decoded.events[0];
        for (path, expected) in [
            ("kubernetes.namespace", "payments"),
            ("kubernetes.pod.name", "api-7d5b5dd9cf-t8ngb"),
            ("kubernetes.container.name", "api"),
            ("container.name", "api"),
            ("kubernetes.node.name", "node-1"),
            ("host.name", "node-1"),
            ("kubernetes.replicaset.name", "api-7d5b5dd9cf"),
            ("kubernetes.labels.app_kubernetes_io/name", "api"),
            ("kubernetes.annotations.prometheus_io/scrape", "true"),
            ("container.id", "3f2a9c1be47d"),
            ("container.image.tag", "1.4.2"),
            ("log.iostream", "stdout"),
            ("message", "charge accepted"),
            ("event.dataset", "container.logs"),
            ("event.module", "otel"),
        ] {
            assert_eq!(event.get_str(path), Some(expected), "{path}");
        }
    }

    #[test]
    fn protobuf_round_trips_through_the_same_mapping() {
        let request: ExportLogsServiceRequest = serde_json::from_str(JSON).expect("json");
        let bytes = request.encode_to_vec();
        let decoded = decode(&bytes, OtlpFormat::Protobuf, &Limits::default()).expect("decodes");
        assert_eq!(decoded.events.len(), 2);
        assert_eq!(
            decoded.events[0].get_str("kubernetes.namespace"),
            Some("payments")
        );
        for cut in [1, bytes.len() / 3, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], OtlpFormat::Protobuf, &Limits::default()).is_err());
        }
    }

    #[test]
    fn responses_report_partial_success() {
        assert!(encode_response(0, "", OtlpFormat::Protobuf).is_empty());
        let json = encode_response(2, "bad", OtlpFormat::Json);
        let value: Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(
            value["partialSuccess"]["rejectedLogRecords"],
            Value::from(2)
        );
        assert_eq!(value["partialSuccess"]["errorMessage"], Value::from("bad"));
    }

    #[test]
    fn the_record_limit_reports_the_rest() {
        let limits = Limits {
            max_events: 1,
            ..Limits::default()
        };
        let decoded = decode(JSON.as_bytes(), OtlpFormat::Json, &limits).expect("decodes");
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(decoded.errors.len(), 1, "one error per refused record");
        assert_eq!(decoded.errors[0].line, 2);
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
            [r#"{"body":{"stringValue":"x"}}"#; 5].join(",")
        );
        let decoded = decode(body.as_bytes(), OtlpFormat::Json, &limits).expect("decodes");
        let lines: Vec<usize> = decoded.errors.iter().map(|e| e.line).collect();
        assert_eq!((decoded.events.len(), lines), (1, vec![2, 3, 4, 5]));
    }
}
