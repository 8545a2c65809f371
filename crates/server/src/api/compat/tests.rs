//! Socket-free tests of the compatibility endpoints, on the real pipeline and store; plus one
//! real-socket test of the syslog and forward listeners.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;

use crate::api::tests::{harness, harness_with, Harness};

fn hits(result: &Value) -> Vec<Value> {
    result["hits"].as_array().cloned().unwrap_or_default()
}

/// Where the harness's listener for `protocol` (`syslog/tcp`, `forward`, ...) is bound.
fn listener_addr(h: &Harness, protocol: &str) -> std::net::SocketAddr {
    h.running
        .listeners
        .iter()
        .find(|l| l.protocol == protocol)
        .map(|l| l.local_addr)
        .expect("listener")
}

/// A forward-protocol Message event with a `log` record and a `chunk` option (asks for an ack).
fn forward_message(log: &str, chunk: &str) -> Vec<u8> {
    let message = rmpv::Value::Array(vec![
        rmpv::Value::from("app.forward"),
        rmpv::Value::from(1_714_557_600u32),
        rmpv::Value::Map(vec![(rmpv::Value::from("log"), rmpv::Value::from(log))]),
        rmpv::Value::Map(vec![(rmpv::Value::from("chunk"), rmpv::Value::from(chunk))]),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &message).expect("encode");
    bytes
}

#[tokio::test]
async fn es_handshake_probes_and_bulk_with_per_item_errors() {
    use base64::Engine;
    let h = harness().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("elastic:{}", h.token));
    let (status, headers, root) = h
        .call(
            Request::get("/es/")
                .header(header::AUTHORIZATION, format!("Basic {basic}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    assert!(root["version"]["number"]
        .as_str()
        .is_some_and(|v| v.starts_with('8')));
    let (status, _, license) = h
        .call(
            Request::get("/es/_license")
                .header(header::AUTHORIZATION, format!("ApiKey {}", h.token))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(license["license"]["status"], "active");
    let (status, _, template) = h
        .call(
            Request::put("/es/_index_template/filebeat")
                .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
                .body(Body::from("{}"))
                .expect("request"),
        )
        .await;
    assert_eq!(
        (status, template["acknowledged"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, headers, _) = h
        .call(Request::get("/es/").body(Body::empty()).expect("request"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");

    let body = "{\"create\":{\"_index\":\"logs-web\"}}\n{\"@timestamp\":\"2024-05-01T10:00:00Z\",\"message\":\"esbulk one\",\"kubernetes\":{\"namespace\":\"shop\"}}\n{\"index\":{}}\nnot json\n{\"delete\":{\"_id\":\"x\"}}\n";
    let (status, headers, response) = h
        .call(h.post("/es/fallback/_bulk", "application/x-ndjson", body))
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    assert_eq!(response["errors"], true);
    let items = response["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["create"]["status"], 201);
    assert_eq!(items[0]["create"]["_index"], "logs-web");
    assert_eq!(items[1]["index"]["status"], 400);
    assert_eq!(
        items[1]["index"]["error"]["type"],
        "mapper_parsing_exception"
    );
    assert_eq!(items[2]["delete"]["status"], 405);
    h.settle().await;
    let found = hits(&h.search("message:\"esbulk one\"").await);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["es"]["index"], "logs-web");
    assert_eq!(found[0]["kubernetes"]["namespace"], "shop");
}

#[tokio::test]
async fn splunk_hec_event_raw_ack_and_errors() {
    let h = harness().await;
    let (status, _, health) = h
        .call(
            Request::get("/services/collector/health")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        (status, health["code"].as_u64()),
        (StatusCode::OK, Some(17))
    );
    let splunk = |uri: &str, token: &str, body: &str| {
        Request::post(uri)
            .header(header::AUTHORIZATION, format!("Splunk {token}"))
            .header(
                "x-splunk-request-channel",
                "0aa6b8a0-0000-4000-8000-000000000001",
            )
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let body = r#"{"time":1714557600,"host":"web-1","sourcetype":"access","event":"hec first"}{"event":{"message":"hec second","user":{"name":"carol"}}}"#;
    let (status, _, response) = h
        .call(splunk("/services/collector/event", &h.token, body))
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(response["code"], 0);
    let ack_id = response["ackId"].as_u64().expect("ackId with a channel");
    let (status, _, acks) = h
        .call(splunk(
            "/services/collector/ack",
            &h.token,
            &format!("{{\"acks\":[{ack_id}]}}"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(acks["acks"][ack_id.to_string()], true);
    let (status, _, _) = h
        .call(splunk(
            "/services/collector/raw?sourcetype=app&host=h2",
            &h.token,
            "raw line one\nraw line two\n",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, bad) = h
        .call(splunk(
            "/services/collector/event",
            &h.token,
            r#"{"event":"ok"}{"nope":1}"#,
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (bad["code"].as_u64(), bad["invalid-event-number"].as_u64()),
        (Some(6), Some(1))
    );
    let (status, _, wrong) = h
        .call(splunk("/services/collector/event", "cn_wrong", body))
        .await;
    assert_eq!(
        (status, wrong["code"].as_u64()),
        (StatusCode::FORBIDDEN, Some(4))
    );
    let (status, _, missing) = h
        .call(
            Request::post("/services/collector/event")
                .body(Body::from(body))
                .expect("request"),
        )
        .await;
    assert_eq!(
        (status, missing["code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(2))
    );
    h.settle().await;
    let first = hits(&h.search("message:\"hec first\"").await);
    assert_eq!(first[0]["host"]["name"], "web-1");
    assert_eq!(first[0]["event"]["dataset"], "access");
    assert_eq!(first[0]["@timestamp"], "2024-05-01T10:00:00.000000Z");
    assert_eq!(hits(&h.search("user.name:carol").await).len(), 1);
    let raw = hits(&h.search("event.dataset:app").await);
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[0]["host"]["name"], "h2");
}

#[tokio::test]
async fn otlp_json_and_protobuf_logs_with_k8s_resource() {
    use prost::Message;
    let h = harness().await;
    let json = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"k8s.namespace.name","value":{"stringValue":"payments"}},{"key":"k8s.pod.name","value":{"stringValue":"api-0"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1714557600000000000","severityText":"ERROR","body":{"stringValue":"otlp json record"}}]}]}]}"#;
    let (status, headers, _) = h.call(h.post("/v1/logs", "application/json", json)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let request: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest =
        serde_json::from_str(&json.replace("otlp json record", "otlp proto record"))
            .expect("request");
    let (status, headers, _) = h
        .call(h.post(
            "/v1/logs",
            "application/x-protobuf",
            request.encode_to_vec(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
    let (status, _, _) = h
        .call(h.post("/v1/logs", "application/x-protobuf", vec![0xff, 0xff, 0xff]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = h.call(h.post("/v1/logs", "text/csv", "a,b")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    h.settle().await;
    let found = hits(&h.search("kubernetes.namespace:payments").await);
    assert_eq!(found.len(), 2);
    assert!(found
        .iter()
        .all(|e| e["kubernetes"]["pod"]["name"] == "api-0"));
    assert!(found.iter().all(|e| e["event"]["module"] == "otel"));
}

#[tokio::test]
async fn falco_samples_become_alerts() {
    let h = harness().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/falco/falcosidekick-examples.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("falco samples (shared/testdata)");
    let mut sent = 0;
    for line in text.lines() {
        let sample: Value = serde_json::from_str(line).expect("json");
        let (status, _, report) = h
            .call(h.post(
                "/api/v1/ingest/falco",
                "application/json",
                sample["alert"].to_string(),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        sent += 1;
    }
    h.settle().await;
    let alerts = hits(&h.search("event.kind:alert AND event.module:falco").await);
    assert_eq!(alerts.len(), sent);
    let write = hits(&h.search("rule.name:\"Write below binary dir\"").await);
    assert_eq!(write[0]["file"]["path"], "/bin/hack");
}

#[tokio::test]
async fn syslog_and_forward_listeners_store_what_real_sockets_send() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = harness_with(|config| {
        config
            .inputs
            .push(crowsnest_ingest::listen::InputConfig::syslog(
                "127.0.0.1:0",
                crowsnest_ingest::listen::SyslogTransport::Udp,
            ));
        config
            .inputs
            .push(crowsnest_ingest::listen::InputConfig::syslog(
                "127.0.0.1:0",
                crowsnest_ingest::listen::SyslogTransport::Tcp,
            ));
        config
            .inputs
            .push(crowsnest_ingest::listen::InputConfig::forward(
                "127.0.0.1:0",
            ));
    })
    .await;
    let addr = |protocol: &str| listener_addr(&h, protocol);
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    udp.send_to(
        b"<13>1 2024-05-01T10:00:00Z box app 7 - - udp hello",
        addr("syslog/udp"),
    )
    .await
    .expect("send");
    let mut tcp = tokio::net::TcpStream::connect(addr("syslog/tcp"))
        .await
        .expect("connect");
    let framed = "<13>Feb 13 20:07:26 box app[9]: tcp newline\n";
    let counted = "<13>1 2024-05-01T10:00:01Z box app 9 - - tcp counted";
    tcp.write_all(format!("{framed}{} {counted}", counted.len()).as_bytes())
        .await
        .expect("write");
    tcp.shutdown().await.expect("close");
    let mut forward = tokio::net::TcpStream::connect(addr("forward"))
        .await
        .expect("connect");
    forward
        .write_all(&forward_message("forward hello", "c1"))
        .await
        .expect("write");
    let mut ack = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), forward.read(&mut ack))
        .await
        .expect("ack in time")
        .expect("read");
    assert_eq!(&ack[..n], crowsnest_ingest::fluent::ack("c1").as_slice());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        h.settle().await;
        let found = hits(&h.search("event.module:syslog OR event.module:fluent").await);
        if found.len() >= 4 {
            let messages: Vec<&str> = found.iter().filter_map(|e| e["message"].as_str()).collect();
            for expected in ["udp hello", "tcp newline", "tcp counted", "forward hello"] {
                assert!(messages.contains(&expected), "{messages:?}");
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} events",
            found.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_saturated_pipeline_answers_bulk_with_429_as_elasticsearch_does() {
    let h = harness_with(|c| c.pipeline.max_queued_bytes = 1 << 20).await;
    let _held = h.running.state.pipeline.exhaust_budget().expect("budget");
    let body = "{\"create\":{}}\n{\"message\":\"a\"}\n";
    let (status, headers, answer) = h
        .call(h.post("/es/logs/_bulk", "application/x-ndjson", body))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"]["type"], "es_rejected_execution_exception");
    assert_eq!(answer["status"], 429);
    assert_eq!(headers["retry-after"], "1");
}

/// A saturated pipeline makes the forward listener wait (no ack yet, nothing dropped); once there
/// is room the chunk is stored and acknowledged.
#[tokio::test]
async fn stream_listeners_wait_for_room_instead_of_dropping() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = harness_with(|config| {
        config.pipeline.max_queued_bytes = 1 << 20;
        config
            .inputs
            .push(crowsnest_ingest::listen::InputConfig::syslog(
                "127.0.0.1:0",
                crowsnest_ingest::listen::SyslogTransport::Tcp,
            ));
        config
            .inputs
            .push(crowsnest_ingest::listen::InputConfig::forward(
                "127.0.0.1:0",
            ));
    })
    .await;
    let addr = |protocol: &str| listener_addr(&h, protocol);
    let held = h.running.state.pipeline.exhaust_budget().expect("budget");
    let mut tcp = tokio::net::TcpStream::connect(addr("syslog/tcp"))
        .await
        .expect("connect");
    let counted = "<13>1 2024-05-01T10:00:01Z box app 9 - - waited for room";
    tcp.write_all(format!("{} {counted}", counted.len()).as_bytes())
        .await
        .expect("write");
    tcp.shutdown().await.expect("close");
    let mut forward = tokio::net::TcpStream::connect(addr("forward"))
        .await
        .expect("connect");
    forward
        .write_all(&forward_message("forward waited", "w1"))
        .await
        .expect("write");
    let mut ack = vec![0u8; 64];
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        forward.read(&mut ack),
    )
    .await;
    assert!(
        early.is_err(),
        "acknowledged while the pipeline had no room"
    );
    drop(held);
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), forward.read(&mut ack))
        .await
        .expect("ack once there is room")
        .expect("read");
    assert_eq!(&ack[..n], crowsnest_ingest::fluent::ack("w1").as_slice());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        h.settle().await;
        let found = hits(&h.search("\"waited for room\" OR \"forward waited\"").await);
        if found.len() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{found:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
