//! What the shipper vocabularies share: the ECS fields they all land in, and the one way a
//! record's log text becomes `message`.
//!
//! The parsers are [`crate::kubernetes_meta`] (Fluent Bit's and Fluentd's `kubernetes`
//! filters, Vector's `kubernetes_logs`), [`crate::filebeat`] (Filebeat and Elastic Agent ECS
//! records) and [`crate::docker_drivers`] (Docker's `fluentd`, `gelf` and `journald` log
//! drivers). Each takes the keys of its vocabulary out of the record, collects the fields they
//! mean in a [`Meta`], and hands the rest to [`build`], which keeps it as the generic parser
//! would (timestamp aliases, displaced values) and writes the collected fields over it. The
//! fields are the node agent's (`crates/agent/src/meta.rs`) and the CRI/json-file parsers',
//! so a rule or a search over `kubernetes.namespace` or `container.id` finds a line whichever
//! way it arrived:
//!
//! | field | meaning |
//! |---|---|
//! | `message` | the log text, once, without its line ending |
//! | `log.iostream` | `stdout` / `stderr` |
//! | `log.file.path` | the file the shipper read |
//! | `container.id`, `container.runtime` | the id without a `docker://`-style prefix; the prefix names the runtime |
//! | `container.name` | the container's name (in a pod: the pod's container name) |
//! | `container.image.name`, `container.image.tag` | the image reference split at its tag (or `@digest`) |
//! | `container.image.hash.all` | image digests (`sha256:...`) |
//! | `kubernetes.namespace`, `kubernetes.pod.{name,uid,ip}`, `kubernetes.container.name`, `kubernetes.node.name` | pod identity |
//! | `kubernetes.labels.*`, `kubernetes.annotations.*` | pod labels and annotations, dots in keys replaced by `_` (as Filebeat and the agent store them) |
//! | `kubernetes.namespace_uid`, `kubernetes.namespace_labels.*`, `kubernetes.namespace_annotations.*` | the namespace's |
//! | `kubernetes.{deployment,replicaset,statefulset,daemonset,job,cronjob}.name` | the pod's owner |
//! | `host.name` | the node, unless the record names its host |
//! | `event.kind`, `event.module`, `event.dataset` | `event`, `kubernetes` (pods) or `docker`, `container.logs` |
//! | `url.*`, `http.*`, `user_agent.original`, `source.ip`, `event.category: web` | an access-log line, see [`crate::access_log`] |
//!
//! `event.original` keeps the whole record. When the log text is itself a Docker json-file or
//! CRI line (a shipper that read the file without parsing it), the inner line is unwrapped:
//! its text becomes `message` and its stream and time fill `log.iostream` and `@timestamp`
//! when the record has none. A log text that is a structured (JSON) application line stays
//! the text of `message`, as for any other record.

use crowsnest_model::{ecs, Event};
use serde_json::{json, Map, Value};

use crate::container::{self, Piece};
use crate::generic::{self, TIME_KEYS};
use crate::registry::Parser;
use crate::{cri, docker};

/// Fields a vocabulary maps, collected before the record becomes an event.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    /// Set over whatever the record had.
    fields: Vec<(String, Value)>,
    /// Set only where the record (and `fields`) left the field empty.
    defaults: Vec<(String, Value)>,
}

impl Meta {
    /// Sets `path` unless the value is null or an empty string.
    pub(crate) fn set(&mut self, path: &str, value: Value) {
        if !is_empty(&value) {
            self.fields.push((path.to_string(), value));
        }
    }

    /// Sets `path` to a string, when there is one.
    pub(crate) fn set_str(&mut self, path: &str, value: Option<&str>) {
        if let Some(text) = value {
            self.set(path, Value::String(text.to_string()));
        }
    }

    /// Sets `path` unless something else already did.
    pub(crate) fn fill(&mut self, path: &str, value: Value) {
        if !is_empty(&value) {
            self.defaults.push((path.to_string(), value));
        }
    }

    /// A container id, maybe with the runtime's prefix (`docker://`, `containerd://`,
    /// `cri-o://`): `container.id` without it, `container.runtime` from it.
    pub(crate) fn container_id(&mut self, id: &str) {
        match id.split_once("://") {
            Some((runtime, id)) => {
                self.set_str("container.id", Some(id));
                self.fill("container.runtime", json!(runtime));
            }
            None => self.set_str("container.id", Some(id)),
        }
    }

    /// An image reference: `container.image.name` and `container.image.tag`.
    pub(crate) fn image(&mut self, image: &str) {
        let (name, tag) = split_image(image);
        self.set_str("container.image.name", Some(name));
        self.set_str("container.image.tag", tag);
    }

    /// An image id or digest (`repo@sha256:...`, `docker-pullable://repo@sha256:...`,
    /// `sha256:...`): `container.image.hash.all`.
    pub(crate) fn image_digest(&mut self, id: &str) {
        let digest = match id.rsplit_once('@') {
            Some((_, digest)) => digest,
            None => id.split_once("://").map_or(id, |(_, rest)| rest),
        };
        if !digest.is_empty() {
            self.set("container.image.hash.all", json!([digest]));
        }
    }

    /// A map of labels or annotations under `path`, dots in keys replaced by `_`. Values that
    /// are not strings are kept as they are.
    pub(crate) fn labels(&mut self, path: &str, labels: Map<String, Value>) {
        if labels.is_empty() {
            return;
        }
        let labels: Map<String, Value> = labels
            .into_iter()
            .map(|(key, value)| (key.replace('.', "_"), value))
            .collect();
        self.set(path, Value::Object(labels));
    }

    /// A Kubernetes container name: `kubernetes.container.name`, and `container.name` unless
    /// the record names the container itself.
    pub(crate) fn k8s_container(&mut self, name: Option<&str>) {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            self.set_str("kubernetes.container.name", Some(name));
            self.fill("container.name", json!(name));
        }
    }

    /// The node a pod runs on: `kubernetes.node.name`, and `host.name` unless the record names
    /// its host.
    pub(crate) fn node(&mut self, name: Option<&str>) {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            self.set_str("kubernetes.node.name", Some(name));
            self.fill(ecs::HOST_NAME, json!(name));
        }
    }

    /// A pod owner of `kind` (`ReplicaSet`, `Deployment`, ...): `kubernetes.<kind>.name`.
    pub(crate) fn owner(&mut self, kind: &str, name: &str) {
        let field = match kind {
            "Deployment" => "deployment",
            "ReplicaSet" => "replicaset",
            "StatefulSet" => "statefulset",
            "DaemonSet" => "daemonset",
            "Job" => "job",
            "CronJob" => "cronjob",
            _ => return,
        };
        self.set_str(&format!("kubernetes.{field}.name"), Some(name));
    }

    /// `io.kubernetes.*` container labels (Docker-based Kubernetes nodes put them on every
    /// container; log drivers pass them on when configured to): pod identity.
    pub(crate) fn kubelet_labels(&mut self, label: impl Fn(&str) -> Option<String>) {
        self.set_str(
            ecs::K8S_NAMESPACE,
            label("io.kubernetes.pod.namespace").as_deref(),
        );
        self.set_str(
            ecs::K8S_POD_NAME,
            label("io.kubernetes.pod.name").as_deref(),
        );
        self.set_str(
            "kubernetes.pod.uid",
            label("io.kubernetes.pod.uid").as_deref(),
        );
        if let Some(name) = label("io.kubernetes.container.name") {
            self.set_str("kubernetes.container.name", Some(&name));
        }
    }

    /// Whether `path` is among the fields set so far.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.fields.iter().any(|(p, _)| p == path)
    }

    fn names_pod(&self) -> bool {
        self.fields
            .iter()
            .chain(&self.defaults)
            .any(|(path, _)| path.starts_with("kubernetes."))
    }

    fn names_container(&self) -> bool {
        self.fields
            .iter()
            .chain(&self.defaults)
            .any(|(path, _)| path.starts_with("container.") || path.starts_with("kubernetes."))
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Splits `registry:5000/repo/name:tag` or `name@sha256:...` into name and tag (or digest).
pub(crate) fn split_image(image: &str) -> (&str, Option<&str>) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, Some(digest));
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(colon) => (&image[..slash + colon], Some(&image[slash + colon + 1..])),
        None => (image, None),
    }
}

/// Removes `key` when it holds a string and returns it; any other value stays where it is.
pub(crate) fn take_str(obj: &mut Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key) {
        Some(Value::String(_)) => match obj.remove(key) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        },
        _ => None,
    }
}

/// Removes `key` when it holds an object and returns it.
pub(crate) fn take_obj(obj: &mut Map<String, Value>, key: &str) -> Option<Map<String, Value>> {
    match obj.get(key) {
        Some(Value::Object(_)) => match obj.remove(key) {
            Some(Value::Object(inner)) => Some(inner),
            _ => None,
        },
        _ => None,
    }
}

/// Moves the log text at `key` to `message`, the one place it is kept. The record's own
/// `message` wins (a shipper that merged a JSON line may have put the application's message
/// there; the text is still in `event.original`). A trailing line ending is dropped; a nested
/// Docker json-file or CRI line is unwrapped (see the module docs).
pub(crate) fn move_message(obj: &mut Map<String, Value>, key: &str, meta: &mut Meta) {
    let Some(text) = take_str(obj, key) else {
        return;
    };
    let text = strip_line_ending(&text);
    let text = match nested_line(text) {
        Some(piece) => {
            meta.fill("log.iostream", json!(piece.stream));
            if !piece.time.is_empty() && !TIME_KEYS.iter().any(|k| obj.contains_key(*k)) {
                obj.insert("time".to_string(), json!(piece.time));
            }
            piece.text
        }
        None => text.to_string(),
    };
    if !obj.contains_key(ecs::MESSAGE) {
        obj.insert(ecs::MESSAGE.to_string(), Value::String(text));
    }
}

fn strip_line_ending(text: &str) -> &str {
    match text.strip_suffix('\n') {
        Some(text) => text.strip_suffix('\r').unwrap_or(text),
        None => text,
    }
}

/// The Docker json-file or CRI line a log text is, if it is one.
fn nested_line(text: &str) -> Option<Piece> {
    if text.starts_with('{') {
        let Ok(Value::Object(inner)) = serde_json::from_str::<Value>(text) else {
            return None;
        };
        if !docker::DockerJsonFile.detect(&inner) {
            return None;
        }
        let mut piece = docker::piece(text).ok()?;
        piece.text = strip_line_ending(&piece.text).to_string();
        return Some(piece);
    }
    if text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return cri::piece(text).ok();
    }
    None
}

/// The event of a record whose vocabulary `meta` holds: the rest of the record kept as the
/// generic parser keeps it, the mapped fields over it, and `event.kind: event`,
/// `event.module` (`kubernetes` when a pod is named, else `fallback_module`) and
/// `event.dataset` (`container.logs` when a container or pod is named, else `dataset`)
/// unless the record carries its own.
pub(crate) fn build(
    obj: Map<String, Value>,
    meta: Meta,
    fallback_module: &str,
    dataset: &str,
) -> Event {
    let module = if meta.names_pod() {
        "kubernetes"
    } else {
        fallback_module
    };
    let dataset = if meta.names_container() {
        container::DATASET
    } else {
        dataset
    };
    let mut event = generic::map_generic(obj, dataset);
    if event.get_str(ecs::EVENT_MODULE) == Some(generic::MODULE) {
        event.set(ecs::EVENT_MODULE, json!(module));
    }
    event.set_default(ecs::EVENT_KIND, json!("event"));
    for (path, value) in meta.fields {
        event.set(&path, value);
    }
    for (path, value) in meta.defaults {
        event.set_default(&path, value);
    }
    // A web server's access line (or JSON access record) gets url.*, http.*, source.ip, as
    // container lines and generic records do.
    crate::access_log::enrich(&mut event);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn images_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_image("registry:5000/team/app:1.2"),
            ("registry:5000/team/app", Some("1.2"))
        );
        assert_eq!(split_image("busybox"), ("busybox", None));
        assert_eq!(
            split_image("nginx@sha256:abc"),
            ("nginx", Some("sha256:abc"))
        );
    }

    #[test]
    fn nested_docker_and_cri_lines_are_unwrapped_and_json_apps_are_not() {
        let mut meta = Meta::default();
        let mut record = obj(json!({
            "log": "{\"log\":\"hello\\n\",\"stream\":\"stderr\",\"time\":\"2024-05-01T10:00:00.5Z\"}\n"
        }));
        move_message(&mut record, "log", &mut meta);
        assert_eq!(record["message"], "hello");
        assert_eq!(record["time"], "2024-05-01T10:00:00.5Z");
        assert!(!record.contains_key("log"));
        let event = build(record, meta, "docker", "ndjson");
        assert_eq!(event.get_str("log.iostream"), Some("stderr"));
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2024-05-01T10:00:00.500000Z")
        );

        let mut meta = Meta::default();
        let mut record = obj(json!({"log": "2024-05-01T10:00:00Z stdout F done"}));
        move_message(&mut record, "log", &mut meta);
        assert_eq!(record["message"], "done");

        let app = "{\"log\":\"x\",\"level\":\"info\"}";
        let mut record = obj(json!({ "log": app }));
        move_message(&mut record, "log", &mut Meta::default());
        assert_eq!(
            record["message"], app,
            "an application's JSON stays the text"
        );
    }

    #[test]
    fn the_records_own_message_wins_and_the_alias_goes() {
        let mut record = obj(json!({"log": "{\"message\":\"hi\"}\n", "message": "hi"}));
        move_message(&mut record, "log", &mut Meta::default());
        assert_eq!(record["message"], "hi");
        assert!(!record.contains_key("log"));
    }

    #[test]
    fn runtime_prefixes_and_digests() {
        let mut meta = Meta::default();
        meta.container_id("containerd://abc123");
        meta.image_digest("docker-pullable://nginx@sha256:feed");
        meta.image_digest("sha256:beef");
        let event = build(Map::new(), meta, "docker", "ndjson");
        assert_eq!(event.get_str("container.id"), Some("abc123"));
        assert_eq!(event.get_str("container.runtime"), Some("containerd"));
        assert_eq!(
            event.get("container.image.hash.all"),
            Some(&json!(["sha256:beef"]))
        );
        assert_eq!(event.get_str("event.module"), Some("docker"));
        assert_eq!(event.get_str("event.dataset"), Some("container.logs"));
    }
}
