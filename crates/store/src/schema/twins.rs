//! The paths of an audit event's own copy (`k8s.audit`) that hold the same value as an ECS
//! field, indexed once.
//!
//! The normalizer keeps the whole audit event under `k8s.audit` and maps its main fields to ECS
//! ones: `k8s.audit.verb` is `event.action`, `k8s.audit.user.username` is `user.name`, and so
//! on ([`AUDIT_TWINS`]). Indexing both doubled a fifth of an audit event's keyword terms and
//! columns. So when every pair of an event holds the same value on both sides (or neither side
//! has one), [`holds`], `fields` leaves the `k8s.audit` side out and `_has` gets [`MARKER`]. A
//! query on `k8s.audit.verb` then asks `k8s.audit.verb`, or `event.action` where `_has` has
//! the marker (`filter.rs`); an aggregation over it reads `event.action`'s column for those
//! events (`aggregate`). An event where any pair differs is indexed whole, without the marker,
//! so an answer never depends on what the normalizer did: only on what the event holds.

use serde_json::{Map, Value};

use crowsnest_model::Event;

/// `(path in the audit copy, its ECS twin)`: the fields `k8s_audit.rs` of the normalizer maps.
///
/// Not `objectRef.namespace`: the normalizer also fills `orchestrator.namespace` from the name
/// of a namespace object itself. Not the `authorization.k8s.io/reason` annotation: it is often
/// empty (the Node authorizer's), where `event.reason` is absent, and such an event would be
/// indexed whole (on the benchmark corpus, a third of the audit events; the store was 0.6 MB
/// larger with the pair than without).
pub const AUDIT_TWINS: [(&str, &str); 17] = [
    ("k8s.audit.verb", "event.action"),
    ("k8s.audit.user.username", "user.name"),
    ("k8s.audit.user.uid", "user.id"),
    ("k8s.audit.user.groups", "user.roles"),
    ("k8s.audit.impersonatedUser.username", "user.effective.name"),
    ("k8s.audit.impersonatedUser.groups", "user.effective.roles"),
    ("k8s.audit.sourceIPs", "related.ip"),
    ("k8s.audit.userAgent", "user_agent.original"),
    ("k8s.audit.requestURI", "url.original"),
    ("k8s.audit.responseStatus.code", "http.response.status_code"),
    ("k8s.audit.objectRef.resource", "orchestrator.resource.type"),
    (
        "k8s.audit.objectRef.subresource",
        "orchestrator.resource.subresource",
    ),
    ("k8s.audit.objectRef.name", "orchestrator.resource.name"),
    ("k8s.audit.objectRef.apiGroup", "orchestrator.api_group"),
    ("k8s.audit.objectRef.apiVersion", "orchestrator.api_version"),
    ("k8s.audit.stageTimestamp", "event.end"),
    (
        "k8s.audit.annotations.authorization.k8s.io/decision",
        "kubernetes.audit.decision",
    ),
];

/// The `_has` value of an event indexed with its audit twins once.
pub(crate) const MARKER: &str = "k8s.audit twins";

/// The root of the audit copy.
const AUDIT: &str = "k8s.audit";

/// The ECS twin of `path`, when `path` is one of the audit copy's paths of [`AUDIT_TWINS`].
pub(crate) fn twin_of(path: &str) -> Option<&'static str> {
    AUDIT_TWINS
        .iter()
        .find(|(own, _)| *own == path)
        .map(|(_, twin)| *twin)
}

/// True when `path` is one of the audit copy's paths of [`AUDIT_TWINS`].
pub(crate) fn is_twin(path: &str) -> bool {
    twin_of(path).is_some()
}

/// The ECS twins of the audit paths at or below `path` (for `_exists_`).
pub(crate) fn twins_at_or_below(path: &str) -> impl Iterator<Item = &'static str> + '_ {
    AUDIT_TWINS.iter().filter_map(move |(own, twin)| {
        own.strip_prefix(path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            .then_some(*twin)
    })
}

/// True when `event` has an audit copy and each pair of [`AUDIT_TWINS`] holds the same value
/// on both sides, or no leaf on either.
pub(crate) fn holds(event: &Event) -> bool {
    let root = event.as_map();
    // A dotted top-level key (`{"user.name": ..}` beside `{"user": {"name": ..}}`) would give
    // a path two values in the index and one here: such an event is indexed whole. Normalized
    // events nest their keys; a generic NDJSON event may not.
    if root.keys().any(|key| key.contains('.')) {
        return false;
    }
    let Some(Value::Object(audit)) = at(root, AUDIT) else {
        return false;
    };
    AUDIT_TWINS.iter().all(|(own, twin)| {
        let own = own
            .strip_prefix(AUDIT)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| at(audit, rest));
        match (own, at(root, twin)) {
            (Some(a), Some(b)) if a == b => true,
            (a, b) => !a.is_some_and(has_leaf) && !b.is_some_and(has_leaf),
        }
    })
}

/// The value at dotted `path` below `map`. A key may hold dots (annotation keys do): the path
/// is split at its first dot, then at later ones, and last taken whole. (Splitting first finds
/// the nested objects of a normalized event in one lookup per level; this runs for every
/// audit event.)
fn at<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut from = 0;
    while let Some(dot) = path[from..].find('.') {
        let split = from + dot;
        if let Some(Value::Object(inner)) = map.get(&path[..split]) {
            if let Some(found) = at(inner, &path[split + 1..]) {
                return Some(found);
            }
        }
        from = split + 1;
    }
    map.get(path)
}

/// True when `value` holds a leaf that `fields` would index (nulls and empty arrays do not).
fn has_leaf(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => items.iter().any(has_leaf),
        Value::Object(map) => map.values().any(has_leaf),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> Event {
        serde_json::from_value(value).expect("object")
    }

    #[test]
    fn twins_hold_when_each_pair_agrees_or_is_absent() {
        let base = json!({
            "event": {"action": "get", "reason": "RBAC: allowed"},
            "user": {"name": "alice", "roles": ["dev"]},
            "kubernetes": {"audit": {"decision": "allow"}},
            "related": {"ip": []},
            "k8s": {"audit": {
                "verb": "get",
                "user": {"username": "alice", "groups": ["dev"]},
                "annotations": {
                    "authorization.k8s.io/decision": "allow",
                    "authorization.k8s.io/reason": "RBAC: allowed"
                }
            }}
        });
        assert!(holds(&event(base.clone())));

        let mut differs = base.clone();
        differs["user"]["name"] = json!("bob");
        assert!(!holds(&event(differs)));

        // An ECS value without its audit side (or the reverse) is not a twin.
        let mut extra = base.clone();
        extra["url"] = json!({"original": "/api"});
        assert!(!holds(&event(extra)));
        let mut missing = base.clone();
        missing["kubernetes"]["audit"]
            .as_object_mut()
            .expect("object")
            .remove("decision");
        assert!(!holds(&event(missing)));

        // A dotted top-level key could hold a second value of a twin's path.
        let mut dotted = base.clone();
        dotted["user.name"] = json!("mallory");
        assert!(!holds(&event(dotted)));

        // Without an audit copy there is nothing to leave out.
        assert!(!holds(&event(json!({"event": {"action": "get"}}))));
    }

    #[test]
    fn paths_and_twins() {
        assert_eq!(twin_of("k8s.audit.verb"), Some("event.action"));
        assert_eq!(twin_of("k8s.audit"), None);
        assert_eq!(twin_of("event.action"), None);
        let below_user: Vec<_> = twins_at_or_below("k8s.audit.user").collect();
        assert_eq!(below_user, ["user.name", "user.id", "user.roles"]);
        assert_eq!(twins_at_or_below("k8s.audit").count(), AUDIT_TWINS.len());
        assert_eq!(twins_at_or_below("k8s.aud").count(), 0);
        let annotations = json!({"annotations": {"authorization.k8s.io/decision": "allow"}});
        let map = annotations.as_object().expect("object");
        assert_eq!(
            at(map, "annotations.authorization.k8s.io/decision"),
            Some(&json!("allow"))
        );
    }
}
