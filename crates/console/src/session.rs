//! Sessions, login and logout, CSRF.
//!
//! * **Login** takes a token (checked like an API token, with `read` at least, under the API's
//!   throttle of failed authentication). The login form carries a one-time value that must
//!   equal a short-lived cookie set with the form (double submit), so another site cannot log
//!   a browser in.
//! * **Sessions** live in the server's memory, keyed by the SHA-256 of a random 256-bit id
//!   sent as the cookie `cn_session` (`HttpOnly; SameSite=Strict; Path=/`, `Secure` per
//!   `console.secure_cookie`). A session ends at logout, when idle too long, when too old, or
//!   once its token is gone: every request checks the token again, with the scope it needs.
//! * **CSRF**: every session has its own random token; every state-changing request (a POST)
//!   must send it (form field `csrf` or header `X-CSRF-Token`), compared in constant time, and
//!   must not come from another origin (`Origin`, `Sec-Fetch-Site`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use crowsnest_server::auth::Scope;
use crowsnest_server::error::ApiError;
use maud::html;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::layout;
use crate::Console;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "cn_session";
/// The login form's double-submit cookie.
const LOGIN_COOKIE: &str = "cn_login";

struct Session {
    token: String,
    name: String,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// The sessions of the console.
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    max_age: Duration,
    max_sessions: usize,
}

/// The session of a request, once its token has been checked.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    /// The token's name (searches run under its slots).
    pub(crate) name: String,
    /// The session's CSRF token.
    pub(crate) csrf: String,
    /// True when the token has the `admin` scope (actions are shown).
    pub(crate) admin: bool,
}

fn random_hex() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

fn key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Equal in constant time (for equal lengths).
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    pub(crate) fn new(config: &crowsnest_server::config::ConsoleConfig) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            idle: Duration::from_secs(config.session_idle_secs.max(60)),
            max_age: Duration::from_secs(config.session_max_secs.max(60)),
            max_sessions: config.max_sessions.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session; returns its id (the cookie's value).
    fn create(&self, token: String, name: String) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut map = self.lock();
        let (idle, max_age) = (self.idle, self.max_age);
        map.retain(|_, s| now - s.last_seen < idle && now - s.created < max_age);
        while map.len() >= self.max_sessions {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            key(&id),
            Session {
                token,
                name,
                csrf: random_hex(),
                created: now,
                last_seen: now,
            },
        );
        id
    }

    /// The live session of this id: its token and what the caller needs of it.
    fn touch(&self, id: &str) -> Option<(String, String, String)> {
        let now = Instant::now();
        let mut map = self.lock();
        let k = key(id);
        let alive = map
            .get(&k)
            .is_some_and(|s| now - s.last_seen < self.idle && now - s.created < self.max_age);
        if !alive {
            map.remove(&k);
            return None;
        }
        let session = map.get_mut(&k)?;
        session.last_seen = now;
        Some((
            session.token.clone(),
            session.name.clone(),
            session.csrf.clone(),
        ))
    }

    fn remove(&self, id: &str) {
        self.lock().remove(&key(id));
    }
}

/// A cookie's value from the `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn secure(console: &Console, headers: &HeaderMap) -> bool {
    match console.app.config.console.secure_cookie.as_str() {
        "always" => true,
        "never" => false,
        _ => headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https")),
    }
}

fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
    secure: bool,
) -> HeaderValue {
    let mut text = format!("{name}={value}; HttpOnly; SameSite=Strict; Path={path}");
    if let Some(secs) = max_age {
        text.push_str(&format!("; Max-Age={secs}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("cn_invalid=1"))
}

/// Why a request has no usable session.
pub(crate) enum Refused {
    /// Log in (again), then come back to this path; `htmx` when the request came from htmx.
    Login { next: String, htmx: bool },
    /// The token lacks the scope.
    Forbidden(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Login { next, htmx } => {
                let target = format!(
                    "/login?{}",
                    serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default()
                );
                if !htmx {
                    return Redirect::to(&target).into_response();
                }
                // A redirect would be followed inside the fragment (the login page in the
                // histogram); htmx loads the page named by `HX-Redirect` instead.
                let mut response = StatusCode::NO_CONTENT.into_response();
                if let Ok(value) = HeaderValue::from_str(&target) {
                    response.headers_mut().insert("hx-redirect", value);
                }
                response
            }
            Refused::Forbidden(message) => (
                StatusCode::FORBIDDEN,
                layout::frame(
                    "Forbidden",
                    None,
                    html! { p.error role="alert" { (message) } },
                ),
            )
                .into_response(),
        }
    }
}

impl Console {
    /// The session of a request, its token checked again for `scope`.
    pub(crate) fn authorize(
        &self,
        parts_headers: &HeaderMap,
        path_and_query: &str,
        scope: Scope,
    ) -> Result<Auth, Refused> {
        let htmx = parts_headers.contains_key("hx-request");
        let login = || Refused::Login {
            next: path_and_query.to_string(),
            htmx,
        };
        let id = cookie(parts_headers, SESSION_COOKIE).ok_or_else(login)?;
        let (token, name, csrf) = self.sessions.touch(id).ok_or_else(login)?;
        let header = format!("Bearer {token}");
        match self.app.tokens.check(Some(&header), scope) {
            Ok(_) => {}
            Err(crowsnest_server::auth::AuthFailure::Forbidden { token, .. }) => {
                return Err(Refused::Forbidden(format!(
                    "token `{token}` lacks the `{}` scope this needs",
                    match scope {
                        Scope::Admin => "admin",
                        Scope::Read => "read",
                        Scope::Ingest => "ingest",
                    }
                )))
            }
            Err(_) => {
                // The token is gone (replaced or removed): so is the session.
                self.sessions.remove(id);
                return Err(login());
            }
        }
        let admin = self.app.tokens.check(Some(&header), Scope::Admin).is_ok();
        Ok(Auth { name, csrf, admin })
    }

    /// [`Console::authorize`] for a state-changing request: the CSRF token must match and the
    /// request must come from this origin.
    pub(crate) fn authorize_change(
        &self,
        headers: &HeaderMap,
        path: &str,
        form_csrf: Option<&str>,
    ) -> Result<Auth, Box<Response>> {
        let auth = self
            .authorize(headers, path, Scope::Admin)
            .map_err(|refused| Box::new(refused.into_response()))?;
        let sent = form_csrf.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
        if !same_origin(headers) || !sent.is_some_and(|sent| same(sent, &auth.csrf)) {
            return Err(Box::new(csrf_refused()));
        }
        Ok(auth)
    }
}

fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        layout::frame(
            "Refused",
            None,
            html! { p.error role="alert" { "This form expired or came from another site (CSRF check failed). Reload the page and try again." } },
        ),
    )
        .into_response()
}

/// False when the browser says the request came from another site.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let site_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == "same-origin" || v == "none");
    let origin_ok = match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host),
        (Some(_), None) => false,
    };
    site_ok && origin_ok
}

/// The session extractor's output for GET pages: `read` scope.
pub(crate) struct Reader(pub(crate) Auth);

impl FromRequestParts<Arc<Console>> for Reader {
    type Rejection = Refused;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        // A histogram fragment's login target is its page.
        let path = if path.starts_with("/search/") {
            "/search".to_string()
        } else {
            path
        };
        console
            .authorize(&parts.headers, &path, Scope::Read)
            .map(Reader)
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Only a path on this site: `/x`, never `//host` or `/\host`.
/// Browsers drop tabs and newlines from URLs (`/\t/evil.example` is `//evil.example`), so
/// no control character or space is allowed anywhere, and the second character may be neither
/// `/` nor `\`. The result is always a valid `Location` value.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n[1..].starts_with(['/', '\\'])
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.to_string()
        }
        _ => "/search".to_string(),
    }
}

fn login_form(next: &str, error: Option<&str>, secure_cookie: bool) -> Response {
    let csrf = random_hex();
    let body = html! {
        h1 { "Log in to crowsnest" }
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            label for="token" { "API token (" code { "read" } " or " code { "admin" } " scope)" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { "Log in" }
        }
        p.hint {
            "The admin token is in " code { "<data-dir>/admin.token" } "; "
            code { "crowsnest demo" } " prints it. Make a read-only one with "
            code { "POST /api/v1/tokens" } "."
        }
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut response = (status, layout::frame("Log in", None, body)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &csrf, "/login", Some(600), secure_cookie),
    );
    response
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    login_form(
        &safe_next(query.next.as_deref()),
        None,
        secure(&console, &headers),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`.
pub(crate) async fn login(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: bytes::Bytes,
) -> Response {
    let secure = secure(&console, &headers);
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return login_form("/search", Some("The login form was malformed."), secure);
    };
    let next = safe_next(form.next.as_deref());
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(expected, &form.csrf) || !same_origin(&headers) {
        return login_form(
            &next,
            Some("The login form expired or came from another site; try again."),
            secure,
        );
    }
    let addr = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let name = match crowsnest_server::api::check_login(
        &console.app,
        addr,
        "/login",
        &form.token,
        Scope::Read,
    ) {
        Ok(name) => name,
        Err(ApiError::TooManyRequests { message, .. }) => {
            let mut response = login_form(&next, Some(&message), secure);
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            return response;
        }
        Err(ApiError::Forbidden(message)) => return login_form(&next, Some(&message), secure),
        Err(_) => return login_form(&next, Some("Unknown token."), secure),
    };
    let id = console.sessions.create(form.token.trim().to_string(), name);
    let mut response = Redirect::to(&next).into_response();
    let max_age = console.app.config.console.session_max_secs;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, "/", Some(max_age), secure),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/login", Some(0), secure),
    );
    response
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: needs the session's CSRF token (any scope may log out).
pub(crate) async fn logout(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let form: CsrfForm = serde_urlencoded::from_bytes(&body).unwrap_or(CsrfForm {
        csrf: String::new(),
    });
    let Some(id) = cookie(&headers, SESSION_COOKIE) else {
        return Redirect::to("/login").into_response();
    };
    let Some((_, _, csrf)) = console.sessions.touch(id) else {
        return Redirect::to("/login").into_response();
    };
    if !same(&form.csrf, &csrf) || !same_origin(&headers) {
        return csrf_refused();
    }
    console.sessions.remove(id);
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", Some(0), secure(&console, &headers)),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/alerts?x=1")), "/alerts?x=1");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/x\r\nSet-Cookie: a=b",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/\u{7f}",
        ] {
            assert_eq!(safe_next(Some(bad)), "/search", "{bad}");
        }
        assert_eq!(safe_next(None), "/search");
    }

    #[test]
    fn sessions_expire_and_the_least_recently_used_makes_room() {
        let config = crowsnest_server::config::ConsoleConfig {
            max_sessions: 2,
            ..Default::default()
        };
        let sessions = Sessions::new(&config);
        let a = sessions.create("t".into(), "a".into());
        let b = sessions.create("t".into(), "b".into());
        assert!(sessions.touch(&a).is_some()); // a is now the most recently used
        let c = sessions.create("t".into(), "c".into());
        assert!(sessions.touch(&b).is_none(), "b made room");
        assert!(sessions.touch(&a).is_some() && sessions.touch(&c).is_some());
        assert!(sessions.touch("not-a-session").is_none());
        // Idle and age limits.
        let short = Sessions {
            map: Mutex::new(HashMap::new()),
            idle: Duration::from_millis(30),
            max_age: Duration::from_secs(60),
            max_sessions: 10,
        };
        let id = short.create("t".into(), "n".into());
        assert!(short.touch(&id).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(short.touch(&id).is_none(), "idle too long");
        let old = Sessions {
            idle: Duration::from_secs(60),
            max_age: Duration::from_millis(30),
            ..short
        };
        let id = old.create("t".into(), "n".into());
        std::thread::sleep(Duration::from_millis(20));
        assert!(old.touch(&id).is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert!(old.touch(&id).is_none(), "too old, though used");
        // The cookie value is not what is stored.
        assert!(!old.lock().contains_key(&id));
    }

    #[test]
    fn origin_checks() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8470"));
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8470"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8470"),
        );
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cn_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, "cn_session"), Some("abc"));
        assert_eq!(cookie(&headers, "cn_login"), None);
    }
}
