//! The small tokenizer under both grammars: a cursor over the query's characters.
//!
//! Lexing is driven by the parser because the language is context-sensitive: a `:` ends a
//! field name in clause position but is an ordinary character in a value
//! (`@timestamp:>2024-05-01T10:00:00Z`), and `AND` is an operator between clauses but a value
//! right after `field:`. So instead of a token stream the parser asks the cursor for "the word
//! here, in this mode", "the quoted string here", or "is the next thing this keyword".
//!
//! Positions are character indexes; [`Cursor::column`] turns them into the 1-based columns
//! that [`ParseError`] reports.

use crate::parser::ParseError;

/// Which characters end a bare word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WordMode {
    /// Clause position: an unescaped `:` ends the word (it was a field name).
    Clause,
    /// Value position (after `field:`, inside `field:(...)` or a range): `:` is a character.
    Value,
}

/// A bare word with its escapes resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// The characters with every escape removed (`a\:b` -> `a:b`).
    pub(crate) text: String,
    /// The characters with `\*`, `\?` and `\\` kept escaped, for a wildcard pattern.
    pub(crate) pattern: String,
    /// True when the word has an unescaped `*` or `?`.
    pub(crate) has_wildcard: bool,
    /// True when the word has at least one backslash escape.
    pub(crate) has_escape: bool,
    /// Character index of the first character.
    pub(crate) start: usize,
}

impl Word {
    /// True for a lone unescaped `*`.
    pub(crate) fn is_star(&self) -> bool {
        !self.has_escape && self.text == "*"
    }
}

/// A cursor over the characters of a query.
#[derive(Debug)]
pub(crate) struct Cursor {
    chars: Vec<char>,
    pos: usize,
}

/// True for the characters that end a bare word in every mode.
pub(crate) fn is_word_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | '"' | '|')
}

impl Cursor {
    /// A cursor at the start of `text`.
    pub(crate) fn new(text: &str) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    /// The current character index.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The 1-based column of character index `pos`.
    pub(crate) fn column(pos: usize) -> usize {
        pos + 1
    }

    /// An error at character index `pos`.
    pub(crate) fn error_at(pos: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            column: Self::column(pos),
            message: message.into(),
        }
    }

    /// An error at the current position.
    pub(crate) fn error(&self, message: impl Into<String>) -> ParseError {
        Self::error_at(self.pos, message)
    }

    /// The character at the cursor.
    pub(crate) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// The character `n` places after the cursor.
    pub(crate) fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    /// Moves back (or forward) to character index `pos`, after a look-ahead.
    pub(crate) fn reset(&mut self, pos: usize) {
        self.pos = pos.min(self.chars.len());
    }

    /// Moves past one character.
    pub(crate) fn bump(&mut self) {
        if self.pos < self.chars.len() {
            self.pos += 1;
        }
    }

    /// True at the end of the text.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    /// Skips whitespace.
    pub(crate) fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// True when the text at the cursor starts with `s`.
    pub(crate) fn starts_with(&self, s: &str) -> bool {
        let mut rest = self.chars.get(self.pos..).unwrap_or_default().iter();
        s.chars().all(|c| rest.next() == Some(&c))
    }

    /// True at a single `|` (a pipe), not `||` (an `OR`).
    pub(crate) fn at_pipe(&self) -> bool {
        self.peek() == Some('|') && self.peek_at(1) != Some('|')
    }

    /// The raw (unescaped-as-typed) bare word at the cursor in `mode`, without moving.
    ///
    /// Used to recognise keywords: a word spelled with an escape (`\AND`) never equals one.
    pub(crate) fn peek_raw_word(&self, mode: WordMode) -> String {
        let mut out = String::new();
        let mut i = self.pos;
        while let Some(&c) = self.chars.get(i) {
            if is_word_end(c) || (mode == WordMode::Clause && c == ':') {
                break;
            }
            out.push(c);
            if c == '\\' {
                // Keep the escaped character: the raw word then differs from any keyword.
                if let Some(&next) = self.chars.get(i + 1) {
                    out.push(next);
                    i += 1;
                }
            }
            i += 1;
        }
        out
    }

    /// True when the bare word at the cursor is exactly `keyword` (as typed, no escapes) and
    /// is not a field name (not followed by `:` in clause mode).
    pub(crate) fn at_keyword(&self, keyword: &str, mode: WordMode) -> bool {
        let raw = self.peek_raw_word(mode);
        if raw != keyword {
            return false;
        }
        let after = self.pos + raw.chars().count();
        !(mode == WordMode::Clause && self.chars.get(after) == Some(&':'))
    }

    /// Consumes `n` characters (after a successful keyword check).
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chars.len());
    }

    /// Reads a bare word in `mode`. Returns `None` when no word starts here.
    pub(crate) fn read_word(&mut self, mode: WordMode) -> Result<Option<Word>, ParseError> {
        let start = self.pos;
        let mut word = Word {
            text: String::new(),
            pattern: String::new(),
            has_wildcard: false,
            has_escape: false,
            start,
        };
        while let Some(c) = self.peek() {
            if is_word_end(c) || (mode == WordMode::Clause && c == ':') {
                break;
            }
            self.pos += 1;
            match c {
                '\\' => {
                    let Some(escaped) = self.peek() else {
                        return Err(self.error("expected a character after `\\`"));
                    };
                    self.pos += 1;
                    word.has_escape = true;
                    word.text.push(escaped);
                    if matches!(escaped, '*' | '?' | '\\') {
                        word.pattern.push('\\');
                    }
                    word.pattern.push(escaped);
                }
                '*' | '?' => {
                    word.has_wildcard = true;
                    word.text.push(c);
                    word.pattern.push(c);
                }
                _ => {
                    word.text.push(c);
                    word.pattern.push(c);
                }
            }
        }
        if self.pos == start {
            return Ok(None);
        }
        Ok(Some(word))
    }

    /// Reads a double-quoted string at the cursor (which must be at `"`), resolving `\x`
    /// escapes to `x`.
    pub(crate) fn read_quoted(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.bump();
        let mut text = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.error(format!(
                        "unterminated quote opened at column {}: expected a closing `\"`",
                        Self::column(open)
                    )))
                }
                Some('"') => {
                    self.bump();
                    return Ok(text);
                }
                Some('\\') => {
                    self.bump();
                    let Some(escaped) = self.peek() else {
                        return Err(self.error("expected a character after `\\`"));
                    };
                    self.bump();
                    text.push(escaped);
                }
                Some(c) => {
                    self.bump();
                    text.push(c);
                }
            }
        }
    }

    /// A short description of what is at the cursor, for "found ..." in messages.
    pub(crate) fn describe_here(&self) -> String {
        match self.peek() {
            None => "the end of the query".to_owned(),
            Some('|') if self.at_pipe() => "a pipe `|`".to_owned(),
            Some(c) if is_word_end(c) || c == ':' => format!("`{c}`"),
            Some(_) => {
                let raw = self.peek_raw_word(WordMode::Value);
                let shown: String = raw.chars().take(30).collect();
                format!("`{shown}`")
            }
        }
    }
}
