//! The guards every planned action passes, in this order; the first that objects decides and
//! is named in the [`Decision`](super::Decision):
//!
//! | guard | refuses |
//! | --- | --- |
//! | `self_protection` | crowsnest itself and its agent: image, container/pod name or label patterns |
//! | `protected_namespace` | targets in a protected namespace (`kube-system` by default) |
//! | `protected_label` | targets carrying a protected label (`crowsnest.io/protected=true` by default) |
//! | `target` | actions whose target lacks what they act on (no container, no pod, no node) |
//! | `host_network` | network quarantine of a container or pod on the host's network (cutting it would cut the node) |
//! | `last_replica` | deleting, evicting or stopping the last healthy replica; deleting, evicting or scaling when the replica count is unknown; scale to zero runs only with approval |
//! | `circuit_breaker` | more than `max_auto` automatic actions within `window_secs`: the next ones wait for approval |

use std::collections::VecDeque;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{glob, ActionKind, Target};

/// Guard settings (`[respond.guards]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Namespaces never touched (exact or glob; default `["kube-system"]`).
    pub protected_namespaces: Vec<String>,
    /// Labels that protect what carries them: `key=value` (value may be a glob) or `key`
    /// (any value). Default `["crowsnest.io/protected=true"]`.
    pub protected_labels: Vec<String>,
    /// Images of crowsnest and its agent (globs; default `["*crowsnest*"]`).
    pub self_images: Vec<String>,
    /// Container or pod names of crowsnest and its agent (globs; default `["crowsnest*",
    /// "*crowsnest-agent*"]`).
    pub self_names: Vec<String>,
    /// Labels of crowsnest and its agent (as `protected_labels`; default
    /// `["app.kubernetes.io/name=crowsnest*", "app.kubernetes.io/part-of=crowsnest",
    /// "app=crowsnest*"]`).
    pub self_labels: Vec<String>,
    /// Most automatic actions within `breaker_window_secs` (default 3); past it actions wait
    /// for approval.
    pub breaker_max_auto: usize,
    /// The circuit breaker's window, in seconds (default 600).
    pub breaker_window_secs: u64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            protected_namespaces: vec!["kube-system".into()],
            protected_labels: vec!["crowsnest.io/protected=true".into()],
            self_images: vec!["*crowsnest*".into()],
            self_names: vec!["crowsnest*".into(), "*crowsnest-agent*".into()],
            self_labels: vec![
                "app.kubernetes.io/name=crowsnest*".into(),
                "app.kubernetes.io/part-of=crowsnest".into(),
                "app=crowsnest*".into(),
            ],
            breaker_max_auto: 3,
            breaker_window_secs: 600,
        }
    }
}

/// A guard's objection: its name and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The guard (`protected_namespace`, `last_replica`, ...).
    pub guard: String,
    /// Why, naming the setting or the fact.
    pub reason: String,
    /// True when the guard would let it run with an approval (instead of never).
    pub approvable: bool,
}

impl Refusal {
    fn no(guard: &str, reason: String) -> Self {
        Self {
            guard: guard.into(),
            reason,
            approvable: false,
        }
    }
}

fn label_matches(patterns: &[String], target: &Target) -> Option<String> {
    patterns.iter().find_map(|pattern| {
        let (key, value) = match pattern.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (pattern.as_str(), None),
        };
        // Events keep label keys flat with their dots as `_` (ECS `labels`, the agent's
        // `container.labels.crowsnest_io/protected`): either spelling matches.
        let have = target
            .labels
            .get(key)
            .or_else(|| target.labels.get(&key.replace('.', "_")))?;
        value
            .is_none_or(|v| glob(v, have))
            .then(|| format!("{key}={have} (matches `{pattern}`)"))
    })
}

impl GuardConfig {
    /// Checks every guard but the circuit breaker; `Ok` when all pass.
    ///
    /// # Errors
    ///
    /// The first guard's [`Refusal`].
    pub fn check(&self, action: ActionKind, target: &Target) -> Result<(), Refusal> {
        // self_protection
        if let Some(image) = &target.image {
            if let Some(p) = self.self_images.iter().find(|p| glob(p, image)) {
                return Err(Refusal::no(
                    "self_protection",
                    format!("image `{image}` is crowsnest's own (matches self_images `{p}`)"),
                ));
            }
        }
        for name in [&target.container_name, &target.pod].into_iter().flatten() {
            if let Some(p) = self.self_names.iter().find(|p| glob(p, name)) {
                return Err(Refusal::no(
                    "self_protection",
                    format!("`{name}` is crowsnest's own (matches self_names `{p}`)"),
                ));
            }
        }
        if let Some(label) = label_matches(&self.self_labels, target) {
            return Err(Refusal::no(
                "self_protection",
                format!("label {label} marks crowsnest's own (self_labels)"),
            ));
        }
        // protected_namespace
        if let Some(ns) = &target.namespace {
            if let Some(p) = self.protected_namespaces.iter().find(|p| glob(p, ns)) {
                return Err(Refusal::no(
                    "protected_namespace",
                    format!("namespace `{ns}` is protected (protected_namespaces `{p}`)"),
                ));
            }
        }
        // protected_label
        if let Some(label) = label_matches(&self.protected_labels, target) {
            return Err(Refusal::no(
                "protected_label",
                format!("label {label} is protected (protected_labels)"),
            ));
        }
        // target
        let missing = match action {
            a if a.is_docker() && target.container().is_none() => Some("a container id or name"),
            ActionKind::QuarantinePod | ActionKind::DeletePod | ActionKind::EvictPod
                if target.namespace.is_none() || target.pod.is_none() =>
            {
                Some("a namespace and a pod")
            }
            ActionKind::CordonNode if target.node.is_none() => Some("a node"),
            ActionKind::ScaleToZero if target.namespace.is_none() => Some("a namespace"),
            ActionKind::ScaleToZero if target.owner.is_none() => {
                Some("the pod's owner (kubernetes.owner.kind/name, or a pod name that tells it)")
            }
            _ => None,
        };
        if let Some(missing) = missing {
            return Err(Refusal::no(
                "target",
                format!(
                    "{} needs {missing}; the alert does not name it",
                    action.as_str()
                ),
            ));
        }
        if action == ActionKind::ScaleToZero {
            if let Some(owner) = &target.owner {
                if !matches!(
                    owner.kind.as_str(),
                    "Deployment" | "StatefulSet" | "ReplicaSet"
                ) {
                    return Err(Refusal::no(
                        "target",
                        format!(
                            "scale_to_zero scales a Deployment, StatefulSet or ReplicaSet; the owner is a {}",
                            owner.kind
                        ),
                    ));
                }
            }
        }
        // host_network
        if action.is_network_quarantine() && target.host_network == Some(true) {
            return Err(Refusal::no(
                "host_network",
                format!(
                    "{} uses the host's network: quarantining it would cut the node, and a NetworkPolicy does not apply to it",
                    target.describe()
                ),
            ));
        }
        // last_replica
        let replicas = target.replicas;
        match action {
            ActionKind::DeletePod | ActionKind::EvictPod => match replicas {
                None => {
                    return Err(Refusal::no(
                        "last_replica",
                        format!(
                            "{} would take down a replica, and how many healthy replicas remain is unknown (give kubernetes.replicas.ready or an inventory)",
                            action.as_str()
                        ),
                    ))
                }
                Some(r) if r.ready <= 1 => {
                    return Err(Refusal::no(
                        "last_replica",
                        format!(
                            "{} would take down the last healthy replica ({} ready of {})",
                            action.as_str(),
                            r.ready,
                            r.desired
                        ),
                    ))
                }
                Some(_) => {}
            },
            ActionKind::Stop | ActionKind::Kill | ActionKind::Pause | ActionKind::QuarantinePod => {
                if let Some(r) = replicas.filter(|r| r.ready <= 1 && target.pod.is_some()) {
                    return Err(Refusal::no(
                        "last_replica",
                        format!(
                            "{} would take out the last healthy replica ({} ready of {})",
                            action.as_str(),
                            r.ready,
                            r.desired
                        ),
                    ));
                }
            }
            ActionKind::ScaleToZero => match replicas {
                None => {
                    return Err(Refusal::no(
                        "last_replica",
                        "scale_to_zero needs the workload's replica count (to restore it and to know what it takes down); it is unknown".into(),
                    ))
                }
                Some(r) => {
                    return Err(Refusal {
                        guard: "last_replica".into(),
                        reason: format!(
                            "scale_to_zero takes down every replica ({} ready of {}): it runs only once approved",
                            r.ready, r.desired
                        ),
                        approvable: true,
                    })
                }
            },
            _ => {}
        }
        Ok(())
    }
}

/// Counts automatic actions in a sliding window; persisted (one RFC 3339 time a line) so a
/// restart does not reset it.
#[derive(Debug)]
pub struct CircuitBreaker {
    max: usize,
    window: Duration,
    times: VecDeque<DateTime<Utc>>,
    path: Option<PathBuf>,
}

impl CircuitBreaker {
    /// A breaker kept in memory only (`simulate`, tests).
    pub fn in_memory(config: &GuardConfig) -> Self {
        Self {
            max: config.breaker_max_auto,
            window: Duration::seconds(i64::try_from(config.breaker_window_secs).unwrap_or(600)),
            times: VecDeque::new(),
            path: None,
        }
    }

    /// A breaker persisted at `path` (created when missing). Unreadable lines are skipped.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub fn open(path: PathBuf, config: &GuardConfig) -> std::io::Result<Self> {
        let mut breaker = Self::in_memory(config);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                breaker.times = text
                    .lines()
                    .filter_map(|l| DateTime::parse_from_rfc3339(l.trim()).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .collect();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        breaker.path = Some(path);
        Ok(breaker)
    }

    /// Automatic actions counted within the window ending at `now`.
    pub fn count(&mut self, now: DateTime<Utc>) -> usize {
        while self.times.front().is_some_and(|t| now - *t >= self.window) {
            self.times.pop_front();
        }
        self.times.len()
    }

    /// Takes one automatic action if the window has room (and records it, durably when
    /// persisted).
    ///
    /// # Errors
    ///
    /// The breaker's [`Refusal`] (approvable) when the window is full or the count cannot be
    /// saved.
    pub fn take(&mut self, now: DateTime<Utc>) -> Result<(), Refusal> {
        let count = self.count(now);
        if count >= self.max {
            return Err(Refusal {
                guard: "circuit_breaker".into(),
                reason: format!(
                    "{count} automatic action(s) in the last {} s (breaker_max_auto = {}): approval required",
                    self.window.num_seconds(),
                    self.max
                ),
                approvable: true,
            });
        }
        self.times.push_back(now);
        if let Some(path) = &self.path {
            let text: String = self
                .times
                .iter()
                .map(|t| format!("{}\n", t.to_rfc3339()))
                .collect();
            if let Err(e) = crowsnest_util::AtomicWrite::default().write(path, text.as_bytes()) {
                self.times.pop_back();
                return Err(Refusal {
                    guard: "circuit_breaker".into(),
                    reason: format!(
                        "the breaker's count cannot be saved to `{}` ({e}): approval required",
                        path.display()
                    ),
                    approvable: true,
                });
            }
        }
        Ok(())
    }
}
