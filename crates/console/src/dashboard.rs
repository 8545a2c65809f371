//! The overview dashboard: a few panels, each a query of the search language run through the
//! API's search (`run_search`, under the same bounds) and linked to the search page, plus the
//! pipeline's health.

use std::sync::Arc;

use axum::extract::{Query as UrlQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use crowsnest_server::api::{run_search, SearchInput};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::layout::frame;
use crate::render::{link, text, value};
use crate::search::{bucket_secs, timechart_data};
use crate::session::{Auth, Reader};
use crate::Console;

const RANGES: [&str; 5] = ["1h", "6h", "24h", "7d", "30d"];

/// A source is called silent when its newest event is older than this.
const SILENT_SECS: i64 = 15 * 60;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    range: String,
}

/// `GET /dashboard?range=24h`.
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<Params>,
) -> Response {
    let range = if RANGES.contains(&params.range.as_str()) {
        params.range.as_str()
    } else {
        "24h"
    };
    let now = Utc::now();
    let secs = crowsnest_model::parse_duration(range)
        .map(|d| d.as_secs())
        .unwrap_or(86_400);
    let start =
        crowsnest_model::duration::before(now, std::time::Duration::from_secs(secs)).unwrap_or(now);
    let span = bucket_secs(secs).max(60);
    let mut panels = Vec::new();
    let over_time = format!("* | timechart span={span}s count() by event.dataset");
    panels.push(
        panel(
            &console,
            &auth,
            "Events per source over time",
            &over_time,
            range,
            start,
            true,
        )
        .await,
    );
    for (title, query) in [
        ("Sources: events and newest event", "* | stats count(), max(@timestamp) as newest by event.dataset | sort -count"),
        ("Alerts by level and rule", "event.kind:alert | stats dc(alert.id) as alerts, sum(alert.count) as detections by rule.level, rule.name | sort -alerts | head 15"),
        ("Top namespaces", "* | stats count() by kubernetes.namespace | sort -count | head 10"),
        ("Top pods", "* | stats count() by kubernetes.pod.name | sort -count | head 10"),
        ("Top images", "* | stats count() by container.image.name | sort -count | head 10"),
        ("Top users (Kubernetes API)", "event.dataset:kubernetes.audit | stats count() by user.name | sort -count | head 10"),
    ] {
        panels.push(panel(&console, &auth, title, query, range, start, false).await);
    }
    let pipeline = &console.app.pipeline;
    let lag = pipeline
        .acked_next()
        .saturating_sub(pipeline.committed_next());
    let problems = pipeline.problems();
    let rejected = console.app.metrics.rejected_by_source();
    let silent = silent_sources(&console, &auth, now).await;
    let body = html! {
        h1 { "Overview" }
        form.filters method="get" action="/dashboard" {
            label for="range" { "Last" }
            select #range name="range" { @for r in RANGES { option value=(r) selected[r == range] { (r) } } }
            button type="submit" { "Show" }
        }
        section.panel aria-labelledby="health" {
            h2 #health { "Ingest health" }
            p { "Events acknowledged but not yet searchable: " strong { (lag) } "." }
            @if problems.is_empty() {
                p { "No problems reported." }
            } @else {
                ul.problems { @for p in &problems { li.error { code { (p.component) } ": " (p.message) " (since " (p.since.to_rfc3339()) ")" } } }
            }
            h3 #rejects { "Rejected lines per input" }
            @if rejected.is_empty() {
                p { "No line or item was rejected since the server started." }
            } @else {
                p.muted { "Lines or items the decoders refused since the server started (" code { "crowsnest_events_rejected_total" } " in " code { "/metrics" } "; the reasons are in each request's answer and the server log)." }
                table.results aria-labelledby="rejects" {
                    thead { tr { th scope="col" { "Input" } th scope="col" { "Rejected" } } }
                    tbody { @for (source, count) in &rejected { tr { td { code { (source) } } td.num { (count) } } } }
                }
            }
            h3 #silent { "Silent sources" }
            (silent)
        }
        div.panels { @for p in panels { (p) } }
    };
    frame("Overview", Some(&auth), body).into_response()
}

async fn panel(
    console: &Arc<Console>,
    auth: &Auth,
    title: &str,
    query: &str,
    range: &str,
    start: DateTime<Utc>,
    chart: bool,
) -> Markup {
    let input = SearchInput {
        query: query.to_string(),
        start: Some(start.to_rfc3339()),
        end: None,
        limit: Some(1000),
        offset: 0,
    };
    let result = run_search(&console.app, &auth.name, &input).await;
    let id = title
        .to_lowercase()
        .replace(|c: char| !c.is_alphanumeric(), "-");
    html! {
        section.panel aria-labelledby=(id) {
            h2 #(id) { (title) }
            p.muted { code { (query) } " · " a href=(link("/search", &[("q", query), ("range", range)])) { "open in search" } }
            @match result {
                Err(error) => p.error role="alert" { (error.to_string()) },
                Ok(response) => {
                    @let columns = response.columns.clone().unwrap_or_default();
                    @let rows = response.rows.clone().unwrap_or_default();
                    @if chart {
                        @if let Some(data) = timechart_data(&columns, &rows) {
                            div.chart data-chart=(data) role="img" aria-label={ (title) ": " (response.total) " events" } {}
                        }
                        p.muted { (response.total) " events." }
                    } @else if rows.is_empty() {
                        p.muted { "Nothing in this range." }
                    } @else {
                        @let newest = columns.iter().position(|c| c == "newest");
                        table.results {
                            thead { tr { @for c in &columns { th scope="col" { (c) } } @if newest.is_some() { th scope="col" { "state" } } } }
                            tbody {
                                @for row in &rows {
                                    tr {
                                        @for cell in row { td { (value(&text(cell))) } }
                                        @if let Some(i) = newest {
                                            td { (silence(row.get(i))) }
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
}

/// How far back a source that stopped sending is still looked for.
const SILENT_LOOKBACK: &str = "7d";
const SILENT_LOOKBACK_DAYS: i64 = 7;

/// The sources (`event.dataset`) that sent in the last [`SILENT_LOOKBACK`] but nothing for
/// [`SILENT_SECS`], through the API's search.
async fn silent_sources(console: &Arc<Console>, auth: &Auth, now: DateTime<Utc>) -> Markup {
    let query = "NOT event.kind:alert | stats max(@timestamp) as newest, count() by event.dataset | sort newest";
    let input = SearchInput {
        query: query.to_string(),
        start: Some(
            (now - chrono::Duration::days(SILENT_LOOKBACK_DAYS))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        end: None,
        limit: Some(1000),
        offset: 0,
    };
    let result = run_search(&console.app, &auth.name, &input).await;
    html! {
        @match result {
            Err(error) => p.error role="alert" { "Sources could not be read: " (error.to_string()) },
            Ok(response) => {
                @let columns = response.columns.clone().unwrap_or_default();
                @let rows = response.rows.clone().unwrap_or_default();
                @let (source, newest) = (columns.iter().position(|c| c == "event.dataset"), columns.iter().position(|c| c == "newest"));
                @let silent: Vec<(String, String, i64)> = rows.iter().filter_map(|row| {
                    let name = text(row.get(source?)?);
                    let newest_text = row.get(newest?).and_then(Value::as_str)?.to_string();
                    let at = DateTime::parse_from_rfc3339(&newest_text).ok()?.with_timezone(&Utc);
                    let age = (now - at).num_seconds();
                    (age > SILENT_SECS).then_some((name, newest_text, age))
                }).collect();
                @if silent.is_empty() {
                    p { "Every source that sent in the last " (SILENT_LOOKBACK) " sent in the last " (SILENT_SECS / 60) " minutes (" (rows.len()) " sources)." }
                } @else {
                    p.error role="status" { (silent.len()) " of " (rows.len()) " sources that sent in the last " (SILENT_LOOKBACK) " sent nothing for " (SILENT_SECS / 60) " minutes or more." }
                    table.results aria-labelledby="silent" {
                        thead { tr { th scope="col" { "Source" } th scope="col" { "Newest event" } th scope="col" { "Silent for" } } }
                        tbody {
                            @for (name, at, age) in &silent {
                                tr {
                                    td { a href=(link("/search", &[("q", &crate::render::with_filter("", "event.dataset", name).unwrap_or_default()), ("range", SILENT_LOOKBACK)])) { (name) } }
                                    td { (at) }
                                    td { (human_age(*age)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `95 min`, `26 h`, `3 d`.
fn human_age(secs: i64) -> String {
    match secs {
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// "silent" when a source's newest event is older than [`SILENT_SECS`].
fn silence(newest: Option<&Value>) -> Markup {
    let age = newest
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds());
    html! {
        @match age {
            Some(a) if a > SILENT_SECS => span.error { "silent for " (a / 60) " min" },
            Some(_) => "sending",
            None => "",
        }
    }
}
