//! The crowsnest node agent: what runs on every node and ships what happens there.
//!
//! ```text
//!  container logs (json-file, CRI) ─┐
//!  kernel audit log, host logs, ────┤ collect (1 thread, polling)   ┌─► spool/<seq>.ndjson.gz
//!  Falco JSON                       ├─► bounded channel ─► batcher ─┤   + state.json (cursors)
//!  Docker engine events (bollard) ──┘   (backpressure)              └─► sender ─► server
//! ```
//!
//! * [`collect`] follows files ([`tail`]: rotation, truncation, cursors) and turns lines into
//!   ECS events with the parsers of `crowsnest-normalize`'s registry (container log formats,
//!   Falco alerts; the same ones the server and `crowsnest hunt` use), [`audit`] for kernel
//!   audit records and [`meta`] for container and pod identity.
//! * [`docker`] follows the engine's events through its API; [`exec`] turns an `exec_start`
//!   the audit path did not report into a process start for the profiles.
//! * [`spool`] batches events to disk together with the cursors (the commit point), bounded in
//!   bytes; when full, collectors stop reading.
//! * [`ship`] sends batches, gzip'd, to `POST /api/v1/ingest/ndjson` with the ingest token and
//!   `X-Crowsnest-Batch: <agent-id>:spool:<seq>`, until acknowledged; the server drops a batch
//!   id it already stored, so delivery is exactly-once across kills of either side.
//! * [`rules`] installs the audit rules the agent reads (`auditctl`), on request.
//! * [`channel`] long-polls the server for containment commands of this node
//!   (`GET /api/v1/agent/commands`) and [`contain`] carries them out on the Docker engine
//!   (evidence, pause, network quarantine and release, stop, start, kill), then posts the result.
//!
//! [`Agent::start`] runs it all on threads; [`Agent::stop`] flushes what was read and stops.

pub mod audit;
pub mod channel;
pub mod collect;
pub mod contain;
pub mod docker;
pub mod exec;
pub mod meta;
pub mod rules;
pub mod ship;
pub mod spool;
pub mod tail;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Map, Value};

/// What every event passes through before it is spooled (adds `host.name`, `agent.*`).
pub type Decorate = dyn Fn(&mut Map<String, Value>) + Send + Sync;

/// Everything the agent is told.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Server base URL.
    pub server: String,
    /// Ingest token.
    pub token: String,
    /// State directory (cursors and the spool).
    pub state_dir: PathBuf,
    /// A fixed agent id (default: `<hostname>-<ulid>`, kept in the state).
    pub agent_id: Option<String>,
    /// Files to follow.
    pub sources: collect::Sources,
    /// The Docker API socket; `None` disables engine events.
    pub docker_socket: Option<String>,
    /// Batching and the disk buffer.
    pub spool: spool::SpoolConfig,
    /// `host.name` on every event.
    pub host_name: String,
    /// Containment: the node name commands are addressed to and the Docker socket they are
    /// carried out on; `None` disables the command channel.
    pub containment: Option<Containment>,
}

/// The command channel's settings.
#[derive(Debug, Clone)]
pub struct Containment {
    /// The node name (default: the host name).
    pub node: String,
    /// The Docker API socket the commands act on.
    pub docker_socket: String,
    /// How long one poll of the server waits for a command.
    pub poll_wait: Duration,
}

impl AgentConfig {
    /// Defaults for a node: Docker and CRI logs, the audit log, syslog/auth, the Docker socket.
    pub fn node_defaults(server: String, token: String, state_dir: PathBuf) -> Self {
        let var_log = PathBuf::from("/var/log");
        Self {
            server,
            token,
            state_dir,
            agent_id: None,
            sources: collect::Sources {
                docker_root: Some(PathBuf::from("/var/lib/docker")),
                docker_logs: true,
                pods_dir: Some(var_log.join("pods")),
                containers_dir: Some(var_log.join("containers")),
                audit_log: Some(var_log.join("audit/audit.log")),
                host_logs: [
                    "syslog",
                    "auth.log",
                    "messages",
                    "secure",
                    "kubelet.log",
                    "containerd.log",
                ]
                .iter()
                .map(|n| var_log.join(n))
                .collect(),
                falco_log: Some(var_log.join("falco/events.json")),
                proc_root: PathBuf::from("/proc"),
            },
            docker_socket: Some("/var/run/docker.sock".into()),
            spool: spool::SpoolConfig::default(),
            host_name: hostname(),
            containment: Some(Containment {
                node: hostname(),
                docker_socket: "/var/run/docker.sock".into(),
                poll_wait: Duration::from_secs(25),
            }),
        }
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A running agent.
pub struct Agent {
    stop: Arc<AtomicBool>,
    collectors: Vec<JoinHandle<()>>,
    batcher: Option<JoinHandle<std::io::Result<()>>>,
    sender: Option<JoinHandle<()>>,
    /// The command channel (not joined on stop: a poll in flight ends by itself).
    commands: Option<JoinHandle<()>>,
    /// Delivery counters.
    pub stats: Arc<ship::ShipStats>,
    /// This agent's id.
    pub agent_id: String,
}

impl Agent {
    /// Opens the state, then starts the collectors, the batcher and the sender.
    pub fn start(config: AgentConfig) -> anyhow::Result<Self> {
        let spool = spool::Spool::open(&config.state_dir, config.agent_id.as_deref())?;
        let state = spool.state().clone();
        let agent_id = state.agent_id.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ship::ShipStats::default());
        let bell = Arc::new(ship::Bell::default());
        let (tx, rx) = std::sync::mpsc::sync_channel::<spool::Record>(4_096);
        let decorate: Arc<Decorate> = {
            let (host, id) = (config.host_name.clone(), agent_id.clone());
            Arc::new(move |event: &mut Map<String, Value>| {
                event
                    .entry("host")
                    .or_insert_with(|| json!({ "name": host }));
                event.insert(
                    "agent".into(),
                    json!({"id": id, "type": "crowsnest-agent", "version": env!("CARGO_PKG_VERSION")}),
                );
            })
        };
        let mut collectors = Vec::new();
        // An exec the audit path did not report is sent from the engine's `exec_start`
        // ([`exec`]).
        let exec_seen = Arc::new(exec::ExecSeen::default());
        {
            let (sources, cursors, tx, stop, decorate, seen) = (
                config.sources.clone(),
                state.cursors.clone(),
                tx.clone(),
                stop.clone(),
                decorate.clone(),
                exec_seen.clone(),
            );
            collectors.push(
                std::thread::Builder::new()
                    .name("agent-files".into())
                    .spawn(move || {
                        collect::run(&sources, &cursors, &tx, &stop, &*decorate, Some(seen))
                    })?,
            );
        }
        if let Some(socket) = config.docker_socket.clone() {
            let cursor = state
                .cursors
                .get(docker::CURSOR_KEY)
                .and_then(|c| c.get("time_nano"))
                .and_then(Value::as_i64);
            let (tx, stop, decorate) = (tx.clone(), stop.clone(), decorate.clone());
            let exec_seen = exec_seen.clone();
            collectors.push(
                std::thread::Builder::new()
                    .name("agent-docker".into())
                    .spawn(move || {
                        if let Err(error) =
                            docker::run(&socket, cursor, &tx, &stop, &*decorate, &exec_seen)
                        {
                            tracing::error!(%error, "docker events stopped");
                        }
                    })?,
            );
        }
        drop(tx);
        let spool_bytes = spool.bytes.clone();
        let batcher = {
            let (stop, bell, config) = (stop.clone(), bell.clone(), config.spool.clone());
            std::thread::Builder::new()
                .name("agent-batcher".into())
                .spawn(move || spool::run_batcher(spool, rx, &config, &stop, &|| bell.ring()))?
        };
        let sender = {
            let ship_config = ship::ShipConfig {
                server: config.server.clone(),
                token: config.token.clone(),
                agent_id: agent_id.clone(),
                timeout: Duration::from_secs(30),
            };
            let (dir, stop, bell, stats) = (
                config.state_dir.clone(),
                stop.clone(),
                bell.clone(),
                stats.clone(),
            );
            std::thread::Builder::new()
                .name("agent-sender".into())
                .spawn(move || {
                    ship::run_sender(&dir, &ship_config, spool_bytes, &bell, &stop, &stats)
                })?
        };
        let commands = match &config.containment {
            Some(containment) => {
                let executor = contain::Executor::new(
                    &containment.docker_socket,
                    &containment.node,
                    &config.state_dir,
                    contain::SelfIdentity::detect(),
                );
                let channel = channel::ChannelConfig {
                    server: config.server.clone(),
                    token: config.token.clone(),
                    node: containment.node.clone(),
                    poll_wait: containment.poll_wait,
                    state_dir: config.state_dir.clone(),
                };
                let stop = stop.clone();
                Some(
                    std::thread::Builder::new()
                        .name("agent-commands".into())
                        .spawn(move || channel::run(&channel, &executor, &stop))?,
                )
            }
            None => None,
        };
        tracing::info!(agent_id, server = %config.server, node = config.containment.as_ref().map(|c| c.node.as_str()), "agent started");
        Ok(Self {
            stop,
            collectors,
            batcher: Some(batcher),
            sender: Some(sender),
            commands,
            stats,
            agent_id,
        })
    }

    /// Whether a thread of the agent has ended (it only does on a fatal error or stop).
    pub fn is_finished(&self) -> bool {
        self.batcher.as_ref().is_none_or(JoinHandle::is_finished)
            || self.sender.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops reading, spools what was read, tries once more to send, and returns.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.collectors.drain(..) {
            let _ = thread.join();
        }
        if let Some(batcher) = self.batcher.take() {
            match batcher.join() {
                Ok(result) => result?,
                Err(_) => anyhow::bail!("the batcher panicked"),
            }
        }
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
        if let Some(commands) = self.commands.take() {
            if commands.is_finished() {
                let _ = commands.join();
            }
        }
        Ok(())
    }
}
