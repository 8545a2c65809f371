//! A record that holds many events becomes all of them, on every input: audit `EventList`s,
//! CloudWatch Logs subscription batches (plain and as a Lambda's gzip'd `awslogs.data`),
//! Fluent forward modes, HEC batches, Elasticsearch bulk documents, Falco arrays, OTLP
//! resources and scopes. The audit events are real recordings from `shared/testdata`
//! (Falco's k8s_audit traces), wrapped in the envelopes AWS and Kubernetes document.

use std::io::Write;

use base64::Engine;
use crowsnest_ingest::{es_bulk, falco, fluent, otlp, splunk_hec, Decoded, Limits};
use serde_json::{json, Value};

fn testdata(path: &str) -> String {
    let full = format!(
        "{}/../../../shared/testdata/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

/// Four recorded audit events from four different users, each as its exact text.
fn audit_texts() -> Vec<String> {
    [
        "anonymous_creates_namespace_foo.json",
        "create_kube_system_secret.json",
        "create_service_account_token_secret.json",
        "create_nginx_pod_unsensitive_mount.json",
    ]
    .iter()
    .map(|file| {
        testdata(&format!("k8s-audit/falco-traces/{file}"))
            .trim()
            .to_string()
    })
    .collect()
}

fn users() -> Vec<String> {
    audit_texts()
        .iter()
        .map(|text| {
            let audit: Value = serde_json::from_str(text).expect("json");
            audit["user"]["username"]
                .as_str()
                .expect("username")
                .to_string()
        })
        .collect()
}

/// An EKS CloudWatch Logs subscription batch (`DATA_MESSAGE`) of the four audit events.
fn eks_batch() -> Value {
    let log_events: Vec<Value> = audit_texts()
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            json!({"id": format!("3826234039152068371730246348872945739271029872213685043{i}"),
                   "timestamp": 1_700_000_000_000u64 + i as u64, "message": message})
        })
        .collect();
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "/aws/eks/prod-eu/cluster",
        "logStream": "kube-apiserver-audit-3c4b9f0e8d7a6b5c4d3e2f1a0b9c8d7e",
        "subscriptionFilters": ["crowsnest-audit"],
        "logEvents": log_events,
    })
}

/// The health check CloudWatch sends when a subscription is created.
fn control_message() -> Value {
    json!({"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
           "logStream": "", "subscriptionFilters": [],
           "logEvents": [{"id": "", "timestamp": 1_700_000_000_000u64,
                          "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]})
}

/// The four audit events as the webhook backend batches them, items as their exact text,
/// with `extra` items appended.
fn event_list(extra: &[&str]) -> String {
    let mut items = audit_texts();
    items.extend(extra.iter().map(|s| s.to_string()));
    format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
        items.join(",")
    )
}

/// What a Lambda subscribed to the log group receives: the batch, gzip'd and base64'd.
fn lambda_awslogs(batch: &Value) -> Value {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(batch.to_string().as_bytes()).expect("gzip");
    let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"));
    json!({"awslogs": {"data": data}})
}

/// The user names of the audit events, in order.
fn audit_users(decoded: &[crowsnest_model::Event]) -> Vec<String> {
    decoded
        .iter()
        .filter(|e| e.get_str("event.dataset") == Some("kubernetes.audit"))
        .map(|e| e.get_str("user.name").unwrap_or("?").to_string())
        .collect()
}

/// Each audit event keeps its own item's text as `event.original`, never the whole batch:
/// the audit event itself (an `EventList` item) or the log event holding it (a CloudWatch
/// batch).
fn assert_own_originals(events: &[crowsnest_model::Event], whole: &str) {
    let audits: Vec<Value> = audit_texts()
        .iter()
        .map(|t| serde_json::from_str(t).expect("json"))
        .collect();
    for event in events {
        let original = event.get_str("event.original").expect("original");
        assert_ne!(original, whole, "not the whole batch");
        let item: Value = serde_json::from_str(original).expect("an item's JSON");
        let audit = match item.get("message").and_then(Value::as_str) {
            Some(message) => serde_json::from_str(message).expect("audit JSON"),
            None => item,
        };
        assert!(
            audits.contains(&audit),
            "original is one item: {original:.120}"
        );
    }
}

fn bulk(docs: &[String]) -> Vec<u8> {
    let mut body = String::new();
    for doc in docs {
        body.push_str("{\"create\":{\"_index\":\"logs-eks\"}}\n");
        body.push_str(doc);
        body.push('\n');
    }
    body.into_bytes()
}

#[test]
fn es_bulk_stores_every_event_of_an_eks_subscription_batch() {
    // The loss of issue 17: 4 audit events in one document, 1 stored, answered "created".
    let doc = eks_batch().to_string();
    let request =
        es_bulk::decode(&bulk(std::slice::from_ref(&doc)), None, &Limits::default()).expect("bulk");
    assert_eq!(request.items.len(), 1, "one item per action line");
    assert_eq!(request.items[0].error, None);
    assert_eq!(request.items[0].events, 4);
    assert_eq!(audit_users(&request.events), users());
    assert_own_originals(&request.events, &doc);
    let first = &request.events[0];
    assert_eq!(first.get_str("es.index"), Some("logs-eks"));
    assert_eq!(first.get_str("orchestrator.cluster.name"), Some("prod-eu"));
    assert_eq!(first.get_str("cloud.account.id"), Some("111122223333"));
}

#[test]
fn es_bulk_splits_every_batch_shape_and_counts_per_item() {
    let docs = vec![
        event_list(&[]),
        control_message().to_string(),
        lambda_awslogs(&eks_batch()).to_string(),
        r#"{"message":"plain","@timestamp":"2024-05-01T10:00:00Z"}"#.to_string(),
        event_list(&["42", r#"{"auditID":"x","verb":7}"#]),
    ];
    let request = es_bulk::decode(&bulk(&docs), None, &Limits::default()).expect("bulk");
    let counts: Vec<usize> = request.items.iter().map(|i| i.events).collect();
    assert_eq!(counts, vec![4, 0, 4, 1, 4]);
    assert_eq!(request.events.len(), 13);
    let statuses: Vec<Option<u16>> = request
        .items
        .iter()
        .map(|i| i.error.as_ref().map(|e| e.status))
        .collect();
    assert_eq!(statuses, vec![None, None, None, None, Some(400)]);
    let reason = &request.items[4].error.as_ref().expect("error").reason;
    assert!(reason.starts_with("line 10: `items[4]`"), "{reason}");
    assert!(reason.contains("`items[5].verb`"), "{reason}");
    assert!(reason.contains("4 other event(s)"), "{reason}");
    let mut expected = users();
    expected.extend(users());
    expected.extend(users());
    assert_eq!(audit_users(&request.events), expected);
    assert_own_originals(&request.events[..4], &docs[0]);
    assert_own_originals(&request.events[4..8], &docs[2]);
    assert_eq!(
        request.events[8].get_str("event.original"),
        Some(docs[3].as_str()),
        "a single event keeps its document"
    );
}

#[test]
fn es_bulk_caps_events_per_request_with_errors() {
    let limits = Limits {
        max_events: 6,
        ..Limits::default()
    };
    let docs = vec![event_list(&[]), eks_batch().to_string()];
    let request = es_bulk::decode(&bulk(&docs), None, &limits).expect("bulk");
    assert_eq!(request.events.len(), 6);
    assert_eq!(request.items[1].events, 2);
    let error = request.items[1].error.as_ref().expect("refused");
    assert!(
        error
            .reason
            .contains("2 event(s) of this record were refused"),
        "{}",
        error.reason
    );
}

#[test]
fn hec_stores_every_event_of_an_event_list() {
    // Was one generic event, none of the audit events searchable by user.
    let body = format!(
        r#"{{"time": 1714557600, "host": "cp-1", "sourcetype": "kube:apiserver:audit", "index": "k8s", "event": {}}}"#,
        event_list(&[])
    );
    let decoded = splunk_hec::decode_events(body.as_bytes(), None, &Limits::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(audit_users(&decoded.events), users());
    assert_own_originals(&decoded.events, &body);
    for (event, text) in decoded.events.iter().zip(audit_texts()) {
        assert_eq!(event.get_str("event.original"), Some(text.as_str()));
        assert_eq!(event.get_str("splunk.index"), Some("k8s"));
        assert_eq!(event.get_str("host.name"), Some("cp-1"));
        let audit: Value = serde_json::from_str(&text).expect("json");
        let own_time = audit["requestReceivedTimestamp"].as_str().expect("time");
        assert_eq!(
            event.get_str("@timestamp").map(|t| &t[..19]),
            Some(&own_time[..19]),
            "each audit event keeps its own time"
        );
    }
}

#[test]
fn hec_batches_of_batches_count_every_event_and_name_bad_records() {
    let body = [
        json!({"event": eks_batch()}).to_string(),
        json!({"event": "a plain line"}).to_string(),
        json!({"event": control_message()}).to_string(),
        format!(r#"{{"event": {}}}"#, event_list(&["[1]"])),
        json!({"event": lambda_awslogs(&eks_batch())}).to_string(),
    ]
    .join("\n");
    let decoded = splunk_hec::decode_events(body.as_bytes(), None, &Limits::default());
    assert_eq!(decoded.events.len(), 4 + 1 + 4 + 4);
    let errors: Vec<(usize, Option<&str>)> = decoded
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(errors, vec![(4, Some("event.items[4]"))]);
    assert_eq!(audit_users(&decoded.events).len(), 12);
    assert_eq!(
        decoded.events[4].get_str("message"),
        Some("a plain line"),
        "the string event between the batches"
    );
}

fn pack(value: &Value) -> rmpv::Value {
    match value {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::from(*b),
        Value::Number(n) => n
            .as_i64()
            .map(rmpv::Value::from)
            .or_else(|| n.as_f64().map(rmpv::Value::from))
            .unwrap_or(rmpv::Value::Nil),
        Value::String(s) => rmpv::Value::from(s.as_str()),
        Value::Array(items) => rmpv::Value::Array(items.iter().map(pack).collect()),
        Value::Object(map) => rmpv::Value::Map(
            map.iter()
                .map(|(k, v)| (rmpv::Value::from(k.as_str()), pack(v)))
                .collect(),
        ),
    }
}

fn encode(value: &rmpv::Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).expect("encode");
    out
}

#[test]
fn fluent_forward_and_packed_forward_split_every_record() {
    let list: Value = serde_json::from_str(&event_list(&[])).expect("json");
    let entries = vec![
        rmpv::Value::Array(vec![rmpv::Value::from(1_714_557_600u32), pack(&list)]),
        rmpv::Value::Array(vec![
            rmpv::Value::from(1_714_557_601u32),
            pack(&eks_batch()),
        ]),
        rmpv::Value::Array(vec![
            rmpv::Value::from(1_714_557_602u32),
            pack(&control_message()),
        ]),
        rmpv::Value::Array(vec![
            rmpv::Value::from(1_714_557_603u32),
            pack(&json!({"log": "plain"})),
        ]),
    ];
    let forward = rmpv::Value::Array(vec![
        rmpv::Value::from("kube.audit"),
        rmpv::Value::Array(entries.clone()),
    ]);
    let packed = rmpv::Value::Array(vec![
        rmpv::Value::from("kube.audit"),
        rmpv::Value::Binary(entries.iter().flat_map(encode).collect()),
    ]);
    for message in [forward, packed] {
        let bytes = encode(&message);
        let fluent::ForwardFrame::Complete { decoded, .. } =
            fluent::next_message(&bytes, &Limits::default())
        else {
            panic!("a message");
        };
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        assert_eq!(decoded.events.len(), 4 + 4 + 1);
        let mut expected = users();
        expected.extend(users());
        assert_eq!(audit_users(&decoded.events), expected);
        for event in &decoded.events {
            assert_eq!(event.get_str("fluent.tag"), Some("kube.audit"));
        }
        assert_own_originals(&decoded.events[..8], "");
        assert_eq!(
            decoded.events[8].get_str("@timestamp"),
            Some("2024-05-01T10:00:03.000000Z"),
            "a plain record takes the entry time"
        );
    }
}

#[test]
fn fluent_bad_records_inside_a_batch_fail_alone() {
    let list: Value = serde_json::from_str(&event_list(&["\"text\""])).expect("json");
    let message = rmpv::Value::Array(vec![
        rmpv::Value::from("t"),
        rmpv::Value::from(1_714_557_600u32),
        pack(&list),
    ]);
    let (decoded, _) = fluent::decode_value(message, &Limits::default()).expect("decodes");
    assert_eq!(decoded.events.len(), 4);
    assert_eq!(decoded.errors.len(), 1);
    assert_eq!(decoded.errors[0].line, 1);
    assert_eq!(decoded.errors[0].field.as_deref(), Some("items[4]"));
}

#[test]
fn falco_arrays_keep_every_alert_with_its_own_text() {
    let alerts: Vec<String> = testdata("falco/falco-test-output-single_rule_with_cat_write.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert!(alerts.len() >= 2);
    let body = format!("[\n{}\n]", alerts.join(",\n"));
    let decoded = falco::decode(body.as_bytes(), &Limits::default()).expect("decodes");
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), alerts.len());
    for (event, alert) in decoded.events.iter().zip(&alerts) {
        assert_eq!(event.get_str("event.original"), Some(alert.as_str()));
    }
}

#[test]
fn otlp_yields_every_record_of_every_resource_and_scope() {
    let record = |n: usize| json!({"timeUnixNano": "1714557600000000000", "body": {"stringValue": format!("record {n}")}});
    let scope = |first: usize| json!({"scope": {"name": "s"}, "logRecords": [record(first), record(first + 1)]});
    let resource = |ns: &str, first: usize| {
        json!({"resource": {"attributes": [{"key": "k8s.namespace.name", "value": {"stringValue": ns}}]},
               "scopeLogs": [scope(first), scope(first + 2)]})
    };
    let body = json!({"resourceLogs": [resource("a", 0), resource("b", 4)]}).to_string();
    let decoded: Decoded =
        otlp::decode(body.as_bytes(), otlp::OtlpFormat::Json, &Limits::default()).expect("otlp");
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let messages: Vec<&str> = decoded
        .events
        .iter()
        .map(|e| e.get_str("message").unwrap_or(""))
        .collect();
    let expected: Vec<String> = (0..8).map(|n| format!("record {n}")).collect();
    assert_eq!(messages, expected);
    let namespaces: Vec<&str> = decoded
        .events
        .iter()
        .map(|e| e.get_str("kubernetes.namespace").unwrap_or(""))
        .collect();
    assert_eq!(namespaces, ["a", "a", "a", "a", "b", "b", "b", "b"]);
}

#[test]
fn fluent_events_over_the_limit_are_each_reported() {
    let list: Value = serde_json::from_str(&event_list(&[])).expect("json");
    let entry = |record: &Value| {
        rmpv::Value::Array(vec![rmpv::Value::from(1_714_557_600u32), pack(record)])
    };
    let message = rmpv::Value::Array(vec![
        rmpv::Value::from("t"),
        rmpv::Value::Array(vec![
            entry(&list),
            entry(&eks_batch()),
            entry(&json!({"log": "third"})),
        ]),
    ]);
    let limits = Limits {
        max_events: 6,
        ..Limits::default()
    };
    let (decoded, _) = fluent::decode_value(message, &limits).expect("decodes");
    assert_eq!(decoded.events.len(), 6);
    let lines: Vec<usize> = decoded.errors.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        vec![2, 3],
        "the refused part of entry 2, and entry 3"
    );
    assert!(
        decoded.errors[0].reason.contains("2 event(s)"),
        "{}",
        decoded.errors[0].reason
    );
}

#[test]
fn hec_objects_over_the_limit_are_each_reported() {
    let limits = Limits {
        max_events: 5,
        ..Limits::default()
    };
    let body = format!(
        r#"{{"event":{}}}{{"event":"two"}}{{"event":"three"}}"#,
        event_list(&[])
    );
    let decoded = splunk_hec::decode_events(body.as_bytes(), None, &limits);
    assert_eq!(decoded.events.len(), 5);
    let lines: Vec<usize> = decoded.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3]);
    let tight = Limits {
        max_events: 3,
        ..Limits::default()
    };
    let decoded = splunk_hec::decode_events(body.as_bytes(), None, &tight);
    assert_eq!(decoded.events.len(), 3);
    let lines: Vec<usize> = decoded.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![1, 2, 3], "the refused part of 1, then 2 and 3");
}
