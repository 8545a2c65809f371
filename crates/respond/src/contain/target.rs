//! The target of an action, from an alert's entity fields and what an inventory adds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crowsnest_model::{Alert, Event, Severity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The owner of a pod, whose replica count `scale_to_zero` sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `Deployment`, `StatefulSet` or `ReplicaSet`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// True when guessed from the pod's generated name rather than told.
    #[serde(default)]
    pub inferred: bool,
}

/// Replica counts of the target's workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicas {
    /// Desired (`spec.replicas`).
    pub desired: u32,
    /// Ready (healthy) now.
    pub ready: u32,
}

/// What an action acts on: a container, a pod, its node, its owner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Target {
    /// `container.id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// `container.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// `container.image.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The node: `kubernetes.node.name`, else `host.name` (the agent's node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `kubernetes.namespace` (or `orchestrator.namespace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `kubernetes.pod.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Pod or container labels (`kubernetes.labels.*`, `container.labels.*`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The pod's owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The workload's replicas, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Replicas>,
    /// Whether the container (or pod) uses the host's network, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    /// Networks the container is attached to, when known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
}

impl Target {
    /// The target an alert names. Fields read (each optional): `container.id`,
    /// `container.name`, `container.image.name`, `kubernetes.node.name` / `host.name`,
    /// `kubernetes.namespace` / `orchestrator.namespace`, `kubernetes.pod.name`,
    /// `kubernetes.labels.<k>` / `container.labels.<k>`, `kubernetes.owner.kind` +
    /// `kubernetes.owner.name` (or `orchestrator.resource.parent.type` + `.name`),
    /// `kubernetes.replicas.desired` + `kubernetes.replicas.ready`, `container.network.mode`
    /// (`host`) or `kubernetes.pod.host_network`, `container.networks` (comma-separated).
    /// A ReplicaSet owner named like a Deployment's (`web-7d4b9c6f5`) becomes that Deployment
    /// (scaling the ReplicaSet would be undone by its Deployment). Without an owner, a pod named like a Deployment's (`web-7d4b9c6f5-x2kq9`) or a
    /// StatefulSet's (`db-0`) gets that owner, marked `inferred`.
    pub fn from_fields(fields: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
        let mut labels = BTreeMap::new();
        for (key, value) in fields {
            if let Some(label) = key
                .strip_prefix("kubernetes.labels.")
                .or_else(|| key.strip_prefix("container.labels."))
            {
                labels.insert(label.to_string(), value.clone());
            }
        }
        let namespace = get("kubernetes.namespace").or_else(|| get("orchestrator.namespace"));
        let pod = get("kubernetes.pod.name");
        let owner = match (
            get("kubernetes.owner.kind").or_else(|| get("orchestrator.resource.parent.type")),
            get("kubernetes.owner.name").or_else(|| get("orchestrator.resource.parent.name")),
        ) {
            (Some(kind), Some(name)) => Some(deployment_above(Owner {
                kind,
                name,
                inferred: false,
            })),
            _ => pod.as_deref().and_then(infer_owner),
        };
        let replicas = match (
            get("kubernetes.replicas.desired").and_then(|v| v.parse().ok()),
            get("kubernetes.replicas.ready").and_then(|v| v.parse().ok()),
        ) {
            (Some(desired), Some(ready)) => Some(Replicas { desired, ready }),
            _ => None,
        };
        let host_network = get("container.network.mode")
            .map(|mode| mode == "host")
            .or_else(|| get("kubernetes.pod.host_network").map(|v| v == "true"));
        Self {
            container_id: get("container.id"),
            container_name: get("container.name"),
            image: get("container.image.name"),
            node: get("kubernetes.node.name").or_else(|| get("host.name")),
            namespace,
            pod,
            labels,
            owner,
            replicas,
            host_network,
            networks: get("container.networks")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The target of an alert ([`Target::from_fields`] over its entity).
    pub fn of(alert: &Alert) -> Self {
        Self::from_fields(&alert.entity)
    }

    /// Fills what `self` does not know from `other` (an inventory's view); what `self`
    /// knows stays, except that told owners replace inferred ones.
    pub fn merge(&mut self, other: &Target) {
        let fill = |mine: &mut Option<String>, theirs: &Option<String>| {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        };
        fill(&mut self.container_id, &other.container_id);
        fill(&mut self.container_name, &other.container_name);
        fill(&mut self.image, &other.image);
        fill(&mut self.node, &other.node);
        fill(&mut self.namespace, &other.namespace);
        fill(&mut self.pod, &other.pod);
        for (key, value) in &other.labels {
            self.labels
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        let replace_owner = match (&self.owner, &other.owner) {
            (None, Some(_)) => true,
            (Some(mine), Some(theirs)) => mine.inferred && !theirs.inferred,
            _ => false,
        };
        if replace_owner {
            self.owner.clone_from(&other.owner);
        }
        if self.replicas.is_none() {
            self.replicas = other.replicas;
        }
        if self.host_network.is_none() {
            self.host_network = other.host_network;
        }
        if self.networks.is_empty() {
            self.networks.clone_from(&other.networks);
        }
    }

    /// The container to address: its id, else its name.
    pub fn container(&self) -> Option<&str> {
        self.container_id
            .as_deref()
            .or(self.container_name.as_deref())
    }

    /// A stable key for ids: every identifying field.
    pub fn key(&self) -> String {
        let part = |v: &Option<String>| v.clone().unwrap_or_default();
        format!(
            "{}|{}|{}|{}|{}",
            part(&self.namespace),
            part(&self.pod),
            part(&self.container_id),
            part(&self.container_name),
            part(&self.node)
        )
    }

    /// In words: `pod prod/web-0 (container abc123) on node-1`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let (Some(ns), Some(pod)) = (&self.namespace, &self.pod) {
            parts.push(format!("pod {ns}/{pod}"));
        }
        match (&self.container_name, &self.container_id) {
            (Some(name), Some(id)) => {
                parts.push(format!("container {name} ({})", short(id)));
            }
            (Some(name), None) => parts.push(format!("container {name}")),
            (None, Some(id)) => parts.push(format!("container {}", short(id))),
            (None, None) => {}
        }
        if parts.is_empty() {
            if let Some(ns) = &self.namespace {
                parts.push(format!("namespace {ns}"));
            }
        }
        if let Some(node) = &self.node {
            parts.push(format!("on {node}"));
        }
        if parts.is_empty() {
            "nothing identifiable (no container, pod or node named)".into()
        } else {
            parts.join(" ")
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A ReplicaSet named like a Deployment's (`web-7d4b9c6f5`: a pod-template hash of 6 to 10
/// characters of the alphabet Kubernetes encodes it in) belongs to that Deployment, whose
/// controller would undo a scale of the ReplicaSet: scale the Deployment instead.
fn deployment_above(owner: Owner) -> Owner {
    if owner.kind != "ReplicaSet" {
        return owner;
    }
    let Some((deployment, hash)) = owner.name.rsplit_once('-') else {
        return owner;
    };
    let alphabet = "bcdfghjklmnpqrstvwxz2456789";
    if deployment.is_empty()
        || !(6..=10).contains(&hash.len())
        || !hash.chars().all(|c| alphabet.contains(c))
    {
        return owner;
    }
    Owner {
        kind: "Deployment".into(),
        name: deployment.into(),
        inferred: true,
    }
}

/// The owner a pod's generated name tells: `web-7d4b9c6f5-x2kq9` → Deployment `web`,
/// `db-0` → StatefulSet `db`.
fn infer_owner(pod: &str) -> Option<Owner> {
    let (rest, last) = pod.rsplit_once('-')?;
    if !rest.is_empty() && !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Owner {
            kind: "StatefulSet".into(),
            name: rest.into(),
            inferred: true,
        });
    }
    let workload = crate::workload_of(pod)?;
    // Only the Deployment shape (a ReplicaSet hash before the random suffix) is unambiguous.
    let middle = rest.strip_prefix(workload)?.strip_prefix('-')?;
    (!middle.is_empty()).then(|| Owner {
        kind: "Deployment".into(),
        name: workload.into(),
        inferred: true,
    })
}

/// Where the planner learns what alerts do not carry (labels, owner, replicas, host network).
pub trait Inventory {
    /// What is known about the target an alert names (`None`: nothing more).
    fn lookup(&self, target: &Target) -> Option<Target>;
}

/// An inventory that knows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoInventory;

impl Inventory for NoInventory {
    fn lookup(&self, _: &Target) -> Option<Target> {
        None
    }
}

/// A fixed list of targets (`crowsnest respond plan --inventory FILE.json`, tests), matched by
/// container id or name, else by namespace and pod.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StaticInventory(pub Vec<Target>);

impl Inventory for StaticInventory {
    fn lookup(&self, target: &Target) -> Option<Target> {
        let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
        self.0
            .iter()
            .find(|known| {
                same(&known.container_id, &target.container_id)
                    || same(&known.container_name, &target.container_name)
                    || (same(&known.namespace, &target.namespace) && same(&known.pod, &target.pod))
            })
            .cloned()
    }
}

/// Fields copied from a stored alert record into [`Alert::entity`].
const TARGET_FIELDS: &[&str] = &[
    "orchestrator.cluster.name",
    "orchestrator.namespace",
    "orchestrator.resource.parent.type",
    "orchestrator.resource.parent.name",
    "kubernetes.namespace",
    "kubernetes.pod.name",
    "kubernetes.node.name",
    "kubernetes.owner.kind",
    "kubernetes.owner.name",
    "kubernetes.replicas.desired",
    "kubernetes.replicas.ready",
    "kubernetes.pod.host_network",
    "container.id",
    "container.name",
    "container.image.name",
    "container.network.mode",
    "container.networks",
    "host.name",
    "user.name",
];

/// An [`Alert`] back from its stored record (`event.kind: alert`, see
/// [`crowsnest_model::alert`]): what `crowsnest respond simulate` replays. The id is
/// `alert.id` (the stable id the server gives every record of one alert), else `event.id`.
/// `None` when the record lacks the alert's id, rule or time.
pub fn alert_from_record(record: &Event) -> Option<Alert> {
    let text = |path: &str| record.get_str(path).map(String::from);
    let time = |path: &str| {
        record
            .get(path)
            .and_then(crowsnest_model::parse_timestamp)
            .map(|t: DateTime<Utc>| t)
    };
    let strings = |path: &str| -> Vec<String> {
        match record.get(path) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    };
    // `alert.id` ties the records of one alert together; `event.id` is the record's own.
    let id = text("alert.id").or_else(|| text("event.id"))?;
    let rule_id = text("rule.id")?;
    let first_seen = time("alert.first_seen").or_else(|| time("@timestamp"))?;
    let mut entity = BTreeMap::new();
    for field in TARGET_FIELDS {
        if let Some(value) = record.get(field) {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            entity.insert((*field).to_string(), value);
        }
    }
    for prefix in ["kubernetes.labels", "container.labels"] {
        if let Some(Value::Object(labels)) = record.get(prefix) {
            for (key, value) in labels {
                if let Some(value) = value.as_str() {
                    entity.insert(format!("{prefix}.{key}"), value.to_string());
                }
            }
        }
    }
    Some(Alert {
        title: text("rule.name").unwrap_or_else(|| rule_id.clone()),
        level: text("rule.level")
            .and_then(|l| l.parse().ok())
            .unwrap_or(Severity::Informational),
        tags: strings("tags"),
        techniques: strings("threat.technique.id"),
        entity,
        event_ids: strings("alert.event_ids"),
        count: record
            .get("alert.count")
            .and_then(Value::as_u64)
            .unwrap_or(1),
        last_seen: time("alert.last_seen").unwrap_or(first_seen),
        first_seen,
        fold_key: text("alert.fold_key").unwrap_or_default(),
        correlation: None,
        id,
        rule_id,
    })
}
