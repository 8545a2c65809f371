use std::collections::BTreeMap;

use super::*;

fn t(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_765_000_000, 0).expect("time") + Duration::minutes(minutes)
}

fn alert(id: &str, level: Severity, at: i64, entity: &[(&str, &str)], tags: &[&str]) -> Alert {
    Alert {
        id: id.into(),
        rule_id: format!("rule-{id}"),
        title: format!("Rule {id}"),
        level,
        tags: tags.iter().map(|s| s.to_string()).collect(),
        techniques: tags
            .iter()
            .filter_map(|t| t.strip_prefix("attack.t"))
            .map(|t| format!("T{t}"))
            .collect(),
        entity: entity
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        event_ids: vec![format!("e-{id}")],
        count: 1,
        first_seen: t(at),
        last_seen: t(at),
        fold_key: id.into(),
        correlation: None,
    }
}

const WEB: [(&str, &str); 2] = [
    ("kubernetes.namespace", "payments"),
    ("kubernetes.pod.name", "web-7d4b9c6f5-x2kq9"),
];
const WEB_OTHER_POD: [(&str, &str); 2] = [
    ("kubernetes.namespace", "payments"),
    ("kubernetes.pod.name", "web-7d4b9c6f5-a8zz1"),
];

#[test]
fn workloads_are_told_from_generated_pod_names() {
    assert_eq!(workload_of("web-7d4b9c6f5-x2kq9"), Some("web"));
    assert_eq!(workload_of("fluent-bit-8kx2p"), Some("fluent-bit"));
    assert_eq!(workload_of("postgres-0"), Some("postgres"));
    assert_eq!(workload_of("standalone"), None);
    assert_eq!(workload_of("my-pod"), None);
}

#[test]
fn alerts_on_one_workload_within_the_window_make_one_incident() {
    let mut incidents = Incidents::new(IncidentConfig::default());
    let first = incidents.offer(&alert(
        "a1",
        Severity::Low,
        0,
        &WEB,
        &["attack.execution", "attack.t1609"],
    ));
    let Change::Opened(id) = &first[0] else {
        panic!("{first:?}");
    };
    // Another pod of the same Deployment, 10 minutes later: same incident.
    incidents.offer(&alert(
        "a2",
        Severity::Medium,
        10,
        &WEB_OTHER_POD,
        &["attack.discovery", "attack.t1613"],
    ));
    // 14 minutes after that (within 15 of the last alert): same incident.
    incidents.offer(&alert("a3", Severity::Low, 24, &WEB, &[]));
    // 20 minutes of quiet: a new incident.
    let later = incidents.offer(&alert("a4", Severity::Low, 44, &WEB, &[]));
    assert!(matches!(&later[0], Change::Opened(other) if other != id));
    let incident = incidents.get(id).expect("incident");
    assert_eq!(incident.entity.kind, "workload");
    assert_eq!(incident.entity.value, "payments/web");
    assert_eq!(incident.alerts.len(), 3);
    assert_eq!(incident.level, Severity::Medium);
    assert_eq!(
        incident.tactics.iter().collect::<Vec<_>>(),
        ["discovery", "execution"]
    );
    assert_eq!(incidents.list().len(), 2);
}

/// Golden risk scores: low 3 + medium 10 + low 3, one tactic beyond the first (+10), one
/// technique beyond the first (+3) = 29, not paging; in a namespace of criticality 2: 58; a
/// critical alert pages whatever the score.
#[test]
fn risk_scores_and_their_factors() {
    let alerts = [
        alert(
            "a1",
            Severity::Low,
            0,
            &WEB,
            &["attack.execution", "attack.t1609"],
        ),
        alert(
            "a2",
            Severity::Medium,
            5,
            &WEB,
            &["attack.discovery", "attack.t1613"],
        ),
        alert("a3", Severity::Low, 6, &WEB, &[]),
    ];
    let mut plain = Incidents::new(IncidentConfig::default());
    for a in &alerts {
        plain.offer(a);
    }
    let incident = plain.list()[0];
    assert_eq!(incident.risk.score, 29.0);
    let names: Vec<_> = incident
        .risk
        .factors
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["alerts", "tactics", "techniques"]);
    assert!(!incident.page);

    let critical_payments = IncidentConfig {
        criticality: vec![Criticality {
            namespace: "pay*".into(),
            weight: 2.0,
        }],
        ..IncidentConfig::default()
    };
    let mut weighted = Incidents::new(critical_payments);
    let mut paged = Vec::new();
    for a in &alerts {
        paged.extend(weighted.offer(a));
    }
    let incident = weighted.list()[0];
    assert_eq!(incident.risk.score, 58.0);
    assert_eq!(incident.risk.factors.last().map(|f| f.value), Some(2.0));
    assert!(!incident.page, "58 is below the page threshold of 60");
    let grown = weighted.offer(&alert("a5", Severity::Low, 7, &WEB, &[]));
    assert!(
        grown.iter().any(|c| matches!(c, Change::Paged(_))),
        "{grown:?}"
    );

    let mut critical = Incidents::new(IncidentConfig::default());
    let changes = critical.offer(&alert(
        "c1",
        Severity::Critical,
        0,
        &[("user.name", "mallory")],
        &[],
    ));
    assert!(changes.iter().any(|c| matches!(c, Change::Paged(_))));
    assert_eq!(critical.list()[0].entity.kind, "principal");
}

/// A folded alert offered again (its count grew) re-scores its incident instead of counting
/// as a new alert.
#[test]
fn an_updated_alert_rescores_without_counting_twice() {
    let mut incidents = Incidents::new(IncidentConfig::default());
    let mut a = alert("a1", Severity::Medium, 0, &WEB, &[]);
    incidents.offer(&a);
    let before = incidents.list()[0].risk.score;
    a.count = 20;
    a.last_seen = t(12);
    let changes = incidents.offer(&a);
    assert!(matches!(&changes[0], Change::Updated(_)));
    let incident = incidents.list()[0];
    assert_eq!(incident.alerts.len(), 1);
    assert_eq!(incident.alerts[0].count, 20);
    assert!(incident.risk.score > before);
    assert_eq!(incident.risk.score, 40.0, "10 x (1 + ln 20) = 39.96");
}

/// The same alerts in the same order make the same incidents, ids included, and the state
/// survives serialization (the checkpoint) with the same result.
#[test]
fn replay_is_deterministic_and_the_state_round_trips() {
    let alerts: Vec<_> = (0..30)
        .map(|i| {
            let pod = if i % 3 == 0 { WEB } else { WEB_OTHER_POD };
            let user = [("user.name", "system:serviceaccount:ci:deployer")];
            let entity: &[(&str, &str)] = if i % 4 == 0 { &user } else { &pod };
            alert(
                &format!("a{i}"),
                Severity::Low,
                i * 7,
                entity,
                &["attack.persistence"],
            )
        })
        .collect();
    let run = |alerts: &[Alert]| {
        let mut incidents = Incidents::new(IncidentConfig::default());
        for a in alerts {
            incidents.offer(a);
        }
        incidents
    };
    let once = run(&alerts);
    assert_eq!(once, run(&alerts));
    // Checkpoint half-way, restore, go on: identical.
    let mut half = run(&alerts[..15]);
    let saved = serde_json::to_string(&half).expect("save");
    half = serde_json::from_str(&saved).expect("restore");
    for a in &alerts[15..] {
        half.offer(a);
    }
    assert_eq!(half, once);
}

#[test]
fn the_life_cycle_and_its_refusals() {
    let mut incidents = Incidents::new(IncidentConfig::default());
    incidents.offer(&alert("a1", Severity::High, 0, &WEB, &[]));
    let id = incidents.list()[0].id.clone();
    incidents
        .set_status(&id, Status::Acknowledged, None, Some("alice".into()))
        .expect("ack");
    incidents
        .comment(
            &id,
            Comment {
                author: "alice".into(),
                at: t(1),
                text: "looking".into(),
            },
        )
        .expect("comment");
    let resolved = incidents
        .set_status(
            &id,
            Status::Resolved,
            Some(Classification::FalsePositive),
            None,
        )
        .expect("resolve");
    assert_eq!(resolved.classification, Some(Classification::FalsePositive));
    assert_eq!(resolved.assignee.as_deref(), Some("alice"));
    assert_eq!(resolved.comments.len(), 1);
    assert!(matches!(
        incidents.set_status(&id, Status::Investigating, None, None),
        Err(ActionError::Transition { .. })
    ));
    assert!(matches!(
        incidents.set_status("inc-none", Status::Acknowledged, None, None),
        Err(ActionError::NotFound(_))
    ));
    // After resolving, a new alert on the entity opens a new incident.
    let changes = incidents.offer(&alert("a2", Severity::Low, 2, &WEB, &[]));
    assert!(matches!(&changes[0], Change::Opened(other) if *other != id));
}

#[test]
fn a_flood_of_alerts_is_capped_and_counted() {
    let config = IncidentConfig {
        max_alerts: 5,
        ..IncidentConfig::default()
    };
    let mut incidents = Incidents::new(config);
    for i in 0..12 {
        incidents.offer(&alert(&format!("a{i}"), Severity::Low, i, &WEB, &[]));
    }
    let incident = incidents.list()[0];
    assert_eq!(incident.alerts.len(), 5);
    assert_eq!(incident.overflow, 7);
    assert_eq!(incident.risk.score, 36.0, "all 12 alerts scored: 12 x 3");
}

/// The state stays bounded: incidents past `keep_days` (by the alerts' own times) and the
/// oldest past `max_incidents` are forgotten, with their alert index.
#[test]
fn old_and_surplus_incidents_are_forgotten() {
    let config = IncidentConfig {
        keep_days: 1,
        max_incidents: 3,
        ..IncidentConfig::default()
    };
    let mut incidents = Incidents::new(config);
    for i in 0..5 {
        let user = format!("user-{i}");
        incidents.offer(&alert(
            &format!("a{i}"),
            Severity::Low,
            i * 60,
            &[("user.name", &user)],
            &[],
        ));
    }
    assert_eq!(incidents.list().len(), 3, "capped at max_incidents");
    let kept: Vec<_> = incidents
        .list()
        .iter()
        .map(|i| i.entity.value.clone())
        .collect();
    assert!(
        kept.contains(&"user-4".to_string()) && !kept.contains(&"user-0".to_string()),
        "{kept:?}"
    );
    // Two days later: everything older than a day goes.
    incidents.offer(&alert(
        "late",
        Severity::Low,
        5 * 60 + 2 * 24 * 60,
        &[("user.name", "late")],
        &[],
    ));
    assert_eq!(incidents.list().len(), 1);
    assert_eq!(incidents.by_alert.len(), 1);
    // An alert about a forgotten entity opens a new incident.
    let again = incidents.offer(&alert(
        "a9",
        Severity::Low,
        5 * 60 + 2 * 24 * 60 + 1,
        &[("user.name", "user-4")],
        &[],
    ));
    assert!(matches!(&again[0], Change::Opened(_)));
}

fn rule_alert(id: &str, rule: &str, at: i64, entity: &[(&str, &str)]) -> Alert {
    let mut a = alert(id, Severity::Medium, at, entity, &[]);
    a.rule_id = rule.to_string();
    a.title = format!("Title of {rule}");
    a
}

fn grouped(rules: &[&str], group_by: &str, window_secs: Option<u64>) -> IncidentConfig {
    IncidentConfig {
        rules: vec![RuleGrouping {
            rules: rules.iter().map(|r| r.to_string()).collect(),
            group_by: group_by.to_string(),
            window_secs,
        }],
        ..IncidentConfig::default()
    }
}

const OTHER_NS: [(&str, &str); 2] = [
    ("kubernetes.namespace", "shop"),
    ("kubernetes.pod.name", "cart-5f6d7c8b9-q1w2e"),
];

#[test]
fn per_rule_grouping_by_rule_alone_and_kind() {
    // A scanner rule: one incident whatever the pod it hits.
    let mut by_rule = Incidents::new(grouped(&["scanner-*"], "rule", None));
    by_rule.offer(&rule_alert("a1", "scanner-probe", 0, &WEB));
    by_rule.offer(&rule_alert("a2", "scanner-probe", 1, &OTHER_NS));
    // A rule no grouping names still groups by entity.
    by_rule.offer(&rule_alert("a3", "other", 2, &OTHER_NS));
    let entities: Vec<String> = by_rule.list().iter().map(|i| i.entity.key()).collect();
    assert_eq!(by_rule.list().len(), 2, "{entities:?}");
    assert!(entities.contains(&"rule:scanner-probe".to_string()));
    assert!(entities.contains(&"workload:shop/cart".to_string()));

    // `alone`: every alert its own incident, even on one workload; titles match any case.
    let mut alone = Incidents::new(grouped(&["TITLE OF noisy"], "alone", None));
    alone.offer(&rule_alert("b1", "noisy", 0, &WEB));
    alone.offer(&rule_alert("b2", "noisy", 1, &WEB));
    assert_eq!(alone.list().len(), 2);

    // `pod`: one incident per pod, where the default would merge the workload's pods.
    let mut per_pod = Incidents::new(grouped(&["r"], "pod", None));
    per_pod.offer(&rule_alert("c1", "r", 0, &WEB));
    per_pod.offer(&rule_alert("c2", "r", 1, &WEB_OTHER_POD));
    assert_eq!(per_pod.list().len(), 2);
    let mut default = Incidents::new(IncidentConfig::default());
    default.offer(&rule_alert("c1", "r", 0, &WEB));
    default.offer(&rule_alert("c2", "r", 1, &WEB_OTHER_POD));
    assert_eq!(default.list().len(), 1);

    // `principal` on an alert that names no user falls back to the default order.
    let mut principal = Incidents::new(grouped(&["r"], "principal", None));
    principal.offer(&rule_alert("d1", "r", 0, &WEB));
    assert_eq!(principal.list()[0].entity.kind, "workload");
}

#[test]
fn a_rule_can_have_its_own_window() {
    // 60 minutes apart: past the default 15-minute window, inside this rule's two hours.
    let mut long = Incidents::new(grouped(&["slow-burn"], "entity", Some(7200)));
    long.offer(&rule_alert("e1", "slow-burn", 0, &WEB));
    long.offer(&rule_alert("e2", "slow-burn", 60, &WEB));
    assert_eq!(long.list().len(), 1);
    let mut short = Incidents::new(IncidentConfig::default());
    short.offer(&rule_alert("e1", "slow-burn", 0, &WEB));
    short.offer(&rule_alert("e2", "slow-burn", 60, &WEB));
    assert_eq!(short.list().len(), 2);
}

#[test]
fn per_rule_groupings_are_validated() {
    assert!(grouped(&["x"], "rule", None).validate().is_ok());
    let err = grouped(&["x"], "namespace", None)
        .validate()
        .err()
        .unwrap_or_default();
    assert!(
        err.contains("detect.incidents.rules[0]") && err.contains("group_by `namespace`"),
        "{err}"
    );
    let err = grouped(&[], "rule", None)
        .validate()
        .err()
        .unwrap_or_default();
    assert!(err.contains("`rules` needs"), "{err}");
}
