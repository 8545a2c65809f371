//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of every endpoint.
//!
//! Written by hand (a generator such as utoipa would add a proc-macro stack to every build of a
//! 2-core CI machine for eight routes); `tests.rs` checks that every routed path is described.

use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

/// Paths the router serves; the test compares them with the document.
#[cfg(test)]
pub(crate) const PATHS: &[&str] = &[
    "/api/v1/ingest/k8s-audit",
    "/api/v1/ingest/ndjson",
    "/api/v1/search",
    "/api/v1/alerts",
    "/api/v1/incidents",
    "/api/v1/incidents/{id}",
    "/api/v1/incidents/{id}/actions",
    "/api/v1/baselines",
    "/api/v1/baselines/{rule}",
    "/api/v1/compliance/{framework}",
    "/api/v1/baselines/{rule}/actions",
    "/api/v1/actions",
    "/api/v1/actions/{id}",
    "/api/v1/agent/commands",
    "/api/v1/agent/commands/{id}/result",
    "/api/v1/respond/actions",
    "/api/v1/respond/actions/{id}",
    "/api/v1/respond/actions/{id}/undo",
    "/api/v1/respond/approve",
    "/api/v1/respond/reject",
    "/api/v1/rules",
    "/api/v1/rules/reload",
    "/api/v1/rules/{id}",
    "/api/v1/rules/{id}/enable",
    "/api/v1/rules/{id}/disable",
    "/api/v1/rules/{id}/test",
    "/api/v1/outputs",
    "/api/v1/notifications",
    "/api/v1/health",
    "/api/v1/tokens",
    "/api/v1/tokens/{name}/revoke",
    "/api/v1/verify",
    "/api/v1/openapi.json",
    "/metrics",
    "/es/",
    "/es/_bulk",
    "/es/{index}/_bulk",
    "/services/collector",
    "/services/collector/event",
    "/services/collector/raw",
    "/services/collector/ack",
    "/services/collector/health",
    "/v1/logs",
    "/api/v1/ingest/falco",
];

pub(super) async fn document() -> impl IntoResponse {
    Json(spec())
}

/// One forwarding output in `GET /api/v1/outputs`.
fn output_schema() -> Value {
    json!({"type": "object", "required": ["name", "type", "position", "lag_events"],
        "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "position": {"type": "integer"},
                       "lag_events": {"type": "integer"}, "delivered": {"type": "integer"}, "rejected": {"type": "integer"},
                       "dropped": {"type": "integer"}, "last_error": {"type": ["string", "null"]},
                       "last_delivery": {"type": ["string", "null"]}}})
}

/// The answer of `POST /api/v1/verify`.
fn verify_report_schema() -> Value {
    let finding = json!({"type": "object", "properties": {
        "severity": {"enum": ["note", "gap", "fail"]}, "path": {"type": "string"}, "message": {"type": "string"}}});
    json!({"type": "object", "required": ["passed", "records", "files_ok", "findings"],
        "properties": {"passed": {"type": "boolean"}, "records": {"type": "integer"}, "signed_checkpoints": {"type": "integer"},
                       "files_ok": {"type": "integer"}, "bytes_hashed": {"type": "integer"}, "duration_ms": {"type": "integer"},
                       "findings": {"type": "array", "items": finding}}})
}

/// One notification channel in `GET /api/v1/notifications`.
fn channel_schema() -> Value {
    let time = json!({"type": ["string", "null"], "format": "date-time"});
    json!({"type": "object", "required": ["name", "kind", "pending", "delivered", "failed", "retries", "consecutive_failures"],
        "properties": {"name": {"type": "string"},
                       "kind": {"enum": ["slack", "teams", "pagerduty", "alertmanager", "opsgenie", "webhook", "email"]},
                       "pending": {"type": "integer"}, "delivered": {"type": "integer"}, "failed": {"type": "integer"},
                       "retries": {"type": "integer"}, "consecutive_failures": {"type": "integer"},
                       "last_error": {"type": ["string", "null"]}, "last_error_at": time,
                       "last_delivery_at": time, "oldest_pending": time}})
}

fn error_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"}
    })
}

fn with_errors(mut responses: Value, extra: &[(&str, &str)]) -> Value {
    if let (Some(map), Value::Object(errors)) = (responses.as_object_mut(), error_responses()) {
        map.extend(errors);
        for (code, reference) in extra {
            map.insert(
                (*code).to_string(),
                json!({"$ref": format!("#/components/responses/{reference}")}),
            );
        }
    }
    responses
}

/// The compatibility endpoints (`api/compat`): Elasticsearch, Splunk HEC, OTLP, Falco.
fn compat_paths() -> Value {
    let object = json!({"application/json": {"schema": {"type": "object"}}});
    let ok =
        |description: &str| json!({"200": {"description": description, "content": object.clone()}});
    let bulk = json!({
        "summary": "Elasticsearch `_bulk` (index/create actions, NDJSON, gzip)",
        "description": "Scope `ingest`. Token as `Bearer`, `ApiKey` or the password of `Basic`. Answers in Elasticsearch's shape with per-item statuses; `update`/`delete` items fail with 405.",
        "requestBody": {"required": true, "content": {"application/x-ndjson": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "string"}}}},
        "responses": with_errors(ok("Per-item results (`errors`, `items`)"), &[("413", "PayloadTooLarge"), ("429", "Busy")])
    });
    let mut bulk_index = bulk.clone();
    bulk_index["parameters"] = json!([{"name": "index", "in": "path", "required": true, "schema": {"type": "string"}, "description": "Default `_index` for items without one"}]);
    let hec = |summary: &str| {
        json!({"post": {
            "summary": summary,
            "description": "Scope `ingest`, as `Authorization: Splunk <token>`. Optional `X-Splunk-Request-Channel` header: the answer then carries an `ackId`.",
            "security": [{"splunk": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "string"}}, "text/plain": {"schema": {"type": "string"}}}},
            "responses": with_errors(ok("`{\"text\": \"Success\", \"code\": 0, \"accepted\": N}` (events stored)"), &[("413", "PayloadTooLarge"), ("503", "Busy")])
        }})
    };
    json!({
        "/es/": {"get": {"summary": "Elasticsearch handshake: version and `X-Elastic-Product` header", "description": "Scope `ingest`. Other `/es/*` paths (license, templates, ILM, pipelines) are answered harmlessly.",
                          "responses": with_errors(ok("Cluster info"), &[])}},
        "/es/_bulk": {"post": bulk},
        "/es/{index}/_bulk": {"post": bulk_index},
        "/services/collector": hec("Splunk HEC events (concatenated JSON objects)"),
        "/services/collector/event": hec("Splunk HEC events (concatenated JSON objects)"),
        "/services/collector/raw": hec("Splunk HEC raw text, one event per line; envelope from `host`, `source`, `sourcetype`, `index` parameters"),
        "/services/collector/ack": {"post": {"summary": "Splunk HEC acknowledgement status (every issued id is durable)", "security": [{"splunk": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {"acks": {"type": "array", "items": {"type": "integer"}}}}}}},
            "responses": with_errors(ok("`{\"acks\": {\"0\": true}}`"), &[])}},
        "/services/collector/health": {"get": {"summary": "Splunk HEC health", "security": [], "responses": ok("`{\"text\": \"HEC is healthy\", \"code\": 17}`")}},
        "/v1/logs": {"post": {"summary": "OTLP/HTTP logs (ExportLogsServiceRequest, protobuf or JSON, gzip)",
            "description": "Scope `ingest`. Resource attributes following the k8s/container semantic conventions map to `kubernetes.*`, `container.*`. The answer is an ExportLogsServiceResponse in the request's encoding.",
            "requestBody": {"required": true, "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}, "application/json": {"schema": {"type": "object"}}}},
            "responses": with_errors(json!({"200": {"description": "ExportLogsServiceResponse (partial success lists rejected records)",
                "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}, "application/json": {"schema": {"type": "object"}}}}}),
                &[("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType"), ("503", "Busy")])}},
        "/api/v1/ingest/falco": {"post": {"summary": "Falco alerts (http_output, falcosidekick webhook): an object, an array or NDJSON",
            "description": "Scope `ingest`. Alerts become `event.kind: alert` events with `rule.name`, `falco.*` and mapped output fields.",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": with_errors(json!({"200": {"$ref": "#/components/responses/IngestReport"}}), &[("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType"), ("503", "Busy")])}}
    })
}

/// The document.
pub(crate) fn spec() -> Value {
    let mut document = base_spec();
    if let (Some(paths), Value::Object(compat), Value::Object(actions)) = (
        document["paths"].as_object_mut(),
        compat_paths(),
        action_paths(),
    ) {
        paths.extend(compat);
        paths.extend(actions);
    }
    if let (Some(paths), Value::Object(baselines)) =
        (document["paths"].as_object_mut(), baseline_paths())
    {
        paths.extend(baselines);
    }
    if let (Some(paths), Value::Object(rules)) = (document["paths"].as_object_mut(), rule_paths()) {
        paths.extend(rules);
    }
    if let Some(responses) = document["components"]["responses"].as_object_mut() {
        responses.insert(
            "NotFound".into(),
            json!({"description": "No such object", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    if let (Some(schemas), Value::Object(actions)) = (
        document["components"]["schemas"].as_object_mut(),
        action_schemas(),
    ) {
        schemas.extend(actions);
    }
    document
}

/// The endpoints of one rule (`api/rules`): its detail, switching it, testing it.
fn rule_paths() -> Value {
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The rule id (`rule.id` of its alerts)"}]);
    let switched = json!({"200": {"description": "Switched (`changed: false` when it already was); the detector applies it within a second", "content": {"application/json": {"schema": {"type": "object",
        "properties": {"id": {"type": "string"}, "enabled": {"type": "boolean"}, "changed": {"type": "boolean"}}}}}}});
    json!({
        "/api/v1/rules/{id}": {"get": {
            "summary": "One loaded rule: id, title, kind, level, status, tags, file, enabled, and the text of its file",
            "description": "Scope `read`. `source` is cut at 256 KB (`source_truncated`).",
            "parameters": id,
            "responses": with_errors(json!({"200": {"description": "The rule", "content": {"application/json": {"schema": {"type": "object"}}}}}), &[("404", "NotFound")])
        }},
        "/api/v1/rules/{id}/enable": {"post": {
            "summary": "Enable a disabled rule again", "description": "Scope `admin`. Kept in `<data-dir>/detect/disabled_rules.json`.",
            "parameters": id,
            "responses": with_errors(switched.clone(), &[("404", "NotFound")])
        }},
        "/api/v1/rules/{id}/disable": {"post": {
            "summary": "Disable a rule: it stops matching the live stream (with the correlations over it), stays listed, and stays disabled across restarts",
            "description": "Scope `admin`. Kept in `<data-dir>/detect/disabled_rules.json`.",
            "parameters": id,
            "responses": with_errors(switched, &[("404", "NotFound")])
        }},
        "/api/v1/rules/{id}/test": {"post": {
            "summary": "Run one rule over stored events of a time range, without alerting",
            "description": "Scope `read`. Reads the newest `max_events` events of the range (default 100000, at most 1000000), oldest first, for at most 20 s; `capped` says when a bound cut the run short. Lists the first 200 matches and counts all.",
            "parameters": id,
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "start": {"type": "string", "description": "RFC 3339, or a duration back from now (default `24h`)"},
                "end": {"type": "string", "description": "RFC 3339, or a duration back from now (default now)"},
                "max_events": {"type": "integer", "minimum": 1, "maximum": 1000000}}}}}},
            "responses": with_errors(json!({"200": {"description": "The test", "content": {"application/json": {"schema": {"type": "object", "properties": {
                "events_in_range": {"type": "integer"}, "events_read": {"type": "integer"}, "capped": {"type": ["string", "null"]},
                "matches": {"type": "integer"}, "shown": {"type": "integer"}, "results": {"type": "array", "items": {"type": "object"}}}}}}}}), &[("404", "NotFound")])
        }}
    })
}

/// The containment endpoints (`api/actions`): the operators' actions and the agents' channel.
fn action_paths() -> Value {
    json!({
            "/api/v1/actions": {
                "get": {"summary": "Containment commands sent to node agents, newest first, with their status and results",
                        "description": "Scope `admin`.",
                        "parameters": [
                            {"name": "node", "in": "query", "schema": {"type": "string"}},
                            {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/CommandStatus"}},
                            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                        "responses": with_errors(json!({"200": {"description": "Commands", "content": {"application/json": {"schema": {"type": "object",
                            "properties": {"actions": {"type": "array", "items": {"$ref": "#/components/schemas/CommandRecord"}}}}}}}}), &[])},
                "post": {"summary": "Queue a containment command for the agent of a node (pause, unpause, quarantine, release, stop, start, kill, evidence)",
                         "description": "Scope `admin`. The command is durable when answered (202); the node's agent fetches it at once if it is polling, carries it out (evidence first when `evidence` is true) and posts the result. Not carried out after `ttl` (default 5m, at most 24h).",
                         "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false,
                            "required": ["node", "op", "container"], "properties": {
                                "node": {"type": "string"}, "op": {"$ref": "#/components/schemas/ContainerOp"},
                                "container": {"type": "string", "description": "Container id, id prefix or name"},
                                "networks": {"type": "array", "items": {"$ref": "#/components/schemas/NetworkAttachment"}, "description": "For `release`: the attachments to restore (default: what the agent remembers)"},
                                "evidence": {"type": "boolean"}, "export": {"type": "boolean", "description": "With evidence: also export the filesystem as a tar"},
                                "reason": {"type": "string"}, "ttl": {"type": "string", "description": "A duration, e.g. 30s, 5m"}}}}}},
                         "responses": with_errors(json!({"202": {"description": "Queued", "content": {"application/json": {"schema": {"type": "object",
                            "properties": {"id": {"type": "string"}, "status": {"type": "string"}, "command": {"$ref": "#/components/schemas/AgentCommand"},
                                           "node_last_seen": {"type": ["string", "null"]}, "warning": {"type": ["string", "null"]}}}}}}}), &[])}
            },
            "/api/v1/actions/{id}": {"get": {
                "summary": "One containment command: status, deliveries, the agent's result (evidence files with SHA-256, networks disconnected) and the latency",
                "description": "Scope `admin`. With `wait` (e.g. 10s, at most 60s) the answer waits until the result arrives.",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "wait", "in": "query", "schema": {"type": "string"}}],
                "responses": with_errors(json!({"200": {"description": "The command", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandRecord"}}}}}), &[])
            }},
            "/api/v1/respond/actions": {"get": {
                "summary": "Containment actions planned by the `[respond]` playbooks, newest first: target, operations, guard decision, state",
                "description": "Scope `read`. States: `dry_run`, `refused` (a guard), `pending` (waits for approval), `ready`, `executed`, `failed`, `undone`.",
                "parameters": [{"name": "state", "in": "query", "schema": {"type": "string", "enum": ["dry_run", "refused", "pending", "ready", "executed", "failed", "undone", "rejected"]}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                "responses": with_errors(json!({"200": {"description": "Actions", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"actions": {"type": "array", "items": {"$ref": "#/components/schemas/ResponseAction"}}}}}}}}), &[])
            }},
            "/api/v1/respond/actions/{id}": {"get": {
                "summary": "One containment action, with its undo as it would run now",
                "description": "Scope `read`. An `admin` token also gets `approval_link`, a fresh signed link, for a pending action.",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with_errors(json!({"200": {"description": "The action", "content": {"application/json": {"schema": {"allOf": [{"$ref": "#/components/schemas/ResponseAction"},
                    {"type": "object", "properties": {"undo_now": {"type": "array", "items": {"type": "string"}}, "approval_link": {"type": "string"}}}]}}}}}), &[])
            }},
            "/api/v1/respond/actions/{id}/undo": {"post": {
                "summary": "Undo an executed containment action (unpause, reconnect the remembered networks, start, remove the NetworkPolicy, ...)",
                "description": "Scope `admin`. Logged (`undone` or `undo_failed`) and stored as a `crowsnest.response` event.",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with_errors(json!({"200": {"description": "Undone (or the undo failed: see `record`)", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"action": {"$ref": "#/components/schemas/ResponseAction"}, "record": {"type": ["object", "null"]}}}}}}}), &[])
            }},
            "/api/v1/respond/approve": {
                "get": {"summary": "The page of a signed approval link: what would be approved, and a button that POSTs the token",
                        "description": "No token needed. Approves nothing (a chat's link preview must not use up the single-use token).",
                        "parameters": [{"name": "token", "in": "query", "required": true, "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}},
                "post": {"summary": "Approve a waiting containment action, which then runs at once",
                         "description": "`{\"id\": ...}` needs an `admin` token. `{\"token\": ...}` (JSON, or the form field `token` from the link's page) needs none: the signed, expiring, single-use token is the credential. Forged, expired and replayed tokens are refused (403) and logged.",
                         "requestBody": {"required": true, "content": {
                            "application/json": {"schema": {"type": "object", "properties": {"id": {"type": "string"}, "token": {"type": "string"}}}},
                            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"token": {"type": "string"}}}}}},
                         "responses": with_errors(json!({"200": {"description": "Approved and run (HTML for a form post)", "content": {"application/json": {"schema": {"type": "object",
                            "properties": {"action": {"$ref": "#/components/schemas/ResponseAction"}}}}}}}), &[])}
            },
            "/api/v1/respond/reject": {
                "post": {"summary": "Reject a waiting containment action: it never runs, and its approval link stops working",
                         "description": "`{\"id\": ...}` needs an `admin` token; `{\"token\": ...}` (JSON, or the form of the link's page) needs none, as for approving. `reason` (at most 500 characters) is kept in the action log (`rejected`).",
                         "requestBody": {"required": true, "content": {
                            "application/json": {"schema": {"type": "object", "properties": {"id": {"type": "string"}, "token": {"type": "string"}, "reason": {"type": "string"}}}},
                            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"token": {"type": "string"}, "reason": {"type": "string"}}}}}},
                         "responses": with_errors(json!({"200": {"description": "Rejected (HTML for a form post)", "content": {"application/json": {"schema": {"type": "object",
                            "properties": {"action": {"$ref": "#/components/schemas/ResponseAction"}}}}}}}), &[])}
            },
            "/api/v1/agent/commands": {"get": {
                "summary": "For node agents: the containment commands of a node (long poll)",
                "description": "Scope `ingest` (the agent's token). Answers as soon as a command is queued for `node`, or with none after `wait` (at most 60s). A command is handed out until its result arrives or it expires.",
                "parameters": [{"name": "node", "in": "query", "required": true, "schema": {"type": "string"}},
                               {"name": "wait", "in": "query", "schema": {"type": "string"}, "description": "A duration, e.g. 25s"}],
                "responses": with_errors(json!({"200": {"description": "Commands", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"node": {"type": "string"}, "commands": {"type": "array", "items": {"$ref": "#/components/schemas/AgentCommand"}}}}}}}}), &[])
            }},
            "/api/v1/agent/commands/{id}/result": {"post": {
                "summary": "For node agents: the result of a command",
                "description": "Scope `ingest`. Stored durably and written to the event store (`event.dataset: crowsnest.response`); a second result of the same command is acknowledged and ignored.",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandResult"}}}},
                "responses": with_errors(json!({"200": {"description": "Stored", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"id": {"type": "string"}, "recorded": {"type": "boolean"}, "duplicate": {"type": "boolean"}}}}}},
                    "404": {"description": "Unknown command", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}), &[("503", "Busy")])
            }}
    })
}

/// The schemas of containment commands and results.
fn action_schemas() -> Value {
    json!({
                "ContainerOp": {"enum": ["pause", "unpause", "quarantine", "release", "stop", "start", "kill", "evidence"]},
                "CommandStatus": {"enum": ["pending", "delivered", "done", "failed", "expired"]},
                "NetworkAttachment": {"type": "object", "required": ["network"], "properties": {
                    "network": {"type": "string"}, "network_id": {"type": "string"}, "aliases": {"type": "array", "items": {"type": "string"}},
                    "ipv4_address": {"type": "string"}, "ipv6_address": {"type": "string"}, "links": {"type": "array", "items": {"type": "string"}}}},
                "AgentCommand": {"type": "object", "required": ["id", "node", "op", "container", "issued_at", "expires_at"], "properties": {
                    "id": {"type": "string"}, "node": {"type": "string"}, "op": {"$ref": "#/components/schemas/ContainerOp"},
                    "container": {"type": "string"}, "networks": {"type": "array", "items": {"$ref": "#/components/schemas/NetworkAttachment"}},
                    "evidence": {"type": "boolean"}, "export": {"type": "boolean"}, "reason": {"type": "string"}, "issued_by": {"type": "string"},
                    "issued_at": {"type": "string", "format": "date-time"}, "expires_at": {"type": "string", "format": "date-time"}}},
                "CommandResult": {"type": "object", "required": ["id", "node", "ok", "started_at", "finished_at"], "properties": {
                    "id": {"type": "string"}, "node": {"type": "string"}, "ok": {"type": "boolean"}, "error": {"type": "string"},
                    "notes": {"type": "array", "items": {"type": "string"}}, "container_id": {"type": "string"}, "container_name": {"type": "string"},
                    "networks_disconnected": {"type": "array", "items": {"$ref": "#/components/schemas/NetworkAttachment"}},
                    "networks_connected": {"type": "array", "items": {"$ref": "#/components/schemas/NetworkAttachment"}},
                    "evidence": {"type": "array", "items": {"type": "object", "required": ["name", "sha256", "bytes", "path"], "properties": {
                        "name": {"type": "string"}, "sha256": {"type": "string"}, "bytes": {"type": "integer"}, "path": {"type": "string"}}}},
                    "started_at": {"type": "string", "format": "date-time"}, "finished_at": {"type": "string", "format": "date-time"}}},
                "ResponseAction": {"type": "object", "required": ["action", "state"], "properties": {
                    "action": {"type": "object", "description": "The plan: id, playbook, action, mode, target, alert_id, incident_id, planned_at, ttl_secs, operations, undo, decision {verdict, guard, reason}"},
                    "state": {"type": "string", "enum": ["dry_run", "refused", "pending", "ready", "executed", "failed", "undone", "rejected"]},
                    "approved_by": {"type": ["string", "null"]},
                    "memory": {"type": "object", "description": "What the execution remembered for the undo (networks, network_mode, previous_replicas)"},
                    "undo_at": {"type": ["string", "null"], "format": "date-time"}}},
                "CommandRecord": {"type": "object", "required": ["id", "status", "command"], "properties": {
                    "id": {"type": "string"}, "status": {"$ref": "#/components/schemas/CommandStatus"},
                    "command": {"$ref": "#/components/schemas/AgentCommand"}, "delivered_at": {"type": ["string", "null"]},
                    "deliveries": {"type": "integer"}, "result": {"oneOf": [{"$ref": "#/components/schemas/CommandResult"}, {"type": "null"}]},
                    "received_at": {"type": ["string", "null"]}, "event_recorded": {"type": "boolean"},
                    "latency_ms": {"type": "integer", "description": "From issue to the agent's finish"}}}
    })
}

fn base_spec() -> Value {
    // The search bounds (`[search]` settings): too many searches of the token, over the time budget.
    let search_errors = [("429", "TooManySearches"), ("504", "SearchTimeout")];
    let ingest_errors = [
        ("413", "PayloadTooLarge"),
        ("415", "UnsupportedMediaType"),
        ("503", "Busy"),
    ];
    json!({
        "openapi": "3.1.0",
        "info": {"title": "crowsnest API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "SIEM for containerized environments. Every call needs `Authorization: Bearer <token>`; the admin token is in `<data-dir>/admin.token`."},
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/ingest/k8s-audit": {"post": {
                "summary": "Ingest a Kubernetes audit EventList or Event (the kube-apiserver audit webhook format)",
                "description": "Scope `ingest`. Acknowledged only after the events are fsync'd in the write-ahead log.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": with_errors(json!({"200": {"$ref": "#/components/responses/IngestReport"}}), &ingest_errors)
            }},
            "/api/v1/ingest/ndjson": {"post": {
                "summary": "Ingest newline-delimited JSON events of any shape",
                "description": "Scope `ingest`. Kubernetes audit events (native, EKS, AKS, GKE) are detected per line or named by `source`. Bad lines are reported with their line number while the good ones are stored.",
                "parameters": [{"name": "source", "in": "query", "required": false,
                                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                                "description": "The input's name (`event.dataset`), or a known format: k8s-audit, eks, aks, gke"}],
                "requestBody": {"required": true, "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "string"}},
                    "text/plain": {"schema": {"type": "string"}}}},
                "responses": with_errors(json!({"200": {"$ref": "#/components/responses/IngestReport"}}), &ingest_errors)
            }},
            "/api/v1/search": {"post": {
                "summary": "Search events with a Lucene/KQL-style filter and pipes",
                "description": "Scope `read`. Example: `kubernetes.namespace:prod AND NOT user.name:system\\:* | stats count() by user.name`.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchRequest"}}}},
                "responses": with_errors(json!({"200": {"description": "Results", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchResponse"}}}}}), &search_errors)
            }},
            "/api/v1/alerts": {"get": {
                "summary": "Alerts, newest first, one entry per alert (folded repeats counted in `alert.count`)",
                "description": "Scope `read`. Alerts are also events (`event.kind:alert`) for `/api/v1/search`.",
                "parameters": [
                    {"name": "query", "in": "query", "schema": {"type": "string"}, "description": "Extra filter in the search language"},
                    {"name": "rule", "in": "query", "schema": {"type": "string"}, "description": "rule.id"},
                    {"name": "level", "in": "query", "schema": {"enum": crowsnest_model::Severity::ALL}},
                    {"name": "min_level", "in": "query", "schema": {"enum": crowsnest_model::Severity::ALL}, "description": "This level and above"},
                    {"name": "technique", "in": "query", "schema": {"type": "string"}, "description": "MITRE ATT&CK technique id, e.g. T1609"},
                    {"name": "namespace", "in": "query", "schema": {"type": "string"}},
                    {"name": "pod", "in": "query", "schema": {"type": "string"}},
                    {"name": "container", "in": "query", "schema": {"type": "string"}},
                    {"name": "user", "in": "query", "schema": {"type": "string"}},
                    {"name": "since", "in": "query", "schema": {"type": "string"}, "description": "A duration: a number and a unit (s, m, h, d, w, month, y), several added up, e.g. 30s, 15m, 1h, 7d, 1h30m; at most 100 years"},
                    {"name": "start", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "end", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1000}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10000}},
                    {"name": "format", "in": "query", "schema": {"enum": ["ecs", "ocsf"]}, "description": "ocsf: OCSF 1.1 Detection Finding (class 2004)"}
                ],
                "responses": with_errors(json!({"200": {"description": "Alerts", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"total": {"type": "integer"}, "alerts": {"type": "array", "items": {"type": "object"}}}}}}}}), &search_errors)
            }},
            "/api/v1/incidents": {"get": {
                "summary": "Incidents (alerts grouped by workload, pod, container, image, node or principal), riskiest first",
                "description": "Scope `read`. Open incidents unless `status` says otherwise.",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"enum": ["open", "new", "acknowledged", "investigating", "resolved"]}},
                    {"name": "min_risk", "in": "query", "schema": {"type": "number"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}}
                ],
                "responses": with_errors(json!({"200": {"description": "Incidents", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"incidents": {"type": "array", "items": {"type": "object"}}}}}}}}), &[])
            }},
            "/api/v1/incidents/{id}": {"get": {
                "summary": "One incident: its alerts, risk and the factors of the score, status, assignee, comments, classification",
                "description": "Scope `read`.",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with_errors(json!({"200": {"description": "The incident", "content": {"application/json": {"schema": {"type": "object"}}}}}), &[])
            }},
            "/api/v1/incidents/{id}/actions": {"post": {
                "summary": "Acknowledge, investigate, resolve (with a classification), assign or comment",
                "description": "Scope `admin`. The action is written to the WAL and applied in order (202 once durable); a replay rebuilds the same incident.",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["action"], "properties": {
                    "action": {"enum": ["acknowledge", "investigate", "resolve", "assign", "comment"]},
                    "classification": {"enum": ["true_positive", "benign_true_positive", "false_positive"]},
                    "assignee": {"type": "string"}, "text": {"type": "string"}}}}}},
                "responses": with_errors(json!({"202": {"description": "Accepted and durable", "content": {"application/json": {"schema": {"type": "object"}}}}}), &[])
            }},
            "/api/v1/rules": {"get": {
                "summary": "Detection rules running, and the files that could not be used", "description": "Scope `read`.",
                "responses": with_errors(json!({"200": {"description": "Rules", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"enabled": {"type": "boolean"}, "loaded": {"type": "integer"}, "problems": {"type": "array", "items": {"type": "string"}}, "loaded_at": {"type": "string"}}}}}}}), &[])
            }},
            "/api/v1/rules/reload": {"post": {
                "summary": "Reload the rule files now (they are also polled for changes)", "description": "Scope `admin`.",
                "responses": with_errors(json!({"202": {"description": "Reload requested", "content": {"application/json": {"schema": {"type": "object"}}}}}), &[])
            }},
            "/api/v1/outputs": {"get": {
                "summary": "Forwarding outputs: position, lag, delivered/rejected/dropped counts, last error", "description": "Scope `read`.",
                "responses": with_errors(json!({"200": {"description": "Outputs", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"outputs": {"type": "array", "items": output_schema()}}}}}}}), &[])
            }},
            "/api/v1/notifications": {"get": {
                "summary": "Notification channels: waiting, delivered, given-up counts, last error", "description": "Scope `read`. `deduplicated` counts incident changes recognised as already notified (a WAL replay after a restart).",
                "responses": with_errors(json!({"200": {"description": "Channels", "content": {"application/json": {"schema": {"type": "object",
                    "required": ["enabled", "channels", "deduplicated"],
                    "properties": {"enabled": {"type": "boolean"}, "deduplicated": {"type": "integer"},
                                   "channels": {"type": "array", "items": channel_schema()}}}}}}}), &[])
            }},
            "/api/v1/health": {"get": {
                "summary": "Server health: WAL, index lag, store partitions", "description": "Scope `read`.",
                "responses": with_errors(json!({"200": {"description": "Health", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"status": {"type": "string"}, "version": {"type": "string"}, "uptime_secs": {"type": "integer"},
                                   "wal": {"type": "object"}, "index_lag_events": {"type": "integer"}, "store": {"type": "object"}}}}}}}), &[])
            }},
            "/api/v1/tokens": {
                "get": {"summary": "List tokens (names and scopes, never the secrets)", "description": "Scope `admin`.",
                        "responses": with_errors(json!({"200": {"description": "Tokens", "content": {"application/json": {"schema": {"type": "object"}}}}}), &[])},
                "post": {"summary": "Create a scoped token (shown once)", "description": "Scope `admin`.",
                         "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "scopes"],
                            "properties": {"name": {"type": "string"}, "scopes": {"type": "array", "items": {"enum": ["ingest", "read", "admin"]}}}}}}},
                         "responses": with_errors(json!({"201": {"description": "Created", "content": {"application/json": {"schema": {"type": "object",
                            "properties": {"name": {"type": "string"}, "token": {"type": "string"}}}}}}}), &[])}
            },
            "/api/v1/tokens/{name}/revoke": {"post": {
                "summary": "Revoke a token: it authenticates nothing from now on", "description": "Scope `admin`. The `admin` token cannot be revoked here (400). Audited as `token.revoke`.",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with_errors(json!({"200": {"description": "Revoked", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"revoked": {"type": "string"}}}}}}}), &[("404", "NotFound")])
            }},
            "/api/v1/verify": {"post": {
                "summary": "Verify the integrity chain and the sealed WAL segments and partitions now", "description": "Scope `admin`. The result is also written to the self-audit stream as an event of dataset `crowsnest.verify` (with who asked). `from`/`to` limit the files rehashed to those sealed in that span; the chain is always checked in full.",
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"}}}}}},
                "responses": with_errors(json!({"200": {"description": "The verification report", "content": {"application/json": {"schema": verify_report_schema()}}}}), &[])
            }},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (text format)", "description": "Scope `read`.",
                "responses": with_errors(json!({"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}), &[])}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "splunk": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "`Splunk <token>`"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "status": {"type": "integer"}, "message": {"type": "string"}, "details": {}}}}},
                "LineError": {"type": "object", "properties": {"line": {"type": "integer"}, "field": {"type": ["string", "null"]}, "reason": {"type": "string"}}},
                "SearchRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "query": {"type": "string"}, "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"}, "limit": {"type": "integer", "minimum": 0},
                    "offset": {"type": "integer", "minimum": 0}}},
                "SearchResponse": {"type": "object", "properties": {
                    "total": {"type": "integer", "description": "Exact number of matching events"},
                    "hits": {"type": "array", "items": {"type": "object"}},
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "rows": {"type": "array", "items": {"type": "array"}},
                    "warnings": {"type": "array", "items": {"type": "string"}, "description": "What the answer leaves out, e.g. values of an aggregated field that have no column"},
                    "took_ms": {"type": "integer"}}}
            },
            "responses": {
                "IngestReport": {"description": "Accepted events are durable", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "accepted": {"type": "integer"}, "rejected": {"type": "integer"},
                    "errors": {"type": "array", "items": {"$ref": "#/components/schemas/LineError"}},
                    "errors_truncated": {"type": "boolean"}}}}}},
                "BadRequest": {"description": "Invalid input", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Unauthorized": {"description": "Missing or unknown token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Forbidden": {"description": "Token lacks the scope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "PayloadTooLarge": {"description": "Body over the limit", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "UnsupportedMediaType": {"description": "Wrong content type or encoding", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Busy": {"description": "Pipeline saturated; see Retry-After", "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "TooManySearches": {"description": "The token already runs search.max_concurrent_per_token searches; see Retry-After", "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "SearchTimeout": {"description": "The search ran past search.timeout_ms and was stopped", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        }
    })
}

/// The baselines endpoints (kept apart: one `json!` of every path passes the macro's recursion
/// limit).
fn baseline_paths() -> Value {
    json!({
            "/api/v1/baselines": {"get": {
                "summary": "Baseline rules (`baseline:`): per rule its kind, entities, terms held, events refused at a cap, end of its learning window",
                "description": "Scope `read`. Answered by the detector thread between two batches.",
                "responses": with_errors(json!({"200": {"description": "Baselines", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"baselines": {"type": "array", "items": {"type": "object"}}}}}}}}), &[])
            }},
            "/api/v1/baselines/{rule}": {"get": {
                "summary": "One baseline rule's profile: its entity and term fields and, per entity (most recently seen first, at most 500), the terms learned with first/last seen and counts, and the mode; for a `kind: rate` rule, `rate` (its layout) and `rates` (per entity the current bucket, the per-slot history, `locked`, `accepted`)",
                "description": "Scope `read`. The same JSON `hunt --export-baselines` writes per rule.",
                "parameters": [{"name": "rule", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "entity", "in": "query", "schema": {"type": "string"}, "description": "Only entities with this value"}],
                "responses": with_errors(json!({"200": {"description": "The profile", "content": {"application/json": {"schema": {"type": "object"}}}}}), &[])
            }},
            "/api/v1/compliance/{framework}": {"get": {
                "summary": "The status of every control of a framework over a period: evidence, violation observed, gap: no data source, or not evaluable by a SIEM (attest), with the exact queries, counts, sample event ids and source health behind each",
                "description": "Scope `read`. Frameworks: pci-dss-4.0.1, soc2-2017, hipaa-security, gdpr, cis-kubernetes-1.10, cis-docker-1.6, nist-800-190, nist-800-53r5. Thresholds and risk acceptances come from `[compliance]`. `crowsnest report compliance` renders this JSON as the HTML/PDF report.",
                "parameters": [{"name": "framework", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Inclusive start (default: 30 days before `to`)"},
                               {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Exclusive end (default: now)"},
                               {"name": "scope", "in": "query", "schema": {"type": "string"}, "description": "CLUSTER or CLUSTER/NAMESPACE (`*` for any)"}],
                "responses": with_errors(json!({"200": {"description": "The evaluation", "content": {"application/json": {"schema": {"type": "object",
                    "required": ["framework", "from", "to", "scope", "summary", "sources", "controls"],
                    "properties": {"framework": {"type": "object"}, "from": {"type": "string"}, "to": {"type": "string"},
                                   "scope": {"type": "object"}, "summary": {"type": "object"},
                                   "sources": {"type": "array", "items": {"type": "object"}},
                                   "controls": {"type": "array", "items": {"type": "object", "required": ["id", "summary", "status", "checks"],
                                       "properties": {"id": {"type": "string"}, "summary": {"type": "string"},
                                                      "status": {"enum": ["evidence", "violation observed", "gap: no data source", "not evaluable by a SIEM (attest)"]},
                                                      "nist": {"type": "array", "items": {"type": "string"}},
                                                      "checks": {"type": "array", "items": {"type": "object"}},
                                                      "accepted": {"type": "object"}}}}}}}}}}), &[])
            }},
            "/api/v1/baselines/{rule}/actions": {"post": {
                "summary": "Reset (forget an entity, or the whole rule), accept a term into an entity's baseline (a rate rule: no term, the entity's current bucket joins its history), lock (a rate entity: its history is frozen) or unlock an entity, import a profile",
                "description": "Scope `admin`. The action is written to the WAL and applied in order (202 once durable); a replay rebuilds the same baselines.",
                "parameters": [{"name": "rule", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["action"], "properties": {
                    "action": {"enum": ["reset", "accept", "lock", "unlock", "import"]},
                    "entity": {"type": "string"}, "term": {"type": "array", "items": {"type": "string"}},
                    "profile": {"type": "object", "description": "For import: a profile as GET /api/v1/baselines/{rule} gives it"}}}}}},
                "responses": with_errors(json!({"202": {"description": "Accepted and durable", "content": {"application/json": {"schema": {"type": "object"}}}}}), &[])
            }}
    })
}
