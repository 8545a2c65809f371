//! `POST /api/v1/ingest/falco`: Falco `http_output` and falcosidekick webhook alerts.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;

use super::{blocking, limits};
use crate::api::authorize;
use crate::api::ingest::{check_content_type, read_body, store};
use crate::auth::Scope;
use crate::error::ApiError;
use crate::AppState;

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
    let bytes = read_body(&state, &headers, body).await?;
    let limits = limits(&state);
    let decoded = blocking(move || crowsnest_ingest::falco::decode(&bytes, &limits))
        .await?
        .map_err(|e| ApiError::bad_request(format!("not a Falco alert body: {e}")))?;
    store(&state, decoded, "falco").await
}
