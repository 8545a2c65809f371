//! What the real-Docker tests share: the engine check, `docker` calls, containers and networks
//! removed when a test ends however it ends, and a node agent child stopped by PID.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::bin;

/// The image `scripts/setup-docker.sh` builds (busybox, no registry needed).
pub const IMAGE: &str = "crowsnest-busybox:latest";

/// True when the engine answers and has [`IMAGE`]; under `CI=true` a missing engine fails
/// the test instead of skipping it.
pub fn docker_ready() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but no docker engine with {IMAGE}: run scripts/setup-docker.sh"
        );
        eprintln!("skipped: no docker engine with {IMAGE} (run scripts/setup-docker.sh)");
    }
    ok
}

/// Runs `docker args...`, asserting success; its trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `docker inspect` of one container.
pub fn inspect(name: &str) -> Value {
    let text = docker(&["inspect", name]);
    let value: Value = serde_json::from_str(&text).expect("inspect json");
    value[0].clone()
}

/// True when the container is paused.
pub fn paused(name: &str) -> bool {
    inspect(name)["State"]["Paused"].as_bool() == Some(true)
}

/// Network name → (sorted aliases, static IPv4) of a container.
pub fn networks(name: &str) -> BTreeMap<String, (Vec<String>, Option<String>)> {
    let found = inspect(name);
    let id = found["Id"].as_str().unwrap_or_default().to_string();
    found["NetworkSettings"]["Networks"]
        .as_object()
        .map(|networks| {
            networks
                .iter()
                .map(|(name, endpoint)| {
                    let mut aliases: Vec<String> = endpoint["Aliases"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .filter(|s| !id.starts_with(s))
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    aliases.sort();
                    let ip = endpoint["IPAMConfig"]["IPv4Address"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string);
                    (name.clone(), (aliases, ip))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

fn quietly(args: &[&str]) {
    let _ = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes the container when the test ends, however it ends (unpaused first).
pub struct Container(pub String);

impl Drop for Container {
    fn drop(&mut self) {
        quietly(&["unpause", &self.0]);
        quietly(&["rm", "-f", &self.0]);
    }
}

/// Removes the network when the test ends.
pub struct Network(pub String);

impl Drop for Network {
    fn drop(&mut self) {
        quietly(&["network", "rm", &self.0]);
    }
}

/// A `crowsnest agent` child shipping to `url` with `token`, state in `state`, with the
/// test's own flags; SIGKILL on drop.
pub struct AgentProcess(Option<Child>);

impl AgentProcess {
    pub fn start(url: &str, token: &str, state: &Path, flags: &[&str]) -> Self {
        let child = Command::new(bin())
            .arg("agent")
            .args(["--server", url, "--token", token])
            .arg("--state-dir")
            .arg(state)
            .args(flags)
            .env("CROWSNEST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn agent");
        Self(Some(child))
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
