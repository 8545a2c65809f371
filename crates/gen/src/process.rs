//! Process executions inside containers, as an auditd/auditbeat-style collector on the node
//! reports them after container enrichment: ECS `event.category: [process]`, `process.*`,
//! `container.*`, `kubernetes.*`, `host.name`, `event.dataset: auditd`.
//!
//! The benign executions are what really runs in a quiet cluster: exec probes
//! (`pg_isready`, `redis-cli ping`, `grpc_health_probe`), shell-wrapped health checks with
//! `curl`/`wget`, and kube-proxy driving `iptables-restore`.

use rand::Rng;
use serde_json::{json, Value};

use super::cluster::{LogKind, Pod};
use super::logs;
use super::text::{self, Stamp};
use crate::rng::Rand;

/// `event.dataset` (and NDJSON source name) of process events.
pub(super) const DATASET: &str = "auditd";

/// One program execution.
#[derive(Debug)]
pub(super) struct Exec {
    /// `process.executable`.
    pub(super) executable: &'static str,
    /// `process.args` (`args[0]` as the caller passed it).
    pub(super) args: &'static [&'static str],
    /// `process.parent.name`.
    pub(super) parent: &'static str,
}

impl Exec {
    /// `process.name`: the executable's file name.
    fn name(&self) -> &'static str {
        self.executable
            .rsplit('/')
            .next()
            .unwrap_or(self.executable)
    }
}

/// An [`Exec`] (a `const` constructor for the tables).
pub(super) const fn exec(
    executable: &'static str,
    args: &'static [&'static str],
    parent: &'static str,
) -> Exec {
    Exec {
        executable,
        args,
        parent,
    }
}

const NGINX: &[Exec] = &[exec("/usr/sbin/nginx", &["nginx", "-t", "-q"], "sh")];
const GO_SERVICE: &[Exec] = &[exec(
    "/bin/grpc_health_probe",
    &[
        "/bin/grpc_health_probe",
        "-addr=:9090",
        "-connect-timeout=1s",
    ],
    "runc",
)];
const SPRING: &[Exec] = &[
    exec(
        "/bin/sh",
        &[
            "/bin/sh",
            "-c",
            "curl -fsS http://localhost:8081/actuator/health/liveness",
        ],
        "runc",
    ),
    exec(
        "/usr/bin/curl",
        &[
            "curl",
            "-fsS",
            "http://localhost:8081/actuator/health/liveness",
        ],
        "sh",
    ),
];
const POSTGRES: &[Exec] = &[
    exec(
        "/bin/sh",
        &[
            "/bin/sh",
            "-c",
            "exec pg_isready -U ledger -d ledger -h 127.0.0.1 -p 5432",
        ],
        "runc",
    ),
    exec(
        "/usr/lib/postgresql/16/bin/pg_isready",
        &[
            "pg_isready",
            "-U",
            "ledger",
            "-d",
            "ledger",
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
        ],
        "sh",
    ),
];
const REDIS: &[Exec] = &[exec(
    "/usr/local/bin/redis-cli",
    &["redis-cli", "ping"],
    "runc",
)];
const KUBE_PROXY: &[Exec] = &[
    exec(
        "/usr/sbin/iptables-restore",
        &[
            "iptables-restore",
            "-w",
            "5",
            "-W",
            "100000",
            "--noflush",
            "--counters",
        ],
        "kube-proxy",
    ),
    exec(
        "/usr/sbin/iptables-save",
        &["iptables-save", "-t", "nat"],
        "kube-proxy",
    ),
    exec(
        "/usr/sbin/conntrack",
        &["conntrack", "-D", "-p", "udp", "--orig-dst", "10.43.0.10"],
        "kube-proxy",
    ),
];
const BUSYBOX_WGET: &[Exec] = &[exec(
    "/bin/wget",
    &["wget", "-q", "-O", "-", "http://localhost:9090/-/healthy"],
    "sh",
)];
const GRAFANA_WGET: &[Exec] = &[exec(
    "/usr/bin/wget",
    &["wget", "-q", "-O", "-", "http://localhost:3000/api/health"],
    "sh",
)];

/// The programs that run in a pod of this workload.
fn execs_for(pod: &Pod) -> &'static [Exec] {
    match (pod.workload.log, pod.workload.name) {
        (_, "kube-proxy") => KUBE_PROXY,
        (_, "grafana") => GRAFANA_WGET,
        (LogKind::Nginx, _) => NGINX,
        (LogKind::JsonApp, _) => GO_SERVICE,
        (LogKind::Java, _) => SPRING,
        (LogKind::Postgres, _) => POSTGRES,
        (LogKind::Redis, _) => REDIS,
        _ => BUSYBOX_WGET,
    }
}

/// Builds one benign process event in a pod chosen by execution volume.
pub(super) fn event(rng: &mut Rand, pod: &Pod, micros: i64) -> Value {
    let execs = execs_for(pod);
    let chosen = &execs[rng.gen_range(0..execs.len())];
    let user = pod.workload.user;
    exec_event(rng, pod, micros, chosen, user)
}

/// The ECS process event of `exec` started by `user` in `pod` at `micros`.
pub(super) fn exec_event(rng: &mut Rand, pod: &Pod, micros: i64, exec: &Exec, user: &str) -> Value {
    let name = exec.name();
    let pid: u32 = rng.gen_range(30..32_000);
    let ppid = pid.saturating_sub(rng.gen_range(1..30)).max(1);
    let uid = match user {
        "root" => "0",
        "nobody" => "65534",
        "nonroot" => "65532",
        "postgres" | "redis" => "999",
        "nginx" => "101",
        "grafana" => "472",
        _ => "1000",
    };
    let args: Vec<Value> = exec.args.iter().map(|a| Value::from(*a)).collect();
    let process = text::object([
        ("pid", Value::from(pid)),
        ("ppid", Value::from(ppid)),
        ("name", Value::from(name)),
        ("executable", Value::from(exec.executable)),
        ("command_line", Value::from(exec.args.join(" "))),
        ("args", Value::Array(args)),
        ("working_directory", Value::from("/")),
        (
            "parent",
            text::object([
                ("pid", Value::from(ppid)),
                ("name", Value::from(exec.parent)),
            ]),
        ),
        (
            "user",
            text::object([("id", Value::from(uid)), ("name", Value::from(user))]),
        ),
    ]);
    // The pod's prepared envelope: cloning it is much cheaper than rebuilding it.
    let mut event = pod.process_template.clone();
    if let Value::Object(map) = &mut event {
        let message = format!("Process {name} (PID: {pid}) by user {user} STARTED");
        for (key, value) in [
            (
                "@timestamp",
                Value::String(Stamp::from_micros(micros).rfc3339()),
            ),
            ("message", Value::String(message)),
            ("process", process),
            ("user", text::object([("name", Value::from(user))])),
        ] {
            if let Some(slot) = map.get_mut(key) {
                *slot = value;
            }
        }
    }
    event
}

/// The ECS envelope of `pod`'s process events; [`exec_event`] fills in the placeholders.
pub(super) fn template(pod: &Pod) -> Value {
    let mut envelope = json!({
        "@timestamp": "",
        "message": "",
        "event": {
            "dataset": DATASET,
            "module": "auditd",
            "kind": "event",
            "category": ["process"],
            "type": ["start"],
            "action": "executed",
            "outcome": "success",
        },
        "process": {},
        "user": {},
        "auditd": {"data": {"syscall": "execve"}, "result": "success"},
    });
    logs::add_pod_context(&mut envelope, pod);
    envelope
}
