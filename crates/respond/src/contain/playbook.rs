//! Playbooks (`[[respond.playbooks]]`) and the [`Planner`].
//!
//! ```toml
//! [respond]
//! approval_link_ttl_secs = 3600
//!
//! [respond.guards]
//! protected_namespaces = ["kube-system", "monitoring"]
//!
//! [[respond.playbooks]]
//! name = "reverse-shell"
//! rules = ["*reverse shell*", "crowsnest-k8s-0042"]
//! level_min = "high"
//! actions = [
//!   { action = "pause", mode = "auto", ttl_secs = 3600 },
//!   { action = "quarantine_pod", mode = "approve" },
//! ]
//! ```

use chrono::{DateTime, Utc};
use crowsnest_model::{Alert, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::guard::{CircuitBreaker, GuardConfig};
use super::target::{Inventory, Target};
use super::{
    action_id, glob, k8s, ActionKind, Decision, DockerCall, DockerOp, Memory, Operation,
    PlannedAction, UndoError, Verdict,
};
use crate::Incident;

/// The `[respond]` section of the server config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespondConfig {
    /// Playbooks, tried in order; every matching one plans its actions.
    pub playbooks: Vec<Playbook>,
    /// The guards.
    pub guards: GuardConfig,
    /// How long a signed approval link stays valid, in seconds (default 3600).
    pub approval_link_ttl_secs: u64,
    /// The URL approval links start with (the server's public URL, e.g.
    /// `https://crowsnest.example.org`); without it links are relative.
    pub public_url: Option<String>,
    /// Lines of logs kept as evidence before a Docker action (default 1000).
    pub evidence_log_lines: u32,
    /// Also export the container's filesystem as evidence (default false: it can be large).
    pub evidence_export: bool,
    /// How long the server waits for a node agent to carry out one Docker step of an action
    /// (default 30 s); a step not done by then fails, and its command expires unexecuted.
    pub agent_timeout_secs: u64,
    /// An action that was ready to run (automatic, or approved) when the server stopped is
    /// run at the next start if it became ready at most this many seconds before (default
    /// 900); an older one is recorded as failed ("not run: waited too long"), because the
    /// situation it answered may have changed. 0 never resumes.
    pub resume_within_secs: u64,
    /// The Kubernetes API server the pod actions are sent to (`[respond.kubernetes]`);
    /// without it Kubernetes actions are planned and logged but fail when run.
    pub kubernetes: Option<KubernetesConfig>,
}

/// `[respond.kubernetes]`: where the Kubernetes actions go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The API server's URL (`https://10.0.0.1:6443`).
    pub url: String,
    /// A bearer token (a ServiceAccount's) allowed to patch pods and nodes, create and delete
    /// NetworkPolicies, scale workloads and evict pods.
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token instead (read at start; e.g.
    /// `/var/run/secrets/kubernetes.io/serviceaccount/token`).
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
}

impl KubernetesConfig {
    /// The token, from `token` or `token_file`.
    ///
    /// # Errors
    ///
    /// When neither is set or the file cannot be read.
    pub fn resolve_token(&self) -> Result<String, String> {
        match (&self.token, &self.token_file) {
            (Some(token), _) if !token.trim().is_empty() => Ok(token.trim().to_string()),
            (_, Some(path)) => std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("respond.kubernetes.token_file `{}`: {e}", path.display())),
            _ => Err("respond.kubernetes: set `token` or `token_file`".into()),
        }
    }
}

impl Default for RespondConfig {
    fn default() -> Self {
        Self {
            playbooks: Vec::new(),
            guards: GuardConfig::default(),
            approval_link_ttl_secs: 3600,
            public_url: None,
            evidence_log_lines: 1000,
            evidence_export: false,
            agent_timeout_secs: 30,
            resume_within_secs: 900,
            kubernetes: None,
        }
    }
}

/// A playbook: when it matches, and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Its name (in plans and the action log).
    pub name: String,
    /// What it matches; every condition given must hold.
    #[serde(flatten)]
    pub matches: Match,
    /// What it does, in order.
    pub actions: Vec<ActionSpec>,
    /// Default TTL of its actions, in seconds: undone this long after they ran.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// The conditions of a playbook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Match {
    /// Rule ids or titles (globs with `*`, `?`, case-insensitive); any may match.
    pub rules: Vec<String>,
    /// Tags (`attack.execution`, globs); the alert must carry one of them.
    pub tags: Vec<String>,
    /// Lowest alert level (the incident's level, when planned for an incident).
    pub level_min: Option<Severity>,
    /// Lowest incident risk score (an alert without an incident has risk 0).
    pub risk_min: Option<f64>,
    /// Namespaces (globs); the target must be in one of them.
    pub namespaces: Vec<String>,
}

/// One action of a playbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// What.
    pub action: ActionKind,
    /// `dry-run` (default), `approve` or `auto`.
    #[serde(default)]
    pub mode: Mode,
    /// Undone this long after it ran (seconds); the playbook's `ttl_secs` when absent.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// How an action runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Never runs; the plan and the log say what it would have done.
    #[default]
    DryRun,
    /// Runs once approved.
    Approve,
    /// Runs at once (within the circuit breaker).
    Auto,
}

impl Match {
    /// Whether `alert` (with its incident's level and risk, when given) matches.
    pub fn matches(&self, alert: &Alert, incident: Option<&Incident>, target: &Target) -> bool {
        if !self.rules.is_empty()
            && !self.rules.iter().any(|r| {
                let r = r.to_lowercase();
                glob(&r, &alert.rule_id.to_lowercase()) || glob(&r, &alert.title.to_lowercase())
            })
        {
            return false;
        }
        if !self.tags.is_empty()
            && !self
                .tags
                .iter()
                .any(|p| alert.tags.iter().any(|t| glob(p, t)))
        {
            return false;
        }
        let level = incident.map_or(alert.level, |i| i.level.max(alert.level));
        if self.level_min.is_some_and(|min| level < min) {
            return false;
        }
        let risk = incident.map_or(0.0, |i| i.risk.score);
        if self.risk_min.is_some_and(|min| risk < min) {
            return false;
        }
        if !self.namespaces.is_empty() {
            let Some(ns) = &target.namespace else {
                return false;
            };
            if !self.namespaces.iter().any(|p| glob(p, ns)) {
                return false;
            }
        }
        true
    }
}

/// Why a config is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("respond.playbooks[{index}] ({name}): {reason}")]
pub struct ConfigError {
    /// Which playbook.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

impl RespondConfig {
    /// Checks what serde cannot: names present and unique, an action each, risk not negative.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for (index, p) in self.playbooks.iter().enumerate() {
            let err = |reason: &str| ConfigError {
                index,
                name: p.name.clone(),
                reason: reason.into(),
            };
            if p.name.trim().is_empty() {
                return Err(err("`name` is empty"));
            }
            if !names.insert(p.name.as_str()) {
                return Err(err("another playbook has this `name`"));
            }
            if p.actions.is_empty() {
                return Err(err("`actions` is empty"));
            }
            if let Some(spec) = p
                .actions
                .iter()
                .find(|a| a.ttl_secs.is_some() && !a.action.reversible())
            {
                return Err(err(&format!(
                    "`{}` cannot be undone, so it cannot have a `ttl_secs`",
                    spec.action.as_str()
                )));
            }
            if p.matches
                .risk_min
                .is_some_and(|r| r < 0.0 || !r.is_finite())
            {
                return Err(err("`risk_min` must be a number ≥ 0"));
            }
        }
        Ok(())
    }
}

/// Turns alerts and incidents into planned actions with their guard decisions.
#[derive(Debug, Clone)]
pub struct Planner {
    config: RespondConfig,
}

impl Planner {
    /// A planner over `config` (check it with [`RespondConfig::validate`] first).
    pub fn new(config: RespondConfig) -> Self {
        Self { config }
    }

    /// The config.
    pub fn config(&self) -> &RespondConfig {
        &self.config
    }

    /// The actions every matching playbook plans for `alert` (and its `incident`, when it
    /// has one), each with its [`Decision`]. An `auto` action that passes every guard takes a
    /// slot of `breaker`; when none is left it waits for approval instead.
    pub fn plan(
        &self,
        alert: &Alert,
        incident: Option<&Incident>,
        inventory: &dyn Inventory,
        breaker: &mut CircuitBreaker,
        now: DateTime<Utc>,
    ) -> Vec<PlannedAction> {
        self.plan_new(alert, incident, inventory, breaker, now, &|_| false)
    }

    /// [`Planner::plan`], leaving out the actions whose id `known` says were planned before
    /// (an alert offered again, a folded alert whose count grew): they take no slot of the
    /// circuit breaker.
    pub fn plan_new(
        &self,
        alert: &Alert,
        incident: Option<&Incident>,
        inventory: &dyn Inventory,
        breaker: &mut CircuitBreaker,
        now: DateTime<Utc>,
        known: &dyn Fn(&str) -> bool,
    ) -> Vec<PlannedAction> {
        let mut target = Target::of(alert);
        if let Some(known) = inventory.lookup(&target) {
            target.merge(&known);
        }
        let mut planned = Vec::new();
        for playbook in &self.config.playbooks {
            if !playbook.matches.matches(alert, incident, &target) {
                continue;
            }
            for spec in &playbook.actions {
                let scope = incident.map_or(alert.id.as_str(), |i| i.id.as_str());
                let id = action_id(&[&playbook.name, spec.action.as_str(), &target.key(), scope]);
                if known(&id) {
                    continue;
                }
                let operations = self.operations(spec.action, &id, &target);
                let undo =
                    undo_operations(spec.action, &id, &target, &Memory::new()).unwrap_or_default();
                let decision = self.decide(spec, &target, breaker, now);
                planned.push(PlannedAction {
                    id,
                    playbook: playbook.name.clone(),
                    action: spec.action,
                    mode: spec.mode,
                    target: target.clone(),
                    alert_id: alert.id.clone(),
                    incident_id: incident.map(|i| i.id.clone()),
                    planned_at: now,
                    ttl_secs: spec.ttl_secs.or(playbook.ttl_secs),
                    operations,
                    undo,
                    decision,
                });
            }
        }
        planned
    }

    fn decide(
        &self,
        spec: &ActionSpec,
        target: &Target,
        breaker: &mut CircuitBreaker,
        now: DateTime<Utc>,
    ) -> Decision {
        match self.config.guards.check(spec.action, target) {
            Err(refusal) if !refusal.approvable => {
                return Decision {
                    verdict: Verdict::Refused,
                    guard: Some(refusal.guard),
                    reason: refusal.reason,
                }
            }
            Err(refusal) => {
                // Approvable: dry-run shows it, approve and auto wait for an approval.
                let verdict = if spec.mode == Mode::DryRun {
                    Verdict::DryRun
                } else {
                    Verdict::AwaitApproval
                };
                return Decision {
                    verdict,
                    guard: Some(refusal.guard),
                    reason: refusal.reason,
                };
            }
            Ok(()) => {}
        }
        match spec.mode {
            Mode::DryRun => Decision {
                verdict: Verdict::DryRun,
                guard: None,
                reason: "mode dry-run: every guard passed; nothing is done".into(),
            },
            Mode::Approve => Decision {
                verdict: Verdict::AwaitApproval,
                guard: None,
                reason: "mode approve: every guard passed; waits for an approval".into(),
            },
            Mode::Auto => match breaker.take(now) {
                Ok(()) => Decision {
                    verdict: Verdict::Run,
                    guard: None,
                    reason: "mode auto: every guard passed".into(),
                },
                Err(refusal) => Decision {
                    verdict: Verdict::AwaitApproval,
                    guard: Some(refusal.guard),
                    reason: refusal.reason,
                },
            },
        }
    }

    /// The operations of `action` on `target`: evidence first for Docker actions.
    fn operations(&self, action: ActionKind, id: &str, target: &Target) -> Vec<Operation> {
        if action.is_docker() {
            let Some(container) = target.container() else {
                return Vec::new();
            };
            let call = |op: DockerOp| {
                Operation::Docker(DockerCall {
                    node: target.node.clone(),
                    container: container.to_string(),
                    op,
                })
            };
            let mut ops = vec![
                call(DockerOp::Inspect),
                call(DockerOp::Logs {
                    tail: self.config.evidence_log_lines,
                }),
                call(DockerOp::Top),
                call(DockerOp::Diff),
            ];
            if self.config.evidence_export {
                ops.push(call(DockerOp::Export));
            }
            match action {
                ActionKind::Pause => ops.push(call(DockerOp::Pause)),
                ActionKind::Quarantine if target.networks.is_empty() => {
                    ops.push(call(DockerOp::DisconnectAll));
                }
                ActionKind::Quarantine => {
                    for network in &target.networks {
                        ops.push(call(DockerOp::Disconnect {
                            network: network.clone(),
                        }));
                    }
                }
                ActionKind::Stop => ops.push(call(DockerOp::Stop { timeout_secs: 10 })),
                ActionKind::Kill => ops.push(call(DockerOp::Kill {
                    signal: "KILL".into(),
                })),
                _ => {}
            }
            return ops;
        }
        k8s::operations(action, id, target)
            .map(|requests| requests.into_iter().map(Operation::Http).collect())
            .unwrap_or_default()
    }
}

/// The undo of `action` (see [`PlannedAction::undo_operations`]).
pub(crate) fn undo_operations(
    action: ActionKind,
    id: &str,
    target: &Target,
    memory: &Memory,
) -> Result<Vec<Operation>, UndoError> {
    if !action.reversible() {
        return Err(UndoError::Irreversible(action.as_str()));
    }
    if action.is_docker() {
        let Some(container) = target.container() else {
            return Ok(Vec::new());
        };
        let call = |op: DockerOp| {
            Operation::Docker(DockerCall {
                node: target.node.clone(),
                container: container.to_string(),
                op,
            })
        };
        return Ok(match action {
            ActionKind::Pause => vec![call(DockerOp::Unpause)],
            ActionKind::Stop | ActionKind::Kill => vec![call(DockerOp::Start)],
            _ => {
                // Quarantine: reconnect what the inspect saw, with its endpoint settings.
                match memory.get("networks").and_then(Value::as_object) {
                    Some(networks) => networks
                        .iter()
                        .map(|(network, endpoint)| {
                            call(DockerOp::Connect {
                                network: network.clone(),
                                endpoint: reconnect_endpoint(endpoint),
                            })
                        })
                        .collect(),
                    None if !target.networks.is_empty() => target
                        .networks
                        .iter()
                        .map(|network| {
                            call(DockerOp::Connect {
                                network: network.clone(),
                                endpoint: Value::Null,
                            })
                        })
                        .collect(),
                    None => {
                        return Err(UndoError::Missing {
                            action: action.as_str(),
                            missing: "the container's networks",
                        })
                    }
                }
            }
        });
    }
    k8s::undo(action, id, target, memory).map(|requests| {
        requests
            .into_iter()
            .map(Operation::Http)
            .collect::<Vec<_>>()
    })
}

/// The parts of a remembered `EndpointSettings` that `POST /networks/{id}/connect` takes
/// back: aliases, the static addresses, links, driver options. (The endpoint id and the
/// addresses Docker assigned itself are not given: Docker assigns them anew.)
fn reconnect_endpoint(endpoint: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["IPAMConfig", "Links", "Aliases", "DriverOpts", "MacAddress"] {
        if let Some(value) = endpoint.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), value.clone());
        }
    }
    if out.is_empty() {
        Value::Null
    } else {
        json!(out)
    }
}
