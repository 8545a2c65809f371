//! Canonical query text: [`std::fmt::Display`] for [`Query`], [`Filter`] and [`Pipe`].
//!
//! The printed form uses one spelling per construct (`AND`/`OR`/`NOT`, `field:*` for
//! [`Filter::Exists`], `field:>10` for one-sided ranges, `, ` between pipe arguments) and
//! escapes or quotes whatever the parser would otherwise read differently. For every tree the
//! parser produces, `parse(&q.to_string()) == Ok(q)`. Trees the parser never builds (an `And`
//! with fewer than two parts, an empty value, `Wildcard` with the pattern `*`) print as the
//! closest query text and may not round-trip.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::{Agg, Filter, Pipe, Query, RangeBound, Scalar};
use crate::parser::{default_alias, func_name};

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.filter)?;
        for pipe in &self.pipes {
            write!(f, " | {pipe}")?;
        }
        Ok(())
    }
}

impl Display for Filter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Filter::All => f.write_char('*'),
            Filter::And(parts) if parts.is_empty() => f.write_char('*'),
            Filter::Or(parts) if parts.is_empty() => f.write_str("NOT *"),
            Filter::And(parts) => join(
                f,
                parts,
                " AND ",
                |p| matches!(p, Filter::And(v) | Filter::Or(v) if v.len() > 1),
            ),
            // `And` inside `Or` needs no parentheses, but they make the precedence visible
            // and parse to the same tree.
            Filter::Or(parts) => join(
                f,
                parts,
                " OR ",
                |p| matches!(p, Filter::And(v) | Filter::Or(v) if v.len() > 1),
            ),
            Filter::Not(inner) => {
                f.write_str("NOT ")?;
                if matches!(&**inner, Filter::And(v) | Filter::Or(v) if v.len() > 1) {
                    write!(f, "({inner})")
                } else {
                    write!(f, "{inner}")
                }
            }
            Filter::Term { field, value } => {
                write_field(f, field.as_deref())?;
                write_value(f, value)
            }
            Filter::Phrase { field, text } => {
                write_field(f, field.as_deref())?;
                write_quoted(f, text)
            }
            Filter::Wildcard { field, pattern } => {
                write_field(f, field.as_deref())?;
                write_pattern(f, pattern)
            }
            Filter::Exists { field } => {
                write_field(f, Some(field))?;
                f.write_char('*')
            }
            Filter::Range {
                field,
                lower,
                upper,
            } => {
                write_field(f, Some(field))?;
                write_range(f, lower, upper)
            }
        }
    }
}

/// Writes `parts` separated by `sep`, parenthesising those `needs_parens` selects.
fn join(
    f: &mut Formatter<'_>,
    parts: &[Filter],
    sep: &str,
    needs_parens: impl Fn(&Filter) -> bool,
) -> fmt::Result {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if needs_parens(part) {
            write!(f, "({part})")?;
        } else {
            write!(f, "{part}")?;
        }
    }
    Ok(())
}

/// Characters that must be escaped anywhere in a bare word.
fn always_escaped(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\\' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | '|' | ':' | '*' | '?'
        )
}

/// Characters that must be escaped at the start of a bare word (prefix operators).
fn escaped_first(c: char) -> bool {
    matches!(c, '-' | '+' | '!' | '<' | '>' | '&')
}

const KEYWORDS: [&str; 8] = ["AND", "OR", "NOT", "and", "or", "not", "TO", "to"];

/// Writes a field name and its `:`, escaped; nothing for free text.
fn write_field(f: &mut Formatter<'_>, field: Option<&str>) -> fmt::Result {
    let Some(field) = field else { return Ok(()) };
    if field == "_exists_" {
        f.write_char('\\')?;
    }
    write_value(f, field)?;
    f.write_char(':')
}

/// Writes a term value (or field name) with every special character escaped.
fn write_value(f: &mut Formatter<'_>, value: &str) -> fmt::Result {
    if KEYWORDS.contains(&value) {
        f.write_char('\\')?;
    }
    for (i, c) in value.chars().enumerate() {
        if always_escaped(c) || (i == 0 && escaped_first(c)) {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    Ok(())
}

/// Writes a wildcard pattern: `*`, `?` and the kept escapes as they are, the rest escaped.
fn write_pattern(f: &mut Formatter<'_>, pattern: &str) -> fmt::Result {
    let mut chars = pattern.chars().enumerate();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                f.write_char('\\')?;
                if let Some((_, escaped)) = chars.next() {
                    f.write_char(escaped)?;
                } else {
                    // A dangling backslash: print it as a literal backslash.
                    f.write_char('\\')?;
                }
            }
            '*' | '?' => f.write_char(c)?,
            _ => {
                if always_escaped(c) || (i == 0 && escaped_first(c)) {
                    f.write_char('\\')?;
                }
                f.write_char(c)?;
            }
        }
    }
    Ok(())
}

/// Writes `"text"` with `"` and `\` escaped.
fn write_quoted(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

/// Writes a range as `>x`, `>=x`, `<x`, `<=x` when one-sided, else `[a TO b}` and friends.
fn write_range(f: &mut Formatter<'_>, lower: &RangeBound, upper: &RangeBound) -> fmt::Result {
    match (lower, upper) {
        (RangeBound::Inclusive(v), RangeBound::Unbounded) => {
            f.write_str(">=")?;
            write_scalar(f, v)
        }
        (RangeBound::Exclusive(v), RangeBound::Unbounded) => {
            f.write_char('>')?;
            write_scalar(f, v)
        }
        (RangeBound::Unbounded, RangeBound::Inclusive(v)) => {
            f.write_str("<=")?;
            write_scalar(f, v)
        }
        (RangeBound::Unbounded, RangeBound::Exclusive(v)) => {
            f.write_char('<')?;
            write_scalar(f, v)
        }
        _ => {
            let open = if matches!(lower, RangeBound::Exclusive(_)) {
                '{'
            } else {
                '['
            };
            let close = if matches!(upper, RangeBound::Exclusive(_)) {
                '}'
            } else {
                ']'
            };
            f.write_char(open)?;
            write_bound(f, lower)?;
            f.write_str(" TO ")?;
            write_bound(f, upper)?;
            f.write_char(close)
        }
    }
}

fn write_bound(f: &mut Formatter<'_>, bound: &RangeBound) -> fmt::Result {
    match bound {
        RangeBound::Unbounded => f.write_char('*'),
        RangeBound::Inclusive(v) | RangeBound::Exclusive(v) => write_scalar(f, v),
    }
}

/// Writes a number bare, and text bare unless it would read as something else.
fn write_scalar(f: &mut Formatter<'_>, value: &Scalar) -> fmt::Result {
    match value {
        Scalar::Number(n) => write!(f, "{n}"),
        Scalar::Text(text) => {
            let needs_quotes = text.is_empty()
                || text == "*"
                || text.eq_ignore_ascii_case("to")
                || text.starts_with('=')
                || matches!(crate::parser::scalar(text), Scalar::Number(_))
                || text.chars().any(|c| {
                    c.is_whitespace()
                        || matches!(c, '\\' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | '|')
                });
            if needs_quotes {
                write_quoted(f, text)
            } else {
                f.write_str(text)
            }
        }
    }
}

impl Display for Pipe {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Pipe::Stats { aggs, by } => {
                f.write_str("stats ")?;
                write_aggs(f, aggs)?;
                if !by.is_empty() {
                    f.write_str(" by ")?;
                    write_names(f, by)?;
                }
                Ok(())
            }
            Pipe::Timechart {
                span_secs,
                aggs,
                by,
            } => {
                f.write_str("timechart span=")?;
                write_span(f, *span_secs)?;
                if !aggs.is_empty() {
                    f.write_char(' ')?;
                    write_aggs(f, aggs)?;
                }
                if let Some(by) = by {
                    f.write_str(" by ")?;
                    write_name(f, by)?;
                }
                Ok(())
            }
            Pipe::Sort(keys) => {
                f.write_str("sort ")?;
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if key.descending {
                        f.write_char('-')?;
                    }
                    write_name(f, &key.field)?;
                }
                Ok(())
            }
            Pipe::Head(n) => write!(f, "head {n}"),
            Pipe::Fields(names) => {
                f.write_str("fields ")?;
                write_names(f, names)
            }
        }
    }
}

impl Display for Agg {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(func_name(self.func))?;
        f.write_char('(')?;
        if let Some(field) = &self.field {
            write_name(f, field)?;
        }
        f.write_char(')')?;
        if self.alias != default_alias(self.func, self.field.as_deref()) {
            f.write_str(" as ")?;
            write_name(f, &self.alias)?;
        }
        Ok(())
    }
}

fn write_aggs(f: &mut Formatter<'_>, aggs: &[Agg]) -> fmt::Result {
    for (i, agg) in aggs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{agg}")?;
    }
    Ok(())
}

fn write_span(f: &mut Formatter<'_>, secs: u64) -> fmt::Result {
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60)] {
        if secs > 0 && secs.is_multiple_of(size) {
            return write!(f, "{}{unit}", secs / size);
        }
    }
    write!(f, "{secs}s")
}

fn write_names(f: &mut Formatter<'_>, names: &[String]) -> fmt::Result {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_name(f, name)?;
    }
    Ok(())
}

/// Writes a pipe name (field or column) bare, or quoted when it would not read back.
fn write_name(f: &mut Formatter<'_>, name: &str) -> fmt::Result {
    let keyword = ["by", "as", "asc", "desc", "span"]
        .iter()
        .any(|k| name.eq_ignore_ascii_case(k));
    let needs_quotes = name.is_empty()
        || keyword
        || name.starts_with(['-', '+'])
        || name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ',' | '(' | ')' | '|' | '=' | '"' | '\\'));
    if needs_quotes {
        write_quoted(f, name)
    } else {
        f.write_str(name)
    }
}
