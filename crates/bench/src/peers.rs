//! `crowsnest bench peers`: the same NDJSON corpus loaded into crowsnest (an in-process server:
//! WAL, normalize, detect, index), then rewritten into the cold tier, and into DuckDB and chDB
//! (embedded engines from PyPI, driven by `scripts/peers.py`), side by side: load time, size
//! against the raw file, count by namespace, a free-text needle. So every change to the store
//! is judged against them on the same machine.
//!
//! The Python engines come from the test venv (`scripts/setup-ecosystem.sh` installs DuckDB and
//! chDB into `.venv-test`); when one is missing its row says what to install and crowsnest's
//! rows are still measured.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use serde_json::{json, Value};

use crowsnest_client::Client;

use crate::local::LocalServer;

/// Flags of `crowsnest bench peers`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// NDJSON corpus to load [default: generate `--events` events of the bench's corpus].
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Events to generate when no `--corpus` is given.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// The free-text word searched for in every engine.
    #[arg(long, default_value = "xmrig")]
    pub needle: String,
    /// Repetitions of each query (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Concurrent HTTP clients loading crowsnest.
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// Python with DuckDB and chDB [default: `.venv-test/bin/python` when present, else
    /// `python3`].
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The peers script.
    #[arg(long, default_value = "scripts/peers.py")]
    pub script: PathBuf,
    /// Peers to run (comma-separated: duckdb, chdb; empty: crowsnest only).
    #[arg(long, default_value = "duckdb,chdb")]
    pub engines: String,
}

/// One engine's figures.
#[derive(Debug, Clone, Default)]
struct Row {
    engine: String,
    how: String,
    load_s: Option<f64>,
    bytes: Option<u64>,
    by_namespace_ms: Option<f64>,
    needle_ms: Option<f64>,
    needle_hits: Option<u64>,
    note: Option<String>,
}

const BODY_BYTES: usize = 4 * 1024 * 1024;

/// Runs the comparison and prints the Markdown report.
///
/// # Errors
///
/// When the corpus, the server or a measurement of crowsnest fails (a peer's failure is a row).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let temp = tempfile::Builder::new()
        .prefix("crowsnest-peers")
        .tempdir()
        .context("creating a temporary directory")?;
    let corpus = match &args.corpus {
        Some(path) => path.clone(),
        None => {
            let path = temp.path().join("corpus.ndjson");
            generate(args.events, &path)?;
            path
        }
    };
    let raw = std::fs::metadata(&corpus)
        .with_context(|| format!("reading `{}`", corpus.display()))?
        .len();
    let (mut rows, latency) = crowsnest_rows(&args, &corpus)?;
    if !args.engines.trim().is_empty() {
        rows.extend(peer_rows(&args, &corpus, temp.path()));
    }
    let mut out = format!(
        "## crowsnest bench peers — {} — `{}`, {:.1} MB raw NDJSON, needle `{}`, median of {} runs\n\n| | load | size / raw | count by namespace | free-text needle |\n|---|---|---|---|---|\n",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        corpus.display(),
        raw as f64 / 1e6,
        args.needle,
        args.runs.max(1)
    );
    for row in &rows {
        let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} ms"));
        let load = row.load_s.map_or("—".to_string(), |s| {
            format!("{s:.1} s, {:.1} MB/s", raw as f64 / s.max(1e-9) / 1e6)
        });
        let size = row.bytes.map_or("—".to_string(), |b| {
            format!(
                "{:.3} ({:.1} MB)",
                b as f64 / raw.max(1) as f64,
                b as f64 / 1e6
            )
        });
        let needle = match (row.needle_ms, row.needle_hits) {
            (Some(ms), Some(hits)) => format!("{ms:.1} ms ({hits} hits)"),
            (ms, _) => ms_or_dash(ms),
        };
        out.push_str(&format!(
            "| {} ({}) | {load} | {size} | {} | {needle} |\n",
            row.engine,
            row.how,
            ms(row.by_namespace_ms)
        ));
    }
    for row in rows.iter().filter(|r| r.note.is_some()) {
        out.push_str(&format!(
            "\n{}: {}",
            row.engine,
            row.note.as_deref().unwrap_or_default()
        ));
    }
    out.push_str("\n\n### crowsnest search latency, hot vs cold\n\n");
    out.push_str(&latency);
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn ms_or_dash(ms: Option<f64>) -> String {
    ms.map_or("—".to_string(), |v| format!("{v:.1} ms"))
}

/// Writes `events` events of the bench's corpus (seed 7, the last 24 hours) as NDJSON.
fn generate(events: u64, path: &Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating `{}`", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let lines = crate::corpus::lines(7, events, chrono::Duration::hours(24));
    for line in lines.take(crate::corpus::count(events)) {
        let line = line?;
        out.write_all(&line.json)
            .and_then(|()| out.write_all(b"\n"))
            .context("writing the corpus")?;
    }
    out.flush().context("writing the corpus")?;
    Ok(())
}

fn median_ms(
    runs: usize,
    mut run: impl FnMut() -> anyhow::Result<Value>,
) -> anyhow::Result<(f64, Value)> {
    let mut times = Vec::new();
    let mut last = Value::Null;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        last = run()?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], last))
}

fn search(client: &Client, query: &str) -> anyhow::Result<Value> {
    client.post_json("/api/v1/search", &json!({"query": query, "limit": 10}))
}

/// crowsnest hot (as loaded) and cold (every partition rewritten).
fn crowsnest_rows(args: &Args, corpus: &Path) -> anyhow::Result<(Vec<Row>, String)> {
    let mut config = crowsnest_server::ServerConfig::default();
    config.pipeline.commit_interval_ms = 1_000;
    let server = LocalServer::start(config, None)?;
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(args.clients.max(1) * 2);
    let rx = Arc::new(Mutex::new(rx));
    let accepted = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (rx, accepted) = (rx.clone(), accepted.clone());
        let client = Client::new(&server.url, &server.token);
        clients.push(std::thread::spawn(move || -> anyhow::Result<()> {
            loop {
                let body = match rx
                    .lock()
                    .map_err(|_| anyhow::anyhow!("queue poisoned"))?
                    .recv()
                {
                    Ok(body) => body,
                    Err(_) => return Ok(()),
                };
                let answer = client.post_bytes(
                    "/api/v1/ingest/ndjson",
                    "application/x-ndjson",
                    false,
                    &body,
                    1000,
                )?;
                accepted.fetch_add(answer["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
        }));
    }
    let file =
        std::fs::File::open(corpus).with_context(|| format!("opening `{}`", corpus.display()))?;
    let mut lines = 0u64;
    let mut body = Vec::with_capacity(BODY_BYTES + 65_536);
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.context("reading the corpus")?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines += 1;
        body.extend_from_slice(&line);
        body.push(b'\n');
        if body.len() >= BODY_BYTES {
            tx.send(std::mem::take(&mut body))
                .map_err(|_| anyhow::anyhow!("every client stopped"))?;
        }
    }
    if !body.is_empty() {
        tx.send(body)
            .map_err(|_| anyhow::anyhow!("every client stopped"))?;
    }
    drop(tx);
    for client in clients {
        client
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    server.wait_searchable();
    let load = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    // Merges go on after the last commit: sizes once they have not changed for 10 s.
    let store = server.running.state.store.clone();
    let mut stats = store.stats();
    let mut unchanged = 0;
    let settle = Instant::now();
    while unchanged < 2 && settle.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_secs(5));
        let now = store.stats();
        unchanged = if now.total_bytes == stats.total_bytes {
            unchanged + 1
        } else {
            0
        };
        stats = now;
    }
    let by_namespace = "* | stats count() by kubernetes.namespace";
    let measure = |row: &mut Row| -> anyhow::Result<()> {
        row.by_namespace_ms =
            Some(median_ms(args.runs, || search(&server.client, by_namespace))?.0);
        let (ms, answer) = median_ms(args.runs, || search(&server.client, &args.needle))?;
        row.needle_ms = Some(ms);
        row.needle_hits = answer["total"].as_u64();
        Ok(())
    };
    let mut hot = Row {
        engine: "crowsnest".into(),
        how: "WAL, normalize, detect, index; HTTP round trip".into(),
        load_s: Some(load),
        bytes: Some(stats.total_bytes),
        note: (accepted != lines).then(|| format!("{accepted} of {lines} lines accepted")),
        ..Row::default()
    };
    measure(&mut hot)?;
    let hot_latency = crate::ingest::searches(&server.client, args.runs, stats.total_docs)?;
    // Every partition into the cold tier (their ends are at most a day ahead).
    let began = Instant::now();
    let report = store.compact_cold(Utc::now() + chrono::TimeDelta::days(2))?;
    let cold_secs = began.elapsed().as_secs_f64();
    let after = store.stats();
    let mut cold = Row {
        engine: "crowsnest cold".into(),
        how: format!(
            "{} partitions rewritten in {cold_secs:.1} s",
            report.rewritten.len()
        ),
        bytes: Some(after.total_bytes),
        note: (!report.skipped.is_empty()).then(|| format!("left hot: {:?}", report.skipped)),
        ..Row::default()
    };
    measure(&mut cold)?;
    let cold_latency = crate::ingest::searches(&server.client, args.runs, after.total_docs)?;
    server.shutdown()?;
    Ok((
        vec![hot, cold],
        format!(
            "Hot (as loaded):\n\n{hot_latency}Cold (every partition rewritten):\n\n{cold_latency}"
        ),
    ))
}

/// DuckDB and chDB through `scripts/peers.py`.
fn peer_rows(args: &Args, corpus: &Path, work: &Path) -> Vec<Row> {
    let python = args.python.clone().unwrap_or_else(|| {
        let venv = PathBuf::from(".venv-test/bin/python");
        if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        }
    });
    let missing = |why: String| {
        vec![Row {
            engine: "DuckDB, chDB".into(),
            how: "not run".into(),
            note: Some(why),
            ..Row::default()
        }]
    };
    if !args.script.exists() {
        return missing(format!(
            "`{}` not found: run from the repository root or pass --script",
            args.script.display()
        ));
    }
    let output = std::process::Command::new(&python)
        .arg(&args.script)
        .arg("--corpus")
        .arg(corpus)
        .arg("--needle")
        .arg(&args.needle)
        .arg("--workdir")
        .arg(work.join("peers"))
        .arg("--runs")
        .arg(args.runs.max(1).to_string())
        .arg("--engines")
        .arg(&args.engines)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            return missing(format!(
                "cannot run `{}` ({error}): install Python 3 and run scripts/setup-ecosystem.sh (it installs duckdb and chdb into .venv-test), or pass --python",
                python.display()
            ))
        }
    };
    let mut rows = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let engine = v["engine"].as_str().unwrap_or("?").to_string();
        let note = v["missing"]
            .as_str()
            .map(|m| format!("not installed: {m}"))
            .or_else(|| v["error"].as_str().map(|e| format!("failed: {e}")));
        rows.push(Row {
            engine,
            how: v["how"].as_str().unwrap_or("not run").to_string(),
            load_s: v["load_s"].as_f64(),
            bytes: v["bytes"].as_u64(),
            by_namespace_ms: v["count_by_namespace_ms"].as_f64(),
            needle_ms: v["needle_ms"].as_f64(),
            needle_hits: v["needle_hits"].as_u64(),
            note,
        });
    }
    if rows.is_empty() {
        return missing(format!(
            "`{} {}` printed nothing ({}): {}",
            python.display(),
            args.script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    rows
}
