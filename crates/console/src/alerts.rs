//! The alerts page: `crowsnest_server::api::list_alerts` (the `GET /api/v1/alerts` core) as a
//! table, its filters a GET form.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query as UrlQuery, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::Value;

use crate::layout::frame;
use crate::render::{field, link, text, with_filter};
use crate::session::Reader;
use crate::Console;

const LEVELS: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

/// `GET /alerts?min_level=&rule=&technique=&namespace=&since=24h`.
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(mut params): UrlQuery<HashMap<String, String>>,
) -> Response {
    params.retain(|k, v| {
        !v.is_empty()
            && [
                "rule",
                "min_level",
                "technique",
                "namespace",
                "pod",
                "since",
                "offset",
            ]
            .contains(&k.as_str())
    });
    if !params.contains_key("since") {
        params.insert("since".into(), "24h".into());
    }
    params.insert("limit".into(), "100".into());
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let result = crowsnest_server::api::list_alerts(&console.app, &auth.name, &params).await;
    let body = html! {
        h1 { "Alerts" }
        form.filters method="get" action="/alerts" {
            label for="min_level" { "Level at least" }
            select #min_level name="min_level" {
                option value="" { "any" }
                @for level in LEVELS { option value=(level) selected[get("min_level") == level] { (level) } }
            }
            label for="rule" { "Rule id" } input #rule name="rule" value=(get("rule"));
            label for="technique" { "Technique" } input #technique name="technique" value=(get("technique")) placeholder="T1609" size="8";
            label for="namespace" { "Namespace" } input #namespace name="namespace" value=(get("namespace"));
            label for="since" { "Since" } input #since name="since" value=(get("since")) size="5";
            button type="submit" { "Filter" }
        }
        @match &result {
            Err(error) => p.error role="alert" { (error.to_string()) },
            Ok(answer) => {
                @let alerts = answer.get("alerts").and_then(Value::as_array).cloned().unwrap_or_default();
                @let total = answer.get("total").and_then(Value::as_u64).unwrap_or(0);
                p.summary { (alerts.len()) " of " (total) " distinct alerts in this range (newest record of each)." }
                div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" {
                    table.results {
                        thead { tr {
                            th scope="col" { "Last seen" } th scope="col" { "Level" } th scope="col" { "Rule" }
                            th scope="col" { "Entity" } th scope="col" { "Technique" } th scope="col" { "Count" } th scope="col" { "Events" }
                        } }
                        tbody {
                            @for alert in &alerts {
                                @let level = field(alert, "rule.level").map(text).unwrap_or_default();
                                @let rule_id = field(alert, "rule.id").map(text).unwrap_or_default();
                                @let alert_id = field(alert, "alert.id").map(text).unwrap_or_default();
                                tr {
                                    td { (field(alert, "alert.last_seen").or_else(|| field(alert, "@timestamp")).map(text).unwrap_or_default()) }
                                    td { span class={ "level " (level) } { (level) } }
                                    td.narrow { a href=(link("/alerts", &[("rule", &rule_id), ("since", &get("since"))])) { (field(alert, "rule.name").map(text).unwrap_or(rule_id.clone())) } }
                                    td.narrow title=(entity(alert)) { (entity(alert)) }
                                    td {
                                        @for t in field(alert, "threat.technique.id").and_then(Value::as_array).into_iter().flatten() {
                                            a href=(link("/alerts", &[("technique", &text(t)), ("since", &get("since"))])) { (text(t)) } " "
                                        }
                                    }
                                    td.num { (field(alert, "alert.count").map(text).unwrap_or_default()) }
                                    td { a href=(link("/search", &[("q", &with_filter("", "alert.id", &alert_id).unwrap_or_default()), ("range", "7d")])) { "records" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    frame("Alerts", Some(&auth), body).into_response()
}

/// Where an alert happened, in a few words.
pub(crate) fn entity(alert: &Value) -> String {
    let parts: Vec<String> = [
        "kubernetes.namespace",
        "kubernetes.pod.name",
        "container.name",
        "user.name",
    ]
    .iter()
    .filter_map(|f| field(alert, f).map(text))
    .filter(|t| !t.is_empty())
    .collect();
    parts.join(" / ")
}
