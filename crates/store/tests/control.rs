//! Searches under a `SearchControl`: the same answers with room to run, the control's reason
//! (never a partial answer) when it stops them.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use crowsnest_store::{SearchControl, SearchRequest, Store, StoreConfig, StoreError};
use serde_json::json;

fn store() -> (tempfile::TempDir, Store) {
    let (dir, store) = store_with(StoreConfig::default());
    let events: Vec<_> = (0..2_000)
        .map(|i| {
            let ts = t("2024-03-01T00:00:00Z") + chrono::TimeDelta::minutes(i);
            json!({
                "@timestamp": crowsnest_model::format_timestamp(ts),
                "user": {"name": format!("user{}", i % 7)},
                "message": format!("request {i} done"),
            })
        })
        .collect();
    fill(&store, &events);
    (dir, store)
}

const QUERIES: [&str; 4] = [
    "user.name:user3",
    "user.name:us*3 OR done",
    "* | stats count() by user.name",
    "done | fields user.name | sort user.name | head 3",
];

fn request(text: &str) -> SearchRequest {
    SearchRequest {
        query: q(text),
        start: None,
        end: None,
        limit: 50,
        offset: 10,
    }
}

#[test]
fn with_room_to_run_the_answers_are_those_of_an_unbounded_search() {
    let (_dir, store) = store();
    let cancel = Arc::new(AtomicBool::new(false));
    let control = SearchControl::new()
        .with_timeout(Duration::from_secs(600))
        .with_cancel(cancel);
    for text in QUERIES {
        let free = store.search(&request(text)).expect("search");
        let bounded = store.search_with(&request(text), &control).expect("search");
        assert_eq!(bounded.total, free.total, "{text}");
        assert_eq!(bounded.hits, free.hits, "{text}");
        assert_eq!(bounded.rows, free.rows, "{text}");
        assert!(free.total > 0, "{text}");
    }
}

#[test]
fn a_spent_budget_stops_every_kind_of_search_with_its_reason() {
    let (_dir, store) = store();
    let control = SearchControl::new().with_timeout(Duration::ZERO);
    for text in QUERIES {
        match store.search_with(&request(text), &control) {
            Err(StoreError::Timeout { budget_ms: 0 }) => {}
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn a_cancelled_search_stops_with_cancelled() {
    let (_dir, store) = store();
    let cancel = Arc::new(AtomicBool::new(false));
    let control = SearchControl::new().with_cancel(cancel.clone());
    assert!(store.search_with(&request(QUERIES[2]), &control).is_ok());
    cancel.store(true, Ordering::Relaxed);
    for text in QUERIES {
        let error = store
            .search_with(&request(text), &control)
            .expect_err("cancelled");
        assert!(matches!(error, StoreError::Cancelled), "{text}: {error}");
    }
}

#[test]
fn a_search_cancelled_at_any_moment_is_whole_or_cancelled_never_partial() {
    // Many matches in one partition: the scorer checks its control every few thousand of them
    // (that it ends early is tested on the scorer itself, in `search.rs`).
    let (_dir, store) = store_with(StoreConfig::default());
    let events: Vec<_> = (0..10_000)
        .map(|i| json!({"@timestamp": "2024-03-01T00:00:00Z", "n": i, "message": "x"}))
        .collect();
    fill(&store, &events);
    let cancel = Arc::new(AtomicBool::new(false));
    let control = SearchControl::new().with_cancel(cancel.clone());
    let request = SearchRequest {
        query: q("* | stats dc(n)"),
        start: None,
        end: None,
        limit: 10,
        offset: 0,
    };
    let free = store.search(&request).expect("search");
    assert_eq!(
        free.rows.as_ref().map(|r| r[0][0].clone()),
        Some(json!(10_000))
    );
    let store = Arc::new(store);
    let runner = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            // Search until the flag is seen: each run that ends is whole or cancelled.
            loop {
                match store.search_with(&request, &control) {
                    Ok(response) => {
                        assert_eq!(response.rows, free.rows, "a whole answer");
                        outcomes.push("whole");
                    }
                    Err(StoreError::Cancelled) => return outcomes,
                    Err(other) => panic!("{other}"),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    cancel.store(true, Ordering::Relaxed);
    let outcomes = runner.join().expect("runner");
    assert!(outcomes.iter().all(|o| *o == "whole"));
}
