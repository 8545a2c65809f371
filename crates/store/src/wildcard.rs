//! Wildcard matching (`*`, `?`, escaped `\*` / `\?`) over a field's term dictionary.
//!
//! [`WildcardQuery`] walks the terms of one field that start with a byte prefix (for the keyword
//! JSON field: the encoded path + the string type tag, for the text field: nothing) plus the
//! pattern's literal prefix, tests each against the pattern and unions the postings of the
//! terms that match. Cost grows with the number of distinct terms under the path, not with the
//! number of events.
//!
//! Bounds: the matching documents of a segment are one bit set (`max_doc` bits, however many
//! terms match: `*e*` over the raw text of millions of events does not collect a list per
//! term), the glob test is linear backtracking (no exponential case, whatever the `*`s), and
//! the walk checks the search's control every [`CHECK_TERMS`] terms, so a time budget or a
//! gone client stops it (`crate::search`).

use std::ops::Bound;
use std::sync::Arc;

use tantivy::query::{
    BitSetDocSet, ConstScorer, EnableScoring, Explanation, Query, Scorer, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Score, SegmentReader, TantivyError};
use tantivy_common::BitSet;

use crate::search::{stopped_error, stopped_while_building};

/// Terms walked between two checks of the search's control.
pub(crate) const CHECK_TERMS: usize = 4096;

/// One element of a parsed wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Any run of characters (`*`).
    Any,
    /// Exactly one character (`?`).
    One,
    /// This character.
    Lit(char),
}

/// A parsed wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses a pattern; `\*`, `\?` and `\\` are literals.
    pub(crate) fn parse(pattern: &str) -> Self {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Any) {
                        tokens.push(Token::Any);
                    }
                }
                '?' => tokens.push(Token::One),
                '\\' => match chars.next() {
                    Some(next) => tokens.push(Token::Lit(next)),
                    None => tokens.push(Token::Lit('\\')),
                },
                other => tokens.push(Token::Lit(other)),
            }
        }
        Self { tokens }
    }

    /// Applies `f` to every literal character (e.g. lowercasing for the text field).
    pub(crate) fn map_literals(self, f: impl Fn(char) -> char) -> Self {
        let tokens = self
            .tokens
            .into_iter()
            .map(|t| match t {
                Token::Lit(c) => Token::Lit(f(c)),
                other => other,
            })
            .collect();
        Self { tokens }
    }

    /// The literal text before the first `*` or `?`.
    pub(crate) fn literal_prefix(&self) -> String {
        self.tokens
            .iter()
            .map_while(|t| match t {
                Token::Lit(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// True when the whole of `text` matches the pattern.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let tokens = &self.tokens;
        let (mut t, mut c) = (0usize, 0usize);
        // Position of the last `*` seen and the text position it was tried at.
        let mut backtrack: Option<(usize, usize)> = None;
        while c < chars.len() {
            match tokens.get(t) {
                Some(Token::Any) => {
                    backtrack = Some((t, c));
                    t += 1;
                    continue;
                }
                Some(Token::One) => {
                    t += 1;
                    c += 1;
                    continue;
                }
                Some(Token::Lit(l)) if *l == chars[c] => {
                    t += 1;
                    c += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((star, from)) => {
                    t = star + 1;
                    c = from + 1;
                    backtrack = Some((star, from + 1));
                }
                None => return false,
            }
        }
        tokens[t..].iter().all(|tok| *tok == Token::Any)
    }
}

/// Lower and upper bound of a range of term bytes.
pub(crate) type TermRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Matches documents having a term of `field` that starts with `prefix` and whose remainder
/// matches the pattern; or, built with [`WildcardQuery::ranges`], any term within byte ranges
/// (ranges and `exists` over `_unique`, which has no fast column for tantivy's own range).
#[derive(Debug, Clone)]
pub(crate) struct WildcardQuery {
    field: Field,
    prefix: Vec<u8>,
    pattern: Option<Arc<Pattern>>,
    ranges: Vec<TermRange>,
}

impl WildcardQuery {
    /// Creates the query; `prefix` are the term bytes every candidate term starts with.
    pub(crate) fn new(field: Field, prefix: Vec<u8>, pattern: Pattern) -> Self {
        let mut start = prefix.clone();
        start.extend_from_slice(pattern.literal_prefix().as_bytes());
        let range = if start.is_empty() {
            (Bound::Unbounded, Bound::Unbounded)
        } else {
            let end = prefix_end(&start).map_or(Bound::Unbounded, Bound::Excluded);
            (Bound::Included(start), end)
        };
        Self {
            field,
            prefix,
            pattern: Some(Arc::new(pattern)),
            ranges: vec![range],
        }
    }

    /// Matches every term (serialized value bytes) within one of `ranges`.
    pub(crate) fn ranges(field: Field, ranges: Vec<TermRange>) -> Self {
        Self {
            field,
            prefix: Vec::new(),
            pattern: None,
            ranges,
        }
    }

    /// Matches every term starting with one of `prefixes`.
    pub(crate) fn prefixes(field: Field, prefixes: Vec<Vec<u8>>) -> Self {
        let ranges = prefixes
            .into_iter()
            .map(|prefix| {
                let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
                (Bound::Included(prefix), end)
            })
            .collect();
        Self::ranges(field, ranges)
    }
}

impl Query for WildcardQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(WildcardWeight {
            query: self.clone(),
        }))
    }
}

struct WildcardWeight {
    query: WildcardQuery,
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl Weight for WildcardWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut matched = BitSet::with_max_value(reader.max_doc());
        let mut walked = 0usize;
        let inverted_index = reader.inverted_index(self.query.field)?;
        let dictionary = inverted_index.terms();
        let prefix_len = self.query.prefix.len();
        for (lower, upper) in &self.query.ranges {
            let mut builder = dictionary.range();
            builder = match lower {
                Bound::Included(bytes) => builder.ge(bytes),
                Bound::Excluded(bytes) => builder.gt(bytes),
                Bound::Unbounded => builder,
            };
            builder = match upper {
                Bound::Included(bytes) => builder.le(bytes),
                Bound::Excluded(bytes) => builder.lt(bytes),
                Bound::Unbounded => builder,
            };
            let mut stream = builder.into_stream()?;
            while stream.advance() {
                walked += 1;
                if walked.is_multiple_of(CHECK_TERMS) && stopped_while_building() {
                    return Err(stopped_error());
                }
                if let Some(pattern) = &self.query.pattern {
                    let Some(rest) = stream.key().get(prefix_len..) else {
                        continue;
                    };
                    let Ok(text) = std::str::from_utf8(rest) else {
                        continue;
                    };
                    if !pattern.matches(text) {
                        continue;
                    }
                }
                let mut postings = inverted_index
                    .read_block_postings_from_terminfo(stream.value(), IndexRecordOption::Basic)?;
                loop {
                    let docs = postings.docs();
                    if docs.is_empty() {
                        break;
                    }
                    for &doc in docs {
                        matched.insert(doc);
                    }
                    postings.advance();
                }
            }
        }
        Ok(Box::new(ConstScorer::new(
            BitSetDocSet::from(matched),
            boost,
        )))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        explain_match(self, reader, doc, "WildcardQuery")
    }
}

/// The explanation of a constant-score weight: `name` when `doc` matches, an error otherwise.
pub(crate) fn explain_match(
    weight: &dyn Weight,
    reader: &SegmentReader,
    doc: DocId,
    name: &'static str,
) -> tantivy::Result<Explanation> {
    let mut scorer = weight.scorer(reader, 1.0)?;
    if scorer.seek(doc) == doc {
        Ok(Explanation::new(name, 1.0))
    } else {
        Err(TantivyError::InvalidArgument(format!(
            "document {doc} does not match"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_globs() {
        let cases = [
            ("system:*", "system:serviceaccount", true),
            ("system:*", "admin", false),
            ("sys*em?", "system1", true),
            ("sys*em?", "system", false),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("\\*lit", "*lit", true),
            ("\\*lit", "xlit", false),
            ("a\\?", "a?", true),
            ("a\\?", "ab", false),
            ("*ab", "aab", true),
            ("é?", "éx", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Pattern::parse(pattern).matches(text),
                expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn literal_prefix_stops_at_first_wildcard() {
        assert_eq!(Pattern::parse("sys\\*t*em").literal_prefix(), "sys*t");
        assert_eq!(Pattern::parse("*x").literal_prefix(), "");
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
