//! `crowsnest store stats|compact-cold`: the store of a data directory, offline.
//!
//! `compact-cold` rewrites the partitions older than `--older-than-days` (or
//! `[store.cold] after_days` of the config file) into the cold tier now: one segment, the
//! docstore recompressed (see `crowsnest_store`'s `cold.rs`), each rewrite verified, swapped
//! atomically and recorded in the integrity chain. A running server does the same in the
//! background when `after_days` is set; this command is for a stopped one (it refuses a data
//! directory a server holds).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use crowsnest_server::ServerConfig;
use crowsnest_store::Store;

/// The lock a running `crowsnest server` holds on its data directory.
pub const LOCK_FILE: &str = "server.lock";

/// Flags of `crowsnest store`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
    /// TOML config file of the server (its `[store]` and `[integrity]` sections are used).
    #[arg(long, env = "CROWSNEST_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory [default: the config's, or ./crowsnest-data].
    #[arg(long, env = "CROWSNEST_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

/// What to do.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Partitions: bounds, events, bytes, hot or cold.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite old partitions into the cold tier now (the server must be stopped).
    CompactCold {
        /// Partitions whose end is older than this many days [default: `[store.cold]
        /// after_days`].
        #[arg(long)]
        older_than_days: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Takes the data directory's lock (released when the file is dropped): a second server, or
/// this command while a server runs, is refused instead of both writing the same files.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory `{}`", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening `{}`", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "data directory `{}` is in use by a running crowsnest server (it holds `{LOCK_FILE}`); stop it first, or let its cold tier work in the background ([store.cold] after_days)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("locking `{}`", path.display()))
        }
    }
}

fn resolve(args: &Args) -> anyhow::Result<ServerConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file `{}`", path.display()))?;
            toml::from_str::<ServerConfig>(&text)
                .with_context(|| format!("invalid config file `{}`", path.display()))?
        }
        None => ServerConfig::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Runs `crowsnest store`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = resolve(&args)?;
    let store_dir = config.data_dir.join("store");
    anyhow::ensure!(
        store_dir.is_dir(),
        "no store in `{}` (expected `{}`); pass --data-dir",
        config.data_dir.display(),
        store_dir.display()
    );
    let _lock = lock_data_dir(&config.data_dir)?;
    let store = Store::open(&store_dir, config.store.clone())
        .with_context(|| format!("opening the store `{}`", store_dir.display()))?;
    match args.action {
        Action::Stats { json } => {
            let stats = store.stats();
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!("{:<12} {:>10} {:>10}  tier", "partition", "events", "MB");
                for p in &stats.partitions {
                    println!(
                        "{:<12} {:>10} {:>10.2}  {}",
                        p.name,
                        p.docs,
                        mb(p.bytes),
                        if p.cold { "cold" } else { "hot" }
                    );
                }
                println!(
                    "{} partitions, {} events, {:.2} MB",
                    stats.partitions.len(),
                    stats.total_docs,
                    mb(stats.total_bytes)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::CompactCold {
            older_than_days,
            json,
        } => {
            let days = older_than_days.or(config.store.cold.after_days).context(
                "how old must a partition be? pass --older-than-days N or set [store.cold] after_days",
            )?;
            if config.integrity.enabled {
                let chain = crowsnest_integrity::Chain::open(
                    &config.data_dir,
                    config.integrity.signing_key.as_deref(),
                )
                .context("opening the integrity chain ([integrity])")?;
                store.set_chain(chain);
            }
            let cutoff = chrono::Utc::now() - chrono::TimeDelta::days(i64::from(days));
            let report = store.compact_cold(cutoff)?;
            if let Some(chain) = store.chain() {
                chain.checkpoint();
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for p in &report.rewritten {
                    println!(
                        "{}: {} events, {:.2} MB -> {:.2} MB ({:.0} %) in {:.1} s",
                        p.name,
                        p.docs,
                        mb(p.hot_bytes),
                        mb(p.cold_bytes),
                        100.0 * p.cold_bytes as f64 / p.hot_bytes.max(1) as f64,
                        p.took_ms as f64 / 1000.0
                    );
                }
                for (name, why) in &report.skipped {
                    println!("{name}: left hot: {why}");
                }
                let (hot, cold): (u64, u64) = report
                    .rewritten
                    .iter()
                    .fold((0, 0), |(h, c), p| (h + p.hot_bytes, c + p.cold_bytes));
                println!(
                    "{} partitions rewritten cold ({:.2} MB -> {:.2} MB), {} already cold, {} left hot",
                    report.rewritten.len(),
                    mb(hot),
                    mb(cold),
                    report.already_cold,
                    report.skipped.len()
                );
            }
            store.close()?;
            Ok(if report.skipped.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
