//! The crowsnest query language.
//!
//! A query is a Lucene/KQL-style filter optionally followed by Splunk-style pipes:
//!
//! ```text
//! kubernetes.namespace:prod AND NOT user.name:system\:* | stats count() by user.name | sort -count | head 5
//! ```
//!
//! [`parse`] turns the text into a [`Query`]: a store-agnostic [`Filter`] tree plus a list of
//! [`Pipe`]s. The store executes the filter and the aggregating pipe (`stats` or `timechart`,
//! always the first pipe); [`rows`] applies the row-level pipes (`sort`, `head`, `fields`) to
//! any table. Every [`Query`] prints back as canonical query text (`Display`), and the parser
//! reads that text back to the same tree.
//!
//! ```
//! use crowsnest_query::{parse, Filter};
//!
//! let query = parse("verb:(delete OR patch) -user.name:system\\:*")?;
//! assert!(matches!(query.filter, Filter::And(_)));
//! assert_eq!(
//!     query.to_string(),
//!     "(verb:delete OR verb:patch) AND NOT user.name:system\\:*"
//! );
//! assert_eq!(parse(&query.to_string())?, query);
//! # Ok::<(), crowsnest_query::ParseError>(())
//! ```
//!
//! The language reference (every construct, escapes, defaults and errors) is the
//! documentation of [`parse`].

mod ast;
mod display;
mod parser;
pub mod rows;

pub use ast::{Agg, AggFunc, Filter, Pipe, Query, RangeBound, Scalar, SortKey};
pub use parser::{parse, ParseError, DEFAULT_HEAD, DEFAULT_SPAN_SECS, MAX_DEPTH};
pub use rows::RowError;
