//! Retention by age and size, stats, and searching while adding.

mod common;

use std::sync::Arc;

use common::*;
use crowsnest_model::Event;
use crowsnest_query::Filter;
use crowsnest_store::{Store, StoreConfig};
use serde_json::json;

/// `per_day` events on each of `days` days from 2024-03-01, positions from 1.
fn days(store: &Store, days: u32, per_day: u32) {
    let mut batch: Vec<(u64, Event)> = Vec::new();
    for d in 0..days {
        for i in 0..per_day {
            let ts = t("2024-03-01T00:00:00Z")
                + chrono::TimeDelta::days(i64::from(d))
                + chrono::TimeDelta::seconds(i64::from(i));
            let position = batch.len() as u64 + 1;
            batch.push((
                position,
                ev(json!({
                    "@timestamp": crowsnest_model::format_timestamp(ts),
                    "message": format!("day {d} event {i} with some padding text to take space"),
                    "user": {"name": format!("user{i}")},
                })),
            ));
        }
    }
    store.add(&batch).expect("add");
    store.commit().expect("commit");
}

#[test]
fn retention_by_age_drops_partitions_that_ended_before_the_cutoff() {
    let (dir, store) = store_with(StoreConfig {
        retention_max_age_hours: Some(48),
        ..StoreConfig::default()
    });
    days(&store, 5, 20);
    assert_eq!(store.stats().partitions.len(), 5);
    // now = 03-05 12:00: cutoff 03-03 12:00; partitions ending at or before it: 03-01, 03-02.
    let report = store
        .apply_retention(t("2024-03-05T12:00:00Z"))
        .expect("retention");
    assert_eq!(report.dropped, vec!["20240301T00", "20240302T00"]);
    assert_eq!(report.dropped_docs, 40);
    assert!(report.dropped_bytes > 0);
    let stats = store.stats();
    assert_eq!(stats.total_docs, 60);
    assert_eq!(run(&store, fq(Filter::All), 1, 0).total, 60);
    assert!(!dir.path().join("partitions/20240301T00").exists());
    // Idempotent.
    let again = store
        .apply_retention(t("2024-03-05T12:00:00Z"))
        .expect("retention");
    assert!(again.dropped.is_empty());
}

#[test]
fn retention_by_size_drops_oldest_but_never_the_newest() {
    let (_dir, store) = store_with(StoreConfig::default());
    days(&store, 4, 50);
    let stats = store.stats();
    let sizes: Vec<u64> = stats.partitions.iter().map(|p| p.bytes).collect();
    assert!(sizes.iter().all(|&b| b > 0));
    drop(store);
    // Reopen with a budget that fits the newest two partitions only.
    let budget = sizes[2] + sizes[3];
    let store = Store::open(
        _dir.path(),
        StoreConfig {
            retention_max_bytes: Some(budget),
            ..StoreConfig::default()
        },
    )
    .expect("reopen");
    let report = store
        .apply_retention(t("2024-03-10T00:00:00Z"))
        .expect("retention");
    assert_eq!(report.dropped, vec!["20240301T00", "20240302T00"]);
    assert!(store.stats().total_bytes <= budget);
    drop(store);
    // A budget smaller than anything still keeps the newest partition.
    let store = Store::open(
        _dir.path(),
        StoreConfig {
            retention_max_bytes: Some(1),
            ..StoreConfig::default()
        },
    )
    .expect("reopen");
    let report = store
        .apply_retention(t("2024-03-10T00:00:00Z"))
        .expect("retention");
    assert_eq!(report.dropped, vec!["20240303T00"]);
    let names: Vec<String> = store
        .stats()
        .partitions
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec!["20240304T00"]);
}

#[test]
fn searches_run_while_events_are_added() {
    let (_dir, store) = store_with(StoreConfig::default());
    let store = Arc::new(store);
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for round in 0..20u64 {
                let batch: Vec<(u64, Event)> = (0..50u64)
                    .map(|i| {
                        let n = round * 50 + i;
                        (
                            n + 1,
                            ev(json!({
                                "@timestamp": format!("2024-03-0{}T10:00:{:02}Z", 1 + n % 3, n % 60),
                                "n": n,
                            })),
                        )
                    })
                    .collect();
                store.add(&batch).expect("add");
                store.commit().expect("commit");
            }
        })
    };
    let mut last = 0;
    while !writer.is_finished() {
        let total = run(&store, fq(Filter::All), 5, 0).total;
        assert!(
            total >= last,
            "committed events never disappear: {total} < {last}"
        );
        last = total;
    }
    writer.join().expect("writer thread");
    assert_eq!(run(&store, fq(Filter::All), 5, 0).total, 1000);
}
