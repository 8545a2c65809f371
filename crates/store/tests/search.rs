//! Hits order, pagination across partitions, time bounds, event tables.

mod common;

use common::*;
use crowsnest_query::{Filter, Pipe, Query, SortKey};
use crowsnest_store::{SearchRequest, StoreConfig};
use serde_json::json;

/// 30 events, one every 2 hours from 2024-03-01T00:00Z (6 hourly... spread over 3 daily partitions).
fn events() -> Vec<serde_json::Value> {
    (0..30)
        .map(|i| {
            let ts = t("2024-03-01T00:00:00Z") + chrono::TimeDelta::hours(2 * i);
            json!({
                "id": i,
                "@timestamp": crowsnest_model::format_timestamp(ts),
                "event": {"dataset": if i % 2 == 0 { "even" } else { "odd" }},
                "message": format!("message {i}"),
                "user": {"name": format!("user{}", i % 4)},
            })
        })
        .collect()
}

fn store() -> (tempfile::TempDir, crowsnest_store::Store) {
    let (dir, store) = store_with(StoreConfig::default());
    // Add in shuffled order, in two commits.
    let mut all = events();
    all.reverse();
    let (a, b) = all.split_at(13);
    fill(&store, a);
    let rest = positioned(b, 100);
    store.add(&rest).expect("add");
    store.commit().expect("commit");
    (dir, store)
}

fn hit_ids(response: &crowsnest_store::SearchResponse) -> Vec<i64> {
    response
        .hits
        .iter()
        .map(|h| h["id"].as_i64().expect("id"))
        .collect()
}

#[test]
fn hits_are_newest_first_and_pages_tile_across_partitions() {
    let (_d, s) = store();
    assert_eq!(s.stats().partitions.len(), 3);
    let everything = run(&s, fq(Filter::All), 100, 0);
    assert_eq!(everything.total, 30);
    assert_eq!(hit_ids(&everything), (0..30).rev().collect::<Vec<i64>>());
    for page_size in [1, 4, 7, 12, 29] {
        let mut paged = Vec::new();
        let mut offset = 0;
        while offset < 35 {
            let page = run(&s, fq(Filter::All), page_size, offset);
            assert_eq!(page.total, 30, "total stays exact");
            paged.extend(hit_ids(&page));
            offset += page_size;
        }
        assert_eq!(paged, hit_ids(&everything), "page size {page_size}");
    }
    let filtered = run(&s, q("event.dataset:odd"), 3, 2);
    assert_eq!(filtered.total, 15);
    assert_eq!(hit_ids(&filtered), vec![25, 23, 21]);
}

#[test]
fn time_bounds_are_start_inclusive_end_exclusive() {
    let (_d, s) = store();
    let response = s
        .search(&SearchRequest {
            query: fq(Filter::All),
            start: Some(t("2024-03-01T22:00:00Z")),
            end: Some(t("2024-03-02T04:00:00Z")),
            limit: 100,
            offset: 0,
        })
        .expect("search");
    // 22:00 (id 11), 00:00 (12), 02:00 (13); 04:00 is excluded.
    assert_eq!(response.total, 3);
    assert_eq!(hit_ids(&response), vec![13, 12, 11]);
    let open_end = s
        .search(&SearchRequest {
            query: q("event.dataset:even"),
            start: Some(t("2024-03-03T00:00:00Z")),
            end: None,
            limit: 100,
            offset: 0,
        })
        .expect("search");
    assert_eq!(hit_ids(&open_end), vec![28, 26, 24]);
}

#[test]
fn non_aggregating_pipes_give_a_table_of_the_newest_events() {
    let (_d, s) = store();
    let query = Query {
        filter: Filter::All,
        pipes: vec![
            Pipe::Fields(vec!["id".into(), "user.name".into()]),
            Pipe::Head(3),
        ],
    };
    let response = run(&s, query, 10, 0);
    assert_eq!(response.total, 30);
    assert!(response.hits.is_empty());
    assert_eq!(
        response.columns,
        Some(vec!["id".to_string(), "user.name".to_string()])
    );
    assert_eq!(
        response.rows,
        Some(vec![
            vec![json!(29), json!("user1")],
            vec![json!(28), json!("user0")],
            vec![json!(27), json!("user3")],
        ])
    );
    // Default columns, sorted by a field that is not among them, then paged.
    let sorted = Query {
        filter: q("event.dataset:odd").filter,
        pipes: vec![Pipe::Sort(vec![SortKey {
            field: "id".into(),
            descending: false,
        }])],
    };
    let response = run(&s, sorted, 2, 1);
    assert_eq!(
        response.columns,
        Some(vec![
            "@timestamp".into(),
            "event.dataset".into(),
            "message".into(),
            "id".into()
        ])
    );
    let rows = response.rows.expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][3], json!(3));
    assert_eq!(rows[1][3], json!(5));
    assert_eq!(rows[0][2], json!("message 3"));
}
