//! The crowsnest web console, served by `crowsnest server` on the API's port at `/`.
//!
//! Server-rendered HTML (`maud`: every value is escaped at compile time unless a template says
//! otherwise, and none does), `htmx` for the histogram fragment, `uPlot` for time series; the
//! three are embedded in the binary ([`assets`]), so `cargo build` needs neither Node nor a
//! network. Pages work without JavaScript (plain forms and links); with it, the histogram and
//! charts appear.
//!
//! The console is a client of the API's own functions (`crowsnest_server::api::run_search`,
//! `list_alerts`, `list_incidents`, `submit_action`, `list_actions`, `approve_action`,
//! `undo_action`): same bounds, same answers, no second implementation. Every response carries a strict Content Security Policy
//! ([`security_headers`]): no inline script, no eval, nothing from another origin.
//!
//! Routes: `/login`, `/logout`, `/dashboard`, `/search` (with `/search/histogram`, `/search/export` and `/search/suggest`),
//! `/alerts`, `/incidents`, `/incidents/{id}` (and its `/action` and `/respond`), `/rules` (and `/rules/reload`, `/rules/{id}`, `/rules/{id}/enable|disable`), `/coverage`, `/compliance` (and `/compliance/{framework}`), `/exec`, `/exec/session` and `/exec/docker`, `/assets/{file}`.

mod alerts;
mod assets;
mod audit_context;
mod compliance;
mod coverage;
mod dashboard;
mod exec;
mod incidents;
mod layout;
mod render;
mod rules;
mod search;
mod session;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use crowsnest_server::AppState;

/// The Content Security Policy of every console response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's state: the server's, and the sessions.
pub(crate) struct Console {
    pub(crate) app: Arc<AppState>,
    pub(crate) sessions: session::Sessions,
}

/// The console's routes, for [`crowsnest_server::start_with`]. Empty when
/// `console.enabled = false`.
pub fn router(app: Arc<AppState>) -> Router {
    if !app.config.console.enabled {
        return Router::new();
    }
    let console = Arc::new(Console {
        sessions: session::Sessions::new(&app.config.console),
        app,
    });
    Router::new()
        .route("/", get(|| async { Redirect::to("/search") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/search", get(search::page))
        .route("/search/histogram", get(search::histogram))
        .route("/search/export", get(search::export))
        .route("/search/suggest", get(search::suggest))
        .route("/dashboard", get(dashboard::page))
        .route("/alerts", get(alerts::page))
        .route("/exec", get(exec::list))
        .route("/exec/session", get(exec::session))
        .route("/exec/docker", get(exec::docker_session))
        .route("/rules", get(rules::page))
        .route("/rules/reload", post(rules::reload))
        .route("/rules/{id}", get(rules::show))
        .route("/rules/{id}/{action}", post(rules::switch))
        .route("/coverage", get(coverage::page))
        .route("/compliance", get(compliance::list))
        .route("/compliance/{framework}", get(compliance::show))
        .route("/incidents", get(incidents::list))
        .route("/incidents/{id}", get(incidents::show))
        .route("/incidents/{id}/action", post(incidents::act))
        .route("/incidents/{id}/respond", post(incidents::respond))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            audit_context::scope,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(console)
}

/// Adds the security headers to every console response: the CSP, `nosniff`, no framing,
/// `no-store` for everything but the hashed assets, and the referrer policy `same-origin`
/// (not `no-referrer`: with it browsers send `Origin: null` on form posts, and the CSRF check
/// needs the real origin).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests;
