//! One answer, one snapshot: `total`, the hits and the pipe rows of a search agree with each
//! other while events are being added and committed at the same time.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use crowsnest_store::{Store, StoreConfig};
use serde_json::json;

#[test]
fn total_hits_and_rows_agree_under_concurrent_ingest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut position = 1u64;
            let mut rounds = 0u32;
            while !stop.load(Ordering::SeqCst) || rounds < 20 {
                let events: Vec<_> = (0..200)
                    .map(|i| {
                        let action = ["start", "die", "kill"][i % 3];
                        // Two days, so a search spans two partitions committed one by one.
                        json!({
                            "@timestamp": format!("2024-03-0{}T10:00:00Z", 1 + (i % 2)),
                            "event": {"dataset": "docker.events", "action": action},
                            "seq": position + i as u64,
                        })
                    })
                    .collect();
                store.add(&positioned(&events, position)).expect("add");
                store.commit().expect("commit");
                position += events.len() as u64;
                rounds += 1;
            }
        })
    };
    for _ in 0..200 {
        let table = run(
            &store,
            q("event.dataset:docker* | stats count() by event.dataset, event.action"),
            1000,
            0,
        );
        let rows = table.rows.clone().unwrap_or_default();
        let sum: u64 = rows.iter().filter_map(|r| r[2].as_u64()).sum();
        assert_eq!(sum, table.total, "rows {rows:?} vs total {}", table.total);
        let hits = run(&store, q("event.dataset:docker*"), 100_000, 0);
        assert_eq!(hits.hits.len() as u64, hits.total, "hits vs total");
        let chart = run(
            &store,
            q("event.dataset:docker* | timechart span=1d count()"),
            1000,
            0,
        );
        let sum: u64 = chart
            .rows
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r[1].as_u64())
            .sum();
        assert_eq!(sum, chart.total, "timechart rows vs total");
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
}
