//! The pipe grammar: `| name args` stages after the filter.
//!
//! ```text
//! pipes     := ("|" pipe)*
//! pipe      := stats | timechart | sort | head | fields        -- names are case-insensitive
//! stats     := "stats" agg ([","] agg)* ["by" names]
//! timechart := "timechart" ["span=" duration] [agg ([","] agg)*] ["by" name]  -- duration: crowsnest_model::duration
//! sort      := "sort" key ([","] key)*      key := ["-"|"+"] name ["asc"|"desc"]
//! head      := "head" [N]                                       -- default 10
//! fields    := "fields" ["+"] names                             -- `fields - x` is refused
//! agg       := func ["(" [name] ")"] ["as" name]
//! names     := name ([","] name)*
//! name      := bare | "\"quoted\""   -- bare: up to whitespace or , ( ) | = " ; `\` escapes
//! ```
//!
//! Functions: `count`, `count()`, `count(f)`, `dc(f)` (alias `distinct_count(f)`), `min(f)`,
//! `max(f)`, `avg(f)`, `sum(f)`. The default column name is `count` for `count()` and
//! `func(field)` otherwise, with the canonical function name (`distinct_count(x)` -> `dc(x)`).
//!
//! An aggregating pipe (`stats`, `timechart`) must be the first pipe, because the store runs
//! it over events and [`crate::rows::apply`] runs the rest over its table.

use crate::ast::{Agg, AggFunc, Pipe, SortKey};
use crate::parser::cursor::Cursor;
use crate::parser::ParseError;

/// Default `timechart` bucket width when no `span=` is given: one minute.
pub const DEFAULT_SPAN_SECS: u64 = 60;

/// Default `head` row count when no number is given.
pub const DEFAULT_HEAD: usize = 10;

const PIPE_NAMES: &str = "stats, timechart, sort, head, fields";
const AGG_NAMES: &str = "count, dc, distinct_count, min, max, avg, sum";

/// A name in a pipe: a field, column or keyword.
struct Ident {
    text: String,
    quoted: bool,
    start: usize,
}

impl Ident {
    fn is_keyword(&self, keyword: &str) -> bool {
        !self.quoted && self.text.eq_ignore_ascii_case(keyword)
    }
}

/// True for characters that end a bare name in a pipe.
fn ends_name(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '(' | ')' | '|' | '=' | '"')
}

/// Reads a bare or quoted name; `None` when none starts here.
fn ident(cur: &mut Cursor) -> Result<Option<Ident>, ParseError> {
    let start = cur.pos();
    if cur.peek() == Some('"') {
        let text = cur.read_quoted()?;
        return Ok(Some(Ident {
            text,
            quoted: true,
            start,
        }));
    }
    let mut text = String::new();
    while let Some(c) = cur.peek() {
        if ends_name(c) {
            break;
        }
        cur.bump();
        if c == '\\' {
            let Some(escaped) = cur.peek() else {
                return Err(cur.error("expected a character after `\\`"));
            };
            cur.bump();
            text.push(escaped);
        } else {
            text.push(c);
        }
    }
    if cur.pos() == start {
        return Ok(None);
    }
    Ok(Some(Ident {
        text,
        quoted: false,
        start,
    }))
}

/// Reads a name that must be there; `what` says what it names.
fn required_ident(cur: &mut Cursor, what: &str) -> Result<Ident, ParseError> {
    cur.skip_ws();
    match ident(cur)? {
        Some(id) => Ok(id),
        None => Err(cur.error(format!("expected {what}, found {}", cur.describe_here()))),
    }
}

/// True (and consumed) when the next name is the bare keyword `keyword`.
fn eat_keyword(cur: &mut Cursor, keyword: &str) -> Result<bool, ParseError> {
    cur.skip_ws();
    let start = cur.pos();
    match ident(cur)? {
        Some(id) if id.is_keyword(keyword) => Ok(true),
        _ => {
            cur.reset(start);
            Ok(false)
        }
    }
}

/// True at the end of the current pipe (a `|` or the end of the query).
fn at_stage_end(cur: &mut Cursor) -> bool {
    cur.skip_ws();
    cur.at_end() || cur.peek() == Some('|')
}

/// Parses every pipe from the cursor (at a `|` or the end) to the end of the query.
pub(crate) fn parse_pipes(cur: &mut Cursor) -> Result<Vec<Pipe>, ParseError> {
    let mut pipes: Vec<Pipe> = Vec::new();
    loop {
        cur.skip_ws();
        if cur.at_end() {
            return Ok(pipes);
        }
        if cur.peek() != Some('|') {
            return Err(cur.error(format!(
                "expected a pipe `|` or the end of the query, found {}",
                cur.describe_here()
            )));
        }
        cur.bump();
        cur.skip_ws();
        let name_pos = cur.pos();
        let Some(name) = ident(cur)? else {
            return Err(cur.error(format!(
                "expected a pipe after `|`: one of {PIPE_NAMES}, found {}",
                cur.describe_here()
            )));
        };
        let lower = name.text.to_ascii_lowercase();
        let pipe = match lower.as_str() {
            "stats" => stats(cur)?,
            "timechart" => timechart(cur)?,
            "sort" => sort(cur)?,
            "head" => head(cur)?,
            "fields" => fields(cur)?,
            _ => {
                return Err(Cursor::error_at(
                    name_pos,
                    format!("unknown pipe `{}`: expected one of {PIPE_NAMES}", name.text),
                ))
            }
        };
        if matches!(pipe, Pipe::Stats { .. } | Pipe::Timechart { .. }) && !pipes.is_empty() {
            return Err(Cursor::error_at(
                name_pos,
                format!("`{lower}` must be the first pipe, right after the filter"),
            ));
        }
        pipes.push(pipe);
    }
}

/// Aggregations up to `by`, the next pipe or the end.
fn aggs(cur: &mut Cursor) -> Result<Vec<Agg>, ParseError> {
    let mut aggs = Vec::new();
    loop {
        if at_stage_end(cur) {
            break;
        }
        let before_by = cur.pos();
        if eat_keyword(cur, "by")? {
            cur.reset(before_by);
            break;
        }
        if !aggs.is_empty() && cur.peek() == Some(',') {
            cur.bump();
        }
        aggs.push(agg(cur)?);
    }
    Ok(aggs)
}

fn agg(cur: &mut Cursor) -> Result<Agg, ParseError> {
    let name = required_ident(cur, "an aggregation such as `count()` or `dc(field)`")?;
    let func = match name.text.to_ascii_lowercase().as_str() {
        _ if name.quoted => None,
        "count" => Some(AggFunc::Count),
        "dc" | "distinct_count" => Some(AggFunc::Dc),
        "min" => Some(AggFunc::Min),
        "max" => Some(AggFunc::Max),
        "avg" => Some(AggFunc::Avg),
        "sum" => Some(AggFunc::Sum),
        _ => None,
    };
    let Some(func) = func else {
        return Err(Cursor::error_at(
            name.start,
            format!(
                "unknown aggregation `{}`: expected one of {AGG_NAMES}",
                name.text
            ),
        ));
    };
    cur.skip_ws();
    let mut field = None;
    if cur.peek() == Some('(') {
        let open = cur.pos();
        cur.bump();
        cur.skip_ws();
        if cur.peek() != Some(')') {
            field = Some(required_ident(cur, "a field name")?.text);
            cur.skip_ws();
        }
        if cur.peek() != Some(')') {
            return Err(cur.error(format!(
                "expected `)` to close `{}(` opened at column {}, found {}",
                name.text,
                Cursor::column(open),
                cur.describe_here()
            )));
        }
        cur.bump();
    }
    if func != AggFunc::Count && field.is_none() {
        let canon = func_name(func);
        return Err(Cursor::error_at(
            name.start,
            format!("`{}` needs a field: write `{canon}(field)`", name.text),
        ));
    }
    let alias = if eat_keyword(cur, "as")? {
        required_ident(cur, "a column name after `as`")?.text
    } else {
        default_alias(func, field.as_deref())
    };
    Ok(Agg { func, field, alias })
}

/// The canonical name of an aggregation function, as printed and used in default aliases.
pub(crate) fn func_name(func: AggFunc) -> &'static str {
    match func {
        AggFunc::Count => "count",
        AggFunc::Dc => "dc",
        AggFunc::Min => "min",
        AggFunc::Max => "max",
        AggFunc::Avg => "avg",
        AggFunc::Sum => "sum",
    }
}

/// The output column of an aggregation without `as`: `count`, or `func(field)`.
pub(crate) fn default_alias(func: AggFunc, field: Option<&str>) -> String {
    match field {
        None => func_name(func).to_owned(),
        Some(f) => format!("{}({f})", func_name(func)),
    }
}

/// Names after `by` or `fields`, comma- or space-separated, up to the end of the pipe.
fn names(cur: &mut Cursor, after: &str) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    loop {
        if at_stage_end(cur) {
            break;
        }
        if !out.is_empty() && cur.peek() == Some(',') {
            cur.bump();
        }
        out.push(required_ident(cur, "a field name")?.text);
    }
    if out.is_empty() {
        return Err(cur.error(format!(
            "expected a field name after `{after}`, found {}",
            cur.describe_here()
        )));
    }
    Ok(out)
}

fn stats(cur: &mut Cursor) -> Result<Pipe, ParseError> {
    let aggs = aggs(cur)?;
    if aggs.is_empty() {
        return Err(cur.error(format!(
            "expected an aggregation after `stats`, such as `count()` or `dc(field)`, found {}",
            cur.describe_here()
        )));
    }
    let by = if eat_keyword(cur, "by")? {
        names(cur, "by")?
    } else {
        Vec::new()
    };
    Ok(Pipe::Stats { aggs, by })
}

fn timechart(cur: &mut Cursor) -> Result<Pipe, ParseError> {
    let mut span_secs = DEFAULT_SPAN_SECS;
    cur.skip_ws();
    let before = cur.pos();
    if eat_keyword(cur, "span")? && cur.peek() == Some('=') {
        cur.bump();
        span_secs = span(cur)?;
    } else {
        cur.reset(before);
    }
    let mut aggs = aggs(cur)?;
    if aggs.is_empty() {
        aggs.push(Agg {
            func: AggFunc::Count,
            field: None,
            alias: "count".to_owned(),
        });
    }
    let mut by = None;
    if eat_keyword(cur, "by")? {
        cur.skip_ws();
        let by_pos = cur.pos();
        let mut fields = names(cur, "by")?;
        if fields.len() > 1 {
            return Err(Cursor::error_at(
                by_pos,
                format!(
                    "`timechart` splits by at most one field, found {}",
                    fields.len()
                ),
            ));
        }
        by = fields.pop();
    }
    Ok(Pipe::Timechart {
        span_secs,
        aggs,
        by,
    })
}

/// A span in the duration grammar of [`crowsnest_model::duration`] (`30s`, `5m`, `1h`, `1d`,
/// `1h30m`, ...) -> whole seconds, longer than zero.
fn span(cur: &mut Cursor) -> Result<u64, ParseError> {
    let start = cur.pos();
    let text = ident(cur)?.map(|id| id.text).unwrap_or_default();
    let duration = crowsnest_model::parse_duration(&text)
        .map_err(|e| Cursor::error_at(start, format!("invalid span: {e}")))?;
    if duration.is_zero() {
        return Err(Cursor::error_at(start, "expected a span longer than zero"));
    }
    if duration.subsec_nanos() != 0 {
        return Err(Cursor::error_at(
            start,
            format!("span `{text}` is not a whole number of seconds"),
        ));
    }
    Ok(duration.as_secs())
}

fn sort(cur: &mut Cursor) -> Result<Pipe, ParseError> {
    let mut keys = Vec::new();
    loop {
        if at_stage_end(cur) {
            break;
        }
        if !keys.is_empty() && cur.peek() == Some(',') {
            cur.bump();
            cur.skip_ws();
        }
        let sign = match cur.peek() {
            Some(c @ ('-' | '+')) => {
                cur.bump();
                Some(c)
            }
            _ => None,
        };
        let field = required_ident(cur, "a field to sort by")?.text;
        let mut descending = sign == Some('-');
        let order_pos = {
            cur.skip_ws();
            cur.pos()
        };
        let order = if eat_keyword(cur, "desc")? {
            Some(true)
        } else if eat_keyword(cur, "asc")? {
            Some(false)
        } else {
            None
        };
        if let Some(desc) = order {
            if sign.is_some() {
                return Err(Cursor::error_at(
                    order_pos,
                    "expected either a `-`/`+` prefix or `asc`/`desc`, not both",
                ));
            }
            descending = desc;
        }
        keys.push(SortKey { field, descending });
    }
    if keys.is_empty() {
        return Err(cur.error(format!(
            "expected a field to sort by after `sort`, found {}",
            cur.describe_here()
        )));
    }
    Ok(Pipe::Sort(keys))
}

fn head(cur: &mut Cursor) -> Result<Pipe, ParseError> {
    if at_stage_end(cur) {
        return Ok(Pipe::Head(DEFAULT_HEAD));
    }
    let start = cur.pos();
    let text = ident(cur)?.map(|id| id.text).unwrap_or_default();
    match text.parse::<usize>() {
        Ok(n) => Ok(Pipe::Head(n)),
        Err(_) => Err(Cursor::error_at(
            start,
            format!("expected a number of rows after `head`, found `{text}`"),
        )),
    }
}

fn fields(cur: &mut Cursor) -> Result<Pipe, ParseError> {
    cur.skip_ws();
    match (cur.peek(), cur.peek_at(1)) {
        (Some('-'), next) if next.is_none_or(char::is_whitespace) => {
            return Err(cur.error(
                "removing columns with `fields -` is not supported: list the columns to keep",
            ));
        }
        (Some('+'), next) if next.is_none_or(char::is_whitespace) => cur.bump(),
        _ => {}
    }
    Ok(Pipe::Fields(names(cur, "fields")?))
}
