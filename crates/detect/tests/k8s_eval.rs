//! Kubernetes rules: precision and noise, measured on data the rules were not written from.
//!
//! * **Benign real-cluster data**: 4,000 audit events of a kubeadm cluster installing and
//!   removing Helm charts (`../shared/testdata/k8s-audit/benign-hkerma`, CC-BY-4.0) and Falco's
//!   k8s_audit traces on which Falco's stock rules report no threat (benign or activity only).
//! * **Attacks and look-alikes**: `tests/data/k8s_eval/scenarios.jsonl`, written by
//!   `tests/data/k8s_eval/gen.py` from public descriptions of each technique (the reference is
//!   in every scenario), as raw audit events, some wrapped as EKS, AKS and GKE deliver them.
//!   Look-alikes are the benign things closest to an attack: operators and controllers doing
//!   their job, denied and failed requests, dry runs, requests at `RequestReceived`, near misses
//!   (ClusterIP services, ingresses with TLS, read-only roles, a service account's own token).
//!   "Attempt" scenarios are denied attacks: only the low "attempt" rule may speak.
//!
//! Every event goes through the decoder the server uses (`decode_k8s_audit` for native bodies,
//! the `eks`/`aks`/`gke` parsers of `decode_ndjson` for managed envelopes) and a [`Detector`]
//! with the built-in pack; each scenario gets a fresh detector. The test asserts the targets of
//! issue 21 (attack recall >= 0.9, at most 5 % of look-alikes alerting) and a noise bound on the
//! benign stream, and prints the per-rule table (`-- --nocapture`) that BENCHMARKS.md quotes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crowsnest_detect::{Detection, Detector, RuleSet};
use crowsnest_model::{Event, Severity};
use crowsnest_normalize::{decode_k8s_audit, decode_ndjson, Limits};
use serde_json::Value;

const SCENARIOS: &str = include_str!("data/k8s_eval/scenarios.jsonl");

/// Falco stock rules that report a threat (the rest are activity rules: "K8s ... Created").
const FALCO_THREAT_RULES: &[&str] = &[
    "Anonymous Request Allowed",
    "Attach to cluster-admin Role",
    "Attach/Exec Pod",
    "ClusterRole With Pod Exec Created",
    "ClusterRole With Wildcard Created",
    "ClusterRole With Write Privileges Created",
    "Create HostNetwork Pod",
    "Create Privileged Pod",
    "Create Sensitive Mount Pod",
    "Pod Created in Kube Namespace",
    "Service Account Created in Kube Namespace",
    "System ClusterRole Modified/Deleted",
];

/// Issue 21's targets, and the noise bound measured on the benign stream (see BENCHMARKS.md).
const MIN_RECALL: f64 = 0.9;
const MAX_LOOKALIKE_SHARE: f64 = 0.05;
/// Benign events that raise any alert, per 10,000 (measured: 7.5, 3 of 4,020 events: one
/// secret read at `low`, one webhook and one DaemonSet created by the Helm user at `medium`).
const MAX_NOISE_PER_10K: f64 = 10.0;
/// Benign events that raise a medium-or-higher alert, per 10,000 (measured: 5.0, the webhook
/// and the DaemonSet a person installed with Helm).
const MAX_LOUD_NOISE_PER_10K: f64 = 5.0;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/k8s-audit")
}

fn decode(shape: &str, line: &str) -> Vec<Event> {
    let decoded = match shape {
        "native" => decode_k8s_audit(line.as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("native audit event does not decode: {e}: {line}")),
        managed => decode_ndjson(line.as_bytes(), Some(managed), &Limits::default()),
    };
    assert!(
        decoded.errors.is_empty(),
        "{shape} line does not decode: {:?}: {line}",
        decoded.errors
    );
    assert!(!decoded.events.is_empty(), "{shape}: no event from {line}");
    for event in &decoded.events {
        assert_eq!(
            event.get_str("event.dataset"),
            Some("kubernetes.audit"),
            "{shape}"
        );
    }
    decoded.events
}

fn pack() -> RuleSet {
    let (rules, report) = RuleSet::builtin();
    assert!(!report.any_invalid(), "the pack loads: {report:?}");
    rules
}

/// What fired on one scenario or stream: detections that are not informational.
fn alerts(rules: &RuleSet, events: &[Event]) -> Vec<Detection> {
    let mut detector = Detector::new(rules.clone());
    events
        .iter()
        .flat_map(|e| detector.process(e))
        .filter(|d| d.level > Severity::Informational)
        .collect()
}

#[derive(Default)]
struct RuleStats {
    level: Option<Severity>,
    attacks: usize,
    attempts: usize,
    lookalikes: usize,
    benign_events: usize,
}

fn falco_benign_events() -> Vec<Event> {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("expected_by_trace.json")).expect("expectations"),
    )
    .expect("JSON");
    let mut events = Vec::new();
    for (trace, falco) in expected["expected"].as_object().expect("map") {
        let Some(rules) = falco.as_array() else {
            continue;
        };
        if rules
            .iter()
            .filter_map(Value::as_str)
            .any(|r| FALCO_THREAT_RULES.contains(&r))
        {
            continue;
        }
        let text = std::fs::read_to_string(testdata().join("falco-traces").join(trace))
            .expect("trace file");
        events.extend(decode("native", &text));
    }
    events
}

fn hkerma_events() -> Vec<Event> {
    let text = std::fs::read_to_string(testdata().join("benign-hkerma/audit-sample.jsonl"))
        .expect("benign-hkerma sample");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| decode("native", l))
        .collect()
}

#[test]
fn kubernetes_rules_precision_recall_and_noise() {
    let rules = pack();
    let mut stats: BTreeMap<String, RuleStats> = BTreeMap::new();
    let mut problems = Vec::new();

    // --- scenarios ---------------------------------------------------------------------------
    let (mut attacks, mut attacks_hit, mut attacks_hit_technique) = (0usize, 0usize, 0usize);
    let (mut lookalikes, mut lookalikes_hit) = (0usize, 0usize);
    let mut attempts = 0usize;
    let mut missed = Vec::new();
    let mut noisy = Vec::new();
    let mut by_shape: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for line in SCENARIOS.lines().filter(|l| !l.trim().is_empty()) {
        let s: Value = serde_json::from_str(line).expect("scenario JSON");
        let field = |k: &str| s[k].as_str().unwrap_or_default().to_string();
        let (id, label, technique, shape, what) = (
            field("id"),
            field("label"),
            field("technique"),
            field("shape"),
            field("what"),
        );
        let events: Vec<Event> = s["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .filter_map(Value::as_str)
            .flat_map(|l| decode(&shape, l))
            .collect();
        let fired = alerts(&rules, &events);
        // Once per request: no rule reports the same audit ID twice.
        let mut seen = BTreeSet::new();
        for d in fired.iter().filter(|d| d.correlation.is_none()) {
            for e in &d.events {
                if let Some(aid) = e.get_str("k8s.audit.auditID") {
                    if !seen.insert((d.rule_id.clone(), aid.to_string())) {
                        problems.push(format!("{id}: {} fired twice on request {aid}", d.title));
                    }
                }
            }
        }
        let titles: BTreeSet<(String, Severity)> =
            fired.iter().map(|d| (d.title.clone(), d.level)).collect();
        for (title, level) in &titles {
            let st = stats.entry(title.clone()).or_default();
            st.level = Some(*level);
            match label.as_str() {
                "attack" => st.attacks += 1,
                "attempt" => st.attempts += 1,
                _ => st.lookalikes += 1,
            }
        }
        let hit = !titles.is_empty();
        let entry = by_shape.entry((label.clone(), shape.clone())).or_default();
        entry.0 += 1;
        entry.1 += usize::from(hit);
        match label.as_str() {
            "attack" => {
                attacks += 1;
                attacks_hit += usize::from(hit);
                let tagged = fired.iter().any(|d| {
                    d.techniques
                        .iter()
                        .any(|t| *t == technique || t.starts_with(&format!("{technique}.")))
                });
                attacks_hit_technique += usize::from(tagged);
                if !tagged {
                    missed.push(format!(
                        "{id} {technique} [{shape}] {what}: fired {:?}",
                        titles.iter().map(|(t, _)| t).collect::<Vec<_>>()
                    ));
                }
            }
            "attempt" => {
                attempts += 1;
                let loud: Vec<_> = titles.iter().filter(|(_, l)| *l > Severity::Low).collect();
                if titles.is_empty() || !loud.is_empty() {
                    problems.push(format!(
                        "{id} (denied attempt: {what}): expected only the low attempt rule, fired {titles:?}"
                    ));
                }
            }
            _ => {
                lookalikes += 1;
                lookalikes_hit += usize::from(hit);
                if hit {
                    noisy.push(format!("{id} [{shape}] {what}: {titles:?}"));
                }
            }
        }
    }

    // --- benign streams ----------------------------------------------------------------------
    let mut benign_streams = vec![("benign-hkerma (Helm churn)", hkerma_events())];
    benign_streams.push(("Falco traces without a threat", falco_benign_events()));
    let (mut benign_total, mut benign_fired, mut benign_loud) = (0usize, 0usize, 0usize);
    let mut stream_rows = Vec::new();
    for (name, events) in &benign_streams {
        let mut detector = Detector::new(rules.clone());
        let (mut fired_events, mut loud_events) = (0, 0);
        for event in events {
            let ds: Vec<Detection> = detector
                .process(event)
                .into_iter()
                .filter(|d| d.level > Severity::Informational)
                .collect();
            fired_events += usize::from(!ds.is_empty());
            loud_events += usize::from(ds.iter().any(|d| d.level >= Severity::Medium));
            let titles: BTreeSet<(String, Severity)> =
                ds.iter().map(|d| (d.title.clone(), d.level)).collect();
            for (title, level) in titles {
                let st = stats.entry(title).or_default();
                st.level = Some(level);
                st.benign_events += 1;
            }
        }
        stream_rows.push((*name, events.len(), fired_events, loud_events));
        benign_total += events.len();
        benign_fired += fired_events;
        benign_loud += loud_events;
    }

    // --- report ------------------------------------------------------------------------------
    let recall = attacks_hit as f64 / attacks as f64;
    let recall_technique = attacks_hit_technique as f64 / attacks as f64;
    let lookalike_share = lookalikes_hit as f64 / lookalikes as f64;
    let per_10k = |n: usize| n as f64 * 10_000.0 / benign_total as f64;
    let noise = per_10k(benign_fired);
    let loud_noise = per_10k(benign_loud);

    println!("### Kubernetes rules: precision and noise\n");
    println!(
        "{attacks} attack scenarios, {lookalikes} benign look-alikes, {attempts} denied attempts, {benign_total} benign real-cluster events\n"
    );
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| attack recall (a rule tagged with the scenario's technique fires) | {recall_technique:.3} ({attacks_hit_technique}/{attacks}) | >= {MIN_RECALL} |"
    );
    println!("| attack recall (any rule fires) | {recall:.3} ({attacks_hit}/{attacks}) | |");
    println!(
        "| benign look-alikes alerting | {:.1} % ({lookalikes_hit}/{lookalikes}) | <= {:.0} % |",
        lookalike_share * 100.0,
        MAX_LOOKALIKE_SHARE * 100.0
    );
    println!(
        "| benign events alerting, per 10k | {noise:.1} ({benign_fired}/{benign_total}) | <= {MAX_NOISE_PER_10K} |"
    );
    println!(
        "| benign events alerting at medium or above, per 10k | {loud_noise:.1} ({benign_loud}/{benign_total}) | <= {MAX_LOUD_NOISE_PER_10K} |"
    );
    println!("\n| benign stream | events | alerting | medium+ |");
    println!("|---|---|---|---|");
    for (name, n, fired, loud) in &stream_rows {
        println!("| {name} | {n} | {fired} | {loud} |");
    }
    println!("\n| scenarios by shape | label | total | alerting |");
    println!("|---|---|---|---|");
    for ((label, shape), (n, hit)) in &by_shape {
        println!("| {shape} | {label} | {n} | {hit} |");
    }
    println!("\n| rule | level | attacks | attempts | look-alikes | benign events | per 10k benign | precision |");
    println!("|---|---|---|---|---|---|---|---|");
    for (title, st) in &stats {
        let tp = st.attacks + st.attempts;
        let fp = st.lookalikes + st.benign_events;
        let precision = tp as f64 / (tp + fp).max(1) as f64;
        println!(
            "| {title} | {} | {} | {} | {} | {} | {:.1} | {precision:.2} |",
            st.level
                .map(|l| format!("{l:?}").to_lowercase())
                .unwrap_or_default(),
            st.attacks,
            st.attempts,
            st.lookalikes,
            st.benign_events,
            per_10k(st.benign_events),
        );
    }
    if !missed.is_empty() {
        println!("\nattacks without a rule of their technique:");
        for m in &missed {
            println!("- {m}");
        }
    }
    if !noisy.is_empty() {
        println!("\nlook-alikes that alerted:");
        for n in &noisy {
            println!("- {n}");
        }
    }

    assert!(attacks >= 40 && lookalikes >= 30, "the corpus is there");
    assert!(benign_total >= 4000, "the benign streams are there");
    assert!(
        recall_technique >= MIN_RECALL,
        "attack recall {recall_technique:.3} < {MIN_RECALL}: {missed:#?}"
    );
    assert!(
        lookalike_share <= MAX_LOOKALIKE_SHARE,
        "{:.1} % of look-alikes alert: {noisy:#?}",
        lookalike_share * 100.0
    );
    assert!(
        noise <= MAX_NOISE_PER_10K,
        "benign noise {noise:.1} per 10k > {MAX_NOISE_PER_10K}"
    );
    assert!(
        loud_noise <= MAX_LOUD_NOISE_PER_10K,
        "medium+ benign noise {loud_noise:.1} per 10k > {MAX_LOUD_NOISE_PER_10K}"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn operator_list_is_configurable() {
    use crowsnest_detect::K8sPrincipals;
    let secret_read = |principals: &K8sPrincipals, user: &str| {
        let mut rules = pack();
        rules.set_k8s_principals(principals);
        let body = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/x/secrets/s","verb":"get","user":{{"username":"{user}"}},"objectRef":{{"resource":"secrets","namespace":"x","name":"s","apiVersion":"v1"}},"responseStatus":{{"code":200}}}}"#
        );
        alerts(&rules, &decode("native", &body))
            .iter()
            .any(|d| d.title == "Secrets Read By Non-System Principal")
    };
    let shipped = K8sPrincipals::default();
    let cert_manager = "system:serviceaccount:cert-manager:cert-manager";
    let ours = "system:serviceaccount:platform:secret-syncer";
    assert!(!secret_read(&shipped, cert_manager), "shipped operator");
    assert!(secret_read(&shipped, ours), "not an operator yet");
    let extra = K8sPrincipals {
        extra_operators: vec!["system:serviceaccount:platform:*".into()],
        ..K8sPrincipals::default()
    };
    assert!(!secret_read(&extra, ours), "extra operator");
    assert!(!secret_read(&extra, cert_manager), "shipped list kept");
    let replaced = K8sPrincipals {
        operators: Some(vec!["system:serviceaccount:platform:secret-syncer".into()]),
        ..K8sPrincipals::default()
    };
    assert!(secret_read(&replaced, cert_manager), "replaced list");
    assert!(!secret_read(&replaced, ours));
    let (rules, _) = RuleSet::builtin();
    assert!(rules
        .pipeline_var(K8sPrincipals::OPERATORS_VAR)
        .is_some_and(|ops| ops.len() >= 20));
}

/// The placeholder step only touches `%name%` values naming a pipeline variable: URL-encoded
/// values in regexes and `contains` (two `%` in one value) keep their meaning.
#[test]
fn percent_encoded_values_are_not_placeholders() {
    let yaml = r#"
title: encoded
id: enc-1
logsource: {product: kubernetes, service: audit}
detection:
  sel_re:
    requestURI|re: 'command=(%2F|/)bin(%2F|/)s.*h(&|$)'
  sel_contains:
    requestURI|contains: 'command=%2Fbin%2Fsh'
  condition: sel_re and sel_contains
level: low
"#;
    let (rules, report) = RuleSet::from_yaml("enc.yml", yaml);
    assert!(!report.any_invalid(), "{report:?}");
    let hit = |uri: &str| {
        let body = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"{uri}","stage":"ResponseComplete","requestURI":"{uri}","verb":"create","user":{{"username":"u"}},"objectRef":{{"resource":"pods","subresource":"exec","apiVersion":"v1"}},"responseStatus":{{"code":101}}}}"#
        );
        !alerts(&rules, &decode("native", &body)).is_empty()
    };
    assert!(hit("/api/v1/namespaces/a/pods/p/exec?command=%2Fbin%2Fsh"));
    assert!(!hit(
        "/api/v1/namespaces/a/pods/p/exec?command=%2Fbin%2Fbash"
    ));
}
