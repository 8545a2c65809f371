//! Real shippers against a real `crowsnest server`: the official Python `elasticsearch`
//! client's bulk helper, the OpenTelemetry Python SDK's OTLP/HTTP log exporter, Python
//! `fluent-logger` (forward protocol, a record of Fluent Bit's `kubernetes` filter, and refused
//! by a server with a forward shared key),
//! rsyslog forwarding over TCP, syslog-ng forwarding over TCP (RFC 5424, octet-counted) and
//! UDP (RFC 3164), and util-linux `logger` over UDP and TCP. Each test asserts the events are
//! searchable with the right fields.
//!
//! The clients come from `scripts/setup-ecosystem.sh` (a venv at `.venv-test/`, rsyslog from
//! Debian, syslog-ng unpacked privately under `.venv-test/syslog-ng/`). A missing tool skips
//! its test locally and fails it under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Rsyslog, Server};
use serde_json::Value;

/// The venv python, or `None` (skip) when it is missing outside CI.
fn python() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/python");
    if path.exists() {
        return Some(path);
    }
    missing("the .venv-test python (run scripts/setup-ecosystem.sh)")
}

fn missing<T>(what: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing and CI=true");
    }
    eprintln!("skipping: {what} is missing");
    None
}

fn run_python(python: &Path, script: &str, args: &[&str]) {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until `query` finds at least `count` events and returns them.
fn wait_for(server: &Server, query: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        server.settle();
        let hits = server.search(query)["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if hits.len() >= count {
            return hits;
        }
        assert!(
            Instant::now() < deadline,
            "`{query}` found {} of {count} events",
            hits.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const ES_SCRIPT: &str = r#"
import sys
from elasticsearch import Elasticsearch, helpers
url, token = sys.argv[1], sys.argv[2]
es = Elasticsearch(url, basic_auth=("elastic", token), request_timeout=30)
info = es.info()
assert info["version"]["number"], info
docs = [{"_index": "logs-pyes", "_source": {"@timestamp": "2024-05-01T10:00:0%dZ" % i,
         "message": "python es bulk %d" % i, "kubernetes": {"namespace": "pyes"}}} for i in range(5)]
ok, errors = helpers.bulk(es, docs)
assert ok == 5 and not errors, (ok, errors)
es2 = Elasticsearch(url, api_key=token, request_timeout=30)
ok, errors = helpers.bulk(es2, [{"_index": "logs-pyes", "_op_type": "create", "_source": {"message": "python es apikey"}}])
assert ok == 1, (ok, errors)
"#;

#[test]
fn elasticsearch_python_client_bulk_helper() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), free_port());
    run_python(
        &python,
        ES_SCRIPT,
        &[&format!("{}/es", server.url), &server.token],
    );
    let hits = wait_for(&server, "kubernetes.namespace:pyes", 5);
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h["es"]["index"] == "logs-pyes"));
    assert!(hits.iter().all(|h| h["event"]["module"] == "elasticsearch"));
    wait_for(&server, "message:\"python es apikey\"", 1);
}

const OTEL_SCRIPT: &str = r#"
import sys, logging
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
url, token = sys.argv[1], sys.argv[2]
resource = Resource.create({"service.name": "checkout", "k8s.namespace.name": "otelns",
                            "k8s.pod.name": "checkout-5d9", "k8s.container.name": "app",
                            "container.id": "c0ffee"})
provider = LoggerProvider(resource=resource)
provider.add_log_record_processor(BatchLogRecordProcessor(
    OTLPLogExporter(endpoint=url + "/v1/logs", headers={"Authorization": "Bearer " + token})))
logger = logging.getLogger("checkout")
logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
logger.setLevel(logging.INFO)
for i in range(3):
    logger.warning("otel python record %d", i)
provider.shutdown()
"#;

#[test]
fn opentelemetry_python_sdk_otlp_http_exporter() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), free_port());
    run_python(&python, OTEL_SCRIPT, &[&server.url, &server.token]);
    let hits = wait_for(&server, "kubernetes.namespace:otelns", 3);
    for hit in &hits {
        assert_eq!(hit["kubernetes"]["pod"]["name"], "checkout-5d9");
        assert_eq!(hit["kubernetes"]["container"]["name"], "app");
        assert_eq!(hit["container"]["id"], "c0ffee");
        assert_eq!(hit["service"]["name"], "checkout");
        assert_eq!(hit["log"]["level"], "warn");
        assert!(hit["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("otel python record")));
    }
}

const FLUENT_SCRIPT: &str = r#"
import sys
from fluent import sender
port = int(sys.argv[1])
logger = sender.FluentSender("pyapp", host="127.0.0.1", port=port, timeout=10)
for i in range(3):
    assert logger.emit("web", {"log": "fluent python %d" % i, "stream": "stdout",
                               "kubernetes": {"namespace_name": "fluentns", "pod_name": "web-0"}}), logger.last_error
logger.close()
"#;

#[test]
fn fluent_logger_python_forward_protocol() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let forward = free_port();
    let server = Server::start_with(
        dir.path(),
        free_port(),
        &["--forward".into(), format!("127.0.0.1:{forward}")],
    );
    run_python(&python, FLUENT_SCRIPT, &[&forward.to_string()]);
    let hits = wait_for(&server, "kubernetes.namespace:fluentns", 3);
    assert!(hits.iter().all(|h| h["fluent"]["tag"] == "pyapp.web"));
    assert!(hits
        .iter()
        .all(|h| h["kubernetes"]["pod"]["name"] == "web-0"));
    assert!(hits.iter().all(|h| h["log"]["iostream"] == "stdout"));
}

const FLUENT_BIT_RECORD_SCRIPT: &str = r#"
import json, sys
from fluent import sender
port, path = int(sys.argv[1]), sys.argv[2]
with open(path) as f:
    record = json.loads(f.readline())  # Fluent Bit's kubernetes filter test record
logger = sender.FluentSender("kube", host="127.0.0.1", port=port, timeout=10)
assert logger.emit("var.log.containers.fluent-bit.log", record), logger.last_error
logger.close()
"#;

/// A record of Fluent Bit's own `kubernetes` filter tests, sent by the official Fluent client
/// over forward, lands in the same container and pod fields as every other source, its line
/// stored once.
#[test]
fn fluent_logger_python_sends_a_fluent_bit_kubernetes_record() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let forward = free_port();
    let server = Server::start_with(
        dir.path(),
        free_port(),
        &["--forward".into(), format!("127.0.0.1:{forward}")],
    );
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../normalize/tests/samples/fluent-bit/records.ndjson");
    let sample = sample.to_str().expect("UTF-8 path");
    run_python(
        &python,
        FLUENT_BIT_RECORD_SCRIPT,
        &[&forward.to_string(), sample],
    );
    let hits = wait_for(
        &server,
        "kubernetes.namespace:core AND container.name:\"fluent-bit\"",
        1,
    );
    let hit = &hits[0];
    assert_eq!(hit["message"], "Fluent Bit is logging");
    assert!(!hit["log"].is_string(), "the line is stored once: {hit}");
    assert_eq!(hit["log"]["iostream"], "stdout");
    assert_eq!(hit["event"]["dataset"], "container.logs");
    assert_eq!(
        hit["kubernetes"]["pod"]["name"],
        "base-with-namespace-labels-and-annotations"
    );
    assert_eq!(hit["container"]["image"]["name"], "fluent/fluent-bit");
    assert_eq!(
        hit["kubernetes"]["node"]["name"],
        "ip-10-49-18-80.eu-west-1.compute.internal"
    );
    assert_eq!(
        hit["fluent"]["tag"],
        "kube.var.log.containers.fluent-bit.log"
    );
}

/// The forward handshake against the running server, in Python: `fluent-logger` (which cannot
/// do the handshake) must be refused, and a client written from the protocol specification
/// with `msgpack` and `hashlib` (independent of our Rust digests) must get in, as must not one
/// with a wrong key.
const FORWARD_HANDSHAKE_SCRIPT: &str = r#"
import hashlib, os, socket, sys, time
import msgpack
from fluent import sender
port, key = int(sys.argv[1]), sys.argv[2].encode()

plain = sender.FluentSender("nokey", host="127.0.0.1", port=port, timeout=5)
plain.emit("web", {"message": "fluent-logger without the key"})
plain.close()

def connect(shared_key):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    unpacker = msgpack.Unpacker(raw=False)
    def read():
        while True:
            for value in unpacker:
                return value
            data = s.recv(4096)
            if not data:
                return None
            unpacker.feed(data)
    helo = read()
    assert helo[0] == "HELO" and helo[1]["keepalive"] is True, helo
    nonce = helo[1]["nonce"]
    salt = os.urandom(16)
    digest = hashlib.sha512(salt + b"py-client" + nonce + shared_key).hexdigest()
    s.sendall(msgpack.packb(["PING", "py-client", salt, digest, "", ""], use_bin_type=True))
    pong = read()
    return s, read, nonce, salt, pong

s, read, nonce, salt, pong = connect(key)
assert pong[0] == "PONG" and pong[1] is True, pong
server_digest = hashlib.sha512(salt + pong[3].encode() + nonce + key).hexdigest()
assert pong[4] == server_digest, pong
s.sendall(msgpack.packb(["pyhs.tag", int(time.time()), {"message": "python handshake"}, {"chunk": "cHloYW5kc2hha2U="}]))
assert read() == {"ack": "cHloYW5kc2hha2U="}
s.close()

s, read, _, _, pong = connect(b"not-the-key")
assert pong[1] is False and pong[2] == "shared_key mismatch", pong
s.sendall(msgpack.packb(["pyhs.tag", int(time.time()), {"message": "wrong key"}]))
assert read() is None, "the server keeps a refused connection open"
"#;

#[test]
fn forward_shared_key_refuses_fluent_logger_and_admits_a_handshake_client() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("forward.key");
    std::fs::write(&key_file, "ecosystem-key\n").expect("write key");
    let forward = free_port();
    let server = Server::start_with(
        &dir.path().join("data"),
        free_port(),
        &[
            "--forward".into(),
            format!("127.0.0.1:{forward}"),
            "--forward-shared-key-file".into(),
            key_file.display().to_string(),
        ],
    );
    run_python(
        &python,
        FORWARD_HANDSHAKE_SCRIPT,
        &[&forward.to_string(), "ecosystem-key"],
    );
    let hits = wait_for(&server, "fluent.tag:pyhs.tag", 1);
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0]["message"], "python handshake");
    server.settle();
    for refused in ["fluent.tag:nokey.web", "message:\"wrong key\""] {
        let found = server.search(refused)["hits"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(found, 0, "`{refused}` was stored");
    }
}

fn rsyslogd() -> Option<PathBuf> {
    for candidate in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"] {
        if Path::new(candidate).exists() {
            return Some(PathBuf::from(candidate));
        }
    }
    missing("rsyslogd (run scripts/setup-ecosystem.sh)")
}

#[test]
fn rsyslog_forwards_over_tcp_and_logger_sends_udp_and_tcp() {
    let Some(rsyslogd) = rsyslogd() else { return };
    let Some(logger) = which("logger") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (udp, tcp) = (free_port(), free_port());
    let server = Server::start_with(
        &dir.path().join("data"),
        free_port(),
        &[
            "--syslog-udp".into(),
            format!("127.0.0.1:{udp}"),
            "--syslog-tcp".into(),
            format!("127.0.0.1:{tcp}"),
        ],
    );
    let work = dir.path().join("rsyslog");
    std::fs::create_dir_all(&work).expect("mkdir");
    let socket = work.join("log.sock");
    let config = work.join("rsyslog.conf");
    std::fs::write(
        &config,
        format!(
            "global(workDirectory=\"{work}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{socket}\" CreatePath=\"on\")\n\
             *.* action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{tcp}\" protocol=\"tcp\" \
             TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")\n",
            work = work.display(),
            socket = socket.display(),
        ),
    )
    .expect("write config");
    // rsyslog with its own config, socket, work directory and pid file; stopped by pid.
    let _rsyslog = Rsyslog::start(&rsyslogd, &config, &work);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd did not create its socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new(&logger)
        .args(["-u"])
        .arg(&socket)
        .args(["-t", "cnrsyslog", "-p", "auth.warning", "via rsyslog omfwd"])
        .status()
        .expect("logger via rsyslog");
    assert!(status.success());
    let status = Command::new(&logger)
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &udp.to_string(),
            "--udp",
            "--rfc5424",
            "-t",
            "cnudp",
            "via logger udp",
        ])
        .status()
        .expect("logger udp");
    assert!(status.success());
    let status = Command::new(&logger)
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &tcp.to_string(),
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-t",
            "cntcp",
            "via logger tcp",
        ])
        .status()
        .expect("logger tcp");
    assert!(status.success());
    let forwarded = wait_for(&server, "process.name:cnrsyslog", 1);
    assert_eq!(forwarded[0]["message"], "via rsyslog omfwd");
    assert_eq!(forwarded[0]["syslog"]["facility"], "auth");
    assert_eq!(forwarded[0]["syslog"]["severity"], "warning");
    assert_eq!(forwarded[0]["syslog"]["protocol"], "rfc5424");
    let udp_hits = wait_for(&server, "process.name:cnudp", 1);
    assert_eq!(udp_hits[0]["message"], "via logger udp");
    assert_eq!(udp_hits[0]["source"]["ip"], "127.0.0.1");
    let tcp_hits = wait_for(&server, "process.name:cntcp", 1);
    assert_eq!(tcp_hits[0]["message"], "via logger tcp");
}

/// The privately unpacked syslog-ng: its prefix and module directory (named after the
/// config version, e.g. `.../lib/syslog-ng/3.38`).
fn syslog_ng() -> Option<(PathBuf, PathBuf)> {
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/syslog-ng/prefix");
    let binary = prefix.join("usr/sbin/syslog-ng");
    let modules = std::fs::read_dir(prefix.join("usr/lib/syslog-ng"))
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.is_dir() && path.join("libafsocket.so").exists());
    match (binary.exists(), modules) {
        (true, Some(modules)) => Some((prefix, modules)),
        _ => missing("syslog-ng under .venv-test/syslog-ng (run scripts/setup-ecosystem.sh)"),
    }
}

/// A syslog-ng in the foreground; stopped by pid.
struct SyslogNg(std::process::Child);

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn syslog_ng_forwards_rfc5424_over_tcp_and_rfc3164_over_udp() {
    let Some((prefix, modules)) = syslog_ng() else {
        return;
    };
    let Some(logger) = which("logger") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (udp, tcp, source) = (free_port(), free_port(), free_port());
    let server = Server::start_with(
        &dir.path().join("data"),
        free_port(),
        &[
            "--syslog-udp".into(),
            format!("127.0.0.1:{udp}"),
            "--syslog-tcp".into(),
            format!("127.0.0.1:{tcp}"),
        ],
    );
    let work = dir.path().join("syslog-ng");
    std::fs::create_dir_all(&work).expect("mkdir");
    let version = modules
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a version directory");
    let config = work.join("syslog-ng.conf");
    // One source fed by `logger`, both destinations: `syslog()` speaks RFC 5424 with RFC 6587
    // octet counting, `network()` over UDP the BSD (RFC 3164) format.
    std::fs::write(
        &config,
        format!(
            "@version: {version}\n\
             options {{ use-dns(no); keep-hostname(yes); stats-freq(0); }};\n\
             source s_logger {{ network(ip(\"127.0.0.1\") port({source}) transport(\"tcp\") \
             flags(syslog-protocol)); }};\n\
             destination d_tcp {{ syslog(\"127.0.0.1\" port({tcp}) transport(\"tcp\")); }};\n\
             destination d_udp {{ network(\"127.0.0.1\" port({udp}) transport(\"udp\")); }};\n\
             log {{ source(s_logger); destination(d_tcp); destination(d_udp); }};\n"
        ),
    )
    .expect("write config");
    let child = Command::new(prefix.join("usr/sbin/syslog-ng"))
        .env("LD_LIBRARY_PATH", prefix.join("usr/lib/syslog-ng"))
        .arg("--foreground")
        .arg("--no-caps")
        .arg("--stderr")
        .arg(format!("--module-path={}", modules.display()))
        .arg(format!("--cfgfile={}", config.display()))
        .arg(format!(
            "--pidfile={}",
            work.join("syslog-ng.pid").display()
        ))
        .arg(format!(
            "--control={}",
            work.join("syslog-ng.ctl").display()
        ))
        .arg(format!(
            "--persist-file={}",
            work.join("syslog-ng.persist").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn syslog-ng");
    let mut syslog_ng = SyslogNg(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", source)).is_err() {
        if let Ok(Some(status)) = syslog_ng.0.try_wait() {
            panic!("syslog-ng exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "syslog-ng did not open its source port"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new(&logger)
        .args(["--server", "127.0.0.1", "--port", &source.to_string()])
        .args(["--tcp", "--rfc5424", "--id=4242", "--msgid", "SNGID"])
        .args(["-t", "cnsyslogng", "-p", "local3.notice", "via syslog-ng"])
        .status()
        .expect("logger to syslog-ng");
    assert!(status.success());
    let hits = wait_for(&server, "process.name:cnsyslogng", 2);
    let by_protocol = |protocol: &str| {
        hits.iter()
            .find(|hit| hit["syslog"]["protocol"] == protocol)
            .unwrap_or_else(|| panic!("no {protocol} event in {hits:#?}"))
            .clone()
    };
    let (rfc5424, rfc3164) = (by_protocol("rfc5424"), by_protocol("rfc3164"));
    // The host name logger put in the message, kept by syslog-ng (keep-hostname).
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let short = hostname.trim().split('.').next().expect("a name");
    for hit in [&rfc5424, &rfc3164] {
        assert_eq!(hit["message"], "via syslog-ng", "{hit:#}");
        assert_eq!(hit["process"]["pid"], 4242, "{hit:#}");
        assert_eq!(hit["syslog"]["facility"], "local3", "{hit:#}");
        assert_eq!(hit["syslog"]["severity"], "notice", "{hit:#}");
        assert_eq!(hit["syslog"]["priority"], 19 * 8 + 5, "{hit:#}");
        assert_eq!(hit["source"]["ip"], "127.0.0.1", "{hit:#}");
        let host = hit["host"]["name"].as_str().expect("host.name");
        assert_eq!(host.split('.').next(), Some(short), "{hit:#}");
    }
    // Only RFC 5424 carries the message id and logger's structured data through syslog-ng.
    assert_eq!(rfc5424["syslog"]["msgid"], "SNGID", "{rfc5424:#}");
    assert_eq!(
        rfc5424["syslog"]["structured_data"]["timeQuality"]["tzKnown"], "1",
        "{rfc5424:#}"
    );
    assert!(rfc3164["syslog"].get("msgid").is_none(), "{rfc3164:#}");
    drop(syslog_ng);
}

fn which(tool: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join(tool);
        if path.exists() {
            return Some(path);
        }
    }
    missing(tool)
}
