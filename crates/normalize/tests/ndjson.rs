//! NDJSON bodies: every failure mode with its line number, good lines around bad ones, and
//! the generic mapping (timestamps, ECS pass-through, message aliases).

mod common;

use common::read_testdata;
use crowsnest_normalize::{decode_ndjson, known_sources, Limits, TIME_KEYS};
use serde_json::{json, Value};

fn lines(body: &[&[u8]]) -> Vec<u8> {
    body.join(&b'\n')
}

#[test]
fn every_bad_line_is_reported_and_good_lines_survive() {
    let exec = read_testdata("k8s-audit/falco-traces/exec_pod.json");
    let exec = exec.trim_ascii_end();
    let long = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1100));
    let deep = format!("{}{}", "[".repeat(20), "]".repeat(20));
    let deep_object = format!(r#"{{"a":{deep}}}"#);
    let body = lines(&[
        br#"{"msg":"first","ts":"2024-03-01T12:00:00Z"}"#, // 1 good
        b"",                                               // 2 blank
        br#"{"broken": "#,                                 // 3 invalid JSON
        b"[1,2]",                                          // 4 not an object
        long.as_bytes(),                                   // 5 too long
        b"{\"a\":\"\xff\"}",                               // 6 invalid UTF-8
        deep_object.as_bytes(),                            // 7 too deep
        b"{\"msg\":\"crlf\"}\r",                           // 8 good, \r\n line end
        b"   \t ",                                         // 9 blank
        br#""just a string""#,                             // 10 not an object
        exec,                                              // 11 good, audit event
        b"",                                               // trailing newline
    ]);
    let limits = Limits {
        max_line_bytes: 1024,
        max_depth: 8,
        max_field_bytes: 1024,
    };
    let decoded = decode_ndjson(&body, None, &limits);

    let error_lines: Vec<usize> = decoded.errors.iter().map(|e| e.line).collect();
    assert_eq!(error_lines, vec![3, 4, 5, 6, 7, 10], "{:?}", decoded.errors);
    let reasons: Vec<&str> = decoded.errors.iter().map(|e| e.reason.as_str()).collect();
    assert!(
        reasons[0].starts_with("expected valid JSON"),
        "{}",
        reasons[0]
    );
    assert_eq!(reasons[1], "expected a JSON object, found an array");
    assert_eq!(
        reasons[2],
        "expected at most 1024 bytes per line, found 1110 bytes"
    );
    assert_eq!(
        reasons[3],
        "expected UTF-8 text, found invalid UTF-8 at byte 6"
    );
    assert_eq!(reasons[4], "expected JSON nested at most 8 levels deep");
    assert_eq!(reasons[5], "expected a JSON object, found a string");
    assert!(decoded.errors.iter().all(|e| e.field.is_none()));

    let originals: Vec<&str> = decoded
        .events
        .iter()
        .map(|e| e.get_str("event.original").expect("original"))
        .collect();
    assert_eq!(
        originals,
        vec![
            r#"{"msg":"first","ts":"2024-03-01T12:00:00Z"}"#,
            r#"{"msg":"crlf"}"#,
            std::str::from_utf8(exec).expect("utf-8"),
        ]
    );
    assert_eq!(
        decoded.events[2].get_str("event.dataset"),
        Some("kubernetes.audit")
    );
    assert_eq!(
        decoded.events[2].get_str("orchestrator.resource.subresource"),
        Some("exec")
    );
}

#[test]
fn errors_serialize_for_the_api_response() {
    let decoded = decode_ndjson(b"{}\nnope", None, &Limits::default());
    let rendered = serde_json::to_value(&decoded.errors).expect("serializable");
    assert_eq!(rendered[0]["line"], json!(2));
    assert_eq!(rendered[0]["field"], Value::Null);
    assert!(rendered[0]["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("expected valid JSON")));
}

#[test]
fn timestamps_in_many_formats_normalize_to_the_same_instant() {
    let inputs = [
        r#"{"@timestamp":"2024-03-01T13:34:56.789+01:00"}"#,
        r#"{"timestamp":1709296496789}"#,
        r#"{"time":"2024-03-01 12:34:56.789"}"#,
        r#"{"ts":1709296496.789}"#,
        r#"{"date":"2024-03-01T12:34:56.789Z"}"#,
        r#"{"datetime":"2024-03-01T12:34:56.789"}"#,
        r#"{"eventTime":"1709296496789000000"}"#,
        r#"{"_time":"1709296496789000"}"#,
    ];
    assert_eq!(inputs.len(), TIME_KEYS.len(), "one line per recognised key");
    let body = inputs.join("\n");
    let decoded = decode_ndjson(body.as_bytes(), None, &Limits::default());
    assert!(decoded.errors.is_empty());
    for (event, input) in decoded.events.iter().zip(inputs) {
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2024-03-01T12:34:56.789000Z"),
            "{input}"
        );
    }
    // The original key stays as it was sent.
    assert_eq!(
        decoded.events[1].get("timestamp"),
        Some(&json!(1709296496789u64))
    );

    let rfc2822 = decode_ndjson(
        br#"{"date":"Fri, 01 Mar 2024 12:34:56 +0000"}"#,
        None,
        &Limits::default(),
    );
    assert_eq!(
        rfc2822.events[0].get_str("@timestamp"),
        Some("2024-03-01T12:34:56.000000Z")
    );
}

#[test]
fn first_parseable_time_key_wins_and_garbage_gives_no_timestamp() {
    let body = br#"{"@timestamp":"not a time","time":"2024-01-02T03:04:05Z"}
{"time":"whenever","level":"info"}"#;
    let decoded = decode_ndjson(body, None, &Limits::default());
    assert_eq!(
        decoded.events[0].get_str("@timestamp"),
        Some("2024-01-02T03:04:05.000000Z")
    );
    let untimed = &decoded.events[1];
    assert_eq!(
        untimed.get("@timestamp"),
        None,
        "the server fills in ingest time"
    );
    assert_eq!(untimed.get_str("time"), Some("whenever"));
}

#[test]
fn ecs_shaped_json_passes_through_unchanged() {
    let input = json!({
        "@timestamp": "2024-03-01T12:34:56.789000Z",
        "event": {"dataset": "nginx.access", "kind": "event", "category": ["web"]},
        "host": {"name": "web-1", "ip": ["10.0.0.5"]},
        "container": {"id": "4f1c", "image": {"name": "nginx", "tag": "1.25"}},
        "http": {"response": {"status_code": 200}},
        "message": "GET / 200",
    });
    let line = input.to_string();
    let decoded = decode_ndjson(line.as_bytes(), Some("web"), &Limits::default());
    let mut output = decoded.events[0].clone().into_value();
    assert_eq!(output["event"]["original"], json!(line));
    assert_eq!(output["event"]["module"], json!("ndjson"));
    let event = output["event"].as_object_mut().expect("object");
    event.remove("original");
    event.remove("module");
    assert_eq!(output, input, "nothing else added, removed or changed");
}

#[test]
fn message_comes_from_aliases_when_absent() {
    let body = br#"{"msg":"from msg"}
{"log":"from log\n","stream":"stdout"}
{"MESSAGE":"from journald"}
{"message":"own","msg":"alias"}
{"log":{"level":"info"}}"#;
    let decoded = decode_ndjson(body, None, &Limits::default());
    let messages: Vec<Option<&str>> = decoded
        .events
        .iter()
        .map(|e| e.get_str("message"))
        .collect();
    assert_eq!(
        messages,
        vec![
            Some("from msg"),
            Some("from log\n"),
            Some("from journald"),
            Some("own"),
            None
        ]
    );
    assert_eq!(
        decoded.events[0].get_str("msg"),
        Some("from msg"),
        "alias kept"
    );
}

#[test]
fn source_names_dataset_or_forces_a_decoder() {
    let audit = read_testdata("k8s-audit/falco-traces/create_secret.json");
    let mut body = br#"{"msg":"app line"}"#.to_vec();
    body.push(b'\n');
    body.extend_from_slice(audit.trim_ascii_end());

    let named = decode_ndjson(&body, Some("payments-api"), &Limits::default());
    assert_eq!(
        named.events[0].get_str("event.dataset"),
        Some("payments-api")
    );
    assert_eq!(
        named.events[1].get_str("event.dataset"),
        Some("kubernetes.audit")
    );

    let generic = decode_ndjson(&body, Some("generic"), &Limits::default());
    assert!(generic
        .events
        .iter()
        .all(|e| e.get_str("event.dataset") == Some("ndjson")));
    assert_eq!(
        generic.events[1].get_str("verb"),
        Some("create"),
        "kept as sent"
    );

    let forced = decode_ndjson(&body, Some("kubernetes.audit"), &Limits::default());
    assert_eq!(forced.events.len(), 1);
    assert_eq!(forced.errors.len(), 1);
    assert_eq!(forced.errors[0].line, 1);
    assert!(known_sources().contains(&"kubernetes.audit"));
}

#[test]
fn long_fields_are_truncated_and_recorded() {
    let line = format!(
        r#"{{"message":"{}","nested":{{"list":["{}","ok"]}}}}"#,
        "é".repeat(40),
        "y".repeat(50)
    );
    let limits = Limits {
        max_field_bytes: 21,
        ..Limits::default()
    };
    let decoded = decode_ndjson(line.as_bytes(), None, &limits);
    let event = &decoded.events[0];
    assert_eq!(
        event.get_str("message"),
        Some("é".repeat(10).as_str()),
        "cut at a char boundary"
    );
    assert_eq!(
        event.get("nested.list"),
        Some(&json!(["y".repeat(21), "ok"]))
    );
    assert_eq!(
        event.get("crowsnest.truncated"),
        Some(&json!(["message", "nested.list"]))
    );
    assert_eq!(
        event.get_str("event.original"),
        Some(line.as_str()),
        "original kept whole"
    );
}

#[test]
fn byte_order_mark_and_empty_bodies() {
    let decoded = decode_ndjson(b"\xEF\xBB\xBF{\"msg\":\"bom\"}\n", None, &Limits::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(
        decoded.events[0].get_str("event.original"),
        Some(r#"{"msg":"bom"}"#)
    );
    assert_eq!(
        decode_ndjson(b"", None, &Limits::default()),
        Default::default()
    );
    assert_eq!(
        decode_ndjson(b"\n\r\n  \n", None, &Limits::default()),
        Default::default()
    );
}
