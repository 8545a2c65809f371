//! Kubernetes container-log records of the shippers that enrich them with a snake_case
//! `kubernetes` object (`kubernetes-metadata`, also `fluent-bit`, `fluentd`, `vector`):
//! Fluent Bit's `kubernetes` filter, Fluentd's `kubernetes_metadata` filter
//! (fluent-plugin-kubernetes_metadata_filter) and Vector's `kubernetes_logs` source.
//!
//! ```json
//! {"log":"Fluent Bit is logging\n","stream":"stdout","kubernetes":{"pod_name":"web-1",
//!  "namespace_name":"payments","pod_id":"e9f2...","labels":{"app.kubernetes.io/name":"web"},
//!  "host":"node-1","container_name":"web","docker_id":"c989...","container_image":"web:1.2"}}
//! ```
//!
//! Detected by a `kubernetes` object with one of `pod_name`, `namespace_name`,
//! `pod_namespace`, `container_name`, `docker_id`, `pod_id` or `pod_uid` as a string (ECS
//! records, whose `kubernetes` has `pod.name` and `namespace`, are [`crate::filebeat`]'s). The
//! vocabulary's keys are replaced by the common fields ([`crate::shipper`]); keys this table
//! does not name stay where they were (`kubernetes.pod_ips`, `kubernetes.owner_references`).
//!
//! | Fluent Bit | Fluentd | Vector | event |
//! |---|---|---|---|
//! | `log` | `log` | `message` | `message` (once, line ending dropped) |
//! | `stream` | `stream` | `stream` | `log.iostream` |
//! | | | `file` | `log.file.path` |
//! | `kubernetes.namespace_name` | `kubernetes.namespace_name` | `kubernetes.pod_namespace` | `kubernetes.namespace` |
//! | `kubernetes.pod_name` | `kubernetes.pod_name` | `kubernetes.pod_name` | `kubernetes.pod.name` |
//! | `kubernetes.pod_id` | `kubernetes.pod_id` | `kubernetes.pod_uid` | `kubernetes.pod.uid` |
//! | `kubernetes.pod_ip` | `kubernetes.pod_ip` | `kubernetes.pod_ip` | `kubernetes.pod.ip` |
//! | `kubernetes.container_name` | `kubernetes.container_name` | `kubernetes.container_name` | `kubernetes.container.name`, `container.name` |
//! | `kubernetes.docker_id` | `docker.container_id` | `kubernetes.container_id` (`containerd://...`) | `container.id` (+ `container.runtime` from a prefix) |
//! | `kubernetes.container_image` | `kubernetes.container_image` | `kubernetes.container_image` | `container.image.name`, `container.image.tag` |
//! | `kubernetes.container_hash` | `kubernetes.container_image_id` | `kubernetes.container_image_id` | `container.image.hash.all` |
//! | `kubernetes.host` | `kubernetes.host` | `kubernetes.pod_node_name` | `kubernetes.node.name`, `host.name` |
//! | `kubernetes.labels` | `kubernetes.labels` | `kubernetes.pod_labels` | `kubernetes.labels.*` |
//! | `kubernetes.annotations` | `kubernetes.annotations` | `kubernetes.pod_annotations` | `kubernetes.annotations.*` |
//! | `kubernetes_namespace.labels` | `kubernetes.namespace_labels` | `kubernetes.namespace_labels` | `kubernetes.namespace_labels.*` |
//! | `kubernetes_namespace.annotations` | `kubernetes.namespace_annotations` | | `kubernetes.namespace_annotations.*` |
//! | | `kubernetes.namespace_id` | | `kubernetes.namespace_uid` |
//! | | `kubernetes.master_url` | | `orchestrator.cluster.url` |
//! | `kubernetes.owner_references[].kind/name` | | `kubernetes.pod_owner` (`Kind/name`) | `kubernetes.<kind>.name` |
//! | | | `kubernetes.node_labels` | `kubernetes.node.labels.*` |
//!
//! Records that Fluent Bit's or Fluentd's `systemd` input read from Docker's `journald` log
//! driver carry that driver's fields too (`MESSAGE`, `CONTAINER_ID_FULL`, ...): they are
//! mapped as [`crate::docker_drivers`] maps them. A top-level `container_id` (Docker's
//! `fluentd` driver) fills `container.id` when the `kubernetes` object names none.

use serde_json::{json, Map, Value};

use crate::docker_drivers::journald_fields;
use crate::error::{describe, FieldError};
use crate::registry::{Claim, Context, Parser, Record};
use crate::shipper::{build, move_message, take_obj, take_str, Meta};
use crate::{finish, Decoded};

/// Keys of the snake_case `kubernetes` object that identify it.
const IDENTIFYING: &[&str] = &[
    "pod_name",
    "namespace_name",
    "pod_namespace",
    "container_name",
    "docker_id",
    "pod_id",
    "pod_uid",
];

/// The Fluent Bit / Fluentd / Vector Kubernetes metadata parser.
#[derive(Debug)]
pub struct KubernetesMetadata;

impl Parser for KubernetesMetadata {
    fn name(&self) -> &'static str {
        "kubernetes-metadata"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["fluent-bit", "fluentbit", "fluentd", "vector"]
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        object
            .get("kubernetes")
            .and_then(Value::as_object)
            .is_some_and(|k8s| {
                IDENTIFYING
                    .iter()
                    .any(|key| k8s.get(*key).is_some_and(Value::is_string))
            })
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let Record::Json { text, object } = record else {
            let error = FieldError {
                field: None,
                reason: "expected a JSON object with a `kubernetes` object".to_string(),
            };
            return out.errors.push(error.at(cx.line));
        };
        if cx.claim == Claim::Named && !self.detect(&object) {
            let found = object
                .get("kubernetes")
                .map_or_else(|| "no `kubernetes` field".to_string(), describe);
            let error = FieldError::field(
                "kubernetes",
                format!(
                    "expected an object with `pod_name`, `namespace_name` or `pod_namespace` \
                     (Fluent Bit, Fluentd or Vector metadata), found {found}"
                ),
            );
            return out.errors.push(error.at(cx.line));
        }
        let event = build_event(object);
        out.events.push(finish(event, text, cx.limits));
    }
}

fn build_event(mut obj: Map<String, Value>) -> crowsnest_model::Event {
    let mut meta = Meta::default();
    if let Some(mut k8s) = take_obj(&mut obj, "kubernetes") {
        map_kubernetes(&mut k8s, &mut meta);
        if !k8s.is_empty() {
            obj.insert("kubernetes".to_string(), Value::Object(k8s));
        }
    }
    if let Some(mut namespace) = take_obj(&mut obj, "kubernetes_namespace") {
        if let Some(labels) = take_obj(&mut namespace, "labels") {
            meta.labels("kubernetes.namespace_labels", labels);
        }
        if let Some(annotations) = take_obj(&mut namespace, "annotations") {
            meta.labels("kubernetes.namespace_annotations", annotations);
        }
        // `name` repeats `kubernetes.namespace_name`.
        namespace.remove("name");
        if !namespace.is_empty() {
            obj.insert("kubernetes_namespace".to_string(), Value::Object(namespace));
        }
    }
    if let Some(mut docker) = take_obj(&mut obj, "docker") {
        let id = take_str(&mut docker, "container_id").or_else(|| take_str(&mut docker, "id"));
        if let Some(id) = id {
            meta.container_id(&id);
        }
        if !docker.is_empty() {
            obj.insert("docker".to_string(), Value::Object(docker));
        }
    }
    if let Some(id) = obj.get("container_id").and_then(Value::as_str) {
        if !meta.has("container.id") {
            let id = id.to_string();
            obj.remove("container_id");
            meta.container_id(&id);
        }
    }
    if let Some(file) = take_str(&mut obj, "file") {
        meta.set("log.file.path", json!(file));
    }
    if matches!(
        obj.get("stream").and_then(Value::as_str),
        Some("stdout" | "stderr")
    ) {
        meta.set_str("log.iostream", take_str(&mut obj, "stream").as_deref());
    }
    if obj.contains_key("MESSAGE") {
        journald_fields(&mut obj, &mut meta);
    }
    cri_tag(&mut obj, &mut meta);
    move_message(&mut obj, "log", &mut meta);
    build(obj, meta, "kubernetes", crate::container::DATASET)
}

/// The CRI tag a shipper's CRI parser leaves on the record: Fluent Bit's `cri` multiline parser
/// writes `_p`, the classic regex parser `logtag` (`F` a full line, `P` a piece of a longer one,
/// optionally `:`-separated tags after it). A full line's tag says nothing and is dropped; a
/// piece the shipper did not join is flagged `log.partial: true`.
fn cri_tag(obj: &mut Map<String, Value>, meta: &mut Meta) {
    for key in ["_p", "logtag"] {
        let flag = obj
            .get(key)
            .and_then(Value::as_str)
            .and_then(|tag| tag.split(':').next())
            .filter(|flag| matches!(*flag, "F" | "P"))
            .map(str::to_string);
        if let Some(flag) = flag {
            obj.remove(key);
            if flag == "P" {
                meta.set("log.partial", json!(true));
            }
        }
    }
}

/// Maps the snake_case `kubernetes` object, removing the keys it maps.
fn map_kubernetes(k8s: &mut Map<String, Value>, meta: &mut Meta) {
    let namespace = take_str(k8s, "namespace_name").or_else(|| take_str(k8s, "pod_namespace"));
    meta.set_str("kubernetes.namespace", namespace.as_deref());
    meta.set_str("kubernetes.pod.name", take_str(k8s, "pod_name").as_deref());
    let uid = take_str(k8s, "pod_id").or_else(|| take_str(k8s, "pod_uid"));
    meta.set_str("kubernetes.pod.uid", uid.as_deref());
    meta.set_str("kubernetes.pod.ip", take_str(k8s, "pod_ip").as_deref());
    meta.k8s_container(take_str(k8s, "container_name").as_deref());
    let id = take_str(k8s, "docker_id").or_else(|| take_str(k8s, "container_id"));
    if let Some(id) = id {
        meta.container_id(&id);
    }
    if let Some(image) = take_str(k8s, "container_image") {
        meta.image(&image);
    }
    let digest = take_str(k8s, "container_hash").or_else(|| take_str(k8s, "container_image_id"));
    if let Some(digest) = digest {
        meta.image_digest(&digest);
    }
    let node = take_str(k8s, "host").or_else(|| take_str(k8s, "pod_node_name"));
    meta.node(node.as_deref());
    for (key, path) in [
        ("labels", "kubernetes.labels"),
        ("pod_labels", "kubernetes.labels"),
        ("annotations", "kubernetes.annotations"),
        ("pod_annotations", "kubernetes.annotations"),
        ("namespace_labels", "kubernetes.namespace_labels"),
        ("namespace_annotations", "kubernetes.namespace_annotations"),
        ("node_labels", "kubernetes.node.labels"),
    ] {
        if let Some(map) = take_obj(k8s, key) {
            meta.labels(path, map);
        }
    }
    meta.set_str(
        "kubernetes.namespace_uid",
        take_str(k8s, "namespace_id").as_deref(),
    );
    meta.set_str(
        "orchestrator.cluster.url",
        take_str(k8s, "master_url").as_deref(),
    );
    if let Some(owner) = take_str(k8s, "pod_owner") {
        match owner.split_once('/') {
            Some((kind, name)) => meta.owner(kind, name),
            None => {
                k8s.insert("pod_owner".to_string(), json!(owner));
            }
        }
    }
    if let Some(Value::Array(owners)) = k8s.get("owner_references") {
        for owner in owners {
            let kind = owner.get("kind").and_then(Value::as_str);
            let name = owner.get("name").and_then(Value::as_str);
            if let (Some(kind), Some(name)) = (kind, name) {
                meta.owner(kind, name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{parse_record, Source};
    use crate::Limits;

    fn parse(line: &str) -> Decoded {
        let mut out = Decoded::default();
        parse_record(
            line.as_bytes(),
            1,
            Source::from_name(None),
            &Limits::default(),
            &mut out,
        );
        out
    }

    #[test]
    fn fluent_bit_record_lands_in_the_common_fields_with_the_line_once() {
        let line = r#"{"log":"GET /pay 200\n","stream":"stdout","time":"2024-05-01T10:00:00.123Z","kubernetes":{"pod_name":"api-7f9","namespace_name":"payments","pod_id":"u-1","labels":{"app.kubernetes.io/name":"api"},"annotations":{"prometheus.io/scrape":"true"},"host":"node-1","container_name":"api","docker_id":"c98","container_hash":"repo/api@sha256:7ac","container_image":"repo/api:1.2"}}"#;
        let decoded = parse(line);
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        let event = &decoded.events[0];
        assert_eq!(event.get_str("message"), Some("GET /pay 200"));
        assert!(
            !event.get("log").is_some_and(Value::is_string),
            "the line is kept once"
        );
        assert_eq!(event.get_str("event.original"), Some(line));
        assert_eq!(event.get_str("kubernetes.namespace"), Some("payments"));
        assert_eq!(event.get_str("kubernetes.pod.name"), Some("api-7f9"));
        assert_eq!(event.get_str("kubernetes.pod.uid"), Some("u-1"));
        assert_eq!(event.get_str("kubernetes.container.name"), Some("api"));
        assert_eq!(event.get_str("kubernetes.node.name"), Some("node-1"));
        assert_eq!(
            event.get_str("kubernetes.labels.app_kubernetes_io/name"),
            Some("api")
        );
        assert_eq!(
            event.get_str("kubernetes.annotations.prometheus_io/scrape"),
            Some("true")
        );
        assert_eq!(event.get_str("container.id"), Some("c98"));
        assert_eq!(event.get_str("container.name"), Some("api"));
        assert_eq!(event.get_str("container.image.name"), Some("repo/api"));
        assert_eq!(event.get_str("container.image.tag"), Some("1.2"));
        assert_eq!(event.get_str("host.name"), Some("node-1"));
        assert_eq!(event.get_str("log.iostream"), Some("stdout"));
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2024-05-01T10:00:00.123000Z")
        );
        assert_eq!(event.get_str("event.dataset"), Some("container.logs"));
        assert_eq!(event.get_str("event.module"), Some("kubernetes"));
        assert_eq!(event.get("kubernetes.pod_name"), None);
        assert_eq!(event.get("stream"), None);
        // Fluent Bit's cri multiline parser leaves `_p`; a full line's tag is not kept.
        let cri = line.replacen(r#""stream":"stdout","#, r#""stream":"stdout","_p":"F","#, 1);
        let decoded = parse(&cri);
        let event = &decoded.events[0];
        assert_eq!(event.get("_p"), None);
        assert_eq!(event.get("log.partial"), None);
        let piece = line.replacen(
            r#""stream":"stdout","#,
            r#""stream":"stdout","logtag":"P","#,
            1,
        );
        let decoded = parse(&piece);
        let event = &decoded.events[0];
        assert_eq!(event.get("logtag"), None);
        assert_eq!(event.get("log.partial"), Some(&json!(true)));
    }

    #[test]
    fn vector_and_fluentd_vocabularies_land_in_the_same_fields() {
        let vector = r#"{"file":"/var/log/pods/kube-system_sp_93bd/sp/1.log","kubernetes":{"container_id":"containerd://f24c","container_image":"gcr.io/sp:v3","container_name":"sp","pod_name":"sp","pod_namespace":"kube-system","pod_node_name":"minikube","pod_uid":"93bd","pod_owner":"ReplicaSet/coredns-565d847f94","pod_labels":{"integration-test":"sp"}},"message":"E1015 boom","source_type":"kubernetes_logs","stream":"stderr","timestamp":"2020-10-15T11:01:46.499555308Z"}"#;
        let fluentd = r#"{"log":"boom\n","stream":"stderr","docker":{"container_id":"4909"},"kubernetes":{"host":"n1","pod_name":"c-98rqc","container_name":"c","namespace_name":"default","namespace_id":"8982","pod_id":"c769","master_url":"https://10.0.0.1:443","container_image_id":"docker://b2bd","labels":{"component":"console"}}}"#;
        let v = &parse(vector).events[0];
        assert_eq!(v.get_str("kubernetes.namespace"), Some("kube-system"));
        assert_eq!(v.get_str("kubernetes.node.name"), Some("minikube"));
        assert_eq!(v.get_str("kubernetes.pod.uid"), Some("93bd"));
        assert_eq!(
            v.get_str("kubernetes.replicaset.name"),
            Some("coredns-565d847f94")
        );
        assert_eq!(v.get_str("container.id"), Some("f24c"));
        assert_eq!(v.get_str("container.runtime"), Some("containerd"));
        assert_eq!(
            v.get_str("log.file.path"),
            Some("/var/log/pods/kube-system_sp_93bd/sp/1.log")
        );
        assert_eq!(v.get_str("message"), Some("E1015 boom"));
        assert_eq!(v.get_str("log.iostream"), Some("stderr"));
        assert_eq!(v.get_str("@timestamp"), Some("2020-10-15T11:01:46.499555Z"));
        let f = &parse(fluentd).events[0];
        assert_eq!(f.get_str("container.id"), Some("4909"));
        assert_eq!(f.get_str("kubernetes.namespace_uid"), Some("8982"));
        assert_eq!(
            f.get_str("orchestrator.cluster.url"),
            Some("https://10.0.0.1:443")
        );
        assert_eq!(f.get("container.image.hash.all"), Some(&json!(["b2bd"])));
        assert_eq!(f.get_str("kubernetes.labels.component"), Some("console"));
        assert_eq!(f.get("docker"), None);
    }

    #[test]
    fn an_access_line_in_a_fluent_bit_record_gets_the_web_fields() {
        let line = r#"{"log":"203.0.113.7 - - [01/May/2024:10:00:00 +0000] \"GET /.env HTTP/1.1\" 404 153 \"-\" \"curl/8.5.0\"\n","stream":"stdout","kubernetes":{"pod_name":"web-0","namespace_name":"shop","container_name":"nginx"}}"#;
        let decoded = parse(line);
        let event = &decoded.events[0];
        assert_eq!(event.get_str("http.request.method"), Some("GET"));
        assert_eq!(event.get_str("source.ip"), Some("203.0.113.7"));
        assert_eq!(event.get_str("kubernetes.namespace"), Some("shop"));
        assert_eq!(event.get_str("event.dataset"), Some("container.logs"));
    }

    #[test]
    fn ecs_records_and_named_misfits() {
        let ecs = r#"{"kubernetes":{"namespace":"a","pod":{"name":"p"}},"message":"x"}"#;
        assert!(!KubernetesMetadata.detect(&serde_json::from_str(ecs).expect("json")));
        let mut out = Decoded::default();
        parse_record(
            br#"{"log":"x","kubernetes":"web"}"#,
            4,
            Source::from_name(Some("fluent-bit")),
            &Limits::default(),
            &mut out,
        );
        assert!(out.events.is_empty());
        assert_eq!(out.errors[0].line, 4);
        assert_eq!(out.errors[0].field.as_deref(), Some("kubernetes"));
    }
}
