//! Differential test: the in-memory [`Matcher`] against the store's search.
//!
//! ~200 varied events (nested and dotted keys, arrays of scalars and of objects, ints, floats,
//! huge unsigned numbers, bools, numeric strings, empty and over-long keywords, text with
//! punctuation, unicode, long tokens, several timestamp formats over three days) are indexed
//! in a temp store. For every query of a hand-written list covering each construct, and for
//! random combinations of them, the set of events search returns must equal the set the
//! matcher accepts, and both must refuse the same queries.

mod common;

use common::*;
use crowsnest_model::Event;
use crowsnest_query::{Filter, RangeBound, Scalar};
use crowsnest_store::{Matcher, SearchRequest, Store, StoreConfig};
use serde_json::{json, Value};

/// A small deterministic generator (splitmix64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const LONG_TOKEN: &str = "abcdefghijabcdefghijabcdefghijabcdefghijXYZ";

fn long_name(last: char) -> String {
    format!("{}{last}", "L".repeat(600))
}

fn names() -> Vec<String> {
    let mut names: Vec<String> = [
        "alice",
        "Alice",
        "bob",
        "system:serviceaccount:kube-system:default",
        "system:kube-scheduler",
        "Zoë",
        "",
        "x y",
        "5",
        "5.0",
        "true",
        "a*b",
        "東京",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push(long_name('a'));
    names.push(long_name('b'));
    names
}

const WORDS: [&str; 18] = [
    "Login",
    "failed",
    "for",
    "alice",
    "Zoë",
    "naïve",
    "ÉCOLE",
    "10.0.0.1",
    "pod/web-1",
    "kube-system",
    "GET",
    "/api/v1/pods",
    LONG_TOKEN,
    "ok!",
    "don't",
    "東京",
    "straße",
    "42",
];

fn sentence(rng: &mut Rng, max: usize) -> String {
    let separators = [" ", ", ", " - ", ": ", "  "];
    let n = rng.below(max + 1);
    let mut text = String::new();
    for i in 0..n {
        if i > 0 {
            let separator: &&str = rng.pick(&separators);
            text.push_str(separator);
        }
        let word: &&str = rng.pick(&WORDS);
        text.push_str(word);
    }
    text
}

fn timestamp(rng: &mut Rng) -> Value {
    let day = rng.below(3) + 1;
    let (h, m, s) = (rng.below(24), rng.below(60), rng.below(60));
    let micros = if rng.chance(50) {
        0
    } else {
        rng.below(1_000_000)
    };
    match rng.below(4) {
        0 => json!(format!("2024-03-0{day}T{h:02}:{m:02}:{s:02}.{micros:06}Z")),
        1 => json!(format!("2024-03-0{day} {h:02}:{m:02}:{s:02}")),
        2 => json!(format!("2024-03-0{day}T{h:02}:{m:02}:{s:02}+02:00")),
        _ => {
            let base = chrono::DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z")
                .expect("base")
                .timestamp();
            let secs = base + (day as i64 - 1) * 86_400 + (h * 3600 + m * 60 + s) as i64;
            json!(secs)
        }
    }
}

/// One varied event; `seq` identifies it in hits.
fn event(rng: &mut Rng, seq: usize) -> Value {
    let names = names();
    let mut e = json!({"@timestamp": timestamp(rng), "seq": seq});
    if rng.chance(80) {
        let name = rng.pick(&names).clone();
        if rng.chance(50) {
            e["user"] = json!({"name": name});
        } else {
            e["user.name"] = json!(name);
        }
    }
    if rng.chance(70) {
        e["n"] = match rng.below(5) {
            0 => json!(rng.below(10) as i64 - 3),
            1 => json!(rng.below(10) as f64 + 0.5),
            2 => json!(-(rng.below(5) as f64) - 0.25),
            3 => json!([rng.below(6), rng.below(6) as f64 + 0.5]),
            _ => json!(rng.below(10) as f64),
        };
    }
    if rng.chance(60) {
        e["count"] = json!(rng.below(8));
    }
    if rng.chance(10) {
        e["big"] = if rng.chance(50) {
            json!(u64::MAX)
        } else {
            json!(9_223_372_036_854_775_808u64)
        };
    }
    if rng.chance(50) {
        e["flag"] = json!(rng.chance(50));
    }
    if rng.chance(50) {
        e["code"] = match rng.below(3) {
            0 => json!(200),
            1 => json!("200"),
            _ => json!("404"),
        };
    }
    if rng.chance(50) {
        let tags: Vec<&str> = (0..rng.below(4))
            .map(|_| *rng.pick(&["x", "y", "Z", "x y", "xy", ""]))
            .collect();
        e["tags"] = json!(tags);
    }
    if rng.chance(40) {
        let procs: Vec<Value> = (0..rng.below(3) + 1)
            .map(|_| json!({"pid": rng.below(5), "name": rng.pick(&["sh", "bash", "curl"])}))
            .collect();
        e["procs"] = json!(procs);
    }
    if rng.chance(40) {
        let app = *rng.pick(&["web", "db", "Web"]);
        if rng.chance(50) {
            e["k8s"] = json!({"labels": {"app.kubernetes.io/name": app}});
        } else {
            e["k8s.labels"] = json!({"app.kubernetes.io/name": app, "tier": null});
        }
    }
    match rng.below(10) {
        0 => {}
        1 => e["message"] = Value::Null,
        2 => e["message"] = json!({"nested": "Inner TEXT", "n": 7}),
        3 => e["message"] = json!(12345),
        _ => e["message"] = json!(sentence(rng, 6)),
    }
    match rng.below(4) {
        0 => e["event"] = json!({"original": sentence(rng, 8), "dataset": "a.b"}),
        1 => e["event.original"] = json!(sentence(rng, 8)),
        2 => e["event"] = json!({"original": {"nested": "raw"}}),
        _ => e["event"] = json!({"dataset": *rng.pick(&["a.b", "k8s.audit"])}),
    }
    if rng.chance(10) {
        e["message.x"] = json!("dotted");
    }
    e
}

fn events(seed: u64) -> Vec<Value> {
    let mut rng = Rng(seed);
    let mut events: Vec<Value> = (0..200).map(|i| event(&mut rng, i)).collect();
    // Many leaves: only the first `MAX_LEAVES` are indexed.
    let mut wide = json!({"@timestamp": "2024-03-02T05:00:00Z", "seq": 200});
    let many: Vec<usize> = (0..crowsnest_store::MAX_LEAVES + 20).collect();
    wide["many"] = json!(many);
    wide["after"] = json!("late");
    events.push(wide);
    // Edge cases: exact instants and microseconds, a long token between two words, -0.0,
    // the same path spelled nested and dotted in one event, arrays of arrays.
    let fixed = [
        json!({"@timestamp": "2024-03-01T00:00:00Z", "n": -0.0}),
        json!({"@timestamp": "2024-03-02T00:00:00.4Z", "message": format!("Login for {LONG_TOKEN} alice")}),
        json!({"@timestamp": "2024-03-02T00:00:00.5Z", "a.b": "1", "a": {"b": "2", "c": [[1, 2], [3]]}}),
        json!({"@timestamp": "2024-03-02T00:00:00.500001Z", "k8s.lab": "no", "message": "for alice"}),
    ];
    for (i, mut e) in fixed.into_iter().enumerate() {
        e["seq"] = json!(201 + i);
        events.push(e);
    }
    events
}

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
    let mut seqs: Vec<u64> = response
        .hits
        .iter()
        .map(|h| h["seq"].as_u64().expect("seq"))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
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

/// True for a range with a non-integral numeric bound (see
/// `non_integral_bounds_on_integer_columns`: wrong in the store on integer-only segments).
fn has_fractional_bound(filter: &Filter) -> bool {
    let fractional = |b: &RangeBound| matches!(b, RangeBound::Inclusive(Scalar::Number(n)) | RangeBound::Exclusive(Scalar::Number(n)) if n.fract() != 0.0);
    matches!(filter, Filter::Range { lower, upper, .. } if fractional(lower) || fractional(upper))
}

/// Indexes the events of `seed` in `commits` commits (one segment each), then compares search
/// and matcher on the listed queries and `random` random trees of them.
fn differential(seed: u64, random: usize, commits: usize) -> Outcome {
    let events_json = events(seed);
    let (_dir, store) = store_with(StoreConfig::default());
    let batch: Vec<(u64, Event)> = events_json
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, ev(e.clone())))
        .collect();
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
    let mut listed = listed_queries();
    if commits > 1 {
        // Small segments hold integer-only `n` columns: leave out the known store bug.
        listed.retain(|f| !has_fractional_bound(f));
    }
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

/// Known store bug (tantivy 0.25 `transform_from_f64_bounds`): a non-integral numeric bound on
/// a path whose values in a segment are all integers is truncated toward zero and made
/// inclusive, so `count:>=2.5` also returns `count: 2` and `count:<=-0.5` returns `count: 0`.
/// The matcher answers the documented semantics; this test shows the disagreement and will
/// pass once `filter.rs` works around it.
#[test]
#[ignore = "store bug: non-integral range bounds on integer-only columns (see report)"]
fn non_integral_bounds_on_integer_columns() {
    let events: Vec<Value> = (0..6)
        .map(|i| json!({"@timestamp": "2024-03-01T00:00:00Z", "seq": i, "count": i as i64 - 2}))
        .collect();
    let (_dir, store) = store_with(StoreConfig::default());
    fill(&store, &events);
    let parsed: Vec<Event> = events.iter().map(|e| ev(e.clone())).collect();
    for text in ["count:>=2.5", "count:>0.5", "count:<=-0.5", "count:<-1.5"] {
        let filter = q(text).filter;
        assert_eq!(
            search_seqs(&store, &filter),
            matcher_seqs(&parsed, &filter),
            "{text}"
        );
    }
}
