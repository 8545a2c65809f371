//! Decode cost per event, and a normalized corpus for the store's ingest benchmark.
//!
//! ```text
//! crowsnest bench --events 100000 --corpus-out /tmp/corpus.ndjson
//! cargo run --release -p crowsnest-normalize --example normalize_corpus -- /tmp/corpus.ndjson [/tmp/normalized.ndjson]
//! ```
//!
//! Decodes the NDJSON corpus in 4 MiB bodies (as `crowsnest bench` posts them) three times and
//! prints the best time per event; with a second path, writes the decoded events (one JSON
//! object per line, with an `event.id` and `event.ingested` as the server would add) so
//! `cargo run --release -p crowsnest-store --example ingest` can index exactly what the server
//! indexes without the HTTP and WAL around it.

use std::io::Write;
use std::time::Instant;

use crowsnest_normalize::{decode_ndjson, Limits};
use serde_json::Value;

/// The allocator the `crowsnest` binary uses, so the figures match the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bytes per decoded body, as the benchmark's clients send them.
const BODY_BYTES: usize = 4 * 1024 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let input = args
        .get(1)
        .ok_or("usage: normalize_corpus <corpus.ndjson> [out.ndjson]")?;
    let text = std::fs::read(input)?;
    let bodies = split_bodies(&text);
    let limits = Limits::default();
    let mut best = f64::MAX;
    let mut events = 0;
    for _ in 0..3 {
        let started = Instant::now();
        events = 0;
        for body in &bodies {
            events += decode_ndjson(body, None, &limits).events.len();
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "decoded {events} events ({} bytes) in {:.3} s: {:.2} µs/event, {:.1} MB/s",
        text.len(),
        best,
        best * 1e6 / events.max(1) as f64,
        text.len() as f64 / best / 1e6
    );
    if let Some(out) = args.get(2) {
        let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
        let mut n = 0u64;
        for body in &bodies {
            for mut event in decode_ndjson(body, None, &limits).events {
                n += 1;
                event.set("event.id", Value::String(format!("01JBENCH{n:018}")));
                event.set(
                    "event.ingested",
                    Value::String("2026-11-24T00:00:00.000000Z".into()),
                );
                serde_json::to_writer(&mut file, &event)?;
                file.write_all(b"\n")?;
            }
        }
        file.flush()?;
        println!("wrote {n} normalized events to {out}");
    }
    Ok(())
}

/// Cuts the corpus into bodies of about [`BODY_BYTES`], on line ends.
fn split_bodies(text: &[u8]) -> Vec<&[u8]> {
    let mut bodies = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + BODY_BYTES).min(text.len());
        while end < text.len() && text[end - 1] != b'\n' {
            end += 1;
        }
        bodies.push(&text[start..end]);
        start = end;
    }
    bodies
}
