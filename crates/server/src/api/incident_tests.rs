//! Incidents through the real pipeline: alerts about one workload become one incident, its
//! life-cycle actions are applied in WAL order, and a restart rebuilds the same incident.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::tests::{exec_event, harness, Harness};
use crate::{start, ServerConfig};

impl Harness {
    async fn get_json(&self, uri: &str) -> (StatusCode, Value) {
        let request = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::empty())
            .expect("request");
        let (status, _, body) = self.call(request).await;
        (status, body)
    }

    /// Polls `uri` until `done` holds (30 s at most).
    async fn until(&self, uri: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            let (status, body) = self.get_json(uri).await;
            if status == StatusCode::OK && done(&body) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`{uri}` never got there; last answer: {last}");
    }

    async fn act(&self, id: &str, body: Value) -> (StatusCode, Value) {
        let request = self.post(
            &format!("/api/v1/incidents/{id}/actions"),
            "application/json",
            body.to_string(),
        );
        let (status, _, body) = self.call(request).await;
        (status, body)
    }
}

fn exec_in(pod: &str, audit_id: &str, second: u32) -> Value {
    let mut event = exec_event();
    event["auditID"] = json!(audit_id);
    event["objectRef"]["name"] = json!(pod);
    event["requestURI"] = json!(format!(
        "/api/v1/namespaces/prod/pods/{pod}/exec?command=sh&stdin=true&tty=true"
    ));
    event["requestReceivedTimestamp"] = json!(format!("2024-05-01T10:00:{second:02}.000000Z"));
    event
}

#[tokio::test]
async fn alerts_on_one_workload_make_one_incident_whose_actions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        ..ServerConfig::default()
    };
    config.pipeline.commit_interval_ms = 50;
    let running = start(config.clone()).await.expect("start");
    let token = running.new_admin_token.clone().expect("token");
    let h = Harness {
        running,
        token,
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    // Two pods of one Deployment.
    let body = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [
        exec_in("web-7d4b9c6f5-x2kq9", "a1", 0),
        exec_in("web-7d4b9c6f5-a8zz1", "a2", 30),
    ]});
    let request = h.post(
        "/api/v1/ingest/k8s-audit",
        "application/json",
        body.to_string(),
    );
    assert_eq!(h.call(request).await.0, StatusCode::OK);
    let listed = h
        .until("/api/v1/incidents", |b| {
            b["incidents"][0]["alerts"].as_u64() == Some(2)
        })
        .await;
    assert_eq!(
        listed["incidents"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let summary = &listed["incidents"][0];
    assert_eq!(
        summary["entity"],
        json!({"kind": "workload", "value": "prod/web"})
    );
    assert_eq!(summary["status"], "new");
    let id = summary["id"].as_str().expect("id").to_string();

    // Actions: refused when wrong, applied in order when right.
    let (status, body) = h.act(&id, json!({"action": "escalate"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = h.act("inc-nope", json!({"action": "acknowledge"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = h
        .act(&id, json!({"action": "acknowledge", "assignee": "alice"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _) = h
        .act(
            &id,
            json!({"action": "comment", "text": "break-glass debugging, ticket OPS-12"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = h
        .act(
            &id,
            json!({"action": "resolve", "classification": "benign_true_positive"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let uri = format!("/api/v1/incidents/{id}");
    let resolved = h.until(&uri, |b| b["status"] == "resolved").await;
    assert_eq!(resolved["assignee"], "alice");
    assert_eq!(resolved["classification"], "benign_true_positive");
    assert_eq!(
        resolved["comments"][0]["text"],
        "break-glass debugging, ticket OPS-12"
    );
    assert!(resolved["risk"]["factors"]
        .as_array()
        .is_some_and(|f| !f.is_empty()));
    let (open_status, open) = h.get_json("/api/v1/incidents").await;
    assert_eq!(open_status, StatusCode::OK);
    assert_eq!(
        open["incidents"],
        json!([]),
        "resolved incidents are not open"
    );

    // A restart (checkpoint + WAL replay) rebuilds the same incident.
    h.running.shutdown().await.expect("shutdown");
    let running = start(config).await.expect("restart");
    let h = Harness {
        running,
        token: h.token,
        _dir: h._dir,
    };
    let again = h.until(&uri, |b| b["status"] == "resolved").await;
    assert_eq!(again, resolved);
}

#[tokio::test]
async fn resolving_as_a_false_positive_offers_a_suppression_that_parses() {
    let h = harness().await;
    let body = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [
        exec_in("web-7d4b9c6f5-x2kq9", "fp1", 0),
    ]});
    let request = h.post(
        "/api/v1/ingest/k8s-audit",
        "application/json",
        body.to_string(),
    );
    assert_eq!(h.call(request).await.0, StatusCode::OK);
    let listed = h
        .until("/api/v1/incidents", |b| {
            b["incidents"][0]["alerts"].as_u64() == Some(1)
        })
        .await;
    let id = listed["incidents"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Another classification offers nothing.
    let (status, answer) = h
        .act(&id, json!({"action": "comment", "text": "looking"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(answer.get("suggested_suppressions").is_none());

    let (status, answer) = h
        .act(
            &id,
            json!({"action": "resolve", "classification": "false_positive"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let offered = &answer["suggested_suppressions"][0];
    assert_eq!(
        offered["fields"]["kubernetes.namespace"], "prod",
        "{answer}"
    );
    assert_eq!(offered["fields"]["kubernetes.pod.name"], "web-*");
    assert!(offered["rule"].as_str().is_some_and(|r| !r.is_empty()));
    // The TOML is a `[detect]` section the server accepts as it is.
    let snippet = answer["suggested_suppressions_toml"]
        .as_str()
        .expect("toml");
    let parsed: ServerConfig = toml::from_str(snippet).expect("the snippet parses as config");
    assert_eq!(parsed.detect.suppressions.len(), 1, "{snippet}");
    assert_eq!(
        parsed.detect.suppressions[0].rule.as_deref(),
        offered["rule"].as_str()
    );
}
