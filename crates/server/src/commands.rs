//! The durable queue of containment commands for node agents.
//!
//! ```text
//!  enqueue(AgentCommand) ─► <data-dir>/commands/<id>.json ─► notify pollers
//!  agent: GET /api/v1/agent/commands?node=N&wait=25s ◄── every outstanding command of N
//!  agent: POST /api/v1/agent/commands/<id>/result ─► complete() ─► <id>.json ─► notify waiters
//! ```
//!
//! * One JSON file per command (written atomically and fsync'd), so commands and results
//!   survive a restart; [`CommandQueue::open`] reads them back.
//! * A command is handed to every poll of its node until its result arrives or it expires
//!   (the agent answers a redelivered command from its own record instead of running it
//!   again). Expired commands are never delivered; they stay listed as `expired`.
//! * A poll returns as soon as a command is queued for its node (a `watch` channel wakes
//!   it), so the time from [`CommandQueue::enqueue`] to the agent is one HTTP round trip;
//!   [`CommandQueue::wait_result`] likewise wakes when a result arrives.
//! * At most [`MAX_RECORDS`] commands are kept: beyond, the oldest finished ones (with a
//!   result, or expired) are deleted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use crowsnest_model::command::{AgentCommand, CommandResult};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Most commands kept (pending ones are never dropped).
pub const MAX_RECORDS: usize = 10_000;

/// Where a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandStatus {
    /// Queued, not yet fetched by its agent.
    Pending,
    /// Fetched at least once; no result yet.
    Delivered,
    /// The agent answered: it worked (or there was nothing to do).
    Done,
    /// The agent answered: it failed or refused.
    Failed,
    /// No result before `expires_at`: never carried out (as far as the server knows).
    Expired,
}

impl CommandStatus {
    /// Parses the lowercase name.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }

    /// Whether the command will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Expired)
    }
}

/// A command with its delivery and result, as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// The command.
    pub command: AgentCommand,
    /// When its agent first fetched it.
    #[serde(default)]
    pub delivered_at: Option<DateTime<Utc>>,
    /// How many polls handed it out.
    #[serde(default)]
    pub deliveries: u32,
    /// The agent's answer.
    #[serde(default)]
    pub result: Option<CommandResult>,
    /// When the answer arrived.
    #[serde(default)]
    pub received_at: Option<DateTime<Utc>>,
    /// Whether the result was written to the event store (dataset `crowsnest.response`).
    #[serde(default)]
    pub event_recorded: bool,
}

impl CommandRecord {
    /// Its status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> CommandStatus {
        match &self.result {
            Some(result) if result.ok => CommandStatus::Done,
            Some(_) => CommandStatus::Failed,
            None if self.command.is_expired(now) => CommandStatus::Expired,
            None if self.delivered_at.is_some() => CommandStatus::Delivered,
            None => CommandStatus::Pending,
        }
    }
}

/// Why the queue refused something.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The command is malformed.
    #[error("invalid command: {0}")]
    Invalid(String),
    /// Another command has that id.
    #[error("a different command with id `{0}` is already queued")]
    DuplicateId(String),
    /// No such command.
    #[error("no command `{0}`")]
    Unknown(String),
    /// A result from the wrong node.
    #[error("command `{id}` is for node `{expected}`, the result comes from node `{got}`")]
    WrongNode {
        /// The command.
        id: String,
        /// Its node.
        expected: String,
        /// The result's node.
        got: String,
    },
    /// The disk refused.
    #[error("storing command `{id}`: {source}")]
    Io {
        /// The command.
        id: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What [`CommandQueue::complete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The first result of the command: stored.
    Recorded,
    /// The command already had a result: kept, this one ignored.
    Duplicate,
}

#[derive(Default)]
struct State {
    /// By id.
    records: BTreeMap<String, CommandRecord>,
    /// When each node last polled.
    seen: HashMap<String, DateTime<Utc>>,
}

/// The queue (cheap to share behind an `Arc`).
pub struct CommandQueue {
    dir: PathBuf,
    state: Mutex<State>,
    enqueued: watch::Sender<u64>,
    finished: watch::Sender<u64>,
    max_records: usize,
    /// Set when the server shuts down: polls and waits end at once.
    closed: std::sync::atomic::AtomicBool,
}

/// The order of issue.
fn order(record: &CommandRecord) -> (DateTime<Utc>, &str) {
    (record.command.issued_at, record.command.id.as_str())
}

impl CommandQueue {
    /// Opens (creating) the queue in `dir` and reads back every stored command. A file that
    /// cannot be read is renamed `<name>.bad` and reported, never deleted.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        Self::open_with_limit(dir, MAX_RECORDS)
    }

    /// [`CommandQueue::open`] keeping at most `max_records` commands.
    pub fn open_with_limit(dir: &Path, max_records: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the command queue `{}`", dir.display()))?;
        let mut records = BTreeMap::new();
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading the command queue `{}`", dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading the command queue `{}`", dir.display()))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<CommandRecord>(&bytes).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(record) => {
                    records.insert(record.command.id.clone(), record);
                }
                Err(error) => {
                    let bad = path.with_extension("json.bad");
                    tracing::error!(file = %path.display(), %error, moved_to = %bad.display(), "unreadable command record set aside");
                    let _ = std::fs::rename(&path, &bad);
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                records,
                seen: HashMap::new(),
            }),
            enqueued: watch::channel(0).0,
            finished: watch::channel(0).0,
            max_records: max_records.max(1),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn persist(&self, record: &CommandRecord) -> Result<(), QueueError> {
        let id = record.command.id.clone();
        let bytes = serde_json::to_vec(record).map_err(|e| QueueError::Io {
            id: id.clone(),
            source: std::io::Error::other(e),
        })?;
        crowsnest_util::AtomicWrite::default()
            .write(&self.dir.join(format!("{id}.json")), &bytes)
            .map_err(|source| QueueError::Io { id, source })
    }

    /// Queues `command` durably and wakes its node's pollers; returns its id. Enqueuing the
    /// same command (same id, same content) again is a no-op.
    pub fn enqueue(&self, command: AgentCommand) -> Result<String, QueueError> {
        command.validate().map_err(QueueError::Invalid)?;
        let id = command.id.clone();
        let mut state = self.lock();
        if let Some(existing) = state.records.get(&id) {
            return if existing.command == command {
                Ok(id)
            } else {
                Err(QueueError::DuplicateId(id))
            };
        }
        let record = CommandRecord {
            command,
            delivered_at: None,
            deliveries: 0,
            result: None,
            received_at: None,
            event_recorded: false,
        };
        self.persist(&record)?;
        state.records.insert(id.clone(), record);
        self.prune(&mut state);
        drop(state);
        self.enqueued.send_modify(|n| *n += 1);
        Ok(id)
    }

    /// Deletes the oldest final records beyond the limit.
    fn prune(&self, state: &mut State) {
        let excess = state.records.len().saturating_sub(self.max_records);
        if excess == 0 {
            return;
        }
        let now = Utc::now();
        let mut finished: Vec<&CommandRecord> = state
            .records
            .values()
            .filter(|r| r.status(now).is_final())
            .collect();
        finished.sort_by_key(|r| order(r));
        let doomed: Vec<String> = finished
            .into_iter()
            .take(excess)
            .map(|r| r.command.id.clone())
            .collect();
        for id in doomed {
            state.records.remove(&id);
            let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
        }
    }

    /// One command with its status.
    pub fn get(&self, id: &str) -> Option<CommandRecord> {
        self.lock().records.get(id).cloned()
    }

    /// The command's result, once its agent answered.
    pub fn result(&self, id: &str) -> Option<CommandResult> {
        self.lock().records.get(id).and_then(|r| r.result.clone())
    }

    /// Waits up to `timeout` for the command's result (returns at once when it is there).
    pub async fn wait_result(&self, id: &str, timeout: Duration) -> Option<CommandResult> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.finished.subscribe();
        loop {
            if let Some(result) = self.result(id) {
                return Some(result);
            }
            if self.is_closed() {
                return None;
            }
            if self
                .get(id)
                .is_none_or(|r| r.command.is_expired(Utc::now()))
            {
                // Unknown or expired without an answer: a late result is still possible, but
                // nothing is waiting to be carried out.
                return self.result(id);
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return self.result(id);
            }
        }
    }

    /// Commands newest first, optionally of one node and in one status, at most `limit`.
    pub fn list(
        &self,
        node: Option<&str>,
        status: Option<CommandStatus>,
        limit: usize,
    ) -> Vec<CommandRecord> {
        let now = Utc::now();
        let state = self.lock();
        let mut found: Vec<&CommandRecord> = state
            .records
            .values()
            .filter(|r| node.is_none_or(|n| r.command.node == n))
            .filter(|r| status.is_none_or(|s| r.status(now) == s))
            .collect();
        found.sort_by(|a, b| order(b).cmp(&order(a)));
        found.into_iter().take(limit).cloned().collect()
    }

    /// The commands `node` must carry out now (oldest first), counting the delivery.
    pub fn outstanding(&self, node: &str) -> Vec<AgentCommand> {
        let now = Utc::now();
        let mut state = self.lock();
        state.seen.insert(node.to_string(), now);
        let mut out = Vec::new();
        let mut first_deliveries = Vec::new();
        for record in state.records.values_mut() {
            if record.command.node != node
                || record.result.is_some()
                || record.command.is_expired(now)
            {
                continue;
            }
            record.deliveries = record.deliveries.saturating_add(1);
            if record.delivered_at.is_none() {
                record.delivered_at = Some(now);
                first_deliveries.push(record.clone());
            }
            out.push(record.command.clone());
        }
        drop(state);
        out.sort_by(|a, b| (a.issued_at, &a.id).cmp(&(b.issued_at, &b.id)));
        for record in first_deliveries {
            // Informational: losing it only loses the delivery time.
            if let Err(error) = self.persist(&record) {
                tracing::warn!(%error, "could not record a command's delivery");
            }
        }
        out
    }

    /// Waits up to `wait` for commands of `node`; returns at once when there are some.
    pub async fn poll(&self, node: &str, wait: Duration) -> Vec<AgentCommand> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.enqueued.subscribe();
        loop {
            let commands = self.outstanding(node);
            if !commands.is_empty() || self.is_closed() {
                return commands;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Vec::new();
            }
        }
    }

    /// Ends every poll and wait now and from now on (the server is shutting down: a long
    /// poll in flight must not hold the graceful shutdown for its whole wait).
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.enqueued.send_modify(|n| *n += 1);
        self.finished.send_modify(|n| *n += 1);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// When `node` last polled (since this server started).
    pub fn last_seen(&self, node: &str) -> Option<DateTime<Utc>> {
        self.lock().seen.get(node).copied()
    }

    /// Stores the agent's answer (durably) and wakes the waiters. A second answer to the same
    /// command is a [`Completion::Duplicate`] and changes nothing.
    pub fn complete(&self, result: CommandResult) -> Result<Completion, QueueError> {
        let mut state = self.lock();
        let Some(record) = state.records.get(&result.id) else {
            return Err(QueueError::Unknown(result.id));
        };
        if record.command.node != result.node {
            return Err(QueueError::WrongNode {
                id: result.id.clone(),
                expected: record.command.node.clone(),
                got: result.node,
            });
        }
        if record.result.is_some() {
            return Ok(Completion::Duplicate);
        }
        let mut updated = record.clone();
        updated.result = Some(result);
        updated.received_at = Some(Utc::now());
        self.persist(&updated)?;
        state.records.insert(updated.command.id.clone(), updated);
        drop(state);
        self.finished.send_modify(|n| *n += 1);
        Ok(Completion::Recorded)
    }

    /// Notes that the command's result is in the event store.
    pub fn mark_event_recorded(&self, id: &str) -> Result<(), QueueError> {
        let mut state = self.lock();
        let Some(record) = state.records.get_mut(id) else {
            return Err(QueueError::Unknown(id.to_string()));
        };
        if record.event_recorded {
            return Ok(());
        }
        record.event_recorded = true;
        let record = record.clone();
        self.persist(&record)
    }
}

/// The dataset of containment results in the event store.
pub const RESPONSE_DATASET: &str = "crowsnest.response";

/// The event that makes a command's result searchable
/// (`event.dataset: crowsnest.response`, `event.action: container-<op>`).
pub fn result_event(command: &AgentCommand, result: &CommandResult) -> crowsnest_model::Event {
    use crowsnest_model::ecs;
    use serde_json::{json, Value};
    let mut event = crowsnest_model::Event::new();
    event.set(
        "@timestamp",
        json!(result
            .finished_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    event.set(ecs::EVENT_KIND, json!("event"));
    event.set(ecs::EVENT_MODULE, json!("crowsnest"));
    event.set(ecs::EVENT_DATASET, json!(RESPONSE_DATASET));
    event.set(
        ecs::EVENT_ACTION,
        json!(format!("container-{}", command.op)),
    );
    event.set(
        "event.outcome",
        json!(if result.ok { "success" } else { "failure" }),
    );
    if !command.reason.is_empty() {
        event.set("event.reason", json!(command.reason));
    }
    event.set("host.name", json!(command.node));
    event.set(
        "container.id",
        json!(result.container_id.clone().unwrap_or_default()),
    );
    if let Some(name) = &result.container_name {
        event.set("container.name", json!(name));
    }
    if let Some(by) = &command.issued_by {
        event.set("user.name", json!(by));
    }
    let outcome = match (&result.error, result.notes.is_empty()) {
        (Some(error), _) => format!("failed: {error}"),
        (None, true) => "done".to_string(),
        (None, false) => format!("done ({})", result.notes.join("; ")),
    };
    event.set(
        ecs::MESSAGE,
        json!(format!(
            "{} container {} on {}: {outcome}",
            command.op, command.container, command.node
        )),
    );
    event.set(
        "response",
        json!({
            "command": command,
            "result": result,
            "latency_ms": (result.finished_at - command.issued_at).num_milliseconds(),
        }),
    );
    if event.get("container.id") == Some(&Value::String(String::new())) {
        event.set("container.id", json!(command.container));
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowsnest_model::command::ContainerOp;

    fn command(node: &str, ttl_secs: i64) -> AgentCommand {
        AgentCommand::new(
            node,
            ContainerOp::Pause,
            "web",
            "test",
            chrono::Duration::seconds(ttl_secs),
        )
    }

    fn result_for(command: &AgentCommand, ok: bool) -> CommandResult {
        let mut result = CommandResult::refused(command, &command.node, "x");
        result.ok = ok;
        result.error = (!ok).then(|| "boom".to_string());
        result
    }

    #[test]
    fn commands_and_results_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (command("n1", 300), command("n1", 300));
        {
            let queue = CommandQueue::open(dir.path()).expect("open");
            assert_eq!(queue.enqueue(a.clone()).expect("enqueue"), a.id);
            queue.enqueue(b.clone()).expect("enqueue");
            assert_eq!(queue.outstanding("n1").len(), 2);
            assert_eq!(
                queue.complete(result_for(&a, true)).expect("complete"),
                Completion::Recorded
            );
        }
        let queue = CommandQueue::open(dir.path()).expect("reopen");
        let now = Utc::now();
        let first = queue.get(&a.id).expect("a");
        assert_eq!(first.status(now), CommandStatus::Done);
        assert!(queue.result(&a.id).is_some_and(|r| r.ok));
        let second = queue.get(&b.id).expect("b");
        assert_eq!(second.status(now), CommandStatus::Delivered);
        assert_eq!(second.deliveries, 1);
        // Until its result arrives, b is handed out again; a is not.
        let again = queue.outstanding("n1");
        assert_eq!(
            again.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [b.id.as_str()]
        );
        assert!(
            queue.outstanding("n2").is_empty(),
            "other nodes get nothing"
        );
        assert_eq!(
            queue
                .complete(result_for(&a, false))
                .expect("second answer"),
            Completion::Duplicate
        );
        assert!(
            queue.result(&a.id).is_some_and(|r| r.ok),
            "the first answer stays"
        );
        assert_eq!(
            queue.list(None, None, 10)[0].command.id,
            b.id,
            "newest first"
        );
        assert_eq!(queue.list(None, Some(CommandStatus::Done), 10).len(), 1);
    }

    #[test]
    fn expired_commands_are_not_delivered_and_bad_input_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = CommandQueue::open(dir.path()).expect("open");
        let mut old = command("n1", 300);
        old.issued_at -= chrono::Duration::seconds(600);
        old.expires_at = Utc::now() - chrono::Duration::seconds(1);
        queue.enqueue(old.clone()).expect("enqueue");
        assert!(queue.outstanding("n1").is_empty());
        assert_eq!(
            queue.get(&old.id).expect("kept").status(Utc::now()),
            CommandStatus::Expired
        );
        let mut bad = command("n1", 300);
        bad.id = "../x".into();
        assert!(matches!(queue.enqueue(bad), Err(QueueError::Invalid(_))));
        let mut empty = command("", 300);
        empty.node = " ".into();
        assert!(matches!(queue.enqueue(empty), Err(QueueError::Invalid(_))));
        let a = command("n1", 300);
        queue.enqueue(a.clone()).expect("enqueue");
        queue
            .enqueue(a.clone())
            .expect("the same command again is a no-op");
        let mut changed = a.clone();
        changed.container = "other".into();
        assert!(matches!(
            queue.enqueue(changed),
            Err(QueueError::DuplicateId(_))
        ));
        let mut foreign = result_for(&a, true);
        foreign.node = "n2".into();
        assert!(matches!(
            queue.complete(foreign),
            Err(QueueError::WrongNode { .. })
        ));
        let mut unknown = result_for(&a, true);
        unknown.id = "nope".into();
        assert!(matches!(
            queue.complete(unknown),
            Err(QueueError::Unknown(_))
        ));
    }

    #[test]
    fn unreadable_records_are_set_aside_and_old_final_ones_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("broken.json"), b"{not json").expect("write");
        let queue = CommandQueue::open_with_limit(dir.path(), 2).expect("open");
        assert!(dir.path().join("broken.json.bad").exists());
        let first = command("n1", 300);
        queue.enqueue(first.clone()).expect("enqueue");
        queue.complete(result_for(&first, true)).expect("complete");
        let (second, third) = (command("n1", 300), command("n1", 300));
        queue.enqueue(second.clone()).expect("enqueue");
        queue.enqueue(third.clone()).expect("enqueue");
        assert!(queue.get(&first.id).is_none(), "the finished one went");
        assert!(!dir.path().join(format!("{}.json", first.id)).exists());
        assert!(queue.get(&second.id).is_some() && queue.get(&third.id).is_some());
        let fourth = command("n1", 300);
        queue
            .enqueue(fourth.clone())
            .expect("pending ones are never dropped");
        assert_eq!(queue.list(None, None, 10).len(), 3);
    }

    #[tokio::test]
    async fn a_poll_wakes_when_a_command_is_queued_and_a_waiter_when_it_is_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = std::sync::Arc::new(CommandQueue::open(dir.path()).expect("open"));
        let started = std::time::Instant::now();
        let poller = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.poll("n1", Duration::from_secs(20)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let a = command("n1", 300);
        queue.enqueue(command("n2", 300)).expect("other node");
        queue.enqueue(a.clone()).expect("enqueue");
        let got = poller.await.expect("poll");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, a.id);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken, not timed out"
        );
        let waiter = {
            let (queue, id) = (queue.clone(), a.id.clone());
            tokio::spawn(async move { queue.wait_result(&id, Duration::from_secs(20)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        queue.complete(result_for(&a, true)).expect("complete");
        assert!(waiter.await.expect("wait").is_some_and(|r| r.ok));
        assert!(started.elapsed() < Duration::from_secs(5));
        let empty = queue.poll("n3", Duration::from_millis(50)).await;
        assert!(empty.is_empty());
        assert!(queue.last_seen("n3").is_some());
        let long = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.poll("n3", Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let closing = std::time::Instant::now();
        queue.close();
        assert!(long.await.expect("poll").is_empty());
        assert!(
            closing.elapsed() < Duration::from_secs(5),
            "close ends a long poll"
        );
        let event = result_event(&a, &queue.result(&a.id).expect("result"));
        assert_eq!(event.get_str("event.dataset"), Some(RESPONSE_DATASET));
        assert_eq!(event.get_str("event.action"), Some("container-pause"));
        assert_eq!(event.get_str("event.outcome"), Some("success"));
    }
}
