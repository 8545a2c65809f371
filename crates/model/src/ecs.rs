//! Field names of the common event (ECS-aligned) that code and tests rely on.

/// When the event happened (RFC 3339, UTC, microsecond precision).
pub const TIMESTAMP: &str = "@timestamp";
/// Free text of the event; indexed for full-text search.
pub const MESSAGE: &str = "message";
/// Unique id of the event, assigned at ingest (a ULID).
pub const EVENT_ID: &str = "event.id";
/// The raw input the event was decoded from, unchanged.
pub const EVENT_ORIGINAL: &str = "event.original";
/// When crowsnest received the event.
pub const EVENT_INGESTED: &str = "event.ingested";
/// The input the event came from (`k8s_audit`, `ndjson`, the `source` parameter, ...).
pub const EVENT_DATASET: &str = "event.dataset";
/// The module that decoded the event (`kubernetes`, `ndjson`, ...).
pub const EVENT_MODULE: &str = "event.module";
/// ECS `event.kind` (`event`, `alert`, ...).
pub const EVENT_KIND: &str = "event.kind";
/// ECS `event.category` (array).
pub const EVENT_CATEGORY: &str = "event.category";
/// ECS `event.type` (array).
pub const EVENT_TYPE: &str = "event.type";
/// What happened, e.g. the Kubernetes verb.
pub const EVENT_ACTION: &str = "event.action";
/// `success`, `failure` or `unknown`.
pub const EVENT_OUTCOME: &str = "event.outcome";
/// User name of the actor.
pub const USER_NAME: &str = "user.name";
/// User id of the actor.
pub const USER_ID: &str = "user.id";
/// Groups or roles of the actor.
pub const USER_ROLES: &str = "user.roles";
/// Source IP address of the request.
pub const SOURCE_IP: &str = "source.ip";
/// HTTP user agent.
pub const USER_AGENT: &str = "user_agent.original";
/// Kubernetes namespace.
pub const K8S_NAMESPACE: &str = "kubernetes.namespace";
/// Kubernetes pod name.
pub const K8S_POD_NAME: &str = "kubernetes.pod.name";
/// Orchestrator resource type (e.g. `pods`).
pub const ORCH_RESOURCE_TYPE: &str = "orchestrator.resource.type";
/// Orchestrator resource name.
pub const ORCH_RESOURCE_NAME: &str = "orchestrator.resource.name";
/// Orchestrator namespace.
pub const ORCH_NAMESPACE: &str = "orchestrator.namespace";
/// Container id.
pub const CONTAINER_ID: &str = "container.id";
/// Container name.
pub const CONTAINER_NAME: &str = "container.name";
/// Host name.
pub const HOST_NAME: &str = "host.name";
/// ECS `event.severity`: the numeric severity (alerts: see [`crate::Severity::ecs_number`]).
pub const EVENT_SEVERITY: &str = "event.severity";
/// Id of the rule an alert comes from.
pub const RULE_ID: &str = "rule.id";
/// Title of the rule an alert comes from.
pub const RULE_NAME: &str = "rule.name";
/// Level of the rule an alert comes from ([`crate::Severity`], lowercase).
pub const RULE_LEVEL: &str = "rule.level";
/// ATT&CK technique ids of an alert.
pub const THREAT_TECHNIQUE_ID: &str = "threat.technique.id";
/// Severity name of an alert made by another tool (read before [`RULE_LEVEL`]).
pub const ALERT_SEVERITY: &str = "alert.severity";
/// Stable id of an alert, shared by every record of it.
pub const ALERT_ID: &str = "alert.id";
/// Detections folded into an alert so far.
pub const ALERT_COUNT: &str = "alert.count";
