//! `POST /api/v1/search`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use crowsnest_store::{SearchRequest, StoreError};
use serde::Deserialize;
use serde_json::json;

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
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let request: SearchBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid search request: {e}; expected {{\"query\": \"...\", \"start\": RFC 3339, \"end\": RFC 3339, \"limit\": n, \"offset\": n}}"
        ))
    })?;
    let query = crowsnest_query::parse(&request.query).map_err(|e| ApiError::BadRequest {
        message: e.to_string(),
        details: Some(json!({"column": e.column})),
    })?;
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
    let store = state.store.clone();
    let response = tokio::task::spawn_blocking(move || store.search(&search))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|error| match error {
            StoreError::InvalidQuery(message) => ApiError::bad_request(message),
            other => ApiError::Internal(other.into()),
        })?;
    Ok(Json(response))
}
