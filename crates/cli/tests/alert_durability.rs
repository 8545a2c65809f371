//! Live detection survives `kill -9`: every acknowledged event that matches a rule has its
//! alert after the restarts, and no alert is written twice (the detector replays the WAL from
//! its checkpoint and recognises alerts that were already durable).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, kill_9_rounds, Server};
use serde_json::json;

/// A `kubectl exec` into pod `web-<n>`: the built-in pack's pod-exec rule fires once per pod.
fn exec_into(n: u64) -> serde_json::Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": format!("00000000-0000-4000-8000-{n:012}"), "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/prod/pods/web-{n}/exec?command=sh&stdin=true&tty=true"),
        "verb": "create",
        "user": {"username": "mallory@corp.example", "groups": ["system:authenticated"]},
        "sourceIPs": ["192.0.2.10"], "userAgent": "kubectl/v1.29.2 (linux/amd64)",
        "objectRef": {"resource": "pods", "namespace": "prod", "name": format!("web-{n}"), "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2024-05-01T10:00:00.000000Z",
        "stageTimestamp": "2024-05-01T10:00:00.100000Z"
    })
}

/// Posts one exec event and 40 filler lines per round trip until stopped; remembers the pods
/// whose exec was acknowledged.
fn sender(
    url: String,
    token: String,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeSet<u64>>>,
) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut filler = String::new();
    for i in 0..40 {
        filler.push_str(&format!(
            "{{\"message\":\"GET /healthz 200 {i}\",\"pad\":\"{}\"}}\n",
            "x".repeat(300)
        ));
    }
    while !stop.load(Ordering::SeqCst) {
        let n = next.fetch_add(1, Ordering::SeqCst);
        let exec = agent
            .post(&format!("{url}/api/v1/ingest/k8s-audit"))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", "application/json")
            .send_string(&exec_into(n).to_string());
        match exec {
            Ok(response) if response.status() == 200 => {
                acked.lock().expect("lock").insert(n);
            }
            Ok(_) | Err(ureq::Error::Status(..)) => {}
            Err(ureq::Error::Transport(_)) => return,
        }
        let fill = agent
            .post(&format!("{url}/api/v1/ingest/ndjson?source=filler"))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&filler);
        if let Err(ureq::Error::Transport(_)) = fill {
            return;
        }
    }
}

#[test]
fn kill_9_loses_no_alert_of_an_acknowledged_event_and_writes_none_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = Server::start(dir.path(), port);
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let send = {
        let (next, acked) = (next.clone(), acked.clone());
        move |url, token, stop| sender(url, token, next.clone(), stop, acked.clone())
    };
    // Long enough for a detector checkpoint (every 5 s) in some rounds, not in others.
    let pauses: Vec<_> = (0..3)
        .map(|round| Duration::from_millis(2_500 + 2_000 * round))
        .collect();
    let mut server = kill_9_rounds(server, 2, &pauses, send);
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 50,
        "too few execs acknowledged: {}",
        acked.len()
    );
    // Alerts of replayed events are made on start; wait until every acknowledged pod has one.
    let deadline = Instant::now() + Duration::from_secs(60);
    let per_pod = loop {
        server.settle();
        let answer = server.search_limit(
            "event.kind:alert AND rule.name:\"Command Executed In Pod Via Exec\" | stats count(), dc(alert.id) by kubernetes.pod.name",
            10_000,
        );
        let rows = answer["rows"].as_array().cloned().unwrap_or_default();
        let pods: BTreeSet<u64> = rows
            .iter()
            .filter_map(|row| row[0].as_str()?.strip_prefix("web-")?.parse().ok())
            .collect();
        if acked.is_subset(&pods) || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut alerted = BTreeSet::new();
    for row in &per_pod {
        let pod = row[0].as_str().expect("pod");
        assert_eq!(row[1], 1, "pod {pod}: alert records {row}");
        assert_eq!(row[2], 1, "pod {pod}: distinct alerts {row}");
        if let Some(n) = pod.strip_prefix("web-").and_then(|n| n.parse::<u64>().ok()) {
            alerted.insert(n);
        }
    }
    let missing: Vec<_> = acked.difference(&alerted).collect();
    assert!(
        missing.is_empty(),
        "acknowledged execs without an alert: {missing:?}"
    );
    // The incidents, rebuilt from the detector's checkpoint and the WAL after each crash, hold
    // every stored alert of the rule exactly once.
    let stored: BTreeSet<String> = server.search_limit(
        "event.kind:alert AND rule.name:\"Command Executed In Pod Via Exec\" | stats count() by alert.id",
        10_000,
    )["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|row| row[0].as_str().map(str::to_string))
        .collect();
    let listed = server
        .get("/api/v1/incidents?status=new")
        .expect("incidents");
    let mut in_incidents = Vec::new();
    let mut counted = 0;
    for incident in listed["incidents"].as_array().cloned().unwrap_or_default() {
        let id = incident["id"].as_str().expect("id");
        let full = server
            .get(&format!("/api/v1/incidents/{id}"))
            .expect("incident");
        let alerts = full["alerts"].as_array().cloned().unwrap_or_default();
        let ours: Vec<_> = alerts
            .iter()
            .filter(|a| a["title"] == "Command Executed In Pod Via Exec")
            .filter_map(|a| a["id"].as_str().map(str::to_string))
            .collect();
        // Alerts past `max_alerts` are counted, not listed.
        if ours.len() == alerts.len() {
            counted += ours.len() as u64 + full["overflow"].as_u64().unwrap_or(0);
        }
        in_incidents.extend(ours);
    }
    let distinct: BTreeSet<String> = in_incidents.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        in_incidents.len(),
        "an alert is listed in two incidents or twice"
    );
    assert!(
        distinct.is_subset(&stored),
        "{} listed alerts are not stored alerts",
        distinct.difference(&stored).count()
    );
    assert_eq!(
        counted,
        stored.len() as u64,
        "incidents count {counted} alerts of the rule, the store holds {}",
        stored.len()
    );
    assert!(server.terminate().success());
}
