//! `stats` and `timechart`: a group-by collector over fast-field columns.
//!
//! Why not tantivy's aggregation module: our output is a flat table (several `by` keys, any
//! mix of aggregations, exact `dc`), and the JSON request/response round trip of the
//! aggregation module costs more than it saves. The collector here reads, per segment, the
//! columns of each `by` path and aggregated path, keys groups by *segment-local* values
//! (string term ordinals, numbers), and resolves ordinals to strings once per group when the
//! segment is harvested. Segment, then partition results merge by value.
//!
//! Segments of a partition are collected in parallel on the store's search executor (two
//! threads: the machine this targets has two cores); `stats count() by <keyword>` takes a fast
//! path that counts per term ordinal in a plain vector.
//!
//! Semantics:
//! - An event missing a `by` field is left out of the table (like Splunk's `stats`); a
//!   multi-valued `by` field puts the event in one group per value.
//! - `count()` counts events, `count(f)` events having `f`; `dc(f)` is exact (a set per group);
//!   `min`/`max` compare numbers numerically and strings lexicographically; `sum`/`avg` use
//!   numeric values only and are `null` when there is none.
//! - Numbers are grouped by value whatever their JSON type (403 and 403.0 are one group).
//! - `timechart`: buckets of `span` seconds aligned to the Unix epoch, output as RFC 3339 in
//!   `_time`. Without `by`, empty buckets between the first and last one are filled with zero
//!   counts; with `by`, only buckets with events appear (long format).
//! - More than `max_groups` groups is refused ([`StoreError::InvalidQuery`]).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use crowsnest_model::ecs;
use crowsnest_query::{Agg, AggFunc, Pipe};
use serde_json::Value;
use tantivy::query::{BooleanQuery, Occur, Query};
use tantivy::schema::Field;
use tantivy::Executor;

use crate::filter;
use crate::partition::Partition;
use crate::schema::{is_text_path, twins, unique_root, FIELDS};
use crate::search::{self, SearchControl};
use crate::StoreError;

/// Most key combinations one event may produce (multi-valued `by` fields multiply).
const MAX_COMBINATIONS_PER_EVENT: usize = 64;

/// A result table.
pub(crate) struct Table {
    pub total: u64,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Fields of the pipe with values that have no column, and how many matching events hold one.
    pub warnings: Vec<String>,
}

/// Where the values of a key or an aggregation come from.
#[derive(Debug, Clone)]
enum Source {
    /// The `_ts` column (`@timestamp`).
    Ts,
    /// A path of the keyword JSON field, as a full column name (`fields.user.name`).
    Path(String),
}

fn source_of(field: &str) -> Result<Source, StoreError> {
    if field == ecs::TIMESTAMP {
        return Ok(Source::Ts);
    }
    if is_text_path(field) {
        return Err(StoreError::InvalidQuery(format!(
            "`{field}` is full text and cannot be aggregated; expected a keyword or numeric field"
        )));
    }
    if let Some(root) = unique_root(field) {
        return Err(StoreError::InvalidQuery(format!(
            "`{field}` holds a value unique to each event (`{root}` is indexed for search, not for aggregation); expected a field events share, or `@timestamp` for time"
        )));
    }
    Ok(Source::Path(format!("{FIELDS}.{field}")))
}

#[derive(Debug)]
struct Plan {
    /// Bucket width of a timechart (first key), in microseconds.
    span_micros: Option<i64>,
    by: Vec<Source>,
    aggs: Vec<(AggFunc, Option<Source>)>,
    max_groups: usize,
}

/// The plan of a pipe, and when it names audit paths with ECS twins (`schema/twins.rs`), the
/// plan reading the twins instead, for the events indexed with their twins once.
#[allow(clippy::type_complexity)]
fn plan_of(
    pipe: &Pipe,
    max_groups: usize,
) -> Result<(Plan, Option<Plan>, Vec<String>, Vec<Agg>), StoreError> {
    let (span_micros, by_names, aggs) = match pipe {
        Pipe::Stats { aggs, by } => (None, by.clone(), aggs.clone()),
        Pipe::Timechart {
            span_secs,
            aggs,
            by,
        } => {
            if *span_secs == 0 {
                return Err(StoreError::InvalidQuery(
                    "timechart span must be at least 1s".into(),
                ));
            }
            let span = i64::try_from(*span_secs)
                .ok()
                .and_then(|s| s.checked_mul(1_000_000))
                .ok_or_else(|| StoreError::InvalidQuery("timechart span is too large".into()))?;
            let aggs = if aggs.is_empty() {
                vec![Agg {
                    func: AggFunc::Count,
                    field: None,
                    alias: "count".into(),
                }]
            } else {
                aggs.clone()
            };
            (Some(span), by.iter().cloned().collect(), aggs)
        }
        other => {
            return Err(StoreError::InvalidQuery(format!(
                "expected `stats` or `timechart`, got {other:?}"
            )))
        }
    };
    let plan = plan_on(span_micros, &by_names, &aggs, max_groups, |name| name)?;
    let names_twins = by_names
        .iter()
        .chain(aggs.iter().filter_map(|agg| agg.field.as_ref()))
        .any(|name| twins::is_twin(name));
    let twin_plan = if names_twins {
        Some(plan_on(
            span_micros,
            &by_names,
            &aggs,
            max_groups,
            |name| twins::twin_of(name).unwrap_or(name),
        )?)
    } else {
        None
    };
    Ok((plan, twin_plan, by_names, aggs))
}

/// The plan of `by_names` and `aggs`, each field read at `path(field)`.
fn plan_on<'a>(
    span_micros: Option<i64>,
    by_names: &'a [String],
    aggs: &'a [Agg],
    max_groups: usize,
    path: impl Fn(&'a str) -> &'a str,
) -> Result<Plan, StoreError> {
    let mut by = Vec::with_capacity(by_names.len());
    for name in by_names {
        by.push(source_of(path(name))?);
    }
    let mut plan_aggs = Vec::with_capacity(aggs.len());
    for agg in aggs {
        let source = match (&agg.func, &agg.field) {
            (_, Some(field)) => Some(source_of(path(field))?),
            (AggFunc::Count, None) => None,
            (func, None) => {
                return Err(StoreError::InvalidQuery(format!(
                    "`{}` needs a field; expected e.g. `{:?}(bytes)`",
                    agg.alias, func
                )))
            }
        };
        plan_aggs.push((agg.func, source));
    }
    Ok(Plan {
        span_micros,
        by,
        aggs: plan_aggs,
        max_groups,
    })
}

/// Runs an aggregating pipe over every match in `partitions`.
pub(crate) fn run(
    partitions: &[Arc<Partition>],
    query: &dyn Query,
    pipe: &Pipe,
    max_groups: usize,
    executor: &Executor,
    (has, unique): (Field, Field),
    control: &SearchControl,
) -> Result<Table, StoreError> {
    let (plan, twin_plan, by_names, aggs) = plan_of(pipe, max_groups)?;
    let warnings = without_columns(partitions, query, &by_names, &aggs, (has, unique), control)?;
    let plan = Arc::new(plan);
    // With audit twins named, the events indexed with their twins once are read through the
    // twins' columns, the others through their own: two disjoint passes, merged by value.
    let passes: Vec<(Box<dyn Query>, GroupCollector)> = match twin_plan {
        None => vec![(query.box_clone(), GroupCollector { plan: plan.clone() })],
        Some(twin_plan) => {
            let unmarked: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                (Occur::Must, query.box_clone()),
                (Occur::MustNot, filter::has(has, twins::MARKER)),
            ]));
            let marked: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                (Occur::Must, query.box_clone()),
                (Occur::Must, filter::has(has, twins::MARKER)),
            ]));
            vec![
                (unmarked, GroupCollector { plan: plan.clone() }),
                (
                    marked,
                    GroupCollector {
                        plan: Arc::new(twin_plan),
                    },
                ),
            ]
        }
    };
    let mut merged = Partial::default();
    'partitions: for partition in partitions {
        let searcher = partition.reader.searcher();
        for (query, collector) in &passes {
            let partial = search::collect(
                &searcher,
                query.as_ref(),
                collector,
                control,
                Some(executor),
            )?;
            merged.merge(partial, &plan);
            if merged.overflow {
                break 'partitions;
            }
        }
    }
    if merged.overflow || merged.groups.len() > max_groups {
        return Err(StoreError::InvalidQuery(format!(
            "more than {max_groups} groups; narrow the query or group by fewer fields"
        )));
    }
    let mut table = build_table(merged, &plan, &by_names, &aggs);
    table.warnings = warnings;
    Ok(table)
}

/// The warnings of an aggregation: for each field it reads, the matching events holding a value
/// of it in `_unique` (no column there: identifiers, long text, paths past the per-partition
/// cap; `schema/route.rs`), which the table leaves out.
fn without_columns(
    partitions: &[Arc<Partition>],
    query: &dyn Query,
    by_names: &[String],
    aggs: &[Agg],
    (has, unique): (Field, Field),
    control: &SearchControl,
) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<&str> = Vec::new();
    for name in by_names
        .iter()
        .chain(aggs.iter().filter_map(|agg| agg.field.as_ref()))
    {
        if name != ecs::TIMESTAMP && !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let mut warnings = Vec::new();
    for name in names {
        // An audit path's value of an event indexed with its twins once is at the twin's path.
        let mut at = vec![(Occur::Should, filter::in_unique(unique, name))];
        if let Some(twin) = twins::twin_of(name) {
            let on_twin: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                (Occur::Must, filter::has(has, twins::MARKER)),
                (Occur::Must, filter::in_unique(unique, twin)),
            ]));
            at.push((Occur::Should, on_twin));
        }
        let query: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
            (Occur::Must, query.box_clone()),
            (Occur::Must, Box::new(BooleanQuery::new(at))),
        ]));
        let mut count = 0u64;
        for partition in partitions {
            let searcher = partition.reader.searcher();
            count += search::collect(
                &searcher,
                query.as_ref(),
                &tantivy::collector::Count,
                control,
                None,
            )? as u64;
        }
        if count > 0 {
            warnings.push(format!(
                "`{name}` is not aggregatable in {count} matching events (identifiers, long text, or a path past the store's column cap have no column): the table leaves those values out; declare the field in `store.aggregate_fields` to aggregate it"
            ));
        }
    }
    Ok(warnings)
}

mod collector;
mod values;

use collector::{GAgg, GroupCollector, Partial};
use values::{cmp_gval, number_json, GVal};

// ---- output ----

fn agg_json(agg: &GAgg, func: AggFunc) -> Value {
    match agg {
        GAgg::Count(n) => Value::from(*n),
        GAgg::Dc(set) => Value::from(set.len() as u64),
        GAgg::Min(v) | GAgg::Max(v) => v.as_ref().map(GVal::to_json).unwrap_or(Value::Null),
        GAgg::Sum { sum, n, all_int } => {
            if *n == 0 {
                Value::Null
            } else if func == AggFunc::Avg {
                number_json(*sum / *n as f64)
            } else if *all_int {
                number_json(*sum)
            } else {
                serde_json::Number::from_f64(*sum)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
    }
}

fn empty_aggs(plan: &Plan) -> Vec<GAgg> {
    plan.aggs
        .iter()
        .map(|(func, _)| match func {
            AggFunc::Count => GAgg::Count(0),
            AggFunc::Dc => GAgg::Dc(HashSet::new()),
            AggFunc::Min => GAgg::Min(None),
            AggFunc::Max => GAgg::Max(None),
            AggFunc::Avg | AggFunc::Sum => GAgg::Sum {
                sum: 0.0,
                n: 0,
                all_int: true,
            },
        })
        .collect()
}

/// Compares JSON numbers (others after numbers, nulls last).
fn cmp_json_desc(a: &Value, b: &Value) -> Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn build_table(mut merged: Partial, plan: &Plan, by_names: &[String], aggs: &[Agg]) -> Table {
    let mut columns = Vec::new();
    if plan.span_micros.is_some() {
        columns.push("_time".to_string());
    }
    columns.extend(by_names.iter().cloned());
    columns.extend(aggs.iter().map(|a| a.alias.clone()));
    if plan.span_micros.is_none() && plan.by.is_empty() && merged.groups.is_empty() {
        merged.groups.insert(Vec::new(), empty_aggs(plan));
    }
    if let (Some(span), true) = (plan.span_micros, plan.by.is_empty()) {
        fill_buckets(&mut merged, span, plan);
    }
    let mut groups: Vec<(Vec<GVal>, Vec<GAgg>)> = merged.groups.into_iter().collect();
    let funcs: Vec<AggFunc> = plan.aggs.iter().map(|(f, _)| *f).collect();
    let mut rows: Vec<(Vec<GVal>, Vec<Value>)> = groups
        .drain(..)
        .map(|(key, aggs)| {
            let values = aggs
                .iter()
                .zip(&funcs)
                .map(|(a, f)| agg_json(a, *f))
                .collect();
            (key, values)
        })
        .collect();
    let cmp_keys = |a: &[GVal], b: &[GVal]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| cmp_gval(x, y))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    };
    if plan.span_micros.is_some() {
        rows.sort_by(|a, b| cmp_keys(&a.0, &b.0));
    } else {
        rows.sort_by(|a, b| {
            let first = match (a.1.first(), b.1.first()) {
                (Some(x), Some(y)) => cmp_json_desc(x, y),
                _ => Ordering::Equal,
            };
            first.then_with(|| cmp_keys(&a.0, &b.0))
        });
    }
    let rows = rows
        .into_iter()
        .map(|(key, values)| key.iter().map(GVal::to_json).chain(values).collect())
        .collect();
    Table {
        total: merged.total,
        columns,
        rows,
        warnings: Vec::new(),
    }
}

/// Adds zero rows for the empty buckets between the first and the last one.
fn fill_buckets(merged: &mut Partial, span: i64, plan: &Plan) {
    let buckets: Vec<i64> = merged
        .groups
        .keys()
        .filter_map(|k| match k.first() {
            Some(GVal::Date(m)) => Some(*m),
            _ => None,
        })
        .collect();
    let (Some(&first), Some(&last)) = (buckets.iter().min(), buckets.iter().max()) else {
        return;
    };
    let count = (last - first) / span + 1;
    if usize::try_from(count).map_or(true, |c| c > plan.max_groups) {
        return;
    }
    let mut bucket = first;
    while bucket <= last {
        merged
            .groups
            .entry(vec![GVal::Date(bucket)])
            .or_insert_with(|| empty_aggs(plan));
        bucket += span;
    }
}
