//! # crowsnest-detect: streaming Sigma detection for crowsnest events
//!
//! This crate wires the [`rsigma_eval`] engine (rsigma 0.23, MIT) to our event model. rsigma
//! parses Sigma (every modifier, keywords, the full condition grammar, correlation, filters,
//! `action: global`), compiles rules into prefiltered matchers and runs correlations in stream;
//! what this crate adds is what rsigma does not do for us:
//!
//! * **Feeding events without conversion** ([`view`]): rsigma evaluates anything that
//!   implements its `Event` trait. Its `JsonEvent` wraps a `&serde_json::Value`, while our
//!   [`crowsnest_model::Event`] is a bare `Map`, so wrapping it would mean a full clone per
//!   event. [`view::EventView`] implements the trait over `&Map` instead, with the same path
//!   semantics (flat key first, dotted traversal, any-member over arrays, `[N]` indexes) and
//!   borrowed strings: evaluating an event copies nothing.
//! * **Pipelines and routing** ([`pipelines`]): a pySigma-style processing pipeline maps
//!   Sigma taxonomy fields to ours at load time, and each event's logsource is derived from
//!   `event.dataset`, so a rule only sees events of its logsource.
//! * **Loading with a report** ([`load`]): a broken rule is reported per file (unsupported
//!   construct or invalid, with a line) and skipped; the others load.
//! * **Stream state** ([`detector`]): bounded, expiring correlation windows at event time,
//!   checkpoint/restore, hot rule replacement that keeps compatible state, and correlation
//!   detections that carry the events that formed them.
//! * **Alert lifecycle** ([`alert`]): suppression with expiry and reason, folding of repeats
//!   per rule and entity, alerts as storable events.
//!
//! Where rsigma 0.23 falls short we work around it here rather than patch it:
//! * it links a detection to correlations by rule *id* only, so a rule referenced by `name`
//!   without an `id` never fed its correlation: [`RuleSet`] uses the name as the id then;
//! * a `temporal` correlation without `condition` fires on any one of its rules (it defaults
//!   to `gte: 1`); the spec wants all of them: [`RuleSet`] sets `gte: <rule count>`;
//! * `generate: false` hiding matches rule ids only: [`Detector`] also resolves rule names;
//! * its event-reference mode looks for a flat `event.id` key, not our nested one, so
//!   correlations keep full (deflate-compressed, at most 10 per window) events and we read
//!   `event.id` from them.
//!
//! ```
//! use crowsnest_detect::{Detector, RuleSet};
//! let yaml = r#"
//! title: Exec into a pod
//! id: test-exec
//! logsource: {product: kubernetes, service: audit}
//! detection:
//!   sel: {verb: create, objectRef.subresource: exec}
//!   condition: sel
//! level: high
//! tags: [attack.execution, attack.t1609]
//! "#;
//! let (rules, _report) = RuleSet::from_yaml("exec.yml", yaml);
//! let mut detector = Detector::new(rules);
//! let event: crowsnest_model::Event = serde_json::from_value(serde_json::json!({
//!     "@timestamp": "2024-05-01T10:00:00Z",
//!     "event": {"dataset": "kubernetes.audit", "module": "kubernetes", "id": "e1"},
//!     "k8s": {"audit": {"verb": "create", "objectRef": {"resource": "pods", "subresource": "exec"}}}
//! })).unwrap();
//! let hits = detector.process(&event);
//! assert_eq!(hits.len(), 1);
//! assert_eq!(hits[0].techniques, vec!["T1609"]);
//! assert_eq!(hits[0].event_ids, vec!["e1"]);
//! ```

pub mod alert;
pub mod baseline;
pub mod detector;
pub mod error;
pub mod load;
pub mod pipelines;
pub mod rate;
pub mod report;
pub mod testrun;
pub mod view;

use std::path::PathBuf;

pub use alert::{Alert, AlertDecision, AlertManager, Suppression};
pub use baseline::{Anomaly, BaselineSpec, BaselineStat, Baselines, Profile};
pub use detector::{CorrelationInfo, Detection, Detector};
pub use error::DetectError;
pub use load::{FileReport, FileStatus, LoadReport, Problem, RuleInfo, RuleSet};

/// The principals the Kubernetes rules treat as the cluster working as designed: the control
/// plane and nodes, and the operators that read secrets, create workloads and change RBAC all
/// day (`[detect.kubernetes]` in the server config).
///
/// The shipped lists are the `vars` of `pipelines/crowsnest.yml` (`k8s_system_principals`,
/// `k8s_operators`); rules reference them as the Sigma placeholders `%k8s_system_principals%`
/// and `%k8s_operators%` in `user.username` filters. Entries are Sigma values: `*` and `?`
/// are globs, matching is case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct K8sPrincipals {
    /// Replaces the shipped control-plane list (`system:node:*`,
    /// `system:serviceaccount:kube-system:*`, `system:kube-controller-manager`, ...).
    pub system_principals: Option<Vec<String>>,
    /// Replaces the shipped operator list (prometheus-operator, Argo CD, cert-manager,
    /// ingress-nginx, Flux, Kyverno, Gatekeeper, Velero, Istio, Linkerd, Karpenter, ...).
    pub operators: Option<Vec<String>>,
    /// Added to the operator list (shipped or replaced): your own controllers.
    pub extra_operators: Vec<String>,
}

impl K8sPrincipals {
    /// Pipeline variable holding the control-plane principals.
    pub const SYSTEM_VAR: &'static str = "k8s_system_principals";
    /// Pipeline variable holding the operator principals.
    pub const OPERATORS_VAR: &'static str = "k8s_operators";
}

/// Detection settings (a section of the server config).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DetectConfig {
    /// Directories (or files) of Sigma rules to load, recursively.
    pub rule_dirs: Vec<PathBuf>,
    /// Whether to load the built-in pack (embedded from `rules/` at build time).
    pub builtin: bool,
    /// Repeats of a rule on an entity within this many seconds fold into one alert.
    pub fold_window_secs: u64,
    /// Suppressions of known-good activity.
    pub suppressions: Vec<Suppression>,
    /// Control-plane and operator principals of the Kubernetes rules.
    pub kubernetes: K8sPrincipals,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            rule_dirs: Vec::new(),
            builtin: true,
            fold_window_secs: 600,
            suppressions: Vec::new(),
            kubernetes: K8sPrincipals::default(),
        }
    }
}

impl DetectConfig {
    /// Loads the configured rules.
    pub fn load_rules(&self) -> (RuleSet, LoadReport) {
        let (mut rules, report) = RuleSet::load(&self.rule_dirs, self.builtin);
        rules.set_k8s_principals(&self.kubernetes);
        (rules, report)
    }

    /// An alert manager with the configured window and suppressions.
    pub fn alert_manager(&self) -> AlertManager {
        AlertManager::new(
            std::time::Duration::from_secs(self.fold_window_secs),
            self.suppressions.clone(),
        )
    }
}
