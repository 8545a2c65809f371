//! Audit events indexed with their ECS twins once (`schema/twins.rs`), on real data: the
//! recorded kube-apiserver audit traces in `shared/testdata`, decoded by the real normalizer,
//! plus copies whose twins disagree (indexed whole). Every filter on an audit path, and every
//! aggregation over one, must answer as if both sides were indexed: the matcher (which reads
//! the events themselves) and a naive count are the reference.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use crowsnest_model::Event;
use crowsnest_normalize::{decode_ndjson, Limits};
use crowsnest_store::{Matcher, SearchRequest, Store, StoreConfig, AUDIT_TWINS};
use serde_json::{json, Value};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata");

/// The normalized audit events of the recorded traces, every fifth copied with a twin changed
/// (so its twins disagree), each with a `seq`.
fn events() -> Vec<Value> {
    let mut bodies = Vec::new();
    let traces = format!("{TESTDATA}/k8s-audit/falco-traces");
    let mut names: Vec<_> = std::fs::read_dir(&traces)
        .expect("traces")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in names {
        bodies.push(std::fs::read(path).expect("read"));
    }
    let sample = std::fs::read_to_string(format!(
        "{TESTDATA}/k8s-audit/benign-hkerma/audit-sample.jsonl"
    ))
    .expect("sample");
    bodies.push(
        sample
            .lines()
            .take(800)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
    );
    let mut events = Vec::new();
    for body in bodies {
        let decoded = decode_ndjson(&body, None, &Limits::default());
        events.extend(
            decoded
                .events
                .into_iter()
                .filter(|e| e.get("k8s.audit").is_some())
                .map(|e| Value::Object(e.0)),
        );
    }
    let mut changed = Vec::new();
    for (i, event) in events.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let mut copy = event.clone();
        match i % 3 {
            0 => copy["user"]["name"] = json!("someone-else"),
            1 => copy["event"]["action"] = json!("renamed"),
            _ => {
                if let Some(object) = copy["url"].as_object_mut() {
                    object.remove("original");
                }
            }
        }
        changed.push(copy);
    }
    events.extend(changed);
    for (seq, event) in events.iter_mut().enumerate() {
        event["seq"] = json!(seq);
    }
    events
}

fn search(store: &Store, text: &str) -> crowsnest_store::SearchResponse {
    store
        .search(&SearchRequest {
            query: q(text),
            start: None,
            end: None,
            limit: 100_000,
            offset: 0,
        })
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn leaves(value: Option<&Value>) -> Vec<Value> {
    match value {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items.iter().flat_map(|v| leaves(Some(v))).collect(),
        Some(Value::Object(_)) => vec![],
        Some(v) => vec![v.clone()],
    }
}

/// The query-language literal of a value: quoted, with the characters the parser treats
/// specially escaped.
fn literal(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        other => other.to_string(),
    }
}

fn store_of(events: &[Value]) -> (tempfile::TempDir, Store) {
    let (dir, store) = store_with(StoreConfig::default());
    fill(&store, events);
    (dir, store)
}

#[test]
fn filters_on_audit_twins_answer_as_if_both_sides_were_indexed() {
    let json_events = events();
    assert!(json_events.len() > 900, "{}", json_events.len());
    let (_dir, store) = store_of(&json_events);
    let events: Vec<Event> = json_events.iter().map(|e| ev(e.clone())).collect();

    let mut queries: Vec<String> = vec![
        "k8s.audit.verb:(get OR list OR watch)".into(),
        "k8s.audit.user.username:system\\:serviceaccount\\:*".into(),
        "k8s.audit.user.groups:system\\:masters".into(),
        "k8s.audit.responseStatus.code:>=400".into(),
        "k8s.audit.responseStatus.code:[200 TO 299]".into(),
        "k8s.audit.objectRef.namespace:kube-system AND NOT k8s.audit.verb:get".into(),
        "k8s.audit.requestURI:*exec*".into(),
        "k8s.audit.stageTimestamp:>=2019-01-01".into(),
        "k8s.audit.annotations.authorization.k8s.io/decision:forbid".into(),
        "NOT k8s.audit.objectRef.name:*".into(),
        "_exists_:k8s.audit.objectRef".into(),
        "_exists_:k8s.audit.user".into(),
        "_exists_:k8s.audit".into(),
        "_exists_:k8s.audit.impersonatedUser".into(),
        "user.name:someone-else OR event.action:renamed".into(),
    ];
    // A term query for a few values of each twin, and `_exists_` of each.
    for (own, _) in AUDIT_TWINS {
        let escaped = own.replace('/', "\\/");
        queries.push(format!("_exists_:{escaped}"));
        let values: BTreeSet<String> = events
            .iter()
            .flat_map(|e| leaves(e.get(own)))
            .map(|v| literal(&v))
            .collect();
        for value in values.iter().take(4) {
            queries.push(format!("{escaped}:{value}"));
        }
    }
    let mut failures = Vec::new();
    let mut selective = 0;
    for text in &queries {
        let filter = q(text).filter;
        let matcher = Matcher::new(&filter).unwrap_or_else(|e| panic!("{text}: {e}"));
        let expected: Vec<u64> = events
            .iter()
            .filter(|e| matcher.matches(e))
            .map(|e| e.get("seq").and_then(Value::as_u64).expect("seq"))
            .collect();
        let got = seqs(&store, fq(filter.clone()));
        if !expected.is_empty() && expected.len() < events.len() {
            selective += 1;
        }
        if got != expected {
            failures.push(format!(
                "{text}\n  search:  {} {got:?}\n  matcher: {} {expected:?}",
                got.len(),
                expected.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{} filters agree, {selective} select a proper subset",
        queries.len()
    );
    assert!(
        selective > 60,
        "only {selective} queries select a proper subset"
    );
}

/// `(group key, count)` of `stats count() by fields` computed from the events: one group per
/// combination of values, events missing a field left out.
fn naive_counts(events: &[Event], fields: &[&str]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for event in events {
        let mut keys = vec![Vec::<String>::new()];
        for field in fields {
            let values: BTreeSet<String> = leaves(event.get(field))
                .iter()
                .map(Value::to_string)
                .collect();
            keys = keys
                .iter()
                .flat_map(|k| {
                    values.iter().map(move |v| {
                        let mut k = k.clone();
                        k.push(v.clone());
                        k
                    })
                })
                .collect();
        }
        for key in keys {
            *counts.entry(key.join(" | ")).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn aggregations_over_audit_twins_count_every_event_once() {
    let json_events = events();
    let (_dir, store) = store_of(&json_events);
    let events: Vec<Event> = json_events.iter().map(|e| ev(e.clone())).collect();
    for fields in [
        vec!["k8s.audit.verb"],
        vec!["k8s.audit.user.username", "k8s.audit.objectRef.resource"],
        vec!["k8s.audit.user.groups"],
        vec!["k8s.audit.responseStatus.code", "event.dataset"],
        vec![
            "k8s.audit.annotations.authorization.k8s.io/decision",
            "k8s.audit.verb",
        ],
    ] {
        let by = fields
            .iter()
            .map(|f| f.replace('/', "\\/"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!("* | stats count() by {by} | head 100000");
        let response = search(&store, &text);
        let rows = response.rows.expect("rows");
        let got: BTreeMap<String, u64> = rows
            .iter()
            .map(|row| {
                let key = row[..fields.len()]
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ");
                (key, row[fields.len()].as_u64().expect("count"))
            })
            .collect();
        let expected = naive_counts(&events, &fields);
        assert!(expected.len() > 1, "{text}: {expected:?}");
        assert_eq!(got, expected, "{text}");
    }
    // dc, min and max read the twins' columns for the events indexed with twins once.
    let response = search(
        &store,
        "* | stats dc(k8s.audit.sourceIPs), min(k8s.audit.responseStatus.code), max(k8s.audit.responseStatus.code), count(k8s.audit.requestURI)",
    );
    let row = &response.rows.clone().expect("rows")[0];
    let ips: BTreeSet<String> = events
        .iter()
        .flat_map(|e| leaves(e.get("k8s.audit.sourceIPs")))
        .map(|v| v.to_string())
        .collect();
    let codes: Vec<i64> = events
        .iter()
        .flat_map(|e| leaves(e.get("k8s.audit.responseStatus.code")))
        .filter_map(|v| v.as_i64())
        .collect();
    // A request URI of long free text has no column (`schema/route.rs`): left out, and said.
    let uris: Vec<Vec<Value>> = events
        .iter()
        .map(|e| leaves(e.get("k8s.audit.requestURI")))
        .collect();
    let with_uri = uris
        .iter()
        .filter(|uris| {
            uris.iter()
                .any(|u| !u.as_str().is_some_and(crowsnest_store::is_free_text))
        })
        .count();
    let long_uri = uris.iter().any(|uris| {
        uris.iter()
            .any(|u| u.as_str().is_some_and(crowsnest_store::is_free_text))
    });
    assert_eq!(
        response
            .warnings
            .iter()
            .any(|w| w.contains("`k8s.audit.requestURI`")),
        long_uri,
        "{:?}",
        response.warnings
    );
    assert_eq!(row[0], json!(ips.len()));
    assert_eq!(row[1], json!(codes.iter().min()));
    assert_eq!(row[2], json!(codes.iter().max()));
    assert_eq!(row[3], json!(with_uri));
}
