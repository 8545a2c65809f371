//! The crowsnest server: HTTP API, authentication, the durable ingest pipeline, metrics.
//!
//! ```text
//!  HTTP body ─► decode (crowsnest-normalize) ─► Pipeline::submit ─► WAL append + fsync ─► 200
//!                                                     │ (bounded queue: full = 503 + Retry-After)
//!                                                     ├─► detector thread ─► alerts ─► WAL
//!                                                     └─► indexer thread ─► Store::add / commit
//!                                                           (queue full: read back   └─► WAL truncation
//!                                                            from the WAL)
//! ```
//!
//! * [`config::ServerConfig`]: every setting, with defaults; the `crowsnest` CLI layers the TOML
//!   file, `CROWSNEST_*` variables and flags on top.
//! * [`auth::Tokens`]: bearer tokens with scopes (`ingest`, `read`, `admin`); the admin token is
//!   written to `<data-dir>/admin.token` (mode 0600) on first start.
//! * [`pipeline::Pipeline`]: group-committing WAL writer and the indexer; replays the WAL into the
//!   store on start, so `kill -9` loses no acknowledged event and duplicates none.
//! * [`commands::CommandQueue`]: the durable queue of containment commands for node agents
//!   (`<data-dir>/commands/`), long-polled by the agents (`/api/v1/agent/commands`).
//! * [`app`] builds the axum `Router` (socket-free tests drive it with `oneshot`); [`run`]
//!   serves it until shutdown.

pub mod api;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod config;
pub mod error;
pub mod listeners;
pub mod respond;
pub mod serve;
pub mod verify;

// The pipeline crate's modules, under the names the server's code and users have known.
pub use crowsnest_pipeline::{baselines, dedup, detection, disk, metrics, outputs, pipeline};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use crowsnest_store::Store;

pub use api::app;
pub use config::ServerConfig;

/// Everything a request handler needs.
pub struct AppState {
    /// The configuration the server runs with.
    pub config: ServerConfig,
    /// The token registry.
    pub tokens: auth::Tokens,
    /// The ingest pipeline.
    pub pipeline: pipeline::Pipeline,
    /// The store, for searches.
    pub store: Arc<Store>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Search slots per token and the throttle of failed authentication.
    pub guards: api::Guards,
    /// Batch ids already stored, for shippers that retry (the agent).
    pub dedup: Arc<dedup::Dedup>,
    /// The loaded detection rules, and reload requests.
    pub detection: Arc<detection::DetectionStatus>,
    /// When the server started.
    pub started: Instant,
    /// Memory for the requests being read, inflated and decoded at once
    /// (`decode.memory_budget_bytes`), shared by the HTTP inputs and the stream listeners.
    pub decode_budget: crowsnest_ingest::limits::DecodeBudget,
    /// Containment commands for node agents, and their results.
    pub commands: Arc<commands::CommandQueue>,
    /// The notification outbox, when `[notify]` has channels.
    pub notify: Option<Arc<crowsnest_notify::Outbox>>,
    /// The self-audit stream (`[audit]`): searches, token changes, logins, reloads, actions.
    pub audit: audit::Audit,
    /// Containment (`[respond]`): the responder and its executors.
    pub respond: Arc<respond::Respond>,
    /// One integrity verification at a time ([`verify::verify_now`]).
    pub verify_lock: tokio::sync::Mutex<()>,
}

/// A started server: its state and where it listens.
pub struct Running {
    /// The shared state.
    pub state: Arc<AppState>,
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Path of the admin token file.
    pub admin_token_path: std::path::PathBuf,
    /// The admin token, when it was created by this start (printed once by the CLI).
    pub new_admin_token: Option<String>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: tokio::sync::watch::Sender<bool>,
    listeners: Vec<crowsnest_ingest::listen::Listener>,
}

impl Running {
    /// Stops accepting requests, drains the pipeline, commits the store and returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        for listener in self.listeners {
            listener.stop();
        }
        // Agents' long polls end now instead of holding the graceful shutdown.
        self.state.commands.close();
        let _ = self.shutdown.send(true);
        self.server
            .await
            .context("server task")?
            .context("http server")?;
        let state = self.state;
        tokio::task::spawn_blocking(move || {
            state.pipeline.shutdown()?;
            // Close the writers so the partitions are sealed in the integrity chain (their
            // files stop changing here), then checkpoint it.
            state
                .store
                .close_writers()
                .context("closing the store's writers")?;
            if let Some(chain) = state.store.chain() {
                chain.checkpoint();
            }
            Ok(())
        })
        .await
        .context("pipeline shutdown task")?
    }

    /// Waits until the HTTP server stops by itself (it does not, unless it fails).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.server)
            .await
            .context("server task")?
            .context("http server")
    }
}

/// Builds routes served beside the API on the same port (the web console's), from the
/// shared state.
pub type Mount = fn(Arc<AppState>) -> axum::Router;

/// Opens the data directory, replays the WAL, binds the listener and starts serving.
pub async fn start(config: ServerConfig) -> anyhow::Result<Running> {
    start_with(config, None).await
}

/// [`start`], serving the routes of `mount` beside the API (the API's routes win; the
/// API's fallback answers what neither has).
pub async fn start_with(mut config: ServerConfig, mount: Option<Mount>) -> anyhow::Result<Running> {
    fit_connection_caps(&mut config, crowsnest_ingest::listen::open_files_limit());
    // Settings mistakes first, before anything is opened.
    config.notify.validate()?;
    config
        .detect
        .incidents
        .validate()
        .map_err(anyhow::Error::msg)?;
    config.compliance.validate()?;
    let mappings = Arc::new(crowsnest_mapping::Mappings::compile(
        &config.mappings,
        None,
    )?);
    if !mappings.is_empty() {
        let names: Vec<&str> = mappings.names().collect();
        tracing::info!(?names, "user-defined mappings loaded");
    }
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data directory `{}`", data_dir.display()))?;
    let (tokens, new_admin_token) = auth::Tokens::open(&data_dir)?;
    let commands = Arc::new(commands::CommandQueue::open(&data_dir.join("commands"))?);
    let metrics = Arc::new(metrics::Metrics::new());
    let store_dir = data_dir.join("store");
    let store_config = config.store.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&store_dir, store_config))
        .await
        .context("store open task")?
        .context("opening the store")?;
    let store = Arc::new(store);
    if config.integrity.enabled {
        let chain =
            crowsnest_integrity::Chain::open(&data_dir, config.integrity.signing_key.as_deref())
                .context("opening the integrity chain ([integrity])")?;
        store.set_chain(chain);
    }
    let pipeline_config = config.pipeline.clone();
    let dedup = Arc::new(dedup::Dedup::open(&data_dir)?);
    let pipeline_dedup = dedup.clone();
    let (pipeline_store, pipeline_metrics, wal_dir) =
        (store.clone(), metrics.clone(), data_dir.join("wal"));
    let detection = Arc::new(detection::DetectionStatus::default());
    let mut outputs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for output in &config.outputs {
        // The name keys the output's cursor file and metrics: two outputs cannot share one.
        anyhow::ensure!(
            names.insert(output.name.as_str()),
            "two [[outputs]] are named `{}`; expected unique names",
            output.name
        );
        outputs.push(outputs::OutputWorker::open(output.clone(), &data_dir)?);
    }
    // Opened before the detector replays the WAL: replayed incident changes reach the outbox,
    // which recognises those it already holds or delivered.
    let notify_config = config.notify.clone();
    let notify_dir = data_dir.join("notify");
    let notify = tokio::task::spawn_blocking(move || {
        crowsnest_notify::Outbox::open(notify_config, &notify_dir)
    })
    .await
    .context("notify open task")??;
    let worker_notify = notify.clone();
    // Containment: opened (and its log verified) before the detector starts; only live
    // alerts reach it.
    let respond_config = config.respond.clone();
    let respond_dir = data_dir.join("respond");
    let respond_queue = commands.clone();
    let respond = tokio::task::spawn_blocking(move || {
        respond::Respond::open(&respond_dir, respond_config, respond_queue)
    })
    .await
    .context("respond open task")??;
    let respond = Arc::new(respond);
    let (respond_tx, respond_rx) = respond::channel();
    let respond_hook = respond.enabled().then(|| respond::hook(respond_tx));
    let (detect_config, detect_status, detect_dir) = (
        config.detect.clone(),
        detection.clone(),
        data_dir.join("detect"),
    );
    let pipeline = tokio::task::spawn_blocking(move || {
        let worker = if detect_config.enabled {
            let metrics = pipeline_metrics.clone();
            let mut worker =
                detection::Worker::open(detect_config, &detect_dir, detect_status, metrics)?;
            worker.attach_store(pipeline_store.clone());
            if let Some(outbox) = worker_notify {
                worker.notify_to(outbox);
            }
            if let Some(hook) = respond_hook {
                worker.respond_to(hook);
            }
            Some(worker)
        } else {
            None
        };
        pipeline::Pipeline::start(
            &wal_dir,
            pipeline_store,
            pipeline_config,
            pipeline_metrics,
            worker,
            pipeline_dedup,
            outputs,
        )
        .map(|pipeline| pipeline.with_mappings(mappings))
    })
    .await
    .context("pipeline start task")??;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding `{}`", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let decode_budget =
        crowsnest_ingest::limits::DecodeBudget::new(config.decode.memory_budget_bytes);
    let state = Arc::new(AppState {
        decode_budget,
        guards: api::Guards::new(&config),
        audit: audit::Audit::new(&config.audit),
        config,
        tokens,
        pipeline,
        store,
        metrics,
        detection,
        dedup,
        commands,
        notify,
        respond,
        started: Instant::now(),
        verify_lock: tokio::sync::Mutex::new(()),
    });
    spawn_retention(state.clone());
    spawn_cold(state.clone());
    audit::Audit::spawn(&state);
    verify::spawn(&state);
    respond::spawn(state.clone(), respond_rx);
    let listeners = listeners::start(state.clone()).await?;
    let mut router = app(state.clone());
    if let Some(mount) = mount {
        router = router.merge(mount(state.clone()));
    }
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let http = state.config.http.clone();
    let server = tokio::spawn(serve::serve(listener, router, http, shutdown_rx));
    tracing::info!(%addr, data_dir = %data_dir.display(), "crowsnest server listening");
    Ok(Running {
        state,
        addr,
        admin_token_path: data_dir.join(auth::ADMIN_TOKEN_FILE),
        new_admin_token,
        server,
        shutdown,
        listeners,
    })
}

/// File descriptors kept for the WAL, the store, outputs and the rest when connection caps
/// are fitted under the open files limit: at least this many, or a quarter of the limit.
pub const RESERVED_FILES: u64 = 256;

/// Lowers the connection caps of the HTTP listener and the stream listeners, in proportion,
/// when together they would leave fewer than [`RESERVED_FILES`] (or a quarter of the limit)
/// of the `open_files` limit: connections must never take the descriptors the WAL and the
/// store need (out of them, the indexer cannot open a segment and stops).
pub fn fit_connection_caps(config: &mut ServerConfig, open_files: Option<u64>) {
    let Some(limit) = open_files else { return };
    let reserve = RESERVED_FILES.max(limit / 4);
    let available = usize::try_from(limit.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(2);
    use crowsnest_ingest::listen::{InputConfig, SyslogTransport};
    // Stream listeners hold connections; a UDP syslog input holds one socket.
    let streams = config
        .inputs
        .iter()
        .filter(|input| match input {
            InputConfig::Syslog(syslog) => syslog.transport != SyslogTransport::Udp,
            InputConfig::Forward(_) => true,
        })
        .count();
    let http = config.http.max_connections.max(1);
    let stream = config.input_limits.max_connections.max(1);
    let total = http.saturating_add(stream.saturating_mul(streams));
    if total <= available {
        return;
    }
    let scale = |cap: usize| (cap.saturating_mul(available) / total).max(1);
    let (new_http, new_stream) = (scale(http), scale(stream));
    tracing::warn!(
        open_files_limit = limit,
        reserved = reserve,
        http.max_connections = new_http,
        input_limits.max_connections = new_stream,
        "connection limits lowered to fit the open files limit (raise `ulimit -n` to allow more)"
    );
    config.http.max_connections = new_http;
    config.http.max_connections_per_ip = config.http.max_connections_per_ip.min(new_http);
    let limits = &mut config.input_limits;
    limits.max_connections = new_stream;
    limits.max_connections_per_ip = limits.max_connections_per_ip.min(new_stream);
}

fn spawn_retention(state: Arc<AppState>) {
    let every = std::time::Duration::from_secs(state.config.retention_interval_secs.max(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            let store = state.store.clone();
            let result =
                tokio::task::spawn_blocking(move || store.apply_retention(chrono::Utc::now()))
                    .await;
            if let Some(chain) = state.store.chain() {
                // A periodic checkpoint (a no-op when nothing was sealed since the last).
                let chain = chain.clone();
                let _ = tokio::task::spawn_blocking(move || chain.checkpoint()).await;
            }
            match result {
                Ok(Ok(report)) => tracing::debug!(?report, "retention pass"),
                Ok(Err(error)) => tracing::warn!(%error, "retention pass failed"),
                Err(error) => tracing::warn!(%error, "retention task failed"),
            }
        }
    });
}

/// The cold tier in the background (`[store.cold] after_days`; off by default): every
/// `retention_interval_secs` (at least 10 minutes; the first a minute after start) the partitions past the age are rewritten
/// for size, one at a time, on a blocking thread (see `crowsnest_store`'s `cold.rs`).
fn spawn_cold(state: Arc<AppState>) {
    if state.store.config().cold.after_days.is_none() {
        return;
    }
    let every = std::time::Duration::from_secs(state.config.retention_interval_secs.max(600));
    tokio::spawn(async move {
        // The first pass a minute after start, not during the WAL replay of a restart.
        let first = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut ticker = tokio::time::interval_at(first, every);
        loop {
            ticker.tick().await;
            let store = state.store.clone();
            let result =
                tokio::task::spawn_blocking(move || store.apply_cold(chrono::Utc::now())).await;
            match result {
                Ok(Ok(report)) if report.rewritten.is_empty() && report.skipped.is_empty() => {}
                Ok(Ok(report)) => tracing::info!(?report, "cold tier pass"),
                Ok(Err(error)) => tracing::warn!(%error, "cold tier pass failed"),
                Err(error) => tracing::warn!(%error, "cold tier task failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn two_outputs_with_one_name_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let output =
            "[[outputs]]\nname = \"dup\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n";
        let mut config: crate::ServerConfig =
            toml::from_str(&format!("{output}{output}")).expect("config");
        config.listen = "127.0.0.1:0".into();
        config.data_dir = dir.path().to_path_buf();
        let error = crate::start(config).await.err().expect("refused");
        assert!(error.to_string().contains("named `dup`"), "{error}");
    }
}
