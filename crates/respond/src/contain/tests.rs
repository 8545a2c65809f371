use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use crowsnest_model::{Alert, Severity};
use serde_json::json;

use super::log::{verify_bytes, GENESIS};
use super::*;

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_765_000_000, 0).expect("time") + Duration::seconds(seconds)
}

fn alert(id: &str, rule: &str, level: Severity, entity: &[(&str, &str)]) -> Alert {
    Alert {
        id: id.into(),
        rule_id: rule.into(),
        title: format!("Title of {rule}"),
        level,
        tags: vec!["attack.execution".into()],
        techniques: vec!["T1059".into()],
        entity: entity
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        event_ids: vec![],
        count: 1,
        first_seen: t(0),
        last_seen: t(0),
        fold_key: id.into(),
        correlation: None,
    }
}

const CONTAINER: [(&str, &str); 4] = [
    ("container.id", "abc123def4567890"),
    ("container.name", "shop-web"),
    ("container.image.name", "shop/web:1.2"),
    ("host.name", "node-1"),
];

const POD: [(&str, &str); 5] = [
    ("kubernetes.namespace", "prod"),
    ("kubernetes.pod.name", "web-7d4b9c6f5-x2kq9"),
    ("kubernetes.node.name", "node-1"),
    ("kubernetes.replicas.desired", "3"),
    ("kubernetes.replicas.ready", "3"),
];

fn config(actions: &[(ActionKind, Mode)]) -> RespondConfig {
    RespondConfig {
        playbooks: vec![Playbook {
            name: "shell".into(),
            matches: Match {
                rules: vec!["reverse-*".into()],
                level_min: Some(Severity::High),
                ..Match::default()
            },
            actions: actions
                .iter()
                .map(|(action, mode)| ActionSpec {
                    action: *action,
                    mode: *mode,
                    ttl_secs: None,
                })
                .collect(),
            ttl_secs: Some(3600),
        }],
        ..RespondConfig::default()
    }
}

fn plan_one(config: RespondConfig, alert: &Alert) -> Vec<PlannedAction> {
    let mut breaker = CircuitBreaker::in_memory(&config.guards);
    Planner::new(config).plan(alert, None, &NoInventory, &mut breaker, t(0))
}

#[test]
fn globs_match_like_shells() {
    assert!(glob("reverse-*", "reverse-shell"));
    assert!(glob("*crowsnest*", "ghcr.io/x/crowsnest-agent:1"));
    assert!(glob("a?c", "abc"));
    assert!(!glob("a?c", "abbc"));
    assert!(!glob("kube-system", "kube-system2"));
    assert!(glob("*", ""));
}

#[test]
fn a_playbook_matches_rule_level_tag_risk_and_namespace() {
    let a = alert("a1", "reverse-shell", Severity::High, &POD);
    let target = Target::of(&a);
    let mut m = Match {
        rules: vec!["reverse-*".into()],
        tags: vec!["attack.exec*".into()],
        level_min: Some(Severity::High),
        namespaces: vec!["prod".into()],
        risk_min: None,
    };
    assert!(m.matches(&a, None, &target));
    let by_title = Match {
        rules: vec!["*OF REVERSE*".into()],
        ..Match::default()
    };
    assert!(
        by_title.matches(&a, None, &target),
        "titles match in any case"
    );
    m.level_min = Some(Severity::Critical);
    assert!(!m.matches(&a, None, &target), "level below level_min");
    m.level_min = None;
    m.risk_min = Some(10.0);
    assert!(!m.matches(&a, None, &target), "no incident: risk 0");
    let mut incidents = crate::Incidents::new(crate::IncidentConfig::default());
    incidents.offer(&a);
    let incident = incidents.list()[0].clone();
    assert!(incident.risk.score >= 10.0);
    assert!(m.matches(&a, Some(&incident), &target));
    m.namespaces = vec!["staging".into()];
    assert!(!m.matches(&a, Some(&incident), &target));
    m.namespaces.clear();
    m.tags = vec!["attack.persistence".into()];
    assert!(!m.matches(&a, Some(&incident), &target));
}

#[test]
fn the_target_comes_from_the_alert_fields() {
    let mut fields: Vec<(&str, &str)> = POD.to_vec();
    fields.push(("kubernetes.labels.app", "web"));
    fields.push(("container.network.mode", "host"));
    fields.push(("container.networks", "front, back"));
    let target = Target::of(&alert("a", "r", Severity::High, &fields));
    assert_eq!(target.namespace.as_deref(), Some("prod"));
    assert_eq!(target.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(target.host_network, Some(true));
    assert_eq!(target.networks, ["front", "back"]);
    assert_eq!(
        target.owner,
        Some(Owner {
            kind: "Deployment".into(),
            name: "web".into(),
            inferred: true
        })
    );
    assert_eq!(
        target.replicas,
        Some(Replicas {
            desired: 3,
            ready: 3
        })
    );
    let told = Target::from_fields(&BTreeMap::from([
        ("kubernetes.pod.name".to_string(), "db-1".to_string()),
        ("orchestrator.namespace".to_string(), "data".to_string()),
    ]));
    assert_eq!(
        told.owner.as_ref().map(|o| o.kind.as_str()),
        Some("StatefulSet")
    );
    assert_eq!(told.namespace.as_deref(), Some("data"));
    // An inventory's told owner replaces the inferred one; what the alert knows stays.
    let mut merged = target.clone();
    merged.merge(&Target {
        owner: Some(Owner {
            kind: "ReplicaSet".into(),
            name: "web-7d4b9c6f5".into(),
            inferred: false,
        }),
        namespace: Some("other".into()),
        ..Target::default()
    });
    assert_eq!(
        merged.owner.as_ref().map(|o| o.kind.as_str()),
        Some("ReplicaSet")
    );
    assert_eq!(merged.namespace.as_deref(), Some("prod"));
    // A told ReplicaSet named like a Deployment's is scaled through its Deployment.
    let rs = |name: &str| {
        Target::from_fields(&BTreeMap::from([
            (
                "kubernetes.owner.kind".to_string(),
                "ReplicaSet".to_string(),
            ),
            ("kubernetes.owner.name".to_string(), name.to_string()),
        ]))
        .owner
        .map(|o| (o.kind, o.name))
    };
    assert_eq!(
        rs("web-7d4b9c6f5"),
        Some(("Deployment".into(), "web".into()))
    );
    assert_eq!(
        rs("standalone"),
        Some(("ReplicaSet".into(), "standalone".into()))
    );
    assert_eq!(rs("my-set"), Some(("ReplicaSet".into(), "my-set".into())));
}

#[test]
fn docker_actions_take_evidence_first_and_undo() {
    let a = alert("a1", "reverse-shell", Severity::High, &CONTAINER);
    let plans = plan_one(
        config(&[
            (ActionKind::Pause, Mode::Auto),
            (ActionKind::Quarantine, Mode::Approve),
            (ActionKind::Kill, Mode::DryRun),
        ]),
        &a,
    );
    assert_eq!(plans.len(), 3);
    let pause = &plans[0];
    assert_eq!(pause.decision.verdict, Verdict::Run, "{:?}", pause.decision);
    let ops: Vec<String> = pause.operations.iter().map(Operation::describe).collect();
    assert_eq!(
        ops,
        [
            "docker@node-1 GET /containers/abc123def4567890/json (evidence)",
            "docker@node-1 GET /containers/abc123def4567890/logs?stdout=1&stderr=1&timestamps=1&tail=1000 (evidence)",
            "docker@node-1 GET /containers/abc123def4567890/top (evidence)",
            "docker@node-1 GET /containers/abc123def4567890/changes (evidence)",
            "docker@node-1 POST /containers/abc123def4567890/pause",
        ]
    );
    assert_eq!(
        pause.undo[0].describe(),
        "docker@node-1 POST /containers/abc123def4567890/unpause"
    );
    assert_eq!(pause.ttl_secs, Some(3600));
    let quarantine = &plans[1];
    assert_eq!(quarantine.decision.verdict, Verdict::AwaitApproval);
    assert!(matches!(
        quarantine.operations.last(),
        Some(Operation::Docker(DockerCall {
            op: DockerOp::DisconnectAll,
            ..
        }))
    ));
    // The undo reconnects what the inspect remembered, with aliases and static addresses.
    assert!(quarantine.undo_operations(&Memory::new()).is_err());
    let memory = Memory::from([(
        "networks".to_string(),
        json!({
            "front": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}, "EndpointID": "e1", "IPAddress": "10.1.0.5"},
            "back": {"Aliases": null, "EndpointID": "e2"},
        }),
    )]);
    let undo = quarantine.undo_operations(&memory).expect("undo");
    assert_eq!(undo.len(), 2);
    let Operation::Docker(call) = &undo[0] else {
        panic!("docker")
    };
    let (method, path, body) = call.engine_request();
    assert_eq!((method, path.as_str()), ("POST", "/networks/front/connect"));
    assert_eq!(
        body,
        Some(
            json!({"Container": "abc123def4567890", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.1.0.5"}, "Aliases": ["web"]}})
        )
    );
    assert_eq!(plans[2].decision.verdict, Verdict::DryRun);
    assert_eq!(
        plans[2].undo[0].describe(),
        "docker@node-1 POST /containers/abc123def4567890/start"
    );
}

#[test]
fn action_ids_are_stable_and_distinct() {
    let a = alert("a1", "reverse-shell", Severity::High, &CONTAINER);
    let cfg = config(&[
        (ActionKind::Pause, Mode::Auto),
        (ActionKind::Stop, Mode::Auto),
    ]);
    let first = plan_one(cfg.clone(), &a);
    let again = plan_one(cfg, &a);
    assert_eq!(first[0].id, again[0].id);
    assert_ne!(first[0].id, first[1].id);
    assert!(first[0].id.starts_with("act-") && first[0].id.len() == 24);
}

fn refused(action: ActionKind, fields: &[(&str, &str)]) -> Decision {
    let a = alert("a1", "reverse-shell", Severity::High, fields);
    let plans = plan_one(config(&[(action, Mode::Auto)]), &a);
    plans[0].decision.clone()
}

#[test]
fn guards_refuse_and_name_themselves() {
    let system = [
        ("kubernetes.namespace", "kube-system"),
        ("kubernetes.pod.name", "coredns-5d78c9869d-abcde"),
        ("kubernetes.replicas.desired", "2"),
        ("kubernetes.replicas.ready", "2"),
    ];
    let d = refused(ActionKind::DeletePod, &system);
    assert_eq!(d.verdict, Verdict::Refused);
    assert_eq!(d.guard.as_deref(), Some("protected_namespace"));
    assert!(d.reason.contains("kube-system"), "{}", d.reason);

    let me = [
        ("container.id", "ffff"),
        (
            "container.image.name",
            "ghcr.io/crowsnest-siem/crowsnest:0.1",
        ),
    ];
    let d = refused(ActionKind::Pause, &me);
    assert_eq!(d.guard.as_deref(), Some("self_protection"));
    let agent = [
        ("container.id", "eeee"),
        ("container.name", "crowsnest-agent"),
    ];
    assert_eq!(
        refused(ActionKind::Kill, &agent).guard.as_deref(),
        Some("self_protection")
    );
    let labelled = [
        ("container.id", "dddd"),
        ("container.labels.app.kubernetes.io/name", "crowsnest-agent"),
    ];
    assert_eq!(
        refused(ActionKind::Stop, &labelled).guard.as_deref(),
        Some("self_protection")
    );
    let protected = [
        ("container.id", "cccc"),
        ("container.labels.crowsnest.io/protected", "true"),
    ];
    assert_eq!(
        refused(ActionKind::Pause, &protected).guard.as_deref(),
        Some("protected_label")
    );
    // As the agent's events carry it: the label key's dots as `_`.
    let flat = [
        ("container.id", "cccd"),
        ("container.labels.crowsnest_io/protected", "true"),
    ];
    assert_eq!(
        refused(ActionKind::Pause, &flat).guard.as_deref(),
        Some("protected_label")
    );

    let host = [("container.id", "bbbb"), ("container.network.mode", "host")];
    let d = refused(ActionKind::Quarantine, &host);
    assert_eq!(d.guard.as_deref(), Some("host_network"));
    // Pausing a host-network container is fine: only quarantine cuts the network.
    assert_eq!(refused(ActionKind::Pause, &host).verdict, Verdict::Run);

    // Last replica: one ready left, or unknown for delete/evict/scale.
    let last = [
        ("kubernetes.namespace", "prod"),
        ("kubernetes.pod.name", "web-7d4b9c6f5-x2kq9"),
        ("kubernetes.replicas.desired", "1"),
        ("kubernetes.replicas.ready", "1"),
    ];
    let d = refused(ActionKind::DeletePod, &last);
    assert_eq!(d.guard.as_deref(), Some("last_replica"));
    assert!(d.reason.contains("1 ready of 1"), "{}", d.reason);
    assert_eq!(
        refused(ActionKind::QuarantinePod, &last).guard.as_deref(),
        Some("last_replica")
    );
    let unknown = [
        ("kubernetes.namespace", "prod"),
        ("kubernetes.pod.name", "web-7d4b9c6f5-x2kq9"),
    ];
    let d = refused(ActionKind::EvictPod, &unknown);
    assert_eq!(d.guard.as_deref(), Some("last_replica"));
    assert!(d.reason.contains("unknown"), "{}", d.reason);
    let d = refused(ActionKind::ScaleToZero, &unknown);
    assert_eq!(
        (d.verdict, d.guard.as_deref()),
        (Verdict::Refused, Some("last_replica"))
    );
    // Known replicas: scale to zero waits for an approval even in mode auto.
    let d = refused(ActionKind::ScaleToZero, &POD);
    assert_eq!(d.verdict, Verdict::AwaitApproval);
    assert_eq!(d.guard.as_deref(), Some("last_replica"));
    assert_eq!(refused(ActionKind::DeletePod, &POD).verdict, Verdict::Run);

    // Missing target parts.
    let d = refused(ActionKind::CordonNode, &[("container.id", "x")]);
    assert_eq!(d.guard.as_deref(), Some("target"));
    assert!(d.reason.contains("a node"), "{}", d.reason);
    let d = refused(ActionKind::Pause, &[("kubernetes.node.name", "n")]);
    assert_eq!(d.guard.as_deref(), Some("target"));
}

#[test]
fn the_circuit_breaker_asks_for_approval_after_three_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("breaker");
    let cfg = config(&[(ActionKind::Pause, Mode::Auto)]);
    let planner = Planner::new(cfg.clone());
    let mut breaker = CircuitBreaker::open(path.clone(), &cfg.guards).expect("open");
    let verdicts: Vec<Verdict> = (0..5)
        .map(|i| {
            let a = alert(
                &format!("a{i}"),
                "reverse-shell",
                Severity::High,
                &[("container.id", &format!("replica-{i}"))],
            );
            planner.plan(&a, None, &NoInventory, &mut breaker, t(i))[0]
                .decision
                .verdict
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Run,
            Verdict::Run,
            Verdict::Run,
            Verdict::AwaitApproval,
            Verdict::AwaitApproval
        ]
    );
    drop(breaker);
    // A restart keeps the count.
    let mut breaker = CircuitBreaker::open(path.clone(), &cfg.guards).expect("reopen");
    let a = alert(
        "b",
        "reverse-shell",
        Severity::High,
        &[("container.id", "other")],
    );
    let d = &planner.plan(&a, None, &NoInventory, &mut breaker, t(60))[0].decision;
    assert_eq!(d.guard.as_deref(), Some("circuit_breaker"));
    assert!(d.reason.contains("breaker_max_auto = 3"), "{}", d.reason);
    // Ten minutes after the first, a slot is free again.
    let d = &planner.plan(&a, None, &NoInventory, &mut breaker, t(600))[0].decision;
    assert_eq!(d.verdict, Verdict::Run);
}

#[test]
fn approvals_refuse_forged_expired_and_replayed_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut approvals = Approvals::open(dir.path()).expect("open");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("approval.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token = approvals.sign("act-1", t(3600));
    let ok = approvals.verify(&token, t(0)).expect("valid");
    assert_eq!(ok.action_id, "act-1");
    assert!(matches!(
        approvals.verify(&token, t(1)),
        Err(ApprovalError::Replayed(_))
    ));
    // Replay after a restart: the used nonce is on disk.
    let token2 = approvals.sign("act-2", t(3600));
    approvals.verify(&token2, t(0)).expect("valid");
    let mut reopened = Approvals::open(dir.path()).expect("reopen");
    // (The reopened list keeps nonces whose tokens have not expired by the wall clock;
    // these tokens' expiry is in the past of the wall clock here, so check with a fresh
    // token signed far ahead.)
    let far = Utc::now() + Duration::days(1);
    let token3 = reopened.sign("act-3", far);
    reopened.verify(&token3, Utc::now()).expect("valid");
    let mut again = Approvals::open(dir.path()).expect("reopen");
    assert!(matches!(
        again.verify(&token3, Utc::now()),
        Err(ApprovalError::Replayed(_))
    ));
    // Expired.
    let old = approvals.sign("act-4", t(10));
    assert_eq!(
        approvals.verify(&old, t(11)),
        Err(ApprovalError::Expired(t(10)))
    );
    // Forged: another action id, another expiry, another key, a bad signature.
    let fresh = approvals.sign("act-5", t(3600));
    let parts: Vec<&str> = fresh.split('.').collect();
    let other_action = format!("v1.act-6.{}.{}.{}", parts[2], parts[3], parts[4]);
    assert_eq!(
        approvals.verify(&other_action, t(0)),
        Err(ApprovalError::Forged)
    );
    let later = format!(
        "v1.act-5.{}.{}.{}",
        t(99_999).timestamp(),
        parts[3],
        parts[4]
    );
    assert_eq!(approvals.verify(&later, t(0)), Err(ApprovalError::Forged));
    let stranger = Approvals::in_memory(b"another server's key, 32 bytes..");
    let foreign = stranger.sign("act-5", t(3600));
    assert_eq!(approvals.verify(&foreign, t(0)), Err(ApprovalError::Forged));
    assert!(matches!(
        approvals.verify("v1.act-5", t(0)),
        Err(ApprovalError::Malformed(_))
    ));
    assert!(matches!(
        approvals.verify(&format!("v1.act-5.{}.{}.!!", parts[2], parts[3]), t(0)),
        Err(ApprovalError::Malformed(_))
    ));
    // The untouched token still works once.
    approvals.verify(&fresh, t(0)).expect("valid");
}

#[test]
fn a_key_readable_by_others_is_refused() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Approvals::open(dir.path()).expect("open"));
        let key = dir.path().join("approval.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = Approvals::open(dir.path()).expect_err("refused");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}

#[test]
fn the_action_log_is_chained_and_verify_names_the_first_broken_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("respond").join("actions.jsonl");
    let mut log = ActionLog::open(&path).expect("open");
    for i in 0..4 {
        log.append(
            t(i),
            RecordKind::Planned,
            &format!("act-{i}"),
            None,
            json!({"action": "pause", "n": i}),
        )
        .expect("append");
    }
    let bytes = std::fs::read(&path).expect("read");
    let ok = verify_bytes(&bytes).expect("verifies");
    assert_eq!(ok.records, 4);
    let first: LogRecord =
        serde_json::from_slice(bytes.split(|b| *b == b'\n').next().expect("line")).expect("record");
    assert_eq!(first.prev, GENESIS);
    // Reopening continues the chain.
    let mut log = ActionLog::open(&path).expect("reopen");
    let r = log
        .append(
            t(9),
            RecordKind::Approved,
            "act-1",
            Some("alice"),
            json!({}),
        )
        .expect("append");
    assert_eq!(r.seq, 4);
    assert_eq!(log::verify(&path).expect("verifies").records, 5);

    // Change one byte of record 1: record 2's prev no longer matches.
    let text = std::fs::read_to_string(&path).expect("read");
    let tampered = text.replacen("\"n\":1", "\"n\":7", 1);
    let e = verify_bytes(tampered.as_bytes()).expect_err("broken");
    assert_eq!((e.index, e.line), (2, 3));
    assert!(e.reason.contains("prev"), "{}", e.reason);
    // Remove record 2.
    let lines: Vec<&str> = text.lines().collect();
    let removed = [lines[0], lines[1], lines[3], lines[4]].join("\n") + "\n";
    let e = verify_bytes(removed.as_bytes()).expect_err("broken");
    assert_eq!(e.index, 2);
    assert!(e.reason.contains("seq is 3"), "{}", e.reason);
    // Garbage in the middle.
    let garbage = [lines[0], "{not json", lines[2]].join("\n") + "\n";
    let e = verify_bytes(garbage.as_bytes()).expect_err("broken");
    assert_eq!(e.index, 1);
    // Opening a broken log refuses to append to it.
    std::fs::write(&path, &tampered).expect("write");
    assert!(matches!(
        ActionLog::open(&path),
        Err(LogError::Broken { .. })
    ));
    // A torn last line (a crash mid-append) is dropped at open, the rest kept.
    let torn = text.clone() + "{\"seq\":5,\"at\":";
    std::fs::write(&path, &torn).expect("write");
    assert!(verify_bytes(torn.as_bytes()).expect("verifies").torn_tail);
    let log = ActionLog::open(&path).expect("open repairs the tail");
    assert_eq!(log.len(), 5);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
}

#[test]
fn log_records_become_response_events() {
    let mut log = ActionLog::in_memory();
    let r = log
        .append(
            t(0),
            RecordKind::Executed,
            "act-9",
            Some("alice"),
            json!({"action": "pause"}),
        )
        .expect("append");
    let e = r.to_event();
    assert_eq!(e.get_str("event.dataset"), Some("crowsnest.response"));
    assert_eq!(e.get_str("event.action"), Some("executed"));
    assert_eq!(e.get_str("event.outcome"), Some("success"));
    assert_eq!(e.get_str("user.name"), Some("alice"));
    assert_eq!(e.get_str("crowsnest.response.action"), Some("pause"));
    assert_eq!(e.get_str("event.id"), Some("act-9-0"));
    assert_eq!(e.timestamp(), Some(t(0)));
}

/// Answers every operation from a script, recording what it was asked.
struct Scripted {
    answers: std::sync::Mutex<Vec<Result<Vec<u8>, String>>>,
    seen: std::sync::Mutex<Vec<String>>,
}

impl Executor for Scripted {
    fn execute(&self, operation: &Operation) -> Result<Vec<u8>, ExecError> {
        self.seen.lock().expect("lock").push(operation.describe());
        let mut answers = self.answers.lock().expect("lock");
        if answers.is_empty() {
            return Ok(b"{}".to_vec());
        }
        answers.remove(0).map_err(ExecError::Other)
    }
}

fn scripted(answers: Vec<Result<Vec<u8>, String>>) -> Scripted {
    Scripted {
        answers: std::sync::Mutex::new(answers),
        seen: std::sync::Mutex::new(Vec::new()),
    }
}

#[test]
fn the_responder_runs_auto_waits_for_approval_and_undoes_after_the_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(&[
        (ActionKind::Quarantine, Mode::Auto),
        (ActionKind::Stop, Mode::Approve),
    ]);
    cfg.public_url = Some("https://siem.example.org/".into());
    let mut responder = Responder::open(dir.path(), cfg.clone()).expect("open");
    let a = alert("a1", "reverse-shell", Severity::High, &CONTAINER);
    let offered = responder
        .offer(&a, None, &NoInventory, t(0))
        .expect("offer");
    assert_eq!(offered.planned.len(), 2);
    assert_eq!(offered.run.len(), 1);
    assert_eq!(offered.links.len(), 1);
    let (stop_id, link) = &offered.links[0];
    assert!(link.starts_with("https://siem.example.org/api/v1/respond/approve?token=v1."));
    // Offering the same alert again plans nothing new.
    assert!(responder
        .offer(&a, None, &NoInventory, t(1))
        .expect("offer")
        .planned
        .is_empty());
    // Execute the quarantine: the inspect's networks are remembered for the undo.
    let quarantine_id = offered.run[0].clone();
    let inspect = json!({"HostConfig": {"NetworkMode": "bridge"}, "NetworkSettings": {"Networks": {"shop": {"Aliases": ["web"]}}}});
    let exec = scripted(vec![Ok(serde_json::to_vec(&inspect).expect("json"))]);
    let record = responder
        .execute(&quarantine_id, &exec, t(2))
        .expect("execute");
    assert_eq!(record.kind, RecordKind::Executed);
    assert_eq!(record.actor.as_deref(), Some("auto"));
    let steps = record.detail["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[0]["sha256"].as_str().map(str::len), Some(64));
    // The evidence is kept under the data directory, its hash in the log.
    let kept = steps[0]["stored"].as_str().expect("inspect kept");
    let bytes = std::fs::read(kept).expect("evidence file");
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        steps[0]["sha256"].as_str().expect("hash")
    );
    assert!(
        kept.contains(&quarantine_id) && kept.contains("00-inspect-"),
        "{kept}"
    );
    assert!(
        steps[4].get("stored").is_none(),
        "the disconnect is not evidence"
    );
    // The stop does nothing until approved.
    assert!(matches!(
        responder.execute(stop_id, &exec, t(3)),
        Err(responder::ResponderError::State { .. })
    ));
    let token = link.split("token=").nth(1).expect("token");
    let (approved, _) = responder
        .approve_token(token, "alice", t(4))
        .expect("approved");
    assert_eq!(&approved.id, stop_id);
    // The same link again is a replay, logged as refused.
    let e = responder
        .approve_token(token, "mallory", t(5))
        .expect_err("replay");
    assert!(e.to_string().contains("replayed"), "{e}");
    let record = responder.execute(stop_id, &exec, t(6)).expect("execute");
    assert_eq!(record.actor.as_deref(), Some("alice"));
    // TTL: an hour after execution the quarantine is due, and its undo reconnects `shop`.
    assert!(responder.due_undos(t(3601)).is_empty());
    assert!(responder.due_undos(t(3602)).contains(&quarantine_id));
    let undo = responder.undo_operations(&quarantine_id).expect("undo");
    assert_eq!(
        undo[0].describe(),
        "docker@node-1 POST /networks/shop/connect {\"Container\":\"abc123def4567890\",\"EndpointConfig\":{\"Aliases\":[\"web\"]}}"
    );
    drop(responder);
    // A restart rebuilds every action's state from the log.
    let mut responder = Responder::open(dir.path(), cfg).expect("reopen");
    assert_eq!(
        responder.get(&quarantine_id).map(|t| t.state),
        Some(responder::State::Executed)
    );
    assert_eq!(
        responder.get(stop_id).and_then(|t| t.approved_by.clone()),
        Some("alice".into())
    );
    assert!(responder.due_undos(t(3602)).contains(&quarantine_id));
    let exec = scripted(vec![]);
    let record = responder
        .undo(&quarantine_id, &exec, "ttl", t(3602))
        .expect("undo");
    assert_eq!(record.kind, RecordKind::Undone);
    // Only the stop (also under the playbook's TTL) is still due.
    assert_eq!(responder.due_undos(t(9999)), std::slice::from_ref(stop_id));
    let verified = log::verify(&dir.path().join("actions.jsonl")).expect("verifies");
    // planned ×2, executed, approved, approval_refused, executed, undone
    assert_eq!(verified.records, 7);
}

#[test]
fn a_container_the_inspect_shows_on_the_host_network_is_not_disconnected() {
    let plans = plan_one(
        config(&[(ActionKind::Quarantine, Mode::Auto)]),
        &alert("a1", "reverse-shell", Severity::High, &CONTAINER),
    );
    let inspect = json!({"HostConfig": {"NetworkMode": "host"}, "NetworkSettings": {"Networks": {"host": {}}}});
    let exec = scripted(vec![Ok(serde_json::to_vec(&inspect).expect("json"))]);
    let failure = run_operations(&exec, &plans[0].operations).expect_err("refused");
    assert!(
        failure.error.to_string().contains("host_network"),
        "{}",
        failure.error
    );
    // The evidence was taken; the disconnect never reached the executor.
    assert_eq!(exec.seen.lock().expect("lock").len(), 4);
    assert_eq!(failure.outcome.steps.len(), 5);
}

#[test]
fn an_alert_offered_again_takes_no_breaker_slot() {
    let mut responder = Responder::in_memory(config(&[(ActionKind::Pause, Mode::Auto)]), b"k");
    let a = alert("a1", "reverse-shell", Severity::High, &CONTAINER);
    for i in 0..5 {
        responder
            .offer(&a, None, &NoInventory, t(i))
            .expect("offer");
    }
    // Two other containers still run automatically: the repeats took no slot.
    for i in 0..3 {
        let other = alert(
            &format!("b{i}"),
            "reverse-shell",
            Severity::High,
            &[("container.id", &format!("other-{i}"))],
        );
        let offered = responder
            .offer(&other, None, &NoInventory, t(10))
            .expect("offer");
        let verdict = offered.planned[0].decision.verdict;
        assert_eq!(
            verdict,
            if i < 2 {
                Verdict::Run
            } else {
                Verdict::AwaitApproval
            }
        );
    }
}

#[test]
fn a_failed_operation_stops_the_action_and_is_logged() {
    let mut responder = Responder::in_memory(config(&[(ActionKind::Pause, Mode::Auto)]), b"k");
    let a = alert("a1", "reverse-shell", Severity::High, &CONTAINER);
    let offered = responder
        .offer(&a, None, &NoInventory, t(0))
        .expect("offer");
    let exec = scripted(vec![Ok(b"{}".to_vec()), Err("no such container".into())]);
    let record = responder
        .execute(&offered.run[0], &exec, t(1))
        .expect("recorded");
    assert_eq!(record.kind, RecordKind::Failed);
    assert_eq!(exec.seen.lock().expect("lock").len(), 2);
    assert!(record.detail["error"]
        .as_str()
        .is_some_and(|e| e.contains("no such container")));
}

#[test]
fn config_parses_from_toml_and_is_validated() {
    let text = r#"
        approval_link_ttl_secs = 600
        [guards]
        protected_namespaces = ["kube-system", "monitoring"]
        breaker_max_auto = 5
        [[playbooks]]
        name = "reverse-shell"
        rules = ["*reverse shell*"]
        level_min = "high"
        ttl_secs = 3600
        actions = [
          { action = "pause", mode = "auto" },
          { action = "quarantine_pod", mode = "approve", ttl_secs = 60 },
          { action = "evict_pod" },
        ]
    "#;
    let cfg: RespondConfig = toml::from_str(text).expect("config");
    assert_eq!(cfg.approval_link_ttl_secs, 600);
    assert_eq!(cfg.guards.breaker_max_auto, 5);
    assert_eq!(cfg.guards.breaker_window_secs, 600);
    let p = &cfg.playbooks[0];
    assert_eq!(p.matches.level_min, Some(Severity::High));
    assert_eq!(p.actions[2].mode, Mode::DryRun);
    assert_eq!(p.actions[1].ttl_secs, Some(60));
    cfg.validate().expect("valid");
    let unknown = toml::from_str::<RespondConfig>(
        "[[playbooks]]\nname = \"x\"\nactions = [{ action = \"reboot\" }]\n",
    );
    assert!(unknown.is_err(), "an unknown action is an error");
    let mut twice = cfg.clone();
    twice.playbooks.push(twice.playbooks[0].clone());
    let e = twice.validate().expect_err("duplicate");
    assert!(e.to_string().contains("respond.playbooks[1]"), "{e}");
    let mut ttl_on_delete = cfg.clone();
    ttl_on_delete.playbooks[0].actions[2].ttl_secs = Some(5);
    let e = ttl_on_delete.validate().expect_err("irreversible with ttl");
    assert!(e.to_string().contains("evict_pod` cannot be undone"), "{e}");
}

#[test]
fn an_action_ready_when_the_server_stopped_is_found_again_and_can_be_abandoned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[
        (ActionKind::Quarantine, Mode::Auto),
        (ActionKind::Stop, Mode::Approve),
    ]);
    let mut responder = Responder::open(dir.path(), cfg.clone()).expect("open");
    let a = alert("a1", "reverse-shell", Severity::High, &CONTAINER);
    let offered = responder
        .offer(&a, None, &NoInventory, t(0))
        .expect("offer");
    let quarantine_id = offered.run[0].clone();
    let stop_id = offered.links[0].0.clone();
    responder
        .approve(&stop_id, "alice", "api", t(30))
        .expect("approved");
    // The process dies here: neither the automatic quarantine nor the approved stop ran.
    drop(responder);
    let mut responder = Responder::open(dir.path(), cfg.clone()).expect("reopen");
    assert_eq!(
        responder.stranded(),
        vec![(quarantine_id.clone(), t(0)), (stop_id.clone(), t(30))],
        "ready since the plan (automatic) and since the approval"
    );
    // Resumed: the quarantine runs as it would have.
    let record = responder
        .execute(&quarantine_id, &scripted(vec![]), t(40))
        .expect("resumed");
    assert_eq!(record.kind, RecordKind::Executed);
    // Too old to run: recorded as failed with the reason, and no longer stranded.
    let record = responder
        .abandon(&stop_id, "waited too long", t(5000))
        .expect("abandoned");
    assert_eq!(record.kind, RecordKind::Failed);
    assert_eq!(record.actor.as_deref(), Some("alice"));
    assert_eq!(record.detail["error"], "waited too long");
    assert!(responder.stranded().is_empty());
    assert!(matches!(
        responder.abandon(&quarantine_id, "x", t(5001)),
        Err(responder::ResponderError::State { .. })
    ));
    drop(responder);
    let responder = Responder::open(dir.path(), cfg).expect("reopen");
    assert!(responder.stranded().is_empty(), "the log remembers both");
}

#[test]
fn a_rejected_action_never_runs_and_its_link_stops_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[
        (ActionKind::Stop, Mode::Approve),
        (ActionKind::Pause, Mode::Approve),
    ]);
    let mut responder = Responder::open(dir.path(), cfg.clone()).expect("open");
    let a = alert("a1", "reverse-shell", Severity::High, &CONTAINER);
    let offered = responder
        .offer(&a, None, &NoInventory, t(0))
        .expect("offer");
    assert_eq!(offered.links.len(), 2);
    let (stop_id, stop_link) = offered.links[0].clone();
    let (pause_id, pause_link) = offered.links[1].clone();
    // By id (an admin), with a reason.
    let (_, records) = responder
        .reject(&stop_id, "alice", "api", "a planned load test", t(1))
        .expect("rejected");
    assert_eq!(records[0].kind, RecordKind::Rejected);
    assert_eq!(records[0].detail["reason"], "a planned load test");
    assert_eq!(
        records[0].to_event().get_str("event.action"),
        Some("rejected")
    );
    // Its link no longer approves, and it cannot run.
    let token = stop_link.split("token=").nth(1).expect("token");
    assert!(matches!(
        responder.approve_token(token, "bob", t(2)),
        Err(responder::ResponderError::State { .. })
    ));
    assert!(responder
        .execute(&stop_id, &scripted(vec![]), t(3))
        .is_err());
    // By the signed link: once.
    let token = pause_link.split("token=").nth(1).expect("token");
    responder
        .reject_token(token, "link holder", "", t(4))
        .expect("rejected by link");
    let replay = responder
        .approve_token(token, "link holder", t(5))
        .expect_err("used");
    assert!(
        replay.to_string().contains("replayed") || replay.to_string().contains("rejected"),
        "{replay}"
    );
    drop(responder);
    let responder = Responder::open(dir.path(), cfg).expect("reopen");
    for id in [&stop_id, &pause_id] {
        assert_eq!(
            responder.get(id).map(|t| t.state),
            Some(responder::State::Rejected)
        );
    }
    assert!(responder.stranded().is_empty());
}
