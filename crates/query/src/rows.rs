//! Row-level pipes (`sort`, `head`, `fields`) applied to a table.
//!
//! The store runs the filter and the first aggregating pipe (`stats` or `timechart`) and
//! hands back a table: column names plus rows of JSON values, one value per column. The pipes
//! after that are the same for every store, so they live here:
//!
//! ```
//! use crowsnest_query::{parse, rows};
//! use serde_json::json;
//!
//! let query = parse("verb:delete | stats count() by user.name | sort -count | head 1")?;
//! let (aggregation, rest) = rows::split_pipes(&query);
//! assert!(aggregation.is_some()); // the store runs `stats`, producing:
//! let mut columns = vec!["user.name".to_string(), "count".to_string()];
//! let mut table = vec![vec![json!("alice"), json!(3)], vec![json!("bob"), json!(12)]];
//! rows::apply(&mut columns, &mut table, rest)?;
//! assert_eq!(table, vec![vec![json!("bob"), json!(12)]]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Ordering used by `sort` (the same for every key, ascending; `-key` reverses it except for
//! nulls):
//! * numbers compare numerically (integers exactly, others as `f64`), strings by their UTF-8
//!   bytes, `false` before `true`;
//! * across types: numbers, then strings, then booleans, then arrays, then objects;
//! * `null` (or a missing cell) always sorts last, ascending or descending;
//! * the sort is stable: rows with equal keys keep their order.

use std::cmp::Ordering;

use serde_json::Value;

use crate::ast::{Pipe, Query, SortKey};

/// A row pipe that cannot be applied to the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    /// A `sort` or `fields` pipe names a column the table does not have.
    #[error("unknown column `{column}` in `{pipe}`: expected one of {}", list(.available))]
    UnknownColumn {
        /// The pipe (`sort` or `fields`).
        pipe: &'static str,
        /// The column it names.
        column: String,
        /// The columns the table has.
        available: Vec<String>,
    },
    /// An aggregating pipe (`stats`, `timechart`) reached the row stage; only the store runs
    /// those, and only as the first pipe.
    #[error("`{pipe}` cannot run on a table: expected it as the first pipe, run by the store")]
    Aggregating {
        /// The pipe name.
        pipe: &'static str,
    },
}

/// Formats column names for a message: `` `a`, `b` ``, or a note that there are none.
fn list(columns: &[String]) -> String {
    if columns.is_empty() {
        return "nothing (the table has no columns)".to_owned();
    }
    let quoted: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
    quoted.join(", ")
}

/// Applies `sort`, `head` and `fields` pipes, in order, to a table.
///
/// `rows` may be ragged: a missing cell reads as `null`, and `fields` pads with `null`.
/// On error the table may already hold the effect of the pipes before the failing one.
pub fn apply(
    columns: &mut Vec<String>,
    rows: &mut Vec<Vec<Value>>,
    pipes: &[Pipe],
) -> Result<(), RowError> {
    for pipe in pipes {
        match pipe {
            Pipe::Sort(keys) => sort(columns, rows, keys)?,
            Pipe::Head(n) => rows.truncate(*n),
            Pipe::Fields(names) => select(columns, rows, names)?,
            Pipe::Stats { .. } => return Err(RowError::Aggregating { pipe: "stats" }),
            Pipe::Timechart { .. } => return Err(RowError::Aggregating { pipe: "timechart" }),
        }
    }
    Ok(())
}

/// Splits a query's pipes into its first aggregating pipe (`stats`/`timechart`), if the first
/// pipe is one, and the pipes that follow it (to give to [`apply`]).
///
/// The parser only accepts an aggregating pipe in first position, so for a parsed query the
/// rest never holds one.
pub fn split_pipes(query: &Query) -> (Option<&Pipe>, &[Pipe]) {
    match query.pipes.split_first() {
        Some((p @ (Pipe::Stats { .. } | Pipe::Timechart { .. }), rest)) => (Some(p), rest),
        _ => (None, &query.pipes[..]),
    }
}

/// Index of `name` in `columns`, or the error naming it.
fn column_index(columns: &[String], name: &str, pipe: &'static str) -> Result<usize, RowError> {
    columns
        .iter()
        .position(|c| c == name)
        .ok_or_else(|| RowError::UnknownColumn {
            pipe,
            column: name.to_owned(),
            available: columns.to_vec(),
        })
}

fn sort(columns: &[String], rows: &mut [Vec<Value>], keys: &[SortKey]) -> Result<(), RowError> {
    let mut resolved = Vec::with_capacity(keys.len());
    for key in keys {
        resolved.push((column_index(columns, &key.field, "sort")?, key.descending));
    }
    rows.sort_by(|a, b| {
        for &(index, descending) in &resolved {
            let ordering = compare_cells(a.get(index), b.get(index), descending);
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    });
    Ok(())
}

/// Orders two cells for one sort key: nulls last either way, the rest by [`compare_values`].
fn compare_cells(a: Option<&Value>, b: Option<&Value>, descending: bool) -> Ordering {
    let a = a.filter(|v| !v.is_null());
    let b = b.filter(|v| !v.is_null());
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) if descending => compare_values(a, b).reverse(),
        (Some(a), Some(b)) => compare_values(a, b),
    }
}

/// Rank of a JSON type in the cross-type order.
fn type_rank(value: &Value) -> u8 {
    match value {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// Ascending order of two non-null values.
fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x.cmp(&y);
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return x.cmp(&y);
            }
            let x = x.as_f64().unwrap_or(f64::NAN);
            let y = y.as_f64().unwrap_or(f64::NAN);
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
            a.to_string().cmp(&b.to_string())
        }
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// `fields a, b`: keeps those columns, in that order (a repeated name is kept once).
fn select(
    columns: &mut Vec<String>,
    rows: &mut [Vec<Value>],
    names: &[String],
) -> Result<(), RowError> {
    let mut picked: Vec<(usize, String)> = Vec::with_capacity(names.len());
    for name in names {
        if picked.iter().any(|(_, n)| n == name) {
            continue;
        }
        picked.push((column_index(columns, name, "fields")?, name.clone()));
    }
    for row in rows.iter_mut() {
        let new_row: Vec<Value> = picked
            .iter()
            .map(|(i, _)| row.get(*i).cloned().unwrap_or(Value::Null))
            .collect();
        *row = new_row;
    }
    *columns = picked.into_iter().map(|(_, n)| n).collect();
    Ok(())
}
