//! What every encoder reads from an event: its time, its alert level, its JSON, and this
//! machine's name.

use chrono::{DateTime, Utc};
use crowsnest_model::{Event, Severity};
use serde_json::Value;

/// The severity of an alert event ([`Severity::of_alert`]: `alert.severity`, else
/// `rule.level`, else the numeric `event.severity`); `None` for events that are not alerts.
pub fn alert_severity(event: &Event) -> Option<Severity> {
    Severity::of_alert(event)
}

/// Syslog severity of an alert: critical 2, high 3 (error), medium 4 (warning), low 5
/// (notice), informational 6.
pub fn syslog_severity(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Informational => 6,
    }
}

/// CEF severity (0-10) of an alert: critical 10, high 8, medium 5, low 3, informational 1.
pub fn cef_severity(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 10,
        Severity::High => 8,
        Severity::Medium => 5,
        Severity::Low => 3,
        Severity::Informational => 1,
    }
}

/// OpenTelemetry severity number and text of an alert: FATAL 21, ERROR 17, WARN 13, INFO2 10,
/// INFO 9.
pub fn otel_severity(severity: Severity) -> (i32, &'static str) {
    match severity {
        Severity::Critical => (21, "FATAL"),
        Severity::High => (17, "ERROR"),
        Severity::Medium => (13, "WARN"),
        Severity::Low => (10, "INFO2"),
        Severity::Informational => (9, "INFO"),
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
            alert_severity(&alert(
                json!({"alert": {"severity": "High"}, "rule": {"level": "low"}})
            )),
            Some(Severity::High)
        );
        assert_eq!(
            alert_severity(&alert(json!({"rule": {"level": "critical"}}))),
            Some(Severity::Critical)
        );
        assert_eq!(
            alert_severity(&alert(json!({"event": {"severity": 47}}))),
            Some(Severity::Medium)
        );
        assert_eq!(
            alert_severity(&alert(json!({}))),
            Some(Severity::Informational)
        );
        let plain: Event = serde_json::from_value(json!({"rule": {"level": "high"}})).expect("obj");
        assert_eq!(alert_severity(&plain), None, "only alerts have a level");
    }

    #[test]
    fn each_format_has_its_own_scale() {
        let scales: Vec<_> = Severity::ALL
            .into_iter()
            .map(|s| (syslog_severity(s), cef_severity(s), otel_severity(s).0))
            .collect();
        assert_eq!(
            scales,
            [(6, 1, 9), (5, 3, 10), (4, 5, 13), (3, 8, 17), (2, 10, 21)]
        );
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
