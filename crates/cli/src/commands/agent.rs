//! `crowsnest agent`: the node agent (crates/agent) as a command, and the `--collect-local`
//! wiring of `crowsnest server`.
//!
//! ```text
//! crowsnest agent --server http://crowsnest:8470 --token-file /etc/crowsnest/ingest.token
//! ```
//!
//! The agent also carries out the containment commands the server queues for its node
//! (`--node`, default the host name) on the Docker socket, unless `--no-containment`.
//!
//! Every path has the node default (`/var/lib/docker`, `/var/log/pods`, `/var/log/audit/audit.log`,
//! syslog and auth logs, `/var/run/docker.sock`); `--disable` turns a source off.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use crowsnest_agent::{Agent, AgentConfig};

/// A source the agent can be told not to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Docker json-file container logs.
    DockerLogs,
    /// CRI container logs (`/var/log/pods`).
    Cri,
    /// Docker engine events.
    DockerEvents,
    /// The kernel audit log.
    Audit,
    /// Host log files.
    Host,
    /// Falco's JSON output.
    Falco,
}

/// Flags of `crowsnest agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Server base URL.
    #[arg(
        long,
        env = "CROWSNEST_SERVER",
        default_value = "http://127.0.0.1:8470"
    )]
    pub server: String,
    /// File holding an ingest token.
    #[arg(long, env = "CROWSNEST_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The ingest token itself (prefer --token-file).
    #[arg(long, env = "CROWSNEST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where cursors and the disk buffer live.
    #[arg(
        long,
        env = "CROWSNEST_AGENT_STATE_DIR",
        default_value = "/var/lib/crowsnest-agent"
    )]
    pub state_dir: PathBuf,
    /// Fixed agent id [default: <hostname>-<ulid>, kept in the state dir].
    #[arg(long, env = "CROWSNEST_AGENT_ID")]
    pub agent_id: Option<String>,
    /// Docker's data root (json-file logs, container metadata).
    #[arg(long, env = "CROWSNEST_DOCKER_ROOT", default_value = "/var/lib/docker")]
    pub docker_root: PathBuf,
    /// The Docker API socket.
    #[arg(
        long,
        env = "CROWSNEST_DOCKER_SOCKET",
        default_value = "/var/run/docker.sock"
    )]
    pub docker_socket: String,
    /// CRI pod log directory.
    #[arg(long, default_value = "/var/log/pods")]
    pub pods_dir: PathBuf,
    /// The `/var/log/containers` symlink directory (container ids of CRI logs).
    #[arg(long, default_value = "/var/log/containers")]
    pub containers_dir: PathBuf,
    /// The kernel audit log.
    #[arg(long, default_value = "/var/log/audit/audit.log")]
    pub audit_log: PathBuf,
    /// Host log files (repeatable) [default: /var/log/{syslog,auth.log,messages,secure,kubelet.log,containerd.log}].
    #[arg(long = "host-log")]
    pub host_logs: Vec<PathBuf>,
    /// Falco's JSON output file.
    #[arg(long, default_value = "/var/log/falco/events.json")]
    pub falco_log: PathBuf,
    /// Where the host's /proc is (a container mounts it elsewhere).
    #[arg(long, env = "CROWSNEST_PROC_ROOT", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Sources not to read (repeatable).
    #[arg(long, value_enum)]
    pub disable: Vec<Source>,
    /// Most bytes buffered on disk while the server is unreachable; then reading stops.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub spool_max_bytes: u64,
    /// Longest wait before a batch is sent, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub flush_interval_ms: u64,
    /// Install the execve and sensitive-file audit rules with auditctl before starting.
    #[arg(long)]
    pub install_audit_rules: bool,
    /// The node name containment commands are addressed to, also `host.name` on its events
    /// [default: the host name].
    #[arg(long, env = "CROWSNEST_NODE")]
    pub node: Option<String>,
    /// Do not fetch or carry out containment commands (pause, quarantine, stop, kill, ...).
    #[arg(long)]
    pub no_containment: bool,
}

impl Args {
    /// The agent configuration these flags describe.
    pub fn resolve(&self) -> anyhow::Result<AgentConfig> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => token.trim().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file `{}`", path.display()))?
                .trim()
                .to_string(),
            (None, None) => anyhow::bail!("expected --token-file or --token (an ingest token)"),
        };
        let mut config =
            AgentConfig::node_defaults(self.server.clone(), token, self.state_dir.clone());
        let on = |source: Source| !self.disable.contains(&source);
        let sources = &mut config.sources;
        // The docker root also gives container metadata to audit events.
        sources.docker_root = Some(self.docker_root.clone());
        sources.docker_logs = on(Source::DockerLogs);
        sources.pods_dir = on(Source::Cri).then(|| self.pods_dir.clone());
        sources.containers_dir = on(Source::Cri).then(|| self.containers_dir.clone());
        sources.audit_log = on(Source::Audit).then(|| self.audit_log.clone());
        sources.falco_log = on(Source::Falco).then(|| self.falco_log.clone());
        if !self.host_logs.is_empty() {
            sources.host_logs = self.host_logs.clone();
        }
        if !on(Source::Host) {
            sources.host_logs.clear();
        }
        sources.proc_root = self.proc_root.clone();
        config.docker_socket = on(Source::DockerEvents).then(|| self.docker_socket.clone());
        config.containment = if self.no_containment {
            None
        } else {
            Some(crowsnest_agent::Containment {
                node: self.node.clone().unwrap_or_else(crowsnest_agent::hostname),
                docker_socket: self.docker_socket.clone(),
                poll_wait: std::time::Duration::from_secs(25),
            })
        };
        // Alerts on this agent's events address their containment to `host.name`: with
        // `--node`, the events carry the node name so that the commands come back here.
        if let Some(node) = self.node.as_deref().filter(|n| !n.trim().is_empty()) {
            config.host_name = node.trim().to_string();
        }
        config.agent_id = self.agent_id.clone();
        config.spool.max_bytes = self.spool_max_bytes;
        config.spool.flush_interval = std::time::Duration::from_millis(self.flush_interval_ms);
        Ok(config)
    }
}

/// Runs the agent until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.install_audit_rules {
        let added = crowsnest_agent::rules::install()?;
        eprintln!("audit rules installed: {added} added");
    }
    let config = args.resolve()?;
    let agent = Agent::start(config)?;
    eprintln!(
        "crowsnest agent {} shipping to {}",
        agent.agent_id, args.server
    );
    crate::runtime::runtime()?.block_on(crate::runtime::shutdown_signal());
    tracing::info!("stopping: spooling what was read");
    agent.stop()?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    args: Args,
}

/// The agent flags at their defaults (and `CROWSNEST_*` variables), for `--collect-local`.
pub fn defaults() -> Args {
    use clap::Parser;
    Defaults::parse_from(["crowsnest-agent"]).args
}

/// Reuses (or creates) the ingest token of the server's own collectors.
pub fn local_token(running: &crowsnest_server::Running, data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("local-agent.token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        let header = format!("Bearer {token}");
        if running
            .state
            .tokens
            .check(Some(&header), crowsnest_server::auth::Scope::Ingest)
            .is_ok()
        {
            return Ok(token);
        }
    }
    let token = running.state.tokens.create(
        "local-agent",
        [crowsnest_server::auth::Scope::Ingest]
            .into_iter()
            .collect(),
    )?;
    std::fs::write(&path, &token).with_context(|| format!("writing `{}`", path.display()))?;
    Ok(token)
}

/// Starts the collectors of `server --collect-local`, shipping to the server itself.
pub fn start_local(
    running: &crowsnest_server::Running,
    data_dir: &Path,
    args: &Args,
) -> anyhow::Result<Agent> {
    let token = local_token(running, data_dir)?;
    let server = format!("http://{}", running.addr);
    let args = Args {
        server,
        token: Some(token),
        token_file: None,
        state_dir: data_dir.join("agent"),
        ..args.clone()
    };
    if args.install_audit_rules {
        let added = crowsnest_agent::rules::install()?;
        eprintln!("audit rules installed: {added} added");
    }
    Agent::start(args.resolve()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn disabled_sources_are_off_and_the_token_is_required() {
        let wrapper = Wrapper::parse_from([
            "x",
            "--token",
            " tok \n",
            "--disable",
            "audit",
            "--disable",
            "docker-events",
            "--host-log",
            "/tmp/app.log",
        ]);
        let config = wrapper.args.resolve().expect("config");
        assert_eq!(config.token, "tok");
        assert!(config.sources.audit_log.is_none());
        assert!(config.docker_socket.is_none());
        let containment = config.containment.expect("containment is on by default");
        assert_eq!(containment.docker_socket, "/var/run/docker.sock");
        let off = Wrapper::parse_from(["x", "--token", "t", "--no-containment", "--node", "n1"]);
        assert!(off.args.resolve().expect("config").containment.is_none());
        assert!(config.sources.pods_dir.is_some());
        assert_eq!(config.sources.host_logs, [PathBuf::from("/tmp/app.log")]);
        let missing = Wrapper::parse_from(["x"]).args.resolve();
        assert!(missing.is_err_and(|e| e.to_string().contains("--token-file")));
    }
}
