//! SigmaHQ's Kubernetes audit rules, unchanged, over Falco's recorded audit traces, through our
//! normalizer and pipeline (bare audit paths, `hostPath`, `capabilities`, `apiGroup`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crowsnest_detect::{Detector, RuleSet};
use crowsnest_normalize::{decode_ndjson, Limits};

fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/"
    ))
    .join(rel)
}

fn fired(detector: &mut Detector, trace: &str) -> BTreeSet<String> {
    let body = std::fs::read(testdata("k8s-audit/falco-traces").join(trace)).expect("trace");
    let decoded = decode_ndjson(&body, None, &Limits::default());
    assert!(!decoded.events.is_empty(), "{trace} decoded to no events");
    decoded
        .events
        .iter()
        .flat_map(|e| detector.process(e))
        .map(|d| d.title)
        .collect()
}

#[test]
fn sigmahq_kubernetes_rules_fire_on_falco_traces() {
    let (rules, report) = RuleSet::load(
        &[testdata("sigma/sigmahq/rules/application/kubernetes")],
        false,
    );
    assert_eq!(report.loaded_files(), report.files.len());
    assert_eq!(rules.len(), 16);
    let mut detector = Detector::new(rules);
    let cases: &[(&str, &str, bool)] = &[
        (
            "create_nginx_pod_sensitive_mount.json",
            "Container With A hostPath Mount Created",
            true,
        ),
        (
            "create_nginx_pod_unprivileged.json",
            "Container With A hostPath Mount Created",
            false,
        ),
        (
            "exec_pod.json",
            "Potential Remote Command Execution In Pod Container",
            true,
        ),
        (
            "create_pod_kube_system_namespace.json",
            "Creation Of Pod In System Namespace",
            true,
        ),
        (
            "create_nginx_pod_unprivileged.json",
            "Creation Of Pod In System Namespace",
            false,
        ),
        (
            "create_serviceaccount.json",
            "New Kubernetes Service Account Created",
            true,
        ),
        (
            "delete_secret.json",
            "Kubernetes Secrets Modified or Deleted",
            true,
        ),
        (
            "delete_deployment.json",
            "Deployment Deleted From Kubernetes Cluster",
            true,
        ),
        (
            "create_deployment.json",
            "Deployment Deleted From Kubernetes Cluster",
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (trace, title, expected) in cases {
        let got = fired(&mut detector, trace);
        println!("{trace}: {got:?}");
        if got.contains(*title) != *expected {
            failures.push(format!(
                "{trace}: expected `{title}` fired={expected}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn kubernetes_rules_never_see_other_datasets_and_windows_rules_never_see_audit() {
    // A Linux process rule must not fire on an audit event that carries the same text.
    let yaml = "title: Curl\nid: curl-1\nlogsource: {product: linux, category: process_creation}\ndetection:\n  sel:\n    CommandLine|contains: curl\n  condition: sel\n---\ntitle: Curl anywhere\nid: curl-kw\nlogsource: {product: windows}\ndetection:\n  keywords: [curl]\n  condition: keywords\n";
    let (rules, _) = RuleSet::from_yaml("t.yml", yaml);
    let mut detector = Detector::new(rules);
    let audit: crowsnest_model::Event = serde_json::from_value(serde_json::json!({
        "@timestamp": "2024-01-01T00:00:00Z",
        "event": {"dataset": "kubernetes.audit", "module": "kubernetes"},
        "process": {"command_line": "curl http://x"},
        "k8s": {"audit": {"verb": "create", "requestURI": "curl"}}
    }))
    .expect("event");
    assert!(detector.process(&audit).is_empty());
    let proc: crowsnest_model::Event = serde_json::from_value(serde_json::json!({
        "@timestamp": "2024-01-01T00:00:00Z",
        "event": {"dataset": "auditd.process", "module": "auditd", "category": ["process"], "type": ["start"]},
        "process": {"command_line": "curl http://x", "executable": "/usr/bin/curl"}
    }))
    .expect("event");
    let hits: Vec<String> = detector
        .process(&proc)
        .into_iter()
        .map(|d| d.rule_id)
        .collect();
    assert_eq!(hits, vec!["curl-1"]);
}
