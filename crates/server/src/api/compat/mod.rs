//! Compatibility endpoints: the HTTP APIs shippers already speak, so they can point at
//! crowsnest unchanged.
//!
//! | path | speaks | for |
//! |---|---|---|
//! | `/es/`, `/es/_bulk`, `/es/{index}/_bulk`, `/es/*` probes | Elasticsearch | Beats, Logstash, Fluent Bit, Vector, official clients |
//! | `/services/collector[/event\|/raw\|/ack\|/health]` | Splunk HEC | Splunk libraries, Fluent Bit, Vector, OTel `splunk_hec` |
//! | `/v1/logs` | OTLP/HTTP logs | OTel SDKs and collectors |
//! | `/api/v1/ingest/falco` | Falco `http_output`, falcosidekick webhook | Falco |
//!
//! Each decodes with `crowsnest-ingest` and submits through
//! [`super::ingest::submit_decoded`], exactly like the native ingest endpoints (same body
//! limits, decompression, WAL durability before the answer, metrics per source). Credentials
//! are our tokens with scope `ingest`, in whatever scheme the shipper sends
//! ([`crate::auth::credential`]). Responses take each protocol's own shape, so clients parse
//! them (Elasticsearch per-item statuses, HEC codes, OTLP partial success); every answer also
//! carries the counts in [`count_headers`]. A record that holds many events (an audit
//! `EventList`, a CloudWatch Logs batch) is stored as all of them, on every input.

#[cfg(test)]
mod batch_tests;
mod es;
mod falco;
#[cfg(test)]
mod limits_tests;
mod otlp;
#[cfg(test)]
mod shipper_tests;
mod splunk;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::routing::{any, get, post};
use axum::Router;

use crate::AppState;

/// The compatibility routes, merged into the main router.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/es", get(es::root))
        .route("/es/", get(es::root))
        .route("/es/_bulk", post(es::bulk).put(es::bulk))
        .route("/es/{*rest}", any(es::probe))
        .route("/services/collector", post(splunk::event))
        .route("/services/collector/event", post(splunk::event))
        .route("/services/collector/event/1.0", post(splunk::event))
        .route("/services/collector/raw", post(splunk::raw))
        .route("/services/collector/raw/1.0", post(splunk::raw))
        .route("/services/collector/ack", post(splunk::ack))
        .route("/services/collector/health", get(splunk::health))
        .route("/services/collector/health/1.0", get(splunk::health))
        .route("/v1/logs", post(otlp::logs))
        .route("/api/v1/ingest/falco", post(falco::ingest))
}

/// The ingest limits from the server configuration (HTTP inputs and listeners alike).
pub(crate) fn limits(state: &AppState) -> crowsnest_ingest::Limits {
    let inputs = &state.config.input_limits;
    crowsnest_ingest::Limits {
        decode: state.config.decode.to_limits(),
        max_frame_bytes: inputs.max_frame_bytes,
        max_syslog_frame_bytes: inputs.max_syslog_frame_bytes,
        max_decompressed_bytes: state.config.max_body_bytes,
        max_events: inputs.max_events_per_request,
        max_connections: inputs.max_connections,
        max_connections_per_ip: inputs.max_connections_per_ip,
        idle_timeout: std::time::Duration::from_secs(inputs.idle_timeout_secs.max(1)),
    }
}

/// Adds the counts of a compatibility answer, whose protocol body cannot always say them (an
/// Elasticsearch bulk item or an OTLP record may hold many events): `X-Crowsnest-Events-Stored`
/// (events durably stored) and `X-Crowsnest-Items-Rejected` (items, records or events refused,
/// each reported in the protocol's own way).
pub(crate) fn count_headers(
    response: &mut axum::response::Response,
    stored: usize,
    rejected: usize,
) {
    let headers = response.headers_mut();
    headers.insert("x-crowsnest-events-stored", stored.into());
    headers.insert("x-crowsnest-items-rejected", rejected.into());
}

/// Runs a decoder off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, crate::error::ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| crate::error::ApiError::Internal(e.into()))
}

/// The status [`crate::error::ApiError`] answers with, for protocols that shape their own
/// error bodies.
pub(crate) fn status_of(error: &crate::error::ApiError) -> axum::http::StatusCode {
    use crate::error::ApiError;
    use axum::http::StatusCode;
    match error {
        ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        // Shippers retry a 503 (OTLP, HEC, Fluent Bit); few know 507.
        ApiError::Busy(_) | ApiError::Overloaded { .. } | ApiError::InsufficientStorage(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
