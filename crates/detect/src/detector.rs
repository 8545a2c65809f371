//! The streaming [`Detector`]: one event in, detections out, correlation state carried along.
//!
//! Per event the detector (1) derives the event's Sigma logsource from `event.dataset`
//! (cached per dataset, no allocation after the first event of a dataset), (2) asks rsigma's
//! engine for the rules matching the event, pruning every rule whose logsource conflicts, and
//! (3) feeds those matches into rsigma's correlation engine at the event's own `@timestamp`
//! (stream time, so replaying an archive gives the same result as the live stream).
//!
//! Correlation state is bounded (at most [`MAX_STATE_ENTRIES`] windows, [`MAX_GROUP_ENTRIES`]
//! entries per window, [`MAX_CORRELATION_EVENTS`] kept events per window) and expires with the
//! windows; it can be checkpointed to bytes and restored, and survives [`Detector::replace_rules`]
//! for correlations that keep their id.

use std::collections::{HashMap, HashSet, VecDeque};

use crowsnest_model::{Event, Severity};
use rsigma_eval::{
    CorrelationConfig, CorrelationEngine, CorrelationEventMode, CorrelationSnapshot,
};
use rsigma_parser::LogSource;
use serde::{Deserialize, Serialize};

use crate::baseline::{
    Anomaly, BaselineKind, BaselineStat, Baselines, Profile, RuleBaseline, Verdict,
};
use crate::error::DetectError;
use crate::load::RuleSet;
use crate::pipelines::event_logsource;
use crate::view::EventView;

/// Cap on correlation windows across all correlations and groups.
pub const MAX_STATE_ENTRIES: usize = 100_000;
/// Cap on the entries one group's window keeps.
pub const MAX_GROUP_ENTRIES: usize = 10_000;
/// Events kept per correlation window (the events a correlation alert names).
pub const MAX_CORRELATION_EVENTS: usize = 10;
/// How long (stream seconds) a Kubernetes request's `auditID` is remembered per rule, so the
/// stages of one request (`ResponseStarted`, then `ResponseComplete` an exec session later)
/// alert once.
pub const REQUEST_DEDUP_SECS: i64 = 3600;
/// Cap on remembered (rule, auditID) pairs; the oldest go first.
pub const MAX_REQUEST_DEDUP: usize = 100_000;
/// Expired windows are evicted at least this often (in stream seconds).
const EVICT_EVERY_SECS: i64 = 60;

pub use crowsnest_model::CorrelationInfo;

/// One rule firing on one event (or one correlation firing over several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The rule id (the title for rules without one).
    pub rule_id: String,
    /// The rule title.
    pub title: String,
    /// The rule's level (`medium` when it names none).
    pub level: Severity,
    /// The rule's tags, as written.
    pub tags: Vec<String>,
    /// MITRE ATT&CK technique ids from `attack.tNNNN[.NNN]` tags, upper-cased (`T1609`).
    pub techniques: Vec<String>,
    /// `event.id` of the matched event(s) that have one.
    pub event_ids: Vec<String>,
    /// The matched event(s): the event itself, or the events a correlation kept.
    pub events: Vec<Event>,
    /// Set for correlation detections.
    pub correlation: Option<CorrelationInfo>,
    /// Stream time of the detection (the triggering event's timestamp).
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// For a baseline rule's detection of something new: what, against which baseline, and a
    /// score (see [`crate::baseline`]).
    pub anomaly: Option<Box<Anomaly>>,
}

/// The severity of a Sigma level.
fn severity(level: rsigma_parser::ast::Level) -> Severity {
    match level {
        rsigma_parser::ast::Level::Informational => Severity::Informational,
        rsigma_parser::ast::Level::Low => Severity::Low,
        rsigma_parser::ast::Level::Medium => Severity::Medium,
        rsigma_parser::ast::Level::High => Severity::High,
        rsigma_parser::ast::Level::Critical => Severity::Critical,
    }
}

/// MITRE technique ids in Sigma tags (`attack.t1059.004` -> `T1059.004`).
pub fn techniques_from_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|t| {
            let rest = t.strip_prefix("attack.")?;
            let id = rest.strip_prefix('t').or_else(|| rest.strip_prefix('T'))?;
            let digits_ok = id
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            digits_ok.then(|| format!("T{id}"))
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    stream_secs: i64,
    snapshot: CorrelationSnapshot,
    /// Baseline state per rule (absent in checkpoints of earlier versions).
    #[serde(default)]
    baselines: HashMap<String, RuleBaseline>,
}

/// Rules + pipelines + correlation state. `Send`, so it can live on a pipeline task.
pub struct Detector {
    engine: CorrelationEngine,
    rules: RuleSet,
    /// Rule ids whose own matches are not emitted (`generate: false` correlations use them).
    hidden: HashSet<String>,
    /// Logsource per dataset, then per (module, category) seen with it.
    logsources: LogSourceCache,
    stream_secs: i64,
    last_evict: i64,
    /// (rule id, audit id) pairs already reported, with the stream time they were first seen.
    requests: RequestDedup,
    /// What the `baseline:` rules learned.
    baselines: Baselines,
}

/// Remembers which rules already fired on which Kubernetes request (`k8s.audit.auditID`):
/// audit events come once per stage, and a rule must alert once per request.
#[derive(Debug, Default)]
struct RequestDedup {
    seen: HashSet<(String, String)>,
    order: VecDeque<(i64, (String, String))>,
}

impl RequestDedup {
    /// Whether `(rule, audit_id)` is new (and remembers it).
    fn first(&mut self, rule: &str, audit_id: &str, now: i64) -> bool {
        while let Some((t, _)) = self.order.front() {
            if now - *t <= REQUEST_DEDUP_SECS && self.order.len() < MAX_REQUEST_DEDUP {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.seen.remove(&key);
            }
        }
        let key = (rule.to_string(), audit_id.to_string());
        if self.seen.contains(&key) {
            return false;
        }
        self.seen.insert(key.clone());
        self.order.push_back((now, key));
        true
    }
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("rules", &self.rules.len())
            .field("correlation_state", &self.engine.state_count())
            .finish()
    }
}

fn build_engine(rules: &RuleSet) -> CorrelationEngine {
    let config = CorrelationConfig {
        max_state_entries: MAX_STATE_ENTRIES,
        max_group_entries: Some(MAX_GROUP_ENTRIES),
        correlation_event_mode: CorrelationEventMode::Full,
        max_correlation_events: MAX_CORRELATION_EVENTS,
        ..CorrelationConfig::default()
    };
    let mut engine = CorrelationEngine::new(config.clone());
    for p in &rules.pipelines {
        engine.add_pipeline(p.clone());
    }
    if let Err(error) = engine.add_collection(&rules.collection) {
        // Rules were validated one by one at load, so this is unexpected: rebuild rule by
        // rule and skip what fails, rather than run with a half-built engine.
        tracing::warn!(%error, "rule set did not load as a whole; loading rule by rule");
        engine = CorrelationEngine::new(config);
        for p in &rules.pipelines {
            engine.add_pipeline(p.clone());
        }
        for rule in &rules.collection.rules {
            if let Err(error) = engine.add_rule(rule) {
                tracing::warn!(%error, rule = %rule.title, "rule skipped");
            }
        }
        for corr in &rules.collection.correlations {
            if let Err(error) = engine.add_correlation(corr) {
                tracing::warn!(%error, rule = %corr.title, "correlation skipped");
            }
        }
    }
    engine
}

/// Ids of rules referenced by `generate: false` correlations (by id or by name): Sigma says
/// their matches feed the correlation only. rsigma's own filter matches ids only, so the
/// name case is resolved here.
fn hidden_rules(rules: &RuleSet) -> HashSet<String> {
    let refs: HashSet<&str> = rules
        .collection
        .correlations
        .iter()
        .filter(|c| !c.generate)
        .flat_map(|c| c.rules.iter().map(String::as_str))
        .collect();
    rules
        .collection
        .rules
        .iter()
        .filter(|r| {
            r.id.as_deref().is_some_and(|id| refs.contains(id))
                || r.name.as_deref().is_some_and(|n| refs.contains(n))
        })
        .map(|r| r.id.clone().unwrap_or_else(|| r.title.clone()))
        .collect()
}

impl Detector {
    /// Compiles `rules` into a detector with empty correlation state.
    pub fn new(rules: RuleSet) -> Self {
        Self {
            baselines: Baselines::new(rules.baselines.clone()),
            engine: build_engine(&rules),
            hidden: hidden_rules(&rules),
            rules,
            logsources: HashMap::new(),
            stream_secs: 0,
            last_evict: 0,
            requests: RequestDedup::default(),
        }
    }

    /// The loaded rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Live correlation windows.
    pub fn state_count(&self) -> usize {
        self.engine.state_count()
    }
}

/// Logsources cached per dataset, then per (module, category) seen with it.
type LogSourceCache = HashMap<String, Vec<(Option<String>, Option<String>, LogSource)>>;

/// The event's logsource, computed once per (dataset, module, category) and cached.
fn cached_logsource<'c>(cache: &'c mut LogSourceCache, event: &Event) -> Option<&'c LogSource> {
    let dataset = event.get_str("event.dataset")?;
    let module = event.get_str("event.module");
    let category = match event.get("event.category") {
        Some(serde_json::Value::Array(items)) => items.first().and_then(|v| v.as_str()),
        Some(v) => v.as_str(),
        None => None,
    };
    let entries = match cache.get_mut(dataset) {
        Some(_) => cache.get_mut(dataset)?,
        None => cache.entry(dataset.to_string()).or_default(),
    };
    let pos = match entries
        .iter()
        .position(|(m, c, _)| m.as_deref() == module && c.as_deref() == category)
    {
        Some(pos) => pos,
        None => {
            let ls = event_logsource(Some(dataset), module, category)?;
            entries.push((module.map(str::to_string), category.map(str::to_string), ls));
            entries.len() - 1
        }
    };
    entries.get(pos).map(|(_, _, ls)| ls)
}

impl Detector {
    /// Runs one event, in stream order, and returns what fired.
    pub fn process(&mut self, event: &Event) -> Vec<Detection> {
        let ts = event.timestamp();
        let secs = ts.map(|t| t.timestamp()).unwrap_or(self.stream_secs);
        self.stream_secs = self.stream_secs.max(secs);
        if self.stream_secs - self.last_evict >= EVICT_EVERY_SECS {
            self.engine.evict_expired(self.stream_secs);
            self.last_evict = self.stream_secs;
        }
        self.baselines.start(secs);
        let view = EventView::new(event);
        let matches = match cached_logsource(&mut self.logsources, event) {
            Some(ls) => self.engine.engine().evaluate_pruned(&view, ls),
            None => self.engine.evaluate(&view),
        };
        if matches.is_empty() && self.engine.correlation_rule_count() == 0 {
            return Vec::new();
        }
        let results = self.engine.process_with_detections(&view, matches, secs);
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            let header = &result.header;
            let rule_id = header
                .rule_id
                .clone()
                .unwrap_or_else(|| header.rule_title.clone());
            if result.is_detection() && self.hidden.contains(&rule_id) {
                continue;
            }
            // One alert per Kubernetes request and rule, whatever the stage.
            if result.is_detection() {
                if let Some(audit_id) = event.get_str("k8s.audit.auditID") {
                    if !self.requests.first(&rule_id, audit_id, secs) {
                        continue;
                    }
                }
            }
            // Baseline rules: learn, then keep only what is new (or, for `rare` rules, what
            // cannot be judged yet).
            let mut anomaly = None;
            if result.is_detection() {
                if let Some(verdict) = self.baselines.observe(&rule_id, event, secs) {
                    let kind = self
                        .baselines
                        .spec(&rule_id)
                        .map_or(BaselineKind::NewTerms, |s| s.kind);
                    match (verdict, kind) {
                        (Verdict::New(a), _) => anomaly = Some(a),
                        (
                            Verdict::Learning | Verdict::KnownLearning | Verdict::Unknown(_),
                            BaselineKind::Rare,
                        ) => {}
                        _ => continue,
                    }
                }
            }
            let (events, correlation) = match result.as_correlation() {
                Some(body) => {
                    let events: Vec<Event> = body
                        .events
                        .iter()
                        .flatten()
                        .filter_map(|v| match v {
                            serde_json::Value::Object(map) => Some(Event::from_map(map.clone())),
                            _ => None,
                        })
                        .collect();
                    let info = CorrelationInfo {
                        kind: body.correlation_type.as_str().to_string(),
                        group: body.group_key.clone(),
                        value: body.aggregated_value,
                        timespan_secs: body.timespan_secs,
                    };
                    (events, Some(info))
                }
                None => (vec![event.clone()], None),
            };
            out.push(Detection {
                event_ids: events
                    .iter()
                    .filter_map(|e| e.id().map(str::to_string))
                    .collect(),
                events,
                correlation,
                rule_id,
                title: header.rule_title.clone(),
                level: header.level.map_or(Severity::Medium, severity),
                techniques: techniques_from_tags(&header.tags),
                tags: header.tags.clone(),
                timestamp: ts,
                anomaly,
            });
        }
        out
    }

    /// Serializes the correlation state (windows, kept events, suppression marks).
    pub fn checkpoint(&self) -> Result<Vec<u8>, DetectError> {
        let cp = Checkpoint {
            stream_secs: self.stream_secs,
            snapshot: self.engine.export_state(),
            baselines: self.baselines.state().clone(),
        };
        serde_json::to_vec(&cp).map_err(DetectError::Checkpoint)
    }

    /// Restores state written by [`Detector::checkpoint`]; windows of correlations that no
    /// longer exist are dropped.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), DetectError> {
        let cp: Checkpoint = serde_json::from_slice(bytes).map_err(DetectError::Checkpoint)?;
        if !self.engine.import_state(cp.snapshot) {
            return Err(DetectError::CheckpointVersion);
        }
        self.stream_secs = self.stream_secs.max(cp.stream_secs);
        self.baselines.restore(cp.baselines);
        Ok(())
    }

    /// Learns an event into the baseline rules without alerting or touching correlation
    /// state: the warm start that back-fills baselines from stored events (oldest first).
    pub fn learn(&mut self, event: &Event) {
        self.learn_into(event, None);
    }

    /// [`Detector::learn`] for some baseline rules only (those a warm start back-fills).
    pub fn learn_rules(&mut self, event: &Event, rules: &HashSet<String>) {
        self.learn_into(event, Some(rules));
    }

    fn learn_into(&mut self, event: &Event, only: Option<&HashSet<String>>) {
        if self.baselines.is_empty() {
            return;
        }
        let secs = event
            .timestamp()
            .map(|t| t.timestamp())
            .unwrap_or(self.stream_secs);
        self.baselines.start(secs);
        let view = EventView::new(event);
        let matches = match cached_logsource(&mut self.logsources, event) {
            Some(ls) => self.engine.engine().evaluate_pruned(&view, ls),
            None => self.engine.evaluate(&view),
        };
        for m in matches {
            let rule_id = m
                .header
                .rule_id
                .clone()
                .unwrap_or_else(|| m.header.rule_title.clone());
            if only.is_some_and(|rules| !rules.contains(&rule_id)) {
                continue;
            }
            let _ = self.baselines.observe(&rule_id, event, secs);
        }
    }

    /// Baseline rules whose learning has not started, with their learning windows (seconds).
    pub fn unstarted_baselines(&self) -> Vec<(String, i64)> {
        self.baselines.unstarted()
    }

    /// Figures of every baseline rule.
    pub fn baseline_stats(&self) -> Vec<BaselineStat> {
        self.baselines.stats()
    }

    /// The baselines, to export, import, lock, reset or accept into (see [`Baselines`]).
    pub fn baselines_mut(&mut self) -> &mut Baselines {
        &mut self.baselines
    }

    /// One rule's profile (entities whose values include `entity`, or all).
    pub fn export_profile(&self, rule: &str, entity: Option<&str>) -> Option<Profile> {
        self.baselines.export(rule, entity)
    }

    /// Swaps in new rules. Correlation windows of correlations whose id (or name, or title)
    /// is unchanged carry over; the rest are dropped.
    pub fn replace_rules(&mut self, rules: RuleSet) {
        let snapshot = self.engine.export_state();
        let mut engine = build_engine(&rules);
        engine.import_state(snapshot);
        self.engine = engine;
        self.hidden = hidden_rules(&rules);
        self.baselines.replace_specs(rules.baselines.clone());
        self.rules = rules;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_send<T: Send>() {}

    #[test]
    fn detector_is_send() {
        _assert_send::<Detector>();
    }

    #[test]
    fn request_dedup_forgets_after_the_window_and_is_bounded() {
        let mut d = RequestDedup::default();
        assert!(d.first("r", "a", 0));
        assert!(!d.first("r", "a", 10));
        assert!(d.first("other", "a", 10));
        assert!(d.first("r", "a", REQUEST_DEDUP_SECS + 1));
        for i in 0..(MAX_REQUEST_DEDUP + 10) {
            d.first("r", &i.to_string(), REQUEST_DEDUP_SECS + 2);
        }
        assert!(d.seen.len() <= MAX_REQUEST_DEDUP);
        assert_eq!(d.seen.len(), d.order.len());
    }

    #[test]
    fn techniques() {
        let tags = [
            "attack.execution",
            "attack.t1609",
            "attack.T1059.004",
            "cve.2021-1",
            "attack.t10x",
        ]
        .map(String::from);
        assert_eq!(techniques_from_tags(&tags), vec!["T1609", "T1059.004"]);
    }
}
