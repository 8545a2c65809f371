//! `POST /api/v1/verify` (admin): the server verifies its integrity chain and sealed files now
//! and records the result, with who asked, in the self-audit stream ([`crate::verify`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::authorize;
use crate::auth::Scope;
use crate::error::ApiError;
use crate::verify::{verify_now, Trigger, VerifyRun};
use crate::AppState;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

pub(super) async fn verify(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let token = authorize(&state, &headers, Scope::Admin)?;
    let request: VerifyBody = if body.iter().all(u8::is_ascii_whitespace) {
        VerifyBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid verify request: {e}; expected {{\"from\": RFC 3339, \"to\": RFC 3339}} (both optional)"
            ))
        })?
    };
    if !state.config.integrity.enabled {
        return Err(ApiError::bad_request(
            "the integrity chain is off ([integrity] enabled = false): nothing to verify",
        ));
    }
    let run = VerifyRun {
        trigger: Trigger::Api,
        user: Some(token),
        source_ip: crate::audit::peer_ip(&extensions),
        from: request.from,
        to: request.to,
    };
    let (report, elapsed) = verify_now(&state, run).await.map_err(ApiError::Internal)?;
    let mut value = serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.into()))?;
    value["passed"] = json!(report.passed());
    value["duration_ms"] = json!(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    Ok(Json(value))
}
