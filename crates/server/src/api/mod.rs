//! The HTTP API: routes, authentication per route, and the handlers.
//!
//! Every endpoint needs `Authorization: Bearer <token>` with the scope named at its route.
//!
//! Every request passes [`guard_auth`] first: an address that sent too many unknown tokens is
//! answered 429 without its token being checked, and every refused credential (401, 403) is
//! counted, logged (rate-limited per address) and, for unknown tokens, counted toward the
//! address's limit ([`crate::auth::FailureThrottle`]).

mod actions;
mod alerts;
mod baselines;
mod changes;
mod compat;
mod compliance;
mod incidents;
mod ingest;
mod openapi;
mod respond;
mod rules;
mod search;
mod verify;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::auth::{AuthFailure, Claimed, FailureThrottle, Scope};
use crate::error::ApiError;
use crate::AppState;

pub(crate) use compat::limits as ingest_limits;

// The cores of the handlers, for the web console (`crowsnest-console`): it calls these, so the
// API stays the one implementation of searching, listing alerts and acting on incidents.
pub use alerts::{list_alerts, request_rules_reload, rules_status};
pub use compliance::run_evaluation;
pub use incidents::{list_incidents, submit_action, ActionBody};
pub use respond::{approve_action, list_actions, reject_action, undo_action};
pub use rules::{
    rule_detail, set_rule_enabled, test_rule, RuleTestInput, DEFAULT_TEST_EVENTS, TEST_BUDGET,
};
pub use search::{parse_bounded, run_bounded, run_search, run_search_from, SearchInput};

/// Builds the router (no socket: tests drive it with `tower::ServiceExt::oneshot`).
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/ingest/k8s-audit", post(ingest::k8s_audit))
        .route("/api/v1/ingest/ndjson", post(ingest::ndjson))
        .route("/api/v1/search", post(search::search))
        .route("/api/v1/alerts", get(alerts::alerts))
        .route("/api/v1/incidents", get(incidents::list))
        .route("/api/v1/incidents/{id}", get(incidents::show))
        .route("/api/v1/incidents/{id}/actions", post(incidents::act))
        .route("/api/v1/compliance/{framework}", get(compliance::evaluate))
        .route("/api/v1/baselines", get(baselines::list))
        .route("/api/v1/baselines/{rule}", get(baselines::show))
        .route(
            "/api/v1/baselines/{rule}/actions",
            post(changes::baseline_action),
        )
        .route("/api/v1/actions", get(actions::list).post(actions::create))
        .route("/api/v1/actions/{id}", get(actions::show))
        .route("/api/v1/agent/commands", get(actions::agent_commands))
        .route(
            "/api/v1/agent/commands/{id}/result",
            post(actions::agent_result),
        )
        .route("/api/v1/respond/actions", get(respond::list))
        .route("/api/v1/respond/actions/{id}", get(respond::show))
        .route("/api/v1/respond/actions/{id}/undo", post(respond::undo))
        .route(
            "/api/v1/respond/approve",
            get(respond::confirm).post(respond::approve),
        )
        .route("/api/v1/respond/reject", post(respond::reject))
        .route("/api/v1/rules", get(alerts::rules))
        .route("/api/v1/rules/reload", post(alerts::reload_rules))
        .route("/api/v1/rules/{id}", get(rules::show))
        .route("/api/v1/rules/{id}/enable", post(rules::enable))
        .route("/api/v1/rules/{id}/disable", post(rules::disable))
        .route("/api/v1/rules/{id}/test", post(rules::test))
        .route("/api/v1/outputs", get(outputs))
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/health", get(health))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{name}/revoke", post(revoke_token))
        .route("/api/v1/verify", post(verify::verify))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics))
        .merge(compat::routes())
        .fallback(|| async {
            ApiError::NotFound("no such endpoint; see /api/v1/openapi.json".into())
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard_auth,
        ))
        .with_state(state)
}

/// Request guards kept across requests: the search slots of each token and the throttle of
/// failed authentication.
pub struct Guards {
    pub(crate) searches: search::SearchSlots,
    pub(crate) auth: FailureThrottle,
}

impl Guards {
    /// Guards with the limits of `config`.
    pub fn new(config: &crate::ServerConfig) -> Self {
        Self {
            searches: search::SearchSlots::default(),
            auth: FailureThrottle::new(&config.auth),
        }
    }
}

/// Refuses addresses that sent too many unknown tokens, and records refused credentials.
///
/// The address comes from axum's `ConnectInfo` (the server is served with it); without it
/// (a router driven directly, as in tests) nothing is refused and failures are logged under
/// `0.0.0.0`.
async fn guard_auth(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(ip) = addr {
        if let Some(secs) = state.guards.auth.refused(ip, Instant::now()) {
            state.metrics.guards.auth_throttled.inc();
            return ApiError::TooManyRequests {
                message: format!(
                    "too many failed authentications from this address: the limit is {} per {} s (auth.max_failures, auth.failure_window_secs); retry in {secs} s",
                    state.guards.auth.max_failures(),
                    state.guards.auth.window().as_secs()
                ),
                retry_after_secs: secs,
            }
            .into_response();
        }
    }
    let path = request.uri().path().to_owned();
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let claimed = state
            .tokens
            .claimed(authorization.as_ref().and_then(|v| v.to_str().ok()));
        record_failure(&state, addr, &path, status, claimed);
    }
    response
}

fn record_failure(
    state: &AppState,
    addr: Option<IpAddr>,
    path: &str,
    status: StatusCode,
    claimed: Claimed,
) {
    let (reason, token) = match (&claimed, status) {
        (Claimed::Known { name }, StatusCode::FORBIDDEN) => ("forbidden", name.as_str()),
        (Claimed::Unknown { sha256_prefix }, _) => ("unknown", sha256_prefix.as_str()),
        _ => ("missing", ""),
    };
    state.metrics.guards.auth_failure(reason).inc();
    let ip = addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let counted = reason == "unknown" && addr.is_some();
    let recorded = state.guards.auth.record(ip, counted, Instant::now());
    if !recorded.log {
        return;
    }
    let address = addr.map_or_else(|| "unknown".to_string(), |a| a.to_string());
    match reason {
        "forbidden" => tracing::warn!(
            address = %address,
            path,
            token,
            failures_in_window = recorded.failures,
            failures_in_previous_window = recorded.previous_window,
            "authentication failed: the token lacks the scope of the endpoint"
        ),
        "unknown" => tracing::warn!(
            address = %address,
            path,
            token_sha256_prefix = token,
            failures_in_window = recorded.failures,
            failures_in_previous_window = recorded.previous_window,
            throttled = recorded.throttled,
            "authentication failed: unknown token{}",
            if recorded.throttled {
                "; the address is refused until its window ends"
            } else {
                ""
            }
        ),
        _ => tracing::warn!(
            address = %address,
            path,
            failures_in_window = recorded.failures,
            failures_in_previous_window = recorded.previous_window,
            "authentication failed: no credentials"
        ),
    }
}

/// Checks a token typed into a login form (the web console's) for a scope, under the same
/// throttle, metrics and log lines as the API's `Authorization` header: an address that sent
/// too many unknown tokens is refused (429) without the token being checked.
pub fn check_login(
    state: &AppState,
    addr: Option<IpAddr>,
    path: &str,
    token: &str,
    scope: Scope,
) -> Result<String, ApiError> {
    if let Some(ip) = addr {
        if let Some(secs) = state.guards.auth.refused(ip, Instant::now()) {
            state.metrics.guards.auth_throttled.inc();
            let mut entry = crate::audit::AuditEntry::new("login", None, false);
            entry.source_ip = addr;
            entry.message = Some("refused: too many failed authentications".into());
            state.audit.record(entry);
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "too many failed authentications from this address; retry in {secs} s"
                ),
                retry_after_secs: secs,
            });
        }
    }
    let header = format!("Bearer {}", token.trim());
    let mut headers = HeaderMap::new();
    if let Ok(value) = header.parse() {
        headers.insert(header::AUTHORIZATION, value);
    }
    let result = authorize(state, &headers, scope);
    if let Err(error) = &result {
        let status = match error {
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        let claimed = state.tokens.claimed(Some(&header));
        let user = match &claimed {
            Claimed::Known { name } => Some(name.clone()),
            _ => None,
        };
        record_failure(state, addr, path, status, claimed);
        let mut entry = crate::audit::AuditEntry::new("login", user.as_deref(), false);
        entry.source_ip = addr;
        entry.message = Some(error.to_string());
        state.audit.record(entry);
    } else if let Ok(name) = &result {
        let mut entry = crate::audit::AuditEntry::new("login", Some(name), true);
        entry.source_ip = addr;
        state.audit.record(entry);
    }
    result
}

/// Checks the request's token for a scope.
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<String, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.tokens.check(value, scope).map_err(|failure| match failure {
        AuthFailure::Missing => ApiError::Unauthorized(
            "missing credentials: send `Authorization: Bearer <token>` (the admin token is in <data-dir>/admin.token)".into(),
        ),
        AuthFailure::Unknown => ApiError::Unauthorized("unknown token".into()),
        AuthFailure::Forbidden { token, needed } => ApiError::Forbidden(format!(
            "token `{token}` lacks the `{}` scope",
            serde_json::to_value(needed).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
        )),
    })
}

/// What `health` and `metrics` both report, read once per request.
struct Snapshot {
    store: crowsnest_store::StoreStats,
    wal_bytes: u64,
    wal_segments: usize,
    acked_next: u64,
    index_lag: u64,
    disk: crate::disk::DiskStatus,
    problems: Vec<crate::pipeline::Problem>,
}

async fn snapshot(state: &Arc<AppState>) -> Result<Snapshot, ApiError> {
    let store = state.store.clone();
    let stats = tokio::task::spawn_blocking(move || store.stats())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let (wal_bytes, wal_segments) = state.pipeline.wal_usage();
    let acked_next = state.pipeline.acked_next();
    let index_lag = acked_next.saturating_sub(state.pipeline.committed_next());
    Ok(Snapshot {
        store: stats,
        wal_bytes,
        wal_segments,
        acked_next,
        index_lag,
        disk: state.pipeline.disk(),
        problems: problems(state),
    })
}

/// The pipeline's problems and the notification channels that keep failing.
fn problems(state: &AppState) -> Vec<crate::pipeline::Problem> {
    let mut problems = state.pipeline.problems();
    if let Some(outbox) = &state.notify {
        for (channel, message, since) in outbox.problems() {
            problems.push(crate::pipeline::Problem {
                component: format!("notify:{channel}"),
                message,
                since,
            });
        }
    }
    problems.extend(state.respond.problem());
    problems
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

async fn health(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let now = snapshot(&state).await?;
    Ok(Json(json!({
        "status": if now.problems.is_empty() { "ok" } else { "degraded" },
        "problems": now.problems,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "wal": {"bytes": now.wal_bytes, "segments": now.wal_segments, "next_position": now.acked_next},
        "index_lag_events": now.index_lag,
        "disk": now.disk,
        "store": now.store,
    })))
}

async fn outputs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    Ok(Json(json!({ "outputs": state.pipeline.outputs() })))
}

async fn notifications(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let channels = state
        .notify
        .as_ref()
        .map(|outbox| outbox.status())
        .unwrap_or_default();
    let deduplicated = state.notify.as_ref().map_or(0, |o| o.deduplicated());
    Ok(Json(json!({
        "enabled": state.notify.is_some(),
        "channels": channels,
        "deduplicated": deduplicated,
    })))
}

async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let now = snapshot(&state).await?;
    let m = &state.metrics;
    m.store_docs.set(gauge(now.store.total_docs));
    m.store_bytes.set(gauge(now.store.total_bytes));
    m.store_set_aside
        .set(gauge(now.store.set_aside.len() as u64));
    m.wal_bytes.set(gauge(now.wal_bytes));
    m.wal_segments.set(gauge(now.wal_segments as u64));
    m.index_lag_events.set(gauge(now.index_lag));
    m.disk_free_bytes.set(gauge(now.disk.free_bytes));
    m.disk_watermark_bytes.set(gauge(now.disk.watermark_bytes));
    m.health_problems.set(gauge(now.problems.len() as u64));
    let mut text = m.render();
    {
        // Before the closing `# EOF` of the registry's text.
        let mut extra = state.audit.metrics_text();
        if let Some(chain) = state.store.chain() {
            extra.push_str(&format!(
                "# HELP crowsnest_integrity_failures_total Integrity chain records that could not be written.\n# TYPE crowsnest_integrity_failures_total counter\ncrowsnest_integrity_failures_total {}\n",
                chain.failures()
            ));
        }
        let at = text.rfind("# EOF").unwrap_or(text.len());
        text.insert_str(at, &extra);
    }
    if let Some(outbox) = &state.notify {
        // Before the closing `# EOF` of the registry's text.
        let at = text.rfind("# EOF").unwrap_or(text.len());
        text.insert_str(at, &outbox.metrics_text());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

async fn list_tokens(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let tokens: Vec<_> = state
        .tokens
        .list()
        .into_iter()
        .map(|t| json!({"name": t.name, "scopes": t.scopes, "created": t.created}))
        .collect();
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    scopes: Vec<String>,
}

async fn create_token(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let admin = authorize(&state, &headers, Scope::Admin)?;
    let request: CreateToken = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid token request: {e}; expected {{\"name\": \"...\", \"scopes\": [\"ingest\"|\"read\"|\"admin\"]}}")))?;
    let mut scopes = std::collections::BTreeSet::new();
    for name in &request.scopes {
        let scope = Scope::parse(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown scope `{name}`: expected one of ingest, read, admin"
            ))
        })?;
        scopes.insert(scope);
    }
    if request.name.is_empty() || request.name == "admin" || scopes.is_empty() {
        return Err(ApiError::bad_request(
            "a token needs a name other than `admin` and at least one scope",
        ));
    }
    let created = state.tokens.create(&request.name, scopes);
    let mut entry = crate::audit::AuditEntry::new("token.create", Some(&admin), created.is_ok());
    entry.source_ip = crate::audit::peer_ip(&extensions);
    entry.target = Some(format!("{} ({})", request.name, request.scopes.join(",")));
    if let Err(error) = &created {
        entry.message = Some(format!("{error:#}"));
    }
    state.audit.record(entry);
    let token = created?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({"name": request.name, "token": token})),
    ))
}

/// `POST /api/v1/tokens/{name}/revoke` (admin): the token stops authenticating at once.
/// The `admin` token cannot be revoked here (delete `<data-dir>/admin.token` and restart to
/// replace it). Audited as `token.revoke`.
async fn revoke_token(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let admin = authorize(&state, &headers, Scope::Admin)?;
    let result = if name == "admin" {
        Err(ApiError::bad_request(
            "the `admin` token cannot be revoked through the API: delete <data-dir>/admin.token and restart the server to replace it",
        ))
    } else {
        match state.tokens.revoke(&name) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::NotFound(format!("no token named `{name}`"))),
            Err(error) => Err(ApiError::Internal(error)),
        }
    };
    let mut entry = crate::audit::AuditEntry::new("token.revoke", Some(&admin), result.is_ok());
    entry.source_ip = crate::audit::peer_ip(&extensions);
    entry.target = Some(name.clone());
    if let Err(error) = &result {
        entry.message = Some(error.to_string());
    }
    state.audit.record(entry);
    result?;
    Ok(Json(json!({"revoked": name})))
}

/// The raw value of the agent's batch header (`X-Crowsnest-Batch`), for [`crate::dedup::gate`].
pub(crate) fn batch_header(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(crate::dedup::BATCH_HEADER)
        .map(axum::http::HeaderValue::as_bytes)
}

#[cfg(test)]
mod action_tests;
#[cfg(test)]
mod alert_tests;
#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod baseline_tests;
#[cfg(test)]
mod compliance_tests;
#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod incident_tests;
#[cfg(test)]
mod respond_tests;
#[cfg(test)]
mod rule_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;
