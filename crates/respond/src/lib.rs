//! Incidents: the few things an analyst reads instead of every alert.
//!
//! [`Incidents`] groups alerts ([`crowsnest_model::Alert`]) about the same entity into one
//! incident while they keep coming within a sliding window, scores the incident's risk in the
//! manner of risk-based alerting (every alert adds risk; only a high alert or a crossed risk
//! threshold pages), and keeps its life cycle (status, assignee, comments, closing
//! classification).
//!
//! # Determinism
//! Everything is a function of the alerts in the order they are offered and of their own times
//! (`first_seen`/`last_seen`), never of the wall clock: replaying the same alerts (the WAL after
//! `kill -9`, or `crowsnest respond simulate` later) rebuilds identical incidents, ids
//! included. An alert offered again (a folded alert whose count grew) updates its incident
//! instead of counting twice.
//!
//! # Entities
//! The entity of an alert is the most specific workload identity it names, in this order:
//!
//! | kind | from |
//! | --- | --- |
//! | `workload` | `kubernetes.namespace` + the pod name without its ReplicaSet/Job hash (`web-7d4b9c6f5-x2kq9` → `web`) |
//! | `pod` | `kubernetes.namespace` + `kubernetes.pod.name` (when no workload can be told) |
//! | `container` | `container.id` |
//! | `image` | `container.image.name` |
//! | `node` | `kubernetes.node.name`, else `host.name` |
//! | `principal` | `user.name` |
//!
//! An alert with none of these gets an incident of its own rule (`rule`).
//!
//! # Risk
//! [`Risk::factors`] lists what the score is made of, so an analyst sees why:
//! the sum of the alerts' level weights (informational 0, low 3, medium 10, high 30, critical
//! 60; an alert folded N times counts `1 + ln N` times), 10 points per ATT&CK tactic beyond the
//! first (an attack moving through the kill chain), 3 per distinct technique beyond the first,
//! all multiplied by the asset's criticality ([`Criticality`], by namespace; 1 by default).
//!
//! # Containment
//! [`contain`]: playbooks that turn alerts and incidents into Docker and Kubernetes actions,
//! the guards, approvals, the hash-chained action log and the Kubernetes requests.

pub mod contain;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use crowsnest_model::{Alert, Severity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How alerts are grouped and scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentConfig {
    /// An alert joins an entity's open incident when it comes at most this long after the
    /// incident's last alert (seconds; default 900).
    pub window_secs: u64,
    /// ... and at most this long after the incident opened (seconds; default and cap 86,400).
    pub max_span_secs: u64,
    /// Most alerts listed in one incident; later ones are counted (`overflow`), still scored.
    pub max_alerts: usize,
    /// Risk at or above which an incident pages even without a high alert (default 60).
    pub page_risk: f64,
    /// Asset criticality by namespace.
    pub criticality: Vec<Criticality>,
    /// Incidents whose last alert is older than this many days (by the alerts' own times) are
    /// forgotten, with their alert index (default 30): the state stays bounded. Their alerts
    /// stay searchable in the store.
    pub keep_days: u64,
    /// Most incidents kept; past it the ones with the oldest last alert are forgotten first
    /// (default 10,000).
    pub max_incidents: usize,
    /// Grouping of particular rules (`[[detect.incidents.rules]]`), the first that matches an
    /// alert's rule wins; the others group by entity with `window_secs`.
    pub rules: Vec<RuleGrouping>,
}

/// How the alerts of some rules group into incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGrouping {
    /// Rule ids or titles, `*` matching any run of characters, any case.
    pub rules: Vec<String>,
    /// `entity` (the default order: workload, pod, container, image, node, principal), one of
    /// those kinds (that entity when the alert names it, else the default order), `rule` (one
    /// incident per rule whatever the entity: a scanner hitting every pod), or `alone` (every
    /// alert its own incident).
    #[serde(default = "entity_grouping")]
    pub group_by: String,
    /// This rule's window (seconds), instead of `window_secs`; capped at 24 h like it.
    #[serde(default)]
    pub window_secs: Option<u64>,
}

fn entity_grouping() -> String {
    "entity".to_string()
}

/// The `group_by` values of [`RuleGrouping`].
pub const GROUP_BY: &[&str] = &[
    "entity",
    "workload",
    "pod",
    "container",
    "image",
    "node",
    "principal",
    "rule",
    "alone",
];

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            window_secs: 15 * 60,
            max_span_secs: 24 * 3600,
            max_alerts: 500,
            page_risk: 60.0,
            criticality: Vec::new(),
            keep_days: 30,
            max_incidents: 10_000,
            rules: Vec::new(),
        }
    }
}

/// A criticality weight for the namespaces matching `namespace` (exact, or a prefix ending in
/// `*`): `payments` = 2 makes its incidents twice as risky.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criticality {
    /// Namespace name or `prefix*`.
    pub namespace: String,
    /// Multiplier of the risk (0.1 to 10).
    pub weight: f64,
}

impl IncidentConfig {
    /// Checks the per-rule groupings.
    ///
    /// # Errors
    ///
    /// A message naming the entry and the field.
    pub fn validate(&self) -> Result<(), String> {
        for (i, grouping) in self.rules.iter().enumerate() {
            let at = format!("detect.incidents.rules[{i}]");
            if grouping.rules.is_empty() || grouping.rules.iter().any(|r| r.trim().is_empty()) {
                return Err(format!(
                    "{at}: `rules` needs at least one rule id or title, none empty"
                ));
            }
            if !GROUP_BY.contains(&grouping.group_by.as_str()) {
                return Err(format!(
                    "{at}: group_by `{}` is not one of {}",
                    grouping.group_by,
                    GROUP_BY.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The window, capped at 24 hours.
    fn window(&self) -> Duration {
        Duration::seconds(i64::try_from(self.window_secs.min(86_400)).unwrap_or(86_400))
    }

    /// The grouping of an alert's rule, if one is configured.
    fn grouping_of(&self, alert: &Alert) -> Option<&RuleGrouping> {
        self.rules.iter().find(|g| {
            g.rules.iter().any(|pattern| {
                let pattern = pattern.to_lowercase();
                contain::glob(&pattern, &alert.rule_id.to_lowercase())
                    || contain::glob(&pattern, &alert.title.to_lowercase())
            })
        })
    }

    /// The entity an alert groups under and the window it joins within.
    fn group_of(&self, alert: &Alert) -> (Entity, Duration) {
        let Some(grouping) = self.grouping_of(alert) else {
            return (Entity::of(alert), self.window());
        };
        let window = grouping.window_secs.map_or_else(
            || self.window(),
            |s| Duration::seconds(i64::try_from(s.min(86_400)).unwrap_or(86_400)),
        );
        let entity = match grouping.group_by.as_str() {
            "rule" => Entity {
                kind: "rule".into(),
                value: alert.rule_id.clone(),
            },
            "alone" => Entity {
                kind: "alert".into(),
                value: alert.id.clone(),
            },
            "entity" => Entity::of(alert),
            kind => Entity::of_kind(alert, kind).unwrap_or_else(|| Entity::of(alert)),
        };
        (entity, window)
    }

    fn max_span(&self) -> Duration {
        Duration::seconds(i64::try_from(self.max_span_secs.min(86_400)).unwrap_or(86_400))
    }

    fn weight_of(&self, namespace: Option<&str>) -> f64 {
        let Some(namespace) = namespace else {
            return 1.0;
        };
        self.criticality
            .iter()
            .find(|c| match c.namespace.strip_suffix('*') {
                Some(prefix) => namespace.starts_with(prefix),
                None => c.namespace == namespace,
            })
            .map_or(1.0, |c| c.weight.clamp(0.1, 10.0))
    }
}

/// What an incident is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entity {
    /// `workload`, `pod`, `container`, `image`, `node`, `principal` or `rule`.
    pub kind: String,
    /// `namespace/name` for workloads and pods, else the value.
    pub value: String,
}

impl Entity {
    /// `kind:value`, unique per entity.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.value)
    }

    /// The entity of one kind (`workload`, `pod`, `container`, `image`, `node`, `principal`)
    /// when the alert names it.
    pub fn of_kind(alert: &Alert, kind: &str) -> Option<Self> {
        let get = |field: &str| alert.entity.get(field).filter(|v| !v.is_empty());
        let value = match kind {
            "workload" | "pod" => {
                let (ns, pod) = (get("kubernetes.namespace")?, get("kubernetes.pod.name")?);
                let name = if kind == "workload" {
                    workload_of(pod).unwrap_or(pod)
                } else {
                    pod
                };
                format!("{ns}/{name}")
            }
            "container" => get("container.id")?.clone(),
            "image" => get("container.image.name")?.clone(),
            "node" => get("kubernetes.node.name")
                .or_else(|| get("host.name"))?
                .clone(),
            "principal" => get("user.name")?.clone(),
            _ => return None,
        };
        Some(Self {
            kind: kind.into(),
            value,
        })
    }

    /// The entity an alert is about; see the crate doc for the order.
    pub fn of(alert: &Alert) -> Self {
        let get = |field: &str| alert.entity.get(field).filter(|v| !v.is_empty());
        let make = |kind: &str, value: String| Self {
            kind: kind.into(),
            value,
        };
        if let (Some(ns), Some(pod)) = (get("kubernetes.namespace"), get("kubernetes.pod.name")) {
            return match workload_of(pod) {
                Some(workload) => make("workload", format!("{ns}/{workload}")),
                None => make("pod", format!("{ns}/{pod}")),
            };
        }
        if let Some(id) = get("container.id") {
            return make("container", id.clone());
        }
        if let Some(image) = get("container.image.name") {
            return make("image", image.clone());
        }
        if let Some(node) = get("kubernetes.node.name").or_else(|| get("host.name")) {
            return make("node", node.clone());
        }
        if let Some(user) = get("user.name") {
            return make("principal", user.clone());
        }
        make("rule", alert.rule_id.clone())
    }
}

/// The workload a pod belongs to, from its generated name: a Deployment's pods are
/// `<name>-<replicaset hash>-<5 chars>`, a DaemonSet's, StatefulSet's or Job's
/// `<name>-<5 chars>` or `<name>-<ordinal>`. `None` when the name has no such suffix.
pub fn workload_of(pod: &str) -> Option<&str> {
    let is_suffix = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let (rest, last) = pod.rsplit_once('-')?;
    if last.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty() {
        return Some(rest); // StatefulSet ordinal
    }
    if !is_suffix(last, 5..=5) {
        return None;
    }
    match rest.rsplit_once('-') {
        Some((name, hash)) if is_suffix(hash, 6..=10) && !name.is_empty() => Some(name),
        _ => Some(rest).filter(|r| !r.is_empty()),
    }
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nobody has looked yet.
    #[default]
    New,
    /// Somebody has seen it.
    Acknowledged,
    /// Being worked on.
    Investigating,
    /// Closed, with a [`Classification`].
    Resolved,
}

/// How a resolved incident turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// An attack, or a real policy violation.
    TruePositive,
    /// What the rules describe happened, and it was allowed (an admin's break-glass exec).
    BenignTruePositive,
    /// The rules were wrong: a suppression is offered.
    FalsePositive,
}

/// One alert as listed in its incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRef {
    /// The alert id.
    pub id: String,
    /// Its rule's id and title.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// Its level.
    pub level: Severity,
    /// How many detections it folded.
    pub count: u64,
    /// When it was first seen.
    pub first_seen: DateTime<Utc>,
}

/// One part of a risk score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// What it is (`alerts`, `tactics`, `techniques`, `criticality`).
    pub name: String,
    /// What was counted, in words.
    pub detail: String,
    /// Points it adds (or, for `criticality`, the multiplier).
    pub value: f64,
}

/// A risk score and what it is made of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// The score, rounded to one decimal.
    pub score: f64,
    /// Its parts, in order.
    pub factors: Vec<Factor>,
}

/// A comment on an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// Who wrote it (a token name or user).
    pub author: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The text.
    pub text: String,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id: a hash of the entity and the first alert's id.
    pub id: String,
    /// What it is about.
    pub entity: Entity,
    /// The title: the highest alert's rule title and the entity.
    pub title: String,
    /// Life cycle.
    pub status: Status,
    /// Who works on it.
    pub assignee: Option<String>,
    /// How it ended, once resolved.
    pub classification: Option<Classification>,
    /// Comments, oldest first.
    pub comments: Vec<Comment>,
    /// When its first alert was seen.
    pub opened: DateTime<Utc>,
    /// When its latest alert was last seen.
    pub last_alert: DateTime<Utc>,
    /// Its alerts (at most `max_alerts`).
    pub alerts: Vec<AlertRef>,
    /// Alerts not listed past `max_alerts` (still scored).
    pub overflow: u64,
    /// The highest level among its alerts.
    pub level: Severity,
    /// ATT&CK tactics (from `attack.<tactic>` tags).
    pub tactics: BTreeSet<String>,
    /// ATT&CK technique ids.
    pub techniques: BTreeSet<String>,
    /// Namespace, when the entity has one (for criticality and routing).
    pub namespace: Option<String>,
    /// Cluster (`orchestrator.cluster.name` of its first alert), for routing notifications.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The risk and its factors.
    pub risk: Risk,
    /// True once it should page someone: a high or critical alert, or risk ≥ `page_risk`.
    pub page: bool,
    /// Level weight of every alert id seen, for re-scoring when a folded alert grows.
    #[serde(default)]
    weights: BTreeMap<String, f64>,
}

/// What offering an alert did.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new incident opened.
    Opened(String),
    /// An open incident took the alert (or an update of one of its alerts).
    Updated(String),
    /// The incident started paging (it did not before this alert).
    Paged(String),
}

/// Why a life-cycle action was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    /// No incident has this id.
    #[error("no incident `{0}`")]
    NotFound(String),
    /// The transition does not exist (e.g. acknowledging a resolved incident).
    #[error("incident `{id}` is {from:?}; it cannot become {to:?}")]
    Transition {
        /// The incident.
        id: String,
        /// Its status.
        from: Status,
        /// The status asked for.
        to: Status,
    },
}

/// The incidents, and the grouping state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Incidents {
    config: IncidentConfig,
    /// Every incident by id.
    incidents: BTreeMap<String, Incident>,
    /// The open incident of each entity, by [`Entity::key`].
    open: BTreeMap<String, String>,
    /// Which incident holds each alert id.
    by_alert: BTreeMap<String, String>,
}

const LEVEL_WEIGHTS: [(Severity, f64); 5] = [
    (Severity::Informational, 0.0),
    (Severity::Low, 3.0),
    (Severity::Medium, 10.0),
    (Severity::High, 30.0),
    (Severity::Critical, 60.0),
];

fn level_weight(level: Severity) -> f64 {
    LEVEL_WEIGHTS
        .iter()
        .find(|(l, _)| *l == level)
        .map_or(0.0, |(_, w)| *w)
}

fn tactics_of(tags: &[String]) -> impl Iterator<Item = String> + '_ {
    tags.iter().filter_map(|tag| {
        let name = tag.strip_prefix("attack.")?;
        // Techniques (t1609), groups (g0001) and software (s0001) are ids, not tactics.
        let id_like = name.len() > 1
            && matches!(name.as_bytes()[0], b't' | b'g' | b's')
            && name[1..].bytes().all(|b| b.is_ascii_digit() || b == b'.');
        (!id_like).then(|| name.to_string())
    })
}

impl Incidents {
    /// No incidents yet.
    pub fn new(config: IncidentConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Groups and scores from now on with `config` (after a restart with changed settings);
    /// incidents already made keep their scores until their next alert.
    pub fn reconfigure(&mut self, config: IncidentConfig) {
        self.config = config;
    }

    /// Offers an alert (new, or an update of one already offered); returns what changed.
    pub fn offer(&mut self, alert: &Alert) -> Vec<Change> {
        let weight = level_weight(alert.level) * (1.0 + (alert.count.max(1) as f64).ln());
        if let Some(id) = self.by_alert.get(&alert.id).cloned() {
            // A folded alert grew: re-score its incident.
            let was = self.incidents.get(&id).is_some_and(|i| i.page);
            let config = self.config.clone();
            if let Some(incident) = self.incidents.get_mut(&id) {
                incident.weights.insert(alert.id.clone(), weight);
                if let Some(entry) = incident.alerts.iter_mut().find(|a| a.id == alert.id) {
                    entry.count = alert.count;
                }
                incident.last_alert = incident.last_alert.max(alert.last_seen);
                rescore(incident, &config);
                let mut changes = vec![Change::Updated(id.clone())];
                if incident.page && !was {
                    changes.push(Change::Paged(id));
                }
                return changes;
            }
        }
        let (entity, window) = self.config.group_of(alert);
        let at = alert.first_seen;
        let joinable = self
            .open
            .get(&entity.key())
            .and_then(|id| self.incidents.get(id))
            .filter(|i| {
                i.status != Status::Resolved
                    && at >= i.opened
                    && at - i.last_alert <= window
                    && at - i.opened <= self.config.max_span()
            });
        let mut changes = Vec::new();
        let id = match joinable {
            Some(incident) => {
                changes.push(Change::Updated(incident.id.clone()));
                incident.id.clone()
            }
            None => {
                let id = incident_id(&entity, &alert.id);
                let namespace = alert.entity.get("kubernetes.namespace").cloned();
                let cluster = alert.entity.get("orchestrator.cluster.name").cloned();
                self.incidents.insert(
                    id.clone(),
                    Incident {
                        id: id.clone(),
                        entity: entity.clone(),
                        title: String::new(),
                        status: Status::New,
                        assignee: None,
                        classification: None,
                        comments: Vec::new(),
                        opened: at,
                        last_alert: at,
                        alerts: Vec::new(),
                        overflow: 0,
                        level: alert.level,
                        tactics: BTreeSet::new(),
                        techniques: BTreeSet::new(),
                        namespace,
                        cluster,
                        risk: Risk::default(),
                        page: false,
                        weights: BTreeMap::new(),
                    },
                );
                self.open.insert(entity.key(), id.clone());
                changes.push(Change::Opened(id.clone()));
                self.prune(at);
                id
            }
        };
        self.by_alert.insert(alert.id.clone(), id.clone());
        let config = self.config.clone();
        let Some(incident) = self.incidents.get_mut(&id) else {
            return changes;
        };
        let was = incident.page;
        incident.weights.insert(alert.id.clone(), weight);
        if incident.alerts.len() < config.max_alerts {
            incident.alerts.push(AlertRef {
                id: alert.id.clone(),
                rule_id: alert.rule_id.clone(),
                title: alert.title.clone(),
                level: alert.level,
                count: alert.count,
                first_seen: alert.first_seen,
            });
        } else {
            incident.overflow += 1;
        }
        incident.last_alert = incident.last_alert.max(alert.last_seen.max(at));
        incident.level = incident.level.max(alert.level);
        incident.tactics.extend(tactics_of(&alert.tags));
        incident
            .techniques
            .extend(alert.techniques.iter().map(|t| t.to_ascii_uppercase()));
        rescore(incident, &config);
        if incident.page && !was {
            changes.push(Change::Paged(id));
        }
        changes
    }

    /// Forgets incidents whose last alert is more than `keep_days` before `now`, then the
    /// oldest past `max_incidents`, with their index entries. Called by [`Incidents::offer`]
    /// with the alert's time, so a replay forgets the same ones.
    fn prune(&mut self, now: DateTime<Utc>) {
        let keep = Duration::days(
            i64::try_from(self.config.keep_days)
                .unwrap_or(36_500)
                .min(36_500),
        );
        let mut gone: Vec<String> = self
            .incidents
            .values()
            .filter(|i| now - i.last_alert > keep)
            .map(|i| i.id.clone())
            .collect();
        let over = self
            .incidents
            .len()
            .saturating_sub(gone.len())
            .saturating_sub(self.config.max_incidents.max(1));
        if over > 0 {
            let mut rest: Vec<&Incident> = self
                .incidents
                .values()
                .filter(|i| !gone.contains(&i.id))
                .collect();
            rest.sort_by(|a, b| a.last_alert.cmp(&b.last_alert).then(a.id.cmp(&b.id)));
            gone.extend(rest.iter().take(over).map(|i| i.id.clone()));
        }
        if gone.is_empty() {
            return;
        }
        for id in &gone {
            if let Some(incident) = self.incidents.remove(id) {
                let key = incident.entity.key();
                if self.open.get(&key) == Some(id) {
                    self.open.remove(&key);
                }
            }
        }
        self.by_alert.retain(|_, id| !gone.contains(id));
    }

    /// An incident by id.
    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    /// Every incident, riskiest first (then newest).
    pub fn list(&self) -> Vec<&Incident> {
        let mut all: Vec<_> = self.incidents.values().collect();
        all.sort_by(|a, b| {
            b.risk
                .score
                .total_cmp(&a.risk.score)
                .then(b.last_alert.cmp(&a.last_alert))
                .then(a.id.cmp(&b.id))
        });
        all
    }

    /// Moves an incident to `status` (resolving needs a classification); `assignee` is kept
    /// when `None`.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotFound`], or [`ActionError::Transition`] for a move back from
    /// resolved (open a new incident instead) or to `new`.
    pub fn set_status(
        &mut self,
        id: &str,
        to: Status,
        classification: Option<Classification>,
        assignee: Option<String>,
    ) -> Result<&Incident, ActionError> {
        let incident = self
            .incidents
            .get_mut(id)
            .ok_or_else(|| ActionError::NotFound(id.to_string()))?;
        let from = incident.status;
        if from == Status::Resolved || to == Status::New {
            return Err(ActionError::Transition {
                id: id.to_string(),
                from,
                to,
            });
        }
        incident.status = to;
        if to == Status::Resolved {
            incident.classification = Some(classification.unwrap_or(Classification::TruePositive));
            // Later alerts about the entity open a new incident.
            if self
                .open
                .get(&incident.entity.key())
                .is_some_and(|open| open == id)
            {
                self.open.remove(&incident.entity.key());
            }
        }
        if assignee.is_some() {
            incident.assignee = assignee;
        }
        Ok(incident)
    }

    /// Sets (or clears) the assignee.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotFound`].
    pub fn assign(&mut self, id: &str, assignee: Option<String>) -> Result<&Incident, ActionError> {
        let incident = self
            .incidents
            .get_mut(id)
            .ok_or_else(|| ActionError::NotFound(id.to_string()))?;
        incident.assignee = assignee;
        Ok(incident)
    }

    /// Adds a comment.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotFound`].
    pub fn comment(&mut self, id: &str, comment: Comment) -> Result<&Incident, ActionError> {
        let incident = self
            .incidents
            .get_mut(id)
            .ok_or_else(|| ActionError::NotFound(id.to_string()))?;
        incident.comments.push(comment);
        Ok(incident)
    }
}

fn incident_id(entity: &Entity, first_alert: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(entity.kind.as_bytes());
    hash.update([0]);
    hash.update(entity.value.as_bytes());
    hash.update([0]);
    hash.update(first_alert.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("inc-{hex}")
}

fn rescore(incident: &mut Incident, config: &IncidentConfig) {
    let alerts: f64 = incident.weights.values().sum();
    let mut factors = vec![Factor {
        name: "alerts".into(),
        detail: format!(
            "{} alert(s), highest {}",
            incident.weights.len(),
            incident.level.as_str()
        ),
        value: round(alerts),
    }];
    let tactics = incident.tactics.len().saturating_sub(1) as f64 * 10.0;
    if tactics > 0.0 {
        factors.push(Factor {
            name: "tactics".into(),
            detail: listed(&incident.tactics),
            value: tactics,
        });
    }
    let techniques = incident.techniques.len().saturating_sub(1) as f64 * 3.0;
    if techniques > 0.0 {
        factors.push(Factor {
            name: "techniques".into(),
            detail: listed(&incident.techniques),
            value: techniques,
        });
    }
    let weight = config.weight_of(incident.namespace.as_deref());
    let mut score = alerts + tactics + techniques;
    if (weight - 1.0).abs() > f64::EPSILON {
        factors.push(Factor {
            name: "criticality".into(),
            detail: format!("namespace {}", incident.namespace.as_deref().unwrap_or("-")),
            value: weight,
        });
        score *= weight;
    }
    incident.risk = Risk {
        score: round(score),
        factors,
    };
    incident.page = incident.level >= Severity::High || incident.risk.score >= config.page_risk;
    let top = incident
        .alerts
        .iter()
        .max_by(|a, b| a.level.cmp(&b.level).then(b.first_seen.cmp(&a.first_seen)))
        .map_or("alerts", |a| a.title.as_str());
    incident.title = format!(
        "{top} on {} {}",
        incident.entity.kind, incident.entity.value
    );
}

/// A set in words: `a, b, c`.
fn listed(set: &BTreeSet<String>) -> String {
    set.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests;
