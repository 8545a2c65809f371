//! Properties: parsing never panics and errors point inside the text; canonical text
//! (`Display`) parses back to the same tree, for generated trees and for parsed queries.

use crowsnest_query::{parse, Agg, AggFunc, Filter, Pipe, Query, RangeBound, Scalar, SortKey};
use proptest::prelude::*;

/// Pieces that exercise every branch of the grammar when glued together.
const PIECES: &[&str] = &[
    "a",
    "b",
    "f:",
    "x.y:",
    "@timestamp:",
    "(",
    ")",
    "\"q r\"",
    "\"",
    "AND",
    "OR",
    "NOT",
    "and",
    "-",
    "+",
    "!",
    "*",
    "?",
    "[",
    "]",
    "{",
    "}",
    "TO",
    "1",
    "2.5",
    ">",
    ">=",
    "<",
    "\\",
    ":",
    "|",
    "||",
    "&&",
    " ",
    " ",
    " ",
    "_exists_:",
    "2024-01-01T00:00:00Z",
    "é",
    "\t",
    "| stats",
    " count()",
    " dc(u)",
    " by ",
    "a,",
    "| sort",
    " -a",
    "| head",
    " 3",
    "| fields",
    "| timechart",
    " span=5m",
    " as",
    "=",
    ",",
    "desc",
];

fn query_like() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|v| v.concat())
}

fn check_text(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Ok(q) => {
            let printed = q.to_string();
            prop_assert_eq!(
                parse(&printed),
                Ok(q),
                "canonical text {:?} of {:?}",
                printed,
                text
            );
        }
        Err(e) => {
            prop_assert!(
                e.column >= 1 && e.column <= text.chars().count() + 1,
                "{:?}: {}",
                text,
                e
            );
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

// Generated trees, in the shapes the parser builds.

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z@_][a-z0-9_./@-]{0,10}",
        1 => ".{1,6}",
        1 => prop::sample::select(vec!["AND", "not", "_exists_", "-x", "a:b", "by", "desc", "*"])
            .prop_map(str::to_owned),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 ._:-]{1,10}",
        2 => ".{1,8}",
        1 => prop::sample::select(vec!["*", "?", "TO", "OR", "-1", "\\", "\"", ">=5", "&&x", "=a"])
            .prop_map(str::to_owned),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    let literal = "[^\\\\*?]".prop_map(|s: String| s);
    let piece = prop_oneof![
        3 => literal,
        1 => prop::sample::select(vec!["\\*", "\\?", "\\\\"]).prop_map(str::to_owned),
    ];
    (
        prop::collection::vec(piece, 0..5),
        prop::sample::select(vec!["*", "?"]),
        0..5usize,
    )
        .prop_map(|(pieces, wild, at)| {
            let mut pieces = pieces;
            let at = at.min(pieces.len());
            pieces.insert(at, wild.to_owned());
            pieces.concat()
        })
        .prop_filter("a lone `*` is All or Exists", |p| p != "*")
}

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Scalar::Number),
        (-1000i32..1000).prop_map(|n| Scalar::Number(f64::from(n))),
        text().prop_map(Scalar::Text),
        Just(Scalar::Text(String::new())),
    ]
}

fn bound() -> impl Strategy<Value = RangeBound> {
    prop_oneof![
        Just(RangeBound::Unbounded),
        scalar().prop_map(RangeBound::Inclusive),
        scalar().prop_map(RangeBound::Exclusive),
    ]
}

fn leaf() -> impl Strategy<Value = Filter> {
    let field = || prop::option::of(name());
    prop_oneof![
        Just(Filter::All),
        (field(), text()).prop_map(|(field, value)| Filter::Term { field, value }),
        (field(), ".{0,8}").prop_map(|(field, text)| Filter::Phrase { field, text }),
        (field(), pattern()).prop_map(|(field, pattern)| Filter::Wildcard { field, pattern }),
        name().prop_map(|field| Filter::Exists { field }),
        (name(), bound(), bound()).prop_map(|(field, lower, upper)| Filter::Range {
            field,
            lower,
            upper
        }),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

fn agg() -> impl Strategy<Value = Agg> {
    let func = prop::sample::select(vec![
        AggFunc::Count,
        AggFunc::Dc,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::Avg,
        AggFunc::Sum,
    ]);
    (func, prop::option::of(name()), prop::option::of(name())).prop_map(|(func, field, alias)| {
        let field = if func == AggFunc::Count {
            field
        } else {
            Some(field.unwrap_or_default())
        };
        let default = match &field {
            None => "count".to_owned(),
            Some(f) => format!("{}({f})", format!("{func:?}").to_lowercase()),
        };
        Agg {
            func,
            field,
            alias: alias.unwrap_or(default),
        }
    })
}

fn row_pipe() -> impl Strategy<Value = Pipe> {
    prop_oneof![
        prop::collection::vec(
            (name(), any::<bool>()).prop_map(|(field, descending)| SortKey { field, descending }),
            1..3
        )
        .prop_map(Pipe::Sort),
        any::<usize>().prop_map(Pipe::Head),
        prop::collection::vec(name(), 1..3).prop_map(Pipe::Fields),
    ]
}

fn pipes() -> impl Strategy<Value = Vec<Pipe>> {
    let aggs = || prop::collection::vec(agg(), 1..3);
    let first = prop_oneof![
        (aggs(), prop::collection::vec(name(), 0..3))
            .prop_map(|(aggs, by)| Pipe::Stats { aggs, by }),
        (
            1..=crowsnest_model::duration::MAX_DURATION.as_secs(),
            aggs(),
            prop::option::of(name()),
        )
            .prop_map(|(span_secs, aggs, by)| {
                Pipe::Timechart {
                    span_secs,
                    aggs,
                    by,
                }
            }),
        row_pipe(),
    ];
    (
        prop::option::of(first),
        prop::collection::vec(row_pipe(), 0..3),
    )
        .prop_map(|(first, rest)| first.into_iter().chain(rest).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check_text(&text)?;
    }

    #[test]
    fn query_like_strings_never_panic_and_round_trip(text in query_like()) {
        check_text(&text)?;
    }

    #[test]
    fn generated_queries_print_to_text_that_parses_back(filter in filter(), pipes in pipes()) {
        let query = Query { filter, pipes };
        let printed = query.to_string();
        prop_assert_eq!(parse(&printed), Ok(query), "canonical text {:?}", printed);
    }
}
