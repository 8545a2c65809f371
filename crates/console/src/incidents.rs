//! The incidents list and an incident's page, with its status actions. The list is
//! `crowsnest_server::api::list_incidents`, actions go through `submit_action` (the cores of
//! `GET /api/v1/incidents` and `POST /api/v1/incidents/{id}/actions`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::SecondsFormat;
use crowsnest_respond::{Classification, Status};
use crowsnest_server::api::{submit_action, ActionBody};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::layout::frame;
use crate::render::{link, text, with_filter};
use crate::session::Reader;
use crate::Console;

/// The page of an incident (its id percent-encoded).
fn incident_path(id: &str) -> String {
    format!(
        "/incidents/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::New => "new",
        Status::Acknowledged => "acknowledged",
        Status::Investigating => "investigating",
        Status::Resolved => "resolved",
    }
}

/// `GET /incidents?status=open|new|acknowledged|investigating|resolved&min_risk=`.
pub(crate) async fn list(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(mut params): UrlQuery<HashMap<String, String>>,
) -> Response {
    params.retain(|k, v| !v.is_empty() && ["status", "min_risk"].contains(&k.as_str()));
    params.insert("limit".into(), "200".into());
    let status = params
        .get("status")
        .cloned()
        .unwrap_or_else(|| "open".into());
    let result = crowsnest_server::api::list_incidents(&console.app, &params);
    let body = html! {
        h1 { "Incidents" }
        form.filters method="get" action="/incidents" {
            label for="status" { "Status" }
            select #status name="status" {
                @for s in ["open", "new", "acknowledged", "investigating", "resolved"] {
                    option value=(s) selected[status == s] { (s) }
                }
            }
            label for="min_risk" { "Risk at least" }
            input #min_risk name="min_risk" value=(params.get("min_risk").cloned().unwrap_or_default()) size="4" inputmode="decimal";
            button type="submit" { "Filter" }
        }
        @match &result {
            Err(error) => p.error role="alert" { (error.to_string()) },
            Ok(incidents) => {
                p.summary { (incidents.len()) " incidents, riskiest first" @if incidents.len() >= 200 { " (the first 200)" } "." }
                div.scroll {
                    table.results {
                        thead { tr {
                            th scope="col" { "Risk" } th scope="col" { "Level" } th scope="col" { "Incident" } th scope="col" { "Entity" }
                            th scope="col" { "Status" } th scope="col" { "Alerts" } th scope="col" { "Last alert" } th scope="col" { "Assignee" }
                        } }
                        tbody {
                            @for i in incidents {
                                @let id = i.get("id").map(text).unwrap_or_default();
                                tr {
                                    td.num { (i.get("risk").map(text).unwrap_or_default()) @if i.get("page") == Some(&Value::Bool(true)) { " " span.page title="pages someone" { "!" } } }
                                    td { @let l = i.get("level").map(text).unwrap_or_default(); span class={ "level " (l) } { (l) } }
                                    td { a href=(incident_path(&id)) { (i.get("title").map(text).unwrap_or_default()) } }
                                    td { (entity_text(i.get("entity"))) }
                                    td { (i.get("status").map(text).unwrap_or_default()) }
                                    td.num { (i.get("alerts").map(text).unwrap_or_default()) }
                                    td { (i.get("last_alert").map(text).unwrap_or_default()) }
                                    td { (i.get("assignee").map(text).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    frame("Incidents", Some(&auth), body).into_response()
}

fn entity_text(entity: Option<&Value>) -> String {
    match entity {
        Some(e) => format!(
            "{} {}",
            e.get("kind").map(text).unwrap_or_default(),
            e.get("value").map(text).unwrap_or_default()
        ),
        None => String::new(),
    }
}

/// `GET /incidents/{id}`.
pub(crate) async fn show(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    Path(id): Path<String>,
) -> Response {
    let Some(incident) = console.app.detection.incident(&id) else {
        return (
            StatusCode::NOT_FOUND,
            frame("No such incident", Some(&auth), html! { h1 { "No such incident" } p { "There is no incident " code { (id) } "." } a href="/incidents" { "All incidents" } }),
        )
            .into_response();
    };
    let ts = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    // The events around it: five minutes either side of its alerts.
    let around_start = ts(incident.opened - chrono::Duration::minutes(5));
    let around_end = ts(incident.last_alert + chrono::Duration::minutes(5));
    let entity_query = match incident.namespace.as_deref() {
        Some(ns) => with_filter("", "kubernetes.namespace", ns).unwrap_or_default(),
        None => String::new(),
    };
    let alert_ids = incident
        .alerts
        .iter()
        .map(|a| a.id.clone())
        .collect::<Vec<_>>();
    let alerts_query = alert_ids
        .iter()
        .filter_map(|a| with_filter("", "alert.id", a))
        .collect::<Vec<_>>()
        .join(" OR ");
    // Timeline: alerts and comments, in time order.
    let mut timeline: Vec<(String, Markup)> = incident
        .alerts
        .iter()
        .map(|a| {
            (
                ts(a.first_seen),
                html! { "Alert " strong { (a.title) } " (" (a.level.as_str()) ", ×" (a.count) ")" },
            )
        })
        .collect();
    timeline.extend(incident.comments.iter().map(|c| {
        (
            ts(c.at),
            html! { "Comment by " code { (c.author) } ": " (c.text) },
        )
    }));
    timeline.sort_by(|a, b| a.0.cmp(&b.0));
    let status = status_name(incident.status);
    let body = html! {
        p { a href="/incidents" { "← Incidents" } }
        h1 { (incident.title) }
        dl.facts {
            dt { "Status" } dd #status { (status) @if let Some(c) = incident.classification { " (" (serde_json::to_value(c).ok().map(|v| text(&v)).unwrap_or_default()) ")" } }
            dt { "Risk" } dd { (incident.risk.score) @if incident.page { " — pages someone" } }
            dt { "Level" } dd { span class={ "level " (incident.level.as_str()) } { (incident.level.as_str()) } }
            dt { "Entity" } dd { (incident.entity.kind) " " code { (incident.entity.value) } }
            dt { "Opened" } dd { (ts(incident.opened)) }
            dt { "Last alert" } dd { (ts(incident.last_alert)) }
            dt { "Assignee" } dd { (incident.assignee.clone().unwrap_or_else(|| "nobody".into())) }
            dt { "Techniques" } dd { @for t in &incident.techniques { a href=(link("/alerts", &[("technique", t), ("since", "30d")])) { (t) } " " } }
            dt { "Tactics" } dd { @for t in &incident.tactics { (t) " " } }
        }
        @if auth.admin && incident.status != Status::Resolved {
            section.actions aria-label="Actions" {
                h2 { "Actions" }
                @for action in ["acknowledge", "investigate"] {
                    form method="post" action=(format!("{}/action", incident_path(&id))) {
                        input type="hidden" name="csrf" value=(auth.csrf);
                        input type="hidden" name="action" value=(action);
                        button type="submit" { (action) }
                    }
                }
                form method="post" action=(format!("{}/action", incident_path(&id))) {
                    input type="hidden" name="csrf" value=(auth.csrf);
                    input type="hidden" name="action" value="resolve";
                    label for="classification" { "Classification" }
                    select #classification name="classification" {
                        option value="true_positive" { "true positive" }
                        option value="benign_true_positive" { "benign true positive" }
                        option value="false_positive" { "false positive" }
                    }
                    button type="submit" { "resolve" }
                }
            }
        }
        h2 { "Risk factors" }
        table.results {
            thead { tr { th scope="col" { "Factor" } th scope="col" { "Detail" } th scope="col" { "Value" } } }
            tbody { @for f in &incident.risk.factors { tr { td { (f.name) } td { (f.detail) } td.num { (f.value) } } } }
        }
        h2 { "Timeline" }
        ol.timeline { @for (at, what) in &timeline { li { time { (at) } " " (what) } } }
        h2 { "Alerts" }
        @if incident.overflow > 0 { p.summary { (incident.overflow) " more alerts are not listed (they still count in the risk)." } }
        table.results {
            thead { tr { th scope="col" { "First seen" } th scope="col" { "Level" } th scope="col" { "Rule" } th scope="col" { "Count" } th scope="col" { "Records" } } }
            tbody {
                @for a in &incident.alerts {
                    tr {
                        td { (ts(a.first_seen)) }
                        td { span class={ "level " (a.level.as_str()) } { (a.level.as_str()) } }
                        td { a href=(link("/alerts", &[("rule", &a.rule_id), ("since", "30d")])) { (a.title) } }
                        td.num { (a.count) }
                        td { a href=(link("/search", &[("q", &with_filter("", "alert.id", &a.id).unwrap_or_default()), ("range", "30d")])) { "alert record" } }
                    }
                }
            }
        }
        h2 { "Events" }
        ul {
            li { a href=(link("/search", &[("q", &alerts_query), ("range", "30d")])) { "The alert records of this incident" } }
            li { a href=(link("/search", &[("q", &entity_query), ("start", &around_start), ("end", &around_end)])) { "Everything in " @if let Some(ns) = &incident.namespace { "namespace " code { (ns) } } @else { "the cluster" } " from 5 minutes before to 5 minutes after" } }
        }
    };
    frame(&incident.title, Some(&auth), body).into_response()
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(default)]
    classification: Option<Classification>,
}

/// `POST /incidents/{id}/action` (admin scope, CSRF token): acknowledge, investigate, resolve.
pub(crate) async fn act(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let path = incident_path(&id);
    let Ok(form) = serde_urlencoded::from_bytes::<ActionForm>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed action form").into_response();
    };
    let auth = match console.authorize_change(&headers, &path, Some(&form.csrf)) {
        Ok(auth) => auth,
        Err(response) => return *response,
    };
    if !matches!(
        form.action.as_str(),
        "acknowledge" | "investigate" | "resolve"
    ) {
        return (StatusCode::BAD_REQUEST, "unknown action").into_response();
    }
    let action = ActionBody {
        action: form.action,
        classification: form.classification,
        ..ActionBody::default()
    };
    let before = console.app.detection.incident(&id).map(|i| i.status);
    match submit_action(&console.app, auth.name.clone(), id.clone(), action).await {
        Ok(_) => {
            // The detector applies the action from the WAL a moment later; wait for it briefly
            // so the page shows it.
            for _ in 0..40 {
                if console.app.detection.incident(&id).map(|i| i.status) != before {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            Redirect::to(&path).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            frame("Action refused", Some(&auth), html! { p.error role="alert" { (error.to_string()) } a href=(path) { "Back to the incident" } }),
        )
            .into_response(),
    }
}
