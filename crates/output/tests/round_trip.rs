//! What each encoder sends, read back by crowsnest's own receivers (`crowsnest-ingest`): a
//! crowsnest forwarding to another crowsnest must keep the fields that matter.

mod support;

use crowsnest_ingest::limits::Limits;
use crowsnest_ingest::{es_bulk, otlp, splunk_hec, syslog};
use crowsnest_model::Event;
use crowsnest_output::elasticsearch::{encode_bulk, IndexPattern};
use crowsnest_output::syslog::Header;
use crowsnest_output::{OtlpEncoding, SplunkHecConfig, SyslogFormat};
use serde_json::{json, Value};
use support::event;

fn sample() -> Vec<Event> {
    vec![
        event(json!({
            "@timestamp": "2024-05-01T10:00:00.123456Z",
            "event": {"id": "01HXA", "kind": "event", "dataset": "container.logs", "action": "log",
                      "original": "GET /healthz 200"},
            "message": "GET /healthz 200",
            "log": {"level": "warn", "iostream": "stderr"},
            "host": {"name": "node-1"},
            "orchestrator": {"cluster": {"name": "prod-eu"}},
            "kubernetes": {"namespace": "shop", "pod": {"name": "web-7", "uid": "u-1"},
                           "container": {"name": "nginx"}, "node": {"name": "node-1"}},
            "container": {"id": "abc123", "name": "k8s_nginx", "image": {"name": "nginx", "tag": "1.27"}},
            "process": {"pid": 42, "executable": "/usr/sbin/nginx"},
            "user": {"name": "alice"},
            "trace": {"id": "5b8efff798038103d269b633813fc60c"},
            "span": {"id": "eee19b7ec3c1b174"}
        })),
        event(json!({
            "@timestamp": "2024-05-01T10:00:01Z",
            "event": {"id": "01HXB", "kind": "event", "dataset": "docker.events", "action": "start"},
            "message": "container started",
            "host": {"name": "node-2"},
            "container": {"id": "def456"}
        })),
    ]
}

#[test]
fn otlp_records_come_back_with_the_same_fields() {
    let events = sample();
    for encoding in [OtlpEncoding::Protobuf, OtlpEncoding::Json] {
        let (body, _) = crowsnest_output::otlp::encode_body(&events, encoding).expect("encodes");
        let format = match encoding {
            OtlpEncoding::Protobuf => otlp::OtlpFormat::Protobuf,
            OtlpEncoding::Json => otlp::OtlpFormat::Json,
        };
        let decoded =
            otlp::decode(&body, format, &Limits::default()).expect("our receiver reads it");
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        assert_eq!(decoded.events.len(), 2);
        for (sent, back) in events.iter().zip(&decoded.events) {
            assert_eq!(back.timestamp(), sent.timestamp(), "{encoding:?}");
            for path in [
                "message",
                "event.dataset",
                "event.action",
                "host.name",
                "orchestrator.cluster.name",
                "kubernetes.namespace",
                "kubernetes.pod.name",
                "kubernetes.pod.uid",
                "kubernetes.container.name",
                "kubernetes.node.name",
                "container.id",
                "container.name",
                "container.image.name",
                "container.image.tag",
                "process.pid",
                "process.executable",
                "log.iostream",
                "log.level",
                "trace.id",
                "span.id",
            ] {
                assert_eq!(back.get(path), sent.get(path), "{encoding:?}: {path}");
            }
        }
        assert_eq!(
            decoded.events[0].get_str("otel.attributes.user.name"),
            Some("alice")
        );
    }
}

#[test]
fn bulk_bodies_read_back_with_ids_and_documents() {
    let events = sample();
    let pattern = IndexPattern::parse("crowsnest-%Y.%m.%d").expect("pattern");
    let body = encode_bulk(&events, &pattern, &pattern);
    let request = es_bulk::decode(&body, None, &Limits::default()).expect("our _bulk reads it");
    assert_eq!(request.items.len(), 2);
    assert!(request.items.iter().all(|item| item.error.is_none()));
    assert_eq!(request.items[0].id.as_deref(), Some("01HXA"));
    assert_eq!(request.items[1].index, "crowsnest-2024.05.01");
    assert_eq!(
        request.events[0].get_str("kubernetes.pod.name"),
        Some("web-7")
    );
    assert_eq!(request.events[1].get_str("event.action"), Some("start"));
}

#[test]
fn hec_objects_read_back_with_time_host_and_event() {
    let events = sample();
    let config: SplunkHecConfig =
        toml::from_str("url = \"http://127.0.0.1:8088\"\ntoken = \"t\"").expect("config");
    let body = crowsnest_output::splunk::encode_batch(&events, &config);
    let decoded = splunk_hec::decode_events(&body, None, &Limits::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), 2);
    let back = &decoded.events[0];
    assert_eq!(back.get_str("host.name"), Some("node-1"));
    assert_eq!(back.get_str("user.name"), Some("alice"));
    assert_eq!(back.get_str("splunk.sourcetype"), Some("crowsnest:event"));
    let millis = back.timestamp().expect("time").timestamp_millis();
    assert_eq!(millis, 1_714_557_600_123);
}

#[test]
fn rfc5424_messages_read_back_with_header_and_structured_data() {
    let header = Header {
        facility: 4,
        app_name: "crowsnest".into(),
        hostname: "cn".into(),
        format: SyslogFormat::Rfc5424,
    };
    for sent in sample() {
        let message = header.encode(&sent);
        let back = syslog::decode_message(message.as_bytes(), None, &Limits::default())
            .expect("our syslog receiver reads it");
        assert_eq!(back.get_str("syslog.protocol"), Some("rfc5424"));
        assert_eq!(back.get_str("host.name"), sent.get_str("host.name"));
        assert_eq!(back.get_str("process.name"), Some("crowsnest"));
        assert_eq!(back.get_str("syslog.facility"), Some("auth"));
        assert_eq!(back.timestamp(), sent.timestamp());
        assert_eq!(
            back.get("syslog.structured_data.crowsnest@32473.id"),
            sent.get("event.id"),
        );
        let inner: Value = serde_json::from_str(back.get_str("message").expect("MSG"))
            .expect("MSG is the event JSON");
        assert_eq!(&inner, &Value::Object(sent.as_map().clone()));
    }
}
