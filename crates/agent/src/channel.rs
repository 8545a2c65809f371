//! The command channel: the agent long-polls the server for containment commands of its
//! node, carries them out ([`crate::contain`]) and posts the results.
//!
//! * `GET <server>/api/v1/agent/commands?node=<node>&wait=25s` with the agent's (ingest) token
//!   answers as soon as a command is queued for the node, or empty after the wait.
//! * Each command is carried out once: its result is written to
//!   `<state-dir>/results/<id>.json` before it is posted, so a command the server delivers
//!   again (the post was lost, the agent restarted) is answered from that file, not run twice.
//! * `POST <server>/api/v1/agent/commands/<id>/result` is retried with backoff until the server
//!   takes it (2xx) or says it does not know the command (404: dropped with a warning).
//!
//! Commands run one at a time, in the order the server gives them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crowsnest_model::command::{AgentCommand, CommandResult};
use crowsnest_util::Backoff;
use serde_json::Value;

use crate::contain::Executor;

/// An empty poll answered sooner than this is followed by a pause of this long.
const EARLY: Duration = Duration::from_millis(500);

/// How long a result file is kept (the server redelivers a command at most until it
/// expires).
const RESULT_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where to poll and as whom.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// Server base URL.
    pub server: String,
    /// The agent's token (scope `ingest`).
    pub token: String,
    /// The node name commands are addressed to.
    pub node: String,
    /// How long one poll waits on the server.
    pub poll_wait: Duration,
    /// State directory (results, evidence, quarantine records).
    pub state_dir: PathBuf,
}

/// Polls, executes and answers until `stop` is set (a poll in flight ends by itself within
/// `poll_wait`).
pub fn run(config: &ChannelConfig, executor: &Executor, stop: &AtomicBool) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "command channel: no runtime; containment disabled");
            return;
        }
    };
    let results = config.state_dir.join("results");
    prune(&results);
    let http = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(config.poll_wait + Duration::from_secs(15))
        .no_delay(true)
        .build();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let base = config.server.trim_end_matches('/').to_string();
    while !stop.load(Ordering::SeqCst) {
        let asked = std::time::Instant::now();
        let commands = match poll(&http, config, &base) {
            Ok(commands) if commands.is_empty() && asked.elapsed() < EARLY => {
                // An empty answer well before the wait (a server shutting down, a proxy that
                // cuts long requests): do not spin.
                sleep_unless_stopped(EARLY, stop);
                continue;
            }
            Ok(commands) => {
                backoff.reset();
                commands
            }
            Err(error) => {
                let delay = backoff.next_delay(None);
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "command poll failed");
                sleep_unless_stopped(delay, stop);
                continue;
            }
        };
        for command in commands {
            let path = results.join(format!("{}.json", safe_name(&command.id)));
            let result = match std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<CommandResult>(&bytes).ok())
            {
                Some(done) => done,
                None => {
                    tracing::info!(id = %command.id, op = %command.op, container = %command.container, "carrying out a containment command");
                    let result = runtime.block_on(executor.execute(&command));
                    if let Err(error) = serde_json::to_vec(&result)
                        .map_err(std::io::Error::other)
                        .and_then(|bytes| {
                            std::fs::create_dir_all(&results)?;
                            crowsnest_util::AtomicWrite::default().write(&path, &bytes)
                        })
                    {
                        tracing::warn!(%error, id = %command.id, "could not keep the command's result on disk");
                    }
                    result
                }
            };
            post(&http, config, &base, &result, stop);
        }
    }
}

fn poll(
    http: &ureq::Agent,
    config: &ChannelConfig,
    base: &str,
) -> anyhow::Result<Vec<AgentCommand>> {
    let wait = format!("{}ms", config.poll_wait.as_millis());
    let response = http
        .get(&format!("{base}/api/v1/agent/commands"))
        .query("node", &config.node)
        .query("wait", &wait)
        .set("Authorization", &format!("Bearer {}", config.token))
        .call()
        .map_err(|error| match error {
            ureq::Error::Status(code, response) => anyhow::anyhow!(
                "server answered {code}: {}",
                response
                    .into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect::<String>()
            ),
            other => anyhow::anyhow!(other),
        })?;
    let body: Value = response.into_json()?;
    let commands = body
        .get("commands")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for command in commands {
        match serde_json::from_value::<AgentCommand>(command) {
            Ok(command) => out.push(command),
            Err(error) => {
                tracing::warn!(%error, "a command the agent does not understand; skipped")
            }
        }
    }
    Ok(out)
}

fn post(
    http: &ureq::Agent,
    config: &ChannelConfig,
    base: &str,
    result: &CommandResult,
    stop: &AtomicBool,
) {
    let url = format!(
        "{base}/api/v1/agent/commands/{}/result",
        safe_name(&result.id)
    );
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let answer = http
            .post(&url)
            .set("Authorization", &format!("Bearer {}", config.token))
            .send_json(result);
        match answer {
            Ok(_) => return,
            Err(ureq::Error::Status(404, _)) => {
                tracing::warn!(id = %result.id, "the server does not know this command any more; its result is dropped");
                return;
            }
            Err(error) => {
                if stop.load(Ordering::SeqCst) {
                    // The result is on disk: the next start answers the redelivered command.
                    return;
                }
                let delay = backoff.next_delay(None);
                tracing::warn!(%error, id = %result.id, retry_in_ms = delay.as_millis() as u64, "posting a command result failed");
                std::thread::sleep(delay);
            }
        }
    }
}

fn sleep_unless_stopped(delay: Duration, stop: &AtomicBool) {
    let deadline = std::time::Instant::now() + delay;
    while std::time::Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50).min(delay));
    }
}

/// The id as a file name (ids are ULIDs; anything else is replaced).
fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > RESULT_KEEP);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_safe_file_names() {
        assert_eq!(safe_name("01HZX-abc_1"), "01HZX-abc_1");
        assert_eq!(safe_name("../../etc/passwd"), "______etc_passwd");
    }
}
