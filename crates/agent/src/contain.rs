//! Containment on the local Docker engine: what the agent does with an
//! [`AgentCommand`](crowsnest_model::command::AgentCommand).
//!
//! * **Evidence first** (`evidence: true`, or the `evidence` operation): `inspect.json`,
//!   `logs.txt` (the last [`LOG_TAIL_LINES`] lines, with timestamps), `top.json` (processes,
//!   when running), `diff.json` (`docker diff`: filesystem changes) and, with `export: true`,
//!   `export.tar` (the container's filesystem), written under
//!   `<state-dir>/evidence/<command-id>/` (mode 0700/0600) with the SHA-256 of each file in
//!   the result and in `manifest.json`.
//! * `pause` / `unpause`, `stop` (10 s grace) / `start`, `kill` (SIGKILL).
//! * `quarantine`: disconnects the container from every network (force), after writing each
//!   attachment (network, aliases, static IPv4/IPv6 address, links) to
//!   `<state-dir>/quarantine/<container-id>.json`; `release` reconnects them the same way, from
//!   the command's `networks` or from that file.
//!
//! Refused with a clear error: expired commands, commands for another node, a quarantine of a
//! container on the host's network (`NetworkMode: host`) or sharing another container's
//! (`container:<id>`), and any disruptive operation (pause, quarantine, stop, kill) on the
//! agent's own container ([`SelfIdentity`]) or on a crowsnest container ([`runs_crowsnest`]:
//! the image `.../crowsnest` or the label `app.kubernetes.io/name=crowsnest`). Idempotent: pausing a paused container, stopping
//! a stopped one, quarantining an isolated one succeed with a note.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use bollard::models::{EndpointIpamConfig, EndpointSettings};
use bollard::query_parameters::{
    KillContainerOptionsBuilder, LogsOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use chrono::Utc;
use crowsnest_model::command::{
    AgentCommand, CommandResult, ContainerOp, EvidenceFile, NetworkAttachment,
};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Lines of the container's log kept as evidence.
pub const LOG_TAIL_LINES: usize = 1000;
/// Most bytes of log kept as evidence.
const LOG_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Grace period of `stop` before SIGKILL.
const STOP_GRACE_SECS: i32 = 10;

/// How the agent recognises its own container (it must never contain itself).
#[derive(Debug, Clone, Default)]
pub struct SelfIdentity {
    /// Full container ids found in `/proc/self/cgroup` and in the source of the `/etc/hostname`
    /// mount (`/var/lib/docker/containers/<id>/hostname`).
    pub ids: HashSet<String>,
    /// The host name (Docker sets it to the container's 12-character id prefix).
    pub hostname: String,
}

fn hex_runs(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|run| run.len() == 64)
}

impl SelfIdentity {
    /// Reads `/proc/self/cgroup`, `/proc/self/mountinfo` and the host name.
    pub fn detect() -> Self {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::from_sources(&cgroup, &mountinfo, &crate::hostname())
    }

    /// The identity these `/proc/self/cgroup` and `/proc/self/mountinfo` texts describe.
    pub fn from_sources(cgroup: &str, mountinfo: &str, hostname: &str) -> Self {
        let mut ids: HashSet<String> = cgroup
            .lines()
            .flat_map(hex_runs)
            .map(str::to_ascii_lowercase)
            .collect();
        // Only the files Docker bind-mounts into its containers: on a host, other mounts name
        // layers and other containers.
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
                continue;
            };
            if matches!(*point, "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf")
                && root.contains("/containers/")
            {
                ids.extend(hex_runs(root).map(str::to_ascii_lowercase));
            }
        }
        Self {
            ids,
            hostname: hostname.to_ascii_lowercase(),
        }
    }

    /// Whether the container with this full id is the agent's own.
    pub fn is_self(&self, container_id: &str) -> bool {
        let id = container_id.to_ascii_lowercase();
        self.ids.contains(&id)
            || (self.hostname.len() == 12
                && self.hostname.chars().all(|c| c.is_ascii_hexdigit())
                && id.starts_with(&self.hostname))
    }
}

/// Carries out containment commands on one Docker engine (connected per command, so an
/// engine that starts or restarts after the agent is found).
pub struct Executor {
    socket: String,
    node: String,
    state_dir: PathBuf,
    identity: SelfIdentity,
}

/// One command's connection to the engine.
struct Engine<'a> {
    docker: Docker,
    node: &'a str,
    state_dir: &'a Path,
    identity: &'a SelfIdentity,
}

/// What an operation did: its notes and attachments, or why it failed.
#[derive(Default)]
struct Outcome {
    notes: Vec<String>,
    disconnected: Vec<NetworkAttachment>,
    connected: Vec<NetworkAttachment>,
    error: Option<String>,
}

impl Executor {
    /// An executor for the engine at `socket`, keeping evidence and quarantine records under
    /// `state_dir`.
    pub fn new(socket: &str, node: &str, state_dir: &Path, identity: SelfIdentity) -> Self {
        Self {
            socket: socket.to_string(),
            node: node.to_string(),
            state_dir: state_dir.to_path_buf(),
            identity,
        }
    }

    /// Carries out `command` and says what happened; never panics, never returns early
    /// without a result.
    pub async fn execute(&self, command: &AgentCommand) -> CommandResult {
        let started_at = Utc::now();
        let mut result = CommandResult::refused(command, &self.node, "");
        result.error = None;
        result.started_at = started_at;
        let outcome = if command.is_expired(Utc::now()) {
            Outcome::failed(format!(
                "refused: the command expired at {}",
                command.expires_at.to_rfc3339()
            ))
        } else if let Err(error) = command.validate() {
            Outcome::failed(format!("refused: {error}"))
        } else if command.node != self.node {
            Outcome::failed(format!(
                "refused: the command is for node `{}`, this agent is node `{}`",
                command.node, self.node
            ))
        } else {
            match Docker::connect_with_unix(&self.socket, 120, bollard::API_DEFAULT_VERSION) {
                Ok(docker) => {
                    let engine = Engine {
                        docker,
                        node: &self.node,
                        state_dir: &self.state_dir,
                        identity: &self.identity,
                    };
                    engine.run(command, &mut result).await
                }
                Err(error) => Outcome::failed(format!(
                    "cannot reach the Docker engine at `{}`: {error}",
                    self.socket
                )),
            }
        };
        result.notes.extend(outcome.notes);
        result.networks_disconnected = outcome.disconnected;
        result.networks_connected = outcome.connected;
        result.ok = outcome.error.is_none();
        result.error = outcome.error;
        result.finished_at = Utc::now();
        result
    }
}

impl Outcome {
    fn failed(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

impl Engine<'_> {
    async fn run(&self, command: &AgentCommand, result: &mut CommandResult) -> Outcome {
        let fail = Outcome::failed;
        let inspect = match self.inspect(&command.container).await {
            Ok(inspect) => inspect,
            Err(error) => return fail(error),
        };
        let id = inspect["Id"].as_str().unwrap_or_default().to_string();
        let name = inspect["Name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        result.container_id = Some(id.clone());
        result.container_name = Some(name.clone());
        if command.op.is_disruptive() && self.identity.is_self(&id) {
            return fail(format!(
                "refused: `{name}` ({}) is the crowsnest agent's own container; the agent never contains itself",
                short(&id)
            ));
        }
        if command.op.is_disruptive() {
            if let Some(why) = runs_crowsnest(&inspect) {
                return fail(format!(
                    "refused: `{name}` runs crowsnest ({why}); the agent never contains crowsnest itself"
                ));
            }
        }
        let network_mode = inspect
            .pointer("/HostConfig/NetworkMode")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if command.op == ContainerOp::Quarantine {
            if network_mode == "host" {
                return fail(format!(
                    "refused: `{name}` uses the host's network (NetworkMode host); disconnecting networks cannot isolate it (pause, stop or kill it instead)"
                ));
            }
            if let Some(other) = network_mode.strip_prefix("container:") {
                return fail(format!(
                    "refused: `{name}` shares the network of container `{other}` (NetworkMode container:); quarantine that container instead"
                ));
            }
        }
        let mut outcome = Outcome::default();
        if command.evidence || command.op == ContainerOp::Evidence {
            let (files, notes) = self.evidence(command, &id, &inspect).await;
            result.evidence = files;
            result.inspect = Some(inspect.clone());
            outcome.notes.extend(notes);
        }
        let state = inspect.get("State").cloned().unwrap_or(Value::Null);
        let status = state["Status"].as_str().unwrap_or("unknown").to_string();
        let paused = state["Paused"].as_bool().unwrap_or(false);
        let running = state["Running"].as_bool().unwrap_or(false);
        let docker = &self.docker;
        let engine = |e: bollard::errors::Error| format!("the Docker engine refused: {e}");
        let step: Result<Option<String>, String> = match command.op {
            ContainerOp::Evidence => Ok(None),
            ContainerOp::Pause if paused => Ok(Some("already paused".into())),
            ContainerOp::Pause if !running => Ok(Some(format!(
                "the container is {status}: nothing runs, nothing to pause"
            ))),
            ContainerOp::Pause => docker
                .pause_container(&id)
                .await
                .map(|()| None)
                .map_err(engine),
            ContainerOp::Unpause if !paused => Ok(Some("not paused".into())),
            ContainerOp::Unpause => docker
                .unpause_container(&id)
                .await
                .map(|()| None)
                .map_err(engine),
            ContainerOp::Stop if !running => Ok(Some(format!("already stopped ({status})"))),
            ContainerOp::Stop => {
                let options = StopContainerOptionsBuilder::new()
                    .t(STOP_GRACE_SECS)
                    .build();
                docker
                    .stop_container(&id, Some(options))
                    .await
                    .map(|()| None)
                    .map_err(engine)
            }
            ContainerOp::Start if running => Ok(Some(if paused {
                "already running (paused: unpause it to resume)".into()
            } else {
                "already running".into()
            })),
            ContainerOp::Start => docker
                .start_container(&id, None)
                .await
                .map(|()| None)
                .map_err(engine),
            ContainerOp::Kill if !running => Ok(Some(format!("not running ({status})"))),
            ContainerOp::Kill => {
                let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
                docker
                    .kill_container(&id, Some(options))
                    .await
                    .map(|()| None)
                    .map_err(engine)
            }
            ContainerOp::Quarantine => {
                self.quarantine(&id, &inspect, &mut outcome).await;
                Ok(None)
            }
            ContainerOp::Release => {
                self.release(&id, &inspect, command, &mut outcome).await;
                Ok(None)
            }
        };
        match step {
            Ok(Some(note)) => outcome.notes.push(note),
            Ok(None) => {}
            Err(error) => outcome.error = Some(error),
        }
        outcome
    }

    async fn inspect(&self, container: &str) -> Result<Value, String> {
        if container.is_empty() {
            return Err("no container named in the command".into());
        }
        match self.docker.inspect_container(container, None).await {
            Ok(found) => serde_json::to_value(found)
                .map_err(|e| format!("reading the container's inspect output: {e}")),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(format!(
                "no container `{container}` on node `{}`",
                self.node
            )),
            Err(error) => Err(format!("inspecting `{container}`: {error}")),
        }
    }

    fn quarantine_file(&self, id: &str) -> PathBuf {
        self.state_dir.join("quarantine").join(format!("{id}.json"))
    }

    fn remembered(&self, id: &str) -> Vec<NetworkAttachment> {
        std::fs::read(self.quarantine_file(id))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    async fn quarantine(&self, id: &str, inspect: &Value, outcome: &mut Outcome) {
        let attachments = attachments(inspect);
        if attachments.is_empty() {
            let remembered = self.remembered(id);
            outcome.notes.push(if remembered.is_empty() {
                "the container has no network: nothing to disconnect".into()
            } else {
                "already quarantined: the container has no network".into()
            });
            outcome.disconnected = remembered;
            return;
        }
        // Remember before touching anything: a crash half-way must not lose an attachment.
        let mut record = self.remembered(id);
        for attachment in &attachments {
            record.retain(|a| a.network != attachment.network);
            record.push(attachment.clone());
        }
        let path = self.quarantine_file(id);
        let written = serde_json::to_vec_pretty(&record)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_private(&path, &bytes));
        if let Err(error) = written {
            outcome.error = Some(format!(
                "refused: cannot remember the networks in `{}` ({error}); nothing was disconnected",
                path.display()
            ));
            return;
        }
        let mut failures = Vec::new();
        for attachment in attachments {
            let request = bollard::models::NetworkDisconnectRequest {
                container: id.to_string(),
                force: Some(true),
            };
            match self
                .docker
                .disconnect_network(&attachment.network, request)
                .await
            {
                Ok(()) => outcome.disconnected.push(attachment),
                Err(error) => failures.push(format!("{}: {error}", attachment.network)),
            }
        }
        if !failures.is_empty() {
            outcome.error = Some(format!("could not disconnect from {}", failures.join("; ")));
        }
    }

    async fn release(
        &self,
        id: &str,
        inspect: &Value,
        command: &AgentCommand,
        outcome: &mut Outcome,
    ) {
        let wanted = if command.networks.is_empty() {
            self.remembered(id)
        } else {
            command.networks.clone()
        };
        if wanted.is_empty() {
            outcome.error = Some(
                "no networks to restore: the command names none and this agent remembers no quarantine of the container".into(),
            );
            return;
        }
        let current: HashSet<String> = attachments(inspect)
            .into_iter()
            .map(|a| a.network)
            .collect();
        let mut failures = Vec::new();
        for attachment in wanted {
            if current.contains(&attachment.network) {
                outcome
                    .notes
                    .push(format!("already connected to {}", attachment.network));
                continue;
            }
            let user_defined = !matches!(attachment.network.as_str(), "bridge" | "none");
            let static_ip = attachment.ipv4_address.is_some() || attachment.ipv6_address.is_some();
            let endpoint = EndpointSettings {
                aliases: (user_defined && !attachment.aliases.is_empty())
                    .then(|| attachment.aliases.clone()),
                links: (!attachment.links.is_empty()).then(|| attachment.links.clone()),
                ipam_config: static_ip.then(|| EndpointIpamConfig {
                    ipv4_address: attachment.ipv4_address.clone(),
                    ipv6_address: attachment.ipv6_address.clone(),
                    link_local_ips: None,
                }),
                ..EndpointSettings::default()
            };
            let request = bollard::models::NetworkConnectRequest {
                container: id.to_string(),
                endpoint_config: Some(endpoint),
            };
            match self
                .docker
                .connect_network(&attachment.network, request)
                .await
            {
                Ok(()) => outcome.connected.push(attachment),
                Err(error) => failures.push(format!("{}: {error}", attachment.network)),
            }
        }
        if failures.is_empty() {
            let _ = std::fs::remove_file(self.quarantine_file(id));
        } else {
            outcome.error = Some(format!("could not reconnect to {}", failures.join("; ")));
        }
    }

    /// Writes the evidence files; what cannot be taken becomes a note.
    async fn evidence(
        &self,
        command: &AgentCommand,
        id: &str,
        inspect: &Value,
    ) -> (Vec<EvidenceFile>, Vec<String>) {
        let dir = self.state_dir.join("evidence").join(&command.id);
        let mut files = Vec::new();
        let mut notes = Vec::new();
        if let Err(error) = create_private_dir(&dir) {
            notes.push(format!(
                "evidence not taken: cannot create `{}`: {error}",
                dir.display()
            ));
            return (files, notes);
        }
        let mut pieces: Vec<(&str, Result<Vec<u8>, String>)> = vec![(
            "inspect.json",
            serde_json::to_vec_pretty(inspect).map_err(|e| e.to_string()),
        )];
        pieces.push(("logs.txt", self.logs(id).await));
        let running = inspect
            .pointer("/State/Running")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let top = if running {
            self.docker
                .top_processes(id, None::<bollard::query_parameters::TopOptions>)
                .await
                .map_err(|e| e.to_string())
                .and_then(|top| serde_json::to_vec_pretty(&top).map_err(|e| e.to_string()))
        } else {
            Err("the container is not running".into())
        };
        pieces.push(("top.json", top));
        let diff = self
            .docker
            .container_changes(id)
            .await
            .map_err(|e| e.to_string())
            .map(|changes| {
                let changes: Vec<Value> = changes
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        let kind = serde_json::to_value(c.kind).unwrap_or(Value::Null);
                        let kind = match kind.as_u64() {
                            Some(0) => json!("C"),
                            Some(1) => json!("A"),
                            Some(2) => json!("D"),
                            _ => kind,
                        };
                        json!({"path": c.path, "kind": kind})
                    })
                    .collect();
                serde_json::to_vec_pretty(&changes).unwrap_or_default()
            });
        pieces.push(("diff.json", diff));
        for (name, bytes) in pieces {
            match bytes.and_then(|bytes| store(&dir, name, &bytes).map_err(|e| e.to_string())) {
                Ok(file) => files.push(file),
                Err(error) => notes.push(format!("evidence {name} not taken: {error}")),
            }
        }
        if command.export {
            match self.export(&dir, id).await {
                Ok(file) => files.push(file),
                Err(error) => notes.push(format!("evidence export.tar not taken: {error}")),
            }
        }
        let manifest = json!({
            "command": command, "container_id": id, "taken_at": Utc::now().to_rfc3339(),
            "files": files,
        });
        if let Err(error) = serde_json::to_vec_pretty(&manifest)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_private(&dir.join("manifest.json"), &bytes))
        {
            notes.push(format!("evidence manifest.json not written: {error}"));
        }
        (files, notes)
    }

    async fn logs(&self, id: &str) -> Result<Vec<u8>, String> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .tail(&LOG_TAIL_LINES.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| e.to_string())?;
            out.extend_from_slice(&item.into_bytes());
            if out.len() > LOG_MAX_BYTES {
                out.truncate(LOG_MAX_BYTES);
                break;
            }
        }
        Ok(out)
    }

    async fn export(&self, dir: &Path, id: &str) -> Result<EvidenceFile, String> {
        use std::io::Write;
        let path = dir.join("export.tar");
        let mut file = private_file(&path).map_err(|e| e.to_string())?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut stream = self.docker.export_container(id);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            file.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        file.sync_all().map_err(|e| e.to_string())?;
        Ok(EvidenceFile {
            name: "export.tar".into(),
            sha256: hex(&hasher.finalize()),
            bytes,
            path: path.display().to_string(),
        })
    }
}

/// Why the container is a crowsnest server or agent, if it is one: its image is
/// `[registry/...]crowsnest[:tag|@digest]` or it carries `app.kubernetes.io/name=crowsnest`.
pub fn runs_crowsnest(inspect: &Value) -> Option<String> {
    let image = inspect
        .pointer("/Config/Image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let repository = image.split('@').next().unwrap_or_default();
    let last = repository.rsplit('/').next().unwrap_or_default();
    let last = last.split(':').next().unwrap_or_default();
    if last == "crowsnest" {
        return Some(format!("image `{image}`"));
    }
    let label = inspect
        .pointer("/Config/Labels/app.kubernetes.io~1name")
        .and_then(Value::as_str);
    (label == Some("crowsnest")).then(|| "label app.kubernetes.io/name=crowsnest".to_string())
}

/// The container's network attachments, from its inspect output.
pub fn attachments(inspect: &Value) -> Vec<NetworkAttachment> {
    let id = inspect["Id"].as_str().unwrap_or_default();
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !(s.is_empty() || (s.len() >= 12 && id.starts_with(s))))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = |value: &Value| value.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let mut out: Vec<NetworkAttachment> = inspect
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|networks| {
            networks
                .iter()
                .filter(|(name, _)| name.as_str() != "none" && name.as_str() != "host")
                .map(|(name, endpoint)| NetworkAttachment {
                    network: name.clone(),
                    network_id: text(&endpoint["NetworkID"]),
                    aliases: strings(&endpoint["Aliases"]),
                    ipv4_address: text(&endpoint["IPAMConfig"]["IPv4Address"]),
                    ipv6_address: text(&endpoint["IPAMConfig"]["IPv6Address"]),
                    links: strings(&endpoint["Links"]),
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.network.cmp(&b.network));
    out
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    crowsnest_util::AtomicWrite::default()
        .mode(0o600)
        .write(path, bytes)
}

/// Writes one evidence file durably and hashes what was written.
fn store(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<EvidenceFile> {
    let path = dir.join(name);
    write_private(&path, bytes)?;
    Ok(EvidenceFile {
        name: name.to_string(),
        sha256: hex(&Sha256::digest(bytes)),
        bytes: bytes.len() as u64,
        path: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c0d2e3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f";

    #[test]
    fn own_container_is_found_in_cgroup_mounts_or_hostname_but_not_in_layer_mounts() {
        let v1 = SelfIdentity::from_sources(&format!("12:pids:/docker/{ID}\n"), "", "node-a");
        assert!(v1.is_self(ID));
        let v2 =
            SelfIdentity::from_sources(&format!("0::/system.slice/docker-{ID}.scope\n"), "", "x");
        assert!(v2.is_self(ID));
        let mounts = format!(
            "600 590 254:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
        );
        assert!(SelfIdentity::from_sources("0::/\n", &mounts, "x").is_self(ID));
        assert!(SelfIdentity::from_sources("0::/\n", "", &ID[..12]).is_self(ID));
        // A host sees other containers' layers in its mount table: they are not "self".
        let host_mounts =
            format!("700 29 0:55 / /var/lib/docker/overlay2/{ID}/merged rw - overlay overlay rw\n");
        let host = SelfIdentity::from_sources("0::/init.scope\n", &host_mounts, "buildhost");
        assert!(!host.is_self(ID));
    }

    #[test]
    fn crowsnest_containers_are_recognised_by_image_or_label() {
        let image = |image: &str| json!({"Config": {"Image": image, "Labels": {}}});
        assert!(runs_crowsnest(&image("ghcr.io/crowsnest-siem/crowsnest:0.1.0")).is_some());
        assert!(runs_crowsnest(&image("crowsnest")).is_some());
        assert!(runs_crowsnest(&image("localhost:5000/crowsnest@sha256:abcd")).is_some());
        assert!(runs_crowsnest(&image("crowsnest-busybox:latest")).is_none());
        assert!(runs_crowsnest(&image("nginx:1.27")).is_none());
        let labelled =
            json!({"Config": {"Image": "x", "Labels": {"app.kubernetes.io/name": "crowsnest"}}});
        assert!(runs_crowsnest(&labelled).is_some());
    }

    #[test]
    fn attachments_keep_aliases_and_static_addresses_but_not_the_short_id() {
        let inspect = json!({
            "Id": ID,
            "NetworkSettings": {"Networks": {
                "backend": {"NetworkID": "n1", "Aliases": ["api", &ID[..12]],
                            "IPAMConfig": {"IPv4Address": "10.9.0.5"}, "Links": null},
                "bridge": {"NetworkID": "n0", "Aliases": null, "IPAMConfig": null},
            }}
        });
        let found = attachments(&inspect);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].network, "backend");
        assert_eq!(found[0].aliases, ["api"]);
        assert_eq!(found[0].ipv4_address.as_deref(), Some("10.9.0.5"));
        assert_eq!(found[1].network, "bridge");
        assert!(found[1].aliases.is_empty() && found[1].ipv4_address.is_none());
        let host = json!({"Id": ID, "NetworkSettings": {"Networks": {"host": {}}}});
        assert!(attachments(&host).is_empty());
    }

    #[test]
    fn evidence_files_carry_the_hash_of_their_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = store(dir.path(), "logs.txt", b"abc").expect("store");
        assert_eq!(
            file.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(file.bytes, 3);
        assert_eq!(std::fs::read(&file.path).expect("read"), b"abc");
    }

    #[tokio::test]
    async fn expired_and_foreign_commands_are_refused_before_the_engine_is_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        // No engine listens there: refusals must not need one.
        let socket = dir.path().join("no.sock");
        let executor = Executor::new(
            &socket.display().to_string(),
            "node-a",
            dir.path(),
            SelfIdentity::default(),
        );
        let mut command = AgentCommand::new(
            "node-a",
            ContainerOp::Pause,
            "web",
            "test",
            chrono::Duration::seconds(60),
        );
        command.expires_at = command.issued_at - chrono::Duration::seconds(1);
        let result = executor.execute(&command).await;
        assert!(!result.ok);
        assert!(
            result
                .error
                .as_deref()
                .is_some_and(|e| e.contains("expired")),
            "{result:?}"
        );
        let other = AgentCommand::new(
            "node-b",
            ContainerOp::Pause,
            "web",
            "test",
            chrono::Duration::seconds(60),
        );
        let result = executor.execute(&other).await;
        assert!(result
            .error
            .as_deref()
            .is_some_and(|e| e.contains("node `node-b`")));
    }
}
