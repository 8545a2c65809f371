//! Compliance status per control, built from the evidence in the store, and the report an
//! auditor can verify.
//!
//! A framework is a [`Catalog`] (data files in `catalogs/`, embedded): control ids with
//! crowsnest's own one-line summaries (PCI, AICPA and CIS texts are copyrighted; NIST text is
//! public domain), each naming the evidence checks that can prove it, or none: then it is
//! `not evaluable by a SIEM (attest)`. [`evaluate`] runs the checks over a period and scope and
//! gives every control, none hidden, a [`Status`] with the exact queries, counts, sample event
//! ids and source health behind it. [`report`] renders the evaluation as HTML (print CSS) and a
//! manifest of SHA-256 digests; the same evaluation always gives the same bytes.

mod catalog;
mod checks;
pub mod report;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use catalog::{catalog, catalogs, Catalog, Control, CATALOG_IDS};
pub use checks::CHECKS;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No catalog has this id.
    #[error("unknown framework `{0}`; known: {known}", known = CATALOG_IDS.join(", "))]
    UnknownFramework(String),
    /// The period is empty or reversed.
    #[error("the period is empty: `from` ({from}) must be before `to` ({to})")]
    Period {
        /// Start.
        from: DateTime<Utc>,
        /// End.
        to: DateTime<Utc>,
    },
    /// The scope is not `cluster` or `cluster/namespace`.
    #[error("scope `{0}` is not `CLUSTER` or `CLUSTER/NAMESPACE` (`*` for any cluster)")]
    Scope(String),
    /// A query of a check failed in the store.
    #[error("check `{check}`: query `{query}` failed: {source}")]
    Store {
        /// The check.
        check: String,
        /// The query text.
        query: String,
        /// The store's error.
        source: crowsnest_store::StoreError,
    },
    /// A query of a check did not parse (a bug in a check, or a scope with odd characters).
    #[error("check `{check}`: query `{query}` does not parse: {source}")]
    Query {
        /// The check.
        check: String,
        /// The query text.
        query: String,
        /// The parser's error.
        source: crowsnest_query::ParseError,
    },
    /// A `[compliance]` setting is wrong.
    #[error("{0}")]
    Config(String),
    /// Writing the report failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being written.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The status of a control or a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    /// The data shows the control working.
    #[serde(rename = "evidence")]
    Evidence,
    /// The data shows the control failing.
    #[serde(rename = "violation observed")]
    Violation,
    /// The data needed is missing (no source, or a silent one).
    #[serde(rename = "gap: no data source")]
    Gap,
    /// Not evaluable by a SIEM: the organisation attests it.
    #[serde(rename = "not evaluable by a SIEM (attest)")]
    Attest,
}

impl Status {
    /// The label shown in reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::Evidence => "evidence",
            Self::Violation => "violation observed",
            Self::Gap => "gap: no data source",
            Self::Attest => "not evaluable by a SIEM (attest)",
        }
    }

    /// A CSS-safe class name.
    pub fn class(self) -> &'static str {
        match self {
            Self::Evidence => "evidence",
            Self::Violation => "violation",
            Self::Gap => "gap",
            Self::Attest => "attest",
        }
    }

    /// How bad it is, for the worst-of rule: violation, then gap, then evidence.
    fn rank(self) -> u8 {
        match self {
            Self::Violation => 3,
            Self::Gap => 2,
            Self::Evidence => 1,
            Self::Attest => 0,
        }
    }
}

/// `[compliance]` of the server's configuration: thresholds of the checks and risk acceptances.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ComplianceConfig {
    /// Days of audit history the retention check requires (PCI DSS 10.5.1: 12 months). Default 365.
    pub retention_required_days: u64,
    /// Days that must be immediately searchable (PCI DSS 10.5.1: 3 months). Default 90.
    pub immediately_available_days: u64,
    /// A source (`event.dataset`) seen in the period but silent for its last this many hours is
    /// reported (PCI DSS 10.7.2). Default 24.
    pub silent_after_hours: u64,
    /// Largest accepted difference between an event's time and its ingest time, in seconds
    /// (PCI DSS 10.6). Default 300.
    pub max_clock_skew_secs: u64,
    /// Hours within which an incident must be acknowledged, investigated or resolved
    /// (PCI DSS 10.7.3, 12.10.5). Default 24.
    pub incident_ack_hours: u64,
    /// Namespaces whose incidents touch personal data: GDPR Art. 33's 72-hour clock runs on
    /// them. Default none.
    pub personal_data_namespaces: Vec<String>,
    /// Accepted risks: a control's status stays as observed, shown with the acceptance.
    pub risk_acceptances: Vec<RiskAcceptance>,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        Self {
            retention_required_days: 365,
            immediately_available_days: 90,
            silent_after_hours: 24,
            max_clock_skew_secs: 300,
            incident_ack_hours: 24,
            personal_data_namespaces: Vec::new(),
            risk_acceptances: Vec::new(),
        }
    }
}

impl ComplianceConfig {
    /// Checks the settings: every risk acceptance names a shipped framework and one of its
    /// controls, with a reason.
    pub fn validate(&self) -> Result<(), Error> {
        for (i, acceptance) in self.risk_acceptances.iter().enumerate() {
            let at = format!("compliance.risk_acceptances[{i}]");
            let Some(catalog) = catalog(&acceptance.framework) else {
                return Err(Error::Config(format!(
                    "{at}: unknown framework `{}`; known: {}",
                    acceptance.framework,
                    CATALOG_IDS.join(", ")
                )));
            };
            if !catalog.controls.iter().any(|c| c.id == acceptance.control) {
                return Err(Error::Config(format!(
                    "{at}: {} has no control `{}`",
                    acceptance.framework, acceptance.control
                )));
            }
            if acceptance.reason.trim().is_empty() {
                return Err(Error::Config(format!("{at}: `reason` is empty")));
            }
        }
        Ok(())
    }
}

/// One `[[compliance.risk_acceptances]]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RiskAcceptance {
    /// The framework id (`pci-dss-4.0.1`).
    pub framework: String,
    /// The control id (`10.5.1`).
    pub control: String,
    /// Why the risk is accepted, and by whom.
    pub reason: String,
    /// Until when (RFC 3339); past it the acceptance shows as expired.
    pub expires: DateTime<Utc>,
}

/// An incident as the checks need it (from `crowsnest-respond`'s incidents).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IncidentFacts {
    /// The incident id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// When its first alert was seen.
    pub opened: DateTime<Utc>,
    /// `new`, `acknowledged`, `investigating` or `resolved`.
    pub status: String,
    /// Its namespace, if any.
    pub namespace: Option<String>,
    /// Its cluster, if known.
    pub cluster: Option<String>,
}

/// Cluster and namespace an evaluation is limited to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// `orchestrator.cluster.name` (None = every cluster).
    pub cluster: Option<String>,
    /// `kubernetes.namespace` (None = every namespace).
    pub namespace: Option<String>,
}

impl Scope {
    /// Reads `CLUSTER`, `CLUSTER/NAMESPACE` or `*/NAMESPACE`; empty or `*` is everything.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let part = |s: &str| -> Result<Option<String>, Error> {
            let s = s.trim();
            if s.is_empty() || s == "*" {
                return Ok(None);
            }
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                Ok(Some(s.to_string()))
            } else {
                Err(Error::Scope(text.to_string()))
            }
        };
        match text.split_once('/') {
            None => Ok(Self {
                cluster: part(text)?,
                namespace: None,
            }),
            Some((cluster, namespace)) if !namespace.contains('/') => Ok(Self {
                cluster: part(cluster)?,
                namespace: part(namespace)?,
            }),
            Some(_) => Err(Error::Scope(text.to_string())),
        }
    }

    /// `cluster/namespace` with `*` for any.
    pub fn label(&self) -> String {
        match (&self.cluster, &self.namespace) {
            (None, None) => "all clusters, all namespaces".to_string(),
            (c, n) => format!(
                "{}/{}",
                c.as_deref().unwrap_or("*"),
                n.as_deref().unwrap_or("*")
            ),
        }
    }

    /// The query clause that limits events to the scope (None = no limit).
    pub(crate) fn clause(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(c) = &self.cluster {
            parts.push(format!("orchestrator.cluster.name:{c}"));
        }
        if let Some(n) = &self.namespace {
            parts.push(format!("kubernetes.namespace:{n}"));
        }
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }

    /// Whether an incident lies in the scope.
    pub(crate) fn holds(&self, incident: &IncidentFacts) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|c| incident.cluster.as_ref() == Some(c))
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| incident.namespace.as_ref() == Some(n))
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The framework id (one of [`CATALOG_IDS`]).
    pub framework: &'a str,
    /// Inclusive start of the period.
    pub from: DateTime<Utc>,
    /// Exclusive end of the period.
    pub to: DateTime<Utc>,
    /// Cluster and namespace.
    pub scope: Scope,
}

/// Everything the checks read: the store, its configuration, the incidents and the thresholds.
pub struct Inputs<'a> {
    /// The event store.
    pub store: &'a crowsnest_store::Store,
    /// The incidents (any order).
    pub incidents: &'a [IncidentFacts],
    /// Thresholds and acceptances.
    pub config: &'a ComplianceConfig,
}

/// One query behind a check: its exact text, time range, count and sample event ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryEvidence {
    /// The query, as `crowsnest search` takes it.
    pub query: String,
    /// Inclusive start (None = from the beginning).
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end.
    pub to: Option<DateTime<Utc>>,
    /// Matching events.
    pub count: u64,
    /// Up to five `event.id`s of matching events, sorted.
    pub sample_ids: Vec<String>,
}

/// The outcome of one check for a control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name (see [`CHECKS`]).
    pub check: String,
    /// What it found.
    pub status: Status,
    /// One sentence: why.
    pub finding: String,
    /// The queries behind it.
    pub queries: Vec<QueryEvidence>,
    /// Figures (per source, per incident, ...), ordered by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub figures: BTreeMap<String, serde_json::Value>,
}

/// A risk acceptance as applied to a control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acceptance {
    /// Why.
    pub reason: String,
    /// Until when.
    pub expires: DateTime<Utc>,
    /// True when `expires` is before the end of the period.
    pub expired: bool,
}

/// One control's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlResult {
    /// The control id.
    pub id: String,
    /// Our summary.
    pub summary: String,
    /// NIST SP 800-53 r5 controls it maps to.
    pub nist: Vec<String>,
    /// The worst status of its checks (violation, gap, evidence), or attest without checks.
    pub status: Status,
    /// The checks.
    pub checks: Vec<CheckResult>,
    /// The risk acceptance from the configuration, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Acceptance>,
}

/// Events per source in the period: the health behind the checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// `event.dataset`.
    pub dataset: String,
    /// Events in the period and scope.
    pub events: u64,
    /// Newest event time in the period.
    pub newest: Option<DateTime<Utc>>,
}

/// The framework as evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    /// Id (`pci-dss-4.0.1`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// The evaluation of a framework over a period and scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The framework.
    pub framework: FrameworkInfo,
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
    /// The scope.
    pub scope: Scope,
    /// Controls per status.
    pub summary: BTreeMap<String, u64>,
    /// Sources seen in the period.
    pub sources: Vec<SourceHealth>,
    /// Every control of the catalog, in catalog order.
    pub controls: Vec<ControlResult>,
}

/// Evaluates every control of a framework. Each check runs once per evaluation and is shared by
/// the controls naming it; the result depends only on the stored events, the incidents, the
/// configuration and the request (no wall-clock time).
pub fn evaluate(inputs: &Inputs<'_>, request: &Request<'_>) -> Result<Evaluation, Error> {
    let catalog = catalog(request.framework)
        .ok_or_else(|| Error::UnknownFramework(request.framework.to_string()))?;
    if request.from >= request.to {
        return Err(Error::Period {
            from: request.from,
            to: request.to,
        });
    }
    let mut ctx = checks::Context::new(inputs, request);
    let sources = ctx.sources()?;
    let mut cache: BTreeMap<String, CheckResult> = BTreeMap::new();
    let mut controls = Vec::with_capacity(catalog.controls.len());
    for control in &catalog.controls {
        let mut results = Vec::new();
        for name in &control.checks {
            let result = match cache.get(name) {
                Some(result) => result.clone(),
                None => {
                    let result = ctx.run(name)?;
                    cache.insert(name.clone(), result.clone());
                    result
                }
            };
            results.push(result);
        }
        let status = results
            .iter()
            .map(|r| r.status)
            .max_by_key(|s| s.rank())
            .unwrap_or(Status::Attest);
        let accepted = inputs
            .config
            .risk_acceptances
            .iter()
            .find(|a| a.framework == catalog.id && a.control == control.id)
            .map(|a| Acceptance {
                reason: a.reason.clone(),
                expires: a.expires,
                expired: a.expires < request.to,
            });
        controls.push(ControlResult {
            id: control.id.clone(),
            summary: control.summary.clone(),
            nist: control.nist.clone(),
            status,
            checks: results,
            accepted,
        });
    }
    let mut summary = BTreeMap::new();
    for status in [
        Status::Evidence,
        Status::Violation,
        Status::Gap,
        Status::Attest,
    ] {
        summary.insert(
            status.label().to_string(),
            controls.iter().filter(|c| c.status == status).count() as u64,
        );
    }
    Ok(Evaluation {
        framework: FrameworkInfo {
            id: catalog.id.clone(),
            name: catalog.name.clone(),
            version: catalog.version.clone(),
        },
        from: request.from,
        to: request.to,
        scope: request.scope.clone(),
        summary,
        sources,
        controls,
    })
}
