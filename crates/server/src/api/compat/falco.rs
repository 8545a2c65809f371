//! `POST /api/v1/ingest/falco`: Falco `http_output` and falcosidekick webhook alerts.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;

use super::{blocking, limits};
use crate::api::authorize;
use crate::api::ingest::{check_content_type, read_body, store, Count};
use crate::auth::Scope;
use crate::error::ApiError;
use crate::AppState;
use crowsnest_ingest::limits::count_lines;

pub(super) async fn ingest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Ingest)?;
    check_content_type(
        &headers,
        &["application/json", "application/x-ndjson", "text/plain"],
    )?;
    let mut body = read_body(&state, &headers, body).await?;
    // An alert per line, or one (pretty-printed) JSON alert: lines bound the alerts.
    body.admit(&state, Count::Bound(count_lines)).await?;
    let bytes = body.take();
    let limits = limits(&state);
    let decoded = blocking(move || crowsnest_ingest::falco::decode(&bytes, &limits))
        .await?
        .map_err(|e| ApiError::bad_request(format!("not a Falco alert body: {e}")))?;
    let response = store(&state, decoded, "falco").await;
    drop(body);
    response
}
