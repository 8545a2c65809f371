//! Containment: what to do about an alert or an incident, whether it may be done, by whom, and
//! a tamper-evident record of all of it.
//!
//! - [`playbook`]: the `[respond]` config (`[[respond.playbooks]]`) and the [`Planner`] that
//!   turns an alert (and its incident) into [`PlannedAction`]s, each with its [`Decision`].
//! - [`guard`]: the guards every action passes (protected namespaces and labels, never
//!   crowsnest itself, never the last healthy replica, no network quarantine of host-network
//!   containers, the persisted circuit breaker).
//! - [`approval`]: signed, expiring, single-use approval links (HMAC-SHA256).
//! - [`log`]: the append-only, hash-chained action log, and its records as events.
//! - [`k8s`]: the Kubernetes API requests, built offline with `k8s-openapi`, and an
//!   [`Executor`] that sends them.
//! - [`responder`]: the state machine the server drives: plan, log, wait for approval,
//!   execute, undo when the TTL runs out.
//!
//! An action is a list of [`Operation`]s: Docker Engine calls (run by the node agent, which has
//! the socket) or HTTP requests to the Kubernetes API server. [`PlannedAction::undo_operations`]
//! builds the inverse from what the execution remembered ([`Memory`]: the networks a
//! container was attached to, the replica count before scaling to zero).

pub mod approval;
pub mod guard;
pub mod k8s;
pub mod log;
pub mod playbook;
pub mod responder;
mod target;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use approval::{ApprovalError, Approvals, Approved};
pub use guard::{CircuitBreaker, GuardConfig, Refusal};
pub use log::{ActionLog, LogError, LogRecord, RecordKind, VerifyError};
pub use playbook::{ActionSpec, KubernetesConfig, Match, Mode, Planner, Playbook, RespondConfig};
pub use responder::Responder;
pub use target::{
    alert_from_record, Inventory, NoInventory, Owner, Replicas, StaticInventory, Target,
};

/// What can be done to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Docker: freeze every process of the container (`docker pause`); undo: unpause.
    Pause,
    /// Docker: disconnect the container from every network, remembering them (and its
    /// endpoint settings); undo: reconnect them.
    Quarantine,
    /// Docker: stop the container (SIGTERM, then SIGKILL after 10 s); undo: start.
    Stop,
    /// Docker: kill the container (SIGKILL); undo: start.
    Kill,
    /// Kubernetes: label the one pod and deny all its ingress and egress with a NetworkPolicy
    /// selecting that label only; undo: delete the policy, remove the label.
    QuarantinePod,
    /// Kubernetes: mark the pod's node unschedulable; undo: schedulable again.
    CordonNode,
    /// Kubernetes: scale the pod's owner (Deployment, StatefulSet, ReplicaSet) to zero through
    /// the scale subresource; undo: the replica count read before.
    ScaleToZero,
    /// Kubernetes: delete the pod (its owner makes a new one). No undo.
    DeletePod,
    /// Kubernetes: evict the pod through `pods/eviction` (honours PodDisruptionBudgets). No
    /// undo.
    EvictPod,
}

impl ActionKind {
    /// Every kind, in order.
    pub const ALL: [Self; 9] = [
        Self::Pause,
        Self::Quarantine,
        Self::Stop,
        Self::Kill,
        Self::QuarantinePod,
        Self::CordonNode,
        Self::ScaleToZero,
        Self::DeletePod,
        Self::EvictPod,
    ];

    /// The config name (`pause`, `quarantine_pod`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Quarantine => "quarantine",
            Self::Stop => "stop",
            Self::Kill => "kill",
            Self::QuarantinePod => "quarantine_pod",
            Self::CordonNode => "cordon_node",
            Self::ScaleToZero => "scale_to_zero",
            Self::DeletePod => "delete_pod",
            Self::EvictPod => "evict_pod",
        }
    }

    /// Whether it runs through the node agent's Docker socket (else the Kubernetes API).
    pub fn is_docker(self) -> bool {
        matches!(
            self,
            Self::Pause | Self::Quarantine | Self::Stop | Self::Kill
        )
    }

    /// Whether it cuts the target's network.
    pub fn is_network_quarantine(self) -> bool {
        matches!(self, Self::Quarantine | Self::QuarantinePod)
    }

    /// Whether it can be undone (delete and evict cannot: the owner makes a new pod).
    pub fn reversible(self) -> bool {
        !matches!(self, Self::DeletePod | Self::EvictPod)
    }
}

/// One call to the Docker Engine of a node, run by that node's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerCall {
    /// The node (agent) whose engine runs the container, when known.
    pub node: Option<String>,
    /// Container id (or name, when the id is unknown).
    pub container: String,
    /// What to call.
    pub op: DockerOp,
}

/// A Docker Engine operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DockerOp {
    /// Evidence: `GET /containers/{id}/json`; remembers `NetworkSettings.Networks` as
    /// `networks` and `HostConfig.NetworkMode` as `network_mode`.
    Inspect,
    /// Evidence: the last `tail` lines of stdout and stderr, with timestamps.
    Logs {
        /// Lines.
        tail: u32,
    },
    /// Evidence: the processes (`docker top`).
    Top,
    /// Evidence: the filesystem changes (`docker diff`).
    Diff,
    /// Evidence: the whole filesystem as a tar (`docker export`), when asked for.
    Export,
    /// `docker pause`.
    Pause,
    /// `docker unpause`.
    Unpause,
    /// Disconnect from every network the inspect found (the agent refuses when the network
    /// mode is `host`: there is nothing to disconnect and the guard said no).
    DisconnectAll,
    /// Disconnect from one network.
    Disconnect {
        /// Network name.
        network: String,
    },
    /// Connect to one network again, with the endpoint settings it had (aliases, addresses).
    Connect {
        /// Network name.
        network: String,
        /// The `EndpointSettings` remembered from the inspect (`Null` when unknown).
        #[serde(default)]
        endpoint: Value,
    },
    /// `docker stop` (SIGTERM, SIGKILL after `timeout_secs`).
    Stop {
        /// Seconds between the two signals.
        timeout_secs: u32,
    },
    /// `docker start`.
    Start,
    /// `docker kill`.
    Kill {
        /// Signal name.
        signal: String,
    },
}

impl DockerOp {
    /// Whether the call only reads (evidence).
    pub fn is_evidence(&self) -> bool {
        matches!(
            self,
            Self::Inspect | Self::Logs { .. } | Self::Top | Self::Diff | Self::Export
        )
    }
}

impl DockerCall {
    /// The Docker Engine API request this is (method, path, JSON body), for `plan`'s output and
    /// for an agent that speaks the Engine API directly.
    pub fn engine_request(&self) -> (&'static str, String, Option<Value>) {
        let id = &self.container;
        match &self.op {
            DockerOp::Inspect => ("GET", format!("/containers/{id}/json"), None),
            DockerOp::Logs { tail } => (
                "GET",
                format!("/containers/{id}/logs?stdout=1&stderr=1&timestamps=1&tail={tail}"),
                None,
            ),
            DockerOp::Top => ("GET", format!("/containers/{id}/top"), None),
            DockerOp::Diff => ("GET", format!("/containers/{id}/changes"), None),
            DockerOp::Export => ("GET", format!("/containers/{id}/export"), None),
            DockerOp::Pause => ("POST", format!("/containers/{id}/pause"), None),
            DockerOp::Unpause => ("POST", format!("/containers/{id}/unpause"), None),
            DockerOp::DisconnectAll => (
                "POST",
                "/networks/{each network of the inspect}/disconnect".into(),
                Some(serde_json::json!({"Container": id, "Force": true})),
            ),
            DockerOp::Disconnect { network } => (
                "POST",
                format!("/networks/{network}/disconnect"),
                Some(serde_json::json!({"Container": id, "Force": true})),
            ),
            DockerOp::Connect { network, endpoint } => {
                let mut body = serde_json::json!({"Container": id});
                if !endpoint.is_null() {
                    body["EndpointConfig"] = endpoint.clone();
                }
                ("POST", format!("/networks/{network}/connect"), Some(body))
            }
            DockerOp::Stop { timeout_secs } => (
                "POST",
                format!("/containers/{id}/stop?t={timeout_secs}"),
                None,
            ),
            DockerOp::Start => ("POST", format!("/containers/{id}/start"), None),
            DockerOp::Kill { signal } => (
                "POST",
                format!("/containers/{id}/kill?signal={signal}"),
                None,
            ),
        }
    }
}

/// One HTTP request to the Kubernetes API server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, `PATCH`, `DELETE`.
    pub method: String,
    /// Path below the API server's URL (`/api/v1/namespaces/prod/pods/web-0`).
    pub path: String,
    /// `Content-Type` of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Answers that count as done (besides 2xx): `404` when deleting what is already gone,
    /// `409` when creating what a previous try created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerate: Vec<u16>,
}

/// One step of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    /// Through the node agent.
    Docker(DockerCall),
    /// To the Kubernetes API server.
    Http(HttpRequest),
}

impl Operation {
    /// One line for humans: `docker node-1 POST /containers/abc/pause`,
    /// `PATCH /api/v1/nodes/n1 (application/merge-patch+json) {...}`.
    pub fn describe(&self) -> String {
        match self {
            Self::Docker(call) => {
                let (method, path, body) = call.engine_request();
                let node = call.node.as_deref().unwrap_or("?");
                let evidence = if call.op.is_evidence() {
                    " (evidence)"
                } else {
                    ""
                };
                match body {
                    Some(body) => format!("docker@{node} {method} {path} {body}{evidence}"),
                    None => format!("docker@{node} {method} {path}{evidence}"),
                }
            }
            Self::Http(request) => {
                let mut line = format!("{} {}", request.method, request.path);
                if let Some(kind) = &request.content_type {
                    line.push_str(&format!(" ({kind})"));
                }
                if let Some(body) = &request.body {
                    line.push_str(&format!(" {body}"));
                }
                line
            }
        }
    }
}

/// What executing remembered for the undo: `networks` (name → endpoint settings),
/// `network_mode`, `previous_replicas`.
pub type Memory = BTreeMap<String, Value>;

/// Whether an action may run, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Runs now (mode `auto`, every guard passed).
    Run,
    /// Waits for an approval (mode `approve`, or a guard asks for one).
    AwaitApproval,
    /// Only shown (mode `dry-run`); every guard passed.
    DryRun,
    /// A guard refused it.
    Refused,
}

/// The verdict, the guard that decided (if one did) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// What happens.
    pub verdict: Verdict,
    /// The guard that refused or asked for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// An action planned for a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    /// Stable id (`act-` + hex): the same playbook, action, target and incident (or alert)
    /// always make the same id, so an alert offered again plans nothing new.
    pub id: String,
    /// The playbook that asked for it.
    pub playbook: String,
    /// What.
    pub action: ActionKind,
    /// The mode the playbook gave.
    pub mode: Mode,
    /// On what.
    pub target: Target,
    /// The alert that triggered it.
    pub alert_id: String,
    /// Its incident, when planned for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// When it was planned.
    pub planned_at: DateTime<Utc>,
    /// Undone automatically this long after it ran (seconds), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// The operations, in order (evidence first for Docker actions).
    pub operations: Vec<Operation>,
    /// The undo as planned now (what execution remembers may fill it in later; see
    /// [`PlannedAction::undo_operations`]); empty when the action cannot be undone.
    pub undo: Vec<Operation>,
    /// May it run.
    pub decision: Decision,
}

/// Why an undo cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UndoError {
    /// Deleting or evicting a pod cannot be undone.
    #[error("{0} cannot be undone: the pod's owner makes a new pod")]
    Irreversible(&'static str),
    /// Something the undo needs was never learned.
    #[error("cannot undo {action}: {missing} unknown (it is read when the action runs)")]
    Missing {
        /// The action.
        action: &'static str,
        /// What is missing.
        missing: &'static str,
    },
}

impl PlannedAction {
    /// The undo, from what the execution remembered (`memory`) and what the plan knew.
    ///
    /// # Errors
    ///
    /// [`UndoError`] when the action cannot be undone or what the undo needs is unknown.
    pub fn undo_operations(&self, memory: &Memory) -> Result<Vec<Operation>, UndoError> {
        playbook::undo_operations(self.action, &self.id, &self.target, memory)
    }
}

/// What running an action's operations did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// One entry per operation run, in order.
    pub steps: Vec<StepResult>,
    /// What the undo will need.
    pub memory: Memory,
}

/// One operation's result: the answer's size and SHA-256 (evidence is stored by the executor
/// under that hash; the log keeps the hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// [`Operation::describe`] of the step.
    pub operation: String,
    /// Done (or a tolerated answer).
    pub ok: bool,
    /// Bytes of the answer.
    pub bytes: usize,
    /// SHA-256 of the answer, hex.
    pub sha256: String,
    /// The error, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the answer was kept (evidence), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<String>,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The API answered with an error status.
    #[error("{method} {path}: HTTP {status}: {message}")]
    Status {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Status code.
        status: u16,
        /// The API's message (a Kubernetes `Status`'s `message`, or the body).
        message: String,
    },
    /// The API could not be reached.
    #[error("{method} {path}: {message}")]
    Transport {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// This executor does not run this kind of operation.
    #[error("this executor cannot run `{0}`")]
    Unsupported(String),
    /// Anything else (the agent's own errors).
    #[error("{0}")]
    Other(String),
}

/// Runs operations: the Kubernetes API ([`k8s::K8sExecutor`]) or a node's Docker engine
/// through its agent (wired by the server).
pub trait Executor {
    /// Runs one operation; returns the answer's body (the inspect's JSON, the logs, the
    /// Kubernetes object). A tolerated error status returns `Ok` with its body.
    ///
    /// # Errors
    ///
    /// [`ExecError`] when the operation failed.
    fn execute(&self, operation: &Operation) -> Result<Vec<u8>, ExecError>;
}

/// A failed run: what was done before the failure, and the failure.
#[derive(Debug)]
pub struct Failure {
    /// The steps done (the failed one last) and what they remembered.
    pub outcome: Outcome,
    /// The first error.
    pub error: ExecError,
}

/// Runs `operations` in order through `executor`, stopping at the first failure: the steps
/// done, their answers' hashes, and what the undo needs (read from the inspect's and the
/// scale's answers). On failure the partial [`Outcome`] comes with the error.
///
/// # Errors
///
/// [`Failure`]: the partial outcome and the first [`ExecError`].
pub fn run_operations(
    executor: &dyn Executor,
    operations: &[Operation],
) -> Result<Outcome, Box<Failure>> {
    run_operations_with(executor, operations, &mut |_, _, _| Ok(None))
}

/// What [`run_operations_with`] hands every answer to: (step index, operation, body) → where
/// it was kept, if it was.
pub type Keep<'a> = dyn FnMut(usize, &Operation, &[u8]) -> Result<Option<String>, ExecError> + 'a;

/// [`run_operations`], handing every answer (step index, operation, body) to `keep`, which
/// may store it (the evidence) and return where; a failure to keep evidence stops the action
/// before anything is changed.
///
/// # Errors
///
/// [`Failure`]: the partial outcome and the first error.
pub fn run_operations_with(
    executor: &dyn Executor,
    operations: &[Operation],
    keep: &mut Keep<'_>,
) -> Result<Outcome, Box<Failure>> {
    let mut outcome = Outcome::default();
    for operation in operations {
        // The host_network guard again, on what the inspect just saw: a container on the
        // host's network is never disconnected, whatever the alert said.
        if let Operation::Docker(DockerCall {
            op: DockerOp::DisconnectAll | DockerOp::Disconnect { .. },
            ..
        }) = operation
        {
            if outcome.memory.get("network_mode").and_then(Value::as_str) == Some("host") {
                let error = ExecError::Other(
                    "guard host_network: the inspect shows network mode `host`; the container is not disconnected".into(),
                );
                outcome.steps.push(StepResult {
                    operation: operation.describe(),
                    ok: false,
                    bytes: 0,
                    sha256: hex::encode(Sha256::digest(b"")),
                    error: Some(error.to_string()),
                    stored: None,
                });
                return Err(Box::new(Failure { outcome, error }));
            }
        }
        match executor.execute(operation) {
            Ok(body) => {
                remember(operation, &body, &mut outcome.memory);
                let sha256 = hex::encode(Sha256::digest(&body));
                let kept = keep(outcome.steps.len(), operation, &body);
                let (stored, error) = match kept {
                    Ok(stored) => (stored, None),
                    Err(e) => (None, Some(e)),
                };
                outcome.steps.push(StepResult {
                    operation: operation.describe(),
                    ok: error.is_none(),
                    bytes: body.len(),
                    sha256,
                    error: error.as_ref().map(ToString::to_string),
                    stored,
                });
                if let Some(error) = error {
                    return Err(Box::new(Failure { outcome, error }));
                }
            }
            Err(error) => {
                outcome.steps.push(StepResult {
                    operation: operation.describe(),
                    ok: false,
                    bytes: 0,
                    sha256: hex::encode(Sha256::digest(b"")),
                    error: Some(error.to_string()),
                    stored: None,
                });
                return Err(Box::new(Failure { outcome, error }));
            }
        }
    }
    Ok(outcome)
}

/// Keeps from an answer what the undo will need.
fn remember(operation: &Operation, body: &[u8], memory: &mut Memory) {
    let parsed = || serde_json::from_slice::<Value>(body).ok();
    match operation {
        Operation::Docker(DockerCall {
            op: DockerOp::Inspect,
            ..
        }) => {
            if let Some(inspect) = parsed() {
                if let Some(networks) = inspect.pointer("/NetworkSettings/Networks") {
                    memory.insert("networks".into(), networks.clone());
                }
                if let Some(mode) = inspect.pointer("/HostConfig/NetworkMode") {
                    memory.insert("network_mode".into(), mode.clone());
                }
            }
        }
        Operation::Http(request) if request.method == "GET" && request.path.ends_with("/scale") => {
            if let Some(replicas) = parsed().and_then(|s| s.pointer("/spec/replicas").cloned()) {
                memory.insert("previous_replicas".into(), replicas);
            }
        }
        _ => {}
    }
}

/// `act-` and 20 hex digits of the SHA-256 of the parts, NUL-separated.
pub(crate) fn action_id(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    format!("act-{}", hex::encode(&digest[..10]))
}

/// Glob match with `*` (any run) and `?` (one character), case-sensitive.
pub(crate) use crowsnest_util::glob;

#[cfg(test)]
mod tests;
