//! Notifications end to end with the real `crowsnest server`: incident changes reach local
//! receivers that answer 429 with `Retry-After`, hang, or disappear while the server is killed
//! (`kill -9`) and restarted, and each receiver accepts exactly one notification per dedup key;
//! email goes through a real SMTP server on loopback (`aiosmtpd`, STARTTLS required).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, Server};
use serde_json::{json, Value};

/// How a receiver treats the first attempt of each key (later attempts are accepted).
#[derive(Clone, Copy)]
enum First {
    Accept,
    /// 429 with `Retry-After: 1`.
    Throttle,
    /// 429 with `Retry-After` as an HTTP date two seconds ahead.
    ThrottleUntil,
    /// No answer for 10 s (the channel's timeout is shorter).
    Hang,
}

#[derive(Default)]
struct Log {
    /// Attempts per key.
    attempts: BTreeMap<String, u32>,
    /// Keys answered with 2xx, in order (a key twice = a duplicate).
    accepted: Vec<String>,
    /// The bodies answered with 2xx, in the same order.
    bodies: Vec<Value>,
}

/// An HTTP receiver on 127.0.0.1 that can go away and come back on the same port.
struct Receiver {
    port: u16,
    first: First,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(first: First) -> Self {
        let mut receiver = Self {
            port: free_port(),
            first,
            log: Arc::default(),
            stop: Arc::default(),
        };
        receiver.listen();
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn listen(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        self.stop = Arc::new(AtomicBool::new(false));
        let (stop, log, first) = (self.stop.clone(), self.log.clone(), self.first);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let log = log.clone();
                        std::thread::spawn(move || serve(stream, first, &log));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    /// Closes the port: connections are refused until [`Receiver::listen`].
    fn disappear(&self) {
        self.stop.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
    }

    fn accepted(&self) -> Vec<String> {
        self.log.lock().expect("lock").accepted.clone()
    }
}

fn serve(stream: TcpStream, first: First, log: &Mutex<Log>) {
    stream.set_nonblocking(false).expect("blocking");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Webhooks carry their dedup key in `webhook-id`; PagerDuty events are keyed by incident
    // (`dedup_key`) and action.
    let key = match headers.get("webhook-id") {
        Some(id) => id.clone(),
        None => format!(
            "{}:{}",
            body["dedup_key"].as_str().unwrap_or("?"),
            body["event_action"].as_str().unwrap_or("?")
        ),
    };
    let attempt = {
        let mut log = log.lock().expect("lock");
        let n = log.attempts.entry(key.clone()).or_default();
        *n += 1;
        *n
    };
    let mut stream = stream;
    let answer = match (attempt, first) {
        (1, First::Throttle) => {
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
        }
        (1, First::ThrottleUntil) => {
            let when = chrono::Utc::now() + chrono::Duration::seconds(2);
            format!(
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                when.format("%a, %d %b %Y %H:%M:%S GMT")
            )
        }
        (1, First::Hang) => {
            std::thread::sleep(Duration::from_secs(10));
            return;
        }
        _ => {
            let mut log = log.lock().expect("lock");
            log.accepted.push(key);
            log.bodies.push(body);
            drop(log);
            "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_string()
        }
    };
    let _ = stream.write_all(answer.as_bytes());
}

/// A `kubectl exec` into pod `web-0` of namespace `ns`: one medium alert, one incident per
/// namespace.
fn exec_into(ns: &str, n: u64) -> Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": format!("00000000-0000-4000-8000-{n:012}"), "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/{ns}/pods/web-0/exec?command=sh&stdin=true&tty=true"),
        "verb": "create",
        "user": {"username": "mallory@corp.example", "groups": ["system:authenticated"]},
        "sourceIPs": ["192.0.2.10"], "userAgent": "kubectl/v1.29.2 (linux/amd64)",
        "objectRef": {"resource": "pods", "namespace": ns, "name": "web-0", "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2024-05-01T10:00:00.000000Z",
        "stageTimestamp": "2024-05-01T10:00:00.100000Z"
    })
}

fn ingest(server: &Server, event: &Value) {
    let response = server
        .agent()
        .post(&format!("{}/api/v1/ingest/k8s-audit", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .set("Content-Type", "application/json")
        .send_string(&event.to_string())
        .expect("ingest");
    assert_eq!(response.status(), 200);
}

fn start_with_config(dir: &Path, port: u16, config: &str) -> Server {
    let path = dir.join("crowsnest.toml");
    std::fs::write(&path, config).expect("write config");
    Server::start_with(
        &dir.join("data"),
        port,
        &["--config".to_string(), path.display().to_string()],
    )
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn channels(server: &Server) -> BTreeMap<String, Value> {
    let answer = server.get("/api/v1/notifications").expect("notifications");
    answer["channels"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c))
        .collect()
}

fn once_each(name: &str, keys: &[String]) -> BTreeSet<String> {
    let unique: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        keys.len(),
        "{name} accepted a notification twice: {keys:?}"
    );
    unique
}

#[test]
fn each_receiver_gets_one_notification_per_change_through_429_hangs_and_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let throttle = Receiver::start(First::Throttle);
    let pager = Receiver::start(First::ThrottleUntil);
    let hang = Receiver::start(First::Hang);
    let mut gone = Receiver::start(First::Accept);
    let key_file = dir.path().join("routing.key");
    std::fs::write(&key_file, "R0123456789ABCDEF0123456789ABCDE\n").expect("key");
    let config = format!(
        r#"
[detect]
# No checkpoint during the test: each restart replays every change from the start.
checkpoint_interval_secs = 600

[detect.incidents]
page_risk = 5

[notify]
retry_initial_ms = 200
retry_max_secs = 2

[[notify.channels]]
name = "throttle"
kind = "webhook"
url = "{throttle}"
secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="
rate_per_minute = 600

[[notify.channels]]
name = "pager"
kind = "pagerduty"
url = "{pager}"
routing_key_file = "{key_file}"
rate_per_minute = 600

[[notify.channels]]
name = "hang"
kind = "webhook"
url = "{hang}"
timeout_secs = 2
rate_per_minute = 600

[[notify.channels]]
name = "gone"
kind = "webhook"
url = "{gone}"
rate_per_minute = 600

[[notify.routes]]
channels = ["throttle", "hang", "gone"]
changes = ["opened", "paged", "resolved"]

[[notify.routes]]
channels = ["pager"]
changes = ["paged"]
"#,
        throttle = throttle.url("/hook"),
        pager = pager.url("/v2/enqueue"),
        hang = hang.url("/hook"),
        gone = gone.url("/hook"),
        key_file = key_file.display(),
    );
    let port = free_port();
    let mut server = start_with_config(dir.path(), port, &config);

    // Phase 1: three incidents (opened + paged each), delivered everywhere.
    for n in 0..3 {
        ingest(&server, &exec_into(&format!("ns-{n}"), n));
    }
    wait_for("phase 1 deliveries", Duration::from_secs(60), || {
        throttle.accepted().len() == 6
            && hang.accepted().len() == 6
            && gone.accepted().len() == 6
            && pager.accepted().len() == 3
    });
    wait_for("an idle outbox", Duration::from_secs(10), || {
        channels(&server).values().all(|c| c["pending"] == 0)
    });

    // Phase 2: one receiver goes away; three more incidents; kill -9 right after they are
    // acknowledged (every receiver refuses or holds the first attempt of a key, so nothing of
    // phase 2 is delivered yet), and a restart that replays every change since the start.
    gone.disappear();
    for n in 3..6 {
        ingest(&server, &exec_into(&format!("ns-{n}"), n));
    }
    std::thread::sleep(Duration::from_millis(300));
    server.kill9();
    server = Server::start_with(&server.data_dir.clone(), port, &server.extra.clone());
    wait_for(
        "retries against the vanished receiver",
        Duration::from_secs(30),
        || channels(&server)["gone"]["retries"].as_u64().unwrap_or(0) > 0,
    );
    gone.listen();
    wait_for("phase 2 deliveries", Duration::from_secs(60), || {
        throttle.accepted().len() == 12
            && hang.accepted().len() == 12
            && gone.accepted().len() == 12
            && pager.accepted().len() == 6
    });

    // A resolve goes to the routes naming `resolved`, and to PagerDuty, which was triggered.
    let incidents = server.get("/api/v1/incidents").expect("incidents");
    let incidents = incidents["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(incidents.len(), 6, "{incidents:?}");
    let first = incidents[0]["id"].as_str().expect("id").to_string();
    let response = server
        .agent()
        .post(&format!("{}/api/v1/incidents/{first}/actions", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .send_json(json!({"action": "resolve", "classification": "true_positive"}))
        .expect("resolve");
    assert_eq!(response.status(), 202);
    wait_for("the resolve", Duration::from_secs(60), || {
        throttle.accepted().len() == 13
            && hang.accepted().len() == 13
            && gone.accepted().len() == 13
            && pager.accepted().len() == 7
    });

    // And once more: kill -9 and a restart replay everything; nothing is sent again.
    server.kill9();
    server = Server::start_with(&server.data_dir.clone(), port, &server.extra.clone());
    wait_for("the replay", Duration::from_secs(30), || {
        server.get("/api/v1/notifications").expect("notifications")["deduplicated"]
            .as_u64()
            .unwrap_or(0)
            >= 13 * 3 + 7
    });
    std::thread::sleep(Duration::from_secs(3));

    let ids: BTreeSet<String> = incidents
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    let mut expected: BTreeSet<String> = ids
        .iter()
        .flat_map(|id| [format!("{id}:opened"), format!("{id}:paged")])
        .collect();
    for (name, receiver) in [("throttle", &throttle), ("hang", &hang), ("gone", &gone)] {
        let keys = once_each(name, &receiver.accepted());
        let resolved: Vec<_> = keys
            .iter()
            .filter(|k| k.starts_with(&format!("{first}:resolved:")))
            .collect();
        assert_eq!(resolved.len(), 1, "{name}: {keys:?}");
        let rest: BTreeSet<String> = keys
            .iter()
            .filter(|k| !k.contains(":resolved:"))
            .cloned()
            .collect();
        assert_eq!(rest, expected, "{name}");
    }
    expected = ids.iter().map(|id| format!("{id}:trigger")).collect();
    expected.insert(format!("{first}:resolve"));
    assert_eq!(once_each("pager", &pager.accepted()), expected);
    // Every first attempt was refused or held: each key was tried at least twice.
    for receiver in [&throttle, &pager, &hang] {
        let log = receiver.log.lock().expect("lock");
        assert!(log.attempts.values().all(|n| *n >= 2), "{:?}", log.attempts);
    }
    let status = channels(&server);
    assert!(status.values().all(|c| c["pending"] == 0), "{status:?}");
    let metrics = server.metrics();
    assert!(
        metrics.contains("crowsnest_notify_deduplicated_total"),
        "{metrics}"
    );
    assert!(server.terminate().success());
}

/// The venv python with aiosmtpd, or `None` (skip) when it is missing outside CI.
fn smtp_python() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/python");
    let ok = path.exists()
        && Command::new(&path)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Some(path);
    }
    let what = "aiosmtpd in .venv-test (run scripts/setup-ecosystem.sh)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing and CI=true");
    }
    eprintln!("skipping: {what} is missing");
    None
}

const SMTP_SERVER: &str = r#"
import os, ssl, sys, time
from aiosmtpd.controller import Controller

cert, key, outdir, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)

class Store:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(outdir) if f.endswith(".eml")])
        path = os.path.join(outdir, "%04d.eml" % n)
        with open(path + ".part", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".part", path)
        return "250 OK"

# STARTTLS is offered and required: MAIL before it is refused.
controller = Controller(Store(), hostname="127.0.0.1", port=port, tls_context=context,
                        require_starttls=True)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

struct Smtp(Child);

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn email_goes_through_a_real_smtp_server_with_starttls() {
    let Some(python) = smtp_python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let (cert, key, mail) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("mail"),
    );
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    std::fs::create_dir(&mail).expect("mail dir");
    let script = dir.path().join("smtp.py");
    std::fs::write(&script, SMTP_SERVER).expect("script");
    let smtp_port = free_port();
    let mut child = Command::new(python)
        .arg(&script)
        .args([&cert, &key, &mail])
        .arg(smtp_port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("aiosmtpd");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("ready line");
    let _smtp = Smtp(child);
    assert_eq!(ready.trim(), "ready");

    let config = format!(
        r#"
[notify]
[[notify.channels]]
name = "mail"
kind = "email"
smtp_host = "localhost"
smtp_port = {smtp_port}
from = "crowsnest <crowsnest@example.com>"
to = ["soc@example.com", "oncall@example.com"]
tls = {{ ca_file = "{cert}" }}

[[notify.routes]]
channels = ["mail"]
changes = ["opened"]
"#,
        cert = cert.display()
    );
    let server = start_with_config(dir.path(), free_port(), &config);
    ingest(&server, &exec_into("payments", 1));
    let message = mail.join("0000.eml");
    wait_for("the email", Duration::from_secs(60), || message.exists());
    // Long header lines are folded; unfold them to read.
    let text = std::fs::read_to_string(&message)
        .expect("message")
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    let incidents = server.get("/api/v1/incidents").expect("incidents");
    let id = incidents["incidents"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(
        text.contains("Subject: [crowsnest medium] New incident: "),
        "{text}"
    );
    assert!(
        text.contains("From: crowsnest <crowsnest@example.com>"),
        "{text}"
    );
    assert!(
        text.contains("soc@example.com") && text.contains("oncall@example.com"),
        "{text}"
    );
    assert!(text.contains(&format!("Incident: {id}")), "{text}");
    wait_for(
        "the delivery in the status",
        Duration::from_secs(10),
        || channels(&server)["mail"]["delivered"] == 1,
    );
    std::thread::sleep(Duration::from_millis(500));
    let count = std::fs::read_dir(&mail)
        .expect("mail dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
        .count();
    assert_eq!(count, 1, "one incident change, one email");
}

#[test]
fn an_action_awaiting_approval_is_announced_once_with_a_link_that_opens_a_confirmation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = Receiver::start(First::Accept);
    let port = free_port();
    let config = format!(
        r#"
[notify]
public_url = "http://127.0.0.1:{port}"

[[notify.channels]]
name = "chat"
kind = "webhook"
url = "{hook}"
rate_per_minute = 600

[[notify.routes]]
channels = ["chat"]
changes = ["approval_needed"]

[[respond.playbooks]]
name = "exec-into-pod"
rules = ["*"]
actions = [{{ action = "quarantine_pod", mode = "approve" }}]
"#,
        hook = hook.url("/hook"),
    );
    let server = start_with_config(dir.path(), port, &config);
    ingest(&server, &exec_into("shop", 1));
    wait_for("the approval notice", Duration::from_secs(30), || {
        !hook.accepted().is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    let log = hook.log.lock().expect("lock");
    assert_eq!(
        log.accepted.len(),
        1,
        "one notice per action: {:?}",
        log.accepted
    );
    let event = &log.bodies[0];
    assert_eq!(event["type"], "io.crowsnest.incident.approval_needed");
    let approval = &event["data"]["approval"];
    assert_eq!(approval["action"], "quarantine_pod");
    assert_eq!(approval["playbook"], "exec-into-pod");
    let link = approval["link"].as_str().expect("link").to_string();
    drop(log);
    assert!(
        link.starts_with(&format!(
            "http://127.0.0.1:{port}/api/v1/respond/approve?token="
        )),
        "an absolute link from notify.public_url: {link}"
    );
    // Opening the link (a chat preview does the same) shows a form and approves nothing.
    let page = ureq::get(&link)
        .call()
        .expect("the link opens")
        .into_string()
        .expect("page");
    assert!(page.contains("<form"), "{page}");
    let actions = server.get("/api/v1/respond/actions").expect("actions");
    assert_eq!(actions["actions"][0]["state"], "pending", "{actions}");
    assert!(page.contains("action=\"/api/v1/respond/reject\""), "{page}");
    // The link's holder rejects it from the page's second form: it never runs.
    let token = link.split("token=").nth(1).expect("token");
    let rejected = ureq::post(&format!("{}/api/v1/respond/reject", server.url))
        .send_form(&[("token", token), ("reason", "expected maintenance")])
        .expect("rejected")
        .into_string()
        .expect("page");
    assert!(rejected.contains("was rejected"), "{rejected}");
    let actions = server.get("/api/v1/respond/actions").expect("actions");
    assert_eq!(actions["actions"][0]["state"], "rejected", "{actions}");
    let again = ureq::post(&format!("{}/api/v1/respond/approve", server.url))
        .send_json(serde_json::json!({"token": token}));
    assert!(again.is_err(), "a rejected action's link approves nothing");
}
