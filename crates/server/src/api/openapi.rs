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
    "/api/v1/health",
    "/api/v1/tokens",
    "/api/v1/openapi.json",
    "/metrics",
];

pub(super) async fn document() -> impl IntoResponse {
    Json(spec())
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

/// The document.
pub(crate) fn spec() -> Value {
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
                "responses": with_errors(json!({"200": {"description": "Results", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchResponse"}}}}}), &[])
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
            "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (text format)", "description": "Scope `read`.",
                "responses": with_errors(json!({"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}), &[])}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
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
                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        }
    })
}
