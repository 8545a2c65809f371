//! Correlation in stream, from the Sigma correlation specification's own examples
//! (`sigma-specification/correlation-examples`); the base rules and events are ours.

use std::path::PathBuf;

use chrono::{Duration, TimeZone, Utc};
use crowsnest_detect::{Detection, Detector, RuleSet};
use crowsnest_model::Event;
use serde_json::json;

fn example(name: &str) -> String {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/sigma/sigma-specification/correlation-examples/"
    ))
    .join(name);
    std::fs::read_to_string(&path).expect("spec example")
}

const FAILED_LOGIN_BASE: &str = "
title: Failed login (base rule for the spec examples)
id: 5638f7c0-ac70-491d-8465-2a65075e0d86
logsource: {product: windows, service: security}
detection:
  selection:
    EventID: 4625
  condition: selection
";

fn detector(yaml: &str) -> Detector {
    let (rules, report) = RuleSet::from_yaml("corr.yml", yaml);
    assert!(!report.any_invalid(), "{:?}", report.files[0].problems);
    Detector::new(rules)
}

fn win_event(n: u64, secs: i64, event_id: u32, user: &str, computer: &str) -> Event {
    let ts = Utc
        .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
        .single()
        .expect("ts")
        + Duration::seconds(secs);
    serde_json::from_value(json!({
        "@timestamp": crowsnest_model::format_timestamp(ts),
        "event": {"dataset": "windows.security", "module": "windows", "id": format!("e{n}")},
        "EventID": event_id, "User": user, "ComputerName": computer, "WorkstationName": "ws1"
    }))
    .expect("event")
}

fn titles(ds: &[Detection]) -> Vec<&str> {
    ds.iter().map(|d| d.title.as_str()).collect()
}

#[test]
fn bruteforce_multidoc_chain_fires_once_and_names_its_events() {
    let mut det = detector(&example("full-example-bruteforce-multidoc.yml"));
    let mut all = Vec::new();
    // Nine failures for bob: not enough. Ten for alice, then her success.
    for i in 0..9 {
        all.extend(det.process(&win_event(100 + i, i as i64, 4625, "bob", "pc1")));
    }
    for i in 0..10 {
        all.extend(det.process(&win_event(i, 10 + i as i64, 4625, "alice", "pc1")));
    }
    let success = det.process(&win_event(50, 60, 4624, "alice", "pc1"));
    let bob_success = det.process(&win_event(150, 61, 4624, "bob", "pc1"));
    // generate: false (the default) hides the base rules, referenced by *name* here.
    assert!(
        !titles(&all).contains(&"Single failed login"),
        "{:?}",
        titles(&all)
    );
    assert!(titles(&all).contains(&"Multiple failed logons"));
    let fired: Vec<&Detection> = success.iter().filter(|d| d.correlation.is_some()).collect();
    assert_eq!(
        titles(&success),
        vec!["Correlation - Multiple Failed Logins Followed by Successful Login"],
        "{success:#?}"
    );
    let corr = fired[0].correlation.as_ref().expect("correlation");
    assert_eq!(corr.kind, "temporal_ordered");
    assert!(corr.group.iter().any(|(k, v)| k == "User" && v == "alice"));
    assert!(bob_success.is_empty(), "{bob_success:#?}");
}

#[test]
fn event_count_threshold_group_and_window() {
    let yaml = format!(
        "{}\n---\n{FAILED_LOGIN_BASE}",
        example("event_count-many-failed-logins.yml")
    );
    let mut det = detector(&yaml);
    let corr = |ds: Vec<Detection>| {
        ds.into_iter()
            .filter(|d| d.correlation.is_some())
            .collect::<Vec<_>>()
    };
    // 60 failures on pc1, then 40 more two hours later: never 100 within 1h.
    for i in 0..60 {
        assert!(corr(det.process(&win_event(i, i as i64, 4625, "u", "pc1"))).is_empty());
    }
    for i in 0..40 {
        assert!(
            corr(det.process(&win_event(1000 + i, 7200 + i as i64, 4625, "u", "pc1"))).is_empty()
        );
    }
    // 99 on pc2 within the hour, plus 50 on pc3: no; the 100th on pc2 fires.
    for i in 0..99 {
        assert!(
            corr(det.process(&win_event(2000 + i, 7300 + i as i64, 4625, "u", "pc2"))).is_empty()
        );
        if i < 50 {
            assert!(
                corr(det.process(&win_event(3000 + i, 7300 + i as i64, 4625, "u", "pc3")))
                    .is_empty()
            );
        }
    }
    let fired = corr(det.process(&win_event(2099, 7400, 4625, "u", "pc2")));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].title, "Many failed logins");
    assert!(fired[0]
        .correlation
        .as_ref()
        .is_some_and(|c| c.value >= 100.0));
    // The correlation names the events that formed it (bounded: the latest ones kept).
    assert!(!fired[0].event_ids.is_empty() && fired[0].event_ids.len() <= 10);
    assert!(
        fired[0].event_ids.iter().all(|id| id.starts_with("e2")),
        "{:?}",
        fired[0].event_ids
    );
}

#[test]
fn value_count_counts_distinct_values() {
    let yaml = format!(
        "{}\n---\n{FAILED_LOGIN_BASE}",
        example("value_count-failed-login-many-users.yml")
    );
    let mut det = detector(&yaml);
    let mut fired = 0;
    // 300 failures, but only 10 distinct users: no.
    for i in 0..300 {
        let user = format!("user{}", i % 10);
        fired += det
            .process(&win_event(i, i as i64, 4625, &user, "pc1"))
            .iter()
            .filter(|d| d.correlation.is_some())
            .count();
    }
    assert_eq!(fired, 0);
    // 100 distinct users on pc9: fires.
    for i in 0..100 {
        let user = format!("spray{i}");
        fired += det
            .process(&win_event(5000 + i, 400 + i as i64, 4625, &user, "pc9"))
            .iter()
            .filter(|d| d.correlation.is_some())
            .count();
    }
    assert_eq!(fired, 1);
}

const RECON_BASE: &str = "
title: whoami
name: recon_cmd_a
logsource: {product: windows, service: security}
detection: {sel: {CommandLine|contains: whoami}, condition: sel}
---
title: net user
name: recon_cmd_b
logsource: {product: windows, service: security}
detection: {sel: {CommandLine|contains: net user}, condition: sel}
---
title: ipconfig
name: recon_cmd_c
logsource: {product: windows, service: security}
detection: {sel: {CommandLine|contains: ipconfig}, condition: sel}
";

fn cmd(n: u64, secs: i64, line: &str, user: &str) -> Event {
    let mut e = win_event(n, secs, 4688, user, "pc1");
    e.set("CommandLine", json!(line));
    e
}

#[test]
fn temporal_needs_all_rules_within_the_window() {
    let yaml = format!(
        "title: Recon\nid: recon-temporal\n{}\n---\n{RECON_BASE}",
        example("temporal-recon-commands.yml")
    );
    let mut det = detector(&yaml);
    // Spread over 10 minutes: no.
    let mut out = Vec::new();
    out.extend(det.process(&cmd(1, 0, "whoami /all", "eve")));
    out.extend(det.process(&cmd(2, 400, "net user", "eve")));
    out.extend(det.process(&cmd(3, 800, "ipconfig", "eve")));
    assert!(
        out.iter().all(|d| d.correlation.is_none()),
        "{:?}",
        titles(&out)
    );
    // Within 5 minutes, for mallory: fires on the third, naming all three events.
    det.process(&cmd(11, 1000, "whoami", "mallory"));
    det.process(&cmd(12, 1060, "net user /domain", "mallory"));
    let fired = det.process(&cmd(13, 1120, "ipconfig /all", "mallory"));
    let corr: Vec<&Detection> = fired.iter().filter(|d| d.correlation.is_some()).collect();
    assert_eq!(corr.len(), 1, "{:?}", titles(&fired));
    let mut ids = corr[0].event_ids.clone();
    ids.sort();
    assert_eq!(ids, vec!["e11", "e12", "e13"]);
}

#[test]
fn checkpoint_restore_and_hot_reload_keep_windows() {
    let yaml = example("full-example-bruteforce-multidoc.yml");
    let mut first = detector(&yaml);
    for i in 0..6 {
        first.process(&win_event(i, i as i64, 4625, "alice", "pc1"));
    }
    let bytes = first.checkpoint().expect("checkpoint");
    let finish = |det: &mut Detector| {
        for i in 6..10 {
            det.process(&win_event(i, i as i64, 4625, "alice", "pc1"));
        }
        det.process(&win_event(50, 30, 4624, "alice", "pc1"))
            .iter()
            .any(|d| d.title.starts_with("Correlation - Multiple Failed"))
    };
    // A fresh detector without the checkpoint has only 4 failures: no alert.
    let mut fresh = detector(&yaml);
    assert!(!finish(&mut fresh));
    // Restored from the checkpoint it has all 10.
    let mut restored = detector(&yaml);
    restored.restore(&bytes).expect("restore");
    assert!(finish(&mut restored));
    assert!(restored.restore(b"not json").is_err());
    // Hot reload (same correlations plus one more rule) keeps the windows.
    let extra = format!("{yaml}\n---\ntitle: Unrelated\nid: unrelated-1\nlogsource: {{product: linux}}\ndetection: {{sel: {{x: y}}, condition: sel}}\n");
    first.replace_rules(RuleSet::from_yaml("corr.yml", &extra).0);
    assert!(finish(&mut first));
}

#[test]
fn correlation_state_expires() {
    let mut det = detector(&example("full-example-bruteforce-multidoc.yml"));
    for i in 0..50 {
        det.process(&win_event(i, i as i64, 4625, &format!("user{i}"), "pc1"));
    }
    assert!(det.state_count() >= 50);
    // Two hours of stream time later, the 10-minute windows are gone.
    det.process(&win_event(999, 7200, 1, "x", "pc1"));
    assert_eq!(det.state_count(), 0);
}
