//! The CIS Docker Benchmark catalog over a fixture of the agent's Docker events, and the
//! integrity check over verification records: golden statuses, every control id in the report,
//! byte-identical regeneration.

use chrono::{DateTime, Utc};
use crowsnest_compliance::{
    catalog, evaluate, report, ComplianceConfig, Evaluation, Inputs, Request, Scope, Status,
};
use crowsnest_model::Event;
use crowsnest_store::{Store, StoreConfig};
use serde_json::{json, Value};

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

fn store_with(events: &[Value]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store"), StoreConfig::default()).expect("open");
    let batch: Vec<(u64, Event)> = (1..)
        .zip(events.iter().map(|e| match e {
            Value::Object(map) => Event::from_map(map.clone()),
            _ => Event::new(),
        }))
        .collect();
    store.add(&batch).expect("add");
    store.commit().expect("commit");
    (dir, store)
}

/// A container start as the agent sends it, with `settings` as `docker.container`.
fn start(id: &str, at: &str, name: &str, settings: Value) -> Value {
    let mut container = json!({"mounts_runtime_socket": false, "mounts_host_root": false});
    if let (Some(map), Value::Object(extra)) = (container.as_object_mut(), settings) {
        map.extend(extra);
    }
    json!({
        "@timestamp": at,
        "event": {"id": id, "ingested": at, "dataset": "docker.events", "module": "docker",
                  "action": "start", "kind": "event"},
        "container": {"id": format!("{name}-id"), "name": name},
        "host": {"name": "docker-1"},
        "docker": {"container": container},
    })
}

fn docker_events() -> Vec<Value> {
    vec![
        // A well-configured container.
        start(
            "d-01",
            "2026-11-02T10:00:00Z",
            "web",
            json!({"user": "1000", "readonly_rootfs": true, "network_mode": "bridge",
                   "security_opt": ["no-new-privileges"]}),
        ),
        // A privileged one with the host's PID namespace and the Docker socket.
        start(
            "d-02",
            "2026-11-03T10:00:00Z",
            "agent",
            json!({"privileged": true, "pid_mode": "host", "user": "0", "readonly_rootfs": false,
                   "mounts_runtime_socket": true, "cap_add": ["SYS_ADMIN"],
                   "mounts": [{"type": "bind", "source": "/var/run/docker.sock", "destination": "/var/run/docker.sock", "rw": true}]}),
        ),
        // Host network, no seccomp, /etc mounted, no user set.
        start(
            "d-03",
            "2026-11-04T10:00:00Z",
            "debug",
            json!({"network_mode": "host", "security_opt": ["seccomp=unconfined"],
                   "readonly_rootfs": true,
                   "mounts": [{"type": "bind", "source": "/etc", "destination": "/host/etc", "rw": false}]}),
        ),
        // A start outside the period.
        start(
            "d-04",
            "2026-10-20T10:00:00Z",
            "old",
            json!({"privileged": true}),
        ),
        // The daemon's own events go to the central store (2.13); the kernel audit sees dockerd.
        json!({"@timestamp": "2026-11-05T10:00:00Z",
               "event": {"id": "d-05", "ingested": "2026-11-05T10:00:00Z", "dataset": "docker.events", "action": "pull"}}),
        json!({"@timestamp": "2026-11-05T11:00:00Z",
               "event": {"id": "k-01", "ingested": "2026-11-05T11:00:00Z", "dataset": "auditd.process", "module": "auditd"},
               "process": {"name": "dockerd", "executable": "/usr/bin/dockerd"}}),
        // A search by a user of crowsnest (its self-audit stream: no cluster).
        json!({"@timestamp": "2026-11-02T09:00:00Z",
               "event": {"id": "s-01", "ingested": "2026-11-02T09:00:00Z", "dataset": "crowsnest.audit", "action": "search", "outcome": "success"},
               "user": {"name": "auditor"}, "source": {"ip": "10.0.0.9"}}),
        // Verification runs: one passed, one failed.
        json!({"@timestamp": "2026-11-02T00:00:00Z",
               "event": {"id": "v-01", "ingested": "2026-11-02T00:00:00Z", "dataset": "crowsnest.verify", "outcome": "success", "action": "integrity.verify"},
               "message": "integrity verification passed: 12 chain records, 8 sealed files match, 0 explained gaps"}),
        json!({"@timestamp": "2026-11-06T00:00:00Z",
               "event": {"id": "v-02", "ingested": "2026-11-06T00:00:00Z", "dataset": "crowsnest.verify", "outcome": "failure", "action": "integrity.verify"},
               "message": "integrity verification FAILED: first altered store/partitions/20261103T00: sha256 differs"}),
    ]
}

fn evaluated(store: &Store, framework: &str) -> Evaluation {
    evaluate(
        &Inputs {
            store,
            incidents: &[],
            config: &ComplianceConfig::default(),
        },
        &Request {
            framework,
            from: t("2026-11-01T00:00:00Z"),
            to: t("2026-11-08T00:00:00Z"),
            scope: Scope::default(),
        },
    )
    .expect("evaluate")
}

fn status(e: &Evaluation, id: &str) -> (Status, String) {
    let c = e
        .controls
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("control {id}"));
    let findings: Vec<&str> = c.checks.iter().map(|k| k.finding.as_str()).collect();
    (c.status, findings.join(" | "))
}

#[test]
fn golden_cis_docker_report_from_container_settings() {
    let (dir, store) = store_with(&docker_events());
    let e = evaluated(&store, "cis-docker-1.6");
    let cis = catalog("cis-docker-1.6").expect("catalog");
    assert_eq!(e.framework.version, "1.6.0");
    assert_eq!(e.controls.len(), cis.controls.len(), "no control hidden");
    let golden: &[(&str, Status, &str)] = &[
        ("1.1.3", Status::Evidence, "1 kernel audit records of the container runtime"),
        ("2.13", Status::Evidence, "4 Docker engine events"),
        ("4.1", Status::Violation, "2 of 3 container starts were running as root (no user set, or user 0/root): agent, debug"),
        ("5.1", Status::Evidence, "none of 3 container starts in the period was running without an AppArmor profile"),
        ("5.3", Status::Violation, "1 of 3 container starts were given powerful added capabilities"),
        ("5.4", Status::Violation, "1 of 3 container starts were privileged: agent"),
        ("5.5", Status::Violation, "were mounting a sensitive host directory (/, /etc, /boot, /dev, /lib, /proc, /sys, /usr, /root): debug"),
        ("5.9", Status::Violation, "1 of 3 container starts were sharing the host's network namespace: debug"),
        ("5.12", Status::Violation, "1 of 3 container starts were running with a writable root filesystem: agent"),
        ("5.15", Status::Violation, "1 of 3 container starts were sharing the host's process namespace: agent"),
        ("5.16", Status::Evidence, "none of 3 container starts in the period was sharing the host's IPC namespace"),
        ("5.21", Status::Violation, "1 of 3 container starts were running without a seccomp profile (seccomp=unconfined): debug"),
        ("5.30", Status::Evidence, "none of 3"),
        ("5.31", Status::Violation, "1 of 3 container starts were mounting the container runtime's socket (docker.sock, containerd.sock, crio.sock): agent"),
        ("4.2", Status::Attest, ""),
        ("5.22", Status::Attest, ""),
    ];
    for (id, expected, text) in golden {
        let (got, finding) = status(&e, id);
        assert_eq!(got, *expected, "{id}: {finding}");
        assert!(finding.contains(text), "{id}: `{finding}` lacks `{text}`");
    }
    // The query behind a violation is recorded, to be rerun.
    let privileged = e.controls.iter().find(|c| c.id == "5.4").expect("5.4");
    assert_eq!(
        privileged.checks[0].queries[1].query,
        "event.dataset:docker.events AND event.action:start AND docker.container.mounts_runtime_socket:* AND (docker.container.privileged:true)"
    );
    assert_eq!(
        privileged.checks[0].queries[1].sample_ids,
        vec!["d-02".to_string()]
    );

    // Every control id in the report, byte-identical regeneration.
    let generated = t("2026-11-08T00:00:00Z");
    let one =
        report::write(&dir.path().join("one"), &e, generated, report::Pdf::Skip).expect("write");
    let again = evaluated(&store, "cis-docker-1.6");
    let two = report::write(
        &dir.path().join("two"),
        &again,
        generated,
        report::Pdf::Skip,
    )
    .expect("write");
    assert_eq!(one.manifest, two.manifest);
    let html =
        std::fs::read_to_string(dir.path().join("one").join(report::HTML_FILE)).expect("html");
    for c in &cis.controls {
        assert!(html.contains(&format!("id=\"c-{}\"", c.id)), "{}", c.id);
    }
    assert!(html.contains("CIS Docker Benchmark"));
}

#[test]
fn without_docker_events_the_runtime_controls_are_gaps() {
    let (_dir, store) = store_with(&[json!({"@timestamp": "2026-11-02T10:00:00Z",
        "event": {"id": "l-01", "ingested": "2026-11-02T10:00:00Z", "dataset": "kubernetes.container"}})]);
    let e = evaluated(&store, "cis-docker-1.6");
    for id in ["4.1", "5.4", "5.31", "2.13", "1.1.3"] {
        let (got, finding) = status(&e, id);
        assert_eq!(got, Status::Gap, "{id}: {finding}");
        assert!(finding.contains("ever stored"), "{id}: {finding}");
    }
}

#[test]
fn a_failed_verification_is_a_violation_of_log_integrity() {
    let (_dir, store) = store_with(&docker_events());
    let e = evaluated(&store, "pci-dss-4.0.1");
    for id in ["10.3.2", "10.3.4"] {
        let (got, finding) = status(&e, id);
        assert_eq!(got, Status::Violation, "{id}: {finding}");
        assert!(
            finding.starts_with("1 of 2 integrity verification runs")
                && finding.contains("first altered store/partitions/20261103T00"),
            "{id}: {finding}"
        );
    }
    // Only the run that passed in a shorter period: evidence.
    let passed = evaluate(
        &Inputs {
            store: &store,
            incidents: &[],
            config: &ComplianceConfig::default(),
        },
        &Request {
            framework: "pci-dss-4.0.1",
            from: t("2026-11-01T00:00:00Z"),
            to: t("2026-11-04T00:00:00Z"),
            scope: Scope::parse("prod").expect("scope"),
        },
    )
    .expect("evaluate");
    let (got, finding) = status(&passed, "10.3.4");
    assert_eq!(
        got,
        Status::Evidence,
        "unscoped: the chain is the whole store's; {finding}"
    );
    assert!(
        finding.contains("1 integrity verification runs"),
        "{finding}"
    );
}
