//! Kubernetes API requests, built offline from the `k8s-openapi` types (API version 1.37), and
//! [`K8sExecutor`], which sends them to an API server with a bearer token.
//!
//! | action | requests | undo |
//! | --- | --- | --- |
//! | `quarantine_pod` | `POST` a NetworkPolicy `crowsnest-quarantine-<id>` in the pod's namespace selecting `crowsnest.io/quarantine=<id>` with `policyTypes: [Ingress, Egress]` and no rules (denies both); then a merge patch adding that label to the one pod | a JSON patch that tests and removes the label; `DELETE` the policy |
//! | `cordon_node` | merge patch `spec.unschedulable: true` on the node | the same with `false` |
//! | `scale_to_zero` | `GET` the owner's `scale` subresource (the replica count is remembered), then a merge patch of it to `spec.replicas: 0` | merge patch back to the remembered count |
//! | `delete_pod` | `DELETE` the pod | none |
//! | `evict_pod` | `POST` a `policy/v1` Eviction to `pods/{name}/eviction` | none |
//!
//! The policy is created before the label is set, so the pod is isolated the moment it
//! carries the label; the undo removes the label first. Creating a policy a previous try
//! created (409) and deleting one already gone (404) count as done.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::{json, Value};

use super::{ActionKind, ExecError, Executor, HttpRequest, Memory, Operation, Target, UndoError};

/// The label that marks a quarantined pod; its value is the action id.
pub const QUARANTINE_LABEL: &str = "crowsnest.io/quarantine";

/// `application/merge-patch+json`.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// `application/json-patch+json`.
pub const JSON_PATCH: &str = "application/json-patch+json";
/// `application/json`.
pub const JSON: &str = "application/json";

/// The name of the NetworkPolicy of quarantine `id`.
pub fn policy_name(id: &str) -> String {
    format!("crowsnest-quarantine-{id}")
}

/// The NetworkPolicy that isolates the pod labelled `crowsnest.io/quarantine=<id>` in
/// `namespace`: both policy types, no rules, so nothing goes in or out.
pub fn quarantine_policy(namespace: &str, id: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(policy_name(id)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "crowsnest".to_string(),
                ),
                (QUARANTINE_LABEL.to_string(), id.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    QUARANTINE_LABEL.to_string(),
                    id.to_string(),
                )])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: None,
        }),
    }
}

fn to_json<T: serde::Serialize>(object: &T) -> Value {
    // The k8s-openapi types serialize to JSON without fail (strings, maps, numbers).
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn pod_path(namespace: &str, pod: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{pod}")
}

/// The path of the scale subresource of the target's owner.
pub fn scale_path(target: &Target) -> Option<String> {
    let namespace = target.namespace.as_deref()?;
    let owner = target.owner.as_ref()?;
    let resource = match owner.kind.as_str() {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "ReplicaSet" => "replicasets",
        _ => return None,
    };
    Some(format!(
        "/apis/apps/v1/namespaces/{namespace}/{resource}/{}/scale",
        owner.name
    ))
}

fn scale_patch(replicas: i32) -> Value {
    to_json(&Scale {
        metadata: ObjectMeta::default(),
        spec: Some(ScaleSpec {
            replicas: Some(replicas),
        }),
        status: None,
    })
}

fn node_patch(unschedulable: bool) -> Value {
    to_json(&Node {
        metadata: ObjectMeta::default(),
        spec: Some(NodeSpec {
            unschedulable: Some(unschedulable),
            ..NodeSpec::default()
        }),
        status: None,
    })
}

fn request(
    method: &str,
    path: String,
    content_type: Option<&str>,
    body: Option<Value>,
) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        path,
        content_type: content_type.map(String::from),
        body,
        tolerate: Vec::new(),
    }
}

/// The requests of a Kubernetes `action` with id `id` on `target`; `None` when the target
/// lacks what the action needs (the `target` guard says so) or `action` is a Docker one.
pub fn operations(action: ActionKind, id: &str, target: &Target) -> Option<Vec<HttpRequest>> {
    let pod = || Some((target.namespace.as_deref()?, target.pod.as_deref()?));
    Some(match action {
        ActionKind::QuarantinePod => {
            let (ns, name) = pod()?;
            let mut create = request(
                "POST",
                format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
                Some(JSON),
                Some(to_json(&quarantine_policy(ns, id))),
            );
            create.tolerate = vec![409];
            let label = Pod {
                metadata: ObjectMeta {
                    labels: Some(BTreeMap::from([(
                        QUARANTINE_LABEL.to_string(),
                        id.to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                spec: None,
                status: None,
            };
            vec![
                create,
                request(
                    "PATCH",
                    pod_path(ns, name),
                    Some(MERGE_PATCH),
                    Some(to_json(&label)),
                ),
            ]
        }
        ActionKind::CordonNode => vec![request(
            "PATCH",
            format!("/api/v1/nodes/{}", target.node.as_deref()?),
            Some(MERGE_PATCH),
            Some(node_patch(true)),
        )],
        ActionKind::ScaleToZero => {
            let path = scale_path(target)?;
            vec![
                request("GET", path.clone(), None, None),
                request("PATCH", path, Some(MERGE_PATCH), Some(scale_patch(0))),
            ]
        }
        ActionKind::DeletePod => {
            let (ns, name) = pod()?;
            vec![request("DELETE", pod_path(ns, name), None, None)]
        }
        ActionKind::EvictPod => {
            let (ns, name) = pod()?;
            let eviction = Eviction {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(ns.to_string()),
                    ..ObjectMeta::default()
                },
                delete_options: None,
            };
            vec![request(
                "POST",
                format!("{}/eviction", pod_path(ns, name)),
                Some(JSON),
                Some(to_json(&eviction)),
            )]
        }
        _ => return None,
    })
}

/// The undo requests of a Kubernetes action.
///
/// # Errors
///
/// [`UndoError`] for delete and evict, or a scale whose previous count is unknown.
pub fn undo(
    action: ActionKind,
    id: &str,
    target: &Target,
    memory: &Memory,
) -> Result<Vec<HttpRequest>, UndoError> {
    let missing = |missing: &'static str| UndoError::Missing {
        action: action.as_str(),
        missing,
    };
    Ok(match action {
        ActionKind::QuarantinePod => {
            let ns = target
                .namespace
                .as_deref()
                .ok_or(missing("the namespace"))?;
            let name = target.pod.as_deref().ok_or(missing("the pod"))?;
            let pointer = format!("/metadata/labels/{}", QUARANTINE_LABEL.replace('/', "~1"));
            let mut unlabel = request(
                "PATCH",
                pod_path(ns, name),
                Some(JSON_PATCH),
                Some(json!([
                    {"op": "test", "path": pointer, "value": id},
                    {"op": "remove", "path": pointer},
                ])),
            );
            // The pod may be gone (its owner replaced it): nothing to unlabel.
            unlabel.tolerate = vec![404];
            let mut delete = request(
                "DELETE",
                format!(
                    "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{}",
                    policy_name(id)
                ),
                None,
                None,
            );
            delete.tolerate = vec![404];
            vec![unlabel, delete]
        }
        ActionKind::CordonNode => vec![request(
            "PATCH",
            format!(
                "/api/v1/nodes/{}",
                target.node.as_deref().ok_or(missing("the node"))?
            ),
            Some(MERGE_PATCH),
            Some(node_patch(false)),
        )],
        ActionKind::ScaleToZero => {
            let path = scale_path(target).ok_or(missing("the owner"))?;
            let previous = memory
                .get("previous_replicas")
                .and_then(Value::as_i64)
                .and_then(|r| i32::try_from(r).ok())
                .or_else(|| target.replicas.and_then(|r| i32::try_from(r.desired).ok()))
                .ok_or(missing("the previous replica count"))?;
            vec![request(
                "PATCH",
                path,
                Some(MERGE_PATCH),
                Some(scale_patch(previous)),
            )]
        }
        ActionKind::DeletePod | ActionKind::EvictPod => {
            return Err(UndoError::Irreversible(action.as_str()))
        }
        _ => Vec::new(),
    })
}

/// Sends [`HttpRequest`]s to a Kubernetes API server.
#[derive(Debug)]
pub struct K8sExecutor {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl K8sExecutor {
    /// An executor for the API server at `base_url` (`https://10.0.0.1:6443`) with a bearer
    /// token (a ServiceAccount's), 10 s timeouts.
    pub fn new(base_url: &str, token: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout(Duration::from_secs(10))
                .build(),
        }
    }

    /// Sends one request; the body of the answer.
    ///
    /// # Errors
    ///
    /// [`ExecError::Status`] for an error status not tolerated (with the `Status` object's
    /// message), [`ExecError::Transport`] when the server cannot be reached.
    pub fn send(&self, req: &HttpRequest) -> Result<Vec<u8>, ExecError> {
        let url = format!("{}{}", self.base, req.path);
        let mut call = self
            .agent
            .request(&req.method, &url)
            .set("Authorization", &format!("Bearer {}", self.token))
            .set("Accept", "application/json");
        if let Some(kind) = &req.content_type {
            call = call.set("Content-Type", kind);
        }
        let answer = match &req.body {
            Some(body) => call.send_bytes(&serde_json::to_vec(body).unwrap_or_default()),
            None => call.call(),
        };
        let read = |response: ureq::Response| -> Vec<u8> {
            let mut bytes = Vec::new();
            // Answers are small objects; 16 MiB bounds a misbehaving server.
            let _ = std::io::Read::read_to_end(
                &mut std::io::Read::take(response.into_reader(), 16 << 20),
                &mut bytes,
            );
            bytes
        };
        match answer {
            Ok(response) => Ok(read(response)),
            Err(ureq::Error::Status(status, response)) => {
                let body = read(response);
                if req.tolerate.contains(&status) {
                    return Ok(body);
                }
                let message = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|s| s.get("message").and_then(Value::as_str).map(String::from))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(500).collect());
                Err(ExecError::Status {
                    method: req.method.clone(),
                    path: req.path.clone(),
                    status,
                    message,
                })
            }
            Err(e) => Err(ExecError::Transport {
                method: req.method.clone(),
                path: req.path.clone(),
                message: e.to_string(),
            }),
        }
    }
}

impl Executor for K8sExecutor {
    fn execute(&self, operation: &Operation) -> Result<Vec<u8>, ExecError> {
        match operation {
            Operation::Http(req) => self.send(req),
            Operation::Docker(call) => Err(ExecError::Unsupported(format!(
                "docker {:?} (the node agent runs Docker calls)",
                call.op
            ))),
        }
    }
}
