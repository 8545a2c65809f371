//! The rules page: the detector's rule status (`rules_status`, the core of `GET /api/v1/rules`),
//! the rules that raised alerts in a range with their counts (a search over the alert records),
//! and a reload button (`request_rules_reload`, admin scope, CSRF).

use std::sync::Arc;

use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use crowsnest_server::api::{request_rules_reload, rules_status, run_search, SearchInput};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use crate::layout::frame;
use crate::render::{link, text, value, with_filter};
use crate::session::Reader;
use crate::Console;

const RANGES: [&str; 4] = ["24h", "7d", "30d", "90d"];
const HITS: &str = "event.kind:alert | stats dc(alert.id) as alerts, sum(alert.count) as detections, max(@timestamp) as last by rule.id, rule.name, rule.level | sort -detections | head 500";

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    range: String,
}

/// `GET /rules?range=7d`.
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<Params>,
) -> Response {
    let range = if RANGES.contains(&params.range.as_str()) {
        params.range.as_str()
    } else {
        "7d"
    };
    let status = rules_status(&console.app);
    let enabled = status.get("enabled") == Some(&Value::Bool(true));
    let start = crowsnest_model::parse_duration(range)
        .ok()
        .and_then(|d| crowsnest_model::duration::before(Utc::now(), d));
    let hits = run_search(
        &console.app,
        &auth.name,
        &SearchInput {
            query: HITS.into(),
            start: start.map(|t| t.to_rfc3339()),
            end: None,
            limit: Some(500),
            offset: 0,
        },
    )
    .await;
    let problems: Vec<String> = status
        .get("problems")
        .and_then(Value::as_array)
        .map(|p| p.iter().map(text).collect())
        .unwrap_or_default();
    let body = html! {
        h1 { "Rules" }
        @if !enabled {
            p.error role="alert" { "Detection is disabled (" code { "detect.enabled = false" } ")." }
        } @else {
            p { strong { (status.get("loaded").map(text).unwrap_or_default()) } " rules and correlations running, loaded "
                (status.get("loaded_at").map(text).unwrap_or_else(|| "never".into())) "." }
            @if auth.admin {
                form method="post" action="/rules/reload" {
                    input type="hidden" name="csrf" value=(auth.csrf);
                    button type="submit" { "Reload the rules" }
                }
            }
            h2 { "Problems" }
            @if problems.is_empty() {
                p { "Every rule file loaded." }
            } @else {
                ul { @for p in &problems { li.error { (value(p)) } } }
            }
        }
        h2 { "Rules that raised alerts" }
        form.filters method="get" action="/rules" {
            label for="range" { "Last" }
            select #range name="range" { @for r in RANGES { option value=(r) selected[r == range] { (r) } } }
            button type="submit" { "Show" }
        }
        @match hits {
            Err(error) => p.error role="alert" { (error.to_string()) },
            Ok(response) => {
                @let columns = response.columns.unwrap_or_default();
                @let rows = response.rows.unwrap_or_default();
                p.summary { (rows.len()) " rules raised alerts in the last " (range) "; rules without a hit are not listed." }
                div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
                    table.results {
                        thead { tr { @for c in &columns { th scope="col" { (c) } } } }
                        tbody {
                            @for row in &rows {
                                @let id = row.first().map(text).unwrap_or_default();
                                tr {
                                    @for (i, cell) in row.iter().enumerate() {
                                        td {
                                            @if i == 1 {
                                                a href=(link("/alerts", &[("rule", &id), ("since", range)])) { (text(cell)) }
                                            } @else { (text(cell)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                p { a href=(link("/search", &[("q", &with_filter("", "event.kind", "alert").unwrap_or_default()), ("range", range)])) { "All alert records in search" } }
            }
        }
    };
    frame("Rules", Some(&auth), body).into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /rules/reload` (admin scope, CSRF token).
pub(crate) async fn reload(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let form: CsrfForm = serde_urlencoded::from_bytes(&body).unwrap_or(CsrfForm {
        csrf: String::new(),
    });
    let auth = match console.authorize_change(&headers, "/rules", Some(&form.csrf)) {
        Ok(auth) => auth,
        Err(response) => return *response,
    };
    match request_rules_reload(&console.app) {
        Ok(()) => Redirect::to("/rules").into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            frame(
                "Reload refused",
                Some(&auth),
                html! { p.error role="alert" { (error.to_string()) } },
            ),
        )
            .into_response(),
    }
}
