//! The server measured in-process by `crowsnest bench` and `crowsnest bench detect`: a
//! `crowsnest-server` on a loopback port and its own tokio runtime, with a data directory
//! (temporary unless given), and a client holding its admin token.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use crowsnest_client::Client;
use crowsnest_server::{Running, ServerConfig};

/// A running in-process server.
pub struct LocalServer {
    rt: tokio::runtime::Runtime,
    /// The server (its state: pipeline positions, store statistics).
    pub running: Running,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The admin token.
    pub token: String,
    /// A client with the admin token.
    pub client: Client,
    _dir: tempfile::TempDir,
}

impl LocalServer {
    /// Starts a server with `config` on a free loopback port, in `data_dir` or a temporary
    /// directory removed when it stops.
    ///
    /// # Errors
    ///
    /// When the runtime, the directory or the server cannot be started.
    pub fn start(mut config: ServerConfig, data_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("crowsnest-bench-rt")
            .build()
            .context("starting the async runtime")?;
        let dir = tempfile::Builder::new()
            .prefix("crowsnest-bench")
            .tempdir()
            .context("creating a temporary directory")?;
        config.listen = "127.0.0.1:0".into();
        config.data_dir = data_dir.unwrap_or_else(|| dir.path().join("data"));
        let running = rt.block_on(crowsnest_server::start(config))?;
        let token = std::fs::read_to_string(&running.admin_token_path)
            .context("reading the admin token")?
            .trim()
            .to_string();
        let url = format!("http://{}", running.addr);
        Ok(Self {
            client: Client::new(&url, &token),
            rt,
            running,
            url,
            token,
            _dir: dir,
        })
    }

    /// Waits until every acknowledged event is committed to the store (searchable).
    pub fn wait_searchable(&self) {
        let pipeline = &self.running.state.pipeline;
        while pipeline.committed_next() < pipeline.acked_next() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Drains the pipeline, commits the store and stops.
    ///
    /// # Errors
    ///
    /// When the shutdown fails.
    pub fn shutdown(self) -> anyhow::Result<()> {
        self.rt.block_on(self.running.shutdown())
    }
}
