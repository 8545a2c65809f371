//! Live detection: the detector thread between the WAL and the alerts.
//!
//! ```text
//!  WAL writer ──(acknowledged batch)──► detector thread: Detector::process ─► AlertManager
//!      ▲                                     │ new alert / folded count changed
//!      └────── try_submit (never blocks) ◄───┘ alert events, `event.kind: alert`
//! ```
//!
//! * Every acknowledged event goes through the rules in WAL order, right after its fsync, so an
//!   alert exists within milliseconds of the acknowledgement (the
//!   `crowsnest_alert_latency_seconds` histogram measures it) and is searchable after the next
//!   store commit.
//! * Alerts are events too: they go through the same WAL and store, so they survive a crash
//!   and are found by `/api/v1/search` (`event.kind:alert`) and `/api/v1/alerts`.
//! * Restart safety: every few seconds, once every alert made so far is durable, the detector
//!   writes a checkpoint (the WAL position it has processed and the correlation state) and the
//!   WAL is never truncated past it. On start the WAL is replayed into the detector from the
//!   checkpoint; alert ids are derived from the rule and the events that fired it, so alerts
//!   that were already made durable before a crash are recognised and not made twice.
//! * Rule files are polled for changes and reloaded without a restart; a broken file is reported
//!   and skipped while the others keep running.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use chrono::{DateTime, Utc};
use crowsnest_detect::{
    Alert, AlertDecision, AlertManager, Detector, K8sPrincipals, RuleSet, Suppression,
};
use crowsnest_model::{ecs, format_timestamp, record, Event};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crowsnest_respond::{Classification, Comment, Incident, Incidents, Status};

use crate::handoff::{DetectBatch, Pending, Submitter};
use crate::metrics::Metrics;

/// Detection settings (`[detect]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Run detection on the live stream.
    pub enabled: bool,
    /// Load the built-in container/Kubernetes rule pack.
    pub builtin_rules: bool,
    /// Directories (or files) of Sigma rules, loaded recursively.
    pub rule_dirs: Vec<PathBuf>,
    /// Repeats of an alert (same rule, same entity) within this many seconds are folded into
    /// one alert with a count.
    pub fold_window_secs: u64,
    /// Known-good activity to silence (by rule and field values, with a reason and expiry).
    pub suppressions: Vec<Suppression>,
    /// Seconds between detector checkpoints.
    pub checkpoint_interval_secs: u64,
    /// Seconds between checks of the rule files for changes (0: never reload).
    pub reload_interval_secs: u64,
    /// The principals the built-in Kubernetes rules treat as the control plane and as
    /// operators (`[detect.kubernetes]`: `system_principals`, `operators` replace the shipped
    /// lists, `extra_operators` adds to them).
    pub kubernetes: K8sPrincipals,
    /// How alerts group into incidents (`[detect.incidents]`).
    pub incidents: crowsnest_respond::IncidentConfig,
    /// Most stored events a baseline rule that has not started learning (new, or reset) is
    /// back-filled from at start and at rule reload (the newest of its learning window;
    /// 0: no warm start, the rule learns from the live stream only).
    pub baseline_warm_start_events: usize,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            builtin_rules: true,
            rule_dirs: Vec::new(),
            fold_window_secs: 300,
            suppressions: Vec::new(),
            checkpoint_interval_secs: 5,
            reload_interval_secs: 5,
            kubernetes: K8sPrincipals::default(),
            incidents: crowsnest_respond::IncidentConfig::default(),
            baseline_warm_start_events: 50_000,
        }
    }
}

/// What `/api/v1/rules` shows of the loaded rules.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RulesStatus {
    /// Rules (and correlations) running.
    pub loaded: usize,
    /// Files that could not be used, with the reason.
    pub problems: Vec<String>,
    /// When the rules were last (re)loaded.
    pub loaded_at: Option<String>,
}

/// Shared view of the detector for the API.
#[derive(Default)]
pub struct DetectionStatus {
    rules: Mutex<RulesStatus>,
    reload_requested: std::sync::atomic::AtomicBool,
    /// The incidents, kept by the detector thread (the API reads them here).
    incidents: Mutex<Incidents>,
    /// Questions about the baselines, answered by the detector thread.
    pub baselines: crate::baselines::BaselineQueries,
}

/// The dataset of incident actions (acknowledge, resolve, comment, ...): events in the WAL that
/// the detector applies in order, so a replay rebuilds the same incidents.
pub const INCIDENT_ACTION_DATASET: &str = "crowsnest.incident_action";

/// An action on an incident, as the API submits it (the event's `incident.*` fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentAction {
    /// The incident.
    pub id: String,
    /// `acknowledge`, `investigate`, `resolve`, `assign` or `comment`.
    pub action: String,
    /// For `resolve`: `true_positive`, `benign_true_positive` or `false_positive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// For `assign` (or with any status change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// For `comment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Who did it (the token's name).
    pub by: String,
}

impl IncidentAction {
    /// The event the API submits for this action.
    pub fn to_event(&self) -> Event {
        let mut event = Event::default();
        event.set(ecs::EVENT_KIND, Value::String("event".into()));
        event.set(
            ecs::EVENT_DATASET,
            Value::String(INCIDENT_ACTION_DATASET.into()),
        );
        event.set(ecs::EVENT_MODULE, Value::String("crowsnest".into()));
        event.set(
            ecs::EVENT_ACTION,
            Value::String(format!("incident-{}", self.action)),
        );
        event.set("user.name", Value::String(self.by.clone()));
        event.set(
            ecs::MESSAGE,
            Value::String(format!("{} {} incident {}", self.by, self.action, self.id)),
        );
        if let Ok(value) = serde_json::to_value(self) {
            event.set("incident", value);
        }
        event
    }

    fn of(event: &Event) -> Option<Self> {
        if event.get_str(ecs::EVENT_DATASET) != Some(INCIDENT_ACTION_DATASET) {
            return None;
        }
        serde_json::from_value(event.get("incident")?.clone()).ok()
    }
}

impl DetectionStatus {
    /// The loaded rules.
    pub fn rules(&self) -> RulesStatus {
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `read` on the incidents (riskiest first via [`Incidents::list`]) under their lock:
    /// for summaries, without copying every incident's alerts.
    pub fn with_incidents<R>(&self, read: impl FnOnce(&Incidents) -> R) -> R {
        read(&self.lock_incidents())
    }

    /// One incident.
    pub fn incident(&self, id: &str) -> Option<Incident> {
        self.lock_incidents().get(id).cloned()
    }

    fn lock_incidents(&self) -> std::sync::MutexGuard<'_, Incidents> {
        self.incidents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the detector to reload its rules now.
    pub fn request_reload(&self) {
        self.reload_requested.store(true, Ordering::SeqCst);
    }

    fn set(&self, status: RulesStatus) {
        *self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = status;
    }
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    /// One past the last WAL position processed.
    next: u64,
    /// The detector's correlation state (opaque bytes from crowsnest-detect).
    state: Vec<u8>,
    /// The incidents (absent in checkpoints of earlier versions).
    #[serde(default)]
    incidents: Option<Incidents>,
}

/// The detector, its alert lifecycle and its checkpoint; runs on its own thread.
pub struct Worker {
    config: DetectionConfig,
    detector: Detector,
    alerts: AlertManager,
    checkpoint_path: PathBuf,
    /// One past the last position the checkpoint covers.
    checkpointed: u64,
    /// One past the last position processed.
    processed: u64,
    /// Alert events made but not yet handed to the WAL.
    unsent: Vec<Event>,
    /// Alert batches handed to the WAL whose fsync has not been confirmed yet.
    inflight: Vec<Pending>,
    /// Ids of alerts found durable in the WAL during replay (not to be made twice).
    durable_ids: HashSet<String>,
    /// Open alerts by the manager's id: their fold key and our stable id.
    open: HashMap<String, OpenAlert>,
    /// Open alerts whose count changed since their last record (manager ids).
    dirty: HashSet<String>,
    rules_stamp: u64,
    /// Set once the thread runs: replayed events do not count toward the latency histogram.
    live: bool,
    /// An alert batch failed to reach the WAL: no checkpoint may be written any more, so the
    /// next start re-runs detection from the last good one and makes those alerts again.
    lost_alerts: bool,
    status: Arc<DetectionStatus>,
    metrics: Arc<Metrics>,
    /// The store, for the baselines' warm start.
    store: Option<Arc<crowsnest_store::Store>>,
    /// Where incident changes are notified (replays included: the outbox knows its keys).
    notify: Option<Arc<crowsnest_notify::Outbox>>,
    /// Where live new alerts go for containment (never replayed ones).
    respond: Option<RespondHook>,
}

/// Called for every new live alert with its incident and the event that made it (the
/// server's responder: it must return at once, never run containment on this thread).
pub type RespondHook =
    Box<dyn Fn(&crowsnest_model::Alert, Option<&crowsnest_respond::Incident>, &Event) + Send>;

impl Worker {
    /// Loads the rules and the checkpoint in `dir` (`<data-dir>/detect`).
    pub fn open(
        config: DetectionConfig,
        dir: &Path,
        status: Arc<DetectionStatus>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
        let rules = load_rules(&config, &status);
        let rules_stamp = stamp(&config.rule_dirs);
        let mut detector = Detector::new(rules);
        let checkpoint_path = dir.join("checkpoint.json");
        let mut next = 0;
        let mut incidents = None;
        match std::fs::read(&checkpoint_path) {
            Ok(bytes) => {
                let checkpoint: Checkpoint = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "reading the detector checkpoint `{}`",
                        checkpoint_path.display()
                    )
                })?;
                if let Err(error) = detector.restore(&checkpoint.state) {
                    tracing::warn!(%error, "detector state not restored; correlations restart empty");
                }
                incidents = checkpoint.incidents;
                next = checkpoint.next;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "reading the detector checkpoint `{}`",
                        checkpoint_path.display()
                    )
                })
            }
        }
        let alerts = AlertManager::new(
            Duration::from_secs(config.fold_window_secs),
            config.suppressions.clone(),
        );
        // The incidents as of the checkpoint, grouped from now on with today's settings.
        let mut incidents = incidents.unwrap_or_default();
        incidents.reconfigure(config.incidents.clone());
        *status.lock_incidents() = incidents;
        Ok(Self {
            config,
            detector,
            alerts,
            checkpoint_path,
            checkpointed: next,
            processed: next,
            unsent: Vec::new(),
            inflight: Vec::new(),
            durable_ids: HashSet::new(),
            open: HashMap::new(),
            dirty: HashSet::new(),
            rules_stamp,
            live: false,
            lost_alerts: false,
            status,
            metrics,
            store: None,
            notify: None,
            respond: None,
        })
    }

    /// Gives the worker the store, and back-fills from it the baseline rules that have not
    /// started learning (`detect.baseline_warm_start_events`).
    pub fn attach_store(&mut self, store: Arc<crowsnest_store::Store>) {
        self.store = Some(store);
        self.warm_start();
    }

    fn warm_start(&mut self) {
        let Some(store) = &self.store else {
            return;
        };
        let max = self.config.baseline_warm_start_events;
        if let Err(error) = crate::baselines::warm_start(&mut self.detector, store, max, Utc::now())
        {
            tracing::warn!(
                error = format!("{error:#}"),
                "baselines not warm-started; they learn from the live stream"
            );
        }
    }

    /// Hands every new alert made live (not during the replay of a restart) to `hook`, with
    /// its incident and the event that made it.
    pub fn respond_to(&mut self, hook: RespondHook) {
        self.respond = Some(hook);
    }

    /// Notifies incident changes through `outbox` from now on (the replay included).
    pub fn notify_to(&mut self, outbox: Arc<crowsnest_notify::Outbox>) {
        self.notify = Some(outbox);
    }

    /// One past the last WAL position the checkpoint covers: the WAL must keep everything after.
    pub fn checkpointed_next(&self) -> u64 {
        self.checkpointed
    }

    /// Feeds one replayed WAL record (called in position order before the threads start).
    pub fn replay(&mut self, position: u64, event: &Event) {
        if position < self.processed {
            return;
        }
        if is_alert(event) {
            if let Some(id) = event.get_str("alert.id") {
                self.durable_ids.insert(id.to_string());
            }
            return;
        }
        self.process(position, event);
    }

    /// The thread body: processes acknowledged batches until the writer closes the queue.
    pub(crate) fn run(
        mut self,
        rx: Receiver<DetectBatch>,
        submitter: &Submitter,
        published: &AtomicU64,
    ) {
        // Alerts made during replay that were durable already are not made twice.
        self.live = true;
        let durable = std::mem::take(&mut self.durable_ids);
        self.unsent.retain(|alert| {
            !alert
                .get_str("alert.id")
                .is_some_and(|id| durable.contains(id))
        });
        let checkpoint_every = Duration::from_secs(self.config.checkpoint_interval_secs.max(1));
        let reload_every = Duration::from_secs(self.config.reload_interval_secs);
        let (mut last_checkpoint, mut last_reload) = (Instant::now(), Instant::now());
        loop {
            let closed = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(batch) => {
                    for (position, event) in batch.events.iter() {
                        self.process(*position, event);
                    }
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            self.flush_folds();
            self.send(submitter);
            self.settle();
            self.status.baselines.answer(&self.detector);
            if closed || last_checkpoint.elapsed() >= checkpoint_every {
                if self.try_checkpoint() {
                    published.store(self.checkpointed, Ordering::SeqCst);
                }
                last_checkpoint = Instant::now();
            }
            if closed {
                if !self.unsent.is_empty() {
                    tracing::info!(
                        alerts = self.unsent.len(),
                        "shutting down with alerts not yet durable; they are made again on the next start"
                    );
                }
                return;
            }
            let requested = self.status.reload_requested.swap(false, Ordering::SeqCst);
            let due = !reload_every.is_zero() && last_reload.elapsed() >= reload_every;
            if requested || due {
                self.reload(!requested);
                last_reload = Instant::now();
            }
        }
    }

    fn process(&mut self, position: u64, event: &Event) {
        self.processed = position + 1;
        if is_alert(event) {
            return;
        }
        if let Some(action) = IncidentAction::of(event) {
            self.apply(&action, event_time(event));
            return;
        }
        if let Some(action) = crate::baselines::BaselineAction::of(event) {
            let changed = action.apply(&mut self.detector, event_time(event));
            tracing::info!(rule = %action.rule, action = %action.action, changed, "baseline action applied");
            return;
        }
        let detections = self.detector.process(event);
        if detections.is_empty() {
            return;
        }
        // Parsed only for the few events that matched: this runs for every event.
        let now = event_time(event);
        for detection in detections {
            self.metrics.detections.inc();
            // A baseline detection explains itself: kept on every record of its alert.
            let anomaly = detection.anomaly.as_ref().map(|a| a.to_value());
            match self.alerts.offer(detection, now) {
                AlertDecision::New(alert) => {
                    // Replayed events were acknowledged before the restart: no latency to measure.
                    let ingested = self.live.then(|| {
                        event
                            .get(ecs::EVENT_INGESTED)
                            .and_then(crowsnest_model::parse_timestamp)
                    });
                    if let Some(ingested) = ingested.flatten() {
                        let latency = (Utc::now() - ingested).num_microseconds().unwrap_or(0);
                        self.metrics
                            .alert_latency
                            .observe(latency.max(0) as f64 / 1e6);
                    }
                    let stable = stable_id(&alert);
                    let mut record = alert_record(&alert, &stable, false);
                    if let Some(anomaly) = &anomaly {
                        record.set("alert.anomaly", anomaly.clone());
                    }
                    self.unsent.push(record);
                    let incident = self.offer_incident(&alert, &stable);
                    if let (true, Some(hook)) = (self.live, &self.respond) {
                        let mut alert = alert.clone();
                        alert.id.clone_from(&stable);
                        let incident =
                            incident.and_then(|id| self.status.lock_incidents().get(&id).cloned());
                        hook(&alert, incident.as_ref(), event);
                    }
                    let open = OpenAlert {
                        fold_key: alert.fold_key.clone(),
                        stable,
                        anomaly,
                    };
                    self.open.insert(alert.id.clone(), open);
                }
                AlertDecision::Folded { alert_id, .. } => {
                    self.metrics.alerts_folded.inc();
                    self.dirty.insert(alert_id);
                }
                AlertDecision::Suppressed { .. } => {
                    self.metrics.alerts_suppressed.inc();
                }
            }
        }
    }

    /// Offers an alert (under its stable id, which replays share) to the incidents.
    fn offer_incident(&mut self, alert: &Alert, stable: &str) -> Option<String> {
        let mut alert = alert.clone();
        alert.id = stable.to_string();
        let changes = self.status.lock_incidents().offer(&alert);
        if let Some(outbox) = &self.notify {
            let notices = crowsnest_notify::notices(&changes, &self.status.lock_incidents());
            notices.iter().for_each(|notice| outbox.offer(notice));
        }
        let mut incident = None;
        for change in changes {
            match change {
                crowsnest_respond::Change::Paged(id) => {
                    self.metrics.incidents_paged.inc();
                    tracing::info!(incident = %id, "incident pages");
                }
                crowsnest_respond::Change::Opened(id) | crowsnest_respond::Change::Updated(id) => {
                    incident = Some(id);
                }
            }
        }
        incident
    }

    /// Applies an incident action taken through the API (in WAL order).
    fn apply(&mut self, action: &IncidentAction, at: DateTime<Utc>) {
        let mut incidents = self.status.lock_incidents();
        let result = match action.action.as_str() {
            "acknowledge" => incidents
                .set_status(
                    &action.id,
                    Status::Acknowledged,
                    None,
                    action.assignee.clone(),
                )
                .map(|_| ()),
            "investigate" => incidents
                .set_status(
                    &action.id,
                    Status::Investigating,
                    None,
                    action.assignee.clone(),
                )
                .map(|_| ()),
            "resolve" => incidents
                .set_status(
                    &action.id,
                    Status::Resolved,
                    action.classification,
                    action.assignee.clone(),
                )
                .map(|_| ()),
            "assign" => incidents
                .assign(&action.id, action.assignee.clone())
                .map(|_| ()),
            "comment" => incidents
                .comment(
                    &action.id,
                    Comment {
                        author: action.by.clone(),
                        at,
                        text: action.text.clone().unwrap_or_default(),
                    },
                )
                .map(|_| ()),
            other => {
                tracing::warn!(action = other, "unknown incident action ignored");
                Ok(())
            }
        };
        if let Err(error) = result {
            tracing::warn!(%error, "incident action not applied");
            return;
        }
        let notice = self.notify.as_ref().and_then(|_| {
            let incident = incidents.get(&action.id)?;
            let status = matches!(
                action.action.as_str(),
                "acknowledge" | "investigate" | "resolve"
            );
            status.then(|| crowsnest_notify::Notice::of_status(incident, at, &action.by))?
        });
        drop(incidents);
        if let (Some(outbox), Some(notice)) = (&self.notify, notice) {
            outbox.offer(&notice);
        }
    }

    /// Writes a new record for each folded alert whose count changed, and forgets alerts whose
    /// fold window has passed.
    fn flush_folds(&mut self) {
        for id in std::mem::take(&mut self.dirty) {
            let Some(open) = self.open.get(&id) else {
                continue;
            };
            if let Some(alert) = self.alerts.open_alert(&open.fold_key) {
                let mut record = alert_record(alert, &open.stable, true);
                if let Some(anomaly) = &open.anomaly {
                    record.set("alert.anomaly", anomaly.clone());
                }
                self.unsent.push(record);
                let alert = alert.clone();
                let stable = open.stable.clone();
                self.offer_incident(&alert, &stable);
            }
        }
        if self.open.len() > 1_024 {
            let alerts = &self.alerts;
            self.open.retain(|id, open| {
                alerts
                    .open_alert(&open.fold_key)
                    .is_some_and(|a| &a.id == id)
            });
        }
    }

    fn send(&mut self, submitter: &Submitter) {
        if self.unsent.is_empty() {
            return;
        }
        let mut payloads = Vec::with_capacity(self.unsent.len());
        // The store keeps a record's JSON as the alert's stored form, so an alert that cannot
        // be written (a JSON map always can) is dropped rather than stored as something else.
        self.unsent.retain(|alert| match record::to_vec(alert) {
            Ok(bytes) => {
                payloads.push(bytes);
                true
            }
            Err(error) => {
                tracing::error!(%error, "an alert could not be serialized and is dropped");
                false
            }
        });
        let count = self.unsent.len() as u64;
        match submitter.try_submit(&mut self.unsent, payloads) {
            Ok(pending) => {
                self.metrics.alerts.inc_by(count);
                self.inflight.push(pending);
            }
            Err(error) => tracing::debug!(%error, "alerts wait for room in the pipeline"),
        }
    }

    /// Drops the in-flight batches the WAL has acknowledged; a failed one is sent again.
    fn settle(&mut self) {
        let mut still = Vec::new();
        for mut pending in std::mem::take(&mut self.inflight) {
            match pending.try_recv() {
                Ok(Ok(_)) => {}
                Ok(Err(message)) => {
                    self.lost_alerts = true;
                    tracing::error!(%message, "alert batch not written; the detector re-runs from its checkpoint on restart");
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => still.push(pending),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {}
            }
        }
        self.inflight = still;
    }

    /// Writes the checkpoint when every alert made so far is durable.
    fn try_checkpoint(&mut self) -> bool {
        if self.lost_alerts
            || !self.unsent.is_empty()
            || !self.inflight.is_empty()
            || self.processed == self.checkpointed
        {
            return false;
        }
        let state = match self.detector.checkpoint() {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(%error, "detector state could not be checkpointed");
                return false;
            }
        };
        let checkpoint = Checkpoint {
            next: self.processed,
            state,
            incidents: Some(self.status.lock_incidents().clone()),
        };
        let stats = self.detector.baseline_stats();
        let held: usize = stats.iter().map(|s| s.terms).sum();
        let refused: u64 = stats
            .iter()
            .map(|s| s.entities_refused + s.terms_refused)
            .sum();
        self.metrics.baseline_terms.set(held as i64);
        self.metrics
            .baseline_refused
            .set(i64::try_from(refused).unwrap_or(i64::MAX));
        match write_atomically(&self.checkpoint_path, &checkpoint) {
            Ok(()) => {
                self.checkpointed = self.processed;
                true
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "detector checkpoint not written"
                );
                false
            }
        }
    }

    fn reload(&mut self, only_if_changed: bool) {
        let now = stamp(&self.config.rule_dirs);
        if only_if_changed && now == self.rules_stamp {
            return;
        }
        self.rules_stamp = now;
        let rules = load_rules(&self.config, &self.status);
        tracing::info!(rules = rules.len(), "detection rules reloaded");
        self.detector.replace_rules(rules);
        self.warm_start();
    }
}

fn load_rules(config: &DetectionConfig, status: &DetectionStatus) -> RuleSet {
    let (mut rules, report) = RuleSet::load(&config.rule_dirs, config.builtin_rules);
    rules.set_k8s_principals(&config.kubernetes);
    let problems: Vec<String> = report
        .files
        .iter()
        .filter(|file| !file.problems.is_empty())
        .map(|file| format!("{}: {:?}", file.path.display(), file.status()))
        .collect();
    for problem in &problems {
        tracing::warn!(%problem, "rule skipped");
    }
    status.set(RulesStatus {
        loaded: rules.len(),
        problems,
        loaded_at: Some(format_timestamp(Utc::now())),
    });
    rules
}

/// A cheap fingerprint of the rule files (paths, sizes, modification times).
fn stamp(dirs: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    let mut seen = 0usize;
    while let Some(path) = stack.pop() {
        seen += 1;
        if seen > 100_000 {
            break;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            path.hash(&mut hasher);
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                children.sort();
                stack.extend(children);
            }
        } else {
            path.hash(&mut hasher);
            meta.len().hash(&mut hasher);
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .hash(&mut hasher);
        }
    }
    hasher.finish()
}

fn is_alert(event: &Event) -> bool {
    event.get_str(ecs::EVENT_KIND) == Some("alert")
}

/// The time an event entered the server (replays see the same value), else its timestamp.
fn event_time(event: &Event) -> DateTime<Utc> {
    event
        .get(ecs::EVENT_INGESTED)
        .and_then(crowsnest_model::parse_timestamp)
        .or_else(|| event.timestamp())
        .unwrap_or_else(Utc::now)
}

/// An open alert as the server knows it.
struct OpenAlert {
    fold_key: String,
    /// `alert.id`: the same for every record of the alert and after a replay.
    stable: String,
    /// The first detection's baseline explanation (`alert.anomaly`), if any.
    anomaly: Option<Value>,
}

/// The alert's id, derived from its rule, entity and first event: a replay after a crash
/// makes the same id, so an alert already durable is recognised.
fn stable_id(alert: &Alert) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(alert.fold_key.as_bytes());
    for id in &alert.event_ids {
        hash.update([0]);
        hash.update(id.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// One stored record of an alert: a new alert, or (`update`) its newer count. Every record is
/// its own event (`event.id`); `alert.id` ties the records of one alert together, and an
/// update's `@timestamp` is the alert's last sighting so the newest record sorts first.
fn alert_record(alert: &Alert, stable: &str, update: bool) -> Event {
    let mut record = alert.to_event();
    let now = format_timestamp(Utc::now());
    record.set("alert.id", Value::String(stable.to_string()));
    record.set(ecs::EVENT_ID, Value::String(ulid::Ulid::new().to_string()));
    record.set(ecs::EVENT_INGESTED, Value::String(now));
    if update {
        record.set(
            ecs::TIMESTAMP,
            Value::String(format_timestamp(alert.last_seen)),
        );
    }
    record
}

fn write_atomically(path: &Path, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(checkpoint).context("serializing the checkpoint")?;
    crowsnest_util::write_atomic(path, &bytes)
        .with_context(|| format!("writing `{}`", path.display()))
}
