//! The search page, its histogram fragment and its export.
//!
//! Every view is a URL: `/search?q=…&range=1h` (or `start=…&end=…`), `cols=a,b,c`,
//! `offset=…`. The page is a plain GET form, so it works without JavaScript; the histogram is
//! fetched separately by htmx (`hx-sync` replaces a running request, and leaving the page
//! aborts it, which cancels its search on the server).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use crowsnest_query::{Agg, AggFunc, Pipe, Query};
use crowsnest_server::api::{parse_bounded, run_bounded, run_search, SearchInput};
use crowsnest_server::error::ApiError;
use crowsnest_store::SearchRequest;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::layout::frame;
use crate::render::{self, flatten, link, text, value, with_filter};
use crate::session::{Auth, Reader};
use crate::Console;

/// Most events or rows on one page.
pub(crate) const MAX_PAGE_ROWS: usize = 200;
/// Events or rows on a page unless `limit` says otherwise.
const DEFAULT_PAGE_ROWS: usize = 100;
/// Most buckets of the histogram, whatever the range.
pub(crate) const MAX_BUCKETS: u64 = 300;
/// Most fields listed in the field list.
const MAX_FIELDS: usize = 80;
/// The relative ranges offered.
const RANGES: [&str; 6] = ["15m", "1h", "6h", "24h", "7d", "30d"];
/// Columns shown unless `cols` says otherwise.
const DEFAULT_COLUMNS: &str =
    "@timestamp,event.dataset,kubernetes.namespace,user.name,event.action,message";

/// The page's parameters (all text: a bad number is an error on the page, not a 400).
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    q: String,
    #[serde(default)]
    range: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    cols: String,
    #[serde(default)]
    limit: String,
    #[serde(default)]
    offset: String,
    #[serde(default)]
    format: String,
}

impl Params {
    fn range(&self) -> &str {
        if self.range.is_empty() {
            "24h"
        } else {
            &self.range
        }
    }

    fn columns(&self) -> Vec<String> {
        let text = if self.cols.trim().is_empty() {
            DEFAULT_COLUMNS
        } else {
            &self.cols
        };
        text.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .take(20)
            .map(str::to_string)
            .collect()
    }

    /// The link to this view with some parameters changed.
    fn url(&self, path: &str, changes: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, &str)> = vec![
            ("q", &self.q),
            (
                "range",
                if self.start.is_empty() && self.end.is_empty() {
                    &self.range
                } else {
                    ""
                },
            ),
            ("start", &self.start),
            ("end", &self.end),
            ("cols", &self.cols),
            ("limit", &self.limit),
        ];
        for (k, v) in changes {
            params.retain(|(key, _)| key != k);
            params.push((k, v));
        }
        link(path, &params)
    }
}

/// A resolved time range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: Option<DateTime<Utc>>,
    pub(crate) end: Option<DateTime<Utc>>,
}

fn parse_instant(name: &str, text: &str) -> Result<Option<DateTime<Utc>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Some(t.and_utc()));
        }
    }
    Err(format!(
        "`{name}` must be a time like 2024-05-01T12:00 (UTC) or RFC 3339 2024-05-01T12:00:00Z"
    ))
}

/// The time range of a view: `start`/`end` when either is given, else the relative `range`.
pub(crate) fn window(params: &Params, now: DateTime<Utc>) -> Result<Window, String> {
    if !params.start.trim().is_empty() || !params.end.trim().is_empty() {
        let start = parse_instant("start", &params.start)?;
        let end = parse_instant("end", &params.end)?;
        if let (Some(s), Some(e)) = (start, end) {
            if s >= e {
                return Err("`start` must be before `end`".into());
            }
        }
        return Ok(Window { start, end });
    }
    let range = params.range();
    let duration =
        crowsnest_model::parse_duration(range).map_err(|e| format!("invalid range: {e}"))?;
    let start = crowsnest_model::duration::before(now, duration)
        .ok_or_else(|| format!("range `{range}` reaches before the earliest time there is"))?;
    Ok(Window {
        start: Some(start),
        end: None,
    })
}

fn parse_count(name: &str, text: &str, default: usize, max: usize) -> Result<usize, String> {
    if text.trim().is_empty() {
        return Ok(default);
    }
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("`{name}` must be a whole number"))?;
    if n > max {
        return Err(format!("`{name}` is at most {max}"));
    }
    Ok(n)
}

/// An error of the API, as text for the page, with the query column when it is a syntax error.
fn api_message(error: &ApiError) -> (String, Option<usize>) {
    match error {
        ApiError::BadRequest { message, details } => (
            message.clone(),
            details
                .as_ref()
                .and_then(|d| d.get("column"))
                .and_then(Value::as_u64)
                .and_then(|c| usize::try_from(c).ok()),
        ),
        ApiError::Internal(_) => (
            "the search failed on the server; its log says why".into(),
            None,
        ),
        other => (other.to_string(), None),
    }
}

/// The query with a caret under the column of its syntax error.
fn error_at(query: &str, message: &str, column: Option<usize>) -> Markup {
    html! {
        div.error #query-error role="alert" {
            p { (message) }
            @if let Some(column) = column {
                pre.caret aria-hidden="true" {
                    (query) "\n" (" ".repeat(column.saturating_sub(1))) "^"
                }
            }
        }
    }
}

fn form(params: &Params, error: Option<Markup>) -> Markup {
    let absolute = !params.start.is_empty() || !params.end.is_empty();
    html! {
        h1.sr { "Search" }
        form.search method="get" action="/search" role="search" {
            div.qrow {
                label for="q" { "Query" }
                input #q type="search" name="q" value=(params.q) placeholder="kubernetes.namespace:prod AND NOT user.name:system\\:* | stats count() by user.name"
                    spellcheck="false" autocomplete="off" aria-describedby="query-error"
                    role="combobox" aria-autocomplete="list" aria-controls="q-suggest" aria-expanded="false";
                ul #q-suggest .suggest role="listbox" aria-label="Suggestions" hidden {}
                button type="submit" { "Search" }
            }
            div.trow {
                label for="range" { "Last" }
                select #range name="range" {
                    @for r in RANGES {
                        option value=(r) selected[!absolute && params.range() == r] { (r) }
                    }
                }
                span { "or from" }
                label.sr for="start" { "Start (UTC)" }
                input #start name="start" type="text" value=(params.start) placeholder="2024-05-01T12:00" size="18";
                span { "to" }
                label.sr for="end" { "End (UTC)" }
                input #end name="end" type="text" value=(params.end) placeholder="now" size="18";
                label for="cols" { "Columns" }
                input #cols name="cols" type="text" value=(if params.cols.is_empty() { DEFAULT_COLUMNS } else { &params.cols }) size="40";
            }
            @if let Some(error) = error { (error) }
        }
    }
}

/// `GET /search`.
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<Params>,
) -> Response {
    let title = if params.q.is_empty() {
        "Search".to_string()
    } else {
        format!("Search: {}", params.q)
    };
    let body = match results(&console, &auth, &params).await {
        Ok(results) => html! { (form(&params, None)) (results) },
        Err((message, column)) => {
            html! { (form(&params, Some(error_at(&params.q, &message, column)))) }
        }
    };
    frame(&title, Some(&auth), body).into_response()
}

async fn results(
    console: &Arc<Console>,
    auth: &Auth,
    params: &Params,
) -> Result<Markup, (String, Option<usize>)> {
    let window = window(params, Utc::now()).map_err(|e| (e, None))?;
    let limit = parse_count("limit", &params.limit, DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS)
        .map_err(|e| (e, None))?;
    let offset = parse_count("offset", &params.offset, 0, usize::MAX).map_err(|e| (e, None))?;
    let input = SearchInput {
        query: params.q.clone(),
        start: window.start.map(|t| t.to_rfc3339()),
        end: window.end.map(|t| t.to_rfc3339()),
        limit: Some(limit),
        offset,
    };
    let response = run_search(&console.app, &auth.name, &input)
        .await
        .map_err(|e| api_message(&e))?;
    let parsed = crowsnest_query::parse(&params.q).ok();
    let tabular = parsed.as_ref().is_some_and(Query::is_tabular);
    let window_max = console.app.config.max_search_limit.saturating_mul(10);
    let histogram_url = params.url("/search/histogram", &[]);
    Ok(html! {
        section.histogram aria-label="Events over time" {
            div #histogram hx-get=(histogram_url) hx-trigger="load" hx-sync="this:replace" hx-swap="innerHTML" {
                p.muted { "Loading the histogram…" }
            }
            noscript { p.muted { "The histogram needs JavaScript; the results below do not." } }
        }
        @if tabular {
            @let rows = response.rows.clone().unwrap_or_default();
            @let columns = response.columns.clone().unwrap_or_default();
            p.summary #summary {
                (rows.len()) " rows from " (response.total) " matching events (exact count), in " (response.took_ms) " ms."
                @if rows.len() >= limit { " Only the first " (limit) " rows are shown; add " code { "| head" } " or narrow the query." }
            }
            @if let Some(Pipe::Timechart { .. }) = parsed.as_ref().and_then(|q| q.pipes.first()) {
                @if let Some(chart) = timechart_data(&columns, &rows) {
                    div.chart data-chart=(chart) role="img" aria-label="Chart of the table below" {}
                }
            }
            (table(&columns, &rows))
        } @else {
            @let shown = response.hits.len();
            p.summary #summary {
                @if shown == 0 {
                    "No events match in this time range (" (response.total) " in all)."
                } @else {
                    "Events " (offset + 1) "–" (offset + shown) " of " (response.total) " matching (exact count), newest first, in " (response.took_ms) " ms."
                }
                @if response.total as usize > window_max { " Paging stops at " (window_max) "; narrow the query or the time range to see the rest." }
            }
            @if !response.hits.is_empty() { (field_list(params, &response.hits)) }
            (hits_table(params, &response.hits, offset))
            nav.pager aria-label="Pages" {
                @if offset > 0 {
                    a href=(params.url("/search", &[("offset", &offset.saturating_sub(limit).to_string())])) { "← Newer" }
                }
                @if (offset + shown) < response.total as usize && offset + shown + limit <= window_max {
                    a href=(params.url("/search", &[("offset", &(offset + shown).to_string())])) { "Older →" }
                }
            }
        }
        p.export {
            "Export (up to " (window_max) " " @if tabular { "rows" } @else { "events" } "): "
            a href=(params.url("/search/export", &[("format", "csv")])) download { "CSV" }
            " · "
            a href=(params.url("/search/export", &[("format", "ndjson")])) download { "NDJSON" }
        }
    })
}

fn table(columns: &[String], rows: &[Vec<Value>]) -> Markup {
    html! {
        div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
            table.results {
                thead { tr { @for c in columns { th scope="col" { (c) } } } }
                tbody {
                    @for row in rows {
                        tr { @for cell in row { td { (value(&text(cell))) } } }
                    }
                }
            }
        }
    }
}

fn hits_table(params: &Params, hits: &[Value], offset: usize) -> Markup {
    let columns = params.columns();
    html! {
        div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
            table.results.events {
                thead { tr { @for c in &columns { th scope="col" { (c) } } } }
                @for (i, hit) in hits.iter().enumerate() {
                    tbody.event {
                        tr {
                            @for c in &columns {
                                td {
                                    @if let Some(v) = render::field(hit, c) {
                                        (value_link(params, c, v))
                                    }
                                }
                            }
                        }
                        tr.detail {
                            td colspan=(columns.len()) {
                                details #{"event-" (offset + i + 1)} {
                                    summary { "Event " (offset + i + 1) ": fields and original" }
                                    (event_detail(params, hit))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The fields of the events on this page, by how many have them, each with links to show it
/// as a column and to count its values over the whole query (a `stats` search, under the same
/// bounds).
fn field_list(params: &Params, hits: &[Value]) -> Markup {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for hit in hits {
        let mut seen: Vec<String> = flatten(hit).into_iter().map(|(path, _)| path).collect();
        seen.dedup();
        for path in seen {
            *counts.entry(path).or_default() += 1;
        }
    }
    let mut fields: Vec<(String, usize)> = counts.into_iter().collect();
    fields.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    fields.truncate(MAX_FIELDS);
    let columns = params.columns();
    let filter = crowsnest_query::parse(&params.q)
        .map(|q| {
            Query {
                filter: q.filter,
                pipes: Vec::new(),
            }
            .to_string()
        })
        .unwrap_or_default();
    html! {
        details.fieldlist {
            summary { "Fields of these " (hits.len()) " events" }
            ul {
                @for (path, count) in &fields {
                    li {
                        code { (path) } " " span.muted { (count) }
                        @if !columns.contains(path) {
                            " · " a href=(params.url("/search", &[("cols", &format!("{},{path}", columns.join(",")))])) { "add column" }
                        }
                        " · " a href=(params.url("/search", &[("q", &format!("{} | stats count() by {} | sort -count | head 20", if filter.is_empty() { "*" } else { &filter }, quote_name(path))), ("offset", "")])) { "top values" }
                    }
                }
            }
        }
    }
}

/// A field name for a pipe: quoted when it holds anything but name characters.
fn quote_name(path: &str) -> String {
    if path
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
    {
        path.to_string()
    } else {
        format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A value that adds `field:value` to the query when clicked.
fn value_link(params: &Params, field: &str, v: &Value) -> Markup {
    let shown = match v {
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => text(other),
    };
    let filter = match v {
        Value::Array(_) | Value::Object(_) | Value::Null => None,
        other => with_filter(&params.q, field, &text(other)),
    };
    html! {
        @match filter {
            Some(q) => a.v href=(params.url("/search", &[("q", &q), ("offset", "")])) title={ "Filter on " (field) } { (value(&shown)) },
            None => span.v { (value(&shown)) },
        }
    }
}

fn event_detail(params: &Params, event: &Value) -> Markup {
    let original = render::field(event, "event.original").map(text);
    html! {
        div.evbody {
            table.fields {
                caption.sr { "Normalized fields" }
                tbody {
                    @for (path, v) in flatten(event) {
                        @if path != "event.original" {
                            tr { th scope="row" { (path) } td { (value_link(params, &path, &v)) } }
                        }
                    }
                }
            }
            @if let Some(original) = original {
                p.label { strong { "Original" } }
                pre.original { (value(&original)) }
            }
        }
    }
}

/// The data of a `timechart` table for uPlot: `{"x": [unix seconds], "series": [{label, values}]}`;
/// with a `by` column, one series per value (the 8 largest).
pub(crate) fn timechart_data(columns: &[String], rows: &[Vec<Value>]) -> Option<String> {
    let time = columns.iter().position(|c| c == "_time")?;
    let epoch = |v: &Value| {
        v.as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp())
    };
    let mut xs: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.get(time).and_then(epoch))
        .collect();
    xs.sort_unstable();
    xs.dedup();
    let value_col = columns.len().checked_sub(1)?;
    let by = (columns.len() == 3).then_some(1);
    let mut series: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for row in rows {
        let (Some(x), Some(y)) = (
            row.get(time).and_then(epoch),
            row.get(value_col).and_then(Value::as_f64),
        ) else {
            continue;
        };
        let label = match by {
            Some(b) => row.get(b).map(text).unwrap_or_default(),
            None => columns[value_col].clone(),
        };
        let index = match series.iter().position(|(l, _)| *l == label) {
            Some(i) => i,
            None => {
                series.push((label, vec![None; xs.len()]));
                series.len() - 1
            }
        };
        if let Ok(slot) = xs.binary_search(&x) {
            series[index].1[slot] = Some(y);
        }
    }
    series.sort_by(|a, b| {
        let sum = |s: &[Option<f64>]| s.iter().flatten().sum::<f64>();
        sum(&b.1).total_cmp(&sum(&a.1))
    });
    series.truncate(8);
    Some(json!({"x": xs, "series": series.iter().map(|(l, v)| json!({"label": l, "values": v})).collect::<Vec<_>>()}).to_string())
}

/// The width of the histogram's buckets: at most [`MAX_BUCKETS`] over `secs`, rounded up to a
/// readable span.
pub(crate) fn bucket_secs(secs: u64) -> u64 {
    const NICE: [u64; 17] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    ];
    // One bucket more than the range may be cut by the epoch alignment.
    let least = secs.div_ceil(MAX_BUCKETS - 1).max(1);
    NICE.iter()
        .copied()
        .find(|&n| n >= least)
        .unwrap_or_else(|| least.div_ceil(86400) * 86400)
}

/// Most field or value suggestions one answer carries.
const MAX_SUGGESTIONS: usize = 15;
/// Newest events of the range whose field names are suggested.
const FIELD_SAMPLE: usize = 500;
/// Time a suggestion search may take before it is given up (the answer is then empty).
const SUGGEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// The token being typed at the end of `text` (after the last space or parenthesis), and
/// whether it is `field:value` (then split).
pub(crate) fn typed_token(text: &str) -> (&str, Option<(&str, &str)>) {
    let start = text
        .char_indices()
        .rfind(|(_, c)| c.is_whitespace() || *c == '(')
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let token = &text[start..];
    let split = token
        .find(':')
        .filter(|&i| i > 0)
        .map(|i| (&token[..i], &token[i + 1..]));
    (token, split)
}

/// `GET /search/suggest?q=<text before the caret>&range=...`: JSON `{"token": the text
/// replaced, "items": [{"text", "hint"}]}`: field names of the newest events of the range, or
/// the most frequent values of a field, at most 15, each search given up after 2 s.
pub(crate) async fn suggest(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<Params>,
) -> Response {
    let (token, split) = typed_token(&params.q);
    let Ok(window) = window(&params, Utc::now()) else {
        return axum::Json(json!({"token": token, "items": []})).into_response();
    };
    let input = |query: String, limit: usize| SearchInput {
        query,
        start: window.start.map(|t| t.to_rfc3339()),
        end: window.end.map(|t| t.to_rfc3339()),
        limit: Some(limit),
        offset: 0,
    };
    let items: Vec<Value> = match split {
        None => {
            let request = input("*".into(), FIELD_SAMPLE);
            let search = run_search(&console.app, &auth.name, &request);
            let hits = match tokio::time::timeout(SUGGEST_BUDGET, search).await {
                Ok(Ok(response)) => response.hits,
                _ => Vec::new(),
            };
            let mut counts: std::collections::HashMap<String, usize> = Default::default();
            for hit in &hits {
                let mut seen: Vec<String> = flatten(hit).into_iter().map(|(p, _)| p).collect();
                seen.dedup();
                for path in seen {
                    *counts.entry(path).or_default() += 1;
                }
            }
            let lower = token.to_lowercase();
            let mut fields: Vec<(String, usize)> = counts
                .into_iter()
                .filter(|(p, _)| p.to_lowercase().starts_with(&lower) && p.len() < 200)
                .collect();
            fields.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            fields
                .into_iter()
                .take(MAX_SUGGESTIONS)
                .map(|(path, n)| {
                    json!({"text": format!("{}:", quote_name(&path)), "hint": format!("in {n} of {} events", hits.len())})
                })
                .collect()
        }
        Some((field, prefix)) => {
            let query = format!(
                "* | stats count() by {} | sort -count | head 200",
                quote_name(field)
            );
            let request = input(query, 200);
            let search = run_search(&console.app, &auth.name, &request);
            let rows = match tokio::time::timeout(SUGGEST_BUDGET, search).await {
                Ok(Ok(response)) => response.rows.unwrap_or_default(),
                _ => Vec::new(),
            };
            let prefix = prefix.trim_start_matches('"').to_lowercase();
            rows.into_iter()
                .filter_map(|row| {
                    let value = text(row.first()?);
                    let count = row.get(1).map(text).unwrap_or_default();
                    (!value.is_empty()
                        && value.to_lowercase().starts_with(&prefix)
                        && value.len() < 500)
                        .then_some((value, count))
                })
                .take(MAX_SUGGESTIONS)
                .filter_map(|(value, count)| {
                    let term = with_filter("", field, &value)?;
                    Some(json!({"text": term, "hint": format!("{count} events")}))
                })
                .collect()
        }
    };
    axum::Json(json!({"token": token, "items": items})).into_response()
}

/// `GET /search/histogram`: the fragment with the events over time of the query's filter.
pub(crate) async fn histogram(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<Params>,
) -> Response {
    match histogram_data(&console, &auth, &params).await {
        Ok((chart, buckets, span, total)) => html! {
            div.chart data-chart=(chart) role="img" aria-label={ (total) " events in " (buckets) " buckets of " (span) " s" } {}
            p.muted { (total) " events in " (buckets) " buckets of " (span_text(span)) "." }
        },
        Err(message) => html! { p.error role="alert" { "Histogram unavailable: " (message) } },
    }
    .into_response()
}

fn span_text(secs: u64) -> String {
    match secs {
        s if s % 86400 == 0 => format!("{} d", s / 86400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

async fn histogram_data(
    console: &Arc<Console>,
    auth: &Auth,
    params: &Params,
) -> Result<(String, usize, u64, u64), String> {
    let now = Utc::now();
    let window = window(params, now)?;
    let start = window.start.unwrap_or(now - chrono::Duration::days(30));
    let end = window.end.unwrap_or(now);
    let secs = u64::try_from((end - start).num_seconds())
        .unwrap_or(1)
        .max(1);
    let span = bucket_secs(secs);
    let parsed = parse_bounded(&console.app, &params.q, "").map_err(|e| api_message(&e).0)?;
    let query = Query {
        filter: parsed.filter,
        pipes: vec![Pipe::Timechart {
            span_secs: span,
            aggs: vec![Agg {
                func: AggFunc::Count,
                field: None,
                alias: "count".into(),
            }],
            by: None,
        }],
    };
    let request = SearchRequest {
        query,
        start: Some(start),
        end: Some(end),
        limit: (MAX_BUCKETS + 2) as usize,
        offset: 0,
    };
    let response = run_bounded(&console.app, &auth.name, move |store, control| {
        store.search_with(&request, control)
    })
    .await
    .map_err(|e| api_message(&e).0)?;
    let columns = response.columns.unwrap_or_default();
    let rows = response.rows.unwrap_or_default();
    let chart = timechart_data(&columns, &rows)
        .unwrap_or_else(|| json!({"x": [], "series": []}).to_string());
    Ok((chart, rows.len(), span, response.total))
}

/// A CSV cell: quoted when needed; a leading `=`, `+`, `-`, `@` gets a `'` so a spreadsheet
/// does not run it as a formula.
fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_line(cells: impl Iterator<Item = String>) -> String {
    let mut line = cells.map(|c| csv_cell(&c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// `GET /search/export?format=csv|ndjson`: the view's events (or rows), streamed page by page
/// under the search bounds, up to the paging window (`max_search_limit` × 10).
pub(crate) async fn export(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<Params>,
) -> Response {
    let csv = match params.format.as_str() {
        "csv" => true,
        "ndjson" | "" => false,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown format `{other}`: expected csv or ndjson"),
            )
                .into_response()
        }
    };
    let window = match window(&params, Utc::now()) {
        Ok(w) => w,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let max = console.app.config.max_search_limit.max(1);
    let page_size = max.min(5_000);
    let total_max = max.saturating_mul(10);
    let columns = params.columns();
    // The first page runs before the answer starts, so a bad query is a 400, not a cut file.
    let first = SearchInput {
        query: params.q.clone(),
        start: window.start.map(|t| t.to_rfc3339()),
        end: window.end.map(|t| t.to_rfc3339()),
        limit: Some(page_size),
        offset: 0,
    };
    let response = match run_search(&console.app, &auth.name, &first).await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, api_message(&e).0).into_response(),
    };
    let header_line = if csv {
        match &response.columns {
            Some(cols) => csv_line(cols.iter().cloned()),
            None => csv_line(columns.iter().cloned()),
        }
    } else {
        String::new()
    };
    let encode = {
        let columns = columns.clone();
        move |response: &crowsnest_store::SearchResponse| -> String {
            let mut out = String::new();
            if let Some(rows) = &response.rows {
                for row in rows {
                    if csv {
                        out.push_str(&csv_line(row.iter().map(text)));
                    } else if let Some(cols) = &response.columns {
                        let object: serde_json::Map<String, Value> =
                            cols.iter().cloned().zip(row.iter().cloned()).collect();
                        out.push_str(&Value::Object(object).to_string());
                        out.push('\n');
                    }
                }
            }
            for hit in &response.hits {
                if csv {
                    out.push_str(&csv_line(
                        columns
                            .iter()
                            .map(|c| render::field(hit, c).map(text).unwrap_or_default()),
                    ));
                } else {
                    out.push_str(&hit.to_string());
                    out.push('\n');
                }
            }
            out
        }
    };
    let first_chunk = format!("{header_line}{}", encode(&response));
    let tabular = response.rows.is_some();
    let fetched = response.hits.len();
    let more = !tabular && fetched == page_size && (fetched as u64) < response.total;
    let state = (console.clone(), auth.name.clone(), first, more);
    let rest = futures_util::stream::unfold(state, move |(console, token, mut input, more)| {
        let encode = encode.clone();
        async move {
            if !more || input.offset + page_size >= total_max {
                return None;
            }
            input.offset += page_size;
            let limit = page_size.min(total_max - input.offset);
            input.limit = Some(limit);
            match run_search(&console.app, &token, &input).await {
                Ok(page) => {
                    let n = page.hits.len();
                    let more = n == limit && ((input.offset + n) as u64) < page.total;
                    Some((
                        Ok::<_, std::io::Error>(encode(&page)),
                        (console, token, input, more),
                    ))
                }
                // Past the first page an error can only end the file early: say so in it.
                Err(e) => {
                    tracing::warn!(error = %e, "console export stopped");
                    Some((
                        Err(std::io::Error::other(e.to_string())),
                        (console, token, input, false),
                    ))
                }
            }
        }
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(first_chunk)]),
        rest,
    ));
    let (content_type, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "ndjson")
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"crowsnest-export.{ext}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_never_exceed_the_cap() {
        for secs in [
            1,
            60,
            899,
            900,
            3600,
            86_400,
            7 * 86_400,
            30 * 86_400,
            365 * 86_400,
            10 * 365 * 86_400,
        ] {
            let span = bucket_secs(secs);
            assert!(secs / span < MAX_BUCKETS, "{secs} s / {span} s");
        }
        assert_eq!(bucket_secs(900), 5); // 15 minutes: 5 s buckets
        assert_eq!(bucket_secs(86_400), 300); // a day: 5 min buckets
    }

    #[test]
    fn ranges_relative_and_absolute() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        let p = |range: &str, start: &str, end: &str| Params {
            range: range.into(),
            start: start.into(),
            end: end.into(),
            ..Params::default()
        };
        let w = window(&p("1h", "", ""), now).expect("1h");
        assert_eq!((now - w.start.expect("start")).num_seconds(), 3600);
        assert!(w.end.is_none());
        let w = window(&p("", "", ""), now).expect("default");
        assert_eq!((now - w.start.expect("start")).num_hours(), 24);
        let w =
            window(&p("1h", "2024-05-01T10:00", "2024-05-01T11:00:00Z"), now).expect("absolute");
        assert_eq!(
            w.start.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-05-01T10:00:00+00:00")
        );
        assert!(window(&p("", "2024-05-01T11:00", "2024-05-01T10:00"), now).is_err());
        assert!(window(&p("", "yesterday", ""), now).is_err_and(|e| e.contains("`start`")));
        assert!(window(&p("forever", "", ""), now).is_err());
    }

    #[test]
    fn the_typed_token_is_the_last_word_split_at_its_colon() {
        assert_eq!(typed_token("user"), ("user", None));
        assert_eq!(typed_token("a:b AND (kub"), ("kub", None));
        assert_eq!(
            typed_token("NOT user.name:al"),
            ("user.name:al", Some(("user.name", "al")))
        );
        assert_eq!(typed_token("x "), ("", None));
        assert_eq!(typed_token(":x"), (":x", None));
        assert_eq!(typed_token("é é"), ("é", None));
    }

    #[test]
    fn top_value_queries_parse_with_any_field_name() {
        for path in [
            "user.name",
            "@timestamp",
            "kubernetes.labels.app-name",
            "odd name",
            "a\"b",
            "x|y",
        ] {
            let text = format!("* | stats count() by {} | sort -count", quote_name(path));
            let query = crowsnest_query::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(
                matches!(&query.pipes[0], Pipe::Stats { by, .. } if by == &[path.to_string()]),
                "{text}"
            );
        }
    }

    #[test]
    fn the_field_list_counts_events_per_field_and_links_columns() {
        let hits = vec![json!({"a": 1, "b": {"c": [1, 2]}}), json!({"a": 2})];
        let params = Params {
            cols: "a".into(),
            ..Params::default()
        };
        let html = field_list(&params, &hits).into_string();
        assert!(
            html.contains("<code>a</code> <span class=\"muted\">2</span>"),
            "{html}"
        );
        assert!(
            html.contains("<code>b.c</code> <span class=\"muted\">1</span>"),
            "{html}"
        );
        assert_eq!(html.matches("add column").count(), 1, "a is shown already");
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1"), "'-1");
    }

    #[test]
    fn timechart_tables_become_series() {
        let columns = vec![
            "_time".to_string(),
            "user.name".to_string(),
            "count".to_string(),
        ];
        let rows = vec![
            vec![json!("2024-05-01T10:00:00Z"), json!("a"), json!(2)],
            vec![json!("2024-05-01T10:05:00Z"), json!("b"), json!(5)],
            vec![json!("2024-05-01T10:05:00Z"), json!("a"), json!(1)],
        ];
        let data: Value =
            serde_json::from_str(&timechart_data(&columns, &rows).expect("data")).expect("json");
        assert_eq!(data["x"].as_array().map(Vec::len), Some(2));
        assert_eq!(data["series"][0]["label"], "b");
        assert_eq!(data["series"][1]["values"], json!([2.0, 1.0]));
    }
}
