//! Managed Kubernetes audit logs (EKS, AKS, GKE) → the same mapping as native audit events.
//!
//! Each cloud delivers the API server's audit events in its own envelope. This module
//! recognises the envelopes, takes the audit event out of them (or, for GKE, rebuilds it
//! from the Cloud Audit Log entry), and hands it to [`map_audit_event`], so every flavour
//! yields the same `event.*`, `user.*`, `orchestrator.*` fields and rules work unchanged.
//! What the envelope adds (cluster, account, log group) goes to `orchestrator.cluster.name`,
//! `cloud.*` and a provider namespace (`aws.cloudwatch.*`, `azure.*`, `gcp.audit`).
//!
//! | shape | recognised by | audit event in |
//! |---|---|---|
//! | EKS CloudWatch record | `message` + `logStream`/`logStreamName` `kube-apiserver-audit-*` (or `/aws/eks/` log group) | `message` (JSON text) |
//! | EKS subscription batch | `logEvents[]` + `/aws/eks/<cluster>/cluster` log group | `logEvents[].message` |
//! | any CloudWatch subscription batch | `messageType: DATA_MESSAGE` + `logEvents[]` | `logEvents[].message`, when it is an audit event |
//! | AKS diagnostic record | `category: kube-audit` or `kube-audit-admin` + `properties` | `properties.log` (JSON text) |
//! | AKS Event Hub / storage batch | `records[]` holding such records | `records[].properties.log` |
//! | GKE Cloud Audit Log entry | `protoPayload` with `serviceName: k8s.io` | rebuilt, see [`gke`] |
//!
//! A batch yields one event or one [`crate::LineError`] per item; errors name the item
//! (`logEvents[2].message.verb`), and each event keeps its item's exact text as
//! `event.original`. CloudWatch `CONTROL_MESSAGE` batches (health checks sent when a
//! subscription is created) carry no events and yield nothing (and no error). In a batch
//! found by its shape, log events of an audit stream (`kube-apiserver-audit-*`) or whose
//! message is an audit event get the audit mapping; the others (EKS `authenticator-*`,
//! `kube-apiserver-*` streams, any other log group) become generic events (the message's
//! fields when it is a JSON object, else its text as `message`) with `aws.cloudwatch.*`,
//! `cloud.*` and the log event's time. A batch the sender declared EKS (`source=eks`) must
//! hold audit events only.

pub(crate) mod gke;

use std::collections::BTreeMap;

use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::error::{describe, FieldError, LineError};
use crate::fields::{opt_obj, opt_str, text};
use crate::k8s_audit::{looks_like_audit_event, map_audit_event, Origin};
use crate::limits::{parse_json, Limits};
use crate::registry::{Claim, Context, Parser, Record};
use crate::webhook::is_event_list;
use crate::{finish, generic, Decoded};

/// A managed-service envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One CloudWatch Logs record whose `message` is an audit event.
    EksRecord,
    /// A CloudWatch Logs subscription-filter batch (`logEvents[]`) the sender said is EKS:
    /// every log event must hold an audit event.
    EksBatch,
    /// A CloudWatch Logs subscription-filter batch found by its shape (`messageType` or an
    /// EKS log group/stream, and `logEvents[]`): log events of an audit stream, or whose
    /// message is an audit event, get the audit mapping; the others (other EKS control-plane
    /// streams, any other log group) become generic events.
    CloudWatchBatch,
    /// One Azure diagnostic record of category `kube-audit`/`kube-audit-admin`.
    AksRecord,
    /// An Azure Event Hub / storage batch (`records[]`).
    AksBatch,
    /// One GKE Cloud Audit Log entry.
    Gke,
}

/// The parser of one managed service's audit logs: `eks`, `aks` or `gke`.
#[derive(Debug)]
pub(crate) struct Managed(&'static str);

/// GKE Cloud Audit Log entries.
pub(crate) static GKE: Managed = Managed("gke");
/// AKS diagnostic records and batches.
pub(crate) static AKS: Managed = Managed("aks");
/// EKS CloudWatch Logs records and batches (and any CloudWatch Logs subscription batch).
pub(crate) static EKS: Managed = Managed("eks");

impl Shape {
    /// The managed service whose parser takes this shape.
    fn provider(self) -> &'static str {
        match self {
            Shape::Gke => "gke",
            Shape::AksRecord | Shape::AksBatch => "aks",
            Shape::EksRecord | Shape::EksBatch | Shape::CloudWatchBatch => "eks",
        }
    }
}

impl Parser for Managed {
    fn name(&self) -> &'static str {
        self.0
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        detect(object).is_some_and(|shape| shape.provider() == self.0)
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let provider = self.0;
        let Record::Json { text, object } = record else {
            return out
                .errors
                .push(LineError::new(cx.line, expected_shape(provider)));
        };
        if cx.claim == Claim::Detected {
            if let Some(shape) = detect(&object) {
                decode(shape, object, text, cx.line, cx.dataset, cx.limits, out);
            }
            return;
        }
        let origin = || Origin {
            cloud_provider: Some(cloud_of(provider)),
            ..Origin::default()
        };
        if let Some(shape) = detect_forced(provider, &object) {
            decode(shape, object, text, cx.line, cx.dataset, cx.limits, out);
        } else if provider != "gke" && (looks_like_audit_event(&object) || is_event_list(&object)) {
            crate::k8s_audit::parse_audit(text, object, &origin(), cx, out);
        } else {
            out.errors
                .push(LineError::new(cx.line, expected_shape(provider)));
        }
    }
}

fn cloud_of(provider: &str) -> &'static str {
    match provider {
        "eks" => "aws",
        "aks" => "azure",
        _ => "gcp",
    }
}

/// Recognises a managed-service envelope without being told which one to expect.
pub(crate) fn detect(obj: &Map<String, Value>) -> Option<Shape> {
    if gke::is_k8s_entry(obj) {
        return Some(Shape::Gke);
    }
    if is_aks_audit_record(obj) {
        return Some(Shape::AksRecord);
    }
    if let Some(Value::Array(records)) = obj.get("records") {
        let any_audit = records
            .iter()
            .any(|r| r.as_object().is_some_and(is_aks_audit_record));
        if any_audit {
            return Some(Shape::AksBatch);
        }
    }
    let eks_origin = eks_group(obj).is_some_and(|g| g.starts_with("/aws/eks/"))
        || eks_stream(obj).is_some_and(|s| s.starts_with("kube-apiserver-audit"));
    let cloudwatch = matches!(
        obj.get("messageType").and_then(Value::as_str),
        Some("DATA_MESSAGE" | "CONTROL_MESSAGE")
    );
    if (eks_origin || cloudwatch) && obj.get("logEvents").is_some_and(Value::is_array) {
        return Some(Shape::CloudWatchBatch);
    }
    if eks_origin && obj.get("message").is_some_and(Value::is_string) {
        return Some(Shape::EksRecord);
    }
    None
}

/// Recognises the envelopes of one provider (`eks`, `aks`, `gke`) when the request said
/// which to expect: the envelope's own keys suffice, without the origin hints [`detect`] needs.
pub(crate) fn detect_forced(source: &str, obj: &Map<String, Value>) -> Option<Shape> {
    match source {
        "eks" if obj.get("logEvents").is_some_and(Value::is_array) => Some(Shape::EksBatch),
        "eks" if obj.get("message").is_some_and(Value::is_string) => Some(Shape::EksRecord),
        "aks" if obj.get("records").is_some_and(Value::is_array) => Some(Shape::AksBatch),
        "aks" if obj.get("properties").is_some_and(Value::is_object) => Some(Shape::AksRecord),
        "gke" if obj.get("protoPayload").is_some_and(Value::is_object) => Some(Shape::Gke),
        _ => None,
    }
}

/// Decodes one line holding a managed-service envelope, pushing its events and errors.
/// `dataset` names the generic events of batches that mix audit and other records.
pub(crate) fn decode(
    shape: Shape,
    obj: Map<String, Value>,
    line_text: &str,
    line: usize,
    dataset: &str,
    limits: &Limits,
    out: &mut Decoded,
) {
    let single = |result: Result<Event, FieldError>, out: &mut Decoded| match result {
        Ok(event) => out.events.push(finish(event, line_text, limits)),
        Err(error) => out.errors.push(error.at(line)),
    };
    match shape {
        Shape::EksRecord => {
            let envelope = EksEnvelope::of(&obj);
            single(eks_record(&obj, &envelope, limits), out);
        }
        Shape::AksRecord => single(aks_record(&obj, limits), out),
        Shape::Gke => single(gke::map_entry(obj), out),
        Shape::EksBatch | Shape::CloudWatchBatch => {
            if obj.get("messageType").and_then(Value::as_str) == Some("CONTROL_MESSAGE") {
                return;
            }
            let envelope = EksEnvelope::of(&obj);
            let strict = shape == Shape::EksBatch;
            decode_batch(&obj, "logEvents", line_text, line, limits, out, |item| {
                if strict || is_audit_log_event(item, &envelope, limits) {
                    eks_record(item, &envelope, limits)
                } else {
                    cloudwatch_record(item, &envelope, dataset, limits)
                }
            });
        }
        Shape::AksBatch => {
            decode_batch(&obj, "records", line_text, line, limits, out, |record| {
                if is_aks_audit_record(record) {
                    aks_record(record, limits)
                } else {
                    Ok(generic::map_generic(record.clone(), dataset))
                }
            });
        }
    }
}

/// Decodes each item of the array `key`; each event keeps its item's exact text.
fn decode_batch(
    obj: &Map<String, Value>,
    key: &str,
    line_text: &str,
    line: usize,
    limits: &Limits,
    out: &mut Decoded,
    mut map_item: impl FnMut(&Map<String, Value>) -> Result<Event, FieldError>,
) {
    let items = match obj.get(key) {
        Some(Value::Array(items)) => items,
        other => {
            let found = other.map_or_else(|| "nothing".to_string(), describe);
            out.errors
                .push(FieldError::field(key, format!("expected an array, found {found}")).at(line));
            return;
        }
    };
    if items.is_empty() {
        out.errors.push(
            FieldError::field(key, "expected at least one record, found an empty array").at(line),
        );
        return;
    }
    let raw_texts = raw_items(line_text, key);
    for (index, item) in items.iter().enumerate() {
        let prefix = format!("{key}[{index}]");
        let result = match item {
            Value::Object(item) => map_item(item).map_err(|error| error.within(&prefix)),
            other => Err(FieldError::field(
                prefix,
                format!("expected an object, found {}", describe(other)),
            )),
        };
        match result {
            Ok(event) => {
                let original = raw_texts.get(index).copied().unwrap_or(line_text);
                out.events.push(finish(event, original, limits));
            }
            Err(error) => out.errors.push(error.at(line)),
        }
    }
}

/// The exact text of each item of the top-level array `key` (empty if it cannot be had).
fn raw_items<'a>(line_text: &'a str, key: &str) -> Vec<&'a str> {
    let Ok(top) = serde_json::from_str::<BTreeMap<String, &'a RawValue>>(line_text) else {
        return Vec::new();
    };
    let Some(array) = top.get(key) else {
        return Vec::new();
    };
    serde_json::from_str::<Vec<&'a RawValue>>(array.get())
        .map(|items| items.into_iter().map(RawValue::get).collect())
        .unwrap_or_default()
}

/// Parses an audit event embedded as JSON text in `field`.
fn embedded_audit(
    text: &str,
    field: &str,
    limits: &Limits,
) -> Result<Map<String, Value>, FieldError> {
    match parse_json(text, limits) {
        Ok(Value::Object(audit)) => Ok(audit),
        Ok(other) => Err(FieldError::field(
            field,
            format!(
                "expected an audit `Event` JSON object, found {}",
                describe(&other)
            ),
        )),
        Err(reason) => Err(FieldError::field(
            field,
            format!("{reason} (audit `Event` text)"),
        )),
    }
}

fn eks_group(obj: &Map<String, Value>) -> Option<&str> {
    ["logGroup", "logGroupName"]
        .iter()
        .find_map(|key| obj.get(*key).and_then(Value::as_str))
}

fn eks_stream(obj: &Map<String, Value>) -> Option<&str> {
    ["logStream", "logStreamName"]
        .iter()
        .find_map(|key| obj.get(*key).and_then(Value::as_str))
}

/// The EKS cluster in a log group `/aws/eks/<cluster>/cluster`.
pub(crate) fn eks_cluster(group: &str) -> Option<&str> {
    let rest = group.strip_prefix("/aws/eks/")?;
    let (cluster, tail) = rest.split_once('/')?;
    (tail == "cluster" && !cluster.is_empty()).then_some(cluster)
}

/// What a CloudWatch envelope says about its records.
struct EksEnvelope {
    group: Option<String>,
    stream: Option<String>,
    owner: Option<String>,
}

impl EksEnvelope {
    fn of(obj: &Map<String, Value>) -> Self {
        Self {
            group: eks_group(obj).map(str::to_string),
            stream: eks_stream(obj).map(str::to_string),
            owner: obj.get("owner").and_then(Value::as_str).map(str::to_string),
        }
    }
}

/// One CloudWatch record: `message` holds the audit event.
fn eks_record(
    item: &Map<String, Value>,
    envelope: &EksEnvelope,
    limits: &Limits,
) -> Result<Event, FieldError> {
    let message = opt_str(item, "message", "")?.ok_or_else(|| {
        FieldError::field("message", "expected the audit `Event` JSON as a string")
    })?;
    let audit = embedded_audit(message, "message", limits)?;
    let group = eks_group(item)
        .map(str::to_string)
        .or_else(|| envelope.group.clone());
    let stream = eks_stream(item)
        .map(str::to_string)
        .or_else(|| envelope.stream.clone());
    let origin = Origin {
        cluster: group.as_deref().and_then(eks_cluster).map(str::to_string),
        cloud_provider: Some("aws"),
        fallback_time: item.get("timestamp").and_then(parse_timestamp),
    };
    let mut event = map_audit_event(audit, &origin).map_err(|error| error.within("message"))?;
    event.set_if_present("aws.cloudwatch.log_group", group.map(Value::String));
    event.set_if_present("aws.cloudwatch.log_stream", stream.map(Value::String));
    event.set_if_present(
        "cloud.account.id",
        envelope.owner.clone().map(Value::String),
    );
    Ok(event)
}

/// Whether a log event of an auto-detected CloudWatch batch holds an audit event: it comes
/// from an audit stream (`kube-apiserver-audit-*`), or from an EKS cluster's log group
/// without a stream name, or its message is an audit event wherever it comes from.
fn is_audit_log_event(item: &Map<String, Value>, envelope: &EksEnvelope, limits: &Limits) -> bool {
    let stream = eks_stream(item).or(envelope.stream.as_deref());
    let group = eks_group(item).or(envelope.group.as_deref());
    match stream {
        Some(stream) if stream.starts_with("kube-apiserver-audit") => return true,
        None if group.is_some_and(|g| eks_cluster(g).is_some()) => return true,
        _ => {}
    }
    let Some(message) = item.get("message").and_then(Value::as_str) else {
        return false;
    };
    message.trim_start().starts_with('{')
        && matches!(parse_json(message, limits), Ok(Value::Object(obj)) if looks_like_audit_event(&obj))
}

/// A CloudWatch log event that is not an audit event: a generic event (the message's own
/// fields when it is a JSON object, else the text as `message`), timed by the log event's
/// `timestamp` when the message has no time of its own.
fn cloudwatch_record(
    item: &Map<String, Value>,
    envelope: &EksEnvelope,
    dataset: &str,
    limits: &Limits,
) -> Result<Event, FieldError> {
    let message = opt_str(item, "message", "")?
        .ok_or_else(|| FieldError::field("message", "expected the log event's text"))?;
    let parsed = if message.trim_start().starts_with('{') {
        parse_json(message, limits).ok()
    } else {
        None
    };
    let mut event = match parsed {
        Some(Value::Object(fields)) => generic::map_generic(fields, dataset),
        _ => generic::map_generic(
            Map::from_iter([(ecs::MESSAGE.to_string(), json!(message))]),
            dataset,
        ),
    };
    if let Some(time) = item.get("timestamp").and_then(parse_timestamp) {
        event.set_default(ecs::TIMESTAMP, json!(format_timestamp(time)));
    }
    let group = eks_group(item)
        .map(str::to_string)
        .or_else(|| envelope.group.clone());
    let stream = eks_stream(item)
        .map(str::to_string)
        .or_else(|| envelope.stream.clone());
    event.set_if_present(
        "orchestrator.cluster.name",
        group.as_deref().and_then(eks_cluster).map(|c| json!(c)),
    );
    event.set_default("cloud.provider", json!("aws"));
    event.set_if_present("aws.cloudwatch.log_group", group.map(Value::String));
    event.set_if_present("aws.cloudwatch.log_stream", stream.map(Value::String));
    event.set_if_present(
        "aws.cloudwatch.id",
        item.get("id").filter(|v| v.is_string()).cloned(),
    );
    event.set_if_present(
        "cloud.account.id",
        envelope.owner.clone().map(Value::String),
    );
    Ok(event)
}

fn is_aks_audit_record(obj: &Map<String, Value>) -> bool {
    matches!(
        obj.get("category").and_then(Value::as_str),
        Some("kube-audit" | "kube-audit-admin")
    ) && obj.get("properties").is_some_and(Value::is_object)
}

/// The segment after `/<marker>/` in an Azure resource id (case-insensitive marker).
pub(crate) fn azure_segment<'a>(resource_id: &'a str, marker: &str) -> Option<&'a str> {
    let mut segments = resource_id.split('/');
    while let Some(segment) = segments.next() {
        if segment.eq_ignore_ascii_case(marker) {
            return segments.next().filter(|s| !s.is_empty());
        }
    }
    None
}

/// One Azure diagnostic record: `properties.log` holds the audit event.
fn aks_record(record: &Map<String, Value>, limits: &Limits) -> Result<Event, FieldError> {
    match record.get("category").and_then(Value::as_str) {
        Some("kube-audit" | "kube-audit-admin") => {}
        _ => {
            return Err(FieldError::field(
                "category",
                "expected `kube-audit` or `kube-audit-admin`",
            ))
        }
    }
    let properties = opt_obj(record, "properties", "")?
        .ok_or_else(|| FieldError::field("properties", "expected an object holding `log`"))?;
    let audit = match properties.get("log") {
        Some(Value::String(log)) => embedded_audit(log, "properties.log", limits)?,
        Some(Value::Object(audit)) => audit.clone(),
        other => {
            let found = other.map_or_else(|| "nothing".to_string(), describe);
            return Err(FieldError::field(
                "properties.log",
                format!("expected the audit `Event` as JSON text, found {found}"),
            ));
        }
    };
    let resource_id = opt_str(record, "resourceId", "")?;
    let origin = Origin {
        // Azure upper-cases resource ids; resource names are case-insensitive there.
        cluster: resource_id
            .and_then(|id| azure_segment(id, "managedClusters"))
            .map(str::to_ascii_lowercase),
        cloud_provider: Some("azure"),
        fallback_time: record.get("time").and_then(parse_timestamp),
    };
    let mut event =
        map_audit_event(audit, &origin).map_err(|error| error.within("properties.log"))?;
    if let Some(id) = resource_id {
        event.set("azure.resource.id", json!(id));
        event.set_if_present("cloud.account.id", text(azure_segment(id, "subscriptions")));
        event.set_if_present(
            "azure.resource.group",
            text(azure_segment(id, "resourceGroups")),
        );
    }
    event.set_if_present("azure.category", record.get("category").cloned());
    event.set_if_present(
        "azure.aks.pod",
        properties.get("pod").filter(|v| v.is_string()).cloned(),
    );
    Ok(event)
}

/// What a line forced to `source` (`eks`, `aks`, `gke`) must look like.
pub(crate) fn expected_shape(source: &str) -> &'static str {
    match source {
        "eks" => "expected an EKS audit record (a CloudWatch Logs record or subscription batch, or an audit `Event`)",
        "aks" => "expected an AKS `kube-audit` diagnostic record, a `records` batch, or an audit `Event`",
        _ => "expected a GKE Cloud Audit Log entry with `protoPayload.serviceName` `k8s.io`",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_come_from_envelopes() {
        assert_eq!(eks_cluster("/aws/eks/prod-eu/cluster"), Some("prod-eu"));
        assert_eq!(eks_cluster("/aws/lambda/fn"), None);
        let id = "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG-1/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS-PROD";
        assert_eq!(azure_segment(id, "managedClusters"), Some("AKS-PROD"));
        assert_eq!(azure_segment(id, "subscriptions"), Some("0000"));
    }

    #[test]
    fn raw_items_keep_exact_text() {
        let line = r#"{"records":[ {"a" : 1},{"b":"\u0041"} ],"x":2}"#;
        assert_eq!(
            raw_items(line, "records"),
            vec![r#"{"a" : 1}"#, r#"{"b":"\u0041"}"#]
        );
        assert!(raw_items(line, "missing").is_empty());
    }
}
