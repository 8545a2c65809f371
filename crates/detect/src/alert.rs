//! Alert lifecycle: suppression, then folding of repeats, then a storable alert event.
//!
//! [`AlertManager`] is pure logic with the clock passed in, so the live pipeline, `hunt` and
//! tests behave the same. A [`Detection`] is first checked against the suppressions (rule and
//! field globs, with an expiry and a reason); then its *fold key* — the rule id plus the entity
//! (cluster, namespace, pod, container, node/host, user) — is looked up: a repeat within the
//! fold window of the previous one bumps that alert's count instead of opening a new alert.
//!
//! The [`Alert`] type and the record it is stored as ([`Alert::to_event`]) belong to
//! `crowsnest-model`, which every reader of alerts shares.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
pub use crowsnest_model::Alert;
use crowsnest_model::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::detector::Detection;

/// Event fields that name the entity an alert is about, in fold-key order.
pub const ENTITY_FIELDS: &[&str] = &[
    "orchestrator.cluster.name",
    "kubernetes.namespace",
    "kubernetes.pod.name",
    "container.id",
    "container.name",
    "container.image.name",
    "kubernetes.node.name",
    "host.name",
    "user.name",
];

/// Most event ids one alert keeps (the count goes on).
const MAX_EVENT_IDS: usize = 100;

/// Silences known-good activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// Identifies the suppression in decisions and logs.
    pub id: String,
    /// Why it exists (shown when it silences a detection).
    pub reason: String,
    /// After this instant the suppression no longer applies.
    pub expires: Option<DateTime<Utc>>,
    /// Rule id or title (glob with `*` and `?`); `None` means every rule.
    pub rule: Option<String>,
    /// Event field (dotted path) -> exact value or glob; all must match the matched event.
    pub fields: BTreeMap<String, String>,
}

/// What [`AlertManager::offer`] did with a detection.
// Returned once per detection and matched at once, never stored in bulk: boxing `New` would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AlertDecision {
    /// A new alert.
    New(Alert),
    /// Folded into an open alert.
    Folded {
        /// The open alert.
        alert_id: String,
        /// Its count after folding.
        count: u64,
    },
    /// Silenced by a suppression.
    Suppressed {
        /// The suppression's id.
        id: String,
        /// The suppression's reason.
        reason: String,
    },
}

/// Folding and suppression state.
#[derive(Debug)]
pub struct AlertManager {
    fold_window: Duration,
    suppressions: Vec<Suppression>,
    open: HashMap<String, Alert>,
    offers: u64,
}

/// `*` (any run) and `?` (one char) glob match; without wildcards, exact (the workspace's one
/// glob, [`crowsnest_util::glob`]).
pub use crowsnest_util::glob as glob_match;

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn field_matches(event: &Event, path: &str, pattern: &str) -> bool {
    match event.get(path) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(value_text)
            .any(|s| glob_match(pattern, &s)),
        Some(v) => value_text(v).is_some_and(|s| glob_match(pattern, &s)),
        None => false,
    }
}

impl Suppression {
    /// Whether this suppression silences `d` at `now`.
    pub fn applies(&self, d: &Detection, now: DateTime<Utc>) -> bool {
        if self.expires.is_some_and(|e| e <= now) {
            return false;
        }
        if let Some(rule) = &self.rule {
            if !glob_match(rule, &d.rule_id) && !glob_match(rule, &d.title) {
                return false;
            }
        }
        if self.fields.is_empty() {
            return true;
        }
        d.events.iter().any(|e| {
            self.fields
                .iter()
                .all(|(path, pattern)| field_matches(e, path, pattern))
        })
    }
}

/// The entity of a detection: entity fields of its first event that has them.
fn entity_of(d: &Detection) -> BTreeMap<String, String> {
    let mut entity = BTreeMap::new();
    for field in ENTITY_FIELDS {
        if let Some(value) = d
            .events
            .iter()
            .find_map(|e| e.get(field).and_then(value_text))
        {
            entity.insert((*field).to_string(), value);
        }
    }
    entity
}

/// The fold key: the rule and the entity, and for a baseline detection what was new (each new
/// term is its own alert with its own explanation; repeats of one new term, as a locked
/// profile gives, still fold).
fn fold_key(
    rule_id: &str,
    entity: &BTreeMap<String, String>,
    new: Option<&BTreeMap<String, String>>,
) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    for (k, v) in entity {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    for (k, v) in new.into_iter().flatten() {
        h.update([2]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    hex::encode(&h.finalize()[..12])
}

impl AlertManager {
    /// A manager folding repeats within `fold_window` (measured from the previous repeat).
    pub fn new(fold_window: Duration, suppressions: Vec<Suppression>) -> Self {
        Self {
            fold_window,
            suppressions,
            open: HashMap::new(),
            offers: 0,
        }
    }

    /// Replaces the suppressions (e.g. after a config reload).
    pub fn set_suppressions(&mut self, suppressions: Vec<Suppression>) {
        self.suppressions = suppressions;
    }

    /// The open alert with this fold key, if any.
    pub fn open_alert(&self, fold_key: &str) -> Option<&Alert> {
        self.open.get(fold_key)
    }

    /// Decides what a detection becomes at `now`.
    pub fn offer(&mut self, d: Detection, now: DateTime<Utc>) -> AlertDecision {
        if let Some(s) = self.suppressions.iter().find(|s| s.applies(&d, now)) {
            return AlertDecision::Suppressed {
                id: s.id.clone(),
                reason: s.reason.clone(),
            };
        }
        self.offers += 1;
        if self.offers.is_multiple_of(1024) {
            self.expire(now);
        }
        let window = chrono::Duration::from_std(self.fold_window).unwrap_or(chrono::Duration::MAX);
        let entity = entity_of(&d);
        let key = fold_key(&d.rule_id, &entity, d.anomaly.as_ref().map(|a| &a.new));
        if let Some(open) = self.open.get_mut(&key) {
            if now.signed_duration_since(open.last_seen) <= window {
                open.count += 1;
                open.last_seen = now.max(open.last_seen);
                for id in d.event_ids {
                    if open.event_ids.len() < MAX_EVENT_IDS && !open.event_ids.contains(&id) {
                        open.event_ids.push(id);
                    }
                }
                return AlertDecision::Folded {
                    alert_id: open.id.clone(),
                    count: open.count,
                };
            }
        }
        let mut event_ids = d.event_ids;
        event_ids.truncate(MAX_EVENT_IDS);
        let alert = Alert {
            id: ulid::Ulid::new().to_string(),
            rule_id: d.rule_id,
            title: d.title,
            level: d.level,
            tags: d.tags,
            techniques: d.techniques,
            entity,
            event_ids,
            count: 1,
            first_seen: now,
            last_seen: now,
            fold_key: key.clone(),
            correlation: d.correlation,
        };
        self.open.insert(key, alert.clone());
        AlertDecision::New(alert)
    }

    /// Forgets alerts whose fold window has passed.
    pub fn expire(&mut self, now: DateTime<Utc>) {
        let window = chrono::Duration::from_std(self.fold_window).unwrap_or(chrono::Duration::MAX);
        self.open
            .retain(|_, a| now.signed_duration_since(a.last_seen) <= window);
    }
}
