//! `POST /api/v1/search`, and the bounds every search runs under (also the alerts API's):
//!
//! * before parsing, the query text's size (`search.max_query_bytes`); after parsing, before
//!   anything runs, its number of terms (`search.max_terms`); both answer 400;
//! * a token runs at most `search.max_concurrent_per_token` searches at once; one more gets
//!   429 with `Retry-After` (the slot is held until the store's work has ended, even when the
//!   client has gone);
//! * the store stops a search at its time budget (`search.timeout_ms`, 504) and when the client
//!   goes away: dropping the handler's future (hyper does when the connection closes) sets the
//!   search's cancellation flag, which the store checks while it works.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use crowsnest_query::Query;
use crowsnest_store::{SearchControl, SearchRequest, Store, StoreError};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::authorize;
use crate::auth::Scope;
use crate::error::ApiError;
use crate::AppState;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    #[serde(default)]
    query: String,
    start: Option<String>,
    end: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = value.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "`{name}` must be an RFC 3339 time like 2024-05-01T12:00:00Z: {e}"
            ))
        })
}

pub(super) async fn search(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let token = authorize(&state, &headers, Scope::Read)?;
    let source_ip = crate::audit::peer_ip(&extensions);
    let request: SearchBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid search request: {e}; expected {{\"query\": \"...\", \"start\": RFC 3339, \"end\": RFC 3339, \"limit\": n, \"offset\": n}}"
        ))
    })?;
    let response = run_search_from(
        &state,
        &token,
        &SearchInput {
            query: request.query,
            start: request.start,
            end: request.end,
            limit: request.limit,
            offset: request.offset,
        },
        source_ip,
    )
    .await?;
    Ok(Json(response))
}

/// What a search asks for, as `POST /api/v1/search` takes it (times in RFC 3339); the web
/// console builds the same input from its form.
#[derive(Debug, Clone, Default)]
pub struct SearchInput {
    /// The query text.
    pub query: String,
    /// Inclusive start, RFC 3339.
    pub start: Option<String>,
    /// Exclusive end, RFC 3339.
    pub end: Option<String>,
    /// Most hits or rows (default 100, at most `max_search_limit`).
    pub limit: Option<usize>,
    /// Hits or rows to skip.
    pub offset: usize,
}

/// The search behind `POST /api/v1/search` (and the console's search page), for a token
/// already authorized: its input checks, then the store's search under the token's bounds.
///
/// Each search is written to the self-audit stream ([`crate::audit`]) with the client's address
/// of the [`crate::audit::current_actor`] (the console scopes it); [`run_search_from`] takes it
/// explicitly. Within an export's scope, it is tallied into the export instead.
pub async fn run_search(
    state: &Arc<AppState>,
    token: &str,
    request: &SearchInput,
) -> Result<crowsnest_store::SearchResponse, ApiError> {
    run_search_from(state, token, request, None).await
}

/// [`run_search`] for a client at `source_ip` (recorded in its audit event).
pub async fn run_search_from(
    state: &Arc<AppState>,
    token: &str,
    request: &SearchInput,
    source_ip: Option<std::net::IpAddr>,
) -> Result<crowsnest_store::SearchResponse, ApiError> {
    let result = run_search_unaudited(state, token, request).await;
    let actor = crate::audit::current_actor();
    if let Some(tally) = &actor.export {
        // A page of an export: the export is audited once, when it ends.
        tally.page(match &result {
            Ok(response) => Ok(response.rows.as_ref().map_or(response.hits.len(), Vec::len) as u64),
            Err(error) => Err(error.to_string()),
        });
        return result;
    }
    let mut entry = crate::audit::AuditEntry::new("search", Some(token), result.is_ok());
    entry.source_ip = source_ip.or(actor.source_ip);
    entry.query = Some(request.query.clone());
    match &result {
        Ok(response) => entry.result_count = Some(response.total),
        Err(error) => entry.message = Some(error.to_string()),
    }
    state.audit.record(entry);
    result
}

async fn run_search_unaudited(
    state: &Arc<AppState>,
    token: &str,
    request: &SearchInput,
) -> Result<crowsnest_store::SearchResponse, ApiError> {
    let query = parse_bounded(state, &request.query, "")?;
    let start = parse_time("start", request.start.as_deref())?;
    let end = parse_time("end", request.end.as_deref())?;
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(ApiError::bad_request("`start` is after `end`"));
        }
    }
    let max = state.config.max_search_limit;
    let limit = request.limit.unwrap_or(100);
    if limit > max {
        return Err(ApiError::bad_request(format!(
            "`limit` {limit} is above the maximum of {max}"
        )));
    }
    // Paging deeper means ranking offset + limit events in memory: bound it, like
    // Elasticsearch's max_result_window. Narrow the time range or the query to go further.
    let window = max.saturating_mul(10);
    if request.offset.saturating_add(limit) > window {
        return Err(ApiError::bad_request(format!(
            "`offset` + `limit` may be at most {window}; narrow the query or the time range instead of paging deeper"
        )));
    }
    let search = SearchRequest {
        query,
        start,
        end,
        limit,
        offset: request.offset,
    };
    run_bounded(state, token, move |store, control| {
        store.search_with(&search, control)
    })
    .await
}

/// Parses a query after checking its size, then checks its number of terms: both before
/// anything runs. `what` prefixes the messages (`invalid \`query\`: ` for a parameter).
pub fn parse_bounded(state: &AppState, text: &str, what: &str) -> Result<Query, ApiError> {
    let limits = &state.config.search;
    if text.len() > limits.max_query_bytes {
        state.metrics.guards.search_refused("query_bytes").inc();
        return Err(ApiError::bad_request(format!(
            "{what}query is {} bytes; the limit is {} (search.max_query_bytes)",
            text.len(),
            limits.max_query_bytes
        )));
    }
    let query = crowsnest_query::parse(text).map_err(|e| ApiError::BadRequest {
        message: format!("{what}{e}"),
        details: Some(json!({"column": e.column})),
    })?;
    let terms = query.term_count();
    if terms > limits.max_terms {
        state.metrics.guards.search_refused("terms").inc();
        return Err(ApiError::bad_request(format!(
            "{what}query has {terms} terms; the limit is {} (search.max_terms)",
            limits.max_terms
        )));
    }
    Ok(query)
}

/// The searches each token is running: a semaphore per token name (names are made by an
/// admin, so the map stays small).
#[derive(Default)]
pub(crate) struct SearchSlots {
    per_token: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Test hook: searches wait here (before the store) while `hold` is true and they are not
    /// cancelled; `started` counts the searches that reached it.
    #[cfg(test)]
    pub(crate) hold: AtomicBool,
    #[cfg(test)]
    pub(crate) started: std::sync::atomic::AtomicUsize,
}

impl SearchSlots {
    fn acquire(&self, token: &str, max: usize) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut map = self
                .per_token
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(token.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(max.max(1))))
                .clone()
        };
        semaphore.try_acquire_owned().ok()
    }

    /// Free slots of a token (None before its first search).
    #[cfg(test)]
    pub(crate) fn per_token_available(&self, token: &str) -> Option<usize> {
        let map = self
            .per_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(token).map(|s| s.available_permits())
    }
}

/// Sets the flag when dropped: when the handler's future is dropped (the client went away),
/// the search it started stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `work` on the store on a blocking thread, under the search bounds of `token`: a slot
/// of its concurrency, the time budget and cancellation when the caller's future is dropped.
pub async fn run_bounded<T, F>(state: &Arc<AppState>, token: &str, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store, &SearchControl) -> Result<T, StoreError> + Send + 'static,
{
    let limits = &state.config.search;
    let Some(permit) = state
        .guards
        .searches
        .acquire(token, limits.max_concurrent_per_token)
    else {
        state.metrics.guards.search_refused("concurrency").inc();
        return Err(ApiError::TooManyRequests {
            message: format!(
                "token `{token}` already runs {} searches; the limit is {} (search.max_concurrent_per_token); retry when one has ended",
                limits.max_concurrent_per_token, limits.max_concurrent_per_token
            ),
            retry_after_secs: 1,
        });
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let control = SearchControl::new()
        .with_timeout(Duration::from_millis(limits.timeout_ms))
        .with_cancel(cancel.clone());
    let task_state = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let state = task_state;
        #[cfg(test)]
        {
            let slots = &state.guards.searches;
            slots.started.fetch_add(1, Ordering::SeqCst);
            while slots.hold.load(Ordering::SeqCst) && !cancel.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let result = work(&state.store, &control);
        match &result {
            Err(StoreError::Timeout { .. }) => {
                state.metrics.guards.searches_timed_out.inc();
            }
            Err(StoreError::Cancelled) => {
                state.metrics.guards.searches_cancelled.inc();
                tracing::debug!("search cancelled: its client went away");
            }
            _ => {}
        }
        result
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    result.map_err(|error| match error {
        StoreError::InvalidQuery(message) => ApiError::bad_request(message),
        StoreError::Timeout { budget_ms } => ApiError::Timeout(format!(
            "search ran longer than {budget_ms} ms; the limit is {budget_ms} (search.timeout_ms); narrow the query or the time range"
        )),
        other => ApiError::Internal(other.into()),
    })
}
