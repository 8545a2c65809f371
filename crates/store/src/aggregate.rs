//! `stats` and `timechart`: a group-by collector over fast-field columns.
//!
//! Why not tantivy's aggregation module: our output is a flat table (several `by` keys, any
//! mix of aggregations, exact `dc`), and the JSON request/response round trip of the
//! aggregation module costs more than it saves. The collector here reads, per segment, the
//! columns of each `by` path and aggregated path, keys groups by *segment-local* values
//! (string term ordinals, numbers), and resolves ordinals to strings once per group when the
//! segment is harvested. Segment, then partition results merge by value.
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
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crowsnest_model::{ecs, format_timestamp};
use crowsnest_query::{Agg, AggFunc, Pipe};
use serde_json::Value;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, DynamicColumn, StrColumn};
use tantivy::query::Query;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::partition::Partition;
use crate::schema::{is_text_path, micros_to_time, FIELDS, TS};
use crate::StoreError;

/// Most key combinations one event may produce (multi-valued `by` fields multiply).
const MAX_COMBINATIONS_PER_EVENT: usize = 64;

/// A result table.
pub(crate) struct Table {
    pub total: u64,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
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

fn plan_of(pipe: &Pipe, max_groups: usize) -> Result<(Plan, Vec<String>, Vec<Agg>), StoreError> {
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
    let mut by = Vec::with_capacity(by_names.len());
    for name in &by_names {
        by.push(source_of(name)?);
    }
    let mut plan_aggs = Vec::with_capacity(aggs.len());
    for agg in &aggs {
        let source = match (&agg.func, &agg.field) {
            (_, Some(field)) => Some(source_of(field)?),
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
    let plan = Plan {
        span_micros,
        by,
        aggs: plan_aggs,
        max_groups,
    };
    Ok((plan, by_names, aggs))
}

/// Runs an aggregating pipe over every match in `partitions`.
pub(crate) fn run(
    partitions: &[Arc<Partition>],
    query: &dyn Query,
    pipe: &Pipe,
    max_groups: usize,
) -> Result<Table, StoreError> {
    let (plan, by_names, aggs) = plan_of(pipe, max_groups)?;
    let collector = GroupCollector {
        plan: Arc::new(plan),
    };
    let mut merged = Partial::default();
    for partition in partitions {
        let searcher = partition.reader.searcher();
        let partial = searcher.search(query, &collector)?;
        merged.merge(partial, &collector.plan);
        if merged.overflow {
            break;
        }
    }
    if merged.overflow || merged.groups.len() > max_groups {
        return Err(StoreError::InvalidQuery(format!(
            "more than {max_groups} groups; narrow the query or group by fewer fields"
        )));
    }
    let plan = &collector.plan;
    Ok(build_table(merged, plan, &by_names, &aggs))
}

// ---- values ----

/// A value inside one segment (strings as term ordinals of the path's column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SegVal {
    Str(u64),
    I64(i64),
    U64(u64),
    F64(u64),
    Bool(bool),
    Date(i64),
}

impl SegVal {
    fn as_f64(self) -> Option<f64> {
        match self {
            SegVal::I64(v) => Some(v as f64),
            SegVal::U64(v) => Some(v as f64),
            SegVal::F64(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }
    fn is_int(self) -> bool {
        matches!(self, SegVal::I64(_) | SegVal::U64(_))
    }
}

/// A resolved value, numbers canonical (integral floats become integers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum GVal {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(u64),
    Date(i64),
    Str(String),
}

impl GVal {
    fn rank(&self) -> u8 {
        match self {
            GVal::Bool(_) => 0,
            GVal::Int(_) | GVal::UInt(_) | GVal::Float(_) => 1,
            GVal::Date(_) => 2,
            GVal::Str(_) => 3,
        }
    }
    fn number(&self) -> Option<f64> {
        match self {
            GVal::Int(v) => Some(*v as f64),
            GVal::UInt(v) => Some(*v as f64),
            GVal::Float(bits) => Some(f64::from_bits(*bits)),
            _ => None,
        }
    }
    fn to_json(&self) -> Value {
        match self {
            GVal::Bool(b) => Value::Bool(*b),
            GVal::Int(v) => Value::from(*v),
            GVal::UInt(v) => Value::from(*v),
            GVal::Float(bits) => number_json(f64::from_bits(*bits)),
            GVal::Date(micros) => micros_to_time(*micros)
                .map(|t| Value::String(format_timestamp(t)))
                .unwrap_or(Value::Null),
            GVal::Str(s) => Value::String(s.clone()),
        }
    }
}

fn cmp_gval(a: &GVal, b: &GVal) -> Ordering {
    match (a, b) {
        (GVal::Int(x), GVal::Int(y)) => x.cmp(y),
        (GVal::UInt(x), GVal::UInt(y)) => x.cmp(y),
        (GVal::Str(x), GVal::Str(y)) => x.cmp(y),
        (GVal::Date(x), GVal::Date(y)) => x.cmp(y),
        (GVal::Bool(x), GVal::Bool(y)) => x.cmp(y),
        _ => match (a.number(), b.number()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => a.rank().cmp(&b.rank()),
        },
    }
}

fn cmp_segval(a: SegVal, b: SegVal) -> Ordering {
    match (a, b) {
        (SegVal::Str(x), SegVal::Str(y)) => x.cmp(&y),
        (SegVal::Date(x), SegVal::Date(y)) => x.cmp(&y),
        (SegVal::Bool(x), SegVal::Bool(y)) => x.cmp(&y),
        (SegVal::I64(x), SegVal::I64(y)) => x.cmp(&y),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => seg_rank(a).cmp(&seg_rank(b)),
        },
    }
}

fn seg_rank(v: SegVal) -> u8 {
    match v {
        SegVal::Bool(_) => 0,
        SegVal::I64(_) | SegVal::U64(_) | SegVal::F64(_) => 1,
        SegVal::Date(_) => 2,
        SegVal::Str(_) => 3,
    }
}

/// A JSON number, integral when it is one (and exact in f64).
fn number_json(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        return Value::from(v as i64);
    }
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

// ---- column readers ----

/// The columns of one source in one segment.
enum Reader {
    Ts(Option<Column<tantivy::DateTime>>),
    Columns {
        strings: Option<StrColumn>,
        others: Vec<DynamicColumn>,
    },
}

impl Reader {
    fn open(source: &Source, segment: &SegmentReader) -> tantivy::Result<Self> {
        match source {
            Source::Ts => Ok(Reader::Ts(segment.fast_fields().date(TS).ok())),
            Source::Path(name) => {
                let mut strings = None;
                let mut others = Vec::new();
                for handle in segment.fast_fields().dynamic_column_handles(name)? {
                    match handle.open()? {
                        DynamicColumn::Str(column) => strings = Some(column),
                        other => others.push(other),
                    }
                }
                Ok(Reader::Columns { strings, others })
            }
        }
    }

    fn read(&self, doc: DocId, out: &mut Vec<SegVal>) {
        out.clear();
        match self {
            Reader::Ts(column) => {
                if let Some(ts) = column.as_ref().and_then(|c| c.first(doc)) {
                    out.push(SegVal::Date(ts.into_timestamp_micros()));
                }
            }
            Reader::Columns { strings, others } => {
                if let Some(column) = strings {
                    out.extend(column.ords().values_for_doc(doc).map(SegVal::Str));
                }
                for column in others {
                    match column {
                        DynamicColumn::I64(c) => out.extend(c.values_for_doc(doc).map(SegVal::I64)),
                        DynamicColumn::U64(c) => out.extend(c.values_for_doc(doc).map(SegVal::U64)),
                        DynamicColumn::F64(c) => {
                            out.extend(c.values_for_doc(doc).map(|v| SegVal::F64(v.to_bits())))
                        }
                        DynamicColumn::Bool(c) => out.extend(c.values_for_doc(doc).map(SegVal::Bool)),
                        DynamicColumn::DateTime(c) => out.extend(
                            c.values_for_doc(doc)
                                .map(|v| SegVal::Date(v.into_timestamp_micros())),
                        ),
                        _ => {}
                    }
                }
            }
        }
    }

    fn resolve(&self, value: SegVal, buffer: &mut String) -> GVal {
        match value {
            SegVal::Str(ord) => {
                buffer.clear();
                if let Reader::Columns {
                    strings: Some(column),
                    ..
                } = self
                {
                    if column.ord_to_str(ord, buffer).is_err() {
                        buffer.clear();
                    }
                }
                GVal::Str(buffer.clone())
            }
            SegVal::I64(v) => GVal::Int(v),
            SegVal::U64(v) => match i64::try_from(v) {
                Ok(i) => GVal::Int(i),
                Err(_) => GVal::UInt(v),
            },
            SegVal::F64(bits) => {
                let f = f64::from_bits(bits);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    GVal::Int(f as i64)
                } else {
                    GVal::Float(bits)
                }
            }
            SegVal::Bool(b) => GVal::Bool(b),
            SegVal::Date(micros) => GVal::Date(micros),
        }
    }
}

// ---- accumulators ----

#[derive(Debug, Clone)]
enum SegAgg {
    Count(u64),
    Dc(HashSet<SegVal, FxBuild>),
    Min(Option<SegVal>),
    Max(Option<SegVal>),
    Sum { sum: f64, n: u64, all_int: bool },
}

#[derive(Debug, Clone)]
enum GAgg {
    Count(u64),
    Dc(HashSet<GVal>),
    Min(Option<GVal>),
    Max(Option<GVal>),
    Sum { sum: f64, n: u64, all_int: bool },
}

fn new_seg_aggs(plan: &Plan) -> Vec<SegAgg> {
    plan.aggs
        .iter()
        .map(|(func, _)| match func {
            AggFunc::Count => SegAgg::Count(0),
            AggFunc::Dc => SegAgg::Dc(HashSet::default()),
            AggFunc::Min => SegAgg::Min(None),
            AggFunc::Max => SegAgg::Max(None),
            AggFunc::Avg | AggFunc::Sum => SegAgg::Sum {
                sum: 0.0,
                n: 0,
                all_int: true,
            },
        })
        .collect()
}

fn update(agg: &mut SegAgg, has_source: bool, values: &[SegVal]) {
    match agg {
        SegAgg::Count(n) => {
            if !has_source || !values.is_empty() {
                *n += 1;
            }
        }
        SegAgg::Dc(set) => set.extend(values.iter().copied()),
        SegAgg::Min(current) => {
            for &v in values {
                if current.is_none_or(|c| cmp_segval(v, c) == Ordering::Less) {
                    *current = Some(v);
                }
            }
        }
        SegAgg::Max(current) => {
            for &v in values {
                if current.is_none_or(|c| cmp_segval(v, c) == Ordering::Greater) {
                    *current = Some(v);
                }
            }
        }
        SegAgg::Sum { sum, n, all_int } => {
            for &v in values {
                if let Some(f) = v.as_f64() {
                    *sum += f;
                    *n += 1;
                    *all_int &= v.is_int();
                }
            }
        }
    }
}

fn merge_gagg(into: &mut GAgg, from: GAgg) {
    match (into, from) {
        (GAgg::Count(a), GAgg::Count(b)) => *a += b,
        (GAgg::Dc(a), GAgg::Dc(b)) => a.extend(b),
        (GAgg::Min(a), GAgg::Min(Some(b))) => {
            if a.as_ref().is_none_or(|x| cmp_gval(&b, x) == Ordering::Less) {
                *a = Some(b);
            }
        }
        (GAgg::Max(a), GAgg::Max(Some(b))) => {
            if a.as_ref().is_none_or(|x| cmp_gval(&b, x) == Ordering::Greater) {
                *a = Some(b);
            }
        }
        (
            GAgg::Sum { sum, n, all_int },
            GAgg::Sum {
                sum: s2,
                n: n2,
                all_int: i2,
            },
        ) => {
            *sum += s2;
            *n += n2;
            *all_int &= i2;
        }
        _ => {}
    }
}

// ---- collector ----

/// Groups of one segment, partition or of the whole search.
#[derive(Default)]
pub(crate) struct Partial {
    total: u64,
    overflow: bool,
    groups: HashMap<Vec<GVal>, Vec<GAgg>>,
}

impl Partial {
    fn merge(&mut self, other: Partial, plan: &Plan) {
        self.total += other.total;
        self.overflow |= other.overflow;
        for (key, aggs) in other.groups {
            match self.groups.get_mut(&key) {
                Some(existing) => {
                    for (into, from) in existing.iter_mut().zip(aggs) {
                        merge_gagg(into, from);
                    }
                }
                None => {
                    self.groups.insert(key, aggs);
                }
            }
        }
        if self.groups.len() > plan.max_groups {
            self.overflow = true;
        }
    }
}

struct GroupCollector {
    plan: Arc<Plan>,
}

impl Collector for GroupCollector {
    type Fruit = Partial;
    type Child = SegmentGroups;

    fn for_segment(
        &self,
        _segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentGroups> {
        let ts = match self.plan.span_micros {
            Some(_) => Some(Reader::open(&Source::Ts, segment)?),
            None => None,
        };
        let mut by = Vec::with_capacity(self.plan.by.len());
        for source in &self.plan.by {
            by.push(Reader::open(source, segment)?);
        }
        let mut aggs = Vec::with_capacity(self.plan.aggs.len());
        for (_, source) in &self.plan.aggs {
            aggs.push(match source {
                Some(source) => Some(Reader::open(source, segment)?),
                None => None,
            });
        }
        let key_len = by.len() + usize::from(ts.is_some());
        Ok(SegmentGroups {
            plan: Arc::clone(&self.plan),
            ts,
            key_values: vec![Vec::new(); by.len()],
            agg_values: vec![Vec::new(); aggs.len()],
            by,
            aggs,
            key: Vec::with_capacity(key_len),
            index: HashMap::default(),
            groups: Vec::new(),
            keys: Vec::new(),
            total: 0,
            overflow: false,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Partial>) -> tantivy::Result<Partial> {
        let mut merged = Partial::default();
        for fruit in fruits {
            merged.merge(fruit, &self.plan);
        }
        Ok(merged)
    }
}

struct SegmentGroups {
    plan: Arc<Plan>,
    ts: Option<Reader>,
    by: Vec<Reader>,
    aggs: Vec<Option<Reader>>,
    key_values: Vec<Vec<SegVal>>,
    agg_values: Vec<Vec<SegVal>>,
    key: Vec<SegVal>,
    index: HashMap<Vec<SegVal>, u32, FxBuild>,
    groups: Vec<Vec<SegAgg>>,
    keys: Vec<Vec<SegVal>>,
    total: u64,
    overflow: bool,
}

impl SegmentCollector for SegmentGroups {
    type Fruit = Partial;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.total += 1;
        if self.overflow {
            return;
        }
        let mut bucket = None;
        if let (Some(reader), Some(span)) = (&self.ts, self.plan.span_micros) {
            let mut ts = Vec::with_capacity(1);
            reader.read(doc, &mut ts);
            let Some(SegVal::Date(micros)) = ts.first().copied() else {
                return;
            };
            bucket = Some(SegVal::Date(micros.div_euclid(span) * span));
        }
        let mut combinations = 1usize;
        for (reader, values) in self.by.iter().zip(self.key_values.iter_mut()) {
            reader.read(doc, values);
            if values.is_empty() {
                return;
            }
            values.sort_unstable_by(|a, b| cmp_segval(*a, *b));
            values.dedup();
            combinations = combinations.saturating_mul(values.len());
        }
        for (reader, values) in self.aggs.iter().zip(self.agg_values.iter_mut()) {
            match reader {
                Some(reader) => reader.read(doc, values),
                None => values.clear(),
            }
        }
        for combination in 0..combinations.min(MAX_COMBINATIONS_PER_EVENT) {
            self.key.clear();
            if let Some(b) = bucket {
                self.key.push(b);
            }
            let mut rest = combination;
            for values in &self.key_values {
                self.key.push(values[rest % values.len()]);
                rest /= values.len();
            }
            let slot = match self.index.get(self.key.as_slice()) {
                Some(&slot) => slot as usize,
                None => {
                    if self.groups.len() >= self.plan.max_groups {
                        self.overflow = true;
                        return;
                    }
                    let slot = self.groups.len();
                    self.index.insert(self.key.clone(), slot as u32);
                    self.keys.push(self.key.clone());
                    self.groups.push(new_seg_aggs(&self.plan));
                    slot
                }
            };
            let group = &mut self.groups[slot];
            for ((agg, values), (_, source)) in group
                .iter_mut()
                .zip(&self.agg_values)
                .zip(&self.plan.aggs)
            {
                update(agg, source.is_some(), values);
            }
        }
    }

    fn harvest(self) -> Partial {
        let mut partial = Partial {
            total: self.total,
            overflow: self.overflow,
            groups: HashMap::with_capacity(self.groups.len()),
        };
        let mut buffer = String::new();
        let key_readers: Vec<&Reader> = self.ts.iter().chain(self.by.iter()).collect();
        for (key, aggs) in self.keys.into_iter().zip(self.groups) {
            let resolved: Vec<GVal> = key
                .iter()
                .zip(&key_readers)
                .map(|(v, reader)| reader.resolve(*v, &mut buffer))
                .collect();
            let gaggs: Vec<GAgg> = aggs
                .into_iter()
                .zip(&self.aggs)
                .map(|(agg, reader)| {
                    let mut resolve = |v: SegVal| match reader {
                        Some(r) => r.resolve(v, &mut buffer),
                        None => GVal::Bool(false),
                    };
                    match agg {
                        SegAgg::Count(n) => GAgg::Count(n),
                        SegAgg::Dc(set) => GAgg::Dc(set.into_iter().map(&mut resolve).collect()),
                        SegAgg::Min(v) => GAgg::Min(v.map(&mut resolve)),
                        SegAgg::Max(v) => GAgg::Max(v.map(&mut resolve)),
                        SegAgg::Sum { sum, n, all_int } => GAgg::Sum { sum, n, all_int },
                    }
                })
                .collect();
            match partial.groups.get_mut(&resolved) {
                // Two ordinals can resolve to one value only for canonicalized numbers.
                Some(existing) => {
                    for (into, from) in existing.iter_mut().zip(gaggs) {
                        merge_gagg(into, from);
                    }
                }
                None => {
                    partial.groups.insert(resolved, gaggs);
                }
            }
        }
        partial
    }
}

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
            let values = aggs.iter().zip(&funcs).map(|(a, f)| agg_json(a, *f)).collect();
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

// ---- hashing ----

/// FxHash (rustc's hasher): fast for the small integer keys of segment groups.
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.hash = (self.hash.rotate_left(5) ^ i).wrapping_mul(FX_SEED);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;
