//! Search execution: partition pruning, hits newest first, tables from events.
//!
//! Partitions cover disjoint time ranges, so "newest first across partitions" is "partitions
//! newest first, each sorted by `_ts` descending". Each partition is searched once with
//! `(Count, TopDocs)`: the count keeps `total` exact, and the top-docs window is shifted by the
//! matches of the newer partitions, so `offset`/`limit` are correct across partitions and a
//! partition past the window only counts.

use std::sync::Arc;
use std::time::Instant;

use crowsnest_model::{ecs, Event};
use crowsnest_query::{rows, Pipe};
use serde_json::Value;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query};
use tantivy::schema::Value as _;
use tantivy::{Order, TantivyDocument};

use crate::filter::{time_window_query, to_query};
use crate::partition::Partition;
use crate::schema::{SchemaFields, TS};
use crate::{aggregate, SearchRequest, SearchResponse, Store, StoreError};

/// Most events a non-aggregating table (`| fields ..`, `| sort ..`) is built from.
pub const TABLE_EVENT_LIMIT: usize = 10_000;

/// Columns of an event table without a `fields` pipe.
const DEFAULT_COLUMNS: [&str; 3] = [ecs::TIMESTAMP, ecs::EVENT_DATASET, ecs::MESSAGE];

pub(crate) fn run(store: &Store, request: &SearchRequest) -> Result<SearchResponse, StoreError> {
    let started = Instant::now();
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
        took_ms: 0,
    };
    if let Some(pipe) = aggregating {
        let table = aggregate::run(
            &partitions,
            query.as_ref(),
            pipe,
            store.config.max_groups,
            &store.executor,
            store.schema.has,
        )?;
        response.total = table.total;
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
        reason: format!("stored event is not JSON: {e}"),
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
) -> Result<(u64, Vec<Value>), StoreError> {
    let mut total: u64 = 0;
    let mut candidates = Vec::new();
    let searchers: Vec<_> = partitions.iter().map(|p| p.reader.searcher()).collect();
    for (i, searcher) in searchers.iter().enumerate() {
        if window_end == 0 {
            total += searcher.search(query, &Count)? as u64;
            continue;
        }
        let top = TopDocs::with_limit(window_end)
            .order_by_fast_field::<tantivy::DateTime>(TS, Order::Desc);
        let (count, docs) = searcher.search(query, &(Count, top))?;
        total += count as u64;
        candidates.extend(docs.into_iter().map(|(ts, address)| (ts, i, address)));
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut hits = Vec::new();
    for (_, i, address) in candidates.into_iter().take(window_end).skip(offset) {
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
) -> Result<(u64, Vec<Value>), StoreError> {
    let window_end = offset.saturating_add(limit);
    if partitions.iter().any(|p| p.extent().is_some()) {
        return merged_top_hits(partitions, query, schema, offset, window_end);
    }
    let mut seen: usize = 0;
    let mut total: u64 = 0;
    let mut hits = Vec::new();
    for partition in partitions.iter().rev() {
        let searcher = partition.reader.searcher();
        let skip = offset.saturating_sub(seen);
        let need = window_end.saturating_sub(seen).saturating_sub(skip);
        let count = if need == 0 {
            searcher.search(query, &Count)?
        } else {
            let top = TopDocs::with_limit(need)
                .and_offset(skip)
                .order_by_fast_field::<tantivy::DateTime>(TS, Order::Desc);
            let (count, docs) = searcher.search(query, &(Count, top))?;
            for (_, address) in docs {
                hits.push(stored_hit(partition, &searcher, address, schema)?);
            }
            count
        };
        seen = seen.saturating_add(count);
        total += count as u64;
    }
    Ok((total, hits))
}
