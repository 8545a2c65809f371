//! Socket-free API tests: the router driven with `oneshot`, on a real store and WAL in a
//! temporary directory.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::{start, Running, ServerConfig};

pub(super) struct Harness {
    pub(super) running: Running,
    pub(super) token: String,
    pub(super) _dir: tempfile::TempDir,
}

pub(super) async fn harness() -> Harness {
    harness_with(|_| {}).await
}

pub(super) async fn harness_with(tune: impl FnOnce(&mut ServerConfig)) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        ..ServerConfig::default()
    };
    config.pipeline.commit_interval_ms = 50;
    // Tests count what they ingest; the self-audit stream (its own test turns it on) would add
    // an event per search.
    config.audit.enabled = false;
    tune(&mut config);
    let running = start(config).await.expect("start");
    let token = running.new_admin_token.clone().expect("admin token");
    Harness {
        running,
        token,
        _dir: dir,
    }
}

impl Harness {
    pub(super) async fn call(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = crate::app(Arc::clone(&self.running.state))
            .oneshot(request)
            .await
            .expect("call");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, body)
    }

    pub(super) fn post(
        &self,
        uri: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Request<Body> {
        Request::post(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .expect("request")
    }

    pub(super) async fn search(&self, query: &str) -> Value {
        let request = self.post(
            "/api/v1/search",
            "application/json",
            json!({"query": query}).to_string(),
        );
        let (status, _, body) = self.call(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until everything acknowledged is searchable.
    pub(super) async fn settle(&self) {
        let pipeline = &self.running.state.pipeline;
        for _ in 0..1500 {
            if pipeline.committed_next() >= pipeline.acked_next() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("index did not catch up");
    }
}

pub(super) fn exec_event() -> Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": "7d9b5e43-6b6c-4a1f-9a55-6f0e7e0f0c11", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/prod/pods/web-1/exec?command=sh&stdin=true&tty=true",
        "verb": "create",
        "user": {"username": "alice@corp.example", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["192.0.2.10"], "userAgent": "kubectl/v1.29.2 (linux/amd64)",
        "objectRef": {"resource": "pods", "namespace": "prod", "name": "web-1", "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2024-05-01T10:00:00.000000Z",
        "stageTimestamp": "2024-05-01T10:00:00.100000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding"}
    })
}

#[tokio::test]
async fn every_endpoint_requires_a_token_and_its_scope() {
    let h = harness().await;
    for (method, uri) in [
        ("POST", "/api/v1/ingest/k8s-audit"),
        ("POST", "/api/v1/ingest/ndjson"),
        ("POST", "/api/v1/search"),
        ("GET", "/api/v1/alerts"),
        ("GET", "/api/v1/rules"),
        ("POST", "/api/v1/rules/reload"),
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/tokens"),
        ("GET", "/metrics"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let (status, headers, body) = h.call(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {body}");
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, "Bearer cn_wrong")
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            h.call(request).await.0,
            StatusCode::UNAUTHORIZED,
            "{method} {uri}"
        );
    }
    // A read-only token may search but not ingest or manage tokens.
    let request = h.post(
        "/api/v1/tokens",
        "application/json",
        r#"{"name":"viewer","scopes":["read"]}"#,
    );
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let viewer = body["token"].as_str().expect("token").to_string();
    let as_viewer = |method: &str, uri: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {viewer}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let (status, _, body) = h
        .call(as_viewer("POST", "/api/v1/ingest/ndjson", "{}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ingest"),
        "{body}"
    );
    assert_eq!(
        h.call(as_viewer("GET", "/api/v1/tokens", "")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call(as_viewer("POST", "/api/v1/search", r#"{"query":"*"}"#))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn audit_event_list_is_searchable_by_normalized_fields() {
    // Counts below are of the ingested events alone: no alerts (alert_tests.rs covers those).
    let h = harness_with(|config| config.detect.enabled = false).await;
    let mut second = exec_event();
    second["verb"] = json!("get");
    second["objectRef"] = json!({"resource": "secrets", "namespace": "kube-system", "name": "db-pass", "apiVersion": "v1"});
    second["user"] = json!({"username": "system:serviceaccount:kube-system:replicaset-controller"});
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": [exec_event(), second]});
    let (status, _, body) = h
        .call(h.post(
            "/api/v1/ingest/k8s-audit",
            "application/json",
            list.to_string(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 2);
    h.settle().await;
    let found = h
        .search("orchestrator.resource.subresource:exec AND user.name:\"alice@corp.example\"")
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let hit = &found["hits"][0];
    assert_eq!(hit["kubernetes"]["namespace"], "prod");
    assert_eq!(hit["source"]["ip"], "192.0.2.10");
    assert!(
        hit["event"]["original"]
            .as_str()
            .unwrap_or("")
            .contains("7d9b5e43"),
        "original kept"
    );
    assert!(hit["event"]["id"].is_string());
    let humans = h.search("NOT user.name:system\\:*").await;
    assert_eq!(humans["total"], 1, "{humans}");
    let stats = h.search("* | stats count() by event.action").await;
    assert_eq!(
        stats["columns"],
        json!(["event.action", "count"]),
        "{stats}"
    );
    assert_eq!(stats["rows"].as_array().map(Vec::len), Some(2), "{stats}");
}

#[tokio::test]
async fn bad_lines_are_reported_and_good_lines_stored() {
    let h = harness().await;
    let body = "{\"message\":\"one\",\"@timestamp\":\"2024-05-01T10:00:00Z\"}\n{not json\n\n[1,2]\n{\"message\":\"two\"}\n";
    let (status, _, report) = h
        .call(h.post(
            "/api/v1/ingest/ndjson?source=app",
            "application/x-ndjson",
            body,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["rejected"], 2);
    let lines: Vec<u64> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["line"].as_u64())
        .collect();
    assert_eq!(lines, vec![2, 4], "{report}");
    h.settle().await;
    let found = h.search("event.dataset:app").await;
    assert_eq!(found["total"], 2, "{found}");
    // Only bad lines: 400 with the same report.
    let (status, _, report) = h
        .call(h.post("/api/v1/ingest/ndjson", "application/x-ndjson", "nope\n"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{report}");
    assert_eq!(report["error"]["details"]["errors"][0]["line"], 1);
}

#[tokio::test]
async fn size_type_and_encoding_limits() {
    let h = harness_with(|c| c.max_body_bytes = 1024).await;
    let big = format!("{{\"message\":\"{}\"}}\n", "x".repeat(2000));
    let (status, _, body) = h
        .call(h.post("/api/v1/ingest/ndjson", "application/x-ndjson", big.clone()))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, _, body) = h
        .call(h.post(
            "/api/v1/ingest/ndjson",
            "application/x-www-form-urlencoded",
            "a=b",
        ))
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("application/x-ndjson"),
        "{body}"
    );
    // A small gzip body that inflates past the limit: 413, not an allocation of the whole.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, big.repeat(50).as_bytes()).expect("gzip");
    let gz = encoder.finish().expect("gzip");
    assert!(gz.len() < 1024);
    let mut request = h.post("/api/v1/ingest/ndjson", "application/x-ndjson", gz);
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, "gzip".parse().expect("header"));
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // A good gzip body is accepted.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, b"{\"message\":\"zipped\"}\n").expect("gzip");
    let mut request = h.post(
        "/api/v1/ingest/ndjson",
        "application/x-ndjson",
        encoder.finish().expect("gzip"),
    );
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, "gzip".parse().expect("header"));
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut request = h.post("/api/v1/ingest/ndjson", "application/x-ndjson", "{}");
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, "br".parse().expect("header"));
    assert_eq!(h.call(request).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn saturated_pipeline_answers_503_with_retry_after() {
    let h = harness_with(|c| c.pipeline.max_queued_bytes = 1 << 20).await;
    let held = h.running.state.pipeline.exhaust_budget().expect("budget");
    let line = "{\"message\":\"a\"}\n";
    let (status, headers, body) = h
        .call(h.post("/api/v1/ingest/ndjson", "application/x-ndjson", line))
        .await;
    // The queue budget is spent: refused at once, never buffered.
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let metrics = h
        .call(
            Request::get("/metrics")
                .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .2;
    assert!(
        metrics
            .as_str()
            .unwrap_or("")
            .contains("crowsnest_requests_throttled_total 1"),
        "{metrics}"
    );
    // Once the queue drains, the same request is accepted.
    drop(held);
    let (status, _, body) = h
        .call(h.post("/api/v1/ingest/ndjson", "application/x-ndjson", line))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn search_errors_say_what_is_wrong() {
    let h = harness().await;
    let (status, _, body) = h
        .call(h.post("/api/v1/search", "application/json", r#"{"query":"a:(b"}"#))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["details"]["column"].is_number(), "{body}");
    let (status, _, body) = h
        .call(h.post(
            "/api/v1/search",
            "application/json",
            r#"{"query":"*","start":"yesterday"}"#,
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("start"),
        "{body}"
    );
    let (status, _, body) = h
        .call(h.post("/api/v1/search", "application/json", r#"{"qery":"*"}"#))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let deep = r#"{"query":"*","offset":1000000000000}"#;
    let (status, _, body) = h
        .call(h.post("/api/v1/search", "application/json", deep))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "deep paging is bounded: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("offset"),
        "{body}"
    );
}

#[tokio::test]
async fn health_metrics_and_openapi_describe_the_server() {
    let h = harness().await;
    let body = "{\"message\":\"m\"}\n".repeat(5);
    assert_eq!(
        h.call(h.post(
            "/api/v1/ingest/ndjson?source=web",
            "application/x-ndjson",
            body
        ))
        .await
        .0,
        StatusCode::OK
    );
    h.settle().await;
    let get = |uri: &str| {
        Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
            .body(Body::empty())
            .expect("request")
    };
    let (status, _, health) = h.call(get("/api/v1/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["store"]["total_docs"], 5, "{health}");
    assert_eq!(health["store"]["set_aside"], json!([]), "{health}");
    assert_eq!(health["index_lag_events"], 0, "{health}");
    let (_, _, metrics) = h.call(get("/metrics")).await;
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains("crowsnest_events_received_total{source=\"web\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("crowsnest_events_stored_total{source=\"web\"} 5"),
        "{text}"
    );
    assert!(text.contains("crowsnest_store_documents 5"), "{text}");
    assert!(
        text.contains("crowsnest_store_set_aside_partitions 0"),
        "{text}"
    );
    let (status, _, doc) = h
        .call(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for path in super::openapi::PATHS {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
}

#[tokio::test]
async fn restart_replays_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        ..ServerConfig::default()
    };
    let running = start(config.clone()).await.expect("start");
    let token = running.new_admin_token.clone().expect("token");
    let h = Harness {
        running,
        token,
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let body = "{\"message\":\"keep me\"}\n".repeat(100);
    assert_eq!(
        h.call(h.post("/api/v1/ingest/ndjson", "application/x-ndjson", body))
            .await
            .0,
        StatusCode::OK
    );
    h.running.shutdown().await.expect("shutdown");
    let running = start(config).await.expect("restart");
    assert!(
        running.new_admin_token.is_none(),
        "the admin token survives restarts"
    );
    let h = Harness {
        running,
        token: h.token,
        _dir: h._dir,
    };
    h.settle().await;
    assert_eq!(h.search("\"keep me\"").await["total"], 100);
}

/// Sends rounds of concurrent ndjson requests (`requests` × `events` each, numbered) until
/// `until` holds after a round (at most 20 rounds); returns how many events were sent.
async fn concurrent_rounds(
    h: &Harness,
    requests: usize,
    events: usize,
    until: impl Fn(&Harness) -> bool,
) -> usize {
    let mut sent = 0;
    for _ in 0..20 {
        let mut calls = Vec::new();
        for _ in 0..requests {
            let body: String = (sent..sent + events)
                .map(|n| format!("{{\"message\":\"burst {n}\",\"n\":{n}}}\n"))
                .collect();
            sent += events;
            calls.push(h.call(h.post("/api/v1/ingest/ndjson", "application/x-ndjson", body)));
        }
        for (status, _, body) in futures_util::future::join_all(calls).await {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        if until(h) {
            break;
        }
    }
    sent
}

/// A burst above what the indexer's queue holds is left in the WAL and read back from there:
/// every acknowledged event becomes searchable exactly once.
#[tokio::test]
async fn bursts_past_the_index_queue_are_read_back_from_the_wal() {
    let h = harness_with(|config| config.pipeline.index_queue_batches = 1).await;
    let spilled = |h: &Harness| h.running.state.metrics.index_spilled.get() > 0;
    let sent = concurrent_rounds(&h, 16, 100, spilled).await;
    assert!(spilled(&h), "no batch was left in the wal in 20 rounds");
    h.settle().await;
    let total = h.search("burst").await["total"].clone();
    assert_eq!(total, json!(sent));
    let distinct = h.search("burst | stats dc(n)").await;
    assert_eq!(distinct["rows"][0][0], json!(sent), "{distinct}");
    // And after a restart nothing is indexed twice.
    let (config, token) = (h.running.state.config.clone(), h.token.clone());
    h.running.shutdown().await.expect("shutdown");
    let running = start(config).await.expect("restart");
    let h = Harness {
        running,
        token,
        _dir: h._dir,
    };
    h.settle().await;
    assert_eq!(h.search("burst").await["total"], json!(sent));
}

/// With no room for search to fall behind, the writer waits for the indexer: nothing is left
/// in the WAL for it, and everything is still indexed.
#[tokio::test]
async fn without_lag_allowed_the_writer_waits_for_the_indexer() {
    let h = harness_with(|config| {
        config.pipeline.index_queue_batches = 1;
        config.pipeline.max_index_lag_bytes = 0;
    })
    .await;
    let sent = concurrent_rounds(&h, 16, 100, |_| true).await;
    h.settle().await;
    assert_eq!(h.search("burst").await["total"], json!(sent));
    assert_eq!(h.running.state.metrics.index_spilled.get(), 0);
}
