//! `POST /api/v1/ingest/k8s-audit` and `POST /api/v1/ingest/ndjson`.
//!
//! Order of checks: token (401/403), content type (415), size before and after
//! decompression (413), then decoding. Bad lines are reported one by one (line, field, reason)
//! while the good lines of the same request are stored; the response comes only after the
//! accepted events are fsync'd in the WAL.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use crowsnest_ingest::limits::{
    count_audit_items, count_audit_markers, count_lines, decode_cost, BudgetError, Reservation,
};
use http_body::Body as _;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use crowsnest_normalize::{Decoded, LineError};
use serde_json::{json, Value};

use super::authorize;
use crate::auth::Scope;
use crate::error::ApiError;
use crate::pipeline::{Admission, SubmitError};
use crate::AppState;

/// Most per-line errors listed in one response.
const MAX_REPORTED_ERRORS: usize = 100;

const NDJSON_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/json",
    "text/plain",
];

pub(super) async fn k8s_audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    authorize(&state, &headers, Scope::Ingest)?;
    check_content_type(&headers, &["application/json"])?;
    let mut body = read_body(&state, &headers, body).await?;
    body.admit(&state, Count::Exact(count_audit_items)).await?;
    let bytes = body.take();
    let limits = state.config.decode.to_limits();
    let decoded =
        tokio::task::spawn_blocking(move || crowsnest_normalize::decode_k8s_audit(&bytes, &limits))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(|e| {
                ApiError::bad_request(format!("not a Kubernetes audit EventList or Event: {e}"))
            })?;
    // A retried document (`crowsnest ingest` names each one) is stored once.
    let response = store_batch(&state, &headers, decoded, "kubernetes.audit").await;
    drop(body);
    response
}

pub(super) async fn ndjson(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    authorize(&state, &headers, Scope::Ingest)?;
    check_content_type(&headers, NDJSON_TYPES)?;
    let source = params.get("source").filter(|s| !s.is_empty()).cloned();
    if let Some(source) = &source {
        let valid = source.len() <= 64
            && source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(ApiError::bad_request(format!(
                "invalid `source` `{source}`: use at most 64 letters, digits, `_`, `-` or `.`; known formats: {}",
                crowsnest_normalize::known_sources().join(", ")
            )));
        }
    }
    let mut body = read_body(&state, &headers, body).await?;
    body.admit(&state, Count::Exact(count_lines)).await?;
    let bytes = body.take();
    let limits = state.config.decode.to_limits();
    let label = source.clone().unwrap_or_else(|| "ndjson".to_string());
    let decoded = tokio::task::spawn_blocking(move || {
        crowsnest_normalize::decode_ndjson(&bytes, source.as_deref(), &limits)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    // Batches retried by the agent or `crowsnest ingest`: stored once (crate::dedup).
    let response = store_batch(&state, &headers, decoded, &label).await;
    drop(body);
    response
}

/// [`store`] for a request that may carry a batch id (`X-Crowsnest-Batch`): a batch already
/// stored is answered `duplicate: true` and stored again nowhere; a new one is stamped with
/// its id in the same WAL append as its events.
async fn store_batch(
    state: &AppState,
    headers: &HeaderMap,
    mut decoded: Decoded,
    label: &str,
) -> Result<axum::response::Response, ApiError> {
    let admitted = match crate::dedup::gate(&state.dedup, super::batch_header(headers))? {
        crate::dedup::Gate::Duplicate => {
            return Ok(
                Json(json!({"accepted": 0, "rejected": 0, "errors": [], "duplicate": true}))
                    .into_response(),
            )
        }
        crate::dedup::Gate::New(admitted) => Some(admitted),
        crate::dedup::Gate::Plain => None,
    };
    if let Some(admitted) = &admitted {
        admitted.stamp(&mut decoded.events);
    }
    let response = store(state, decoded, label).await?;
    if let Some(admitted) = admitted {
        admitted.stored();
    }
    Ok(response)
}

/// Stamps, serializes and submits the decoded events; answers with the per-line report.
pub(crate) async fn store(
    state: &AppState,
    decoded: Decoded,
    label: &str,
) -> Result<axum::response::Response, ApiError> {
    let (accepted, errors) = submit_decoded(state, decoded, label).await?;
    let rejected = errors.len();
    let report = report(accepted, &errors);
    if accepted == 0 && rejected > 0 {
        return Err(ApiError::BadRequest {
            message: format!("no valid events: {rejected} line(s) rejected"),
            details: Some(report),
        });
    }
    Ok(Json(report).into_response())
}

/// Stamps, serializes and submits the decoded events, counting them per source; returns how
/// many were stored (durably) and the errors. Every input submits through here.
pub(crate) async fn submit_decoded(
    state: &AppState,
    decoded: Decoded,
    label: &str,
) -> Result<(usize, Vec<LineError>), ApiError> {
    submit_decoded_as(state, decoded, label, Admission::FailFast).await
}

/// [`submit_decoded`] with a choice of what to do when the pipeline is saturated.
pub(crate) async fn submit_decoded_as(
    state: &AppState,
    decoded: Decoded,
    label: &str,
    admission: Admission,
) -> Result<(usize, Vec<LineError>), ApiError> {
    state
        .pipeline
        .submit_decoded(decoded, label, admission)
        .await
        .map_err(|error| submit_error(state, error))
}

/// The answer to a batch the pipeline did not take.
pub(crate) fn submit_error(state: &AppState, error: SubmitError) -> ApiError {
    match error {
        SubmitError::Busy(secs) => ApiError::Busy(secs),
        SubmitError::DiskFull(secs) => ApiError::InsufficientStorage(secs),
        SubmitError::Closed => ApiError::Busy(state.config.pipeline.retry_after_secs),
        SubmitError::Wal(message) => {
            ApiError::Internal(anyhow::anyhow!("wal append failed: {message}"))
        }
    }
}

fn report(accepted: usize, errors: &[LineError]) -> Value {
    let listed: Vec<&LineError> = errors.iter().take(MAX_REPORTED_ERRORS).collect();
    json!({
        "accepted": accepted,
        "rejected": errors.len(),
        "errors": listed,
        "errors_truncated": errors.len() > MAX_REPORTED_ERRORS,
    })
}

pub(crate) fn check_content_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if accepted.iter().any(|a| *a == essence) {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "content type `{text}` is not accepted here; send one of: {}",
        accepted.join(", ")
    )))
}

/// A request body read within the limits, with what it holds of the decode budget
/// (`decode.memory_budget_bytes`): the reservation lives as long as this value, so keep it
/// until the decoded events are submitted.
pub(crate) struct RequestBody {
    /// The (inflated) body.
    pub(crate) bytes: Vec<u8>,
    reservation: Reservation,
}

/// How [`RequestBody::admit`] counts the events a body holds before it is decoded.
#[derive(Clone, Copy)]
pub(crate) enum Count {
    /// Exactly (one event per line, per JSON value, per `EventList` item): a body holding
    /// more than `input_limits.max_events_per_request` is refused whole (413).
    Exact(fn(&[u8]) -> usize),
    /// An upper bound: the decoder itself stops at the limit and reports the rest.
    Bound(fn(&[u8]) -> usize),
}

/// Bodies this small are counted on the async thread; larger ones on a blocking thread.
const COUNT_INLINE_BYTES: usize = 64 * 1024;

impl RequestBody {
    /// Counts the events of the body, refuses it (413) when it holds more than
    /// `input_limits.max_events_per_request`, and reserves the memory of decoding it (503 with
    /// `Retry-After` while the budget is in use, 413 when it can never fit): all before one
    /// event is built.
    pub(crate) async fn admit(&mut self, state: &AppState, count: Count) -> Result<(), ApiError> {
        let (exact, counter) = match count {
            Count::Exact(counter) => (true, counter),
            Count::Bound(counter) => (false, counter),
        };
        let count = move |bytes: &[u8]| (counter(bytes), count_audit_markers(bytes));
        let (events, audit) = if self.bytes.len() <= COUNT_INLINE_BYTES {
            count(&self.bytes)
        } else {
            let bytes = std::mem::take(&mut self.bytes);
            let (bytes, counted) = tokio::task::spawn_blocking(move || {
                let counted = count(&bytes);
                (bytes, counted)
            })
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
            self.bytes = bytes;
            counted
        };
        let max = state.config.input_limits.max_events_per_request;
        if exact && events > max {
            return Err(ApiError::PayloadTooLarge(format!(
                "the request holds {events} events, more than the limit of {max} per request \
                 (input_limits.max_events_per_request); nothing was stored, send smaller batches"
            )));
        }
        // A line can hold many audit events (an `EventList` or a CloudWatch Logs batch on one
        // line, all of them stored): their marks count towards the cost, not the refusal.
        let events = events.max(audit).min(max);
        let needed = decode_cost(self.bytes.len(), events, audit.min(events)) + self.bytes.len();
        self.reservation
            .try_grow_to(needed)
            .map_err(|error| budget_error(state, error))
    }

    /// Takes the bytes out, for the decoder (the reservation stays).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

/// The answer to a refused decode-budget reservation.
fn budget_error(state: &AppState, error: BudgetError) -> ApiError {
    match error {
        BudgetError::TooLarge { needed, budget } => ApiError::PayloadTooLarge(format!(
            "decoding this request needs about {needed} bytes of memory, more than the whole \
             decode budget of {budget} bytes (decode.memory_budget_bytes); send smaller batches"
        )),
        BudgetError::Busy { needed, budget } => ApiError::Overloaded {
            message: format!(
                "the decode memory budget of {budget} bytes (decode.memory_budget_bytes) is in \
                 use by other requests ({needed} bytes needed); retry after {} s",
                state.config.pipeline.retry_after_secs
            ),
            retry_after: state.config.pipeline.retry_after_secs,
        },
    }
}

/// Reads the body up to the configured limit, undoing `Content-Encoding: gzip|deflate`, and
/// reserves what it holds from the decode budget as it arrives: the raw bytes as they are
/// read, the inflated bytes as they are inflated (a compression bomb stops at
/// `max_body_bytes`, or earlier when the budget is in use). A body that does not arrive
/// within `http.body_read_timeout_secs` is answered 408.
pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<RequestBody, ApiError> {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "request body exceeds the limit of {limit} bytes (max_body_bytes)"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let compressed: Option<Inflater> = match encoding.as_deref() {
        None | Some("identity") | Some("") => None,
        Some("gzip") | Some("x-gzip") => {
            Some(|raw| Box::new(flate2::read::MultiGzDecoder::new(raw)))
        }
        Some("deflate") => Some(|raw| Box::new(flate2::read::ZlibDecoder::new(raw))),
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content encoding `{other}` is not supported; use gzip, deflate or none"
            )))
        }
    };
    let mut reservation = state.decode_budget.empty();
    if let Some(declared) = declared {
        let declared = usize::try_from(declared).unwrap_or(usize::MAX);
        reservation
            .try_grow_to(declared)
            .map_err(|error| budget_error(state, error))?;
    }
    let mut body = body;
    let mut raw = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|error| body_error(&error))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if raw.len() + data.len() > limit {
            return Err(too_large());
        }
        reservation
            .try_grow_to(raw.len() + data.len())
            .map_err(|error| budget_error(state, error))?;
        raw.extend_from_slice(&data);
    }
    let Some(decoder) = compressed else {
        reservation.shrink_to(raw.len());
        return Ok(RequestBody {
            bytes: raw,
            reservation,
        });
    };
    // Inflate off the async threads, reserving the output as it grows.
    let (reservation, inflated) = tokio::task::spawn_blocking(move || {
        let mut reservation = reservation;
        let result = inflate(decoder(&raw), raw.len(), limit, &mut reservation);
        (reservation, result)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    let bytes = match inflated {
        Ok(bytes) => bytes,
        Err(Inflate::TooLarge) => {
            return Err(ApiError::PayloadTooLarge(format!(
                "decompressed request body exceeds the limit of {limit} bytes (max_body_bytes)"
            )))
        }
        Err(Inflate::Budget(error)) => return Err(budget_error(state, error)),
        Err(Inflate::Corrupt(reason)) => {
            return Err(ApiError::bad_request(format!(
                "the compressed body is invalid: {reason}"
            )))
        }
    };
    let mut reservation = reservation;
    reservation.shrink_to(bytes.len());
    Ok(RequestBody { bytes, reservation })
}

/// Makes the inflating reader of a `Content-Encoding`.
type Inflater = fn(&[u8]) -> Box<dyn Read + '_>;

enum Inflate {
    TooLarge,
    Budget(BudgetError),
    Corrupt(String),
}

/// Inflates into a buffer that never passes `limit`, reserving `raw_len` plus the output
/// before each chunk is kept.
fn inflate(
    mut reader: Box<dyn Read + '_>,
    raw_len: usize,
    limit: usize,
    reservation: &mut Reservation,
) -> Result<Vec<u8>, Inflate> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = match reader.read(&mut chunk) {
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(Inflate::Corrupt(error.to_string())),
        };
        if read == 0 {
            return Ok(out);
        }
        if out.len() + read > limit {
            return Err(Inflate::TooLarge);
        }
        reservation
            .try_grow_to(raw_len + out.len() + read)
            .map_err(Inflate::Budget)?;
        out.extend_from_slice(&chunk[..read]);
    }
}

/// The answer to a body that could not be read: 408 past the body read timeout.
fn body_error(error: &axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(timeout) = current.downcast_ref::<crate::serve::BodyTimeout>() {
            return ApiError::RequestTimeout(timeout.to_string());
        }
        source = current.source();
    }
    ApiError::bad_request(format!("reading the request body failed: {error}"))
}
