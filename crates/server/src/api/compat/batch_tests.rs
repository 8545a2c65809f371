//! Issue 17: a record that holds many events is stored as all of them, on every input, and
//! the answer counts them. The audit events are real recordings (Falco's k8s_audit traces in
//! `shared/testdata`) in the envelopes AWS and Kubernetes document.

use std::io::Write;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use serde_json::{json, Value};

use crate::api::tests::{harness_with, Harness};

const TRACES: [&str; 4] = [
    "anonymous_creates_namespace_foo.json",
    "create_kube_system_secret.json",
    "create_service_account_token_secret.json",
    "create_nginx_pod_unsensitive_mount.json",
];

fn audit_texts() -> Vec<String> {
    TRACES
        .iter()
        .map(|file| {
            let path = format!(
                "{}/../../../shared/testdata/k8s-audit/falco-traces/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{path}: {e}"))
                .trim()
                .to_string()
        })
        .collect()
}

fn users() -> Vec<String> {
    audit_texts()
        .iter()
        .map(|t| {
            let audit: Value = serde_json::from_str(t).expect("json");
            audit["user"]["username"]
                .as_str()
                .expect("user")
                .to_string()
        })
        .collect()
}

fn eks_batch() -> Value {
    let log_events: Vec<Value> = audit_texts()
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            json!({"id": format!("3826234039152068371730246348872945739271029872213685043{i}"),
                   "timestamp": 1_700_000_000_000u64 + i as u64, "message": message})
        })
        .collect();
    json!({"messageType": "DATA_MESSAGE", "owner": "111122223333",
           "logGroup": "/aws/eks/prod-eu/cluster",
           "logStream": "kube-apiserver-audit-3c4b9f0e8d7a6b5c4d3e2f1a0b9c8d7e",
           "subscriptionFilters": ["crowsnest-audit"], "logEvents": log_events})
}

fn control_message() -> Value {
    json!({"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
           "logStream": "", "subscriptionFilters": [],
           "logEvents": [{"id": "", "timestamp": 1_700_000_000_000u64,
                          "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]})
}

fn event_list(extra: &[&str]) -> String {
    let mut items = audit_texts();
    items.extend(extra.iter().map(|s| s.to_string()));
    format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
        items.join(",")
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

async fn quiet_harness() -> Harness {
    // Counts are of the ingested events alone: no detection alerts beside them.
    harness_with(|config| config.detect.enabled = false).await
}

/// Each user of the four audit events is found exactly `times` times, and there are
/// `4 * times` audit events in all, each with its own item as `event.original`.
async fn assert_audit_searchable(h: &Harness, times: usize) {
    h.settle().await;
    let all = h.search("event.dataset:kubernetes.audit").await;
    assert_eq!(all["total"], 4 * times, "{all}");
    for user in users() {
        let found = h.search(&format!("user.name:\"{user}\"")).await;
        assert_eq!(found["total"], times, "{user}: {found}");
        let original = found["hits"][0]["event"]["original"].as_str().unwrap_or("");
        assert!(!original.contains("logEvents"), "not the whole batch");
        assert!(!original.contains("EventList"), "not the whole list");
    }
}

fn stored(headers: &axum::http::HeaderMap) -> u64 {
    headers["x-crowsnest-events-stored"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("x-crowsnest-events-stored")
}

#[tokio::test]
async fn es_bulk_stores_all_four_audit_events_of_an_eks_batch() {
    let h = quiet_harness().await;
    let body = format!(
        "{{\"create\":{{\"_index\":\"logs-eks\"}}}}\n{}\n{{\"create\":{{\"_index\":\"logs-eks\"}}}}\n{}\n",
        eks_batch(),
        control_message()
    );
    let (status, headers, answer) = h
        .call(h.post("/es/_bulk", "application/x-ndjson", body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["errors"], false);
    let items = answer["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "one item per action line");
    assert_eq!(items[0]["create"]["status"], 201);
    assert_eq!(items[1]["create"]["result"], "noop");
    assert_eq!(items[1]["create"]["status"], 200);
    assert_eq!(stored(&headers), 4);
    assert_eq!(headers["x-crowsnest-items-rejected"], "0");
    assert_audit_searchable(&h, 1).await;
    let found = h.search("orchestrator.cluster.name:\"prod-eu\"").await;
    assert_eq!(found["total"], 4);
}

#[tokio::test]
async fn es_bulk_gzip_bodies_lambda_payloads_and_partly_bad_lists() {
    let h = quiet_harness().await;
    let awslogs =
        base64::engine::general_purpose::STANDARD.encode(gzip(eks_batch().to_string().as_bytes()));
    let body = format!(
        "{{\"index\":{{}}}}\n{}\n{{\"index\":{{}}}}\n{}\n",
        json!({"awslogs": {"data": awslogs}}),
        event_list(&["42"])
    );
    let request = Request::post("/es/audit/_bulk")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gzip(body.as_bytes())))
        .expect("request");
    let (status, headers, answer) = h.call(request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["errors"], true);
    assert_eq!(answer["items"][0]["index"]["status"], 201);
    let failed = &answer["items"][1]["index"];
    assert_eq!(failed["status"], 400, "{answer}");
    let reason = failed["error"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("items[4]"), "{reason}");
    assert!(reason.contains("4 other event(s)"), "{reason}");
    assert_eq!(stored(&headers), 8);
    assert_eq!(headers["x-crowsnest-items-rejected"], "1");
    assert_audit_searchable(&h, 2).await;
}

fn splunk(h: &Harness, body: impl Into<Body>) -> Request<Body> {
    Request::post("/services/collector/event")
        .header(header::AUTHORIZATION, format!("Splunk {}", h.token))
        .body(body.into())
        .expect("request")
}

#[tokio::test]
async fn hec_event_lists_and_batches_are_stored_whole_and_counted() {
    let h = quiet_harness().await;
    // Was one generic event: none of the audit events searchable by user.
    let body = format!(
        r#"{{"time":1714557600,"host":"cp-1","sourcetype":"kube:apiserver:audit","event":{}}}{}"#,
        event_list(&[]),
        json!({"event": eks_batch()})
    );
    let (status, headers, answer) = h.call(splunk(&h, body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["code"], 0);
    assert_eq!(answer["accepted"], 8);
    assert_eq!(stored(&headers), 8);
    assert_audit_searchable(&h, 2).await;
    let from_cp = h.search("host.name:\"cp-1\"").await;
    assert_eq!(from_cp["total"], 4);

    let bad = format!(r#"{{"event":{}}}"#, event_list(&["\"text\""]));
    let (status, headers, answer) = h.call(splunk(&h, bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["code"], 6);
    assert_eq!(answer["invalid-event-number"], 0);
    assert_eq!(answer["accepted"], 4);
    assert_eq!(answer["rejected"], 1);
    assert!(
        answer["reason"]
            .as_str()
            .is_some_and(|r| r.contains("event.items[4]")),
        "{answer}"
    );
    assert_eq!(stored(&headers), 4);
    assert_audit_searchable(&h, 3).await;
}

#[tokio::test]
async fn ndjson_endpoint_splits_lists_and_batches() {
    let h = quiet_harness().await;
    let body = format!(
        "{}\n{}\n{}\n",
        event_list(&[]),
        eks_batch(),
        control_message()
    );
    let (status, _, report) = h
        .call(h.post("/api/v1/ingest/ndjson", "application/x-ndjson", body))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["accepted"], 8);
    assert_eq!(report["rejected"], 0);
    assert_audit_searchable(&h, 2).await;
}

#[tokio::test]
async fn otlp_counts_every_record_of_every_resource_and_scope() {
    let h = quiet_harness().await;
    let record = |n: usize| json!({"timeUnixNano": "1714557600000000000", "body": {"stringValue": format!("otlp batch record {n}")}});
    let scope = |first: usize| json!({"scope": {"name": "s"}, "logRecords": [record(first), record(first + 1)]});
    let resource = |ns: &str, first: usize| {
        json!({"resource": {"attributes": [{"key": "k8s.namespace.name", "value": {"stringValue": ns}}]},
               "scopeLogs": [scope(first), scope(first + 2)]})
    };
    let body = json!({"resourceLogs": [resource("batch-a", 0), resource("batch-b", 4)]});
    let (status, headers, _) = h
        .call(h.post("/v1/logs", "application/json", body.to_string()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored(&headers), 8);
    h.settle().await;
    let found = h.search("\"otlp batch record\"").await;
    assert_eq!(found["total"], 8, "{found}");
    let b = h.search("kubernetes.namespace:\"batch-b\"").await;
    assert_eq!(b["total"], 4);
}

#[tokio::test]
async fn falco_arrays_store_every_alert() {
    let h = quiet_harness().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/falco/falcosidekick-examples.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("falco samples (shared/testdata)");
    let alerts: Vec<String> = text
        .lines()
        .map(|line| {
            let sample: Value = serde_json::from_str(line).expect("json");
            sample["alert"].to_string()
        })
        .collect();
    let body = format!("[{}]", alerts.join(","));
    let (status, _, report) = h
        .call(h.post("/api/v1/ingest/falco", "application/json", body))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["accepted"], alerts.len());
    h.settle().await;
    let found = h.search("event.module:falco").await;
    assert_eq!(found["total"], alerts.len(), "{found}");
}

#[tokio::test]
async fn forward_listener_stores_every_event_of_a_packed_batch() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = harness_with(|config| {
        config.detect.enabled = false;
        config
            .inputs
            .push(crowsnest_ingest::listen::InputConfig::forward(
                "127.0.0.1:0",
            ));
    })
    .await;
    let addr = h
        .running
        .listeners
        .iter()
        .find(|l| l.protocol == "forward")
        .map(|l| l.local_addr)
        .expect("listener");
    let list: Value = serde_json::from_str(&event_list(&[])).expect("json");
    let mut entries = Vec::new();
    for (time, record) in [(1_714_557_600u32, list), (1_714_557_601, eks_batch())] {
        let entry = rmpv::Value::Array(vec![rmpv::Value::from(time), pack(&record)]);
        rmpv::encode::write_value(&mut entries, &entry).expect("encode");
    }
    let message = rmpv::Value::Array(vec![
        rmpv::Value::from("kube.audit"),
        rmpv::Value::Binary(gzip(&entries)),
        rmpv::Value::Map(vec![
            (rmpv::Value::from("compressed"), rmpv::Value::from("gzip")),
            (rmpv::Value::from("chunk"), rmpv::Value::from("b1")),
        ]),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &message).expect("encode");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&bytes).await.expect("write");
    let mut ack = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut ack))
        .await
        .expect("ack in time")
        .expect("read");
    assert_eq!(&ack[..n], crowsnest_ingest::fluent::ack("b1").as_slice());
    assert_audit_searchable(&h, 2).await;
    let tagged = h.search("fluent.tag:\"kube.audit\"").await;
    assert_eq!(tagged["total"], 8);
}

/// JSON → MessagePack.
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
