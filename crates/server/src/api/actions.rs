//! Containment commands: the agents' channel and the operators' API.
//!
//! * `GET /api/v1/agent/commands?node=N&wait=25s` (scope `ingest`, the agent's token): the
//!   commands node `N` must carry out, answered as soon as one is queued or empty after `wait`
//!   (at most [`MAX_WAIT`]).
//! * `POST /api/v1/agent/commands/{id}/result` (scope `ingest`): the agent's answer; stored
//!   durably, then written to the event store as `event.dataset: crowsnest.response`.
//! * `POST /api/v1/actions` (scope `admin`): queue a manual command; `GET /api/v1/actions` and
//!   `GET /api/v1/actions/{id}` (scope `admin`; `wait=10s` waits for the result) follow it.
//!
//! An `ingest` token may fetch the commands of any node it names and answer them: give
//! ingest tokens to agents only (one per node makes a leak easy to revoke).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use crowsnest_model::command::{AgentCommand, CommandResult, ContainerOp, NetworkAttachment};
use crowsnest_normalize::Decoded;
use serde::Deserialize;
use serde_json::{json, Value};

use super::authorize;
use crate::auth::Scope;
use crate::commands::{result_event, CommandRecord, CommandStatus, Completion, QueueError};
use crate::error::ApiError;
use crate::pipeline::Admission;
use crate::AppState;

/// Longest poll an agent may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for a result in `GET /api/v1/actions/{id}`.
const MAX_RESULT_WAIT: Duration = Duration::from_secs(60);
/// Default lifetime of a manual command.
const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Longest lifetime of a command.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

fn duration_param(
    params: &HashMap<String, String>,
    name: &str,
    default: Duration,
    max: Duration,
) -> Result<Duration, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("") => Ok(default),
        Some(text) => {
            let parsed = crowsnest_model::parse_duration(text)
                .or_else(|_| text.parse::<u64>().map(Duration::from_secs))
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "`{name}` `{text}` is not a duration (examples: 25s, 500ms, 1m)"
                    ))
                })?;
            Ok(parsed.min(max))
        }
    }
}

fn queue_error(error: QueueError) -> ApiError {
    match error {
        QueueError::Unknown(_) => ApiError::NotFound(error.to_string()),
        QueueError::Io { .. } => ApiError::Internal(error.into()),
        _ => ApiError::bad_request(error.to_string()),
    }
}

fn record_json(record: &CommandRecord) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("id".into(), json!(record.command.id));
        map.insert("status".into(), json!(record.status(Utc::now())));
        if let Some(result) = &record.result {
            map.insert(
                "latency_ms".into(),
                json!((result.finished_at - record.command.issued_at).num_milliseconds()),
            );
        }
    }
    value
}

pub(super) async fn agent_commands(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Ingest)?;
    let node = params
        .get("node")
        .map(|n| n.trim())
        .filter(|n| !n.is_empty() && n.len() <= 253)
        .ok_or_else(|| {
            ApiError::bad_request("`node` is required: the agent's node name (1 to 253 characters)")
        })?
        .to_string();
    let wait = duration_param(&params, "wait", Duration::ZERO, MAX_WAIT)?;
    let commands = state.commands.poll(&node, wait).await;
    Ok(Json(json!({ "node": node, "commands": commands })))
}

pub(super) async fn agent_result(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Ingest)?;
    let result: CommandResult = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid command result: {e}; expected the CommandResult object (id, node, ok, started_at, finished_at, ...)"
        ))
    })?;
    if result.id != id {
        return Err(ApiError::bad_request(format!(
            "the result's `id` `{}` is not the command `{id}` of the path",
            result.id
        )));
    }
    let queue = state.commands.clone();
    let completion = tokio::task::spawn_blocking(move || queue.complete(result))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(queue_error)?;
    let record = state
        .commands
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no command `{id}`")))?;
    if !record.event_recorded {
        if let Some(result) = &record.result {
            let decoded = Decoded {
                events: vec![result_event(&record.command, result)],
                errors: Vec::new(),
            };
            // The result is durable in the queue already; if the event cannot be stored now,
            // the agent's retry stores it (the queue remembers it was not).
            state
                .pipeline
                .submit_decoded(decoded, "crowsnest", Admission::Wait)
                .await
                .map_err(|error| super::ingest::submit_error(&state, error))?;
            if let Err(error) = state.commands.mark_event_recorded(&id) {
                tracing::warn!(%error, "could not note that a command's result event was stored");
            }
        }
    }
    Ok(Json(json!({
        "id": id,
        "recorded": completion == Completion::Recorded,
        "duplicate": completion == Completion::Duplicate,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionRequest {
    node: String,
    op: String,
    container: String,
    #[serde(default)]
    networks: Vec<NetworkAttachment>,
    #[serde(default)]
    evidence: bool,
    #[serde(default)]
    export: bool,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    ttl: Option<String>,
}

pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let token = authorize(&state, &headers, Scope::Admin)?;
    let source_ip = crate::audit::peer_ip(&extensions);
    let request: ActionRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid action: {e}; expected {{\"node\": \"...\", \"op\": \"pause|unpause|quarantine|release|stop|start|kill|evidence\", \"container\": \"id or name\", \"evidence\": true, \"reason\": \"...\", \"ttl\": \"5m\"}}"
        ))
    })?;
    let op = ContainerOp::parse(&request.op).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown op `{}`; expected one of {}",
            request.op,
            ContainerOp::ALL.map(ContainerOp::as_str).join(", ")
        ))
    })?;
    let ttl = match request.ttl.as_deref() {
        None | Some("") => DEFAULT_TTL,
        Some(text) => crowsnest_model::parse_duration(text).map_err(|e| {
            ApiError::bad_request(format!("`ttl` `{text}`: {e} (examples: 30s, 5m, 1h)"))
        })?,
    };
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(ApiError::bad_request(
            "`ttl` must be longer than zero and at most 24h",
        ));
    }
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|_| ApiError::bad_request("`ttl` is out of range"))?;
    let mut command = AgentCommand::new(
        request.node.trim(),
        op,
        request.container.trim(),
        request.reason,
        ttl,
    );
    command.networks = request.networks;
    command.evidence = request.evidence;
    command.export = request.export;
    command.issued_by = Some(token);
    let queue = state.commands.clone();
    let queued = command.clone();
    let enqueued = tokio::task::spawn_blocking(move || queue.enqueue(queued))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(queue_error);
    let mut entry = crate::audit::AuditEntry::new(
        "response.action",
        command.issued_by.as_deref(),
        enqueued.is_ok(),
    );
    entry.source_ip = source_ip;
    entry.target = Some(format!(
        "{} {} on node {}",
        command.op.as_str(),
        command.container,
        command.node
    ));
    match &enqueued {
        Ok(id) => entry.message = Some(format!("command {id} queued")),
        Err(error) => entry.message = Some(error.to_string()),
    }
    state.audit.record(entry);
    let id = enqueued?;
    let last_seen = state.commands.last_seen(&command.node);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": id,
            "status": CommandStatus::Pending,
            "command": command,
            "node_last_seen": last_seen,
            "warning": last_seen.is_none().then(|| format!(
                "no agent of node `{}` has polled since the server started; the command waits until one does or it expires",
                command.node
            )),
        })),
    ))
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let status = match params.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(text) => Some(CommandStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown `status` `{text}`; expected pending, delivered, done, failed or expired"
            ))
        })?),
    };
    let limit = match params.get("limit") {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("`limit` `{text}` is not a count")))?,
        None => 100,
    };
    let node = params
        .get("node")
        .map(String::as_str)
        .filter(|n| !n.is_empty());
    let actions: Vec<Value> = state
        .commands
        .list(node, status, limit)
        .iter()
        .map(record_json)
        .collect();
    Ok(Json(json!({ "actions": actions })))
}

pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    if state.commands.get(&id).is_none() {
        return Err(ApiError::NotFound(format!("no action `{id}`")));
    }
    let wait = duration_param(&params, "wait", Duration::ZERO, MAX_RESULT_WAIT)?;
    if !wait.is_zero() {
        state.commands.wait_result(&id, wait).await;
    }
    let record = state
        .commands
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no action `{id}`")))?;
    Ok(Json(record_json(&record)))
}
