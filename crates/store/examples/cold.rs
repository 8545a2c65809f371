//! The cold tier on a store made by `examples/ingest.rs`: size against the raw corpus and
//! search latency, hot then cold, at a given zstd level and block size.
//!
//! ```text
//! crowsnest bench --events 100000 --corpus-out /tmp/corpus.ndjson
//! cargo run --release -p crowsnest-normalize --example normalize_corpus -- /tmp/corpus.ndjson /tmp/normalized.ndjson
//! cargo run --release -p crowsnest-store --example ingest -- /tmp/normalized.ndjson 4000 /tmp/hot
//! cargo run --release -p crowsnest-store --example cold -- /tmp/hot /tmp/corpus.ndjson [level [block_kib]]
//! ```
//!
//! The store is copied first (the hot one is left as it was); every partition of the copy is
//! rewritten cold. Prints bytes per kind of file (docstore, postings, positions, terms, fast
//! columns) hot and cold, the time the rewrite took, and the median of 7 runs of each query
//! hot and cold (the answers are compared: they must be equal).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crowsnest_store::{ColdConfig, SearchRequest, Store, StoreConfig};

const QUERIES: &[&str] = &[
    "\"connection refused\"",
    "xmrig",
    "kubernetes.namespace:payments",
    "kubernetes.namespace:prod AND NOT user.name:system\\:*",
    "http.response.status_code:>=400",
    "* | stats count() by kubernetes.namespace",
    "event.dataset:kubernetes.audit | stats count() by user.name, event.action | head 20",
    "* | timechart span=1h count() by event.dataset",
];

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn by_kind(dir: &Path, out: &mut BTreeMap<String, u64>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            by_kind(&entry.path(), out)?;
        } else {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = name.rsplit('.').next().unwrap_or("").to_string();
            *out.entry(kind).or_default() += entry.metadata()?.len();
        }
    }
    Ok(())
}

fn latencies(store: &Store) -> Result<Vec<(f64, serde_json::Value)>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for text in QUERIES {
        let request = SearchRequest {
            query: crowsnest_query::parse(text)?,
            start: None,
            end: None,
            limit: 20,
            offset: 0,
        };
        let mut times = Vec::new();
        let mut answer = serde_json::Value::Null;
        for _ in 0..7 {
            let started = Instant::now();
            let mut response = store.search(&request)?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            response.took_ms = 0;
            answer = serde_json::to_value(response)?;
        }
        times.sort_by(f64::total_cmp);
        out.push((times[times.len() / 2], answer));
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (hot_dir, corpus) = match (args.get(1), args.get(2)) {
        (Some(h), Some(c)) => (Path::new(h), Path::new(c)),
        _ => {
            return Err(
                "usage: cold <hot-store-dir> <raw-corpus.ndjson> [level [block_kib]]".into(),
            )
        }
    };
    let mut cold = ColdConfig::default();
    if let Some(level) = args.get(3) {
        cold.zstd_level = level.parse()?;
    }
    if let Some(kib) = args.get(4) {
        cold.block_kib = kib.parse()?;
    }
    let raw = std::fs::metadata(corpus)?.len() as f64;
    let temp = tempfile::tempdir()?;
    copy_dir(hot_dir, temp.path())?;
    let config = StoreConfig {
        cold: cold.clone(),
        ..StoreConfig::default()
    };
    let store = Store::open(temp.path(), config)?;
    let hot_stats = store.stats();
    let mut hot_kinds = BTreeMap::new();
    by_kind(&temp.path().join("partitions"), &mut hot_kinds)?;
    let hot = latencies(&store)?;
    let cpu = cpu_seconds();
    let started = Instant::now();
    let report = store.compact_cold(chrono::Utc::now() + chrono::TimeDelta::days(3650))?;
    let took = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let cold_stats = store.stats();
    let mut cold_kinds = BTreeMap::new();
    by_kind(&temp.path().join("partitions"), &mut cold_kinds)?;
    let cold_latency = latencies(&store)?;
    println!(
        "cold tier, zstd {} blocks {} KiB: {} partitions, {} events rewritten in {took:.1} s ({cpu:.1} s CPU); skipped {:?}",
        cold.zstd_level,
        cold.block_kib,
        report.rewritten.len(),
        cold_stats.total_docs,
        report.skipped
    );
    println!(
        "raw {:.1} MB; hot {:.2} MB = {:.3} of raw; cold {:.2} MB = {:.3} of raw ({:.3} of hot)\n",
        raw / 1e6,
        hot_stats.total_bytes as f64 / 1e6,
        hot_stats.total_bytes as f64 / raw,
        cold_stats.total_bytes as f64 / 1e6,
        cold_stats.total_bytes as f64 / raw,
        cold_stats.total_bytes as f64 / hot_stats.total_bytes.max(1) as f64
    );
    println!("| files | hot MB | cold MB |\n|---|---|---|");
    let kinds: std::collections::BTreeSet<&String> =
        hot_kinds.keys().chain(cold_kinds.keys()).collect();
    for kind in kinds {
        let (h, c) = (
            hot_kinds.get(kind).copied().unwrap_or(0),
            cold_kinds.get(kind).copied().unwrap_or(0),
        );
        if h + c > 10_000 {
            println!(
                "| .{kind} | {:.2} | {:.2} |",
                h as f64 / 1e6,
                c as f64 / 1e6
            );
        }
    }
    println!("\n| query (limit 20) | hits | hot ms | cold ms |\n|---|---|---|---|");
    for (text, ((hot_ms, hot_answer), (cold_ms, cold_answer))) in
        QUERIES.iter().zip(hot.iter().zip(cold_latency.iter()))
    {
        if hot_answer != cold_answer {
            return Err(format!("{text}: the cold answer differs from the hot one").into());
        }
        println!(
            "| `{}` | {} | {hot_ms:.1} | {cold_ms:.1} |",
            text.replace('|', "\\|"),
            hot_answer["total"]
        );
    }
    Ok(())
}

fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
