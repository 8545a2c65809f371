//! Parser: query text -> [`Query`]. (To be written.)
use crate::ast::Query;

/// A query that could not be parsed: where (byte offset) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("query syntax error at column {column}: {message}")]
pub struct ParseError {
    /// 1-based character column of the problem.
    pub column: usize,
    /// What was expected or what is wrong.
    pub message: String,
}

/// Parses a query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let _ = text;
    Err(ParseError { column: 1, message: "not implemented".into() })
}
