//! Container-log records of Filebeat and Elastic Agent (`filebeat`, also `elastic-agent`):
//! ECS already, from the `container` input (or Agent's `kubernetes.container_logs` data
//! stream) and the `add_kubernetes_metadata` / `add_docker_metadata` processors.
//!
//! ```json
//! {"@timestamp":"2024-05-01T10:00:00.000Z","message":"GET /pay 200","stream":"stdout",
//!  "input":{"type":"container"},"agent":{"type":"filebeat","version":"8.13.0"},
//!  "log":{"file":{"path":"/var/log/containers/api-7f9_payments_api-3f2a.log"},"offset":0},
//!  "container":{"id":"3f2a...","runtime":"containerd","image":{"name":"repo/api:1.2"}},
//!  "kubernetes":{"namespace":"payments","pod":{"name":"api-7f9","uid":"76e2..."},
//!   "node":{"name":"node-1"},"container":{"name":"api"},"labels":{"app":"api"}}}
//! ```
//!
//! Detected by ECS container metadata (a `kubernetes` object with `pod` or `namespace`, or a
//! `container` object with an `id`) together with a Beat's own fields (`agent.type:
//! filebeat`, `ecs`, `input` or `data_stream`). The record is kept as it is (its fields *are* the common
//! fields) except for the few places where Beats differ from the rest of crowsnest:
//!
//! | Filebeat / Elastic Agent | event |
//! |---|---|
//! | `stream` (container input) | `log.iostream` |
//! | `kubernetes.container.name` | also `container.name`, unless the record has one |
//! | `kubernetes.node.name` | also `host.name`, unless the record has one |
//! | `container.image.name` with a tag (`repo/api:1.2`) | `container.image.name` `repo/api` and `container.image.tag` `1.2` |
//! | `kubernetes.labels`, `kubernetes.annotations` keys with dots (`labels.dedot: false`) | dots replaced by `_`, as Filebeat's default |
//! | `event.dataset` `kubernetes.container_logs` (Agent; `data_stream.dataset` keeps it), or none with `input.type: container` | `event.dataset: container.logs`, so container-log rules apply |
//!
//! `event.module` is `kubernetes` when a pod is named, else `docker`, unless the record names
//! its own; `message` is the record's, `event.original` the whole record.

use serde_json::{json, Map, Value};

use crate::error::FieldError;
use crate::registry::{Claim, Context, Parser, Record};
use crate::shipper::{build, split_image, take_obj, take_str, Meta};
use crate::{container, finish, Decoded};

/// The Filebeat / Elastic Agent parser.
#[derive(Debug)]
pub struct Filebeat;

/// Agent's container-log dataset.
const AGENT_DATASET: &str = "kubernetes.container_logs";

fn has_container_meta(object: &Map<String, Value>) -> bool {
    let k8s = object.get("kubernetes").and_then(Value::as_object);
    let pod = k8s.is_some_and(|k| {
        k.get("pod").is_some_and(Value::is_object)
            || k.get("namespace").is_some_and(Value::is_string)
    });
    let container = object
        .get("container")
        .and_then(Value::as_object)
        .is_some_and(|c| c.get("id").is_some_and(Value::is_string));
    pod || container
}

/// A Beat's own fields. (Elastic Agent collects logs with Filebeat: `agent.type: filebeat`.
/// Other agents, such as crowsnest's own node agent, name themselves and are not Beats.)
fn is_beat(object: &Map<String, Value>) -> bool {
    object
        .get("agent")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "filebeat")
        || ["ecs", "input", "data_stream"]
            .iter()
            .any(|key| object.get(*key).is_some_and(Value::is_object))
}

fn dataset_of(object: &Map<String, Value>) -> Option<&str> {
    object
        .get("event")
        .and_then(|e| e.get("dataset"))
        .and_then(Value::as_str)
}

impl Parser for Filebeat {
    fn name(&self) -> &'static str {
        "filebeat"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["elastic-agent"]
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        has_container_meta(object) && is_beat(object)
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let (text, mut obj) = match record {
            Record::Json { text, object }
                if cx.claim == Claim::Detected || self.detect(&object) =>
            {
                (text, object)
            }
            _ => {
                let error = FieldError {
                    field: None,
                    reason: "expected a Filebeat or Elastic Agent record: ECS `kubernetes` or \
                             `container.id` metadata and `agent.type: filebeat`, `ecs`, `input` or \
                             `data_stream`"
                        .to_string(),
                };
                return out.errors.push(error.at(cx.line));
            }
        };
        let mut meta = Meta::default();
        let input = obj
            .get("input")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str);
        let own = dataset_of(&obj);
        let container_log = matches!(input, Some("container" | "docker"))
            || own.is_some_and(|d| d.starts_with(AGENT_DATASET));
        if own.is_some_and(|d| d.starts_with(AGENT_DATASET)) {
            if let Some(Value::Object(event)) = obj.get_mut("event") {
                event.remove("dataset");
            }
        }
        if matches!(
            obj.get("stream").and_then(Value::as_str),
            Some("stdout" | "stderr")
        ) {
            meta.set_str("log.iostream", take_str(&mut obj, "stream").as_deref());
        }
        if let Some(k8s) = obj.get_mut("kubernetes").and_then(Value::as_object_mut) {
            for key in ["labels", "annotations"] {
                if let Some(map) = take_obj(k8s, key) {
                    let dedotted = map
                        .into_iter()
                        .map(|(k, v)| (k.replace('.', "_"), v))
                        .collect();
                    k8s.insert(key.to_string(), Value::Object(dedotted));
                }
            }
            let name = |path: [&str; 2]| {
                k8s.get(path[0])
                    .and_then(|o| o.get(path[1]))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            if let Some(name) = name(["container", "name"]) {
                meta.fill("container.name", json!(name));
            }
            if let Some(node) = name(["node", "name"]) {
                meta.fill("host.name", json!(node));
            }
        }
        let image = obj
            .get("container")
            .and_then(|c| c.get("image"))
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str);
        let has_tag = obj
            .get("container")
            .and_then(|c| c.get("image"))
            .and_then(|i| i.get("tag"))
            .is_some();
        if let Some((name, Some(tag))) = image.filter(|_| !has_tag).map(split_image) {
            let (name, tag) = (name.to_string(), tag.to_string());
            meta.set("container.image.name", json!(name));
            meta.set("container.image.tag", json!(tag));
        }
        let dataset = if container_log {
            container::DATASET
        } else {
            cx.dataset
        };
        let module = if obj.get("kubernetes").is_some_and(Value::is_object) {
            "kubernetes"
        } else {
            "docker"
        };
        let event = build(obj, meta, module, dataset);
        out.events.push(finish(event, text, cx.limits));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{parse_record, Source};
    use crate::Limits;

    #[test]
    fn filebeat_container_input_records() {
        let line = r#"{"@timestamp":"2024-05-01T10:00:00.000Z","message":"GET /pay 200","stream":"stdout","input":{"type":"container"},"agent":{"type":"filebeat"},"container":{"id":"3f2a","runtime":"containerd","image":{"name":"repo/api:1.2"}},"kubernetes":{"namespace":"payments","pod":{"name":"api-7f9"},"node":{"name":"node-1"},"container":{"name":"api"},"labels":{"app.kubernetes.io/name":"api"}},"event":{"dataset":"kubernetes.container_logs"},"data_stream":{"dataset":"kubernetes.container_logs"}}"#;
        let mut out = Decoded::default();
        parse_record(
            line.as_bytes(),
            1,
            Source::from_name(None),
            &Limits::default(),
            &mut out,
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let event = &out.events[0];
        assert_eq!(event.get_str("log.iostream"), Some("stdout"));
        assert_eq!(event.get_str("container.name"), Some("api"));
        assert_eq!(event.get_str("container.image.name"), Some("repo/api"));
        assert_eq!(event.get_str("container.image.tag"), Some("1.2"));
        assert_eq!(event.get_str("host.name"), Some("node-1"));
        assert_eq!(
            event.get_str("kubernetes.labels.app_kubernetes_io/name"),
            Some("api")
        );
        assert_eq!(event.get_str("event.dataset"), Some("container.logs"));
        assert_eq!(
            event.get_str("data_stream.dataset"),
            Some("kubernetes.container_logs")
        );
        assert_eq!(event.get_str("event.module"), Some("kubernetes"));
        assert_eq!(event.get("stream"), None);
    }

    #[test]
    fn other_agents_ecs_records_are_not_beats() {
        let ours = r#"{"message":"x","agent":{"type":"crowsnest-agent"},"container":{"id":"abc"}}"#;
        let object = serde_json::from_str(ours).expect("json");
        assert!(!Filebeat.detect(&object));
    }
}
