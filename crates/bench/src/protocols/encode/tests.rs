//! Tests of the encoders: every protocol carries every event, batches are cut where asked,
//! and each framing decodes as its protocol.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

use super::*;

fn corpus() -> Corpus {
    Corpus::mixed(250).expect("corpus")
}

#[test]
fn every_protocol_carries_every_event() {
    let corpus = corpus();
    for protocol in Protocol::ALL {
        let encoded = encode(protocol, &corpus, 100).expect("encode");
        assert_eq!(encoded.events(), 250, "{protocol:?}");
        // Every framing carries each event whole; MessagePack is the only one more
        // compact than JSON text.
        let floor = match protocol {
            Protocol::Forward => corpus.json_bytes() / 2,
            _ => corpus.json_bytes() - 250,
        };
        assert!(encoded.wire_bytes() >= floor, "{protocol:?}");
    }
}

#[test]
fn batching_protocols_cut_at_the_batch_size() {
    let corpus = corpus();
    let bulk = encode(Protocol::EsBulk, &corpus, 100).expect("encode");
    let counts: Vec<u64> = bulk.items.iter().map(|i| i.events).collect();
    assert_eq!(counts, vec![100, 100, 50]);
    let text = String::from_utf8(bulk.items[2].bytes.clone()).expect("utf-8");
    assert_eq!(text.lines().count(), 100);
    let falco = encode(Protocol::Falco, &corpus, 100).expect("encode");
    assert_eq!(falco.items.len(), 250);
}

#[test]
fn the_audit_event_list_is_json_with_its_items() {
    let corpus = Corpus::audit_only(30).expect("corpus");
    let encoded = encode(Protocol::K8sAudit, &corpus, 20).expect("encode");
    let list: Value = serde_json::from_slice(&encoded.items[0].bytes).expect("json");
    assert_eq!(list["kind"], "EventList");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(20));
}

#[test]
fn syslog_tcp_frames_are_octet_counted_rfc5424() {
    let corpus = corpus();
    let encoded = encode(Protocol::SyslogTcp, &corpus, 1).expect("encode");
    let mut stream = encoded.items[0].bytes.as_slice();
    let mut messages = 0;
    while let Some(space) = stream.iter().position(|b| *b == b' ') {
        let len: usize = std::str::from_utf8(&stream[..space])
            .expect("ascii")
            .parse()
            .expect("an octet count");
        let message = &stream[space + 1..space + 1 + len];
        // local0 (16 * 8), then the event's severity; version 1.
        let text = std::str::from_utf8(message).expect("utf-8");
        let pri: u8 = text[1..text.find('>').expect("a PRI")]
            .parse()
            .expect("a number");
        assert!((128..136).contains(&pri), "{text}");
        assert!(
            text.contains(">1 ") && text.contains(" crowsnest-bench "),
            "{text}"
        );
        assert!(message.ends_with(b"}"));
        stream = &stream[space + 1 + len..];
        messages += 1;
    }
    assert!(stream.is_empty());
    assert_eq!(messages, encoded.items[0].events);
}

#[test]
fn otlp_protobuf_round_trips() {
    let corpus = corpus();
    let encoded = encode(Protocol::OtlpProto, &corpus, 100).expect("encode");
    assert_eq!(
        encoded.transport,
        http("/v1/logs", "application/x-protobuf", Auth::Bearer)
    );
    let request =
        ExportLogsServiceRequest::decode(encoded.items[0].bytes.as_slice()).expect("decode");
    let records: Vec<_> = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .collect();
    assert_eq!(records.len(), 100);
    assert!(records
        .iter()
        .all(|r| r.time_unix_nano > 0 && r.body.is_some()));
    let json = encode(Protocol::OtlpJson, &corpus, 100).expect("encode");
    let value: Value = serde_json::from_slice(&json.items[0].bytes).expect("OTLP/JSON");
    assert!(value["resourceLogs"].is_array());
}

#[test]
fn hec_events_carry_the_normalized_event() {
    let corpus = corpus();
    let encoded = encode(Protocol::HecEvent, &corpus, 100).expect("encode");
    let text = std::str::from_utf8(&encoded.items[0].bytes).expect("utf-8");
    let objects: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a HEC object"))
        .collect();
    assert_eq!(objects.len(), 100);
    assert!(objects
        .iter()
        .all(|o| o["sourcetype"] == "_json" && o["event"]["@timestamp"].is_string()));
}

#[test]
fn forward_messages_are_packed_forward_with_a_chunk() {
    let corpus = corpus();
    let encoded = encode(Protocol::Forward, &corpus, 100).expect("encode");
    let first = &encoded.items[0];
    let value = rmpv::decode::read_value(&mut first.bytes.as_slice()).expect("msgpack");
    let parts = value.as_array().expect("array");
    assert_eq!(parts[0].as_str(), Some("bench.logs"));
    assert!(parts[1].as_slice().is_some_and(|b| b.len() > 100));
    assert_eq!(parts[2]["chunk"].as_str(), first.chunk.as_deref());
}
