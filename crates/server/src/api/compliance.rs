//! `GET /api/v1/compliance/{framework}?from=&to=&scope=`: the status of every control of a
//! framework over a period, with the queries, counts and sample events behind each
//! (`crowsnest-compliance`). `crowsnest report compliance` renders this JSON as the report.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use crowsnest_compliance::{ComplianceConfig, Evaluation, IncidentFacts, Scope};

use super::authorize;
use crate::auth::Scope as TokenScope;
use crate::error::ApiError;
use crate::AppState;

/// The period when `from` is not given: 30 days before `to`.
const DEFAULT_DAYS: i64 = 30;

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "`{name}` `{text}` is not an RFC 3339 time ({e}); for example 2026-11-01T00:00:00Z"
            ))
        })
}

pub(super) async fn evaluate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(framework): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, TokenScope::Read)?;
    let to = match params.get("to").filter(|t| !t.is_empty()) {
        Some(text) => parse_time("to", text)?,
        None => Utc::now(),
    };
    let from = match params.get("from").filter(|t| !t.is_empty()) {
        Some(text) => parse_time("from", text)?,
        None => to - TimeDelta::days(DEFAULT_DAYS),
    };
    let scope = Scope::parse(params.get("scope").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let evaluation =
        tokio::task::spawn_blocking(move || run_evaluation(&state, &framework, from, to, scope))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("the evaluation stopped: {e}")))??;
    Ok(Json(evaluation))
}

/// Evaluates a framework against the server's store, incidents and `[compliance]` settings
/// (also for the web console).
pub fn run_evaluation(
    state: &AppState,
    framework: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    scope: Scope,
) -> Result<Evaluation, ApiError> {
    let incidents: Vec<IncidentFacts> = state.detection.with_incidents(|incidents| {
        incidents
            .list()
            .into_iter()
            .map(|i| IncidentFacts {
                id: i.id.clone(),
                title: i.title.clone(),
                opened: i.opened,
                status: serde_json::to_value(i.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                namespace: i.namespace.clone(),
                cluster: i.cluster.clone(),
            })
            .collect()
    });
    let config: &ComplianceConfig = &state.config.compliance;
    crowsnest_compliance::evaluate(
        &crowsnest_compliance::Inputs {
            store: &state.store,
            incidents: &incidents,
            config,
        },
        &crowsnest_compliance::Request {
            framework,
            from,
            to,
            scope,
        },
    )
    .map_err(|e| match e {
        crowsnest_compliance::Error::UnknownFramework(_) => ApiError::NotFound(e.to_string()),
        crowsnest_compliance::Error::Period { .. } | crowsnest_compliance::Error::Scope(_) => {
            ApiError::bad_request(e.to_string())
        }
        other => ApiError::Internal(anyhow::anyhow!(other)),
    })
}
