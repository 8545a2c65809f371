//! Indexing cost of the store alone: normalized events in, searchable and committed out.
//!
//! ```text
//! crowsnest bench --events 100000 --corpus-out /tmp/corpus.ndjson
//! cargo run --release -p crowsnest-normalize --example normalize_corpus -- /tmp/corpus.ndjson /tmp/normalized.ndjson
//! cargo run --release -p crowsnest-store --example ingest -- /tmp/normalized.ndjson [batch [keep-dir]]
//! ```
//!
//! Parses the normalized events first (not timed), then adds them in batches (default 4,000,
//! about one 4 MiB request) with a commit every 16 batches and one at the end, the way the
//! server's indexer thread does. Prints wall time, the process's CPU time (tantivy indexes and
//! compresses on its own threads, so CPU per event is the figure to compare), the store's
//! size against the input and a few answers (total, a keyword count, a free-text count) so a
//! change that alters what search returns shows up here too.

use std::time::Instant;

use crowsnest_model::Event;
use crowsnest_query::Query;
use crowsnest_store::{SearchRequest, Store, StoreConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let input = args
        .get(1)
        .ok_or("usage: ingest <normalized.ndjson> [batch]")?;
    let batch: usize = args.get(2).and_then(|b| b.parse().ok()).unwrap_or(4_000);
    let text = std::fs::read_to_string(input)?;
    let events: Vec<(u64, Event)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| Ok((i as u64, serde_json::from_str(line)?)))
        .collect::<Result<_, serde_json::Error>>()?;
    // A third argument keeps the store in that (empty or new) folder, for `examples/space.rs`.
    let temp = tempfile::tempdir()?;
    let dir = args
        .get(3)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let store = Store::open(&dir, StoreConfig::default())?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    for (n, chunk) in events.chunks(batch.max(1)).enumerate() {
        store.add(chunk)?;
        if n % 16 == 15 {
            store.commit()?;
        }
    }
    store.commit()?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let count = events.len().max(1) as f64;
    println!(
        "indexed {} events ({:.1} MB normalized) in {wall:.2} s wall, {cpu:.2} s CPU: {:.1} µs CPU/event, {:.0} events/s",
        events.len(),
        text.len() as f64 / 1e6,
        cpu * 1e6 / count,
        count / wall
    );
    let stats = store.stats();
    println!(
        "store: {} docs, {:.1} MB in {} partition(s)",
        stats.total_docs,
        stats.total_bytes as f64 / 1e6,
        stats.partitions.len()
    );
    for query in [
        "*",
        "kubernetes.namespace:payments",
        "event.dataset:kubernetes.audit AND user.name:system\\:*",
        "denied OR refused",
        "\"connection refused\"",
        "k8s.audit.objectRef.resource:pods",
        "process.pid:>=1000",
        // Free text and raw words, in `message` and outside it.
        "healthz",
        "\"request completed\"",
        "stderr AND syncproxyrules",
        "event.original:payments",
        "event.original:\"request completed\"",
        "event.original:(spring AND started)",
        "event.original:syncproxy*",
        "event.original:stderr",
    ] {
        let parsed: Query = crowsnest_query::parse(query)?;
        let response = store.search(&SearchRequest {
            query: parsed,
            start: None,
            end: None,
            limit: 0,
            offset: 0,
        })?;
        println!("{query}: {}", response.total);
    }
    store.close()?;
    let raw: usize = events
        .iter()
        .filter_map(|(_, e)| e.get_str("event.original"))
        .map(|o| o.len() + 1)
        .sum();
    let bytes = dir_bytes(&dir);
    println!(
        "store after close: {:.1} MB for {:.1} MB of raw input (event.original): {:.3} of raw",
        bytes as f64 / 1e6,
        raw as f64 / 1e6,
        bytes as f64 / raw.max(1) as f64
    );
    Ok(())
}

/// CPU time of this process (all threads), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the `)`.
    (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / 100.0
}

/// Total size of the files below `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
