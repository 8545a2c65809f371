//! The filter part: every construct, table-driven.

use crowsnest_query::{parse, Filter, RangeBound, Scalar};

use crate::{exc, exists, ft, inc, inc_text, not, phrase, range, wild, word};

/// Parses `text` and returns its filter, failing the test with the error if it does not parse.
fn filter(text: &str) -> Filter {
    match parse(text) {
        Ok(q) => {
            assert!(
                q.pipes.is_empty(),
                "{text:?} has no pipes, got {:?}",
                q.pipes
            );
            q.filter
        }
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn check(cases: Vec<(&str, Filter)>) {
    for (text, expected) in cases {
        assert_eq!(filter(text), expected, "query {text:?}");
    }
}

#[test]
fn terms_phrases_and_match_all() {
    check(vec![
        ("", Filter::All),
        ("   ", Filter::All),
        ("*", Filter::All),
        ("error", word("error")),
        ("user.name:alice", ft("user.name", "alice")),
        ("@timestamp:2024", ft("@timestamp", "2024")),
        ("kube-system", word("kube-system")),
        (
            "container.image.name:nginx:1.25",
            ft("container.image.name", "nginx:1.25"),
        ),
        ("user.name: alice", ft("user.name", "alice")),
        ("\"disk full\"", phrase(None, "disk full")),
        (
            "message:\"disk full\"",
            phrase(Some("message"), "disk full"),
        ),
        (
            r#"message:"say \"hi\" \\ there""#,
            phrase(Some("message"), r#"say "hi" \ there"#),
        ),
        ("message:\"\"", phrase(Some("message"), "")),
        ("message:\"a | b\"", phrase(Some("message"), "a | b")),
        ("verb:OR", ft("verb", "OR")),
        ("héllo:wörld", ft("héllo", "wörld")),
    ]);
}

#[test]
fn wildcards_exists_and_escapes() {
    check(vec![
        ("user.name:sys*em?", wild(Some("user.name"), "sys*em?")),
        ("sys*", wild(None, "sys*")),
        (
            r"user.name:system\:serviceaccount\:kube-system\:*",
            wild(Some("user.name"), "system:serviceaccount:kube-system:*"),
        ),
        (r"user.name:a\*b*", wild(Some("user.name"), r"a\*b*")),
        (r"user.name:a\?b?", wild(Some("user.name"), r"a\?b?")),
        (r"user.name:a\\b*", wild(Some("user.name"), r"a\\b*")),
        (r"user.name:a\*b", ft("user.name", "a*b")),
        (r"path:C\:\\temp", ft("path", r"C:\temp")),
        (r"\*", word("*")),
        (r"\AND", word("AND")),
        (r"a\ b", word("a b")),
        (r"a\(b\)", word("a(b)")),
        ("user.name:*", exists("user.name")),
        ("_exists_:user.name", exists("user.name")),
        (r"\_exists_:x", ft("_exists_", "x")),
        (
            r"k8s.audit.annotations.authorization\.k8s\.io/decision:allow",
            ft(
                "k8s.audit.annotations.authorization.k8s.io/decision",
                "allow",
            ),
        ),
        (r"weird\ field:x", ft("weird field", "x")),
        (
            r"process.args:\/etc\/shadow",
            ft("process.args", "/etc/shadow"),
        ),
        (
            "process.args:/etc/shadow",
            ft("process.args", "/etc/shadow"),
        ),
        (
            r"process.args:stratum\+tcp\:\/\/*",
            wild(Some("process.args"), "stratum+tcp://*"),
        ),
    ]);
}

#[test]
fn boolean_operators_and_precedence() {
    let a = || word("a");
    let b = || word("b");
    let c = || word("c");
    check(vec![
        ("a AND b", Filter::And(vec![a(), b()])),
        ("a && b", Filter::And(vec![a(), b()])),
        ("a and b", Filter::And(vec![a(), b()])),
        ("a b", Filter::And(vec![a(), b()])),
        ("a OR b", Filter::Or(vec![a(), b()])),
        ("a || b", Filter::Or(vec![a(), b()])),
        ("a or b", Filter::Or(vec![a(), b()])),
        ("a||b", Filter::Or(vec![a(), b()])),
        ("NOT a", not(a())),
        ("not a", not(a())),
        ("!a", not(a())),
        ("! a", not(a())),
        ("-a", not(a())),
        ("+a", a()),
        ("NOT NOT a", not(not(a()))),
        (
            "a OR b AND c",
            Filter::Or(vec![a(), Filter::And(vec![b(), c()])]),
        ),
        (
            "a AND b OR c",
            Filter::Or(vec![Filter::And(vec![a(), b()]), c()]),
        ),
        (
            "a b OR c",
            Filter::Or(vec![Filter::And(vec![a(), b()]), c()]),
        ),
        ("NOT a AND b", Filter::And(vec![not(a()), b()])),
        ("NOT a OR b", Filter::Or(vec![not(a()), b()])),
        ("a NOT b", Filter::And(vec![a(), not(b())])),
        ("a -b +c", Filter::And(vec![a(), not(b()), c()])),
        (
            "(a OR b) c",
            Filter::And(vec![Filter::Or(vec![a(), b()]), c()]),
        ),
        ("NOT (a OR b)", not(Filter::Or(vec![a(), b()]))),
        ("-(a OR b)", not(Filter::Or(vec![a(), b()]))),
        ("a OR b OR c", Filter::Or(vec![a(), b(), c()])),
        ("a AND b AND c", Filter::And(vec![a(), b(), c()])),
        (
            "(a OR b) OR c",
            Filter::Or(vec![Filter::Or(vec![a(), b()]), c()]),
        ),
        ("((a))", a()),
        ("a AND *", Filter::And(vec![a(), Filter::All])),
        ("and:x", ft("and", "x")),
        ("NOT:x", ft("NOT", "x")),
        ("-user.name:x", not(ft("user.name", "x"))),
        ("-\"a b\"", not(phrase(None, "a b"))),
        (
            "ANDROID OR NOTE",
            Filter::Or(vec![word("ANDROID"), word("NOTE")]),
        ),
    ]);
}

#[test]
fn field_groups() {
    check(vec![
        (
            "verb:(get OR list watch)",
            Filter::Or(vec![
                ft("verb", "get"),
                Filter::And(vec![ft("verb", "list"), ft("verb", "watch")]),
            ]),
        ),
        ("verb:(get)", ft("verb", "get")),
        ("verb:(NOT get)", not(ft("verb", "get"))),
        (
            "verb:(-get list)",
            Filter::And(vec![not(ft("verb", "get")), ft("verb", "list")]),
        ),
        (
            "msg:(\"a b\" OR c* OR *)",
            Filter::Or(vec![
                phrase(Some("msg"), "a b"),
                wild(Some("msg"), "c*"),
                exists("msg"),
            ]),
        ),
        (
            "bytes:([1 TO 5] OR >100)",
            Filter::Or(vec![
                range("bytes", inc(1.0), inc(5.0)),
                range("bytes", exc(100.0), RangeBound::Unbounded),
            ]),
        ),
        (
            "@timestamp:(2024-01-01T00:00:00Z OR x:y)",
            Filter::Or(vec![
                ft("@timestamp", "2024-01-01T00:00:00Z"),
                ft("@timestamp", "x:y"),
            ]),
        ),
        (
            "verb:(get OR (list AND watch))",
            Filter::Or(vec![
                ft("verb", "get"),
                Filter::And(vec![ft("verb", "list"), ft("verb", "watch")]),
            ]),
        ),
    ]);
}

#[test]
fn ranges_and_comparisons() {
    let unb = || RangeBound::Unbounded;
    check(vec![
        ("bytes:[10 TO 20]", range("bytes", inc(10.0), inc(20.0))),
        ("bytes:{10 TO 20}", range("bytes", exc(10.0), exc(20.0))),
        ("bytes:[10 TO 20}", range("bytes", inc(10.0), exc(20.0))),
        ("bytes:{10 TO 20]", range("bytes", exc(10.0), inc(20.0))),
        ("bytes:[ 10   TO 20 ]", range("bytes", inc(10.0), inc(20.0))),
        ("bytes:[10 to 20]", range("bytes", inc(10.0), inc(20.0))),
        ("bytes:[* TO 20]", range("bytes", unb(), inc(20.0))),
        ("bytes:{* TO *}", range("bytes", unb(), unb())),
        (
            "bytes:[-1.5 TO 2e3]",
            range("bytes", inc(-1.5), inc(2000.0)),
        ),
        ("bytes:>10", range("bytes", exc(10.0), unb())),
        ("bytes:>=10", range("bytes", inc(10.0), unb())),
        ("bytes:<10", range("bytes", unb(), exc(10.0))),
        ("bytes:<=10", range("bytes", unb(), inc(10.0))),
        ("bytes:>= 10", range("bytes", inc(10.0), unb())),
        (
            "@timestamp:[2024-05-01T10:00:00Z TO 2024-05-02T00:00:00+02:00]",
            range(
                "@timestamp",
                inc_text("2024-05-01T10:00:00Z"),
                inc_text("2024-05-02T00:00:00+02:00"),
            ),
        ),
        (
            "@timestamp:>2024-05-01T10:00:00Z",
            range(
                "@timestamp",
                RangeBound::Exclusive(Scalar::Text("2024-05-01T10:00:00Z".into())),
                unb(),
            ),
        ),
        ("name:[a TO m]", range("name", inc_text("a"), inc_text("m"))),
        (
            "code:[\"10\" TO 20]",
            range("code", inc_text("10"), inc(20.0)),
        ),
        (
            "x:[inf TO NaN]",
            range("x", inc_text("inf"), inc_text("NaN")),
        ),
        (
            "bytes:>10 AND bytes:<20",
            Filter::And(vec![
                range("bytes", exc(10.0), unb()),
                range("bytes", unb(), exc(20.0)),
            ]),
        ),
    ]);
}

#[test]
fn issue_example_filter() {
    let q = parse(
        r"kubernetes.namespace:prod AND NOT user.name:system\:* | stats count() by user.name",
    )
    .expect("the issue's example parses");
    assert_eq!(
        q.filter,
        Filter::And(vec![
            ft("kubernetes.namespace", "prod"),
            not(wild(Some("user.name"), "system:*")),
        ])
    );
}

#[test]
fn filter_stops_at_unquoted_single_pipe_only() {
    let q = parse(r#"message:"a | b" a\|b x || y | head 3"#).expect("parses");
    assert_eq!(
        q.filter,
        Filter::Or(vec![
            Filter::And(vec![
                phrase(Some("message"), "a | b"),
                word("a|b"),
                word("x")
            ]),
            word("y"),
        ])
    );
    assert_eq!(q.pipes.len(), 1);
}

#[test]
fn nesting_up_to_the_limit_parses() {
    let depth = crowsnest_query::MAX_DEPTH;
    let text = format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
    assert_eq!(filter(&text), word("a"));
    let nots = format!("{}a", "NOT ".repeat(depth));
    let mut expected = word("a");
    for _ in 0..depth {
        expected = not(expected);
    }
    assert_eq!(filter(&nots), expected);
}

#[test]
fn term_count_counts_leaves_and_the_words_of_texts() {
    let cases = [
        ("", 0),
        ("*", 0),
        ("a", 1),
        ("a OR b OR c", 3),
        ("user.name:alice AND NOT verb:(get OR list)", 3),
        ("\"disk is full\"", 3),
        ("message:\"disk is full\" bytes:>10 _exists_:x f:ab*", 6),
        ("user.name:system\\:serviceaccount", 2),
        ("\"...\"", 1),
        ("a | stats count() by b", 1),
    ];
    for (text, expected) in cases {
        let query = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(query.term_count(), expected, "{text}");
    }
    let chain = vec!["x"; 70_000].join(" OR ");
    assert_eq!(parse(&chain).expect("parses").term_count(), 70_000);
}

#[test]
fn term_count_walks_trees_deeper_than_the_parser_allows() {
    let mut filter = word("a");
    for _ in 0..3_000 {
        filter = not(Filter::And(vec![filter, word("b")]));
    }
    assert_eq!(filter.term_count(), 3_001);
}
