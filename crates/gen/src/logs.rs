//! Container log lines as a log shipper (Filebeat, Fluent Bit, Vector) would send them after
//! Kubernetes enrichment: one ECS-shaped JSON object per line, `event.dataset: container_logs`.
//!
//! The `message` is what the container printed, in the format its program really uses: nginx
//! combined access logs, zap-style JSON from a Go service, Spring Boot with stack traces,
//! PostgreSQL stderr, CoreDNS query logs, klog, logfmt, Redis. Value distributions are skewed
//! the way real traffic is: mostly 200s and `info`, a tail of 4xx/5xx, `warn` and `error`.

mod http;
mod line;
mod services;

use serde_json::{json, Map, Value};

use super::cluster::{Controller, LogKind, Pod};
use super::text::Stamp;
use crate::rng::Rand;
use http::{grafana, json_app, nginx};
use services::{coredns, java, klog, logfmt, postgres, redis};

/// `event.dataset` (and NDJSON source name) of container logs.
pub(super) const DATASET: &str = "container_logs";

/// Builds one log event of `pod` at `micros`.
pub(super) fn event(rng: &mut Rand, pod: &Pod, micros: i64) -> Value {
    let stamp = Stamp::from_micros(micros);
    let line = match pod.workload.log {
        LogKind::Nginx => nginx(rng, pod, &stamp),
        LogKind::JsonApp => json_app(rng, &stamp),
        LogKind::Java => java(rng, pod, &stamp),
        LogKind::Postgres => postgres(rng, &stamp),
        LogKind::CoreDns => coredns(rng),
        LogKind::Klog => klog(rng, pod, &stamp),
        LogKind::Logfmt => logfmt(rng, pod, &stamp),
        LogKind::Grafana => grafana(rng, &stamp),
        LogKind::Redis => redis(rng, &stamp),
    };
    // Cloning the pod's prepared envelope copies its hash index instead of re-hashing every
    // key: most of the cost of an event is building the JSON tree.
    let mut event = pod.log_template.clone();
    if let Value::Object(map) = &mut event {
        set(map, "@timestamp", Value::String(stamp.rfc3339()));
        set(map, "message", Value::String(line.message));
        if let Some(Value::Object(log)) = map.get_mut("log") {
            set(log, "level", Value::from(line.level));
        }
        set(map, "stream", Value::from(line.stream));
    }
    event
}

fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some(slot) = map.get_mut(key) {
        *slot = value;
    }
}

/// The ECS envelope of `pod`'s log events: container, Kubernetes metadata, dataset; the
/// time, message, level and stream are placeholders [`event`] fills in.
pub(super) fn template(pod: &Pod) -> Value {
    let mut envelope = json!({
        "@timestamp": "",
        "message": "",
        "log": {"level": ""},
        "stream": "",
        "event": {"dataset": DATASET},
    });
    add_pod_context(&mut envelope, pod);
    envelope
}

/// Adds the `container`, `kubernetes` and `host` objects that every event of `pod` carries.
pub(super) fn add_pod_context(envelope: &mut Value, pod: &Pod) {
    let workload = pod.workload;
    let node = pod.node();
    let context = [
        (
            "container",
            json!({
                "id": pod.container_id,
                "name": workload.name,
                "runtime": "containerd",
                "image": {"name": workload.image, "tag": workload.tag},
            }),
        ),
        (
            "kubernetes",
            json!({
                "namespace": workload.namespace,
                "pod": {"name": pod.name, "uid": pod.uid},
                "container": {"name": workload.name},
                "node": {"name": node.name},
                "labels": labels(pod),
            }),
        ),
        ("host", json!({"name": node.name})),
    ];
    if let Value::Object(map) = envelope {
        for (key, value) in context {
            map.insert(key.to_string(), value);
        }
    }
}

/// `kubernetes.labels` of a pod: `app` and the controller's revision hash.
pub(super) fn labels(pod: &Pod) -> Value {
    let hash_label = match pod.workload.controller {
        Controller::Deployment => "pod-template-hash",
        Controller::StatefulSet | Controller::DaemonSet => "controller-revision-hash",
    };
    json!({"app": pod.workload.name, hash_label: pod.template_hash})
}
