//! ArcSight Common Event Format (CEF 0, "Implementing ArcSight CEF" revision 26).
//!
//! ```text
//! CEF:0|crowsnest|crowsnest|0.1.0|k8s-exec-into-pod|Exec into a pod|8|rt=1714557600000 externalId=01HX3Q cat=crowsnest.alert act=create msg=Exec into a pod suser=alice dhost=node-1 dvchost=crowsnest-1 cnt=3 cs1Label=namespace cs1=prod cs2Label=pod cs2=web-1 cs3Label=containerImage cs3=nginx cs4Label=techniques cs4=T1609,T1611
//! ```
//!
//! | header | from |
//! |---|---|
//! | Device Vendor / Product / Version | `crowsnest` / `crowsnest` / this crate's version |
//! | Signature ID | `rule.id`, else `event.dataset`, else `event` |
//! | Name | `rule.name`, else `event.action`, else `message` (first 512 characters), else `event.dataset` |
//! | Severity | alerts by level: critical 10, high 8, medium 5, low 3, informational 1; events 1 |
//!
//! | extension | from |
//! |---|---|
//! | `rt` | `@timestamp`, milliseconds since the epoch |
//! | `externalId` | `event.id` |
//! | `cat` | `event.dataset` |
//! | `act` | `event.action` |
//! | `outcome` | `event.outcome` |
//! | `msg` | `message` |
//! | `src` | `source.ip` |
//! | `suser` | `user.name` |
//! | `dhost` | `host.name` |
//! | `dvchost` | the forwarding crowsnest's host name |
//! | `dproc` | `process.executable` |
//! | `cnt` | `alert.count` |
//! | `cs1`…`cs5` (with `csNLabel`) | namespace (`kubernetes.namespace`), pod (`kubernetes.pod.name`), containerImage (`container.image.name`), techniques (`threat.technique.id`, comma-joined), containerId (`container.id`) |
//!
//! Escaping: in the header `\` → `\\` and `|` → `\|`, line breaks become spaces; in extension
//! values `\` → `\\`, `=` → `\=`, newline → `\n`, carriage return → `\r`.

use crowsnest_model::{Event, Severity};

use crate::fields::{alert_severity, cef_severity, event_time, text};

/// This crate's version, the CEF Device Version.
pub const DEVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest Name field, in characters.
const NAME_CHARS: usize = 512;

/// Escapes a header field.
pub fn escape_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an extension value.
pub fn escape_extension(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The CEF record of an event; `device_host` is the `dvchost`.
pub fn encode(event: &Event, device_host: &str) -> String {
    let signature = text(event, "rule.id")
        .or_else(|| text(event, "event.dataset"))
        .unwrap_or_else(|| "event".to_string());
    let name = text(event, "rule.name")
        .or_else(|| text(event, "event.action"))
        .or_else(|| text(event, "message"))
        .or_else(|| text(event, "event.dataset"))
        .unwrap_or_else(|| "event".to_string());
    let name: String = name.chars().take(NAME_CHARS).collect();
    let severity = cef_severity(alert_severity(event).unwrap_or(Severity::Informational));
    let mut extension: Vec<(String, String)> = vec![(
        "rt".to_string(),
        event_time(event).timestamp_millis().to_string(),
    )];
    let simple = [
        ("externalId", "event.id"),
        ("cat", "event.dataset"),
        ("act", "event.action"),
        ("outcome", "event.outcome"),
        ("msg", "message"),
        ("src", "source.ip"),
        ("suser", "user.name"),
        ("dhost", "host.name"),
    ];
    for (key, path) in simple {
        if let Some(value) = text(event, path) {
            extension.push((key.to_string(), value));
        }
    }
    extension.push(("dvchost".to_string(), device_host.to_string()));
    for (key, path) in [("dproc", "process.executable"), ("cnt", "alert.count")] {
        if let Some(value) = text(event, path) {
            extension.push((key.to_string(), value));
        }
    }
    let custom = [
        ("namespace", "kubernetes.namespace"),
        ("pod", "kubernetes.pod.name"),
        ("containerImage", "container.image.name"),
        ("techniques", "threat.technique.id"),
        ("containerId", "container.id"),
    ];
    for (n, (label, path)) in custom.iter().enumerate() {
        if let Some(value) = text(event, path) {
            extension.push((format!("cs{}Label", n + 1), (*label).to_string()));
            extension.push((format!("cs{}", n + 1), value));
        }
    }
    let extension: Vec<String> = extension
        .into_iter()
        .map(|(key, value)| format!("{key}={}", escape_extension(&value)))
        .collect();
    format!(
        "CEF:0|crowsnest|crowsnest|{}|{}|{}|{severity}|{}",
        escape_header(DEVICE_VERSION),
        escape_header(&signature),
        escape_header(&name),
        extension.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escaping_follows_the_cef_rules() {
        assert_eq!(escape_header(r"a|b\c"), r"a\|b\\c");
        assert_eq!(escape_header("two\nlines"), "two lines");
        assert_eq!(escape_extension("a=b\\c\nd\re|f"), r"a\=b\\c\nd\re|f");
    }

    #[test]
    fn an_alert_becomes_a_golden_record() {
        let alert: Event = serde_json::from_value(json!({
            "@timestamp": "2024-05-01T10:00:00Z",
            "event": {"id": "01HX", "kind": "alert", "dataset": "crowsnest.alert"},
            "rule": {"id": "k8s|exec", "name": "Exec into a pod", "level": "high"},
            "message": "Exec into a pod\nuser=alice",
            "user": {"name": "alice"},
            "kubernetes": {"namespace": "prod", "pod": {"name": "web-1"}},
            "threat": {"technique": {"id": ["T1609", "T1611"]}},
            "alert": {"count": 3}
        }))
        .expect("alert");
        let expected = format!(
            "CEF:0|crowsnest|crowsnest|{DEVICE_VERSION}|k8s\\|exec|Exec into a pod|8|rt=1714557600000 \
             externalId=01HX cat=crowsnest.alert msg=Exec into a pod\\nuser\\=alice suser=alice \
             dvchost=cn-1 cnt=3 cs1Label=namespace cs1=prod cs2Label=pod cs2=web-1 \
             cs4Label=techniques cs4=T1609,T1611"
        );
        assert_eq!(encode(&alert, "cn-1"), expected);
    }

    #[test]
    fn an_event_is_named_by_its_action_and_dataset() {
        let event: Event = serde_json::from_value(json!({
            "@timestamp": "2024-05-01T10:00:00.5Z",
            "event": {"kind": "event", "dataset": "docker.events", "action": "start"},
            "host": {"name": "node-1"}, "source": {"ip": "10.0.0.1"}
        }))
        .expect("event");
        assert_eq!(
            encode(&event, "cn"),
            format!(
                "CEF:0|crowsnest|crowsnest|{DEVICE_VERSION}|docker.events|start|1|rt=1714557600500 \
                 cat=docker.events act=start src=10.0.0.1 dhost=node-1 dvchost=cn"
            )
        );
    }
}
