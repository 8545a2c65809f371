//! The parsed form of a query. This is the contract between the parser and the store.

use serde::Serialize;

/// A parsed query: a filter, then zero or more pipes applied in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Query {
    /// Which events match.
    pub filter: Filter,
    /// What to do with the matching events, in order.
    pub pipes: Vec<Pipe>,
}

/// A boolean filter over events.
///
/// `field: None` means free text: the store matches it against the full-text fields
/// (`message` and the raw event text). `field: Some(path)` names an event field by dotted path;
/// the store matches keyword fields exactly (case-sensitive) and the full-text fields
/// (`message`, `event.original`) by tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Filter {
    /// Matches every event (the empty query, or `*`).
    All,
    /// All of the filters match.
    And(Vec<Filter>),
    /// Any of the filters matches.
    Or(Vec<Filter>),
    /// The filter does not match.
    Not(Box<Filter>),
    /// `field:value` or a bare word. Escapes are already removed from `value`.
    Term {
        /// The field, or `None` for free text.
        field: Option<String>,
        /// The value, unescaped.
        value: String,
    },
    /// `field:"some phrase"` or a bare `"some phrase"`.
    Phrase {
        /// The field, or `None` for free text.
        field: Option<String>,
        /// The phrase text, unescaped.
        text: String,
    },
    /// `field:sys*em?` — `*` matches any run of characters, `?` exactly one. Escaped `\*`,
    /// `\?` are literal and appear in `pattern` as `\*`, `\?`; other escapes are resolved,
    /// except that a literal backslash (rare: `path:C\:\\tmp\\*`) appears as `\\`. So a
    /// backslash in `pattern` always makes the character after it literal.
    Wildcard {
        /// The field, or `None` for free text.
        field: Option<String>,
        /// The pattern.
        pattern: String,
    },
    /// `field:[a TO b]`, `field:{a TO b}`, `field:>=a`, `field:<b`, ... (`*` = unbounded).
    Range {
        /// The field.
        field: String,
        /// Lower bound.
        lower: RangeBound,
        /// Upper bound.
        upper: RangeBound,
    },
    /// `field:*` or `_exists_:field` — the field is present.
    Exists {
        /// The field.
        field: String,
    },
}

/// One end of a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RangeBound {
    /// No bound.
    Unbounded,
    /// The value itself is included.
    Inclusive(Scalar),
    /// The value itself is excluded.
    Exclusive(Scalar),
}

/// A literal in a range: numbers compare numerically, text (including timestamps in RFC 3339)
/// compares lexicographically, or as a time when the field is `@timestamp`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Scalar {
    /// A number.
    Number(f64),
    /// Anything else.
    Text(String),
}

/// A pipe stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Pipe {
    /// `stats count(), dc(user.name) as users by kubernetes.namespace, verb`
    Stats {
        /// The aggregations, in output column order (after the `by` columns).
        aggs: Vec<Agg>,
        /// Group-by fields (output columns first, in this order). Empty: one row.
        by: Vec<String>,
    },
    /// `timechart span=1m count() by user.name` — buckets on `@timestamp`.
    Timechart {
        /// Bucket width in seconds.
        span_secs: u64,
        /// The aggregations (default `count()`).
        aggs: Vec<Agg>,
        /// Optional split-by field.
        by: Option<String>,
    },
    /// `sort -count, user.name` (`-` = descending; `+` or nothing = ascending).
    Sort(Vec<SortKey>),
    /// `head 10` (default 10).
    Head(usize),
    /// `fields @timestamp, user.name, message`
    Fields(Vec<String>),
}

/// One aggregation of a `stats` or `timechart` pipe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agg {
    /// The function.
    pub func: AggFunc,
    /// Its field (`None` only for `count()`).
    pub field: Option<String>,
    /// The output column name: the `as` alias, else `count`, `dc(user.name)`, `avg(bytes)`, ...
    pub alias: String,
}

/// Aggregation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AggFunc {
    /// Number of events (`count()`), or of events having the field (`count(field)`).
    Count,
    /// Number of distinct values (`dc(field)`), exact.
    Dc,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean of numeric values.
    Avg,
    /// Sum of numeric values.
    Sum,
}

/// One key of a `sort` pipe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SortKey {
    /// Column (or event field) name.
    pub field: String,
    /// Descending when true.
    pub descending: bool,
}

impl Query {
    /// True when the query has a pipe, so its result is a table (`columns`/`rows`).
    pub fn is_tabular(&self) -> bool {
        !self.pipes.is_empty()
    }

    /// How many terms the filter searches for: see [`Filter::term_count`].
    pub fn term_count(&self) -> usize {
        self.filter.term_count()
    }
}

impl Filter {
    /// How many terms this filter searches for, the measure of its cost that a server bounds
    /// (before running anything):
    ///
    /// * every leaf clause (`Term`, `Phrase`, `Wildcard`, `Range`, `Exists`) counts one;
    /// * a `Term` or `Phrase` whose text has several words (runs of letters and digits) counts
    ///   one per word, since full-text fields search each word (`"disk is full"` is 3);
    /// * `All` and the operators (`And`, `Or`, `Not`) count nothing themselves.
    ///
    /// The walk uses its own stack, so any tree (even one built by hand, deeper than the
    /// parser's [`crate::MAX_DEPTH`]) is counted without recursion.
    pub fn term_count(&self) -> usize {
        let mut count = 0usize;
        let mut stack = vec![self];
        while let Some(filter) = stack.pop() {
            match filter {
                Filter::All => {}
                Filter::And(parts) | Filter::Or(parts) => stack.extend(parts),
                Filter::Not(inner) => stack.push(inner),
                Filter::Term { value: text, .. } | Filter::Phrase { text, .. } => {
                    count = count.saturating_add(words(text).max(1));
                }
                Filter::Wildcard { .. } | Filter::Range { .. } | Filter::Exists { .. } => {
                    count = count.saturating_add(1);
                }
            }
        }
        count
    }
}

/// Number of runs of letters and digits in `text`.
fn words(text: &str) -> usize {
    let mut count = 0;
    let mut in_word = false;
    for c in text.chars() {
        let alnum = c.is_alphanumeric();
        if alnum && !in_word {
            count += 1;
        }
        in_word = alnum;
    }
    count
}
