//! Kubernetes API-server audit events (`audit.k8s.io/v1` `Event`, stage `ResponseComplete`),
//! shaped like the ones kube-apiserver v1.29 sends to an audit webhook.
//!
//! A [`Req`] describes one API request (who, which verb on which object, the outcome);
//! [`build`] turns it into the event: `auditID`, `requestURI` derived from the object
//! reference the way the apiserver routes it, `user` (with the bound-pod `extra` that
//! in-pod service-account tokens carry), `sourceIPs`, `userAgent`, `objectRef`,
//! `responseStatus`, both timestamps and the authorizer's `annotations`.
//! The benign request mix is in `activity.rs`, the attacks in `attacks.rs`.

use std::fmt::Write as _;

use rand::Rng;
use serde_json::{json, Map, Value};

use super::actors::Actor;
use super::cluster::Cluster;
use super::text::{self, Stamp};
use crate::rng::Rand;

/// A Kubernetes API resource.
#[derive(Debug)]
pub(super) struct Res {
    /// Plural resource name (`pods`).
    pub(super) name: &'static str,
    /// API group (`""` for the core group).
    pub(super) group: &'static str,
    /// API version.
    pub(super) version: &'static str,
}

macro_rules! resource {
    ($const:ident, $name:literal, $group:literal, $version:literal) => {
        #[doc = concat!("`", $name, "`")]
        pub(super) const $const: Res = Res {
            name: $name,
            group: $group,
            version: $version,
        };
    };
}

resource!(PODS, "pods", "", "v1");
resource!(NODES, "nodes", "", "v1");
resource!(SERVICES, "services", "", "v1");
resource!(ENDPOINTS, "endpoints", "", "v1");
resource!(CONFIGMAPS, "configmaps", "", "v1");
resource!(SECRETS, "secrets", "", "v1");
resource!(EVENTS, "events", "", "v1");
resource!(NAMESPACES, "namespaces", "", "v1");
resource!(PVCS, "persistentvolumeclaims", "", "v1");
resource!(LEASES, "leases", "coordination.k8s.io", "v1");
resource!(ENDPOINTSLICES, "endpointslices", "discovery.k8s.io", "v1");
resource!(REPLICASETS, "replicasets", "apps", "v1");
resource!(DEPLOYMENTS, "deployments", "apps", "v1");
resource!(DAEMONSETS, "daemonsets", "apps", "v1");
resource!(STATEFULSETS, "statefulsets", "apps", "v1");
resource!(CONTROLLERREVISIONS, "controllerrevisions", "apps", "v1");
resource!(HPAS, "horizontalpodautoscalers", "autoscaling", "v2");
resource!(
    ROLEBINDINGS,
    "rolebindings",
    "rbac.authorization.k8s.io",
    "v1"
);
resource!(
    CLUSTERROLEBINDINGS,
    "clusterrolebindings",
    "rbac.authorization.k8s.io",
    "v1"
);

/// What a request addresses.
#[derive(Debug)]
pub(super) enum Target<'a> {
    /// An API object or collection.
    Object {
        /// The resource.
        res: &'static Res,
        /// Namespace (`None` for cluster-scoped resources and cluster-wide lists).
        namespace: Option<&'a str>,
        /// Object name (`None` for list/watch/create).
        name: Option<&'a str>,
        /// Subresource (`status`, `exec`, `log`, `binding`, ...).
        subresource: Option<&'static str>,
    },
    /// A non-resource URL (`/livez`, `/readyz`, `/version`).
    Path(&'static str),
}

/// One API request and its outcome.
#[derive(Debug)]
pub(super) struct Req<'a> {
    /// Who made it.
    pub(super) actor: &'a Actor,
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub(super) verb: &'static str,
    /// What it addressed.
    pub(super) target: Target<'a>,
    /// The URL query (without `?`), or empty.
    pub(super) query: &'a str,
    /// HTTP status of the response.
    pub(super) code: u16,
    /// The request body, logged at level `RequestResponse` for creates.
    pub(super) request_object: Option<Value>,
    /// Source address instead of the actor's usual one.
    pub(super) source_ip: Option<&'a str>,
    /// User agent instead of the actor's usual one.
    pub(super) user_agent: Option<&'a str>,
}

impl<'a> Req<'a> {
    /// A request on an object or collection with the actor's usual address and agent.
    pub(super) fn object(
        actor: &'a Actor,
        verb: &'static str,
        res: &'static Res,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Self {
        Self {
            actor,
            verb,
            target: Target::Object {
                res,
                namespace,
                name,
                subresource: None,
            },
            query: "",
            code: default_code(verb),
            request_object: None,
            source_ip: None,
            user_agent: None,
        }
    }

    /// The same request on a subresource.
    pub(super) fn sub(mut self, subresource: &'static str) -> Self {
        if let Target::Object {
            subresource: slot, ..
        } = &mut self.target
        {
            *slot = Some(subresource);
        }
        self
    }

    /// The same request with a URL query.
    pub(super) fn query(mut self, query: &'a str) -> Self {
        self.query = query;
        self
    }

    /// The same request with another response code.
    pub(super) fn code(mut self, code: u16) -> Self {
        self.code = code;
        self
    }
}

/// The usual success code of a verb.
pub(super) fn default_code(verb: &str) -> u16 {
    match verb {
        "create" => 201,
        _ => 200,
    }
}

/// The `objectRef.apiVersion` path prefix of a resource.
fn api_prefix(res: &Res, out: &mut String) {
    if res.group.is_empty() {
        out.push_str("/api/");
        out.push_str(res.version);
    } else {
        let _ = write!(out, "/apis/{}/{}", res.group, res.version);
    }
}

/// The cluster's etcd revision at a time: it only grows, about 20 writes a second.
pub(super) fn resource_version(micros: i64) -> u64 {
    4_000_000 + (micros / 50_000).rem_euclid(1 << 40) as u64
}

/// Builds the audit event for `req`, received at `micros`.
pub(super) fn build(rng: &mut Rand, cluster: &Cluster, req: Req<'_>, micros: i64) -> Value {
    let received = Stamp::from_micros(micros).rfc3339();
    let latency_us: i64 = match req.verb {
        // A watch is complete when the server closes it: after its `timeoutSeconds`.
        "watch" => rng.gen_range(300_000_000..600_000_000),
        "create" if req.code == 101 => rng.gen_range(5_000_000..900_000_000),
        "list" => rng.gen_range(2_000..60_000),
        _ => rng.gen_range(700..9_000),
    };
    let stage = Stamp::from_micros(micros.saturating_add(latency_us)).rfc3339();

    let mut uri = String::with_capacity(160);
    let object_ref = match &req.target {
        Target::Path(path) => {
            uri.push_str(path);
            None
        }
        Target::Object {
            res,
            namespace,
            name,
            subresource,
        } => {
            api_prefix(res, &mut uri);
            let mut object_ref = Map::with_capacity(7);
            object_ref.insert("resource".into(), Value::from(res.name));
            if let Some(namespace) = namespace {
                let _ = write!(uri, "/namespaces/{namespace}");
                object_ref.insert("namespace".into(), Value::from(*namespace));
            }
            let _ = write!(uri, "/{}", res.name);
            if let Some(name) = name {
                let _ = write!(uri, "/{name}");
                object_ref.insert("name".into(), Value::from(*name));
            }
            if !res.group.is_empty() {
                object_ref.insert("apiGroup".into(), Value::from(res.group));
            }
            object_ref.insert("apiVersion".into(), Value::from(res.version));
            if let Some(subresource) = subresource {
                let _ = write!(uri, "/{subresource}");
                object_ref.insert("subresource".into(), Value::from(*subresource));
            }
            if matches!(req.verb, "update" | "patch") {
                object_ref.insert(
                    "resourceVersion".into(),
                    Value::from(resource_version(micros).to_string()),
                );
            }
            Some(Value::Object(object_ref))
        }
    };
    if !req.query.is_empty() {
        uri.push('?');
        uri.push_str(req.query);
    }

    let actor = req.actor;
    let mut user = Map::with_capacity(4);
    user.insert("username".into(), Value::from(actor.username));
    if !actor.uid.is_empty() {
        user.insert("uid".into(), Value::from(actor.uid));
    }
    let groups = actor.groups.iter().map(|g| Value::from(*g)).collect();
    user.insert("groups".into(), Value::Array(groups));
    let mut source_ip = req.source_ip.unwrap_or(actor.source_ip);
    if let Some((namespace, workload)) = actor.bound_pod {
        let pod = cluster.pod_of(namespace, workload);
        if source_ip.is_empty() {
            source_ip = &pod.ip;
        }
        let extra = text::object([
            (
                "authentication.kubernetes.io/pod-name",
                Value::Array(vec![pod.name.as_str().into()]),
            ),
            (
                "authentication.kubernetes.io/pod-uid",
                Value::Array(vec![pod.uid.as_str().into()]),
            ),
        ]);
        user.insert("extra".into(), extra);
    }

    let forbidden = req.code == 403;
    let response_status = response_status(&req, forbidden);
    let mut event = Map::with_capacity(16);
    event.insert("kind".into(), Value::from("Event"));
    event.insert("apiVersion".into(), Value::from("audit.k8s.io/v1"));
    // As a typical audit policy does: creates with request and response, other writes with
    // their request body, exec sessions at `Request`, the rest (reads) as metadata only.
    let level = match (&req.request_object, req.verb, req.code) {
        (Some(_), "create", _) => "RequestResponse",
        (Some(_), _, _) | (None, _, 101) => "Request",
        (None, _, _) => "Metadata",
    };
    event.insert("level".into(), Value::from(level));
    event.insert("auditID".into(), Value::from(text::uuid(rng)));
    event.insert("stage".into(), Value::from("ResponseComplete"));
    event.insert("requestURI".into(), Value::from(uri));
    event.insert("verb".into(), Value::from(req.verb));
    event.insert("user".into(), Value::Object(user));
    event.insert(
        "sourceIPs".into(),
        Value::Array(vec![Value::from(source_ip)]),
    );
    let user_agent = req.user_agent.unwrap_or(actor.user_agent);
    event.insert("userAgent".into(), Value::from(user_agent));
    if let Some(object_ref) = object_ref {
        event.insert("objectRef".into(), object_ref);
    }
    event.insert("responseStatus".into(), response_status);
    if let Some(request_object) = req.request_object {
        event.insert("requestObject".into(), request_object);
    }
    event.insert("requestReceivedTimestamp".into(), Value::from(received));
    event.insert("stageTimestamp".into(), Value::from(stage));
    let (decision, reason) = if forbidden {
        ("forbid", "")
    } else {
        ("allow", actor.reason)
    };
    let mut annotations = Map::with_capacity(3);
    annotations.insert(
        "authorization.k8s.io/decision".into(),
        Value::from(decision),
    );
    annotations.insert("authorization.k8s.io/reason".into(), Value::from(reason));
    if req.verb == "create" && req.code == 201 {
        if let Target::Object {
            res,
            namespace: Some(namespace),
            ..
        } = &req.target
        {
            if res.name == "pods" {
                let policy = if *namespace == "kube-system" {
                    "privileged"
                } else {
                    "baseline"
                };
                annotations.insert(
                    "pod-security.kubernetes.io/enforce-policy".into(),
                    Value::from(format!("{policy}:latest")),
                );
            }
        }
    }
    event.insert("annotations".into(), Value::Object(annotations));
    Value::Object(event)
}

/// `responseStatus`: just the code on success, a `Status` with reason and message on failure.
fn response_status(req: &Req<'_>, forbidden: bool) -> Value {
    if req.code < 400 {
        return text::object([
            ("metadata", Value::Object(Map::new())),
            ("code", req.code.into()),
        ]);
    }
    let (res, namespace, name) = match &req.target {
        Target::Object {
            res,
            namespace,
            name,
            ..
        } => (Some(*res), *namespace, *name),
        Target::Path(_) => (None, None, None),
    };
    let resource = res.map_or("", |r| r.name);
    let group = res.map_or("", |r| r.group);
    let message = match (forbidden, req.code) {
        (true, _) => {
            let scope = match namespace {
                Some(namespace) => format!("in the namespace \"{namespace}\""),
                None => "at the cluster scope".to_string(),
            };
            let target = match name {
                Some(name) => format!("{resource} \"{name}\""),
                None => resource.to_string(),
            };
            format!(
                "{target} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{group}\" {scope}",
                req.actor.username, req.verb
            )
        }
        (false, 404) => format!("{resource} \"{}\" not found", name.unwrap_or_default()),
        (false, 409) => format!(
            "Operation cannot be fulfilled on {resource} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
            name.unwrap_or_default()
        ),
        (false, _) => "Internal error occurred".to_string(),
    };
    let reason = match req.code {
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        _ => "InternalError",
    };
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name.unwrap_or_default(), "kind": resource},
        "code": req.code,
    })
}
