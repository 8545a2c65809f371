//! [`Severity`]: how serious an alert is, on the five Sigma levels.
//!
//! | level | [`Severity::ecs_number`] (`event.severity`) | read back from a number |
//! | --- | --- | --- |
//! | `informational` | 0 | below 21 |
//! | `low` | 21 | 21 to 46 |
//! | `medium` | 47 | 47 to 72 |
//! | `high` | 73 | 73 to 98 |
//! | `critical` | 99 | 99 and above |
//!
//! The names are written in lowercase everywhere (rules, stored alerts as `rule.level`, the
//! alerts API's `level` and `min_level`, JSON); they are read without regard to case, and
//! `info` is taken for `informational`. Severities are ordered, `informational` lowest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ecs, Event};

/// How serious an alert is: the Sigma rule levels, ordered from `Informational` to `Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `informational`.
    Informational,
    /// `low`.
    Low,
    /// `medium` (the level of a Sigma rule that names none).
    #[default]
    Medium,
    /// `high`.
    High,
    /// `critical`.
    Critical,
}

/// Why a text is not a [`Severity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity `{0}`: expected one of informational, low, medium, high, critical")]
pub struct SeverityError(pub String);

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name (`high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The ECS `event.severity` number an alert of this severity carries: 0, 21, 47, 73, 99.
    pub fn ecs_number(self) -> u8 {
        match self {
            Severity::Informational => 0,
            Severity::Low => 21,
            Severity::Medium => 47,
            Severity::High => 73,
            Severity::Critical => 99,
        }
    }

    /// The severity of an ECS `event.severity` number (the inverse of [`Severity::ecs_number`],
    /// each level taking the numbers up to the next one).
    pub fn from_ecs_number(number: u64) -> Severity {
        match number {
            99.. => Severity::Critical,
            73.. => Severity::High,
            47.. => Severity::Medium,
            21.. => Severity::Low,
            _ => Severity::Informational,
        }
    }

    /// This severity and every higher one (`min_level` filters).
    pub fn and_above(self) -> impl Iterator<Item = Severity> {
        Severity::ALL.into_iter().filter(move |s| *s >= self)
    }

    /// The severity of an alert event (`event.kind: alert`): its `alert.severity` name (alerts
    /// from other tools), else `rule.level`, else the numeric `event.severity`, else
    /// `informational`. `None` for an event that is not an alert.
    pub fn of_alert(event: &Event) -> Option<Severity> {
        if event.get_str(ecs::EVENT_KIND) != Some("alert") {
            return None;
        }
        let named = [ecs::ALERT_SEVERITY, ecs::RULE_LEVEL]
            .iter()
            .filter_map(|path| event.get_str(path))
            .find_map(|name| name.parse().ok());
        Some(named.unwrap_or_else(|| {
            event
                .get(ecs::EVENT_SEVERITY)
                .and_then(Value::as_u64)
                .map_or(Severity::Informational, Severity::from_ecs_number)
        }))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = SeverityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("info") {
            return Ok(Severity::Informational);
        }
        Severity::ALL
            .into_iter()
            .find(|s| trimmed.eq_ignore_ascii_case(s.as_str()))
            .ok_or_else(|| SeverityError(text.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for severity in Severity::ALL {
            assert_eq!(severity.as_str().parse::<Severity>(), Ok(severity));
            assert_eq!(severity.to_string(), severity.as_str());
            let json = serde_json::to_value(severity).expect("serializes");
            assert_eq!(json, json!(severity.as_str()));
            let back: Severity = serde_json::from_value(json).expect("deserializes");
            assert_eq!(back, severity);
        }
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert_eq!(" Critical ".parse::<Severity>(), Ok(Severity::Critical));
        assert_eq!("info".parse::<Severity>(), Ok(Severity::Informational));
    }

    #[test]
    fn unknown_names_say_what_is_expected() {
        let error = "severe".parse::<Severity>().expect_err("not a level");
        assert_eq!(
            error.to_string(),
            "unknown severity `severe`: expected one of informational, low, medium, high, critical"
        );
        assert!("".parse::<Severity>().is_err());
        assert!(serde_json::from_value::<Severity>(json!("severe")).is_err());
    }

    #[test]
    fn severities_are_ordered_and_filter_upwards() {
        assert!(Severity::Informational < Severity::Low);
        assert!(Severity::High < Severity::Critical);
        let high_and_up: Vec<_> = Severity::High.and_above().collect();
        assert_eq!(high_and_up, [Severity::High, Severity::Critical]);
        assert_eq!(Severity::Informational.and_above().count(), 5);
    }

    #[test]
    fn ecs_numbers_read_back_to_the_same_level() {
        for severity in Severity::ALL {
            let number = u64::from(severity.ecs_number());
            assert_eq!(Severity::from_ecs_number(number), severity);
        }
        assert_eq!(Severity::from_ecs_number(20), Severity::Informational);
        assert_eq!(Severity::from_ecs_number(46), Severity::Low);
        assert_eq!(Severity::from_ecs_number(1_000), Severity::Critical);
    }

    fn event(value: Value) -> Event {
        serde_json::from_value(value).expect("an object")
    }

    #[test]
    fn an_alert_event_names_its_severity_then_rule_level_then_number() {
        let alert = |fields: Value| {
            let mut e = event(fields);
            e.set("event.kind", json!("alert"));
            Severity::of_alert(&e)
        };
        assert_eq!(
            alert(json!({"alert": {"severity": "High"}, "rule": {"level": "low"}})),
            Some(Severity::High)
        );
        assert_eq!(
            alert(json!({"rule": {"level": "critical"}})),
            Some(Severity::Critical)
        );
        assert_eq!(
            alert(json!({"rule": {"level": "bogus"}, "event": {"severity": 47}})),
            Some(Severity::Medium)
        );
        assert_eq!(alert(json!({})), Some(Severity::Informational));
        let plain = event(json!({"rule": {"level": "high"}}));
        assert_eq!(Severity::of_alert(&plain), None, "only alerts have one");
    }
}
