//! Splunk HTTP Event Collector compatibility under `/services/collector`.
//!
//! Answers use HEC's codes: `{"text": "Success", "code": 0, "accepted": N}` (`accepted`
//! counts the events stored: an event object that holds many, such as an audit `EventList`,
//! counts as all of them); 401 `Token is required` (2),
//! 403 `Invalid token` (4), 400 `Invalid data format` (6, with `invalid-event-number`, the
//! 0-based index of the first bad event, `accepted` and `rejected` counts; the good events are
//! stored, as Splunk does). With
//! a channel (`X-Splunk-Request-Channel` header or `channel` parameter) the answer carries
//! an `ackId`; since we answer only after the events are durable, `/ack` reports every id
//! as acknowledged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crowsnest_ingest::splunk_hec::{self, RawMeta};
use serde_json::{json, Map, Value};

use super::{blocking, limits};
use crate::api::authorize;
use crate::api::ingest::{read_body, submit_decoded, Count};
use crate::auth::Scope;
use crate::error::ApiError;
use crate::AppState;
use crowsnest_ingest::limits::{count_json_values, count_lines};

static NEXT_ACK: AtomicU64 = AtomicU64::new(0);

fn hec(status: StatusCode, text: &str, code: u32) -> Response {
    (status, Json(json!({"text": text, "code": code}))).into_response()
}

fn hec_error(error: ApiError) -> Response {
    let retry_after = error.retry_after();
    match error {
        ApiError::Unauthorized(_) => hec(StatusCode::UNAUTHORIZED, "Token is required", 2),
        ApiError::Forbidden(_) => hec(StatusCode::FORBIDDEN, "Token is disabled", 1),
        ApiError::PayloadTooLarge(m) => hec(StatusCode::PAYLOAD_TOO_LARGE, &m, 27),
        ApiError::Busy(_) | ApiError::Overloaded { .. } | ApiError::InsufficientStorage(_) => {
            let secs = retry_after.unwrap_or(1);
            let mut response = hec(StatusCode::SERVICE_UNAVAILABLE, "Server is busy", 9);
            if let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("retry-after", value);
            }
            response
        }
        ApiError::RequestTimeout(m) => hec(StatusCode::REQUEST_TIMEOUT, &m, 6),
        ApiError::Internal(e) => {
            tracing::error!(error = format!("{e:#}"), "internal error");
            hec(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
                8,
            )
        }
        other => hec(StatusCode::BAD_REQUEST, &other.to_string(), 6),
    }
}

/// The HEC-shaped refusal, or `None` when the token may ingest.
fn refuse(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    match authorize(state, headers, Scope::Ingest) {
        Ok(_) => None,
        Err(ApiError::Unauthorized(message)) if message == "unknown token" => {
            Some(hec(StatusCode::FORBIDDEN, "Invalid token", 4))
        }
        Err(error) => Some(hec_error(error)),
    }
}

fn channel(headers: &HeaderMap, params: &HashMap<String, String>) -> Option<String> {
    headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| params.get("channel").cloned())
        .filter(|c| !c.is_empty())
}

/// `POST /services/collector[/event]`.
pub(super) async fn event(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    let channel = channel(&headers, &params);
    let result = async {
        let mut body = read_body(&state, &headers, body).await?;
        body.admit(&state, Count::Exact(count_json_values)).await?;
        let bytes = body.take();
        let limits = limits(&state);
        let channel_for_decoder = channel.clone();
        let decoded = blocking(move || {
            splunk_hec::decode_events(&bytes, channel_for_decoder.as_deref(), &limits)
        })
        .await?;
        let stored = submit_decoded(&state, decoded, "splunk.hec").await;
        drop(body);
        stored
    }
    .await;
    answer(result, channel.is_some())
}

/// `POST /services/collector/raw`.
pub(super) async fn raw(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    let meta = RawMeta {
        host: params.get("host").cloned(),
        source: params.get("source").cloned(),
        sourcetype: params.get("sourcetype").cloned(),
        index: params.get("index").cloned(),
        channel: channel(&headers, &params),
    };
    let acked = meta.channel.is_some();
    let result = async {
        let mut body = read_body(&state, &headers, body).await?;
        body.admit(&state, Count::Exact(count_lines)).await?;
        let bytes = body.take();
        let limits = limits(&state);
        let decoded = blocking(move || splunk_hec::decode_raw(&bytes, &meta, &limits)).await?;
        let stored = submit_decoded(&state, decoded, "splunk.raw").await;
        drop(body);
        stored
    }
    .await;
    answer(result, acked)
}

fn answer(
    result: Result<(usize, Vec<crowsnest_normalize::LineError>), ApiError>,
    with_ack: bool,
) -> Response {
    let (accepted, errors) = match result {
        Ok(outcome) => outcome,
        Err(error) => return hec_error(error),
    };
    if let Some(first) = errors.first() {
        let body = json!({"text": "Invalid data format", "code": 6,
                          "invalid-event-number": first.line.saturating_sub(1),
                          "accepted": accepted, "rejected": errors.len(),
                          "reason": first.to_string()});
        let mut response = (StatusCode::BAD_REQUEST, Json(body)).into_response();
        super::count_headers(&mut response, accepted, errors.len());
        return response;
    }
    let mut body = json!({"text": "Success", "code": 0, "accepted": accepted});
    if with_ack {
        body["ackId"] = Value::from(NEXT_ACK.fetch_add(1, Ordering::Relaxed));
    }
    let mut response = Json(body).into_response();
    super::count_headers(&mut response, accepted, 0);
    response
}

/// `POST /services/collector/ack`: every id we handed out is durable already.
pub(super) async fn ack(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return hec(StatusCode::BAD_REQUEST, "Invalid data format", 6);
    };
    let Some(ids) = request.get("acks").and_then(Value::as_array) else {
        return hec(StatusCode::BAD_REQUEST, "Invalid data format", 6);
    };
    let issued = NEXT_ACK.load(Ordering::Relaxed);
    let mut acks = Map::new();
    for id in ids {
        if let Some(id) = id.as_u64() {
            acks.insert(id.to_string(), Value::Bool(id < issued));
        }
    }
    Json(json!({ "acks": acks })).into_response()
}

/// `GET /services/collector/health` (no token needed, like Splunk's).
pub(super) async fn health() -> Response {
    hec(StatusCode::OK, "HEC is healthy", 17)
}
