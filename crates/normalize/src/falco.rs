//! Falco alerts (`falco`): what Falco writes with `json_output` (its `http_output`, its
//! `file_output`, falcosidekick's webhook output), one JSON object per alert.
//!
//! An alert becomes an event with `event.kind: alert`, `rule.name`, `message` (the rendered
//! `output`), `log.level` and `event.severity` from `priority`, `host.name`, `tags`, and the
//! raw alert fields under `falco.*` (`falco.output_fields` keeps Falco's dotted field names as
//! keys). The `output_fields` are mapped as [`crate::falco_fields`] maps Falco's vocabulary
//! (`process.*` with the parent, `user.*`, `container.*`, `kubernetes.*`, `file.path`,
//! `source.*`/`destination.*`; `evt.type` gives `event.category`/`event.type`/`event.action`,
//! so an alert about an `execve` is also a `process_creation` event for the rules), and the
//! audit-plugin fields of [`OUTPUT_FIELDS`]: an alert about `k8s.ns.name=prod` is found by
//! `kubernetes.namespace:prod`. Falco's internal metrics
//! snapshots (`source: internal`) are kept as `event.kind: metric` in `falco.internal`, not
//! as alerts. A `time` that does not parse is repaired when its RFC 3339 prefix does (a
//! known website example ends in `Z+2`), otherwise the alert is rejected.
//!
//! Detected in NDJSON by a string `rule`, `priority` and `output` and a `time`. The ingest
//! endpoint `POST /api/v1/ingest/falco` (bodies of one alert, an array, or NDJSON) and the node
//! agent (Falco's output file) both map alerts here.

use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::registry::{Context, Parser, Record};
use crate::{finish, Decoded, LineError};

/// The Falco parser.
#[derive(Debug)]
pub struct Falco;

impl Parser for Falco {
    fn name(&self) -> &'static str {
        "falco"
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        ["rule", "priority", "output"]
            .iter()
            .all(|key| object.get(*key).is_some_and(Value::is_string))
            && object.contains_key("time")
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let Record::Json { text, object } = record else {
            let reason = "expected a JSON object with `rule`, `priority`, `time` and `output`";
            return out.errors.push(LineError::new(cx.line, reason));
        };
        match map_alert(object) {
            Ok(event) => out.events.push(finish(event, text, cx.limits)),
            Err(error) => out.errors.push(error.at(cx.line)),
        }
    }
}

/// Falco output fields copied to our fields when the vocabulary mapping
/// ([`crate::falco_fields`]) left them unset: `(falco field, event path)`.
pub const OUTPUT_FIELDS: &[(&str, &str)] = &[
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

/// Maps one alert object (without `event.original`).
fn map_alert(mut alert: Map<String, Value>) -> Result<Event, FieldError> {
    let rule = match alert.get("rule") {
        Some(Value::String(rule)) => rule.clone(),
        _ => {
            return Err(FieldError::field(
                "rule",
                "expected the alert's `rule` as a string",
            ))
        }
    };
    let mut event = Event::new();
    match alert.get("time") {
        Some(time) => {
            let parsed = parse_timestamp(time).or_else(|| repair_time(time));
            match parsed {
                Some(time) => event.set(ecs::TIMESTAMP, Value::String(format_timestamp(time))),
                None => return Err(FieldError::field("time", "expected an RFC 3339 `time`")),
            }
        }
        None => return Err(FieldError::field("time", "expected the alert's `time`")),
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
            return Err(FieldError::field(
                "output_fields",
                "expected `output_fields` to be an object",
            ))
        }
    };
    if !internal {
        let kind = crate::falco_fields::kind(&fields);
        let action = fields.get("evt.type").and_then(Value::as_str);
        crate::falco_fields::seen(&fields).apply(&mut event, kind, action);
    }
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
    use crate::registry::{parse_record, Source};
    use crate::Limits;

    fn parse(line: &str) -> Decoded {
        let mut out = Decoded::default();
        let source = Source::Named(&Falco);
        parse_record(line.as_bytes(), 1, source, &Limits::default(), &mut out);
        out
    }

    #[test]
    fn an_alert_maps_rule_priority_and_output_fields() {
        let line = r#"{"output":"Shell in container","priority":"Warning","rule":"Terminal shell in container","time":"2024-05-01T10:00:00.123456789Z","source":"syscall","hostname":"node-1","tags":["container","shell"],"output_fields":{"container.id":"abc123","k8s.ns.name":"prod","proc.cmdline":"bash","proc.pname":null}}"#;
        let decoded = parse(line);
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
        assert_eq!(event.get_str("event.original"), Some(line));
    }

    #[test]
    fn bad_alerts_name_the_field() {
        let bad = parse(r#"{"rule":"b","time":"yesterday"}"#);
        assert_eq!(bad.errors[0].field.as_deref(), Some("time"));
        let bad = parse(r#"{"time":"2024-05-01T10:00:00Z"}"#);
        assert_eq!(bad.errors[0].field.as_deref(), Some("rule"));
        let repaired = parse(r#"{"rule":"r","time":"2024-05-01T10:00:00.046Z+2"}"#);
        assert_eq!(
            repaired.events[0].get_str("@timestamp"),
            Some("2024-05-01T10:00:00.046000Z")
        );
    }
}
