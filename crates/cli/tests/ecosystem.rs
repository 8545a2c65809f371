//! Real shippers against a real `crowsnest server`: the official Python `elasticsearch`
//! client's bulk helper, the OpenTelemetry Python SDK's OTLP/HTTP log exporter, Python
//! `fluent-logger` (forward protocol), rsyslog forwarding over TCP, and util-linux `logger`
//! over UDP and TCP. Each test asserts the events are searchable with the right fields.
//!
//! The clients come from `scripts/setup-ecosystem.sh` (a venv at `.venv-test/`, rsyslog from
//! Debian). A missing tool skips its test locally and fails it under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server};
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

fn rsyslogd() -> Option<PathBuf> {
    for candidate in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"] {
        if Path::new(candidate).exists() {
            return Some(PathBuf::from(candidate));
        }
    }
    missing("rsyslogd (run scripts/setup-ecosystem.sh)")
}

/// rsyslog with its own config, socket, work directory and pid file; stopped by pid.
struct Rsyslog(std::process::Child);

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let child = Command::new(&rsyslogd)
        .arg("-n")
        .arg("-f")
        .arg(&config)
        .arg("-i")
        .arg(work.join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rsyslogd");
    let _rsyslog = Rsyslog(child);
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

fn which(tool: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join(tool);
        if path.exists() {
            return Some(path);
        }
    }
    missing(tool)
}
