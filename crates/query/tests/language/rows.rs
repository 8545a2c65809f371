//! Row pipes: sort, head, fields on a table.

use crowsnest_query::rows::{apply, split_pipes};
use crowsnest_query::{parse, Pipe, RowError};
use serde_json::{json, Value};

fn table() -> (Vec<String>, Vec<Vec<Value>>) {
    let columns = vec!["user".to_string(), "count".to_string(), "ns".to_string()];
    let rows = vec![
        vec![json!("carol"), json!(2), json!("prod")],
        vec![json!("alice"), json!(10), Value::Null],
        vec![json!("bob"), json!(2.5), json!("dev")],
        vec![json!("dave"), Value::Null, json!("prod")],
        vec![json!("erin"), json!(2), json!("dev")],
    ];
    (columns, rows)
}

fn run(pipes_text: &str) -> Result<(Vec<String>, Vec<Vec<Value>>), RowError> {
    let query = parse(pipes_text).expect("test query parses");
    let (mut columns, mut rows) = table();
    apply(&mut columns, &mut rows, &query.pipes)?;
    Ok((columns, rows))
}

fn column(rows: &[Vec<Value>], index: usize) -> Vec<Value> {
    rows.iter().map(|r| r[index].clone()).collect()
}

#[test]
fn sort_is_numeric_stable_and_puts_nulls_last() {
    let (_, rows) = run("| sort count").expect("sorts");
    assert_eq!(
        column(&rows, 1),
        vec![json!(2), json!(2), json!(2.5), json!(10), Value::Null]
    );
    // Stable: carol came before erin and both have 2.
    assert_eq!(column(&rows, 0)[..2], [json!("carol"), json!("erin")]);

    let (_, rows) = run("| sort -count").expect("sorts");
    assert_eq!(
        column(&rows, 1),
        vec![json!(10), json!(2.5), json!(2), json!(2), Value::Null]
    );
    assert_eq!(column(&rows, 0)[2..4], [json!("carol"), json!("erin")]);
}

#[test]
fn sort_by_several_keys_and_strings() {
    let (_, rows) = run("| sort ns, -user").expect("sorts");
    assert_eq!(
        column(&rows, 0),
        vec![
            json!("erin"),
            json!("bob"),
            json!("dave"),
            json!("carol"),
            json!("alice")
        ]
    );
    let (_, rows) = run("| sort user desc").expect("sorts");
    assert_eq!(
        column(&rows, 0),
        vec![
            json!("erin"),
            json!("dave"),
            json!("carol"),
            json!("bob"),
            json!("alice")
        ]
    );
}

#[test]
fn mixed_types_order_numbers_strings_booleans_then_null() {
    let mut columns = vec!["v".to_string()];
    let mut rows = vec![
        vec![Value::Null],
        vec![json!(true)],
        vec![json!("x")],
        vec![json!(-3)],
        vec![json!(u64::MAX)],
        vec![json!(false)],
        vec![],
    ];
    apply(
        &mut columns,
        &mut rows,
        &[Pipe::Sort(vec![crowsnest_query::SortKey {
            field: "v".into(),
            descending: false,
        }])],
    )
    .expect("sorts");
    let firsts: Vec<Option<Value>> = rows.iter().map(|r| r.first().cloned()).collect();
    assert_eq!(
        firsts,
        vec![
            Some(json!(-3)),
            Some(json!(u64::MAX)),
            Some(json!("x")),
            Some(json!(false)),
            Some(json!(true)),
            Some(Value::Null),
            None,
        ]
    );
}

#[test]
fn head_and_fields() {
    let (columns, rows) = run("| sort -count | head 2 | fields count, user").expect("applies");
    assert_eq!(columns, vec!["count", "user"]);
    assert_eq!(
        rows,
        vec![
            vec![json!(10), json!("alice")],
            vec![json!(2.5), json!("bob")]
        ]
    );

    let (columns, rows) = run("| head 0").expect("applies");
    assert_eq!(columns.len(), 3);
    assert!(rows.is_empty());

    let (columns, rows) = run("| head 100 | fields ns, ns").expect("applies");
    assert_eq!(columns, vec!["ns"]);
    assert_eq!(rows.len(), 5);
}

#[test]
fn unknown_columns_are_named_with_the_available_ones() {
    let err = run("| fields user, verb").expect_err("no verb column");
    assert_eq!(
        err,
        RowError::UnknownColumn {
            pipe: "fields",
            column: "verb".into(),
            available: vec!["user".into(), "count".into(), "ns".into()],
        }
    );
    assert_eq!(
        err.to_string(),
        "unknown column `verb` in `fields`: expected one of `user`, `count`, `ns`"
    );
    let err = run("| sort -nope").expect_err("no such column");
    assert!(err.to_string().contains("`nope` in `sort`"), "{err}");
}

#[test]
fn aggregating_pipes_are_left_to_the_store() {
    let query = parse("x | stats count() by user | sort -count | head 1").expect("parses");
    let (first, rest) = split_pipes(&query);
    assert!(matches!(first, Some(Pipe::Stats { .. })));
    assert_eq!(rest.len(), 2);

    let (mut columns, mut rows) = table();
    let err = apply(&mut columns, &mut rows, &query.pipes).expect_err("stats is not a row pipe");
    assert_eq!(err, RowError::Aggregating { pipe: "stats" });

    let plain = parse("x | sort user | head 1").expect("parses");
    let (first, rest) = split_pipes(&plain);
    assert!(first.is_none());
    assert_eq!(rest, &plain.pipes[..]);
}
