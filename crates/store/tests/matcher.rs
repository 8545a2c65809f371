//! [`Matcher`] construct by construct, without a store (the differential test compares it with
//! search; these pin down each rule on small events).

use crowsnest_model::Event;
use crowsnest_query::{Filter, RangeBound, Scalar};
use crowsnest_store::{Matcher, StoreError, MAX_KEYWORD_BYTES, MAX_LEAVES};
use serde_json::{json, Value};

fn ev(value: Value) -> Event {
    serde_json::from_value(value).expect("event object")
}

fn matcher(query: &str) -> Matcher {
    let filter = crowsnest_query::parse(query).expect("query").filter;
    Matcher::new(&filter).expect("matcher")
}

/// Which of `events` the query accepts, by index.
fn accepted(query: &str, events: &[Value]) -> Vec<usize> {
    let m = matcher(query);
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| m.matches(&ev((*e).clone())))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn keywords_are_exact_and_case_sensitive() {
    let events = [
        json!({"user": {"name": "alice"}}),
        json!({"user": {"name": "Alice"}}),
        json!({"user": {"name": "alice smith"}}),
        json!({"user": {"id": "alice"}}),
    ];
    assert_eq!(accepted("user.name:alice", &events), vec![0]);
    assert_eq!(accepted("user.name:\"alice smith\"", &events), vec![2]);
    assert_eq!(accepted("user.name:smith", &events), Vec::<usize>::new());
}

#[test]
fn dotted_nested_and_array_shapes_are_one_path() {
    let events = [
        json!({"a.b": "x"}),
        json!({"a": {"b": "x"}}),
        json!({"a": [{"b": "y"}, {"b": "x"}]}),
        json!({"a": {"b.c": "x"}}),
        json!({"a": {"b": {"c": "x"}}}),
        json!({"ab": "x"}),
    ];
    assert_eq!(accepted("a.b:x", &events), vec![0, 1, 2]);
    assert_eq!(accepted("a.b.c:x", &events), vec![3, 4]);
}

#[test]
fn odd_keys_resolve_like_the_index() {
    let term = |field: &str| {
        Matcher::new(&Filter::Term {
            field: Some(field.into()),
            value: "x".into(),
        })
        .expect("matcher")
    };
    // A top-level "" adds no path segment; a nested one does.
    let blank = ev(json!({"": {"b": "x"}, "a": {"": {"c": "x"}}}));
    assert!(term("b").matches(&blank));
    assert!(!term(".b").matches(&blank));
    assert!(term("a..c").matches(&blank));
    // Query paths lose their backslash escapes (an escaped dot still separates).
    let slashed = ev(json!({"ab": "x", "a\\c": "x", "d.e": "x"}));
    assert!(term("a\\b").matches(&slashed));
    assert!(term("a\\\\c").matches(&slashed));
    assert!(!term("a\\c").matches(&slashed));
    assert!(term("d\\.e").matches(&slashed));
}

#[test]
fn numbers_and_bools_match_the_text_that_spells_them() {
    let events = [
        json!({"n": 5}),
        json!({"n": 5.0}),
        json!({"n": "5"}),
        json!({"n": "5.0"}),
        json!({"n": true}),
        json!({"n": "true"}),
        json!({"n": -0.0}),
        json!({"n": 18_446_744_073_709_551_615u64}),
    ];
    assert_eq!(accepted("n:5", &events), vec![0, 1, 2]);
    assert_eq!(accepted("n:5.0", &events), vec![0, 1, 3]);
    assert_eq!(accepted("n:\"5\"", &events), vec![2]);
    assert_eq!(accepted("n:true", &events), vec![4, 5]);
    // The index tells -0.0 from 0.0.
    assert_eq!(accepted("n:0", &events), Vec::<usize>::new());
    assert_eq!(accepted("n:-0.0", &events), vec![6]);
    assert_eq!(accepted("n:18446744073709551615", &events), vec![7]);
}

#[test]
fn arrays_match_when_any_element_does() {
    let events = [
        json!({"tags": ["x", "y"]}),
        json!({"tags": [["z"], ["x"]]}),
        json!({"tags": []}),
        json!({"tags": "xy"}),
    ];
    assert_eq!(accepted("tags:x", &events), vec![0, 1]);
    assert_eq!(accepted("tags:*", &events), vec![0, 1, 3]);
}

#[test]
fn full_text_and_timestamp_subtrees_are_not_keywords() {
    let events = [
        json!({"event": {"original": {"x": "y"}}}),
        json!({"event.original": {"x": "y"}}),
        json!({"message.x": "y"}),
        json!({"message": {"x": "y"}}),
    ];
    assert_eq!(accepted("event.original.x:y", &events), Vec::<usize>::new());
    assert_eq!(accepted("message.x:y", &events), vec![2]);
    // ... but a structured message is full text: its JSON is tokenized.
    assert_eq!(accepted("message:y", &events), vec![3]);
    assert_eq!(accepted("_exists_:event", &events), Vec::<usize>::new());
}

#[test]
fn long_keywords_compare_capped_like_the_index() {
    let prefix = "L".repeat(MAX_KEYWORD_BYTES);
    let events = [
        json!({"k": format!("{prefix}a")}),
        json!({"k": format!("{prefix}b")}),
        json!({"k": prefix.clone()}),
        json!({"k": "L".repeat(MAX_KEYWORD_BYTES - 1)}),
    ];
    let query = Filter::Term {
        field: Some("k".into()),
        value: format!("{prefix}zzz"),
    };
    let m = Matcher::new(&query).expect("matcher");
    let hits: Vec<usize> = (0..events.len())
        .filter(|i| m.matches(&ev(events[*i].clone())))
        .collect();
    assert_eq!(hits, vec![0, 1, 2]);
}

#[test]
fn free_text_phrases_need_consecutive_message_tokens() {
    let long = "x".repeat(45);
    let events = [
        json!({"message": "Login FAILED for Zoë"}),
        json!({"message": "failed: login"}),
        json!({"event": {"original": "failed to login"}}),
        json!({"message": format!("login {long} failed")}),
        json!({"message": 12345}),
    ];
    assert_eq!(accepted("zoë", &events), vec![0]);
    assert_eq!(accepted("\"login failed\"", &events), vec![0, 2]);
    assert_eq!(accepted("message:\"failed login\"", &events), vec![1]);
    // The raw text keeps no positions: all words, any order.
    assert_eq!(
        accepted("event.original:\"login failed\"", &events),
        vec![2]
    );
    // A dropped long token still takes a position: "login failed" is not adjacent in 3.
    assert_eq!(accepted("message:\"login failed\"", &events), vec![0]);
    assert_eq!(accepted("message:12345", &events), vec![4]);
    assert_eq!(accepted("\"--\"", &events), Vec::<usize>::new());
}

#[test]
fn wildcards_on_keywords_are_case_sensitive_on_text_lowercased() {
    let events = [
        json!({"user": {"name": "system:kube-scheduler"}, "message": "Refreshing Token"}),
        json!({"user": {"name": "System:x"}, "message": "token*"}),
        json!({"user": {"name": "a*b"}}),
    ];
    assert_eq!(accepted("user.name:system\\:*", &events), vec![0]);
    assert_eq!(accepted("user.name:?ystem*", &events), vec![0, 1]);
    assert_eq!(accepted("user.name:a\\*b", &events), vec![2]);
    assert_eq!(accepted("user.name:a\\*?", &events), vec![2]);
    assert_eq!(accepted("REFRESH*", &events), vec![0]);
    assert_eq!(accepted("message:tok?n", &events), vec![0, 1]);
}

#[test]
fn exists_sees_any_value_at_or_below_the_path() {
    let events = [
        json!({"k8s": {"labels": {"app": "web"}}}),
        json!({"k8s.labels": {"tier": null}}),
        json!({"k8s.lab": "x"}),
        json!({"k8s": {"labels": []}}),
        json!({"k8s.labels.app": 1}),
        json!({"message": null, "event": {"original": "raw"}}),
        json!({"message": {"a": 1}}),
    ];
    assert_eq!(accepted("_exists_:k8s.labels", &events), vec![0, 4]);
    assert_eq!(accepted("k8s:*", &events), vec![0, 2, 4]);
    assert_eq!(accepted("_exists_:message", &events), vec![6]);
    assert_eq!(accepted("_exists_:event.original", &events), vec![5]);
    assert_eq!(accepted("_exists_:@timestamp", &events).len(), events.len());
}

#[test]
fn ranges_on_numbers_strings_and_time() {
    let events = [
        json!({"@timestamp": "2024-03-01T00:00:00Z", "n": 1, "s": "apple"}),
        json!({"@timestamp": "2024-03-01 12:00:00", "n": 2.5, "s": "Banana"}),
        json!({"@timestamp": 1_709_337_600, "n": [3, 10], "s": "cherry"}),
        json!({"@timestamp": "2024-03-02T00:00:00.000001Z", "n": "2", "s": 5}),
    ];
    assert_eq!(accepted("n:[1 TO 3]", &events), vec![0, 1, 2]);
    assert_eq!(accepted("n:{1 TO 3}", &events), vec![1]);
    assert_eq!(accepted("n:>=2.5", &events), vec![1, 2]);
    assert_eq!(accepted("n:>5", &events), vec![2]);
    assert_eq!(accepted("s:[a TO c]", &events), vec![0]);
    assert_eq!(accepted("s:>=B", &events), vec![0, 1, 2]);
    assert_eq!(
        accepted("@timestamp:<2024-03-02T00:00:00Z", &events),
        vec![0, 1]
    );
    assert_eq!(
        accepted("@timestamp:[2024-03-02T00:00:00Z TO *]", &events),
        vec![2, 3]
    );
    assert_eq!(
        accepted("@timestamp:\"2024-03-02T00:00:00Z\"", &events),
        vec![2]
    );
    let epoch = Filter::Range {
        field: "@timestamp".into(),
        lower: RangeBound::Exclusive(Scalar::Number(1_709_294_400.0)),
        upper: RangeBound::Unbounded,
    };
    let m = Matcher::new(&epoch).expect("matcher");
    assert!(!m.matches(&ev(events[1].clone())));
    assert!(m.matches(&ev(events[2].clone())));
}

#[test]
fn boolean_structure() {
    let events = [
        json!({"a": "1", "b": "1"}),
        json!({"a": "1"}),
        json!({"b": "1"}),
        json!({}),
    ];
    assert_eq!(accepted("a:1 AND b:1", &events), vec![0]);
    assert_eq!(accepted("a:1 OR b:1", &events), vec![0, 1, 2]);
    assert_eq!(accepted("NOT a:1", &events), vec![2, 3]);
    assert_eq!(accepted("*", &events), vec![0, 1, 2, 3]);
    let never = Matcher::new(&Filter::Or(vec![])).expect("matcher");
    assert!(!never.matches(&ev(json!({"a": "1"}))));
    let always = Matcher::new(&Filter::And(vec![])).expect("matcher");
    assert!(always.matches(&ev(json!({}))));
}

#[test]
fn only_the_first_leaves_of_a_wide_event_count() {
    let many: Vec<usize> = (0..MAX_LEAVES + 10).collect();
    let event = ev(json!({"first": "yes", "many": many, "after": "late"}));
    assert!(matcher("first:yes").matches(&event));
    assert!(matcher(&format!("many:{}", MAX_LEAVES - 2)).matches(&event));
    assert!(!matcher(&format!("many:{}", MAX_LEAVES - 1)).matches(&event));
    assert!(!matcher("after:late").matches(&event));
    assert!(!matcher("_exists_:after").matches(&event));
}

#[test]
fn refuses_what_search_refuses() {
    for (query, expected) in [
        ("message:[a TO b]", "full-text field `message`"),
        ("n:[1 TO b]", "mixes a number and text"),
        ("@timestamp:yesterday", "is not a time"),
        ("@timestamp:[2024-01-01T00:00:00Z TO soon]", "is not a time"),
        ("@timestamp:20*", "wildcards on `@timestamp`"),
    ] {
        let filter = crowsnest_query::parse(query).expect("query").filter;
        match Matcher::new(&filter) {
            Err(StoreError::InvalidQuery(message)) => {
                assert!(message.contains(expected), "{query}: {message}")
            }
            other => panic!("{query}: expected an invalid query, got {other:?}"),
        }
    }
    let infinite = Filter::Range {
        field: "n".into(),
        lower: RangeBound::Inclusive(Scalar::Number(f64::INFINITY)),
        upper: RangeBound::Unbounded,
    };
    assert!(Matcher::new(&infinite).is_err());
    // Both bounds open is `exists`, even on a full-text field.
    let open = Filter::Range {
        field: "message".into(),
        lower: RangeBound::Unbounded,
        upper: RangeBound::Unbounded,
    };
    assert!(Matcher::new(&open).is_ok());
}

#[test]
fn matcher_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Matcher>();
}
