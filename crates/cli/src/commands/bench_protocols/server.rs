//! The measured server: `crowsnest server` as a child process on a temporary data directory,
//! with every listener on a free loopback port, so its CPU time and memory are its own
//! (read from `/proc/<pid>/stat` and `/proc/<pid>/status`) and not mixed with the load
//! generator's.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::client::Client;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The events counted as searchable: everything but the alerts of the server's detection.
const SEARCHABLE: &str = "NOT event.dataset:\"crowsnest.alert\"";

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
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        cpu_seconds(&stat)
    }

    /// Peak resident memory (`VmHWM`) in MB.
    pub fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status_mb(&status, "VmHWM:")
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

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in seconds.
pub fn cpu_seconds(stat: &str) -> f64 {
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name, field 3 (state) is index 0: utime (14) is 11, stime (15) is 12.
    let ticks: f64 = [11usize, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / TICKS_PER_SECOND
}

/// A `kB` line of `/proc/<pid>/status`, in MB (0 when missing).
pub fn status_mb(status: &str, key: &str) -> f64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_comes_from_utime_and_stime() {
        let stat =
            "4242 (crowsnest rt) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert!((cpu_seconds(stat) - 3.0).abs() < 1e-9);
        assert_eq!(cpu_seconds(""), 0.0);
    }

    #[test]
    fn own_stat_parses_to_a_positive_time() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        assert!(cpu_seconds(&stat) > 0.0);
    }

    #[test]
    fn status_lines_are_read_in_mb() {
        let status = "Name:\tx\nVmHWM:\t  204800 kB\nVmRSS:\t1024 kB\n";
        assert!((status_mb(status, "VmHWM:") - 200.0).abs() < 1e-9);
        assert_eq!(status_mb(status, "Missing:"), 0.0);
    }
}
