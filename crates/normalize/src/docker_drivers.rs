//! Records of Docker's logging drivers other than `json-file`: `fluentd` (`docker-fluentd`),
//! `gelf` (`gelf`, also `docker-gelf`) and `journald` (`journald`, also `docker-journald`).
//! They reach crowsnest through the Fluent forward protocol (the `fluentd` driver speaks it),
//! through a shipper that read the journal or a GELF endpoint, or as NDJSON
//! (`journalctl -o json`). The fields land where the node agent and the other container
//! formats put them ([`crate::shipper`]), the log text once in `message`.
//!
//! **fluentd** (`{"container_id":"<64 hex>","container_name":"/web","source":"stdout","log":"..."}`),
//! detected by a string `container_id` and `container_name` and `source` `stdout`/`stderr`:
//!
//! | driver | event |
//! |---|---|
//! | `log` | `message` |
//! | `source` | `log.iostream` |
//! | `container_id` | `container.id` (`container.runtime: docker`) |
//! | `container_name` | `container.name` (without Docker's leading `/`) |
//! | `io.kubernetes.pod.namespace`, `.pod.name`, `.pod.uid`, `.container.name` (with `--log-opt labels=...`) | `kubernetes.namespace`, `kubernetes.pod.name`, `kubernetes.pod.uid`, `kubernetes.container.name` |
//!
//! **gelf** (GELF 1.1, any sender; Docker adds its `_container_*` fields), detected by string
//! `version`, `host` and `short_message`:
//!
//! | GELF | event |
//! |---|---|
//! | `short_message` | `message` |
//! | `full_message` | `gelf.full_message` |
//! | `host` | `host.name` |
//! | `timestamp` (epoch seconds) | `@timestamp` |
//! | `level` (syslog severity 0-7) | `log.syslog.severity.code`, `log.level` (`emergency` ... `debug`) |
//! | `_container_id`, `_container_name` | `container.id`, `container.name` |
//! | `_image_name`, `_image_id` | `container.image.name` + `.tag`, `container.image.hash.all` |
//! | `_io.kubernetes.*` | as for `fluentd` |
//! | any other `_<name>`, `version` | `gelf.<name>`, `gelf.version` |
//!
//! **journald** (the journal's fields, as `journalctl -o json` or Fluent Bit's and Fluentd's
//! `systemd` inputs give them), detected by `MESSAGE` and one of `CONTAINER_ID_FULL`,
//! `CONTAINER_ID`, `CONTAINER_NAME`:
//!
//! | journal | event |
//! |---|---|
//! | `MESSAGE` | `message` |
//! | `CONTAINER_ID_FULL` (else `CONTAINER_ID`) | `container.id` (`container.runtime: docker`) |
//! | `CONTAINER_NAME` | `container.name`; a kubelet name `k8s_<container>_<pod>_<namespace>_<uid>_<n>` also gives `kubernetes.container.name`, `kubernetes.pod.name`, `kubernetes.namespace`, `kubernetes.pod.uid` |
//! | `IMAGE_NAME` | `container.image.name`, `container.image.tag` |
//! | `_HOSTNAME` | `host.name` |
//! | `PRIORITY` `6` / `3` | `log.iostream` `stdout` / `stderr` (the driver's convention) |
//! | `_SOURCE_REALTIME_TIMESTAMP`, else `__REALTIME_TIMESTAMP` (µs) | `@timestamp`, when the record has no other time |
//!
//! Other keys stay as they are. Records that name no container are not these parsers' when
//! detected (a plain journal entry stays a generic event); named, such a record is an error.

use crowsnest_model::{ecs, format_timestamp, parse_timestamp};
use serde_json::{json, Map, Value};

use crate::error::FieldError;
use crate::generic::TIME_KEYS;
use crate::registry::{Claim, Context, Parser, Record};
use crate::shipper::{build, move_message, take_obj, take_str, Meta};
use crate::{finish, Decoded};

/// The Docker `fluentd` log driver's records.
#[derive(Debug)]
pub struct DockerFluentd;

/// GELF messages (Docker's `gelf` log driver and any other GELF sender).
#[derive(Debug)]
pub struct Gelf;

/// Journal entries of Docker's `journald` log driver.
#[derive(Debug)]
pub struct Journald;

fn json_record<'a>(
    record: Record<'a>,
    cx: &Context<'_>,
    out: &mut Decoded,
    fits: impl Fn(&Map<String, Value>) -> bool,
    expected: &str,
) -> Option<(&'a str, Map<String, Value>)> {
    let error = match record {
        Record::Json { text, object } if cx.claim == Claim::Detected || fits(&object) => {
            return Some((text, object))
        }
        Record::Json { .. } | Record::Text(_) => FieldError {
            field: None,
            reason: format!("expected {expected}"),
        },
    };
    out.errors.push(error.at(cx.line));
    None
}

impl Parser for DockerFluentd {
    fn name(&self) -> &'static str {
        "docker-fluentd"
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        object.get("container_id").is_some_and(Value::is_string)
            && object.get("container_name").is_some_and(Value::is_string)
            && matches!(
                object.get("source").and_then(Value::as_str),
                Some("stdout" | "stderr")
            )
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let expected = "a Docker fluentd-driver record with string `container_id` and \
                        `container_name` and `source` `stdout` or `stderr`";
        let Some((text, mut obj)) = json_record(record, cx, out, |o| self.detect(o), expected)
        else {
            return;
        };
        let mut meta = Meta::default();
        if let Some(id) = take_str(&mut obj, "container_id") {
            meta.container_id(&id);
            meta.fill("container.runtime", json!("docker"));
        }
        if let Some(name) = take_str(&mut obj, "container_name") {
            meta.set_str("container.name", Some(name.trim_start_matches('/')));
        }
        meta.set_str("log.iostream", take_str(&mut obj, "source").as_deref());
        kubelet_labels(&mut obj, "", &mut meta);
        move_message(&mut obj, "log", &mut meta);
        let event = build(obj, meta, "docker", cx.dataset);
        out.events.push(finish(event, text, cx.limits));
    }
}

impl Parser for Gelf {
    fn name(&self) -> &'static str {
        "gelf"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["docker-gelf"]
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        ["version", "host", "short_message"]
            .iter()
            .all(|key| object.get(*key).is_some_and(Value::is_string))
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let expected = "a GELF message with string `version`, `host` and `short_message`";
        let Some((text, mut obj)) = json_record(record, cx, out, |o| self.detect(o), expected)
        else {
            return;
        };
        let mut meta = Meta::default();
        let mut gelf = take_obj(&mut obj, "gelf").unwrap_or_default();
        meta.set_str(ecs::HOST_NAME, take_str(&mut obj, "host").as_deref());
        if let Some(version) = take_str(&mut obj, "version") {
            gelf.insert("version".to_string(), json!(version));
        }
        if let Some(full) = take_str(&mut obj, "full_message") {
            gelf.insert("full_message".to_string(), json!(full));
        }
        if let Some(level) = obj.get("level").and_then(Value::as_u64).filter(|l| *l <= 7) {
            obj.remove("level");
            meta.set("log.syslog.severity.code", json!(level));
            meta.set("log.level", json!(SEVERITIES[level as usize]));
        }
        let container = obj.get("_container_id").is_some_and(Value::is_string);
        if let Some(id) = take_str(&mut obj, "_container_id") {
            meta.container_id(&id);
            meta.fill("container.runtime", json!("docker"));
        }
        if let Some(name) = take_str(&mut obj, "_container_name") {
            meta.set_str("container.name", Some(name.trim_start_matches('/')));
        }
        if let Some(image) = take_str(&mut obj, "_image_name") {
            meta.image(&image);
        }
        if let Some(id) = take_str(&mut obj, "_image_id") {
            meta.image_digest(&id);
        }
        kubelet_labels(&mut obj, "_", &mut meta);
        let extra: Vec<String> = obj
            .keys()
            .filter(|key| key.len() > 1 && key.starts_with('_'))
            .cloned()
            .collect();
        for key in extra {
            if let Some(value) = obj.remove(&key) {
                gelf.insert(key[1..].to_string(), value);
            }
        }
        if !gelf.is_empty() {
            obj.insert("gelf".to_string(), Value::Object(gelf));
        }
        move_message(&mut obj, "short_message", &mut meta);
        let module = if container { "docker" } else { "gelf" };
        let event = build(obj, meta, module, cx.dataset);
        out.events.push(finish(event, text, cx.limits));
    }
}

/// Syslog severity names, by code, as `log.level`.
const SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];

impl Parser for Journald {
    fn name(&self) -> &'static str {
        "journald"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["docker-journald"]
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        object.contains_key("MESSAGE")
            && ["CONTAINER_ID_FULL", "CONTAINER_ID", "CONTAINER_NAME"]
                .iter()
                .any(|key| object.get(*key).is_some_and(Value::is_string))
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let expected = "a journal entry of Docker's journald driver: `MESSAGE` and one of \
                        `CONTAINER_ID_FULL`, `CONTAINER_ID`, `CONTAINER_NAME`";
        let Some((text, mut obj)) = json_record(record, cx, out, |o| self.detect(o), expected)
        else {
            return;
        };
        let mut meta = Meta::default();
        journald_fields(&mut obj, &mut meta);
        let event = build(obj, meta, "docker", cx.dataset);
        out.events.push(finish(event, text, cx.limits));
    }
}

/// Maps the journald driver's fields of `obj` (see the module docs) into `meta`.
pub(crate) fn journald_fields(obj: &mut Map<String, Value>, meta: &mut Meta) {
    let full = take_str(obj, "CONTAINER_ID_FULL");
    let short = take_str(obj, "CONTAINER_ID");
    if let Some(id) = full.or(short) {
        if !meta.has("container.id") {
            meta.container_id(&id);
        }
        meta.fill("container.runtime", json!("docker"));
    }
    if let Some(name) = take_str(obj, "CONTAINER_NAME") {
        let name = name.trim_start_matches('/');
        meta.set_str("container.name", Some(name));
        if let Some(pod) = kubelet_name(name) {
            meta.fill("kubernetes.container.name", json!(pod.container));
            meta.fill(ecs::K8S_POD_NAME, json!(pod.pod));
            meta.fill(ecs::K8S_NAMESPACE, json!(pod.namespace));
            meta.fill("kubernetes.pod.uid", json!(pod.uid));
        }
    }
    if let Some(image) = take_str(obj, "IMAGE_NAME") {
        meta.image(&image);
    }
    meta.set_str(ecs::HOST_NAME, take_str(obj, "_HOSTNAME").as_deref());
    match obj.get("PRIORITY").and_then(Value::as_str) {
        Some("6") => meta.fill("log.iostream", json!("stdout")),
        Some("3") => meta.fill("log.iostream", json!("stderr")),
        _ => {}
    }
    if !TIME_KEYS.iter().any(|key| obj.contains_key(*key)) {
        let micros = ["_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP"]
            .iter()
            .find_map(|key| obj.get(*key).and_then(Value::as_str))
            .and_then(|text| text.parse::<u64>().ok())
            .and_then(|us| parse_timestamp(&json!(us)));
        if let Some(time) = micros {
            meta.fill(ecs::TIMESTAMP, json!(format_timestamp(time)));
        }
    }
    move_message(obj, "MESSAGE", meta);
}

/// A container name the kubelet gave under Docker: `k8s_<container>[.<hash>]_<pod>_<namespace>_<uid>_<attempt>`.
struct KubeletName<'a> {
    container: &'a str,
    pod: &'a str,
    namespace: &'a str,
    uid: &'a str,
}

fn kubelet_name(name: &str) -> Option<KubeletName<'_>> {
    let rest = name.strip_prefix("k8s_")?;
    let parts: Vec<&str> = rest.split('_').collect();
    let [container, pod, namespace, uid, _attempt] = parts[..] else {
        return None;
    };
    let container = container.split('.').next().unwrap_or(container);
    if [container, pod, namespace, uid]
        .iter()
        .any(|p| p.is_empty())
    {
        return None;
    }
    Some(KubeletName {
        container,
        pod,
        namespace,
        uid,
    })
}

/// The `io.kubernetes.*` labels a driver passed on as `<prefix>io.kubernetes...` keys.
fn kubelet_labels(obj: &mut Map<String, Value>, prefix: &str, meta: &mut Meta) {
    let mut labels = Map::new();
    for key in [
        "io.kubernetes.pod.namespace",
        "io.kubernetes.pod.name",
        "io.kubernetes.pod.uid",
        "io.kubernetes.container.name",
    ] {
        if let Some(value) = take_str(obj, &format!("{prefix}{key}")) {
            labels.insert(key.to_string(), json!(value));
        }
    }
    if !labels.is_empty() {
        meta.kubelet_labels(|key| labels.get(key).and_then(Value::as_str).map(str::to_string));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{parse_record, Source};
    use crate::Limits;

    fn parse(line: &str, source: Option<&str>) -> Decoded {
        let mut out = Decoded::default();
        parse_record(
            line.as_bytes(),
            1,
            Source::from_name(source),
            &Limits::default(),
            &mut out,
        );
        out
    }

    #[test]
    fn fluentd_driver_records() {
        let line = r#"{"container_id":"b5d3","container_name":"/web","source":"stderr","log":"oops","io.kubernetes.pod.name":"web-1","io.kubernetes.pod.namespace":"shop"}"#;
        let event = &parse(line, None).events[0];
        assert_eq!(event.get_str("container.id"), Some("b5d3"));
        assert_eq!(event.get_str("container.name"), Some("web"));
        assert_eq!(event.get_str("container.runtime"), Some("docker"));
        assert_eq!(event.get_str("log.iostream"), Some("stderr"));
        assert_eq!(event.get_str("message"), Some("oops"));
        assert_eq!(event.get_str("kubernetes.namespace"), Some("shop"));
        assert_eq!(event.get_str("event.module"), Some("kubernetes"));
        assert!(!event.get("log").is_some_and(Value::is_string));
        assert_eq!(event.get("source"), None);
    }

    #[test]
    fn gelf_messages_with_and_without_a_container() {
        let docker = r#"{"version":"1.1","host":"h1","short_message":"hi","timestamp":1714557600.5,"level":3,"_container_id":"abc","_container_name":"web","_image_name":"nginx:1.25","_image_id":"sha256:77","_command":"nginx -g daemon off;","_tag":"abc"}"#;
        let event = &parse(docker, None).events[0];
        assert_eq!(event.get_str("message"), Some("hi"));
        assert_eq!(event.get_str("host.name"), Some("h1"));
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2024-05-01T10:00:00.500000Z")
        );
        assert_eq!(event.get_str("log.level"), Some("error"));
        assert_eq!(event.get_str("container.id"), Some("abc"));
        assert_eq!(event.get_str("container.image.name"), Some("nginx"));
        assert_eq!(event.get_str("container.image.tag"), Some("1.25"));
        assert_eq!(event.get_str("gelf.command"), Some("nginx -g daemon off;"));
        assert_eq!(event.get_str("event.dataset"), Some("container.logs"));
        assert_eq!(event.get("short_message"), None);
        let app = r#"{"version":"1.1","host":"h2","short_message":"login","_user":"bob"}"#;
        let event = &parse(app, Some("myapp")).events[0];
        assert_eq!(event.get_str("event.dataset"), Some("myapp"));
        assert_eq!(event.get_str("event.module"), Some("gelf"));
        assert_eq!(event.get_str("gelf.user"), Some("bob"));
    }

    #[test]
    fn journald_entries_with_kubelet_names() {
        let line = r#"{"MESSAGE":"filled 157/157","PRIORITY":"6","_HOSTNAME":"cube","CONTAINER_NAME":"k8s_kairosdb_kairosdb-914055854-b63vq_default_d6c53deb-05a4-11e8-a8c4-080027435fb7_23","CONTAINER_ID":"56e257661383","CONTAINER_ID_FULL":"56e2576613838","_SOURCE_REALTIME_TIMESTAMP":"1541358747464738"}"#;
        let event = &parse(line, None).events[0];
        assert_eq!(event.get_str("message"), Some("filled 157/157"));
        assert_eq!(event.get_str("container.id"), Some("56e2576613838"));
        assert_eq!(
            event.get_str("kubernetes.pod.name"),
            Some("kairosdb-914055854-b63vq")
        );
        assert_eq!(event.get_str("kubernetes.namespace"), Some("default"));
        assert_eq!(event.get_str("kubernetes.container.name"), Some("kairosdb"));
        assert_eq!(event.get_str("host.name"), Some("cube"));
        assert_eq!(event.get_str("log.iostream"), Some("stdout"));
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2018-11-04T19:12:27.464738Z")
        );
        assert_eq!(event.get("MESSAGE"), None);
        let plain = r#"{"MESSAGE":"sshd started","_HOSTNAME":"h"}"#;
        assert_eq!(
            parse(plain, None).events[0].get_str("event.module"),
            Some("ndjson")
        );
        let named = parse(plain, Some("journald"));
        assert_eq!((named.events.len(), named.errors.len()), (0, 1));
    }
}
