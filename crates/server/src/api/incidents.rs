//! `GET /api/v1/incidents`, `GET /api/v1/incidents/{id}` and
//! `POST /api/v1/incidents/{id}/actions`.
//!
//! The detector thread groups alerts into incidents (`crowsnest-respond`); these handlers read
//! them. An action (acknowledge, investigate, resolve, assign, comment) is written to the WAL
//! as an event (`event.dataset: crowsnest.incident_action`) and applied by the detector in WAL
//! order, so a replay after a crash rebuilds the same incidents; the answer (202) comes once
//! the action is durable, and the incident shows it a moment later.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use crowsnest_normalize::Decoded;
use crowsnest_respond::{Classification, Status};
use serde::Deserialize;
use serde_json::json;

use super::authorize;
use crate::auth::Scope;
use crate::detection::IncidentAction;
use crate::error::ApiError;
use crate::pipeline::Admission;
use crate::AppState;

const ACTIONS: [&str; 5] = ["acknowledge", "investigate", "resolve", "assign", "comment"];

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    Ok(Json(
        json!({ "incidents": list_incidents(&state, &params)? }),
    ))
}

/// The incidents behind `GET /api/v1/incidents` (and the console's incidents page): their
/// summaries, filtered by the endpoint's query parameters (`status`, `min_risk`, `limit`).
pub fn list_incidents(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let status = match params.get("status").map(String::as_str) {
        None | Some("") | Some("open") => None,
        Some(text) => Some(
            serde_json::from_value::<Status>(json!(text)).map_err(|_| {
                ApiError::bad_request(format!(
                    "unknown `status` `{text}`; expected open, new, acknowledged, investigating or resolved"
                ))
            })?,
        ),
    };
    let open_only = params
        .get("status")
        .is_none_or(|s| s.is_empty() || s == "open");
    let min_risk = match params.get("min_risk") {
        Some(text) => text
            .parse::<f64>()
            .map_err(|_| ApiError::bad_request(format!("`min_risk` `{text}` is not a number")))?,
        None => 0.0,
    };
    let limit = match params.get("limit") {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("`limit` `{text}` is not a count")))?,
        None => 100,
    };
    let incidents: Vec<_> = state.detection.with_incidents(|incidents| {
        incidents
            .list()
            .into_iter()
            .filter(|i| match status {
                Some(wanted) => i.status == wanted,
                None => !open_only || i.status != Status::Resolved,
            })
            .filter(|i| i.risk.score >= min_risk)
            .take(limit)
            .map(|i| {
                json!({
                    "id": i.id,
                    "title": i.title,
                    "status": i.status,
                    "level": i.level,
                    "risk": i.risk.score,
                    "page": i.page,
                    "entity": i.entity,
                    "alerts": i.alerts.len() as u64 + i.overflow,
                    "opened": i.opened,
                    "last_alert": i.last_alert,
                    "assignee": i.assignee,
                })
            })
            .collect()
    });
    Ok(incidents)
}

pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let incident = state
        .detection
        .incident(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no incident `{id}`")))?;
    Ok(Json(incident))
}

/// An incident action, as `POST /api/v1/incidents/{id}/actions` takes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// acknowledge, investigate, resolve, assign or comment.
    pub action: String,
    /// With resolve: how the incident was classified.
    #[serde(default)]
    pub classification: Option<Classification>,
    /// With assign: to whom.
    #[serde(default)]
    pub assignee: Option<String>,
    /// With comment: the text.
    #[serde(default)]
    pub text: Option<String>,
}

pub(super) async fn act(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let token = authorize(&state, &headers, Scope::Admin)?;
    let body: ActionBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid incident action: {e}; expected {{\"action\": \"acknowledge|investigate|resolve|assign|comment\", \"classification\": \"true_positive|benign_true_positive|false_positive\", \"assignee\": \"...\", \"text\": \"...\"}}"
        ))
    })?;
    let false_positive = body.action == "resolve"
        && matches!(body.classification, Some(Classification::FalsePositive));
    let action = submit_action(&state, token, id, body).await?;
    let mut answer = json!({"accepted": true, "incident": action.id, "action": action.action});
    // Resolving as a false positive offers the suppressions that would silence it next time.
    if false_positive {
        if let Some(incident) = state.detection.incident(&action.id) {
            let offered = incident.suggested_suppressions(&action.by, chrono::Utc::now());
            answer["suggested_suppressions_toml"] =
                json!(crowsnest_respond::SuggestedSuppression::to_toml(&offered));
            answer["suggested_suppressions"] = json!(offered);
        }
    }
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// The action behind `POST /api/v1/incidents/{id}/actions` (and the console's incident
/// buttons), for a token already authorized with the `admin` scope: checks it, then writes it
/// to the WAL (durable when this returns; the detector applies it a moment later).
pub async fn submit_action(
    state: &AppState,
    token: String,
    id: String,
    body: ActionBody,
) -> Result<IncidentAction, ApiError> {
    if !ACTIONS.contains(&body.action.as_str()) {
        return Err(ApiError::bad_request(format!(
            "unknown action `{}`; expected one of {}",
            body.action,
            ACTIONS.join(", ")
        )));
    }
    if body.action == "comment" && body.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_request("a comment needs `text`"));
    }
    let Some(incident) = state.detection.incident(&id) else {
        return Err(ApiError::NotFound(format!("no incident `{id}`")));
    };
    let closed = incident.status == Status::Resolved;
    if closed
        && matches!(
            body.action.as_str(),
            "acknowledge" | "investigate" | "resolve"
        )
    {
        return Err(ApiError::BadRequest {
            message: format!(
                "incident `{id}` is resolved; new alerts about its entity open a new incident"
            ),
            details: None,
        });
    }
    let action = IncidentAction {
        id,
        action: body.action,
        classification: body.classification,
        assignee: body.assignee,
        text: body.text,
        by: token,
    };
    let decoded = Decoded {
        events: vec![action.to_event()],
        errors: Vec::new(),
    };
    state
        .pipeline
        .submit_decoded(decoded, "crowsnest", Admission::FailFast)
        .await
        .map_err(|error| super::ingest::submit_error(state, error))?;
    Ok(action)
}
