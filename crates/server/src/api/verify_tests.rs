//! Integrity verification as events: the server's own runs (at start, on schedule) and an
//! operator's (`POST /api/v1/verify`) land in the self-audit stream as `crowsnest.verify`
//! events, where the compliance checks of PCI DSS 10.3.2/10.3.4 find them; token revocation
//! is audited.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::tests::{harness_with, Harness};

fn from(addr: &str, mut request: Request<Body>) -> Request<Body> {
    let addr: SocketAddr = addr.parse().expect("addr");
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

/// Waits until `query` matches at least `n` events; returns them (newest first).
async fn wait_for(h: &Harness, query: &str, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        h.settle().await;
        let body = h.search(query).await;
        let hits = body["hits"].as_array().cloned().unwrap_or_default();
        if hits.len() >= n {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} events match `{query}`");
}

/// Enough events to roll a few WAL segments of 2 KiB (each sealed in the chain).
async fn fill(h: &Harness) {
    for i in 0..20 {
        let line = json!({"message": format!("event {i} with some text to fill the wal segment")});
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
}

fn control<'a>(evaluation: &'a Value, id: &str) -> &'a Value {
    evaluation["controls"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no control {id} in {evaluation}"))
}

async fn pci(h: &Harness) -> Value {
    let to = (chrono::Utc::now() + chrono::TimeDelta::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let uri = format!("/api/v1/compliance/pci-dss-4.0.1?to={to}");
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_verification_through_the_api_is_evidence_for_10_3_4() {
    let h = harness_with(|config| {
        config.audit.enabled = true;
        // Only the operator's run: no run at start.
        config.integrity.verify_interval_secs = 0;
        config.pipeline.wal_segment_bytes = 2048;
    })
    .await;
    fill(&h).await;
    // Before any verification: a gap.
    let before = pci(&h).await;
    assert_eq!(
        control(&before, "10.3.4")["status"],
        "gap: no data source",
        "{before}"
    );

    let request = h.post("/api/v1/verify", "application/json", "");
    let (status, _, body) = h.call(from("127.0.0.21:5000", request)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["passed"], true, "{body}");
    assert!(body["records"].as_u64().unwrap_or(0) > 0, "{body}");

    let hits = wait_for(&h, "event.dataset:crowsnest.verify", 1).await;
    let run = &hits[0];
    assert_eq!(run["event"]["outcome"], "success", "{run}");
    assert_eq!(run["event"]["action"], "integrity.verify");
    assert_eq!(run["user"]["name"], "admin");
    assert_eq!(run["source"]["ip"], "127.0.0.21");
    assert_eq!(run["crowsnest"]["verify"]["trigger"], "api");
    assert_eq!(run["crowsnest"]["verify"]["failures"], 0);
    assert_eq!(run["crowsnest"]["verify"]["records"], body["records"]);

    let after = pci(&h).await;
    for id in ["10.3.4", "10.3.2"] {
        let c = control(&after, id);
        assert_eq!(c["status"], "evidence", "{c}");
        assert_eq!(c["checks"][0]["figures"]["runs"], 1, "{c}");
    }

    // A bad body is refused with the reason, and only an admin may verify.
    let (status, _, body) = h
        .call(h.post(
            "/api/v1/verify",
            "application/json",
            r#"{"from":"yesterday"}"#,
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.to_string().contains("invalid verify request"),
        "{body}"
    );
}

#[tokio::test]
async fn the_server_verifies_at_start_and_a_failure_is_a_violation() {
    let h = harness_with(|config| {
        config.audit.enabled = true;
        config.pipeline.wal_segment_bytes = 2048;
    })
    .await;
    let hits = wait_for(&h, "event.dataset:crowsnest.verify", 1).await;
    fill(&h).await;
    assert_eq!(
        hits[0]["crowsnest"]["verify"]["trigger"], "start",
        "{:?}",
        hits[0]
    );
    assert_eq!(hits[0]["event"]["outcome"], "success", "{:?}", hits[0]);

    // Alter a sealed record of the chain: the next run fails, names it, and PCI 10.3.4 shows a
    // violation.
    let chain_path = h
        .running
        .state
        .config
        .data_dir
        .join("integrity/chain.jsonl");
    let text = std::fs::read_to_string(&chain_path).expect("chain");
    let first = text.lines().next().expect("a record").to_string();
    let mut record: Value = serde_json::from_str(&first).expect("record");
    record["time"] = json!("2000-01-01T00:00:00Z");
    let altered = text.replacen(&first, &record.to_string(), 1);
    std::fs::write(&chain_path, altered).expect("write chain");
    let (status, _, body) = h
        .call(h.post("/api/v1/verify", "application/json", "{}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["passed"], false, "{body}");
    let hits = wait_for(
        &h,
        "event.dataset:crowsnest.verify AND event.outcome:failure",
        1,
    )
    .await;
    let failed = &hits[0];
    assert!(
        failed["crowsnest"]["verify"]["first_failure"]["path"]
            .as_str()
            .is_some_and(|p| p.contains("chain.jsonl")),
        "{failed}"
    );
    let c = control(&pci(&h).await, "10.3.4").clone();
    assert_eq!(c["status"], "violation observed", "{c}");
}

#[tokio::test]
async fn revoking_a_token_is_immediate_and_audited() {
    let h = harness_with(|config| {
        config.audit.enabled = true;
        config.integrity.verify_interval_secs = 0;
    })
    .await;
    let (status, _, body) = h
        .call(h.post(
            "/api/v1/tokens",
            "application/json",
            json!({"name": "reader", "scopes": ["read"]}).to_string(),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let reader = body["token"].as_str().expect("token").to_string();
    let health = |token: &str| {
        Request::get("/api/v1/health")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(h.call(health(&reader)).await.0, StatusCode::OK);

    let request = h.post("/api/v1/tokens/reader/revoke", "application/json", "");
    let (status, _, body) = h.call(from("127.0.0.22:5000", request)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.call(health(&reader)).await.0, StatusCode::UNAUTHORIZED);
    // It stays revoked across a reopen of the registry.
    let (tokens, _) = crate::auth::Tokens::open(&h.running.state.config.data_dir).expect("open");
    assert!(tokens.list().iter().all(|t| t.name != "reader"));

    let (status, _, _) = h
        .call(h.post("/api/v1/tokens/nobody/revoke", "application/json", ""))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = h
        .call(h.post("/api/v1/tokens/admin/revoke", "application/json", ""))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let hits = wait_for(
        &h,
        "event.dataset:crowsnest.audit AND event.action:token.revoke",
        3,
    )
    .await;
    let ok = hits
        .iter()
        .find(|e| e["event"]["outcome"] == "success")
        .unwrap_or_else(|| panic!("{hits:#?}"));
    assert_eq!(ok["crowsnest"]["audit"]["target"], "reader");
    assert_eq!(ok["source"]["ip"], "127.0.0.22");
    assert_eq!(ok["user"]["name"], "admin");
    assert_eq!(ok["event"]["category"][0], "iam");
    assert_eq!(
        hits.iter()
            .filter(|e| e["event"]["outcome"] == "failure")
            .count(),
        2
    );
}

#[tokio::test]
async fn configuration_changes_through_the_api_are_audited() {
    let h = harness_with(|config| {
        config.audit.enabled = true;
        config.integrity.verify_interval_secs = 0;
    })
    .await;
    // The pack's exec rule has a `rare` baseline.
    let rule = "2253aacc-269c-47ef-87c4-56a0fe4be8ed";
    let mut status = StatusCode::NOT_FOUND;
    for _ in 0..200 {
        let request = h.post(
            &format!("/api/v1/rules/{rule}/disable"),
            "application/json",
            "",
        );
        let answer = h.call(from("127.0.0.23:5000", request)).await;
        status = answer.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, StatusCode::OK, "the rule is switched off");
    let request = h.post(
        &format!("/api/v1/baselines/{rule}/actions"),
        "application/json",
        json!({"action": "lock", "entity": "dev/alice"}).to_string(),
    );
    let (status, _, body) = h.call(from("127.0.0.24:5000", request)).await;
    assert!(status.is_success(), "{status} {body}");
    let (status, _, _) = h
        .call(h.post(
            "/api/v1/baselines/no-such-rule/actions",
            "application/json",
            json!({"action": "reset"}).to_string(),
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let hits = wait_for(
        &h,
        "event.dataset:crowsnest.audit AND event.action:config.change",
        3,
    )
    .await;
    let find = |target: &str| {
        hits.iter()
            .find(|e| e["crowsnest"]["audit"]["target"] == target)
            .cloned()
            .unwrap_or_else(|| panic!("no change `{target}` in {hits:#?}"))
    };
    let switched = find(&format!("rule {rule}: disable"));
    assert_eq!(switched["event"]["outcome"], "success");
    assert_eq!(switched["source"]["ip"], "127.0.0.23");
    assert_eq!(switched["user"]["name"], "admin");
    let locked = find(&format!("baseline {rule}: lock entity dev/alice"));
    assert_eq!(locked["event"]["outcome"], "success");
    assert_eq!(locked["source"]["ip"], "127.0.0.24");
    let refused = find("baseline no-such-rule: reset");
    assert_eq!(refused["event"]["outcome"], "failure");
    assert!(
        refused["crowsnest"]["audit"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no baseline rule")),
        "{refused}"
    );
}
