//! EKS, AKS and GKE audit records land in the same fields as the native audit event.
//!
//! `tests/golden/k8s_audit/managed_reference.input` holds three native audit events written
//! by us (a pod exec, a cluster-admin binding, a forbidden secrets list). The EKS and AKS
//! inputs wrap exactly these events the way CloudWatch Logs and Azure diagnostics deliver
//! them; the GKE input describes the same three requests as Cloud Audit Log entries.

mod common;

use common::{assert_golden, read_golden, snapshot};
use crowsnest_model::Event;
use crowsnest_normalize::{decode_ndjson, Decoded, Limits};
use serde_json::{json, Value};

/// Fields detection rules match on; every flavour must agree with the native event here.
const RULE_FIELDS: &[&str] = &[
    "@timestamp",
    "event.kind",
    "event.category",
    "event.type",
    "event.action",
    "event.outcome",
    "event.dataset",
    "event.module",
    "user.name",
    "source.ip",
    "related.ip",
    "user_agent.original",
    "orchestrator.type",
    "orchestrator.namespace",
    "orchestrator.resource.type",
    "orchestrator.resource.subresource",
    "orchestrator.resource.name",
    "orchestrator.api_group",
    "orchestrator.api_version",
    "kubernetes.namespace",
    "kubernetes.pod.name",
    "kubernetes.audit.decision",
];

/// Fields the envelopes of EKS and AKS carry unchanged too (GKE has no groups, no stage
/// time and only a gRPC status).
const AUDIT_ONLY_FIELDS: &[&str] = &[
    "user.id",
    "user.roles",
    "event.end",
    "event.reason",
    "url.original",
    "http.response.status_code",
    "message",
    "k8s.audit",
];

fn decode(relative: &str, source: Option<&str>) -> Decoded {
    decode_ndjson(&read_golden(relative), source, &Limits::default())
}

fn native() -> Vec<Event> {
    let decoded = decode("k8s_audit/managed_reference.input", None);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), 3);
    decoded.events
}

fn assert_same(actual: &Event, expected: &Event, fields: &[&str], what: &str) {
    for field in fields {
        assert_eq!(actual.get(field), expected.get(field), "{what}: `{field}`");
    }
    assert!(
        expected.get("event.action").is_some(),
        "reference is mapped"
    );
}

#[test]
fn eks_cloudwatch_record_maps_like_native() {
    let line = read_golden("eks/cloudwatch_record.input");
    let decoded = decode("eks/cloudwatch_record.input", None);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let event = &decoded.events[0];
    let reference = &native()[0];
    assert_same(event, reference, RULE_FIELDS, "eks record");
    assert_same(event, reference, AUDIT_ONLY_FIELDS, "eks record");
    assert_eq!(event.get_str("cloud.provider"), Some("aws"));
    assert_eq!(event.get_str("orchestrator.cluster.name"), Some("prod-eu"));
    assert_eq!(
        event.get_str("aws.cloudwatch.log_group"),
        Some("/aws/eks/prod-eu/cluster")
    );
    let text = std::str::from_utf8(&line).expect("utf-8");
    assert_eq!(event.get_str("event.original"), Some(text.trim_end()));
}

#[test]
fn eks_subscription_batch_yields_one_event_per_log_event() {
    let line = read_golden("eks/subscription_batch.input");
    let input: Value = serde_json::from_slice(&line).expect("JSON");
    let decoded = decode("eks/subscription_batch.input", None);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let reference = native();
    assert_eq!(decoded.events.len(), reference.len());
    let text = std::str::from_utf8(&line).expect("utf-8");
    for (index, (event, expected)) in decoded.events.iter().zip(&reference).enumerate() {
        assert_same(event, expected, RULE_FIELDS, "eks batch");
        assert_same(event, expected, AUDIT_ONLY_FIELDS, "eks batch");
        assert_eq!(event.get_str("cloud.account.id"), Some("111122223333"));
        assert_eq!(event.get_str("orchestrator.cluster.name"), Some("prod-eu"));
        let original = event.get_str("event.original").expect("original");
        assert!(text.contains(original), "the item's exact text");
        let item: Value = serde_json::from_str(original).expect("item JSON");
        assert_eq!(item, input["logEvents"][index]);
    }
    assert_eq!(
        decoded.events[1].get("event.category"),
        Some(&json!(["api", "iam"]))
    );
}

#[test]
fn bare_audit_events_forced_to_eks_or_aks_get_the_cloud() {
    let reference = native();
    for (source, cloud) in [("eks", "aws"), ("aks", "azure")] {
        let decoded = decode("k8s_audit/managed_reference.input", Some(source));
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        for (event, expected) in decoded.events.iter().zip(&reference) {
            assert_same(event, expected, RULE_FIELDS, source);
            assert_eq!(event.get_str("cloud.provider"), Some(cloud));
        }
    }
    let gke = decode("k8s_audit/managed_reference.input", Some("gke"));
    assert!(gke.events.is_empty());
    assert_eq!(
        gke.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn aks_diagnostic_record_maps_like_native() {
    let decoded = decode("aks/diagnostic_record.input", None);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let event = &decoded.events[0];
    assert_same(event, &native()[0], RULE_FIELDS, "aks record");
    assert_same(event, &native()[0], AUDIT_ONLY_FIELDS, "aks record");
    assert_eq!(event.get_str("cloud.provider"), Some("azure"));
    assert_eq!(
        event.get_str("orchestrator.cluster.name"),
        Some("aks-prod-we")
    );
    assert_eq!(
        event.get_str("cloud.account.id"),
        Some("0B5E6F0A-2C4D-4E8F-9A1B-3C5D7E9F1A2B")
    );
    assert_eq!(event.get_str("azure.resource.group"), Some("RG-PAYMENTS"));
    assert_eq!(
        event.get_str("azure.aks.pod"),
        Some("kube-apiserver-6d8c7b9f5-q2r8t")
    );
}

#[test]
fn aks_event_hub_batch_maps_audit_records_and_keeps_others() {
    let decoded = decode("aks/eventhub_batch.input", None);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), 4);
    let reference = native();
    let audit: Vec<&Event> = [0, 1, 3].iter().map(|&i| &decoded.events[i]).collect();
    for (event, expected) in audit.iter().zip(&reference) {
        assert_same(event, expected, RULE_FIELDS, "aks batch");
        assert_eq!(event.get_str("cloud.provider"), Some("azure"));
    }
    assert_eq!(audit[1].get_str("azure.category"), Some("kube-audit-admin"));
    // The apiserver's own log line is not audit: kept as a generic event.
    let other = &decoded.events[2];
    assert_eq!(other.get_str("event.dataset"), Some("ndjson"));
    assert_eq!(other.get_str("category"), Some("kube-apiserver"));
    assert_eq!(
        other.get_str("@timestamp"),
        Some("2024-05-14T09:12:40.119000Z")
    );
}

#[test]
fn gke_entries_map_like_native() {
    let decoded = decode("gke/audit_entries.input", None);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let reference = native();
    assert_eq!(decoded.events.len(), reference.len());
    for (event, expected) in decoded.events.iter().zip(&reference) {
        assert_same(event, expected, RULE_FIELDS, "gke");
        assert_eq!(event.get_str("cloud.provider"), Some("gcp"));
        assert_eq!(event.get_str("cloud.project.id"), Some("acme-prod"));
        assert_eq!(event.get_str("cloud.region"), Some("europe-west1"));
        assert_eq!(event.get_str("orchestrator.cluster.name"), Some("prod-eu"));
        assert_eq!(
            event.get_str("gcp.audit.protoPayload.serviceName"),
            Some("k8s.io")
        );
        assert_eq!(
            event.get("k8s.audit.auditID"),
            expected.get("k8s.audit.auditID")
        );
    }
    let exec = &decoded.events[0];
    assert_eq!(exec.get("http.response.status_code"), Some(&json!(200)));
    assert_eq!(exec.get("event.reason"), reference[0].get("event.reason"));
    // The binding's request body moved to where native rules look for it.
    let binding = &decoded.events[1];
    assert_eq!(
        binding.get("k8s.audit.requestObject.roleRef.name"),
        Some(&json!("cluster-admin"))
    );
    assert_eq!(
        binding.get("gcp.audit.protoPayload.request"),
        None,
        "moved, not copied"
    );
    let forbidden = &decoded.events[2];
    assert_eq!(
        forbidden.get("http.response.status_code"),
        Some(&json!(403))
    );
    assert_eq!(
        forbidden.get_str("message"),
        Some("system:serviceaccount:payments:api list secrets in kube-system -> 403 (forbid)")
    );
}

#[test]
fn golden_outputs_of_managed_inputs() {
    for case in [
        "eks/cloudwatch_record",
        "eks/subscription_batch",
        "aks/diagnostic_record",
        "aks/eventhub_batch",
        "gke/audit_entries",
    ] {
        let decoded = decode(&format!("{case}.input"), None);
        assert_golden(&format!("{case}.expected.json"), &snapshot(&decoded, false));
    }
}

#[test]
fn bad_items_in_batches_are_named_and_the_rest_survive() {
    let exec = serde_json::to_string(&native()[0].get("k8s.audit")).expect("JSON");
    let group = "/aws/eks/prod-eu/cluster";
    let batch = json!({
        "messageType": "DATA_MESSAGE", "logGroup": group, "logStream": "kube-apiserver-audit-1",
        "logEvents": [
            {"id": "1", "timestamp": 1, "message": exec},
            {"id": "2", "timestamp": 2, "message": "not json"},
            {"id": "3", "timestamp": 3, "message": "{\"kind\":\"Event\",\"verb\":[1]}"},
            7,
        ]
    });
    let control = json!({"messageType": "CONTROL_MESSAGE", "logGroup": group, "logEvents": [
        {"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination"}]});
    let aks_bad = json!({"records": [{"category": "kube-audit", "properties": {"log": 5}}]});
    let gke_bad = json!({"protoPayload": {"serviceName": "k8s.io", "methodName": 12}});
    let body = [batch, control, aks_bad, gke_bad]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");

    let decoded = decode_ndjson(body.as_bytes(), None, &Limits::default());
    assert_eq!(decoded.events.len(), 1, "only the good log event");
    assert_eq!(decoded.events[0].get_str("event.action"), Some("create"));
    let errors: Vec<(usize, Option<&str>)> = decoded
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (1, Some("logEvents[1].message")),
            (1, Some("logEvents[2].message.verb")),
            (1, Some("logEvents[3]")),
            // line 2, the control message, is neither an event nor an error
            (3, Some("records[0].properties.log")),
            (4, Some("protoPayload.methodName")),
        ]
    );
    assert!(
        decoded.errors[0].reason.starts_with("expected valid JSON"),
        "{}",
        decoded.errors[0].reason
    );

    // An empty batch is a mistake when the sender says it is AKS; undetected otherwise.
    let empty = decode_ndjson(br#"{"records": []}"#, Some("aks"), &Limits::default());
    assert_eq!(empty.errors.len(), 1);
    assert_eq!(empty.errors[0].field.as_deref(), Some("records"));
    let auto = decode_ndjson(br#"{"records": []}"#, None, &Limits::default());
    assert_eq!(
        auto.events.len(),
        1,
        "an ordinary object when nothing says AKS"
    );
}
