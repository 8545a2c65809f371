//! The exec session view: a `kubectl exec` (an audit event on the `exec` subresource of a pod)
//! joined with the process executions in that pod from then until the next exec into it (or
//! `minutes` later): who (user, groups, source address, client) ran what, in order, on one
//! page. And a `docker exec` (the engine's `exec_start` event, `event.dataset:
//! docker.events`, from the agent) joined with the process executions in that container until
//! the exec ended (its `exec_die`), else the next exec into it, else `minutes` later; the
//! engine does not say who ran it, so the host's own process events of the `docker` client
//! (`docker exec ...`, from auditd or a sensor) in the seconds before are shown as the who.
//! Every read is a search through the API's `run_search`.

use std::sync::Arc;

use axum::extract::{Query as UrlQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use crowsnest_query::{Filter, Query};
use crowsnest_server::api::{run_search, SearchInput};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::layout::frame;
use crate::render::{field, link, text, value};
use crate::session::{Auth, Reader};
use crate::Console;

const RANGES: [&str; 4] = ["1h", "24h", "7d", "30d"];
/// Most execs listed, and most processes shown for one session.
const MAX_ROWS: usize = 200;
/// How long a session is followed when no later exec into the pod ends it.
const DEFAULT_MINUTES: i64 = 30;

fn term(field: &str, value: &str) -> Filter {
    Filter::Term {
        field: Some(field.into()),
        value: value.into(),
    }
}

fn query(filter: Filter) -> String {
    Query {
        filter,
        pipes: Vec::new(),
    }
    .to_string()
}

fn exec_filter() -> Filter {
    term("orchestrator.resource.subresource", "exec")
}

/// `docker exec` as the engine reports it (the agent's Docker events input).
fn docker_exec_filter(action: &str) -> Filter {
    Filter::And(vec![
        term("event.dataset", "docker.events"),
        term("event.action", action),
    ])
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn list_field(event: &Value, path: &str) -> String {
    match field(event, path) {
        Some(Value::Array(items)) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Some(v) => text(v),
        None => String::new(),
    }
}

async fn search(
    console: &Arc<Console>,
    auth: &Auth,
    filter: Filter,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<(Vec<Value>, u64), String> {
    let input = SearchInput {
        query: query(filter),
        start: start.map(ts),
        end: end.map(ts),
        limit: Some(MAX_ROWS),
        offset: 0,
    };
    run_search(&console.app, &auth.name, &input)
        .await
        .map(|r| (r.hits, r.total))
        .map_err(|e| e.to_string())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    #[serde(default)]
    range: String,
}

/// `GET /exec?range=24h`: the execs into pods.
pub(crate) async fn list(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<ListParams>,
) -> Response {
    let range = if RANGES.contains(&params.range.as_str()) {
        params.range.as_str()
    } else {
        "24h"
    };
    let start = crowsnest_model::parse_duration(range)
        .ok()
        .and_then(|d| crowsnest_model::duration::before(Utc::now(), d));
    let found = search(&console, &auth, exec_filter(), start, None).await;
    let docker = search(
        &console,
        &auth,
        docker_exec_filter("exec_start"),
        start,
        None,
    )
    .await;
    let body = html! {
        h1 { "Exec sessions" }
        form.filters method="get" action="/exec" {
            label for="range" { "Last" }
            select #range name="range" { @for r in RANGES { option value=(r) selected[r == range] { (r) } } }
            button type="submit" { "Show" }
        }
        h2 { code { "kubectl exec" } " into pods" }
        @match found {
            Err(message) => p.error role="alert" { (message) },
            Ok((execs, total)) => {
                p.summary { (execs.len()) " of " (total) " execs into pods, newest first." }
                div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
                    table.results {
                        thead { tr {
                            th scope="col" { "Time" } th scope="col" { "User" } th scope="col" { "Groups" } th scope="col" { "From" }
                            th scope="col" { "Pod" } th scope="col" { "Outcome" } th scope="col" { "Session" }
                        } }
                        tbody {
                            @for e in &execs {
                                @let ns = list_field(e, "orchestrator.namespace");
                                @let pod = list_field(e, "orchestrator.resource.name");
                                @let at = list_field(e, "@timestamp");
                                tr {
                                    td { (at) }
                                    td { (list_field(e, "user.name")) }
                                    td { (value(&list_field(e, "user.roles"))) }
                                    td { (list_field(e, "source.ip")) }
                                    td { (ns) "/" (pod) }
                                    td { (list_field(e, "event.outcome")) }
                                    td { a href=(link("/exec/session", &[("namespace", &ns), ("pod", &pod), ("at", &at)])) { "what ran" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { code { "docker exec" } " into containers" }
        @match docker {
            Err(message) => p.error role="alert" { (message) },
            Ok((execs, total)) => {
                p.summary { (execs.len()) " of " (total) " execs into containers (the Docker engine's " code { "exec_start" } " events), newest first." }
                div.scroll tabindex="0" role="region" aria-label="Docker execs, scrolls sideways" {
                    table.results {
                        thead { tr {
                            th scope="col" { "Time" } th scope="col" { "Host" } th scope="col" { "Container" } th scope="col" { "Image" }
                            th scope="col" { "Command" } th scope="col" { "Session" }
                        } }
                        tbody {
                            @for e in &execs {
                                @let id = list_field(e, "container.id");
                                @let at = list_field(e, "@timestamp");
                                tr {
                                    td { (at) }
                                    td { (list_field(e, "host.name")) }
                                    td { (list_field(e, "container.name")) " " code.muted { (id.chars().take(12).collect::<String>()) } }
                                    td { (list_field(e, "container.image.name")) }
                                    td { code { (value(&list_field(e, "process.command_line"))) } }
                                    td { a href=(link("/exec/docker", &[("container", &id), ("at", &at)])) { "what ran" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    frame("Exec sessions", Some(&auth), body).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SessionParams {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    pod: String,
    #[serde(default)]
    at: String,
    #[serde(default)]
    minutes: String,
}

/// `GET /exec/session?namespace=&pod=&at=`: one exec and what ran in the pod after it.
pub(crate) async fn session(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<SessionParams>,
) -> Response {
    let body = match session_body(&console, &auth, &params).await {
        Ok(body) => body,
        Err(message) => html! { h1 { "Exec session" } p.error role="alert" { (message) } },
    };
    frame("Exec session", Some(&auth), body).into_response()
}

async fn session_body(
    console: &Arc<Console>,
    auth: &Auth,
    params: &SessionParams,
) -> Result<Markup, String> {
    if params.namespace.is_empty() || params.pod.is_empty() {
        return Err("`namespace` and `pod` are needed".into());
    }
    let at = DateTime::parse_from_rfc3339(params.at.trim())
        .map_err(|e| format!("`at` must be an RFC 3339 time: {e}"))?
        .with_timezone(&Utc);
    let minutes = match params.minutes.trim() {
        "" => DEFAULT_MINUTES,
        m => m
            .parse::<i64>()
            .ok()
            .filter(|m| (1..=24 * 60).contains(m))
            .ok_or("`minutes` must be 1 to 1440")?,
    };
    let on_pod = Filter::And(vec![
        exec_filter(),
        term("orchestrator.namespace", &params.namespace),
        term("orchestrator.resource.name", &params.pod),
    ]);
    // The exec itself (its timestamp, to the microsecond), and the next one into the pod.
    let (execs, _) = search(
        console,
        auth,
        on_pod,
        Some(at - Duration::seconds(1)),
        Some(at + Duration::minutes(minutes)),
    )
    .await?;
    let mut execs: Vec<(DateTime<Utc>, &Value)> = execs
        .iter()
        .filter_map(|e| {
            let t = e
                .get("@timestamp")
                .and_then(crowsnest_model::parse_timestamp)?;
            Some((t, e))
        })
        .collect();
    execs.sort_by_key(|(t, _)| *t);
    let this = execs
        .iter()
        .find(|(t, _)| *t >= at)
        .map(|(_, e)| *e)
        .ok_or("no exec into this pod at that time")?;
    let next = execs.iter().map(|(t, _)| *t).find(|t| *t > at);
    let end = next.unwrap_or(at + Duration::minutes(minutes));
    let processes = Filter::And(vec![
        term("kubernetes.namespace", &params.namespace),
        term("kubernetes.pod.name", &params.pod),
        term("event.category", "process"),
    ]);
    let (mut ran, total) = search(console, auth, processes.clone(), Some(at), Some(end)).await?;
    ran.reverse(); // oldest first
    let ts_short = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    Ok(html! {
        p { a href="/exec" { "← Exec sessions" } }
        h1 { "Exec into " code { (params.namespace) "/" (params.pod) } }
        dl.facts {
            dt { "When" } dd { (list_field(this, "@timestamp")) }
            dt { "Who" } dd { (list_field(this, "user.name")) }
            dt { "Groups" } dd { (value(&list_field(this, "user.roles"))) }
            dt { "Impersonating" } dd { (list_field(this, "user.effective.name")) }
            dt { "From" } dd { (list_field(this, "source.ip")) }
            dt { "Client" } dd { (value(&list_field(this, "user_agent.original"))) }
            dt { "Request" } dd { code { (value(&list_field(this, "url.original"))) } }
            dt { "Outcome" } dd { (list_field(this, "event.outcome")) }
            dt { "Followed until" } dd {
                (ts_short(end))
                @if next.is_some() { " (the next exec into this pod)" } @else { " (" (minutes) " minutes later; no later exec into this pod)" }
            }
        }
        h2 { "What ran in the pod" }
        p.summary {
            (ran.len()) " of " (total) " process executions, oldest first."
            @if (ran.len() as u64) < total { " Only the last " (MAX_ROWS) " are shown; " }
            " " a href=(link("/search", &[("q", &query(processes)), ("start", &ts(at)), ("end", &ts(end)), ("cols", "@timestamp,process.user.name,process.command_line,process.parent.name,container.name")])) { "open in search" }
        }
        div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
            table.results {
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "User" } th scope="col" { "Command line" }
                    th scope="col" { "Parent" } th scope="col" { "PID" } th scope="col" { "Container" }
                } }
                tbody {
                    @for p in &ran {
                        tr {
                            td { (list_field(p, "@timestamp")) }
                            td { (list_field(p, "process.user.name")) }
                            td { (value(&list_field(p, "process.command_line"))) }
                            td { (list_field(p, "process.parent.name")) }
                            td.num { (list_field(p, "process.pid")) }
                            td { (list_field(p, "container.name")) }
                        }
                    }
                }
            }
        }
    })
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DockerParams {
    #[serde(default)]
    container: String,
    #[serde(default)]
    at: String,
    #[serde(default)]
    minutes: String,
}

/// `GET /exec/docker?container=&at=`: one `docker exec` and what ran in the container during
/// it.
pub(crate) async fn docker_session(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<DockerParams>,
) -> Response {
    let body = match docker_body(&console, &auth, &params).await {
        Ok(body) => body,
        Err(message) => html! { h1 { "Docker exec session" } p.error role="alert" { (message) } },
    };
    frame("Docker exec session", Some(&auth), body).into_response()
}

/// The first of `paths` the event has.
fn first_of(event: &Value, paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| list_field(event, p))
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

/// The time of an event, and the event.
fn timed(events: &[Value]) -> Vec<(DateTime<Utc>, &Value)> {
    let mut out: Vec<(DateTime<Utc>, &Value)> = events
        .iter()
        .filter_map(|e| {
            let t = e
                .get("@timestamp")
                .and_then(crowsnest_model::parse_timestamp)?;
            Some((t, e))
        })
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

async fn docker_body(
    console: &Arc<Console>,
    auth: &Auth,
    params: &DockerParams,
) -> Result<Markup, String> {
    let container = params.container.trim();
    if container.is_empty() {
        return Err("`container` (its id) is needed".into());
    }
    let at = DateTime::parse_from_rfc3339(params.at.trim())
        .map_err(|e| format!("`at` must be an RFC 3339 time: {e}"))?
        .with_timezone(&Utc);
    let minutes = match params.minutes.trim() {
        "" => DEFAULT_MINUTES,
        m => m
            .parse::<i64>()
            .ok()
            .filter(|m| (1..=24 * 60).contains(m))
            .ok_or("`minutes` must be 1 to 1440")?,
    };
    let window_end = at + Duration::minutes(minutes);
    // The exec's start, its end (`exec_die` of the same exec id) and the next exec into the
    // container.
    let engine = Filter::And(vec![
        term("event.dataset", "docker.events"),
        term("container.id", container),
        Filter::Or(vec![
            term("event.action", "exec_start"),
            term("event.action", "exec_die"),
        ]),
    ]);
    let (found, _) = search(
        console,
        auth,
        engine,
        Some(at - Duration::seconds(1)),
        Some(window_end),
    )
    .await?;
    let found = timed(&found);
    let action = |e: &Value| list_field(e, "event.action");
    let (started, this) = found
        .iter()
        .find(|(t, e)| *t >= at && action(e) == "exec_start")
        .copied()
        .ok_or("no docker exec into this container at that time")?;
    let exec_id = list_field(this, "docker.attributes.execID");
    let died = found.iter().find(|(t, e)| {
        *t >= started
            && action(e) == "exec_die"
            && !exec_id.is_empty()
            && list_field(e, "docker.attributes.execID") == exec_id
    });
    let next = found
        .iter()
        .find(|(t, e)| *t > started && action(e) == "exec_start")
        .map(|(t, _)| *t);
    let (end, ended_by) = match (died, next) {
        (Some((t, e)), _) => (
            *t,
            format!("the exec ended (exit code {})", {
                let code = list_field(e, "docker.attributes.exitCode");
                if code.is_empty() {
                    "unknown".to_string()
                } else {
                    code
                }
            }),
        ),
        (None, Some(t)) => (t, "the next exec into this container".to_string()),
        (None, None) => (
            window_end,
            format!("{minutes} minutes later; the exec's end was not seen"),
        ),
    };
    // What ran in the container, from the agent or a sensor (not the engine's own events).
    let processes = Filter::And(vec![
        term("container.id", container),
        term("event.category", "process"),
        Filter::Not(Box::new(term("event.dataset", "docker.events"))),
    ]);
    let (mut ran, total) =
        search(console, auth, processes.clone(), Some(started), Some(end)).await?;
    ran.reverse(); // oldest first
                   // Who: the host's `docker exec` client processes in the 10 s before the engine saw it.
    let host = list_field(this, "host.name");
    let clients = if host.is_empty() {
        Vec::new()
    } else {
        let filter = Filter::And(vec![
            term("host.name", &host),
            term("process.name", "docker"),
            term("process.args", "exec"),
        ]);
        search(
            console,
            auth,
            filter,
            Some(started - Duration::seconds(10)),
            Some(started + Duration::seconds(1)),
        )
        .await
        .map(|(hits, _)| hits)
        .unwrap_or_default()
    };
    let ts_short = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    Ok(html! {
        p { a href="/exec" { "← Exec sessions" } }
        h1 { "docker exec into " code { (list_field(this, "container.name")) } }
        dl.facts {
            dt { "When" } dd { (list_field(this, "@timestamp")) }
            dt { "Command" } dd { code { (value(&list_field(this, "process.command_line"))) } }
            dt { "Container" } dd { code { (container) } }
            dt { "Image" } dd { (list_field(this, "container.image.name")) }
            dt { "Host" } dd { (host) }
            dt { "Exec id" } dd { code { (exec_id) } }
            dt { "Container runs as" } dd { (list_field(this, "docker.container.user")) }
            dt { "Privileged container" } dd { (list_field(this, "docker.container.privileged")) }
            dt { "Who" } dd {
                @if clients.is_empty() {
                    span.muted { "The Docker engine does not say who ran an exec; no " code { "docker exec" } " client process was recorded on " (host) " in the 10 s before (auditd or a process sensor on the host records it)." }
                } @else {
                    @for c in &clients {
                        (list_field(c, "user.name")) " (uid " (list_field(c, "user.id")) "): " code { (value(&list_field(c, "process.command_line"))) } br;
                    }
                }
            }
            dt { "Followed until" } dd { (ts_short(end)) " (" (ended_by) ")" }
        }
        h2 { "What ran in the container" }
        p.summary {
            (ran.len()) " of " (total) " process executions, oldest first."
            @if (ran.len() as u64) < total { " Only the last " (MAX_ROWS) " are shown; " }
            " " a href=(link("/search", &[("q", &query(processes)), ("start", &ts(started)), ("end", &ts(end)), ("cols", "@timestamp,process.user.name,process.command_line,process.parent.name,container.name")])) { "open in search" }
        }
        div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
            table.results {
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "User" } th scope="col" { "Command line" }
                    th scope="col" { "Parent" } th scope="col" { "PID" } th scope="col" { "Source" }
                } }
                tbody {
                    @for p in &ran {
                        tr {
                            td { (list_field(p, "@timestamp")) }
                            td { (first_of(p, &["process.user.name", "user.name"])) }
                            td { (value(&list_field(p, "process.command_line"))) }
                            td { (list_field(p, "process.parent.name")) }
                            td.num { (list_field(p, "process.pid")) }
                            td { (list_field(p, "event.dataset")) }
                        }
                    }
                }
            }
        }
    })
}
