//! `crowsnest bench` (no subcommand): ingest-to-searchable throughput over HTTP, index size
//! against raw NDJSON, WAL fsync cost, search and aggregation latency, peak memory. Prints a
//! Markdown report (the source of BENCHMARKS.md).
//!
//! The corpus comes from the demo generator (Kubernetes audit, container logs, process
//! events). A producer thread generates request bodies while `--clients` threads post them to
//! an in-process server on a loopback port; the clock stops when every acknowledged event is
//! searchable. Generation and the HTTP clients share the machine's cores with the server, so
//! the figures are a lower bound of the server alone.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use serde_json::json;

use crowsnest_client::Client;
use crowsnest_gen::{GenConfig, Generator};

use crate::corpus::{Batcher, Body};
use crate::local::LocalServer;
use crate::procfs::process_status_mb;

/// Flags of `crowsnest bench` itself (the ingest and search benchmark).
#[derive(Debug, Clone, clap::Args)]
// Flattened into the crate's `Args`: a group id of its own, not the struct name they share.
#[group(id = "ingest")]
pub struct Args {
    /// Events to ingest.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// Bytes of NDJSON per request.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub batch_bytes: usize,
    /// Where to put the store (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Repetitions of each search.
    #[arg(long, default_value_t = 5)]
    pub search_runs: usize,
    /// zstd level of the store's docstore (the server's `store.docstore_zstd_level`)
    /// [default: the server's default, 3].
    #[arg(long)]
    pub docstore_zstd_level: Option<i32>,
    /// Run the server without the integrity chain (`[integrity] enabled = false`), to measure
    /// what sealing WAL segments and partitions costs (compare with a run without the flag).
    #[arg(long)]
    pub no_integrity: bool,
    /// Write the corpus (the request bodies, one event per line) to this file and exit; used by
    /// `benches/tantivy-cli.sh` to index the same events with tantivy-cli.
    #[arg(long)]
    pub corpus_out: Option<PathBuf>,
    /// Which corpus: our generator's (`generated`) or one shaped the way other shippers write
    /// (`foreign`: Kubernetes audit with request objects, Fluent Bit records, Falco and
    /// Tetragon events; see `foreign.rs`).
    #[arg(long = "corpus", value_enum, default_value_t = Shape::Generated)]
    pub shape: Shape,
    /// The shared test data the foreign corpus draws its audit events from [default:
    /// `$CROWSNEST_TESTDATA`, else `shared/testdata` beside the checkout].
    #[arg(long)]
    pub testdata: Option<PathBuf>,
}

/// Which corpus a benchmark sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// The demo generator's ECS-shaped cluster activity (`crowsnest-gen`).
    Generated,
    /// Other shippers' shapes ([`crate::foreign`]).
    Foreign,
}

/// Where the corpus comes from: its shape, seed and test data.
#[derive(Debug, Clone)]
struct Plan {
    shape: Shape,
    seed: u64,
    testdata: PathBuf,
}

impl Plan {
    fn of(args: &Args) -> Self {
        Self {
            shape: args.shape,
            seed: 7,
            testdata: args
                .testdata
                .clone()
                .unwrap_or_else(crate::foreign::default_testdata),
        }
    }
}

/// Runs every measurement and prints the report.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.corpus_out {
        return write_corpus(&args, path);
    }
    let temp = tempfile::Builder::new()
        .prefix("crowsnest-bench")
        .tempdir()
        .context("creating a temporary directory")?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let docstore_zstd_level = args
        .docstore_zstd_level
        .unwrap_or(crowsnest_store::StoreConfig::default().docstore_zstd_level);
    let mut report = String::new();
    report.push_str(&format!(
        "## crowsnest bench — {} — {} events ({:?} corpus), {} clients, {} cores, docstore zstd level {}, integrity chain {}\n\n",
        Utc::now().format("%Y-%m-%d"),
        args.events,
        args.shape,
        args.clients,
        cores,
        docstore_zstd_level,
        if args.no_integrity { "off" } else { "on" }
    ));
    report.push_str(&generator_speed()?);
    report.push_str(&wal_fsync_cost(temp.path())?);
    let mut config = crowsnest_server::ServerConfig::default();
    config.pipeline.commit_interval_ms = 1_000;
    config.store.docstore_zstd_level = docstore_zstd_level;
    config.integrity.enabled = !args.no_integrity;
    // No verification run while measuring: the bench measures ingest (and sealing), not a
    // rehash of what it wrote.
    config.integrity.verify_interval_secs = 0;
    let server = LocalServer::start(config, args.data_dir.clone())?;

    let ingest = ingest(&args, &server, cores)?;
    report.push_str(&ingest.0);
    let raw_bytes = ingest.1;
    // Segment merges go on after the last commit (at 10M events, merging gigabytes for
    // minutes): the size is measured once it has not changed for 10 s (at most 10 minutes), so
    // that neither half-written merged segments nor the segments they replace are counted.
    let settle_started = Instant::now();
    let store = &server.running.state.store;
    let mut stats = store.stats();
    let mut unchanged = 0;
    while unchanged < 2 && settle_started.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_secs(5));
        let now = store.stats();
        unchanged = if now.total_bytes == stats.total_bytes {
            unchanged + 1
        } else {
            0
        };
        stats = now;
    }
    report.push_str(&format!(
        "### Index size\n\nMeasured once merges settled ({:.0} s after the last event was searchable).\n\n| raw NDJSON | store on disk | ratio |\n|---|---|---|\n| {:.1} MB | {:.1} MB | {:.3} (1/{:.1}) |\n\n",
        settle_started.elapsed().as_secs_f64(),
        raw_bytes as f64 / 1e6,
        stats.total_bytes as f64 / 1e6,
        stats.total_bytes as f64 / raw_bytes.max(1) as f64,
        raw_bytes as f64 / stats.total_bytes.max(1) as f64,
    ));
    report.push_str(&searches(
        &server.client,
        args.search_runs,
        stats.total_docs,
    )?);
    report.push_str(&format!(
        "Memory of the process (server, clients and generator together): peak resident {:.0} MB; at the end {:.0} MB anonymous + {:.0} MB of mapped index files (page cache, reclaimable)\n",
        process_status_mb("self", "VmHWM:"),
        process_status_mb("self", "RssAnon:"),
        process_status_mb("self", "RssFile:")
    ));
    server.shutdown()?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

fn generator_speed() -> anyhow::Result<String> {
    let n = 200_000;
    let started = Instant::now();
    let mut bytes = 0usize;
    let generator = Generator::new(GenConfig {
        seed: 1,
        start: Utc::now(),
        events_per_second: 1000.0,
        attacks: true,
    });
    for record in generator.take(n) {
        bytes += serde_json::to_vec(record.value())
            .context("serializing")?
            .len();
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "Corpus generator (runs beside the server during ingest): {:.0} events/s, {:.1} MB/s on one core; mean event {:.0} bytes\n\n",
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        bytes as f64 / n as f64
    ))
}

fn wal_fsync_cost(dir: &std::path::Path) -> anyhow::Result<String> {
    let record = vec![b'x'; 600];
    let batch: Vec<&[u8]> = (0..1000).map(|_| record.as_slice()).collect();
    let mut out = String::from("### WAL append (1,000 records of 600 bytes per batch)\n\n| fsync | batches | median ms | p99 ms | MB/s |\n|---|---|---|---|---|\n");
    for fsync in [true, false] {
        let path = dir.join(if fsync { "wal-fsync" } else { "wal-nofsync" });
        let config = crowsnest_wal::WalConfig {
            fsync,
            ..Default::default()
        };
        let (mut wal, _) =
            crowsnest_wal::Wal::open(&path, config, 0).context("opening a bench wal")?;
        let mut times = Vec::new();
        let started = Instant::now();
        for _ in 0..200 {
            let t = Instant::now();
            wal.append(&batch).context("appending")?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let total = started.elapsed().as_secs_f64();
        times.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "| {} | 200 | {:.2} | {:.2} | {:.0} |\n",
            if fsync { "on" } else { "off" },
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            200.0 * 1000.0 * 600.0 / total / 1e6
        ));
    }
    out.push('\n');
    Ok(out)
}

fn ingest(args: &Args, server: &LocalServer, cores: usize) -> anyhow::Result<(String, u64)> {
    let (tx, rx) = mpsc::sync_channel::<Body>(args.clients * 2);
    let events = args.events;
    let batch_bytes = args.batch_bytes;
    let plan = Plan::of(args);
    let producer = std::thread::spawn(move || produce(&plan, events, batch_bytes, &tx));
    let rx = Arc::new(Mutex::new(rx));
    let raw = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (rx, raw) = (rx.clone(), raw.clone());
        let client = Client::new(&server.url, &server.token);
        clients.push(std::thread::spawn(move || -> anyhow::Result<u64> {
            let mut accepted = 0;
            loop {
                let body = match rx
                    .lock()
                    .map_err(|_| anyhow::anyhow!("queue poisoned"))?
                    .recv()
                {
                    Ok(body) => body,
                    Err(_) => return Ok(accepted),
                };
                raw.fetch_add(body.bytes.len() as u64, Ordering::Relaxed);
                accepted += body.post(&client)?;
            }
        }));
    }
    let mut accepted = 0;
    for client in clients {
        accepted += client
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    let acked = started.elapsed().as_secs_f64();
    server.wait_searchable();
    let searchable = started.elapsed().as_secs_f64();
    let raw_bytes = raw.load(Ordering::Relaxed);
    let total = server
        .client
        // The server's own detection stores its alerts as events too, and its self-audit stream
        // records the bench's searches: count the corpus only.
        .post_json(
            "/api/v1/search",
            &json!({"query": "* AND NOT event.kind:alert AND NOT event.dataset:crowsnest.audit AND NOT event.dataset:crowsnest.verify", "limit": 0}),
        )?["total"]
        .as_u64()
        .unwrap_or(0);
    anyhow::ensure!(
        total == accepted,
        "{accepted} events acknowledged but {total} searchable"
    );
    let mbps = raw_bytes as f64 / searchable / 1e6;
    let text = format!(
        "### Ingest, HTTP body to searchable\n\n| events | raw MB | acked after s | searchable after s | events/s | MB/s | MB/s per core ({cores} cores) |\n|---|---|---|---|---|---|---|\n| {accepted} | {:.1} | {acked:.1} | {searchable:.1} | {:.0} | {mbps:.1} | {:.1} |\n\nEvery acknowledged event was found by a search afterwards ({total}).\n\n",
        raw_bytes as f64 / 1e6,
        accepted as f64 / searchable,
        mbps / cores as f64,
    );
    Ok((text, raw_bytes))
}

fn write_corpus(args: &Args, path: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating `{}`", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let (tx, rx) = mpsc::sync_channel::<Body>(4);
    let (events, batch_bytes) = (args.events, args.batch_bytes);
    let plan = Plan::of(args);
    let producer = std::thread::spawn(move || produce(&plan, events, batch_bytes, &tx));
    let mut bytes = 0u64;
    for body in rx {
        bytes += body.bytes.len() as u64;
        out.write_all(&body.bytes).context("writing the corpus")?;
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    out.flush().context("writing the corpus")?;
    eprintln!(
        "wrote {} events, {bytes} bytes, to {}",
        args.events,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `crowsnest bench corpus`: writes `--events` lines of the corpus `--shape` to `--out`.
///
/// # Errors
///
/// When the file cannot be written or the foreign corpus's test data read.
pub fn write_shape(args: &crate::CorpusArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let plan = Plan {
        shape: args.shape,
        seed: args.seed,
        testdata: args
            .testdata
            .clone()
            .unwrap_or_else(crate::foreign::default_testdata),
    };
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating `{}`", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut bytes = 0u64;
    for line in plan_lines(&plan, args.events)?.take(crate::corpus::count(args.events)) {
        let line = line?;
        bytes += line.json.len() as u64 + 1;
        out.write_all(&line.json).context("writing the corpus")?;
        out.write_all(b"\n").context("writing the corpus")?;
    }
    out.flush().context("writing the corpus")?;
    eprintln!(
        "wrote {} {:?} events, {bytes} bytes, to {}",
        args.events,
        args.shape,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The lines of `plan`'s corpus, spreading `events` over the last 24 hours (endless).
fn plan_lines(
    plan: &Plan,
    events: u64,
) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<crate::corpus::Line>> + Send>> {
    let span = chrono::Duration::hours(24);
    Ok(match plan.shape {
        Shape::Generated => Box::new(crate::corpus::lines(plan.seed, events, span)),
        Shape::Foreign => Box::new(
            crate::foreign::lines(plan.seed, events, span, &plan.testdata)?.map(|(json, time)| {
                Ok(crate::corpus::Line {
                    source: crate::corpus::Source::Foreign,
                    json,
                    time,
                })
            }),
        ),
    })
}

/// Generates the corpus of `plan` (over the last 24 hours) into NDJSON bodies of about
/// `batch_bytes`, one source each, and sends them down `tx` until it is closed.
fn produce(
    plan: &Plan,
    events: u64,
    batch_bytes: usize,
    tx: &mpsc::SyncSender<Body>,
) -> anyhow::Result<()> {
    let mut batcher = Batcher::new(batch_bytes, u64::MAX);
    let lines = plan_lines(plan, events)?;
    for line in lines.take(crate::corpus::count(events)) {
        if let Some(body) = batcher.push(&line?) {
            if tx.send(body).is_err() {
                return Ok(());
            }
        }
    }
    for body in batcher.finish() {
        if tx.send(body).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

pub(crate) fn searches(client: &Client, runs: usize, docs: u64) -> anyhow::Result<String> {
    let queries = [
        ("free text", "\"connection refused\""),
        ("keyword field", "kubernetes.namespace:payments"),
        (
            "boolean + wildcard",
            "kubernetes.namespace:prod AND NOT user.name:system\\:*",
        ),
        ("range", "http.response.status_code:>=400"),
        (
            "stats count() by keyword",
            "* | stats count() by kubernetes.namespace",
        ),
        (
            "stats by two fields",
            "event.dataset:kubernetes.audit | stats count() by user.name, event.action | head 20",
        ),
        (
            "dc + avg",
            "* | stats dc(user.name), avg(process.pid) by event.dataset",
        ),
        (
            "timechart",
            "* | timechart span=1h count() by event.dataset",
        ),
    ];
    let mut out = format!(
        "### Search latency over {docs} events (HTTP round trip, {runs} runs each)\n\n| query | text | matches | median ms | max ms |\n|---|---|---|---|---|\n"
    );
    for (name, query) in queries {
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..runs.max(1) {
            let started = Instant::now();
            let answer =
                client.post_json("/api/v1/search", &json!({"query": query, "limit": 20}))?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            total = answer["total"].as_u64().unwrap_or(0);
        }
        times.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "| {name} | `{}` | {total} | {:.1} | {:.1} |\n",
            query.replace('|', "\\|"),
            times[times.len() / 2],
            times[times.len() - 1]
        ));
    }
    out.push('\n');
    Ok(out)
}
