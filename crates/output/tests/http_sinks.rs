//! HTTP sinks against a scripted server on 127.0.0.1: what is sent, and how answers are
//! classified.

mod support;

use std::time::Duration;

use crowsnest_output::{build, webhook::hmac_sha256_hex, Delivery, SinkError};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use serde_json::Value;
use support::{closed_port, events, output, Answer, HttpServer, TestCert};

#[test]
fn webhook_retries_on_503_then_delivers_a_signed_body() {
    let server = HttpServer::start(vec![
        Answer::new(503, "busy").header("Retry-After", "2"),
        Answer::new(200, "ok"),
    ]);
    let config = output(&format!(
        "name = \"hook\"\ntype = \"webhook\"\nurl = \"{}/in\"\nsecret = \"s3cret\"\nheaders = {{ X-Team = \"sec\" }}\n",
        server.url
    ));
    let mut sink = build(&config).expect("build");
    let batch = events(3);
    let error = sink.send(&batch).expect_err("503 first");
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(sink.send(&batch).expect("then 200"), Delivery::all(3));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let last = &seen[1];
    assert_eq!((last.method.as_str(), last.path.as_str()), ("POST", "/in"));
    assert_eq!(last.header("Content-Type"), Some("application/x-ndjson"));
    assert_eq!(last.header("X-Team"), Some("sec"));
    let expected = format!("sha256={}", hmac_sha256_hex(b"s3cret", &last.body));
    assert_eq!(
        last.header("X-Crowsnest-Signature"),
        Some(expected.as_str())
    );
    let ids: Vec<String> = last
        .text()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line")["event"]["id"].to_string())
        .collect();
    assert_eq!(ids, ["\"e0\"", "\"e1\"", "\"e2\"",]);
    assert_eq!(
        seen[0].connection, seen[1].connection,
        "the connection is kept alive"
    );
}

#[test]
fn a_400_is_permanent_and_429_retryable() {
    let server = HttpServer::start(vec![Answer::new(429, "slow down"), Answer::new(400, "bad")]);
    let config = output(&format!(
        "name = \"hook\"\ntype = \"webhook\"\nurl = \"{}/\"\n",
        server.url
    ));
    let mut sink = build(&config).expect("build");
    assert!(sink.send(&events(1)).expect_err("429").is_retryable());
    let error = sink.send(&events(1)).expect_err("400");
    assert!(
        matches!(&error, SinkError::Rejected(m) if m.contains("400") && m.contains("bad")),
        "{error}"
    );
}

#[test]
fn connection_refused_is_retryable() {
    let config = output(&format!(
        "name = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/\"\ntimeout_secs = 2\n",
        closed_port()
    ));
    let mut sink = build(&config).expect("build");
    assert!(sink.send(&events(1)).expect_err("refused").is_retryable());
}

#[test]
fn elasticsearch_items_split_into_delivered_rejected_and_retryable() {
    let mixed = r#"{"took":3,"errors":true,"items":[
        {"create":{"_id":"e0","status":201}},
        {"create":{"_id":"e1","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
        {"create":{"_id":"e2","status":400,"error":{"type":"document_parsing_exception","reason":"bad date"}}}]}"#;
    let busy = r#"{"took":3,"errors":true,"items":[
        {"create":{"_id":"e0","status":409}},
        {"create":{"_id":"e1","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
        {"create":{"_id":"e2","status":201}}]}"#;
    let server = HttpServer::start(vec![Answer::new(200, busy), Answer::new(200, mixed)]);
    let config = output(&format!(
        "name = \"es\"\ntype = \"elasticsearch\"\nurl = \"{}/\"\napi_key = \"a2V5\"\n",
        server.url
    ));
    let mut sink = build(&config).expect("build");
    let batch = events(3);
    let error = sink
        .send(&batch)
        .expect_err("a 429 item makes the batch retryable");
    assert!(
        error.is_retryable() && error.to_string().contains("queue full"),
        "{error}"
    );
    let delivery = sink.send(&batch).expect("delivered");
    assert_eq!(delivery.delivered, 2, "201 and 409 are delivered");
    assert_eq!(delivery.rejected.len(), 1);
    assert_eq!(delivery.rejected[0].0, 2);
    assert!(delivery.rejected[0].1.contains("bad date"));
    let seen = server.seen();
    assert_eq!(seen[0].path, "/_bulk");
    assert_eq!(seen[0].header("Authorization"), Some("ApiKey a2V5"));
    assert_eq!(seen[0].header("Content-Type"), Some("application/x-ndjson"));
    assert_eq!(seen[0].body, seen[1].body, "a retry sends the same body");
    let lines: Vec<Value> = seen[0]
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["create"]["_id"], "e0");
    assert_eq!(lines[0]["create"]["_index"], "crowsnest-2024.05.01");
}

#[test]
fn large_bulk_bodies_are_gzipped() {
    let server = HttpServer::start(vec![Answer::new(200, r#"{"errors":false,"items":[]}"#)]);
    let config = output(&format!(
        "name = \"es\"\ntype = \"elasticsearch\"\nurl = \"{}\"\nusername = \"elastic\"\npassword = \"pw\"\n",
        server.url
    ));
    let mut sink = build(&config).expect("build");
    sink.send(&events(1)).expect("small");
    sink.send(&events(40)).expect("large");
    let seen = server.seen();
    assert_eq!(
        seen[0].header("Content-Encoding"),
        None,
        "small bodies are sent plain"
    );
    assert_eq!(seen[1].header("Content-Encoding"), Some("gzip"));
    assert!(seen[1].raw.len() < seen[1].body.len());
    assert_eq!(seen[1].text().lines().count(), 80);
    assert_eq!(
        seen[0].header("Authorization"),
        Some("Basic ZWxhc3RpYzpwdw==")
    );
}

#[test]
fn splunk_busy_is_retryable_and_bad_data_permanent() {
    let server = HttpServer::start(vec![
        Answer::new(503, r#"{"text":"Server is busy","code":9}"#),
        Answer::new(200, r#"{"text":"Success","code":0}"#),
        Answer::new(
            400,
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":0}"#,
        ),
    ]);
    let config = output(&format!(
        "name = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"tok\"\nindex = \"sec\"\n",
        server.url
    ));
    let mut sink = build(&config).expect("build");
    let batch = events(2);
    assert!(sink.send(&batch).expect_err("busy").is_retryable());
    assert_eq!(sink.send(&batch).expect("success"), Delivery::all(2));
    assert!(!sink.send(&batch).expect_err("400").is_retryable());
    let seen = server.seen();
    assert_eq!(seen[1].path, "/services/collector/event");
    assert_eq!(seen[1].header("Authorization"), Some("Splunk tok"));
    let objects: Vec<Value> = serde_json::Deserializer::from_slice(&seen[1].body)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("concatenated JSON");
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[1]["event"]["event"]["id"], "e1");
    assert_eq!(objects[1]["index"], "sec");
    assert_eq!(objects[1]["time"], serde_json::json!(1714557600.0));
}

#[test]
fn otlp_posts_a_decodable_protobuf_request() {
    let server = HttpServer::start(vec![Answer::new(200, "")]);
    let config = output(&format!(
        "name = \"otel\"\ntype = \"otlp\"\nurl = \"{}/v1/logs\"\nheaders = {{ Api-Key = \"k\" }}\n",
        server.url
    ));
    let mut sink = build(&config).expect("build");
    assert_eq!(sink.send(&events(2)).expect("sent"), Delivery::all(2));
    let seen = server.seen();
    assert_eq!(seen[0].path, "/v1/logs");
    assert_eq!(
        seen[0].header("Content-Type"),
        Some("application/x-protobuf")
    );
    assert_eq!(seen[0].header("Api-Key"), Some("k"));
    let request = ExportLogsServiceRequest::decode(seen[0].body.as_slice()).expect("protobuf");
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    assert_eq!(records, 2);
}

#[test]
fn bad_settings_are_refused_with_the_setting_named() {
    let cases = [
        ("name = \"Bad Name\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1\"\n", "name"),
        ("name = \"w\"\ntype = \"webhook\"\nurl = \"127.0.0.1:1\"\n", "url"),
        ("name = \"w\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1\"\nbatch_max_events = 0\n", "batch_max_events"),
        ("name = \"w\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1\"\nretry_initial_ms = 10\nretry_max_ms = 5\n", "retry_max_ms"),
        ("name = \"e\"\ntype = \"elasticsearch\"\nurl = \"http://127.0.0.1:1\"\napi_key = \"a\"\nbearer_token = \"b\"\n", "api_key"),
        ("name = \"e\"\ntype = \"elasticsearch\"\nurl = \"http://127.0.0.1:1\"\nindex = \"x-%Q\"\n", "index"),
        ("name = \"s\"\ntype = \"splunk_hec\"\nurl = \"http://127.0.0.1:1\"\ntoken = \" \"\n", "token"),
        ("name = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1\"\n", "address"),
        ("name = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1:1\"\nfacility = \"local9\"\n", "facility"),
        ("name = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1:1\"\ntransport = \"tls\"\ntls = { ca_file = \"/nonexistent/ca.pem\" }\n", "tls.ca_file"),
        ("name = \"o\"\ntype = \"otlp\"\nurl = \"http://127.0.0.1:1/v1/logs\"\nheaders = { \"a b\" = \"c\" }\n", "headers"),
    ];
    for (toml, field) in cases {
        let Err(error) = build(&output(toml)) else {
            panic!("{toml} was accepted");
        };
        assert!(
            error.to_string().contains(field),
            "{error} should name {field}"
        );
        assert!(error.to_string().contains("expected"), "{error}");
    }
}

#[test]
fn https_trusts_the_ca_file_and_checks_the_name() {
    let cert = TestCert::localhost();
    let server = HttpServer::start_tls(vec![Answer::new(200, "")], &cert);
    // By IP, verified against the configured server_name (the certificate says localhost).
    let trusted = output(&format!(
        "name = \"hook\"\ntype = \"webhook\"\nurl = \"{}/\"\nformat = \"json_array\"\n\
         tls = {{ ca_file = \"{}\", server_name = \"localhost\" }}\n",
        server.url,
        cert.ca_path()
    ));
    let mut sink = build(&trusted).expect("build");
    assert_eq!(sink.send(&events(2)).expect("https"), Delivery::all(2));
    sink.send(&events(1)).expect("second batch");
    let seen = server.seen();
    assert_eq!(seen[0].header("Content-Type"), Some("application/json"));
    let array: Value = serde_json::from_slice(&seen[0].body).expect("json array");
    assert_eq!(array.as_array().map(Vec::len), Some(2));
    assert_eq!(
        seen[0].connection, seen[1].connection,
        "the TLS connection is kept"
    );
    // Without the CA (the built-in web roots do not know it), or with the wrong name, the
    // handshake fails.
    let untrusted = output(&format!(
        "name = \"hook\"\ntype = \"webhook\"\nurl = \"{}/\"\ntls = {{ server_name = \"localhost\" }}\n",
        server.url
    ));
    assert!(build(&untrusted).expect("build").send(&events(1)).is_err());
    let wrong_name = output(&format!(
        "name = \"hook\"\ntype = \"webhook\"\nurl = \"{}/\"\ntls = {{ ca_file = \"{}\" }}\n",
        server.url,
        cert.ca_path()
    ));
    assert!(
        build(&wrong_name).expect("build").send(&events(1)).is_err(),
        "127.0.0.1 is not a name in the certificate"
    );
    assert_eq!(server.seen().len(), 2, "refused handshakes sent nothing");
}
