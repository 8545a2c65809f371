//! Commit payloads, exactly-once replay across reopen, writer eviction.

mod common;

use common::*;
use crowsnest_model::Event;
use crowsnest_query::Filter;
use crowsnest_store::{Store, StoreConfig, StoreError};
use serde_json::json;

/// Event `i` on day `i % days` (so batches spread over several partitions).
fn event(i: u64, days: u64) -> Event {
    let day = 1 + i % days;
    ev(json!({
        "id": i,
        "@timestamp": format!("2024-03-{day:02}T12:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        "message": format!("event number {i}"),
    }))
}

fn batch(range: std::ops::Range<u64>, days: u64) -> Vec<(u64, Event)> {
    range.map(|i| (i, event(i, days))).collect()
}

fn count_all(store: &Store) -> u64 {
    run(store, fq(Filter::All), 1, 0).total
}

#[test]
fn replay_after_reopen_adds_each_event_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        assert_eq!(store.add(&batch(1..101, 3)).expect("add"), 100);
        assert_eq!(store.commit().expect("commit"), Some(100));
        // Buffered but never committed: lost in the "crash" below.
        assert_eq!(store.add(&batch(101..151, 3)).expect("add"), 50);
        drop(store);
    }
    let store = Store::open(dir.path(), StoreConfig::default()).expect("reopen");
    assert_eq!(store.committed_position(), Some(100));
    assert_eq!(count_all(&store), 100);
    // The WAL replays from an earlier point: 1..100 are skipped, 101..200 are new.
    let added = store.add(&batch(50..201, 3)).expect("replay");
    assert_eq!(added, 100);
    assert_eq!(store.commit().expect("commit"), Some(200));
    assert_eq!(count_all(&store), 200);
    // Every id exactly once.
    let response = run(&store, fq(Filter::All), 1000, 0);
    let mut seen: Vec<u64> = response
        .hits
        .iter()
        .map(|h| h["id"].as_u64().expect("id"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..201).collect::<Vec<u64>>());
}

#[test]
fn commit_reports_the_highest_position_and_is_idempotent() {
    let (_dir, store) = store_with(StoreConfig::default());
    assert_eq!(store.commit().expect("empty commit"), None);
    store.add(&batch(5..8, 1)).expect("add");
    assert_eq!(store.commit().expect("commit"), Some(7));
    assert_eq!(store.commit().expect("again"), Some(7));
    assert_eq!(count_all(&store), 3);
}

#[test]
fn evicted_writers_commit_and_replay_stays_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 1 writer at a time: every switch of partition commits the previous one.
    let config = StoreConfig {
        writer_memory_bytes: 15_000_000,
        ..StoreConfig::default()
    };
    {
        let store = Store::open(dir.path(), config.clone()).expect("open");
        assert_eq!(store.add(&batch(1..61, 6)).expect("add"), 60);
        // No commit: the last partition's writer is still open and uncommitted.
        drop(store);
    }
    let store = Store::open(dir.path(), config).expect("reopen");
    let before = count_all(&store);
    assert!(
        before > 0 && before < 60,
        "evictions committed some events: {before}"
    );
    assert_eq!(store.committed_position(), None);
    let added = store.add(&batch(1..61, 6)).expect("replay all");
    assert_eq!(added as u64, 60 - before);
    store.commit().expect("commit");
    assert_eq!(count_all(&store), 60);
    assert_eq!(store.stats().partitions.len(), 6);
}

#[test]
fn events_without_timestamp_are_refused_whole_batch() {
    let (_dir, store) = store_with(StoreConfig::default());
    let good = event(1, 1);
    let bad = ev(json!({"message": "no time"}));
    let err = store.add(&[(1, good), (2, bad)]).expect_err("refused");
    assert!(matches!(err, StoreError::MissingTimestamp { position: 2 }));
    assert_eq!(store.commit().expect("commit"), None);
}

#[test]
fn close_commits_and_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
    store.add(&batch(1..11, 2)).expect("add");
    assert_eq!(store.close().expect("close"), Some(10));
    let store = Store::open(dir.path(), StoreConfig::default()).expect("reopen");
    assert_eq!(count_all(&store), 10);
}

#[test]
fn partitions_keep_their_width_when_the_config_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        store
            .add(&[(1, ev(json!({"@timestamp": "2024-03-01T05:00:00Z"})))])
            .expect("add");
        store.commit().expect("commit");
    }
    let hourly = StoreConfig {
        partition_hours: 1,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), hourly).expect("reopen");
    // Same day: goes to the existing daily partition.
    store
        .add(&[(2, ev(json!({"@timestamp": "2024-03-01T20:00:00Z"})))])
        .expect("add");
    // Next day: a new hourly partition.
    store
        .add(&[(3, ev(json!({"@timestamp": "2024-03-02T20:30:00Z"})))])
        .expect("add");
    store.commit().expect("commit");
    let stats = store.stats();
    let names: Vec<&str> = stats.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["20240301T00", "20240302T20"]);
    assert_eq!(stats.partitions[0].docs, 2);
    assert_eq!(stats.partitions[1].end, t("2024-03-02T21:00:00Z"));
    assert_eq!(stats.total_docs, 3);
}
