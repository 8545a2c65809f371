//! Notifications: incident changes routed to people and paging systems.
//!
//! ```text
//!  detector thread ──(incident change + snapshot)──► Outbox::offer
//!        │ routes: level, risk, tags, namespace, cluster, change   │ journal (fsync) in
//!        │                                                          │ <data-dir>/notify
//!        ▼                                                          ▼
//!  one worker thread per channel: rate limit, timeout, retries with jitter and Retry-After
//!        └─► Slack · Teams · PagerDuty · Alertmanager · Opsgenie · webhook · email
//! ```
//!
//! * One notification per incident **change** (opened, updated, paged, acknowledged,
//!   investigating, resolved, and a containment action awaiting approval, with its signed
//!   one-click link), never per alert; `updated` changes of an incident coalesce while
//!   one waits, and at most one is sent per `update_interval_secs`.
//! * Every change has a dedup key, `<incident id>:<change>[:<revision>]`, derived from the
//!   incident alone: the detector re-derives the same changes when it replays the WAL after a
//!   crash, and the outbox recognises the keys it holds or has delivered (a persisted ledger),
//!   so a restart does not notify twice.
//! * Delivery to a receiver is at-least-once: a crash between the receiver's answer and the
//!   ledger's write sends that one notification again, with the same idempotency key
//!   (PagerDuty `dedup_key`, Opsgenie `alias`, the webhook's `webhook-id` and CloudEvents
//!   `id`), which those receivers use to drop the repeat. Chat and email have no such key.
//! * A slow or failing channel holds up only itself: each has its own thread.

pub mod config;
pub mod outbox;
pub mod payload;
mod send;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use crowsnest_model::Severity;
use crowsnest_respond::{Change, Incident, Status};
use serde::{Deserialize, Serialize};

pub use config::{ChannelKind, ConfigError, NotifyConfig, RouteConfig};
pub use outbox::{ChannelStatus, Outbox};

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new incident.
    Opened,
    /// A new alert joined it.
    Updated,
    /// It started paging (a high alert, or risk over `page_risk`).
    Paged,
    /// Somebody acknowledged it.
    Acknowledged,
    /// Somebody is investigating it.
    Investigating,
    /// It was resolved.
    Resolved,
    /// A containment action for it waits for a person's approval (the notice carries a
    /// signed, single-use, expiring approval link).
    ApprovalNeeded,
}

impl ChangeKind {
    /// The name used in routes, keys and payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Opened => "opened",
            ChangeKind::Updated => "updated",
            ChangeKind::Paged => "paged",
            ChangeKind::Acknowledged => "acknowledged",
            ChangeKind::Investigating => "investigating",
            ChangeKind::Resolved => "resolved",
            ChangeKind::ApprovalNeeded => "approval_needed",
        }
    }

    /// The changes a route gets when it names none: all but `updated`, approvals included.
    pub fn default_set() -> Vec<ChangeKind> {
        vec![
            ChangeKind::Opened,
            ChangeKind::Paged,
            ChangeKind::Acknowledged,
            ChangeKind::Investigating,
            ChangeKind::Resolved,
            ChangeKind::ApprovalNeeded,
        ]
    }
}

/// The most alerts a snapshot lists (the newest are kept).
pub const SNAPSHOT_ALERTS: usize = 10;

/// What a notification says about its incident: a copy taken at the change, without the
/// incident's full alert list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The incident id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Entity kind (`workload`, `pod`, ...).
    pub entity_kind: String,
    /// Entity value.
    pub entity: String,
    /// Status.
    pub status: Status,
    /// Highest alert level.
    pub level: Severity,
    /// Risk score.
    pub risk: f64,
    /// What the risk is made of, in words (`alerts: 2 alert(s), highest high (+60)`).
    pub factors: Vec<String>,
    /// Whether it pages.
    pub page: bool,
    /// Namespace.
    pub namespace: Option<String>,
    /// Cluster.
    pub cluster: Option<String>,
    /// `attack.<tactic>` and `attack.<technique>` tags.
    pub tags: BTreeSet<String>,
    /// Number of alerts.
    pub alert_count: u64,
    /// The latest alerts (at most [`SNAPSHOT_ALERTS`]): `level`, `title`, `count`.
    pub alerts: Vec<SnapshotAlert>,
    /// When it opened.
    pub opened: DateTime<Utc>,
    /// Its last alert.
    pub last_alert: DateTime<Utc>,
    /// Assignee.
    pub assignee: Option<String>,
    /// Closing classification, once resolved (`true_positive`, ...).
    pub classification: Option<String>,
}

/// An alert as a snapshot lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotAlert {
    /// Rule id.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Level.
    pub level: Severity,
    /// Detections folded into it.
    pub count: u64,
}

impl Snapshot {
    /// The snapshot of `incident`.
    pub fn of(incident: &Incident) -> Self {
        let mut tags: BTreeSet<String> = incident
            .tactics
            .iter()
            .map(|t| format!("attack.{t}"))
            .collect();
        tags.extend(
            incident
                .techniques
                .iter()
                .map(|t| format!("attack.{}", t.to_ascii_lowercase())),
        );
        let start = incident.alerts.len().saturating_sub(SNAPSHOT_ALERTS);
        Self {
            id: incident.id.clone(),
            title: incident.title.clone(),
            entity_kind: incident.entity.kind.clone(),
            entity: incident.entity.value.clone(),
            status: incident.status,
            level: incident.level,
            risk: incident.risk.score,
            factors: incident
                .risk
                .factors
                .iter()
                .map(|f| format!("{}: {} ({})", f.name, f.detail, f.value))
                .collect(),
            page: incident.page,
            namespace: incident.namespace.clone(),
            cluster: incident.cluster.clone(),
            tags,
            alert_count: incident.alerts.len() as u64 + incident.overflow,
            alerts: incident.alerts[start..]
                .iter()
                .map(|a| SnapshotAlert {
                    rule_id: a.rule_id.clone(),
                    title: a.title.clone(),
                    level: a.level,
                    count: a.count,
                })
                .collect(),
            opened: incident.opened,
            last_alert: incident.last_alert,
            assignee: incident.assignee.clone(),
            classification: incident.classification.and_then(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
            }),
        }
    }
}

/// One incident change to notify, with its dedup key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// What happened.
    pub change: ChangeKind,
    /// `<incident>:<change>[:<revision>]`: the same for the same change after a replay.
    pub key: String,
    /// The incident as of the change.
    pub incident: Snapshot,
    /// Who made the change (status changes).
    pub by: Option<String>,
    /// The action waiting for approval (`approval_needed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRequest>,
}

/// A containment action waiting for a person, as an `approval_needed` notice shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The action's id.
    pub action_id: String,
    /// What it does (`pause`, `quarantine`, `isolate_pod`, ...).
    pub action: String,
    /// What it acts on, in words.
    pub target: String,
    /// The playbook that planned it.
    pub playbook: String,
    /// The signed, single-use approval link (opening it shows a confirmation form; nothing
    /// runs until that form is submitted, so chat link previews cannot approve).
    pub link: String,
    /// When the link stops working.
    pub expires: DateTime<Utc>,
}

impl Notice {
    /// The notice of a change [`crowsnest_respond::Incidents::offer`] reported. `updated`
    /// changes carry the number of alerts as revision: a folded alert that only grew makes
    /// the same key again (and so no new notification).
    pub fn of_change(change: &Change, incident: &Incident) -> Self {
        let snapshot = Snapshot::of(incident);
        let (change, key) = match change {
            Change::Opened(_) => (ChangeKind::Opened, format!("{}:opened", incident.id)),
            Change::Paged(_) => (ChangeKind::Paged, format!("{}:paged", incident.id)),
            Change::Updated(_) => (
                ChangeKind::Updated,
                format!("{}:updated:{}", incident.id, snapshot.alert_count),
            ),
        };
        Self {
            change,
            key,
            incident: snapshot,
            by: None,
            approval: None,
        }
    }

    /// The notice that `request` waits for approval; its key names the action, so each
    /// action is announced once (a restart re-plans nothing, and the ledger knows the key).
    pub fn of_approval(incident: &Incident, request: ApprovalRequest) -> Self {
        Self {
            change: ChangeKind::ApprovalNeeded,
            key: format!("{}:approval_needed:{}", incident.id, request.action_id),
            incident: Snapshot::of(incident),
            by: None,
            approval: Some(request),
        }
    }

    /// The notice of a status change applied from the WAL; `at` (the action's ingest time,
    /// the same on replay) is the revision, so acknowledging twice notifies twice.
    pub fn of_status(incident: &Incident, at: DateTime<Utc>, by: &str) -> Option<Self> {
        let change = match incident.status {
            Status::New => return None,
            Status::Acknowledged => ChangeKind::Acknowledged,
            Status::Investigating => ChangeKind::Investigating,
            Status::Resolved => ChangeKind::Resolved,
        };
        Some(Self {
            change,
            key: format!(
                "{}:{}:{}",
                incident.id,
                change.as_str(),
                at.timestamp_millis()
            ),
            incident: Snapshot::of(incident),
            by: Some(by.to_string()),
            approval: None,
        })
    }

    /// The incident id.
    pub fn incident_id(&self) -> &str {
        &self.incident.id
    }
}

impl RouteConfig {
    /// Whether this route takes `notice`.
    pub fn matches(&self, notice: &Notice) -> bool {
        let incident = &notice.incident;
        let changes = self.changes.clone().unwrap_or_else(ChangeKind::default_set);
        if !changes.contains(&notice.change) {
            return false;
        }
        if self.min_level.is_some_and(|min| incident.level < min) {
            return false;
        }
        if self.min_risk.is_some_and(|min| incident.risk < min) {
            return false;
        }
        if !self.tags.is_empty()
            && !self.tags.iter().any(|p| {
                incident
                    .tags
                    .iter()
                    .any(|t| config::glob(&p.to_ascii_lowercase(), t))
            })
        {
            return false;
        }
        let any = |patterns: &[String], value: &Option<String>| {
            patterns.is_empty()
                || value
                    .as_deref()
                    .is_some_and(|v| patterns.iter().any(|p| config::glob(p, v)))
        };
        any(&self.namespaces, &incident.namespace) && any(&self.clusters, &incident.cluster)
    }
}

#[cfg(test)]
mod tests;

/// The notices of the changes [`crowsnest_respond::Incidents::offer`] returned.
pub fn notices(changes: &[Change], incidents: &crowsnest_respond::Incidents) -> Vec<Notice> {
    changes
        .iter()
        .filter_map(|change| {
            let (Change::Opened(id) | Change::Updated(id) | Change::Paged(id)) = change;
            incidents
                .get(id)
                .map(|incident| Notice::of_change(change, incident))
        })
        .collect()
}
