//! One rule through the API: listed with its metadata, shown with its source, disabled (it
//! stops alerting on the live stream, and stays disabled in its file), enabled again, and
//! tested over stored events without alerting.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::tests::{exec_event, harness_with, Harness};

const RULE: &str = "title: Exec into a pod (test)\nid: test-exec\nstatus: experimental\nlevel: high\ntags: [attack.execution, attack.t1609]\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel: {verb: create, objectRef.subresource: exec}\n  condition: sel\n";

async fn get(h: &Harness, uri: &str) -> (StatusCode, Value) {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = h.call(request).await;
    (status, body)
}

async fn post(h: &Harness, uri: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = h
        .call(h.post(uri, "application/json", body.to_string()))
        .await;
    (status, body)
}

async fn ingest(h: &Harness, audit_id: &str) {
    let mut event = exec_event();
    event["auditID"] = json!(audit_id);
    let (status, body) = post(h, "/api/v1/ingest/k8s-audit", event).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The rule's entry in `GET /api/v1/rules`, once `done` holds (30 s at most).
async fn rule_until(h: &Harness, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (status, body) = get(h, "/api/v1/rules").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rule = body["rules"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["id"] == "test-exec").cloned());
        if let Some(rule) = rule.filter(|r| done(r)) {
            return rule;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the rule never got there: {last}");
}

async fn alert_count(h: &Harness) -> u64 {
    h.settle().await;
    let body = h
        .search("event.kind:alert AND rule.id:test-exec | stats dc(alert.id) as n")
        .await;
    body["rows"][0][0].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_rule_is_listed_shown_disabled_enabled_and_tested() {
    let rules = tempfile::tempdir().expect("tempdir");
    std::fs::write(rules.path().join("exec.yml"), RULE).expect("rule file");
    let rule_dir = rules.path().to_path_buf();
    let h = harness_with(move |c| {
        c.detect.builtin_rules = false;
        c.detect.rule_dirs = vec![rule_dir];
    })
    .await;

    let listed = rule_until(&h, |r| r["enabled"] == true).await;
    assert_eq!(listed["level"], "high");
    assert_eq!(listed["status"], "experimental");
    assert_eq!(listed["kind"], "rule");
    assert_eq!(listed["tags"], json!(["attack.execution", "attack.t1609"]));
    let (status, detail) = get(&h, "/api/v1/rules/test-exec").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["source"], RULE);
    assert_eq!(detail["source_truncated"], false);
    assert_eq!(get(&h, "/api/v1/rules/nope").await.0, StatusCode::NOT_FOUND);

    // Enabled: an exec raises an alert.
    ingest(&h, "a-1").await;
    for _ in 0..600 {
        if alert_count(&h).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(alert_count(&h).await, 1);

    // Disabled: kept in its file, applied by the detector, no alert for the next exec.
    let (status, body) = post(&h, "/api/v1/rules/test-exec/disable", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], true);
    let (_, again) = post(&h, "/api/v1/rules/test-exec/disable", json!({})).await;
    assert_eq!(again["changed"], false);
    let kept = std::fs::read_to_string(h._dir.path().join("detect/disabled_rules.json"))
        .expect("disabled rules file");
    assert_eq!(
        serde_json::from_str::<Value>(&kept).ok(),
        Some(json!(["test-exec"]))
    );
    rule_until(&h, |r| r["enabled"] == false).await;
    let mut other = exec_event();
    other["auditID"] = json!("a-2");
    other["objectRef"]["name"] = json!("web-2");
    let (status, _) = post(&h, "/api/v1/ingest/k8s-audit", other).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(alert_count(&h).await, 1, "a disabled rule alerted");

    // Tested over the stored events (disabled or not), without alerting.
    let (status, test) = post(
        &h,
        "/api/v1/rules/test-exec/test",
        json!({"start": "2024-05-01T09:00:00Z", "end": "2024-05-01T11:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{test}");
    assert_eq!(test["events_read"], 2, "{test}");
    assert_eq!(test["matches"], 2, "{test}");
    assert_eq!(test["capped"], Value::Null);
    assert_eq!(test["results"][0]["kubernetes.namespace"], "prod", "{test}");
    let (_, capped) = post(
        &h,
        "/api/v1/rules/test-exec/test",
        json!({"start": "2024-05-01T09:00:00Z", "end": "2024-05-01T11:00:00Z", "max_events": 1}),
    )
    .await;
    assert_eq!(capped["events_read"], 1, "{capped}");
    assert!(
        capped["capped"]
            .as_str()
            .is_some_and(|c| c.contains("newest 1 of 2")),
        "{capped}"
    );
    let (status, _) = post(&h, "/api/v1/rules/test-exec/test", json!({"start": "soon"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&h, "/api/v1/rules/nope/test", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(alert_count(&h).await, 1, "a test alerted");

    // Enabled again.
    let (status, body) = post(&h, "/api/v1/rules/test-exec/enable", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    rule_until(&h, |r| r["enabled"] == true).await;
    assert_eq!(
        post(&h, "/api/v1/rules/nope/disable", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
}
