//! The self-audit stream: what users of crowsnest do with it, as events.
//!
//! Every search, export (the console's, once per export with its format and row count), token
//! creation and revocation, login (the console's, through [`crate::api::check_login`]),
//! configuration change (rules reload, rule enable/disable, baseline reset/accept/lock/unlock/
//! import) and response action (`POST /api/v1/actions`) becomes an event of dataset
//! [`AUDIT_DATASET`] (`event.action`, `event.outcome`, `user.name` = the token's name,
//! `source.ip`, `crowsnest.audit.query`, `crowsnest.audit.result_count`, ...). The events go
//! through the pipeline like any other (WAL, store, detection), so they are searchable
//! (`event.dataset:crowsnest.audit`) and sealed in the integrity chain with the rest.
//!
//! Off the hot path: [`Audit::record`] only builds the event and `try_send`s it on a bounded
//! queue (`[audit] queue`); a background task submits batches. A full queue, or a pipeline that
//! refuses a batch (a full disk), drops the events and counts them in
//! `crowsnest_audit_dropped_total`: an audited action is never slowed or refused because of
//! its audit event.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use chrono::Utc;
use crowsnest_model::{format_timestamp, Event};
use crowsnest_normalize::Decoded;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::config::AuditConfig;
use crate::AppState;

/// `event.dataset` of audit events.
pub const AUDIT_DATASET: &str = "crowsnest.audit";
/// Most events submitted in one batch.
const BATCH: usize = 256;
/// Longest query text kept in an event (the search bound is larger; an audit event stays small).
const MAX_QUERY_CHARS: usize = 4096;

/// One audited action.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// `event.action`: `search`, `export`, `token.create`, `token.revoke`, `login`,
    /// `config.reload`, `config.change`, `response.action`.
    pub action: &'static str,
    /// True when the action succeeded (`event.outcome` success / failure).
    pub success: bool,
    /// The token's name (`user.name`), when known.
    pub user: Option<String>,
    /// The client's address (`source.ip`), when known.
    pub source_ip: Option<IpAddr>,
    /// The query text of a search or export.
    pub query: Option<String>,
    /// Events a search matched.
    pub result_count: Option<u64>,
    /// What was acted on: a token's name, a command's node/op/container, ...
    pub target: Option<String>,
    /// Why it failed, or anything else worth a line.
    pub message: Option<String>,
    /// The format of an export (`csv`, `ndjson`).
    pub format: Option<String>,
}

impl AuditEntry {
    /// An entry for `action` by `user`.
    pub fn new(action: &'static str, user: Option<&str>, success: bool) -> Self {
        Self {
            action,
            success,
            user: user.map(str::to_string),
            ..Self::default()
        }
    }

    fn category(&self) -> &'static str {
        match self.action {
            "login" | "token.create" | "token.revoke" => "iam",
            "config.reload" | "config.change" => "configuration",
            "response.action" => "process",
            _ => "database",
        }
    }

    /// The event this entry becomes.
    pub fn to_event(&self) -> Event {
        let mut value = json!({
            "@timestamp": format_timestamp(Utc::now()),
            "event": {
                "dataset": AUDIT_DATASET,
                "kind": "event",
                "category": [self.category()],
                "action": self.action,
                "outcome": if self.success { "success" } else { "failure" },
            },
            "message": format!(
                "{} {} by {}",
                self.action,
                if self.success { "succeeded" } else { "failed" },
                self.user.as_deref().unwrap_or("an unauthenticated client")
            ),
        });
        let mut audit = serde_json::Map::new();
        if let Some(query) = &self.query {
            let query: String = query.chars().take(MAX_QUERY_CHARS).collect();
            audit.insert("query".into(), Value::String(query));
        }
        if let Some(count) = self.result_count {
            audit.insert("result_count".into(), json!(count));
        }
        if let Some(target) = &self.target {
            audit.insert("target".into(), Value::String(target.clone()));
        }
        if let Some(message) = &self.message {
            audit.insert("message".into(), Value::String(message.clone()));
        }
        if let Some(format) = &self.format {
            audit.insert("format".into(), Value::String(format.clone()));
        }
        if let Value::Object(map) = &mut value {
            if let Some(user) = &self.user {
                map.insert("user".into(), json!({ "name": user }));
            }
            if let Some(ip) = self.source_ip {
                map.insert("source".into(), json!({ "ip": ip.to_string() }));
            }
            if !audit.is_empty() {
                map.insert("crowsnest".into(), json!({ "audit": audit }));
            }
        }
        match value {
            Value::Object(map) => Event::from_map(map),
            _ => Event::new(),
        }
    }
}

/// The audit queue and its counters.
pub struct Audit {
    tx: Option<mpsc::Sender<Event>>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    recorded: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("enabled", &self.tx.is_some())
            .field("recorded", &self.recorded())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Audit {
    /// A queue per the config (disabled: [`Audit::record`] does nothing).
    pub fn new(config: &AuditConfig) -> Self {
        let (tx, rx) = if config.enabled {
            let (tx, rx) = mpsc::channel(config.queue.max(1));
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        Self {
            tx,
            rx: Mutex::new(rx),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues an entry; never waits. A full queue drops it (counted).
    pub fn record(&self, entry: AuditEntry) {
        if self.tx.is_some() {
            self.record_event(entry.to_event());
        }
    }

    /// Queues an event built elsewhere (an integrity verification's, dataset
    /// `crowsnest.verify`); never waits. A full queue drops it (counted).
    pub fn record_event(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(event) {
            Ok(()) => {}
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Audit events submitted (acknowledged by the pipeline).
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Audit events dropped: the queue was full or the pipeline refused them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus text.
    pub fn metrics_text(&self) -> String {
        format!(
            "# HELP crowsnest_audit_events_total Self-audit events stored.\n# TYPE crowsnest_audit_events_total counter\ncrowsnest_audit_events_total {}\n# HELP crowsnest_audit_dropped_total Self-audit events dropped (queue full or pipeline refused).\n# TYPE crowsnest_audit_dropped_total counter\ncrowsnest_audit_dropped_total {}\n",
            self.recorded(),
            self.dropped()
        )
    }

    /// Starts the task submitting queued entries through the pipeline. It holds the state
    /// weakly and ends when the queue closes or the state is gone.
    pub(crate) fn spawn(state: &Arc<AppState>) {
        let rx = state
            .audit
            .rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut rx) = rx else { return };
        let weak: Weak<AppState> = Arc::downgrade(state);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let Some(state) = weak.upgrade() else { return };
                let events = std::mem::take(&mut batch);
                let count = events.len() as u64;
                let decoded = Decoded {
                    events,
                    errors: Vec::new(),
                };
                match state
                    .pipeline
                    .submit_decoded(decoded, AUDIT_DATASET, crate::pipeline::Admission::Wait)
                    .await
                {
                    Ok(_) => {
                        state.audit.recorded.fetch_add(count, Ordering::Relaxed);
                    }
                    Err(error) => {
                        state.audit.dropped.fetch_add(count, Ordering::Relaxed);
                        tracing::warn!(%error, events = count, "self-audit events were not stored");
                    }
                }
            }
        });
    }
}

/// Who acts, for the API's core functions when a caller other than the API's handlers (the
/// web console) calls them: its middleware scopes the session's token name and the client's
/// address around each request ([`scope_actor`]), and the core functions
/// ([`crate::api::run_search`], [`crate::api::set_rule_enabled`],
/// [`crate::api::request_rules_reload`]) read it ([`current_actor`]) for their audit events.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// The token's name.
    pub user: Option<String>,
    /// The client's address.
    pub source_ip: Option<IpAddr>,
    /// Set while an export runs: its searches are tallied here and audited once, as an
    /// export, instead of one `search` event per page.
    pub export: Option<Arc<ExportTally>>,
}

impl Actor {
    /// The one acting in an API request: `user` (the token's name, when known) from the
    /// client's address as the server's `ConnectInfo` gives it.
    pub(crate) fn of_request(user: Option<String>, extensions: &axum::http::Extensions) -> Self {
        Self {
            user,
            source_ip: peer_ip(extensions),
            export: None,
        }
    }
}

/// The rows an export has sent, and whether a page failed.
#[derive(Debug, Default)]
pub struct ExportTally {
    rows: AtomicU64,
    failure: Mutex<Option<String>>,
}

impl ExportTally {
    /// Counts a page's rows (or records the error that ended the export).
    pub fn page(&self, result: Result<u64, String>) {
        match result {
            Ok(rows) => {
                self.rows.fetch_add(rows, Ordering::Relaxed);
            }
            Err(error) => {
                let mut failure = self
                    .failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                failure.get_or_insert(error);
            }
        }
    }

    /// Rows exported so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// The error of the first failed page.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

tokio::task_local! {
    static ACTOR: Actor;
}

/// Runs `future` with `actor` as the one acting (see [`Actor`]).
pub async fn scope_actor<F: std::future::Future>(actor: Actor, future: F) -> F::Output {
    ACTOR.scope(actor, future).await
}

/// Runs `work` with `actor` as the one acting (a synchronous section, such as one poll of a
/// response body that runs searches).
pub fn sync_scope_actor<R>(actor: Actor, work: impl FnOnce() -> R) -> R {
    ACTOR.sync_scope(actor, work)
}

/// The one acting, as scoped by [`scope_actor`] (empty outside any scope).
pub fn current_actor() -> Actor {
    ACTOR.try_with(Actor::clone).unwrap_or_default()
}

/// Records a finished export: its query, format, rows and outcome (`success`: it ran to its
/// end; otherwise `message` says why not).
pub fn record_export(
    audit: &Audit,
    actor: &Actor,
    query: &str,
    format: &str,
    success: bool,
    message: Option<String>,
) {
    let rows = actor.export.as_ref().map_or(0, |t| t.rows());
    let mut entry = AuditEntry::new("export", actor.user.as_deref(), success);
    entry.source_ip = actor.source_ip;
    entry.query = Some(query.to_string());
    entry.result_count = Some(rows);
    entry.format = Some(format.to_string());
    entry.message = message;
    audit.record(entry);
}

/// Records a configuration change made through a core function: by the [`current_actor`].
pub(crate) fn record_change(
    audit: &Audit,
    action: &'static str,
    target: String,
    outcome: Result<(), String>,
) {
    let actor = current_actor();
    let mut entry = AuditEntry::new(action, actor.user.as_deref(), outcome.is_ok());
    entry.source_ip = actor.source_ip;
    entry.target = Some(target);
    entry.message = outcome.err();
    audit.record(entry);
}

/// The client's address, as the server's `ConnectInfo` gives it.
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}
