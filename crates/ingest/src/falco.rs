//! Falco alerts: Falco's own `http_output` (one JSON alert per request) and falcosidekick's
//! webhook output (the same object), also accepted as a JSON array or NDJSON: every alert of
//! an array or of the lines becomes its own event, keeping its own exact text as
//! `event.original`.
//!
//! An alert becomes an event with `event.kind: alert`, `rule.name`, `message` (the rendered
//! `output`), `log.level` and `event.severity` from `priority`, `host.name`, `tags`, and the
//! raw alert fields under `falco.*` (`falco.output_fields` keeps Falco's dotted field names as
//! keys). Well-known `output_fields` are mapped to our fields ([`OUTPUT_FIELDS`]), so an alert
//! about `k8s.ns.name=prod` is found by `kubernetes.namespace:prod`. Falco's internal metrics
//! snapshots (`source: internal`) are kept as `event.kind: metric` in `falco.internal`, not
//! as alerts. A `time` that does not parse is repaired when its RFC 3339 prefix does (a
//! known website example ends in `Z+2`), otherwise the item is rejected.

use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use crowsnest_normalize::{Decoded, LineError};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::common::{finish, too_deep};
use crate::{IngestError, Limits};

/// Falco output fields copied to our fields: `(falco field, event path)`.
pub const OUTPUT_FIELDS: &[(&str, &str)] = &[
    ("container.id", "container.id"),
    ("container.name", "container.name"),
    ("container.image.repository", "container.image.name"),
    ("container.image.tag", "container.image.tag"),
    ("k8s.ns.name", "kubernetes.namespace"),
    ("k8s.pod.name", "kubernetes.pod.name"),
    ("proc.cmdline", "process.command_line"),
    ("proc.name", "process.name"),
    ("proc.exepath", "process.executable"),
    ("proc.pid", "process.pid"),
    ("proc.pname", "process.parent.name"),
    ("proc.ppid", "process.parent.pid"),
    ("user.name", "user.name"),
    ("user.uid", "user.id"),
    ("fd.name", "file.path"),
    ("ka.user.name", "user.name"),
    ("ka.target.namespace", "kubernetes.namespace"),
    ("ka.verb", "event.action"),
];

/// Numeric severity (ECS `event.severity`, 1 = most severe) of a Falco priority.
fn severity(priority: &str) -> Option<u8> {
    let rank = match priority.to_ascii_lowercase().as_str() {
        "emergency" => 1,
        "alert" => 2,
        "critical" => 3,
        "error" => 4,
        "warning" => 5,
        "notice" => 6,
        "informational" | "info" => 7,
        "debug" => 8,
        _ => return None,
    };
    Some(rank)
}

/// Decodes a Falco body: one alert object, an array of them, or one per line.
///
/// # Errors
///
/// [`IngestError::Empty`] for an empty body, [`IngestError::Invalid`] when it is too deep.
pub fn decode(body: &[u8], limits: &Limits) -> Result<Decoded, IngestError> {
    const EXPECTED: &str = "a Falco alert JSON object, an array of them, or one per line";
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(IngestError::Empty { expected: EXPECTED });
    }
    if too_deep(trimmed, limits.decode.max_depth) {
        return Err(IngestError::invalid(
            EXPECTED,
            format!("JSON nested deeper than {} levels", limits.decode.max_depth),
        ));
    }
    let mut decoded = Decoded::default();
    let push = |number: usize, value: Value, original: &str, decoded: &mut Decoded| {
        if decoded.events.len() >= limits.max_events {
            decoded.errors.push(LineError::new(
                number,
                format!("expected at most {} alerts", limits.max_events),
            ));
            return;
        }
        match map_alert(value) {
            Ok(event) => decoded.events.push(finish(event, original, limits)),
            Err((field, reason)) => decoded.errors.push(LineError {
                line: number,
                field,
                reason,
            }),
        }
    };
    let array = trimmed
        .starts_with(b"[")
        .then(|| serde_json::from_slice::<Vec<&RawValue>>(trimmed).ok())
        .flatten();
    if let Some(items) = array {
        // Each alert of an array keeps its own exact text.
        for (index, item) in items.into_iter().enumerate() {
            match serde_json::from_str::<Value>(item.get()) {
                Ok(value) => push(index + 1, value, item.get(), &mut decoded),
                Err(error) => decoded.errors.push(LineError::new(
                    index + 1,
                    format!("expected a JSON alert: {error}"),
                )),
            }
        }
        return Ok(decoded);
    }
    match serde_json::from_slice::<Value>(trimmed) {
        Ok(value) => {
            let original = String::from_utf8_lossy(trimmed).into_owned();
            push(1, value, &original, &mut decoded);
        }
        Err(_) => {
            for (index, line) in trimmed.split(|b| *b == b'\n').enumerate() {
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                if line.len() > limits.decode.max_line_bytes {
                    decoded.errors.push(LineError::new(
                        index + 1,
                        format!(
                            "expected at most {} bytes per alert",
                            limits.decode.max_line_bytes
                        ),
                    ));
                    continue;
                }
                match serde_json::from_slice::<Value>(line) {
                    Ok(value) => {
                        let original = String::from_utf8_lossy(line).into_owned();
                        push(index + 1, value, &original, &mut decoded);
                    }
                    Err(error) => decoded.errors.push(LineError::new(
                        index + 1,
                        format!("expected a JSON alert object: {error}"),
                    )),
                }
            }
        }
    }
    Ok(decoded)
}

fn map_alert(value: Value) -> Result<Event, (Option<String>, String)> {
    let Value::Object(mut alert) = value else {
        return Err((
            None,
            "expected a JSON object with `rule`, `priority`, `time` and `output`".into(),
        ));
    };
    let rule = match alert.get("rule") {
        Some(Value::String(rule)) => rule.clone(),
        _ => {
            return Err((
                Some("rule".into()),
                "expected the alert's `rule` as a string".into(),
            ))
        }
    };
    let mut event = Event::new();
    match alert.get("time") {
        Some(time) => {
            let parsed = parse_timestamp(time).or_else(|| repair_time(time));
            match parsed {
                Some(time) => event.set(ecs::TIMESTAMP, Value::String(format_timestamp(time))),
                None => return Err((Some("time".into()), "expected an RFC 3339 `time`".into())),
            }
        }
        None => return Err((Some("time".into()), "expected the alert's `time`".into())),
    }
    let internal = alert.get("source").and_then(Value::as_str) == Some("internal");
    event.set(
        ecs::EVENT_KIND,
        Value::from(if internal { "metric" } else { "alert" }),
    );
    event.set(ecs::EVENT_MODULE, Value::from("falco"));
    event.set(
        ecs::EVENT_DATASET,
        Value::from(if internal {
            "falco.internal"
        } else {
            "falco.alerts"
        }),
    );
    event.set("rule.name", Value::String(rule));
    if let Some(Value::String(output)) = alert.get("output") {
        event.set(ecs::MESSAGE, Value::String(output.clone()));
    }
    if let Some(Value::String(priority)) = alert.get("priority") {
        event.set("log.level", Value::String(priority.to_ascii_lowercase()));
        if let Some(rank) = severity(priority) {
            event.set("event.severity", Value::from(rank));
        }
    }
    if let Some(Value::String(host)) = alert.get("hostname") {
        event.set("host.name", Value::String(host.clone()));
    }
    if let Some(Value::Array(tags)) = alert.get("tags") {
        event.set("tags", Value::Array(tags.clone()));
    }
    let fields = match alert.remove("output_fields") {
        Some(Value::Object(fields)) => fields,
        Some(Value::Null) | None => Map::new(),
        Some(_) => {
            return Err((
                Some("output_fields".into()),
                "expected `output_fields` to be an object".into(),
            ))
        }
    };
    for (name, path) in OUTPUT_FIELDS {
        if let Some(value) = fields.get(*name).filter(|v| !v.is_null()) {
            if event.get(path).is_none() {
                event.set(path, value.clone());
            }
        }
    }
    let mut falco = Map::new();
    for (key, value) in alert {
        if key == "output" {
            continue;
        }
        falco.insert(key, value);
    }
    falco.insert("output_fields".into(), Value::Object(fields));
    event.set("falco", Value::Object(falco));
    Ok(event)
}

/// Parses the RFC 3339 prefix of a malformed time (`...046Z+2` → `...046Z`).
fn repair_time(time: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = time.as_str()?;
    let end = text.find('Z')?;
    parse_timestamp(&Value::String(text[..=end].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_maps_rule_priority_and_output_fields() {
        let body = br#"{"output":"Shell in container","priority":"Warning","rule":"Terminal shell in container","time":"2024-05-01T10:00:00.123456789Z","source":"syscall","hostname":"node-1","tags":["container","shell"],"output_fields":{"container.id":"abc123","k8s.ns.name":"prod","proc.cmdline":"bash","proc.pname":null}}"#;
        let decoded = decode(body, &Limits::default()).expect("decodes");
        let event = &decoded.events[0];
        assert_eq!(event.get_str("event.kind"), Some("alert"));
        assert_eq!(
            event.get_str("rule.name"),
            Some("Terminal shell in container")
        );
        assert_eq!(event.get_str("message"), Some("Shell in container"));
        assert_eq!(event.get_str("log.level"), Some("warning"));
        assert_eq!(event.get("event.severity"), Some(&Value::from(5)));
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2024-05-01T10:00:00.123456Z")
        );
        assert_eq!(event.get_str("kubernetes.namespace"), Some("prod"));
        assert_eq!(event.get_str("container.id"), Some("abc123"));
        assert_eq!(event.get_str("process.command_line"), Some("bash"));
        assert_eq!(event.get("process.parent.name"), None);
        let fields = event
            .get("falco.output_fields")
            .and_then(Value::as_object)
            .expect("fields");
        assert_eq!(fields.get("k8s.ns.name"), Some(&Value::from("prod")));
        assert_eq!(event.get_str("falco.source"), Some("syscall"));
    }

    #[test]
    fn bad_alerts_fail_alone() {
        let body = b"{\"rule\":\"a\",\"time\":\"2024-05-01T10:00:00Z\"}\n{\"rule\":\"b\",\"time\":\"yesterday\"}\nnope\n{\"time\":\"2024-05-01T10:00:00Z\"}\n";
        let decoded = decode(body, &Limits::default()).expect("decodes");
        assert_eq!(decoded.events.len(), 1);
        let lines: Vec<usize> = decoded.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert!(decode(b"  ", &Limits::default()).is_err());
    }
}
