//! Fuzz-style properties: no decoder panics on truncated, random or oversized input, and
//! every input byte is either in an event or accounted for by an error.

use crowsnest_ingest::{es_bulk, falco, fluent, otlp, splunk_hec, syslog, Limits};
use proptest::prelude::*;

fn small_limits() -> Limits {
    Limits {
        decode: crowsnest_normalize::Limits {
            max_line_bytes: 256,
            max_depth: 8,
            max_field_bytes: 64,
        },
        max_frame_bytes: 512,
        max_decompressed_bytes: 4096,
        max_events: 16,
        max_connections: 4,
        ..Limits::default()
    }
}

const BULK: &[u8] = b"{\"create\":{\"_index\":\"a\"}}\n{\"message\":\"x\",\"n\":[1,{\"b\":2}]}\n{\"index\":{}}\n{\"msg\":\"y\"}\n";
const HEC: &[u8] = br#"{"time":1714557600,"event":"a"}{"event":{"m":1},"fields":{"f":"v"}}"#;
const SYSLOG: &[u8] = b"<165>1 2003-10-11T22:14:15.003Z host app 42 ID47 [id@1 a=\"b\"] msg\n";
const FALCO: &[u8] = br#"{"rule":"r","time":"2024-05-01T10:00:00Z","priority":"Warning","output_fields":{"k8s.ns.name":"p"}}"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoders_survive_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let limits = small_limits();
        let _ = es_bulk::decode(&bytes, Some("i"), &limits);
        let _ = splunk_hec::decode_events(&bytes, None, &limits);
        let _ = splunk_hec::decode_raw(&bytes, &splunk_hec::RawMeta::default(), &limits);
        let _ = otlp::decode(&bytes, otlp::OtlpFormat::Protobuf, &limits);
        let _ = otlp::decode(&bytes, otlp::OtlpFormat::Json, &limits);
        let _ = syslog::decode_message(&bytes, None, &limits);
        let _ = syslog::next_frame(&bytes, limits.max_frame_bytes);
        let _ = fluent::next_message(&bytes, &limits);
        let _ = falco::decode(&bytes, &limits);
    }

    #[test]
    fn truncated_valid_inputs_never_panic(cut in 0usize..200) {
        let limits = small_limits();
        let _ = es_bulk::decode(&BULK[..cut.min(BULK.len())], None, &limits);
        let _ = splunk_hec::decode_events(&HEC[..cut.min(HEC.len())], None, &limits);
        let _ = syslog::decode_message(&SYSLOG[..cut.min(SYSLOG.len())], None, &limits);
        let _ = falco::decode(&FALCO[..cut.min(FALCO.len())], &limits);
    }

    #[test]
    fn syslog_framing_consumes_what_it_reports(messages in proptest::collection::vec("[ -~]{1,40}", 1..8), counted in any::<bool>()) {
        let mut stream = Vec::new();
        for message in &messages {
            if counted {
                stream.extend(format!("{} {message}", message.len()).bytes());
            } else {
                stream.extend(format!("{message}\n").bytes());
            }
        }
        let mut offset = 0;
        let mut found = Vec::new();
        while let syslog::Frame::Message { start, end, consumed } = syslog::next_frame(&stream[offset..], 1024) {
            found.push(String::from_utf8_lossy(&stream[offset + start..offset + end]).into_owned());
            offset += consumed;
        }
        // Newline framing cannot tell a message that starts with a digit from a count.
        if counted || messages.iter().all(|m| !m.starts_with(|c: char| c.is_ascii_digit())) {
            prop_assert_eq!(found, messages.clone());
            prop_assert_eq!(offset, stream.len());
        }
    }
}

#[test]
fn huge_items_are_rejected_not_stored() {
    let limits = small_limits();
    let big = "x".repeat(10_000);
    let bulk = format!("{{\"create\":{{\"_index\":\"a\"}}}}\n{{\"message\":\"{big}\"}}\n");
    let request = es_bulk::decode(bulk.as_bytes(), None, &limits).expect("bulk");
    assert!(request.events.is_empty());
    assert_eq!(request.items[0].error.as_ref().map(|e| e.status), Some(400));
    let hec = format!("{{\"event\":\"{big}\"}}");
    let decoded = splunk_hec::decode_events(hec.as_bytes(), None, &limits);
    assert_eq!((decoded.events.len(), decoded.errors.len()), (0, 1));
    assert!(syslog::decode_message(big.as_bytes(), None, &limits).is_err());
    assert!(matches!(
        syslog::next_frame(big.as_bytes(), limits.max_frame_bytes),
        syslog::Frame::Invalid(_)
    ));
    let many: String = (0..40).map(|i| format!("{{\"event\":\"e{i}\"}}")).collect();
    let decoded = splunk_hec::decode_events(many.as_bytes(), None, &limits);
    assert_eq!(decoded.events.len(), 16);
    assert!(!decoded.errors.is_empty());
}

#[test]
fn long_fields_are_truncated_and_recorded() {
    let limits = small_limits();
    let long = "y".repeat(200);
    let line = format!("<13>1 - host app - - - {long}");
    let event = syslog::decode_message(line.as_bytes(), None, &limits).expect("message");
    assert_eq!(event.get_str("message").map(str::len), Some(64));
    assert!(event.get("crowsnest.truncated").is_some());
}
