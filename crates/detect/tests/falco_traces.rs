//! The built-in pack against Falco's Kubernetes audit regression traces.
//!
//! Falco's k8s_audit tests (`../shared/testdata/k8s-audit`, Apache-2.0, recorded on minikube)
//! say, per trace file, which of Falco's stock rules (k8saudit plugin 0.6.0) fire, or that none
//! does. Each trace is decoded the way the server decodes an audit webhook body
//! ([`decode_k8s_audit`]) and run through a [`Detector`] with the built-in pack only. Then:
//!
//! * where Falco fires a **threat** rule, the pack fires one of the rules listed for it in
//!   [`FALCO_TO_PACK`];
//! * the pack fires nothing Falco does not fire there: every rule it fires answers one of the
//!   Falco rules expected on that trace (so on the benign traces, `[]`, it stays quiet);
//! * Falco's **activity** rules ("K8s Deployment Created", ...) and its broad "ClusterRole With
//!   Write Privileges Created" have no counterpart on purpose: the pack reports threats, not
//!   every change (the store keeps every change searchable).
//!
//! A second test runs 4,000 events of a real cluster installing Helm charts (benign-hkerma,
//! CC-BY-4.0) and bounds what the pack reports there. A third runs every pack rule's own test
//! events (`rules/<area>/<name>.test.ndjson`, embedded with the pack) and checks the metadata
//! every pack rule must carry. Run with `--nocapture` for the tables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crowsnest_detect::load::builtin_files;
use crowsnest_detect::testrun::run_tests;
use crowsnest_detect::{Detector, RuleSet};
use crowsnest_model::{Event, Severity};
use crowsnest_normalize::{decode_k8s_audit, Limits};
use serde_json::Value;

/// Falco stock rule -> titles of pack rules that answer it (empty: no counterpart on purpose).
const FALCO_TO_PACK: &[(&str, &[&str])] = &[
    (
        "Anonymous Request Allowed",
        &["Anonymous API Request Allowed"],
    ),
    (
        "Attach to cluster-admin Role",
        &["Binding To cluster-admin Created Or Changed"],
    ),
    (
        "Attach/Exec Pod",
        &[
            "Command Executed In Pod Via Exec",
            "Attach To Running Pod Container",
        ],
    ),
    (
        "ClusterRole With Pod Exec Created",
        &["Role Grants Pod Exec Or Secret Access"],
    ),
    (
        "ClusterRole With Wildcard Created",
        &["Role Or ClusterRole With Wildcard Permissions"],
    ),
    (
        "ClusterRole With Write Privileges Created",
        &["Role Or ClusterRole Grants Write Access To Workloads, Secrets Or RBAC"],
    ),
    ("Create HostNetwork Pod", &["Pod Uses Host Network"]),
    ("Create Privileged Pod", &["Privileged Container In Pod"]),
    (
        "Create Sensitive Mount Pod",
        &[
            "Pod Mounts Sensitive Host Path",
            "Container Runtime Socket Mounted Into Pod Or Workload",
        ],
    ),
    (
        "Pod Created in Kube Namespace",
        &["Pod Created In A Kubernetes System Namespace"],
    ),
    (
        "Service Account Created in Kube Namespace",
        &["Service Account Created In A Kubernetes System Namespace"],
    ),
    (
        "System ClusterRole Modified/Deleted",
        &["Built-in System Role Modified Or Deleted"],
    ),
];

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/k8s-audit")
}

/// Pack rule titles that answer a Falco rule; `None` when the Falco rule is an activity rule.
fn counterparts(falco_rule: &str) -> Option<&'static [&'static str]> {
    FALCO_TO_PACK
        .iter()
        .find(|(name, _)| *name == falco_rule)
        .map(|(_, titles)| *titles)
        .filter(|titles| !titles.is_empty())
}

/// Decodes a trace file as the audit webhook would: one body, or (for the one JSON-lines file)
/// one body per line.
fn decode_trace(path: &Path) -> Result<Vec<Event>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let bodies: Vec<&str> = if serde_json::from_str::<Value>(&text).is_ok() {
        vec![text.as_str()]
    } else {
        text.lines().filter(|l| !l.trim().is_empty()).collect()
    };
    let mut events = Vec::new();
    for body in bodies {
        let decoded =
            decode_k8s_audit(body.as_bytes(), &Limits::default()).map_err(|e| e.to_string())?;
        if let Some(error) = decoded.errors.first() {
            return Err(error.to_string());
        }
        events.extend(decoded.events);
    }
    Ok(events)
}

/// The built-in pack, loaded once; it must load without an invalid file.
fn pack() -> RuleSet {
    let (rules, report) = RuleSet::builtin();
    assert!(
        !report.any_invalid(),
        "the built-in pack must load: {report:?}"
    );
    assert!(
        rules.len() >= 45,
        "the pack has its rules ({})",
        rules.len()
    );
    rules
}

/// Titles of the pack rules that fire on any of `events`, in a fresh detector (no state
/// carries from one trace to the next).
fn pack_fires(rules: &RuleSet, events: &[Event]) -> BTreeSet<String> {
    let mut detector = Detector::new(rules.clone());
    events
        .iter()
        .flat_map(|event| detector.process(event))
        .map(|d| d.title)
        .collect()
}

#[test]
fn pack_fires_where_falco_fires_and_stays_quiet_elsewhere() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("expected_by_trace.json"))
            .expect("expected_by_trace.json"),
    )
    .expect("expected_by_trace.json is JSON");
    let traces = expected["expected"].as_object().expect("an `expected` map");
    let rules = pack();

    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let (mut threat_traces, mut benign_traces) = (0, 0);
    for (trace, falco) in traces {
        let path = testdata().join("falco-traces").join(trace);
        let decoded = decode_trace(&path);
        if falco == "INVALID_INPUT" {
            if decoded.is_ok() {
                problems.push(format!("{trace}: Falco rejects it, we decoded it"));
            }
            rows.push((
                trace.clone(),
                "(invalid input)".to_string(),
                "rejected".to_string(),
                "ok",
            ));
            continue;
        }
        let events = match decoded {
            Ok(events) => events,
            Err(error) => {
                problems.push(format!("{trace}: does not decode: {error}"));
                continue;
            }
        };
        let fired = pack_fires(&rules, &events);
        let fired_text = fired.iter().cloned().collect::<Vec<_>>().join("; ");
        let Some(falco_rules) = falco.as_array() else {
            // only tested by Falco with overlay rule files: shown, not asserted
            rows.push((
                trace.clone(),
                "(not tested with stock rules)".into(),
                fired_text,
                "-",
            ));
            continue;
        };
        let falco_rules: Vec<&str> = falco_rules.iter().filter_map(Value::as_str).collect();
        let answers: BTreeSet<&str> = falco_rules
            .iter()
            .filter_map(|rule| counterparts(rule))
            .flatten()
            .copied()
            .collect();
        let mut verdict = "ok";
        for rule in &falco_rules {
            if let Some(titles) = counterparts(rule) {
                threat_traces += 1;
                if !titles.iter().any(|t| fired.contains(*t)) {
                    verdict = "MISSED";
                    problems.push(format!(
                        "{trace}: Falco fires {rule:?}, the pack fires none of {titles:?}"
                    ));
                }
            }
        }
        if falco_rules.is_empty() {
            benign_traces += 1;
        }
        for title in &fired {
            if !answers.contains(title.as_str()) {
                verdict = "EXTRA";
                problems.push(format!(
                    "{trace}: the pack fires {title:?}, Falco fires only {falco_rules:?}"
                ));
            }
        }
        let falco_text = if falco_rules.is_empty() {
            "(none)".to_string()
        } else {
            falco_rules.join("; ")
        };
        rows.push((trace.clone(), falco_text, fired_text, verdict));
    }

    println!(
        "{:<72} {:<45} {:<60} verdict",
        "trace", "Falco (stock rules v0.6.0)", "crowsnest pack"
    );
    for (trace, falco, ours, verdict) in &rows {
        println!("{trace:<72} {falco:<45} {ours:<60} {verdict}");
    }
    println!(
        "{threat_traces} threat expectations, {benign_traces} benign traces, {} problems",
        problems.len()
    );
    assert!(
        threat_traces >= 15,
        "the threat traces were found ({threat_traces})"
    );
    assert!(
        benign_traces >= 4,
        "the benign traces were found ({benign_traces})"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn pack_is_quiet_on_a_real_cluster_installing_helm_charts() {
    let text = std::fs::read_to_string(testdata().join("benign-hkerma/audit-sample.jsonl"))
        .expect("benign-hkerma sample");
    let mut events = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let decoded =
            decode_k8s_audit(line.as_bytes(), &Limits::default()).expect("an audit event");
        events.extend(decoded.events);
    }
    assert_eq!(events.len(), 4000, "every benign event decodes");

    let mut detector = Detector::new(pack());
    let mut by_rule: BTreeMap<(Severity, String), usize> = BTreeMap::new();
    let mut fired_events = 0;
    for event in &events {
        let detections = detector.process(event);
        fired_events += usize::from(!detections.is_empty());
        for d in detections {
            *by_rule.entry((d.level, d.title)).or_default() += 1;
        }
    }
    println!(
        "{fired_events} of {} benign events raised a detection",
        events.len()
    );
    for ((level, title), count) in &by_rule {
        println!("{count:>5}  {level:<8} {title}");
    }
    // Helm installs read and create secrets and webhooks as a person: the pack may say so at
    // medium or below, on a handful of events, and never at high or critical.
    let loud: Vec<_> = by_rule
        .keys()
        .filter(|(level, _)| *level >= Severity::High)
        .collect();
    assert!(
        loud.is_empty(),
        "high/critical detections on benign activity: {loud:?}"
    );
    assert!(
        fired_events * 100 <= events.len(),
        "more than 1% of benign events fired: {fired_events}"
    );
}

/// The value of a top-level `key: value` line of a rule file.
fn top_level<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(": "))
        .map(str::trim)
}

#[test]
fn every_pack_rule_passes_its_test_events_and_carries_its_metadata() {
    let files = builtin_files();
    let test_of = |rule: &str| {
        let name = format!("{}.test.ndjson", rule.trim_end_matches(".yml"));
        files
            .iter()
            .find(|(path, _)| *path == name)
            .map(|(_, text)| *text)
    };
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let (mut rules, mut cases) = (0, 0);
    for (path, text) in files
        .iter()
        .filter(|(p, _)| p.ends_with(".yml") && p.contains('/'))
    {
        rules += 1;
        match top_level(text, "id") {
            Some(id) if id.len() == 36 && ids.insert(id.to_string()) => {}
            other => problems.push(format!(
                "{path}: id {other:?} is missing, not a UUID or not unique"
            )),
        }
        if top_level(text, "author") != Some("crowsnest") {
            problems.push(format!("{path}: author must be crowsnest"));
        }
        let technique = text.lines().any(|l| {
            l.trim_start()
                .strip_prefix("- attack.t")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        });
        if !technique {
            problems.push(format!("{path}: no attack.tNNNN tag"));
        }
        let Some(tests) = test_of(path) else {
            problems.push(format!("{path}: no test events"));
            continue;
        };
        let report = run_tests(Path::new(path), text, Path::new(path), tests)
            .unwrap_or_else(|e| panic!("{path}: test file unreadable: {e}"));
        if report.load.any_invalid() {
            problems.push(format!("{path}: does not load: {:?}", report.load));
        }
        let matches = report.cases.iter().filter(|c| c.expect == "match").count();
        if matches == 0 || matches == report.cases.len() {
            problems.push(format!("{path}: needs both match and nomatch events"));
        }
        for case in report.cases.iter().filter(|c| !c.passed) {
            problems.push(format!(
                "{path}: test line {} expected {} (fired: {:?})",
                case.line, case.expect, case.fired
            ));
        }
        cases += report.cases.len();
    }
    println!(
        "{rules} pack rules, {cases} test events, {} problems",
        problems.len()
    );
    assert!(rules >= 45, "the pack has at least 45 rules ({rules})");
    assert!(problems.is_empty(), "{problems:#?}");
}
