//! Who acts, for the self-audit stream: around every console request, the session's token
//! name and the client's address are scoped ([`crowsnest_server::audit::scope_actor`]), so the
//! API's core functions the console calls (searches, rule switches, reloads) record them in
//! their audit events. An export (`/search/export`) is audited once, as an export, with its
//! format and the rows it sent, when its download ends (or stops: then as a failure saying
//! how many rows went out), instead of one search event per page.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use crowsnest_server::audit::{record_export, scope_actor, sync_scope_actor, Actor, ExportTally};
use crowsnest_server::auth::Scope;
use crowsnest_server::AppState;
use futures_util::Stream;

use crate::Console;

/// The middleware.
pub(crate) async fn scope(
    State(console): State<Arc<Console>>,
    request: Request,
    next: Next,
) -> Response {
    let source_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let path = request.uri().path().to_string();
    let user = if path.starts_with("/assets/") || path == "/login" {
        None
    } else {
        console
            .authorize(request.headers(), &path, Scope::Read)
            .ok()
            .map(|auth| auth.name)
    };
    let mut actor = Actor {
        user,
        source_ip,
        export: None,
    };
    if path != "/search/export" || actor.user.is_none() {
        return scope_actor(actor, next.run(request)).await;
    }
    let params: HashMap<String, String> = Query::try_from_uri(request.uri())
        .map(|Query(p)| p)
        .unwrap_or_default();
    let query = params.get("q").cloned().unwrap_or_default();
    let format = params
        .get("format")
        .filter(|f| !f.is_empty())
        .cloned()
        .unwrap_or_else(|| "ndjson".into());
    let tally = Arc::new(ExportTally::default());
    actor.export = Some(tally.clone());
    let response = scope_actor(actor.clone(), next.run(request)).await;
    if !response.status().is_success() {
        let reason = tally
            .failure()
            .unwrap_or_else(|| format!("refused ({})", response.status()));
        record_export(
            &console.app.audit,
            &actor,
            &query,
            &format,
            false,
            Some(reason),
        );
        return response;
    }
    let (parts, body) = response.into_parts();
    let stream = Audited {
        inner: body.into_data_stream(),
        actor,
        app: console.app.clone(),
        query,
        format,
        ended: false,
        error: None,
    };
    Response::from_parts(parts, Body::from_stream(stream))
}

/// An export's body: each poll runs in the actor's scope (the pages are searched while the
/// body is polled, after the handler returned); the export is recorded when it is dropped.
struct Audited {
    inner: axum::body::BodyDataStream,
    actor: Actor,
    app: Arc<AppState>,
    query: String,
    format: String,
    ended: bool,
    error: Option<String>,
}

impl Stream for Audited {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let actor = this.actor.clone();
        let inner = &mut this.inner;
        let polled = sync_scope_actor(actor, || Pin::new(inner).poll_next(cx));
        match &polled {
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(Err(error))) => {
                this.error.get_or_insert_with(|| error.to_string());
            }
            _ => {}
        }
        polled
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        let failure = self
            .actor
            .export
            .as_ref()
            .and_then(|t| t.failure())
            .or_else(|| self.error.clone());
        let (success, message) = match (failure, self.ended) {
            (Some(error), _) => (false, Some(format!("the export stopped: {error}"))),
            (None, false) => (
                false,
                Some("the client stopped reading before the end".to_string()),
            ),
            (None, true) => (true, None),
        };
        record_export(
            &self.app.audit,
            &self.actor,
            &self.query,
            &self.format,
            success,
            message,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode};
    use crowsnest_server::api::{run_search, SearchInput};
    use crowsnest_server::auth::Scope;
    use serde_json::Value;

    use crate::tests::{get, ingest, login, post, send};

    fn from(addr: &str, mut request: Request<Body>) -> Request<Body> {
        let addr: SocketAddr = addr.parse().expect("addr");
        request.extensions_mut().insert(ConnectInfo(addr));
        request
    }

    /// The audit events matching `query` once at least `n` are stored.
    async fn audited(running: &crowsnest_server::Running, query: &str, n: usize) -> Vec<Value> {
        let state = &running.state;
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            if state.pipeline.committed_next() < state.pipeline.acked_next() {
                continue;
            }
            let input = SearchInput {
                query: query.to_string(),
                limit: Some(100),
                ..SearchInput::default()
            };
            // Scoped as an export so this look-up is not audited itself.
            let actor = crowsnest_server::audit::Actor {
                export: Some(Default::default()),
                ..Default::default()
            };
            let hits =
                crowsnest_server::audit::scope_actor(actor, run_search(state, "admin", &input))
                    .await
                    .expect("search")
                    .hits;
            if hits.len() >= n {
                return hits;
            }
        }
        panic!("fewer than {n} audit events match `{query}`");
    }

    #[tokio::test]
    async fn console_searches_exports_and_changes_are_audited_with_the_client_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crowsnest_server::ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        config.pipeline.commit_interval_ms = 20;
        config.audit.enabled = true;
        config.integrity.verify_interval_secs = 0;
        let running = crowsnest_server::start(config).await.expect("start");
        let admin = running.new_admin_token.clone().expect("admin");
        let reader = running
            .state
            .tokens
            .create("reader", BTreeSet::from([Scope::Read]))
            .expect("reader");
        let mut lines = String::new();
        let now = chrono::Utc::now().to_rfc3339();
        for i in 0..7 {
            lines.push_str(
                &serde_json::json!({"@timestamp": now, "message": format!("row {i}"), "user": {"name": "exported"}})
                    .to_string(),
            );
            lines.push('\n');
        }
        ingest(&running.state, &admin, lines).await;
        let console = crate::router(running.state.clone());

        let (cookie, _) = login(&console, &reader).await;
        let page = send(
            &console,
            from(
                "127.0.0.31:4000",
                get("/search?q=user.name%3Aexported&range=1h", &cookie),
            ),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK);
        let csv = send(
            &console,
            from(
                "127.0.0.32:4000",
                get(
                    "/search/export?format=csv&q=user.name%3Aexported&range=1h&cols=message",
                    &cookie,
                ),
            ),
        )
        .await;
        assert_eq!(csv.status, StatusCode::OK);
        assert_eq!(csv.body.lines().count(), 8, "{}", csv.body);
        let bad = send(
            &console,
            from(
                "127.0.0.32:4000",
                get("/search/export?format=ndjson&q=(&range=1h", &cookie),
            ),
        )
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);

        // An admin's rule switch and reload from the console.
        let (admin_cookie, csrf) = login(&console, &admin).await;
        let mut rule = String::new();
        for _ in 0..200 {
            let status = crowsnest_server::api::rules_status(&running.state);
            if let Some(id) = status["rules"][0]["id"].as_str() {
                rule = id.to_string();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!rule.is_empty(), "the built-in rules load");
        let switched = send(
            &console,
            from(
                "127.0.0.33:4000",
                post(
                    &format!("/rules/{rule}/disable"),
                    &admin_cookie,
                    &[("csrf", &csrf)],
                ),
            ),
        )
        .await;
        assert_eq!(switched.status, StatusCode::SEE_OTHER, "{}", switched.body);

        let searches = audited(
            &running,
            "event.dataset:crowsnest.audit AND event.action:search AND source.ip:127.0.0.31",
            1,
        )
        .await;
        assert_eq!(searches[0]["user"]["name"], "reader");
        assert_eq!(
            searches[0]["crowsnest"]["audit"]["query"],
            "user.name:exported"
        );
        assert_eq!(searches[0]["crowsnest"]["audit"]["result_count"], 7);

        let exports = audited(
            &running,
            "event.dataset:crowsnest.audit AND event.action:export",
            2,
        )
        .await;
        let ok = exports
            .iter()
            .find(|e| e["event"]["outcome"] == "success")
            .unwrap_or_else(|| panic!("{exports:#?}"));
        assert_eq!(ok["source"]["ip"], "127.0.0.32");
        assert_eq!(ok["user"]["name"], "reader");
        assert_eq!(ok["crowsnest"]["audit"]["format"], "csv");
        assert_eq!(ok["crowsnest"]["audit"]["result_count"], 7);
        assert_eq!(ok["crowsnest"]["audit"]["query"], "user.name:exported");
        let refused = exports
            .iter()
            .find(|e| e["event"]["outcome"] == "failure")
            .unwrap_or_else(|| panic!("{exports:#?}"));
        assert_eq!(refused["crowsnest"]["audit"]["format"], "ndjson");
        // Exports are not audited as searches too.
        let from_export = audited(
            &running,
            "event.dataset:crowsnest.audit AND source.ip:127.0.0.32",
            2,
        )
        .await;
        assert!(
            from_export.iter().all(|e| e["event"]["action"] == "export"),
            "{from_export:#?}"
        );

        let changes = audited(
            &running,
            "event.dataset:crowsnest.audit AND event.action:config.change",
            1,
        )
        .await;
        assert_eq!(changes[0]["user"]["name"], "admin");
        assert_eq!(changes[0]["source"]["ip"], "127.0.0.33");
        assert_eq!(
            changes[0]["crowsnest"]["audit"]["target"],
            format!("rule {rule}: disable")
        );
        assert_eq!(changes[0]["event"]["category"][0], "configuration");
        running.shutdown().await.expect("shutdown");
    }
}
