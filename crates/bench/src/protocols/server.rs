//! The measured server: `crowsnest server` as a child process on a temporary data directory,
//! with every listener on a free loopback port, so its CPU time and memory are its own
//! (read from `/proc/<pid>/stat` and `/proc/<pid>/status`, see [`crate::procfs`]) and not mixed with the load
//! generator's.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crowsnest_client::Client;

use crate::procfs::{process_cpu_seconds, process_status_mb, Cpu};

/// The events counted as searchable: the input's, not the alerts of the server's detection
/// nor the self-audit records of the bench's own searches.
const SEARCHABLE: &str =
    "NOT event.dataset:\"crowsnest.alert\" AND NOT event.dataset:\"crowsnest.audit\" AND NOT event.dataset:\"crowsnest.verify\"";

/// A running child server and where to reach each of its inputs.
pub struct ChildServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The admin token.
    pub token: String,
    /// The syslog TCP listener.
    pub syslog_tcp: SocketAddr,
    /// The syslog UDP listener.
    pub syslog_udp: SocketAddr,
    /// The forward listener.
    pub forward: SocketAddr,
    _dir: tempfile::TempDir,
}

fn free_tcp() -> anyhow::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free TCP port")
}

fn free_udp() -> anyhow::Result<SocketAddr> {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .context("finding a free UDP port")
}

impl ChildServer {
    /// Starts `exe server` and waits until it answers with a token.
    pub fn start(exe: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("crowsnest-bench-protocols")
            .tempdir()
            .context("creating a temporary directory")?;
        let (http, syslog_tcp, syslog_udp, forward) =
            (free_tcp()?, free_tcp()?, free_udp()?, free_tcp()?);
        let log = std::fs::File::create(dir.path().join("server.log"))
            .context("creating the server log")?;
        let child = Command::new(exe)
            .arg("server")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", &http.to_string()])
            .args(["--syslog-tcp", &syslog_tcp.to_string()])
            .args(["--syslog-udp", &syslog_udp.to_string()])
            .args(["--forward", &forward.to_string()])
            .env("CROWSNEST_LOG", "warn")
            .env_remove("CROWSNEST_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting `{} server`", exe.display()))?;
        let mut server = Self {
            child,
            url: format!("http://{http}"),
            token: String::new(),
            syslog_tcp,
            syslog_udp,
            forward,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let token_path = self._dir.path().join("data/admin.token");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().context("watching the server")? {
                let log = std::fs::read_to_string(self._dir.path().join("server.log"))
                    .unwrap_or_default();
                anyhow::bail!("the server exited with {status}: {log}");
            }
            if let Ok(token) = std::fs::read_to_string(&token_path) {
                let token = token.trim().to_string();
                if !token.is_empty() && self.searchable_with(&token).is_ok() {
                    self.token = token;
                    return Ok(());
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn searchable_with(&self, token: &str) -> anyhow::Result<u64> {
        let answer = Client::new(&self.url, token)
            .post_json("/api/v1/search", &json!({"query": SEARCHABLE, "limit": 0}))?;
        answer["total"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("expected a `total` in the search answer: {answer}"))
    }

    /// Input events (not alerts of our detection) a search finds now.
    pub fn searchable(&self) -> anyhow::Result<u64> {
        self.searchable_with(&self.token)
    }

    /// User + system CPU seconds the server has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(&self.child.id().to_string(), Cpu::Own)
    }

    /// Peak resident memory (`VmHWM`) in MB.
    pub fn peak_rss_mb(&self) -> f64 {
        process_status_mb(&self.child.id().to_string(), "VmHWM:")
    }

    /// Stops the server (SIGKILL: the data directory is thrown away anyway).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
