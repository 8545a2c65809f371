//! The pipe part: every pipe and aggregation, table-driven.

use crowsnest_query::{
    parse, Agg, AggFunc, Filter, Pipe, SortKey, DEFAULT_HEAD, DEFAULT_SPAN_SECS,
};

use crate::{ft, not, wild};

fn pipes(text: &str) -> Vec<Pipe> {
    match parse(text) {
        Ok(q) => q.pipes,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn agg(func: AggFunc, field: Option<&str>, alias: &str) -> Agg {
    Agg {
        func,
        field: field.map(str::to_owned),
        alias: alias.to_owned(),
    }
}

fn count() -> Agg {
    agg(AggFunc::Count, None, "count")
}

fn stats(aggs: Vec<Agg>, by: &[&str]) -> Pipe {
    Pipe::Stats {
        aggs,
        by: by.iter().map(|s| s.to_string()).collect(),
    }
}

fn key(field: &str, descending: bool) -> SortKey {
    SortKey {
        field: field.to_owned(),
        descending,
    }
}

fn check(cases: Vec<(&str, Vec<Pipe>)>) {
    for (text, expected) in cases {
        assert_eq!(pipes(text), expected, "query {text:?}");
    }
}

#[test]
fn issue_example() {
    let q = parse(
        r"kubernetes.namespace:prod AND NOT user.name:system\:* | stats count() by user.name",
    )
    .expect("parses");
    assert_eq!(
        q.filter,
        Filter::And(vec![
            ft("kubernetes.namespace", "prod"),
            not(wild(Some("user.name"), "system:*"))
        ])
    );
    assert_eq!(q.pipes, vec![stats(vec![count()], &["user.name"])]);
    assert!(q.is_tabular());
}

#[test]
fn stats_aggregations_aliases_and_groups() {
    use AggFunc::*;
    check(vec![
        ("| stats count()", vec![stats(vec![count()], &[])]),
        ("| stats count", vec![stats(vec![count()], &[])]),
        ("| STATS COUNT() BY a", vec![stats(vec![count()], &["a"])]),
        (
            "| stats count(user.name)",
            vec![stats(
                vec![agg(Count, Some("user.name"), "count(user.name)")],
                &[],
            )],
        ),
        (
            "| stats dc(user.name)",
            vec![stats(
                vec![agg(Dc, Some("user.name"), "dc(user.name)")],
                &[],
            )],
        ),
        (
            "| stats distinct_count(ip)",
            vec![stats(vec![agg(Dc, Some("ip"), "dc(ip)")], &[])],
        ),
        (
            "| stats min(b), max(b), avg(b), sum(b)",
            vec![stats(
                vec![
                    agg(Min, Some("b"), "min(b)"),
                    agg(Max, Some("b"), "max(b)"),
                    agg(Avg, Some("b"), "avg(b)"),
                    agg(Sum, Some("b"), "sum(b)"),
                ],
                &[],
            )],
        ),
        (
            "| stats count() as n, dc(user.name) as users by kubernetes.namespace, verb",
            vec![stats(
                vec![agg(Count, None, "n"), agg(Dc, Some("user.name"), "users")],
                &["kubernetes.namespace", "verb"],
            )],
        ),
        (
            "| stats count() dc(x) by a b",
            vec![stats(
                vec![count(), agg(Dc, Some("x"), "dc(x)")],
                &["a", "b"],
            )],
        ),
        (
            "| stats count ( x ) AS \"my count\"",
            vec![stats(vec![agg(Count, Some("x"), "my count")], &[])],
        ),
        (
            "|stats count() by @timestamp",
            vec![stats(vec![count()], &["@timestamp"])],
        ),
        (
            "| stats count() by \"by\"",
            vec![stats(vec![count()], &["by"])],
        ),
    ]);
}

#[test]
fn timechart_defaults_and_spans() {
    use AggFunc::*;
    let tc = |span_secs: u64, aggs: Vec<Agg>, by: Option<&str>| Pipe::Timechart {
        span_secs,
        aggs,
        by: by.map(str::to_owned),
    };
    check(vec![
        (
            "| timechart",
            vec![tc(DEFAULT_SPAN_SECS, vec![count()], None)],
        ),
        ("| timechart span=30s", vec![tc(30, vec![count()], None)]),
        (
            "| timechart span=5m count() by host.name",
            vec![tc(300, vec![count()], Some("host.name"))],
        ),
        ("| timechart span=2h", vec![tc(7_200, vec![count()], None)]),
        (
            "| timechart span=1d dc(user.name)",
            vec![tc(
                86_400,
                vec![agg(Dc, Some("user.name"), "dc(user.name)")],
                None,
            )],
        ),
        (
            "| timechart by verb",
            vec![tc(DEFAULT_SPAN_SECS, vec![count()], Some("verb"))],
        ),
        ("| timechart span=1min", vec![tc(60, vec![count()], None)]),
        (
            "| timechart span=1h30m",
            vec![tc(5_400, vec![count()], None)],
        ),
        (
            "| timechart span=1w",
            vec![tc(604_800, vec![count()], None)],
        ),
    ]);
    assert_eq!(DEFAULT_SPAN_SECS, 60);
}

#[test]
fn sort_head_fields() {
    check(vec![
        (
            "| sort -count, user.name",
            vec![Pipe::Sort(vec![
                key("count", true),
                key("user.name", false),
            ])],
        ),
        ("| sort +a", vec![Pipe::Sort(vec![key("a", false)])]),
        ("| sort - a", vec![Pipe::Sort(vec![key("a", true)])]),
        (
            "| sort a desc, b asc",
            vec![Pipe::Sort(vec![key("a", true), key("b", false)])],
        ),
        (
            "| sort a DESC b",
            vec![Pipe::Sort(vec![key("a", true), key("b", false)])],
        ),
        ("| sort desc", vec![Pipe::Sort(vec![key("desc", false)])]),
        ("| head", vec![Pipe::Head(DEFAULT_HEAD)]),
        ("| head 3", vec![Pipe::Head(3)]),
        ("| head 0", vec![Pipe::Head(0)]),
        (
            "| fields @timestamp, user.name, message",
            vec![Pipe::Fields(vec![
                "@timestamp".into(),
                "user.name".into(),
                "message".into(),
            ])],
        ),
        (
            "| fields a b",
            vec![Pipe::Fields(vec!["a".into(), "b".into()])],
        ),
        ("| fields + a", vec![Pipe::Fields(vec!["a".into()])]),
        (
            "| fields \"a b\", c\\,d",
            vec![Pipe::Fields(vec!["a b".into(), "c,d".into()])],
        ),
    ]);
    assert_eq!(DEFAULT_HEAD, 10);
}

#[test]
fn pipes_chain_in_order() {
    let q =
        parse("verb:delete | stats count() by user.name | sort -count | head 5 | fields user.name")
            .expect("parses");
    assert_eq!(
        q.pipes,
        vec![
            stats(vec![count()], &["user.name"]),
            Pipe::Sort(vec![key("count", true)]),
            Pipe::Head(5),
            Pipe::Fields(vec!["user.name".into()]),
        ]
    );
    assert!(!parse("verb:delete").expect("parses").is_tabular());
}
