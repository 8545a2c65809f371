//! `SinkConfig::estimated_size` (used to cut batches at `batch_max_bytes`) checked against
//! every encoding, on real Kubernetes audit events (Falco's regression traces, read
//! from the shared test data) wrapped the way the normalizer stores them (`k8s.audit`).

mod support;

use crowsnest_model::Event;
use crowsnest_output::elasticsearch::{encode_bulk, IndexPattern};
use crowsnest_output::syslog::Header;
use crowsnest_output::{OtlpEncoding, OutputConfig, SinkConfig, SplunkHecConfig, SyslogFormat};
use serde_json::{json, Value};

const TRACES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/k8s-audit/falco-traces"
);

fn audit_events() -> Vec<Event> {
    let mut events = Vec::new();
    let Ok(dir) = std::fs::read_dir(TRACES) else {
        return events;
    };
    for entry in dir.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let Ok(audit @ Value::Object(_)) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let mut event = support::event(json!({
                "@timestamp": "2024-05-01T10:00:00Z",
                "event": {"id": "01HXA", "kind": "event", "dataset": "kubernetes.audit",
                          "module": "kubernetes", "original": line},
                "message": "audit",
                "user": {"name": audit["user"]["username"].clone()},
            }));
            event.set("k8s.audit", audit);
            events.push(event);
        }
    }
    events
}

#[test]
fn every_encoding_stays_within_the_estimate() {
    let mut events = audit_events();
    assert!(
        events.len() >= 40,
        "the shared traces hold about 50 audit events"
    );
    // The same events without `event.original`, which OTLP does not send.
    let stripped: Vec<Event> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(Value::Object(inner)) = e.0.get_mut("event") {
                inner.remove("original");
            }
            e
        })
        .collect();
    events.extend(stripped);
    events.push(support::event(json!({"message": "x"})));
    let pattern = IndexPattern::parse("crowsnest-%Y.%m.%d").expect("pattern");
    let hec: SplunkHecConfig =
        toml::from_str("url = \"http://127.0.0.1:1\"\ntoken = \"t\"").expect("config");
    let header = Header {
        facility: 16,
        app_name: "crowsnest".into(),
        hostname: "cn".into(),
        format: SyslogFormat::Rfc5424,
    };
    let sink = |toml: &str| -> SinkConfig {
        let config: OutputConfig =
            toml::from_str(&format!("name = \"x\"\n{toml}")).expect("config");
        config.sink
    };
    let es = sink("type = \"elasticsearch\"\nurl = \"http://127.0.0.1:1\"");
    let splunk = sink("type = \"splunk_hec\"\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"");
    let syslog = sink("type = \"syslog\"\naddress = \"127.0.0.1:1\"");
    let otlp = sink("type = \"otlp\"\nurl = \"http://127.0.0.1:1\"");
    let otlp_json = sink("type = \"otlp\"\nurl = \"http://127.0.0.1:1\"\nencoding = \"json\"");
    for event in &events {
        let json = serde_json::to_string(event.as_map()).map_or(0, |s| s.len());
        let one = std::slice::from_ref(event);
        let otlp_size = |encoding| {
            crowsnest_output::otlp::encode_body(one, encoding)
                .expect("encodes")
                .0
                .len()
        };
        let sizes = [
            (&es, encode_bulk(one, &pattern, &pattern).len()),
            (
                &splunk,
                crowsnest_output::splunk::encode_batch(one, &hec).len(),
            ),
            (&syslog, header.encode(event).len()),
            (&otlp, otlp_size(OtlpEncoding::Protobuf)),
            (&otlp_json, otlp_size(OtlpEncoding::Json)),
        ];
        for (config, size) in sizes {
            let estimate = config.estimated_size(json);
            assert!(
                size <= estimate,
                "{config:?}: {size} bytes over the estimate {estimate}"
            );
        }
    }
}
