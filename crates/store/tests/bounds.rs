//! Bounded partitions whatever the timestamps, and rolling back after a failed commit.

mod common;

use chrono::{Duration, Utc};
use common::*;
use crowsnest_model::format_timestamp;
use crowsnest_store::{OutOfRange, SearchRequest, Store, StoreConfig};
use serde_json::json;

/// One request of events on 11,000 different days (from 1800 on) used to make 11,000
/// partitions and exhaust the memory maps. Routed by their ingest time, they make one.
#[test]
fn events_on_thousands_of_days_make_one_partition_and_stay_searchable() {
    let (dir, store) = store_with(StoreConfig::default());
    let ingested = t("2026-12-07T06:00:00Z");
    let start = t("1800-01-01T12:00:00Z");
    let events: Vec<_> = (0..11_000)
        .map(|day| {
            json!({
                "@timestamp": format_timestamp(start + Duration::days(day)),
                "event": {"ingested": format_timestamp(ingested), "id": format!("e{day}")},
                "message": format!("day {day}"),
            })
        })
        .collect();
    fill(&store, &events);
    let stats = store.stats();
    assert_eq!(stats.partitions.len(), 1, "{:?}", stats.partitions);
    let on_disk = std::fs::read_dir(dir.path().join("partitions"))
        .expect("partitions")
        .count();
    assert_eq!(on_disk, 1);
    assert_eq!(count(&store, "*"), 11_000);

    // A time range far from the partition's own day still finds its events.
    let in_1801 = store
        .search(&SearchRequest {
            query: q("*"),
            start: Some(t("1801-01-01T00:00:00Z")),
            end: Some(t("1802-01-01T00:00:00Z")),
            limit: 1000,
            offset: 0,
        })
        .expect("search");
    assert_eq!(in_1801.total, 365);
    assert_eq!(
        in_1801.hits[0]["@timestamp"],
        format_timestamp(t("1801-12-31T12:00:00Z"))
    );

    // The span survives a reopen (it is in the commit payload).
    drop(store);
    let store = Store::open(dir.path(), StoreConfig::default()).expect("reopen");
    let in_1900 = store
        .search(&SearchRequest {
            query: q("*"),
            start: Some(t("1820-01-01T00:00:00Z")),
            end: Some(t("1820-01-02T00:00:00Z")),
            limit: 10,
            offset: 0,
        })
        .expect("search");
    assert_eq!(in_1900.total, 1);
}

/// Hits stay newest first when a partition holds events outside its own day.
#[test]
fn hits_are_merged_by_time_across_overlapping_partitions() {
    let (_dir, store) = store_with(StoreConfig::default());
    let now = Utc::now();
    let ingested = format_timestamp(now);
    let recent = |hours: i64, id: &str| {
        json!({"@timestamp": format_timestamp(now - Duration::hours(hours)),
               "event": {"ingested": ingested, "id": id}})
    };
    let events = vec![
        recent(1, "a-1h"),
        // A day old, and far in the future: both routed by ingest time.
        recent(30 * 24, "old"),
        json!({"@timestamp": format_timestamp(now + Duration::days(400)),
               "event": {"ingested": ingested, "id": "future"}}),
        recent(2 * 24, "b-2d"),
    ];
    fill(&store, &events);
    let response = run(&store, q("*"), 10, 0);
    let ids: Vec<_> = response
        .hits
        .iter()
        .map(|h| h["event"]["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, ["future", "a-1h", "b-2d", "old"]);
    let page = run(&store, q("*"), 2, 1);
    let ids: Vec<_> = page.hits.iter().map(|h| h["event"]["id"].clone()).collect();
    assert_eq!(ids, [json!("a-1h"), json!("b-2d")]);
}

#[test]
fn the_window_decides_past_future_and_in_range() {
    let config = StoreConfig::default();
    let now = t("2026-12-07T00:00:00Z");
    assert_eq!(config.out_of_range(now - Duration::days(6), now), None);
    assert_eq!(
        config.out_of_range(now - Duration::days(8), now),
        Some(OutOfRange::Past)
    );
    assert_eq!(config.out_of_range(now + Duration::hours(23), now), None);
    assert_eq!(
        config.out_of_range(now + Duration::hours(25), now),
        Some(OutOfRange::Future)
    );
    // Extreme windows do not overflow.
    let wide = StoreConfig {
        window_past_hours: u64::MAX,
        window_future_hours: u64::MAX,
        ..StoreConfig::default()
    };
    assert_eq!(wide.out_of_range(t("1800-01-01T00:00:00Z"), now), None);
}

/// After `abort`, what was buffered is gone and the durable position has not moved, so the
/// events can be added again (from the WAL) and none is counted twice or lost.
#[test]
fn abort_discards_what_was_buffered_and_the_events_can_be_added_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        // One writer: switching partitions commits the previous one (a partial commit).
        writer_memory_bytes: 15_000_000,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config.clone()).expect("open");
    let day = |d: u32, id: u64| json!({"@timestamp": format!("2024-03-{d:02}T10:00:00Z"), "event": {"id": id.to_string()}});
    fill(&store, &[day(1, 1), day(1, 2)]);
    assert_eq!(store.committed_position(), Some(2));
    // Positions 3..=6 on two days; the switch to day 2 commits day 1's writer.
    let batch = positioned(&[day(1, 3), day(1, 4), day(2, 5), day(2, 6)], 3);
    store.add(&batch).expect("add");
    assert_eq!(store.abort(), Some(2));
    // Day 1 committed through 4 when its writer was evicted; day 2 was discarded.
    assert_eq!(count(&store, "*"), 4);
    assert_eq!(store.commit().expect("commit"), Some(2));
    // Added again: day 1's events are skipped, and still count as durable.
    assert_eq!(store.add(&batch[..2]).expect("re-add"), 0);
    assert_eq!(store.commit().expect("commit"), Some(4));
    // Day 2's go in.
    assert_eq!(store.add(&batch).expect("re-add"), 2);
    assert_eq!(store.commit().expect("commit"), Some(6));
    assert_eq!(count(&store, "*"), 6);
    drop(store);
    let store = Store::open(dir.path(), config).expect("reopen");
    assert_eq!(store.committed_position(), Some(6));
    assert_eq!(store.add(&batch).expect("replay"), 0);
    assert_eq!(count(&store, "*"), 6);
}

fn count(store: &Store, text: &str) -> u64 {
    run(store, q(text), 0, 0).total
}
