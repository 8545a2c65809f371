//! Elasticsearch compatibility under `/es`: the handshake (`GET /es/`), harmless answers to
//! the probes Beats and Logstash make at startup (license, templates, ILM, pipelines), and
//! `_bulk`.
//!
//! Every response carries `X-Elastic-Product: Elasticsearch`, which the official clients
//! (8.x and later) check before they accept an answer. `_bulk` answers one item per action
//! line, as Elasticsearch does, even when a document held many events (an audit `EventList`,
//! a CloudWatch Logs batch): the `X-Crowsnest-Events-Stored` header says how many events were
//! stored, `X-Crowsnest-Items-Rejected` how many items failed. An item whose document held no
//! events (a CloudWatch `CONTROL_MESSAGE`) answers `result: noop`, status 200. Errors take Elasticsearch's shape
//! (`{"error": {"type", "reason", "root_cause"}, "status"}`).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crowsnest_ingest::es_bulk::{self, BulkRequest};
use crowsnest_normalize::Decoded;
use serde_json::{json, Value};

use super::{blocking, limits};
use crate::api::authorize;
use crate::api::ingest::{read_body, submit_decoded, Count};
use crate::auth::Scope;
use crate::error::ApiError;
use crate::AppState;
use crowsnest_ingest::limits::count_lines;

/// The Elasticsearch version we answer with: new enough for Beats/Logstash 8 and the 8.x and
/// 9.x clients, which only check the product header.
pub(crate) const VERSION: &str = "8.17.0";

fn with_product(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}

fn es_error(error: ApiError) -> Response {
    // Elasticsearch answers a full write queue with 429 (`es_rejected_execution_exception`);
    // its clients and Beats retry exactly that, while several give up on a 503.
    let status = match error {
        // A full disk too: the clients retry a 429, and nothing was stored.
        ApiError::Busy(_) | ApiError::Overloaded { .. } | ApiError::InsufficientStorage(_) => {
            axum::http::StatusCode::TOO_MANY_REQUESTS
        }
        _ => super::status_of(&error),
    };
    let (kind, reason) = match &error {
        ApiError::Unauthorized(m) => ("security_exception", m.clone()),
        ApiError::Forbidden(m) => ("security_exception", m.clone()),
        ApiError::PayloadTooLarge(m) => ("content_too_long_exception", m.clone()),
        ApiError::Busy(_) | ApiError::Overloaded { .. } | ApiError::InsufficientStorage(_) => {
            ("es_rejected_execution_exception", error.to_string())
        }
        ApiError::Internal(e) => {
            tracing::error!(error = format!("{e:#}"), "internal error");
            (
                "exception",
                "internal error (see the server log)".to_string(),
            )
        }
        other => ("illegal_argument_exception", other.to_string()),
    };
    let body = json!({
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status.as_u16(),
    });
    let mut response = (status, Json(body)).into_response();
    if let Some(secs) = error.retry_after() {
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
    }
    with_product(response)
}

/// `GET /es/`: who we are, in Elasticsearch's words.
pub(super) async fn root(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(error) = authorize(&state, &headers, Scope::Ingest) {
        return es_error(error);
    }
    with_product(
        Json(json!({
            "name": "crowsnest",
            "cluster_name": "crowsnest",
            "cluster_uuid": "crowsnest",
            "version": {
                "number": VERSION,
                "build_flavor": "default",
                "build_type": "crowsnest",
                "lucene_version": "9.12.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0"
            },
            "tagline": "You Know, for Search"
        }))
        .into_response(),
    )
}

/// Any other `/es/*` request: `{index}/_bulk`, or one of the startup probes of Beats and
/// Logstash, answered so they proceed (a basic license, templates/pipelines "exist", writes
/// acknowledged). (`{index}/_bulk` is matched here because the router cannot hold both
/// `/es/{index}/_bulk` and this catch-all.)
pub(super) async fn probe(
    State(state): State<Arc<AppState>>,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(index) = rest.strip_suffix("/_bulk") {
        if (method == Method::POST || method == Method::PUT) && !index.contains('/') {
            return bulk_into(state, Some(index.to_string()), headers, body).await;
        }
    }
    if let Err(error) = authorize(&state, &headers, Scope::Ingest) {
        return es_error(error);
    }
    let body = if rest.starts_with("_license") || rest.starts_with("_xpack") {
        json!({"license": {"status": "active", "type": "basic", "mode": "basic", "uid": "crowsnest"},
               "features": {}, "build": {}})
    } else if method == Method::PUT || method == Method::POST || method == Method::DELETE {
        json!({"acknowledged": true})
    } else if rest.starts_with("_cluster/health") {
        json!({"cluster_name": "crowsnest", "status": "green", "number_of_nodes": 1})
    } else {
        json!({})
    };
    with_product(Json(body).into_response())
}

/// `POST /es/_bulk`.
pub(super) async fn bulk(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    bulk_into(state, None, headers, body).await
}

async fn bulk_into(
    state: Arc<AppState>,
    index: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match bulk_response(&state, index, &headers, body).await {
        Ok(response) => with_product(response),
        Err(error) => es_error(error),
    }
}

async fn bulk_response(
    state: &Arc<AppState>,
    index: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    authorize(state, headers, Scope::Ingest)?;
    let mut body = read_body(state, headers, body).await?;
    // Lines bound the items (an action line each, most with a document line); the decoder
    // stops at the per-request limit.
    body.admit(state, Count::Bound(count_lines)).await?;
    let bytes = body.take();
    let limits = limits(state);
    let request = blocking(move || es_bulk::decode(&bytes, index.as_deref(), &limits))
        .await?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let BulkRequest { events, items } = request;
    let rejected = items.iter().filter(|i| i.error.is_some()).count();
    let decoded = Decoded {
        events,
        errors: Vec::new(),
    };
    // One fixed label: index names are client-chosen and would make metric labels unbounded.
    let (stored, _) = submit_decoded(state, decoded, "elasticsearch").await?;
    state
        .metrics
        .count_rejected("elasticsearch", rejected as u64);
    let mut generator = ulid::Generator::new();
    let mut sequence = 0u64;
    let items: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let id = item.id.clone().unwrap_or_else(|| {
                generator
                    .generate()
                    .unwrap_or_else(|_| ulid::Ulid::new())
                    .to_string()
            });
            let body = match &item.error {
                // A document that held no events (a CloudWatch `CONTROL_MESSAGE`): done,
                // nothing created.
                None if item.events == 0 => {
                    json!({"_index": item.index, "_id": id, "_version": 1, "result": "noop",
                           "_shards": {"total": 1, "successful": 0, "failed": 0}, "status": 200})
                }
                None => {
                    sequence += 1;
                    json!({"_index": item.index, "_id": id, "_version": 1, "result": "created",
                           "_shards": {"total": 1, "successful": 1, "failed": 0},
                           "_seq_no": sequence - 1, "_primary_term": 1, "status": 201})
                }
                Some(error) => json!({"_index": item.index, "_id": id, "status": error.status,
                    "error": {"type": error.kind, "reason": error.reason}}),
            };
            json!({ item.action.as_str(): body })
        })
        .collect();
    drop(body);
    let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut response = (
        StatusCode::OK,
        Json(json!({"took": took, "errors": rejected > 0, "items": items})),
    )
        .into_response();
    super::count_headers(&mut response, stored, rejected);
    Ok(response)
}
