//! Baseline rules on recorded real audit (`../shared/testdata/k8s-audit/benign-hkerma`, 4,000
//! events of a kubeadm cluster installing Helm charts, CC-BY-4.0): learn on the first half,
//! replay the second half with injected attacks, and check that the attacks alert (with their
//! explanation) while the learned benign traffic stays quiet; plus the checkpoint (kill -9:
//! checkpoint, then replay) and warm-start (back-fill) equivalences.
//!
//! The recording spans about a minute, so the pack's baseline rules are loaded with their
//! learning windows scaled to it (`learn` = the first half's span, `entity_learn` a seventh of
//! it, as 1d is to 7d); filters, entities and terms are the pack's. Run with `--nocapture` for
//! the figures of BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::Path;

use crowsnest_detect::load::builtin_files;
use crowsnest_detect::{Detection, Detector, RuleSet};
use crowsnest_model::Event;
use crowsnest_normalize::{decode_k8s_audit, Limits};
use serde_json::json;

/// The pack rules that have a `baseline:` section: the baseline pack and the rarity-gated rules.
const GATED: &[&str] = &[
    "kubernetes/secret_read_by_unusual_principal.yml",
    "kubernetes/pod_exec.yml",
    "kubernetes/port_forward.yml",
];

fn recorded() -> Vec<Event> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/k8s-audit/benign-hkerma/audit-sample.jsonl");
    let text = std::fs::read_to_string(path).expect("benign-hkerma sample");
    let mut events: Vec<Event> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|line| {
            decode_k8s_audit(line.as_bytes(), &Limits::default())
                .expect("an audit event")
                .events
        })
        .collect();
    events.sort_by_key(|e| e.timestamp());
    assert_eq!(events.len(), 4000);
    events
}

/// The baseline rules' texts, with `learn` scaled; `gate` false strips the `baseline:` section
/// of the gated rules (the static rules as they were).
fn rule_texts(learn_secs: i64, gate: bool) -> Vec<(String, String)> {
    builtin_files()
        .iter()
        .filter(|(p, _)| p.ends_with(".yml") && (p.starts_with("baseline/") || GATED.contains(p)))
        .map(|(path, text)| {
            let mut out = String::new();
            let mut skipping = false;
            for line in text.lines() {
                if line.starts_with("baseline:") && !gate && GATED.contains(path) {
                    skipping = true;
                    continue;
                }
                if skipping && line.starts_with("    ") {
                    continue;
                }
                skipping = false;
                let trimmed = line.trim_start();
                if trimmed.starts_with("learn:") {
                    out.push_str(&format!("    learn: {learn_secs}s\n"));
                } else if trimmed.starts_with("entity_learn:") && !trimmed.ends_with(" 0s") {
                    out.push_str(&format!("    entity_learn: {}s\n", learn_secs / 7));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            (path.to_string(), out)
        })
        .collect()
}

fn rules(learn_secs: i64, gate: bool) -> RuleSet {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in rule_texts(learn_secs, gate) {
        let file = dir.path().join(path.replace('/', "_"));
        std::fs::write(file, text).expect("write rule");
    }
    let (set, report) = RuleSet::load(&[dir.path().to_path_buf()], false);
    assert!(!report.any_invalid(), "{report:?}");
    assert_eq!(set.len(), 7 + GATED.len());
    set
}

/// An audit event as the API server writes it, decoded like every other.
fn audit(at: &str, user: &str, verb: &str, resource: &str, sub: Option<&str>, id: &str) -> Event {
    let mut object =
        json!({"resource": resource, "namespace": "default", "name": "x", "apiVersion": "v1"});
    if let Some(sub) = sub {
        object["subresource"] = json!(sub);
        object["name"] = json!("web-7d9c6b5f4-x2x9q");
    }
    let raw = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id,
        "stage": "ResponseComplete", "requestURI": format!("/api/v1/namespaces/default/{resource}/x"),
        "verb": verb, "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.9"], "userAgent": "kubectl/v1.29.0", "objectRef": object,
        "responseStatus": {"code": 200}, "requestReceivedTimestamp": at, "stageTimestamp": at,
    });
    let decoded =
        decode_k8s_audit(raw.to_string().as_bytes(), &Limits::default()).expect("attack event");
    decoded.events.into_iter().next().expect("one event")
}

/// The injected attacks: (event, the rule title that must report it).
fn attacks(at: &str) -> Vec<(Event, &'static str)> {
    vec![
        (
            audit(
                at,
                "system:serviceaccount:default:compromised",
                "list",
                "secrets",
                None,
                "a-1",
            ),
            "Secrets Read By Non-System Principal",
        ),
        (
            audit(
                at,
                "system:serviceaccount:default:app",
                "create",
                "clusterrolebindings",
                None,
                "a-2",
            ),
            "Principal Changes RBAC In A Way It Never Did Before",
        ),
        (
            audit(
                at,
                "kubernetes-admin",
                "create",
                "pods",
                Some("exec"),
                "a-3",
            ),
            "Command Executed In Pod Via Exec",
        ),
        (
            audit(
                at,
                "system:serviceaccount:default:app",
                "create",
                "selfsubjectrulesreviews",
                None,
                "a-4",
            ),
            "Principal Checks Its Permissions For The First Time",
        ),
    ]
}

fn secs(e: &Event) -> i64 {
    e.timestamp().map(|t| t.timestamp()).expect("timestamp")
}

struct Run {
    learn_alerts: usize,
    benign: Vec<Detection>,
    caught: Vec<(String, Detection)>,
    missed: Vec<String>,
}

fn run(gate: bool) -> Run {
    let events = recorded();
    let (learn, replay) = events.split_at(events.len() / 2);
    let span = secs(&learn[learn.len() - 1]) - secs(&learn[0]);
    let mut detector = Detector::new(rules(span.max(1), gate));
    let learn_alerts = learn.iter().map(|e| detector.process(e).len()).sum();
    // Attacks in the middle of the replayed half.
    let middle = &replay[replay.len() / 2];
    let at = middle.get_str("@timestamp").expect("timestamp").to_string();
    let mut attacks = attacks(&at);
    let mut benign = Vec::new();
    let mut caught = Vec::new();
    let mut missed = Vec::new();
    for (i, event) in replay.iter().enumerate() {
        if i == replay.len() / 2 {
            for (attack, title) in attacks.drain(..) {
                let hits = detector.process(&attack);
                match hits.into_iter().find(|d| d.title == title) {
                    Some(d) => caught.push((title.to_string(), d)),
                    None => missed.push(title.to_string()),
                }
            }
        }
        benign.extend(detector.process(event));
    }
    Run {
        learn_alerts,
        benign,
        caught,
        missed,
    }
}

#[test]
fn learned_benign_traffic_is_quiet_and_injected_attacks_alert_with_explanations() {
    let gated = run(true);
    let events = recorded();
    let half = &events[events.len() / 2..];
    let hours = (secs(&half[half.len() - 1]) - secs(&half[0])).max(1) as f64 / 3600.0;
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &gated.benign {
        *by_rule.entry(d.title.as_str()).or_default() += 1;
    }
    println!(
        "learning half: {} detections; replayed half ({} events, {:.0} s): {} benign detections, {} of {} attacks caught",
        gated.learn_alerts,
        half.len(),
        hours * 3600.0,
        gated.benign.len(),
        gated.caught.len(),
        gated.caught.len() + gated.missed.len()
    );
    for (title, n) in &by_rule {
        println!("  benign {n:>4}  {title}");
    }
    for d in &gated.benign {
        let why = d
            .anomaly
            .as_ref()
            .map_or("(static: learning or not judged)".to_string(), |a| {
                a.explanation.clone()
            });
        println!("    {}: {why}", d.title);
    }
    for (title, d) in &gated.caught {
        let a = d.anomaly.as_ref().expect("an explanation");
        println!("  caught {title}: {} (score {})", a.explanation, a.score);
    }
    assert!(gated.missed.is_empty(), "missed: {:?}", gated.missed);
    for (_, d) in &gated.caught {
        let a = d
            .anomaly
            .as_ref()
            .expect("every baseline alert explains itself");
        assert!(
            !a.new.is_empty() && a.explanation.contains("never seen for")
                || a.explanation.contains("is a new entity")
        );
        assert!(a.score > 0.0 && a.score < 1.0);
    }
    let static_run = run(false);
    let tp = gated.caught.len() as f64;
    let precision = tp / (tp + gated.benign.len() as f64);
    let static_precision =
        static_run.caught.len() as f64 / (static_run.caught.len() + static_run.benign.len()) as f64;
    println!(
        "gated: precision {precision:.2}, recall {:.2}, {} benign alerts ({:.0}/h); static: precision {static_precision:.2}, {} benign alerts ({:.0}/h)",
        tp / (tp + gated.missed.len() as f64),
        gated.benign.len(),
        gated.benign.len() as f64 / hours,
        static_run.benign.len(),
        static_run.benign.len() as f64 / hours,
    );
    assert!(
        gated.benign.len() <= static_run.benign.len(),
        "the gates must not add noise"
    );
    assert!(
        gated.benign.len() * 100 <= half.len(),
        "more than 1% of the learned traffic alerts: {by_rule:?}"
    );
}

/// The recording as the same cluster's activity `days` later.
fn shifted(events: &[Event], days: i64) -> Vec<Event> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let t = e.timestamp().expect("timestamp") + chrono::Duration::days(days);
            e.set("@timestamp", json!(crowsnest_model::format_timestamp(t)));
            e
        })
        .collect()
}

/// Learns the whole recording as day 0 with the pack's own windows (7 days), then replays it
/// as day 8 with the attacks injected: the cluster doing again what it did.
fn run_recurring(gate: bool, operators_listed: bool) -> Run {
    let events = recorded();
    let mut set = rules_unscaled(gate);
    if !operators_listed {
        // A cluster whose operators nobody listed in `[detect.kubernetes]`.
        set.set_k8s_principals(&crowsnest_detect::K8sPrincipals {
            operators: Some(Vec::new()),
            ..Default::default()
        });
    }
    let mut detector = Detector::new(set);
    let learn_alerts = events.iter().map(|e| detector.process(e).len()).sum();
    let replay = shifted(&events, 8);
    let at = replay[replay.len() / 2]
        .get_str("@timestamp")
        .expect("timestamp")
        .to_string();
    let mut attacks = attacks(&at);
    let (mut benign, mut caught, mut missed) = (Vec::new(), Vec::new(), Vec::new());
    for (i, event) in replay.iter().enumerate() {
        if i == replay.len() / 2 {
            for (attack, title) in attacks.drain(..) {
                match detector
                    .process(&attack)
                    .into_iter()
                    .find(|d| d.title == title)
                {
                    Some(d) => caught.push((title.to_string(), d)),
                    None => missed.push(title.to_string()),
                }
            }
        }
        benign.extend(detector.process(event));
    }
    Run {
        learn_alerts,
        benign,
        caught,
        missed,
    }
}

fn rules_unscaled(gate: bool) -> RuleSet {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in rule_texts(0, gate) {
        // `rule_texts` rewrote the windows; put the pack's back.
        let original = builtin_files()
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, t)| *t)
            .expect("pack file");
        let text = if gate {
            original.to_string()
        } else {
            text.replace("    learn: 0s\n", "    learn: 7d\n")
        };
        std::fs::write(dir.path().join(path.replace('/', "_")), text).expect("write rule");
    }
    let (set, report) = RuleSet::load(&[dir.path().to_path_buf()], false);
    assert!(!report.any_invalid(), "{report:?}");
    set
}

#[test]
fn a_recurring_day_is_learned_and_only_the_attacks_alert() {
    let gated = run_recurring(true, true);
    let static_run = run_recurring(false, true);
    let count = |r: &Run| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for d in &r.benign {
            *m.entry(d.title.clone()).or_default() += 1;
        }
        m
    };
    println!(
        "recurring day: learning day 0: {} detections (gated) / {} (static); day 8: gated {} benign, {} of 4 attacks; static {} benign {:?}, {} of 4 attacks",
        gated.learn_alerts,
        static_run.learn_alerts,
        gated.benign.len(),
        gated.caught.len(),
        static_run.benign.len(),
        count(&static_run),
        static_run.caught.len(),
    );
    for (title, d) in &gated.caught {
        let a = d.anomaly.as_ref().expect("explained");
        println!("  caught {title}: {}", a.explanation);
    }
    assert!(gated.missed.is_empty(), "missed: {:?}", gated.missed);
    assert!(
        gated.benign.is_empty(),
        "benign alerts: {:?}",
        count(&gated)
    );
    assert!(gated.caught.iter().all(|(_, d)| d.anomaly.is_some()));

    // Nobody listed the operators: the static rules fire on their routine reads all day; the
    // gates learn them on day 0 and stay quiet on day 8, and still catch every attack.
    let gated = run_recurring(true, false);
    let static_run = run_recurring(false, false);
    println!(
        "operators not listed: day 0 {} (gated) / {} (static) detections; day 8: gated {} benign {:?}, {} of 4 attacks; static {} benign {:?}, {} of 4 attacks",
        gated.learn_alerts,
        static_run.learn_alerts,
        gated.benign.len(),
        count(&gated),
        gated.caught.len(),
        static_run.benign.len(),
        count(&static_run),
        static_run.caught.len(),
    );
    assert!(gated.missed.is_empty(), "missed: {:?}", gated.missed);
    assert!(gated.benign.len() < static_run.benign.len().max(1));
}

#[test]
fn checkpoint_and_replay_rebuild_the_same_baselines() {
    let events = recorded();
    let span = secs(&events[1999]) - secs(&events[0]);
    let set = rules(span.max(1), true);
    // Uninterrupted.
    let mut whole = Detector::new(set.clone());
    let all: Vec<Detection> = events.iter().flat_map(|e| whole.process(e)).collect();
    // Killed after 2,500 events with a checkpoint at 2,000: restore, then replay from there.
    let mut first = Detector::new(set.clone());
    let mut before: Vec<Detection> = events[..2000]
        .iter()
        .flat_map(|e| first.process(e))
        .collect();
    let bytes = first.checkpoint().expect("checkpoint");
    let _lost: Vec<Detection> = events[2000..2500]
        .iter()
        .flat_map(|e| first.process(e))
        .collect();
    drop(first);
    let mut second = Detector::new(set);
    second.restore(&bytes).expect("restore");
    before.extend(events[2000..].iter().flat_map(|e| second.process(e)));
    let key = |d: &Detection| (d.rule_id.clone(), d.event_ids.clone(), d.anomaly.clone());
    assert_eq!(
        all.iter().map(key).collect::<Vec<_>>(),
        before.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(whole.baseline_stats(), second.baseline_stats());
    for stat in whole.baseline_stats() {
        let a = whole.export_profile(&stat.rule, None).expect("profile");
        let b = second.export_profile(&stat.rule, None).expect("profile");
        assert_eq!(a, b, "{}", stat.rule);
    }
    assert!(whole.baseline_stats().iter().any(|s| s.entities > 0));
}

#[test]
fn warm_start_backfill_judges_like_the_live_stream() {
    let events = recorded();
    let (learn, replay) = events.split_at(2000);
    let span = secs(&learn[learn.len() - 1]) - secs(&learn[0]);
    let set = rules(span.max(1), true);
    let mut live = Detector::new(set.clone());
    for e in learn {
        live.process(e);
    }
    let mut warm = Detector::new(set);
    for e in learn {
        warm.learn(e);
    }
    let at = replay[1000].get_str("@timestamp").expect("ts").to_string();
    let key = |d: &Detection| (d.rule_id.clone(), d.event_ids.clone());
    for (attack, _) in attacks(&at) {
        let a: Vec<_> = live.process(&attack).iter().map(key).collect();
        let b: Vec<_> = warm.process(&attack).iter().map(key).collect();
        assert_eq!(a, b);
        assert!(!a.is_empty());
    }
    let a: Vec<_> = replay
        .iter()
        .flat_map(|e| live.process(e))
        .map(|d| key(&d))
        .collect();
    let b: Vec<_> = replay
        .iter()
        .flat_map(|e| warm.process(e))
        .map(|d| key(&d))
        .collect();
    assert_eq!(a, b);
}

#[test]
fn a_broken_baseline_section_is_reported_with_its_line_and_the_rest_loads() {
    let text = "title: ok\nid: ok-1\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel: {verb: get}\n  condition: sel\n---\ntitle: broken\nid: broken-1\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  sel: {verb: get}\n  condition: sel\nbaseline:\n  entity: user.name\n  terms: []\n";
    let (set, report) = RuleSet::from_yaml("mixed.yml", text);
    assert_eq!(set.len(), 1);
    let problems = &report.files[0].problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    let shown = format!("{:?}", problems[0]);
    assert!(
        shown.contains("`terms` needs at least one field"),
        "{shown}"
    );
    assert!(shown.contains("line: Some(14)"), "{shown}");
}
