//! Containment end to end: the exact requests against golden files, and their sequence
//! against a local HTTP server that implements the subset of the Kubernetes API they use
//! (validating every body by deserializing it into the `k8s-openapi` types, answering 404,
//! 409 and 422 where the API server does).
//!
//! `UPDATE_GOLDEN=1 cargo test -p crowsnest-respond --test containment` rewrites the golden
//! files (review the diff).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crowsnest_model::{Alert, Severity};
use crowsnest_respond::contain::k8s::{self, K8sExecutor};
use crowsnest_respond::contain::{
    run_operations, ActionKind, ActionSpec, CircuitBreaker, Match, Memory, Mode, NoInventory,
    Operation, PlannedAction, Planner, Playbook, RespondConfig, Verdict,
};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::Eviction;
use serde_json::{json, Value};

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_765_000_000, 0).expect("time")
}

fn alert(fields: &[(&str, &str)]) -> Alert {
    Alert {
        id: "01JALERT".into(),
        rule_id: "reverse-shell".into(),
        title: "Reverse shell in a container".into(),
        level: Severity::Critical,
        tags: vec![],
        techniques: vec![],
        entity: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        event_ids: vec![],
        count: 1,
        first_seen: at(),
        last_seen: at(),
        fold_key: "k".into(),
        correlation: None,
    }
}

const POD: [(&str, &str); 7] = [
    ("kubernetes.namespace", "prod"),
    ("kubernetes.pod.name", "web-7d4b9c6f5-x2kq9"),
    ("kubernetes.node.name", "node-1"),
    ("kubernetes.owner.kind", "Deployment"),
    ("kubernetes.owner.name", "web"),
    ("kubernetes.replicas.desired", "3"),
    ("kubernetes.replicas.ready", "3"),
];

fn plan(action: ActionKind, fields: &[(&str, &str)]) -> PlannedAction {
    let config = RespondConfig {
        playbooks: vec![Playbook {
            name: "golden".into(),
            matches: Match::default(),
            actions: vec![ActionSpec {
                action,
                mode: Mode::Approve,
                ttl_secs: Some(600),
            }],
            ttl_secs: None,
        }],
        ..RespondConfig::default()
    };
    let mut breaker = CircuitBreaker::in_memory(&config.guards);
    let mut plans =
        Planner::new(config).plan(&alert(fields), None, &NoInventory, &mut breaker, at());
    assert_eq!(plans.len(), 1);
    plans.remove(0)
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"))
}

fn check_golden(name: &str, actual: &Value) {
    check_golden_text(
        &golden_path(name),
        &(serde_json::to_string_pretty(actual).expect("json") + "\n"),
    );
}

fn check_golden_text(path: &std::path::Path, text: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(path, text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        text,
        want,
        "{} differs (UPDATE_GOLDEN=1 rewrites it; review the diff)",
        path.display()
    );
}

#[test]
fn requests_match_the_golden_files() {
    let memory = Memory::from([("previous_replicas".to_string(), json!(3))]);
    for action in [
        ActionKind::QuarantinePod,
        ActionKind::CordonNode,
        ActionKind::ScaleToZero,
        ActionKind::DeletePod,
        ActionKind::EvictPod,
        ActionKind::Pause,
        ActionKind::Quarantine,
        ActionKind::Stop,
        ActionKind::Kill,
    ] {
        let fields: Vec<(&str, &str)> = if action.is_docker() {
            vec![
                ("container.id", "4f2a9c1b7e3d"),
                ("container.name", "shop-web"),
                ("host.name", "node-1"),
            ]
        } else {
            POD.to_vec()
        };
        let planned = plan(action, &fields);
        assert_ne!(planned.decision.verdict, Verdict::Refused, "{action:?}");
        let undo = match planned.undo_operations(&memory) {
            Ok(ops) => serde_json::to_value(ops).expect("json"),
            Err(e) => json!({"none": e.to_string()}),
        };
        let golden = json!({
            "action": action,
            "id": planned.id,
            "operations": planned.operations,
            "undo": undo,
        });
        check_golden(action.as_str(), &golden);
    }
}

#[test]
fn the_quarantine_policy_is_a_valid_deny_all_policy_for_that_label_only() {
    let policy = k8s::quarantine_policy("prod", "act-1");
    let value = serde_json::to_value(&policy).expect("json");
    check_golden("network_policy", &value);
    // The same object as the YAML `kubectl apply -f` takes, and back.
    let yaml = yaml_serde::to_string(&policy).expect("yaml");
    check_golden_text(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/network_policy.yaml"),
        &yaml,
    );
    let from_yaml: NetworkPolicy = yaml_serde::from_str(&yaml).expect("YAML is a NetworkPolicy");
    assert_eq!(from_yaml, policy);
    let back: NetworkPolicy = serde_json::from_value(value).expect("a NetworkPolicy");
    let spec = back.spec.expect("spec");
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string(), "Egress".to_string()][..])
    );
    assert!(
        spec.ingress.is_none() && spec.egress.is_none(),
        "no rule: deny all"
    );
    assert_eq!(
        spec.pod_selector.and_then(|s| s.match_labels),
        Some(BTreeMap::from([(
            k8s::QUARANTINE_LABEL.to_string(),
            "act-1".to_string()
        )]))
    );
    assert_eq!(back.metadata.namespace.as_deref(), Some("prod"));
}

// ---------------------------------------------------------------------------------------
// A local API server for the subset of the Kubernetes API the actions use.

#[derive(Default)]
struct Cluster {
    pods: BTreeMap<(String, String), Value>,
    nodes: BTreeMap<String, Value>,
    scales: BTreeMap<String, i64>,
    policies: BTreeMap<(String, String), Value>,
    seen: Vec<String>,
}

struct ApiServer {
    url: String,
    cluster: Arc<Mutex<Cluster>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const TOKEN: &str = "test-token";

impl ApiServer {
    fn start(cluster: Cluster) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let cluster = Arc::new(Mutex::new(cluster));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (cluster, stop) = (cluster.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => serve(stream, &cluster),
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            url,
            cluster,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<String> {
        std::mem::take(&mut self.cluster.lock().expect("lock").seen)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, cluster: &Mutex<Cluster>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (status, answer) = {
        let mut cluster = cluster.lock().expect("lock");
        cluster.seen.push(format!("{method} {path}"));
        if headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}")) {
            status_object(401, "Unauthorized", "Unauthorized")
        } else {
            handle(
                &mut cluster,
                &method,
                &path,
                headers.get("content-type").map(String::as_str),
                &body,
            )
        }
    };
    let text = answer.to_string();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Bad Request",
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

fn status_object(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    if let Value::Object(patch) = patch {
        if !target.is_object() {
            *target = json!({});
        }
        let map = target.as_object_mut().expect("object");
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// RFC 6902 JSON patch, `test` and `remove` only (what the undo uses).
fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().ok_or("a JSON patch is an array")? {
        let path = op["path"].as_str().ok_or("op without path")?;
        match op["op"].as_str() {
            Some("test") => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test failed at {path}"));
                }
            }
            Some("remove") => {
                let (parent, last) = path.rsplit_once('/').ok_or("bad path")?;
                let key = last.replace("~1", "/").replace("~0", "~");
                target
                    .pointer_mut(parent)
                    .and_then(Value::as_object_mut)
                    .and_then(|m| m.remove(&key))
                    .ok_or(format!("nothing to remove at {path}"))?;
            }
            other => return Err(format!("op {other:?} not supported here")),
        }
    }
    Ok(())
}

fn handle(
    cluster: &mut Cluster,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let parsed = || serde_json::from_slice::<Value>(body);
    let invalid = |kind: &str, e: &dyn std::fmt::Display| {
        status_object(422, "Invalid", &format!("{kind} is invalid: {e}"))
    };
    match (method, segments.as_slice()) {
        // Pods: merge patch (add the label), JSON patch (remove it), delete, eviction.
        ("PATCH", ["api", "v1", "namespaces", ns, "pods", name]) => {
            let key = (ns.to_string(), name.to_string());
            let Some(pod) = cluster.pods.get(&key).cloned() else {
                return status_object(404, "NotFound", &format!("pods \"{name}\" not found"));
            };
            let Ok(patch) = parsed() else {
                return status_object(400, "BadRequest", "body is not JSON");
            };
            let mut next = pod;
            match content_type {
                Some(k8s::MERGE_PATCH) => {
                    if let Err(e) = serde_json::from_value::<Pod>(patch.clone()) {
                        return invalid("the patch", &e);
                    }
                    merge(&mut next, &patch);
                }
                Some(k8s::JSON_PATCH) => {
                    if let Err(e) = json_patch(&mut next, &patch) {
                        return invalid("the JSON patch", &e);
                    }
                }
                other => return status_object(415, "UnsupportedMediaType", &format!("{other:?}")),
            }
            if let Err(e) = serde_json::from_value::<Pod>(next.clone()) {
                return invalid("Pod", &e);
            }
            cluster.pods.insert(key, next.clone());
            (200, next)
        }
        ("DELETE", ["api", "v1", "namespaces", ns, "pods", name]) => {
            match cluster.pods.remove(&(ns.to_string(), name.to_string())) {
                Some(pod) => (200, pod),
                None => status_object(404, "NotFound", &format!("pods \"{name}\" not found")),
            }
        }
        ("POST", ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
            let eviction = match serde_json::from_slice::<Eviction>(body) {
                Ok(e) => e,
                Err(e) => return invalid("Eviction", &e),
            };
            if eviction.metadata.name.as_deref() != Some(*name)
                || eviction.metadata.namespace.as_deref() != Some(*ns)
            {
                return status_object(400, "BadRequest", "name in the body does not match");
            }
            match cluster.pods.remove(&(ns.to_string(), name.to_string())) {
                Some(_) => status_object(201, "", "Success"),
                None => status_object(404, "NotFound", &format!("pods \"{name}\" not found")),
            }
        }
        // NetworkPolicies.
        ("POST", ["apis", "networking.k8s.io", "v1", "namespaces", ns, "networkpolicies"]) => {
            let policy = match serde_json::from_slice::<NetworkPolicy>(body) {
                Ok(p) => p,
                Err(e) => return invalid("NetworkPolicy", &e),
            };
            if policy
                .metadata
                .namespace
                .as_deref()
                .is_some_and(|n| n != *ns)
            {
                return status_object(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                );
            }
            let Some(name) = policy.metadata.name.clone() else {
                return invalid("NetworkPolicy", &"metadata.name: Required value");
            };
            let key = (ns.to_string(), name.clone());
            if cluster.policies.contains_key(&key) {
                return status_object(
                    409,
                    "AlreadyExists",
                    &format!("networkpolicies.networking.k8s.io \"{name}\" already exists"),
                );
            }
            let value = serde_json::to_value(&policy).expect("json");
            cluster.policies.insert(key, value.clone());
            (201, value)
        }
        (
            "DELETE",
            ["apis", "networking.k8s.io", "v1", "namespaces", ns, "networkpolicies", name],
        ) => match cluster.policies.remove(&(ns.to_string(), name.to_string())) {
            Some(_) => status_object(200, "", "Success"),
            None => status_object(
                404,
                "NotFound",
                &format!("networkpolicies.networking.k8s.io \"{name}\" not found"),
            ),
        },
        // Nodes.
        ("PATCH", ["api", "v1", "nodes", name]) => {
            let Some(node) = cluster.nodes.get(*name).cloned() else {
                return status_object(404, "NotFound", &format!("nodes \"{name}\" not found"));
            };
            if content_type != Some(k8s::MERGE_PATCH) {
                return status_object(415, "UnsupportedMediaType", "merge patch expected");
            }
            let patch = match serde_json::from_slice::<Node>(body) {
                Ok(_) => parsed().expect("json"),
                Err(e) => return invalid("the patch", &e),
            };
            let mut next = node;
            merge(&mut next, &patch);
            cluster.nodes.insert(name.to_string(), next.clone());
            (200, next)
        }
        // The scale subresource.
        (m, ["apis", "apps", "v1", "namespaces", _, _, name, "scale"]) => {
            let Some(replicas) = cluster.scales.get(path).copied() else {
                return status_object(404, "NotFound", &format!("\"{name}\" not found"));
            };
            let scale = |r: i64| json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name}, "spec": {"replicas": r}, "status": {"replicas": r}});
            match m {
                "GET" => (200, scale(replicas)),
                "PATCH" => {
                    let patch = match serde_json::from_slice::<Scale>(body) {
                        Ok(p) => p,
                        Err(e) => return invalid("Scale", &e),
                    };
                    let Some(next) = patch.spec.and_then(|s| s.replicas) else {
                        return invalid("Scale", &"spec.replicas: Required value");
                    };
                    if next < 0 {
                        return invalid("Scale", &"spec.replicas: must be ≥ 0");
                    }
                    cluster.scales.insert(path.to_string(), i64::from(next));
                    (200, scale(i64::from(next)))
                }
                _ => status_object(405, "MethodNotAllowed", m),
            }
        }
        _ => status_object(404, "NotFound", &format!("no route {method} {path}")),
    }
}

fn cluster() -> Cluster {
    let mut cluster = Cluster::default();
    cluster.pods.insert(
        ("prod".into(), "web-7d4b9c6f5-x2kq9".into()),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-7d4b9c6f5-x2kq9", "namespace": "prod", "labels": {"app": "web"}}}),
    );
    cluster.nodes.insert(
        "node-1".into(),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {}}),
    );
    cluster.scales.insert(
        "/apis/apps/v1/namespaces/prod/deployments/web/scale".into(),
        3,
    );
    cluster
}

fn paths(ops: &[Operation]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Operation::Http(r) => format!("{} {}", r.method, r.path),
            Operation::Docker(_) => "docker".into(),
        })
        .collect()
}

#[test]
fn pod_quarantine_and_its_undo_against_a_local_api_server() {
    let server = ApiServer::start(cluster());
    let exec = K8sExecutor::new(&server.url, TOKEN);
    let planned = plan(ActionKind::QuarantinePod, &POD);
    let outcome = run_operations(&exec, &planned.operations).expect("quarantined");
    assert_eq!(server.seen(), paths(&planned.operations));
    assert_eq!(outcome.steps.len(), 2);
    {
        let cluster = server.cluster.lock().expect("lock");
        let pod = &cluster.pods[&("prod".to_string(), "web-7d4b9c6f5-x2kq9".to_string())];
        assert_eq!(
            pod["metadata"]["labels"][k8s::QUARANTINE_LABEL],
            json!(planned.id)
        );
        assert_eq!(
            pod["metadata"]["labels"]["app"],
            json!("web"),
            "other labels kept"
        );
        let policy = &cluster.policies[&("prod".to_string(), k8s::policy_name(&planned.id))];
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"][k8s::QUARANTINE_LABEL],
            json!(planned.id)
        );
    }
    // Running it again: the policy exists (409, tolerated), the label is set again.
    run_operations(&exec, &planned.operations).expect("idempotent");
    server.seen();
    let undo = planned.undo_operations(&outcome.memory).expect("undo");
    run_operations(&exec, &undo).expect("undone");
    assert_eq!(
        server.seen(),
        [
            "PATCH /api/v1/namespaces/prod/pods/web-7d4b9c6f5-x2kq9".to_string(),
            format!(
                "DELETE /apis/networking.k8s.io/v1/namespaces/prod/networkpolicies/crowsnest-quarantine-{}",
                planned.id
            ),
        ]
    );
    {
        let cluster = server.cluster.lock().expect("lock");
        let pod = &cluster.pods[&("prod".to_string(), "web-7d4b9c6f5-x2kq9".to_string())];
        assert_eq!(pod["metadata"]["labels"], json!({"app": "web"}));
        assert!(cluster.policies.is_empty());
    }
    // Undoing twice: the label's test fails (422: the label is gone), the policy is gone (404,
    // tolerated).
    let failure = run_operations(&exec, &undo).expect_err("label already removed");
    assert!(
        failure.error.to_string().contains("422"),
        "{}",
        failure.error
    );
    assert_eq!(failure.outcome.steps.len(), 1);
}

#[test]
fn cordon_scale_delete_and_evict_against_a_local_api_server() {
    let server = ApiServer::start(cluster());
    let exec = K8sExecutor::new(&server.url, TOKEN);

    let cordon = plan(ActionKind::CordonNode, &POD);
    let outcome = run_operations(&exec, &cordon.operations).expect("cordoned");
    assert_eq!(
        server.cluster.lock().expect("lock").nodes["node-1"]["spec"]["unschedulable"],
        json!(true)
    );
    run_operations(
        &exec,
        &cordon.undo_operations(&outcome.memory).expect("undo"),
    )
    .expect("uncordoned");
    assert_eq!(
        server.cluster.lock().expect("lock").nodes["node-1"]["spec"]["unschedulable"],
        json!(false)
    );
    assert_eq!(
        server.seen(),
        ["PATCH /api/v1/nodes/node-1", "PATCH /api/v1/nodes/node-1"]
    );

    let scale = plan(ActionKind::ScaleToZero, &POD);
    let outcome = run_operations(&exec, &scale.operations).expect("scaled");
    assert_eq!(outcome.memory.get("previous_replicas"), Some(&json!(3)));
    let path = "/apis/apps/v1/namespaces/prod/deployments/web/scale";
    assert_eq!(server.cluster.lock().expect("lock").scales[path], 0);
    run_operations(
        &exec,
        &scale.undo_operations(&outcome.memory).expect("undo"),
    )
    .expect("restored");
    assert_eq!(server.cluster.lock().expect("lock").scales[path], 3);
    assert_eq!(
        server.seen(),
        [
            format!("GET {path}"),
            format!("PATCH {path}"),
            format!("PATCH {path}")
        ]
    );

    let evict = plan(ActionKind::EvictPod, &POD);
    run_operations(&exec, &evict.operations).expect("evicted");
    assert!(server.cluster.lock().expect("lock").pods.is_empty());
    assert!(evict.undo_operations(&Memory::new()).is_err(), "no undo");
    // Deleting what is gone: the API's 404 and its message come back.
    let delete = plan(ActionKind::DeletePod, &POD);
    let failure = run_operations(&exec, &delete.operations).expect_err("gone");
    let text = failure.error.to_string();
    assert!(text.contains("404") && text.contains("not found"), "{text}");
    assert_eq!(
        server.seen(),
        [
            "POST /api/v1/namespaces/prod/pods/web-7d4b9c6f5-x2kq9/eviction",
            "DELETE /api/v1/namespaces/prod/pods/web-7d4b9c6f5-x2kq9"
        ]
    );

    // A wrong token: 401, named.
    let bad = K8sExecutor::new(&server.url, "wrong");
    let failure = run_operations(&bad, &cordon.operations).expect_err("unauthorized");
    assert!(
        failure.error.to_string().contains("401"),
        "{}",
        failure.error
    );
}

#[test]
fn an_approved_pod_quarantine_runs_and_its_ttl_undoes_it_through_the_responder() {
    use crowsnest_respond::contain::responder::State;
    use crowsnest_respond::contain::{log, RecordKind, Responder};

    let server = ApiServer::start(cluster());
    let exec = K8sExecutor::new(&server.url, TOKEN);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RespondConfig {
        playbooks: vec![Playbook {
            name: "shell".into(),
            matches: Match::default(),
            actions: vec![ActionSpec {
                action: ActionKind::QuarantinePod,
                mode: Mode::Approve,
                ttl_secs: Some(600),
            }],
            ttl_secs: None,
        }],
        ..RespondConfig::default()
    };
    let mut responder = Responder::open(dir.path(), config).expect("open");
    let offered = responder
        .offer(&alert(&POD), None, &NoInventory, at())
        .expect("offer");
    let (id, link) = offered.links[0].clone();
    // Nothing reaches the API server until the action is approved.
    assert!(responder.execute(&id, &exec, at()).is_err());
    assert!(server.seen().is_empty());
    let token = link.split("token=").nth(1).expect("token");
    responder
        .approve_token(token, "alice", at())
        .expect("approved");
    let record = responder.execute(&id, &exec, at()).expect("executed");
    assert_eq!(record.kind, RecordKind::Executed);
    assert_eq!(record.actor.as_deref(), Some("alice"));
    assert_eq!(server.seen().len(), 2);
    // Ten minutes later the TTL undoes it.
    let later = at() + chrono::Duration::seconds(600);
    assert_eq!(responder.due_undos(later), std::slice::from_ref(&id));
    let record = responder.undo(&id, &exec, "ttl", later).expect("undone");
    assert_eq!(record.kind, RecordKind::Undone);
    assert_eq!(responder.get(&id).map(|t| t.state), Some(State::Undone));
    assert!(server.cluster.lock().expect("lock").policies.is_empty());
    // planned, approved, executed, undone: a chain that verifies.
    let verified = log::verify(&dir.path().join("actions.jsonl")).expect("verifies");
    assert_eq!(verified.records, 4);
}
