//! Runtime-sensor events, as the sensors write them, become the ECS process/file/network
//! events our agent writes: golden tests on real samples (`tests/golden/sensors/*.input`,
//! copied from Tetragon's, Tracee's and KubeArmor's own repositories; see the README there) and
//! Falco's field vocabulary, taken from Falco's own alerts (`shared/testdata/falco`) and
//! rewritten as flat dotted records and as nested objects.

mod common;

use common::{assert_golden, read_golden, read_testdata, snapshot};
use crowsnest_model::{format_timestamp, parse_timestamp};
use crowsnest_normalize::registry::{self, parse_lines, Source};
use crowsnest_normalize::{decode_ndjson, Decoded, Limits};
use serde_json::{json, Map, Value};

fn named(parser: &str, body: &[u8]) -> Decoded {
    let parser = registry::by_name(parser).expect("a registered parser");
    parse_lines(body, Source::Named(parser), &Limits::default())
}

/// Decodes a sample by name and by detection (they must agree), with no errors, one event a
/// line, each keeping its line as `event.original` and getting `@timestamp` when it has one of
/// `time_keys` (some documentation examples leave the time out).
fn decode_sample(parser: &str, time_keys: &[&str]) -> (Vec<Value>, Decoded) {
    let body = read_golden(&format!("sensors/{parser}.input"));
    let lines: Vec<Value> = String::from_utf8(body.clone())
        .expect("UTF-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let by_name = named(parser, &body);
    assert!(by_name.errors.is_empty(), "{:?}", by_name.errors);
    assert_eq!(by_name.events.len(), lines.len());
    let detected = decode_ndjson(&body, None, &Limits::default());
    assert_eq!(by_name, detected, "detection picks the {parser} parser");
    for (event, line) in by_name.events.iter().zip(&lines) {
        let original: Value =
            serde_json::from_str(event.get_str("event.original").expect("original")).expect("JSON");
        assert_eq!(&original, line);
        let timed = time_keys.iter().any(|k| line.get(*k).is_some());
        assert_eq!(event.get_str("@timestamp").is_some(), timed, "{line}");
    }
    (lines, by_name)
}

fn category(event: &crowsnest_model::Event) -> Option<&str> {
    event
        .get("event.category")
        .and_then(|c| c.get(0))
        .and_then(Value::as_str)
}

#[test]
fn tetragon_exports_map_process_parent_pod_files_and_connections() {
    let (lines, decoded) = decode_sample("tetragon", &["time"]);
    let mut seen = Vec::new();
    for (event, line) in decoded.events.iter().zip(&lines) {
        let (kind, body) = line
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.starts_with("process_")))
            .expect("a process_* event");
        let process = &body["process"];
        assert_eq!(event.get("process.executable"), process.get("binary"));
        assert_eq!(event.get("process.pid"), process.get("pid"));
        assert_eq!(
            event.get("process.parent.executable"),
            body["parent"].get("binary"),
            "{kind}"
        );
        let container = process["pod"]["container"]["id"].as_str().expect("id");
        let id = container.split_once("://").map_or(container, |(_, id)| id);
        assert_eq!(event.get_str("container.id"), Some(id));
        assert_eq!(
            event.get("kubernetes.namespace"),
            process["pod"].get("namespace")
        );
        seen.push((kind.clone(), category(event).map(str::to_string)));
        if kind == "process_exec" {
            let arguments = process["arguments"].as_str().unwrap_or("");
            let line = event.get_str("process.command_line").expect("command line");
            assert!(line.starts_with(process["binary"].as_str().expect("binary")));
            assert!(
                arguments.contains('"') || line.ends_with(arguments),
                "{line} / {arguments}"
            );
        }
    }
    let count = |kind: &str, cat: Option<&str>| {
        seen.iter()
            .filter(|(k, c)| k == kind && c.as_deref() == cat)
            .count()
    };
    assert_eq!(count("process_exec", Some("process")), 5);
    assert_eq!(count("process_exit", Some("process")), 2);
    assert_eq!(count("process_kprobe", Some("file")), 2);
    assert_eq!(count("process_connect", Some("network")), 1);
    let connect = &decoded.events[7];
    assert_eq!(connect.get_str("destination.ip"), Some("64.225.45.153"));
    assert_eq!(connect.get("destination.port"), Some(&json!(443)));
    let write = &decoded.events[9];
    assert_eq!(write.get_str("file.path"), Some("/etc/passwd"));
    assert_eq!(write.get("event.type"), Some(&json!(["change"])));
    assert_golden("sensors/tetragon.expected.json", &snapshot(&decoded, true));
}

#[test]
fn tracee_events_map_execs_files_and_signatures() {
    let (lines, decoded) = decode_sample("tracee", &["timestamp"]);
    for (event, line) in decoded.events.iter().zip(&lines) {
        assert_eq!(event.get_str("event.action"), line["eventName"].as_str());
        assert_eq!(event.get("process.pid"), line.get("hostProcessId"));
        assert_eq!(
            event.get("process.parent.pid"),
            line.get("hostParentProcessId")
        );
        let user = line["userId"].as_i64().map(|u| u.to_string());
        assert_eq!(event.get_str("user.id"), user.as_deref());
    }
    let exec = &decoded.events[0];
    assert_eq!(category(exec), Some("process"));
    assert_eq!(
        exec.get_str("process.executable"),
        Some("/opt/cni/bin/bridge")
    );
    assert_eq!(exec.get_str("process.name"), Some("bridge"));
    assert_eq!(
        exec.get_str("process.command_line"),
        Some("/opt/cni/bin/bridge")
    );
    let open = &decoded.events[1];
    assert_eq!(category(open), Some("file"));
    assert_eq!(
        open.get("event.type"),
        Some(&json!(["change"])),
        "O_WRONLY|O_CREAT"
    );
    assert_eq!(open.get_str("file.path"), Some("/tmp/testing.txt"));
    let read = &decoded.events[7];
    assert_eq!(read.get_str("file.path"), Some("/proc/meminfo"));
    assert_eq!(read.get("event.type"), Some(&json!(["access"])));
    let signature = decoded.events.last().expect("events");
    assert_eq!(signature.get_str("event.kind"), Some("alert"));
    assert_eq!(signature.get_str("rule.name"), Some("My Own Signature"));
    assert_golden("sensors/tracee.expected.json", &snapshot(&decoded, true));
}

#[test]
fn kubearmor_logs_and_alerts_map_by_operation() {
    let (lines, decoded) = decode_sample("kubearmor", &["UpdatedTime", "Timestamp"]);
    for (event, line) in decoded.events.iter().zip(&lines) {
        let expected = match line["Operation"].as_str() {
            Some("Process") => Some("process"),
            Some("File") => Some("file"),
            Some("Network") if line["Data"].as_str().is_some_and(|d| d.contains("CONNECT")) => {
                Some("network")
            }
            _ => None,
        };
        assert_eq!(category(event), expected, "{line}");
        assert_eq!(event.get("process.executable"), line.get("ProcessName"));
        assert_eq!(
            event.get("process.parent.executable"),
            line.get("ParentProcessName")
        );
        assert_eq!(event.get("container.id"), line.get("ContainerID"));
        assert_eq!(event.get("kubernetes.pod.name"), line.get("PodName"));
        let alert = line.get("PolicyName").is_some();
        assert_eq!(
            event.get_str("event.kind"),
            Some(if alert { "alert" } else { "event" })
        );
        if expected == Some("process") {
            assert_eq!(event.get("process.command_line"), line.get("Resource"));
        }
        if expected == Some("file") {
            assert_eq!(event.get("file.path"), line.get("Resource"));
        }
    }
    let vault = &decoded.events[0];
    assert_eq!(
        vault.get_str("process.command_line"),
        Some("/bin/sh -ec vault status -tls-skip-verify")
    );
    assert_eq!(
        vault.get_str("container.image.name"),
        Some("docker.io/hashicorp/vault")
    );
    assert_eq!(vault.get_str("container.image.tag"), Some("1.13.1"));
    let dns = &decoded.events[2];
    assert_eq!(dns.get_str("destination.ip"), Some("10.0.0.10"));
    assert_eq!(dns.get("destination.port"), Some(&json!(53)));
    assert_golden("sensors/kubearmor.expected.json", &snapshot(&decoded, true));
}

/// Falco's own syscall alerts whose `output_fields` describe a process.
fn falco_process_fields() -> Vec<(Value, Map<String, Value>)> {
    let mut out = Vec::new();
    for file in [
        "falco/falco-test-output-single_rule_with_cat_write.jsonl",
        "falco/falco-website-alerts.jsonl",
        "falco/falcosidekick-examples.jsonl",
    ] {
        let text = String::from_utf8(read_testdata(file)).expect("UTF-8");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let value: Value = serde_json::from_str(line).expect("JSON");
            let alert = value.get("alert").cloned().unwrap_or(value);
            let Some(fields) = alert["output_fields"].as_object().cloned() else {
                continue;
            };
            let vocabulary = fields.keys().any(|k| k.starts_with("proc."))
                && fields.keys().any(|k| k.starts_with("evt."));
            if vocabulary {
                out.push((alert, fields));
            }
        }
    }
    out
}

/// `{"proc.name": "sh"}` → `{"proc": {"name": "sh"}}`.
fn nest(fields: &Map<String, Value>) -> Value {
    let mut root = json!({});
    for (key, value) in fields {
        let mut slot = &mut root;
        let parts: Vec<&str> = key.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            slot = slot
                .as_object_mut()
                .expect("object")
                .entry(part.to_string())
                .or_insert_with(|| json!({}));
        }
        slot[parts[parts.len() - 1]] = value.clone();
    }
    root
}

const MAPPED: &[&str] = &[
    "process.name",
    "process.executable",
    "process.command_line",
    "process.pid",
    "process.parent.name",
    "process.parent.pid",
    "user.name",
    "user.id",
    "container.id",
    "container.name",
    "container.image.name",
    "container.image.tag",
    "kubernetes.namespace",
    "kubernetes.pod.name",
    "file.path",
];

#[test]
fn falco_vocabulary_maps_the_same_as_an_alert_flat_or_nested() {
    let samples = falco_process_fields();
    assert!(samples.len() >= 9, "{}", samples.len());
    for (alert, fields) in &samples {
        let alert_event = &named("falco", alert.to_string().as_bytes()).events[0];
        let flat = Value::Object(fields.clone()).to_string();
        let nested = nest(fields).to_string();
        let wrapped = json!({ "output_fields": fields }).to_string();
        for record in [flat, nested, wrapped] {
            let decoded = decode_ndjson(record.as_bytes(), None, &Limits::default());
            assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
            let event = &decoded.events[0];
            assert_eq!(
                event.get_str("event.dataset"),
                Some("falco.events"),
                "{record}"
            );
            for path in MAPPED {
                assert_eq!(event.get(path), alert_event.get(path), "{path} of {record}");
            }
            // Falco's event time (the alert's `time` is when the alert was written).
            let time = fields
                .iter()
                .find(|(k, _)| k.starts_with("evt.time"))
                .and_then(|(_, v)| parse_timestamp(v))
                .map(format_timestamp);
            assert_eq!(event.get_str("@timestamp"), time.as_deref(), "{record}");
        }
        if fields.contains_key("proc.cmdline") {
            assert_eq!(
                alert_event.get("process.command_line"),
                fields.get("proc.cmdline")
            );
        }
    }
}

#[test]
fn falco_exec_alerts_are_process_events() {
    let alert = json!({
        "time": "2024-05-01T10:00:00Z", "rule": "Terminal shell in container", "priority": "Notice",
        "output": "shell", "source": "syscall",
        "output_fields": {"evt.type": "execve", "proc.exepath": "/bin/bash", "proc.name": "bash",
            "proc.cmdline": "bash -il", "proc.pexepath": "/usr/bin/runc", "proc.pname": "runc",
            "container.id": "host", "user.uid": 0}
    });
    let event = &named("falco", alert.to_string().as_bytes()).events[0];
    assert_eq!(event.get_str("event.kind"), Some("alert"));
    assert_eq!(event.get("event.category"), Some(&json!(["process"])));
    assert_eq!(event.get("event.type"), Some(&json!(["start"])));
    assert_eq!(
        event.get_str("process.parent.executable"),
        Some("/usr/bin/runc")
    );
    assert_eq!(event.get_str("user.id"), Some("0"));
    assert_eq!(
        event.get("container.id"),
        None,
        "Falco's `host` is the host"
    );
}
