//! Parser: query text -> [`Query`].
//!
//! Written by hand as recursive descent over a small, parser-driven tokenizer
//! ([`cursor`]): no published crate parses Lucene/KQL-style filters followed by Splunk-style
//! pipes into our AST, and a hand-written parser gives precise, column-accurate messages.
//!
//! The language reference is the documentation of [`parse`]. Lexing is driven by the parser
//! (see `cursor`), the filter grammar is in `filter`, the pipe grammar in `pipes`, and the
//! canonical printing that reads back to the same tree in `crate::display`.

mod cursor;
mod filter;
mod pipes;

pub(crate) use filter::scalar;
pub(crate) use pipes::{default_alias, func_name};
pub use pipes::{DEFAULT_HEAD, DEFAULT_SPAN_SECS};

use crate::ast::Query;
use cursor::Cursor;

/// Deepest nesting of parentheses and negations a filter may use (64 nested parentheses are
/// refused). It bounds the parser's recursion, and that of everything walking the tree.
pub const MAX_DEPTH: usize = 32;

/// A query that could not be parsed: where (1-based character column) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query syntax error at column {column}: {message}")]
pub struct ParseError {
    /// 1-based character column of the problem.
    pub column: usize,
    /// What was expected or what is wrong.
    pub message: String,
}

/// Parses a query: a filter, then any pipes.
///
/// # The filter (before the first unquoted `|`)
///
/// | text | meaning |
/// | --- | --- |
/// | `error`, `"disk full"` | free text ([`Filter::Term`](crate::Filter::Term) / [`Filter::Phrase`](crate::Filter::Phrase) with no field) |
/// | `user.name:alice`, `message:"disk full"` | a field's value or phrase |
/// | `user.name:sys*em?` | [`Filter::Wildcard`](crate::Filter::Wildcard): `*` any run, `?` one character |
/// | `user.name:*`, `_exists_:user.name` | [`Filter::Exists`](crate::Filter::Exists) |
/// | `*` alone, or nothing | [`Filter::All`](crate::Filter::All) |
/// | `a AND b`, `a && b`, `a and b`, `a b` | both (adjacent clauses are ANDed) |
/// | `a OR b`, `a \|\| b`, `a or b` | either |
/// | `NOT a`, `!a`, `not a`, `-a` | negation; `+a` just means `a` |
/// | `( ... )` | grouping; precedence is NOT > AND > OR |
/// | `verb:(get OR list)` | values grouped under one field |
/// | `bytes:[10 TO 20]`, `{10 TO 20}`, `[10 TO 20}`, `[* TO 20]` | [`Filter::Range`](crate::Filter::Range) |
/// | `bytes:>10`, `>=`, `<`, `<=` | one-sided ranges |
///
/// Lexical rules:
/// * A backslash escapes any character: `user.name:system\:serviceaccount\:kube-system\:*` is a
///   wildcard on `user.name` with pattern `system:serviceaccount:kube-system:*`. In a wildcard
///   pattern, escaped `\*`, `\?` and `\\` stay escaped (they are literal); every other escape is
///   resolved. Inside quotes, `\"` and `\\` are the useful escapes.
/// * A field name is a bare word that ends at the first unescaped `:`; it may contain `.`, `@`,
///   `_`, `-`, `/` and escaped characters (`\.` is just a `.`: dots always separate the path).
///   Whitespace is allowed after the `:`. Wildcards in field names are refused.
/// * `/` is an ordinary character (there is no `/regex/` syntax); Lucene's `\/` also works.
/// * After `field:`, inside `field:( ... )` and inside ranges, `:` is an ordinary character,
///   so `@timestamp:>2024-05-01T10:00:00Z` needs no quotes.
/// * Operators are recognised only when spelled without escapes and not used as a field name:
///   `\AND` or `"AND"` searches for the word, `and:x` is the field `and`. Right after `field:`
///   a word is always a value (`verb:OR` looks for `OR`).
/// * Range and comparison values that read as finite decimal numbers are
///   [`Scalar::Number`](crate::Scalar::Number); anything else, and every quoted value, is
///   text (RFC 3339 timestamps stay text).
///
/// # Pipes (after `|`; names and keywords are case-insensitive)
///
/// | pipe | meaning |
/// | --- | --- |
/// | `stats count(), dc(user.name) as users by kubernetes.namespace, verb` | one row per group |
/// | `timechart span=5m count() by user.name` | buckets on `@timestamp`; the span is a duration of [`crowsnest_model::duration`] (`30s`, `5m`, `1h`, `1d`, `1h30m`) in whole seconds |
/// | `sort -count, user.name` (also `sort count desc`) | `-` descending, `+`/nothing ascending |
/// | `head 5` | the first rows |
/// | `fields @timestamp, user.name` | keep and reorder columns |
///
/// * Aggregations: `count`, `count()`, `count(f)`, `dc(f)` (or `distinct_count(f)`), `min(f)`,
///   `max(f)`, `avg(f)`, `sum(f)`. Column names default to `count` and `func(field)` with the
///   canonical function name (`distinct_count(ip)` is the column `dc(ip)`); `as name` renames.
/// * Commas between aggregations, `by` fields, sort keys and `fields` names are optional.
/// * Defaults: `timechart` uses `span=1m` ([`DEFAULT_SPAN_SECS`]) and `count()`, `head` keeps
///   [`DEFAULT_HEAD`] rows. `timechart` splits by at most one field.
/// * `stats` and `timechart` must be the first pipe (the store runs them over events; the
///   rest run over their table, see [`crate::rows`]).
/// * `fields - x` (dropping columns) is refused: list the columns to keep.
/// * A name with spaces or punctuation can be written in double quotes: `by "my field"`.
///
/// # Errors
///
/// A [`ParseError`] carries the 1-based character column of the problem and says what was
/// expected. Parsing never panics, and nesting (parentheses and negations) deeper than
/// [`MAX_DEPTH`] is refused, so recursion stays bounded.
///
/// # Example
///
/// ```
/// use crowsnest_query::{parse, Filter, Pipe};
///
/// let q = parse(r"kubernetes.namespace:prod AND NOT user.name:system\:* | stats count() by user.name")?;
/// assert!(matches!(q.filter, Filter::And(ref parts) if parts.len() == 2));
/// assert!(matches!(q.pipes[0], Pipe::Stats { ref by, .. } if by == &["user.name"]));
/// # Ok::<(), crowsnest_query::ParseError>(())
/// ```
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let mut cur = Cursor::new(text);
    let filter = filter::parse_filter(&mut cur)?;
    let pipes = pipes::parse_pipes(&mut cur)?;
    Ok(Query { filter, pipes })
}
