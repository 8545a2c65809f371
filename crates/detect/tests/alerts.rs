//! Alert lifecycle: folding per rule and entity within a window, suppression with expiry,
//! alerts as storable events.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crowsnest_detect::alert::glob_match;
use crowsnest_detect::{AlertDecision, AlertManager, Detection, Suppression};
use crowsnest_model::{Event, Severity};
use serde_json::json;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0)
        .single()
        .expect("ts")
        + chrono::Duration::seconds(secs)
}

fn detection(rule: &str, pod: &str, event_id: &str) -> Detection {
    let event: Event = serde_json::from_value(json!({
        "event": {"id": event_id, "dataset": "kubernetes.audit"},
        "kubernetes": {"namespace": "prod", "pod": {"name": pod}},
        "orchestrator": {"cluster": {"name": "c1"}},
        "user": {"name": "alice"}
    }))
    .expect("event");
    Detection {
        rule_id: rule.to_string(),
        title: format!("{rule} title"),
        level: Severity::High,
        tags: vec!["attack.execution".into(), "attack.t1609".into()],
        techniques: vec!["T1609".into()],
        event_ids: vec![event_id.to_string()],
        events: vec![event],
        correlation: None,
        timestamp: None,
        anomaly: None,
    }
}

#[test]
fn repeats_fold_per_rule_and_entity_within_the_window() {
    let mut m = AlertManager::new(Duration::from_secs(300), Vec::new());
    let AlertDecision::New(first) = m.offer(detection("exec", "web-1", "e1"), at(0)) else {
        panic!("first detection must open an alert");
    };
    assert_eq!(
        m.offer(detection("exec", "web-1", "e2"), at(100)),
        AlertDecision::Folded {
            alert_id: first.id.clone(),
            count: 2
        }
    );
    // The window runs from the latest repeat: 100 + 250 is still inside.
    assert!(matches!(
        m.offer(detection("exec", "web-1", "e3"), at(350)),
        AlertDecision::Folded { count: 3, .. }
    ));
    // Another pod or another rule is another alert.
    assert!(matches!(
        m.offer(detection("exec", "web-2", "e4"), at(360)),
        AlertDecision::New(_)
    ));
    assert!(matches!(
        m.offer(detection("attach", "web-1", "e5"), at(360)),
        AlertDecision::New(_)
    ));
    let open = m.open_alert(&first.fold_key).expect("open alert");
    assert_eq!(open.event_ids, vec!["e1", "e2", "e3"]);
    assert_eq!(open.last_seen, at(350));
    // After a quiet window, a new alert.
    let AlertDecision::New(later) = m.offer(detection("exec", "web-1", "e6"), at(1000)) else {
        panic!("a repeat after the window opens a new alert");
    };
    assert_ne!(later.id, first.id);
    assert_eq!(later.fold_key, first.fold_key);
}

fn baseline_detection(program: &str, event_id: &str) -> Detection {
    use crowsnest_detect::baseline::{Anomaly, BaselineKind, BaselineSummary};
    let mut d = detection("profile", "web-1", event_id);
    d.anomaly = Some(Box::new(Anomaly {
        kind: BaselineKind::NewTerms,
        entity: BTreeMap::from([("workload".to_string(), "prod/web".to_string())]),
        new: BTreeMap::from([("process.name".to_string(), program.to_string())]),
        baseline: BaselineSummary {
            since: at(0),
            window_secs: 60,
            events: 10,
            distinct: 1,
            top: vec![("sleep".into(), 10)],
            mode: "monitoring".into(),
        },
        score: 0.9,
        explanation: format!("process.name={program} never seen"),
        rate: None,
    }));
    d
}

#[test]
fn each_new_term_of_a_baseline_is_its_own_alert_and_repeats_of_one_fold() {
    let mut m = AlertManager::new(Duration::from_secs(300), Vec::new());
    let AlertDecision::New(sh) = m.offer(baseline_detection("sh", "e1"), at(1)) else {
        panic!("first new term opens an alert");
    };
    // Another new program on the same entity within the window: its own alert (its own
    // explanation), not a fold into the shell's.
    assert!(matches!(
        m.offer(baseline_detection("nc", "e2"), at(2)),
        AlertDecision::New(_)
    ));
    // The same new program again (a locked profile alerts every time): folds.
    assert_eq!(
        m.offer(baseline_detection("sh", "e3"), at(3)),
        AlertDecision::Folded {
            alert_id: sh.id,
            count: 2
        }
    );
}

#[test]
fn suppressions_match_rule_and_field_globs_until_they_expire() {
    let suppression = Suppression {
        id: "s1".into(),
        reason: "CI runner execs into build pods".into(),
        expires: Some(at(500)),
        rule: Some("ex*".into()),
        fields: BTreeMap::from([
            ("kubernetes.pod.name".to_string(), "build-*".to_string()),
            ("user.name".to_string(), "alice".to_string()),
        ]),
    };
    let mut m = AlertManager::new(Duration::from_secs(300), vec![suppression]);
    assert_eq!(
        m.offer(detection("exec", "build-42", "e1"), at(0)),
        AlertDecision::Suppressed {
            id: "s1".into(),
            reason: "CI runner execs into build pods".into()
        }
    );
    assert!(matches!(
        m.offer(detection("exec", "web-1", "e2"), at(0)),
        AlertDecision::New(_)
    ));
    assert!(matches!(
        m.offer(detection("attach", "build-42", "e3"), at(0)),
        AlertDecision::New(_)
    ));
    // Expired: the same detection becomes an alert.
    assert!(matches!(
        m.offer(detection("exec", "build-42", "e4"), at(600)),
        AlertDecision::New(_)
    ));
}

#[test]
fn alert_event_carries_rule_threat_entity_and_fold_fields() {
    let mut m = AlertManager::new(Duration::from_secs(60), Vec::new());
    let AlertDecision::New(alert) = m.offer(detection("exec", "web-1", "e1"), at(5)) else {
        panic!("new alert expected");
    };
    let e = alert.to_event();
    assert_eq!(e.get_str("event.kind"), Some("alert"));
    assert_eq!(e.get_str("event.id"), Some(alert.id.as_str()));
    assert_eq!(e.get_str("rule.id"), Some("exec"));
    assert_eq!(e.get_str("rule.name"), Some("exec title"));
    assert_eq!(e.get_str("rule.level"), Some("high"));
    assert_eq!(e.get("threat.technique.id"), Some(&json!(["T1609"])));
    assert_eq!(e.get_str("threat.framework"), Some("MITRE ATT&CK"));
    assert_eq!(e.get_str("kubernetes.pod.name"), Some("web-1"));
    assert_eq!(e.get_str("orchestrator.cluster.name"), Some("c1"));
    assert_eq!(e.get_str("user.name"), Some("alice"));
    assert_eq!(e.get("alert.count"), Some(&json!(1)));
    assert_eq!(e.get("alert.event_ids"), Some(&json!(["e1"])));
    assert_eq!(e.get_str("alert.fold_key"), Some(alert.fold_key.as_str()));
    assert_eq!(e.timestamp(), Some(at(5)));
}

#[test]
fn globs() {
    assert!(glob_match("build-*", "build-42"));
    assert!(glob_match("*", ""));
    assert!(glob_match("a?c", "abc"));
    assert!(glob_match("*.kube-system.*", "x.kube-system.svc"));
    assert!(!glob_match("build-*", "web-build-1"));
    assert!(!glob_match("abc", "abcd"));
}
