//! Server-side deduplication of retried agent batches (`X-Crowsnest-Batch`), through a real
//! `crowsnest server` process, across `kill -9` and restart.

mod common;

use std::time::Duration;

use common::{free_port, Server};
use serde_json::Value;

fn post(server: &Server, batch: Option<&str>, body: &str) -> Result<Value, u16> {
    let mut request = server
        .agent()
        .post(&format!(
            "{}/api/v1/ingest/ndjson?source=crowsnest.agent",
            server.url
        ))
        .set("Authorization", &format!("Bearer {}", server.token))
        .set("Content-Type", "application/x-ndjson");
    if let Some(batch) = batch {
        request = request.set("X-Crowsnest-Batch", batch);
    }
    match request.send_string(body) {
        Ok(response) => Ok(response.into_json().expect("json")),
        Err(ureq::Error::Status(code, _)) => Err(code),
        Err(error) => panic!("request failed: {error}"),
    }
}

fn total(server: &Server, query: &str) -> u64 {
    server.settle();
    server.search(query)["total"].as_u64().expect("total")
}

#[test]
fn a_retried_batch_is_stored_once_even_after_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = Server::start(dir.path(), port);
    let one = "{\"message\":\"dedup-probe one\"}\n{\"message\":\"dedup-probe two\"}\n";
    let first = post(&server, Some("node-a:spool:1"), one).expect("stored");
    assert_eq!(first["accepted"], 2);
    let again = post(&server, Some("node-a:spool:1"), one).expect("answered");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["accepted"], 0);
    // Another agent's seq 1 is its own.
    let other = post(
        &server,
        Some("node-b:spool:1"),
        "{\"message\":\"dedup-probe b\"}\n",
    )
    .expect("stored");
    assert_eq!(other["accepted"], 1);
    assert_eq!(post(&server, Some("no-seq"), one), Err(400));
    assert_eq!(total(&server, "dedup-probe"), 3);
    let stored = server.search("dedup-probe");
    assert_eq!(
        stored["hits"][0]["crowsnest"]["batch"]
            .as_str()
            .map(|b| b.starts_with("node-")),
        Some(true)
    );

    // Stored, then the server dies before anything else: the retry must still be known.
    let two = "{\"message\":\"dedup-probe three\"}\n";
    assert_eq!(
        post(&server, Some("node-a:spool:2"), two).expect("stored")["accepted"],
        1
    );
    server.kill9();
    std::thread::sleep(Duration::from_millis(200));
    let server = Server::start(dir.path(), port);
    for id in [
        "node-a:spool:2",
        "node-a:spool:1",
        "node-a:spool:0",
        "node-b:spool:1",
    ] {
        assert_eq!(
            post(&server, Some(id), two).expect("answered")["duplicate"],
            true,
            "{id}"
        );
    }
    assert_eq!(
        post(&server, Some("node-a:spool:3"), two).expect("stored")["accepted"],
        1
    );
    assert_eq!(total(&server, "dedup-probe"), 5);
    // Plain requests are not deduplicated.
    assert_eq!(post(&server, None, two).expect("stored")["accepted"], 1);
    assert_eq!(total(&server, "dedup-probe"), 6);
}

#[test]
fn a_retried_audit_document_is_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), free_port());
    let document = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/testdata/k8s-audit/falco-traces/exec_pod.json"),
    )
    .expect("read the recorded audit");
    let list = format!(
        "{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{}]}}",
        document
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(",")
    );
    let send = || {
        server
            .agent()
            .post(&format!("{}/api/v1/ingest/k8s-audit", server.url))
            .set("Authorization", &format!("Bearer {}", server.token))
            .set("Content-Type", "application/json")
            .set("X-Crowsnest-Batch", "ingest-1:f0:1")
            .send_string(&list)
            .expect("answered")
            .into_json::<Value>()
            .expect("json")
    };
    let first = send();
    let accepted = first["accepted"].as_u64().expect("accepted");
    assert!(accepted >= 1, "{first}");
    let again = send();
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(total(&server, "event.dataset:kubernetes.audit"), accepted);
}
