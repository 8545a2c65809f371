//! Integrity verification by the server: at start, every `[integrity] verify_interval_secs`
//! (1 h by default) and on request (`POST /api/v1/verify`, which `crowsnest verify --server`
//! calls), the server runs [`crowsnest_integrity::verify`] over its own data directory and
//! writes the result as an event of dataset [`VERIFY_DATASET`] into the self-audit stream:
//! `event.outcome`, the first altered segment or partition, the counts. The compliance checks
//! of log integrity (PCI DSS 10.3.2, 10.3.4) find their evidence there.
//!
//! The run pins the public key of the server's signing key when one is configured. A run that
//! fails is repeated once before it is recorded: a partition that took late events between the
//! read of the chain and the hashing of its files would otherwise look altered.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crowsnest_integrity::{Severity, VerifyOptions, VerifyReport};
use crowsnest_model::{format_timestamp, Event};
use serde_json::{json, Value};

use crate::AppState;

/// `event.dataset` of verification results.
pub const VERIFY_DATASET: &str = "crowsnest.verify";

/// Who asked for a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The server's start.
    Start,
    /// The periodic schedule (`[integrity] verify_interval_secs`).
    Schedule,
    /// An operator, through the API.
    Api,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Schedule => "schedule",
            Self::Api => "api",
        }
    }
}

/// One verification: what was asked, by whom.
#[derive(Debug, Clone)]
pub struct VerifyRun {
    /// Why it runs.
    pub trigger: Trigger,
    /// The token's name, for a run through the API.
    pub user: Option<String>,
    /// The client's address, for a run through the API.
    pub source_ip: Option<IpAddr>,
    /// Only rehash files sealed at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only rehash files sealed before this time.
    pub to: Option<DateTime<Utc>>,
}

impl VerifyRun {
    /// A run of the server's own (start or schedule), over everything.
    pub fn internal(trigger: Trigger) -> Self {
        Self {
            trigger,
            user: None,
            source_ip: None,
            from: None,
            to: None,
        }
    }
}

/// Verifies the server's data directory, records the result in the self-audit stream and
/// returns the report. Runs on a blocking thread; one run at a time (a second waits).
pub async fn verify_now(
    state: &Arc<AppState>,
    run: VerifyRun,
) -> anyhow::Result<(VerifyReport, Duration)> {
    let _one = state.verify_lock.lock().await;
    let data_dir = state.config.data_dir.clone();
    let options = VerifyOptions {
        from: run.from,
        to: run.to,
        public_key: state.store.chain().and_then(|chain| chain.public_key()),
    };
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let first = crowsnest_integrity::verify(&data_dir, &options)?;
        if first.passed() {
            return Ok(first);
        }
        // Once more: a partition reopened by late events while the first run read it.
        crowsnest_integrity::verify(&data_dir, &options)
    })
    .await
    .map_err(|e| anyhow::anyhow!("the verification task stopped: {e}"))?;
    let elapsed = started.elapsed();
    match result {
        Ok(report) => {
            state
                .audit
                .record_event(verify_event(&report, &run, elapsed, None));
            if report.passed() {
                tracing::info!(
                    records = report.records,
                    files_ok = report.files_ok,
                    trigger = run.trigger.as_str(),
                    "integrity verification passed"
                );
            } else if let Some(first) = report.first_failure() {
                tracing::error!(
                    path = %first.path,
                    message = %first.message,
                    trigger = run.trigger.as_str(),
                    "integrity verification FAILED"
                );
            }
            Ok((report, elapsed))
        }
        Err(error) => {
            let message = format!("{error}");
            state.audit.record_event(verify_event(
                &VerifyReport::default(),
                &run,
                elapsed,
                Some(&message),
            ));
            Err(anyhow::Error::new(error).context("verifying the integrity chain"))
        }
    }
}

/// The event a verification becomes (`error`: it could not run at all).
pub fn verify_event(
    report: &VerifyReport,
    run: &VerifyRun,
    elapsed: Duration,
    error: Option<&str>,
) -> Event {
    let count = |severity: Severity| {
        report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    };
    let passed = error.is_none() && report.passed();
    let (failures, gaps, notes) = (
        count(Severity::Fail),
        count(Severity::Gap),
        count(Severity::Note),
    );
    let message = match (error, report.first_failure()) {
        (Some(error), _) => format!("integrity verification could not run: {error}"),
        (None, Some(first)) => format!(
            "integrity verification FAILED: first altered {}: {}",
            first.path, first.message
        ),
        (None, None) => format!(
            "integrity verification passed: {} chain records, {} sealed files match, {} explained gaps",
            report.records, report.files_ok, gaps
        ),
    };
    let mut verify = json!({
        "trigger": run.trigger.as_str(),
        "records": report.records,
        "signed_checkpoints": report.signed_checkpoints,
        "files_ok": report.files_ok,
        "bytes_hashed": report.bytes_hashed,
        "failures": failures,
        "gaps": gaps,
        "notes": notes,
        "duration_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    });
    if let Some(first) = report.first_failure() {
        verify["first_failure"] = json!({"path": first.path, "message": first.message});
    }
    if let Some(error) = error {
        verify["error"] = Value::String(error.to_string());
    }
    if let Some(from) = run.from {
        verify["from"] = Value::String(format_timestamp(from));
    }
    if let Some(to) = run.to {
        verify["to"] = Value::String(format_timestamp(to));
    }
    let mut value = json!({
        "@timestamp": format_timestamp(Utc::now()),
        "event": {
            "dataset": VERIFY_DATASET,
            "kind": "event",
            "category": ["file"],
            "type": ["info"],
            "action": "integrity.verify",
            "outcome": if passed { "success" } else { "failure" },
        },
        "message": message,
        "user": {"name": run.user.as_deref().unwrap_or("crowsnest")},
        "crowsnest": {"verify": verify},
    });
    if let Some(first) = report.first_failure() {
        value["file"] = json!({"path": first.path});
    }
    if let Some(ip) = run.source_ip {
        value["source"] = json!({"ip": ip.to_string()});
    }
    match value {
        Value::Object(map) => Event::from_map(map),
        _ => Event::new(),
    }
}

/// Starts the periodic verification: once at start, then every
/// `[integrity] verify_interval_secs` (0: never). Holds the state weakly.
pub(crate) fn spawn(state: &Arc<AppState>) {
    let secs = state.config.integrity.verify_interval_secs;
    if !state.config.integrity.enabled || secs == 0 {
        return;
    }
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(secs));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut trigger = Trigger::Start;
        loop {
            ticker.tick().await;
            let Some(state) = weak.upgrade() else { return };
            if let Err(error) = verify_now(&state, VerifyRun::internal(trigger)).await {
                tracing::warn!(error = %format!("{error:#}"), "integrity verification did not run");
            }
            trigger = Trigger::Schedule;
        }
    });
}
