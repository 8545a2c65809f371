//! The search bounds (size, terms, nesting, time, disconnection, concurrency per token) and the
//! throttle of failed authentication, through the router.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::tests::{harness_with, Harness};

fn search_request(h: &Harness, token: &str, query: &str) -> Request<Body> {
    let mut request = h.post(
        "/api/v1/search",
        "application/json",
        json!({ "query": query }).to_string(),
    );
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

async fn read_token(h: &Harness, name: &str) -> String {
    let request = h.post(
        "/api/v1/tokens",
        "application/json",
        json!({"name": name, "scopes": ["read"]}).to_string(),
    );
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().expect("token").to_string()
}

/// Waits (up to 10 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn queries_over_the_size_or_term_limits_are_refused_with_the_limit() {
    let h = harness_with(|c| c.search.max_query_bytes = 1 << 20).await;
    let chain = vec!["x"; 70_000].join(" OR ");
    let (status, _, body) = h.call(search_request(&h, &h.token, &chain)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        message(&body),
        "query has 70000 terms; the limit is 1024 (search.max_terms)"
    );
    // Words of a phrase count: one quoted string of 2,000 words is 2,000 terms.
    let phrase = format!("\"{}\"", vec!["w"; 2_000].join(" "));
    let (status, _, body) = h.call(search_request(&h, &h.token, &phrase)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).starts_with("query has 2000 terms"), "{body}");
    // At the limit, it runs.
    let at_limit = vec!["x"; 1024].join(" OR ");
    let (status, _, body) = h.call(search_request(&h, &h.token, &at_limit)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let h = harness_with(|_| {}).await;
    let huge = "word ".repeat(200_000);
    let (status, _, body) = h.call(search_request(&h, &h.token, &huge)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        message(&body),
        "query is 1000000 bytes; the limit is 65536 (search.max_query_bytes)"
    );
    let text = h.running.state.metrics.render();
    assert!(
        text.contains("crowsnest_searches_refused_total{reason=\"query_bytes\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_hundred_thousand_nested_parentheses_are_a_clean_error() {
    let h = harness_with(|c| c.search.max_query_bytes = 1 << 20).await;
    let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
    let (status, _, body) = h.call(search_request(&h, &h.token, &deep)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("nests deeper than 32"), "{body}");
    // The alerts API's `query` has the same bounds.
    let request = Request::get(format!(
        "/api/v1/alerts?query={}",
        "(".repeat(1_000) + "a" + &")".repeat(1_000)
    ))
    .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
    .body(Body::empty())
    .expect("request");
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("invalid `query`: "), "{body}");
}

#[tokio::test]
async fn the_alerts_query_has_the_term_limit() {
    let h = harness_with(|c| c.search.max_terms = 3).await;
    let request = Request::get("/api/v1/alerts?query=a%20b%20c%20d")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        message(&body),
        "invalid `query`: query has 4 terms; the limit is 3 (search.max_terms)"
    );
}

#[tokio::test]
async fn a_search_past_its_time_budget_answers_504_naming_the_limit() {
    let h = harness_with(|c| c.search.timeout_ms = 50).await;
    let slots = &h.running.state.guards.searches;
    slots.hold.store(true, Ordering::SeqCst);
    let call = {
        let state = h.running.state.clone();
        let request = search_request(&h, &h.token, "* | stats count()");
        tokio::spawn(async move { call_state(state, request).await })
    };
    until("the search to start", || {
        slots.started.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    slots.hold.store(false, Ordering::SeqCst);
    let (status, _, body) = call.await.expect("call");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(
        message(&body),
        "search ran longer than 50 ms; the limit is 50 (search.timeout_ms); narrow the query or the time range"
    );
    assert_eq!(h.running.state.metrics.guards.searches_timed_out.get(), 1);
}

async fn call_state(
    state: Arc<crate::AppState>,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    use tower::ServiceExt;
    let response = crate::app(state).oneshot(request).await.expect("call");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_search_and_frees_its_slot() {
    let h = harness_with(|c| c.search.max_concurrent_per_token = 1).await;
    let state = h.running.state.clone();
    let slots = &state.guards.searches;
    slots.hold.store(true, Ordering::SeqCst);
    let call = tokio::spawn(call_state(
        state.clone(),
        search_request(&h, &h.token, "* | stats count()"),
    ));
    until("the search to start", || {
        slots.started.load(Ordering::SeqCst) == 1
    })
    .await;
    // The client disconnects: hyper drops the handler's future, as aborting does here.
    call.abort();
    assert!(call.await.expect_err("aborted").is_cancelled());
    let metrics = &state.metrics.guards;
    until("the store to stop the search", || {
        metrics.searches_cancelled.get() == 1
    })
    .await;
    // Its slot is free again (the limit is one search per token).
    slots.hold.store(false, Ordering::SeqCst);
    until("the slot to be released", || {
        slots
            .per_token_available("admin")
            .is_some_and(|available| available == 1)
    })
    .await;
    let (status, _, body) = h.call(search_request(&h, &h.token, "*")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn searches_beyond_a_tokens_concurrency_get_429_and_other_tokens_are_not_affected() {
    let h = harness_with(|c| c.search.max_concurrent_per_token = 4).await;
    let other = read_token(&h, "other").await;
    let state = h.running.state.clone();
    let slots = &state.guards.searches;
    slots.hold.store(true, Ordering::SeqCst);
    let mut calls = Vec::new();
    for _ in 0..101 {
        calls.push(tokio::spawn(call_state(
            state.clone(),
            search_request(&h, &h.token, "*"),
        )));
    }
    until("four searches to hold their slots", || {
        slots.started.load(Ordering::SeqCst) == 4
    })
    .await;
    // Another token still gets a slot of its own.
    let another = tokio::spawn(call_state(state.clone(), search_request(&h, &other, "*")));
    until("the other token's search to start", || {
        slots.started.load(Ordering::SeqCst) == 5
    })
    .await;
    let mut refused = 0;
    let mut pending = Vec::new();
    for call in calls {
        if call.is_finished() {
            let (status, headers, body) = call.await.expect("call");
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
            assert_eq!(headers[header::RETRY_AFTER], "1");
            assert_eq!(
                message(&body),
                "token `admin` already runs 4 searches; the limit is 4 (search.max_concurrent_per_token); retry when one has ended"
            );
            refused += 1;
        } else {
            pending.push(call);
        }
    }
    // The refusals answer at once; wait a moment for any still on their way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut held = Vec::new();
    for call in pending {
        if call.is_finished() {
            let (status, _, body) = call.await.expect("call");
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
            refused += 1;
        } else {
            held.push(call);
        }
    }
    assert_eq!((refused, held.len()), (97, 4));
    slots.hold.store(false, Ordering::SeqCst);
    for call in held.into_iter().chain([another]) {
        let (status, _, body) = call.await.expect("call");
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let text = state.metrics.render();
    assert!(
        text.contains("crowsnest_searches_refused_total{reason=\"concurrency\"} 97"),
        "{text}"
    );
}

/// A request from `addr`.
fn from(addr: &str, token: &str) -> Request<Body> {
    let mut request = Request::get("/api/v1/health")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let addr: SocketAddr = addr.parse().expect("addr");
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

/// Log lines written while it is held (on this thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

#[tokio::test]
async fn failed_authentication_is_logged_once_per_window_and_throttled_per_address() {
    let h = harness_with(|c| c.auth.max_failures = 5).await;
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let attacker = "192.0.2.7:40000";
    let guess = "cn_0123456789abcdef";
    for _ in 0..5 {
        let (status, _, body) = h.call(from(attacker, guess)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // Refused now, even with a good token, without it being checked.
    let (status, headers, body) = h.call(from(attacker, &h.token)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(message(&body).contains("(auth.max_failures"), "{body}");
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // Another address (another port of the same address is the same address).
    let (status, _, body) = h.call(from("198.51.100.9:1234", &h.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = h.call(from("192.0.2.7:40001", &h.token)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let guards = &h.running.state.metrics.guards;
    assert_eq!(guards.auth_failure("unknown").get(), 5);
    assert_eq!(guards.auth_throttled.get(), 2);
    let text = log.text();
    let lines: Vec<&str> = text.lines().collect();
    // The first failure of the window, and the one that reached the limit: not one per try.
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("WARN"), "{text}");
    assert!(
        lines[0].contains("authentication failed: unknown token"),
        "{text}"
    );
    assert!(lines[0].contains("address=192.0.2.7"), "{text}");
    assert!(lines[0].contains("path=\"/api/v1/health\""), "{text}");
    assert!(lines[1].contains("failures_in_window=5"), "{text}");
    assert!(lines[1].contains("throttled=true"), "{text}");
    assert!(!text.contains(guess), "the token is never logged: {text}");
    assert!(!text.contains(&h.token), "{text}");
}

#[tokio::test]
async fn a_known_token_without_the_scope_is_logged_by_name_and_not_throttled() {
    let h = harness_with(|c| c.auth.max_failures = 2).await;
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let request = h.post(
        "/api/v1/tokens",
        "application/json",
        r#"{"name":"shipper","scopes":["ingest"]}"#,
    );
    let (_, _, body) = h.call(request).await;
    let shipper = body["token"].as_str().expect("token").to_string();
    for _ in 0..5 {
        let (status, _, _) = h.call(from("192.0.2.8:1", &shipper)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let text = log.text();
    let warned: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warned.len(), 1, "{text}");
    assert!(warned[0].contains("token=\"shipper\""), "{text}");
    assert!(!text.contains(&shipper), "{text}");
    assert_eq!(
        h.running
            .state
            .metrics
            .guards
            .auth_failure("forbidden")
            .get(),
        5
    );
}

#[tokio::test]
async fn the_served_socket_gives_the_throttle_its_peer_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = harness_with(|c| c.auth.max_failures = 3).await;
    let addr = h.running.addr;
    let status_of = |token: String| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .expect("status")
    };
    for _ in 0..3 {
        assert_eq!(status_of("cn_wrong".into()).await, 401);
    }
    assert_eq!(status_of(h.token.clone()).await, 429);
}

#[tokio::test]
async fn closing_the_connection_cancels_the_search() {
    use tokio::io::AsyncWriteExt;
    let h = harness_with(|_| {}).await;
    let state = h.running.state.clone();
    let slots = &state.guards.searches;
    slots.hold.store(true, Ordering::SeqCst);
    let body = json!({"query": "* | stats count()"}).to_string();
    let mut stream = tokio::net::TcpStream::connect(h.running.addr)
        .await
        .expect("connect");
    let request = format!(
        "POST /api/v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        h.token,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    until("the search to start", || {
        slots.started.load(Ordering::SeqCst) == 1
    })
    .await;
    drop(stream);
    let metrics = &state.metrics.guards;
    until("the server to cancel the search", || {
        metrics.searches_cancelled.get() == 1
    })
    .await;
    slots.hold.store(false, Ordering::SeqCst);
}
