//! The rules pages. `/rules`: every loaded rule and correlation (`rules_status`, the core of
//! `GET /api/v1/rules`) with its level, status, tags, file, whether it runs, and its alerts in
//! a range (a search over the alert records); the files that could not be used; reload.
//! `/rules/{id}`: one rule (`rule_detail`) with its source, enable/disable (`set_rule_enabled`,
//! admin scope, CSRF), and a test over stored events of a past range (`test_rule`: bounded,
//! shows matches, never alerts).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use crowsnest_server::api::{
    request_rules_reload, rule_detail, rules_status, run_search, set_rule_enabled, test_rule,
    RuleTestInput, SearchInput,
};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::layout::frame;
use crate::render::{link, text, value, with_filter};
use crate::session::{Auth, Reader};
use crate::Console;

const RANGES: [&str; 4] = ["24h", "7d", "30d", "90d"];
const TEST_RANGES: [&str; 5] = ["1h", "24h", "7d", "30d", "90d"];
const HITS: &str = "event.kind:alert | stats dc(alert.id) as alerts, sum(alert.count) as detections, max(@timestamp) as last by rule.id | head 5000";

/// The page of a rule (its id percent-encoded).
pub(crate) fn rule_path(id: &str) -> String {
    format!(
        "/rules/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// Alerts per rule id in `range`: (alerts, detections, last).
pub(crate) async fn hits(
    console: &Console,
    auth: &Auth,
    range: &str,
) -> Result<HashMap<String, (String, String, String)>, String> {
    let start = crowsnest_model::parse_duration(range)
        .ok()
        .and_then(|d| crowsnest_model::duration::before(Utc::now(), d));
    let response = run_search(
        &console.app,
        &auth.name,
        &SearchInput {
            query: HITS.into(),
            start: start.map(|t| t.to_rfc3339()),
            end: None,
            limit: Some(5000),
            offset: 0,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(response
        .rows
        .unwrap_or_default()
        .into_iter()
        .filter_map(|row| {
            let cell = |i: usize| row.get(i).map(text).unwrap_or_default();
            Some((row.first().map(text)?, (cell(1), cell(2), cell(3))))
        })
        .collect())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    range: String,
}

fn level_badge(level: &str) -> Markup {
    html! { span class=(format!("level {level}")) { (level) } }
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
    let hits = hits(&console, &auth, range).await;
    let problems: Vec<String> = status
        .get("problems")
        .and_then(Value::as_array)
        .map(|p| p.iter().map(text).collect())
        .unwrap_or_default();
    let rules: Vec<Value> = status
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let off = rules.iter().filter(|r| r["enabled"] == false).count();
    let no_hits = HashMap::new();
    let body = html! {
        h1 { "Rules" }
        @if !enabled {
            p.error role="alert" { "Detection is disabled (" code { "detect.enabled = false" } ")." }
        } @else {
            p { strong { (rules.len()) } " rules and correlations loaded (" (off) " disabled), "
                (status.get("loaded").map(text).unwrap_or_default()) " running; loaded "
                (status.get("loaded_at").map(text).unwrap_or_else(|| "never".into())) "." }
            @if auth.admin {
                form method="post" action="/rules/reload" {
                    input type="hidden" name="csrf" value=(auth.csrf);
                    button type="submit" { "Reload the rule files" }
                }
            }
            h2 { "Files with errors" }
            @if problems.is_empty() {
                p { "Every rule file loaded." }
            } @else {
                ul { @for p in &problems { li.error { (value(p)) } } }
            }
            h2 #list { "Loaded rules" }
            form.filters method="get" action="/rules" {
                label for="range" { "Alerts in the last" }
                select #range name="range" { @for r in RANGES { option value=(r) selected[r == range] { (r) } } }
                button type="submit" { "Show" }
            }
            @if let Err(error) = &hits {
                p.error role="alert" { "Alert counts unavailable: " (error) }
            }
            @let hits = hits.as_ref().unwrap_or(&no_hits);
            p.summary { (hits.len()) " rules raised alerts in the last " (range) "." }
            div.scroll tabindex="0" role="region" aria-label="Rules, scrolls sideways" {
                table.results {
                    thead { tr {
                        th scope="col" { "Rule" } th scope="col" { "Level" } th scope="col" { "Status" } th scope="col" { "Kind" }
                        th scope="col" { "Tags" } th scope="col" { "Alerts" } th scope="col" { "Detections" } th scope="col" { "Last alert" }
                        th scope="col" { "Runs" }
                    } }
                    tbody {
                        @for rule in &rules {
                            @let id = text(&rule["id"]);
                            @let hit = hits.get(&id);
                            tr {
                                td.narrow { a href=(rule_path(&id)) { (text(&rule["title"])) } }
                                td { (level_badge(&text(&rule["level"]))) }
                                td { (text(&rule["status"])) }
                                td { (text(&rule["kind"])) }
                                td.narrow { (rule["tags"].as_array().map(|t| t.iter().map(text).collect::<Vec<_>>().join(" ")).unwrap_or_default()) }
                                td.num {
                                    @if let Some((alerts, _, _)) = hit {
                                        a href=(link("/alerts", &[("rule", &id), ("since", range)])) { (alerts) }
                                    } @else { "0" }
                                }
                                td.num { (hit.map(|h| h.1.as_str()).unwrap_or("0")) }
                                td { (hit.map(|h| h.2.as_str()).unwrap_or("")) }
                                td { @if rule["enabled"] == true { "yes" } @else { strong { "disabled" } } }
                            }
                        }
                    }
                }
            }
            p { a href=(link("/search", &[("q", &with_filter("", "event.kind", "alert").unwrap_or_default()), ("range", range)])) { "All alert records in search" } }
        }
    };
    frame("Rules", Some(&auth), body).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TestParams {
    /// A duration back from now (`24h`).
    #[serde(default)]
    range: String,
    #[serde(default)]
    max_events: String,
}

/// `GET /rules/{id}?range=24h&max_events=`: the rule, its source, and (with `range`) a test
/// over the stored events of that range.
pub(crate) async fn show(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    Path(id): Path<String>,
    UrlQuery(params): UrlQuery<TestParams>,
) -> Response {
    let rule = match rule_detail(&console.app, &id) {
        Ok(rule) => rule,
        Err(error) => {
            let status = match &error {
                crowsnest_server::error::ApiError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            return (
                status,
                frame(
                    "Rule",
                    Some(&auth),
                    html! { h1 { "Rule" } p.error role="alert" { (error.to_string()) } p { a href="/rules" { "All rules" } } },
                ),
            )
                .into_response();
        }
    };
    let testing = TEST_RANGES.contains(&params.range.as_str());
    let max_events = params.max_events.trim().parse::<usize>().ok();
    let test = if testing {
        let input = RuleTestInput {
            start: Some(params.range.clone()),
            end: None,
            max_events,
        };
        Some(test_rule(&console.app, &id, &input).await)
    } else {
        None
    };
    let enabled = rule["enabled"] == true;
    let tags: Vec<String> = rule["tags"]
        .as_array()
        .map(|t| t.iter().map(text).collect())
        .unwrap_or_default();
    let body = html! {
        p { a href="/rules" { "← All rules" } }
        h1 { (text(&rule["title"])) }
        dl.facts {
            dt { "Id" } dd { code { (id) } }
            dt { "Level" } dd { (level_badge(&text(&rule["level"]))) }
            dt { "Status" } dd { (text(&rule["status"])) }
            dt { "Kind" } dd { (text(&rule["kind"])) }
            dt { "Tags" } dd {
                @for tag in &tags {
                    @if let Some(t) = crate::coverage::technique_of(tag) {
                        a href=(link("/coverage", &[("technique", &t)])) { (tag) } " "
                    } @else { (tag) " " }
                }
            }
            dt { "File" } dd { code { (text(&rule["file"])) } }
            dt { "Runs" } dd { @if enabled { "yes" } @else { strong { "disabled" } " (it matches nothing on the live stream)" } }
            dt { "Alerts" } dd { a href=(link("/alerts", &[("rule", &id), ("since", "30d")])) { "its alerts of the last 30 days" } }
        }
        @if let Some(description) = rule["description"].as_str() { p { (value(description)) } }
        @if auth.admin {
            form method="post" action=(format!("{}/{}", rule_path(&id), if enabled { "disable" } else { "enable" })) {
                input type="hidden" name="csrf" value=(auth.csrf);
                button type="submit" { @if enabled { "Disable this rule" } @else { "Enable this rule" } }
            }
        }
        h2 #test { "Test on a past range" }
        p.hint { "Runs this rule alone over the stored events of the range, oldest first, without raising alerts: at most "
            (crowsnest_server::api::DEFAULT_TEST_EVENTS) " events (the newest) unless told otherwise, and "
            (crowsnest_server::api::TEST_BUDGET.as_secs()) " s."
            @if rule["kind"] == "baseline" { " A baseline rule starts from an empty baseline here: it learns during its learning window at the start of the range and reports only after it." }
            @if rule["kind"] == "correlation" { " The rules this correlation needs run with it; only its own matches are counted." } }
        form.filters method="get" action=(rule_path(&id)) {
            label for="test-range" { "Last" }
            select #test-range name="range" {
                @for r in TEST_RANGES { option value=(r) selected[r == params.range || (!testing && r == "24h")] { (r) } }
            }
            label for="max-events" { "At most (events)" }
            input #max-events name="max_events" inputmode="numeric" size="9" value=(params.max_events);
            button type="submit" { "Run the test" }
        }
        @if let Some(test) = &test { (test_result(&test.as_ref().map_err(ToString::to_string))) }
        h2 { "Source" }
        @if rule["source_truncated"] == true { p.hint { "The first 256 KB of the file." } }
        @match rule["source"].as_str() {
            Some(source) => pre.original tabindex="0" aria-label="Rule source" { code { (source) } },
            None => p.muted { "The rule file cannot be read any more." },
        }
    };
    frame(&format!("Rule {}", text(&rule["title"])), Some(&auth), body).into_response()
}

fn test_result(test: &Result<&Value, String>) -> Markup {
    let test = match test {
        Ok(test) => *test,
        Err(error) => return html! { p.error role="alert" { (error) } },
    };
    let results: Vec<Value> = test["results"].as_array().cloned().unwrap_or_default();
    html! {
        p.summary role="status" {
            strong { (text(&test["matches"])) " matches" } " in " (text(&test["events_read"])) " events read of "
            (text(&test["events_in_range"])) " in the range (" (text(&test["start"])) " to " (text(&test["end"])) "), "
            (text(&test["elapsed_ms"])) " ms."
            @if test["shown"] != test["matches"] { " The first " (text(&test["shown"])) " are listed." }
        }
        @if let Some(capped) = test["capped"].as_str() { p.error role="alert" { "Capped: " (capped) } }
        @if !results.is_empty() {
            div.scroll tabindex="0" role="region" aria-label="Matches, scroll sideways" {
                table.results {
                    thead { tr {
                        th scope="col" { "Time" } th scope="col" { "Namespace" } th scope="col" { "Pod" } th scope="col" { "User" }
                        th scope="col" { "Command or message" } th scope="col" { "Events" }
                    } }
                    tbody {
                        @for m in &results {
                            tr {
                                td { (text(&m["timestamp"])) }
                                td { (text(&m["kubernetes.namespace"])) }
                                td { (text(&m["kubernetes.pod.name"])) }
                                td { (text(&m["user.name"])) }
                                td.narrow { (text(if m["process.command_line"].is_null() { &m["message"] } else { &m["process.command_line"] })) }
                                td {
                                    @for e in m["event_ids"].as_array().into_iter().flatten().take(10) {
                                        @let e = text(e);
                                        a href=(link("/search", &[("q", &with_filter("", "event.id", &e).unwrap_or_default()), ("range", "90d")])) { (e.chars().take(12).collect::<String>()) } " "
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn csrf_of(body: &[u8]) -> String {
    serde_urlencoded::from_bytes::<CsrfForm>(body)
        .map(|f| f.csrf)
        .unwrap_or_default()
}

/// `POST /rules/reload` (admin scope, CSRF token).
pub(crate) async fn reload(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let auth = match console.authorize_change(&headers, "/rules", Some(&csrf_of(&body))) {
        Ok(auth) => auth,
        Err(response) => return *response,
    };
    match request_rules_reload(&console.app) {
        Ok(()) => Redirect::to("/rules").into_response(),
        Err(error) => refused(&auth, "Reload refused", &error.to_string()),
    }
}

fn refused(auth: &Auth, title: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        frame(
            title,
            Some(auth),
            html! { h1 { (title) } p.error role="alert" { (message) } p { a href="/rules" { "All rules" } } },
        ),
    )
        .into_response()
}

/// `POST /rules/{id}/enable` and `/rules/{id}/disable` (admin scope, CSRF token).
pub(crate) async fn switch(
    State(console): State<Arc<Console>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let page = rule_path(&id);
    let auth = match console.authorize_change(&headers, &page, Some(&csrf_of(&body))) {
        Ok(auth) => auth,
        Err(response) => return *response,
    };
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return refused(&auth, "Unknown action", "expected enable or disable"),
    };
    match set_rule_enabled(&console.app, &id, enabled) {
        Ok(_) => Redirect::to(&page).into_response(),
        Err(error) => refused(&auth, "Change refused", &error.to_string()),
    }
}
