//! Containment actions (`[respond]` playbooks): list, approve, undo.
//!
//! * `GET /api/v1/respond/actions` and `GET /api/v1/respond/actions/{id}` (scope `read`):
//!   every planned action, its state (`dry_run`, `refused`, `pending`, `ready`, `executed`,
//!   `failed`, `undone`), its guard decision and operations.
//! * `POST /api/v1/respond/approve`: `{"id": "act-..."}` with an `admin` token, or
//!   `{"token": "v1...."}` (or the form field `token`) without one: the signed, expiring,
//!   single-use link is itself the credential. The approved action runs at once.
//! * `GET /api/v1/respond/approve?token=...`: only a confirmation page with a button that
//!   POSTs the token (a chat's link preview must not use up the single-use token).
//! * `POST /api/v1/respond/actions/{id}/undo` (scope `admin`): undoes an executed action.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use crowsnest_respond::contain::responder::{ResponderError, Tracked};
use serde_json::{json, Value};

use super::authorize;
use crate::auth::Scope;
use crate::error::ApiError;
use crate::respond::{submit, Approval};
use crate::AppState;

fn responder_error(error: ResponderError) -> ApiError {
    match error {
        ResponderError::Unknown(_) => ApiError::NotFound(error.to_string()),
        ResponderError::Approval(_) => ApiError::Forbidden(format!("approval refused: {error}")),
        ResponderError::State { .. } | ResponderError::Undo(_) => {
            ApiError::bad_request(error.to_string())
        }
        _ => ApiError::Internal(anyhow::Error::new(error)),
    }
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let limit = match params.get("limit") {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("`limit` `{text}` is not a count")))?,
        None => 100,
    };
    let filter = params
        .get("state")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    const STATES: [&str; 7] = [
        "dry_run", "refused", "pending", "ready", "executed", "failed", "undone",
    ];
    if let Some(s) = filter.filter(|s| !STATES.contains(s)) {
        return Err(ApiError::bad_request(format!(
            "unknown `state` `{s}`; expected one of {}",
            STATES.join(", ")
        )));
    }
    let actions = list_actions(&state, filter.map(str::to_string), limit).await?;
    Ok(Json(json!({ "actions": actions })))
}

/// The containment actions behind `GET /api/v1/respond/actions` (and the console's incident
/// page): newest first, optionally of one state, at most `limit`.
///
/// # Errors
///
/// Only an internal one (the blocking task failed).
pub async fn list_actions(
    state: &AppState,
    filter: Option<String>,
    limit: usize,
) -> Result<Vec<Tracked>, ApiError> {
    let respond = state.respond.clone();
    tokio::task::spawn_blocking(move || respond.list(filter.as_deref(), limit))
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    // An admin also gets a fresh approval link for a pending action, to forward.
    let admin = authorize(&state, &headers, Scope::Admin).is_ok();
    let respond = state.respond.clone();
    let lookup = id.clone();
    tokio::task::spawn_blocking(move || {
        let mut value = respond.show(&lookup)?;
        if admin {
            if let Some(link) = respond.approval_link(&lookup) {
                value["approval_link"] = json!(link);
            }
        }
        Some(value)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map(Json)
    .ok_or_else(|| ApiError::NotFound(format!("no action `{id}`")))
}

pub(super) async fn undo(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let actor = authorize(&state, &headers, Scope::Admin)?;
    let (action, record) = from_client(&extensions, undo_action(&state, id, actor)).await?;
    Ok(Json(json!({ "action": action, "record": record })))
}

/// Undoes an executed containment action as `actor` (the core of
/// `POST /api/v1/respond/actions/{id}/undo`, and of the console's Undo button; the caller
/// checked the `admin` scope): the action's new state and its log record, which is stored as
/// a `crowsnest.response` event.
///
/// # Errors
///
/// The responder's refusal: unknown action (404), not executed or irreversible (400).
pub async fn undo_action(
    state: &AppState,
    id: String,
    actor: String,
) -> Result<(Value, Option<Value>), ApiError> {
    let target = format!("undo {id}");
    let (action, records) = decide_audited(state, target, actor, move |respond, actor| {
        respond.undo(&id, actor)
    })
    .await?;
    let record = records
        .first()
        .map(|r| json!({"kind": r.kind, "detail": r.detail}));
    submit(state, records).await;
    Ok((action, record))
}

/// Runs one decision of the responder (blocking) as `actor`, writes it to the self-audit
/// stream as `target` (success or the refusal), and returns the action's state and records.
async fn decide_audited<F>(
    state: &AppState,
    target: String,
    actor: String,
    decide: F,
) -> Result<(Value, Vec<crowsnest_respond::contain::LogRecord>), ApiError>
where
    F: FnOnce(
            &crate::respond::Respond,
            &str,
        )
            -> Result<(Value, Vec<crowsnest_respond::contain::LogRecord>), ResponderError>
        + Send
        + 'static,
{
    let respond = state.respond.clone();
    let user = actor.clone();
    let outcome = tokio::task::spawn_blocking(move || decide(&respond, &actor))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(responder_error);
    audit_response(state, user, target, outcome.as_ref().map(|_| ()));
    outcome
}

/// Approves a containment action and runs it (the core of `POST /api/v1/respond/approve`,
/// and of the console's Approve button; with [`Approval::Id`] the caller checked the `admin`
/// scope): the action's new state. The log records are stored as `crowsnest.response` events.
///
/// # Errors
///
/// The responder's refusal: unknown action (404), a forged, expired or used token (403), not
/// waiting for approval (400).
pub async fn approve_action(
    state: &AppState,
    approval: Approval,
    actor: String,
) -> Result<Value, ApiError> {
    let target = decision_target("approve", &approval);
    let (action, records) = decide_audited(state, target, actor, move |respond, actor| {
        respond.approve(&approval, actor)
    })
    .await?;
    submit(state, records).await;
    Ok(action)
}

/// What a decision acts on, for the self-audit stream (a link's token is never written).
fn decision_target(verb: &str, approval: &Approval) -> String {
    match approval {
        Approval::Id(id) => format!("{verb} {id}"),
        Approval::Token(token) => format!(
            "{verb} {} by link",
            token.split('.').nth(1).unwrap_or("unknown")
        ),
    }
}

/// Rejects a containment action waiting for approval (the core of
/// `POST /api/v1/respond/reject`, and of the console's Reject button; with [`Approval::Id`]
/// the caller checked the `admin` scope): the action's new state (`rejected`). It never runs.
///
/// # Errors
///
/// As [`approve_action`].
pub async fn reject_action(
    state: &AppState,
    approval: Approval,
    actor: String,
    reason: String,
) -> Result<Value, ApiError> {
    let target = decision_target("reject", &approval);
    let (action, records) = decide_audited(state, target, actor, move |respond, actor| {
        respond.reject(&approval, actor, &reason)
    })
    .await?;
    submit(state, records).await;
    Ok(action)
}

/// Writes an undo or approval to the self-audit stream (`response.action`).
fn audit_response<E: ToString>(
    state: &AppState,
    user: String,
    target: String,
    outcome: Result<(), E>,
) {
    // The client's address: the API handlers and the console scope it around the call.
    let actor = crate::audit::Actor {
        user: Some(user),
        source_ip: crate::audit::current_actor().source_ip,
        export: None,
    };
    crate::audit::sync_scope_actor(actor, || {
        crate::audit::record_change(
            &state.audit,
            "response.action",
            target,
            outcome.map_err(|e| e.to_string()),
        );
    });
}

/// Runs an API handler's core with the client's address scoped for the self-audit stream.
async fn from_client<F: std::future::Future>(
    extensions: &axum::http::Extensions,
    work: F,
) -> F::Output {
    let actor = crate::audit::Actor::of_request(None, extensions);
    crate::audit::scope_actor(actor, work).await
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\"><title>{t}</title></head><body style=\"font-family:sans-serif;max-width:40em;margin:2em auto\"><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(html),
    )
        .into_response()
}

/// The confirmation page of a signed link: shows what would be approved and a button that
/// POSTs the token. It approves nothing itself.
pub(super) async fn confirm(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(token) = params.get("token").filter(|t| !t.is_empty()) else {
        return page(
            "No approval token",
            "<p>This page needs the <code>token</code> of an approval link.</p>",
        );
    };
    // The token names its action (`v1.<action id>.<expiry>.<signature>`); what is shown is
    // only a description: the signature is checked when the form is posted.
    let id = token.split('.').nth(1).unwrap_or_default().to_string();
    let respond = state.respond.clone();
    let lookup = id.clone();
    let action = tokio::task::spawn_blocking(move || respond.show(&lookup))
        .await
        .ok()
        .flatten();
    let what = match &action {
        Some(a) => format!(
            "<p>Action <code>{}</code>: <b>{}</b> on <code>{}</code> (playbook <code>{}</code>, alert <code>{}</code>), now <b>{}</b>.</p><p>Why it waits: {}</p>",
            escape(&id),
            escape(a["action"]["action"].as_str().unwrap_or("?")),
            escape(&a["action"]["target"].to_string()),
            escape(a["action"]["playbook"].as_str().unwrap_or("?")),
            escape(a["action"]["alert_id"].as_str().unwrap_or("?")),
            escape(a["state"].as_str().unwrap_or("?")),
            escape(a["action"]["decision"]["reason"].as_str().unwrap_or("")),
        ),
        None => format!("<p>No action <code>{}</code> is known.</p>", escape(&id)),
    };
    page(
        "Approve a containment action?",
        &format!(
            "{what}<form method=\"post\" action=\"/api/v1/respond/approve\"><input type=\"hidden\" name=\"token\" value=\"{t}\"><button type=\"submit\">Approve and run it</button></form><form method=\"post\" action=\"/api/v1/respond/reject\" style=\"margin-top:1em\"><input type=\"hidden\" name=\"token\" value=\"{t}\"><label>Reason <input type=\"text\" name=\"reason\" maxlength=\"500\"></label> <button type=\"submit\">Reject</button></form><p>Opening this page approves nothing; a button does, once.</p>",
            t = escape(token)
        ),
    )
}

/// Approves an action by id (admin) or by a signed token (the link is the credential), and
/// runs it.
pub(super) async fn approve(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    from_client(&extensions, decide(&state, &headers, &body, false)).await
}

/// Rejects an action by id (admin) or by a signed token, with an optional `reason`.
pub(super) async fn reject(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    from_client(&extensions, decide(&state, &headers, &body, true)).await
}

/// Approve (`reject` false) or reject, from a JSON body or the confirmation page's form.
async fn decide(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: &[u8],
    reject: bool,
) -> Result<Response, ApiError> {
    let state = Arc::clone(state);
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let fields: HashMap<String, String> = if form {
        form_urlencoded::parse(body).into_owned().collect()
    } else {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid body: {e}; expected {{\"token\": \"v1....\"}} or {{\"id\": \"act-...\"}}"
            ))
        })?;
        value
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (approval, actor) = match (fields.get("token"), fields.get("id")) {
        (Some(token), _) if !token.is_empty() => {
            (Approval::Token(token.clone()), "approval link".to_string())
        }
        (_, Some(id)) if !id.is_empty() => {
            let actor = authorize(&state, headers, Scope::Admin)?;
            (Approval::Id(id.clone()), actor)
        }
        _ => {
            return Err(ApiError::bad_request(
                "expected `token` (a signed approval link's) or `id` (with an admin token)",
            ))
        }
    };
    let decided = if reject {
        let reason: String = fields
            .get("reason")
            .map(|r| r.trim().chars().take(500).collect())
            .unwrap_or_default();
        reject_action(&state, approval, actor, reason).await
    } else {
        approve_action(&state, approval, actor).await
    };
    let (refused, done) = if reject {
        ("Not rejected", "rejected")
    } else {
        ("Not approved", "approved")
    };
    let action = match decided {
        Ok(action) => action,
        Err(error) if form => {
            return Ok(page(
                refused,
                &format!("<p>{}</p>", escape(&error.to_string())),
            ))
        }
        Err(error) => return Err(error),
    };
    if form {
        return Ok(page(
            if reject { "Rejected" } else { "Approved" },
            &format!(
                "<p>Action <code>{}</code> was {done} and is now <b>{}</b>.</p>",
                escape(action["action"]["id"].as_str().unwrap_or("?")),
                escape(action["state"].as_str().unwrap_or("?"))
            ),
        ));
    }
    Ok(Json(json!({ "action": action })).into_response())
}
