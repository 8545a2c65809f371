//! The self-audit stream: searches, token creation, logins, reloads and actions become
//! searchable `crowsnest.audit` events; the WAL holding them is sealed in the integrity chain.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::tests::harness_with;
use crate::auth::Scope;

fn from(addr: &str, mut request: Request<Body>) -> Request<Body> {
    let addr: SocketAddr = addr.parse().expect("addr");
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

#[tokio::test]
async fn audited_actions_are_searchable_events_and_the_wal_is_sealed() {
    let h = harness_with(|config| {
        config.pipeline.wal_segment_bytes = 2048;
        config.audit.enabled = true;
    })
    .await;
    let state = h.running.state.clone();
    // Some ordinary events, then a search from a known address.
    for i in 0..20 {
        let line = json!({"message": format!("hello audit {i} with some text to fill the wal")});
        let (status, _, body) = h
            .call(h.post(
                "/api/v1/ingest/ndjson",
                "application/x-ndjson",
                line.to_string(),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    h.settle().await;
    let request = h.post(
        "/api/v1/search",
        "application/json",
        json!({"query": "message:hello"}).to_string(),
    );
    let (status, _, body) = h.call(from("127.0.0.7:40000", request)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 20);

    // A token creation, a reload and logins (one bad, one good).
    let request = h.post(
        "/api/v1/tokens",
        "application/json",
        json!({"name": "auditor", "scopes": ["read"]}).to_string(),
    );
    let (status, _, body) = h.call(from("127.0.0.8:40000", request)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let ip = "127.0.0.9".parse().ok();
    assert!(super::check_login(&state, ip, "/login", "not-a-token", Scope::Read).is_err());
    assert_eq!(
        super::check_login(&state, ip, "/login", &token, Scope::Read).expect("login"),
        "auditor"
    );
    let request = Request::post("/api/v1/rules/reload")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = h.call(request).await;
    assert!(
        status.is_success() || status == StatusCode::CONFLICT,
        "{status} {body}"
    );

    // They come back as events.
    let mut hits: Vec<Value> = Vec::new();
    for _ in 0..200 {
        h.settle().await;
        let body = h.search("event.dataset:crowsnest.audit").await;
        hits = body["hits"].as_array().cloned().unwrap_or_default();
        if hits.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let find = |action: &str, outcome: &str| {
        hits.iter()
            .find(|e| e["event"]["action"] == action && e["event"]["outcome"] == outcome)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} {outcome} in {hits:#?}"))
    };
    let search = hits
        .iter()
        .find(|e| e["crowsnest"]["audit"]["query"] == "message:hello")
        .cloned()
        .unwrap_or_else(|| panic!("no audited search in {hits:#?}"));
    assert_eq!(search["event"]["action"], "search");
    assert_eq!(search["event"]["outcome"], "success");
    assert_eq!(search["user"]["name"], "admin");
    assert_eq!(search["source"]["ip"], "127.0.0.7");
    assert_eq!(search["crowsnest"]["audit"]["query"], "message:hello");
    assert_eq!(search["crowsnest"]["audit"]["result_count"], 20);
    let created = find("token.create", "success");
    assert_eq!(created["source"]["ip"], "127.0.0.8");
    assert_eq!(created["crowsnest"]["audit"]["target"], "auditor (read)");
    let failed = find("login", "failure");
    assert_eq!(failed["source"]["ip"], "127.0.0.9");
    assert_eq!(find("login", "success")["user"]["name"], "auditor");
    find(
        "config.reload",
        if status.is_success() {
            "success"
        } else {
            "failure"
        },
    );
    assert_eq!(state.audit.dropped(), 0);

    // The WAL rolled; its closed segments are sealed in the chain (then deleted by truncation
    // once durable in the store: explained gaps), and everything verifies.
    let chain = std::fs::read_to_string(state.config.data_dir.join("integrity/chain.jsonl"))
        .expect("chain");
    assert!(chain.contains("\"kind\":\"wal_seal\""), "{chain}");
    let report = crowsnest_integrity::verify(
        &state.config.data_dir,
        &crowsnest_integrity::VerifyOptions::default(),
    )
    .expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
}

#[test]
fn a_full_queue_drops_and_counts_without_waiting() {
    let audit = crate::audit::Audit::new(&crate::config::AuditConfig {
        enabled: true,
        queue: 2,
    });
    for _ in 0..5 {
        audit.record(crate::audit::AuditEntry::new("search", Some("x"), true));
    }
    assert_eq!(audit.dropped(), 3);
    assert!(audit
        .metrics_text()
        .contains("crowsnest_audit_dropped_total 3"));
}
