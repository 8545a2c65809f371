//! Docker engine events through the Docker API (`bollard`), with each container's
//! security-relevant settings.
//!
//! Container, image, network and volume events become `event.dataset: docker.events` with
//! `event.action` = the engine's action (`create`, `start`, `die`, `oom`, `kill`,
//! `exec_create`, `exec_start`, `pull`, `delete`, `connect`, `mount`, ...). Exec events carry
//! the command as `process.command_line` / `process.args`; `die` carries `docker.exit_code` and
//! `event.outcome`. Container events also carry what `docker inspect` tells about the
//! container's privileges ([`security_fields`]): `docker.container.privileged`, `.cap_add`,
//! `.network_mode`, `.pid_mode`, `.ipc_mode`, `.userns_mode`, `.user`, `.security_opt`,
//! `.readonly_rootfs`, `.mounts` and the flags `.mounts_runtime_socket` / `.mounts_host_root`.
//!
//! The stream resumes after a restart from the checkpointed `timeNano` (Docker's `since`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use crate::meta;
use crate::spool::Record;

/// The checkpoint key of the event stream.
pub const CURSOR_KEY: &str = "docker:events";

/// Runtime sockets whose mount gives a container control of the host.
const RUNTIME_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
];

/// Security-relevant settings from `docker inspect` output (the API's JSON shape).
pub fn security_fields(inspect: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let host = inspect.get("HostConfig").cloned().unwrap_or(Value::Null);
    let copy = |out: &mut Map<String, Value>, key: &str, value: Option<&Value>| {
        if let Some(value) = value.filter(|v| !v.is_null() && *v != &json!("")) {
            out.insert(key.to_string(), value.clone());
        }
    };
    copy(&mut out, "privileged", host.get("Privileged"));
    copy(&mut out, "cap_add", host.get("CapAdd"));
    copy(&mut out, "network_mode", host.get("NetworkMode"));
    copy(&mut out, "pid_mode", host.get("PidMode"));
    copy(&mut out, "ipc_mode", host.get("IpcMode"));
    copy(&mut out, "userns_mode", host.get("UsernsMode"));
    copy(&mut out, "security_opt", host.get("SecurityOpt"));
    copy(&mut out, "readonly_rootfs", host.get("ReadonlyRootfs"));
    copy(
        &mut out,
        "user",
        inspect.get("Config").and_then(|c| c.get("User")),
    );
    let mounts: Vec<Value> = inspect
        .get("Mounts")
        .and_then(Value::as_array)
        .map(|mounts| {
            mounts
                .iter()
                .map(|m| {
                    json!({
                        "type": m.get("Type"), "source": m.get("Source"),
                        "destination": m.get("Destination"), "rw": m.get("RW"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let sources: Vec<&str> = mounts
        .iter()
        .filter_map(|m| m.get("source").and_then(Value::as_str))
        .collect();
    out.insert(
        "mounts_runtime_socket".into(),
        json!(sources.iter().any(|s| RUNTIME_SOCKETS.contains(s))),
    );
    out.insert("mounts_host_root".into(), json!(sources.contains(&"/")));
    if !mounts.is_empty() {
        out.insert("mounts".into(), Value::Array(mounts));
    }
    if let Some(oom) = inspect.get("State").and_then(|s| s.get("OOMKilled")) {
        out.insert("oom_killed".into(), oom.clone());
    }
    out
}

fn category(kind: &str, action: &str) -> (&'static str, &'static str) {
    match (kind, action) {
        (_, "create") => ("configuration", "creation"),
        (_, "destroy" | "delete" | "untag") => ("configuration", "deletion"),
        ("container", "start" | "exec_start" | "exec_create" | "restart" | "unpause") => {
            ("process", "start")
        }
        ("container", "die" | "oom" | "kill" | "stop" | "exec_die" | "pause") => ("process", "end"),
        ("network", _) => ("network", "connection"),
        ("volume", "mount" | "unmount") => ("file", "access"),
        ("image", _) => ("package", "change"),
        _ => ("host", "info"),
    }
}

/// Maps one engine event (its JSON form) to an ECS event; `inspect` is the container's
/// `docker inspect` output when known.
pub fn to_event(message: &Value, inspect: Option<&Value>) -> Map<String, Value> {
    let kind = message.get("Type").and_then(Value::as_str).unwrap_or("");
    let full_action = message.get("Action").and_then(Value::as_str).unwrap_or("");
    let (action, detail) = match full_action.split_once(": ") {
        Some((a, d)) => (a, Some(d)),
        None => (full_action, None),
    };
    let actor_id = message
        .pointer("/Actor/ID")
        .and_then(Value::as_str)
        .unwrap_or("");
    let attributes: HashMap<String, String> = message
        .pointer("/Actor/Attributes")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let (category, type_) = category(kind, action);
    let mut event = Map::new();
    if let Some(nanos) = message.get("timeNano").and_then(Value::as_i64) {
        let ts = chrono::DateTime::from_timestamp_nanos(nanos);
        event.insert(
            "@timestamp".into(),
            json!(ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        );
    }
    let mut ecs = json!({
        "kind": "event", "module": "docker", "dataset": "docker.events",
        "action": action, "category": [category], "type": [type_],
    });
    let mut docker = json!({ "event": { "type": kind } });
    let attrs: Map<String, Value> = attributes
        .iter()
        .map(|(k, v)| (k.replace('.', "_"), json!(v)))
        .collect();
    docker["attributes"] = Value::Object(attrs);
    if action == "die" {
        if let Some(code) = attributes
            .get("exitCode")
            .and_then(|c| c.parse::<i64>().ok())
        {
            docker["exit_code"] = json!(code);
            ecs["outcome"] = json!(if code == 0 { "success" } else { "failure" });
        }
    }
    if action == "oom" {
        ecs["outcome"] = json!("failure");
    }
    let container_id = match kind {
        "container" => Some(actor_id.to_string()),
        _ => attributes.get("container").cloned(),
    };
    let mut meta = inspect.map(meta::from_inspect).unwrap_or_default();
    meta.id = meta.id.or(container_id);
    if kind == "container" {
        meta.name = meta.name.or_else(|| attributes.get("name").cloned());
        if meta.image_name.is_none() {
            if let Some(image) = attributes.get("image") {
                let (name, tag) = meta::split_image(image);
                meta.image_name = Some(name);
                meta.image_tag = tag;
            }
        }
    }
    meta.runtime = Some("docker".into());
    if let Some(inspect) = inspect {
        docker["container"] = Value::Object(security_fields(inspect));
    }
    let mut message_text = format!(
        "docker {kind} {action} {}",
        meta.name.as_deref().unwrap_or(actor_id)
    );
    if let Some(detail) = detail {
        if action.starts_with("exec_") {
            let args: Vec<&str> = detail.split_whitespace().collect();
            event.insert(
                "process".into(),
                json!({ "command_line": detail, "args": args,
                        "executable": args.first(), "name": args.first().map(|a| a.rsplit('/').next()) }),
            );
        }
        message_text.push_str(": ");
        message_text.push_str(detail);
    }
    if let Some(code) = docker.get("exit_code") {
        message_text.push_str(&format!(" (exit code {code})"));
    }
    if kind == "image" {
        let (name, tag) = meta::split_image(attributes.get("name").map_or(actor_id, |n| n));
        event.insert(
            "container".into(),
            json!({ "image": { "name": name, "tag": tag } }),
        );
    } else {
        meta.apply(&mut event);
    }
    event.insert("event".into(), ecs);
    event.insert("docker".into(), docker);
    event.insert("message".into(), json!(message_text));
    event
}

/// A process start waiting for its grace to end ([`crate::exec`]).
struct PendingExec {
    due: std::time::Instant,
    since: std::time::Instant,
    container: String,
    command_line: String,
    event: Map<String, Value>,
}

/// Most process starts waiting (beyond it they are sent at once).
const MAX_PENDING_EXECS: usize = 1_024;

/// Follows the engine's events until `stop`, reconnecting with backoff. Each `exec_start` is
/// also a process start for the profiles when the audit path (`exec_seen`) did not report it
/// within [`crate::exec::GRACE`].
pub fn run(
    socket: &str,
    cursor: Option<i64>,
    tx: &SyncSender<Record>,
    stop: &AtomicBool,
    decorate: &(dyn Fn(&mut Map<String, Value>) + Sync),
    exec_seen: &crate::exec::ExecSeen,
) -> anyhow::Result<()> {
    let mut pending: std::collections::VecDeque<PendingExec> = std::collections::VecDeque::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut last_nanos = cursor.unwrap_or(0);
    let mut inspected: HashMap<String, Value> = HashMap::new();
    let mut backoff =
        crowsnest_util::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !stop.load(Ordering::SeqCst) {
        let docker = match Docker::connect_with_unix(
            socket,
            24 * 3600,
            bollard::API_DEFAULT_VERSION,
        ) {
            Ok(docker) => docker,
            Err(error) => {
                let delay = backoff.next_delay(None);
                tracing::warn!(%error, socket, retry_in_ms = delay.as_millis() as u64, "docker socket unavailable; retrying");
                std::thread::sleep(delay);
                continue;
            }
        };
        let result: anyhow::Result<()> = runtime.block_on(async {
            let since = if last_nanos > 0 {
                (last_nanos / 1_000_000_000).to_string()
            } else {
                // First start: from now on (history is in the engine's own log).
                chrono::Utc::now().timestamp().to_string()
            };
            let options = EventsOptionsBuilder::default().since(&since).build();
            let mut stream = docker.events(Some(options));
            loop {
                let wait = pending
                    .front()
                    .map(|p| p.due.saturating_duration_since(std::time::Instant::now()))
                    .unwrap_or(Duration::from_millis(500))
                    .min(Duration::from_millis(500));
                let next = tokio::time::timeout(wait, stream.next()).await;
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let now = std::time::Instant::now();
                while pending
                    .front()
                    .is_some_and(|p| p.due <= now || pending.len() > MAX_PENDING_EXECS)
                {
                    let Some(p) = pending.pop_front() else { break };
                    if exec_seen.take(&p.container, &p.command_line, p.since) {
                        continue;
                    }
                    let mut event = p.event;
                    decorate(&mut event);
                    let record = Record {
                        event: Some(event),
                        cursor: None,
                    };
                    if tx.send(record).is_err() {
                        return Ok(());
                    }
                }
                let item = match next {
                    Err(_) => continue,
                    Ok(None) => return Ok(()),
                    Ok(Some(item)) => item?,
                };
                let nanos = item.time_nano.unwrap_or(0);
                if nanos <= last_nanos {
                    continue;
                }
                let event = handle(&docker, &item, &mut inspected).await;
                last_nanos = nanos;
                let is_exec_start = item
                    .action
                    .as_deref()
                    .is_some_and(|a| a.starts_with("exec_start"));
                if is_exec_start {
                    let id = event
                        .get("container")
                        .and_then(|c| c.get("id"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let start = crate::exec::process_start(&event, inspected.get(id));
                    if let (Some(start), Some(line)) = (start, crate::exec::command_line(&event)) {
                        pending.push_back(PendingExec {
                            due: std::time::Instant::now() + crate::exec::GRACE,
                            // The audit path may have reported it before the engine did.
                            since: std::time::Instant::now()
                                .checked_sub(Duration::from_secs(5))
                                .unwrap_or_else(std::time::Instant::now),
                            container: id.to_string(),
                            command_line: line,
                            event: start,
                        });
                    }
                }
                let mut event = event;
                decorate(&mut event);
                let record = Record {
                    event: Some(event),
                    cursor: Some((CURSOR_KEY.to_string(), json!({ "time_nano": nanos }))),
                };
                if tx.send(record).is_err() {
                    return Ok(());
                }
            }
        });
        match result {
            Ok(()) => backoff.reset(),
            Err(error) => {
                let delay = backoff.next_delay(None);
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "docker event stream failed; reconnecting");
                std::thread::sleep(delay);
            }
        }
    }
    Ok(())
}

async fn handle(
    docker: &Docker,
    item: &EventMessage,
    inspected: &mut HashMap<String, Value>,
) -> Map<String, Value> {
    let message = serde_json::to_value(item).unwrap_or(Value::Null);
    let is_container = message.get("Type").and_then(Value::as_str) == Some("container");
    let id = message
        .pointer("/Actor/ID")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let action = item.action.as_deref().unwrap_or("");
    if is_container && !id.is_empty() {
        let refresh = !inspected.contains_key(&id)
            || matches!(action, "create" | "start" | "die" | "oom" | "update");
        if refresh {
            if let Ok(found) = docker.inspect_container(&id, None).await {
                if let Ok(value) = serde_json::to_value(found) {
                    inspected.insert(id.clone(), value);
                }
            }
        }
        if inspected.len() > 10_000 {
            inspected.clear();
        }
    }
    let event = to_event(&message, inspected.get(&id).filter(|_| is_container));
    if action == "destroy" {
        inspected.remove(&id);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_event_carries_the_command_and_security_settings() {
        let message = json!({
            "Type": "container", "Action": "exec_start: sh -c id",
            "Actor": {"ID": "c1", "Attributes": {"name": "web", "image": "busybox:1.36", "execID": "e1"}},
            "timeNano": 1_700_000_000_123_456_789i64
        });
        let inspect = json!({
            "Id": "c1", "Name": "/web", "Config": {"Image": "busybox:1.36", "User": "0"},
            "HostConfig": {"Privileged": true, "CapAdd": ["SYS_ADMIN"], "PidMode": "host", "NetworkMode": "bridge"},
            "Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock", "RW": true}]
        });
        let event = Value::Object(to_event(&message, Some(&inspect)));
        assert_eq!(event["event"]["action"], "exec_start");
        assert_eq!(event["process"]["command_line"], "sh -c id");
        assert_eq!(event["process"]["args"], json!(["sh", "-c", "id"]));
        assert_eq!(event["container"]["id"], "c1");
        assert_eq!(event["container"]["name"], "web");
        assert_eq!(event["container"]["image"]["tag"], "1.36");
        assert_eq!(event["docker"]["container"]["privileged"], true);
        assert_eq!(
            event["docker"]["container"]["cap_add"],
            json!(["SYS_ADMIN"])
        );
        assert_eq!(event["docker"]["container"]["pid_mode"], "host");
        assert_eq!(event["docker"]["container"]["mounts_runtime_socket"], true);
        assert_eq!(event["@timestamp"], "2023-11-14T22:13:20.123456789Z");
    }

    #[test]
    fn die_with_a_code_is_a_failure_and_network_events_name_the_container() {
        let die = json!({"Type": "container", "Action": "die",
            "Actor": {"ID": "c2", "Attributes": {"name": "job", "exitCode": "137", "image": "app"}}});
        let event = Value::Object(to_event(&die, None));
        assert_eq!(event["docker"]["exit_code"], 137);
        assert_eq!(event["event"]["outcome"], "failure");
        assert_eq!(event["event"]["type"], json!(["end"]));
        let connect = json!({"Type": "network", "Action": "connect",
            "Actor": {"ID": "n1", "Attributes": {"container": "c2", "name": "bridge", "type": "bridge"}}});
        let event = Value::Object(to_event(&connect, None));
        assert_eq!(event["container"]["id"], "c2");
        assert_eq!(event["event"]["category"], json!(["network"]));
    }
}
