//! A tiny harness for binary-level tests: a `crowsnest server` child process on a free
//! loopback port in a temporary data directory, stopped by PID (SIGKILL on drop).

#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod docker;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_crowsnest")
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A running server child.
pub struct Server {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub url: String,
    pub port: u16,
    pub token: String,
    /// The extra flags it was started with (a restart uses them again).
    pub extra: Vec<String>,
}

impl Server {
    /// Starts a server in `data_dir` on `port` and waits until it answers.
    pub fn start(data_dir: &Path, port: u16) -> Self {
        Self::start_with(data_dir, port, &[])
    }

    /// Like [`Server::start`], with extra `crowsnest server` flags.
    pub fn start_with(data_dir: &Path, port: u16, extra: &[String]) -> Self {
        let child = Command::new(bin())
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--commit-interval-ms",
                "200",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("CROWSNEST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server");
        let url = format!("http://127.0.0.1:{port}");
        let token_path = data_dir.join("admin.token");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut server = Self {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            url,
            port,
            token: String::new(),
            extra: extra.to_vec(),
        };
        loop {
            assert!(Instant::now() < deadline, "server did not come up");
            if let Ok(token) = std::fs::read_to_string(&token_path) {
                server.token = token.trim().to_string();
                if server.get("/api/v1/health").is_ok() {
                    return server;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        child.wait().expect("wait")
    }

    pub fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build()
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        self.agent()
            .get(&format!("{}/metrics", self.url))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()
            .expect("metrics")
            .into_string()
            .expect("text")
    }

    pub fn get(&self, path: &str) -> Result<Value, Box<ureq::Error>> {
        let response = self
            .agent()
            .get(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()
            .map_err(Box::new)?;
        Ok(response.into_json().unwrap_or(Value::Null))
    }

    pub fn search(&self, query: &str) -> Value {
        self.search_limit(query, 100)
    }

    /// A search returning at most `limit` hits or rows.
    pub fn search_limit(&self, query: &str, limit: usize) -> Value {
        self.agent()
            .post(&format!("{}/api/v1/search", self.url))
            .set("Authorization", &format!("Bearer {}", self.token))
            .send_json(json!({"query": query, "limit": limit}))
            .expect("search")
            .into_json()
            .expect("json")
    }

    /// Waits until every acknowledged event is searchable.
    pub fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = self.get("/api/v1/health").expect("health");
            if health["index_lag_events"] == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "index lag did not reach 0: {health}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `crowsnest` command pointed at this server.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(bin());
        command
            .env("CROWSNEST_SERVER", &self.url)
            .env("CROWSNEST_TOKEN", &self.token)
            .env("CROWSNEST_LOG", "warn")
            .stdin(Stdio::null());
        command
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Crash rounds: for each pause, `senders` threads run `send(url, token, stop)` against the
/// server, which gets SIGKILL after the pause (while they send) and is started again on the
/// same data directory and port. Returns the server of the last restart.
pub fn kill_9_rounds<F>(mut server: Server, senders: usize, pauses: &[Duration], send: F) -> Server
where
    F: Fn(String, String, Arc<AtomicBool>) + Clone + Send + 'static,
{
    for pause in pauses {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..senders)
            .map(|_| {
                let (url, token) = (server.url.clone(), server.token.clone());
                let (stop, send) = (stop.clone(), send.clone());
                std::thread::spawn(move || send(url, token, stop))
            })
            .collect();
        std::thread::sleep(*pause);
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for thread in threads {
            thread.join().expect("sender");
        }
        let (dir, port, extra) = (server.data_dir.clone(), server.port, server.extra.clone());
        server = Server::start_with(&dir, port, &extra);
    }
    server
}

/// An rsyslogd child with its own config, work directory and pid file, stopped by PID on drop.
pub struct Rsyslog(pub Child);

impl Rsyslog {
    /// Starts `rsyslogd` in the foreground with `config`, its pid file in `work`.
    pub fn start(rsyslogd: &Path, config: &Path, work: &Path) -> Self {
        let child = Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(config)
            .arg("-i")
            .arg(work.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn rsyslogd");
        Self(child)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
