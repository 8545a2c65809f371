//! The containment API without an agent: scopes, the long poll, results and their events.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::tests::{harness, Harness};
use crate::auth::Scope;

async fn send(
    h: &Harness,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let (status, _, body) = h.call(request).await;
    (status, body)
}

#[tokio::test]
async fn agents_poll_with_ingest_tokens_operators_act_with_admin_and_results_become_events() {
    let h = harness().await;
    let tokens = &h.running.state.tokens;
    let ingest = tokens
        .create("agent-n1", [Scope::Ingest].into_iter().collect())
        .expect("ingest token");
    let read = tokens
        .create("viewer", [Scope::Read].into_iter().collect())
        .expect("read token");
    let admin = h.token.clone();
    let action = json!({"node": "n1", "op": "pause", "container": "web", "reason": "test", "evidence": true});

    // Scopes: only admin queues and lists; ingest (and admin) poll.
    let (status, _) = send(&h, &ingest, "POST", "/api/v1/actions", Some(action.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&h, &read, "GET", "/api/v1/actions", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&h, &read, "GET", "/api/v1/agent/commands?node=n1", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send(&h, &ingest, "GET", "/api/v1/agent/commands", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Bad actions are refused with the reason.
    let (status, body) = send(
        &h,
        &admin,
        "POST",
        "/api/v1/actions",
        Some(json!({"node": "n1", "op": "explode", "container": "web"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("unknown op `explode`"), "{body}");
    let (status, _) = send(
        &h,
        &admin,
        "POST",
        "/api/v1/actions",
        Some(json!({"node": "n1", "op": "pause", "container": "web", "ttl": "2d"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A waiting poll returns as soon as the command is queued.
    let state = h.running.state.clone();
    let started = Instant::now();
    let poll = tokio::spawn({
        let ingest = ingest.clone();
        async move {
            let request = Request::get("/api/v1/agent/commands?node=n1&wait=20s")
                .header(header::AUTHORIZATION, format!("Bearer {ingest}"))
                .body(Body::empty())
                .expect("request");
            let response = tower::ServiceExt::oneshot(crate::app(state), request)
                .await
                .expect("poll");
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            serde_json::from_slice::<Value>(&bytes).expect("json")
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, queued) = send(&h, &admin, "POST", "/api/v1/actions", Some(action)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let id = queued["id"].as_str().expect("id").to_string();
    assert_eq!(queued["command"]["issued_by"], "admin");
    let polled = poll.await.expect("poll task");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the enqueue"
    );
    assert_eq!(polled["commands"][0]["id"], id.as_str());
    assert_eq!(polled["commands"][0]["evidence"], true);
    let (_, other) = send(&h, &ingest, "GET", "/api/v1/agent/commands?node=n2", None).await;
    assert_eq!(other["commands"], json!([]));

    // The agent's result: checked, stored once, searchable.
    let command: crowsnest_model::command::AgentCommand =
        serde_json::from_value(polled["commands"][0].clone()).expect("command");
    let mut result = crowsnest_model::command::CommandResult::refused(&command, "n1", "x");
    result.ok = true;
    result.error = None;
    result.notes = vec!["already paused".into()];
    result.container_name = Some("web".into());
    let uri = format!("/api/v1/agent/commands/{id}/result");
    let (status, _) = send(
        &h,
        &ingest,
        "POST",
        "/api/v1/agent/commands/other/result",
        Some(serde_json::to_value(&result).expect("json")),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the path and the body must agree"
    );
    let mut foreign = result.clone();
    foreign.node = "n2".into();
    let (status, _) = send(
        &h,
        &ingest,
        "POST",
        &uri,
        Some(serde_json::to_value(&foreign).expect("json")),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a result from another node"
    );
    let (status, body) = send(
        &h,
        &ingest,
        "POST",
        &uri,
        Some(serde_json::to_value(&result).expect("json")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["recorded"], true);
    let (_, body) = send(
        &h,
        &ingest,
        "POST",
        &uri,
        Some(serde_json::to_value(&result).expect("json")),
    )
    .await;
    assert_eq!(body["duplicate"], true);
    let (status, shown) = send(
        &h,
        &admin,
        "GET",
        &format!("/api/v1/actions/{id}?wait=1s"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["status"], "done");
    assert_eq!(shown["deliveries"], 1);
    assert_eq!(shown["event_recorded"], true);
    let (_, listed) = send(&h, &admin, "GET", "/api/v1/actions?status=done", None).await;
    assert_eq!(listed["actions"][0]["id"], id.as_str());
    let (_, polled) = send(&h, &ingest, "GET", "/api/v1/agent/commands?node=n1", None).await;
    assert_eq!(
        polled["commands"],
        json!([]),
        "answered commands are not handed out again"
    );
    let (status, _) = send(&h, &admin, "GET", "/api/v1/actions/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, found) = send(
            &h,
            &admin,
            "POST",
            "/api/v1/search",
            Some(json!({"query": "event.dataset:\"crowsnest.response\""})),
        )
        .await;
        if found["total"] == 1 {
            let hit = &found["hits"][0];
            assert_eq!(hit["event"]["action"], "container-pause");
            assert_eq!(hit["event"]["outcome"], "success");
            assert_eq!(hit["host"]["name"], "n1");
            assert_eq!(hit["response"]["command"]["id"], id.as_str());
            break;
        }
        assert!(Instant::now() < deadline, "no response event: {found}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
