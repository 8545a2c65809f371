//! The group-by collector: accumulators per group, per segment then merged by value.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crowsnest_query::AggFunc;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::values::{cmp_gval, cmp_segval, FxBuild, GVal, Reader, SegVal};
use super::{Plan, Source, MAX_COMBINATIONS_PER_EVENT};

// ---- accumulators ----

#[derive(Debug, Clone)]
pub(super) enum SegAgg {
    Count(u64),
    Dc(HashSet<SegVal, FxBuild>),
    Min(Option<SegVal>),
    Max(Option<SegVal>),
    Sum { sum: f64, n: u64, all_int: bool },
}

#[derive(Debug, Clone)]
pub(super) enum GAgg {
    Count(u64),
    Dc(HashSet<GVal>),
    Min(Option<GVal>),
    Max(Option<GVal>),
    Sum { sum: f64, n: u64, all_int: bool },
}

pub(super) fn new_seg_aggs(plan: &Plan) -> Vec<SegAgg> {
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

pub(super) fn update(agg: &mut SegAgg, has_source: bool, values: &[SegVal]) {
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

pub(super) fn merge_gagg(into: &mut GAgg, from: GAgg) {
    match (into, from) {
        (GAgg::Count(a), GAgg::Count(b)) => *a += b,
        (GAgg::Dc(a), GAgg::Dc(b)) => a.extend(b),
        (GAgg::Min(a), GAgg::Min(Some(b)))
            if a.as_ref().is_none_or(|x| cmp_gval(&b, x) == Ordering::Less) =>
        {
            *a = Some(b);
        }
        (GAgg::Max(a), GAgg::Max(Some(b)))
            if a.as_ref()
                .is_none_or(|x| cmp_gval(&b, x) == Ordering::Greater) =>
        {
            *a = Some(b);
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
    pub(super) total: u64,
    pub(super) overflow: bool,
    pub(super) groups: HashMap<Vec<GVal>, Vec<GAgg>>,
}

impl Partial {
    pub(super) fn merge(&mut self, other: Partial, plan: &Plan) {
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

pub(super) struct GroupCollector {
    pub(super) plan: Arc<Plan>,
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
        let ord_counts = ord_counts_for(&self.plan, &by);
        Ok(SegmentGroups {
            ord_counts,
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

pub(super) struct SegmentGroups {
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
    /// Fast path of `stats count() by <one keyword>`: counts per term ordinal.
    ord_counts: Option<(StrColumn, Vec<u64>)>,
}

/// The string column and counters of the fast path, when the plan allows it: one `by` path
/// holding only strings in this segment, only `count()` aggregations, no timechart.
pub(super) fn ord_counts_for(plan: &Plan, by: &[Reader]) -> Option<(StrColumn, Vec<u64>)> {
    if plan.span_micros.is_some() || by.len() != 1 {
        return None;
    }
    if !plan
        .aggs
        .iter()
        .all(|(f, s)| *f == AggFunc::Count && s.is_none())
    {
        return None;
    }
    match &by[0] {
        Reader::Columns {
            strings: Some(column),
            others,
        } if others.is_empty() => {
            let terms = column.num_terms();
            (terms <= plan.max_groups).then(|| (column.clone(), vec![0; terms]))
        }
        _ => None,
    }
}

impl SegmentCollector for SegmentGroups {
    type Fruit = Partial;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.total += 1;
        if let Some((column, counts)) = &mut self.ord_counts {
            let mut previous = None;
            for ord in column.ords().values_for_doc(doc) {
                if previous != Some(ord) {
                    if let Some(count) = counts.get_mut(ord as usize) {
                        *count += 1;
                    }
                    previous = Some(ord);
                }
            }
            return;
        }
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
            for ((agg, values), (_, source)) in
                group.iter_mut().zip(&self.agg_values).zip(&self.plan.aggs)
            {
                update(agg, source.is_some(), values);
            }
        }
    }

    fn harvest(mut self) -> Partial {
        if let Some((column, counts)) = self.ord_counts.take() {
            return harvest_ord_counts(&column, counts, self.total, self.plan.aggs.len());
        }
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

pub(super) fn harvest_ord_counts(
    column: &StrColumn,
    counts: Vec<u64>,
    total: u64,
    aggs: usize,
) -> Partial {
    let mut groups = HashMap::new();
    let mut buffer = String::new();
    for (ord, count) in counts.into_iter().enumerate() {
        if count == 0 {
            continue;
        }
        buffer.clear();
        if column.ord_to_str(ord as u64, &mut buffer).is_err() {
            continue;
        }
        groups.insert(
            vec![GVal::Str(buffer.clone())],
            vec![GAgg::Count(count); aggs],
        );
    }
    Partial {
        total,
        overflow: false,
        groups,
    }
}
