//! Golden tests on real, third-party samples in `shared/testdata`: syslog lines with the
//! parses `syslog_loose` and `rust-syslog-rfc5424` upstream expect, and Falco alerts.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use crowsnest_ingest::{falco, syslog, Limits};
use serde_json::Value;

fn testdata(path: &str) -> String {
    let full = format!(
        "{}/../../../shared/testdata/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

/// The year rule the syslog-loose tests use: 2019 for December, 2020 otherwise.
fn test_year((month, ..): (u32, u32, u32, u32, u32)) -> i32 {
    if month == 12 {
        2019
    } else {
        2020
    }
}

fn timezone(mode: &str) -> Option<FixedOffset> {
    if mode.contains("tz=+05:00") {
        return FixedOffset::east_opt(5 * 3600);
    }
    if mode.contains("tz=Europe/Paris") {
        return FixedOffset::east_opt(3600); // January: CET
    }
    None
}

#[test]
fn syslog_loose_cases_parse_as_upstream_expects() {
    let cases: Value =
        serde_json::from_str(&testdata("syslog/syslog-loose-cases.json")).expect("json");
    let mut checked = 0;
    for case in cases["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or_default();
        let input = case["input"].as_str().expect("input");
        let mode = case["mode"].as_str().unwrap_or_default();
        let expected = &case["expected"];
        let event = syslog::decode_message_with(
            input.as_bytes(),
            None,
            test_year,
            timezone(mode),
            &Limits::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        if expected.get("error").is_some() {
            // `*_exact` error cases: our lenient decoder keeps the whole line as the message.
            assert_eq!(event.get_str("message"), Some(input), "{name}");
            checked += 1;
            continue;
        }
        let field = |path: &str| event.get(path).cloned().unwrap_or(Value::Null);
        assert_eq!(
            field("syslog.facility"),
            expected["facility"],
            "{name}: facility"
        );
        assert_eq!(
            field("syslog.severity"),
            expected["severity"],
            "{name}: severity"
        );
        assert_eq!(
            field("syslog.hostname"),
            expected["hostname"],
            "{name}: hostname"
        );
        assert_eq!(
            field("syslog.appname"),
            expected["appname"],
            "{name}: appname"
        );
        assert_eq!(field("syslog.procid"), expected["procid"], "{name}: procid");
        assert_eq!(field("syslog.msgid"), expected["msgid"], "{name}: msgid");
        // One case documents its protocol as library-specific (a strict reading is RFC 5424).
        let library_specific = case["_note"]
            .as_str()
            .is_some_and(|n| n.contains("Library-specific"));
        if !library_specific {
            assert_eq!(
                field("syslog.protocol"),
                expected["protocol"],
                "{name}: protocol"
            );
        }
        assert_eq!(field("message"), expected["msg"], "{name}: msg");
        let mut sd = serde_json::Map::new();
        for element in expected["structured_data"].as_array().expect("sd") {
            let mut params = serde_json::Map::new();
            for pair in element["params"].as_array().expect("params") {
                params.insert(pair[0].as_str().expect("name").into(), pair[1].clone());
            }
            sd.insert(
                element["id"].as_str().expect("id").into(),
                Value::Object(params),
            );
        }
        let ours = event
            .get("syslog.structured_data")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        assert_eq!(ours, Value::Object(sd), "{name}: structured data");
        let ours_time = event
            .get_str("@timestamp")
            .map(|t| DateTime::parse_from_rfc3339(t).expect("rfc3339"));
        match (
            expected["timestamp_kind"].as_str(),
            expected["timestamp"].as_str(),
        ) {
            (Some("offset"), Some(text)) => {
                let want = DateTime::parse_from_rfc3339(text).expect("expected time");
                assert_eq!(ours_time, Some(want), "{name}: timestamp");
            }
            (Some("local"), Some(text)) => {
                let naive =
                    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").expect("naive");
                let want = chrono::Local
                    .from_local_datetime(&naive)
                    .single()
                    .expect("local");
                assert_eq!(
                    ours_time.map(|t| t.timestamp()),
                    Some(want.timestamp()),
                    "{name}: timestamp"
                );
            }
            _ => assert_eq!(ours_time, None, "{name}: no timestamp expected"),
        }
        checked += 1;
    }
    assert_eq!(checked, 27);
}

#[test]
fn rust_syslog_rfc5424_cases_agree_where_the_strict_parser_accepts() {
    let cases: Value =
        serde_json::from_str(&testdata("syslog/rust-syslog-rfc5424-cases.json")).expect("json");
    let mut checked = 0;
    for case in cases["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or_default();
        let input = case["input"].as_str().expect("input");
        let expected = &case["expected"];
        let event = syslog::decode_message(input.as_bytes(), None, &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if expected["error"] == true {
            // The strict parser rejects these; the lenient one must still give an event.
            assert!(event.get_str("message").is_some(), "{name}");
            checked += 1;
            continue;
        }
        if let Some(epoch) = expected["timestamp_epoch"].as_i64() {
            let ours = event
                .get_str("@timestamp")
                .map(|t| DateTime::parse_from_rfc3339(t).expect("rfc3339"));
            assert_eq!(ours.map(|t| t.timestamp()), Some(epoch), "{name}");
            if let Some(nanos) = expected["timestamp_nanos"].as_u64() {
                // `@timestamp` keeps microseconds.
                assert_eq!(
                    ours.map(|t| u64::from(t.timestamp_subsec_micros())),
                    Some(nanos / 1000),
                    "{name}"
                );
            }
        }
        for (key, path) in [
            ("facility", "syslog.facility"),
            ("severity", "syslog.severity"),
            ("hostname", "syslog.hostname"),
            ("appname", "syslog.appname"),
            ("procid", "syslog.procid"),
            ("msg", "message"),
        ] {
            if let Some(want) = expected.get(key) {
                let ours = event.get(path).cloned().unwrap_or(Value::Null);
                assert_eq!(&ours, want, "{name}: {key}");
            }
        }
        if let Some(Value::Object(want)) = expected.get("structured_data") {
            let ours = event
                .get("syslog.structured_data")
                .cloned()
                .unwrap_or(Value::Object(Default::default()));
            assert_eq!(ours, Value::Object(want.clone()), "{name}: structured data");
        }
        checked += 1;
    }
    assert_eq!(checked, 22);
}

#[test]
fn falco_samples_map_rule_priority_time_and_fields() {
    let mut alerts = Vec::new();
    for line in testdata("falco/falco-test-output-single_rule_with_cat_write.jsonl").lines() {
        alerts.push(serde_json::from_str::<Value>(line).expect("json"));
    }
    for file in [
        "falco/falcosidekick-examples.jsonl",
        "falco/falco-website-alerts.jsonl",
    ] {
        for line in testdata(file).lines() {
            let sample: Value = serde_json::from_str(line).expect("json");
            alerts.push(sample["alert"].clone());
        }
    }
    assert_eq!(alerts.len(), 31);
    let body: String = alerts.iter().map(|a| format!("{a}\n")).collect();
    let decoded = falco::decode(body.as_bytes(), &Limits::default()).expect("decodes");
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), 31);
    for (alert, event) in alerts.iter().zip(&decoded.events) {
        assert_eq!(event.get("rule.name"), alert.get("rule"));
        assert_eq!(event.get("message"), alert.get("output"));
        assert_eq!(
            event.get_str("log.level"),
            alert["priority"].as_str().map(str::to_lowercase).as_deref()
        );
        let internal = alert["source"] == "internal";
        assert_eq!(
            event.get_str("event.kind"),
            Some(if internal { "metric" } else { "alert" })
        );
        let fields = alert["output_fields"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            event.get("falco.output_fields"),
            Some(&Value::Object(fields.clone()))
        );
        if let Some(Value::String(ns)) = fields.get("k8s.ns.name") {
            assert_eq!(event.get_str("kubernetes.namespace"), Some(ns.as_str()));
        }
        if let Some(Value::String(id)) = fields.get("container.id") {
            assert_eq!(event.get_str("container.id"), Some(id.as_str()));
        }
        let time = alert["time"].as_str().expect("time");
        let ours = event.get_str("@timestamp").expect("timestamp");
        assert_eq!(&ours[..19], &time[..19], "{time}");
    }
    let metrics = decoded
        .events
        .iter()
        .filter(|e| e.get_str("event.kind") == Some("metric"))
        .count();
    assert_eq!(metrics, 5);
}
