//! Issue 21: records other shippers write arrive through their own protocols and land in the
//! same container and pod fields as everywhere else, the log line stored once. The records
//! are the tools' own (`crates/normalize/tests/samples`, sources in its README) or built in
//! their documented shapes.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use crate::api::tests::{harness_with, Harness};

fn samples(relative: &str) -> Vec<String> {
    let path = format!(
        "{}/../normalize/tests/samples/{relative}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {path}: {error}"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// What Fluent Bit's `kubernetes` filter makes of a payments pod's line.
fn fluent_bit_record(line: &str) -> Value {
    json!({
        "@timestamp": "2024-05-01T10:00:00.123Z",
        "log": format!("{line}\n"), "stream": "stdout", "time": "2024-05-01T10:00:00.123456789Z",
        "kubernetes": {
            "pod_name": "api-7d5b5dd9cf-t8ngb", "namespace_name": "payments",
            "pod_id": "76e27404-d87c-11e8-88b6-080027728ac4",
            "labels": {"app.kubernetes.io/name": "api", "pod-template-hash": "7d5b5dd9cf"},
            "annotations": {"prometheus.io/scrape": "true"},
            "host": "node-1", "container_name": "api",
            "docker_id": "3f2a9c1be47d5a0f6c2e8b9d1a7f4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e",
            "container_hash": "registry.example.com/payments/api@sha256:7ac0fd3569af866e9a6a22eb592744200d2dbe098cf066162453f8d0b06c531f",
            "container_image": "registry.example.com/payments/api:1.4.2"
        }
    })
}

async fn quiet_harness() -> Harness {
    harness_with(|config| config.detect.enabled = false).await
}

/// The one hit of `query`, asserted to be a container log line stored once.
async fn only_hit(h: &Harness, query: &str) -> Value {
    let found = h.search(query).await;
    assert_eq!(found["total"], 1, "{query}: {found}");
    let hit = found["hits"][0].clone();
    assert_eq!(hit["event"]["dataset"], "container.logs", "{hit}");
    for key in ["log", "MESSAGE", "short_message"] {
        assert!(
            !hit[key].is_string(),
            "`{key}` kept besides `message`: {hit}"
        );
    }
    assert!(hit["message"].is_string(), "{hit}");
    assert!(hit["event"]["original"].is_string(), "{hit}");
    hit
}

#[tokio::test]
async fn es_bulk_fluent_bit_kubernetes_records_are_found_by_namespace_pod_and_container() {
    let h = quiet_harness().await;
    let mut body = String::new();
    for record in [
        fluent_bit_record("charge accepted id=ch_42"),
        fluent_bit_record("refund queued id=re_7"),
    ] {
        body.push_str("{\"create\":{\"_index\":\"fluent-bit\"}}\n");
        body.push_str(&record.to_string());
        body.push('\n');
    }
    // Fluent Bit's own test records, as its `es` output would send them.
    for record in samples("fluent-bit/records.ndjson") {
        body.push_str("{\"create\":{\"_index\":\"fluent-bit\"}}\n");
        body.push_str(&record);
        body.push('\n');
    }
    let (status, _, answer) = h
        .call(h.post("/es/_bulk", "application/x-ndjson", body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["errors"], false, "{answer}");
    h.settle().await;
    let payments = h.search("kubernetes.namespace:payments").await;
    assert_eq!(payments["total"], 2, "{payments}");
    let hit = only_hit(&h, "kubernetes.namespace:payments AND \"charge accepted\"").await;
    assert_eq!(hit["message"], "charge accepted id=ch_42");
    assert_eq!(hit["kubernetes"]["pod"]["name"], "api-7d5b5dd9cf-t8ngb");
    assert_eq!(hit["container"]["name"], "api");
    assert_eq!(
        hit["container"]["image"]["name"],
        "registry.example.com/payments/api"
    );
    assert_eq!(hit["container"]["image"]["tag"], "1.4.2");
    assert_eq!(hit["log"]["iostream"], "stdout");
    assert_eq!(hit["host"]["name"], "node-1");
    assert_eq!(hit["es"]["index"], "fluent-bit");
    assert!(hit["event"]["original"]
        .as_str()
        .is_some_and(|o| o.contains("\"namespace_name\":\"payments\"")));
    for query in [
        "container.name:api AND kubernetes.pod.name:\"api-7d5b5dd9cf-t8ngb\"",
        "kubernetes.container.name:api",
        "container.id:3f2a9c1be47d5a0f6c2e8b9d1a7f4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e",
        "kubernetes.labels.app_kubernetes_io/name:api",
    ] {
        let found = h.search(query).await;
        assert_eq!(found["total"], 2, "{query}: {found}");
    }
    let core = h.search("kubernetes.namespace:core").await;
    assert_eq!(core["total"], 2, "{core}");
    only_hit(&h, "kubernetes.pod.name:\"kairosdb-914055854-b63vq\"").await;
}

#[tokio::test]
async fn hec_carries_vector_kubernetes_logs_records() {
    let h = quiet_harness().await;
    let body: String = samples("vector/records.ndjson")
        .iter()
        .map(|record| format!("{{\"sourcetype\":\"vector\",\"event\":{record}}}"))
        .collect();
    let request = Request::post("/services/collector/event")
        .header(header::AUTHORIZATION, format!("Splunk {}", h.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request");
    let (status, _, answer) = h.call(request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    h.settle().await;
    let hit = only_hit(&h, "kubernetes.pod.name:\"storage-provisioner\"").await;
    assert_eq!(hit["kubernetes"]["namespace"], "kube-system");
    assert_eq!(hit["kubernetes"]["node"]["name"], "minikube");
    assert_eq!(hit["log"]["iostream"], "stderr");
    assert_eq!(hit["splunk"]["sourcetype"], "vector");
    let owned = only_hit(&h, "kubernetes.replicaset.name:\"coredns-565d847f94\"").await;
    assert_eq!(owned["container"]["runtime"], "docker");
}

#[tokio::test]
async fn ndjson_endpoint_reads_filebeat_and_docker_driver_records() {
    let h = quiet_harness().await;
    let mut body = samples("filebeat/records.ndjson").join("\n");
    body.push('\n');
    body.push_str(&samples("docker-drivers/records.ndjson").join("\n"));
    let (status, _, report) = h
        .call(h.post("/api/v1/ingest/ndjson", "application/x-ndjson", body))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["accepted"], 6, "{report}");
    h.settle().await;
    let beat = only_hit(&h, "kubernetes.namespace:payments").await;
    assert_eq!(beat["container"]["name"], "api");
    assert_eq!(beat["log"]["iostream"], "stdout");
    let gelf = only_hit(&h, "container.name:web AND \"GET /healthz\"").await;
    assert_eq!(gelf["host"]["name"], "docker-host-1");
    let drivers = h
        .search("container.runtime:docker AND event.module:docker")
        .await;
    assert_eq!(drivers["total"], 4, "{drivers}");
}

#[tokio::test]
async fn forward_carries_fluentd_kubernetes_metadata_records() {
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
    let record: Value =
        serde_json::from_str(&samples("fluentd/records.ndjson")[0]).expect("a Fluentd record");
    let message = rmpv::Value::Array(vec![
        rmpv::Value::from("kubernetes.var.log.containers.fabric8-console-controller-98rqc_default_fabric8-console-container-df14e0d5ae4c.log"),
        rmpv::Value::from(1_714_557_600u32),
        pack(&record),
        rmpv::Value::Map(vec![(rmpv::Value::from("chunk"), rmpv::Value::from("f1"))]),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &message).expect("encode");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&bytes).await.expect("write");
    let mut ack = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut ack))
        .await
        .expect("ack in time")
        .expect("read");
    assert_eq!(&ack[..n], crowsnest_ingest::fluent::ack("f1").as_slice());
    h.settle().await;
    let hit = only_hit(
        &h,
        "kubernetes.namespace:default AND container.name:\"fabric8-console-container\"",
    )
    .await;
    assert_eq!(hit["message"], "2015/05/05 19:54:41 ");
    assert_eq!(
        hit["container"]["id"],
        "df14e0d5ae4c07284fa636d739c8fc2e6b52bc344658de7d3f08c36a2e804115"
    );
    assert_eq!(hit["kubernetes"]["labels"]["component"], "fabric8Console");
    assert_eq!(hit["@timestamp"], "2024-05-01T10:00:00.000000Z");
    assert!(hit["fluent"]["tag"].is_string());
}

#[tokio::test]
async fn otlp_k8s_resource_attributes_land_in_the_container_fields() {
    let h = quiet_harness().await;
    let attribute = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": [
            attribute("k8s.namespace.name", "payments"),
            attribute("k8s.pod.name", "api-7d5b5dd9cf-t8ngb"),
            attribute("k8s.container.name", "api"),
            attribute("k8s.node.name", "node-1"),
            attribute("k8s.pod.labels.app.kubernetes.io/name", "api"),
            attribute("container.id", "3f2a9c1be47d"),
        ]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": "1714557600000000000",
            "body": {"stringValue": "otlp charge accepted"},
            "attributes": [attribute("log.iostream", "stdout")]
        }]}]
    }]});
    let (status, _, _) = h
        .call(h.post("/v1/logs", "application/json", body.to_string()))
        .await;
    assert_eq!(status, StatusCode::OK);
    h.settle().await;
    let hit = only_hit(&h, "container.name:api AND kubernetes.namespace:payments").await;
    assert_eq!(hit["message"], "otlp charge accepted");
    assert_eq!(hit["host"]["name"], "node-1");
    assert_eq!(hit["kubernetes"]["labels"]["app_kubernetes_io/name"], "api");
}

#[tokio::test]
async fn container_log_rules_see_fluent_bit_records() {
    // Detection on: the miner rule (`rules/container/`) fires on a line a Fluent Bit record
    // carried, and the alert names the pod's namespace and container.
    let h = harness_with(|_| {}).await;
    let record = fluent_bit_record(
        "[2024-05-01 10:00:00.101]  net      new job from pool.supportxmr.com:443 diff 120001 algo rx/0",
    );
    let body = format!("{{\"create\":{{\"_index\":\"fluent-bit\"}}}}\n{record}\n");
    let (status, _, answer) = h
        .call(h.post("/es/_bulk", "application/x-ndjson", body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut last = Value::Null;
    for _ in 0..600 {
        let request = Request::get("/api/v1/alerts?namespace=payments")
            .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
            .body(Body::empty())
            .expect("request");
        let (status, _, listed) = h.call(request).await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        if listed["total"].as_u64() == Some(1) {
            let alert = &listed["alerts"][0];
            assert_eq!(
                alert["kubernetes"]["pod"]["name"], "api-7d5b5dd9cf-t8ngb",
                "{alert}"
            );
            assert_eq!(alert["container"]["name"], "api", "{alert}");
            return;
        }
        last = listed;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected the miner alert for namespace payments, last answer: {last}");
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
