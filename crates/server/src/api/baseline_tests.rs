//! Baselines through the real pipeline: the detector learns, the API reads what it learned,
//! and actions (lock, accept, reset) are applied in WAL order.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::tests::{exec_event, harness, Harness};

/// The pack's exec rule (a `rare` gate per principal × namespace × workload).
const EXEC_RULE: &str = "2253aacc-269c-47ef-87c4-56a0fe4be8ed";

async fn get(h: &Harness, uri: &str) -> (StatusCode, Value) {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = h.call(request).await;
    (status, body)
}

/// Polls `uri` until `done` holds (30 s at most).
async fn until(h: &Harness, uri: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (status, body) = get(h, uri).await;
        if status == StatusCode::OK && done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{uri}` never got there; last answer: {last}");
}

async fn act(h: &Harness, rule: &str, body: Value) -> (StatusCode, Value) {
    let request = h.post(
        &format!("/api/v1/baselines/{rule}/actions"),
        "application/json",
        body.to_string(),
    );
    let (status, _, body) = h.call(request).await;
    (status, body)
}

#[tokio::test]
async fn baselines_are_listed_shown_and_changed_in_wal_order() {
    let h = harness().await;
    let (status, listed) = get(&h, "/api/v1/baselines").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let rules = listed["baselines"].as_array().expect("baselines");
    assert!(rules.len() >= 9, "{listed}");
    assert!(rules
        .iter()
        .any(|r| r["rule"] == EXEC_RULE && r["kind"] == "rare"));
    let (status, _) = get(&h, "/api/v1/baselines/no-such-rule").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The detector learns alice's exec into prod/web.
    let request = h.post(
        "/api/v1/ingest/k8s-audit",
        "application/json",
        exec_event().to_string(),
    );
    assert_eq!(h.call(request).await.0, StatusCode::OK);
    let show = format!("/api/v1/baselines/{EXEC_RULE}?entity=alice@corp.example");
    let profile = until(&h, &show, |b| b["entity_count"] == 1).await;
    assert_eq!(
        profile["terms"],
        json!(["kubernetes.namespace", "workload"])
    );
    let entity = &profile["entities"][0];
    assert_eq!(entity["values"], json!(["alice@corp.example"]));
    assert_eq!(
        entity["terms"].as_object().map(|t| t.len()),
        Some(1),
        "{entity}"
    );
    assert_eq!(entity["locked"], false);

    // Wrong actions are refused with the reason.
    let (status, body) = act(&h, EXEC_RULE, json!({"action": "forget"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = act(&h, EXEC_RULE, json!({"action": "lock"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = act(
        &h,
        EXEC_RULE,
        json!({"action": "accept", "entity": "alice@corp.example", "term": ["shop"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("2 values"), "{body}");
    let (status, _) = act(&h, "no-such-rule", json!({"action": "reset"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Lock, accept a term, then forget the entity: each applied in order.
    let (status, body) = act(
        &h,
        EXEC_RULE,
        json!({"action": "lock", "entity": "alice@corp.example"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    until(&h, &show, |b| b["entities"][0]["locked"] == true).await;
    let (status, _) = act(
        &h,
        EXEC_RULE,
        json!({"action": "accept", "entity": "alice@corp.example", "term": ["shop", "shop/api"]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    until(&h, &show, |b| {
        b["entities"][0]["terms"].as_object().map(|t| t.len()) == Some(2)
    })
    .await;
    let (status, _) = act(
        &h,
        EXEC_RULE,
        json!({"action": "reset", "entity": "alice@corp.example"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    until(&h, &show, |b| b["entity_count"] == 0).await;
    // The profile read before comes back by import (the file `baselines import` sends).
    let mut exported = profile.clone();
    if let Some(map) = exported.as_object_mut() {
        map.remove("entity_count");
    }
    let (status, body) = act(
        &h,
        EXEC_RULE,
        json!({"action": "import", "profile": exported}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let back = until(&h, &show, |b| b["entity_count"] == 1).await;
    assert_eq!(back["entities"], profile["entities"]);
    let mut wrong = exported.clone();
    wrong["terms"] = json!(["process.executable"]);
    let (status, body) = act(&h, EXEC_RULE, json!({"action": "import", "profile": wrong})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The actions are events too: searchable, with who did what.
    h.settle().await;
    let found = h.search("event.dataset:crowsnest.baseline_action").await;
    assert_eq!(found["total"], 4, "{found}");
}

/// A baseline rule added to a running server is back-filled from the store at once.
#[tokio::test]
async fn a_new_baseline_rule_is_warm_started_from_the_store() {
    let rules = tempfile::tempdir().expect("rules dir");
    let rule_dirs = vec![rules.path().to_path_buf()];
    let h = super::tests::harness_with(|config| {
        config.detect.rule_dirs = rule_dirs;
        config.detect.reload_interval_secs = 0;
    })
    .await;
    // An hour ago, alice exec'd into prod/web: stored before the rule exists.
    let mut event = exec_event();
    let at = crowsnest_model::format_timestamp(chrono::Utc::now() - chrono::Duration::hours(1));
    event["requestReceivedTimestamp"] = json!(at);
    event["stageTimestamp"] = json!(at);
    let request = h.post(
        "/api/v1/ingest/k8s-audit",
        "application/json",
        event.to_string(),
    );
    assert_eq!(h.call(request).await.0, StatusCode::OK);
    h.settle().await;
    std::fs::write(
        rules.path().join("exec_new.yml"),
        "title: Exec new for principal\nid: warm-1\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel: {objectRef.subresource: exec}\n  condition: sel\nbaseline:\n  entity: user.name\n  terms: kubernetes.namespace\n  learn: 7d\n  entity_learn: 0s\nlevel: low\n",
    )
    .expect("write rule");
    let request = h.post("/api/v1/rules/reload", "application/json", "{}");
    assert_eq!(h.call(request).await.0, StatusCode::ACCEPTED);
    let profile = until(
        &h,
        "/api/v1/baselines/warm-1?entity=alice@corp.example",
        |b| b["entity_count"] == 1,
    )
    .await;
    let terms = profile["entities"][0]["terms"].as_object().expect("terms");
    assert_eq!(terms.len(), 1, "{profile}");
    let (_, listed) = get(&h, "/api/v1/baselines").await;
    let rule = listed["baselines"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rule"] == "warm-1").cloned())
        .expect("listed");
    // Its learning window started at the oldest stored event, an hour ago.
    assert!(rule["learning_until"].as_str().is_some(), "{rule}");
}

/// The pack's rate rule (distinct secrets read per principal and hour of the week).
const RATE_RULE: &str = "ce4cb214-c0b0-4d66-8ac3-39a8021f4a07";

/// A rate rule's entities are shown, locked, accepted, reset and imported like term sets.
#[tokio::test]
async fn rate_entities_are_shown_locked_accepted_and_imported() {
    let h = harness().await;
    let mut read = exec_event();
    read["user"]["username"] = json!("bob@corp.example");
    read["verb"] = json!("get");
    read["requestURI"] = json!("/api/v1/namespaces/prod/secrets/db-pass");
    read["objectRef"] =
        json!({"resource": "secrets", "namespace": "prod", "name": "db-pass", "apiVersion": "v1"});
    read["responseStatus"] = json!({"metadata": {}, "code": 200});
    let request = h.post(
        "/api/v1/ingest/k8s-audit",
        "application/json",
        read.to_string(),
    );
    assert_eq!(h.call(request).await.0, StatusCode::OK);
    let show = format!("/api/v1/baselines/{RATE_RULE}?entity=bob@corp.example");
    let profile = until(&h, &show, |b| b["entity_count"] == 1).await;
    assert_eq!(profile["entities"], json!([]), "{profile}");
    assert_eq!(
        profile["rate"],
        json!({"distinct": ["kubernetes.namespace", "orchestrator.resource.name"],
               "bucket_secs": 3600, "slots": 168, "history": 4})
    );
    let bob = &profile["rates"][0];
    assert_eq!(bob["values"], json!(["bob@corp.example"]));
    assert_eq!(bob["count"], 1);
    assert_eq!(bob["locked"], false);

    // A term is refused for a rate's accept; lock and accept apply in order.
    let (status, body) = act(
        &h,
        RATE_RULE,
        json!({"action": "accept", "entity": "bob@corp.example", "term": ["x"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("takes no `term`"), "{body}");
    for action in ["lock", "accept"] {
        let (status, body) = act(
            &h,
            RATE_RULE,
            json!({"action": action, "entity": "bob@corp.example"}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{action}: {body}");
    }
    let accepted = until(&h, &show, |b| {
        b["rates"][0]["locked"] == true && b["rates"][0]["accepted"] == true
    })
    .await;
    // The accepted bucket's value (1 distinct secret) is in its slot's history already.
    let history = accepted["rates"][0]["history"].as_array().expect("history");
    assert_eq!(history.len(), 168 * 4);
    assert_eq!(
        history.iter().filter(|v| v.as_u64() == Some(1)).count(),
        1,
        "{accepted}"
    );

    // Reset, then the profile comes back by import; a term-set profile is refused.
    let (status, _) = act(
        &h,
        RATE_RULE,
        json!({"action": "reset", "entity": "bob@corp.example"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    until(&h, &show, |b| b["entity_count"] == 0).await;
    let mut exported = accepted.clone();
    if let Some(map) = exported.as_object_mut() {
        map.remove("entity_count");
    }
    let mut wrong = exported.clone();
    wrong["rate"]["bucket_secs"] = json!(1800);
    let (status, body) = act(&h, RATE_RULE, json!({"action": "import", "profile": wrong})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("rate layout"), "{body}");
    let (status, body) = act(
        &h,
        RATE_RULE,
        json!({"action": "import", "profile": exported}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let back = until(&h, &show, |b| b["entity_count"] == 1).await;
    assert_eq!(back["rates"], accepted["rates"]);
}
