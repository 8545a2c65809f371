//! Helpers shared by the integration tests.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use crowsnest_model::Event;
use crowsnest_query::{Filter, Query};
use crowsnest_store::{SearchRequest, SearchResponse, Store, StoreConfig};
use serde_json::Value;

/// Parses an RFC 3339 time.
pub fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

/// An event from JSON.
pub fn ev(value: Value) -> Event {
    serde_json::from_value(value).expect("event object")
}

/// Opens a store in a fresh temp dir.
pub fn store_with(config: StoreConfig) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), config).expect("open");
    (dir, store)
}

/// The events with WAL positions `first`, `first + 1`, ...
pub fn positioned(events: &[Value], first: u64) -> Vec<(u64, Event)> {
    (first..)
        .zip(events.iter().map(|e| ev(e.clone())))
        .collect()
}

/// Adds events at positions 1.. and commits.
pub fn fill(store: &Store, events: &[Value]) {
    store.add(&positioned(events, 1)).expect("add");
    store.commit().expect("commit");
}

/// Parses a query with the real parser.
pub fn q(text: &str) -> Query {
    crowsnest_query::parse(text).unwrap_or_else(|e| panic!("parse {text:?}: {e}"))
}

/// A query made of a filter alone.
pub fn fq(filter: Filter) -> Query {
    Query {
        filter,
        pipes: vec![],
    }
}

/// Runs a query without time bounds.
pub fn run(store: &Store, query: Query, limit: usize, offset: usize) -> SearchResponse {
    store
        .search(&SearchRequest {
            query,
            start: None,
            end: None,
            limit,
            offset,
        })
        .expect("search")
}

/// Every hit of a query (checking that none is left out).
fn all_hits(store: &Store, query: Query) -> SearchResponse {
    let response = run(store, query, 100_000, 0);
    assert_eq!(
        response.total as usize,
        response.hits.len(),
        "total vs hits"
    );
    response
}

/// The values of `field` in the hits of a response, sorted.
fn sorted_field<T: Ord>(
    response: &SearchResponse,
    field: &str,
    read: fn(&Value) -> Option<T>,
) -> Vec<T> {
    let mut values: Vec<T> = response
        .hits
        .iter()
        .map(|h| read(&h[field]).unwrap_or_else(|| panic!("hit without {field}: {h}")))
        .collect();
    values.sort_unstable();
    values
}

/// The `id` fields of all hits of a query, sorted.
pub fn ids(store: &Store, query: Query) -> Vec<i64> {
    sorted_field(&all_hits(store, query), "id", Value::as_i64)
}

/// The `seq` fields of the hits of a response, sorted.
pub fn hit_seqs(response: &SearchResponse) -> Vec<u64> {
    sorted_field(response, "seq", Value::as_u64)
}

/// The `seq` fields of all hits of a query, sorted.
pub fn seqs(store: &Store, query: Query) -> Vec<u64> {
    hit_seqs(&all_hits(store, query))
}
