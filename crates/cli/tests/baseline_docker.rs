//! Baselines on a real Docker engine (issue 22's proof): a container running a benign loop is
//! learned through the node agent (kernel audit of every `execve`, and docker's container
//! attribution); then `docker exec` of a shell, `nc` run inside the container, and a binary copied in
//! with `docker cp` and run each raise an alert carrying what was new and the baseline it broke,
//! within a second; then ten one-shot `docker exec`s of new programs, each gone within
//! milliseconds, must all alert within a second (their runc parents are outside the container
//! and often exited before the program's `execve`: the agent attributes them through `runc
//! exec` or the container's shim, see `crates/agent/src/collect.rs`); the learned programs keep
//! running and raise none.
//!
//! What the agent really produces for a container's processes, and so what the profile keys on:
//! * kernel audit: `process.executable` is the file the kernel ran (`exe=`), `process.name` its
//!   `comm`, `process.args` the arguments. In a busybox (or Alpine) image every tool is
//!   `/bin/busybox`, and busybox's shell runs its applets through `/proc/self/exe`, so `comm` is
//!   `exe` for `sleep`, `cat` and `nc` alike: only `argv[0]` tells them apart. The profile is
//!   `workload` (the image outside Kubernetes) × `process.executable` × `process.argv0` (the
//!   base name of `process.args[0]`, a virtual field of the baselines);
//! * the engine's `exec_start` events (`event.dataset: docker.events`) carry the exec'd command,
//!   but their Sigma logsource is `product: docker`, so a `product: linux` process profile
//!   judges kernel audit only: every program, including those a shell started inside the
//!   container, which the engine never sees.
//!
//! The rule set is the test's own: one baseline rule learning for 4 s (`learn: 4s`,
//! `entity_learn: 4s`) so the test runs in seconds; the pack's rule is the same with 7 days.
//!
//! Needs root, `dockerd`, auditd and the `crowsnest-busybox` image (`scripts/setup-docker.sh`).
//! Without them the test is skipped locally and FAILS under `CI=true`. The test installs its own
//! exec audit rule (key `crowsnest-baseline-test`, removed at the end) rather than the agent's
//! `crowsnest-exec` rules, which `agent.rs` removes when its own test ends.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::docker::{docker, Container};
use common::{bin, free_port, Server};
use serde_json::Value;

const IMAGE: &str = "crowsnest-busybox:latest";
const RULE_ID: &str = "6f1d0c52-1f7e-4c1e-9a57-b2a1c0de0022";
const AUDIT_KEY: &str = "crowsnest-baseline-test";

const RULE: &str = r#"title: Test Process Outside Image Profile
id: 6f1d0c52-1f7e-4c1e-9a57-b2a1c0de0022
status: experimental
description: The pack's workload profile rule with a 4 s learning window.
logsource:
    product: linux
    category: process_creation
detection:
    in_container:
        container.id|exists: true
    condition: in_container
baseline:
    kind: new_terms
    entity: workload
    terms: [process.executable, process.argv0]
    learn: 4s
    entity_learn: 4s
    forget: 1d
level: high
"#;

fn ready() -> bool {
    let docker = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let audit = Path::new("/var/log/audit/audit.log").exists()
        && Command::new("auditctl")
            .arg("-s")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("enabled 1"));
    if !(docker && audit) {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but no docker engine with {IMAGE} or no auditd: run scripts/setup-docker.sh"
        );
        eprintln!(
            "skipped: needs a docker engine with {IMAGE} and auditd (scripts/setup-docker.sh)"
        );
    }
    docker && audit
}

/// The test's exec audit rules, removed by their key when the test ends.
struct AuditRule;

impl AuditRule {
    fn install() -> Self {
        for arch in ["b64", "b32"] {
            let status = Command::new("auditctl")
                .args(["-a", "always,exit", "-F", &format!("arch={arch}")])
                .args(["-S", "execve", "-k", AUDIT_KEY])
                .stdout(Stdio::null())
                .status()
                .expect("auditctl");
            assert!(status.success() || arch == "b32", "auditctl -a ({arch})");
        }
        Self
    }
}

impl Drop for AuditRule {
    fn drop(&mut self) {
        let _ = Command::new("auditctl")
            .args(["-D", "-k", AUDIT_KEY])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The rule's alerts, newest record of each.
fn alerts(server: &Server) -> Vec<Value> {
    server
        .get(&format!("/api/v1/alerts?rule={RULE_ID}&limit=500"))
        .expect("alerts")["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn anomaly(alert: &Value) -> &Value {
    &alert["alert"]["anomaly"]
}

fn new_name(alert: &Value) -> Option<&str> {
    anomaly(alert)["new"]["process.argv0"].as_str()
}

/// A command running beside the test, waited for when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.wait();
    }
}

/// Starts `docker <args>` and polls the alerts every 20 ms until one says `name` was new;
/// returns it and the detection latency: from the execution (the alert's event time, which the
/// kernel's audit record or the engine's event gives) until the alert was readable through
/// the API. The `docker` client's own start-up, which under load alone can take a second, is
/// not the product's to answer for; it is printed beside.
fn alert_for(server: &Server, name: &str, args: &[&str]) -> (Value, Duration) {
    let start = Instant::now();
    let mut child = Running(
        Command::new("docker")
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("docker"),
    );
    loop {
        if let Some(alert) = alerts(server)
            .into_iter()
            .find(|a| new_name(a) == Some(name))
        {
            let readable = chrono::Utc::now();
            let executed = alert["alert"]["first_seen"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .unwrap_or_else(|| panic!("the alert's first_seen: {alert:#}"));
            let latency = (readable - executed.with_timezone(&chrono::Utc))
                .to_std()
                .unwrap_or_default();
            eprintln!(
                "`{name}`: alert readable {latency:?} after the execution, {:?} after `docker {}` started",
                start.elapsed(),
                args.first().unwrap_or(&"")
            );
            return (alert, latency);
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.0.kill();
            let seen = server.search("event.dataset:\"auditd.process\" AND NOT process.args:sleep AND NOT process.args:cat");
            panic!(
                "no alert for `{name}` in 30 s; alerts: {:#}; audit process events: {:#}",
                Value::Array(alerts(server)),
                seen["hits"]
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The two tests share the image (one profile entity) and every agent sees every container:
/// they run one at a time, also under plain `cargo test`.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A server with the test's rule, in `dir`.
fn server_with_rule(dir: &Path) -> Server {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("profile.yml"), RULE).expect("rule");
    let config = dir.join("crowsnest.toml");
    std::fs::write(
        &config,
        format!(
            "[detect]\nbuiltin_rules = false\nrule_dirs = [{:?}]\n",
            rules.display().to_string()
        ),
    )
    .expect("config");
    Server::start_with(
        &dir.join("server"),
        free_port(),
        &["--config".to_string(), config.display().to_string()],
    )
}

#[test]
fn without_kernel_audit_a_docker_exec_reaches_the_profile_from_the_engine_event() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_rule(dir.path());
    // The engine's events only: no audit log.
    let agent = Command::new(bin())
        .arg("agent")
        .args(["--server", &server.url, "--token", &server.token])
        .arg("--state-dir")
        .arg(dir.path().join("agent"))
        .args(["--flush-interval-ms", "50"])
        .args([
            "--disable",
            "audit",
            "--disable",
            "cri",
            "--disable",
            "host",
        ])
        .args(["--disable", "falco", "--disable", "docker-logs"])
        .env("CROWSNEST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn agent");
    let _agent = Agent(agent);
    let name = format!("cn-baseline-engine-{}", std::process::id());
    let _container = Container(name.clone());
    docker(&["run", "-d", "--name", &name, IMAGE, "sleep", "3600"]);
    // The agent follows the engine from its start: wait for the container's start event.
    let waited = Instant::now();
    while server.search(&format!(
        "event.dataset:\"docker.events\" AND container.name:\"{name}\""
    ))["total"]
        .as_u64()
        .is_none_or(|n| n == 0)
    {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "no engine event in 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Learning: one exec starts the workload's profile; then the windows (4 s) pass.
    docker(&["exec", &name, "sleep", "0"]);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        alerts(&server).is_empty(),
        "{:#}",
        Value::Array(alerts(&server))
    );
    let mut latencies = Vec::new();
    for program in ["id", "uname", "hostname", "whoami", "date"] {
        let (alert, latency) = alert_for(&server, program, &["exec", &name, program]);
        let a = anomaly(&alert);
        // The executable is resolved in the container's file system as the kernel would:
        // `id` is a link to busybox.
        assert_eq!(a["new"]["process.executable"], "/bin/busybox", "{alert:#}");
        assert_eq!(a["entity"]["workload"], "crowsnest-busybox", "{alert:#}");
        latencies.push((program, latency));
    }
    eprintln!("engine-event exec alert latencies (kernel audit off): {latencies:?}");
    let found = server.search("event.dataset:\"container.exec\" AND tags:\"exec-fallback\"");
    assert!(
        found["total"].as_u64().is_some_and(|n| n >= 6),
        "the process starts came from the engine events: {found}"
    );
    for (program, latency) in &latencies {
        assert!(
            *latency < Duration::from_secs(2),
            "`{program}` within 2 s: {latency:?}"
        );
    }
}

#[test]
fn a_learned_container_alerts_on_exec_nc_and_a_copied_binary_with_the_baseline() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_rule(dir.path());
    let _audit = AuditRule::install();
    let agent = Command::new(bin())
        .arg("agent")
        .args(["--server", &server.url, "--token", &server.token])
        .arg("--state-dir")
        .arg(dir.path().join("agent"))
        .args(["--flush-interval-ms", "50"])
        .args([
            "--disable",
            "cri",
            "--disable",
            "host",
            "--disable",
            "falco",
        ])
        .args(["--disable", "docker-logs"])
        .env("CROWSNEST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn agent");
    let _agent = Agent(agent);
    // A new agent ships the audit log from its start: wait until it has caught up (a marker
    // process run on the host is searchable), so learning starts with the container.
    let marker = format!("cn-baseline-marker-{}", std::process::id());
    let caught_up = Instant::now();
    loop {
        let _ = Command::new("/bin/echo")
            .arg(&marker)
            .stdout(Stdio::null())
            .status();
        let seen = server.search(&format!(
            "event.dataset:\"auditd.process\" AND process.args:\"{marker}\""
        ));
        if seen["total"].as_u64().is_some_and(|n| n >= 1) {
            break;
        }
        assert!(
            caught_up.elapsed() < Duration::from_secs(180),
            "the agent did not catch up with the audit log in 180 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "agent caught up with the audit log in {:?}",
        caught_up.elapsed()
    );

    // The workload: an `ash` loop running `sleep` and `cat` (its interpreter is `ash`; `sh`
    // is the same busybox binary under another name, and never runs in it).
    let name = format!("cn-baseline-{}", std::process::id());
    let _container = Container(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        IMAGE,
        "ash",
        "-c",
        "while true; do sleep 0.2; cat /etc/hostname >/dev/null; done",
    ]);
    // Learning (4 s from the rule's start and from the image's first process), then some
    // monitoring of the loop alone: it must stay quiet.
    std::thread::sleep(Duration::from_secs(7));
    let quiet = alerts(&server);
    assert!(
        quiet.is_empty(),
        "the learned loop raised alerts: {:#}",
        Value::Array(quiet)
    );
    let learned = server.search(&format!(
        "event.dataset:\"auditd.process\" AND container.name:\"{name}\" AND process.args:sleep"
    ));
    assert!(
        learned["total"].as_u64().is_some_and(|n| n >= 10),
        "the agent saw the loop's processes: {}",
        learned["total"]
    );

    // 1. `docker exec` of a shell that lives a second, as an interactive one does. (One-shot
    //    commands, gone before the agent reads their /proc, are step 4.)
    let (shell, shell_latency) = alert_for(
        &server,
        "sh",
        &["exec", &name, "sh", "-c", "echo probe; sleep 1; true"],
    );
    // 2. `nc` listening inside the container, started by the now-known shell: only kernel
    //    audit sees it (the engine sees the shell).
    let (nc, nc_latency) = alert_for(
        &server,
        "nc",
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "nc -l -p 4444 & sleep 1; kill $!; true",
        ],
    );
    // 3. A binary copied in with `docker cp` and run: a static busybox dropped as /tmp/httpd,
    //    serving for a second.
    let target = format!("{name}:/tmp/httpd");
    docker(&["cp", "/bin/busybox", &target]);
    let (dropped, dropped_latency) = alert_for(
        &server,
        "httpd",
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "/tmp/httpd -f -p 8081 & sleep 1; kill $!; true",
        ],
    );
    eprintln!(
        "alert latency (execution → alert readable through the API): \
         docker exec sh {shell_latency:?}, nc {nc_latency:?}, copied binary {dropped_latency:?}"
    );

    for (alert, program) in [(&shell, "sh"), (&nc, "nc"), (&dropped, "httpd")] {
        let a = anomaly(alert);
        eprintln!("{program}: {}", a["explanation"]);
        assert_eq!(a["entity"]["workload"], "crowsnest-busybox", "{alert:#}");
        assert_eq!(a["baseline"]["mode"], "monitoring", "{alert:#}");
        // The baseline it broke: the loop's programs, with their counts.
        let top = a["baseline"]["top"].to_string();
        assert!(top.contains("sleep"), "{top}");
        assert!(
            a["baseline"]["events"].as_u64().is_some_and(|n| n >= 10),
            "{alert:#}"
        );
        assert!(a["score"].as_f64().is_some_and(|s| s > 0.5), "{alert:#}");
        let text = a["explanation"].as_str().expect("explanation");
        assert!(
            text.contains(&format!(
                "process.argv0={program} never seen for workload=crowsnest-busybox"
            )),
            "{text}"
        );
    }
    // The dropped binary is its own executable, not busybox.
    assert_eq!(
        anomaly(&dropped)["new"]["process.executable"],
        "/tmp/httpd",
        "{dropped:#}"
    );
    assert_eq!(anomaly(&nc)["new"]["process.executable"], "/bin/busybox");
    for latency in [shell_latency, nc_latency, dropped_latency] {
        assert!(
            latency < Duration::from_secs(1),
            "within a second: {latency:?}"
        );
    }

    // 4. Ten one-shot `docker exec`s, each a program new to the profile that exits within
    //    milliseconds, before the agent can read its /proc; its runc parents are outside the
    //    container and have often exited too (the kernel then reparents it to the container's
    //    shim). Every one must alert, within a second.
    let one_shots: [&[&str]; 10] = [
        &["true"],
        &["id"],
        &["hostname"],
        &["uname", "-a"],
        &["date"],
        &["pwd"],
        &["whoami"],
        &["nproc"],
        &["env"],
        &["sh", "-c", "exec wget --help"],
    ];
    let mut one_shot_latencies = Vec::new();
    for command in one_shots {
        // `sh` is known since step 1; what it execs in its place is not (`wget`: busybox's
        // shell runs most small applets in-process, without an execve, but not this one).
        let program = match command[0] {
            "sh" => "wget",
            first => first,
        };
        let mut args = vec!["exec", name.as_str()];
        args.extend_from_slice(command);
        let (alert, latency) = alert_for(&server, program, &args);
        assert_eq!(
            anomaly(&alert)["entity"]["workload"],
            "crowsnest-busybox",
            "{alert:#}"
        );
        one_shot_latencies.push((program, latency));
    }
    eprintln!("one-shot docker exec alert latencies: {one_shot_latencies:?}");
    // The engine's exec_start stands in only for an exec the audit path did not report within
    // its grace (under load it may be late; the profile term is the same either way).
    let stood_in = server.search(&format!(
        "event.dataset:\"container.exec\" AND container.name:\"{name}\""
    ))["total"]
        .as_u64()
        .unwrap_or(0);
    eprintln!("execs sent from the engine's exec_start (audit late or missed): {stood_in} of the 13 so far");
    for (program, latency) in &one_shot_latencies {
        assert!(
            *latency < Duration::from_secs(1),
            "one-shot `{program}` within a second: {latency:?}"
        );
    }

    // The learned programs keep running and raise nothing; what alerted is now in the
    // baseline (monitoring mode): running it again raises nothing new either.
    docker(&["exec", &name, "sh", "-c", "sleep 1; true"]);
    std::thread::sleep(Duration::from_secs(2));
    let after = alerts(&server);
    let names: Vec<Option<&str>> = after.iter().map(new_name).collect();
    let expected: Vec<&str> = ["sh", "nc", "httpd"]
        .into_iter()
        .chain(one_shot_latencies.iter().map(|(p, _)| *p))
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.is_some_and(|n| expected.contains(&n))),
        "only the intrusions alert: {names:?}"
    );
    assert_eq!(names.len(), expected.len(), "one alert each: {names:?}");
    assert!(
        !names
            .iter()
            .any(|n| matches!(n, Some("sleep" | "cat" | "ash"))),
        "{names:?}"
    );
}
