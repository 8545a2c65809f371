//! Row-level pipes (`sort`, `head`, `fields`) applied to a table. (Stub: to be written.)

use serde_json::Value;

use crate::ast::{Pipe, Query};

/// A row pipe that cannot be applied to the table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct RowError(pub String);

/// Applies `sort`, `head` and `fields` pipes, in order, to a table.
pub fn apply(
    columns: &mut Vec<String>,
    rows: &mut Vec<Vec<Value>>,
    pipes: &[Pipe],
) -> Result<(), RowError> {
    let _ = (columns, rows, pipes);
    Ok(())
}

/// Splits a query's pipes into its first aggregating pipe (`stats`/`timechart`), if the first
/// pipe is one, and the pipes that follow it.
pub fn split_pipes(query: &Query) -> (Option<&Pipe>, &[Pipe]) {
    match query.pipes.first() {
        Some(p @ (Pipe::Stats { .. } | Pipe::Timechart { .. })) => (Some(p), &query.pipes[1..]),
        _ => (None, &query.pipes[..]),
    }
}
