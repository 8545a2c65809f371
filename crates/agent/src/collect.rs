//! The file collectors: which files are followed, and what each line becomes.
//!
//! One thread polls every followed file (every 250 ms when idle, every 50 ms when the kernel
//! audit log is followed: a process start is judged against the profiles as soon as it is
//! read; the directories are listed again every 250 ms for new containers) and hands [`Record`]s to the batcher through a
//! bounded channel, so a full spool stops the reading (backpressure) instead of growing memory.
//!
//! | source | files | dataset |
//! |---|---|---|
//! | Docker `json-file` logs | `<docker-root>/containers/<id>/<id>-json.log` | `container.logs` |
//! | CRI logs | `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log` | `container.logs` |
//! | kernel audit | `/var/log/audit/audit.log` | `auditd.process` / `auditd.file` / `auditd.host` |
//! | host logs | syslog, auth.log, messages, secure, kubelet/containerd logs | `system.syslog` / `system.auth` / `<name>.log` |
//! | Falco | its `json_output` file | `falco.alerts` |
//!
//! Container log lines and Falco alerts are mapped by the parsers of `crowsnest-normalize`'s
//! registry (the same the server's endpoints and `crowsnest hunt` use); the collector adds
//! what only the node knows (`log.file.path`, container and pod identity). Every record carries
//! the file's cursor, keyed `file:<path>`, so a restart resumes at the last line that reached
//! the spool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crowsnest_normalize::container::{self, Format, Joiner, LogLine, Reassembler, MAX_LINE_BYTES};
use crowsnest_normalize::falco::Falco;
use crowsnest_normalize::registry::{parse_record, Source};
use crowsnest_normalize::{Decoded, Limits};

use crate::audit;
use crate::exec::{self, ExecSeen};
use crate::meta::{self, ContainerMeta};
use crate::spool::Record;
use crate::tail::{Cursor, Tail};

/// How often the directories are listed for new files: a fast-logging container with a small
/// `max-size`/`max-file` rotates its first lines away within seconds.
const SCAN_EVERY: Duration = Duration::from_millis(250);

/// The idle poll interval, and the shorter one while the audit log is followed.
const IDLE: Duration = Duration::from_millis(250);
const IDLE_AUDIT: Duration = Duration::from_millis(50);

/// What to follow.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Docker's data root (`/var/lib/docker`), for json-file logs and container metadata.
    pub docker_root: Option<PathBuf>,
    /// Whether to follow the json-file logs under the docker root (else it serves metadata).
    pub docker_logs: bool,
    /// The CRI pod log directory (`/var/log/pods`).
    pub pods_dir: Option<PathBuf>,
    /// `/var/log/containers` (symlinks that name the container id).
    pub containers_dir: Option<PathBuf>,
    /// The audit log (`/var/log/audit/audit.log`).
    pub audit_log: Option<PathBuf>,
    /// Plain-text host logs.
    pub host_logs: Vec<PathBuf>,
    /// Falco's JSON output file.
    pub falco_log: Option<PathBuf>,
    /// Where `/proc` is (a DaemonSet mounts the host's at `/host/proc`).
    pub proc_root: PathBuf,
}

#[derive(Debug, Clone)]
enum Kind {
    Container(Format),
    Audit,
    Host(String),
    Falco,
}

struct Followed {
    tail: Tail,
    kind: Kind,
    reassembler: Option<Reassembler>,
    /// Joins stack traces (container logs); holds one line until the next shows it is complete.
    joiner: Joiner<Option<Cursor>>,
    aggregator: audit::Aggregator,
    /// Cursor of the last line of the events the aggregator holds.
    audit_cursor: Option<Cursor>,
    meta: Option<ContainerMeta>,
    docker_id: Option<String>,
}

/// Dataset and module of a host log, from its file name.
fn host_dataset(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("host");
    match name {
        "auth.log" | "secure" => "system.auth".into(),
        "syslog" | "messages" => "system.syslog".into(),
        other => other.trim_end_matches(".log").replace(['.', ' '], "_") + ".log",
    }
}

fn discover(sources: &Sources) -> Vec<(PathBuf, Kind, Option<String>)> {
    let mut found = Vec::new();
    if let Some(root) = sources.docker_root.as_ref().filter(|_| sources.docker_logs) {
        for entry in read_dir(&root.join("containers")) {
            let id = entry
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string);
            if let Some(id) = id {
                let log = entry.join(format!("{id}-json.log"));
                if log.exists() {
                    found.push((log, Kind::Container(Format::DockerJson), Some(id)));
                }
            }
        }
    }
    if let Some(pods) = &sources.pods_dir {
        for pod in read_dir(pods) {
            for container in read_dir(&pod) {
                for log in read_dir(&container) {
                    if log.extension().is_some_and(|e| e == "log") {
                        found.push((log, Kind::Container(Format::Cri), None));
                    }
                }
            }
        }
    }
    for path in sources.host_logs.iter().filter(|p| p.exists()) {
        found.push((path.clone(), Kind::Host(host_dataset(path)), None));
    }
    if let Some(path) = sources.audit_log.as_ref().filter(|p| p.exists()) {
        found.push((path.clone(), Kind::Audit, None));
    }
    if let Some(path) = sources.falco_log.as_ref().filter(|p| p.exists()) {
        found.push((path.clone(), Kind::Falco, None));
    }
    found
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Container ids of CRI log files, from the `/var/log/containers` symlinks.
fn cri_ids(containers_dir: Option<&Path>) -> HashMap<PathBuf, String> {
    let mut ids = HashMap::new();
    for link in containers_dir.map(read_dir).unwrap_or_default() {
        let name = link.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let (Some(id), Ok(target)) = (
            meta::id_from_containers_link(name),
            std::fs::read_link(&link),
        ) {
            let target = if target.is_absolute() {
                target
            } else {
                link.parent().map(|p| p.join(&target)).unwrap_or(target)
            };
            ids.insert(target, id.to_string());
        }
    }
    ids
}

/// The cursor key of a followed file.
pub fn cursor_key(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// Runs the file collectors until `stop`; `cursors` are the committed resume points. Process
/// starts the audit log attributes to a container are told to `exec_seen` (see [`exec`]).
pub fn run(
    sources: &Sources,
    cursors: &std::collections::BTreeMap<String, Value>,
    tx: &SyncSender<Record>,
    stop: &AtomicBool,
    decorate: &(dyn Fn(&mut Map<String, Value>) + Sync),
    exec_seen: Option<std::sync::Arc<ExecSeen>>,
) {
    let mut followed: HashMap<PathBuf, Followed> = HashMap::new();
    let mut last_scan: Option<Instant> = None;
    let mut metadata = Known {
        exec_seen,
        ..Known::default()
    };
    while !stop.load(Ordering::SeqCst) {
        if last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
            last_scan = Some(Instant::now());
            let ids = cri_ids(sources.containers_dir.as_deref());
            for (path, kind, docker_id) in discover(sources) {
                if followed.contains_key(&path) {
                    continue;
                }
                let cursor = cursors
                    .get(&cursor_key(&path))
                    .and_then(|v| serde_json::from_value::<Cursor>(v.clone()).ok());
                let mut meta = match &kind {
                    Kind::Container(Format::Cri) => meta::from_cri_path(&path),
                    _ => None,
                };
                if let (Some(meta), Some(id)) = (meta.as_mut(), ids.get(&path)) {
                    meta.id = Some(id.clone());
                    meta.runtime = Some("containerd".into());
                }
                let reassembler = match kind {
                    Kind::Container(format) => Some(Reassembler::new(format)),
                    _ => None,
                };
                tracing::info!(path = %path.display(), ?kind, resumed = cursor.is_some(), "following");
                followed.insert(
                    path.clone(),
                    Followed {
                        tail: Tail::new(path, cursor, MAX_LINE_BYTES + 64 * 1024),
                        kind,
                        reassembler,
                        joiner: Joiner::default(),
                        aggregator: audit::Aggregator::default(),
                        audit_cursor: None,
                        meta,
                        docker_id,
                    },
                );
            }
            followed.retain(|path, f| {
                let keep = !f.tail.finished();
                if !keep {
                    tracing::info!(path = %path.display(), "file gone; no longer followed");
                }
                keep
            });
        }
        let mut idle = true;
        for followed in followed.values_mut() {
            if followed.meta.is_none() {
                if let (Some(root), Some(id)) = (&sources.docker_root, &followed.docker_id) {
                    followed.meta = meta::from_docker_root(root, id);
                }
            }
            match poll_one(followed, sources, &mut metadata, tx, decorate) {
                Ok(true) => idle = false,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(path = %followed.tail.path().display(), %error, "reading failed")
                }
            }
            if stop.load(Ordering::SeqCst) {
                return;
            }
        }
        if idle {
            let audit = followed.values().any(|f| matches!(f.kind, Kind::Audit));
            std::thread::sleep(if audit { IDLE_AUDIT } else { IDLE });
        }
    }
}

/// Reads new lines of one file; true when there were any.
fn poll_one(
    f: &mut Followed,
    sources: &Sources,
    metadata: &mut Known,
    tx: &SyncSender<Record>,
    decorate: &(dyn Fn(&mut Map<String, Value>) + Sync),
) -> std::io::Result<bool> {
    let (lines, switched) = f.tail.poll(2_000)?;
    if switched {
        if let Some(r) = f.reassembler.as_mut() {
            r.reset();
        }
    }
    let key = cursor_key(f.tail.path());
    let send = |event: Option<Map<String, Value>>, cursor: Option<Cursor>| {
        let record = Record {
            event: event.map(|mut e| {
                decorate(&mut e);
                e
            }),
            cursor: cursor.map(|c| (key.clone(), json!(c))),
        };
        tx.send(record).is_ok()
    };
    if lines.is_empty() {
        if let (Some((log, cursor)), Kind::Container(format)) = (f.joiner.flush(), &f.kind) {
            let event = container_event(&log, *format, f.tail.path(), f.meta.as_ref());
            send(Some(event), cursor);
        }
        if matches!(f.kind, Kind::Audit) && !f.aggregator.is_empty() {
            let cursor = f.audit_cursor.take();
            for records in f.aggregator.flush() {
                let event = audit_event(&records, sources, metadata);
                send(Some(event), cursor);
            }
        }
        return Ok(false);
    }
    for line in lines {
        let ok = match &f.kind {
            Kind::Container(format) => {
                let Some(r) = f.reassembler.as_mut() else {
                    continue;
                };
                match r.push(&line.text) {
                    Ok(Some(log)) => {
                        let cursor = (!r.has_pending()).then_some(line.cursor);
                        match f.joiner.push(log, cursor) {
                            Some((done, cursor)) => {
                                let event =
                                    container_event(&done, *format, f.tail.path(), f.meta.as_ref());
                                send(Some(event), cursor)
                            }
                            None => true,
                        }
                    }
                    Ok(None) => true,
                    Err(error) => {
                        // No cursor here: a held line must not be skipped on restart.
                        tracing::debug!(%error, "unreadable container log line skipped");
                        true
                    }
                }
            }
            Kind::Host(dataset) => {
                let event = json!({
                    "message": line.text,
                    "event": {"kind": "event", "module": "system", "dataset": dataset},
                    "log": {"file": {"path": f.tail.path().display().to_string()}},
                });
                send(as_map(event), Some(line.cursor))
            }
            Kind::Falco => {
                let events = falco_events(&line.text);
                if events.is_empty() {
                    send(None, Some(line.cursor))
                } else {
                    events
                        .into_iter()
                        .all(|event| send(Some(event), Some(line.cursor)))
                }
            }
            Kind::Audit => {
                let Some(record) = audit::parse_line(&line.text) else {
                    continue;
                };
                let done = f.aggregator.push(record);
                let mut ok = true;
                let finished_cursor = f.audit_cursor;
                for records in done {
                    let event = audit_event(&records, sources, metadata);
                    ok &= send(Some(event), finished_cursor);
                }
                f.audit_cursor = Some(line.cursor);
                if f.aggregator.is_empty() {
                    // The line was an EOE: everything through it is handed on.
                    ok &= send(None, f.audit_cursor.take());
                }
                ok
            }
        };
        if !ok {
            break;
        }
    }
    Ok(true)
}

fn as_map(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn container_event(
    log: &LogLine,
    format: Format,
    path: &Path,
    meta: Option<&ContainerMeta>,
) -> Map<String, Value> {
    let mut event = container::log_event(log, format).0;
    // On a node, a container with a pod is Kubernetes' whichever runtime wrote the file.
    let module = if meta.is_some_and(|m| m.pod_name.is_some()) {
        "kubernetes"
    } else {
        "docker"
    };
    if let Some(Value::Object(meta)) = event.get_mut("event") {
        meta.insert("module".into(), json!(module));
    }
    if let Value::Object(log) = event.entry("log").or_insert_with(|| json!({})) {
        log.insert("file".into(), json!({"path": path.display().to_string()}));
    }
    if let Some(meta) = meta {
        meta.apply(&mut event);
    }
    event
}

/// One line of Falco's JSON output, by the registry's Falco parser. A line that is not an
/// alert is kept as a plain event with `error.message` saying why, never dropped.
fn falco_events(text: &str) -> Vec<Map<String, Value>> {
    let mut decoded = Decoded::default();
    let limits = Limits {
        max_line_bytes: MAX_LINE_BYTES,
        ..Limits::default()
    };
    parse_record(
        text.as_bytes(),
        1,
        Source::Named(&Falco),
        &limits,
        &mut decoded,
    );
    let mut events: Vec<Map<String, Value>> = decoded.events.into_iter().map(|e| e.0).collect();
    for error in decoded.errors {
        let mut reason = error.reason;
        if let Some(field) = error.field {
            reason = format!("`{field}`: {reason}");
        }
        events.push(as_map(json!({
            "message": text,
            "event": {"kind": "event", "module": "falco", "dataset": "falco.alerts", "original": text},
            "error": {"message": reason},
        })).unwrap_or_default());
    }
    events
}

/// What the collector remembers across audit events.
#[derive(Debug, Default)]
pub struct Known {
    /// Container id -> its metadata.
    metadata: HashMap<String, ContainerMeta>,
    /// pid of a `runc exec` -> the container it runs a process in (its last argument). `docker
    /// exec`'s process is a child of `runc`, outside the container, and a one-shot command is
    /// gone from /proc before the agent reads it: its parent's exec names the container.
    runc_exec: HashMap<i64, String>,
    /// pid of a container shim (`containerd-shim*`) -> the container its latest `runc exec` /
    /// `create` / `run` named. `runc exec --detach` returns as soon as the process is set up, so
    /// the exec'd program often calls `execve` after its runc parents have exited: the kernel
    /// has reparented it to the shim (a subreaper), and the shim's last runc command names the
    /// container. (One shim per container under Docker; one per pod under containerd's CRI,
    /// where two execs into two containers of one pod in the same millisecond could be
    /// confused.)
    shim_exec: HashMap<i64, String>,
    /// Where container process starts are told, so the engine's `exec_start` does not stand in
    /// for one the audit path saw.
    exec_seen: Option<std::sync::Arc<ExecSeen>>,
}

/// Most `runc exec` pids remembered (the map is cleared past it: they are needed for
/// milliseconds).
const MAX_RUNC_EXEC: usize = 4_096;

/// Whether the event's program is `runc`.
fn is_runc(event: &Map<String, Value>) -> bool {
    event
        .get("process")
        .and_then(|p| p.get("executable"))
        .and_then(Value::as_str)
        .and_then(|exe| exe.rsplit('/').next())
        .is_some_and(|name| name == "runc")
}

/// The container a `runc … <subcommand> … <id>` command line starts a process in, for one of
/// `subcommands`.
fn runc_target(event: &Map<String, Value>, subcommands: &[&str]) -> Option<String> {
    let process = event.get("process")?;
    if !is_runc(event) {
        return None;
    }
    let args: Vec<&str> = process
        .get("args")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !args.iter().any(|a| subcommands.contains(a)) {
        return None;
    }
    let last = args.last()?;
    (last.len() == 64 && last.bytes().all(|b| b.is_ascii_hexdigit())).then(|| last.to_string())
}

fn audit_event(
    records: &[audit::AuditRecord],
    sources: &Sources,
    known: &mut Known,
) -> Map<String, Value> {
    let mut event = audit::to_event(records);
    audit::add_parent(&mut event, &sources.proc_root);
    let pid = event
        .get("process")
        .and_then(|p| p.get("pid"))
        .and_then(Value::as_i64);
    let ppid = event
        .get("process")
        .and_then(|p| p.pointer("/parent/pid"))
        .and_then(Value::as_i64);
    // `runc exec <id>` starts `runc init` (runc again), whose child execs the command: both
    // runc processes remember the container, and neither is the container's program.
    let runc = is_runc(&event);
    let via_parent = ppid.and_then(|p| known.runc_exec.get(&p).cloned());
    if let (true, Some(pid)) = (runc, pid) {
        // Only `exec`: the children of `runc create` include the runtime's hooks
        // (`dockerd libnetwork-setkey`), which run on the host.
        if let Some(target) = runc_target(&event, &["exec"]).or_else(|| via_parent.clone()) {
            if known.runc_exec.len() >= MAX_RUNC_EXEC {
                known.runc_exec.clear();
            }
            known.runc_exec.insert(pid, target);
        }
    }
    // A runc started by a shim: the shim's next orphaned child runs in that container.
    let parent_is_shim = event
        .get("process")
        .and_then(|p| p.pointer("/parent/name"))
        .and_then(Value::as_str)
        .is_some_and(|name| name.starts_with("containerd-shim"));
    let via_shim = match (parent_is_shim, ppid) {
        (true, Some(ppid)) if runc => {
            if let Some(target) = runc_target(&event, &["exec", "create", "run"]) {
                if known.shim_exec.len() >= MAX_RUNC_EXEC {
                    known.shim_exec.clear();
                }
                known.shim_exec.insert(ppid, target);
            }
            None
        }
        (true, Some(ppid)) => known.shim_exec.get(&ppid).cloned(),
        _ => None,
    };
    let pids: Vec<i64> = [pid, ppid].into_iter().flatten().collect();
    let container = audit::container_of_pid(&sources.proc_root, &pids)
        .or_else(|| via_parent.or(via_shim).filter(|_| !runc));
    if let Some(id) = container {
        let exec_seen = known.exec_seen.clone();
        let metadata = &mut known.metadata;
        let known = metadata.get(&id).cloned();
        let meta = known
            .or_else(|| {
                let found = sources
                    .docker_root
                    .as_ref()
                    .and_then(|root| meta::from_docker_root(root, &id))?;
                if metadata.len() > 10_000 {
                    metadata.clear();
                }
                metadata.insert(id.clone(), found.clone());
                Some(found)
            })
            .unwrap_or(ContainerMeta {
                id: Some(id),
                ..ContainerMeta::default()
            });
        if let (Some(seen), Some(id), Some(line)) =
            (&exec_seen, meta.id.as_deref(), exec::command_line(&event))
        {
            seen.saw(id, &line);
        }
        meta.apply(&mut event);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_shot_docker_exec_is_attributed_through_its_runc_parent() {
        let id = "3f2a9c1be47d".repeat(6)[..64].to_string();
        let proc_root = tempfile::tempdir().expect("tempdir");
        let sources = Sources {
            proc_root: proc_root.path().to_path_buf(),
            ..Sources::default()
        };
        let records = |text: &str| -> Vec<audit::AuditRecord> {
            text.lines().filter_map(audit::parse_line).collect()
        };
        let runc = format!(
            "type=SYSCALL msg=audit(1700000000.100:10): arch=c000003e syscall=59 success=yes exit=0 ppid=50 pid=60 uid=0 comm=\"runc\" exe=\"/usr/sbin/runc\"\ntype=EXECVE msg=audit(1700000000.100:10): argc=5 a0=\"runc\" a1=\"exec\" a2=\"--detach\" a3=\"--pid-file\" a4=\"{id}\""
        );
        let child = "type=SYSCALL msg=audit(1700000000.110:11): arch=c000003e syscall=59 success=yes exit=0 ppid=60 pid=61 uid=0 comm=\"sh\" exe=\"/bin/busybox\"\ntype=EXECVE msg=audit(1700000000.110:11): argc=1 a0=\"sh\"";
        let other = "type=SYSCALL msg=audit(1700000000.120:12): arch=c000003e syscall=59 success=yes exit=0 ppid=70 pid=71 uid=0 comm=\"ls\" exe=\"/bin/ls\"\ntype=EXECVE msg=audit(1700000000.120:12): argc=1 a0=\"ls\"";
        let init = "type=SYSCALL msg=audit(1700000000.105:13): arch=c000003e syscall=59 success=yes exit=0 ppid=60 pid=65 uid=0 comm=\"runc\" exe=\"/usr/sbin/runc\"\ntype=EXECVE msg=audit(1700000000.105:13): argc=2 a0=\"runc\" a1=\"init\"";
        let mut known = Known::default();
        // Every process is gone from /proc (an empty proc root here).
        let first = Value::Object(audit_event(&records(&runc), &sources, &mut known));
        assert!(first.get("container").is_none(), "runc runs on the host");
        let second = Value::Object(audit_event(&records(init), &sources, &mut known));
        assert!(
            second.get("container").is_none(),
            "runc init is the runtime: {second}"
        );
        let child = child.replace("ppid=60", "ppid=65");
        let exec = Value::Object(audit_event(&records(&child), &sources, &mut known));
        assert_eq!(exec["container"]["id"], id.as_str(), "{exec}");
        let host = Value::Object(audit_event(&records(other), &sources, &mut known));
        assert!(host.get("container").is_none(), "{host}");
    }

    #[test]
    fn a_one_shot_docker_exec_reparented_to_the_shim_is_attributed_to_the_shims_last_runc() {
        // What runc 1.1 under Docker 20.10 does about 1 exec in 5: `runc exec --detach` has
        // exited when its child calls execve, so the child's parent is the shim (pid 1037).
        let id = "86da512671dabf1ae8de855cce8f02b5".repeat(2);
        let other = "0123456789abcdef".repeat(4);
        let proc_root = tempfile::tempdir().expect("tempdir");
        let shim = proc_root.path().join("1037");
        std::fs::create_dir_all(&shim).expect("shim dir");
        std::os::unix::fs::symlink("/usr/bin/containerd-shim-runc-v2", shim.join("exe"))
            .expect("exe link");
        let shell = proc_root.path().join("900");
        std::fs::create_dir_all(&shell).expect("shell dir");
        std::os::unix::fs::symlink("/usr/bin/bash", shell.join("exe")).expect("exe link");
        let sources = Sources {
            proc_root: proc_root.path().to_path_buf(),
            ..Sources::default()
        };
        let records = |text: &str| -> Vec<audit::AuditRecord> {
            text.lines().filter_map(audit::parse_line).collect()
        };
        let runc = |serial: u32, ppid: u32, pid: u32, target: &str| {
            format!(
                "type=SYSCALL msg=audit(1796643659.241:{serial}): arch=c000003e syscall=59 success=yes exit=0 ppid={ppid} pid={pid} uid=0 comm=\"runc\" exe=\"/usr/sbin/runc\"\ntype=EXECVE msg=audit(1796643659.241:{serial}): argc=7 a0=\"runc\" a1=\"--root\" a2=\"/var/run/docker/runtime-runc/moby\" a3=\"exec\" a4=\"--detach\" a5=\"--pid-file\" a6=\"{target}\""
            )
        };
        let child = |serial: u32, ppid: u32, pid: u32, name: &str| {
            format!(
                "type=SYSCALL msg=audit(1796643659.281:{serial}): arch=c000003e syscall=59 success=yes exit=0 ppid={ppid} pid={pid} uid=0 comm=\"{name}\" exe=\"/bin/busybox\"\ntype=EXECVE msg=audit(1796643659.281:{serial}): argc=1 a0=\"{name}\""
            )
        };
        let mut known = Known::default();
        let first = Value::Object(audit_event(
            &records(&runc(1, 1037, 1172, &id)),
            &sources,
            &mut known,
        ));
        assert!(first.get("container").is_none(), "runc runs on the host");
        // runc init (1179) has exited too; the exec'd `uname` is the shim's child.
        let exec = Value::Object(audit_event(
            &records(&child(2, 1037, 1181, "uname")),
            &sources,
            &mut known,
        ));
        assert_eq!(exec["container"]["id"], id.as_str(), "{exec}");
        // A runc run by hand from a shell registers nothing for the shell's other children.
        let _ = audit_event(&records(&runc(3, 900, 1200, &other)), &sources, &mut known);
        let host = Value::Object(audit_event(
            &records(&child(4, 900, 1201, "ls")),
            &sources,
            &mut known,
        ));
        assert!(host.get("container").is_none(), "{host}");
        // `runc create`'s hooks (children of runc, on the host) are not the container's.
        let create = runc(7, 1037, 1400, &id).replace("a3=\"exec\"", "a3=\"create\"");
        let _ = audit_event(&records(&create), &sources, &mut known);
        let hook = child(8, 1400, 1401, "libnetwork-setkey");
        let hook = Value::Object(audit_event(&records(&hook), &sources, &mut known));
        assert!(hook.get("container").is_none(), "{hook}");
        // The shim's next exec names the container again (no stale attribution).
        let _ = audit_event(&records(&runc(5, 1037, 1300, &other)), &sources, &mut known);
        let next = Value::Object(audit_event(
            &records(&child(6, 1037, 1301, "id")),
            &sources,
            &mut known,
        ));
        assert_eq!(next["container"]["id"], other.as_str(), "{next}");
    }

    #[test]
    fn container_lines_map_through_the_registry_and_gain_node_fields() {
        let mut reassembler = Reassembler::new(Format::Cri);
        let line = reassembler
            .push("2024-05-01T10:00:00.123456789Z stderr F boom")
            .expect("cri")
            .expect("complete");
        let meta = ContainerMeta {
            id: Some("abc".into()),
            pod_name: Some("web-0".into()),
            ..ContainerMeta::default()
        };
        let path = Path::new("/var/log/pods/ns_web-0_uid/web/0.log");
        let event = Value::Object(container_event(&line, Format::Cri, path, Some(&meta)));
        assert_eq!(event["@timestamp"], "2024-05-01T10:00:00.123456Z");
        assert_eq!(event["message"], "boom");
        assert_eq!(event["event"]["dataset"], "container.logs");
        assert_eq!(event["event"]["module"], "kubernetes");
        assert_eq!(event["log"]["iostream"], "stderr");
        assert_eq!(event["log"]["file"]["path"], path.display().to_string());
        assert_eq!(event["container"]["id"], "abc");
        let bare = Value::Object(container_event(&line, Format::DockerJson, path, None));
        assert_eq!(bare["event"]["module"], "docker");
    }

    #[test]
    fn falco_lines_become_alerts_and_bad_lines_are_kept_with_the_reason() {
        let alert = r#"{"output":"Shell","priority":"Warning","rule":"Terminal shell","time":"2024-05-01T10:00:00Z","output_fields":{"container.id":"abc"}}"#;
        let events = falco_events(alert);
        assert_eq!(events.len(), 1);
        let event = Value::Object(events[0].clone());
        assert_eq!(event["event"]["kind"], "alert");
        assert_eq!(event["rule"]["name"], "Terminal shell");
        assert_eq!(event["container"]["id"], "abc");
        assert_eq!(event["event"]["original"], alert);
        let bad = Value::Object(falco_events("not json").remove(0));
        assert_eq!(bad["message"], "not json");
        assert!(bad["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        let no_rule = Value::Object(falco_events(r#"{"time":"2024-05-01T10:00:00Z"}"#).remove(0));
        assert!(no_rule["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("`rule`")));
    }
}
