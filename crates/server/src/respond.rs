//! Containment wired into the server: the detector hands every new live alert (with its
//! incident) to a channel; one task offers it to the [`Responder`] (playbooks, guards, the
//! action log), runs the actions that may run now, submits every action-log record as a
//! `crowsnest.response` event, and undoes actions whose TTL ran out.
//!
//! Docker steps go to the node's agent through the [`CommandQueue`] (the agent has the
//! socket): the planner's evidence (`inspect`, `logs`, `top`, `diff`, `export`) becomes one
//! agent `evidence` command whose result carries the inspect output (the undo reads the
//! networks and the network mode from it) and the SHA-256 of each evidence file kept on the
//! node; `pause`, `unpause`, `stop`, `start`, `kill` are the agent's commands of the same
//! name; disconnecting is the agent's `quarantine` (every network, remembered on the node;
//! refused for the host's network), reconnecting its `release` with the remembered
//! attachment. Each command expires when the server stops waiting for it
//! (`respond.agent_timeout_secs`), so a late agent never acts after the action was logged
//! as failed. Kubernetes steps go to `[respond.kubernetes]`.
//!
//! Replayed alerts (after a restart) are never handed over, and the responder plans nothing
//! twice for one action id (its state is rebuilt from the log at start).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crowsnest_model::command::{AgentCommand, CommandResult, ContainerOp, NetworkAttachment};
use crowsnest_model::{Alert, Event};
use crowsnest_normalize::Decoded;
use crowsnest_respond::contain::k8s::K8sExecutor;
use crowsnest_respond::contain::log::RecordKind;
use crowsnest_respond::contain::responder::{ResponderError, Run, Tracked};
use crowsnest_respond::contain::{
    DockerCall, DockerOp, ExecError, Executor, LogRecord, NoInventory, Operation, RespondConfig,
    Responder,
};
use crowsnest_respond::Incident;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::commands::CommandQueue;
use crate::pipeline::{Admission, Problem};
use crate::AppState;

/// Alerts waiting for the responder; past it new alerts are not offered (logged).
const QUEUE: usize = 1024;
/// How often TTLs are checked.
const UNDO_EVERY: Duration = Duration::from_secs(2);
/// Failed executions in a row that make a health problem.
const FAILURES_FOR_PROBLEM: u32 = 3;

/// An alert and its incident, for the responder.
pub struct Offer {
    alert: Alert,
    incident: Option<Incident>,
}

#[derive(Default)]
struct Failures {
    in_a_row: u32,
    since: Option<DateTime<Utc>>,
    last: String,
}

/// The responder and what executes its actions.
pub struct Respond {
    responder: Mutex<Responder>,
    k8s: Option<K8sExecutor>,
    queue: Arc<CommandQueue>,
    timeout: Duration,
    export: bool,
    failures: Mutex<Failures>,
    /// Stranded actions this process already resumed once: one left ready again (its outcome
    /// could not be logged) is not run again and again every tick.
    resumed: Mutex<std::collections::HashSet<String>>,
}

/// How an approval is given.
pub enum Approval {
    /// A signed link's token (the token is the credential).
    Token(String),
    /// An action id, by an admin.
    Id(String),
}

impl Respond {
    /// Opens the responder in `dir` (`<data-dir>/respond`) with `config` (validated here).
    ///
    /// # Errors
    ///
    /// An invalid `[respond]` config, an unreadable Kubernetes token, or responder files that
    /// cannot be read (a log that does not verify).
    pub fn open(
        dir: &std::path::Path,
        config: RespondConfig,
        queue: Arc<CommandQueue>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let k8s = match &config.kubernetes {
            Some(k) => Some(K8sExecutor::new(
                &k.url,
                &k.resolve_token().map_err(anyhow::Error::msg)?,
            )),
            None => None,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating `{}`: {e}", dir.display()))?;
        let timeout = Duration::from_secs(config.agent_timeout_secs.max(1));
        let export = config.evidence_export;
        let responder = Responder::open(dir, config)
            .map_err(|e| anyhow::anyhow!("opening the responder in `{}`: {e}", dir.display()))?;
        Ok(Self {
            responder: Mutex::new(responder),
            k8s,
            queue,
            timeout,
            export,
            failures: Mutex::new(Failures::default()),
            resumed: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Responder> {
        self.responder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether any playbook is configured (without one nothing is offered).
    pub fn enabled(&self) -> bool {
        !self.lock().planner().config().playbooks.is_empty()
    }

    /// Every tracked action, newest first, optionally of one state.
    pub fn list(&self, state: Option<&str>, limit: usize) -> Vec<Tracked> {
        let responder = self.lock();
        let mut out: Vec<Tracked> = responder
            .actions()
            .filter(|t| {
                state.is_none_or(|s| {
                    serde_json::to_value(t.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        == Some(s.to_string())
                })
            })
            .cloned()
            .collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.action.planned_at));
        out.truncate(limit);
        out
    }

    /// One action, with its undo as it would run now (when executed).
    pub fn show(&self, id: &str) -> Option<Value> {
        let responder = self.lock();
        let tracked = responder.get(id)?;
        let mut value = serde_json::to_value(tracked).unwrap_or(Value::Null);
        if let Ok(undo) = responder.undo_operations(id) {
            value["undo_now"] = json!(undo.iter().map(Operation::describe).collect::<Vec<_>>());
        }
        Some(value)
    }

    /// A fresh signed approval link for a pending action (for admins to forward).
    pub fn approval_link(&self, id: &str) -> Option<String> {
        let responder = self.lock();
        let pending = responder
            .get(id)
            .is_some_and(|t| t.state == crowsnest_respond::contain::responder::State::Pending);
        pending.then(|| responder.approval_link(id, Utc::now()))
    }

    /// The problem health reports when executions keep failing.
    pub fn problem(&self) -> Option<Problem> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (failures.in_a_row >= FAILURES_FOR_PROBLEM).then(|| Problem {
            component: "respond".into(),
            message: format!(
                "{} containment actions in a row failed; the last: {}",
                failures.in_a_row, failures.last
            ),
            since: failures.since.unwrap_or_else(Utc::now),
        })
    }

    fn note(&self, record: &LogRecord) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match record.kind {
            RecordKind::Executed | RecordKind::Undone => *failures = Failures::default(),
            RecordKind::Failed | RecordKind::UndoFailed => {
                failures.in_a_row += 1;
                failures.since.get_or_insert(record.at);
                failures.last = record
                    .detail
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .chars()
                    .take(500)
                    .collect();
            }
            _ => {}
        }
    }

    fn executor(&self, reason: String) -> ActionExecutor<'_> {
        ActionExecutor {
            respond: self,
            handle: tokio::runtime::Handle::current(),
            reason,
            evidence: Mutex::new(None),
        }
    }

    /// Takes the ready action `id` for execution (under the lock); runs in
    /// [`run_unlocked`](Self::run_unlocked).
    fn take(responder: &mut Responder, id: &str) -> Result<(Run, String), ResponderError> {
        let reason = responder
            .get(id)
            .map(|t| format!("playbook {} action {id}", t.action.playbook))
            .unwrap_or_default();
        Ok((responder.begin(id)?, reason))
    }

    /// Runs taken actions and undos without holding the responder (a Docker step may wait
    /// for a node agent up to `agent_timeout_secs`; lists, approvals and other actions go on
    /// meanwhile), then records each outcome. The first error writing the log is returned
    /// after every run was recorded or tried.
    fn run_unlocked(
        &self,
        runs: Vec<(Run, String)>,
        records: &mut Vec<LogRecord>,
    ) -> Result<(), ResponderError> {
        let mut first_error = None;
        for (run, reason) in runs {
            let executor = self.executor(reason);
            let result = run.run(&executor);
            let finished = self.lock().finish(&run, &result, Utc::now());
            match finished {
                Ok(record) => {
                    self.note(&record);
                    match record.kind {
                        RecordKind::Failed | RecordKind::UndoFailed => {
                            tracing::warn!(action = %run.id, detail = %record.detail, "containment step failed");
                        }
                        _ => {
                            tracing::info!(action = %run.id, kind = ?record.kind, "containment step done")
                        }
                    }
                    records.push(record);
                }
                Err(error) => {
                    tracing::error!(%error, action = %run.id, "containment outcome not recorded");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Offers an alert; runs what may run now; returns the records and, for the actions
    /// that wait for approval, `approval_needed` notices (with the signed link, made
    /// absolute with `public_url` when the responder's own links are relative). Blocking:
    /// call from a blocking thread inside the runtime.
    fn offer(
        &self,
        offer: &Offer,
        public_url: Option<&str>,
    ) -> (Vec<LogRecord>, Vec<crowsnest_notify::Notice>) {
        let mut responder = self.lock();
        let offered = match responder.offer(
            &offer.alert,
            offer.incident.as_ref(),
            &NoInventory,
            Utc::now(),
        ) {
            Ok(offered) => offered,
            Err(error) => {
                tracing::error!(%error, alert = %offer.alert.id, "containment: the action log cannot be written; nothing is run");
                return (Vec::new(), Vec::new());
            }
        };
        let mut records = offered.records;
        let mut notices = Vec::new();
        let ttl =
            i64::try_from(responder.planner().config().approval_link_ttl_secs).unwrap_or(i64::MAX);
        for (id, link) in &offered.links {
            tracing::warn!(action = %id, %link, "containment action waits for approval");
            let (Some(incident), Some(tracked)) = (&offer.incident, responder.get(id)) else {
                continue;
            };
            let link = match public_url {
                Some(base) if link.starts_with('/') => {
                    format!("{}{link}", base.trim_end_matches('/'))
                }
                _ => link.clone(),
            };
            let action = serde_json::to_value(tracked.action.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            notices.push(crowsnest_notify::Notice::of_approval(
                incident,
                crowsnest_notify::ApprovalRequest {
                    action_id: id.clone(),
                    action,
                    target: tracked.action.target.describe(),
                    playbook: tracked.action.playbook.clone(),
                    link,
                    expires: Utc::now() + chrono::Duration::seconds(ttl),
                },
            ));
        }
        let mut runs = Vec::new();
        for id in &offered.run {
            match Self::take(&mut responder, id) {
                Ok(run) => runs.push(run),
                Err(error) => {
                    tracing::error!(%error, action = %id, "containment action not executed")
                }
            }
        }
        drop(responder);
        let _ = self.run_unlocked(runs, &mut records);
        (records, notices)
    }

    /// Approves (and runs) an action. Blocking.
    ///
    /// # Errors
    ///
    /// The responder's refusal (forged, expired or replayed token; unknown action; not
    /// waiting for approval).
    pub fn approve(
        &self,
        approval: &Approval,
        actor: &str,
    ) -> Result<(Value, Vec<LogRecord>), ResponderError> {
        let (id, mut records, run) = {
            let mut responder = self.lock();
            let now = Utc::now();
            let (action, records) = match approval {
                Approval::Token(token) => responder.approve_token(token, actor, now)?,
                Approval::Id(id) => responder.approve(id, actor, "api", now)?,
            };
            let run = Self::take(&mut responder, &action.id)?;
            (action.id, records, run)
        };
        self.run_unlocked(vec![run], &mut records)?;
        let state = self
            .lock()
            .get(&id)
            .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        Ok((state, records))
    }

    /// Rejects a waiting action (it never runs; its link stops working). Blocking.
    ///
    /// # Errors
    ///
    /// The responder's refusal (forged, expired or replayed token; unknown action; not
    /// waiting for approval).
    pub fn reject(
        &self,
        approval: &Approval,
        actor: &str,
        reason: &str,
    ) -> Result<(Value, Vec<LogRecord>), ResponderError> {
        let mut responder = self.lock();
        let now = Utc::now();
        let (action, records) = match approval {
            Approval::Token(token) => responder.reject_token(token, actor, reason, now)?,
            Approval::Id(id) => responder.reject(id, actor, "api", reason, now)?,
        };
        let state = responder
            .get(&action.id)
            .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        Ok((state, records))
    }

    /// Undoes an executed action as `actor`. Blocking.
    ///
    /// # Errors
    ///
    /// The responder's refusal (unknown, not executed, irreversible, running now).
    pub fn undo(&self, id: &str, actor: &str) -> Result<(Value, Vec<LogRecord>), ResponderError> {
        let run = self.lock().begin_undo(id, actor)?;
        let mut records = Vec::new();
        self.run_unlocked(
            vec![(run, format!("undo of {id} by {actor}"))],
            &mut records,
        )?;
        let state = self
            .lock()
            .get(id)
            .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        Ok((state, records))
    }

    /// Takes what a stop left undone: actions ready (automatic or approved) but never
    /// executed, when they became ready within `resume_within_secs`; older ones are recorded
    /// as failed with the reason.
    fn take_stranded(
        &self,
        responder: &mut Responder,
        runs: &mut Vec<(Run, String)>,
        records: &mut Vec<LogRecord>,
    ) {
        let now = Utc::now();
        let within = chrono::Duration::seconds(
            i64::try_from(responder.planner().config().resume_within_secs).unwrap_or(i64::MAX),
        );
        let mut resumed = self
            .resumed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (id, since) in responder.stranded() {
            if !resumed.insert(id.clone()) {
                continue;
            }
            if now - since <= within {
                tracing::warn!(action = %id, ready_since = %since, "containment action was ready when the server stopped; running it now");
                match Self::take(responder, &id) {
                    Ok(run) => runs.push(run),
                    Err(error) => {
                        tracing::error!(%error, action = %id, "containment action not executed")
                    }
                }
                continue;
            }
            let reason = format!(
                "not run: ready since {since} when the server stopped, longer ago than respond.resume_within_secs ({} s); the situation may have changed, so plan it again or act by hand",
                within.num_seconds()
            );
            match responder.abandon(&id, &reason, now) {
                Ok(record) => {
                    tracing::warn!(action = %id, "{reason}");
                    records.push(record);
                }
                Err(error) => tracing::error!(%error, action = %id, "stranded action not recorded"),
            }
        }
    }

    /// Undoes every action whose TTL ran out, and resumes stranded ones. Blocking.
    fn undo_due(&self) -> Vec<LogRecord> {
        let mut records = Vec::new();
        let mut runs = Vec::new();
        {
            let mut responder = self.lock();
            self.take_stranded(&mut responder, &mut runs, &mut records);
            for id in responder.due_undos(Utc::now()) {
                match responder.begin_undo(&id, "ttl") {
                    Ok(run) => runs.push((run, format!("TTL of {id}"))),
                    Err(error) => tracing::warn!(%error, action = %id, "TTL undo not possible"),
                }
            }
        }
        let _ = self.run_unlocked(runs, &mut records);
        records
    }
}

/// The hook the detector calls: copies what the guards need from the alert's event
/// (`container.labels.*`, `container.network.mode`, `container.networks`) into the alert's
/// entity and queues it, never blocking the detector.
pub fn hook(tx: mpsc::Sender<Offer>) -> crate::detection::RespondHook {
    Box::new(
        move |alert: &Alert, incident: Option<&Incident>, event: &Event| {
            let mut alert = alert.clone();
            let same = match (
                alert.entity.get("container.id"),
                event.get_str("container.id"),
            ) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if same {
                if let Some(labels) = event.get("container.labels").and_then(Value::as_object) {
                    for (key, value) in labels {
                        if let Some(text) = value.as_str() {
                            alert
                                .entity
                                .insert(format!("container.labels.{key}"), text.to_string());
                        }
                    }
                }
                for field in ["container.network.mode", "container.networks"] {
                    if let Some(text) = event.get_str(field) {
                        alert.entity.insert(field.to_string(), text.to_string());
                    }
                }
            }
            let offer = Offer {
                alert,
                incident: incident.cloned(),
            };
            if let Err(error) = tx.try_send(offer) {
                tracing::warn!(%error, "containment queue full or closed: an alert is not offered to the playbooks (it is stored; `crowsnest respond simulate` replays it)");
            }
        },
    )
}

/// Submits action-log records as `crowsnest.response` events.
pub async fn submit(state: &AppState, records: Vec<LogRecord>) {
    if records.is_empty() {
        return;
    }
    let decoded = Decoded {
        events: records.iter().map(LogRecord::to_event).collect(),
        errors: Vec::new(),
    };
    if let Err(error) = state
        .pipeline
        .submit_decoded(decoded, "crowsnest", Admission::Wait)
        .await
    {
        tracing::warn!(%error, "containment records not stored as events (the action log keeps them)");
    }
}

/// The responder's task: offers, executions, TTL undos.
pub fn spawn(state: Arc<AppState>, mut rx: mpsc::Receiver<Offer>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(UNDO_EVERY);
        loop {
            let respond = state.respond.clone();
            let records = tokio::select! {
                offer = rx.recv() => {
                    let Some(offer) = offer else { break };
                    let notify = state.notify.clone();
                    let public_url = state.config.notify.public_url.clone();
                    tokio::task::spawn_blocking(move || {
                        let (records, notices) = respond.offer(&offer, public_url.as_deref());
                        // Announced before the records are stored: the outbox journal is
                        // durable, and its ledger sends each action's notice once.
                        if let Some(outbox) = notify {
                            notices.iter().for_each(|notice| outbox.offer(notice));
                        }
                        records
                    })
                    .await
                }
                _ = ticker.tick() => {
                    tokio::task::spawn_blocking(move || respond.undo_due()).await
                }
            };
            match records {
                Ok(records) => submit(&state, records).await,
                Err(error) => tracing::error!(%error, "containment task failed"),
            }
        }
    });
}

/// The channel the detector's hook feeds.
pub fn channel() -> (mpsc::Sender<Offer>, mpsc::Receiver<Offer>) {
    mpsc::channel(QUEUE)
}

/// Runs one action's operations: Docker through the node's agent, HTTP through the
/// Kubernetes API server.
struct ActionExecutor<'a> {
    respond: &'a Respond,
    handle: tokio::runtime::Handle,
    reason: String,
    /// The agent's evidence result of this action (its inspect and files).
    evidence: Mutex<Option<CommandResult>>,
}

impl ActionExecutor<'_> {
    fn command(&self, node: &str, op: ContainerOp, container: &str) -> AgentCommand {
        let ttl = chrono::Duration::from_std(self.respond.timeout)
            .unwrap_or_else(|_| chrono::Duration::seconds(30));
        let mut command = AgentCommand::new(node, op, container, self.reason.clone(), ttl);
        command.issued_by = Some("respond".into());
        command
    }

    /// Queues a command for the agent and waits for its result.
    fn run(&self, command: AgentCommand) -> Result<CommandResult, ExecError> {
        let (node, op, container) = (command.node.clone(), command.op, command.container.clone());
        let id = self
            .respond
            .queue
            .enqueue(command)
            .map_err(|e| ExecError::Other(format!("queueing {op} for node `{node}`: {e}")))?;
        let timeout = self.respond.timeout;
        let result = self
            .handle
            .block_on(self.respond.queue.wait_result(&id, timeout));
        match result {
            None => Err(ExecError::Other(format!(
                "no agent of node `{node}` carried out {op} of `{container}` within {} s (is an agent running with --node {node}?); the command expires unexecuted",
                timeout.as_secs()
            ))),
            Some(result) if !result.ok => Err(ExecError::Other(format!(
                "agent of node `{node}`: {op} of `{container}`: {}",
                result.error.as_deref().unwrap_or("failed")
            ))),
            Some(result) => Ok(result),
        }
    }

    fn docker(&self, call: &DockerCall) -> Result<Vec<u8>, ExecError> {
        let node = call
            .node
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| {
                ExecError::Other(format!(
                    "no node is known for container `{}` (the alert has no host.name or kubernetes.node.name)",
                    call.container
                ))
            })?;
        let simple = |op: ContainerOp| -> Result<Vec<u8>, ExecError> {
            let result = self.run(self.command(node, op, &call.container))?;
            Ok(serde_json::to_vec(&result).unwrap_or_default())
        };
        match &call.op {
            DockerOp::Inspect => {
                let mut command = self.command(node, ContainerOp::Evidence, &call.container);
                command.evidence = true;
                command.export = self.respond.export;
                let result = self.run(command)?;
                let inspect = result.inspect.clone().ok_or_else(|| {
                    ExecError::Other(format!(
                        "the agent of node `{node}` sent no inspect output (an agent older than the server?)"
                    ))
                })?;
                *self
                    .evidence
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
                Ok(serde_json::to_vec(&inspect).unwrap_or_default())
            }
            DockerOp::Logs { .. } | DockerOp::Top | DockerOp::Diff | DockerOp::Export => {
                let name = match &call.op {
                    DockerOp::Logs { .. } => "logs.txt",
                    DockerOp::Top => "top.json",
                    DockerOp::Diff => "diff.json",
                    _ => "export.tar",
                };
                let guard = self
                    .evidence
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(result) = guard.as_ref() else {
                    return Err(ExecError::Other(
                        "evidence is taken with the inspect, which did not run first".into(),
                    ));
                };
                let file = result.evidence.iter().find(|f| f.name == name);
                let notes: Vec<&String> =
                    result.notes.iter().filter(|n| n.contains(name)).collect();
                // The file stays on the node; its SHA-256 is in this answer (and so in the log).
                Ok(serde_json::to_vec(&json!({
                    "node": result.node, "agent_command": result.id, "file": file, "notes": notes,
                }))
                .unwrap_or_default())
            }
            DockerOp::Pause => simple(ContainerOp::Pause),
            DockerOp::Unpause => simple(ContainerOp::Unpause),
            DockerOp::Stop { .. } => simple(ContainerOp::Stop),
            DockerOp::Start => simple(ContainerOp::Start),
            DockerOp::Kill { .. } => simple(ContainerOp::Kill),
            // The agent disconnects every network (remembering them; refused on the host's
            // network); a second disconnect finds none left and succeeds with a note.
            DockerOp::DisconnectAll | DockerOp::Disconnect { .. } => {
                simple(ContainerOp::Quarantine)
            }
            DockerOp::Connect { network, endpoint } => {
                let mut command = self.command(node, ContainerOp::Release, &call.container);
                command.networks = vec![attachment(network, endpoint)];
                let result = self.run(command)?;
                Ok(serde_json::to_vec(&result).unwrap_or_default())
            }
        }
    }
}

/// The agent's attachment from a remembered `EndpointSettings`.
fn attachment(network: &str, endpoint: &Value) -> NetworkAttachment {
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    NetworkAttachment {
        network: network.to_string(),
        network_id: None,
        aliases: strings(&endpoint["Aliases"]),
        ipv4_address: text(endpoint.pointer("/IPAMConfig/IPv4Address")),
        ipv6_address: text(endpoint.pointer("/IPAMConfig/IPv6Address")),
        links: strings(&endpoint["Links"]),
    }
}

impl Executor for ActionExecutor<'_> {
    fn execute(&self, operation: &Operation) -> Result<Vec<u8>, ExecError> {
        match operation {
            Operation::Docker(call) => self.docker(call),
            Operation::Http(_) => match &self.respond.k8s {
                Some(k8s) => k8s.execute(operation),
                None => Err(ExecError::Unsupported(format!(
                    "{} (no [respond.kubernetes] url is configured)",
                    operation.describe()
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_endpoints_become_attachments() {
        let endpoint = json!({"Aliases": ["web", "api"], "IPAMConfig": {"IPv4Address": "10.1.0.9"},
                              "Links": null, "NetworkID": "abc"});
        let a = attachment("backend", &endpoint);
        assert_eq!(a.network, "backend");
        assert_eq!(a.aliases, ["web", "api"]);
        assert_eq!(a.ipv4_address.as_deref(), Some("10.1.0.9"));
        assert!(a.ipv6_address.is_none() && a.links.is_empty());
        let bare = attachment("bridge", &Value::Null);
        assert!(bare.aliases.is_empty() && bare.ipv4_address.is_none());
    }
}
