//! Size and speed figures of the store (not a test; run in release):
//!
//! ```text
//! cargo run --release -p crowsnest-store --example bench -- size ../../../shared/testdata/k8s-audit/benign-hkerma/audit-sample.jsonl
//! cargo run --release -p crowsnest-store --example bench -- stats 1000000
//! ```
//!
//! `size` turns each Kubernetes audit line into an event shaped like the normalizer's output
//! (ECS fields, `k8s.audit.*`, the raw line in `event.original`), indexes them and compares the
//! store size with the raw NDJSON. `stats` indexes synthetic events and times aggregations.

use std::time::Instant;

use crowsnest_model::Event;
use crowsnest_query::{Agg, AggFunc, Filter, Pipe, Query};
use crowsnest_store::{SearchRequest, Store, StoreConfig};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("size") => size(args.get(2).ok_or("expected a .jsonl path")?),
        Some("stats") => stats(
            args.get(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1_000_000),
        ),
        _ => Err("usage: bench size <file.jsonl> | bench stats <events>".into()),
    }
}

fn audit_event(line: &str, n: u64) -> Option<Event> {
    let audit: Value = serde_json::from_str(line).ok()?;
    let code = audit["responseStatus"]["code"].as_u64().unwrap_or(0);
    let value = json!({
        "@timestamp": audit["requestReceivedTimestamp"],
        "event": {
            "id": format!("01HQ{:022}", n),
            "original": line,
            "dataset": "k8s_audit",
            "module": "kubernetes",
            "kind": "event",
            "action": audit["verb"],
            "outcome": if code < 400 { "success" } else { "failure" },
            "ingested": "2024-03-01T00:00:00.000000Z",
        },
        "user": {"name": audit["user"]["username"]},
        "url": {"original": audit["requestURI"]},
        "http": {"response": {"status_code": code}},
        "orchestrator": {"resource": {"type": audit["objectRef"]["resource"], "name": audit["objectRef"]["name"]}},
        "k8s": {"audit": audit},
    });
    let mut value = value;
    // BENCH_DROP=path1,path2 removes top-level subtrees to see what they cost.
    if let Ok(drop) = std::env::var("BENCH_DROP") {
        for path in drop.split(',') {
            let mut parts = path.split('.');
            let first = parts.next().unwrap_or_default();
            match parts.next() {
                None => {
                    value.as_object_mut()?.remove(first);
                }
                Some(second) => {
                    value.get_mut(first)?.as_object_mut()?.remove(second);
                }
            }
        }
    }
    serde_json::from_value(value).ok()
}

fn size(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let events: Vec<(u64, Event)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| audit_event(line, i as u64).map(|e| (i as u64 + 1, e)))
        .collect();
    let normalized_bytes: usize = events
        .iter()
        .map(|(_, e)| serde_json::to_string(e).map(|s| s.len() + 1).unwrap_or(0))
        .sum();
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), StoreConfig::default())?;
    let started = Instant::now();
    store.add(&events)?;
    store.close()?;
    let took = started.elapsed();
    let store = Store::open(dir.path(), StoreConfig::default())?;
    let stats = store.stats();
    print_breakdown(dir.path());
    println!(
        "events {}  raw NDJSON {} B  normalized NDJSON {} B  store {} B  raw/store {:.1}x  normalized/store {:.1}x  indexing {:.0} events/s",
        events.len(),
        text.len(),
        normalized_bytes,
        stats.total_bytes,
        text.len() as f64 / stats.total_bytes as f64,
        normalized_bytes as f64 / stats.total_bytes as f64,
        events.len() as f64 / took.as_secs_f64()
    );
    Ok(())
}

fn synthetic(i: u64) -> Event {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let ns = x % 20;
    let user = (x >> 8) % 1000;
    let verb = ["get", "list", "watch", "create", "delete"][((x >> 20) % 5) as usize];
    let code = [200, 200, 200, 201, 403, 404][((x >> 24) % 6) as usize];
    let secs = i % 86_400;
    serde_json::from_value(json!({
        "@timestamp": format!("2024-03-01T{:02}:{:02}:{:02}.{:06}Z", secs / 3600, (secs / 60) % 60, secs % 60, i % 1_000_000),
        "kubernetes": {"namespace": format!("ns-{ns}"), "pod": {"name": format!("pod-{ns}-{}", x % 50)}},
        "user": {"name": format!("user-{user}")},
        "event": {"action": verb, "dataset": "k8s_audit"},
        "http": {"response": {"status_code": code}},
        "message": format!("{verb} request by user-{user} returned {code}"),
    }))
    .unwrap_or_default()
}

fn time_query(store: &Store, label: &str, query: Query) -> Result<(), Box<dyn std::error::Error>> {
    let mut best = f64::MAX;
    let mut rows = 0;
    let mut total = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let response = store.search(&SearchRequest {
            query: query.clone(),
            start: None,
            end: None,
            limit: 100,
            offset: 0,
        })?;
        best = best.min(started.elapsed().as_secs_f64());
        rows = response.rows.map_or(response.hits.len(), |r| r.len());
        total = response.total;
    }
    println!(
        "{label:<45} total {total:>9}  rows {rows:>5}  best of 3: {:>7.1} ms",
        best * 1000.0
    );
    Ok(())
}

fn count_by(field: &str) -> Query {
    Query {
        filter: Filter::All,
        pipes: vec![Pipe::Stats {
            aggs: vec![Agg {
                func: AggFunc::Count,
                field: None,
                alias: "count".into(),
            }],
            by: vec![field.into()],
        }],
    }
}

fn stats(n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), StoreConfig::default())?;
    let started = Instant::now();
    let mut position = 0;
    while position < n {
        let batch: Vec<(u64, Event)> = (position..(position + 10_000).min(n))
            .map(|i| (i + 1, synthetic(i)))
            .collect();
        position += batch.len() as u64;
        store.add(&batch)?;
        if position % 200_000 == 0 {
            store.commit()?;
        }
    }
    store.close()?;
    let took = started.elapsed().as_secs_f64();
    let store = Store::open(dir.path(), StoreConfig::default())?;
    let stats = store.stats();
    println!(
        "indexed {n} events in {took:.1} s ({:.0}/s), {} partition(s), store {} B",
        n as f64 / took,
        stats.partitions.len(),
        stats.total_bytes
    );
    time_query(
        &store,
        "stats count() by kubernetes.namespace",
        count_by("kubernetes.namespace"),
    )?;
    time_query(&store, "stats count() by user.name", count_by("user.name"))?;
    time_query(
        &store,
        "stats count() by http.response.status_code",
        count_by("http.response.status_code"),
    )?;
    time_query(
        &store,
        "timechart span=1h count()",
        Query {
            filter: Filter::All,
            pipes: vec![Pipe::Timechart {
                span_secs: 3600,
                aggs: vec![],
                by: None,
            }],
        },
    )?;
    time_query(
        &store,
        "user.name:user-42 (hits)",
        Query {
            filter: Filter::Term {
                field: Some("user.name".into()),
                value: "user-42".into(),
            },
            pipes: vec![],
        },
    )?;
    time_query(
        &store,
        "denied OR 403 free text (hits)",
        Query {
            filter: Filter::Term {
                field: None,
                value: "403".into(),
            },
            pipes: vec![],
        },
    )?;
    Ok(())
}

/// Bytes per tantivy file kind (`store`, `term`, `idx`, `pos`, `fast`, ...).
fn print_breakdown(dir: &std::path::Path) {
    let mut by_ext: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(meta) = entry.metadata() {
                let ext = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("other")
                    .to_string();
                *by_ext.entry(ext).or_default() += meta.len();
            }
        }
    }
    println!("bytes by file kind: {by_ext:?}");
}
