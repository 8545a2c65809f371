//! The benign API traffic of the cluster, weighted like a real one: leader-election and node
//! lease renewals, kubelet status updates and controllers' list/watch/update dominate; people
//! are a thin slice (reads, a rollout, an exec in staging, a denied secret read); creates are
//! rare and carry their request body.

use rand::Rng;
use serde_json::Value;

use super::actors::{self, Actor};
use super::audit::{self, Req, Target};
use super::cluster::{pick, Cluster, Controller, Pod, NODES};
use super::objects;
use super::text::Stamp;
use crate::rng::Rand;

/// Kinds of benign requests and their relative frequency.
#[derive(Debug, Clone, Copy)]
enum Activity {
    LeaderLease,
    NodeLease,
    NodeStatus,
    KubeletPodStatus,
    KubeletObjectWatch,
    ControllerWatch,
    ControllerWrite,
    SchedulerWatch,
    ServiceDiscovery,
    HealthProbe,
    HumanRead,
    HumanDenied,
    HumanRollout,
    HumanExecStaging,
    ControllerCreatesPod,
    HumanCreatesRoleBinding,
    NotFound,
}

const MIX: &[(u32, Activity)] = &[
    (130, Activity::LeaderLease),
    (150, Activity::NodeLease),
    (60, Activity::NodeStatus),
    (45, Activity::KubeletPodStatus),
    (60, Activity::KubeletObjectWatch),
    (140, Activity::ControllerWatch),
    (170, Activity::ControllerWrite),
    (35, Activity::SchedulerWatch),
    (70, Activity::ServiceDiscovery),
    (30, Activity::HealthProbe),
    (50, Activity::HumanRead),
    (4, Activity::HumanDenied),
    (6, Activity::HumanRollout),
    (3, Activity::HumanExecStaging),
    (12, Activity::ControllerCreatesPod),
    (2, Activity::HumanCreatesRoleBinding),
    (8, Activity::NotFound),
];

/// Controllers, the resources they watch, and the status they write.
const CONTROLLERS: &[(&Actor, &[&audit::Res], Option<Controller>)] = &[
    (
        &actors::REPLICASET_CONTROLLER,
        &[&audit::REPLICASETS, &audit::PODS],
        Some(Controller::Deployment),
    ),
    (
        &actors::DEPLOYMENT_CONTROLLER,
        &[&audit::DEPLOYMENTS, &audit::REPLICASETS],
        Some(Controller::Deployment),
    ),
    (
        &actors::ENDPOINTSLICE_CONTROLLER,
        &[&audit::ENDPOINTSLICES, &audit::SERVICES, &audit::PODS],
        None,
    ),
    (
        &actors::DAEMONSET_CONTROLLER,
        &[&audit::DAEMONSETS, &audit::CONTROLLERREVISIONS],
        Some(Controller::DaemonSet),
    ),
    (
        &actors::STATEFULSET_CONTROLLER,
        &[&audit::STATEFULSETS, &audit::PVCS],
        Some(Controller::StatefulSet),
    ),
    (
        &actors::GC_CONTROLLER,
        &[
            &audit::REPLICASETS,
            &audit::PODS,
            &audit::CONTROLLERREVISIONS,
            &audit::ENDPOINTSLICES,
        ],
        None,
    ),
    (
        &actors::HPA_CONTROLLER,
        &[&audit::HPAS, &audit::DEPLOYMENTS],
        Some(Controller::Deployment),
    ),
    (
        &actors::NODE_CONTROLLER,
        &[&audit::NODES, &audit::PODS],
        None,
    ),
];

const WATCH_QUERIES: &[&str] = &[
    "allowWatchBookmarks=true&resourceVersion=4817239&timeout=8m27s&timeoutSeconds=507&watch=true",
    "allowWatchBookmarks=true&resourceVersion=4817302&timeout=5m41s&timeoutSeconds=341&watch=true",
    "allowWatchBookmarks=true&resourceVersion=4817355&timeout=9m2s&timeoutSeconds=542&watch=true",
];

/// Builds one benign audit event.
pub(super) fn event(rng: &mut Rand, cluster: &Cluster, micros: i64) -> Value {
    let activity = *pick(rng, MIX);
    let pod = cluster.any_pod(rng);
    let namespace = pod.workload.namespace;
    let node = rng.gen_range(0..NODES.len());
    let kubelet = &actors::KUBELETS[node];
    let watch_query = WATCH_QUERIES[rng.gen_range(0..WATCH_QUERIES.len())];
    // A request borrows the names and queries it refers to; the ones built here live in these.
    let object_name: String;
    let query: String;
    let req = match activity {
        Activity::LeaderLease => {
            let (actor, name) = if rng.gen_bool(0.5) {
                (&actors::CONTROLLER_MANAGER, "kube-controller-manager")
            } else {
                (&actors::SCHEDULER, "kube-scheduler")
            };
            let verb = if rng.gen_bool(0.5) { "get" } else { "update" };
            let mut req = Req::object(actor, verb, &audit::LEASES, Some("kube-system"), Some(name));
            req.user_agent = Some(if name == "kube-scheduler" {
                "kube-scheduler/v1.29.4 (linux/amd64) kubernetes/55019c8/leader-election"
            } else {
                actor.user_agent
            });
            req
        }
        Activity::NodeLease => {
            let verb = if rng.gen_bool(0.85) { "update" } else { "get" };
            Req::object(
                kubelet,
                verb,
                &audit::LEASES,
                Some("kube-node-lease"),
                Some(NODES[node].name),
            )
            .query(if verb == "get" { "timeout=10s" } else { "" })
        }
        Activity::NodeStatus => {
            if rng.gen_bool(0.5) {
                Req::object(kubelet, "get", &audit::NODES, None, Some(NODES[node].name))
                    .query("resourceVersion=0&timeout=10s")
            } else {
                let mut req = Req::object(
                    kubelet,
                    "patch",
                    &audit::NODES,
                    None,
                    Some(NODES[node].name),
                )
                .sub("status");
                req.request_object = Some(objects::node_status_patch(
                    &Stamp::from_micros(micros).rfc3339(),
                ));
                req
            }
        }
        Activity::KubeletPodStatus => {
            let pod = cluster.pod_on_node(rng, node);
            let kubelet = &actors::KUBELETS[pod.node];
            let mut req = Req::object(
                kubelet,
                "patch",
                &audit::PODS,
                Some(pod.workload.namespace),
                Some(&pod.name),
            )
            .sub("status");
            let started =
                Stamp::from_micros(micros - rng.gen_range(1_000_000..600_000_000)).rfc3339();
            req.request_object = Some(objects::pod_status_patch(pod, &started));
            req
        }
        Activity::KubeletObjectWatch => {
            let kubelet = &actors::KUBELETS[pod.node];
            let res = if rng.gen_bool(0.6) {
                object_name = "kube-root-ca.crt".to_string();
                &audit::CONFIGMAPS
            } else {
                object_name = format!("{}-tls", pod.workload.name);
                &audit::SECRETS
            };
            if rng.gen_bool(0.7) {
                query = format!(
                    "allowWatchBookmarks=true&fieldSelector=metadata.name%3D{object_name}&resourceVersion={}&timeout=7m43s&timeoutSeconds=463&watch=true",
                    audit::resource_version(micros)
                );
                Req::object(kubelet, "watch", res, Some(namespace), None).query(&query)
            } else {
                Req::object(kubelet, "get", res, Some(namespace), Some(&object_name))
            }
        }
        Activity::ControllerWatch => {
            let (actor, resources, _) = CONTROLLERS[rng.gen_range(0..CONTROLLERS.len())];
            let res = resources[rng.gen_range(0..resources.len())];
            if rng.gen_bool(0.8) {
                Req::object(actor, "watch", res, None, None).query(watch_query)
            } else {
                Req::object(actor, "list", res, None, None).query("limit=500&resourceVersion=0")
            }
        }
        Activity::ControllerWrite => {
            let (actor, resources, owner) = CONTROLLERS[rng.gen_range(0..CONTROLLERS.len())];
            let pod = owner.map_or(pod, |kind| pod_of_kind(rng, cluster, kind));
            let res = resources[0];
            object_name = object_name_for(res, pod);
            let conflict = rng.gen_bool(0.03);
            let (verb, sub) = match res.name {
                "endpointslices" | "nodes" | "controllerrevisions" => ("update", None),
                "horizontalpodautoscalers" => ("update", Some("status")),
                _ => ("update", Some("status")),
            };
            let verb = if rng.gen_bool(0.25) { "get" } else { verb };
            let mut req = Req::object(actor, verb, res, namespace_of(res, pod), Some(&object_name));
            if let Some(sub) = sub.filter(|_| verb != "get") {
                req = req.sub(sub);
            }
            if conflict && verb == "update" {
                req = req.code(409);
            }
            req
        }
        Activity::SchedulerWatch => {
            let res = [&audit::PODS, &audit::NODES, &audit::PVCS][rng.gen_range(0..3)];
            Req::object(&actors::SCHEDULER, "watch", res, None, None).query(watch_query)
        }
        Activity::ServiceDiscovery => {
            let (actor, resources): (&Actor, &[&audit::Res]) = match rng.gen_range(0..10) {
                0..=3 => (
                    &actors::COREDNS,
                    &[&audit::ENDPOINTSLICES, &audit::SERVICES, &audit::NAMESPACES],
                ),
                4..=7 => (
                    &actors::PROMETHEUS,
                    &[
                        &audit::PODS,
                        &audit::ENDPOINTS,
                        &audit::SERVICES,
                        &audit::NODES,
                    ],
                ),
                8 => (&actors::METRICS_SERVER, &[&audit::NODES, &audit::PODS]),
                _ => (&actors::GRAFANA, &[&audit::CONFIGMAPS, &audit::SECRETS]),
            };
            let res = resources[rng.gen_range(0..resources.len())];
            if rng.gen_bool(0.75) {
                Req::object(actor, "watch", res, None, None).query(watch_query)
            } else {
                Req::object(actor, "list", res, None, None).query("limit=500&resourceVersion=0")
            }
        }
        Activity::HealthProbe => Req {
            actor: &actors::ANONYMOUS_PROBE,
            verb: "get",
            target: Target::Path(["/livez", "/readyz", "/readyz"][rng.gen_range(0..3)]),
            query: "",
            code: 200,
            request_object: None,
            source_ip: None,
            user_agent: None,
        },
        Activity::HumanRead => {
            let actor = [&actors::ALICE, &actors::BOB, &actors::CAROL][rng.gen_range(0..3)];
            // Each person reads where their role binding lets them.
            let pod = if std::ptr::eq(actor, &actors::CAROL) {
                cluster.pod_of("payments", "payments-api")
            } else if std::ptr::eq(actor, &actors::BOB) {
                cluster.pod_of("staging", ["web", "api", "checkout"][rng.gen_range(0..3)])
            } else {
                pod
            };
            let namespace = pod.workload.namespace;
            match rng.gen_range(0..10) {
                0..=3 => Req::object(actor, "list", &audit::PODS, Some(namespace), None)
                    .query("limit=500"),
                4..=5 => Req::object(actor, "get", &audit::PODS, Some(namespace), Some(&pod.name)),
                6 => Req::object(actor, "get", &audit::PODS, Some(namespace), Some(&pod.name))
                    .sub("log")
                    .query("container=app&follow=true&tailLines=100"),
                7 => Req::object(actor, "list", &audit::EVENTS, Some(namespace), None)
                    .query("limit=500"),
                _ => Req::object(actor, "list", &audit::DEPLOYMENTS, Some(namespace), None)
                    .query("limit=500"),
            }
        }
        Activity::HumanDenied => {
            object_name = format!("{}-tls", pod.workload.name);
            Req::object(
                &actors::BOB,
                "get",
                &audit::SECRETS,
                Some("prod"),
                Some(&object_name),
            )
            .code(403)
        }
        Activity::HumanRollout => {
            let pod = pod_of_kind(rng, cluster, Controller::Deployment);
            Req::object(
                &actors::ALICE,
                "patch",
                &audit::DEPLOYMENTS,
                Some(pod.workload.namespace),
                Some(pod.workload.name),
            )
            .query("fieldManager=kubectl-rollout")
        }
        Activity::HumanExecStaging => {
            let pod = cluster.pod_of("staging", "api");
            query = format!(
                "command=sh&container={}&stdin=true&stdout=true&tty=true",
                pod.workload.name
            );
            Req::object(
                &actors::BOB,
                "create",
                &audit::PODS,
                Some("staging"),
                Some(&pod.name),
            )
            .sub("exec")
            .query(&query)
            .code(101)
        }
        Activity::ControllerCreatesPod => {
            let pod = cluster.any_pod(rng);
            let actor = match pod.workload.controller {
                Controller::Deployment => &actors::REPLICASET_CONTROLLER,
                Controller::StatefulSet => &actors::STATEFULSET_CONTROLLER,
                Controller::DaemonSet => &actors::DAEMONSET_CONTROLLER,
            };
            let mut req = Req::object(
                actor,
                "create",
                &audit::PODS,
                Some(pod.workload.namespace),
                None,
            );
            req.request_object = Some(objects::pod_from_controller(rng, pod));
            req
        }
        Activity::HumanCreatesRoleBinding => {
            let mut req = Req::object(
                &actors::ALICE,
                "create",
                &audit::ROLEBINDINGS,
                Some("staging"),
                None,
            )
            .query("fieldManager=kubectl-create&fieldValidation=Strict");
            req.request_object = Some(objects::role_binding(
                "dev-view", "staging", "corp:dev", "view",
            ));
            req
        }
        Activity::NotFound => {
            object_name = format!("{}-{}", pod.workload.name, super::text::k8s_suffix(rng, 10));
            Req::object(
                &actors::GC_CONTROLLER,
                "get",
                &audit::REPLICASETS,
                Some(namespace),
                Some(&object_name),
            )
            .code(404)
        }
    };
    audit::build(rng, cluster, req, micros)
}

/// A pod whose workload is of `kind` (the table has at least one of each kind).
fn pod_of_kind<'c>(rng: &mut Rand, cluster: &'c Cluster, kind: Controller) -> &'c Pod {
    for _ in 0..16 {
        let pod = cluster.any_pod(rng);
        if pod.workload.controller == kind {
            return pod;
        }
    }
    cluster
        .pods
        .iter()
        .find(|p| p.workload.controller == kind)
        .unwrap_or(&cluster.pods[0])
}

/// The name of the object of `res` that manages or serves `pod`.
fn object_name_for(res: &audit::Res, pod: &Pod) -> String {
    match res.name {
        "replicasets" | "controllerrevisions" => pod.owner_name(),
        "endpointslices" => format!("{}-{}", pod.workload.name, &pod.template_hash[..5]),
        "nodes" => pod.node().name.to_string(),
        "pods" => pod.name.clone(),
        _ => pod.workload.name.to_string(),
    }
}

fn namespace_of<'a>(res: &audit::Res, pod: &'a Pod) -> Option<&'a str> {
    match res.name {
        "nodes" | "namespaces" => None,
        _ => Some(pod.workload.namespace),
    }
}
