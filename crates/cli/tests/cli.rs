//! The CLI as a newcomer uses it: `crowsnest ingest FILE...` then `crowsnest search`.

mod common;

use common::{free_port, Server};
use serde_json::Value;

fn testdata(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(path)
}

#[test]
fn ingest_files_then_search_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), free_port());
    // Falco's recorded audit traces (one audit Event per line) and an NDJSON file with a bad line.
    let exec = testdata("k8s-audit/falco-traces/exec_pod.json");
    let mixed = dir.path().join("mixed.ndjson");
    std::fs::write(
        &mixed,
        "{\"message\":\"hello from app\",\"level\":\"info\"}\n{broken\n{\"message\":\"second\"}\n",
    )
    .expect("write");
    let output = server
        .cli()
        .arg("ingest")
        .arg(&exec)
        .arg(&mixed)
        .output()
        .expect("run ingest");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "some lines were rejected: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:2:", mixed.display())),
        "the bad line is named: {stderr}"
    );
    assert!(stderr.contains("2 accepted, 1 rejected"), "{stderr}");
    // `crowsnest ingest` returns once what it sent is searchable, not merely acknowledged.
    let answer = server.search("event.dataset:ndjson");
    assert_eq!(answer["total"], 2, "{answer}");
    let output = server
        .cli()
        .args([
            "search",
            "orchestrator.resource.subresource:exec",
            "--format",
            "json",
        ])
        .output()
        .expect("run search");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("json output");
    assert!(answer["total"].as_u64().unwrap_or(0) >= 1, "{answer}");
    let output = server
        .cli()
        .args(["search", "* | stats count() by event.dataset"])
        .output()
        .expect("run search");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.starts_with("event.dataset"), "{table}");
    assert!(table.contains("ndjson"), "{table}");
    // A query error is reported with its column and a non-zero exit.
    let output = server
        .cli()
        .args(["search", "a:(b"])
        .output()
        .expect("run search");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("column"));
}

#[test]
fn search_reads_the_token_from_the_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), free_port());
    let output = std::process::Command::new(common::bin())
        .args(["search", "*", "--server", &server.url, "--data-dir"])
        .arg(dir.path())
        .env_remove("CROWSNEST_TOKEN")
        .output()
        .expect("run search");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = std::process::Command::new(common::bin())
        .args(["search", "*", "--server", &server.url, "--token", "cn_bad"])
        .output()
        .expect("run search");
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));
}

#[test]
fn tokens_are_created_and_revoked_and_verify_goes_through_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), free_port());
    let output = server
        .cli()
        .args(["tokens", "create", "ci-bot", "--scope", "read"])
        .output()
        .expect("run tokens create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(bot.starts_with("cn_"), "{bot}");
    let listed = server
        .cli()
        .args(["tokens", "list"])
        .output()
        .expect("list");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("ci-bot"));
    let search = |token: &str| {
        server
            .cli()
            .args(["search", "*", "--token", token])
            .output()
            .expect("search")
    };
    assert!(search(&bot).status.success());
    let revoked = server
        .cli()
        .args(["tokens", "revoke", "ci-bot"])
        .output()
        .expect("revoke");
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let refused = search(&bot);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    let again = server
        .cli()
        .args(["tokens", "revoke", "ci-bot"])
        .output()
        .expect("revoke again");
    assert!(String::from_utf8_lossy(&again.stderr).contains("no token named `ci-bot`"));

    // `verify --server`: the server verifies itself and records the run.
    let verified = server
        .cli()
        .args(["verify", "--server", &server.url, "--json"])
        .output()
        .expect("verify");
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let report: Value = serde_json::from_slice(&verified.stdout).expect("json report");
    assert!(report["findings"].is_array(), "{report}");
    let mut runs = Value::Null;
    for _ in 0..100 {
        server.settle();
        runs = server.search("event.dataset:crowsnest.verify AND crowsnest.verify.trigger:api");
        if runs["total"].as_u64() == Some(1) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(runs["total"], 1, "{runs}");
    assert_eq!(runs["hits"][0]["event"]["outcome"], "success");
    let audited = server.search("event.dataset:crowsnest.audit AND event.action:token.revoke");
    assert_eq!(audited["total"], 2, "one revoked, one refused: {audited}");
}
