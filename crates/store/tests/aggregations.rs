//! `stats` and `timechart` against naive counts computed in the test.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use crowsnest_query::{Agg, AggFunc, Filter, Pipe, Query, SortKey};
use crowsnest_store::{StoreConfig, StoreError};
use serde_json::{json, Value};

const NAMESPACES: [&str; 3] = ["prod", "dev", "kube-system"];
const VERBS: [&str; 4] = ["get", "list", "create", "delete"];

/// Deterministic pseudo-random events over three days.
fn corpus(n: u64) -> Vec<Value> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    (0..n)
        .map(|i| {
            let minute = next(3 * 24 * 60);
            let ts = t("2024-03-01T00:00:00Z") + chrono::TimeDelta::minutes(minute as i64);
            let mut event = json!({
                "id": i,
                "@timestamp": crowsnest_model::format_timestamp(ts),
                "kubernetes": {"namespace": NAMESPACES[next(3) as usize]},
                "verb": VERBS[next(4) as usize],
            });
            if next(5) != 0 {
                event["user"] = json!({"name": format!("user{}", next(7))});
            }
            match next(3) {
                0 => event["bytes"] = json!(next(1000)),
                1 => event["bytes"] = json!(next(1000) as f64 + 0.5),
                _ => {}
            }
            if next(2) == 0 {
                event["roles"] = json!(["admin", format!("team{}", next(3))]);
            }
            event
        })
        .collect()
}

fn agg(func: AggFunc, field: Option<&str>, alias: &str) -> Agg {
    Agg {
        func,
        field: field.map(String::from),
        alias: alias.into(),
    }
}

fn table(
    store: &crowsnest_store::Store,
    filter: Filter,
    pipes: Vec<Pipe>,
) -> (Vec<String>, Vec<Vec<Value>>, u64) {
    let response = run(store, Query { filter, pipes }, 100_000, 0);
    (
        response.columns.expect("columns"),
        response.rows.expect("rows"),
        response.total,
    )
}

fn setup() -> (tempfile::TempDir, crowsnest_store::Store, Vec<Value>) {
    let events = corpus(600);
    let (dir, store) = store_with(StoreConfig::default());
    fill(&store, &events);
    (dir, store, events)
}

#[test]
fn stats_count_by_keyword_matches_a_naive_count() {
    let (_d, s, events) = setup();
    let (columns, rows, total) = table(
        &s,
        Filter::All,
        vec![Pipe::Stats {
            aggs: vec![agg(AggFunc::Count, None, "count")],
            by: vec!["kubernetes.namespace".into()],
        }],
    );
    assert_eq!(total, 600);
    assert_eq!(columns, vec!["kubernetes.namespace", "count"]);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        *expected
            .entry(e["kubernetes"]["namespace"].as_str().expect("ns").into())
            .or_default() += 1;
    }
    let got: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().expect("ns").to_string(),
                r[1].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(got, expected);
    // Sorted by count descending.
    let counts: Vec<u64> = rows.iter().map(|r| r[1].as_u64().expect("count")).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
}

#[test]
fn every_aggregation_function_matches_a_naive_computation() {
    let (_d, s, events) = setup();
    let filter = Filter::Term {
        field: Some("kubernetes.namespace".into()),
        value: "prod".into(),
    };
    let (columns, rows, total) = table(
        &s,
        filter,
        vec![Pipe::Stats {
            aggs: vec![
                agg(AggFunc::Count, None, "count"),
                agg(AggFunc::Count, Some("user.name"), "with_user"),
                agg(AggFunc::Dc, Some("user.name"), "users"),
                agg(AggFunc::Sum, Some("bytes"), "sum"),
                agg(AggFunc::Avg, Some("bytes"), "avg"),
                agg(AggFunc::Min, Some("bytes"), "min"),
                agg(AggFunc::Max, Some("bytes"), "max"),
                agg(AggFunc::Min, Some("user.name"), "first_user"),
            ],
            by: vec!["verb".into()],
        }],
    );
    assert_eq!(
        columns,
        vec![
            "verb",
            "count",
            "with_user",
            "users",
            "sum",
            "avg",
            "min",
            "max",
            "first_user"
        ]
    );
    let prod: Vec<&Value> = events
        .iter()
        .filter(|e| e["kubernetes"]["namespace"] == "prod")
        .collect();
    assert_eq!(total, prod.len() as u64);
    assert_eq!(rows.len(), VERBS.len());
    for row in &rows {
        let verb = row[0].as_str().expect("verb");
        let group: Vec<&&Value> = prod.iter().filter(|e| e["verb"] == verb).collect();
        let users: BTreeSet<&str> = group
            .iter()
            .filter_map(|e| e["user"]["name"].as_str())
            .collect();
        let bytes: Vec<f64> = group.iter().filter_map(|e| e["bytes"].as_f64()).collect();
        assert_eq!(row[1], json!(group.len()), "count {verb}");
        assert_eq!(
            row[2],
            json!(group
                .iter()
                .filter(|e| e["user"]["name"].is_string())
                .count()),
            "count(field) {verb}"
        );
        assert_eq!(row[3], json!(users.len()), "dc {verb}");
        let sum: f64 = bytes.iter().sum();
        assert!(
            (row[4].as_f64().expect("sum") - sum).abs() < 1e-6,
            "sum {verb}"
        );
        let avg = sum / bytes.len() as f64;
        assert!(
            (row[5].as_f64().expect("avg") - avg).abs() < 1e-6,
            "avg {verb}"
        );
        let min = bytes.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = bytes.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(row[6].as_f64(), Some(min), "min {verb}");
        assert_eq!(row[7].as_f64(), Some(max), "max {verb}");
        assert_eq!(
            row[8].as_str(),
            users.iter().next().copied(),
            "min string {verb}"
        );
    }
}

#[test]
fn multi_valued_and_missing_by_fields() {
    let (_d, s, events) = setup();
    let (_, rows, _) = table(
        &s,
        Filter::All,
        vec![Pipe::Stats {
            aggs: vec![agg(AggFunc::Count, None, "n")],
            by: vec!["roles".into(), "user.name".into()],
        }],
    );
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in &events {
        let (Some(roles), Some(user)) = (e["roles"].as_array(), e["user"]["name"].as_str()) else {
            continue;
        };
        for role in roles {
            *expected
                .entry((role.as_str().expect("role").into(), user.into()))
                .or_default() += 1;
        }
    }
    let got: BTreeMap<(String, String), u64> = rows
        .iter()
        .map(|r| {
            (
                (
                    r[0].as_str().expect("role").into(),
                    r[1].as_str().expect("user").into(),
                ),
                r[2].as_u64().expect("n"),
            )
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn stats_without_matches_gives_one_zero_row() {
    let (_d, s, _) = setup();
    let (columns, rows, total) = table(
        &s,
        Filter::Term {
            field: Some("verb".into()),
            value: "nothing".into(),
        },
        vec![Pipe::Stats {
            aggs: vec![
                agg(AggFunc::Count, None, "count"),
                agg(AggFunc::Avg, Some("bytes"), "avg"),
            ],
            by: vec![],
        }],
    );
    assert_eq!(total, 0);
    assert_eq!(columns, vec!["count", "avg"]);
    assert_eq!(rows, vec![vec![json!(0), Value::Null]]);
}

#[test]
fn timechart_buckets_match_and_gaps_are_filled() {
    let (_d, s, events) = setup();
    let (columns, rows, total) = table(
        &s,
        Filter::All,
        vec![Pipe::Timechart {
            span_secs: 3600,
            aggs: vec![],
            by: None,
        }],
    );
    assert_eq!(total, 600);
    assert_eq!(columns, vec!["_time", "count"]);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        let ts = t(e["@timestamp"].as_str().expect("ts"));
        let hour = crowsnest_model::format_timestamp(
            chrono::DateTime::from_timestamp(ts.timestamp() / 3600 * 3600, 0).expect("hour"),
        );
        *expected.entry(hour).or_default() += 1;
    }
    let got: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().expect("time").into(),
                r[1].as_u64().expect("count"),
            )
        })
        .collect();
    let nonzero: BTreeMap<String, u64> = got.iter().filter(|(_, c)| *c > 0).cloned().collect();
    assert_eq!(nonzero, expected);
    // Sorted by time, one row per hour between first and last, no gaps.
    let first = t(&got[0].0);
    for (i, (time, _)) in got.iter().enumerate() {
        assert_eq!(t(time), first + chrono::TimeDelta::hours(i as i64));
    }
}

#[test]
fn timechart_by_field_is_long_format() {
    let (_d, s, events) = setup();
    let (columns, rows, _) = table(
        &s,
        Filter::All,
        vec![Pipe::Timechart {
            span_secs: 86_400,
            aggs: vec![agg(AggFunc::Dc, Some("user.name"), "users")],
            by: Some("verb".into()),
        }],
    );
    assert_eq!(columns, vec!["_time", "verb", "users"]);
    assert_eq!(rows.len(), 3 * VERBS.len());
    for row in &rows {
        let day = &row[0].as_str().expect("time")[..10];
        let verb = row[1].as_str().expect("verb");
        let users: BTreeSet<&str> = events
            .iter()
            .filter(|e| {
                e["verb"] == verb && e["@timestamp"].as_str().is_some_and(|t| t.starts_with(day))
            })
            .filter_map(|e| e["user"]["name"].as_str())
            .collect();
        assert_eq!(row[2], json!(users.len()), "{day} {verb}");
    }
}

#[test]
fn row_pipes_and_paging_apply_after_stats() {
    let (_d, s, _) = setup();
    let pipes = vec![
        Pipe::Stats {
            aggs: vec![agg(AggFunc::Count, None, "count")],
            by: vec!["user.name".into()],
        },
        Pipe::Sort(vec![SortKey {
            field: "user.name".into(),
            descending: false,
        }]),
        Pipe::Head(5),
    ];
    let response = run(
        &s,
        Query {
            filter: Filter::All,
            pipes: pipes.clone(),
        },
        2,
        1,
    );
    let rows = response.rows.expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], json!("user1"));
    assert_eq!(rows[1][0], json!("user2"));
}

#[test]
fn too_many_groups_is_refused() {
    let events = corpus(200);
    let (_d, s) = store_with(StoreConfig {
        max_groups: 10,
        ..StoreConfig::default()
    });
    fill(&s, &events);
    let err = s
        .search(&crowsnest_store::SearchRequest {
            query: Query {
                filter: Filter::All,
                pipes: vec![Pipe::Stats {
                    aggs: vec![agg(AggFunc::Count, None, "count")],
                    by: vec!["id".into()],
                }],
            },
            start: None,
            end: None,
            limit: 10,
            offset: 0,
        })
        .expect_err("too many groups");
    assert!(matches!(err, StoreError::InvalidQuery(m) if m.contains("more than 10 groups")));
}

#[test]
fn aggregating_full_text_is_refused() {
    let (_d, s, _) = setup();
    let err = s
        .search(&crowsnest_store::SearchRequest {
            query: Query {
                filter: Filter::All,
                pipes: vec![Pipe::Stats {
                    aggs: vec![agg(AggFunc::Count, None, "count")],
                    by: vec!["message".into()],
                }],
            },
            start: None,
            end: None,
            limit: 10,
            offset: 0,
        })
        .expect_err("refused");
    assert!(matches!(err, StoreError::InvalidQuery(m) if m.contains("full text")));
}

#[test]
fn single_keyword_count_fast_path_counts_multi_values_once_per_event() {
    let (_d, s, events) = setup();
    let (_, rows, _) = table(
        &s,
        Filter::All,
        vec![Pipe::Stats {
            aggs: vec![agg(AggFunc::Count, None, "count")],
            by: vec!["roles".into()],
        }],
    );
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        let roles: BTreeSet<&str> = e["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for role in roles {
            *expected.entry(role.into()).or_default() += 1;
        }
    }
    let got: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().expect("role").into(),
                r[1].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(got, expected);
}
