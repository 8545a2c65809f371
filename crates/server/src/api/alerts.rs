//! `GET /api/v1/alerts`, `GET /api/v1/rules`, `POST /api/v1/rules/reload`.
//!
//! Alerts are events (`event.kind: alert`) in the store, so this endpoint is a search with the
//! alert filters spelled out as parameters. A folded alert is written again each time its count
//! changes (same `alert.id`, higher `alert.count`); this endpoint shows the newest record of
//! each alert and counts distinct alerts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use crowsnest_model::{ecs, Severity};
use crowsnest_query::{Agg, AggFunc, Filter, Pipe, Query as SearchQuery};
use crowsnest_store::SearchRequest;
use serde_json::{json, Value};

use super::authorize;
use crate::auth::Scope;
use crate::error::ApiError;
use crate::AppState;

/// Most alerts one page returns.
const MAX_LIMIT: usize = 1_000;

pub(super) async fn alerts(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let token = authorize(&state, &headers, Scope::Read)?;
    Ok(Json(list_alerts(&state, &token, &params).await?))
}

/// The alerts behind `GET /api/v1/alerts` (and the console's alerts page), for a token
/// already authorized: `params` are the endpoint's query parameters. Answers
/// `{"total": distinct alerts, "alerts": [newest record of each, this page]}`.
pub async fn list_alerts(
    state: &Arc<AppState>,
    token: &str,
    params: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    const KNOWN: [&str; 15] = [
        "query",
        "rule",
        "level",
        "min_level",
        "technique",
        "namespace",
        "pod",
        "container",
        "user",
        "since",
        "start",
        "limit",
        "offset",
        "end",
        "format",
    ];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown parameter `{unknown}`; known: {}",
            KNOWN.join(", ")
        )));
    }
    // The filter is built as a syntax tree, not as text: a value or a `query` can hold any
    // character without escaping, and nothing in `query` can reach outside its own clause.
    let term = |field: &str, value: &str| Filter::Term {
        field: Some(field.to_string()),
        value: value.to_string(),
    };
    let mut clauses = vec![term("event.kind", "alert")];
    if let Some(level) = params.get("level").filter(|v| !v.is_empty()) {
        let level = parse_level("level", level)?;
        clauses.push(term(ecs::RULE_LEVEL, level.as_str()));
    }
    for (param, field) in [
        ("rule", ecs::RULE_ID),
        ("technique", ecs::THREAT_TECHNIQUE_ID),
        ("namespace", "kubernetes.namespace"),
        ("pod", "kubernetes.pod.name"),
        ("container", "container.name"),
        ("user", "user.name"),
    ] {
        if let Some(value) = params.get(param).filter(|v| !v.is_empty()) {
            clauses.push(term(field, value));
        }
    }
    if let Some(min) = params.get("min_level").filter(|v| !v.is_empty()) {
        let min = parse_level("min_level", min)?;
        let levels = min.and_above().map(|l| term(ecs::RULE_LEVEL, l.as_str()));
        clauses.push(Filter::Or(levels.collect()));
    }
    if let Some(text) = params.get("query").filter(|v| !v.trim().is_empty()) {
        let extra = super::search::parse_bounded(state, text, "invalid `query`: ")?;
        if !extra.pipes.is_empty() {
            return Err(ApiError::bad_request(
                "invalid `query`: a filter only here, without pipes",
            ));
        }
        clauses.push(extra.filter);
    }
    let filter = Filter::And(clauses);
    let limit = match params.get("limit") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("`limit` must be a number"))?,
        None => 50,
    }
    .min(MAX_LIMIT);
    let offset = match params.get("offset") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("`offset` must be a number"))?,
        None => 0,
    };
    if offset > 10 * MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "`offset` is at most {}; narrow the filters or the time range",
            10 * MAX_LIMIT
        )));
    }
    let start = match (params.get("since"), params.get("start")) {
        (Some(since), _) => Some(parse_since(since, Utc::now())?),
        (None, Some(start)) => Some(parse_time("start", start)?),
        (None, None) => None,
    };
    let end = params
        .get("end")
        .map(|end| parse_time("end", end))
        .transpose()?;
    let format = params.get("format").map_or("ecs", String::as_str);
    if !matches!(format, "ecs" | "ocsf") {
        return Err(ApiError::bad_request(format!(
            "unknown `format` `{format}`: expected ecs or ocsf"
        )));
    }
    // Records of one alert are few (one per count change); fetch enough to fill the page.
    let fetch = ((offset + limit) * 4).min(10 * MAX_LIMIT);
    let query = SearchQuery {
        filter: filter.clone(),
        pipes: Vec::new(),
    };
    let counted = SearchQuery {
        filter,
        pipes: vec![Pipe::Stats {
            aggs: vec![Agg {
                func: AggFunc::Dc,
                field: Some("alert.id".into()),
                alias: "alerts".into(),
            }],
            by: Vec::new(),
        }],
    };
    // Both searches under one slot of the token and one time budget.
    let (records, distinct) = super::search::run_bounded(state, token, move |store, control| {
        let records = store.search_with(
            &SearchRequest {
                query,
                start,
                end,
                limit: fetch,
                offset: 0,
            },
            control,
        )?;
        let distinct = store.search_with(
            &SearchRequest {
                query: counted,
                start,
                end,
                limit: 1,
                offset: 0,
            },
            control,
        )?;
        Ok((records, distinct))
    })
    .await?;
    let total = distinct
        .rows
        .as_ref()
        .and_then(|rows| rows.first())
        .and_then(|row| row.first())
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut seen = HashSet::new();
    let newest: Vec<Value> = records
        .hits
        .into_iter()
        .filter(|hit| {
            let id = hit
                .pointer("/alert/id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            seen.insert(id)
        })
        .skip(offset)
        .take(limit)
        .map(|alert| {
            if format == "ocsf" {
                to_ocsf(&alert)
            } else {
                alert
            }
        })
        .collect();
    Ok(json!({"total": total, "alerts": newest}))
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "`{name}` must be an RFC 3339 time like 2024-05-01T12:00:00Z: {e}"
            ))
        })
}

/// A level parameter (`level`, `min_level`): a [`Severity`] name.
fn parse_level(name: &str, text: &str) -> Result<Severity, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("invalid `{name}`: {e}")))
}

/// `since`: a duration in the grammar of [`crowsnest_model::duration`] (`30s`, `15m`, `1h`,
/// `7d`, `1h30m`, ...), as the instant that long before `now`.
fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let bad = |reason: String| ApiError::bad_request(format!("invalid `since`: {reason}"));
    let duration = crowsnest_model::parse_duration(text).map_err(|e| bad(e.to_string()))?;
    crowsnest_model::duration::before(now, duration).ok_or_else(|| {
        bad(format!(
            "`{text}` reaches before the earliest time there is"
        ))
    })
}

/// An alert as an OCSF 1.1 Detection Finding (class 2004).
pub(crate) fn to_ocsf(alert: &Value) -> Value {
    let text = |pointer: &str| alert.pointer(pointer).cloned().unwrap_or(Value::Null);
    // Every record here is an alert (the search asked for `event.kind: alert`).
    let level = serde_json::from_value::<crowsnest_model::Event>(alert.clone())
        .ok()
        .and_then(|event| Severity::of_alert(&event))
        .unwrap_or(Severity::Informational);
    let (severity_id, severity) = match level {
        Severity::Informational => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    };
    let time_ms = alert
        .pointer("/@timestamp")
        .and_then(crowsnest_model::parse_timestamp)
        .map(|t| t.timestamp_millis());
    let techniques: Vec<Value> = alert
        .pointer("/threat/technique/id")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .map(|id| json!({"technique": {"uid": id}, "version": "14"}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "time": time_ms,
        "message": text("/rule/name"),
        "count": text("/alert/count"),
        "metadata": {
            "version": "1.1.0",
            "product": {"name": "crowsnest", "vendor_name": "crowsnest", "version": env!("CARGO_PKG_VERSION")},
            "uid": text("/alert/id"),
        },
        "finding_info": {
            "uid": text("/alert/id"),
            "title": text("/rule/name"),
            "analytic": {"uid": text("/rule/id"), "name": text("/rule/name"), "type_id": 1, "type": "Rule"},
            "attacks": techniques,
            "first_seen_time_dt": text("/alert/first_seen"),
            "last_seen_time_dt": text("/alert/last_seen"),
            "related_events": text("/alert/event_ids"),
        },
        "resources": [{
            "type": "Container",
            "uid": text("/container/id"),
            "name": text("/container/name"),
            "namespace": text("/kubernetes/namespace"),
            "labels": [text("/kubernetes/pod/name")],
        }],
        "actor": {"user": {"name": text("/user/name")}},
        "unmapped": alert,
    })
}

pub(super) async fn rules(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    Ok(Json(rules_status(&state)))
}

/// What `GET /api/v1/rules` answers (and the console's rules page shows):
/// `{"enabled", "loaded", "problems", "loaded_at"}`.
pub fn rules_status(state: &AppState) -> Value {
    if !state.config.detect.enabled {
        return json!({"enabled": false});
    }
    let status = state.detection.rules();
    json!({
        "enabled": true,
        "loaded": status.loaded,
        "problems": status.problems,
        "loaded_at": status.loaded_at,
        "rules": status.rules,
        "disabled": state.detection.disabled_rules(),
    })
}

/// The reload behind `POST /api/v1/rules/reload` (and the console's button), for a token
/// already authorized with the `admin` scope.
pub fn request_rules_reload(state: &AppState) -> Result<(), ApiError> {
    let requested = if state.config.detect.enabled {
        state.detection.request_reload();
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "detection is disabled (`detect.enabled = false`)",
        ))
    };
    crate::audit::record_change(
        &state.audit,
        "config.reload",
        "detection rules".into(),
        requested.as_ref().map_err(ToString::to_string).copied(),
    );
    requested
}

pub(super) async fn reload_rules(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let token = authorize(&state, &headers, Scope::Admin)?;
    let actor = crate::audit::Actor::of_request(Some(token), &extensions);
    crate::audit::sync_scope_actor(actor, || request_rules_reload(&state))?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(json!({"reload": "requested"})),
    ))
}

#[cfg(test)]
mod tests {
    use super::{parse_level, parse_since};
    use chrono::{DateTime, Utc};

    fn message(error: crate::error::ApiError) -> String {
        error.to_string()
    }

    #[test]
    fn since_takes_durations_and_refuses_anything_else_without_panicking() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let ago = |text: &str| parse_since(text, now).map(|t| (now - t).num_seconds()).ok();
        assert_eq!(ago("90s"), Some(90));
        assert_eq!(ago("15m"), Some(900));
        assert_eq!(ago("7d"), Some(604_800));
        assert_eq!(ago("1h30m"), Some(5_400));
        // Found by schemathesis: a multi-byte character used to split a UTF-8 sequence.
        for bad in [
            "\u{80}",
            "1\u{80}",
            "é",
            "",
            "h",
            "-",
            "-5m",
            "99999999999999999d",
            "99999999999d",
            "1q",
        ] {
            assert!(parse_since(bad, now).is_err(), "{bad:?}");
        }
        let error = message(parse_since("90", now).expect_err("no unit"));
        assert_eq!(
            error,
            "invalid `since`: `90` is not a duration (time unit needed, for example 90sec or \
             90ms); write a number and a unit, like 30s, 15m, 6h, 7d or 1h30m"
        );
        let error = message(parse_since("99999999999d", now).expect_err("too long"));
        assert_eq!(
            error,
            "invalid `since`: `99999999999d` is longer than 100 years"
        );
    }

    #[test]
    fn levels_are_severity_names() {
        assert_eq!(
            parse_level("min_level", "High").ok(),
            Some(crowsnest_model::Severity::High)
        );
        let error = message(parse_level("min_level", "severe").expect_err("unknown"));
        assert_eq!(
            error,
            "invalid `min_level`: unknown severity `severe`: expected one of informational, \
             low, medium, high, critical"
        );
    }
}
