//! The CLI as a newcomer uses it: `crowsnest ingest FILE...` then `crowsnest search`.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// A loopback HTTP proxy, one request per connection, that forwards everything to `upstream`
/// but drops the connection instead of relaying the answer of the ingest POSTs numbered in
/// `lose` (1-based): the server stored the batch, the client never hears so.
fn lossy_proxy(
    upstream: String,
    lose: &'static [usize],
    fail: &'static [usize],
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let posts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&posts);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let (upstream, counter) = (upstream.clone(), Arc::clone(&counter));
            std::thread::spawn(move || relay(client, &upstream, &counter, lose, fail));
        }
    });
    (url, posts)
}

fn relay(
    mut client: TcpStream,
    upstream: &str,
    posts: &AtomicUsize,
    lose: &[usize],
    fail: &[usize],
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 65536];
    let header_end = loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..header_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while request.len() < header_end + length {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    // Ingest POSTs are numbered as they arrive.
    let n = head
        .starts_with("POST /api/v1/ingest/")
        .then(|| posts.fetch_add(1, Ordering::SeqCst) + 1);
    if n.is_some_and(|n| fail.contains(&n)) {
        // Refused without reaching the server (a 500 is not retried).
        let _ = client.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        return;
    }
    // One request per upstream connection: ask the server to close after answering.
    let mut forwarded = head.trim_end_matches("\r\n").to_string().into_bytes();
    forwarded.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    forwarded.extend_from_slice(&request[header_end..]);
    let mut server = TcpStream::connect(upstream.trim_start_matches("http://")).expect("upstream");
    server.write_all(&forwarded).expect("forward");
    let mut answer = Vec::new();
    let _ = server.read_to_end(&mut answer);
    if n.is_some_and(|n| lose.contains(&n)) {
        return; // the answer is lost: the connection closes without it
    }
    let _ = client.write_all(&answer);
}

/// `lines.ndjson` in `dir`: `count` NDJSON events numbered by `n`.
fn numbered_lines(dir: &std::path::Path, count: usize) -> std::path::PathBuf {
    let file = dir.join("lines.ndjson");
    let text: String = (0..count)
        .map(|n| format!("{{\"message\":\"line number {n} of the file\",\"n\":{n}}}\n"))
        .collect();
    std::fs::write(&file, text).expect("write");
    file
}

#[test]
fn ingest_keeps_requests_in_flight_and_stores_a_retried_batch_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), free_port());
    let file = numbered_lines(dir.path(), 3000);
    // The answers of the 2nd and 5th ingest requests are lost after the server stored them.
    let (proxy, posts) = lossy_proxy(server.url.clone(), &[2, 5], &[]);
    let output = server
        .cli()
        .env("CROWSNEST_SERVER", &proxy)
        .args(["ingest", "--source", "inflight", "--batch-bytes", "8000"])
        .args(["--in-flight", "4"])
        .arg(&file)
        .output()
        .expect("run ingest");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("3000 accepted, 0 rejected"), "{stderr}");
    assert_eq!(
        stderr.matches("stored by an earlier attempt").count(),
        2,
        "both retried batches were recognised: {stderr}"
    );
    // 16 batches of ~8 kB, two of them sent twice.
    assert!(posts.load(Ordering::SeqCst) >= 18, "{stderr}");
    server.settle();
    let answer = server.search("event.dataset:inflight");
    assert_eq!(answer["total"], 3000, "each line stored exactly once");
    let answer = server.search("event.dataset:inflight | stats dc(n)");
    assert_eq!(answer["rows"][0][0], 3000, "{answer}");
}

#[test]
fn a_batch_that_fails_is_named_with_what_was_stored_around_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), free_port());
    let file = numbered_lines(dir.path(), 3000);
    // The 4th ingest request gets a 500 that never reached the server.
    let (proxy, _) = lossy_proxy(server.url.clone(), &[], &[4]);
    let output = server
        .cli()
        .env("CROWSNEST_SERVER", &proxy)
        .args(["ingest", "--source", "failing", "--batch-bytes", "8000"])
        .args(["--in-flight", "3"])
        .arg(&file)
        .output()
        .expect("run ingest");
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("were not stored; every line before them was"),
        "{stderr}"
    );
    // What the report says was stored is what the server holds: the failed batch's lines
    // are the only ones missing up to the last batch reported stored.
    server.settle();
    let stored = server.search("event.dataset:failing")["total"]
        .as_u64()
        .expect("total");
    assert!(
        stored > 0 && stored < 3000,
        "{stored} of 3000 stored; {stderr}"
    );
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
