//! Error messages: the 1-based column and what was expected.

use crowsnest_query::{parse, MAX_DEPTH};

/// `(query, column, message)`: the message must equal the error's message exactly.
const CASES: &[(&str, usize, &str)] = &[
    ("x:[1 2]", 6, "expected `TO` in range, found `2`"),
    ("x:[1 TO 2", 10, "expected `]` or `}` to close the range opened at column 3, found the end of the query"),
    ("x:[ TO 2]", 5, "expected a lower bound (a value or `*`), found `TO`"),
    ("x:[1 TO TO]", 9, "expected an upper bound (a value or `*`), found `TO`"),
    ("x:[1 TO ]", 9, "expected an upper bound (a value or `*`), found `]`"),
    ("x | stat", 5, "unknown pipe `stat`: expected one of stats, timechart, sort, head, fields"),
    ("a AND (b OR c", 14, "unbalanced parenthesis opened at column 7: expected `)`, found the end of the query"),
    ("(a | stats count()", 4, "unbalanced parenthesis opened at column 1: expected `)`, found a pipe `|`"),
    ("a)", 2, "unexpected `)`: no parenthesis is open"),
    ("()", 2, "expected a term inside `( )`, found `)`"),
    ("a AND", 6, "expected a term after `AND`, found the end of the query"),
    ("a OR OR b", 6, "expected a term after `OR`, found `OR`"),
    ("AND a", 1, "expected a term, found `AND`"),
    ("NOT", 4, "expected a term after `NOT`, found the end of the query"),
    ("a - b", 3, "expected a term right after `-` (write `-term` without a space)"),
    ("user.name:", 11, "expected a value after `user.name:`, found the end of the query"),
    ("user.name: | head", 12, "expected a value after `user.name:`, found a pipe `|`"),
    (":x", 1, "expected a field name before `:`"),
    ("[1 TO 2]", 1, "expected `field:` before `[`: ranges and comparisons need a field"),
    (">5", 1, "expected `field:` before `>`: ranges and comparisons need a field"),
    ("user.*:x", 1, "expected a field name, found the pattern `user.*`: wildcards in field names are not supported"),
    ("_exists_:a*", 10, "expected a field name after `_exists_:`"),
    ("\"abc", 5, "unterminated quote opened at column 1: expected a closing `\"`"),
    ("abc\\", 5, "expected a character after `\\`"),
    ("a ]", 3, "expected a term, found `]`"),
    ("a |", 4, "expected a pipe after `|`: one of stats, timechart, sort, head, fields, found the end of the query"),
    ("a | | head", 5, "expected a pipe after `|`: one of stats, timechart, sort, head, fields, found a pipe `|`"),
    ("| stats", 8, "expected an aggregation after `stats`, such as `count()` or `dc(field)`, found the end of the query"),
    ("| stats by x", 9, "expected an aggregation after `stats`, such as `count()` or `dc(field)`, found `by`"),
    ("| stats cnt()", 9, "unknown aggregation `cnt`: expected one of count, dc, distinct_count, min, max, avg, sum"),
    ("| stats dc", 9, "`dc` needs a field: write `dc(field)`"),
    ("| stats avg()", 9, "`avg` needs a field: write `avg(field)`"),
    ("| stats dc(x", 13, "expected `)` to close `dc(` opened at column 11, found the end of the query"),
    ("| stats count() by", 19, "expected a field name after `by`, found the end of the query"),
    ("| stats count(),", 17, "expected an aggregation such as `count()` or `dc(field)`, found the end of the query"),
    ("| stats count() as", 19, "expected a column name after `as`, found the end of the query"),
    ("| timechart span=5x", 18, "invalid span: `5x` is not a duration (unknown time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write a number and a unit, like 30s, 15m, 6h, 7d or 1h30m"),
    ("| timechart span=m", 18, "invalid span: `m` is not a duration (expected number at 0); write a number and a unit, like 30s, 15m, 6h, 7d or 1h30m"),
    ("| timechart span=5", 18, "invalid span: `5` is not a duration (time unit needed, for example 5sec or 5ms); write a number and a unit, like 30s, 15m, 6h, 7d or 1h30m"),
    ("| timechart span=1M", 18, "invalid span: `1M` is not a duration (`M` is ambiguous: write `m` or `min` for minutes, `month` for months); write a number and a unit, like 30s, 15m, 6h, 7d or 1h30m"),
    ("| timechart span=0s", 18, "expected a span longer than zero"),
    ("| timechart span=1500ms", 18, "span `1500ms` is not a whole number of seconds"),
    ("| timechart span=99999999999999999999d", 18, "invalid span: `99999999999999999999d` is longer than 100 years"),
    ("| timechart span=999999999999999d", 18, "invalid span: `999999999999999d` is longer than 100 years"),
    ("| timechart by a, b", 16, "`timechart` splits by at most one field, found 2"),
    ("| sort", 7, "expected a field to sort by after `sort`, found the end of the query"),
    ("| sort -a desc", 11, "expected either a `-`/`+` prefix or `asc`/`desc`, not both"),
    ("| head ten", 8, "expected a number of rows after `head`, found `ten`"),
    ("| head -1", 8, "expected a number of rows after `head`, found `-1`"),
    ("| head 5 6", 10, "expected a pipe `|` or the end of the query, found `6`"),
    ("| fields - a", 10, "removing columns with `fields -` is not supported: list the columns to keep"),
    ("| fields", 9, "expected a field name after `fields`, found the end of the query"),
    ("| head | stats count()", 10, "`stats` must be the first pipe, right after the filter"),
    ("| stats count() | timechart", 19, "`timechart` must be the first pipe, right after the filter"),
    ("é:(ü", 5, "unbalanced parenthesis opened at column 3: expected `)`, found the end of the query"),
];

#[test]
fn messages_name_the_column_and_what_was_expected() {
    let mut wrong = Vec::new();
    for &(query, column, message) in CASES {
        match parse(query) {
            Ok(q) => wrong.push(format!("{query:?} should not parse, got {q:?}")),
            Err(e) if (e.column, e.message.as_str()) != (column, message) => {
                wrong.push(format!(
                    "{query:?}: got column {}: {:?}",
                    e.column, e.message
                ));
            }
            Err(e) => assert_eq!(
                e.to_string(),
                format!("query syntax error at column {column}: {message}")
            ),
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected results:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn nesting_beyond_the_limit_is_refused_not_overflowed() {
    for depth in [MAX_DEPTH + 1, 64, 10_000, 100_000] {
        let parens = format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
        let nots = format!("{}a", "NOT ".repeat(depth));
        let minus = format!("{}a", "-".repeat(depth));
        let groups = format!("f:{}a{}", "(".repeat(depth), ")".repeat(depth));
        for text in [parens, nots, minus, groups] {
            let err = parse(&text).expect_err("too deep");
            assert!(err.message.starts_with("query nests deeper than"), "{err}");
            assert!(err.column <= text.chars().count() + 1);
        }
    }
}

#[test]
fn a_hundred_thousand_open_parentheses_are_refused_not_overflowed() {
    // Unbalanced, as an attacker would send them: the parser stops at the depth limit.
    let text = "(".repeat(100_000);
    let err = parse(&text).expect_err("too deep");
    assert!(err.message.starts_with("query nests deeper than"), "{err}");
    assert!(err.column <= MAX_DEPTH + 2, "{err}");
}
