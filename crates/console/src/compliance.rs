//! The compliance pages: `/compliance` lists the frameworks; `/compliance/{framework}` shows
//! every control of one (none hidden) with its status and what it rests on: the finding of each
//! check, the exact queries with their counts, sample event ids and a link that reruns each
//! query on the search page over the same period; then the health of each source. The
//! evaluation is the API's own (`crowsnest_server::api::run_evaluation`, the core of
//! `GET /api/v1/compliance/{framework}`), so the page, the API and `crowsnest report
//! compliance` agree.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use crowsnest_compliance::{catalogs, Evaluation, QueryEvidence, Scope, Status};
use crowsnest_server::error::ApiError;
use maud::{html, Markup};

use crate::layout::frame;
use crate::render::link;
use crate::session::{Auth, Reader};
use crate::Console;

/// The period when none is given: the last 30 days (as the API).
const DEFAULT_DAYS: i64 = 30;

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `GET /compliance`: the frameworks and their versions.
pub(crate) async fn list(Reader(auth): Reader) -> Response {
    let body = html! {
        h1 { "Compliance" }
        p {
            "Status per control, built from the stored evidence: "
            (status_badge(Status::Evidence)) ", " (status_badge(Status::Violation)) ", "
            (status_badge(Status::Gap)) " or " (status_badge(Status::Attest)) ". "
            "Each framework opens over the last " (DEFAULT_DAYS) " days; "
            code { "crowsnest report compliance --framework ID" } " writes the same evaluation as a report (HTML, PDF, manifest)."
        }
        div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
            table.results {
                thead { tr { th scope="col" { "Framework" } th scope="col" { "Version" } th scope="col" { "Id" } th scope="col" { "Controls" } th scope="col" { "Evaluated by crowsnest" } } }
                tbody {
                    @for catalog in catalogs() {
                        @let checked = catalog.controls.iter().filter(|c| !c.checks.is_empty()).count();
                        tr {
                            td { a href=(format!("/compliance/{}", catalog.id)) { (catalog.name) } }
                            td { (catalog.version) }
                            td { code { (catalog.id) } }
                            td.num { (catalog.controls.len()) }
                            td.num { (checked) }
                        }
                    }
                }
            }
        }
    };
    frame("Compliance", Some(&auth), body).into_response()
}

/// `GET /compliance/{framework}?from=&to=&scope=`.
pub(crate) async fn show(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    Path(framework): Path<String>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| {
        params
            .get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let (from_text, to_text, scope_text) = (get("from"), get("to"), get("scope"));
    let parsed = period(&from_text, &to_text).and_then(|(from, to)| {
        Scope::parse(&scope_text)
            .map(|scope| (from, to, scope))
            .map_err(|e| e.to_string())
    });
    let (from, to, scope) = match parsed {
        Ok(p) => p,
        Err(message) => {
            return page(
                &auth,
                &framework,
                StatusCode::BAD_REQUEST,
                html! { p.error role="alert" { (message) } },
                &params,
            )
        }
    };
    let app = console.app.clone();
    let name = framework.clone();
    let evaluated = tokio::task::spawn_blocking(move || {
        crowsnest_server::api::run_evaluation(&app, &name, from, to, scope)
    })
    .await;
    match evaluated {
        Ok(Ok(evaluation)) => page(
            &auth,
            &framework,
            StatusCode::OK,
            controls(&evaluation),
            &params,
        ),
        Ok(Err(error)) => {
            let status = match error {
                ApiError::NotFound(_) => StatusCode::NOT_FOUND,
                ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            page(
                &auth,
                &framework,
                status,
                html! { p.error role="alert" { (error.to_string()) } },
                &params,
            )
        }
        Err(error) => page(
            &auth,
            &framework,
            StatusCode::INTERNAL_SERVER_ERROR,
            html! { p.error role="alert" { "the evaluation stopped: " (error.to_string()) } },
            &params,
        ),
    }
}

/// The period of the form: RFC 3339 or `2026-11-01T00:00` (UTC); `to` defaults to now, `from`
/// to 30 days before `to`.
fn period(from: &str, to: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let parse = |name: &str, text: &str| -> Result<Option<DateTime<Utc>>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
                return Ok(Some(t.and_utc()));
            }
        }
        if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
        }
        Err(format!(
            "`{name}` must be a time like 2026-11-01, 2026-11-01T12:00 (UTC) or RFC 3339"
        ))
    };
    let to = parse("to", to)?.unwrap_or_else(Utc::now);
    let from = parse("from", from)?.unwrap_or(to - TimeDelta::days(DEFAULT_DAYS));
    if from >= to {
        return Err("`from` must be before `to`".into());
    }
    Ok((from, to))
}

fn page(
    auth: &Auth,
    framework: &str,
    status: StatusCode,
    content: Markup,
    params: &HashMap<String, String>,
) -> Response {
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let title = crowsnest_compliance::catalog(framework)
        .map(|c| format!("{} {}", c.name, c.version))
        .unwrap_or_else(|| framework.to_string());
    let body = html! {
        p { a href="/compliance" { "Compliance" } " › " (title) }
        h1 { (title) }
        form.filters method="get" action=(format!("/compliance/{framework}")) {
            label for="from" { "From (UTC)" } input #from name="from" value=(get("from")) placeholder="30 days ago" size="18";
            label for="to" { "To" } input #to name="to" value=(get("to")) placeholder="now" size="18";
            label for="scope" { "Scope" } input #scope name="scope" value=(get("scope")) placeholder="cluster or cluster/namespace" size="20";
            button type="submit" { "Evaluate" }
        }
        (content)
    };
    (status, frame(&title, Some(auth), body)).into_response()
}

/// The scope as the `scope` parameter takes it (empty: everything).
fn scope_param(scope: &Scope) -> String {
    match (&scope.cluster, &scope.namespace) {
        (None, None) => String::new(),
        (c, n) => format!(
            "{}/{}",
            c.as_deref().unwrap_or("*"),
            n.as_deref().unwrap_or("*")
        ),
    }
}

fn status_badge(status: Status) -> Markup {
    html! { span class={ "status " (status.class()) } { (status.label()) } }
}

/// A link that reruns a check's query on the search page over its range.
fn search_link(query: &QueryEvidence) -> String {
    let start = query.from.map(rfc3339).unwrap_or_default();
    let end = query.to.map(rfc3339).unwrap_or_default();
    // Without any bound the search page's relative range would apply: ask for all time.
    let start = if start.is_empty() && end.is_empty() {
        "1970-01-01T00:00:00Z".to_string()
    } else {
        start
    };
    link(
        "/search",
        &[("q", &query.query), ("start", &start), ("end", &end)],
    )
}

fn controls(e: &Evaluation) -> Markup {
    html! {
        p.summary {
            (rfc3339(e.from)) " to " (rfc3339(e.to)) ", scope " strong { (e.scope.label()) } ": "
            @for (i, (label, count)) in e.summary.iter().enumerate() {
                @if i > 0 { ", " }
                (count) " " (label)
            }
            ". "
            a href=(link(&format!("/api/v1/compliance/{}", e.framework.id), &[("from", &rfc3339(e.from)), ("to", &rfc3339(e.to)), ("scope", &scope_param(&e.scope))])) { "JSON" }
        }
        div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
            table.results.compliance {
                thead { tr {
                    th scope="col" { "Control" } th scope="col" { "Status" } th scope="col" { "Summary" }
                    th scope="col" { "Evidence: finding, queries, counts, sample events" }
                } }
                tbody {
                    @for control in &e.controls {
                        tr id=(format!("c-{}", control.id)) {
                            td { strong { (control.id) } @if !control.nist.is_empty() { br; span.muted { "NIST " (control.nist.join(", ")) } } }
                            td {
                                (status_badge(control.status))
                                @if let Some(accepted) = &control.accepted {
                                    br; span.muted {
                                        @if accepted.expired { "risk acceptance expired " } @else { "risk accepted until " }
                                        (rfc3339(accepted.expires)) ": " (accepted.reason)
                                    }
                                }
                            }
                            td.narrow { (control.summary) }
                            td {
                                @if control.checks.is_empty() {
                                    span.muted { "no event can show this control: the organisation attests it" }
                                }
                                @for check in &control.checks {
                                    div.check {
                                        (status_badge(check.status)) " " code { (check.check) } ": " (check.finding)
                                        @if !check.figures.is_empty() {
                                            br; span.muted {
                                                @for (i, (name, value)) in check.figures.iter().enumerate() {
                                                    @if i > 0 { "; " }
                                                    (name) " " (value.to_string())
                                                }
                                            }
                                        }
                                        ul {
                                            @for query in &check.queries {
                                                li {
                                                    code { (query.query) } " → " (query.count) " events "
                                                    a href=(search_link(query)) { "search" }
                                                    @if !query.sample_ids.is_empty() {
                                                        " · samples: "
                                                        @for id in &query.sample_ids {
                                                            a href=(link("/search", &[("q", &format!("event.id:\"{}\"", id.replace('\\', "\\\\").replace('"', "\\\""))), ("start", "1970-01-01T00:00:00Z")])) { (id) } " "
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
        h2 { "Sources in the period" }
        @if e.sources.is_empty() {
            p.muted { "No events in the period and scope." }
        } @else {
            table.results {
                thead { tr { th scope="col" { "Source (event.dataset)" } th scope="col" { "Events" } th scope="col" { "Newest" } } }
                tbody {
                    @for source in &e.sources {
                        tr {
                            td { a href=(link("/search", &[("q", &format!("event.dataset:\"{}\"", source.dataset)), ("start", &rfc3339(e.from)), ("end", &rfc3339(e.to))])) { (source.dataset) } }
                            td.num { (source.events) }
                            td { (source.newest.map(rfc3339).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};

    use crate::tests::{get, ingest, login, send};

    #[test]
    fn periods_default_to_the_last_30_days_and_refuse_reversed_ones() {
        let (from, to) = super::period("", "2026-11-08").expect("period");
        assert_eq!(super::rfc3339(to), "2026-11-08T00:00:00Z");
        assert_eq!(super::rfc3339(from), "2026-10-09T00:00:00Z");
        assert!(super::period("2026-11-08", "2026-11-01").is_err_and(|e| e.contains("before")));
        assert!(super::period("yesterday", "").is_err_and(|e| e.contains("`from`")));
    }

    #[tokio::test]
    async fn framework_pages_show_every_control_with_its_evidence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crowsnest_server::ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        config.pipeline.commit_interval_ms = 20;
        config.audit.enabled = false;
        config.integrity.verify_interval_secs = 0;
        let running = crowsnest_server::start(config).await.expect("start");
        let admin = running.new_admin_token.clone().expect("admin");
        let now = chrono::Utc::now().to_rfc3339();
        let privileged = serde_json::json!({"@timestamp": now, "event": {"dataset": "docker.events", "action": "start"},
            "container": {"id": "c1", "name": "<b>agent</b>"},
            "docker": {"container": {"privileged": true, "mounts_runtime_socket": true, "user": "0"}}});
        ingest(&running.state, &admin, privileged.to_string()).await;
        let console = crate::router(running.state.clone());
        let (cookie, _) = login(&console, &admin).await;

        let list = send(&console, get("/compliance", &cookie)).await;
        assert_eq!(list.status, StatusCode::OK);
        for catalog in crowsnest_compliance::catalogs() {
            assert!(
                list.body
                    .contains(&format!("href=\"/compliance/{}\"", catalog.id)),
                "{}",
                catalog.id
            );
        }
        assert!(
            list.body.contains("href=\"/compliance\""),
            "in the navigation"
        );

        let page = send(&console, get("/compliance/cis-docker-1.6", &cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let cis = crowsnest_compliance::catalog("cis-docker-1.6").expect("catalog");
        for control in &cis.controls {
            assert!(
                page.body.contains(&format!("id=\"c-{}\"", control.id)),
                "{}",
                control.id
            );
        }
        // 5.4: a violation, its query, count, sample link and a link to rerun it.
        let row = page
            .body
            .split("id=\"c-5.4\"")
            .nth(1)
            .and_then(|rest| rest.split("</tr>").next())
            .expect("5.4 row");
        assert!(row.contains("status violation"), "{row}");
        assert!(
            row.contains("1 of 1 container starts were privileged: &lt;b&gt;agent&lt;/b&gt;"),
            "{row}"
        );
        assert!(row.contains("docker.container.privileged:true"), "{row}");
        assert!(row.contains("→ 1 events"), "{row}");
        assert!(
            row.contains("href=\"/search?q=event.dataset%3Adocker.events"),
            "{row}"
        );
        assert!(!page.body.contains("<b>agent</b>"), "escaped");
        assert!(page.body.contains("not evaluable by a SIEM (attest)"));

        let missing = send(&console, get("/compliance/pci-dss-3.2.1", &cookie)).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(
            missing.body.contains("unknown framework"),
            "{}",
            missing.body
        );
        let bad = send(&console, get("/compliance/gdpr?from=yesterday", &cookie)).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let scoped = send(&console, get("/compliance/gdpr?scope=a/b/c", &cookie)).await;
        assert_eq!(scoped.status, StatusCode::BAD_REQUEST);
        // Without a session: to the login page.
        let anonymous = send(
            &console,
            Request::get("/compliance/gdpr")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
        assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
        running.shutdown().await.expect("shutdown");
    }
}
