//! The incidents list and an incident's page, with its status actions and its containment
//! actions. The list is `crowsnest_server::api::list_incidents`, status actions go through
//! `submit_action` (the cores of `GET /api/v1/incidents` and
//! `POST /api/v1/incidents/{id}/actions`), containment through `list_actions`,
//! `approve_action` and `undo_action` (the cores of `GET /api/v1/respond/actions`,
//! `POST /api/v1/respond/approve` and `POST /api/v1/respond/actions/{id}/undo`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::SecondsFormat;
use crowsnest_query::{Filter, Query};
use crowsnest_respond::contain::responder::{State as ActionState, Tracked};
use crowsnest_respond::contain::{PlannedAction, UndoError};
use crowsnest_respond::{Classification, Status};
use crowsnest_server::api::{run_search, submit_action, ActionBody, SearchInput};
use crowsnest_server::respond::Approval;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::layout::frame;
use crate::render::{field, link, text, value, with_filter};
use crate::session::{Auth, Reader};
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
                div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
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
    let alerts_query = any_of("alert.id", incident.alerts.iter().map(|a| a.id.clone()));
    let matched = matched_events(&console, &auth.name, &alerts_query).await;
    // The events around it: five minutes either side of its matched events (else of its
    // alerts), on its entity.
    let times: Vec<chrono::DateTime<chrono::Utc>> = matched
        .as_ref()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| {
                    e.get("@timestamp")
                        .and_then(crowsnest_model::parse_timestamp)
                })
                .collect()
        })
        .unwrap_or_default();
    let first = times.iter().min().copied().unwrap_or(incident.opened);
    let last = times.iter().max().copied().unwrap_or(incident.last_alert);
    let around_start = ts(first - chrono::Duration::minutes(5));
    let around_end = ts(last + chrono::Duration::minutes(5));
    let entity_query = entity_filter(
        &incident.entity.kind,
        &incident.entity.value,
        incident.namespace.as_deref(),
    );
    // The events around it in the same container (else pod) as its first matched event.
    let place = matched
        .as_ref()
        .ok()
        .and_then(|events| events.iter().find_map(place_of));
    let around = match &place {
        Some((query, _)) => {
            Some(around_events(&console, &auth.name, query, &around_start, &around_end).await)
        }
        None => None,
    };
    // The rules of its alerts, each once, with their source.
    let mut rule_ids: Vec<&str> = incident.alerts.iter().map(|a| a.rule_id.as_str()).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let rules: Vec<(String, Result<Value, String>)> = rule_ids
        .iter()
        .map(|id| {
            let detail =
                crowsnest_server::api::rule_detail(&console.app, id).map_err(|e| e.to_string());
            (id.to_string(), detail)
        })
        .collect();
    // Its containment actions (planned for it, or for one of its alerts), through the API's
    // own listing.
    let alert_ids: std::collections::HashSet<&str> =
        incident.alerts.iter().map(|a| a.id.as_str()).collect();
    let actions: Result<Vec<Tracked>, String> =
        crowsnest_server::api::list_actions(&console.app, None, MAX_TRACKED_SCAN)
            .await
            .map(|all| {
                all.into_iter()
                    .filter(|t| belongs(&t.action, &id, &alert_ids))
                    .collect()
            })
            .map_err(|e| e.to_string());
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
        h2 #containment { "Containment actions" }
        (containment(&actions, &auth, &id))
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
        h2 { "Matched events" }
        @match &matched {
            Err(message) => p.error role="alert" { (message) },
            Ok(events) if events.is_empty() => p.muted { "None found (their retention may have passed)." },
            Ok(events) => {
                p.summary { (events.len()) " events the alerts matched" @if events.len() >= MAX_MATCHED { " (the first " (MAX_MATCHED) ")" } ", newest first." }
                div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
                    table.results {
                        thead { tr { th scope="col" { "Time" } th scope="col" { "Source" } th scope="col" { "Namespace / pod" } th scope="col" { "User" } th scope="col" { "Action" } th scope="col" { "Event" } } }
                        tbody {
                            @for e in events {
                                tr {
                                    td { (field(e, "@timestamp").map(text).unwrap_or_default()) }
                                    td { (field(e, "event.dataset").map(text).unwrap_or_default()) }
                                    td { (field(e, "kubernetes.namespace").map(text).unwrap_or_default()) " / " (field(e, "kubernetes.pod.name").map(text).unwrap_or_default()) }
                                    td { (field(e, "user.name").map(text).unwrap_or_default()) }
                                    td { (value(&field(e, "event.action").map(text).unwrap_or_default())) }
                                    td { @let id = field(e, "event.id").map(text).unwrap_or_default(); a href=(link("/search", &[("q", &with_filter("", "event.id", &id).unwrap_or_default()), ("range", "30d")])) { "open" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Events around it" }
        @match (&place, &around) {
            (Some((query, label)), Some(Ok(events))) => {
                p.summary { (events.len()) " events in " (label) " from 5 minutes before its first matched event to 5 minutes after its last"
                    @if events.len() >= MAX_AROUND { " (the newest " (MAX_AROUND) ")" } ", oldest first. "
                    a href=(link("/search", &[("q", query), ("start", &around_start), ("end", &around_end)])) { "Open in search" } }
                (event_table(events))
            }
            (_, Some(Err(message))) => p.error role="alert" { (message) },
            _ => p.muted { "Its matched events name no container or pod." },
        }
        h2 { "Rules" }
        @for (id, rule) in &rules {
            @match rule {
                Ok(rule) => details.rule {
                    summary { (text(&rule["title"])) " (" code { (id) } ")" @if rule["enabled"] == false { " — disabled" } }
                    p { a href=(crate::rules::rule_path(id)) { "The rule's page" } " · file " code { (text(&rule["file"])) } }
                    @match rule["source"].as_str() {
                        Some(source) => pre.original tabindex="0" aria-label=(format!("Sigma source of {id}")) { code { (source) } },
                        None => p.muted { "Its file cannot be read any more." },
                    }
                },
                Err(message) => p.muted { code { (id) } ": " (message) },
            }
        }
        h2 { "Events" }
        ul {
            li { a href=(link("/search", &[("q", &alerts_query), ("range", "30d")])) { "The alert records of this incident" } }
            li { a href=(link("/search", &[("q", &entity_query), ("start", &around_start), ("end", &around_end)])) { "Everything on " (incident.entity.kind) " " code { (incident.entity.value) } " from 5 minutes before its first matched event to 5 minutes after its last" } }
        }
    };
    frame(&incident.title, Some(&auth), body).into_response()
}

/// Most events around an incident shown on its page.
const MAX_AROUND: usize = 50;

/// Where an event happened, as a query and a label: its container, else its pod.
fn place_of(event: &Value) -> Option<(String, String)> {
    let term = |field: &str, value: String| Filter::Term {
        field: Some(field.into()),
        value,
    };
    let query = |filter| {
        Query {
            filter,
            pipes: Vec::new(),
        }
        .to_string()
    };
    if let Some(id) = field(event, "container.id")
        .map(text)
        .filter(|v| !v.is_empty())
    {
        let label = format!("container {}", id.chars().take(12).collect::<String>());
        return Some((query(term("container.id", id)), label));
    }
    let ns = field(event, "kubernetes.namespace")
        .map(text)
        .filter(|v| !v.is_empty())?;
    let pod = field(event, "kubernetes.pod.name")
        .map(text)
        .filter(|v| !v.is_empty())?;
    let label = format!("pod {ns}/{pod}");
    Some((
        query(Filter::And(vec![
            term("kubernetes.namespace", ns),
            term("kubernetes.pod.name", pod),
        ])),
        label,
    ))
}

/// The newest [`MAX_AROUND`] events of `query` between `start` and `end` (alert records left
/// out), oldest first.
async fn around_events(
    console: &Arc<Console>,
    token: &str,
    query: &str,
    start: &str,
    end: &str,
) -> Result<Vec<Value>, String> {
    let text = format!("({query}) AND NOT event.kind:alert");
    let response = run_search(
        &console.app,
        token,
        &SearchInput {
            query: text,
            start: Some(start.to_string()),
            end: Some(end.to_string()),
            limit: Some(MAX_AROUND),
            offset: 0,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut events = response.hits;
    events.reverse();
    Ok(events)
}

fn event_table(events: &[Value]) -> Markup {
    html! {
        div.scroll tabindex="0" role="region" aria-label="Events around, scrolls sideways" {
            table.results {
                thead { tr { th scope="col" { "Time" } th scope="col" { "Source" } th scope="col" { "User" } th scope="col" { "Action" } th scope="col" { "Command or message" } th scope="col" { "Event" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (field(e, "@timestamp").map(text).unwrap_or_default()) }
                            td { (field(e, "event.dataset").map(text).unwrap_or_default()) }
                            td { (field(e, "user.name").map(text).unwrap_or_default()) }
                            td { (value(&field(e, "event.action").map(text).unwrap_or_default())) }
                            td.narrow { (value(&field(e, "process.command_line").or_else(|| field(e, "message")).map(text).unwrap_or_default())) }
                            td { @let id = field(e, "event.id").map(text).unwrap_or_default(); a href=(link("/search", &[("q", &with_filter("", "event.id", &id).unwrap_or_default()), ("range", "30d")])) { "open" } }
                        }
                    }
                }
            }
        }
    }
}

/// Most matched events shown on an incident's page.
const MAX_MATCHED: usize = 100;

/// `field:a OR field:b ...` as canonical query text.
fn any_of(field: &str, values: impl Iterator<Item = String>) -> String {
    let filter = Filter::Or(
        values
            .map(|value| Filter::Term {
                field: Some(field.to_string()),
                value,
            })
            .collect(),
    );
    Query {
        filter,
        pipes: Vec::new(),
    }
    .to_string()
}

/// A filter on an incident's entity (`kind` and `value` as `crowsnest-respond` makes them).
fn entity_filter(kind: &str, value: &str, namespace: Option<&str>) -> String {
    let term = |field: &str, value: &str| Filter::Term {
        field: Some(field.into()),
        value: value.into(),
    };
    let filter = match (kind, value.split_once('/')) {
        ("workload", Some((ns, name))) => {
            let mut pattern = String::new();
            for c in name.chars() {
                if matches!(c, '*' | '?' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            Filter::And(vec![
                term("kubernetes.namespace", ns),
                Filter::Wildcard {
                    field: Some("kubernetes.pod.name".into()),
                    pattern: format!("{pattern}-*"),
                },
            ])
        }
        ("pod", Some((ns, pod))) => Filter::And(vec![
            term("kubernetes.namespace", ns),
            term("kubernetes.pod.name", pod),
        ]),
        ("container", _) => term("container.id", value),
        ("image", _) => term("container.image.name", value),
        ("node", _) => Filter::Or(vec![
            term("kubernetes.node.name", value),
            term("host.name", value),
        ]),
        ("principal", _) => term("user.name", value),
        _ => match namespace {
            Some(ns) => term("kubernetes.namespace", ns),
            None => Filter::All,
        },
    };
    Query {
        filter,
        pipes: Vec::new(),
    }
    .to_string()
}

/// The events an incident's alerts matched: the alert records' `alert.event_ids`, then those
/// events, through the API's search (its bounds, the session's token).
async fn matched_events(
    console: &Arc<Console>,
    token: &str,
    alerts_query: &str,
) -> Result<Vec<Value>, String> {
    let input = |query: String, limit: usize| SearchInput {
        query,
        start: None,
        end: None,
        limit: Some(limit),
        offset: 0,
    };
    let records = run_search(&console.app, token, &input(alerts_query.to_string(), 500))
        .await
        .map_err(|e| format!("the alert records could not be read: {e}"))?;
    let mut ids: Vec<String> = Vec::new();
    for record in &records.hits {
        let listed = field(record, "alert.event_ids").and_then(Value::as_array);
        for id in listed.into_iter().flatten() {
            let id = text(id);
            if !ids.contains(&id) && ids.len() < MAX_MATCHED {
                ids.push(id);
            }
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let events = run_search(
        &console.app,
        token,
        &input(any_of("event.id", ids.into_iter()), MAX_MATCHED),
    )
    .await
    .map_err(|e| format!("the matched events could not be read: {e}"))?;
    Ok(events.hits)
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

/// Most containment actions looked through for an incident's (the responder tracks at most
/// 10 000).
const MAX_TRACKED_SCAN: usize = 10_000;

/// Whether a planned action is the incident's: planned for it, or for one of its alerts.
fn belongs(
    action: &PlannedAction,
    incident: &str,
    alert_ids: &std::collections::HashSet<&str>,
) -> bool {
    action.incident_id.as_deref() == Some(incident) || alert_ids.contains(action.alert_id.as_str())
}

fn state_name(state: ActionState) -> String {
    serde_json::to_value(state)
        .ok()
        .map(|v| text(&v))
        .unwrap_or_default()
}

/// The incident's containment actions, with Approve (waiting for approval) and Undo
/// (executed, reversible) for admins: plain POST forms with the CSRF token.
fn containment(actions: &Result<Vec<Tracked>, String>, auth: &Auth, incident: &str) -> Markup {
    let ts = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let form_action = format!("{}/respond", incident_path(incident));
    html! {
        @match actions {
            Err(message) => p.error role="alert" { (message) },
            Ok(list) if list.is_empty() => p.muted { "None: no playbook planned an action for this incident." },
            Ok(list) => {
                p.summary { (list.len()) " actions, newest first." @if !auth.admin { " Approving and undoing need a token with the " code { "admin" } " scope." } }
                div.scroll tabindex="0" role="region" aria-label="Containment actions, scrolls sideways" {
                    table.results {
                        thead { tr {
                            th scope="col" { "Planned" } th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Playbook, mode" }
                            th scope="col" { "State" } th scope="col" { "Why" } th scope="col" { "Approved by" } th scope="col" { "Undo" }
                            @if auth.admin { th scope="col" { "Decide" } }
                        } }
                        tbody {
                            @for t in list {
                                @let undo = t.action.undo_operations(&t.memory);
                                @let state = state_name(t.state);
                                tr data-action=(t.action.id) {
                                    td { (ts(t.action.planned_at)) }
                                    td { strong { (t.action.action.as_str()) } br; code.muted { (t.action.id) } }
                                    td { (t.action.target.describe()) }
                                    td { (t.action.playbook) ", " (serde_json::to_value(t.action.mode).ok().map(|v| text(&v)).unwrap_or_default()) }
                                    td { span class={ "state " (state) } { (state) } }
                                    td.why { (t.action.decision.reason) @if let Some(g) = &t.action.decision.guard { " (guard " code { (g) } ")" } }
                                    td { (t.approved_by.clone().unwrap_or_default()) }
                                    td {
                                        @match (t.state, &undo, t.undo_at) {
                                            (ActionState::Executed, Err(why), _) | (_, Err(why @ UndoError::Irreversible(_)), _) => span.muted { (why.to_string()) },
                                            (ActionState::Executed, Ok(_), Some(at)) => { "automatically at " (ts(at)) ", or by hand" }
                                            (ActionState::Executed, Ok(_), None) => { "by hand" }
                                            _ => {}
                                        }
                                    }
                                    @if auth.admin {
                                        td {
                                            @if t.state == ActionState::Pending {
                                                form.inline method="post" action=(form_action) {
                                                    input type="hidden" name="csrf" value=(auth.csrf);
                                                    input type="hidden" name="action_id" value=(t.action.id);
                                                    input type="hidden" name="decision" value="approve";
                                                    button type="submit" aria-label=(format!("Approve {} on {}", t.action.action.as_str(), t.action.target.describe())) { "Approve" }
                                                }
                                                form.inline method="post" action=(form_action) {
                                                    input type="hidden" name="csrf" value=(auth.csrf);
                                                    input type="hidden" name="action_id" value=(t.action.id);
                                                    input type="hidden" name="decision" value="reject";
                                                    button type="submit" aria-label=(format!("Reject {} on {}", t.action.action.as_str(), t.action.target.describe())) { "Reject" }
                                                }
                                            }
                                            @if t.state == ActionState::Executed && undo.is_ok() {
                                                form.inline method="post" action=(form_action) {
                                                    input type="hidden" name="csrf" value=(auth.csrf);
                                                    input type="hidden" name="action_id" value=(t.action.id);
                                                    input type="hidden" name="decision" value="undo";
                                                    button type="submit" aria-label=(format!("Undo {} on {}", t.action.action.as_str(), t.action.target.describe())) { "Undo" }
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
    }
}

#[derive(Deserialize)]
struct RespondForm {
    #[serde(default)]
    csrf: String,
    action_id: String,
    decision: String,
}

/// `POST /incidents/{id}/respond` (admin scope, CSRF token): `decision=approve`, `reject` or
/// `undo` of one of the incident's containment actions (`action_id`), through the API's own
/// `approve_action`, `reject_action` and `undo_action` (the cores of
/// `POST /api/v1/respond/approve`, `/reject` and `/actions/{id}/undo`).
pub(crate) async fn respond(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let path = incident_path(&id);
    let Ok(form) = serde_urlencoded::from_bytes::<RespondForm>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed containment form").into_response();
    };
    let auth = match console.authorize_change(&headers, &path, Some(&form.csrf)) {
        Ok(auth) => auth,
        Err(response) => return *response,
    };
    let refused = |status: StatusCode, message: String| {
        (
            status,
            frame("Containment action refused", Some(&auth), html! { p.error role="alert" { (message) } a href=(format!("{path}#containment")) { "Back to the incident" } }),
        )
            .into_response()
    };
    // Only this incident's actions are acted on from its page.
    let Some(incident) = console.app.detection.incident(&id) else {
        return refused(StatusCode::NOT_FOUND, format!("no incident `{id}`"));
    };
    let alert_ids: std::collections::HashSet<&str> =
        incident.alerts.iter().map(|a| a.id.as_str()).collect();
    let own = crowsnest_server::api::list_actions(&console.app, None, MAX_TRACKED_SCAN)
        .await
        .map(|all| {
            all.iter()
                .any(|t| t.action.id == form.action_id && belongs(&t.action, &id, &alert_ids))
        })
        .unwrap_or(false);
    if !own {
        return refused(
            StatusCode::NOT_FOUND,
            format!(
                "incident `{id}` has no containment action `{}`",
                form.action_id
            ),
        );
    }
    let done = match form.decision.as_str() {
        "approve" => {
            crowsnest_server::api::approve_action(
                &console.app,
                Approval::Id(form.action_id.clone()),
                auth.name.clone(),
            )
            .await
        }
        "reject" => {
            crowsnest_server::api::reject_action(
                &console.app,
                Approval::Id(form.action_id.clone()),
                auth.name.clone(),
                "rejected in the console".into(),
            )
            .await
        }
        "undo" => crowsnest_server::api::undo_action(
            &console.app,
            form.action_id.clone(),
            auth.name.clone(),
        )
        .await
        .map(|(action, _)| action),
        other => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("unknown decision `{other}`; expected approve, reject or undo"),
            )
        }
    };
    match done {
        Ok(_) => Redirect::to(&format!("{path}#containment")).into_response(),
        Err(error) => {
            let message = error.to_string();
            let status = error.into_response().status();
            refused(status, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_filters_parse_back_to_the_entity() {
        let parsed = |text: String| crowsnest_query::parse(&text).expect("parses").filter;
        let Filter::And(parts) = parsed(entity_filter("workload", "prod/web", None)) else {
            panic!("workload: namespace and pod name prefix");
        };
        assert_eq!(
            parts[1],
            Filter::Wildcard {
                field: Some("kubernetes.pod.name".into()),
                pattern: "web-*".into()
            }
        );
        assert_eq!(
            parsed(entity_filter(
                "principal",
                "system:serviceaccount:a:b",
                None
            )),
            Filter::Term {
                field: Some("user.name".into()),
                value: "system:serviceaccount:a:b".into()
            }
        );
        assert_eq!(
            parsed(entity_filter("rule", "r1", Some("payments"))),
            Filter::Term {
                field: Some("kubernetes.namespace".into()),
                value: "payments".into()
            }
        );
        let ids = any_of("alert.id", ["a".to_string(), "b c".to_string()].into_iter());
        assert!(matches!(parsed(ids), Filter::Or(parts) if parts.len() == 2));
    }
}
