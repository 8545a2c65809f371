//! NDJSON lines that hold many events: every one of them is decoded, each keeping its own
//! item's text, and a bad item is an error of its line naming the item while the others
//! survive.

mod common;

use common::read_testdata;
use crowsnest_normalize::{decode_ndjson, Limits};
use serde_json::{json, Value};

/// Recorded audit events of three different users, each as its exact text.
fn audit_texts() -> Vec<String> {
    [
        "anonymous_creates_namespace_foo.json",
        "create_kube_system_secret.json",
        "create_service_account_token_secret.json",
    ]
    .iter()
    .map(|file| {
        String::from_utf8(read_testdata(&format!("k8s-audit/falco-traces/{file}")))
            .expect("utf-8")
            .trim()
            .to_string()
    })
    .collect()
}

fn event_list(api_version: Option<&str>, extra: &[&str]) -> String {
    let mut items = audit_texts();
    items.extend(extra.iter().map(|s| s.to_string()));
    let version = api_version
        .map(|v| format!(r#""apiVersion":"{v}","#))
        .unwrap_or_default();
    format!(
        r#"{{"kind":"EventList",{version}"metadata":{{}},"items":[{}]}}"#,
        items.join(", ")
    )
}

#[test]
fn an_event_list_line_yields_every_item_with_its_own_text() {
    let line = event_list(Some("audit.k8s.io/v1"), &[]);
    for source in [None, Some("kubernetes.audit"), Some("myapp")] {
        let decoded = decode_ndjson(line.as_bytes(), source, &Limits::default());
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        assert_eq!(decoded.events.len(), 3, "source {source:?}");
        let users: Vec<&str> = decoded
            .events
            .iter()
            .map(|e| e.get_str("user.name").unwrap_or(""))
            .collect();
        assert_eq!(
            users,
            [
                "system:anonymous",
                "admin",
                "system:kube-controller-manager"
            ]
        );
        for (event, text) in decoded.events.iter().zip(audit_texts()) {
            assert_eq!(event.get_str("event.dataset"), Some("kubernetes.audit"));
            assert_eq!(event.get_str("event.original"), Some(text.as_str()));
        }
    }
    // Without `apiVersion`, `kind: EventList` with `items` is enough.
    let bare = event_list(None, &[]);
    assert_eq!(
        decode_ndjson(bare.as_bytes(), None, &Limits::default())
            .events
            .len(),
        3
    );
    // EKS/AKS-forced lines may be lists too, and are stamped with their cloud.
    let eks = decode_ndjson(line.as_bytes(), Some("eks"), &Limits::default());
    assert_eq!(eks.events.len(), 3);
    assert_eq!(eks.events[0].get_str("cloud.provider"), Some("aws"));
}

#[test]
fn bad_items_of_a_list_are_named_and_the_rest_survive() {
    let line = event_list(
        Some("audit.k8s.io/v1"),
        &["42", r#"{"auditID":"x","verb":["get"]}"#],
    );
    let body = format!("{{\"msg\":\"before\"}}\n{line}\n{{\"msg\":\"after\"}}\n");
    let decoded = decode_ndjson(body.as_bytes(), None, &Limits::default());
    assert_eq!(decoded.events.len(), 5);
    let errors: Vec<(usize, Option<&str>)> = decoded
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        errors,
        vec![(2, Some("items[3]")), (2, Some("items[4].verb"))]
    );
    assert!(
        decoded.errors[0].reason.contains("found 42"),
        "{}",
        decoded.errors[0].reason
    );
    // An empty list holds no events: neither an event nor an error.
    let empty = decode_ndjson(
        br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}"#,
        None,
        &Limits::default(),
    );
    assert_eq!((empty.events.len(), empty.errors.len()), (0, 0));
}

#[test]
fn a_core_event_list_is_not_an_audit_list() {
    // `v1` `EventList` holds Kubernetes Events (a different thing): kept as it is.
    let line = r#"{"kind":"EventList","apiVersion":"v1","items":[{"reason":"Pulled"}]}"#;
    let decoded = decode_ndjson(line.as_bytes(), None, &Limits::default());
    assert_eq!(decoded.events.len(), 1);
    assert_eq!(decoded.events[0].get_str("event.dataset"), Some("ndjson"));
}

#[test]
fn any_cloudwatch_batch_yields_one_event_per_log_event() {
    let audit = audit_texts().remove(0);
    let batch = json!({
        "messageType": "DATA_MESSAGE", "owner": "111122223333",
        "logGroup": "/aws/lambda/checkout", "logStream": "2024/05/01/[$LATEST]abc",
        "subscriptionFilters": ["all"],
        "logEvents": [
            {"id": "1", "timestamp": 1_714_557_600_000u64, "message": "START RequestId: 42"},
            {"id": "2", "timestamp": 1_714_557_601_000u64, "message": "{\"level\":\"warn\",\"msg\":\"slow\"}"},
            {"id": "3", "timestamp": 1_714_557_602_000u64, "message": audit},
        ]
    });
    let decoded = decode_ndjson(
        batch.to_string().as_bytes(),
        Some("aws"),
        &Limits::default(),
    );
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), 3);
    let first = &decoded.events[0];
    assert_eq!(first.get_str("message"), Some("START RequestId: 42"));
    assert_eq!(first.get_str("event.dataset"), Some("aws"));
    assert_eq!(
        first.get_str("@timestamp"),
        Some("2024-05-01T10:00:00.000000Z")
    );
    assert_eq!(
        first.get_str("aws.cloudwatch.log_group"),
        Some("/aws/lambda/checkout")
    );
    assert_eq!(first.get_str("aws.cloudwatch.id"), Some("1"));
    assert_eq!(first.get_str("cloud.account.id"), Some("111122223333"));
    let second = &decoded.events[1];
    assert_eq!(second.get_str("message"), Some("slow"));
    assert_eq!(second.get_str("level"), Some("warn"));
    assert_eq!(
        decoded.events[2].get_str("event.dataset"),
        Some("kubernetes.audit")
    );
    assert_eq!(
        decoded.events[2].get_str("user.name"),
        Some("system:anonymous")
    );
    for event in &decoded.events {
        let original = event.get_str("event.original").expect("original");
        let item: Value = serde_json::from_str(original).expect("one log event");
        assert!(item.get("logEvents").is_none(), "not the whole batch");
        assert!(item.get("id").is_some());
    }
}

#[test]
fn eks_control_plane_streams_other_than_audit_are_kept_as_generic_events() {
    let batch = json!({
        "messageType": "DATA_MESSAGE", "owner": "111122223333",
        "logGroup": "/aws/eks/prod-eu/cluster", "logStream": "authenticator-3c4b9f0e8d7a",
        "logEvents": [
            {"id": "1", "timestamp": 1_714_557_600_000u64, "message": "time=\"2024-05-01T10:00:00Z\" level=info msg=\"access granted\""},
            {"id": "2", "timestamp": 1_714_557_601_000u64, "message": "time=\"2024-05-01T10:00:01Z\" level=info msg=\"access granted\""},
        ]
    });
    let decoded = decode_ndjson(batch.to_string().as_bytes(), None, &Limits::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), 2);
    assert_eq!(
        decoded.events[0].get_str("orchestrator.cluster.name"),
        Some("prod-eu")
    );
    assert_eq!(decoded.events[0].get_str("cloud.provider"), Some("aws"));
    // A control message, from any log group, is a health check: nothing, and no error.
    let control = json!({"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs",
        "logGroup": "", "logStream": "", "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1_714_557_600_000u64,
                       "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]});
    let decoded = decode_ndjson(control.to_string().as_bytes(), None, &Limits::default());
    assert_eq!((decoded.events.len(), decoded.errors.len()), (0, 0));
}
