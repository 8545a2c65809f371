//! Live detection through the real pipeline: an acknowledged event raises an alert that is
//! stored, searchable, folded when repeated, silenced by a suppression, and not made twice
//! after a restart.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::tests::{exec_event, harness_with, Harness};

impl Harness {
    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let request = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::empty())
            .expect("request");
        let (status, _, body) = self.call(request).await;
        (status, body)
    }

    async fn ingest_audit(&self, events: Vec<Value>) {
        let body = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events});
        let request = self.post(
            "/api/v1/ingest/k8s-audit",
            "application/json",
            body.to_string(),
        );
        let (status, _, body) = self.call(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Polls `/api/v1/alerts?<params>` until `want` alerts are listed (or 30 s pass: CI
    /// machines are slow and busy).
    async fn alerts(&self, params: &str, want: u64) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            let (status, body) = self.get(&format!("/api/v1/alerts?{params}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["total"].as_u64() == Some(want) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {want} alert(s) for `{params}`, last answer: {last}");
    }
}

fn exec_in(pod: &str, audit_id: &str) -> Value {
    let mut event = exec_event();
    event["auditID"] = json!(audit_id);
    event["objectRef"]["name"] = json!(pod);
    event["requestURI"] = json!(format!(
        "/api/v1/namespaces/prod/pods/{pod}/exec?command=sh&stdin=true&tty=true"
    ));
    event
}

#[tokio::test]
async fn an_exec_into_a_pod_raises_a_stored_searchable_alert_and_repeats_fold() {
    let h = harness_with(|_| {}).await;
    let (status, rules) = h.get("/api/v1/rules").await;
    assert_eq!(status, StatusCode::OK);
    assert!(rules["loaded"].as_u64().unwrap_or(0) >= 40, "{rules}");

    h.ingest_audit(vec![exec_in("web-1", "a1")]).await;
    let listed = h.alerts("namespace=prod&technique=T1609", 1).await;
    let alert = &listed["alerts"][0];
    assert_eq!(alert["event"]["kind"], "alert");
    assert_eq!(alert["kubernetes"]["namespace"], "prod");
    assert_eq!(alert["user"]["name"], "alice@corp.example");
    assert!(alert["rule"]["id"].is_string() && alert["rule"]["level"].is_string());
    assert_eq!(alert["alert"]["count"], 1);
    let alert_id = alert["alert"]["id"].as_str().expect("alert.id").to_string();
    assert_eq!(
        alert["alert"]["event_ids"].as_array().map(Vec::len),
        Some(1)
    );

    // Alerts are events: the search endpoint finds them too.
    h.settle().await;
    let found = h
        .search("event.kind:alert AND threat.technique.id:T1609")
        .await;
    assert!(found["total"].as_u64().unwrap_or(0) >= 1, "{found}");

    // Two more execs into the same pod by the same user fold into the same alert.
    h.ingest_audit(vec![exec_in("web-1", "a2"), exec_in("web-1", "a3")])
        .await;
    let mut folded = Value::Null;
    for _ in 0..600 {
        folded = h.alerts("namespace=prod&technique=T1609", 1).await;
        if folded["alerts"][0]["alert"]["count"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(folded["alerts"][0]["alert"]["count"], 3, "{folded}");
    assert_eq!(folded["alerts"][0]["alert"]["id"], alert_id.as_str());

    // Another pod is another entity: a second alert.
    h.ingest_audit(vec![exec_in("db-0", "a4")]).await;
    h.alerts("namespace=prod&technique=T1609", 2).await;
    // OCSF export of the same alerts.
    let (status, ocsf) = h
        .get("/api/v1/alerts?namespace=prod&technique=T1609&format=ocsf")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ocsf["alerts"][0]["class_uid"], 2004);
    assert_eq!(
        ocsf["alerts"][0]["finding_info"]["attacks"][0]["technique"]["uid"],
        "T1609"
    );
    // Bad parameters are named.
    let (status, body) = h.get("/api/v1/alerts?min_level=severe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("min_level"), "{body}");
    // `query` is one clause of the alert filter: it cannot close it and widen the search to
    // every event, and it takes no pipes.
    for query in ["x%29%20OR%20%28*", "*%20%7C%20stats%20count()"] {
        let (status, body) = h.get(&format!("/api/v1/alerts?query={query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.to_string().contains("`query`"), "{body}");
    }
    let (status, body) = h
        .get("/api/v1/alerts?query=kubernetes.pod.name%3Adb-0")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1, "{body}");
}

#[tokio::test]
async fn a_suppression_silences_known_good_activity() {
    let h = harness_with(|config| {
        config.detect.suppressions = vec![serde_json::from_value(json!({
            "id": "ops-debugging",
            "reason": "alice debugs web pods",
            "expires": null,
            "rule": null,
            "fields": {"user.name": "alice@*", "kubernetes.pod.name": "web-*"}
        }))
        .expect("suppression")];
    })
    .await;
    h.ingest_audit(vec![exec_in("web-1", "s1"), exec_in("db-0", "s2")])
        .await;
    let listed = h.alerts("technique=T1609", 1).await;
    assert_eq!(listed["alerts"][0]["kubernetes"]["pod"]["name"], "db-0");
    let metrics = h.get("/metrics").await.1;
    assert!(
        metrics
            .as_str()
            .is_some_and(|m| m.contains("crowsnest_alerts_suppressed_total 1")),
        "{metrics}"
    );
}
