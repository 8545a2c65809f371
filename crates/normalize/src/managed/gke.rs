//! GKE: a Cloud Audit Log entry (`protoPayload` of `@type` `...AuditLog`, `serviceName: k8s.io`)
//! → the audit event it describes → the common mapping.
//!
//! GKE does not ship the API server's audit event itself; it logs a `LogEntry`. This module
//! rebuilds the audit event from it and maps that, so GKE events carry the same fields as
//! native ones:
//!
//! | audit event field | from the `LogEntry` |
//! |---|---|
//! | `verb` | last segment of `protoPayload.methodName` (`io.k8s.core.v1.pods.exec.create` → `create`) |
//! | `objectRef` | `protoPayload.resourceName` (`core/v1/namespaces/<ns>/pods/<name>[/exec]`), else `methodName` |
//! | `user.username` | `protoPayload.authenticationInfo.principalEmail` |
//! | `sourceIPs`, `userAgent` | `protoPayload.requestMetadata.callerIp`, `.callerSuppliedUserAgent` |
//! | `responseStatus.code` | `protoPayload.status.code` (a gRPC code) as the HTTP status it stands for; `{}` means OK → 200 |
//! | `annotations` decision/reason | `labels["authorization.k8s.io/decision"]`/`reason`, else `authorizationInfo[].granted` (all → `allow`) |
//! | `requestObject`, `responseObject` | `protoPayload.request`, `.response` (moved, not copied) |
//! | `auditID`, `requestReceivedTimestamp` | `operation.id`, `timestamp` |
//!
//! The rest of the `LogEntry` is kept under `gcp.audit`; `resource.labels` give
//! `orchestrator.cluster.name`, `cloud.project.id` and `cloud.region` (or
//! `cloud.availability_zone` for a zonal cluster).

use crowsnest_model::Event;
use serde_json::{json, Map, Value};

use crate::error::{describe, FieldError};
use crate::fields::{opt_bool, opt_int, opt_obj, opt_str, text};
use crate::k8s_audit::{map_audit_event, Origin};

const DECISION_LABEL: &str = "authorization.k8s.io/decision";
const REASON_LABEL: &str = "authorization.k8s.io/reason";

/// Whether a JSON object is a GKE Kubernetes audit `LogEntry`.
pub(crate) fn is_k8s_entry(obj: &Map<String, Value>) -> bool {
    let Some(Value::Object(proto)) = obj.get("protoPayload") else {
        return false;
    };
    proto.get("serviceName").and_then(Value::as_str) == Some("k8s.io")
        || proto
            .get("methodName")
            .and_then(Value::as_str)
            .is_some_and(|m| m.starts_with("io.k8s."))
}

/// The object an API request addressed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Target {
    pub group: Option<String>,
    pub version: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// Parses `core/v1/namespaces/<ns>/pods/<name>[/<subresource>]` (or a cluster-scoped
/// `rbac.authorization.k8s.io/v1/clusterrolebindings/<name>`).
pub(crate) fn parse_resource_name(resource_name: &str) -> Option<Target> {
    let segments: Vec<&str> = resource_name.split('/').collect();
    if segments.len() < 3 || segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let mut target = Target {
        group: group_name(segments[0]),
        version: Some(segments[1].to_string()),
        ..Target::default()
    };
    let mut rest = &segments[2..];
    if rest.first() == Some(&"namespaces") && rest.len() >= 2 {
        if rest.len() == 2 {
            target.resource = Some("namespaces".to_string());
            target.name = Some(rest[1].to_string());
            return Some(target);
        }
        target.namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    target.resource = rest.first().map(|s| s.to_string());
    target.name = rest.get(1).map(|s| s.to_string());
    target.subresource = rest.get(2).map(|s| s.to_string());
    Some(target)
}

/// Parses `io.k8s.<group...>.<version>.<resource>[.<subresource>].<verb>` into the verb and
/// what it tells about the target.
pub(crate) fn parse_method(method: &str) -> (Option<String>, Target) {
    let tokens: Vec<&str> = method.split('.').collect();
    let verb = tokens
        .last()
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string());
    let mut target = Target::default();
    let body = match method.strip_prefix("io.k8s.") {
        Some(body) => body.split('.').collect::<Vec<&str>>(),
        None => return (verb, target),
    };
    let is_version = |t: &&str| {
        t.len() >= 2 && t.starts_with('v') && t[1..].starts_with(|c: char| c.is_ascii_digit())
    };
    let Some(at) = body.iter().position(is_version) else {
        return (verb, target);
    };
    let last = body.len().saturating_sub(1);
    let group: Vec<&str> = body[..at].iter().rev().copied().collect();
    target.group = match group.as_slice() {
        [] | ["core"] => None,
        [single] => Some((*single).to_string()),
        // `io.k8s.authorization.rbac` names the group `rbac.authorization.k8s.io`.
        many => Some(format!("{}.k8s.io", many.join("."))),
    };
    target.version = Some(body[at].to_string());
    if at + 1 < last {
        target.resource = Some(body[at + 1].to_string());
    }
    if at + 2 < last {
        target.subresource = Some(body[at + 2].to_string());
    }
    (verb, target)
}

fn group_name(segment: &str) -> Option<String> {
    (segment != "core" && !segment.is_empty()).then(|| segment.to_string())
}

/// The HTTP status a gRPC status code stands for (google.rpc.Code → HTTP mapping).
pub(crate) fn http_status(grpc: i64) -> i64 {
    match grpc {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// Maps a GKE `LogEntry` (without `event.original`).
pub(crate) fn map_entry(mut entry: Map<String, Value>) -> Result<Event, FieldError> {
    let mut proto = match entry.remove("protoPayload") {
        Some(Value::Object(proto)) => proto,
        other => {
            let found = other
                .as_ref()
                .map_or_else(|| "nothing".to_string(), describe);
            return Err(FieldError::field(
                "protoPayload",
                format!("expected an object, found {found}"),
            ));
        }
    };
    let audit = rebuild_audit_event(&entry, &mut proto)?;
    entry.insert("protoPayload".to_string(), Value::Object(proto));

    let (cluster, location, project) = match opt_obj(&entry, "resource", "")? {
        Some(resource) => match opt_obj(resource, "labels", "resource")? {
            Some(labels) => (
                opt_str(labels, "cluster_name", "resource.labels")?,
                opt_str(labels, "location", "resource.labels")?,
                opt_str(labels, "project_id", "resource.labels")?,
            ),
            None => (None, None, None),
        },
        None => (None, None, None),
    };
    let origin = Origin {
        cluster: cluster.map(str::to_string),
        cloud_provider: Some("gcp"),
        fallback_time: None,
    };
    let mut event = map_audit_event(audit, &origin)?;
    event.set_if_present("cloud.project.id", text(project));
    if let Some(location) = location {
        event.set(location_field(location), json!(location));
    }
    event.set("gcp.audit", Value::Object(entry));
    Ok(event)
}

/// `europe-west1-b` is a zone, `europe-west1` a region.
fn location_field(location: &str) -> &'static str {
    let is_zone = location
        .rsplit_once('-')
        .is_some_and(|(head, tail)| head.contains('-') && tail.len() == 1);
    if is_zone {
        "cloud.availability_zone"
    } else {
        "cloud.region"
    }
}

/// Builds the audit event a `LogEntry` describes; moves `request`/`response` out of `proto`.
fn rebuild_audit_event(
    entry: &Map<String, Value>,
    proto: &mut Map<String, Value>,
) -> Result<Map<String, Value>, FieldError> {
    let within = |error: FieldError| error.within("protoPayload");
    let method = opt_str(proto, "methodName", "").map_err(within)?;
    let resource_name = opt_str(proto, "resourceName", "").map_err(within)?;
    let (verb, from_method) = method.map(parse_method).unwrap_or_default();
    let target = resource_name
        .and_then(parse_resource_name)
        .unwrap_or(from_method);

    let mut audit = Map::new();
    audit.insert("kind".into(), json!("Event"));
    audit.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
    if let Some(operation) = opt_obj(entry, "operation", "")? {
        if let Some(id) = opt_str(operation, "id", "operation")? {
            audit.insert("auditID".into(), json!(id));
        }
    }
    if let Some(verb) = verb {
        audit.insert("verb".into(), json!(verb));
    }
    if let Some(auth) = opt_obj(proto, "authenticationInfo", "").map_err(within)? {
        if let Some(email) =
            opt_str(auth, "principalEmail", "authenticationInfo").map_err(within)?
        {
            audit.insert("user".into(), json!({"username": email}));
        }
    }
    if let Some(meta) = opt_obj(proto, "requestMetadata", "").map_err(within)? {
        if let Some(ip) = opt_str(meta, "callerIp", "requestMetadata").map_err(within)? {
            audit.insert("sourceIPs".into(), json!([ip]));
        }
        let agent = opt_str(meta, "callerSuppliedUserAgent", "requestMetadata").map_err(within)?;
        if let Some(agent) = agent {
            audit.insert("userAgent".into(), json!(agent));
        }
    }
    let mut object_ref = Map::new();
    let parts = [
        ("apiGroup", target.group),
        ("apiVersion", target.version),
        ("resource", target.resource),
        ("subresource", target.subresource),
        ("namespace", target.namespace),
        ("name", target.name),
    ];
    for (key, value) in parts {
        if let Some(value) = value {
            object_ref.insert(key.into(), Value::String(value));
        }
    }
    if !object_ref.is_empty() {
        audit.insert("objectRef".into(), Value::Object(object_ref));
    }
    if let Some(status) = opt_obj(proto, "status", "").map_err(within)? {
        let grpc = opt_int(status, "code", "status")
            .map_err(within)?
            .unwrap_or(0);
        audit.insert("responseStatus".into(), json!({"code": http_status(grpc)}));
    }
    if let Some(request) = proto.remove("request") {
        audit.insert("requestObject".into(), request);
    }
    if let Some(response) = proto.remove("response") {
        audit.insert("responseObject".into(), response);
    }
    if let Some(timestamp) = opt_str(entry, "timestamp", "")? {
        audit.insert("requestReceivedTimestamp".into(), json!(timestamp));
    }
    let annotations = annotations(entry, proto)?;
    if !annotations.is_empty() {
        audit.insert("annotations".into(), Value::Object(annotations));
    }
    Ok(audit)
}

/// The authorizer's decision and reason: from `labels`, else from `authorizationInfo`.
fn annotations(
    entry: &Map<String, Value>,
    proto: &Map<String, Value>,
) -> Result<Map<String, Value>, FieldError> {
    let mut out = Map::new();
    if let Some(labels) = opt_obj(entry, "labels", "")? {
        for key in [DECISION_LABEL, REASON_LABEL] {
            if let Some(value) = opt_str(labels, key, "labels")? {
                out.insert(key.into(), json!(value));
            }
        }
    }
    if out.contains_key(DECISION_LABEL) {
        return Ok(out);
    }
    let infos = match proto.get("authorizationInfo") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Array(infos)) => infos,
        Some(other) => {
            return Err(FieldError::field(
                "protoPayload.authorizationInfo",
                format!("expected an array, found {}", describe(other)),
            ))
        }
    };
    let mut all_granted = !infos.is_empty();
    for (index, info) in infos.iter().enumerate() {
        let path = format!("protoPayload.authorizationInfo[{index}]");
        let Value::Object(info) = info else {
            return Err(FieldError::field(
                path,
                format!("expected an object, found {}", describe(info)),
            ));
        };
        // proto3 JSON leaves `false` out: a missing `granted` means not granted.
        all_granted &= opt_bool(info, "granted", &path)?.unwrap_or(false);
    }
    if !infos.is_empty() {
        let decision = if all_granted { "allow" } else { "forbid" };
        out.insert(DECISION_LABEL.into(), json!(decision));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_give_the_target() {
        let target =
            parse_resource_name("core/v1/namespaces/default/pods/nginx/exec").expect("parses");
        assert_eq!(target.group, None);
        assert_eq!(target.namespace.as_deref(), Some("default"));
        assert_eq!(target.resource.as_deref(), Some("pods"));
        assert_eq!(target.name.as_deref(), Some("nginx"));
        assert_eq!(target.subresource.as_deref(), Some("exec"));
        let ns = parse_resource_name("core/v1/namespaces/foo").expect("parses");
        assert_eq!(
            (ns.resource.as_deref(), ns.name.as_deref()),
            (Some("namespaces"), Some("foo"))
        );
        assert_eq!(parse_resource_name("core"), None);
    }

    #[test]
    fn method_names_give_verb_and_group() {
        let (verb, target) =
            parse_method("io.k8s.authorization.rbac.v1.clusterrolebindings.create");
        assert_eq!(verb.as_deref(), Some("create"));
        assert_eq!(target.group.as_deref(), Some("rbac.authorization.k8s.io"));
        assert_eq!(target.resource.as_deref(), Some("clusterrolebindings"));
        let (verb, target) = parse_method("io.k8s.core.v1.pods.exec.create");
        assert_eq!(verb.as_deref(), Some("create"));
        assert_eq!(
            (target.resource.as_deref(), target.subresource.as_deref()),
            (Some("pods"), Some("exec"))
        );
        let (_, apps) = parse_method("io.k8s.apps.v1.deployments.patch");
        assert_eq!(apps.group.as_deref(), Some("apps"));
    }

    #[test]
    fn grpc_codes_map_to_http_and_locations_to_fields() {
        assert_eq!(http_status(0), 200);
        assert_eq!(http_status(7), 403);
        assert_eq!(http_status(16), 401);
        assert_eq!(location_field("europe-west1-b"), "cloud.availability_zone");
        assert_eq!(location_field("europe-west1"), "cloud.region");
    }
}
