//! The ATT&CK for Containers coverage page: the matrix (tactics × the techniques whose
//! platforms include Containers, bundled from MITRE's STIX data in `assets/attack/`), each
//! cell coloured by the loaded rules tagged with it (`attack.tNNNN`) and the alerts they
//! raised in a range; gaps are visible, and each cell links to its rules and alerts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use axum::extract::{Query as UrlQuery, State};
use axum::response::{IntoResponse, Response};
use crowsnest_server::api::rules_status;
use maud::{html, Markup};
use serde::Deserialize;

use crate::layout::frame;
use crate::render::{link, text};
use crate::rules::{hits, rule_path};
use crate::session::Reader;
use crate::Console;

/// MITRE's licence of ATT&CK, shown on the page (required with any copy of the data).
pub(crate) const ATTACK_LICENSE: &str = include_str!("../assets/attack/LICENSE.txt");
const ATTACK_JSON: &str = include_str!("../assets/attack/containers.json");

#[derive(Debug, Deserialize)]
pub(crate) struct Matrix {
    pub(crate) attack_version: String,
    pub(crate) tactics: Vec<Tactic>,
    pub(crate) techniques: Vec<Technique>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Tactic {
    pub(crate) id: String,
    pub(crate) shortname: String,
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Technique {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) tactics: Vec<String>,
}

/// The bundled matrix (checked by a test; an unreadable file would be a build defect).
pub(crate) static MATRIX: LazyLock<Matrix> = LazyLock::new(|| {
    serde_json::from_str(ATTACK_JSON).unwrap_or_else(|_| Matrix {
        attack_version: String::new(),
        tactics: Vec::new(),
        techniques: Vec::new(),
    })
});

/// The technique id of a Sigma tag (`attack.t1059.004` -> `T1059.004`).
pub(crate) fn technique_of(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix("attack.")?;
    let id = rest.strip_prefix(['t', 'T'])?;
    let ok = id
        .split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| format!("T{id}"))
}

const RANGES: [&str; 4] = ["24h", "7d", "30d", "90d"];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    range: String,
    #[serde(default)]
    technique: String,
}

/// A loaded rule, as the matrix needs it.
struct RuleRef {
    id: String,
    title: String,
    enabled: bool,
    alerts: u64,
}

/// `GET /coverage?range=30d&technique=T1609`.
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    Reader(auth): Reader,
    UrlQuery(params): UrlQuery<Params>,
) -> Response {
    let range = if RANGES.contains(&params.range.as_str()) {
        params.range.as_str()
    } else {
        "30d"
    };
    let status = rules_status(&console.app);
    let hits = hits(&console, &auth, range).await;
    let mut by_technique: HashMap<String, Vec<RuleRef>> = HashMap::new();
    for rule in status["rules"].as_array().into_iter().flatten() {
        let id = text(&rule["id"]);
        let alerts = hits
            .as_ref()
            .ok()
            .and_then(|h| h.get(&id))
            .and_then(|h| h.0.parse().ok())
            .unwrap_or(0);
        for tag in rule["tags"].as_array().into_iter().flatten() {
            if let Some(technique) = technique_of(&text(tag)) {
                by_technique.entry(technique).or_default().push(RuleRef {
                    id: id.clone(),
                    title: text(&rule["title"]),
                    enabled: rule["enabled"] == true,
                    alerts,
                });
            }
        }
    }
    let matrix = &*MATRIX;
    let mut columns: BTreeMap<usize, Vec<&Technique>> = BTreeMap::new();
    for technique in &matrix.techniques {
        for tactic in &technique.tactics {
            if let Some(i) = matrix.tactics.iter().position(|t| &t.shortname == tactic) {
                columns.entry(i).or_default().push(technique);
            }
        }
    }
    let covered = matrix
        .techniques
        .iter()
        .filter(|t| {
            by_technique
                .get(&t.id)
                .is_some_and(|r| r.iter().any(|r| r.enabled))
        })
        .count();
    let selected = matrix.techniques.iter().find(|t| t.id == params.technique);
    let body = html! {
        h1 { "ATT&CK for Containers coverage" }
        p.summary {
            strong { (covered) " of " (matrix.techniques.len()) } " techniques of the Containers matrix (ATT&CK v"
            (matrix.attack_version) ") have an enabled rule. Cells: "
            span.cell-key.alerted { "alerted" } " rules that raised alerts in the last " (range) ", "
            span.cell-key.covered { "covered" } " enabled rules, "
            span.cell-key.gap { "gap" } " no enabled rule."
        }
        @if let Err(error) = &hits { p.error role="alert" { "Alert counts unavailable: " (error) } }
        form.filters method="get" action="/coverage" {
            label for="range" { "Alerts in the last" }
            select #range name="range" { @for r in RANGES { option value=(r) selected[r == range] { (r) } } }
            button type="submit" { "Show" }
        }
        @if let Some(t) = selected { (detail(t, by_technique.get(&t.id), range)) }
        div.matrix {
            @for (i, techniques) in &columns {
                @let tactic = &matrix.tactics[*i];
                section.tactic aria-labelledby=(format!("tactic-{}", tactic.id)) {
                    h2 id=(format!("tactic-{}", tactic.id)) { (tactic.name) }
                    ul {
                        @for t in techniques {
                            @let rules = by_technique.get(&t.id);
                            @let enabled = rules.map(|r| r.iter().filter(|r| r.enabled).count()).unwrap_or(0);
                            @let alerts: u64 = rules.map(|r| r.iter().map(|r| r.alerts).sum()).unwrap_or(0);
                            @let class = if alerts > 0 { "alerted" } else if enabled > 0 { "covered" } else { "gap" };
                            li class=(format!("cell {class}")) {
                                a href=(link("/coverage", &[("range", range), ("technique", &t.id)])) {
                                    span.tid { (t.id) } " " (t.name)
                                    span.count { (enabled) " rules" @if alerts > 0 { " · " (alerts) " alerts" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        (notice())
    };
    frame("ATT&CK coverage", Some(&auth), body).into_response()
}

fn detail(technique: &Technique, rules: Option<&Vec<RuleRef>>, range: &str) -> Markup {
    html! {
        section.panel #detail aria-labelledby="detail-title" {
            h2 #detail-title { (technique.id) " " (technique.name) }
            p {
                a href=(format!("https://attack.mitre.org/techniques/{}/", technique.id.replace('.', "/"))) rel="noreferrer" { "The technique at MITRE" }
                " · "
                a href=(link("/alerts", &[("technique", &technique.id), ("since", range)])) { "Its alerts in the last " (range) }
            }
            @match rules {
                None => p.error { "No loaded rule is tagged " code { "attack." (technique.id.to_lowercase()) } ": a gap." },
                Some(rules) => ul {
                    @for r in rules {
                        li {
                            a href=(rule_path(&r.id)) { (r.title) }
                            @if !r.enabled { " (disabled)" }
                            " — " (r.alerts) " alerts in the last " (range)
                        }
                    }
                },
            }
        }
    }
}

/// MITRE's notice, as its terms of use ask for any copy of ATT&CK.
fn notice() -> Markup {
    html! {
        footer.notice {
            p { "© 2025 The MITRE Corporation. This work is reproduced and distributed with the permission of The MITRE Corporation. "
                "MITRE ATT&CK® and ATT&CK® are registered trademarks of The MITRE Corporation." }
            details {
                summary { "MITRE ATT&CK terms of use" }
                pre.original { (ATTACK_LICENSE) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_matrix_reads_and_holds_the_container_techniques() {
        let matrix = &*MATRIX;
        assert!(matrix.tactics.len() >= 10, "{:?}", matrix.tactics);
        assert!(matrix.techniques.len() >= 30);
        let ids: Vec<&str> = matrix.techniques.iter().map(|t| t.id.as_str()).collect();
        for id in ["T1609", "T1610", "T1611", "T1613", "T1612"] {
            assert!(ids.contains(&id), "{id} missing");
        }
        for t in &matrix.techniques {
            assert!(!t.tactics.is_empty(), "{}", t.id);
            for tactic in &t.tactics {
                assert!(
                    matrix.tactics.iter().any(|x| &x.shortname == tactic),
                    "{tactic}"
                );
            }
        }
        assert!(ATTACK_LICENSE.contains("The MITRE Corporation"));
    }

    #[test]
    fn sigma_tags_name_techniques() {
        assert_eq!(technique_of("attack.t1609").as_deref(), Some("T1609"));
        assert_eq!(
            technique_of("attack.T1059.004").as_deref(),
            Some("T1059.004")
        );
        assert_eq!(technique_of("attack.execution"), None);
        assert_eq!(technique_of("attack.t"), None);
        assert_eq!(technique_of("cve.2021-44228"), None);
    }
}
