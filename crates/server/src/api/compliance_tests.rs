//! `GET /api/v1/compliance/{framework}` over events ingested through the real pipeline.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;

use super::tests::{exec_event, harness, Harness};

async fn get(h: &Harness, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let (status, _, body) = h.call(request.body(Body::empty()).expect("request")).await;
    (status, body)
}

fn control<'a>(evaluation: &'a Value, id: &str) -> &'a Value {
    evaluation["controls"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no control {id} in {evaluation}"))
}

#[tokio::test]
async fn compliance_status_per_control_from_ingested_audit() {
    let h = harness().await;
    let request = h.post(
        "/api/v1/ingest/k8s-audit",
        "application/json",
        exec_event().to_string(),
    );
    let (status, _, body) = h.call(request).await;
    assert!(status.is_success(), "{body}");
    h.settle().await;

    let period = "from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z";
    let uri = format!("/api/v1/compliance/pci-dss-4.0.1?{period}");
    let (status, _) = get(&h, &uri, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, e) = get(&h, &uri, Some(&h.token)).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["framework"]["version"], "4.0.1");
    let pci = crowsnest_compliance::catalog("pci-dss-4.0.1").expect("pci");
    assert_eq!(
        e["controls"].as_array().map(Vec::len),
        Some(pci.controls.len())
    );
    let audit = control(&e, "10.2.1.1");
    assert_eq!(audit["status"], "evidence", "{audit}");
    assert_eq!(audit["checks"][0]["queries"][0]["count"], 1);
    assert_eq!(
        control(&e, "12.10.1")["status"],
        "not evaluable by a SIEM (attest)"
    );

    // Another cluster's scope has no audit: a gap that says so.
    let (status, scoped) = get(
        &h,
        &format!("/api/v1/compliance/pci-dss-4.0.1?{period}&scope=staging"),
        Some(&h.token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{scoped}");
    let audit = control(&scoped, "10.2.1.1");
    assert_eq!(audit["status"], "gap: no data source");
    assert_eq!(
        audit["checks"][0]["finding"],
        "no Kubernetes audit events in staging/* ever stored"
    );

    let (status, body) = get(&h, "/api/v1/compliance/pci-dss-3.2.1", Some(&h.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = get(&h, "/api/v1/compliance/gdpr?from=yesterday", Some(&h.token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.to_string()
            .contains("`from` `yesterday` is not an RFC 3339 time"),
        "{body}"
    );
}
