//! Differential test: the in-memory [`Matcher`] against the store's search.
//!
//! ~200 varied events (nested and dotted keys, arrays of scalars and of objects, ints, floats,
//! huge unsigned numbers, bools, numeric strings, empty and over-long keywords, text with
//! punctuation, unicode, long tokens, several timestamp formats over three days) are indexed
//! in a temp store. For every query of a hand-written list covering each construct, and for
//! random combinations of them, the set of events search returns must equal the set the
//! matcher accepts, and both must refuse the same queries.

mod common;
mod matcher_gen;

use common::*;
use crowsnest_model::Event;
use crowsnest_query::{Filter, RangeBound, Scalar};
use crowsnest_store::{Matcher, SearchRequest, Store, StoreConfig};
use matcher_gen::{events, long_name, Rng, LONG_TOKEN};
use serde_json::{json, Value};

/// The hand-written queries: each construct and its edge cases.
fn listed_queries() -> Vec<Filter> {
    let texts = [
        "*",
        "alice",
        "ALICE",
        "Zoë",
        "zoë",
        "ÉCOLE",
        "école",
        "\"login failed\"",
        "\"failed login\"",
        "\"10.0.0.1\"",
        "\"0 0 1\"",
        "message:alice",
        "message:\"for alice\"",
        "message:\"straße 42\"",
        "message:inner",
        "message:12345",
        "event.original:\"failed login\"",
        "event.original:raw",
        "user.name:alice",
        "user.name:Alice",
        "user.name:\"x y\"",
        "user.name:5",
        "user.name:5.0",
        "user.name:true",
        "user.name:\"\"",
        "user.name:system\\:*",
        "user.name:*o*",
        "user.name:?ob",
        "user.name:a\\*b",
        "user.name:*",
        "user.name:[a TO c}",
        "user.name:>=Z",
        "n:1",
        "n:1.5",
        "n:-3",
        "n:[0 TO 3]",
        "n:{0 TO 3}",
        "n:>=4.5",
        "n:<-0.25",
        "n:<=-0.25",
        "n:[-1.5 TO 2.5]",
        "count:>5",
        "count:[2 TO 4}",
        "count:3",
        "count:3.0",
        "big:18446744073709551615",
        "big:>1e19",
        "big:<=9223372036854775808",
        "flag:true",
        "flag:false",
        "code:200",
        "code:\"200\"",
        "code:[\"200\" TO \"300\"]",
        "tags:x",
        "tags:\"x y\"",
        "tags:\"\"",
        "tags:x*",
        "tags:*",
        "procs.pid:2",
        "procs.name:ba*",
        "procs:*",
        "k8s.labels.app.kubernetes.io/name:web",
        "k8s.labels.app.kubernetes.io/name:w*",
        "k8s.labels.tier:*",
        "k8s:*",
        "event:*",
        "event.dataset:a.b",
        "message.x:dotted",
        "_exists_:message",
        "_exists_:event.original",
        "_exists_:@timestamp",
        "@timestamp:[2024-03-02T00:00:00Z TO *]",
        "@timestamp:<2024-03-01T12:00:00Z",
        "@timestamp:>=2024-03-02T00:00:00.5Z",
        "@timestamp:{2024-03-01 TO 2024-03-02}",
        "@timestamp:\"2024-03-01T00:00:00Z\"",
        "log*",
        "*be*",
        "n:4.0",
        "n:0",
        "n:-0.0",
        "a.b:1",
        "a.b:2",
        "a.c:3",
        "a:*",
        "_exists_:k8s.labels",
        "_exists_:k8s.lab",
        "_exists_:message.x",
        "_exists_:user",
        "event.original.nested:raw",
        "message:nested",
        "@timestamp:1709251200",
        "@timestamp:{2024-03-01T06:00:00Z TO 2024-03-02T00:00:00.5Z}",
        "@timestamp:[2024-03-02T00:00:00.4Z TO 2024-03-02T00:00:00.5Z]",
        "tags:[x TO y]",
        "user.name:>東",
        "message:stra?e",
        "message:東*",
        "event.original:pod*",
        "after:late",
        "many:1005",
        "many:3",
        "NOT user.name:alice",
        "user.name:alice OR flag:true",
        "(n:[0 TO 3] AND NOT flag:false) OR code:200",
        "seq:[10 TO 20] AND -tags:*",
        "n:[0.5 TO 3]",
        "n:[-1 TO 2.5}",
        "big:[1 TO 1e19]",
        "n:[-1 TO 1e16]",
        "event.id:ev-5",
        "event.id:ev-1*",
        "event.id:5",
        "event.id:5.0",
        "event.id:[10 TO 20]",
        "event.id:{10 TO 20]",
        "event.id:>=150.5",
        "event.id:<3.5",
        "event.id:{\"ev-1\" TO \"ev-3\"}",
        "event.id:*",
        "_exists_:event.id",
        "_exists_:event.id.inner",
        "event.id.inner:x",
        "event.ingested:[2024-03-02 TO 2024-03-03]",
        "event.ingested:2024-03-01*",
        "event.ingested:\"2024-03-01T00:00:05Z\"",
        "_exists_:event.ingested",
        "k8s.audit.auditID:a-3",
        "k8s.audit.objectRef.resourceVersion:[\"1\" TO \"3\"]",
        "k8s.audit.objectRef.resourceVersion:>100",
        "k8s.audit.objectRef.resourceVersion:10",
        "_exists_:k8s.audit",
        "_exists_:k8s.audit.objectRef",
        "k8s.audit:*",
    ];
    let mut filters: Vec<Filter> = texts.iter().map(|t| q(t).filter).collect();
    let long = |c| Filter::Term {
        field: Some("user.name".into()),
        value: long_name(c),
    };
    filters.push(long('a'));
    filters.push(long('z'));
    filters.push(Filter::Phrase {
        field: None,
        text: format!("{LONG_TOKEN} alice"),
    });
    filters.push(Filter::Term {
        field: None,
        value: "--".into(),
    });
    for (field, pattern) in [
        (Some("user.name"), "*"),
        (Some("message"), "*"),
        (None, "4?"),
    ] {
        filters.push(Filter::Wildcard {
            field: field.map(String::from),
            pattern: pattern.into(),
        });
    }
    filters.push(Filter::Or(vec![]));
    filters.push(Filter::And(vec![]));
    filters.push(Filter::Range {
        field: "@timestamp".into(),
        lower: RangeBound::Inclusive(Scalar::Number(1_709_337_600.0)),
        upper: RangeBound::Unbounded,
    });
    filters.push(Filter::Range {
        field: "message".into(),
        lower: RangeBound::Unbounded,
        upper: RangeBound::Unbounded,
    });
    // Refused by both.
    for text in [
        "message:[a TO b]",
        "@timestamp:20*",
        "@timestamp:yesterday",
        "n:[1 TO b]",
    ] {
        filters.push(q(text).filter);
    }
    filters
}

fn search_seqs(store: &Store, filter: &Filter) -> Result<Vec<u64>, String> {
    let response = store
        .search(&SearchRequest {
            query: fq(filter.clone()),
            start: None,
            end: None,
            limit: 10_000,
            offset: 0,
        })
        .map_err(|e| e.to_string())?;
    Ok(hit_seqs(&response))
}

fn matcher_seqs(events: &[Event], filter: &Filter) -> Result<Vec<u64>, String> {
    let matcher = Matcher::new(filter).map_err(|e| e.to_string())?;
    let mut seqs: Vec<u64> = events
        .iter()
        .filter(|e| matcher.matches(e))
        .map(|e| e.get("seq").and_then(Value::as_u64).expect("seq"))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Random trees over the listed leaves (the refused ones left out).
fn random_filter(rng: &mut Rng, leaves: &[Filter], depth: usize) -> Filter {
    if depth == 0 || rng.chance(30) {
        return rng.pick(leaves).clone();
    }
    match rng.below(3) {
        0 => Filter::Not(Box::new(random_filter(rng, leaves, depth - 1))),
        1 => Filter::And(
            (0..rng.below(3) + 1)
                .map(|_| random_filter(rng, leaves, depth - 1))
                .collect(),
        ),
        _ => Filter::Or(
            (0..rng.below(3) + 1)
                .map(|_| random_filter(rng, leaves, depth - 1))
                .collect(),
        ),
    }
}

/// What one differential run saw.
#[derive(Default)]
struct Outcome {
    failures: Vec<String>,
    nonempty: usize,
    partial: usize,
    refused: usize,
}

/// Indexes the events of `seed` in `commits` commits (one segment each), then compares search
/// and matcher on the listed queries and `random` random trees of them.
fn differential(seed: u64, random: usize, commits: usize) -> Outcome {
    let events_json = events(seed);
    let (_dir, store) = store_with(StoreConfig::default());
    let batch = positioned(&events_json, 1);
    for chunk in batch.chunks(batch.len().div_ceil(commits)) {
        store.add(chunk).expect("add");
        store.commit().expect("commit");
    }
    let events: Vec<Event> = events_json.iter().map(|e| ev(e.clone())).collect();
    assert_eq!(
        search_seqs(&store, &Filter::All).expect("all").len(),
        events.len(),
        "every event is indexed"
    );
    let listed = listed_queries();
    let mut outcome = Outcome::default();
    let mut check = |filter: &Filter| {
        let expected = search_seqs(&store, filter);
        let got = matcher_seqs(&events, filter);
        match &expected {
            Ok(seqs) if !seqs.is_empty() => {
                outcome.nonempty += 1;
                if seqs.len() < events.len() {
                    outcome.partial += 1;
                }
            }
            Err(_) => outcome.refused += 1,
            Ok(_) => {}
        }
        if expected != got {
            outcome.failures.push(format!(
                "seed {seed}: {filter:?}\n  search:  {expected:?}\n  matcher: {got:?}"
            ));
        }
    };
    for filter in &listed {
        check(filter);
    }
    let accepted: Vec<Filter> = listed
        .iter()
        .filter(|f| Matcher::new(f).is_ok())
        .cloned()
        .collect();
    let mut rng = Rng(seed ^ 0xabcd);
    for _ in 0..random {
        check(&random_filter(&mut rng, &accepted, 3));
    }
    outcome
}

#[test]
fn matcher_agrees_with_search_on_every_query() {
    for (seed, commits) in [(0x5eed, 1), (7, 1), (2024, 1), (99, 7)] {
        let outcome = differential(seed, 300, commits);
        assert!(
            outcome.failures.is_empty(),
            "{} disagreements:\n{}",
            outcome.failures.len(),
            outcome.failures.join("\n")
        );
        // The queries exercise something: most select a proper, non-empty subset.
        assert!(outcome.refused >= 4, "refused {}", outcome.refused);
        assert!(outcome.nonempty > 300, "non-empty {}", outcome.nonempty);
        assert!(outcome.partial > 250, "proper subsets {}", outcome.partial);
    }
}

/// tantivy 0.25 (`transform_from_f64_bounds`) truncates a non-integral numeric bound toward
/// zero and makes it inclusive on a segment whose values at the path are all integers, so
/// `count:>=2.5` would also return `count: 2` and `count:<=-0.5` `count: 0`; `filter.rs` rounds
/// such bounds per segment (`NumericRange`). Integer and float segments side by side.
#[test]
fn non_integral_bounds_on_integer_columns() {
    let events: Vec<Value> = (0..6)
        .map(|i| json!({"@timestamp": "2024-03-01T00:00:00Z", "seq": i, "count": i as i64 - 2}))
        .collect();
    let (_dir, store) = store_with(StoreConfig::default());
    fill(&store, &events);
    let floats: Vec<Value> = (6..12)
        .map(|i| json!({"@timestamp": "2024-03-01T00:00:00Z", "seq": i, "count": i as f64 / 2.0 - 4.0}))
        .collect();
    let batch = positioned(&floats, 100);
    store.add(&batch).expect("add floats");
    store.commit().expect("commit floats");
    let parsed: Vec<Event> = events
        .iter()
        .chain(&floats)
        .map(|e| ev(e.clone()))
        .collect();
    for text in [
        "count:>=2.5",
        "count:>0.5",
        "count:<=-0.5",
        "count:<-1.5",
        "count:[-1.5 TO 0.5]",
        "count:{-1.5 TO 0.5}",
        "count:[-0.5 TO 1]",
        "count:>=-1.25",
    ] {
        let filter = q(text).filter;
        assert_eq!(
            search_seqs(&store, &filter),
            matcher_seqs(&parsed, &filter),
            "{text}"
        );
    }
}

/// Random numeric ranges (inclusive/exclusive/open bounds drawn from integers, halves,
/// negatives and values past i64) over paths whose segments hold integer-only, float-only and
/// mixed columns, in `fields` and in `_unique`: search and matcher agree, and nothing panics.
#[test]
fn random_numeric_ranges_agree_on_every_column_type() {
    for seed in [0x0ddba11, 1, 2] {
        numeric_ranges(seed);
    }
}

fn numeric_ranges(seed: u64) {
    let mut rng = Rng(seed);
    let value = |rng: &mut Rng, i: usize| -> Value {
        match rng.below(5) {
            0 => json!(i as f64 / 4.0 - 10.0),
            1 => json!(u64::MAX - i as u64),
            _ => json!(i as i64 - 20),
        }
    };
    // Segment 1: integers only; segment 2: floats only; segment 3: anything.
    let mut events: Vec<Value> = Vec::new();
    for i in 0..40 {
        events.push(json!({"@timestamp": "2024-03-01T00:00:00Z", "seq": i, "x": i as i64 - 20, "event": {"id": i as i64 - 20}}));
    }
    for i in 40..80 {
        events.push(json!({"@timestamp": "2024-03-01T00:00:00Z", "seq": i, "x": i as f64 / 4.0 - 15.0, "event": {"id": i as f64 / 4.0 - 15.0}}));
    }
    for i in 80..120 {
        let v = value(&mut rng, i);
        events.push(json!({"@timestamp": "2024-03-01T00:00:00Z", "seq": i, "x": v.clone(), "event": {"id": v}}));
    }
    let (_dir, store) = store_with(StoreConfig::default());
    let batch = positioned(&events, 1);
    for chunk in batch.chunks(40) {
        store.add(chunk).expect("add");
        store.commit().expect("commit");
    }
    let parsed: Vec<Event> = events.iter().map(|e| ev(e.clone())).collect();
    let candidates = [
        -25.0, -20.0, -10.5, -10.25, -3.0, -0.5, 0.0, 0.5, 2.0, 2.5, 7.75, 19.0, 19.5, 1e16,
        9.3e18, 1.8e19, -1e19,
    ];
    let bound = |rng: &mut Rng| -> RangeBound {
        let n = *rng.pick(&candidates);
        match rng.below(3) {
            0 => RangeBound::Unbounded,
            1 => RangeBound::Inclusive(Scalar::Number(n)),
            _ => RangeBound::Exclusive(Scalar::Number(n)),
        }
    };
    let mut failures = Vec::new();
    let mut nonempty = 0;
    for _ in 0..400 {
        let field = if rng.chance(50) { "x" } else { "event.id" };
        let filter = Filter::Range {
            field: field.into(),
            lower: bound(&mut rng),
            upper: bound(&mut rng),
        };
        let expected = search_seqs(&store, &filter);
        let got = matcher_seqs(&parsed, &filter);
        if matches!(&expected, Ok(s) if !s.is_empty()) {
            nonempty += 1;
        }
        if expected != got {
            failures.push(format!(
                "seed {seed}: {filter:?}\n  search:  {expected:?}\n  matcher: {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(nonempty > 200, "seed {seed}: non-empty {nonempty}");
}
