//! The simulated cluster: three nodes, six namespaces and the workloads running in them.
//!
//! The topology is fixed (a table below); only the generated parts (pod name suffixes, uids,
//! container ids, pod IPs, node placement) come from the seed, once, in [`Cluster::new`].
//! Every event the generator emits refers to these pods, so the corpus is internally
//! consistent: a pod's logs, its process events and the audit events that touch it share the
//! same names, ids and node.

use rand::Rng;
use serde_json::Value;

use super::text;

/// A worker node.
#[derive(Debug)]
pub(super) struct Node {
    /// Node name, as in `system:node:<name>`.
    pub(super) name: &'static str,
    /// Node address on the cluster network.
    pub(super) ip: &'static str,
}

/// The three worker nodes.
pub(super) const NODES: [Node; 3] = [
    Node {
        name: "k8s-worker-1",
        ip: "10.0.1.11",
    },
    Node {
        name: "k8s-worker-2",
        ip: "10.0.1.12",
    },
    Node {
        name: "k8s-worker-3",
        ip: "10.0.1.13",
    },
];

/// What owns a workload's pods; decides pod naming and which controller acts on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Controller {
    /// `<name>-<template hash>-<suffix>`, via a ReplicaSet.
    Deployment,
    /// `<name>-<ordinal>`.
    StatefulSet,
    /// `<name>-<suffix>`, one pod per node.
    DaemonSet,
}

/// What a workload's container prints; one log builder per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LogKind {
    /// nginx combined access log (plus an occasional error-log line).
    Nginx,
    /// A Go service logging JSON objects (zap style).
    JsonApp,
    /// A Spring Boot service (logback pattern), with stack traces on errors.
    Java,
    /// PostgreSQL's stderr log.
    Postgres,
    /// CoreDNS query log.
    CoreDns,
    /// Kubernetes components in klog format.
    Klog,
    /// Prometheus ecosystem logfmt.
    Logfmt,
    /// Grafana logfmt with request fields.
    Grafana,
    /// Redis server log.
    Redis,
}

/// A workload: one container image running as one or more pods.
#[derive(Debug)]
pub(super) struct Workload {
    /// Namespace.
    pub(super) namespace: &'static str,
    /// Deployment/StatefulSet/DaemonSet name; also the container name and `app` label.
    pub(super) name: &'static str,
    /// Owner kind.
    pub(super) controller: Controller,
    /// Pods (DaemonSets: one per node).
    pub(super) replicas: usize,
    /// Image repository.
    pub(super) image: &'static str,
    /// Image tag.
    pub(super) tag: &'static str,
    /// Container port.
    pub(super) port: u16,
    /// Log format.
    pub(super) log: LogKind,
    /// Relative log volume of each pod.
    pub(super) log_weight: u32,
    /// Relative volume of process executions (exec probes, helpers) in each pod.
    pub(super) exec_weight: u32,
    /// The user the container's processes run as.
    pub(super) user: &'static str,
}

const fn workload(
    (namespace, name): (&'static str, &'static str),
    (controller, replicas): (Controller, usize),
    (image, tag): (&'static str, &'static str),
    port: u16,
    log: LogKind,
    (log_weight, exec_weight): (u32, u32),
    user: &'static str,
) -> Workload {
    Workload {
        namespace,
        name,
        controller,
        replicas,
        image,
        tag,
        port,
        log,
        log_weight,
        exec_weight,
        user,
    }
}

use Controller::{DaemonSet, Deployment, StatefulSet};
use LogKind::{CoreDns, Grafana, Java, JsonApp, Klog, Logfmt, Nginx, Postgres, Redis};

/// The workloads: 17 of them, 28 pods. Weights are (logs, process executions) per pod.
#[rustfmt::skip]
pub(super) const WORKLOADS: &[Workload] = &[
    workload(("prod", "web"), (Deployment, 3), ("nginx", "1.25.3"), 8080, Nginx, (12, 1), "nginx"),
    workload(("prod", "api"), (Deployment, 3), ("ghcr.io/corp-example/api", "2.14.1"), 8080, JsonApp, (8, 3), "nonroot"),
    workload(("prod", "checkout"), (Deployment, 2), ("ghcr.io/corp-example/checkout", "4.2.0"), 8080, Java, (5, 3), "spring"),
    workload(("prod", "redis"), (StatefulSet, 1), ("redis", "7.2.4"), 6379, Redis, (1, 4), "redis"),
    workload(("staging", "web"), (Deployment, 1), ("nginx", "1.25.3"), 8080, Nginx, (3, 1), "nginx"),
    workload(("staging", "api"), (Deployment, 1), ("ghcr.io/corp-example/api", "2.15.0-rc.1"), 8080, JsonApp, (2, 3), "nonroot"),
    workload(("staging", "checkout"), (Deployment, 1), ("ghcr.io/corp-example/checkout", "4.3.0-rc.2"), 8080, Java, (1, 3), "spring"),
    workload(("payments", "payments-api"), (Deployment, 2), ("ghcr.io/corp-example/payments-api", "1.8.3"), 8443, Java, (4, 3), "spring"),
    workload(("payments", "payments-gateway"), (Deployment, 1), ("nginx", "1.25.3"), 8443, Nginx, (5, 1), "nginx"),
    workload(("payments", "ledger-db"), (StatefulSet, 1), ("postgres", "16.2"), 5432, Postgres, (3, 5), "postgres"),
    workload(("kube-system", "coredns"), (Deployment, 2), ("registry.k8s.io/coredns/coredns", "v1.11.1"), 53, CoreDns, (3, 0), "root"),
    workload(("kube-system", "kube-proxy"), (DaemonSet, 3), ("registry.k8s.io/kube-proxy", "v1.29.4"), 10256, Klog, (1, 3), "root"),
    workload(("kube-system", "metrics-server"), (Deployment, 1), ("registry.k8s.io/metrics-server/metrics-server", "v0.7.1"), 10250, Klog, (1, 0), "nonroot"),
    workload(("monitoring", "prometheus"), (StatefulSet, 1), ("quay.io/prometheus/prometheus", "v2.51.2"), 9090, Logfmt, (2, 2), "nobody"),
    workload(("monitoring", "grafana"), (Deployment, 1), ("grafana/grafana", "10.4.2"), 3000, Grafana, (1, 1), "grafana"),
    workload(("monitoring", "node-exporter"), (DaemonSet, 3), ("quay.io/prometheus/node-exporter", "v1.8.0"), 9100, Logfmt, (1, 0), "nobody"),
    workload(("default", "hello"), (Deployment, 1), ("nginx", "1.25.3"), 8080, Nginx, (1, 1), "nginx"),
];

/// One running pod (with a single container).
#[derive(Debug)]
pub(super) struct Pod {
    /// Its workload.
    pub(super) workload: &'static Workload,
    /// Pod name.
    pub(super) name: String,
    /// Pod uid.
    pub(super) uid: String,
    /// The owning ReplicaSet/StatefulSet/DaemonSet revision hash (`pod-template-hash` or
    /// `controller-revision-hash` label).
    pub(super) template_hash: String,
    /// 64-hex container id (containerd).
    pub(super) container_id: String,
    /// Index into [`NODES`].
    pub(super) node: usize,
    /// Pod IP.
    pub(super) ip: String,
    /// The JSON envelope of this pod's log events (see `logs::template`).
    pub(super) log_template: Value,
    /// The JSON envelope of this pod's process events (see `process::template`).
    pub(super) process_template: Value,
}

impl Pod {
    /// The node the pod runs on.
    pub(super) fn node(&self) -> &'static Node {
        &NODES[self.node % NODES.len()]
    }

    /// The name of the owning ReplicaSet (Deployments) or of the owner itself.
    pub(super) fn owner_name(&self) -> String {
        match self.workload.controller {
            Controller::Deployment => format!("{}-{}", self.workload.name, self.template_hash),
            Controller::StatefulSet | Controller::DaemonSet => self.workload.name.to_string(),
        }
    }
}

/// All pods plus the cumulative weights used to pick one per event kind.
#[derive(Debug)]
pub(super) struct Cluster {
    /// Every pod, in [`WORKLOADS`] order.
    pub(super) pods: Vec<Pod>,
    log_cumulative: Vec<u32>,
    exec_cumulative: Vec<u32>,
}

impl Cluster {
    /// Instantiates the pods of every workload; `envelopes` prepares each pod's JSON
    /// envelopes (of its log events, of its process events) once its identity is drawn.
    pub(super) fn new<R: Rng>(rng: &mut R, envelopes: impl Fn(&Pod) -> (Value, Value)) -> Self {
        let mut pods = Vec::new();
        let mut next_host = [10u8; 3];
        let mut round_robin = 0usize;
        for workload in WORKLOADS {
            // `pod-template-hash` (Deployments) or `controller-revision-hash` (the others).
            let template_hash = text::k8s_suffix(rng, 10);
            for replica in 0..workload.replicas {
                let node = match workload.controller {
                    Controller::DaemonSet => replica % NODES.len(),
                    Controller::Deployment | Controller::StatefulSet => {
                        round_robin += 1;
                        (round_robin + rng.gen_range(0..2)) % NODES.len()
                    }
                };
                let name = match workload.controller {
                    Controller::Deployment => format!(
                        "{}-{}-{}",
                        workload.name,
                        template_hash,
                        text::k8s_suffix(rng, 5)
                    ),
                    Controller::StatefulSet => format!("{}-{}", workload.name, replica),
                    Controller::DaemonSet => {
                        format!("{}-{}", workload.name, text::k8s_suffix(rng, 5))
                    }
                };
                next_host[node] = next_host[node].wrapping_add(rng.gen_range(1..7));
                pods.push(Pod {
                    workload,
                    name,
                    uid: text::uuid(rng),
                    template_hash: template_hash.clone(),
                    container_id: text::hex(rng, 64),
                    node,
                    ip: format!("10.42.{}.{}", node, next_host[node]),
                    log_template: Value::Null,
                    process_template: Value::Null,
                });
            }
        }
        for pod in &mut pods {
            (pod.log_template, pod.process_template) = envelopes(pod);
        }
        let log_cumulative = cumulative(pods.iter().map(|p| p.workload.log_weight));
        let exec_cumulative = cumulative(pods.iter().map(|p| p.workload.exec_weight));
        Self {
            pods,
            log_cumulative,
            exec_cumulative,
        }
    }

    /// Any pod, uniformly.
    pub(super) fn any_pod<R: Rng>(&self, rng: &mut R) -> &Pod {
        &self.pods[rng.gen_range(0..self.pods.len())]
    }

    /// A pod chosen by log volume.
    pub(super) fn pod_for_logs<R: Rng>(&self, rng: &mut R) -> &Pod {
        &self.pods[pick_cumulative(rng, &self.log_cumulative)]
    }

    /// A pod chosen by process-execution volume.
    pub(super) fn pod_for_exec<R: Rng>(&self, rng: &mut R) -> &Pod {
        &self.pods[pick_cumulative(rng, &self.exec_cumulative)]
    }

    /// A pod running on `node`, or any pod if none runs there.
    pub(super) fn pod_on_node<R: Rng>(&self, rng: &mut R, node: usize) -> &Pod {
        for _ in 0..8 {
            let pod = self.any_pod(rng);
            if pod.node == node {
                return pod;
            }
        }
        self.any_pod(rng)
    }

    /// The first pod of the workload `name` in `namespace`.
    ///
    /// # Panics
    /// Only if the static [`WORKLOADS`] table loses that workload, which the tests catch.
    pub(super) fn pod_of(&self, namespace: &str, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.workload.namespace == namespace && p.workload.name == name)
            .unwrap_or(&self.pods[0])
    }
}

fn cumulative(weights: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut total = 0u32;
    weights
        .map(|w| {
            total += w;
            total
        })
        .collect()
}

/// Index of the bucket a uniform draw falls into, given cumulative weights.
fn pick_cumulative<R: Rng>(rng: &mut R, cumulative: &[u32]) -> usize {
    let total = cumulative.last().copied().unwrap_or(0);
    if total == 0 {
        return 0;
    }
    let draw = rng.gen_range(0..total);
    cumulative.partition_point(|&c| c <= draw)
}

/// Picks an item from a small `(weight, item)` table (linear scan: tables here are short).
pub(super) fn pick<'a, R: Rng, T>(rng: &mut R, table: &'a [(u32, T)]) -> &'a T {
    let total: u32 = table.iter().map(|(w, _)| w).sum();
    let mut draw = rng.gen_range(0..total.max(1));
    for (weight, item) in table {
        if draw < *weight {
            return item;
        }
        draw -= weight;
    }
    &table[table.len() - 1].1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Xoshiro256pp;

    #[test]
    fn topology_has_six_namespaces_and_about_thirty_pods() {
        let mut rng = Xoshiro256pp::seed_from_u64(1);
        let cluster = Cluster::new(&mut rng, crate::envelopes);
        let mut namespaces: Vec<&str> = WORKLOADS.iter().map(|w| w.namespace).collect();
        namespaces.dedup();
        namespaces.sort_unstable();
        namespaces.dedup();
        assert_eq!(
            namespaces,
            [
                "default",
                "kube-system",
                "monitoring",
                "payments",
                "prod",
                "staging"
            ]
        );
        assert!(
            (25..=35).contains(&cluster.pods.len()),
            "{}",
            cluster.pods.len()
        );
        let mut names: Vec<&str> = cluster.pods.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cluster.pods.len(), "pod names are unique");
    }

    #[test]
    fn daemonsets_cover_every_node() {
        let mut rng = Xoshiro256pp::seed_from_u64(2);
        let cluster = Cluster::new(&mut rng, crate::envelopes);
        let mut nodes: Vec<usize> = cluster
            .pods
            .iter()
            .filter(|p| p.workload.name == "kube-proxy")
            .map(|p| p.node)
            .collect();
        nodes.sort_unstable();
        assert_eq!(nodes, [0, 1, 2]);
    }

    #[test]
    fn weighted_picks_follow_weights_and_skip_zero() {
        let mut rng = Xoshiro256pp::seed_from_u64(3);
        let table = [(0u32, "never"), (1, "rare"), (9, "common")];
        let mut common = 0;
        for _ in 0..10_000 {
            let item = *pick(&mut rng, &table);
            assert_ne!(item, "never");
            if item == "common" {
                common += 1;
            }
        }
        assert!((8_700..9_300).contains(&common), "{common}");
        let cumulative = cumulative([0u32, 3, 0, 1].into_iter());
        for _ in 0..1_000 {
            let index = pick_cumulative(&mut rng, &cumulative);
            assert!(index == 1 || index == 3, "{index}");
        }
    }

    #[test]
    fn pod_of_finds_named_workloads() {
        let mut rng = Xoshiro256pp::seed_from_u64(4);
        let cluster = Cluster::new(&mut rng, crate::envelopes);
        for workload in WORKLOADS {
            let pod = cluster.pod_of(workload.namespace, workload.name);
            assert_eq!(pod.workload.name, workload.name);
            assert_eq!(pod.workload.namespace, workload.namespace);
        }
    }
}
