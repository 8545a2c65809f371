//! `docker exec` reaches the process profiles even when the kernel audit path misses it.
//!
//! The kernel's record of an `execve` is the agent's process start: it names the file the
//! kernel ran and `argv[0]`, what the workload profiles key on. The engine's `exec_start` event
//! (`docker.events`) names the container and the command line as typed. When the audit path
//! did not report a process of that command line in that container within [`GRACE`] of the
//! engine event (no audit rules, auditd stopped or lagging, an attribution missed), the agent
//! sends a process start of its own for it: `event.dataset: container.exec` (Sigma: `product:
//! linux`, `category: process_creation`), `event.category: process`, `event.type: start`, the
//! command's `process.args`, `process.command_line`, `process.name`, and `process.executable`
//! resolved the way the kernel would inside the container's root file system (its `PATH`, its
//! symbolic links: `sh` in a busybox image is `/bin/busybox`) when the agent can read it (the
//! engine's `GraphDriver.Data.MergedDir`), else `argv[0]` as typed; `tags: [exec-fallback]`.
//!
//! Processes the audit path did attribute to a container are remembered here ([`ExecSeen`])
//! for a few seconds, so an exec it saw is not sent twice; one it saw late (after the grace)
//! gives the same executable × `argv[0]` and so no second profile alert.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// How long the audit path has to report an exec'd process before the engine event stands in.
pub const GRACE: Duration = Duration::from_millis(400);

/// How long a process the audit path reported is remembered.
const REMEMBER: Duration = Duration::from_secs(10);

/// Most processes remembered.
const MAX_REMEMBERED: usize = 4_096;

/// Process starts the audit path attributed to a container: (when, container id, command line).
#[derive(Debug, Default)]
pub struct ExecSeen(Mutex<VecDeque<(Instant, String, String)>>);

impl ExecSeen {
    /// Remembers that the audit path reported `command_line` in `container`.
    pub fn saw(&self, container: &str, command_line: &str) {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        while seen
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) > REMEMBER)
            || seen.len() >= MAX_REMEMBERED
        {
            seen.pop_front();
        }
        seen.push_back((now, container.to_string(), command_line.to_string()));
    }

    /// Whether the audit path reported `command_line` in `container` after `since`; the
    /// report is used up (two execs of one command need two reports).
    pub fn take(&self, container: &str, command_line: &str, since: Instant) -> bool {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = seen
            .iter()
            .position(|(at, c, line)| *at >= since && c == container && line == command_line);
        found.and_then(|i| seen.remove(i)).is_some()
    }
}

/// The command line of an event's `process.args` (joined by spaces, as the engine joins them).
pub fn command_line(event: &Map<String, Value>) -> Option<String> {
    let args = event.get("process")?.get("args")?.as_array()?;
    let args: Vec<&str> = args.iter().filter_map(Value::as_str).collect();
    (!args.is_empty()).then(|| args.join(" "))
}

/// Where `program` resolves inside the root file system `root` (`PATH` of the container's
/// environment, symbolic links followed inside `root`), as a path inside the container.
pub fn resolve(root: &Path, program: &str, path_var: Option<&str>) -> Option<String> {
    let candidates: Vec<String> = if program.contains('/') {
        vec![program.to_string()]
    } else {
        path_var
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{program}", d.trim_end_matches('/')))
            .collect()
    };
    for candidate in candidates {
        let mut inside = PathBuf::from(&candidate);
        for _ in 0..16 {
            let host = root.join(inside.strip_prefix("/").unwrap_or(&inside));
            match std::fs::symlink_metadata(&host) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let Ok(target) = std::fs::read_link(&host) else {
                        break;
                    };
                    inside = if target.is_absolute() {
                        target
                    } else {
                        inside.parent().unwrap_or(Path::new("/")).join(target)
                    };
                }
                Ok(meta) if meta.is_file() => return Some(normalize(&inside)),
                _ => break,
            }
        }
    }
    None
}

/// `a/./b/../c` as `a/c` (no file system access).
fn normalize(path: &Path) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.to_str().unwrap_or_default().split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The process start the agent sends for an engine `exec_start` event (see the module docs);
/// `None` when it has no command or no container.
pub fn process_start(
    exec_start: &Map<String, Value>,
    inspect: Option<&Value>,
) -> Option<Map<String, Value>> {
    let container = exec_start.get("container")?.clone();
    container.get("id")?.as_str()?;
    let shown = container.clone();
    let line = command_line(exec_start)?;
    let args = exec_start.get("process")?.get("args")?.clone();
    let argv0 = args.get(0)?.as_str()?.to_string();
    let name = argv0.rsplit('/').next().unwrap_or(&argv0).to_string();
    let root = inspect
        .and_then(|i| i.pointer("/GraphDriver/Data/MergedDir"))
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .filter(|p| p.is_dir());
    let path_var = inspect
        .and_then(|i| i.pointer("/Config/Env"))
        .and_then(Value::as_array)
        .and_then(|env| {
            env.iter()
                .filter_map(Value::as_str)
                .find_map(|e| e.strip_prefix("PATH="))
        });
    let executable = root
        .as_deref()
        .and_then(|root| resolve(root, &argv0, path_var))
        .unwrap_or_else(|| argv0.clone());
    let mut event = Map::new();
    if let Some(ts) = exec_start.get("@timestamp") {
        event.insert("@timestamp".into(), ts.clone());
    }
    event.insert(
        "event".into(),
        json!({"kind": "event", "module": "docker", "dataset": "container.exec",
               "category": ["process"], "type": ["start"], "action": "exec"}),
    );
    event.insert(
        "process".into(),
        json!({"args": args, "command_line": line, "name": name, "executable": executable}),
    );
    event.insert("container".into(), container);
    event.insert("tags".into(), json!(["exec-fallback"]));
    let who = shown
        .get("name")
        .or_else(|| shown.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    event.insert(
        "message".into(),
        json!(format!(
            "docker exec in {who}: {line} (from the engine's exec_start: kernel audit did not report it within {} ms)",
            GRACE.as_millis()
        )),
    );
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_inside_the_root_through_path_and_links() {
        let root = tempfile::tempdir().expect("tempdir");
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::write(bin.join("busybox"), b"\x7fELF").expect("busybox");
        std::os::unix::fs::symlink("busybox", bin.join("sh")).expect("sh link");
        std::os::unix::fs::symlink("/bin/busybox", bin.join("nc")).expect("nc link");
        std::fs::create_dir_all(root.path().join("usr/bin")).expect("usr/bin");
        std::os::unix::fs::symlink("../../bin/busybox", root.path().join("usr/bin/wget"))
            .expect("wget link");
        // A link out of the root resolves inside it, never on the host.
        std::os::unix::fs::symlink("/etc/passwd", bin.join("escape")).expect("escape link");
        let r = |p: &str| resolve(root.path(), p, None);
        assert_eq!(r("sh").as_deref(), Some("/bin/busybox"));
        assert_eq!(r("nc").as_deref(), Some("/bin/busybox"));
        assert_eq!(r("wget").as_deref(), Some("/bin/busybox"));
        assert_eq!(r("/bin/sh").as_deref(), Some("/bin/busybox"));
        assert_eq!(r("escape"), None);
        assert_eq!(r("python3"), None);
        assert_eq!(resolve(root.path(), "sh", Some("/opt/none")), None);
    }

    #[test]
    fn an_exec_start_becomes_a_process_start_unless_audit_saw_it() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("bin")).expect("bin");
        std::fs::write(root.path().join("bin/busybox"), b"x").expect("busybox");
        std::os::unix::fs::symlink("busybox", root.path().join("bin/id")).expect("link");
        let exec_start = json!({
            "@timestamp": "2026-12-07T11:50:30.979189Z",
            "event": {"dataset": "docker.events", "action": "exec_start"},
            "process": {"command_line": "id -u", "args": ["id", "-u"]},
            "container": {"id": "c1", "name": "web", "image": {"name": "busybox"}}
        });
        let Value::Object(exec_start) = exec_start else {
            unreachable!()
        };
        let inspect = json!({"GraphDriver": {"Data": {"MergedDir": root.path()}},
            "Config": {"Env": ["PATH=/usr/bin:/bin"]}});
        let start = Value::Object(process_start(&exec_start, Some(&inspect)).expect("start"));
        assert_eq!(start["event"]["dataset"], "container.exec");
        assert_eq!(start["event"]["category"], json!(["process"]));
        assert_eq!(start["process"]["executable"], "/bin/busybox");
        assert_eq!(start["process"]["name"], "id");
        assert_eq!(start["process"]["args"], json!(["id", "-u"]));
        assert_eq!(start["container"]["name"], "web");
        assert_eq!(start["@timestamp"], "2026-12-07T11:50:30.979189Z");
        // Without the root file system: argv[0] as typed.
        let bare = Value::Object(process_start(&exec_start, None).expect("start"));
        assert_eq!(bare["process"]["executable"], "id");

        let seen = ExecSeen::default();
        let since = Instant::now();
        assert!(!seen.take("c1", "id -u", since));
        seen.saw("c2", "id -u");
        seen.saw("c1", "id");
        assert!(!seen.take("c1", "id -u", since));
        seen.saw("c1", "id -u");
        assert!(!seen.take("c1", "id -u", Instant::now() + Duration::from_secs(1)));
        assert!(seen.take("c1", "id -u", since));
        assert!(!seen.take("c1", "id -u", since), "used up");
    }
}
