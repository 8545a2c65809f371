//! `POST /v1/logs`: OTLP/HTTP logs, protobuf or JSON, optionally gzip'd.
//!
//! The answer is an `ExportLogsServiceResponse` in the request's encoding; records that did
//! not decode are counted in its `partial_success`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use crowsnest_ingest::otlp::{self, OtlpFormat};

use super::{blocking, limits};
use crate::api::authorize;
use crate::api::ingest::{read_body, submit_decoded, Count};
use crate::auth::Scope;
use crate::error::ApiError;
use crate::AppState;
use crowsnest_ingest::limits::{count_open_braces, count_otlp_records};

pub(super) async fn logs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Ingest)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => OtlpFormat::Protobuf,
        "application/json" => OtlpFormat::Json,
        _ => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type `{content_type}` is not accepted here; send application/x-protobuf or application/json"
            )))
        }
    };
    let mut body = read_body(&state, &headers, body).await?;
    let count = match format {
        // Not protobuf at all: the decoder says why; count it as one.
        OtlpFormat::Protobuf => Count::Exact(|bytes| count_otlp_records(bytes).unwrap_or(1)),
        OtlpFormat::Json => Count::Bound(count_open_braces),
    };
    body.admit(&state, count).await?;
    let bytes = body.take();
    let limits = limits(&state);
    let decoded = blocking(move || otlp::decode(&bytes, format, &limits))
        .await?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // OTLP exporters retry 429/502/503/504 and drop the data on any other status.
    let (stored, errors) = submit_decoded(&state, decoded, "otel.logs")
        .await
        .map_err(|error| match error {
            ApiError::InsufficientStorage(secs) => ApiError::Busy(secs),
            other => other,
        })?;
    drop(body);
    let message = errors.first().map(ToString::to_string).unwrap_or_default();
    let body = otlp::encode_response(errors.len(), &message, format);
    let content_type = match format {
        OtlpFormat::Protobuf => "application/x-protobuf",
        OtlpFormat::Json => "application/json",
    };
    let mut response =
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    super::count_headers(&mut response, stored, errors.len());
    Ok(response)
}
