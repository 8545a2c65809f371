//! KubeArmor's JSON logs and alerts (`kubearmor`): what `karmor logs --json` and the
//! relay's log/alert streams write, one object a line (`ContainerLog`/`HostLog` telemetry and
//! `MatchedPolicy`/`MatchedHostPolicy`/`DefaultPosture` alerts share the shape).
//!
//! | KubeArmor | our field |
//! |---|---|
//! | `Operation: Process` | `process`/`start`: `ProcessName` → `process.executable`, `Resource` (the program and its arguments) → `process.command_line` |
//! | `Operation: File` | `file`/`access`, or `change` when `Data` names a write (`O_WRONLY`, `O_RDWR`, `O_CREAT`, `O_TRUNC`) or an unlink/rename/chmod syscall: `Resource` → `file.path`, `Source` → `process.command_line` |
//! | `Operation: Network` with `SYS_CONNECT` | `network`/`connection`: `Resource`'s `sin_addr`/`sin6_addr`/`remoteip` and `sin_port`/`sin6_port`/`port` → `destination.*` |
//! | other operations (`Network` socket/bind/accept, `Capabilities`, `Syscall`) | no category |
//! | `ParentProcessName`, `HostPID`, `HostPPID`, `UID` | `process.parent.executable`, `process.pid`, `process.parent.pid`, `user.id` (host pids, as the agent writes them) |
//! | `ContainerID`, `ContainerName`, `ContainerImage`, `NamespaceName`, `PodName`, `HostName` | `container.*`, `kubernetes.*`, `host.name` |
//! | `UpdatedTime` (else `Timestamp`, seconds) | `@timestamp` |
//! | `PolicyName` (alerts), `Message`, `Result`, `Action` | `event.kind: alert`, `rule.name`, `message`, `event.outcome` (`Passed` is success) |
//!
//! The record is kept whole under `kubearmor.*`. Detected by a string `Operation` with a
//! `ProcessName` and a `Resource` or `Data`.

use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use serde_json::{json, Map, Value};

use crate::error::FieldError;
use crate::registry::{Context, Parser, Record};
use crate::sensor::{int, text, Kind, Proc, Seen};
use crate::{finish, Decoded, LineError};

/// The KubeArmor parser.
#[derive(Debug)]
pub struct KubeArmor;

impl Parser for KubeArmor {
    fn name(&self) -> &'static str {
        "kubearmor"
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        object.get("Operation").is_some_and(Value::is_string)
            && object.contains_key("ProcessName")
            && (object.contains_key("Resource") || object.contains_key("Data"))
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let Record::Json { text, object } = record else {
            let reason = "expected a KubeArmor JSON log (`Operation`, `ProcessName`, `Resource`)";
            return out.errors.push(LineError::new(cx.line, reason));
        };
        match map(object) {
            Ok(event) => out.events.push(finish(event, text, cx.limits)),
            Err(error) => out.errors.push(error.at(cx.line)),
        }
    }
}

fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
    text(object.get(key))
}

/// `key=value` pairs of a `Resource` or `Data` text.
fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
}

fn map(object: Map<String, Value>) -> Result<Event, FieldError> {
    let operation = object
        .get("Operation")
        .and_then(Value::as_str)
        .ok_or_else(|| FieldError::field("Operation", "expected a string"))?;
    let mut event = Event::new();
    let time = object
        .get("UpdatedTime")
        .and_then(parse_timestamp)
        .or_else(|| object.get("Timestamp").and_then(parse_timestamp));
    if let Some(time) = time {
        event.set(ecs::TIMESTAMP, Value::String(format_timestamp(time)));
    } else if object.contains_key("UpdatedTime") || object.contains_key("Timestamp") {
        return Err(FieldError::field(
            "UpdatedTime",
            "expected an RFC 3339 `UpdatedTime` or an epoch `Timestamp`",
        ));
    }
    let alert = object.contains_key("PolicyName")
        || object
            .get("Type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("Matched") || t == "DefaultPosture");
    event.set(
        ecs::EVENT_KIND,
        json!(if alert { "alert" } else { "event" }),
    );
    event.set(ecs::EVENT_MODULE, json!("kubearmor"));
    event.set(
        ecs::EVENT_DATASET,
        json!(if alert {
            "kubearmor.alerts"
        } else {
            "kubearmor.logs"
        }),
    );
    let resource = string(&object, "Resource");
    let source = string(&object, "Source");
    let data = string(&object, "Data").unwrap_or_default();
    let syscall = pairs(&data)
        .find(|(k, _)| *k == "syscall" || *k == "lsm")
        .map(|(_, v)| v.to_string());
    let mut process = Proc {
        executable: string(&object, "ProcessName"),
        pid: int(object.get("HostPID")).or_else(|| int(object.get("PID"))),
        ..Proc::default()
    };
    let parent = Proc {
        executable: string(&object, "ParentProcessName"),
        pid: int(object.get("HostPPID")).or_else(|| int(object.get("PPID"))),
        ..Proc::default()
    };
    let mut seen = Seen {
        user_id: string(&object, "UID"),
        container_id: string(&object, "ContainerID"),
        container_name: string(&object, "ContainerName"),
        image: string(&object, "ContainerImage"),
        namespace: string(&object, "NamespaceName"),
        pod_name: string(&object, "PodName"),
        host: string(&object, "HostName"),
        ..Seen::default()
    };
    let upper = data.to_ascii_uppercase();
    let kind = match operation {
        "Process" => {
            process.command_line = resource.clone();
            Kind::Exec
        }
        "File" => {
            process.command_line = source.clone();
            seen.file_path = resource.clone();
            // KubeArmor's `Data` names the syscall and its flags in one string.
            let changes = crate::sensor::opens_for_writing(&upper)
                || ["UNLINK", "RENAME", "CHMOD", "CHOWN", "MKDIR", "RMDIR"]
                    .iter()
                    .any(|w| upper.contains(w));
            Kind::file(changes)
        }
        "Network" => {
            process.command_line = source.clone();
            if upper.contains("CONNECT") {
                for (key, value) in pairs(resource.as_deref().unwrap_or("")) {
                    match key {
                        "sin_addr" | "sin6_addr" | "remoteip" => {
                            seen.destination_ip = Some(value.to_string());
                        }
                        "sin_port" | "sin6_port" | "port" => {
                            seen.destination_port = value.parse().ok();
                        }
                        _ => {}
                    }
                }
                Kind::Connect
            } else {
                Kind::Other
            }
        }
        _ => {
            process.command_line = source.clone();
            Kind::Other
        }
    };
    seen.process = process;
    seen.parent = parent;
    if alert {
        if let Some(policy) = string(&object, "PolicyName") {
            event.set(ecs::RULE_NAME, json!(policy));
        }
        if let Some(message) = string(&object, "Message") {
            event.set(ecs::MESSAGE, json!(message));
        }
    }
    if let Some(result) = string(&object, "Result") {
        let outcome = if result == "Passed" {
            "success"
        } else {
            "failure"
        };
        event.set(ecs::EVENT_OUTCOME, json!(outcome));
    }
    let action = syscall
        .map(|s| s.trim_start_matches("SYS_").to_ascii_lowercase())
        .unwrap_or_else(|| operation.to_ascii_lowercase());
    seen.apply(&mut event, kind, Some(&action));
    event.set("kubearmor", Value::Object(object));
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::detect;

    use crate::registry::decode_detected as decode;

    #[test]
    fn process_file_and_network_operations() {
        let exec = r#"{"Timestamp":1696577978,"HostName":"n1","NamespaceName":"prod","PodName":"web","ContainerID":"abc","ContainerImage":"nginx:1.25@sha256:00","ParentProcessName":"/bin/bash","ProcessName":"/usr/bin/curl","HostPPID":10,"HostPID":11,"UID":0,"Type":"ContainerLog","Source":"/bin/bash","Operation":"Process","Resource":"/usr/bin/curl -s http://x/a.sh","Data":"syscall=SYS_EXECVE","Result":"Passed"}"#;
        let object: Map<String, Value> = serde_json::from_str(exec).expect("JSON");
        assert_eq!(detect(&object).name(), "kubearmor");
        let event = &decode(exec).events[0];
        assert_eq!(event.get("event.category"), Some(&json!(["process"])));
        assert_eq!(event.get_str("event.action"), Some("execve"));
        assert_eq!(event.get_str("process.executable"), Some("/usr/bin/curl"));
        assert_eq!(
            event.get_str("process.command_line"),
            Some("/usr/bin/curl -s http://x/a.sh")
        );
        assert_eq!(
            event.get_str("process.parent.executable"),
            Some("/bin/bash")
        );
        assert_eq!(event.get_str("container.image.tag"), Some("1.25"));
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2023-10-06T07:39:38.000000Z")
        );
        let file = decode(
            r#"{"ProcessName":"/bin/rm","Source":"/bin/rm /root/.bash_history","Operation":"File","Resource":"/root/.bash_history","Data":"syscall=SYS_UNLINKAT flags=","PolicyName":"p","Type":"MatchedPolicy","Message":"m","Result":"Permission denied"}"#,
        );
        let event = &file.events[0];
        assert_eq!(event.get("event.type"), Some(&json!(["change"])));
        assert_eq!(event.get_str("event.kind"), Some("alert"));
        assert_eq!(event.get_str("event.outcome"), Some("failure"));
        assert_eq!(event.get_str("file.path"), Some("/root/.bash_history"));
        let net = decode(
            r#"{"ProcessName":"/bin/nc","Source":"nc 1.2.3.4 53","Operation":"Network","Resource":"sa_family=AF_INET sin_port=53 sin_addr=10.0.0.10","Data":"syscall=SYS_CONNECT fd=10"}"#,
        );
        assert_eq!(net.events[0].get_str("destination.ip"), Some("10.0.0.10"));
        assert_eq!(net.events[0].get("destination.port"), Some(&json!(53)));
    }
}
