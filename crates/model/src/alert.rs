//! [`Alert`]: one rule firing on one entity, with repeats folded in, and the alert record it
//! is stored as.
//!
//! Detection (`crowsnest-detect`) makes alerts; the server stores them as events
//! ([`Alert::to_event`], `event.kind: alert`) in the WAL and the store like any event; the
//! alerts API, the forwarding outputs and `crowsnest search` read those records back. The
//! record's fields:
//!
//! | field | value |
//! | --- | --- |
//! | `@timestamp` | first seen (RFC 3339) |
//! | `event.id` | the alert's id (a ULID) |
//! | `event.kind` / `event.module` / `event.dataset` | `alert` / `crowsnest` / `crowsnest.alert` |
//! | `event.severity` | [`Severity::ecs_number`]: 0, 21, 47, 73, 99 |
//! | `message`, `rule.name` | the rule's title |
//! | `rule.id`, `rule.level` | the rule's id and [`Severity`] name |
//! | `tags`, `threat.framework`, `threat.technique.id` | the rule's tags and ATT&CK ids |
//! | the entity fields (`kubernetes.namespace`, `user.name`, ...) | as on the matched event |
//! | `alert.count`, `alert.event_ids`, `alert.first_seen`, `alert.last_seen`, `alert.fold_key` | folding |
//! | `alert.correlation.type` / `.value` / `.group` | for correlation alerts |

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{ecs, format_timestamp, Event, Severity};

/// What a correlation detection aggregated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationInfo {
    /// `event_count`, `value_count`, `temporal`, `temporal_ordered`, `value_sum`, ...
    pub kind: String,
    /// The group-by fields and their values.
    pub group: Vec<(String, String)>,
    /// The aggregated value that met the condition.
    pub value: f64,
    /// The window, in seconds.
    pub timespan_secs: u64,
}

/// An alert: one rule on one entity, with repeats folded in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Alert id (a ULID).
    pub id: String,
    /// Rule id.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Rule level.
    pub level: Severity,
    /// Rule tags.
    pub tags: Vec<String>,
    /// ATT&CK technique ids.
    pub techniques: Vec<String>,
    /// Entity fields present on the first matched event.
    pub entity: BTreeMap<String, String>,
    /// Ids of the matched events (at most 100).
    pub event_ids: Vec<String>,
    /// Detections folded into this alert, including the first.
    pub count: u64,
    /// When the first detection was offered.
    pub first_seen: DateTime<Utc>,
    /// When the latest detection was offered.
    pub last_seen: DateTime<Utc>,
    /// Hash of rule id and entity that repeats share.
    pub fold_key: String,
    /// Correlation details, for correlation alerts.
    pub correlation: Option<CorrelationInfo>,
}

impl Alert {
    /// The alert record: the alert as a storable event (`event.kind: alert`).
    pub fn to_event(&self) -> Event {
        let mut e = Event::new();
        e.set(ecs::TIMESTAMP, json!(format_timestamp(self.first_seen)));
        e.set(ecs::EVENT_ID, json!(self.id));
        e.set(ecs::EVENT_KIND, json!("alert"));
        e.set(ecs::EVENT_MODULE, json!("crowsnest"));
        e.set(ecs::EVENT_DATASET, json!("crowsnest.alert"));
        e.set(ecs::EVENT_SEVERITY, json!(self.level.ecs_number()));
        e.set(ecs::MESSAGE, json!(self.title));
        e.set(ecs::RULE_ID, json!(self.rule_id));
        e.set(ecs::RULE_NAME, json!(self.title));
        e.set(ecs::RULE_LEVEL, json!(self.level));
        e.set("tags", json!(self.tags));
        if !self.techniques.is_empty() {
            e.set("threat.framework", json!("MITRE ATT&CK"));
            e.set(ecs::THREAT_TECHNIQUE_ID, json!(self.techniques));
        }
        for (field, value) in &self.entity {
            e.set(field, json!(value));
        }
        e.set(ecs::ALERT_COUNT, json!(self.count));
        e.set("alert.event_ids", json!(self.event_ids));
        e.set("alert.first_seen", json!(format_timestamp(self.first_seen)));
        e.set("alert.last_seen", json!(format_timestamp(self.last_seen)));
        e.set("alert.fold_key", json!(self.fold_key));
        if let Some(c) = &self.correlation {
            e.set("alert.correlation.type", json!(c.kind));
            e.set("alert.correlation.value", json!(c.value));
            let group: serde_json::Map<String, Value> =
                c.group.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            e.set("alert.correlation.group", Value::Object(group));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_carries_the_level_by_name_and_number() {
        let at = DateTime::from_timestamp(1_714_557_600, 0).expect("valid");
        let alert = Alert {
            id: "01HZ".into(),
            rule_id: "r1".into(),
            title: "Exec into a pod".into(),
            level: Severity::High,
            tags: vec!["attack.t1609".into()],
            techniques: vec!["T1609".into()],
            entity: BTreeMap::from([("kubernetes.namespace".into(), "prod".into())]),
            event_ids: vec!["e1".into()],
            count: 2,
            first_seen: at,
            last_seen: at,
            fold_key: "k".into(),
            correlation: None,
        };
        let record = alert.to_event();
        assert_eq!(record.get_str("rule.level"), Some("high"));
        assert_eq!(record.get("event.severity"), Some(&json!(73)));
        assert_eq!(record.get_str("kubernetes.namespace"), Some("prod"));
        assert_eq!(Severity::of_alert(&record), Some(Severity::High));
        assert_eq!(record.timestamp(), Some(at));
    }
}
