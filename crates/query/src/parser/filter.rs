//! The filter grammar: everything before the first unquoted, unescaped single `|`.
//!
//! ```text
//! filter  := or | "*" | ""
//! or      := and (("OR" | "or" | "||") and)*
//! and     := unary (("AND" | "and" | "&&")? unary)*          -- adjacent clauses are ANDed
//! unary   := ("NOT" | "not" | "!") unary | "-" unary | "+" unary | primary
//! primary := "(" or ")" | "\"phrase\"" | word | field ":" value
//! value   := "(" group ")" | "\"phrase\"" | range | cmp | word  -- group: `or` over values
//! range   := ("[" | "{") bound "TO" bound ("]" | "}")          -- bound: "*", word or quoted
//! cmp     := (">" | ">=" | "<" | "<=") bound
//! ```
//!
//! `-` and `+` must touch their clause (`-a`, not `- a`); `NOT` and `!` may be followed by
//! spaces. Chains of one operator are flattened (`a OR b OR c` is one `Or` of three), but
//! parentheses are kept as written (`(a OR b) OR c` nests), so [`std::fmt::Display`] can print
//! any parsed filter back to text that parses to the same tree.

use crate::ast::{Filter, RangeBound, Scalar};
use crate::parser::cursor::{Cursor, Word, WordMode};
use crate::parser::{ParseError, MAX_DEPTH};

/// Parses the filter at the cursor; stops before a pipe `|` or at the end.
pub(crate) fn parse_filter(cur: &mut Cursor) -> Result<Filter, ParseError> {
    cur.skip_ws();
    if cur.at_end() || cur.at_pipe() {
        return Ok(Filter::All);
    }
    let mut parser = FilterParser { cur, depth: 0 };
    let filter = parser.or_expr(None, None)?;
    parser.cur.skip_ws();
    match parser.cur.peek() {
        None => Ok(filter),
        Some('|') if parser.cur.at_pipe() => Ok(filter),
        Some(')') => Err(parser.cur.error("unexpected `)`: no parenthesis is open")),
        Some(_) => Err(parser.cur.error(format!(
            "expected `AND`, `OR`, a term or a pipe `|`, found {}",
            parser.cur.describe_here()
        ))),
    }
}

/// Parses `text` as a range bound or comparison value: a finite number, else text.
///
/// Only plain decimal notation counts as a number (`10`, `-2.5`, `1e3`): `inf` and `NaN`
/// stay text, and so does an RFC 3339 timestamp.
pub(crate) fn scalar(text: &str) -> Scalar {
    let numeric_chars = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'));
    match text.parse::<f64>() {
        Ok(n) if numeric_chars && n.is_finite() => Scalar::Number(n),
        _ => Scalar::Text(text.to_owned()),
    }
}

struct FilterParser<'c> {
    cur: &'c mut Cursor,
    depth: usize,
}

/// The field that values belong to inside `field:( ... )`, or `None` in clause position.
type Scope<'f> = Option<&'f str>;

fn mode(scope: Scope<'_>) -> WordMode {
    if scope.is_some() {
        WordMode::Value
    } else {
        WordMode::Clause
    }
}

impl FilterParser<'_> {
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.cur.error(format!(
                "query nests deeper than {MAX_DEPTH} levels of parentheses and negations"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Length of an `OR` operator at the cursor.
    fn at_or(&self, scope: Scope<'_>) -> Option<usize> {
        if self.cur.starts_with("||") {
            return Some(2);
        }
        let m = mode(scope);
        (self.cur.at_keyword("OR", m) || self.cur.at_keyword("or", m)).then_some(2)
    }

    /// Length of an `AND` operator at the cursor.
    fn at_and(&self, scope: Scope<'_>) -> Option<usize> {
        if self.cur.starts_with("&&") {
            return Some(2);
        }
        let m = mode(scope);
        (self.cur.at_keyword("AND", m) || self.cur.at_keyword("and", m)).then_some(3)
    }

    /// Length of a `NOT` operator at the cursor.
    fn at_not(&self, scope: Scope<'_>) -> Option<usize> {
        if self.cur.peek() == Some('!') {
            return Some(1);
        }
        let m = mode(scope);
        (self.cur.at_keyword("NOT", m) || self.cur.at_keyword("not", m)).then_some(3)
    }

    /// The operator text at the cursor, for messages.
    fn op_text(&self, len: usize) -> String {
        let mut s = String::new();
        for i in 0..len {
            if let Some(c) = self.cur.peek_at(i) {
                s.push(c);
            }
        }
        s
    }

    fn or_expr(&mut self, scope: Scope<'_>, after: Option<&str>) -> Result<Filter, ParseError> {
        let mut items = vec![self.and_expr(scope, after)?];
        loop {
            self.cur.skip_ws();
            let Some(len) = self.at_or(scope) else { break };
            let op = self.op_text(len);
            self.cur.advance(len);
            items.push(self.and_expr(scope, Some(&op))?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Filter::Or(items)
        })
    }

    fn and_expr(&mut self, scope: Scope<'_>, after: Option<&str>) -> Result<Filter, ParseError> {
        let mut items = vec![self.unary(scope, after)?];
        loop {
            self.cur.skip_ws();
            if self.cur.at_end()
                || self.cur.at_pipe()
                || self.cur.peek() == Some(')')
                || self.at_or(scope).is_some()
            {
                break;
            }
            if let Some(len) = self.at_and(scope) {
                let op = self.op_text(len);
                self.cur.advance(len);
                items.push(self.unary(scope, Some(&op))?);
            } else {
                // Implicit AND between adjacent clauses.
                items.push(self.unary(scope, None)?);
            }
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Filter::And(items)
        })
    }

    fn unary(&mut self, scope: Scope<'_>, after: Option<&str>) -> Result<Filter, ParseError> {
        self.cur.skip_ws();
        if let Some(len) = self.at_not(scope) {
            let op = self.op_text(len);
            self.cur.advance(len);
            self.enter()?;
            let inner = self.unary(scope, Some(&op))?;
            self.leave();
            return Ok(Filter::Not(Box::new(inner)));
        }
        if let Some(sign @ ('-' | '+')) = self.cur.peek() {
            let touching = self
                .cur
                .peek_at(1)
                .is_some_and(|c| !c.is_whitespace() && !matches!(c, ')' | '|'));
            if !touching {
                return Err(self.cur.error(format!(
                    "expected a term right after `{sign}` (write `{sign}term` without a space)"
                )));
            }
            self.cur.bump();
            self.enter()?;
            let inner = self.unary(scope, None)?;
            self.leave();
            return Ok(if sign == '-' {
                Filter::Not(Box::new(inner))
            } else {
                inner
            });
        }
        self.primary(scope, after)
    }

    fn expected_term(&self, after: Option<&str>) -> ParseError {
        let after = after.map(|op| format!(" after `{op}`")).unwrap_or_default();
        self.cur.error(format!(
            "expected a term{after}, found {}",
            self.cur.describe_here()
        ))
    }

    fn primary(&mut self, scope: Scope<'_>, after: Option<&str>) -> Result<Filter, ParseError> {
        self.cur.skip_ws();
        let at_operator = self.at_and(scope).is_some() || self.at_or(scope).is_some();
        match self.cur.peek() {
            None | Some(')' | ']' | '}' | '|') => return Err(self.expected_term(after)),
            _ if at_operator => return Err(self.expected_term(after)),
            _ => {}
        }
        if let Some(field) = scope {
            return self.value(field);
        }
        match self.cur.peek() {
            Some('(') => self.group(None),
            Some('"') => Ok(Filter::Phrase {
                field: None,
                text: self.cur.read_quoted()?,
            }),
            Some(c @ ('[' | '{' | '>' | '<')) => Err(self.cur.error(format!(
                "expected `field:` before `{c}`: ranges and comparisons need a field"
            ))),
            Some(':') => Err(self.cur.error("expected a field name before `:`")),
            _ => self.clause_word(),
        }
    }

    /// A bare word in clause position: free text, or a field name followed by its value.
    fn clause_word(&mut self) -> Result<Filter, ParseError> {
        let Some(word) = self.cur.read_word(WordMode::Clause)? else {
            return Err(self.expected_term(None));
        };
        if self.cur.peek() != Some(':') {
            return Ok(free_text(word));
        }
        if word.has_wildcard {
            return Err(Cursor::error_at(
                word.start,
                format!("expected a field name, found the pattern `{}`: wildcards in field names are not supported", word.text),
            ));
        }
        self.cur.bump();
        self.cur.skip_ws();
        if word.text == "_exists_" && !word.has_escape {
            return self.exists();
        }
        match self.cur.peek() {
            None | Some(')' | '|') => Err(self.cur.error(format!(
                "expected a value after `{}:`, found {}",
                word.text,
                self.cur.describe_here()
            ))),
            _ => self.value(&word.text),
        }
    }

    /// `_exists_:field`.
    fn exists(&mut self) -> Result<Filter, ParseError> {
        let pos = self.cur.pos();
        match self.cur.read_word(WordMode::Value)? {
            Some(word) if !word.has_wildcard => Ok(Filter::Exists { field: word.text }),
            _ => Err(Cursor::error_at(
                pos,
                "expected a field name after `_exists_:`",
            )),
        }
    }

    /// A value of `field`: a group, phrase, range, comparison or word.
    fn value(&mut self, field: &str) -> Result<Filter, ParseError> {
        let owned = || Some(field.to_owned());
        match self.cur.peek() {
            Some('(') => self.group(Some(field)),
            Some('"') => Ok(Filter::Phrase {
                field: owned(),
                text: self.cur.read_quoted()?,
            }),
            Some('[' | '{') => self.range(field),
            Some('>' | '<') => self.comparison(field),
            _ => {
                let Some(word) = self.cur.read_word(WordMode::Value)? else {
                    return Err(self.cur.error(format!(
                        "expected a value for `{field}`, found {}",
                        self.cur.describe_here()
                    )));
                };
                Ok(if word.is_star() {
                    Filter::Exists {
                        field: field.to_owned(),
                    }
                } else if word.has_wildcard {
                    Filter::Wildcard {
                        field: owned(),
                        pattern: word.pattern,
                    }
                } else {
                    Filter::Term {
                        field: owned(),
                        value: word.text,
                    }
                })
            }
        }
    }

    /// `( ... )`, either a plain group or the values of `field:( ... )`.
    fn group(&mut self, scope: Scope<'_>) -> Result<Filter, ParseError> {
        let open = self.cur.pos();
        self.cur.bump();
        self.enter()?;
        self.cur.skip_ws();
        if self.cur.peek() == Some(')') {
            return Err(self.cur.error("expected a term inside `( )`, found `)`"));
        }
        let inner = self.or_expr(scope, Some("("))?;
        self.cur.skip_ws();
        if self.cur.peek() != Some(')') {
            return Err(self.cur.error(format!(
                "unbalanced parenthesis opened at column {}: expected `)`, found {}",
                Cursor::column(open),
                self.cur.describe_here()
            )));
        }
        self.cur.bump();
        self.leave();
        Ok(inner)
    }

    /// `[a TO b]`, `{a TO b}` and the mixed forms.
    fn range(&mut self, field: &str) -> Result<Filter, ParseError> {
        let open = self.cur.pos();
        let lower_inclusive = self.cur.peek() == Some('[');
        self.cur.bump();
        self.cur.skip_ws();
        let lower = self.bound_value("a lower bound")?;
        self.cur.skip_ws();
        if self.cur.at_keyword("TO", WordMode::Value) || self.cur.at_keyword("to", WordMode::Value)
        {
            self.cur.advance(2);
        } else {
            return Err(self.cur.error(format!(
                "expected `TO` in range, found {}",
                self.cur.describe_here()
            )));
        }
        self.cur.skip_ws();
        let upper = self.bound_value("an upper bound")?;
        self.cur.skip_ws();
        let upper_inclusive = match self.cur.peek() {
            Some(']') => true,
            Some('}') => false,
            _ => {
                return Err(self.cur.error(format!(
                    "expected `]` or `}}` to close the range opened at column {}, found {}",
                    Cursor::column(open),
                    self.cur.describe_here()
                )))
            }
        };
        self.cur.bump();
        Ok(Filter::Range {
            field: field.to_owned(),
            lower: bound(lower, lower_inclusive),
            upper: bound(upper, upper_inclusive),
        })
    }

    /// The value of one end of a range: `*` (`None`, unbounded), a quoted string (always
    /// text) or a word (a number when it reads as one).
    fn bound_value(&mut self, what: &str) -> Result<Option<Scalar>, ParseError> {
        if self.cur.peek() == Some('"') {
            return Ok(Some(Scalar::Text(self.cur.read_quoted()?)));
        }
        if self.cur.at_keyword("TO", WordMode::Value) || self.cur.at_keyword("to", WordMode::Value)
        {
            return Err(self
                .cur
                .error(format!("expected {what} (a value or `*`), found `TO`")));
        }
        match self.cur.read_word(WordMode::Value)? {
            Some(word) if word.is_star() => Ok(None),
            Some(word) => Ok(Some(scalar(&word.text))),
            None => Err(self.cur.error(format!(
                "expected {what} (a value or `*`), found {}",
                self.cur.describe_here()
            ))),
        }
    }

    /// `field:>v`, `>=`, `<`, `<=`.
    fn comparison(&mut self, field: &str) -> Result<Filter, ParseError> {
        let greater = self.cur.peek() == Some('>');
        self.cur.bump();
        let inclusive = self.cur.peek() == Some('=');
        if inclusive {
            self.cur.bump();
        }
        let op = match (greater, inclusive) {
            (true, true) => ">=",
            (true, false) => ">",
            (false, true) => "<=",
            (false, false) => "<",
        };
        self.cur.skip_ws();
        let value = self.bound_value(&format!("a value after `{op}`"))?;
        let (lower, upper) = if greater {
            (bound(value, inclusive), RangeBound::Unbounded)
        } else {
            (RangeBound::Unbounded, bound(value, inclusive))
        };
        Ok(Filter::Range {
            field: field.to_owned(),
            lower,
            upper,
        })
    }
}

/// A range end: `None` is unbounded.
fn bound(value: Option<Scalar>, inclusive: bool) -> RangeBound {
    match value {
        None => RangeBound::Unbounded,
        Some(v) if inclusive => RangeBound::Inclusive(v),
        Some(v) => RangeBound::Exclusive(v),
    }
}

/// A bare word in clause position: `*` alone matches all, a pattern is a wildcard.
fn free_text(word: Word) -> Filter {
    if word.is_star() {
        Filter::All
    } else if word.has_wildcard {
        Filter::Wildcard {
            field: None,
            pattern: word.pattern,
        }
    } else {
        Filter::Term {
            field: None,
            value: word.text,
        }
    }
}
