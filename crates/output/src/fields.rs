//! What every encoder reads from an event: its time, its alert level, its JSON, and this
//! machine's name.

use chrono::{DateTime, Utc};
use crowsnest_model::Event;
use serde_json::Value;

use crate::config::is_alert;

/// The level of an alert, from `alert.severity`, else `rule.level` (Sigma levels), else the
/// numeric `event.severity` (99/73/47/21 as `Alert::to_event` writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Sigma `critical`.
    Critical,
    /// Sigma `high`.
    High,
    /// Sigma `medium`.
    Medium,
    /// Sigma `low`.
    Low,
    /// Sigma `informational`, and any event that is not an alert.
    Informational,
}

impl Level {
    /// The level of `event`; `None` for events that are not alerts.
    pub fn of(event: &Event) -> Option<Level> {
        if !is_alert(event) {
            return None;
        }
        let named = ["alert.severity", "rule.level"]
            .iter()
            .filter_map(|path| event.get_str(path))
            .find_map(Level::from_name);
        if named.is_some() {
            return named;
        }
        Some(match event.get("event.severity").and_then(Value::as_u64) {
            Some(99..) => Level::Critical,
            Some(73..) => Level::High,
            Some(47..) => Level::Medium,
            Some(21..) => Level::Low,
            _ => Level::Informational,
        })
    }

    fn from_name(name: &str) -> Option<Level> {
        match name.to_ascii_lowercase().as_str() {
            "critical" => Some(Level::Critical),
            "high" => Some(Level::High),
            "medium" => Some(Level::Medium),
            "low" => Some(Level::Low),
            "informational" | "info" => Some(Level::Informational),
            _ => None,
        }
    }

    /// Syslog severity: critical 2, high 3 (error), medium 4 (warning), low 5 (notice),
    /// informational 6.
    pub fn syslog(self) -> u8 {
        match self {
            Level::Critical => 2,
            Level::High => 3,
            Level::Medium => 4,
            Level::Low => 5,
            Level::Informational => 6,
        }
    }

    /// CEF severity (0-10): critical 10, high 8, medium 5, low 3, informational 1.
    pub fn cef(self) -> u8 {
        match self {
            Level::Critical => 10,
            Level::High => 8,
            Level::Medium => 5,
            Level::Low => 3,
            Level::Informational => 1,
        }
    }

    /// OpenTelemetry severity number and text: FATAL 21, ERROR 17, WARN 13, INFO2 10, INFO 9.
    pub fn otel(self) -> (i32, &'static str) {
        match self {
            Level::Critical => (21, "FATAL"),
            Level::High => (17, "ERROR"),
            Level::Medium => (13, "WARN"),
            Level::Low => (10, "INFO2"),
            Level::Informational => (9, "INFO"),
        }
    }
}

/// The event time, or now when `@timestamp` is missing or unreadable.
pub fn event_time(event: &Event) -> DateTime<Utc> {
    event.timestamp().unwrap_or_else(Utc::now)
}

/// The event as compact JSON.
pub fn to_json(event: &Event) -> String {
    // A map of JSON values always serializes; the fallback only satisfies the type.
    serde_json::to_string(event.as_map()).unwrap_or_else(|_| "{}".to_string())
}

/// A string field, or one joined from an array of strings.
pub fn text(event: &Event, path: &str) -> Option<String> {
    match event.get(path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`, `/etc/hostname`, `$HOSTNAME`), or
/// `localhost`.
pub fn local_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(fields: Value) -> Event {
        let mut event: Event = serde_json::from_value(fields).expect("object");
        event.set("event.kind", json!("alert"));
        event
    }

    #[test]
    fn alert_levels_come_from_severity_then_rule_level_then_number() {
        assert_eq!(
            Level::of(&alert(
                json!({"alert": {"severity": "High"}, "rule": {"level": "low"}})
            )),
            Some(Level::High)
        );
        assert_eq!(
            Level::of(&alert(json!({"rule": {"level": "critical"}}))),
            Some(Level::Critical)
        );
        assert_eq!(
            Level::of(&alert(json!({"event": {"severity": 47}}))),
            Some(Level::Medium)
        );
        assert_eq!(Level::of(&alert(json!({}))), Some(Level::Informational));
        let plain: Event = serde_json::from_value(json!({"rule": {"level": "high"}})).expect("obj");
        assert_eq!(Level::of(&plain), None, "only alerts have a level");
    }

    #[test]
    fn text_joins_arrays() {
        let event: Event =
            serde_json::from_value(json!({"t": ["T1059", "T1611"], "n": 3, "e": ""})).expect("obj");
        assert_eq!(text(&event, "t").as_deref(), Some("T1059,T1611"));
        assert_eq!(text(&event, "n").as_deref(), Some("3"));
        assert_eq!(text(&event, "e"), None);
    }
}
