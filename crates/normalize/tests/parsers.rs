//! Golden tests of the registry's format parsers on real, third-party samples in
//! `shared/testdata`: container log lines with the parses the kubelet and Vector expect, Falco
//! alerts from Falco's own tests, its website and falcosidekick, and syslog messages. The
//! full outputs are kept under `tests/golden/<parser>/` (`UPDATE_GOLDEN=1` rewrites them).

mod common;

use common::{assert_golden, read_testdata, snapshot};
use crowsnest_model::{format_timestamp, parse_timestamp};
use crowsnest_normalize::registry::{self, parse_lines, Source};
use crowsnest_normalize::{decode_ndjson, Decoded, Limits};
use serde_json::{json, Value};

fn named(parser: &str, body: &[u8]) -> Decoded {
    let parser = registry::by_name(parser).expect("a registered parser");
    parse_lines(body, Source::Named(parser), &Limits::default())
}

fn cases(relative: &str) -> Vec<Value> {
    let file: Value = serde_json::from_slice(&read_testdata(relative)).expect("JSON");
    file["cases"].as_array().expect("cases").clone()
}

/// The runtime's nanosecond time as our events carry it (microseconds, UTC).
fn ours(time: &str) -> String {
    format_timestamp(parse_timestamp(&json!(time)).expect("a time"))
}

#[test]
fn container_lines_parse_as_the_kubelet_expects() {
    let mut outputs = Vec::new();
    for case in cases("container-logs/kubelet-parse-log-cases.json") {
        let name = case["name"].as_str().expect("name");
        let line = case["input_line"].as_str().expect("input");
        let line = line.strip_suffix('\n').unwrap_or(line);
        let expected = &case["expected"];
        let parser = if line.starts_with('{') {
            "docker"
        } else {
            "cri"
        };
        let decoded = named(parser, line.as_bytes());
        if expected["error"] == json!(true) {
            assert_eq!(decoded.events.len(), 0, "{name}");
            assert_eq!(decoded.errors.len(), 1, "{name}");
            // Neither format claims it: not a JSON object, not a CRI line.
            let other = if parser == "docker" { "cri" } else { "docker" };
            assert_eq!(named(other, line.as_bytes()).errors.len(), 1, "{name}");
        } else {
            assert!(decoded.errors.is_empty(), "{name}: {:?}", decoded.errors);
            let event = &decoded.events[0];
            let timestamp = expected["timestamp"].as_str().expect("timestamp");
            assert_eq!(event.get_str("@timestamp"), Some(ours(timestamp).as_str()));
            assert_eq!(
                event.get("log.iostream"),
                Some(&expected["stream"]),
                "{name}"
            );
            // The kubelet keeps a full CRI line's `\n`; an event's message has no line ending.
            let log = expected["log"].as_str().expect("log");
            assert_eq!(event.get_str("message"), Some(log.trim_end_matches('\n')));
            assert_eq!(event.get_str("event.original"), Some(line));
            assert_eq!(event.get_str("event.dataset"), Some("container.logs"));
        }
        outputs.push(json!({"case": name, "output": snapshot(&decoded, false)}));
    }
    assert_eq!(outputs.len(), 7);
    assert_golden("container/kubelet_cases.expected.json", &json!(outputs));
}

#[test]
fn container_lines_parse_as_vector_expects_but_a_bad_time_keeps_the_line() {
    let mut checked = 0;
    for case in cases("container-logs/vector-docker-cri-cases.json") {
        let name = case["name"].as_str().expect("name");
        let Some(line) = case["input_line"].as_str() else {
            continue; // invalid UTF-8 given as base64: the registry reads UTF-8 text
        };
        let format = case["format"].as_str().expect("format");
        let decoded = named(format, line.as_bytes());
        let expected = &case["expected"];
        checked += 1;
        if expected["error"] == json!(true) {
            let log_is_text = serde_json::from_str::<Value>(line)
                .ok()
                .is_some_and(|v| v.get("log").is_some_and(Value::is_string));
            if !log_is_text {
                assert_eq!(decoded.events.len(), 0, "{name}");
                // An empty line is skipped, as blank lines of every body are.
                let errors = usize::from(!line.is_empty());
                assert_eq!(decoded.errors.len(), errors, "{name}");
                continue;
            }
            // Vector drops a json-file line whose `time` is missing or bad; we keep its text
            // (what the container wrote) and move the bad time aside.
            assert!(decoded.errors.is_empty(), "{name}: {:?}", decoded.errors);
            let event = &decoded.events[0];
            assert_eq!(event.get("@timestamp"), None, "{name}");
            assert_eq!(event.get_str("message"), Some("Hello world"), "{name}");
            continue;
        }
        assert!(decoded.errors.is_empty(), "{name}: {:?}", decoded.errors);
        let event = &decoded.events[0];
        assert_eq!(event.get("message"), Some(&expected["message"]), "{name}");
        assert_eq!(
            event.get("log.iostream"),
            Some(&expected["stream"]),
            "{name}"
        );
        let timestamp = expected["timestamp"].as_str().expect("timestamp");
        assert_eq!(event.get_str("@timestamp"), Some(ours(timestamp).as_str()));
        let module = if format == "docker" {
            "docker"
        } else {
            "kubernetes"
        };
        assert_eq!(event.get_str("event.module"), Some(module), "{name}");
    }
    assert_eq!(checked, 20);
}

/// Every Falco alert of the samples (the website and falcosidekick files wrap each alert with
/// where it was found).
fn falco_alerts() -> Vec<String> {
    let mut alerts = Vec::new();
    for file in [
        "falco/falco-test-output-single_rule_with_cat_write.jsonl",
        "falco/falco-website-alerts.jsonl",
        "falco/falcosidekick-examples.jsonl",
    ] {
        let text = String::from_utf8(read_testdata(file)).expect("UTF-8");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let value: Value = serde_json::from_str(line).expect("JSON");
            match value.get("alert") {
                Some(alert) => alerts.push(alert.to_string()),
                None => alerts.push(line.to_string()),
            }
        }
    }
    alerts
}

#[test]
fn falco_alerts_map_the_same_named_or_detected() {
    let alerts = falco_alerts();
    assert_eq!(alerts.len(), 31);
    let body = alerts.join("\n");
    let by_name = named("falco", body.as_bytes());
    let detected = decode_ndjson(body.as_bytes(), None, &Limits::default());
    assert!(by_name.errors.is_empty(), "{:?}", by_name.errors);
    assert_eq!(by_name, detected, "detection picks the Falco parser");
    for (event, alert) in by_name.events.iter().zip(&alerts) {
        let alert: Value = serde_json::from_str(alert).expect("JSON");
        assert_eq!(event.get("rule.name"), alert.get("rule"));
        assert_eq!(event.get("message"), alert.get("output"));
        assert!(event.get_str("@timestamp").is_some(), "{alert}");
        let kind = if alert["source"] == "internal" {
            "metric"
        } else {
            "alert"
        };
        assert_eq!(event.get_str("event.kind"), Some(kind));
    }
    assert_golden("falco/alerts.expected.json", &snapshot(&by_name, true));
}

#[test]
fn syslog_messages_parse_by_name_and_keep_their_text() {
    let mut inputs = Vec::new();
    for file in [
        "syslog/rust-syslog-rfc5424-cases.json",
        "syslog/syslog-loose-cases.json",
    ] {
        for case in cases(file) {
            let input = case["input"].as_str().expect("input").to_string();
            if !input.contains('\n') && !input.trim().is_empty() {
                inputs.push(input);
            }
        }
    }
    assert!(inputs.len() > 40, "{}", inputs.len());
    let body = inputs.join("\n");
    let decoded = named("syslog", body.as_bytes());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), inputs.len());
    for (event, input) in decoded.events.iter().zip(&inputs) {
        assert_eq!(
            event.get_str("event.original"),
            Some(input.trim_end_matches(['\r', '\0']))
        );
        assert_eq!(event.get_str("event.dataset"), Some("syslog"));
    }
    // A JSON line is not a syslog message, but the lenient parser keeps it whole.
    let json_line = named("syslog", br#"{"message":"x"}"#);
    assert_eq!(
        json_line.events[0].get_str("message"),
        Some(r#"{"message":"x"}"#)
    );
}

#[test]
fn docker_lines_are_detected_only_by_their_exact_shape() {
    let body = br#"{"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.5Z"}
{"log":"no time\n","stream":"stdout"}
{"log":"extra\n","stream":"stdout","time":"2024-05-01T10:00:00Z","kubernetes":{"pod_name":"web"}}
"#;
    let decoded = decode_ndjson(body, Some("app"), &Limits::default());
    let datasets: Vec<Option<&str>> = decoded
        .events
        .iter()
        .map(|e| e.get_str("event.dataset"))
        .collect();
    // The third is not a json-file line but a shipper's record with Kubernetes metadata:
    // a container log line all the same (the `kubernetes-metadata` parser's).
    assert_eq!(
        datasets,
        vec![Some("container.logs"), Some("app"), Some("container.logs")]
    );
    assert_eq!(decoded.events[0].get_str("message"), Some("hello"));
    assert_eq!(decoded.events[1].get_str("message"), Some("no time\n"));
    assert_eq!(decoded.events[2].get_str("message"), Some("extra"));
    assert_eq!(
        decoded.events[2].get_str("kubernetes.pod.name"),
        Some("web")
    );
    assert_eq!(decoded.events[0].get_str("kubernetes.pod.name"), None);
}
