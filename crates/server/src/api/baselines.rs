//! `GET /api/v1/baselines`, `GET /api/v1/baselines/{rule}` and
//! `POST /api/v1/baselines/{rule}/actions`.
//!
//! The baseline rules' state lives on the detector thread; reads are questions it answers
//! between two batches. A change (reset, accept a term, lock, unlock) is written to the WAL as
//! an event (`event.dataset: crowsnest.baseline_action`) and applied by the detector in WAL
//! order, so a replay after a crash rebuilds the same baselines; the answer (202) comes once the
//! action is durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use crowsnest_normalize::Decoded;
use serde::Deserialize;
use serde_json::{json, Value};

use super::authorize;
use crate::auth::Scope;
use crate::baselines::{BaselineAction, ACTIONS};
use crate::error::ApiError;
use crate::pipeline::Admission;
use crate::AppState;

/// How long a read waits for the detector thread.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

async fn ask(
    state: &AppState,
    rule: Option<String>,
    entity: Option<String>,
) -> Result<Option<Value>, ApiError> {
    if !state.config.detect.enabled {
        return Err(ApiError::bad_request(
            "detection is disabled (`detect.enabled = false`): no baselines",
        ));
    }
    let Some(answer) = state.detection.baselines.ask(rule, entity) else {
        return Err(ApiError::Busy(1));
    };
    match tokio::time::timeout(ANSWER_WAIT, answer).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(ApiError::Internal(anyhow::anyhow!(
            "detection is not running (disabled, or stopped)"
        ))),
        Err(_) => Err(ApiError::Timeout(
            "the detector did not answer within 10 s (busy with a large batch); try again".into(),
        )),
    }
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let answer = ask(&state, None, None).await?;
    Ok(Json(answer.unwrap_or_else(|| json!({"baselines": []}))))
}

pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(rule): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let entity = params.get("entity").filter(|e| !e.is_empty()).cloned();
    match ask(&state, Some(rule.clone()), entity).await? {
        Some(profile) => Ok(Json(profile)),
        None => Err(ApiError::NotFound(format!(
            "no baseline rule `{rule}` (see GET /api/v1/baselines)"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionBody {
    action: String,
    #[serde(default)]
    entity: Option<String>,
    #[serde(default)]
    term: Vec<String>,
    #[serde(default)]
    profile: Option<crowsnest_detect::Profile>,
}

pub(super) async fn act(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(rule): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let token = authorize(&state, &headers, Scope::Admin)?;
    let body: ActionBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid baseline action: {e}; expected {{\"action\": \"reset|accept|lock|unlock|import\", \"entity\": \"...\", \"term\": [\"...\"], \"profile\": {{...}}}}"
        ))
    })?;
    if !ACTIONS.contains(&body.action.as_str()) {
        return Err(ApiError::bad_request(format!(
            "unknown action `{}`; expected one of {}",
            body.action,
            ACTIONS.join(", ")
        )));
    }
    let entity = body.entity.filter(|e| !e.is_empty());
    if body.action == "import" {
        let Some(profile) = &body.profile else {
            return Err(ApiError::bad_request("`import` needs a `profile`"));
        };
        if profile.rule != rule {
            return Err(ApiError::bad_request(format!(
                "the profile is rule `{}`'s, not `{rule}`'s",
                profile.rule
            )));
        }
    } else if body.action != "reset" && entity.is_none() {
        return Err(ApiError::bad_request(format!(
            "`{}` needs an `entity` (a value of the rule's entity fields)",
            body.action
        )));
    }
    // The rule must have a baseline, and `accept` must give one value per term field.
    let Some(profile) = ask(&state, Some(rule.clone()), Some(String::new())).await? else {
        return Err(ApiError::NotFound(format!("no baseline rule `{rule}`")));
    };
    let terms = profile["terms"].as_array().map_or(0, Vec::len);
    if let Some(p) = &body.profile {
        if serde_json::to_value(&p.entity).ok().as_ref() != Some(&profile["entity"])
            || serde_json::to_value(&p.terms).ok().as_ref() != Some(&profile["terms"])
        {
            return Err(ApiError::bad_request(format!(
                "the profile's fields ({:?} × {:?}) are not the rule's ({} × {})",
                p.entity, p.terms, profile["entity"], profile["terms"]
            )));
        }
        // A rate rule's entities carry a history laid out by its bucket and slots.
        let layout = serde_json::to_value(&p.rate).unwrap_or(Value::Null);
        let is_rate = !profile["rate"].is_null();
        if !p.rates.is_empty() && layout != profile["rate"] {
            return Err(ApiError::bad_request(format!(
                "the profile's rate layout ({layout}) is not the rule's ({})",
                profile["rate"]
            )));
        }
        if is_rate && !p.entities.is_empty() {
            return Err(ApiError::bad_request(
                "the rule is a rate: a profile's entities go in `rates`, not `entities`",
            ));
        }
        if !is_rate && !p.rates.is_empty() {
            return Err(ApiError::bad_request(
                "the rule is not a rate: the profile's `rates` cannot be imported",
            ));
        }
    }
    if body.action == "accept" && !profile["rate"].is_null() && !body.term.is_empty() {
        return Err(ApiError::bad_request(
            "the rule is a rate: `accept` takes no `term` (it accepts the entity's current bucket)",
        ));
    }
    if body.action == "accept" && body.term.len() != terms {
        return Err(ApiError::bad_request(format!(
            "`accept` needs `term` with {terms} values, one per term field {}",
            profile["terms"]
        )));
    }
    let action = BaselineAction {
        rule,
        action: body.action,
        entity,
        term: body.term,
        profile: body.profile,
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
        .map_err(|error| super::ingest::submit_error(&state, error))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"accepted": true, "rule": action.rule, "action": action.action, "entity": action.entity}),
        ),
    ))
}
