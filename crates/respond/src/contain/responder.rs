//! [`Responder`]: what the server drives. It plans (through the [`Planner`]), logs every step
//! in the [`ActionLog`], keeps actions waiting for approval, checks approvals, records what
//! executing did and undoes actions when their TTL runs out. It executes nothing itself
//! unless asked with an [`Executor`] ([`Responder::execute`], [`Responder::undo`]); every
//! method returns the log records it wrote, to be submitted as events
//! ([`LogRecord::to_event`]).
//!
//! Files in its directory (`<data dir>/respond`): `actions.jsonl` (the log), `breaker` (the
//! circuit breaker's times), `approval.key` and `approval-nonces`, `evidence/<action id>/`
//! (the answers of the Docker evidence calls, each named with its SHA-256 prefix; the log
//! holds the full hash). After a restart the state
//! of every action is rebuilt from the log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use crowsnest_model::Alert;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;

use super::approval::{ApprovalError, Approvals};
use super::guard::CircuitBreaker;
use super::log::{ActionLog, LogError, LogRecord, RecordKind};
use super::playbook::{Planner, RespondConfig};
use super::target::Inventory;
use super::{
    run_operations, run_operations_with, DockerCall, ExecError, Executor, Failure, Memory,
    Operation, Outcome, PlannedAction, Verdict,
};
use crate::Incident;

/// Most actions tracked; past it the oldest finished ones are forgotten (the log keeps them).
const MAX_TRACKED: usize = 10_000;

/// Where an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Dry-run: shown, never run.
    DryRun,
    /// Refused by a guard.
    Refused,
    /// Waiting for an approval.
    Pending,
    /// Approved or automatic, not executed yet.
    Ready,
    /// Executed.
    Executed,
    /// An operation failed.
    Failed,
    /// Undone.
    Undone,
    /// Someone rejected it while it waited for approval: it never runs.
    Rejected,
}

/// An action and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    /// The plan.
    pub action: PlannedAction,
    /// Where it is.
    pub state: State,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// What the execution remembered for the undo.
    pub memory: Memory,
    /// When the TTL undoes it.
    pub undo_at: Option<DateTime<Utc>>,
    /// When it became ready to run (planned automatic, or approved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<DateTime<Utc>>,
}

/// Why the responder refused.
#[derive(Debug, thiserror::Error)]
pub enum ResponderError {
    /// The log.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The approval (its reason is logged as `approval_refused`).
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// No such action.
    #[error("no action `{0}`")]
    Unknown(String),
    /// The action is not where the request needs it.
    #[error("action `{id}` is {state:?}: {reason}")]
    State {
        /// The action.
        id: String,
        /// Its state.
        state: State,
        /// What was asked.
        reason: String,
    },
    /// Its undo cannot be built.
    #[error(transparent)]
    Undo(#[from] super::UndoError),
    /// Files of the responder's directory.
    #[error("respond state `{path}`: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What [`Responder::offer`] did.
#[derive(Debug, Default)]
pub struct Offered {
    /// The new actions (one alert offered again plans nothing new).
    pub planned: Vec<PlannedAction>,
    /// Of those, the ones to execute now (verdict `run`).
    pub run: Vec<String>,
    /// Approval links of the ones waiting for approval (action id, link).
    pub links: Vec<(String, String)>,
    /// The records written.
    pub records: Vec<LogRecord>,
}

/// Plans, logs, approves and undoes; see the module doc.
#[derive(Debug)]
pub struct Responder {
    planner: Planner,
    breaker: CircuitBreaker,
    approvals: Approvals,
    log: ActionLog,
    actions: BTreeMap<String, Tracked>,
    /// Actions (or undos) whose operations run now, outside the caller's lock.
    running: BTreeSet<String>,
    /// Where evidence goes (`<dir>/evidence/<action id>/`); none in memory.
    dir: Option<PathBuf>,
}

/// Stores one evidence answer (a Docker evidence call's body) as
/// `<dir>/<step>-<op>-<sha256 prefix>`, readable by its owner only; other answers are not
/// kept.
fn keep_evidence(
    dir: Option<&Path>,
    step: usize,
    operation: &Operation,
    body: &[u8],
) -> Result<Option<String>, ExecError> {
    let (Some(dir), Operation::Docker(DockerCall { op, .. })) = (dir, operation) else {
        return Ok(None);
    };
    if !op.is_evidence() {
        return Ok(None);
    }
    let name = serde_json::to_value(op)
        .ok()
        .and_then(|v| v.get("op").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| "evidence".into());
    let digest = hex::encode(sha2::Sha256::digest(body));
    let path = dir.join(format!("{step:02}-{name}-{}", &digest[..16]));
    std::fs::create_dir_all(dir)
        .and_then(|()| crowsnest_util::AtomicWrite::default().write(&path, body))
        .map_err(|e| {
            ExecError::Other(format!(
                "keeping evidence in `{}`: {e}; nothing was changed",
                path.display()
            ))
        })?;
    Ok(Some(path.display().to_string()))
}

impl Responder {
    /// Opens the responder's files in `dir`, rebuilding every action's state from the log.
    ///
    /// # Errors
    ///
    /// [`ResponderError`] when a file cannot be read or the log does not verify.
    pub fn open(dir: &Path, config: RespondConfig) -> Result<Self, ResponderError> {
        let log_path = dir.join("actions.jsonl");
        let log = ActionLog::open(&log_path)?;
        let breaker = CircuitBreaker::open(dir.join("breaker"), &config.guards).map_err(|e| {
            ResponderError::Io {
                path: dir.join("breaker"),
                message: e.to_string(),
            }
        })?;
        let approvals = Approvals::open(dir)?;
        let mut responder = Self {
            planner: Planner::new(config),
            breaker,
            approvals,
            log,
            actions: BTreeMap::new(),
            running: BTreeSet::new(),
            dir: Some(dir.to_path_buf()),
        };
        for record in ActionLog::read_all(&log_path)? {
            responder.apply(&record);
        }
        Ok(responder)
    }

    /// A responder that writes nothing (`crowsnest respond simulate`, tests); approvals are
    /// signed with `key`.
    pub fn in_memory(config: RespondConfig, key: &[u8]) -> Self {
        Self {
            breaker: CircuitBreaker::in_memory(&config.guards),
            planner: Planner::new(config),
            approvals: Approvals::in_memory(key),
            log: ActionLog::in_memory(),
            actions: BTreeMap::new(),
            running: BTreeSet::new(),
            dir: None,
        }
    }

    /// The planner (and its config).
    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// An action by id.
    pub fn get(&self, id: &str) -> Option<&Tracked> {
        self.actions.get(id)
    }

    /// Every tracked action, by id.
    pub fn actions(&self) -> impl Iterator<Item = &Tracked> {
        self.actions.values()
    }

    /// Updates the state from one log record (at open, and as each record is written).
    fn apply(&mut self, record: &LogRecord) {
        let id = &record.action_id;
        match record.kind {
            RecordKind::Planned | RecordKind::Refused => {
                if let Ok(action) = serde_json::from_value::<PlannedAction>(record.detail.clone()) {
                    let state = match action.decision.verdict {
                        Verdict::Run => State::Ready,
                        Verdict::AwaitApproval => State::Pending,
                        Verdict::DryRun => State::DryRun,
                        Verdict::Refused => State::Refused,
                    };
                    self.actions.insert(
                        id.clone(),
                        Tracked {
                            action,
                            state,
                            approved_by: None,
                            memory: Memory::new(),
                            undo_at: None,
                            ready_at: (state == State::Ready).then_some(record.at),
                        },
                    );
                    self.bound();
                }
            }
            RecordKind::Approved => {
                if let Some(t) = self.actions.get_mut(id) {
                    t.state = State::Ready;
                    t.approved_by.clone_from(&record.actor);
                    t.ready_at = Some(record.at);
                }
            }
            RecordKind::Executed => {
                if let Some(t) = self.actions.get_mut(id) {
                    t.state = State::Executed;
                    if let Some(memory) = record
                        .detail
                        .get("memory")
                        .and_then(|m| serde_json::from_value(m.clone()).ok())
                    {
                        t.memory = memory;
                    }
                    t.undo_at = record
                        .detail
                        .get("undo_at")
                        .and_then(|v| serde_json::from_value(v.clone()).ok());
                }
            }
            RecordKind::Failed => {
                if let Some(t) = self.actions.get_mut(id) {
                    t.state = State::Failed;
                }
            }
            RecordKind::Rejected => {
                if let Some(t) = self.actions.get_mut(id) {
                    t.state = State::Rejected;
                }
            }
            RecordKind::Undone => {
                if let Some(t) = self.actions.get_mut(id) {
                    t.state = State::Undone;
                    t.undo_at = None;
                }
            }
            RecordKind::ApprovalRefused | RecordKind::UndoFailed => {}
        }
    }

    /// Forgets the oldest finished actions past [`MAX_TRACKED`].
    fn bound(&mut self) {
        if self.actions.len() <= MAX_TRACKED {
            return;
        }
        let mut finished: Vec<(DateTime<Utc>, String)> = self
            .actions
            .values()
            .filter(|t| {
                matches!(
                    t.state,
                    State::DryRun
                        | State::Refused
                        | State::Failed
                        | State::Undone
                        | State::Rejected
                ) || (t.state == State::Executed && t.undo_at.is_none())
            })
            .map(|t| (t.action.planned_at, t.action.id.clone()))
            .collect();
        finished.sort();
        let over = self.actions.len() - MAX_TRACKED;
        for (_, id) in finished.into_iter().take(over) {
            self.actions.remove(&id);
        }
    }

    fn write(
        &mut self,
        now: DateTime<Utc>,
        kind: RecordKind,
        id: &str,
        actor: Option<&str>,
        detail: Value,
    ) -> Result<LogRecord, ResponderError> {
        let record = self.log.append(now, kind, id, actor, detail)?;
        self.apply(&record);
        Ok(record)
    }

    /// Plans for `alert` (and its incident), logs each new action (`planned`, or `refused`)
    /// and says which to run now and which wait for approval (with their links).
    ///
    /// # Errors
    ///
    /// [`ResponderError::Log`] when the log cannot be written: nothing is then to be run.
    pub fn offer(
        &mut self,
        alert: &Alert,
        incident: Option<&Incident>,
        inventory: &dyn Inventory,
        now: DateTime<Utc>,
    ) -> Result<Offered, ResponderError> {
        let mut offered = Offered::default();
        let actions = &self.actions;
        let planned =
            self.planner
                .plan_new(alert, incident, inventory, &mut self.breaker, now, &|id| {
                    actions.contains_key(id)
                });
        for action in planned {
            let kind = if action.decision.verdict == Verdict::Refused {
                RecordKind::Refused
            } else {
                RecordKind::Planned
            };
            let detail = serde_json::to_value(&action).unwrap_or(Value::Null);
            offered
                .records
                .push(self.write(now, kind, &action.id, None, detail)?);
            match action.decision.verdict {
                Verdict::Run => offered.run.push(action.id.clone()),
                Verdict::AwaitApproval => {
                    offered
                        .links
                        .push((action.id.clone(), self.approval_link(&action.id, now)));
                }
                _ => {}
            }
            offered.planned.push(action);
        }
        Ok(offered)
    }

    /// A signed one-click approval link for `id`, valid `approval_link_ttl_secs` from `now`:
    /// `<public_url>/api/v1/respond/approve?token=<token>`.
    pub fn approval_link(&self, id: &str, now: DateTime<Utc>) -> String {
        let ttl = i64::try_from(self.planner.config().approval_link_ttl_secs).unwrap_or(3600);
        let token = self.approvals.sign(id, now + Duration::seconds(ttl));
        let base = self
            .planner
            .config()
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        format!("{base}/api/v1/respond/approve?token={token}")
    }

    /// A signed token for `id` (what [`Responder::approval_link`] carries).
    pub fn approval_token(&self, id: &str, expires: DateTime<Utc>) -> String {
        self.approvals.sign(id, expires)
    }

    /// Approves with a signed token (one-click link). A refused token is logged
    /// (`approval_refused`, with the reason) and returned as the error.
    ///
    /// # Errors
    ///
    /// [`ResponderError::Approval`] (forged, expired, replayed, malformed), or the action is
    /// unknown or not waiting for approval.
    pub fn approve_token(
        &mut self,
        token: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(PlannedAction, Vec<LogRecord>), ResponderError> {
        let id = self.verify_token(token, actor, now)?;
        self.approve(&id, actor, "signed link", now)
    }

    /// Rejects with a signed token (the link's holder may approve or reject, once).
    ///
    /// # Errors
    ///
    /// As [`Responder::approve_token`].
    pub fn reject_token(
        &mut self,
        token: &str,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(PlannedAction, Vec<LogRecord>), ResponderError> {
        let id = self.verify_token(token, actor, now)?;
        self.reject(&id, actor, "signed link", reason, now)
    }

    /// The action a signed token names; a refused token is logged (`approval_refused`).
    fn verify_token(
        &mut self,
        token: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<String, ResponderError> {
        match self.approvals.verify(token, now) {
            Ok(approved) => Ok(approved.action_id),
            Err(error) => {
                let id = token.split('.').nth(1).unwrap_or("unknown").to_string();
                let id = if self.actions.contains_key(&id) {
                    id
                } else {
                    "unknown".into()
                };
                self.write(
                    now,
                    RecordKind::ApprovalRefused,
                    &id,
                    Some(actor),
                    json!({"reason": error.to_string()}),
                )?;
                Err(error.into())
            }
        }
    }

    /// Rejects action `id` as `actor` (the caller checks the right to respond): it never
    /// runs, and its approval link stops working. `reason` is kept in the log.
    ///
    /// # Errors
    ///
    /// [`ResponderError::Unknown`], or [`ResponderError::State`] when it does not wait for
    /// approval.
    pub fn reject(
        &mut self,
        id: &str,
        actor: &str,
        how: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(PlannedAction, Vec<LogRecord>), ResponderError> {
        let action = self.pending(id, "rejected")?.action.clone();
        let record = self.write(
            now,
            RecordKind::Rejected,
            id,
            Some(actor),
            json!({"action": action.action, "via": how, "reason": reason}),
        )?;
        Ok((action, vec![record]))
    }

    /// The action `id` when it waits for approval (else why not, for `verb`).
    fn pending(&self, id: &str, verb: &str) -> Result<&Tracked, ResponderError> {
        let tracked = self
            .actions
            .get(id)
            .ok_or_else(|| ResponderError::Unknown(id.into()))?;
        if tracked.state != State::Pending {
            return Err(ResponderError::State {
                id: id.into(),
                state: tracked.state,
                reason: format!("only an action waiting for approval can be {verb}"),
            });
        }
        Ok(tracked)
    }

    /// Approves action `id` as `actor` (a user or token with the right to respond: the
    /// caller checks it). Returns the action, now ready to execute.
    ///
    /// # Errors
    ///
    /// [`ResponderError::Unknown`], or [`ResponderError::State`] when it does not wait for
    /// approval.
    pub fn approve(
        &mut self,
        id: &str,
        actor: &str,
        how: &str,
        now: DateTime<Utc>,
    ) -> Result<(PlannedAction, Vec<LogRecord>), ResponderError> {
        let action = self.pending(id, "approved")?.action.clone();
        let record = self.write(
            now,
            RecordKind::Approved,
            id,
            Some(actor),
            json!({"action": action.action, "via": how}),
        )?;
        Ok((action, vec![record]))
    }

    /// Records what executing a ready action did (`executed` with the steps, their answers'
    /// SHA-256 and the undo's memory, or `failed`).
    ///
    /// # Errors
    ///
    /// [`ResponderError`] when the action is unknown or not ready, or the log fails.
    pub fn record_outcome(
        &mut self,
        id: &str,
        result: &Result<Outcome, Box<Failure>>,
        now: DateTime<Utc>,
    ) -> Result<LogRecord, ResponderError> {
        let tracked = self.ready(id)?;
        let action = tracked.action.action;
        let actor = tracked.approved_by.clone().unwrap_or_else(|| "auto".into());
        match result {
            Ok(outcome) => {
                let undo_at = tracked
                    .action
                    .ttl_secs
                    .and_then(|s| i64::try_from(s).ok())
                    .map(|s| now + Duration::seconds(s));
                self.write(
                    now,
                    RecordKind::Executed,
                    id,
                    Some(&actor),
                    json!({"action": action, "steps": outcome.steps, "memory": outcome.memory, "undo_at": undo_at}),
                )
            }
            Err(failure) => self.write(
                now,
                RecordKind::Failed,
                id,
                Some(&actor),
                json!({"action": action, "steps": failure.outcome.steps, "error": failure.error.to_string()}),
            ),
        }
    }

    /// The action `id`, when it is ready to execute (automatic, or approved).
    fn ready(&self, id: &str) -> Result<&Tracked, ResponderError> {
        let tracked = self
            .actions
            .get(id)
            .ok_or_else(|| ResponderError::Unknown(id.into()))?;
        if self.running.contains(id) {
            return Err(ResponderError::State {
                id: id.into(),
                state: tracked.state,
                reason: "it is running now".into(),
            });
        }
        if tracked.state != State::Ready {
            return Err(ResponderError::State {
                id: id.into(),
                state: tracked.state,
                reason: "only an automatic or approved action is executed".into(),
            });
        }
        Ok(tracked)
    }

    /// Runs a ready action through `executor` and records the outcome.
    ///
    /// # Errors
    ///
    /// As [`Responder::record_outcome`]; a failed operation is an `Ok` `failed` record.
    pub fn execute(
        &mut self,
        id: &str,
        executor: &dyn Executor,
        now: DateTime<Utc>,
    ) -> Result<LogRecord, ResponderError> {
        let run = self.begin(id)?;
        let result = run.run(executor);
        self.finish(&run, &result, now)
    }

    /// Takes a ready action for execution without running it, so the caller can run its
    /// operations ([`Run::run`]) after releasing its lock on the responder (a Docker step
    /// may wait for a node agent for `agent_timeout_secs`) and then [`finish`](Self::finish)
    /// it. Until then the action is neither ready nor stranded: it cannot run twice.
    ///
    /// # Errors
    ///
    /// [`ResponderError`] when it is unknown, not ready, or already running.
    pub fn begin(&mut self, id: &str) -> Result<Run, ResponderError> {
        let tracked = self.ready(id)?;
        let run = Run {
            id: id.to_string(),
            operations: tracked.action.operations.clone(),
            evidence_dir: self.dir.as_ref().map(|d| d.join("evidence").join(id)),
            undo: None,
        };
        self.running.insert(id.to_string());
        Ok(run)
    }

    /// Records the outcome of a [`begin`](Self::begin)/[`begin_undo`](Self::begin_undo)
    /// run (`executed`/`failed`, or `undone`/`undo_failed`).
    ///
    /// # Errors
    ///
    /// [`ResponderError`] when the log fails.
    pub fn finish(
        &mut self,
        run: &Run,
        result: &Result<Outcome, Box<Failure>>,
        now: DateTime<Utc>,
    ) -> Result<LogRecord, ResponderError> {
        self.running.remove(&run.id);
        let Some(actor) = &run.undo else {
            return self.record_outcome(&run.id, result, now);
        };
        let action = self.actions.get(&run.id).map(|t| t.action.action);
        match result {
            Ok(outcome) => self.write(
                now,
                RecordKind::Undone,
                &run.id,
                Some(actor),
                json!({"action": action, "steps": outcome.steps}),
            ),
            Err(failure) => self.write(
                now,
                RecordKind::UndoFailed,
                &run.id,
                Some(actor),
                json!({"action": action, "steps": failure.outcome.steps, "error": failure.error.to_string()}),
            ),
        }
    }

    /// Actions left `ready` (automatic or approved) and never executed, oldest first: the
    /// server stopped between the decision and the execution's record (execution happens
    /// under the responder's lock right after the decision, so a ready action seen from
    /// outside is one of these).
    pub fn stranded(&self) -> Vec<(String, DateTime<Utc>)> {
        let mut ids: Vec<(String, DateTime<Utc>)> = self
            .actions
            .values()
            .filter(|t| t.state == State::Ready && !self.running.contains(&t.action.id))
            .map(|t| {
                let since = t.ready_at.unwrap_or(t.action.planned_at);
                (t.action.id.clone(), since)
            })
            .collect();
        ids.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        ids
    }

    /// Records that a stranded ready action is not run after all (`failed`, with `reason`):
    /// e.g. it waited longer than the server is allowed to resume.
    ///
    /// # Errors
    ///
    /// [`ResponderError`] when it is unknown or not ready, or the log fails.
    pub fn abandon(
        &mut self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<LogRecord, ResponderError> {
        let tracked = self.ready(id)?;
        let action = tracked.action.action;
        let actor = tracked.approved_by.clone().unwrap_or_else(|| "auto".into());
        self.write(
            now,
            RecordKind::Failed,
            id,
            Some(&actor),
            json!({"action": action, "steps": [], "error": reason, "abandoned": true}),
        )
    }

    /// Executed actions whose TTL has run out at `now`.
    pub fn due_undos(&self, now: DateTime<Utc>) -> Vec<String> {
        self.actions
            .values()
            .filter(|t| t.state == State::Executed && t.undo_at.is_some_and(|at| at <= now))
            .filter(|t| !self.running.contains(&t.action.id))
            .map(|t| t.action.id.clone())
            .collect()
    }

    /// The undo operations of an executed action.
    ///
    /// # Errors
    ///
    /// [`ResponderError`] when it is unknown, not executed, or cannot be undone.
    pub fn undo_operations(&self, id: &str) -> Result<Vec<Operation>, ResponderError> {
        let tracked = self
            .actions
            .get(id)
            .ok_or_else(|| ResponderError::Unknown(id.into()))?;
        if tracked.state != State::Executed {
            return Err(ResponderError::State {
                id: id.into(),
                state: tracked.state,
                reason: "only an executed action can be undone".into(),
            });
        }
        Ok(tracked.action.undo_operations(&tracked.memory)?)
    }

    /// Takes an executed action for its undo (by `actor`: a user, or `ttl`), to run outside
    /// the caller's lock like [`begin`](Self::begin); [`finish`](Self::finish) records it.
    ///
    /// # Errors
    ///
    /// [`ResponderError`] when it is unknown, not executed, cannot be undone, or runs now.
    pub fn begin_undo(&mut self, id: &str, actor: &str) -> Result<Run, ResponderError> {
        let operations = self.undo_operations(id)?;
        if self.running.contains(id) {
            return Err(ResponderError::State {
                id: id.into(),
                state: State::Executed,
                reason: "its undo is running now".into(),
            });
        }
        self.running.insert(id.to_string());
        Ok(Run {
            id: id.to_string(),
            operations,
            evidence_dir: None,
            undo: Some(actor.to_string()),
        })
    }

    /// Undoes an executed action through `executor` (`actor`: a user, or `ttl`) and records
    /// it (`undone` or `undo_failed`).
    ///
    /// # Errors
    ///
    /// [`ResponderError`] when it cannot be undone or the log fails.
    pub fn undo(
        &mut self,
        id: &str,
        executor: &dyn Executor,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<LogRecord, ResponderError> {
        let run = self.begin_undo(id, actor)?;
        let result = run.run(executor);
        self.finish(&run, &result, now)
    }
}

/// An action's operations (or its undo's) taken by [`Responder::begin`] or
/// [`Responder::begin_undo`], to run without holding the responder.
#[derive(Debug, Clone)]
pub struct Run {
    /// The action.
    pub id: String,
    operations: Vec<Operation>,
    evidence_dir: Option<PathBuf>,
    /// For an undo: who asked.
    undo: Option<String>,
}

impl Run {
    /// Runs the operations through `executor`, keeping an action's evidence files.
    pub fn run(&self, executor: &dyn Executor) -> Result<Outcome, Box<Failure>> {
        if self.undo.is_some() {
            return run_operations(executor, &self.operations);
        }
        let mut keep = |step: usize, op: &Operation, body: &[u8]| {
            keep_evidence(self.evidence_dir.as_deref(), step, op, body)
        };
        run_operations_with(executor, &self.operations, &mut keep)
    }
}
