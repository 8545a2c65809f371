//! Golden reports over fixture stores: every control id present, byte-identical regeneration,
//! the gaps of a store without Kubernetes audit, scope, risk acceptance and the PDF.

use std::path::Path;

use chrono::{DateTime, Utc};
use crowsnest_compliance::{
    catalog, catalogs, evaluate, report, ComplianceConfig, Evaluation, IncidentFacts, Inputs,
    Request, RiskAcceptance, Scope, Status,
};
use crowsnest_model::Event;
use crowsnest_store::{Store, StoreConfig};
use serde_json::{json, Value};

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

fn fill(store: &Store, events: &[Value]) {
    let batch: Vec<(u64, Event)> = (1..)
        .zip(events.iter().map(|e| match e {
            Value::Object(map) => Event::from_map(map.clone()),
            _ => Event::new(),
        }))
        .collect();
    store.add(&batch).expect("add");
    store.commit().expect("commit");
}

fn audit(id: &str, at: &str, user: &str, verb: &str, resource: &str, outcome: &str) -> Value {
    json!({
        "@timestamp": at,
        "event": {"id": id, "ingested": at, "dataset": "kubernetes.audit", "module": "kubernetes",
                  "action": verb, "outcome": outcome},
        "user": {"name": user},
        "source": {"ip": "10.0.0.7"},
        "orchestrator": {"cluster": {"name": "prod"}, "resource": {"type": resource}},
        "kubernetes": {"namespace": "payments"},
    })
}

fn log(id: &str, at: &str) -> Value {
    json!({
        "@timestamp": at,
        "event": {"id": id, "ingested": at, "dataset": "kubernetes.container"},
        "orchestrator": {"cluster": {"name": "prod"}},
        "kubernetes": {"namespace": "payments"},
        "message": "GET /checkout 200",
    })
}

fn with_audit() -> Vec<Value> {
    let mut missing_origin = audit(
        "a-06",
        "2026-11-06T09:00:00Z",
        "carol",
        "get",
        "secrets",
        "success",
    );
    missing_origin["source"] = json!({});
    vec![
        audit(
            "a-01",
            "2026-11-02T10:00:00Z",
            "alice",
            "create",
            "rolebindings",
            "success",
        ),
        audit(
            "a-02",
            "2026-11-03T10:00:00Z",
            "bob",
            "patch",
            "deployments",
            "success",
        ),
        audit(
            "a-03",
            "2026-11-04T10:00:00Z",
            "alice",
            "create",
            "validatingwebhookconfigurations",
            "success",
        ),
        audit(
            "a-04",
            "2026-11-05T10:00:00Z",
            "system:anonymous",
            "get",
            "pods",
            "success",
        ),
        audit(
            "a-05",
            "2026-11-07T20:00:00Z",
            "mallory",
            "delete",
            "pods",
            "failure",
        ),
        missing_origin,
        log("l-01", "2026-11-02T10:00:01Z"),
        log("l-02", "2026-11-07T23:00:00Z"),
        json!({"@timestamp": "2026-11-03T10:05:00Z",
               "event": {"id": "al-01", "ingested": "2026-11-03T10:05:00Z", "dataset": "crowsnest.alert", "kind": "alert"},
               "kubernetes": {"namespace": "payments"}, "orchestrator": {"cluster": {"name": "prod"}}}),
        json!({"@timestamp": "2026-11-02T12:00:00Z",
               "event": {"id": "ia-01", "ingested": "2026-11-02T12:00:00Z", "dataset": "crowsnest.incident_action"},
               "incident": {"id": "inc-a", "action": "acknowledge", "by": "admin"}}),
        // An event of another cluster, outside the scope prod/payments.
        json!({"@timestamp": "2026-11-05T10:00:00Z",
               "event": {"id": "x-01", "ingested": "2026-11-05T10:00:00Z", "dataset": "kubernetes.audit", "action": "get", "outcome": "success"},
               "user": {"name": "dave"}, "orchestrator": {"cluster": {"name": "staging"}}}),
    ]
}

fn incidents() -> Vec<IncidentFacts> {
    let incident = |id: &str, opened: &str| IncidentFacts {
        id: id.into(),
        title: format!("{id} title"),
        opened: t(opened),
        status: "new".into(),
        namespace: Some("payments".into()),
        cluster: Some("prod".into()),
    };
    vec![
        incident("inc-a", "2026-11-02T10:30:00Z"),
        incident("inc-b", "2026-11-03T10:05:00Z"),
    ]
}

fn config() -> ComplianceConfig {
    ComplianceConfig {
        personal_data_namespaces: vec!["payments".into()],
        risk_acceptances: vec![RiskAcceptance {
            framework: "pci-dss-4.0.1".into(),
            control: "10.3.4".into(),
            reason: "integrity chain rolls out in Q1 (CISO, ticket SEC-12)".into(),
            expires: t("2027-03-31T00:00:00Z"),
        }],
        ..ComplianceConfig::default()
    }
}

fn evaluated(store: &Store, framework: &str, scope: &str, cfg: &ComplianceConfig) -> Evaluation {
    let incidents = incidents();
    evaluate(
        &Inputs {
            store,
            incidents: &incidents,
            config: cfg,
        },
        &Request {
            framework,
            from: t("2026-11-01T00:00:00Z"),
            to: t("2026-11-08T00:00:00Z"),
            scope: Scope::parse(scope).expect("scope"),
        },
    )
    .expect("evaluate")
}

fn control<'a>(e: &'a Evaluation, id: &str) -> &'a crowsnest_compliance::ControlResult {
    e.controls
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("control {id}"))
}

fn store_with(events: &[Value], config: StoreConfig) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store"), config).expect("open");
    fill(&store, events);
    (dir, store)
}

#[test]
fn golden_pci_report_lists_every_control_and_regenerates_byte_identical() {
    let (dir, store) = store_with(&with_audit(), StoreConfig::default());
    let cfg = config();
    let e = evaluated(&store, "pci-dss-4.0.1", "prod/payments", &cfg);
    let pci = catalog("pci-dss-4.0.1").expect("catalog");
    assert_eq!(e.controls.len(), pci.controls.len(), "no control hidden");

    // Statuses from the fixture's evidence.
    assert_eq!(control(&e, "10.2.1.1").status, Status::Evidence);
    let completeness = control(&e, "10.2.2");
    assert_eq!(completeness.status, Status::Violation);
    assert!(
        completeness.checks[0].finding.contains("origin in 1"),
        "{:?}",
        completeness.checks[0]
    );
    assert_eq!(control(&e, "7.2.1").status, Status::Violation); // system:anonymous
    assert_eq!(control(&e, "10.5.1").status, Status::Evidence); // no age limit configured
    let changes = &control(&e, "11.5.2").checks[1];
    assert_eq!(changes.check, "change-tracking");
    assert_eq!(changes.figures["rbac"], json!(1));
    assert_eq!(changes.figures["workloads"], json!(2));
    assert_eq!(changes.figures["webhooks"], json!(1));
    assert_eq!(changes.figures["policies"], json!(0));
    // inc-a acknowledged after 1.5 h; inc-b never handled.
    let handling = control(&e, "10.7.3");
    assert_eq!(handling.status, Status::Violation);
    assert!(handling.checks[0].finding.contains("inc-b not handled"));
    assert_eq!(handling.checks[0].figures["inc-a"]["hours"], json!(1.5));
    // The integrity chain leaves a gap, shown with its risk acceptance.
    let integrity = control(&e, "10.3.4");
    assert_eq!(integrity.status, Status::Gap);
    assert!(integrity.accepted.as_ref().is_some_and(|a| !a.expired));
    assert_eq!(control(&e, "12.10.1").status, Status::Attest);
    // Silent sources: both sources sent events in the last 24 h of the period.
    assert_eq!(control(&e, "10.7.2").status, Status::Evidence);
    // Scope keeps the staging event out.
    let audit_count = control(&e, "10.2.1.1").checks[0].queries[0].count;
    assert_eq!(audit_count, 6);
    assert_eq!(
        control(&e, "10.2.1.1").checks[0].queries[0].query,
        "orchestrator.cluster.name:prod AND kubernetes.namespace:payments AND (event.dataset:kubernetes.audit)"
    );

    let generated = t("2026-11-08T00:00:00Z");
    let first =
        report::write(&dir.path().join("one"), &e, generated, report::Pdf::Skip).expect("write");
    let again = evaluated(&store, "pci-dss-4.0.1", "prod/payments", &cfg);
    assert_eq!(again, e);
    let second = report::write(
        &dir.path().join("two"),
        &again,
        generated,
        report::Pdf::Skip,
    )
    .expect("write");
    assert_eq!(first.manifest, second.manifest);
    for file in [
        report::HTML_FILE,
        report::EVIDENCE_FILE,
        report::MANIFEST_FILE,
    ] {
        let a = std::fs::read(dir.path().join("one").join(file)).expect("read");
        let b = std::fs::read(dir.path().join("two").join(file)).expect("read");
        assert_eq!(a, b, "{file} differs between two generations");
    }
    let html =
        std::fs::read_to_string(dir.path().join("one").join(report::HTML_FILE)).expect("html");
    for c in &pci.controls {
        assert!(html.contains(&format!("id=\"c-{}\"", c.id)), "{}", c.id);
    }
    for text in [
        "PCI DSS 4.0.1",
        "2026-11-01T00:00:00Z to 2026-11-08T00:00:00Z",
        "prod/payments",
        "Generated at",
        "violation observed",
        "gap: no data source",
        "not evaluable by a SIEM (attest)",
        "@media print",
    ] {
        assert!(html.contains(text), "{text}");
    }
    // The manifest's digest is the HTML's.
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("one").join(report::MANIFEST_FILE)).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["files"][0]["file"], "report.html");
    assert_eq!(
        manifest["files"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );
    assert_eq!(manifest["pdf_skipped"], "not requested (--no-pdf)");
}

#[test]
fn every_framework_reports_every_control() {
    let (_dir, store) = store_with(&with_audit(), StoreConfig::default());
    let cfg = config();
    for catalog in catalogs() {
        let e = evaluated(&store, &catalog.id, "", &cfg);
        let html = report::html(&e, e.to);
        assert_eq!(e.controls.len(), catalog.controls.len());
        for c in &catalog.controls {
            assert!(html.contains(&c.id), "{} {}", catalog.id, c.id);
        }
    }
}

#[test]
fn without_kubernetes_audit_the_audit_controls_are_gaps() {
    let events = vec![
        log("l-01", "2026-11-02T10:00:00Z"),
        log("l-02", "2026-11-07T23:00:00Z"),
    ];
    let (_dir, store) = store_with(&events, StoreConfig::default());
    let e = evaluated(&store, "pci-dss-4.0.1", "", &ComplianceConfig::default());
    for id in [
        "10.2.1.1", "10.2.1.2", "10.2.1.5", "10.2.2", "11.5.2", "7.2.1",
    ] {
        let c = control(&e, id);
        assert_eq!(c.status, Status::Gap, "{id}: {c:?}");
        assert!(
            c.checks.iter().any(|k| k.finding
                == "no Kubernetes audit events in all clusters, all namespaces ever stored"),
            "{id}: {c:?}"
        );
    }
    // The logs that are there still count as a source.
    assert_eq!(e.sources.len(), 1);
    assert_eq!(e.sources[0].dataset, "kubernetes.container");
    // GDPR's clock needs namespaces marked as personal data.
    let gdpr = evaluated(&store, "gdpr", "", &ComplianceConfig::default());
    assert_eq!(control(&gdpr, "Art. 33").status, Status::Gap);
}

#[test]
fn a_silent_source_and_an_audit_gap_name_the_last_event() {
    // The audit stream stops on the 3rd; the logs go on.
    let events = vec![
        audit(
            "a-01",
            "2026-11-02T10:00:00Z",
            "alice",
            "get",
            "pods",
            "success",
        ),
        log("l-01", "2026-11-07T23:00:00Z"),
    ];
    let (_dir, store) = store_with(&events, StoreConfig::default());
    let e = evaluated(&store, "pci-dss-4.0.1", "", &ComplianceConfig::default());
    let silent = control(&e, "10.7.2");
    assert_eq!(silent.status, Status::Violation);
    assert_eq!(
        silent.checks[0].finding,
        "kubernetes.audit silent since 2026-11-02T10:00:00+00:00"
    );
    // Over a later period, the audit check names when it was last seen.
    let incidents = Vec::new();
    let cfg = ComplianceConfig::default();
    let later = evaluate(
        &Inputs {
            store: &store,
            incidents: &incidents,
            config: &cfg,
        },
        &Request {
            framework: "pci-dss-4.0.1",
            from: t("2026-11-05T00:00:00Z"),
            to: t("2026-11-08T00:00:00Z"),
            scope: Scope::default(),
        },
    )
    .expect("evaluate");
    assert_eq!(
        control(&later, "10.2.1.1").checks[0].finding,
        "no Kubernetes audit events in all clusters, all namespaces since 2026-11-02T10:00:00+00:00"
    );
}

#[test]
fn retention_shorter_than_required_is_a_violation_and_skew_is_measured() {
    let mut events = with_audit();
    // One event ingested two hours after it happened.
    events[1]["event"]["ingested"] = json!("2026-11-03T12:00:00Z");
    let (_dir, store) = store_with(
        &events,
        StoreConfig {
            retention_max_age_hours: Some(24 * 90),
            ..StoreConfig::default()
        },
    );
    let e = evaluated(&store, "pci-dss-4.0.1", "", &config());
    let retention = control(&e, "10.5.1");
    assert_eq!(retention.status, Status::Violation);
    assert!(retention.checks[0].finding.contains("keeps 90 days"));
    let skew = control(&e, "10.6.1");
    assert_eq!(skew.status, Status::Violation);
    assert_eq!(skew.checks[0].figures["largest skew (s)"], json!(7200));
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let (_dir, store) = store_with(&[], StoreConfig::default());
    let cfg = ComplianceConfig::default();
    let inputs = Inputs {
        store: &store,
        incidents: &[],
        config: &cfg,
    };
    let request = |framework| Request {
        framework,
        from: t("2026-11-08T00:00:00Z"),
        to: t("2026-11-01T00:00:00Z"),
        scope: Scope::default(),
    };
    let err = evaluate(&inputs, &request("pci-dss-3.2.1")).expect_err("unknown");
    assert!(err
        .to_string()
        .contains("unknown framework `pci-dss-3.2.1`"));
    let err = evaluate(&inputs, &request("pci-dss-4.0.1")).expect_err("reversed");
    assert!(err.to_string().contains("the period is empty"));
    assert!(Scope::parse("prod/payments/x").is_err());
    assert!(Scope::parse("prod) OR (*").is_err());
    assert_eq!(
        Scope::parse("*/payments").expect("scope").label(),
        "*/payments"
    );
    config().validate().expect("valid acceptances");
    let mut bad = config();
    bad.risk_acceptances[0].control = "10.9.9".into();
    assert_eq!(
        bad.validate().expect_err("unknown control").to_string(),
        "compliance.risk_acceptances[0]: pci-dss-4.0.1 has no control `10.9.9`"
    );
    bad.risk_acceptances[0].framework = "pci-dss-3.2.1".into();
    assert!(bad
        .validate()
        .expect_err("unknown framework")
        .to_string()
        .contains("unknown framework `pci-dss-3.2.1`"));
}

fn pdftotext(pdf: &Path) -> Option<String> {
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(pdf)
        .arg("-")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn pdf_has_every_control_id_as_text_where_chromium_is_installed() {
    let Some(browser) = report::find_browser() else {
        eprintln!("skipped: no chromium on PATH");
        return;
    };
    if std::process::Command::new("pdftotext")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("skipped: no pdftotext (poppler-utils)");
        return;
    }
    let (dir, store) = store_with(&with_audit(), StoreConfig::default());
    let e = evaluated(&store, "pci-dss-4.0.1", "prod/payments", &config());
    let generated = t("2026-11-08T00:00:00Z");
    let one = report::write(
        &dir.path().join("one"),
        &e,
        generated,
        report::Pdf::With(browser.clone()),
    )
    .expect("write");
    let pdf = one.pdf.expect("pdf printed");
    assert_eq!(one.manifest.files.len(), 3);
    assert_eq!(one.manifest.files[2].file, "report.pdf");
    let text = pdftotext(&pdf).expect("pdftotext");
    for c in &catalog("pci-dss-4.0.1").expect("pci").controls {
        assert!(text.contains(&c.id), "{} not in the PDF text", c.id);
    }
    let two = report::write(
        &dir.path().join("two"),
        &e,
        generated,
        report::Pdf::With(browser),
    )
    .expect("write");
    assert_eq!(
        std::fs::read(&pdf).expect("pdf"),
        std::fs::read(two.pdf.expect("pdf")).expect("pdf"),
        "the PDF differs between two generations"
    );
}
