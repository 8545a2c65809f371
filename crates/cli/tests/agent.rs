//! The node agent end to end, on a real Docker engine, through a running `crowsnest server`:
//!
//! * every line of a container that logs N lines (and a stack trace, joined into one event) is
//!   searchable exactly once with its container metadata, across log rotation (`max-size`), a `kill -9` and restart of the agent, and a
//!   `kill -9` and restart of the server in the middle;
//! * `docker exec` is an exec event with its command; a non-zero exit and an OOM kill are events;
//! * a process started in a container is attributed to that container from kernel audit data.
//!
//! Needs root, `dockerd` and the `crowsnest-busybox` image (`scripts/setup-docker.sh`). Without
//! them the tests are skipped locally and FAIL under `CI=true`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, free_port, Server};
use serde_json::{json, Value};

use common::docker::{docker, docker_ready, unique, Container, IMAGE};

/// The agent of these tests, with its flags and the test's own.
struct AgentProcess;

impl AgentProcess {
    fn start(server: &Server, state: &Path, extra: &[&str]) -> common::docker::AgentProcess {
        let mut flags = vec![
            "--flush-interval-ms",
            "200",
            "--disable",
            "cri",
            "--disable",
            "host",
            "--disable",
            "falco",
        ];
        flags.extend_from_slice(extra);
        common::docker::AgentProcess::start(&server.url, &server.token, state, &flags)
    }
}

fn search(server: &Server, query: &str, limit: usize) -> Value {
    server
        .agent()
        .post(&format!("{}/api/v1/search", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .send_json(json!({"query": query, "limit": limit}))
        .expect("search")
        .into_json()
        .expect("json")
}

/// Polls a search until `done` holds for its answer (or fails after `secs`).
fn wait_for(server: &Server, query: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let answer = search(server, query, 5_000);
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for `{query}`: total {}",
            answer["total"]
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Polls until `total` reaches `want` or stops growing for 15 s.
fn settled(server: &Server, query: &str, want: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let answer = search(server, query, 5_000);
        let total = answer["total"].as_u64().unwrap_or(0);
        if total >= want || since.elapsed() > Duration::from_secs(15) || Instant::now() > deadline {
            return answer;
        }
        if total != last {
            (last, since) = (total, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn every_container_line_once_across_rotation_and_kills_of_agent_and_server() {
    if !docker_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let state = dir.path().join("agent");
    let port = free_port();
    let mut server = Server::start(&data, port);
    let events = ["--disable", "docker-events", "--disable", "audit"];
    let mut agent = AgentProcess::start(&server, &state, &events);
    const N: usize = 1500;
    let name = unique("cn-logs");
    let script = format!(
        "i=0; while [ $i -lt {N} ]; do echo \"cn-line $i of the rotation test, padded to rotate sooner\"; \
         i=$((i+1)); [ $((i % 10)) -eq 0 ] && usleep 50000; done; printf 'cn-trace Error: boom\\n\\tat frame.one\\n\\tat frame.two\\n' >&2; echo cn-done >&2"
    );
    let id = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--log-opt",
        "max-size=16k",
        "--log-opt",
        "max-file=5",
        "--label",
        "team=blue",
        IMAGE,
        "sh",
        "-c",
        &script,
    ]);
    let _container = Container(name.clone());
    std::thread::sleep(Duration::from_millis(1200));
    agent.kill9();
    std::thread::sleep(Duration::from_millis(300));
    let _agent = AgentProcess::start(&server, &state, &events);
    std::thread::sleep(Duration::from_millis(1200));
    server.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let server = Server::start(&data, port);
    assert_eq!(docker(&["wait", &name]), "0");
    let log_path = docker(&["inspect", "-f", "{{.LogPath}}", &name]);
    assert!(
        Path::new(&format!("{log_path}.1")).exists(),
        "the log was never rotated; the test did not test rotation"
    );
    let query = format!("container.name:\"{name}\" AND event.dataset:\"container.logs\"");
    // N lines, one three-line stack trace joined into one event, and `cn-done`.
    let answer = settled(&server, &query, N as u64 + 2);
    let hits = answer["hits"].as_array().expect("hits");
    let messages: BTreeSet<&str> = hits.iter().filter_map(|h| h["message"].as_str()).collect();
    let missing: Vec<usize> = (0..N)
        .filter(|i| {
            let line = format!("cn-line {i} of the rotation test, padded to rotate sooner");
            !messages.contains(line.as_str())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} lines missing: {missing:?}",
        missing.len()
    );
    assert!(
        messages.contains("cn-trace Error: boom\n\tat frame.one\n\tat frame.two"),
        "the stack trace is one event"
    );
    assert_eq!(answer["total"], N + 2, "every line exactly once");
    assert_eq!(messages.len(), N + 2, "no line twice");
    let done = hits
        .iter()
        .find(|h| h["message"] == "cn-done")
        .expect("stderr line");
    assert_eq!(done["log"]["iostream"], "stderr");
    assert_eq!(done["container"]["id"], id.as_str());
    assert_eq!(done["container"]["image"]["name"], "crowsnest-busybox");
    assert_eq!(done["container"]["image"]["tag"], "latest");
    assert_eq!(done["container"]["labels"]["team"], "blue");
    assert_eq!(done["event"]["module"], "docker");
    assert!(done["agent"]["id"].is_string());
}

#[test]
fn exec_nonzero_exit_and_oom_are_docker_events() {
    if !docker_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("server"), free_port());
    let flags = ["--disable", "docker-logs", "--disable", "audit"];
    let _agent = AgentProcess::start(&server, &dir.path().join("agent"), &flags);
    std::thread::sleep(Duration::from_millis(1500));
    let sleeper = unique("cn-exec");
    let _a = Container(sleeper.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &sleeper,
        "--cap-add",
        "NET_ADMIN",
        IMAGE,
        "sleep",
        "60",
    ]);
    docker(&["exec", &sleeper, "sh", "-c", "echo exec-probe-4242"]);
    let failing = unique("cn-exit");
    let _b = Container(failing.clone());
    let _ = Command::new("docker")
        .args(["run", "--name", &failing, IMAGE, "sh", "-c", "exit 3"])
        .status();
    let hog = unique("cn-oom");
    let _c = Container(hog.clone());
    // Doubles a string to 64 MiB under a 16 MiB limit: the kernel OOM-kills it.
    let _ = Command::new("docker")
        .args([
            "run",
            "--name",
            &hog,
            "-m",
            "16m",
            "--memory-swap",
            "16m",
            IMAGE,
            "sh",
            "-c",
            "x=aaaaaaaa; i=0; while [ $i -lt 23 ]; do x=$x$x; i=$((i+1)); done",
        ])
        .status();

    let exec = wait_for(
        &server,
        &format!("event.dataset:\"docker.events\" AND event.action:exec_start AND container.name:\"{sleeper}\""),
        60,
        |a| a["total"].as_u64() >= Some(1),
    );
    let hit = &exec["hits"][0];
    assert_eq!(hit["process"]["command_line"], "sh -c echo exec-probe-4242");
    assert_eq!(hit["container"]["image"]["name"], "crowsnest-busybox");
    assert_eq!(
        hit["docker"]["container"]["cap_add"],
        json!(["CAP_NET_ADMIN"])
    );
    assert_eq!(hit["docker"]["container"]["privileged"], false);

    let died = wait_for(
        &server,
        &format!("event.action:die AND container.name:\"{failing}\""),
        60,
        |a| a["total"].as_u64() >= Some(1),
    );
    assert_eq!(died["hits"][0]["docker"]["exit_code"], 3);
    assert_eq!(died["hits"][0]["event"]["outcome"], "failure");

    let oom = wait_for(
        &server,
        &format!("container.name:\"{hog}\" AND event.action:(oom OR die)"),
        60,
        |a| a["total"].as_u64() >= Some(2),
    );
    let hits = oom["hits"].as_array().expect("hits");
    assert!(
        hits.iter().any(|h| h["event"]["action"] == "oom"),
        "an oom event: {hits:?}"
    );
    let die = hits
        .iter()
        .find(|h| h["event"]["action"] == "die")
        .expect("die");
    assert_eq!(die["docker"]["exit_code"], 137);
    assert_eq!(die["docker"]["container"]["oom_killed"], true);
}

/// Removes the rules the agent installed (by their keys) when the test ends: exec auditing
/// of the whole machine should not outlive the test.
struct AuditRules;

impl Drop for AuditRules {
    fn drop(&mut self) {
        for key in ["crowsnest-exec", "crowsnest-sensitive"] {
            let _ = Command::new("auditctl")
                .args(["-D", "-k", key])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn a_process_in_a_container_is_attributed_from_kernel_audit() {
    if !docker_ready() {
        return;
    }
    let audit_log = Path::new("/var/log/audit/audit.log");
    let auditd_up = audit_log.exists()
        && Command::new("auditctl")
            .arg("-s")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("enabled 1"));
    if !auditd_up {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but auditd is not running (scripts/setup-docker.sh starts it)"
        );
        eprintln!("skipped: auditd is not running");
        return;
    }
    let _rules = AuditRules;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("server"), free_port());
    let flags = [
        "--disable",
        "docker-logs",
        "--disable",
        "docker-events",
        "--install-audit-rules",
    ];
    let _agent = AgentProcess::start(&server, &dir.path().join("agent"), &flags);
    std::thread::sleep(Duration::from_millis(1500));
    let name = unique("cn-audit");
    let _container = Container(name.clone());
    let id = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        // `; true` keeps the shell waiting for `sleep 31` (a last command would replace it).
        "sleep 1; sleep 31; true",
    ]);
    let query =
        format!("event.dataset:\"auditd.process\" AND container.id:\"{id}\" AND process.args:31");
    let found = wait_for(&server, &query, 60, |a| a["total"].as_u64() >= Some(1));
    let hit = &found["hits"][0];
    assert_eq!(hit["process"]["command_line"], "sleep 31");
    assert_eq!(hit["container"]["name"], name.as_str());
    assert_eq!(hit["container"]["image"]["name"], "crowsnest-busybox");
    assert!(hit["process"]["pid"].as_i64().is_some_and(|p| p > 1));
    assert!(hit["auditd"]["type"]
        .as_array()
        .is_some_and(|t| t.contains(&json!("EXECVE"))));
    // The shell that started it is still waiting for it: its executable and command line are
    // read from /proc (busybox's `sh` is the busybox binary).
    assert_eq!(
        hit["process"]["parent"]["command_line"], "sh -c sleep 1; sleep 31; true",
        "{hit}"
    );
    assert!(
        hit["process"]["parent"]["executable"]
            .as_str()
            .is_some_and(|exe| exe.ends_with("busybox")),
        "{hit}"
    );
}

#[test]
fn server_collect_local_ships_this_hosts_containers_to_itself() {
    if !docker_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new(bin())
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--commit-interval-ms", "200", "--collect-local"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("CROWSNEST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server");
    let mut server = Server {
        child: Some(child),
        data_dir: dir.path().to_path_buf(),
        url: format!("http://127.0.0.1:{port}"),
        port,
        token: String::new(),
        extra: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.token.is_empty() || server.get("/api/v1/health").is_err() {
        assert!(Instant::now() < deadline, "server did not come up");
        if let Ok(token) = std::fs::read_to_string(dir.path().join("admin.token")) {
            server.token = token.trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let name = unique("cn-local");
    let _container = Container(name.clone());
    docker(&["run", "--name", &name, IMAGE, "echo", "collected-locally"]);
    let query = format!("container.name:\"{name}\" AND message:\"collected-locally\"");
    let found = wait_for(&server, &query, 60, |a| a["total"].as_u64() >= Some(1));
    assert_eq!(found["hits"][0]["event"]["dataset"], "container.logs");
    assert!(dir.path().join("agent/state.json").exists());
    // The token the server made for its own collectors is reused on the next start.
    let token = std::fs::read_to_string(dir.path().join("local-agent.token")).expect("token");
    assert!(!token.trim().is_empty());
    assert!(server.terminate().success());
}
