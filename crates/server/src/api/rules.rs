//! `GET /api/v1/rules/{id}`, `POST /api/v1/rules/{id}/enable|disable` and
//! `POST /api/v1/rules/{id}/test`.
//!
//! * A rule's detail is its entry of the detector's rule list with the text of the file it came
//!   from (the built-in pack's embedded copy, or the file on disk).
//! * Disabling is kept in `<data-dir>/detect/disabled_rules.json` and applied by the detector
//!   at the reload it requests (within a second): the rule stops matching the live stream, and
//!   the correlations over it with it. It stays listed, marked disabled, and survives restarts.
//! * Testing runs one rule (with the rules a correlation needs) over stored events of a time
//!   range, oldest first, in a detector of its own: matches are shown, never alerted. Bounded
//!   by a count of events and a time budget; the answer says when either cut the run short.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use crowsnest_detect::{Detector, RuleSet};
use crowsnest_model::{ecs, Event};
use serde::Deserialize;
use serde_json::{json, Value};

use super::authorize;
use crate::auth::Scope;
use crate::error::ApiError;
use crate::AppState;

/// Most bytes of a rule file a detail answer carries.
const MAX_SOURCE_BYTES: usize = 256 * 1024;
/// Events a test reads unless told otherwise, and the most it may be told.
pub const DEFAULT_TEST_EVENTS: usize = 100_000;
/// The most events one test reads.
pub const MAX_TEST_EVENTS: usize = 1_000_000;
/// Wall-clock budget of one test.
pub const TEST_BUDGET: Duration = Duration::from_secs(20);
/// Matches a test answer lists (all are counted).
pub const MAX_TEST_MATCHES: usize = 200;

/// One rule of the detector's list, with `enabled`, or `None`.
fn find(state: &AppState, id: &str) -> Option<Value> {
    let status = state.detection.rules();
    status
        .rules
        .iter()
        .find(|r| r.info.id == id)
        .and_then(|r| serde_json::to_value(r).ok())
}

/// The detail behind `GET /api/v1/rules/{id}`: the rule's entry and its file's text
/// (`source`, cut at 256 KB with `source_truncated`).
pub fn rule_detail(state: &AppState, id: &str) -> Result<Value, ApiError> {
    if !state.config.detect.enabled {
        return Err(ApiError::bad_request(
            "detection is disabled (`detect.enabled = false`)",
        ));
    }
    let mut rule = find(state, id).ok_or_else(|| not_found(id))?;
    let file = rule["file"].as_str().unwrap_or_default().to_string();
    match crowsnest_detect::load::rule_file_text(&file, MAX_SOURCE_BYTES) {
        Some((text, cut)) => {
            rule["source"] = Value::String(text);
            rule["source_truncated"] = Value::Bool(cut);
        }
        None => rule["source"] = Value::Null,
    }
    Ok(rule)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no loaded rule has the id `{id}`; `GET /api/v1/rules` lists them"
    ))
}

/// Enables or disables the rule `id` (behind `POST /api/v1/rules/{id}/enable|disable`), for a
/// token already authorized with the `admin` scope.
pub fn set_rule_enabled(state: &AppState, id: &str, enabled: bool) -> Result<Value, ApiError> {
    let result = switch_rule(state, id, enabled);
    crate::audit::record_change(
        &state.audit,
        "config.change",
        format!("rule {id}: {}", if enabled { "enable" } else { "disable" }),
        result.as_ref().map(|_| ()).map_err(ToString::to_string),
    );
    result
}

fn switch_rule(state: &AppState, id: &str, enabled: bool) -> Result<Value, ApiError> {
    if !state.config.detect.enabled {
        return Err(ApiError::bad_request(
            "detection is disabled (`detect.enabled = false`)",
        ));
    }
    let known = find(state, id).is_some() || state.detection.disabled_rules().contains(id);
    if !known {
        return Err(not_found(id));
    }
    let changed = state
        .detection
        .set_rule_enabled(id, enabled)
        .map_err(ApiError::Internal)?;
    tracing::info!(rule = %id, enabled, changed, "rule switched");
    Ok(json!({"id": id, "enabled": enabled, "changed": changed, "reload": "requested"}))
}

/// What `POST /api/v1/rules/{id}/test` takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTestInput {
    /// Start of the range: RFC 3339, or a duration back from now (`24h`). Default `24h`.
    #[serde(default)]
    pub start: Option<String>,
    /// End of the range: RFC 3339, or a duration back from now. Default now.
    #[serde(default)]
    pub end: Option<String>,
    /// Most events to read (default 100 000, at most 1 000 000): the newest of the range.
    #[serde(default)]
    pub max_events: Option<usize>,
}

fn parse_time(name: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if let Some(time) = crowsnest_model::parse_timestamp(&Value::String(text.to_string())) {
        return Ok(time);
    }
    let duration = crowsnest_model::parse_duration(text).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid `{name}`: expected an RFC 3339 time or a duration such as `24h` ({e})"
        ))
    })?;
    crowsnest_model::duration::before(now, duration)
        .ok_or_else(|| ApiError::bad_request(format!("invalid `{name}`: `{text}` is too far back")))
}

/// Runs the rule `id` over stored events (behind `POST /api/v1/rules/{id}/test`): answers the
/// range, the events in it and read, whether a bound cut the run short and why, the count of
/// matches and the first [`MAX_TEST_MATCHES`].
pub async fn test_rule(
    state: &Arc<AppState>,
    id: &str,
    input: &RuleTestInput,
) -> Result<Value, ApiError> {
    let now = Utc::now();
    let start = parse_time("start", input.start.as_deref().unwrap_or("24h"), now)?;
    let end = match input.end.as_deref() {
        Some(text) => parse_time("end", text, now)?,
        None => now,
    };
    if start >= end {
        return Err(ApiError::bad_request("`start` must be before `end`"));
    }
    let max_events = input.max_events.unwrap_or(DEFAULT_TEST_EVENTS);
    if max_events == 0 || max_events > MAX_TEST_EVENTS {
        return Err(ApiError::bad_request(format!(
            "`max_events` must be between 1 and {MAX_TEST_EVENTS}"
        )));
    }
    let config = &state.config.detect;
    let (mut rules, _) = RuleSet::load(&config.rule_dirs, config.builtin_rules);
    rules.set_k8s_principals(&config.kubernetes);
    if !rules.keep_only(id) {
        return Err(not_found(id));
    }
    let store = state.store.clone();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || run_test(&store, rules, &id, start, end, max_events))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the rule test stopped: {e}")))?
}

fn run_test(
    store: &crowsnest_store::Store,
    rules: RuleSet,
    id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max_events: usize,
) -> Result<Value, ApiError> {
    const PAGE: usize = 5_000;
    let began = Instant::now();
    let query = crowsnest_query::parse("NOT event.kind:alert")
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the test query: {e}")))?;
    let request = |offset: usize, limit: usize| crowsnest_store::SearchRequest {
        query: query.clone(),
        start: Some(start),
        end: Some(end),
        limit,
        offset,
    };
    let failed = |e: crowsnest_store::StoreError| {
        ApiError::Internal(anyhow::Error::new(e).context("reading stored events for a rule test"))
    };
    let total = store.search(&request(0, 0)).map_err(failed)?.total;
    let wanted = usize::try_from(total).unwrap_or(usize::MAX).min(max_events);
    let mut detector = Detector::new(rules);
    let (mut read, mut matched, mut matches) = (0usize, 0usize, Vec::new());
    let mut out_of_time = false;
    // Hits come newest first: read the pages from the oldest one back to the newest.
    let mut offset = wanted.div_ceil(PAGE).saturating_sub(1) * PAGE;
    let mut remaining = wanted > 0;
    while remaining {
        if began.elapsed() >= TEST_BUDGET {
            out_of_time = true;
            break;
        }
        let limit = PAGE.min(wanted - offset);
        let page = store.search(&request(offset, limit)).map_err(failed)?;
        for hit in page.hits.into_iter().rev() {
            let Value::Object(map) = hit else { continue };
            let event = Event::from_map(map);
            read += 1;
            for detection in detector.process(&event) {
                if detection.rule_id != id {
                    continue;
                }
                matched += 1;
                if matches.len() < MAX_TEST_MATCHES {
                    matches.push(summary(&detection, &event));
                }
            }
        }
        remaining = offset > 0;
        offset = offset.saturating_sub(PAGE);
    }
    let total_usize = usize::try_from(total).unwrap_or(usize::MAX);
    let capped = if out_of_time {
        Some(format!(
            "stopped after {} s (the time budget): {read} of the newest {wanted} events read, the oldest first",
            TEST_BUDGET.as_secs()
        ))
    } else if wanted < total_usize {
        Some(format!(
            "only the newest {wanted} of {total} events in the range were read (max_events)"
        ))
    } else {
        None
    };
    Ok(json!({
        "rule": id,
        "start": crowsnest_model::format_timestamp(start),
        "end": crowsnest_model::format_timestamp(end),
        "events_in_range": total,
        "events_read": read,
        "capped": capped,
        "matches": matched,
        "shown": matches.len(),
        "results": matches,
        "elapsed_ms": began.elapsed().as_millis() as u64,
    }))
}

/// What a test answer shows of one match: when, which events, and where.
fn summary(detection: &crowsnest_detect::Detection, event: &Event) -> Value {
    let mut out = json!({
        "timestamp": detection.timestamp.map(crowsnest_model::format_timestamp),
        "event_ids": detection.event_ids,
        "title": detection.title,
    });
    for field in [
        ecs::EVENT_DATASET,
        "kubernetes.namespace",
        "kubernetes.pod.name",
        "container.id",
        "container.name",
        "user.name",
        "process.command_line",
        ecs::MESSAGE,
    ] {
        if let Some(value) = event.get_str(field) {
            let mut end = value.len().min(512);
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            out[field] = Value::String(value[..end].to_string());
        }
    }
    out
}

pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    Ok(Json(rule_detail(&state, &id)?))
}

pub(super) async fn enable(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    switch(&state, &extensions, &headers, &id, true)
}

pub(super) async fn disable(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    switch(&state, &extensions, &headers, &id, false)
}

/// Enables or disables rule `id` as the admin token of the request (audited).
fn switch(
    state: &AppState,
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
    id: &str,
    enabled: bool,
) -> Result<Json<Value>, ApiError> {
    let token = authorize(state, headers, Scope::Admin)?;
    let actor = crate::audit::Actor::of_request(Some(token), extensions);
    crate::audit::sync_scope_actor(actor, || Ok(Json(set_rule_enabled(state, id, enabled)?)))
}

pub(super) async fn test(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let input: RuleTestInput = if body.iter().all(u8::is_ascii_whitespace) {
        RuleTestInput::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid test request: {e}")))?
    };
    Ok(Json(test_rule(&state, &id, &input).await?))
}
