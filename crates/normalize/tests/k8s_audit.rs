//! Native Kubernetes audit events: Falco's recorded minikube traces, the benign hkerma sample,
//! webhook bodies (`EventList`), and golden outputs of ours.

mod common;

use std::collections::BTreeMap;

use common::{assert_golden, non_blank_lines, read_testdata, snapshot, testdata};
use crowsnest_normalize::{decode_k8s_audit, decode_ndjson, DecodeError, Limits};
use serde_json::{json, Value};

const TRACES: &str = "k8s-audit/falco-traces";
/// The one trace that is deliberately not an audit event (`{"kind": 0}`).
const MALFORMED_TRACE: &str = "fal_01_003.json";

fn trace(name: &str) -> Vec<u8> {
    read_testdata(&format!("{TRACES}/{name}"))
}

fn trace_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(testdata(TRACES))
        .expect("falco traces present")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_falco_trace_decodes_without_errors() {
    let names = trace_names();
    assert_eq!(names.len(), 47, "the README promises 47 trace files");
    let mut events_seen = 0;
    for name in names.iter().filter(|n| *n != MALFORMED_TRACE) {
        let body = trace(name);
        let decoded = decode_ndjson(&body, None, &Limits::default());
        assert!(decoded.errors.is_empty(), "{name}: {:?}", decoded.errors);
        assert_eq!(decoded.events.len(), non_blank_lines(&body), "{name}");
        let lines = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
        for (event, line) in decoded.events.iter().zip(lines) {
            let input: Value = serde_json::from_slice(line).expect("trace line is JSON");
            assert_eq!(
                event.get_str("event.dataset"),
                Some("kubernetes.audit"),
                "{name}"
            );
            assert_eq!(event.get_str("event.module"), Some("kubernetes"), "{name}");
            assert_eq!(
                event.get_str("event.original").map(str::as_bytes),
                Some(line),
                "{name}"
            );
            assert_eq!(
                event.get("k8s.audit"),
                Some(&input),
                "{name}: full audit event kept"
            );
            assert_eq!(event.get("event.action"), input.get("verb"), "{name}");
            assert_eq!(
                event.get("orchestrator.resource.type"),
                input.pointer("/objectRef/resource"),
                "{name}"
            );
            assert_eq!(
                event.get("user.name"),
                input.pointer("/user/username"),
                "{name}"
            );
            assert_eq!(
                event.get("http.response.status_code"),
                input.pointer("/responseStatus/code"),
                "{name}"
            );
            assert!(event.get_str("@timestamp").is_some(), "{name}: has a time");
            events_seen += 1;
        }
        // Single-event traces are also valid webhook bodies, with the same result.
        if decoded.events.len() == 1 {
            let webhook = decode_k8s_audit(&body, &Limits::default()).expect("an audit Event");
            assert_eq!(webhook.events, decoded.events, "{name}");
        }
    }
    assert_eq!(events_seen, 51, "the README counts 51 events");
}

#[test]
fn exec_trace_maps_verb_subresource_user_namespace() {
    let decoded = decode_k8s_audit(&trace("exec_pod.json"), &Limits::default()).expect("event");
    assert!(decoded.errors.is_empty());
    let event = &decoded.events[0];
    let expect = [
        ("@timestamp", "2018-10-26T13:38:34.867116Z"),
        ("event.end", "2018-10-26T13:38:34.902914Z"),
        ("event.action", "create"),
        ("event.outcome", "success"),
        ("user.name", "minikube-user"),
        ("source.ip", "192.168.99.1"),
        ("orchestrator.type", "kubernetes"),
        ("orchestrator.resource.type", "pods"),
        ("orchestrator.resource.subresource", "exec"),
        ("orchestrator.resource.name", "nginx-deployment-7998647bdf-phvq7"),
        ("orchestrator.namespace", "default"),
        ("orchestrator.api_version", "v1"),
        ("kubernetes.namespace", "default"),
        ("kubernetes.pod.name", "nginx-deployment-7998647bdf-phvq7"),
        ("kubernetes.audit.decision", "allow"),
        (
            "message",
            "minikube-user create pods/exec default/nginx-deployment-7998647bdf-phvq7 -> 101 (allow)",
        ),
    ];
    for (field, value) in expect {
        assert_eq!(event.get_str(field), Some(value), "{field}");
    }
    assert_eq!(event.get("event.type"), Some(&json!(["creation"])));
    assert_eq!(event.get("event.category"), Some(&json!(["api"])));
    assert_eq!(
        event.get("user.roles"),
        Some(&json!(["system:masters", "system:authenticated"]))
    );
    assert_eq!(event.get("http.response.status_code"), Some(&json!(101)));
    // The reason annotation is empty in this trace: no empty `event.reason`.
    assert_eq!(event.get("event.reason"), None);
    assert_eq!(
        event.get_str("url.original"),
        Some("/api/v1/namespaces/default/pods/nginx-deployment-7998647bdf-phvq7/exec?command=bash&container=nginx1&container=nginx1&stdin=true&stdout=true&tty=true")
    );
}

#[test]
fn rbac_and_v1_traces_map_iam_category_group_and_user_agent() {
    let binding = decode_k8s_audit(&trace("create_clusterrolebinding.json"), &Limits::default())
        .expect("event");
    let event = &binding.events[0];
    assert_eq!(event.get("event.category"), Some(&json!(["api", "iam"])));
    assert_eq!(
        event.get_str("orchestrator.api_group"),
        Some("rbac.authorization.k8s.io")
    );
    assert_eq!(
        event.get_str("orchestrator.resource.name"),
        Some("some-reader-binding")
    );
    assert_eq!(event.get("kubernetes.namespace"), None, "cluster-scoped");

    let secret = decode_k8s_audit(&trace("create_secret.json"), &Limits::default()).expect("event");
    let event = &secret.events[0];
    assert_eq!(
        event.get_str("user_agent.original"),
        Some("kubectl/v1.17.3 (darwin/amd64) kubernetes/06ad960")
    );
    assert_eq!(event.get_str("source.ip"), Some("192.168.64.1"));
    assert_eq!(event.get_str("kubernetes.pod.name"), None, "not a pod");

    let deleted =
        decode_k8s_audit(&trace("delete_deployment.json"), &Limits::default()).expect("event");
    assert_eq!(
        deleted.events[0].get("event.type"),
        Some(&json!(["deletion"]))
    );
    let patched = decode_k8s_audit(
        &trace("modify_cluster_role_node_problem_detector.json"),
        &Limits::default(),
    )
    .expect("event");
    assert_eq!(
        patched.events[0].get("event.type"),
        Some(&json!(["change"]))
    );
}

#[test]
fn malformed_trace_is_rejected_by_the_webhook_decoder() {
    let body = trace(MALFORMED_TRACE);
    let error = decode_k8s_audit(&body, &Limits::default()).expect_err("`kind: 0` is no Event");
    assert_eq!(
        error,
        DecodeError::NotAuditEvent {
            found: "`kind` 0".to_string()
        }
    );
    assert!(error
        .to_string()
        .starts_with("expected an audit.k8s.io `Event` or `EventList`"));
    let forced = decode_ndjson(&body, Some("kubernetes.audit"), &Limits::default());
    assert!(forced.events.is_empty());
    assert_eq!(forced.errors.len(), 1);
    assert_eq!(forced.errors[0].line, 1);
}

#[test]
fn benign_sample_decodes_with_namespaces_from_request_paths() {
    let body = read_testdata("k8s-audit/benign-hkerma/audit-sample.jsonl");
    let lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let sample = lines.join(&b'\n');
    let decoded = decode_ndjson(&sample, None, &Limits::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors.first());
    assert_eq!(decoded.events.len(), 4000, "the README counts 4,000 events");

    let mut expected_verbs = BTreeMap::new();
    let mut expected_failures = 0;
    for line in &lines {
        let input: Value = serde_json::from_slice(line).expect("sample line is JSON");
        let verb = input["verb"].as_str().expect("verb").to_string();
        *expected_verbs.entry(verb).or_insert(0) += 1;
        if input
            .pointer("/responseStatus/code")
            .and_then(Value::as_i64)
            >= Some(400)
        {
            expected_failures += 1;
        }
    }
    let mut verbs = BTreeMap::new();
    let mut failures = 0;
    for event in &decoded.events {
        assert_eq!(event.get_str("event.dataset"), Some("kubernetes.audit"));
        let verb = event.get_str("event.action").expect("action").to_string();
        *verbs.entry(verb).or_insert(0) += 1;
        if event.get_str("event.outcome") == Some("failure") {
            failures += 1;
        }
    }
    assert_eq!(verbs, expected_verbs);
    assert_eq!(failures, expected_failures);
    assert!(failures > 0, "the sample holds 403s");

    // Line 1: a kubelet's forbidden watch; the namespace only appears in the request path.
    let first = &decoded.events[0];
    assert_eq!(
        first.get_str("user.name"),
        Some("system:node:k8s-node-1-perfspec")
    );
    assert_eq!(first.get_str("event.outcome"), Some("failure"));
    assert_eq!(first.get_str("kubernetes.namespace"), Some("kube-flannel"));
    assert_eq!(
        first.get_str("orchestrator.resource.name"),
        Some("kube-flannel-cfg")
    );
    assert_eq!(
        first.get_str("@timestamp"),
        Some("2023-01-27T18:28:08.129781Z")
    );
    // Line 3 lists a cluster-wide collection: no namespace invented.
    assert_eq!(decoded.events[2].get("kubernetes.namespace"), None);
}

#[test]
fn golden_outputs_of_native_events() {
    for case in [
        "exec_pod",
        "create_clusterrolebinding",
        "create_secret",
        "create_nginx_pod_privileged",
        "anonymous_creates_namespace_foo",
    ] {
        let decoded = decode_ndjson(&trace(&format!("{case}.json")), None, &Limits::default());
        assert_golden(
            &format!("k8s_audit/{case}.expected.json"),
            &snapshot(&decoded, true),
        );
    }
    let body = read_testdata("k8s-audit/benign-hkerma/audit-sample.jsonl");
    let head: Vec<&[u8]> = body.split(|&b| b == b'\n').take(5).collect();
    let decoded = decode_ndjson(&head.join(&b'\n'), None, &Limits::default());
    assert_golden(
        "k8s_audit/hkerma_head.expected.json",
        &snapshot(&decoded, true),
    );
}

/// An `EventList` as the webhook posts it, built from trace lines plus two bad items.
fn event_list(items: &[&str]) -> String {
    format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
        items.join(", ")
    )
}

#[test]
fn event_list_decodes_good_items_and_names_bad_ones() {
    let exec = String::from_utf8(trace("exec_pod.json")).expect("utf-8");
    let secret = String::from_utf8(trace("create_secret.json")).expect("utf-8");
    let exec = exec.trim();
    let secret = secret.trim();
    let wrong_verb = r#"{"auditID":"x","verb":42,"user":{"username":"bob"}}"#;
    let wrong_group = r#"{"auditID":"y","verb":"get","user":{"groups":["a", 7]}}"#;
    let body = event_list(&[exec, "[1,2]", wrong_verb, secret, wrong_group]);
    let decoded = decode_k8s_audit(body.as_bytes(), &Limits::default()).expect("a list");

    assert_eq!(decoded.events.len(), 2);
    assert_eq!(decoded.events[0].get_str("event.original"), Some(exec));
    assert_eq!(decoded.events[1].get_str("event.original"), Some(secret));
    assert_eq!(
        decoded.events[1].get_str("orchestrator.resource.name"),
        Some("example-secret")
    );

    let errors: Vec<(usize, Option<&str>)> = decoded
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        errors,
        vec![(2, None), (3, Some("verb")), (5, Some("user.groups[1]"))]
    );
    assert_eq!(
        decoded.errors[0].reason,
        "expected an audit `Event` object, found an array"
    );
    assert_eq!(decoded.errors[1].reason, "expected a string, found 42");
}

#[test]
fn empty_and_null_item_lists_yield_nothing() {
    for body in [
        event_list(&[]),
        r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":null}"#.to_string(),
    ] {
        let decoded = decode_k8s_audit(body.as_bytes(), &Limits::default()).expect("a list");
        assert_eq!(decoded, Default::default());
    }
}

#[test]
fn whole_body_failures_say_what_was_expected() {
    let limits = Limits {
        max_depth: 4,
        ..Limits::default()
    };
    let cases: Vec<(&[u8], DecodeError)> = vec![
        (b"  \n", DecodeError::Empty),
        (
            b"[1]",
            DecodeError::NotAuditEvent {
                found: "an array".into(),
            },
        ),
        (
            br#"{"kind":"Pod","apiVersion":"v1"}"#,
            DecodeError::NotAuditEvent {
                found: "`apiVersion` `v1`".into(),
            },
        ),
        (
            br#"{"kind":"Event","apiVersion":"v1","reason":"Pulled"}"#,
            DecodeError::NotAuditEvent {
                found: "`apiVersion` `v1`".into(),
            },
        ),
        (
            br#"{"hello":"world"}"#,
            DecodeError::NotAuditEvent {
                found: "an object without `kind`".into(),
            },
        ),
        (
            b"{\"kind\":\"Event\xff\"}",
            DecodeError::InvalidUtf8 { offset: 14 },
        ),
        (
            br#"{"a":[[[[[1]]]]]}"#,
            DecodeError::TooDeep { max_depth: 4 },
        ),
        (
            br#"{"kind":"EventList","items":{"a":1}}"#,
            DecodeError::NotAuditEvent {
                found: "an `EventList` whose `items` is not an array".into(),
            },
        ),
    ];
    for (body, expected) in cases {
        let error = decode_k8s_audit(body, &limits).expect_err("bad body");
        assert_eq!(error, expected, "{}", String::from_utf8_lossy(body));
        let message = error.to_string();
        assert!(message.starts_with("expected"), "{message}");
    }
    let error = decode_k8s_audit(b"{\"kind\": ", &limits).expect_err("truncated JSON");
    assert!(
        matches!(error, DecodeError::InvalidJson { .. }),
        "{error:?}"
    );
}

#[test]
fn oversized_items_and_fields_are_bounded() {
    let exec = String::from_utf8(trace("exec_pod.json")).expect("utf-8");
    let padded = format!(
        r#"{{"auditID":"big","verb":"get","requestURI":"/{}"}}"#,
        "a".repeat(2000)
    );
    let body = event_list(&[exec.trim(), &padded]);
    let limits = Limits {
        max_line_bytes: 1500,
        max_depth: 64,
        max_field_bytes: 16,
    };
    let decoded = decode_k8s_audit(body.as_bytes(), &limits).expect("a list");
    assert_eq!(decoded.errors.len(), 1);
    assert_eq!(decoded.errors[0].line, 2);
    assert!(
        decoded.errors[0].reason.contains("at most 1500 bytes"),
        "{}",
        decoded.errors[0].reason
    );

    let event = &decoded.events[0];
    assert_eq!(
        event.get_str("event.original"),
        Some(exec.trim()),
        "original kept whole"
    );
    assert_eq!(event.get_str("user.name"), Some("minikube-user"));
    assert_eq!(event.get_str("kubernetes.pod.name").map(str::len), Some(16));
    let truncated = event
        .get("crowsnest.truncated")
        .and_then(Value::as_array)
        .expect("recorded");
    assert!(truncated.contains(&json!("url.original")), "{truncated:?}");
    assert!(
        truncated.contains(&json!("k8s.audit.requestURI")),
        "{truncated:?}"
    );
    assert!(!truncated.contains(&json!("event.original")));
}

#[test]
fn impersonation_non_resource_requests_and_missing_fields() {
    let body = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"i1","stage":"ResponseComplete","verb":"create","user":{"username":"bob","groups":["devs"]},"impersonatedUser":{"username":"system:serviceaccount:ops:deployer","groups":["system:serviceaccounts"]},"objectRef":{"resource":"serviceaccounts","subresource":"token","namespace":"ops","name":"deployer","apiVersion":"v1"},"responseStatus":{"code":201},"stageTimestamp":"2024-05-01T10:00:00.25Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"i2","stage":"ResponseStarted","verb":"get","user":{"username":"system:anonymous"},"requestURI":"/healthz?verbose=1","sourceIPs":["10.0.0.1","192.0.2.4"]}"#;
    let decoded = decode_ndjson(body, None, &Limits::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let token = &decoded.events[0];
    assert_eq!(
        token.get_str("user.effective.name"),
        Some("system:serviceaccount:ops:deployer")
    );
    assert_eq!(
        token.get("related.user"),
        Some(&json!(["bob", "system:serviceaccount:ops:deployer"]))
    );
    assert_eq!(token.get("event.category"), Some(&json!(["api", "iam"])));
    assert_eq!(
        token.get_str("@timestamp"),
        Some("2024-05-01T10:00:00.250000Z"),
        "falls back to stageTimestamp"
    );
    assert_eq!(
        token.get_str("message"),
        Some("bob create serviceaccounts/token ops/deployer -> 201")
    );

    let probe = &decoded.events[1];
    assert_eq!(
        probe.get_str("event.outcome"),
        Some("unknown"),
        "no response status yet"
    );
    assert_eq!(
        probe.get("@timestamp"),
        None,
        "no time in the event: the server stamps it"
    );
    assert_eq!(probe.get_str("source.ip"), Some("10.0.0.1"));
    assert_eq!(
        probe.get("related.ip"),
        Some(&json!(["10.0.0.1", "192.0.2.4"]))
    );
    assert_eq!(
        probe.get_str("message"),
        Some("system:anonymous get /healthz")
    );
    assert_eq!(probe.get("orchestrator.resource"), None);
}
