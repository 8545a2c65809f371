//! Search execution: partition pruning, hits newest first, tables from events.
//!
//! Partitions cover disjoint time ranges, so "newest first across partitions" is "partitions
//! newest first, each sorted by `_ts` descending". Each partition is searched once with
//! `(Count, TopDocs)`: the count keeps `total` exact, and the top-docs window is shifted by the
//! matches of the newer partitions, so `offset`/`limit` are correct across partitions and a
//! partition past the window only counts.
//!
//! Every search runs under a [`SearchControl`]: a time budget and a cancellation flag (set when
//! the client goes away). tantivy has no cancellation of its own, so the query is wrapped
//! ([`ControlledQuery`]): its scorer checks the control every [`CHECK_EVERY`] documents and
//! ends the iteration when the search must stop, the long term-dictionary walks of wildcards
//! check it every few thousand terms, and the loops over partitions and stored events check it
//! too. A stopped search returns [`StoreError::Timeout`] or [`StoreError::Cancelled`], never a
//! partial result.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crowsnest_model::{ecs, Event};
use crowsnest_query::{rows, Pipe};
use serde_json::Value;
use tantivy::collector::{Collector, Count, TopDocs};
use tantivy::query::{BooleanQuery, EnableScoring, Explanation, Occur, Query, Scorer, Weight};
use tantivy::schema::Value as _;
use tantivy::{
    DocId, DocSet, Executor, Order, Score, Searcher, SegmentReader, TantivyDocument, TantivyError,
    COLLECT_BLOCK_BUFFER_LEN, TERMINATED,
};

use crate::filter::{time_window_query, to_query};
use crate::partition::Partition;
use crate::schema::{SchemaFields, TS};
use crate::{aggregate, SearchRequest, SearchResponse, Store, StoreError};

/// Most events a non-aggregating table (`| fields ..`, `| sort ..`) is built from.
pub const TABLE_EVENT_LIMIT: usize = 10_000;

/// Columns of an event table without a `fields` pipe.
const DEFAULT_COLUMNS: [&str; 3] = [ecs::TIMESTAMP, ecs::EVENT_DATASET, ecs::MESSAGE];

/// Documents a scorer yields between two checks of the [`SearchControl`].
pub(crate) const CHECK_EVERY: u32 = 4096;

/// Bounds of one search: a time budget and a cancellation flag. The default has neither.
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use std::sync::Arc;
/// use std::time::Duration;
/// use crowsnest_store::SearchControl;
///
/// let cancel = Arc::new(AtomicBool::new(false));
/// let control = SearchControl::new()
///     .with_timeout(Duration::from_secs(30))
///     .with_cancel(cancel.clone());
/// assert!(control.check().is_ok());
/// cancel.store(true, std::sync::atomic::Ordering::Relaxed);
/// assert!(control.check().is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct SearchControl {
    /// When the search must have ended, and the budget it came from (for the message).
    deadline: Option<(Instant, Duration)>,
    /// Set (by anyone) to stop the search.
    cancel: Option<Arc<AtomicBool>>,
}

impl SearchControl {
    /// No budget, no cancellation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the search with [`StoreError::Timeout`] once `budget` has passed from now.
    pub fn with_timeout(mut self, budget: Duration) -> Self {
        let now = Instant::now();
        self.deadline = Some((now.checked_add(budget).unwrap_or(now), budget));
        self
    }

    /// Stops the search with [`StoreError::Cancelled`] once `flag` is true.
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// `Ok` while the search may go on; the reason to stop otherwise.
    pub fn check(&self) -> Result<(), StoreError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            return Err(StoreError::Cancelled);
        }
        if let Some((deadline, budget)) = self.deadline {
            if Instant::now() >= deadline {
                return Err(StoreError::Timeout {
                    budget_ms: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
        Ok(())
    }

    /// True when there is nothing to check (no budget, no flag).
    fn is_unbounded(&self) -> bool {
        self.deadline.is_none() && self.cancel.is_none()
    }

    fn must_stop(&self) -> bool {
        self.check().is_err()
    }
}

thread_local! {
    /// The control of the scorer being built on this thread (see [`stopped_while_building`]).
    static BUILDING: RefCell<Option<SearchControl>> = const { RefCell::new(None) };
}

/// True when the search whose scorer is being built on this thread must stop. Weights whose
/// `scorer` does long work (the term-dictionary walk of a wildcard) call it every few
/// thousand steps; tantivy's `Weight::scorer` has no parameter to pass the control through.
pub(crate) fn stopped_while_building() -> bool {
    BUILDING.with(|building| {
        building
            .borrow()
            .as_ref()
            .is_some_and(SearchControl::must_stop)
    })
}

/// The error a weight returns when [`stopped_while_building`] says so; [`collect`] replaces
/// it with the control's reason.
pub(crate) fn stopped_error() -> TantivyError {
    TantivyError::InternalError("search stopped by its control".into())
}

/// `query`, stopping when `control` says so (see the module documentation).
#[derive(Debug)]
pub(crate) struct ControlledQuery {
    inner: Box<dyn Query>,
    control: SearchControl,
}

impl ControlledQuery {
    pub(crate) fn new(inner: Box<dyn Query>, control: &SearchControl) -> Self {
        Self {
            inner,
            control: control.clone(),
        }
    }
}

impl Clone for ControlledQuery {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.box_clone(),
            control: self.control.clone(),
        }
    }
}

impl Query for ControlledQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(ControlledWeight {
            inner: self.inner.weight(scoring)?,
            control: self.control.clone(),
        }))
    }
}

struct ControlledWeight {
    inner: Box<dyn Weight>,
    control: SearchControl,
}

impl Weight for ControlledWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        if self.control.must_stop() {
            return Err(stopped_error());
        }
        let previous = BUILDING.with(|b| b.replace(Some(self.control.clone())));
        let inner = self.inner.scorer(reader, boost);
        BUILDING.with(|b| *b.borrow_mut() = previous);
        Ok(Box::new(ControlledScorer::new(
            inner?,
            self.control.clone(),
        )))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.inner.explain(reader, doc)
    }
}

/// A scorer that ends (`TERMINATED`) once its control says the search must stop.
pub(crate) struct ControlledScorer {
    inner: Box<dyn Scorer>,
    control: SearchControl,
    /// Documents yielded since the last check.
    since_check: u32,
    stopped: bool,
}

impl ControlledScorer {
    pub(crate) fn new(inner: Box<dyn Scorer>, control: SearchControl) -> Self {
        Self {
            inner,
            control,
            since_check: 0,
            stopped: false,
        }
    }

    /// Counts `n` documents; checks the control every [`CHECK_EVERY`]. True to go on.
    fn tick(&mut self, n: u32) -> bool {
        self.since_check = self.since_check.saturating_add(n);
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            if self.control.must_stop() {
                self.stopped = true;
            }
        }
        !self.stopped
    }
}

impl DocSet for ControlledScorer {
    fn advance(&mut self) -> DocId {
        if !self.tick(1) {
            return TERMINATED;
        }
        self.inner.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if !self.tick(1) {
            return TERMINATED;
        }
        self.inner.seek(target)
    }

    fn fill_buffer(&mut self, buffer: &mut [DocId; COLLECT_BLOCK_BUFFER_LEN]) -> usize {
        if !self.tick(COLLECT_BLOCK_BUFFER_LEN as u32) {
            return 0;
        }
        self.inner.fill_buffer(buffer)
    }

    fn doc(&self) -> DocId {
        if self.stopped {
            TERMINATED
        } else {
            self.inner.doc()
        }
    }

    fn size_hint(&self) -> u32 {
        self.inner.size_hint()
    }
}

impl Scorer for ControlledScorer {
    fn score(&mut self) -> Score {
        self.inner.score()
    }
}

/// Runs `collector` over the matches of `query` in `searcher` under `control` (on `executor`
/// when given, segments in parallel). A search the control stopped returns its reason, never
/// the partial result.
pub(crate) fn collect<C: Collector>(
    searcher: &Searcher,
    query: &dyn Query,
    collector: &C,
    control: &SearchControl,
    executor: Option<&Executor>,
) -> Result<C::Fruit, StoreError> {
    control.check()?;
    let controlled;
    let query: &dyn Query = if control.is_unbounded() {
        query
    } else {
        controlled = ControlledQuery::new(query.box_clone(), control);
        &controlled
    };
    let result = match executor {
        Some(executor) => {
            let scoring = if collector.requires_scoring() {
                EnableScoring::enabled_from_searcher(searcher)
            } else {
                EnableScoring::disabled_from_searcher(searcher)
            };
            searcher.search_with_executor(query, collector, executor, scoring)
        }
        None => searcher.search(query, collector),
    };
    // Checked first: a stopped scorer ends early, which looks like a (wrong) success.
    control.check()?;
    Ok(result?)
}

pub(crate) fn run(
    store: &Store,
    request: &SearchRequest,
    control: &SearchControl,
) -> Result<SearchResponse, StoreError> {
    let started = Instant::now();
    // Also when no partition is searched (whose loops check it).
    control.check()?;
    let partitions: Vec<Arc<Partition>> = store
        .read_partitions()
        .values()
        .filter(|p| p.overlaps(request.start, request.end))
        .cloned()
        .collect();
    let mut query = to_query(&request.query.filter, &store.schema)?;
    if let Some(window) = time_window_query(&store.schema, request.start, request.end) {
        query = Box::new(BooleanQuery::new(vec![
            (Occur::Must, query),
            (Occur::Must, window),
        ]));
    }
    let (aggregating, after) = rows::split_pipes(&request.query);
    let mut response = SearchResponse {
        total: 0,
        hits: Vec::new(),
        columns: None,
        rows: None,
        warnings: Vec::new(),
        took_ms: 0,
    };
    if let Some(pipe) = aggregating {
        let table = aggregate::run(
            &partitions,
            query.as_ref(),
            pipe,
            store.config.max_groups,
            &store.executor,
            (store.schema.has, store.schema.unique),
            control,
        )?;
        response.total = table.total;
        response.warnings = table.warnings;
        let (columns, rows) = finish_table(table.columns, table.rows, after, request)?;
        response.columns = Some(columns);
        response.rows = Some(rows);
    } else if request.query.pipes.is_empty() {
        let (total, hits) = top_hits(
            &partitions,
            query.as_ref(),
            &store.schema,
            request.offset,
            request.limit,
            control,
        )?;
        response.total = total;
        response.hits = hits;
    } else {
        let (total, events) = top_hits(
            &partitions,
            query.as_ref(),
            &store.schema,
            0,
            TABLE_EVENT_LIMIT,
            control,
        )?;
        response.total = total;
        let columns = table_columns(&request.query.pipes);
        let rows = events
            .into_iter()
            .map(|event| row_of(&event, &columns))
            .collect();
        let (columns, rows) = finish_table(columns, rows, after, request)?;
        response.columns = Some(columns);
        response.rows = Some(rows);
    }
    response.took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(response)
}

/// Applies the row pipes, then `offset`/`limit`.
fn finish_table(
    mut columns: Vec<String>,
    mut rows: Vec<Vec<Value>>,
    pipes: &[Pipe],
    request: &SearchRequest,
) -> Result<(Vec<String>, Vec<Vec<Value>>), StoreError> {
    rows::apply(&mut columns, &mut rows, pipes)
        .map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
    let rows = rows
        .into_iter()
        .skip(request.offset)
        .take(request.limit)
        .collect();
    Ok((columns, rows))
}

/// Columns of an event table: the first `fields` list (else the defaults), plus the sort keys
/// not among them so that `sort` can see them.
fn table_columns(pipes: &[Pipe]) -> Vec<String> {
    let mut columns: Vec<String> = pipes
        .iter()
        .find_map(|p| match p {
            Pipe::Fields(list) => Some(list.clone()),
            _ => None,
        })
        .unwrap_or_else(|| DEFAULT_COLUMNS.iter().map(|c| c.to_string()).collect());
    for pipe in pipes {
        if let Pipe::Sort(keys) = pipe {
            for key in keys {
                if !columns.contains(&key.field) {
                    columns.push(key.field.clone());
                }
            }
        }
    }
    columns
}

fn row_of(event: &Value, columns: &[String]) -> Vec<Value> {
    let Value::Object(map) = event else {
        return vec![Value::Null; columns.len()];
    };
    let event = Event::from_map(map.clone());
    columns
        .iter()
        .map(|c| event.get(c).cloned().unwrap_or(Value::Null))
        .collect()
}

/// Exact count and the events `[offset, offset + limit)` newest first; `partitions` are
/// sorted oldest first.
/// Reads one hit's stored event.
fn stored_hit(
    partition: &Partition,
    searcher: &tantivy::Searcher,
    address: tantivy::DocAddress,
    schema: &SchemaFields,
) -> Result<Value, StoreError> {
    let doc: TantivyDocument = searcher.doc(address)?;
    let source = doc
        .get_first(schema.source)
        .and_then(|v| v.as_str())
        .unwrap_or("{}");
    let original = doc.get_first(schema.original).and_then(|v| v.as_bytes());
    crate::schema::hit_from_stored(source, original).map_err(|e| StoreError::Corrupt {
        partition: partition.name.clone(),
        reason: e,
    })
}

/// [`top_hits`] when partitions' times overlap (some hold events routed by ingest time): the
/// newest `window_end` of each partition, merged by timestamp.
fn merged_top_hits(
    partitions: &[Arc<Partition>],
    query: &dyn Query,
    schema: &SchemaFields,
    offset: usize,
    window_end: usize,
    control: &SearchControl,
) -> Result<(u64, Vec<Value>), StoreError> {
    let mut total: u64 = 0;
    let mut candidates = Vec::new();
    let searchers: Vec<_> = partitions.iter().map(|p| p.reader.searcher()).collect();
    for (i, searcher) in searchers.iter().enumerate() {
        if window_end == 0 {
            total += collect(searcher, query, &Count, control, None)? as u64;
            continue;
        }
        let top = TopDocs::with_limit(window_end)
            .order_by_fast_field::<tantivy::DateTime>(TS, Order::Desc);
        let (count, docs) = collect(searcher, query, &(Count, top), control, None)?;
        total += count as u64;
        candidates.extend(docs.into_iter().map(|(ts, address)| (ts, i, address)));
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut hits = Vec::new();
    for (n, (_, i, address)) in candidates
        .into_iter()
        .take(window_end)
        .skip(offset)
        .enumerate()
    {
        if n % 256 == 255 {
            control.check()?;
        }
        hits.push(stored_hit(&partitions[i], &searchers[i], address, schema)?);
    }
    Ok((total, hits))
}

pub(crate) fn top_hits(
    partitions: &[Arc<Partition>],
    query: &dyn Query,
    schema: &SchemaFields,
    offset: usize,
    limit: usize,
    control: &SearchControl,
) -> Result<(u64, Vec<Value>), StoreError> {
    let window_end = offset.saturating_add(limit);
    if partitions.iter().any(|p| p.extent().is_some()) {
        return merged_top_hits(partitions, query, schema, offset, window_end, control);
    }
    let mut seen: usize = 0;
    let mut total: u64 = 0;
    let mut hits = Vec::new();
    for partition in partitions.iter().rev() {
        let searcher = partition.reader.searcher();
        let skip = offset.saturating_sub(seen);
        let need = window_end.saturating_sub(seen).saturating_sub(skip);
        let count = if need == 0 {
            collect(&searcher, query, &Count, control, None)?
        } else {
            let top = TopDocs::with_limit(need)
                .and_offset(skip)
                .order_by_fast_field::<tantivy::DateTime>(TS, Order::Desc);
            let (count, docs) = collect(&searcher, query, &(Count, top), control, None)?;
            for (n, (_, address)) in docs.into_iter().enumerate() {
                if n % 256 == 255 {
                    control.check()?;
                }
                hits.push(stored_hit(partition, &searcher, address, schema)?);
            }
            count
        };
        seen = seen.saturating_add(count);
        total += count as u64;
    }
    Ok((total, hits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowsnest_model::Event;
    use crowsnest_query::Filter;
    use tantivy::query::{BitSetDocSet, ConstScorer};
    use tantivy_common::BitSet;

    fn cancelled() -> (SearchControl, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (SearchControl::new().with_cancel(flag.clone()), flag)
    }

    fn scorer_over(docs: u32, control: SearchControl) -> ControlledScorer {
        let mut all = BitSet::with_max_value(docs);
        for doc in 0..docs {
            all.insert(doc);
        }
        let inner = ConstScorer::new(BitSetDocSet::from(all), 1.0);
        ControlledScorer::new(Box::new(inner), control)
    }

    #[test]
    fn a_scorer_ends_within_one_check_of_its_control_stopping() {
        let (control, flag) = cancelled();
        let mut scorer = scorer_over(1_000_000, control);
        let mut seen = 1u32;
        while scorer.advance() != TERMINATED {
            seen += 1;
            if seen == 10 {
                flag.store(true, Ordering::Relaxed);
            }
        }
        assert!(seen <= 10 + CHECK_EVERY, "went on for {seen} documents");
        assert_eq!(scorer.doc(), TERMINATED);
        assert_eq!(scorer.seek(999_999), TERMINATED);
    }

    #[test]
    fn a_scorer_filling_buffers_ends_too() {
        let (control, flag) = cancelled();
        let mut scorer = scorer_over(1_000_000, control);
        let mut buffer = [0; COLLECT_BLOCK_BUFFER_LEN];
        let mut seen = 0usize;
        loop {
            let n = scorer.fill_buffer(&mut buffer);
            seen += n;
            flag.store(true, Ordering::Relaxed);
            if n < buffer.len() {
                break;
            }
        }
        assert!(
            seen <= 2 * CHECK_EVERY as usize,
            "went on for {seen} documents"
        );
    }

    #[test]
    fn an_unstopped_scorer_yields_every_document() {
        let mut scorer = scorer_over(10_000, SearchControl::new());
        let mut seen = 1;
        while scorer.advance() != TERMINATED {
            seen += 1;
        }
        assert_eq!(seen, 10_000);
    }

    #[test]
    fn the_deadline_reports_its_budget() {
        let control = SearchControl::new().with_timeout(Duration::ZERO);
        match control.check() {
            Err(StoreError::Timeout { budget_ms: 0 }) => {}
            other => panic!("{other:?}"),
        }
        let long = SearchControl::new().with_timeout(Duration::from_secs(3600));
        assert!(long.check().is_ok());
    }

    #[test]
    fn a_wildcard_walking_many_terms_stops_when_its_search_must() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), crate::StoreConfig::default()).expect("open");
        let batch: Vec<(u64, Event)> = (0..2 * crate::wildcard::CHECK_TERMS as u64)
            .map(|i| {
                let event = serde_json::from_value(serde_json::json!({
                    "@timestamp": "2024-03-01T12:00:00Z",
                    "user": {"name": format!("user-{i:06}")},
                }))
                .expect("event");
                (i + 1, event)
            })
            .collect();
        store.add(&batch).expect("add");
        store.commit().expect("commit");
        let filter = Filter::Wildcard {
            field: Some("user.name".into()),
            pattern: "*9*".into(),
        };
        let query = to_query(&filter, &store.schema).expect("query");
        let partitions: Vec<_> = store.read_partitions().values().cloned().collect();
        let searcher = partitions[0].reader.searcher();
        let weight = query
            .weight(EnableScoring::disabled_from_searcher(&searcher))
            .expect("weight");
        let segment = &searcher.segment_readers()[0];
        // Not stopped: the walk completes.
        assert!(weight.scorer(segment, 1.0).is_ok());
        // Stopped while the scorer is built: the walk gives up with the stop error.
        let (control, flag) = cancelled();
        flag.store(true, Ordering::Relaxed);
        BUILDING.with(|b| *b.borrow_mut() = Some(control));
        let result = weight.scorer(segment, 1.0);
        BUILDING.with(|b| *b.borrow_mut() = None);
        let error = result.err().expect("stopped");
        assert_eq!(error.to_string(), stopped_error().to_string());
    }
}
