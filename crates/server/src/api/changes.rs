//! Configuration changes whose handlers live elsewhere, audited around them: a baseline's
//! reset, accept, lock, unlock or import (`POST /api/v1/baselines/{rule}/actions`) becomes a
//! `config.change` event of the self-audit stream, with the rule, the action, the entity and
//! the outcome (the status and message of a refusal).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::Scope;
use crate::AppState;

/// `POST /api/v1/baselines/{rule}/actions`, audited.
pub(super) async fn baseline_action(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Path(rule): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    // Only an admin's change is a change; other refusals are counted by the auth guard.
    let Ok(token) = super::authorize(&state, &headers, Scope::Admin) else {
        return super::baselines::act(State(state), headers, Path(rule), body)
            .await
            .into_response();
    };
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let action = asked["action"].as_str().unwrap_or("?").to_string();
    let mut target = format!("baseline {rule}: {action}");
    if let Some(entity) = asked["entity"].as_str().filter(|e| !e.is_empty()) {
        target.push_str(&format!(" entity {entity}"));
    }
    if let Some(term) = asked["term"].as_array().filter(|t| !t.is_empty()) {
        target.push_str(&format!(" term {}", Value::Array(term.clone())));
    }
    let result = super::baselines::act(State(state.clone()), headers, Path(rule), body).await;
    let outcome = match &result {
        Ok(_) => Ok(()),
        Err(error) => Err(error.to_string()),
    };
    let actor = crate::audit::Actor::of_request(Some(token), &extensions);
    crate::audit::sync_scope_actor(actor, || {
        crate::audit::record_change(&state.audit, "config.change", target, outcome);
    });
    result.into_response()
}
