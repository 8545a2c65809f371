//! Who talks to the API server: controllers, kubelets, the scheduler, in-cluster service
//! accounts, people, anonymous probes, and the attacker's identities.
//!
//! Each actor carries the strings the apiserver would record for it: username, uid, groups,
//! user agent, usual source address, and the RBAC reason the authorizer gives when it allows
//! a request (the Node authorizer gives an empty reason).

/// One identity as the audit log records it.
#[derive(Debug)]
pub(super) struct Actor {
    /// `user.username`.
    pub(super) username: &'static str,
    /// `user.uid` (empty: not recorded, as for OIDC users and the anonymous user).
    pub(super) uid: &'static str,
    /// `user.groups`.
    pub(super) groups: &'static [&'static str],
    /// `userAgent`.
    pub(super) user_agent: &'static str,
    /// Usual `sourceIPs[0]`; empty when the actor runs in a pod (the pod IP is used).
    pub(super) source_ip: &'static str,
    /// `authorization.k8s.io/reason` when allowed.
    pub(super) reason: &'static str,
    /// For in-pod service-account tokens: the (namespace, workload) of the pod the token is
    /// bound to, recorded in `user.extra`.
    pub(super) bound_pod: Option<(&'static str, &'static str)>,
}

/// The control-plane host (kube-controller-manager, kube-scheduler, apiserver probes).
pub(super) const CONTROL_PLANE_IP: &str = "10.0.0.10";

const KUBE_SYSTEM_SA_GROUPS: &[&str] = &[
    "system:serviceaccounts",
    "system:serviceaccounts:kube-system",
    "system:authenticated",
];
const MONITORING_SA_GROUPS: &[&str] = &[
    "system:serviceaccounts",
    "system:serviceaccounts:monitoring",
    "system:authenticated",
];

/// A kube-controller-manager controller using its own service-account credentials
/// (`--use-service-account-credentials`).
macro_rules! controller {
    ($const:ident, $name:literal, $uid:literal) => {
        #[doc = concat!("`system:serviceaccount:kube-system:", $name, "`")]
        pub(super) const $const: Actor = Actor {
            username: concat!("system:serviceaccount:kube-system:", $name),
            uid: $uid,
            groups: KUBE_SYSTEM_SA_GROUPS,
            user_agent: concat!(
                "kube-controller-manager/v1.29.4 (linux/amd64) kubernetes/55019c8/system:serviceaccount:kube-system:",
                $name
            ),
            source_ip: CONTROL_PLANE_IP,
            reason: concat!(
                "RBAC: allowed by ClusterRoleBinding \"system:controller:",
                $name,
                "\" of ClusterRole \"system:controller:",
                $name,
                "\" to ServiceAccount \"",
                $name,
                "/kube-system\""
            ),
            bound_pod: None,
        };
    };
}

controller!(
    REPLICASET_CONTROLLER,
    "replicaset-controller",
    "25b3a6c6-2aa0-4276-a5f7-def7144a18c7"
);
controller!(
    DEPLOYMENT_CONTROLLER,
    "deployment-controller",
    "b4a6b5cc-c7af-4e88-906f-3edadc6e08ba"
);
controller!(
    ENDPOINTSLICE_CONTROLLER,
    "endpointslice-controller",
    "29652da2-ab64-4089-8107-d0acf24f97c8"
);
controller!(
    DAEMONSET_CONTROLLER,
    "daemon-set-controller",
    "8c7f1884-9333-4a45-834a-a7a387033c55"
);
controller!(
    STATEFULSET_CONTROLLER,
    "statefulset-controller",
    "8c65dc7b-c2f1-41dc-bcab-c888a8200d7a"
);
controller!(
    GC_CONTROLLER,
    "generic-garbage-collector",
    "5aa2a97c-ffe2-430e-8be7-ccd9f980830b"
);
controller!(
    HPA_CONTROLLER,
    "horizontal-pod-autoscaler",
    "0ad9c246-c6ef-45a3-a871-0c84807c1688"
);
controller!(
    NODE_CONTROLLER,
    "node-controller",
    "fe111899-ccd0-4834-bc85-a587660cfb85"
);

/// kube-controller-manager itself (leader election).
pub(super) const CONTROLLER_MANAGER: Actor = Actor {
    username: "system:kube-controller-manager",
    uid: "",
    groups: &["system:authenticated"],
    user_agent: "kube-controller-manager/v1.29.4 (linux/amd64) kubernetes/55019c8/leader-election",
    source_ip: CONTROL_PLANE_IP,
    reason: "RBAC: allowed by ClusterRoleBinding \"system:kube-controller-manager\" of ClusterRole \"system:kube-controller-manager\" to User \"system:kube-controller-manager\"",
    bound_pod: None,
};

/// kube-scheduler.
pub(super) const SCHEDULER: Actor = Actor {
    username: "system:kube-scheduler",
    uid: "",
    groups: &["system:authenticated"],
    user_agent: "kube-scheduler/v1.29.4 (linux/amd64) kubernetes/55019c8/scheduler",
    source_ip: CONTROL_PLANE_IP,
    reason: "RBAC: allowed by ClusterRoleBinding \"system:kube-scheduler\" of ClusterRole \"system:kube-scheduler\" to User \"system:kube-scheduler\"",
    bound_pod: None,
};

macro_rules! kubelet {
    ($name:literal, $ip:literal) => {
        Actor {
            username: concat!("system:node:", $name),
            uid: "",
            groups: &["system:nodes", "system:authenticated"],
            user_agent: "kubelet/v1.29.4 (linux/amd64) kubernetes/55019c8",
            source_ip: $ip,
            reason: "",
            bound_pod: None,
        }
    };
}

/// The kubelets, in [`super::cluster::NODES`] order.
pub(super) const KUBELETS: [Actor; 3] = [
    kubelet!("k8s-worker-1", "10.0.1.11"),
    kubelet!("k8s-worker-2", "10.0.1.12"),
    kubelet!("k8s-worker-3", "10.0.1.13"),
];

/// CoreDNS watching services and endpoint slices.
pub(super) const COREDNS: Actor = Actor {
    username: "system:serviceaccount:kube-system:coredns",
    uid: "fabd11c8-8a9b-4e1e-989c-8efdfadc4a61",
    groups: KUBE_SYSTEM_SA_GROUPS,
    user_agent: "coredns/v1.11.1 (linux/amd64) kubernetes/$Format",
    source_ip: "",
    reason: "RBAC: allowed by ClusterRoleBinding \"system:coredns\" of ClusterRole \"system:coredns\" to ServiceAccount \"coredns/kube-system\"",
    bound_pod: Some(("kube-system", "coredns")),
};

/// Prometheus service discovery.
pub(super) const PROMETHEUS: Actor = Actor {
    username: "system:serviceaccount:monitoring:prometheus",
    uid: "95f1d75d-83e5-47b1-bf9a-0979c3878b2d",
    groups: MONITORING_SA_GROUPS,
    user_agent: "Prometheus/2.51.2",
    source_ip: "",
    reason: "RBAC: allowed by ClusterRoleBinding \"prometheus\" of ClusterRole \"prometheus\" to ServiceAccount \"prometheus/monitoring\"",
    bound_pod: Some(("monitoring", "prometheus")),
};

/// metrics-server listing nodes.
pub(super) const METRICS_SERVER: Actor = Actor {
    username: "system:serviceaccount:kube-system:metrics-server",
    uid: "77b70137-e76b-4c25-9e5a-c7104377987c",
    groups: KUBE_SYSTEM_SA_GROUPS,
    user_agent: "metrics-server/v0.7.1 (linux/amd64) kubernetes/$Format",
    source_ip: "",
    reason: "RBAC: allowed by ClusterRoleBinding \"system:metrics-server\" of ClusterRole \"system:metrics-server\" to ServiceAccount \"metrics-server/kube-system\"",
    bound_pod: Some(("kube-system", "metrics-server")),
};

/// Grafana's dashboard sidecar (k8s-sidecar), which really does watch secrets cluster-wide.
/// Its over-broad binding is the weakness the attack scenario exploits.
pub(super) const GRAFANA: Actor = Actor {
    username: "system:serviceaccount:monitoring:grafana",
    uid: "7467d438-98fa-49a3-8cc4-41f856eb8905",
    groups: MONITORING_SA_GROUPS,
    user_agent: "OpenAPI-Generator/29.0.0/python",
    source_ip: "",
    reason: "RBAC: allowed by ClusterRoleBinding \"grafana-admin\" of ClusterRole \"cluster-admin\" to ServiceAccount \"grafana/monitoring\"",
    bound_pod: Some(("monitoring", "grafana")),
};

/// The `default` service account of `default`, after the attacker bound it to cluster-admin.
pub(super) const DEFAULT_SA: Actor = Actor {
    username: "system:serviceaccount:default:default",
    uid: "4eaad890-0b5f-4099-ae92-8a1bc8254270",
    groups: &["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
    user_agent: "kubectl/v1.29.1 (linux/amd64) kubernetes/bc401b9",
    source_ip: "198.51.100.23",
    reason: "RBAC: allowed by ClusterRoleBinding \"default-admin\" of ClusterRole \"cluster-admin\" to ServiceAccount \"default/default\"",
    bound_pod: None,
};

/// An SRE with cluster-admin through her group.
pub(super) const ALICE: Actor = Actor {
    username: "alice@corp.example",
    uid: "",
    groups: &["corp:sre", "system:authenticated"],
    user_agent: "kubectl/v1.29.3 (darwin/arm64) kubernetes/6813625",
    source_ip: "10.8.0.23",
    reason: "RBAC: allowed by ClusterRoleBinding \"sre-cluster-admin\" of ClusterRole \"cluster-admin\" to Group \"corp:sre\"",
    bound_pod: None,
};

/// A developer with `edit` in staging and `view` elsewhere.
pub(super) const BOB: Actor = Actor {
    username: "bob@corp.example",
    uid: "",
    groups: &["corp:dev", "system:authenticated"],
    user_agent: "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
    source_ip: "10.8.0.31",
    reason: "RBAC: allowed by RoleBinding \"dev-edit/staging\" of ClusterRole \"edit\" to Group \"corp:dev\"",
    bound_pod: None,
};

/// A payments on-call engineer (her laptop is the one the attacker uses).
pub(super) const CAROL: Actor = Actor {
    username: "carol@corp.example",
    uid: "",
    groups: &["corp:payments-oncall", "system:authenticated"],
    user_agent: "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625",
    source_ip: "10.8.0.57",
    reason: "RBAC: allowed by RoleBinding \"oncall-admin/payments\" of ClusterRole \"admin\" to Group \"corp:payments-oncall\"",
    bound_pod: None,
};

/// The kubelet probing the apiserver's health endpoints, unauthenticated.
pub(super) const ANONYMOUS_PROBE: Actor = Actor {
    username: "system:anonymous",
    uid: "",
    groups: &["system:unauthenticated"],
    user_agent: "kube-probe/1.29",
    source_ip: CONTROL_PLANE_IP,
    reason: "RBAC: allowed by ClusterRoleBinding \"system:public-info-viewer\" of ClusterRole \"system:public-info-viewer\" to Group \"system:unauthenticated\"",
    bound_pod: None,
};

/// An unauthenticated scanner from the internet; a debugging RoleBinding left behind lets
/// it read secrets in `default`.
pub(super) const ANONYMOUS_SCANNER: Actor = Actor {
    username: "system:anonymous",
    uid: "",
    groups: &["system:unauthenticated"],
    user_agent: "python-requests/2.31.0",
    source_ip: "198.51.100.77",
    reason: "RBAC: allowed by RoleBinding \"debug-anon/default\" of Role \"secret-reader\" to User \"system:anonymous\"",
    bound_pod: None,
};
