//! The crowsnest query language.
//!
//! A query is a Lucene/KQL-style filter optionally followed by pipes:
//!
//! ```text
//! kubernetes.namespace:prod AND NOT user.name:system\:* | stats count() by user.name | sort -count | head 5
//! ```
//!
//! [`parse`] turns the text into a [`Query`]: a store-agnostic [`Filter`] tree plus a list of
//! [`Pipe`]s. The store executes the filter and the aggregating pipes (`stats`, `timechart`);
//! [`rows`] applies the row-level pipes (`sort`, `head`, `fields`) to any table.

mod ast;
mod parser;
pub mod rows;
pub use rows::RowError;

pub use ast::{Agg, AggFunc, Filter, Pipe, Query, RangeBound, Scalar, SortKey};
pub use parser::{parse, ParseError};
