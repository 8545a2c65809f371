//! Every filter variant against a small corpus.

mod common;

use common::*;
use crowsnest_query::{Filter, RangeBound, Scalar};
use crowsnest_store::{StoreConfig, StoreError};
use serde_json::json;

fn corpus() -> Vec<serde_json::Value> {
    vec![
        json!({"id": 1, "@timestamp": "2024-03-01T10:00:00Z", "kubernetes": {"namespace": "prod"},
               "user": {"name": "alice"}, "http": {"response": {"status_code": 403}},
               "message": "Login failed for alice", "event": {"dataset": "k8s_audit", "action": "get"}}),
        json!({"id": 2, "@timestamp": "2024-03-01T11:00:00Z", "kubernetes": {"namespace": "prod"},
               "user": {"name": "system:serviceaccount:kube-system:default"},
               "http": {"response": {"status_code": 200}}, "message": "token refreshed",
               "event": {"dataset": "k8s_audit", "action": "list"}}),
        json!({"id": 3, "@timestamp": "2024-03-02T09:00:00Z", "kubernetes": {"namespace": "dev"},
               "user": {"name": "bob"}, "http": {"response": {"status_code": 403.0}}, "latency": 1.5,
               "tls": {"established": true}, "message": "access denied"}),
        json!({"id": 4, "@timestamp": "2024-03-02T10:00:00Z", "kubernetes": {"namespace": "prod"},
               "user": {"name": "system:kube-scheduler"}, "http": {"response": {"status_code": "404"}},
               "latency": 0.25, "tls": {"established": false}}),
        json!({"id": 5, "@timestamp": "2024-03-03T08:00:00Z", "kubernetes": {"namespace": "prod"},
               "user": {"name": "carol", "roles": ["admin", "dev"]},
               "k8s": {"audit": {"annotations": {"authorization.k8s.io/decision": "allow"}}},
               "event": {"original": "raw line with Quick Brown fox"}}),
        json!({"id": 6, "@timestamp": "2024-03-03T09:00:00Z", "user": {"name": "Alice"},
               "message": "alice logged out", "count": 12345678901234_i64}),
    ]
}

fn store() -> (tempfile::TempDir, crowsnest_store::Store) {
    let (dir, store) = store_with(StoreConfig::default());
    fill(&store, &corpus());
    (dir, store)
}

fn term(field: &str, value: &str) -> Filter {
    Filter::Term {
        field: Some(field.into()),
        value: value.into(),
    }
}

#[test]
fn keyword_terms_are_exact_and_case_sensitive() {
    let (_d, s) = store();
    assert_eq!(ids(&s, fq(term("user.name", "alice"))), vec![1]);
    assert_eq!(ids(&s, fq(term("user.name", "Alice"))), vec![6]);
    assert_eq!(ids(&s, fq(term("user.name", "ali"))), Vec::<i64>::new());
    assert_eq!(ids(&s, fq(term("user.roles", "dev"))), vec![5]);
    assert_eq!(
        ids(&s, fq(term("kubernetes.namespace", "prod"))),
        vec![1, 2, 4, 5]
    );
}

#[test]
fn numeric_terms_match_numbers_of_any_json_type_and_numeric_strings() {
    let (_d, s) = store();
    // 403 (integer) and 403.0 (float) are the same number.
    assert_eq!(
        ids(&s, fq(term("http.response.status_code", "403"))),
        vec![1, 3]
    );
    // "404" was a string in the event: the string term matches it.
    assert_eq!(
        ids(&s, fq(term("http.response.status_code", "404"))),
        vec![4]
    );
    assert_eq!(ids(&s, fq(term("latency", "1.5"))), vec![3]);
    assert_eq!(ids(&s, fq(term("count", "12345678901234"))), vec![6]);
    assert_eq!(ids(&s, fq(term("tls.established", "true"))), vec![3]);
    assert_eq!(ids(&s, fq(term("tls.established", "false"))), vec![4]);
}

#[test]
fn free_text_is_tokenized_and_lowercased() {
    let (_d, s) = store();
    let text = |v: &str| {
        fq(Filter::Term {
            field: None,
            value: v.into(),
        })
    };
    assert_eq!(ids(&s, text("FAILED")), vec![1]);
    assert_eq!(ids(&s, text("alice")), vec![1, 6]);
    assert_eq!(ids(&s, text("quick")), vec![5]);
    assert_eq!(ids(&s, fq(term("message", "login"))), vec![1]);
    assert_eq!(ids(&s, fq(term("event.original", "brown"))), vec![5]);
    // No token at all matches nothing.
    assert_eq!(ids(&s, text("--")), Vec::<i64>::new());
}

#[test]
fn phrases_need_adjacent_tokens_in_order_in_message() {
    let (_d, s) = store();
    let phrase = |field: Option<&str>, text: &str| {
        fq(Filter::Phrase {
            field: field.map(String::from),
            text: text.into(),
        })
    };
    assert_eq!(ids(&s, phrase(None, "login failed")), vec![1]);
    assert_eq!(ids(&s, phrase(None, "failed login")), Vec::<i64>::new());
    assert_eq!(
        ids(&s, phrase(Some("event.original"), "quick brown")),
        vec![5]
    );
    // The raw event is indexed without positions (for size): a phrase there matches when all
    // of its words are present, in any order.
    assert_eq!(
        ids(&s, phrase(Some("event.original"), "quick fox")),
        vec![5]
    );
    assert_eq!(
        ids(&s, phrase(Some("event.original"), "quick wolf")),
        Vec::<i64>::new()
    );
    assert_eq!(ids(&s, phrase(None, "fox quick")), vec![5]);
    // A phrase on a keyword field is an exact value.
    assert_eq!(
        ids(&s, phrase(Some("user.name"), "system:kube-scheduler")),
        vec![4]
    );
}

#[test]
fn wildcards_on_keywords_and_text() {
    let (_d, s) = store();
    let wild = |field: Option<&str>, pattern: &str| {
        fq(Filter::Wildcard {
            field: field.map(String::from),
            pattern: pattern.into(),
        })
    };
    assert_eq!(ids(&s, wild(Some("user.name"), "system:*")), vec![2, 4]);
    assert_eq!(ids(&s, wild(Some("user.name"), "al*")), vec![1]);
    assert_eq!(ids(&s, wild(Some("user.name"), "?ob")), vec![3]);
    assert_eq!(ids(&s, wild(Some("user.name"), "*o*")), vec![2, 3, 5]);
    assert_eq!(
        ids(&s, wild(Some("kubernetes.namespace"), "*")),
        vec![1, 2, 3, 4, 5]
    );
    // Free-text wildcards run over lowercased tokens.
    assert_eq!(ids(&s, wild(None, "REFRE*")), vec![2]);
    assert_eq!(ids(&s, wild(Some("message"), "log*")), vec![1, 6]);
    // Wildcards on other paths do not leak across paths.
    assert_eq!(
        ids(&s, wild(Some("kubernetes.namespace"), "al*")),
        Vec::<i64>::new()
    );
}

#[test]
fn ranges_on_numbers_strings_and_time() {
    let (_d, s) = store();
    let range = |field: &str, lower: RangeBound, upper: RangeBound| {
        fq(Filter::Range {
            field: field.into(),
            lower,
            upper,
        })
    };
    use RangeBound::{Exclusive, Inclusive, Unbounded};
    let n = Scalar::Number;
    let txt = |v: &str| Scalar::Text(v.into());
    assert_eq!(
        ids(
            &s,
            range(
                "http.response.status_code",
                Inclusive(n(400.0)),
                Inclusive(n(500.0))
            )
        ),
        vec![1, 3]
    );
    assert_eq!(
        ids(
            &s,
            range("http.response.status_code", Exclusive(n(200.0)), Unbounded)
        ),
        vec![1, 3]
    );
    assert_eq!(
        ids(&s, range("latency", Exclusive(n(1.0)), Unbounded)),
        vec![3]
    );
    assert_eq!(
        ids(&s, range("latency", Unbounded, Inclusive(n(0.25)))),
        vec![4]
    );
    assert_eq!(
        ids(
            &s,
            range("user.name", Inclusive(txt("a")), Exclusive(txt("c")))
        ),
        vec![1, 3]
    );
    assert_eq!(
        ids(
            &s,
            range(
                "@timestamp",
                Inclusive(txt("2024-03-01T00:00:00Z")),
                Exclusive(txt("2024-03-02T09:00:00Z"))
            )
        ),
        vec![1, 2]
    );
    assert_eq!(
        ids(
            &s,
            range(
                "@timestamp",
                Inclusive(txt("2024-03-02T09:00:00Z")),
                Inclusive(txt("2024-03-02T10:00:00Z"))
            )
        ),
        vec![3, 4]
    );
    // Both unbounded = exists.
    assert_eq!(ids(&s, range("latency", Unbounded, Unbounded)), vec![3, 4]);
}

#[test]
fn bad_ranges_are_refused_with_a_reason() {
    let (_d, s) = store();
    let request = |filter| crowsnest_store::SearchRequest {
        query: fq(filter),
        start: None,
        end: None,
        limit: 10,
        offset: 0,
    };
    let mixed = Filter::Range {
        field: "latency".into(),
        lower: RangeBound::Inclusive(Scalar::Number(1.0)),
        upper: RangeBound::Inclusive(Scalar::Text("z".into())),
    };
    let err = s.search(&request(mixed)).expect_err("mixed range");
    assert!(matches!(err, StoreError::InvalidQuery(m) if m.contains("mixes")));
    let bad_time = Filter::Range {
        field: "@timestamp".into(),
        lower: RangeBound::Inclusive(Scalar::Text("yesterday".into())),
        upper: RangeBound::Unbounded,
    };
    let err = s.search(&request(bad_time)).expect_err("bad time");
    assert!(matches!(err, StoreError::InvalidQuery(m) if m.contains("expected RFC 3339")));
}

#[test]
fn exists_on_paths_subpaths_and_text() {
    let (_d, s) = store();
    let exists = |field: &str| {
        fq(Filter::Exists {
            field: field.into(),
        })
    };
    assert_eq!(ids(&s, exists("kubernetes.namespace")), vec![1, 2, 3, 4, 5]);
    assert_eq!(ids(&s, exists("kubernetes")), vec![1, 2, 3, 4, 5]);
    assert_eq!(ids(&s, exists("tls.established")), vec![3, 4]);
    assert_eq!(ids(&s, exists("message")), vec![1, 2, 3, 6]);
    assert_eq!(ids(&s, exists("event.original")), vec![5]);
    assert_eq!(ids(&s, exists("@timestamp")), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(ids(&s, exists("nothing.here")), Vec::<i64>::new());
}

#[test]
fn dotted_keys_and_nested_objects_are_one_path() {
    let (_d, s) = store();
    assert_eq!(
        ids(
            &s,
            fq(term(
                "k8s.audit.annotations.authorization.k8s.io/decision",
                "allow"
            ))
        ),
        vec![5]
    );
}

#[test]
fn boolean_combinations_and_the_issue_example() {
    let (_d, s) = store();
    // kubernetes.namespace:prod AND NOT user.name:system\:*
    let issue = Filter::And(vec![
        term("kubernetes.namespace", "prod"),
        Filter::Not(Box::new(Filter::Wildcard {
            field: Some("user.name".into()),
            pattern: "system:*".into(),
        })),
    ]);
    assert_eq!(ids(&s, fq(issue)), vec![1, 5]);
    let or = Filter::Or(vec![term("user.name", "bob"), term("user.name", "carol")]);
    assert_eq!(ids(&s, fq(or)), vec![3, 5]);
    assert_eq!(
        ids(&s, fq(Filter::Not(Box::new(term("user.name", "alice"))))),
        vec![2, 3, 4, 5, 6]
    );
    assert_eq!(ids(&s, fq(Filter::All)), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(ids(&s, fq(Filter::Or(vec![]))), Vec::<i64>::new());
    assert_eq!(ids(&s, fq(Filter::And(vec![]))), vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn parsed_queries_reach_the_same_events() {
    let (_d, s) = store();
    assert_eq!(
        ids(
            &s,
            q(r"kubernetes.namespace:prod AND NOT user.name:system\:*")
        ),
        vec![1, 5]
    );
    assert_eq!(
        ids(&s, q("http.response.status_code:[400 TO 499]")),
        vec![1, 3]
    );
    assert_eq!(ids(&s, q("_exists_:tls")), vec![3, 4]);
}
