//! The matcher against search on real event shapes: Kubernetes audit events (Falco's k8s_audit
//! regression traces and a sample of a real cluster's activity) and Falco alerts, from
//! `shared/testdata` (read in place, not copied). Annotation keys with dots, `output_fields`
//! keys with dots, arrays of objects (`containers`, `volumes`), numbers as codes: the shapes
//! production filters meet.

mod common;

use common::*;
use crowsnest_model::Event;
use crowsnest_store::{Matcher, StoreConfig};
use serde_json::{json, Value};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata");

fn lines_of(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{TESTDATA}/{path}"))
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// An audit line shaped like a normalized event: ECS fields, the audit event under
/// `k8s.audit`, the raw line as `event.original`.
fn audit_event(line: &str) -> Option<Value> {
    let audit: Value = serde_json::from_str(line).ok()?;
    let ts = audit
        .get("requestReceivedTimestamp")
        .or_else(|| audit.get("stageTimestamp"))?
        .clone();
    let verb = audit.get("verb")?.as_str()?.to_string();
    let resource = audit
        .pointer("/objectRef/resource")
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(json!({
        "@timestamp": ts,
        "message": format!("{} {verb} {resource}", audit.pointer("/user/username").and_then(Value::as_str).unwrap_or("-")),
        "event": {"original": line, "module": "kubernetes", "dataset": "kubernetes.audit", "action": verb},
        "user": {"name": audit.pointer("/user/username").cloned().unwrap_or(Value::Null)},
        "k8s": {"audit": audit},
    }))
}

/// A Falco alert (bare or wrapped as `{"source": .., "alert": ..}`).
fn falco_event(line: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(line).ok()?;
    let alert = value.get("alert").cloned().unwrap_or(value);
    Some(json!({
        "@timestamp": alert.get("time")?.clone(),
        "message": alert.get("output")?.clone(),
        "event": {"original": line, "module": "falco", "kind": "alert"},
        "falco": alert,
    }))
}

fn real_events() -> Vec<Value> {
    let mut events = Vec::new();
    let traces = std::fs::read_dir(format!("{TESTDATA}/k8s-audit/falco-traces")).expect("traces");
    let mut names: Vec<String> = traces
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        events.extend(
            lines_of(&format!("k8s-audit/falco-traces/{name}"))
                .iter()
                .filter_map(|l| audit_event(l)),
        );
    }
    events.extend(
        lines_of("k8s-audit/benign-hkerma/audit-sample.jsonl")
            .iter()
            .take(600)
            .filter_map(|l| audit_event(l)),
    );
    for file in [
        "falco/falco-website-alerts.jsonl",
        "falco/falcosidekick-examples.jsonl",
        "falco/falco-test-output-single_rule_with_cat_write.jsonl",
    ] {
        events.extend(lines_of(file).iter().filter_map(|l| falco_event(l)));
    }
    // The store refuses events without a parseable time (one Falco sample says `...Z+2`).
    events.retain(|e| ev(e.clone()).timestamp().is_some());
    for (seq, event) in events.iter_mut().enumerate() {
        event["seq"] = json!(seq);
    }
    events
}

const QUERIES: [&str; 44] = [
    "k8s.audit.verb:create",
    "k8s.audit.verb:(get OR list OR watch)",
    "event.action:(delete OR patch) AND k8s.audit.objectRef.namespace:*",
    "k8s.audit.annotations.authorization.k8s.io/decision:allow",
    "k8s.audit.annotations.authorization.k8s.io/reason:*",
    "k8s.audit.annotations:*",
    "k8s.audit.objectRef.subresource:(exec OR attach)",
    "k8s.audit.user.groups:system\\:masters",
    "k8s.audit.user.username:system\\:serviceaccount\\:*",
    "user.name:system\\:node\\:*",
    "k8s.audit.responseStatus.code:>=400",
    "k8s.audit.responseStatus.code:[200 TO 299]",
    "k8s.audit.responseStatus.code:403",
    "k8s.audit.sourceIPs:192.168.99.1",
    "k8s.audit.requestObject.spec.containers.securityContext.privileged:true",
    "k8s.audit.requestObject.spec.containers.image:*nginx*",
    "k8s.audit.requestObject.spec.volumes.hostPath.path:/etc",
    "_exists_:k8s.audit.requestObject.spec.volumes.hostPath",
    "k8s.audit.requestObject.spec.hostNetwork:true",
    "k8s.audit.requestObject.rules.verbs:\"*\"",
    "k8s.audit.requestObject.roleRef.name:cluster-admin",
    "k8s.audit.requestURI:*exec*",
    "k8s.audit.objectRef.namespace:kube-system AND NOT k8s.audit.verb:get",
    "k8s.audit.stageTimestamp:>=2018-10-26T13:42:46Z",
    "k8s.audit.metadata.creationTimestamp:*",
    "@timestamp:[2023-01-27T18:28:08.3Z TO 2023-01-27T18:28:10.5Z}",
    "@timestamp:<2019-01-01T00:00:00Z",
    "nginx",
    "\"nginx deployment\"",
    "configmaps",
    "\"kube-system\"",
    "event.original:privileged",
    "event.original:\"cluster admin\"",
    "message:watch*",
    "message:\"minikube-user create\"",
    "falco.priority:Warning",
    "falco.rule:*Shell* OR falco.rule:*shell*",
    "falco.output_fields.proc.cmdline:\"cat /dev/null\"",
    "falco.output_fields.ka.verb:patch",
    "falco.output_fields.evt.time:>1500000000000000000",
    "falco.tags:k8s",
    "_exists_:falco.output_fields.k8s",
    "event.kind:alert AND NOT falco.source:syscall",
    "Error OR Critical",
];

#[test]
fn matcher_agrees_with_search_on_real_events() {
    let events_json = real_events();
    assert!(events_json.len() > 600, "loaded {}", events_json.len());
    let (_dir, store) = store_with(StoreConfig::default());
    fill(&store, &events_json);
    let events: Vec<Event> = events_json.iter().map(|e| ev(e.clone())).collect();

    let mut failures = Vec::new();
    let mut selective = 0;
    for text in QUERIES {
        let filter = q(text).filter;
        let matcher = Matcher::new(&filter).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut got: Vec<u64> = events
            .iter()
            .filter(|e| matcher.matches(e))
            .map(|e| e.get("seq").and_then(Value::as_u64).expect("seq"))
            .collect();
        got.sort_unstable();
        let expected = seqs(&store, fq(filter.clone()));
        if !expected.is_empty() && expected.len() < events.len() {
            selective += 1;
        }
        if got != expected {
            failures.push(format!(
                "{text}\n  search:  {expected:?}\n  matcher: {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        selective >= 35,
        "only {selective} queries select a proper subset"
    );
}
