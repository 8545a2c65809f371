//! Kubernetes API-server audit events (`audit.k8s.io/v1`, `v1beta1`) → the common event.
//!
//! This is the one mapping every Kubernetes flavour lands in: the native webhook body
//! ([`crate::webhook`]), audit lines in NDJSON, and the managed services (EKS, AKS, GKE; see
//! [`crate::managed`]), which unwrap or rebuild the audit event and call [`map_audit_event`].
//! So a rule written against, say, `orchestrator.resource.subresource: exec` fires the same
//! way whichever cluster the event came from.
//!
//! What the mapping produces (ECS names; the full audit event is kept under `k8s.audit`):
//!
//! | field | from |
//! |---|---|
//! | `@timestamp` | `requestReceivedTimestamp`, else `stageTimestamp`, else v1beta1 `timestamp` |
//! | `event.end` | `stageTimestamp` |
//! | `event.action` | `verb` |
//! | `event.type` | verb class: `creation`, `deletion`, `access`, `change`, else `info` |
//! | `event.category` | `api`, plus `iam` for RBAC objects, service accounts and token reviews |
//! | `event.outcome` | `responseStatus.code` < 400 → `success`, else `failure`; none → `unknown` |
//! | `event.reason` | annotation `authorization.k8s.io/reason` |
//! | `kubernetes.audit.decision` | annotation `authorization.k8s.io/decision` |
//! | `user.name`, `user.id`, `user.roles` | `user.username`, `user.uid`, `user.groups` |
//! | `user.effective.name` | `impersonatedUser.username` |
//! | `source.ip`, `related.ip` | first of `sourceIPs`, all of them |
//! | `orchestrator.*` | `objectRef` (`resource.type`, `resource.subresource`, `resource.name`, `namespace`, `api_group`, `api_version`) |
//!
//! Audit events written before `objectRef.namespace` was exported (or by pipelines that drop
//! it) still get a namespace when the `requestURI` names one (`/api/v1/namespaces/<ns>/...`).

use chrono::{DateTime, Utc};
use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use serde_json::{json, Map, Value};

use crate::error::{describe, FieldError, LineError};
use crate::fields::{opt_int, opt_obj, opt_str, str_list};
use crate::registry::{Claim, Context, Parser, Record};
use crate::webhook::{decode_list_line, is_event_list};
use crate::{finish, Decoded};

/// `event.dataset` of every audit event, whichever cluster flavour it came from.
pub(crate) const DATASET: &str = "kubernetes.audit";
/// `event.module` of every audit event.
pub(crate) const MODULE: &str = "kubernetes";
/// Annotation holding the authorizer's decision.
const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
/// Annotation holding the authorizer's reason.
const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";

/// What is known about where an audit event came from, beyond the event itself.
#[derive(Debug, Default, Clone)]
pub(crate) struct Origin {
    /// `orchestrator.cluster.name`.
    pub cluster: Option<String>,
    /// `cloud.provider` (`aws`, `azure`, `gcp`).
    pub cloud_provider: Option<&'static str>,
    /// A time to use when the audit event carries none (e.g. the log record's time).
    pub fallback_time: Option<DateTime<Utc>>,
}

/// Whether a JSON object is a Kubernetes audit `Event`.
///
/// True for `kind: Event` with an `audit.k8s.io/*` `apiVersion`, and for objects without an
/// `apiVersion` (old minikube recordings, exported datasets) that carry the audit event's own
/// fields (`auditID` and `verb`) and no other `kind`.
pub(crate) fn looks_like_audit_event(obj: &Map<String, Value>) -> bool {
    let kind = obj.get("kind").and_then(Value::as_str);
    match obj.get("apiVersion") {
        Some(Value::String(version)) => {
            version.starts_with("audit.k8s.io/") && kind == Some("Event")
        }
        Some(_) => false,
        None => {
            matches!(kind, None | Some("Event"))
                && obj.get("auditID").is_some_and(Value::is_string)
                && obj.get("verb").is_some_and(Value::is_string)
        }
    }
}

/// The Kubernetes audit parser (`kubernetes.audit`, also `k8s-audit`): an audit `Event`, or an
/// `EventList` (one event per item). The managed-cloud parsers ([`crate::managed`]) end here
/// too.
#[derive(Debug)]
pub(crate) struct KubernetesAudit;

impl Parser for KubernetesAudit {
    fn name(&self) -> &'static str {
        DATASET
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["k8s-audit", "k8s_audit"]
    }

    fn detect(&self, object: &Map<String, Value>) -> bool {
        looks_like_audit_event(object) || is_event_list(object)
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let Record::Json { text, object } = record else {
            let reason = "expected a Kubernetes audit `Event` JSON object";
            return out.errors.push(LineError::new(cx.line, reason));
        };
        parse_audit(text, object, &Origin::default(), cx, out);
    }
}

/// Maps a record that must be an audit `Event` or `EventList` (when the parser was named,
/// `kind: Event` alone suffices); anything else is an error of the line.
pub(crate) fn parse_audit(
    text: &str,
    object: Map<String, Value>,
    origin: &Origin,
    cx: &Context<'_>,
    out: &mut Decoded,
) {
    let is_event = looks_like_audit_event(&object)
        || (cx.claim == Claim::Named
            && object.get("kind").and_then(Value::as_str) == Some("Event"));
    if is_event {
        match map_audit_event(object, origin) {
            Ok(event) => out.events.push(finish(event, text, cx.limits)),
            Err(error) => out.errors.push(error.at(cx.line)),
        }
    } else if is_event_list(&object) {
        decode_list_line(text, cx.line, origin, cx.limits, out);
    } else {
        let reason = "expected a Kubernetes audit `Event` or `EventList` (`kind: Event`, `apiVersion: audit.k8s.io/*`)";
        out.errors.push(LineError::new(cx.line, reason));
    }
}

/// Maps one audit event object to the common event (without `event.original`).
///
/// Fails when a field the mapping uses has the wrong type; the error names the field.
pub(crate) fn map_audit_event(
    audit: Map<String, Value>,
    origin: &Origin,
) -> Result<Event, FieldError> {
    let fields = AuditFields::read(&audit)?;
    let mut event = Event::new();

    let time = fields
        .received
        .or(fields.stage_time)
        .or(fields.legacy_time)
        .or(origin.fallback_time);
    if let Some(time) = time {
        event.set(ecs::TIMESTAMP, Value::String(format_timestamp(time)));
    }
    event.set(ecs::EVENT_KIND, json!("event"));
    event.set(ecs::EVENT_CATEGORY, Value::Array(fields.categories()));
    event.set(ecs::EVENT_TYPE, json!([event_type(fields.verb.as_deref())]));
    event.set_if_present(ecs::EVENT_ACTION, fields.verb.clone().map(Value::String));
    event.set(ecs::EVENT_OUTCOME, json!(outcome(fields.code)));
    event.set(ecs::EVENT_DATASET, json!(DATASET));
    event.set(ecs::EVENT_MODULE, json!(MODULE));
    if let Some(end) = fields.stage_time {
        event.set("event.end", Value::String(format_timestamp(end)));
    }
    event.set_if_present("event.reason", fields.reason.clone().map(Value::String));

    event.set_if_present(ecs::USER_NAME, fields.user_name.clone().map(Value::String));
    event.set_if_present(ecs::USER_ID, fields.user_id.clone().map(Value::String));
    event.set_if_present(ecs::USER_ROLES, Some(strings(&fields.groups)));
    event.set_if_present(
        "user.effective.name",
        fields.effective_name.clone().map(Value::String),
    );
    event.set_if_present(
        "user.effective.roles",
        Some(strings(&fields.effective_groups)),
    );
    event.set_if_present(
        ecs::SOURCE_IP,
        fields.source_ips.first().cloned().map(Value::String),
    );
    event.set_if_present("related.ip", Some(strings(&fields.source_ips)));
    let related_users: Vec<String> = fields
        .user_name
        .iter()
        .chain(fields.effective_name.iter())
        .cloned()
        .collect();
    event.set_if_present("related.user", Some(strings(&related_users)));
    event.set_if_present(
        ecs::USER_AGENT,
        fields.user_agent.clone().map(Value::String),
    );
    event.set_if_present(
        "url.original",
        fields.request_uri.clone().map(Value::String),
    );
    if let Some(code) = fields.code {
        event.set("http.response.status_code", json!(code));
    }

    event.set("orchestrator.type", json!("kubernetes"));
    let strings = [
        ("orchestrator.cluster.name", &origin.cluster),
        (ecs::ORCH_NAMESPACE, &fields.namespace),
        (ecs::ORCH_RESOURCE_TYPE, &fields.resource),
        ("orchestrator.resource.subresource", &fields.subresource),
        (ecs::ORCH_RESOURCE_NAME, &fields.name),
        ("orchestrator.api_group", &fields.api_group),
        ("orchestrator.api_version", &fields.api_version),
        (ecs::K8S_NAMESPACE, &fields.namespace),
    ];
    for (path, value) in strings {
        event.set_if_present(path, value.clone().map(Value::String));
    }
    if fields.resource.as_deref() == Some("pods") {
        event.set_if_present(ecs::K8S_POD_NAME, fields.name.clone().map(Value::String));
    }
    event.set_if_present(
        "kubernetes.audit.decision",
        fields.decision.clone().map(Value::String),
    );
    if let Some(provider) = origin.cloud_provider {
        event.set("cloud.provider", json!(provider));
    }
    event.set(ecs::MESSAGE, Value::String(fields.summary()));
    event.set("k8s.audit", Value::Object(audit));
    Ok(event)
}

/// The audit event's fields the mapping uses, type-checked and owned.
#[derive(Debug, Default)]
struct AuditFields {
    verb: Option<String>,
    user_name: Option<String>,
    user_id: Option<String>,
    groups: Vec<String>,
    effective_name: Option<String>,
    effective_groups: Vec<String>,
    source_ips: Vec<String>,
    user_agent: Option<String>,
    request_uri: Option<String>,
    resource: Option<String>,
    subresource: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    api_group: Option<String>,
    api_version: Option<String>,
    code: Option<i64>,
    decision: Option<String>,
    reason: Option<String>,
    received: Option<DateTime<Utc>>,
    stage_time: Option<DateTime<Utc>>,
    legacy_time: Option<DateTime<Utc>>,
}

impl AuditFields {
    fn read(audit: &Map<String, Value>) -> Result<Self, FieldError> {
        if let Some(kind) = audit.get("kind") {
            if kind.as_str() != Some("Event") {
                return Err(FieldError::field(
                    "kind",
                    format!("expected `Event`, found {}", quoted(kind)),
                ));
            }
        }
        if let Some(version) = audit.get("apiVersion") {
            if !version
                .as_str()
                .is_some_and(|v| v.starts_with("audit.k8s.io/"))
            {
                return Err(FieldError::field(
                    "apiVersion",
                    format!(
                        "expected `audit.k8s.io/v1` or `audit.k8s.io/v1beta1`, found {}",
                        quoted(version)
                    ),
                ));
            }
        }
        let mut fields = AuditFields {
            verb: owned(opt_str(audit, "verb", "")?),
            user_agent: owned(opt_str(audit, "userAgent", "")?),
            request_uri: owned(opt_str(audit, "requestURI", "")?),
            source_ips: str_list(audit, "sourceIPs", "")?,
            received: time_field(audit, "requestReceivedTimestamp")?,
            stage_time: time_field(audit, "stageTimestamp")?,
            legacy_time: time_field(audit, "timestamp")?,
            ..AuditFields::default()
        };
        if let Some(user) = opt_obj(audit, "user", "")? {
            fields.user_name = owned(opt_str(user, "username", "user")?);
            fields.user_id = owned(opt_str(user, "uid", "user")?);
            fields.groups = str_list(user, "groups", "user")?;
        }
        if let Some(user) = opt_obj(audit, "impersonatedUser", "")? {
            fields.effective_name = owned(opt_str(user, "username", "impersonatedUser")?);
            fields.effective_groups = str_list(user, "groups", "impersonatedUser")?;
        }
        if let Some(object) = opt_obj(audit, "objectRef", "")? {
            fields.resource = owned(opt_str(object, "resource", "objectRef")?);
            fields.subresource = owned(opt_str(object, "subresource", "objectRef")?);
            fields.name = owned(opt_str(object, "name", "objectRef")?);
            fields.namespace = owned(opt_str(object, "namespace", "objectRef")?);
            fields.api_group = owned(opt_str(object, "apiGroup", "objectRef")?);
            fields.api_version = owned(opt_str(object, "apiVersion", "objectRef")?);
        }
        if let Some(status) = opt_obj(audit, "responseStatus", "")? {
            fields.code = opt_int(status, "code", "responseStatus")?;
        }
        if let Some(annotations) = opt_obj(audit, "annotations", "")? {
            fields.decision = owned(opt_str(annotations, DECISION_ANNOTATION, "annotations")?);
            fields.reason = owned(opt_str(annotations, REASON_ANNOTATION, "annotations")?);
        }
        if fields.namespace.is_none() && fields.resource.as_deref() != Some("namespaces") {
            fields.namespace = fields
                .request_uri
                .as_deref()
                .and_then(namespace_from_uri)
                .map(str::to_string);
        }
        Ok(fields)
    }

    fn categories(&self) -> Vec<Value> {
        let iam_resource = matches!(
            self.resource.as_deref(),
            Some(
                "roles"
                    | "rolebindings"
                    | "clusterroles"
                    | "clusterrolebindings"
                    | "serviceaccounts"
                    | "tokenreviews"
            )
        );
        let rbac_group = self.api_group.as_deref() == Some("rbac.authorization.k8s.io");
        if iam_resource || rbac_group {
            vec![json!("api"), json!("iam")]
        } else {
            vec![json!("api")]
        }
    }

    /// One line for people: `alice create pods/exec default/nginx -> 201 (allow)`.
    fn summary(&self) -> String {
        let who = self.user_name.as_deref().unwrap_or("unknown-user");
        let verb = self.verb.as_deref().unwrap_or("unknown-verb");
        let what = match (&self.resource, &self.subresource) {
            (Some(resource), Some(sub)) => format!("{resource}/{sub}"),
            (Some(resource), None) => resource.clone(),
            (None, _) => {
                let uri = self.request_uri.as_deref().unwrap_or("?");
                uri.split('?').next().unwrap_or(uri).to_string()
            }
        };
        let mut line = format!("{who} {verb} {what}");
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => line.push_str(&format!(" {ns}/{name}")),
            (None, Some(name)) => line.push_str(&format!(" {name}")),
            (Some(ns), None) => line.push_str(&format!(" in {ns}")),
            (None, None) => {}
        }
        if let Some(code) = self.code {
            line.push_str(&format!(" -> {code}"));
        }
        if let Some(decision) = &self.decision {
            line.push_str(&format!(" ({decision})"));
        }
        line
    }
}

fn owned(value: Option<&str>) -> Option<String> {
    value.filter(|s| !s.is_empty()).map(str::to_string)
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

/// A short rendering of a value for error messages: short strings quoted, else the type.
pub(crate) fn quoted(value: &Value) -> String {
    match value {
        Value::String(s) if s.len() <= 64 => format!("`{s}`"),
        other => describe(other),
    }
}

/// A timestamp field: must be a string when present; an unparseable string yields `None`
/// (the event then simply has no time from it).
fn time_field(audit: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    let raw = opt_str(audit, key, "")?;
    Ok(raw.and_then(|s| parse_timestamp(&Value::String(s.to_string()))))
}

/// ECS `event.type` for a Kubernetes verb.
pub(crate) fn event_type(verb: Option<&str>) -> &'static str {
    match verb {
        Some("create") => "creation",
        Some("delete" | "deletecollection") => "deletion",
        Some("get" | "list" | "watch") => "access",
        Some("update" | "patch") => "change",
        _ => "info",
    }
}

fn outcome(code: Option<i64>) -> &'static str {
    match code {
        Some(code) if code < 400 => "success",
        Some(_) => "failure",
        None => "unknown",
    }
}

/// The namespace in a request path such as `/api/v1/namespaces/<ns>/pods` or
/// `/apis/apps/v1/namespaces/<ns>/deployments/web`. `None` for the namespace object itself.
pub(crate) fn namespace_from_uri(uri: &str) -> Option<&str> {
    let path = uri.split('?').next().unwrap_or(uri);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let at = match segments.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return None,
    };
    if segments.get(at) == Some(&"namespaces") && segments.len() > at + 2 {
        segments.get(at + 1).copied()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_comes_from_the_request_path() {
        assert_eq!(
            namespace_from_uri("/api/v1/namespaces/kube-system/configmaps?watch=1"),
            Some("kube-system")
        );
        assert_eq!(
            namespace_from_uri("/apis/apps/v1/namespaces/web/deployments/x"),
            Some("web")
        );
        assert_eq!(namespace_from_uri("/api/v1/namespaces/foo"), None);
        assert_eq!(namespace_from_uri("/healthz"), None);
    }

    #[test]
    fn verbs_map_to_event_types() {
        assert_eq!(event_type(Some("deletecollection")), "deletion");
        assert_eq!(event_type(Some("watch")), "access");
        assert_eq!(event_type(Some("patch")), "change");
        assert_eq!(event_type(Some("impersonate")), "info");
        assert_eq!(event_type(None), "info");
    }
}
