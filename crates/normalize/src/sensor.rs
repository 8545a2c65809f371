//! What the runtime-sensor parsers share: one ECS shape for what a sensor saw.
//!
//! Falco (its field vocabulary, [`crate::falco_fields`]), Tetragon, Tracee and KubeArmor each
//! name the same things differently. Each parser fills a [`Seen`] and [`Seen::apply`] writes the
//! fields our node agent writes for its own process events (crates/agent `audit.rs`), so the
//! `process_creation`, `file_event` and `network_connection` rules (the built-in pack and
//! SigmaHQ's) read sensor events exactly as they read the agent's:
//!
//! | field | what |
//! |---|---|
//! | `event.kind`, `event.category`, `event.type`, `event.action` | `event`; `process`/`start` for an exec, `process`/`end` for an exit, `file`/`access` or `change`, `network`/`connection`; the sensor's own event or syscall name |
//! | `process.executable`, `process.name`, `process.command_line`, `process.args`, `process.args_count`, `process.pid`, `process.working_directory` | the process (`name` is the executable's base name when the sensor gives only the path) |
//! | `process.parent.{executable,name,command_line,args,pid}` | its parent, as far as the sensor knows it |
//! | `user.id`, `user.name` | the user (ids as strings, as the agent writes them) |
//! | `container.id`, `container.runtime`, `container.name`, `container.image.name`, `container.image.tag` | the container (`containerd://` and similar prefixes become `container.runtime`) |
//! | `kubernetes.namespace`, `kubernetes.pod.name`, `kubernetes.pod.uid` | the pod |
//! | `host.name` | the node |
//! | `file.path`, `destination.ip`, `destination.port`, `source.ip`, `source.port`, `network.transport` | what a file or network event touched |

use crowsnest_model::{ecs, Event};
use serde_json::{json, Value};

/// One process as a sensor describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Proc {
    pub executable: Option<String>,
    pub name: Option<String>,
    pub command_line: Option<String>,
    pub args: Option<Vec<String>>,
    pub pid: Option<i64>,
    pub working_directory: Option<String>,
}

impl Proc {
    fn apply(&self, event: &mut Event, prefix: &str) {
        let path = |field: &str| format!("{prefix}.{field}");
        let name = self
            .name
            .clone()
            .or_else(|| self.executable.as_deref().and_then(basename));
        let command_line = self
            .command_line
            .clone()
            .or_else(|| self.args.as_ref().map(|args| args.join(" ")));
        set_str(event, &path("executable"), self.executable.as_deref());
        set_str(event, &path("name"), name.as_deref());
        set_str(event, &path("command_line"), command_line.as_deref());
        if let Some(args) = self.args.as_ref().filter(|a| !a.is_empty()) {
            event.set(&path("args"), json!(args));
            event.set(&path("args_count"), json!(args.len()));
        }
        if let Some(pid) = self.pid {
            event.set(&path("pid"), json!(pid));
        }
        set_str(
            event,
            &path("working_directory"),
            self.working_directory.as_deref(),
        );
    }
}

/// What the event is about: its ECS category, type and action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A program started (`process`/`start`).
    Exec,
    /// A process ended (`process`/`end`).
    Exit,
    /// A file was opened or read (`file`/`access`).
    FileAccess,
    /// A file was written, created, renamed or removed (`file`/`change`).
    FileChange,
    /// A network connection (`network`/`connection`).
    Connect,
    /// Anything else the sensor reports (no category: no process/file/network rule reads it).
    Other,
}

/// Open flags that make an open a write: the file is changed, not only read.
pub(crate) const WRITE_OPEN_FLAGS: [&str; 4] = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"];

/// True when open flags as a sensor writes them (`O_WRONLY|O_CREAT`) name a write.
pub(crate) fn opens_for_writing(flags: &str) -> bool {
    WRITE_OPEN_FLAGS.iter().any(|w| flags.contains(w))
}

impl Kind {
    /// A file event: a change when it `writes`, else an access.
    pub(crate) fn file(writes: bool) -> Self {
        if writes {
            Self::FileChange
        } else {
            Self::FileAccess
        }
    }
}

/// What a sensor saw, in our terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Seen {
    pub process: Proc,
    pub parent: Proc,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    /// The image reference as the sensor writes it (`repo:tag`, `repo@sha256:...`).
    pub image: Option<String>,
    /// The image tag when the sensor writes it apart from the repository.
    pub image_tag: Option<String>,
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub host: Option<String>,
    pub file_path: Option<String>,
    pub source_ip: Option<String>,
    pub source_port: Option<i64>,
    pub destination_ip: Option<String>,
    pub destination_port: Option<i64>,
    pub transport: Option<String>,
}

impl Seen {
    /// Writes the ECS fields of what was seen, and the event's kind, into `event`.
    pub(crate) fn apply(&self, event: &mut Event, kind: Kind, action: Option<&str>) {
        let (category, kind_type) = match kind {
            Kind::Exec => (Some("process"), "start"),
            Kind::Exit => (Some("process"), "end"),
            Kind::FileAccess => (Some("file"), "access"),
            Kind::FileChange => (Some("file"), "change"),
            Kind::Connect => (Some("network"), "connection"),
            Kind::Other => (None, ""),
        };
        event.set_default(ecs::EVENT_KIND, json!("event"));
        if let Some(category) = category {
            event.set(ecs::EVENT_CATEGORY, json!([category]));
        }
        if kind != Kind::Other {
            event.set(ecs::EVENT_TYPE, json!([kind_type]));
        }
        set_str(event, ecs::EVENT_ACTION, action);
        self.process.apply(event, "process");
        self.parent.apply(event, "process.parent");
        set_str(event, ecs::USER_ID, self.user_id.as_deref());
        set_str(event, ecs::USER_NAME, self.user_name.as_deref());
        if let Some(id) = self.container_id.as_deref().filter(|s| !s.is_empty()) {
            let (runtime, id) = split_runtime(id);
            set_str(event, ecs::CONTAINER_ID, Some(id));
            set_str(event, "container.runtime", runtime);
        }
        set_str(event, ecs::CONTAINER_NAME, self.container_name.as_deref());
        if let Some(image) = self.image.as_deref().filter(|s| !s.is_empty()) {
            let (name, tag) = split_image(image);
            set_str(event, "container.image.name", Some(name));
            set_str(
                event,
                "container.image.tag",
                self.image_tag.as_deref().or(tag),
            );
        } else {
            set_str(event, "container.image.tag", self.image_tag.as_deref());
        }
        set_str(event, ecs::K8S_NAMESPACE, self.namespace.as_deref());
        set_str(event, ecs::K8S_POD_NAME, self.pod_name.as_deref());
        set_str(event, "kubernetes.pod.uid", self.pod_uid.as_deref());
        set_str(event, ecs::HOST_NAME, self.host.as_deref());
        set_str(event, "file.path", self.file_path.as_deref());
        set_str(event, ecs::SOURCE_IP, self.source_ip.as_deref());
        if let Some(port) = self.source_port {
            event.set("source.port", json!(port));
        }
        set_str(event, "destination.ip", self.destination_ip.as_deref());
        if let Some(port) = self.destination_port {
            event.set("destination.port", json!(port));
        }
        set_str(event, "network.transport", self.transport.as_deref());
        if event.get(ecs::MESSAGE).is_none() {
            if let Some(message) = self.message(kind, action) {
                event.set(ecs::MESSAGE, json!(message));
            }
        }
    }

    /// A one-line summary, as the agent writes one (`executed <command line>`).
    fn message(&self, kind: Kind, action: Option<&str>) -> Option<String> {
        let command = self
            .process
            .command_line
            .clone()
            .or_else(|| self.process.args.as_ref().map(|a| a.join(" ")))
            .or_else(|| self.process.executable.clone())
            .or_else(|| self.process.name.clone());
        let text = match kind {
            Kind::Exec => format!("executed {}", command?),
            Kind::Exit => format!("exited {}", command?),
            Kind::FileAccess | Kind::FileChange => format!(
                "{} {} by {}",
                action.unwrap_or("open"),
                self.file_path.as_deref()?,
                command.as_deref().unwrap_or("?")
            ),
            Kind::Connect => format!(
                "{} connected to {}:{}",
                command.as_deref().unwrap_or("?"),
                self.destination_ip.as_deref()?,
                self.destination_port
                    .map_or(String::new(), |p| p.to_string())
            ),
            Kind::Other => format!("{} {}", action?, command.as_deref().unwrap_or("")),
        };
        Some(text.trim_end().to_string())
    }
}

/// Sets a string field unless it is absent or empty.
pub(crate) fn set_str(event: &mut Event, path: &str, value: Option<&str>) {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        event.set(path, Value::String(value.to_string()));
    }
}

/// The last segment of a path (`/usr/bin/curl` → `curl`).
pub(crate) fn basename(path: &str) -> Option<String> {
    path.rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// A string, or a number written as a string (ids, which sensors write either way).
pub(crate) fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer, or a string holding one.
pub(crate) fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `containerd://<id>` → (`containerd`, `<id>`); a bare id has no runtime.
fn split_runtime(id: &str) -> (Option<&str>, &str) {
    match id.split_once("://") {
        Some((runtime, id)) => (Some(runtime), id),
        None => (None, id),
    }
}

/// `registry:5000/repo:tag@sha256:...` → (`registry:5000/repo`, `tag`); a digest without a tag
/// is the tag.
pub(crate) fn split_image(image: &str) -> (&str, Option<&str>) {
    let (reference, digest) = match image.split_once('@') {
        Some((reference, digest)) => (reference, Some(digest)),
        None => (image, None),
    };
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(colon) => (
            &reference[..slash + colon],
            Some(&reference[slash + colon + 1..]),
        ),
        None => (reference, digest),
    }
}

/// Splits a command line the way a sensor that quotes arguments with spaces writes it
/// (Tetragon's `arguments`: `-c "curl x | sh"`): on unquoted whitespace, with `"..."` and
/// `'...'` grouping and `\` escaping the next character inside double quotes.
pub(crate) fn split_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => match chars.next() {
                Some(next) => current.push(next),
                None => current.push('\\'),
            },
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            (None, c) => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        args.push(current);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_on_unquoted_space() {
        assert_eq!(
            split_args(r#"-c "curl http://x/a.sh | sh" -x 'a b' c\d"#),
            vec!["-c", "curl http://x/a.sh | sh", "-x", "a b", "c\\d"]
        );
        assert_eq!(
            split_args(r#"-c "say \"hi\"" """#),
            vec!["-c", r#"say "hi""#, ""]
        );
        assert!(split_args("   ").is_empty());
    }

    #[test]
    fn images_and_runtimes_split() {
        assert_eq!(
            split_image("docker.io/tgraf/netperf:latest"),
            ("docker.io/tgraf/netperf", Some("latest"))
        );
        assert_eq!(
            split_image("localhost:5000/app:1.2@sha256:ab"),
            ("localhost:5000/app", Some("1.2"))
        );
        assert_eq!(split_image("app@sha256:ab"), ("app", Some("sha256:ab")));
        assert_eq!(
            split_image("localhost:5000/app"),
            ("localhost:5000/app", None)
        );
        assert_eq!(
            split_runtime("containerd://abc"),
            (Some("containerd"), "abc")
        );
        assert_eq!(split_runtime("abc"), (None, "abc"));
    }

    #[test]
    fn an_exec_gets_the_agents_fields() {
        let seen = Seen {
            process: Proc {
                executable: Some("/usr/bin/curl".into()),
                args: Some(vec!["curl".into(), "-s".into()]),
                pid: Some(7),
                ..Proc::default()
            },
            parent: Proc {
                executable: Some("/bin/sh".into()),
                ..Proc::default()
            },
            user_id: Some("0".into()),
            container_id: Some("docker://abc".into()),
            ..Seen::default()
        };
        let mut event = Event::new();
        seen.apply(&mut event, Kind::Exec, Some("execve"));
        assert_eq!(event.get("event.category"), Some(&json!(["process"])));
        assert_eq!(event.get("event.type"), Some(&json!(["start"])));
        assert_eq!(event.get_str("process.name"), Some("curl"));
        assert_eq!(event.get_str("process.command_line"), Some("curl -s"));
        assert_eq!(event.get("process.args_count"), Some(&json!(2)));
        assert_eq!(event.get_str("process.parent.name"), Some("sh"));
        assert_eq!(event.get_str("container.id"), Some("abc"));
        assert_eq!(event.get_str("container.runtime"), Some("docker"));
        assert_eq!(event.get_str("message"), Some("executed curl -s"));
    }
}
