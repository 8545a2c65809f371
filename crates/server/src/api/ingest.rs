//! `POST /api/v1/ingest/k8s-audit` and `POST /api/v1/ingest/ndjson`.
//!
//! Order of checks: token (401/403), content type (415), size before and after
//! decompression (413), then decoding. Bad lines are reported one by one (line, field, reason)
//! while the good lines of the same request are stored; the response comes only after the
//! accepted events are fsync'd in the WAL.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use crowsnest_model::{ecs, format_timestamp, record, Event};
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
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Ingest)?;
    check_content_type(&headers, &["application/json"])?;
    let bytes = read_body(&state, &headers, body).await?;
    let limits = state.config.decode.to_limits();
    let decoded =
        tokio::task::spawn_blocking(move || crowsnest_normalize::decode_k8s_audit(&bytes, &limits))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(|e| {
                ApiError::bad_request(format!("not a Kubernetes audit EventList or Event: {e}"))
            })?;
    store(&state, decoded, "kubernetes.audit").await
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
    let bytes = read_body(&state, &headers, body).await?;
    let limits = state.config.decode.to_limits();
    let label = source.clone().unwrap_or_else(|| "ndjson".to_string());
    let decoded = tokio::task::spawn_blocking(move || {
        crowsnest_normalize::decode_ndjson(&bytes, source.as_deref(), &limits)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    // Batches retried by the agent: stored once (crate::dedup).
    let mut decoded = decoded;
    let admitted = match crate::dedup::gate(&state.dedup, &headers)? {
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
    let response = store(&state, decoded, &label).await?;
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
    let Decoded { events, errors } = decoded;
    let rejected = errors.len();
    if rejected > 0 {
        state
            .metrics
            .rejected
            .get_or_create(&state.metrics.source(label))
            .inc_by(rejected as u64);
    }
    let window = state.config.store.clone();
    let (events, payloads, per_source) =
        tokio::task::spawn_blocking(move || prepare(events, &window))
            .await
            .map_err(|e| ApiError::Internal(e.into()))??;
    for (source, count) in per_source {
        state
            .metrics
            .received
            .get_or_create(&state.metrics.source(&source))
            .inc_by(count);
    }
    let accepted = events.len();
    if accepted > 0 {
        state
            .pipeline
            .submit_as(events, payloads, admission)
            .await
            .map_err(|error| match error {
                SubmitError::Busy(secs) => ApiError::Busy(secs),
                SubmitError::DiskFull(secs) => ApiError::InsufficientStorage(secs),
                SubmitError::Closed => ApiError::Busy(state.config.pipeline.retry_after_secs),
                SubmitError::Wal(message) => {
                    ApiError::Internal(anyhow::anyhow!("wal append failed: {message}"))
                }
            })?;
    }
    Ok((accepted, errors))
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

type Prepared = (Vec<Event>, Vec<Vec<u8>>, HashMap<String, u64>);

/// Gives each event its id, ingest time and (when missing) timestamp, flags a timestamp far
/// from the ingest time (the store keeps such events by their ingest time: see
/// [`crowsnest_store::StoreConfig::window_past_hours`]), and serializes it.
fn prepare(
    mut events: Vec<Event>,
    window: &crowsnest_store::StoreConfig,
) -> Result<Prepared, ApiError> {
    let now = Utc::now();
    let now_text = format_timestamp(now);
    let mut generator = ulid::Generator::new();
    let mut payloads = Vec::with_capacity(events.len());
    let mut per_source: HashMap<String, u64> = HashMap::new();
    // Payloads start at about the previous one's size, so serializing rarely reallocates.
    let mut capacity = 1024;
    for event in &mut events {
        let id = generator
            .generate_from_datetime(now.into())
            .unwrap_or_else(|_| ulid::Ulid::new());
        event.set(ecs::EVENT_ID, Value::String(id.to_string()));
        event.set(ecs::EVENT_INGESTED, Value::String(now_text.clone()));
        match event.timestamp() {
            Some(ts) => {
                event.set(ecs::TIMESTAMP, Value::String(format_timestamp(ts)));
                if let Some(side) = window.out_of_range(ts, now) {
                    event.set(
                        crowsnest_store::OUT_OF_RANGE_FIELD,
                        Value::String(side.as_str().into()),
                    );
                }
            }
            None => event.set(ecs::TIMESTAMP, Value::String(now_text.clone())),
        }
        let source = event.get_str(ecs::EVENT_DATASET).unwrap_or("unknown");
        *per_source.entry(source.to_string()).or_default() += 1;
        let mut payload = Vec::with_capacity(capacity);
        record::encode(event, &mut payload).map_err(|e| ApiError::Internal(e.into()))?;
        capacity = payload.len() + payload.len() / 8;
        payloads.push(payload);
    }
    Ok((events, payloads, per_source))
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

/// Reads the body up to the configured limit, undoing `Content-Encoding: gzip|deflate`.
pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    let limit = state.config.max_body_bytes;
    let too_large =
        || ApiError::PayloadTooLarge(format!("request body exceeds the limit of {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let raw = axum::body::to_bytes(body, limit).await.map_err(|error| {
        if std::error::Error::source(&error).is_some_and(|s| s.to_string().contains("length limit"))
            || error.to_string().contains("length limit")
        {
            too_large()
        } else {
            ApiError::bad_request(format!("reading the request body failed: {error}"))
        }
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let reader: Box<dyn Read> = match encoding.as_deref() {
        None | Some("identity") | Some("") => return Ok(raw.to_vec()),
        Some("gzip") | Some("x-gzip") => Box::new(flate2::read::MultiGzDecoder::new(&raw[..])),
        Some("deflate") => Box::new(flate2::read::ZlibDecoder::new(&raw[..])),
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content encoding `{other}` is not supported; use gzip, deflate or none"
            )))
        }
    };
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("the compressed body is invalid: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "decompressed request body exceeds the limit of {limit} bytes"
        )));
    }
    Ok(out)
}
