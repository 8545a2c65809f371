//! Baselines: "alert when this is new for this entity", learned from the stream.
//!
//! A baseline is a Sigma rule with one extra top-level key, `baseline:` (a Sigma custom
//! attribute, so other Sigma tools load the rule and ignore it). The rule's `detection` is the
//! filter: only events it matches are learned and judged. The `baseline` section says what is
//! learned per entity:
//!
//! ```yaml
//! baseline:
//!   kind: new_terms            # or `rare` (see below)
//!   entity: [user.name]        # event fields naming the entity (all must be present)
//!   terms: [orchestrator.resource.type, event.action]   # the combination learned per entity
//!   learn: 7d                  # the rule learns this long (stream time) before it alerts
//!   entity_learn: 1d           # an entity first seen learns this long too (default: `learn`
//!                              # for new_terms, 0 for rare)
//!   forget: 30d                # a term (and an entity) unseen this long is forgotten
//!   max_entities: 10000        # per rule; beyond it new entities are not tracked (no alerts)
//!   max_terms: 1000            # per entity; beyond it the entity is `saturated` (no alerts)
//!   max_keys: 100000           # terms across the rule's entities; beyond it no new term is
//!                              # learned or judged (no alerts) until some are forgotten
//! ```
//!
//! Field names are crowsnest event fields (dotted paths after normalization, not Sigma taxonomy
//! names). Two virtual fields exist: `workload` is `<namespace>/<workload>` where the workload
//! is derived from `kubernetes.pod.name` the way Kubernetes names pods (Deployment pods
//! `api-7d9c6b5f4-x2x9q` and StatefulSet pods `db-0` share `api` and `db`), falling back to
//! `container.image.name`, then `container.name`: the pods of one Deployment share one profile.
//! Another is `process.argv0`: the base name of `process.args[0]` (else `process.name`), what
//! tells the tools of a multi-call binary apart (busybox: `/bin/busybox` runs as `sh`, `nc`,
//! `sleep`, and its shell starts them through `/proc/self/exe`, so their `comm` is `exe`).
//!
//! Two kinds:
//! * `new_terms`: the rule alerts only on a combination of terms that is new for its entity,
//!   after the learning windows; while learning it only learns.
//! * `rare`: the rule is an ordinary (static) rule that is *gated*: while the rule or the entity
//!   is still learning, and for entities the caps keep it from tracking, it fires on every
//!   match as the static rule would (fail open: a gate never hides what it cannot judge yet);
//!   once learned, it fires only on terms new for the entity, with the explanation.
//!
//! The per-entity sets are exact (a `HashMap` of every term seen), so "new" is never a
//! false positive of a sketch. Memory is bounded by `max_keys` terms per rule (and
//! `max_entities` entities, `max_terms` terms each); what
//! happens at a cap is counted ([`BaselineStat`]), logged once per rule, and never produces an
//! alert: an entity that cannot be tracked, or whose term set is full, is judged "unknown".
//! Entities and terms unseen for `forget` are dropped (periodically, and at a cap before
//! refusing).
//!
//! All times are stream time (the events' `@timestamp`), so a WAL replay from the detector's
//! checkpoint rebuilds the same state, and `hunt` over an archive gives the live results.
//!
//! Every new-term detection carries an [`Anomaly`]: what was new, the baseline it broke (since
//! when, how many events, how many distinct values, the most frequent ones) and a score. The
//! score is `1 − p_new`, with `p_new = (singletons + 1) / (events + 2)` the Good–Turing estimate
//! (smoothed) of the chance that the entity's next event shows a term never seen before: an
//! entity that showed 9 programs in 212 executions, none of them once only, scores 0.995; a
//! brand-new entity scores 0.5.
//!
//! Each entity has a mode: `learning` (inside its windows), `monitoring` (alerts on new terms
//! and adds them to the baseline, so each new term alerts once), or `locked` (set through
//! [`Baselines::set_locked`] or an imported profile: new terms alert every time and are never
//! added). Profiles export to and import from JSON ([`Baselines::export`],
//! [`Baselines::import`]); a `rate` rule's profile carries its entities in `rates` with the
//! history layout, and its entities lock (the history is frozen) and accept (the current bucket
//! joins the history) too.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use crowsnest_model::Event;

use crate::rate::{bucket_label, ewma, robust, Method, RateEntity, RateSpec, Seasonality};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Default cap on entities per baseline rule.
pub const DEFAULT_MAX_ENTITIES: usize = 10_000;
/// Default cap on terms per entity.
pub const DEFAULT_MAX_TERMS: usize = 1_000;
/// Default cap on terms across one rule's entities: about 18 MB (`crowsnest bench anomaly`
/// measures 178 bytes per key), so the nine baseline rules of the pack stay under 160 MB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Default learning window of a rule.
pub const DEFAULT_LEARN_SECS: i64 = 7 * 86_400;
/// Default forget window.
pub const DEFAULT_FORGET_SECS: i64 = 30 * 86_400;
/// Most fields in `entity` or `terms`.
pub const MAX_FIELDS: usize = 8;
/// Stream seconds between sweeps of forgotten entities and terms.
const SWEEP_EVERY_SECS: i64 = 3_600;
/// Separator of field values inside a key (U+001F). A value's own U+001F and U+001B are
/// escaped ([`ESC`]), so values containing them never collide and keys split back exactly.
const SEP: char = '\u{1f}';
/// Escape character inside a key: a value's `ESC` is `ESC ESC`, its `SEP` is `ESC _`.
const ESC: char = '\u{1b}';

/// Escapes `out[start..]` (one value just pushed) in place when it holds `SEP` or `ESC`.
fn escape_from(out: &mut String, start: usize) {
    if !out[start..].contains([SEP, ESC]) {
        return;
    }
    let raw = out.split_off(start);
    for c in raw.chars() {
        match c {
            SEP => {
                out.push(ESC);
                out.push('_');
            }
            ESC => {
                out.push(ESC);
                out.push(ESC);
            }
            c => out.push(c),
        }
    }
}

/// Joins values into a key, escaping each.
fn join_key(values: &[String]) -> String {
    let mut key = String::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        let start = key.len();
        key.push_str(value);
        escape_from(&mut key, start);
    }
    key
}

/// Splits a key back into its values (the inverse of [`join_key`]).
fn split_key(key: &str) -> Vec<String> {
    if !key.contains(ESC) {
        return key.split(SEP).map(str::to_string).collect();
    }
    let mut values = Vec::new();
    let mut current = String::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            SEP => values.push(std::mem::take(&mut current)),
            ESC => match chars.next() {
                Some('_') => current.push(SEP),
                Some(other) => current.push(other),
                None => current.push(ESC),
            },
            c => current.push(c),
        }
    }
    values.push(current);
    values
}
/// What an absent term field is shown as.
const ABSENT: &str = "(absent)";

/// What a baseline rule does with what it learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    /// Alerts only on terms new for the entity (silent while learning).
    #[default]
    NewTerms,
    /// A static rule gated by rarity: fires as a static rule while learning (and on what it
    /// cannot judge), then only on new terms.
    Rare,
    /// Event rates or distinct counts per entity against a robust, seasonal baseline
    /// ([`crate::rate`]).
    Rate,
}

/// A field list: one name or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Fields {
    One(String),
    Many(Vec<String>),
}

impl Fields {
    fn into_vec(self) -> Vec<String> {
        match self {
            Fields::One(f) => vec![f],
            Fields::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    kind: BaselineKind,
    entity: Fields,
    terms: Option<Fields>,
    distinct: Option<Fields>,
    bucket: Option<String>,
    seasonality: Option<Seasonality>,
    history: Option<usize>,
    min_history: Option<usize>,
    threshold: Option<f64>,
    min_count: Option<u64>,
    max_distinct: Option<usize>,
    method: Option<Method>,
    alpha: Option<f64>,
    learn: Option<String>,
    entity_learn: Option<String>,
    forget: Option<String>,
    max_entities: Option<usize>,
    max_terms: Option<usize>,
    max_keys: Option<usize>,
}

/// A rule's `baseline:` section, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineSpec {
    /// New terms or rarity gate.
    pub kind: BaselineKind,
    /// Fields naming the entity.
    pub entity: Vec<String>,
    /// Fields whose combination is learned per entity.
    pub terms: Vec<String>,
    /// Rule learning window (seconds of stream time from the first event it saw).
    pub learn_secs: i64,
    /// Entity learning window (from the entity's first event).
    pub entity_learn_secs: i64,
    /// Terms and entities unseen this long are forgotten.
    pub forget_secs: i64,
    /// Cap on entities.
    pub max_entities: usize,
    /// Cap on terms per entity.
    pub max_terms: usize,
    /// Cap on terms across the rule's entities (what bounds its memory); for `rate`, on the
    /// distinct values held across entities.
    pub max_keys: usize,
    /// The `rate` settings (`kind: rate` only).
    pub rate: Option<RateSpec>,
}

fn secs(text: Option<&str>, name: &str, default: i64) -> Result<i64, String> {
    match text {
        None => Ok(default),
        Some(t) => crowsnest_model::parse_duration(t)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .map_err(|e| format!("`{name}`: {e}")),
    }
}

fn check_fields(list: &[String], name: &str) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!("`{name}` needs at least one field"));
    }
    if list.len() > MAX_FIELDS {
        return Err(format!(
            "`{name}` has {} fields; at most {MAX_FIELDS}",
            list.len()
        ));
    }
    if let Some(bad) = list.iter().find(|f| f.trim().is_empty() || f.contains(SEP)) {
        return Err(format!(
            "`{name}` has an empty or invalid field name {bad:?}"
        ));
    }
    Ok(())
}

impl BaselineSpec {
    /// Parses and validates a `baseline:` section (as JSON).
    pub fn from_value(value: &Value) -> Result<Self, String> {
        let raw: RawSpec = serde_json::from_value(value.clone()).map_err(|e| {
            format!("expected {{kind, entity, terms, learn, entity_learn, forget, max_entities, max_terms, max_keys}} (and for `kind: rate` distinct, bucket, seasonality, history, min_history, threshold, min_count, max_distinct, method, alpha): {e}")
        })?;
        let entity = raw.entity.into_vec();
        check_fields(&entity, "entity")?;
        let is_rate = raw.kind == BaselineKind::Rate;
        let rate_keys = [
            ("distinct", raw.distinct.is_some()),
            ("bucket", raw.bucket.is_some()),
            ("seasonality", raw.seasonality.is_some()),
            ("history", raw.history.is_some()),
            ("min_history", raw.min_history.is_some()),
            ("threshold", raw.threshold.is_some()),
            ("min_count", raw.min_count.is_some()),
            ("max_distinct", raw.max_distinct.is_some()),
            ("method", raw.method.is_some()),
            ("alpha", raw.alpha.is_some()),
        ];
        let (terms, rate) = if is_rate {
            if raw.terms.is_some() {
                return Err(
                    "`terms` is for new_terms and rare; a rate counts events, or `distinct` values"
                        .into(),
                );
            }
            let distinct = raw.distinct.map(Fields::into_vec).unwrap_or_default();
            if !distinct.is_empty() {
                check_fields(&distinct, "distinct")?;
            }
            let rate = RateSpec {
                distinct,
                bucket_secs: secs(raw.bucket.as_deref(), "bucket", 3_600)?,
                seasonality: raw.seasonality.unwrap_or(Seasonality::HourOfWeek),
                history: raw.history.unwrap_or(4),
                min_history: raw.min_history.unwrap_or(3),
                threshold: raw.threshold.unwrap_or(6.0),
                min_count: raw.min_count.unwrap_or(10),
                max_distinct: raw.max_distinct.unwrap_or(10_000),
                method: raw.method.unwrap_or_default(),
                alpha: raw.alpha.unwrap_or(0.3),
            };
            if raw.alpha.is_some() && rate.method != Method::Ewma {
                return Err("`alpha` is for `method: ewma` only".into());
            }
            rate.check()?;
            (Vec::new(), Some(rate))
        } else {
            if let Some((key, _)) = rate_keys.iter().find(|(_, set)| *set) {
                return Err(format!("`{key}` is for `kind: rate` only"));
            }
            let terms = raw
                .terms
                .ok_or_else(|| "`terms` is missing".to_string())?
                .into_vec();
            check_fields(&terms, "terms")?;
            (terms, None)
        };
        // A rate learns per slot (`min_history`); its windows default to none.
        let default_learn = if is_rate { 0 } else { DEFAULT_LEARN_SECS };
        let learn_secs = secs(raw.learn.as_deref(), "learn", default_learn)?;
        let default_entity_learn = match raw.kind {
            BaselineKind::NewTerms => learn_secs,
            BaselineKind::Rare | BaselineKind::Rate => 0,
        };
        let entity_learn_secs = secs(
            raw.entity_learn.as_deref(),
            "entity_learn",
            default_entity_learn,
        )?;
        let forget_secs = secs(raw.forget.as_deref(), "forget", DEFAULT_FORGET_SECS)?;
        if forget_secs <= learn_secs.max(entity_learn_secs) {
            return Err(format!(
                "`forget` ({forget_secs}s) must be longer than `learn` and `entity_learn`, or what was learned is forgotten before alerting starts"
            ));
        }
        let max_entities = raw.max_entities.unwrap_or(DEFAULT_MAX_ENTITIES);
        let max_terms = raw.max_terms.unwrap_or(DEFAULT_MAX_TERMS);
        if !(1..=1_000_000).contains(&max_entities) {
            return Err(format!(
                "`max_entities` must be 1..=1000000, not {max_entities}"
            ));
        }
        if !(1..=100_000).contains(&max_terms) {
            return Err(format!("`max_terms` must be 1..=100000, not {max_terms}"));
        }
        let max_keys = raw.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
        if !(1..=10_000_000).contains(&max_keys) {
            return Err(format!("`max_keys` must be 1..=10000000, not {max_keys}"));
        }
        Ok(Self {
            kind: raw.kind,
            entity,
            terms,
            learn_secs,
            entity_learn_secs,
            forget_secs,
            max_entities,
            max_terms,
            max_keys,
            rate,
        })
    }

    /// Whether state learned under `other` means the same under `self`.
    fn same_keys(&self, other: &Self) -> bool {
        let layout = |s: &Self| {
            s.rate
                .as_ref()
                .map(|r| (r.distinct.clone(), r.bucket_secs, r.slots(), r.history))
        };
        self.entity == other.entity && self.terms == other.terms && layout(self) == layout(other)
    }
}

/// The workload a pod belongs to, from its name: `api-7d9c6b5f4-x2x9q` (Deployment) -> `api`,
/// `db-0` (StatefulSet) -> `db`, `agent-x2x9q` (DaemonSet/Job) -> `agent`; other names are
/// their own workload.
pub fn workload_of_pod(pod: &str) -> &str {
    let is_suffix = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let Some((rest, last)) = pod.rsplit_once('-') else {
        return pod;
    };
    if rest.is_empty() {
        return pod;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return rest;
    }
    if !is_suffix(last, 5..=5) {
        return pod;
    }
    match rest.rsplit_once('-') {
        Some((name, hash)) if is_suffix(hash, 6..=10) && !name.is_empty() => name,
        _ => rest,
    }
}

fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(value_text).collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        _ => None,
    }
}

fn push_value(value: &Value, out: &mut String) -> bool {
    use std::fmt::Write as _;
    match value {
        Value::String(s) => out.push_str(s),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Array(items) => {
            let start = out.len();
            for item in items {
                let before = out.len();
                if before > start {
                    out.push(',');
                }
                if !push_value(item, out) {
                    out.truncate(before);
                }
            }
            return out.len() > start;
        }
        _ => return false,
    }
    true
}

/// The virtual `process.argv0`: the base name of the first argument the program was started
/// with (`process.args[0]`), else `process.name`. Multi-call binaries (busybox, so Alpine) are
/// one executable for every tool, and busybox's shell runs its applets through
/// `/proc/self/exe`, so the kernel's `comm` (`process.name`) is `exe` for all of them: only
/// `argv[0]` tells `sleep` from `nc`.
fn argv0(event: &Event) -> Option<&str> {
    let first = match event.get("process.args") {
        Some(Value::Array(items)) => items.first().and_then(Value::as_str),
        Some(Value::String(s)) => s.split_whitespace().next(),
        _ => None,
    };
    match first {
        Some(arg) => Some(
            arg.rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or(arg),
        ),
        None => event.get_str("process.name"),
    }
}

/// Appends a field's text (as [`field_text`] gives it) to `out`; false (and nothing appended)
/// when the event has no such value. The hot path: no allocation of its own.
fn push_field(event: &Event, field: &str, out: &mut String) -> bool {
    if field == "process.argv0" {
        return match argv0(event) {
            Some(name) => {
                out.push_str(name);
                true
            }
            None => false,
        };
    }
    if field == "workload" {
        let ns = event
            .get_str("kubernetes.namespace")
            .or_else(|| event.get_str("orchestrator.namespace"));
        if let (Some(ns), Some(pod)) = (ns, event.get_str("kubernetes.pod.name")) {
            out.push_str(ns);
            out.push('/');
            out.push_str(workload_of_pod(pod));
            return true;
        }
        return match event
            .get_str("container.image.name")
            .or_else(|| event.get_str("container.name"))
        {
            Some(name) => {
                out.push_str(name);
                true
            }
            None => false,
        };
    }
    let start = out.len();
    match event.get(field) {
        Some(value) if push_value(value, out) => true,
        _ => {
            out.truncate(start);
            false
        }
    }
}

/// A field's text on an event (arrays joined with `,`), with the virtual fields `workload` and
/// `process.argv0`.
pub fn field_text(event: &Event, field: &str) -> Option<String> {
    if field == "process.argv0" {
        return argv0(event).map(str::to_string);
    }
    if field == "workload" {
        let ns = event
            .get_str("kubernetes.namespace")
            .or_else(|| event.get_str("orchestrator.namespace"));
        if let (Some(ns), Some(pod)) = (ns, event.get_str("kubernetes.pod.name")) {
            return Some(format!("{ns}/{}", workload_of_pod(pod)));
        }
        return event
            .get_str("container.image.name")
            .or_else(|| event.get_str("container.name"))
            .map(str::to_string);
    }
    event.get(field).and_then(value_text)
}

/// One term of an entity's baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermStat {
    /// First seen (unix seconds, stream time).
    pub first_seen: i64,
    /// Last seen.
    pub last_seen: i64,
    /// Events with this term.
    pub count: u64,
}

/// What one entity did, per rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityBaseline {
    /// The entity's field values (in `entity` order).
    pub values: Vec<String>,
    /// First event (unix seconds, stream time).
    pub first_seen: i64,
    /// Latest event.
    pub last_seen: i64,
    /// Events learned.
    pub events: u64,
    /// Terms seen exactly once.
    pub singletons: u64,
    /// Term key (values joined by U+001F, each value's U+001F and U+001B escaped) -> its
    /// figures.
    pub terms: HashMap<String, TermStat>,
    /// New terms alert every time and are never learned.
    #[serde(default)]
    pub locked: bool,
    /// The term cap was reached: the entity is no longer judged.
    #[serde(default)]
    pub saturated: bool,
}

impl EntityBaseline {
    fn new(values: Vec<String>, now: i64) -> Self {
        Self {
            values,
            first_seen: now,
            last_seen: now,
            events: 0,
            singletons: 0,
            terms: HashMap::new(),
            locked: false,
            saturated: false,
        }
    }

    fn forget_terms(&mut self, now: i64, forget: i64) {
        let before = self.terms.len();
        self.terms.retain(|_, t| now - t.last_seen <= forget);
        if self.terms.len() != before {
            self.singletons = self.terms.values().filter(|t| t.count == 1).count() as u64;
            self.saturated = false;
        }
    }

    fn insert_term(&mut self, key: String, now: i64) {
        self.terms.insert(
            key,
            TermStat {
                first_seen: now,
                last_seen: now,
                count: 1,
            },
        );
        self.singletons += 1;
    }
}

/// One rule's learned state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleBaseline {
    /// Stream time of the first event the rule learned (its learning window starts here).
    pub started: Option<i64>,
    /// Entity key (values joined by U+001F, escaped as term keys are) -> its baseline.
    pub entities: HashMap<String, EntityBaseline>,
    /// Events learned across entities.
    #[serde(default)]
    pub events: u64,
    /// Events of entities not tracked because of the entity cap.
    pub entities_refused: u64,
    /// New terms not learned because of the term cap.
    pub terms_refused: u64,
    /// Terms held across entities (exact after a sweep or at the cap; never under-counted by
    /// what `observe` learns).
    #[serde(default)]
    keys: usize,
    /// Last sweep of forgotten entries.
    #[serde(default)]
    last_sweep: i64,
    /// `rate` rules: entity key -> its buckets.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub rates: HashMap<String, RateEntity>,
    /// A cap was logged already.
    #[serde(skip)]
    warned: bool,
}

/// Summary of the baseline a new term broke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSummary {
    /// The entity's first event.
    pub since: DateTime<Utc>,
    /// Seconds from `since` to the new term.
    pub window_secs: i64,
    /// Events learned for the entity.
    pub events: u64,
    /// Distinct terms learned for the entity.
    pub distinct: usize,
    /// Most frequent learned terms with their counts (at most 5).
    pub top: Vec<(String, u64)>,
    /// `monitoring` or `locked`.
    pub mode: String,
}

/// Why a baseline detection fired: what was new, the baseline it broke, and a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The baseline's kind.
    pub kind: BaselineKind,
    /// Entity field -> value.
    pub entity: BTreeMap<String, String>,
    /// Term field -> the new value.
    pub new: BTreeMap<String, String>,
    /// The baseline before this event.
    pub baseline: BaselineSummary,
    /// 0..1: how unexpected a new term was for this entity (see the module docs); for a rate,
    /// `z / (z + k)` with `z` the robust deviation: 0.5 at the threshold.
    pub score: f64,
    /// One sentence for people.
    pub explanation: String,
    /// A rate anomaly's figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateAnomaly>,
}

/// What a rate baseline saw: the bucket's value against its slot's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateAnomaly {
    /// `events` or `distinct <fields>`.
    pub measure: String,
    /// The bucket's start.
    pub bucket_start: DateTime<Utc>,
    /// Bucket width in seconds.
    pub bucket_secs: i64,
    /// The value when it crossed the threshold.
    pub value: u64,
    /// The distinct set was capped: `value` is a lower bound.
    pub capped: bool,
    /// The slot's past values, oldest first.
    pub history: Vec<u32>,
    /// Their median.
    pub median: f64,
    /// Their median absolute deviation.
    pub mad: f64,
    /// `median + k × max(1.4826 × MAD, 1)`, or with `method: ewma`
    /// `mean + k × max(std, 1)`.
    pub threshold: f64,
    /// How the threshold was computed.
    #[serde(default)]
    pub method: Method,
    /// `ewma`: the weighted mean of the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// `ewma`: the weighted standard deviation of the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
}

impl Anomaly {
    /// The anomaly as alert fields (`alert.anomaly.*`).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// What a baseline made of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The terms are in the entity's baseline (learned).
    Known,
    /// The terms were seen before, and the rule or the entity is still learning.
    KnownLearning,
    /// Learned; the rule or the entity is still learning.
    Learning,
    /// Not judged: an entity field is missing, or a cap keeps the entity from being tracked.
    Unknown(&'static str),
    /// New for the entity, after learning.
    New(Box<Anomaly>),
}

fn human_secs(secs: i64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 2 * 3_600 => format!("{}h", s / 3_600),
        s if s >= 120 => format!("{}m", s / 60),
        s => format!("{}s", s.max(0)),
    }
}

fn time_of(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn pairs(fields: &[String], values: &[String]) -> BTreeMap<String, String> {
    fields.iter().cloned().zip(values.iter().cloned()).collect()
}

fn show(fields: &[String], values: &[String]) -> String {
    fields
        .iter()
        .zip(values)
        .map(|(f, v)| format!("{f}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl RuleBaseline {
    /// A new entity past `max_entities`: counted, warned about once per rule, never alerted on.
    fn refuse_entity(&mut self, spec: &BaselineSpec, rule: &str) -> Verdict {
        self.entities_refused += 1;
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                rule,
                max_entities = spec.max_entities,
                "baseline entity cap reached: new entities are not tracked and raise no baseline alerts"
            );
        }
        Verdict::Unknown("the entity cap is reached")
    }

    /// Learns `event` (matched by the rule) at stream time `now` and judges it.
    pub fn observe(&mut self, spec: &BaselineSpec, rule: &str, event: &Event, now: i64) -> Verdict {
        if let Some(rate) = &spec.rate {
            return self.observe_rate(spec, rate, rule, event, now);
        }
        let mut entity_key = String::with_capacity(64);
        for (i, field) in spec.entity.iter().enumerate() {
            if i > 0 {
                entity_key.push(SEP);
            }
            let start = entity_key.len();
            if !push_field(event, field, &mut entity_key) {
                return Verdict::Unknown("an entity field is missing");
            }
            escape_from(&mut entity_key, start);
        }
        let mut term_key = String::with_capacity(64);
        for (i, field) in spec.terms.iter().enumerate() {
            if i > 0 {
                term_key.push(SEP);
            }
            let start = term_key.len();
            if push_field(event, field, &mut term_key) {
                escape_from(&mut term_key, start);
            } else {
                term_key.push_str(ABSENT);
            }
        }
        // Normally set by [`Baselines::start`] at the first event the detector processed with
        // the rule loaded; a rule observed on its own starts with its first event.
        let started = *self.started.get_or_insert(now);
        if now - self.last_sweep >= SWEEP_EVERY_SECS {
            self.sweep(spec, now);
        }
        let mut context = None;
        if !self.entities.contains_key(&entity_key) {
            if self.entities.len() >= spec.max_entities {
                self.sweep(spec, now);
            }
            if self.entities.len() >= spec.max_entities {
                return self.refuse_entity(spec, rule);
            }
            if now >= started + spec.learn_secs {
                context = Some(self.context(spec, started, now));
            }
            let values = split_key(&entity_key);
            self.entities
                .insert(entity_key.clone(), EntityBaseline::new(values, now));
        }
        self.events += 1;
        if self.keys >= spec.max_keys {
            self.keys = self.term_count();
            if self.keys >= spec.max_keys {
                self.sweep(spec, now);
            }
        }
        let key_room = self.keys < spec.max_keys;
        let Some(entity) = self.entities.get_mut(&entity_key) else {
            return Verdict::Unknown("the entity cap is reached");
        };
        entity.last_seen = entity.last_seen.max(now);
        let learning = !entity.locked
            && (now < started + spec.learn_secs
                || now < entity.first_seen + spec.entity_learn_secs);
        if let Some(term) = entity.terms.get_mut(&term_key) {
            if now - term.last_seen <= spec.forget_secs {
                if term.count == 1 {
                    entity.singletons = entity.singletons.saturating_sub(1);
                }
                term.count += 1;
                term.last_seen = term.last_seen.max(now);
                entity.events += 1;
                return if learning {
                    Verdict::KnownLearning
                } else {
                    Verdict::Known
                };
            }
            // Forgotten: it counts as new again.
            let count = term.count;
            entity.terms.remove(&term_key);
            self.keys = self.keys.saturating_sub(1);
            if count == 1 {
                entity.singletons = entity.singletons.saturating_sub(1);
            }
        }
        if entity.saturated {
            entity.events += 1;
            return Verdict::Unknown("the entity's term cap is reached");
        }
        if !key_room && !entity.locked {
            entity.events += 1;
            self.terms_refused += 1;
            if !self.warned {
                self.warned = true;
                tracing::warn!(
                    rule,
                    max_keys = spec.max_keys,
                    "baseline key cap reached: new terms are not learned or judged (no alerts) until some are forgotten"
                );
            }
            return Verdict::Unknown("the rule's key cap is reached");
        }
        if entity.terms.len() >= spec.max_terms {
            entity.forget_terms(now, spec.forget_secs);
        }
        let room = entity.terms.len() < spec.max_terms;
        if learning {
            entity.events += 1;
            if room {
                entity.insert_term(term_key, now);
                self.keys += 1;
                return Verdict::Learning;
            }
            entity.saturated = true;
            self.terms_refused += 1;
            warn_terms(rule, spec, &mut self.warned);
            return Verdict::Unknown("the entity's term cap is reached");
        }
        if !room && !entity.locked {
            entity.events += 1;
            entity.saturated = true;
            self.terms_refused += 1;
            warn_terms(rule, spec, &mut self.warned);
            return Verdict::Unknown("the entity's term cap is reached");
        }
        let term_values = split_key(&term_key);
        let anomaly = explain(spec, entity, &term_values, now, context);
        entity.events += 1;
        if !entity.locked {
            entity.insert_term(term_key, now);
            self.keys += 1;
        }
        Verdict::New(Box::new(anomaly))
    }

    /// What the rule learned across entities (for a new entity's explanation).
    fn context(&self, spec: &BaselineSpec, started: i64, now: i64) -> RuleContext {
        let mut top: Vec<(String, u64)> = self
            .entities
            .values()
            .map(|e| (show(&spec.entity, &e.values), e.events))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(3);
        RuleContext {
            events: self.events,
            entities: self.entities.len(),
            window: now - started,
            top,
        }
    }

    /// Drops entities and terms unseen for the forget window.
    fn sweep(&mut self, spec: &BaselineSpec, now: i64) {
        self.last_sweep = now;
        self.entities
            .retain(|_, e| e.locked || now - e.last_seen <= spec.forget_secs);
        for entity in self.entities.values_mut() {
            entity.forget_terms(now, spec.forget_secs);
        }
        self.keys = self.term_count();
    }

    /// Terms held across entities (for a rate: distinct values held in current buckets).
    pub fn term_count(&self) -> usize {
        self.entities.values().map(|e| e.terms.len()).sum::<usize>()
            + self.rates.values().map(|e| e.distinct.len()).sum::<usize>()
    }

    /// Counts `event` into its entity's bucket and judges the bucket (see [`crate::rate`]).
    fn observe_rate(
        &mut self,
        spec: &BaselineSpec,
        rate: &RateSpec,
        rule: &str,
        event: &Event,
        now: i64,
    ) -> Verdict {
        let Some(entity_key) = key_of(event, &spec.entity) else {
            return Verdict::Unknown("an entity field is missing");
        };
        let started = *self.started.get_or_insert(now);
        if now - self.last_sweep >= SWEEP_EVERY_SECS {
            self.last_sweep = now;
            self.rates
                .retain(|_, e| now - e.last_seen <= spec.forget_secs);
            self.keys = self.term_count();
        }
        let bucket = now - now.rem_euclid(rate.bucket_secs);
        if !self.rates.contains_key(&entity_key) {
            if self.rates.len() >= spec.max_entities {
                return self.refuse_entity(spec, rule);
            }
            let values = split_key(&entity_key);
            self.rates.insert(
                entity_key.clone(),
                RateEntity::new(values, rate, now, bucket),
            );
        }
        self.events += 1;
        let key_room = self.keys < spec.max_keys;
        let Some(entity) = self.rates.get_mut(&entity_key) else {
            return Verdict::Unknown("the entity cap is reached");
        };
        entity.events += 1;
        entity.last_seen = entity.last_seen.max(now);
        if bucket < entity.bucket {
            return Verdict::Unknown("a late event: its bucket is closed");
        }
        let released = entity.roll(rate, bucket);
        self.keys = self.keys.saturating_sub(released);
        entity.count += 1;
        if !rate.distinct.is_empty() {
            let value = key_of_or_absent(event, &rate.distinct);
            if !entity.distinct.contains(&value) {
                if entity.distinct.len() < rate.max_distinct && key_room {
                    entity.distinct.insert(value);
                    self.keys += 1;
                } else {
                    entity.capped = true;
                    self.terms_refused += 1;
                }
            }
        }
        let learning =
            now < started + spec.learn_secs || now < entity.first_seen + spec.entity_learn_secs;
        let history = entity.slot_history(rate);
        if learning || history.len() < rate.min_history {
            return Verdict::Learning;
        }
        let value = entity.value(rate);
        if entity.alerted
            || value < rate.min_count
            || value as f64 <= crate::rate::threshold(rate, &history)
        {
            return Verdict::Known;
        }
        entity.alerted = true;
        Verdict::New(Box::new(explain_rate(spec, rate, entity, &history, now)))
    }
}

/// The entity key of an event (values escaped and joined), `None` when a field is missing.
fn key_of(event: &Event, fields: &[String]) -> Option<String> {
    let mut key = String::with_capacity(64);
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        let start = key.len();
        if !push_field(event, field, &mut key) {
            return None;
        }
        escape_from(&mut key, start);
    }
    Some(key)
}

/// Like [`key_of`], with absent fields shown as absent.
fn key_of_or_absent(event: &Event, fields: &[String]) -> String {
    let mut key = String::with_capacity(64);
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        let start = key.len();
        if push_field(event, field, &mut key) {
            escape_from(&mut key, start);
        } else {
            key.push_str(ABSENT);
        }
    }
    key
}

/// A bucket width for people: `1h`, `15m`, `1d`.
fn width(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn explain_rate(
    spec: &BaselineSpec,
    rate: &RateSpec,
    entity: &RateEntity,
    history: &[u32],
    now: i64,
) -> Anomaly {
    let value = entity.value(rate);
    let r = robust(history, rate.threshold);
    let e = (rate.method == Method::Ewma).then(|| ewma(history, rate.alpha, rate.threshold));
    let (center, scale, threshold) = match e {
        Some(e) => (e.mean, e.std.max(1.0), e.threshold),
        None => (r.median, (1.4826 * r.mad).max(1.0), r.threshold),
    };
    let z = (value as f64 - center) / scale;
    let score = ((z / (z + rate.threshold)) * 1000.0).round() / 1000.0;
    let measure = rate.measure();
    let span = match rate.seasonality {
        Seasonality::HourOfWeek => format!(
            "the same {} of the week in the last {} weeks",
            width(rate.bucket_secs),
            history.len()
        ),
        Seasonality::None => format!(
            "the last {} buckets of {}",
            history.len(),
            width(rate.bucket_secs)
        ),
    };
    let shown: Vec<String> = history.iter().map(u32::to_string).collect();
    let bound = if entity.capped { "at least " } else { "" };
    let figures = match e {
        Some(e) => format!(
            "EWMA {:.1} (alpha {}, standard deviation {:.1}: {})",
            e.mean,
            rate.alpha,
            e.std,
            shown.join(", ")
        ),
        None => format!("median {} (MAD {}: {})", r.median, r.mad, shown.join(", ")),
    };
    let explanation = format!(
        "{}: {bound}{value} {measure} in the {} from {}; {span} saw {figures}; threshold {threshold:.1}; score {score}",
        show(&spec.entity, &entity.values),
        width(rate.bucket_secs),
        bucket_label(entity.bucket),
    );
    let top = vec![
        ("median".to_string(), r.median.round() as u64),
        ("mad".to_string(), r.mad.round() as u64),
    ];
    Anomaly {
        kind: BaselineKind::Rate,
        entity: pairs(&spec.entity, &entity.values),
        new: BTreeMap::from([(measure.clone(), value.to_string())]),
        baseline: BaselineSummary {
            since: time_of(entity.first_seen),
            window_secs: now - entity.first_seen,
            events: entity.events,
            distinct: history.len(),
            top,
            mode: if entity.locked {
                "locked"
            } else {
                "monitoring"
            }
            .to_string(),
        },
        score,
        explanation,
        rate: Some(RateAnomaly {
            measure,
            bucket_start: time_of(entity.bucket),
            bucket_secs: rate.bucket_secs,
            value,
            capped: entity.capped,
            history: history.to_vec(),
            median: r.median,
            mad: r.mad,
            threshold,
            method: rate.method,
            mean: e.map(|e| e.mean),
            std: e.map(|e| e.std),
        }),
    }
}

fn warn_terms(rule: &str, spec: &BaselineSpec, warned: &mut bool) {
    if !*warned {
        *warned = true;
        tracing::warn!(
            rule,
            max_terms = spec.max_terms,
            "baseline term cap reached: the entity is saturated and raises no baseline alerts"
        );
    }
}

/// A rule's figures across entities, for a new entity.
struct RuleContext {
    events: u64,
    entities: usize,
    window: i64,
    top: Vec<(String, u64)>,
}

fn explain(
    spec: &BaselineSpec,
    entity: &EntityBaseline,
    new: &[String],
    now: i64,
    context: Option<RuleContext>,
) -> Anomaly {
    let mut top: Vec<(String, u64)> = entity
        .terms
        .iter()
        .map(|(k, t)| (split_key(k).join(" × "), t.count))
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(5);
    let window = now - entity.first_seen;
    let mode = if entity.locked {
        "locked"
    } else {
        "monitoring"
    };
    let (p_new, seen, subject) = if let Some(ctx) = context.filter(|_| entity.events == 0) {
        // A new entity: how often did the rule see one it had not seen before?
        let p = (ctx.entities as f64 + 1.0) / (ctx.events as f64 + 2.0);
        let shown: Vec<String> = ctx.top.iter().map(|(t, c)| format!("{t} ×{c}")).collect();
        let seen = if ctx.events == 0 {
            format!(
                "the rule matched nothing in {} of learning",
                human_secs(ctx.window)
            )
        } else {
            format!(
                "in {} the rule learned {} events of {} entities (most active: {})",
                human_secs(ctx.window),
                ctx.events,
                ctx.entities,
                shown.join(", ")
            )
        };
        let subject = format!(
            "{} is a new entity: {}",
            show(&spec.entity, &entity.values),
            show(&spec.terms, new)
        );
        (p, seen, subject)
    } else if entity.events == 0 {
        let subject = format!(
            "{} is a new entity: {}",
            show(&spec.entity, &entity.values),
            show(&spec.terms, new)
        );
        (0.5, "first event of this entity".to_string(), subject)
    } else {
        let shown: Vec<String> = top.iter().map(|(t, c)| format!("{t} ×{c}")).collect();
        let seen = format!(
            "{} events of {} distinct values seen (most frequent: {})",
            entity.events,
            entity.terms.len(),
            shown.join(", ")
        );
        let subject = format!(
            "{} never seen for {} in {}",
            show(&spec.terms, new),
            show(&spec.entity, &entity.values),
            human_secs(window)
        );
        let p = (entity.singletons as f64 + 1.0) / (entity.events as f64 + 2.0);
        (p, seen, subject)
    };
    let score = ((1.0 - p_new) * 1000.0).round() / 1000.0;
    let explanation = format!("{subject}; {seen}; score {score}");
    Anomaly {
        kind: spec.kind,
        entity: pairs(&spec.entity, &entity.values),
        new: pairs(&spec.terms, new),
        baseline: BaselineSummary {
            since: time_of(entity.first_seen),
            window_secs: window,
            events: entity.events,
            distinct: entity.terms.len(),
            top,
            mode: mode.to_string(),
        },
        score,
        explanation,
        rate: None,
    }
}

/// Figures of one baseline rule (for metrics, logs and `baselines list`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineStat {
    /// Rule id.
    pub rule: String,
    /// Kind.
    pub kind: BaselineKind,
    /// Entities tracked.
    pub entities: usize,
    /// Terms held.
    pub terms: usize,
    /// Events of entities refused at the entity cap.
    pub entities_refused: u64,
    /// New terms refused at the term cap.
    pub terms_refused: u64,
    /// When the rule's learning window ends (stream time; absent before its first event).
    pub learning_until: Option<DateTime<Utc>>,
}

/// An exported profile: one rule's entities (all, or a selection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The rule id.
    pub rule: String,
    /// Entity fields (checked on import).
    pub entity: Vec<String>,
    /// Term fields (checked on import).
    pub terms: Vec<String>,
    /// The entities.
    pub entities: Vec<EntityBaseline>,
    /// A `rate` rule's layout (checked on import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLayout>,
    /// A `rate` rule's entities: their current bucket and per-slot history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<RateEntity>,
}

/// What a rate entity's state means: what is counted, and how its history is laid out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLayout {
    /// Fields whose distinct values are counted (empty: events).
    pub distinct: Vec<String>,
    /// Bucket width in seconds.
    pub bucket_secs: i64,
    /// Slots of the history.
    pub slots: usize,
    /// Values per slot.
    pub history: usize,
}

impl RateLayout {
    fn of(rate: &RateSpec) -> Self {
        Self {
            distinct: rate.distinct.clone(),
            bucket_secs: rate.bucket_secs,
            slots: rate.slots(),
            history: rate.history,
        }
    }
}

/// Every baseline rule's spec and state.
#[derive(Debug, Clone, Default)]
pub struct Baselines {
    specs: HashMap<String, BaselineSpec>,
    state: HashMap<String, RuleBaseline>,
    /// Every rule's learning window has started.
    started_all: bool,
}

impl Baselines {
    /// Baselines for these rules (rule id -> spec), empty.
    pub fn new(specs: HashMap<String, BaselineSpec>) -> Self {
        Self {
            specs,
            state: HashMap::new(),
            started_all: false,
        }
    }

    /// Whether `rule` has a baseline.
    pub fn spec(&self, rule: &str) -> Option<&BaselineSpec> {
        self.specs.get(rule)
    }

    /// Whether any rule has a baseline.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Starts the learning window of every rule that has not started at stream time `now`:
    /// a rule learns from when it is loaded (watched), not from its first match, so a rule
    /// that matched nothing for its whole learning window has learned that nothing happens.
    /// Cheap when every rule has started.
    pub fn start(&mut self, now: i64) {
        if self.started_all {
            return;
        }
        for rule in self.specs.keys() {
            let state = self.state.entry(rule.clone()).or_default();
            state.started.get_or_insert(now);
        }
        self.started_all = true;
    }

    /// Learns and judges an event the rule matched.
    pub fn observe(&mut self, rule: &str, event: &Event, now: i64) -> Option<Verdict> {
        let spec = self.specs.get(rule)?;
        if !self.state.contains_key(rule) {
            self.state.insert(rule.to_string(), RuleBaseline::default());
        }
        let state = self.state.get_mut(rule)?;
        Some(state.observe(spec, rule, event, now))
    }

    /// Rules whose learning has not started (new rules, or reset ones), with their learning
    /// window in seconds: what a warm start back-fills.
    pub fn unstarted(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = self
            .specs
            .iter()
            .filter(|(rule, _)| self.state.get(*rule).is_none_or(|s| s.started.is_none()))
            .map(|(rule, spec)| (rule.clone(), spec.learn_secs))
            .collect();
        out.sort();
        out
    }

    /// The state, for the checkpoint.
    pub fn state(&self) -> &HashMap<String, RuleBaseline> {
        &self.state
    }

    /// Restores checkpointed state of the rules that still have a baseline.
    pub fn restore(&mut self, state: HashMap<String, RuleBaseline>) {
        for (rule, s) in state {
            if self.specs.contains_key(&rule) {
                self.state.insert(rule, s);
            }
        }
        self.started_all = false;
    }

    /// New specs (rule reload): state is kept where entity and term fields are unchanged.
    pub fn replace_specs(&mut self, specs: HashMap<String, BaselineSpec>) {
        let old = std::mem::take(&mut self.specs);
        self.state
            .retain(|rule, _| match (old.get(rule), specs.get(rule)) {
                (Some(a), Some(b)) => a.same_keys(b),
                _ => false,
            });
        self.specs = specs;
        self.started_all = false;
    }

    /// Figures per rule, sorted by rule id.
    pub fn stats(&self) -> Vec<BaselineStat> {
        let mut out: Vec<BaselineStat> = self
            .specs
            .iter()
            .map(|(rule, spec)| {
                let state = self.state.get(rule);
                BaselineStat {
                    rule: rule.clone(),
                    kind: spec.kind,
                    entities: state.map_or(0, |s| s.entities.len() + s.rates.len()),
                    terms: state.map_or(0, RuleBaseline::term_count),
                    entities_refused: state.map_or(0, |s| s.entities_refused),
                    terms_refused: state.map_or(0, |s| s.terms_refused),
                    learning_until: state
                        .and_then(|s| s.started)
                        .map(|t| time_of(t.saturating_add(spec.learn_secs))),
                }
            })
            .collect();
        out.sort_by(|a, b| a.rule.cmp(&b.rule));
        out
    }

    /// One rule's entities whose values contain `entity` (all when `None`), as a profile.
    pub fn export(&self, rule: &str, entity: Option<&str>) -> Option<Profile> {
        let spec = self.specs.get(rule)?;
        let mut entities: Vec<EntityBaseline> = self
            .state
            .get(rule)
            .map(|s| {
                s.entities
                    .values()
                    .filter(|e| entity.is_none_or(|want| e.values.iter().any(|v| v == want)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        entities.sort_by(|a, b| a.values.cmp(&b.values));
        let mut rates: Vec<RateEntity> = self
            .state
            .get(rule)
            .map(|s| {
                s.rates
                    .values()
                    .filter(|e| entity.is_none_or(|want| e.values.iter().any(|v| v == want)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        rates.sort_by(|a, b| a.values.cmp(&b.values));
        Some(Profile {
            rule: rule.to_string(),
            entity: spec.entity.clone(),
            terms: spec.terms.clone(),
            entities,
            rate: spec.rate.as_ref().map(RateLayout::of),
            rates,
        })
    }

    /// Imports a profile (replacing the entities it names). Fails when the rule has no
    /// baseline or its fields differ, or when the import would pass a cap.
    pub fn import(&mut self, profile: Profile) -> Result<usize, String> {
        let spec = self
            .specs
            .get(&profile.rule)
            .ok_or_else(|| format!("rule `{}` has no baseline", profile.rule))?;
        if spec.entity != profile.entity || spec.terms != profile.terms {
            return Err(format!(
                "the profile's fields ({:?} × {:?}) are not rule `{}`'s ({:?} × {:?})",
                profile.entity, profile.terms, profile.rule, spec.entity, spec.terms
            ));
        }
        let layout = spec.rate.as_ref().map(RateLayout::of);
        if !profile.rates.is_empty() && profile.rate != layout {
            return Err(format!(
                "the profile's rate layout ({:?}) is not rule `{}`'s ({:?})",
                profile.rate, profile.rule, layout
            ));
        }
        if spec.rate.is_some() && !profile.entities.is_empty() {
            return Err(format!(
                "rule `{}` is a rate: its profile's entities are `rates`, not term sets",
                profile.rule
            ));
        }
        // Everything is checked before anything is replaced: a bad profile changes nothing.
        for entity in &profile.rates {
            let Some(rate) = &spec.rate else { break };
            if entity.values.len() != spec.entity.len() {
                return Err(format!(
                    "rate entity {:?} has {} values, expected {}",
                    entity.values,
                    entity.values.len(),
                    spec.entity.len()
                ));
            }
            if entity.history.len() != rate.slots() * rate.history {
                return Err(format!(
                    "rate entity {:?} has {} history values, expected {} ({} slots × {})",
                    entity.values,
                    entity.history.len(),
                    rate.slots() * rate.history,
                    rate.slots(),
                    rate.history
                ));
            }
            if entity.distinct.len() > rate.max_distinct {
                return Err(format!(
                    "rate entity {:?} holds {} distinct values, over `max_distinct` ({})",
                    entity.values,
                    entity.distinct.len(),
                    rate.max_distinct
                ));
            }
            if entity.bucket.rem_euclid(rate.bucket_secs) != 0 {
                return Err(format!(
                    "rate entity {:?}: bucket {} is not a multiple of {}s",
                    entity.values, entity.bucket, rate.bucket_secs
                ));
            }
        }
        let max_entities = spec.max_entities;
        let state = self.state.entry(profile.rule.clone()).or_default();
        let new_rates = profile
            .rates
            .iter()
            .filter(|e| !state.rates.contains_key(&join_key(&e.values)))
            .count();
        if state.rates.len() + new_rates > max_entities {
            return Err(format!("the entity cap ({max_entities}) is reached"));
        }
        let mut added = 0;
        for entity in profile.rates {
            state.rates.insert(join_key(&entity.values), entity);
            added += 1;
        }
        for mut entity in profile.entities {
            if entity.values.len() != spec.entity.len() {
                return Err(format!(
                    "entity {:?} has {} values, expected {}",
                    entity.values,
                    entity.values.len(),
                    spec.entity.len()
                ));
            }
            if entity.terms.len() > spec.max_terms {
                return Err(format!(
                    "entity {:?} has {} terms, over the cap of {}",
                    entity.values,
                    entity.terms.len(),
                    spec.max_terms
                ));
            }
            let key = join_key(&entity.values);
            if !state.entities.contains_key(&key) && state.entities.len() >= spec.max_entities {
                return Err(format!("the entity cap ({}) is reached", spec.max_entities));
            }
            entity.singletons = entity.terms.values().filter(|t| t.count == 1).count() as u64;
            state.entities.insert(key, entity);
            added += 1;
        }
        state.keys = state.term_count();
        Ok(added)
    }

    /// Locks (or unlocks, to monitoring) the entities of `rule` whose values contain `entity`;
    /// returns how many changed.
    /// A rate entity's closed buckets are then not learned (its history is frozen).
    pub fn set_locked(&mut self, rule: &str, entity: &str, locked: bool) -> usize {
        let rates = self
            .rates_mut(rule, entity)
            .map(|e| e.locked = locked)
            .count();
        rates
            + self
                .entities_mut(rule, entity)
                .map(|e| e.locked = locked)
                .count()
    }

    /// Forgets what `rule` learned about the entities whose values contain `entity` (all with
    /// `None`); returns how many were dropped.
    pub fn reset(&mut self, rule: &str, entity: Option<&str>) -> usize {
        let Some(state) = self.state.get_mut(rule) else {
            return 0;
        };
        let before = state.entities.len() + state.rates.len();
        state
            .entities
            .retain(|_, e| entity.is_some_and(|want| !e.values.iter().any(|v| v == want)));
        state
            .rates
            .retain(|_, e| entity.is_some_and(|want| !e.values.iter().any(|v| v == want)));
        state.keys = state.term_count();
        if entity.is_none() {
            state.started = None;
            self.started_all = false;
        }
        before - state.entities.len() - state.rates.len()
    }

    /// Accepts a term into the baseline of the entities whose values contain `entity`
    /// (`term` gives the term fields' values in order); returns how many entities took it.
    ///
    /// For a `rate` rule (`term` empty): the current bucket of each such entity is accepted as
    /// normal ([`RateEntity::accept`]): its value joins its slot's history now and it raises
    /// no more alerts.
    pub fn accept(&mut self, rule: &str, entity: &str, term: &[String], now: i64) -> usize {
        let Some(spec) = self.specs.get(rule) else {
            return 0;
        };
        if let Some(rate) = spec.rate.clone() {
            if !term.is_empty() {
                return 0;
            }
            return self
                .rates_mut(rule, entity)
                .map(|e| e.accept(&rate))
                .filter(|accepted| *accepted)
                .count();
        }
        if term.len() != spec.terms.len() {
            return 0;
        }
        let key = join_key(term);
        let max_terms = spec.max_terms;
        let accepted = self
            .entities_mut(rule, entity)
            .filter(|e| e.terms.contains_key(&key) || e.terms.len() < max_terms)
            .map(|e| {
                if !e.terms.contains_key(&key) {
                    e.insert_term(key.clone(), now);
                }
            })
            .count();
        if let Some(state) = self.state.get_mut(rule) {
            state.keys = state.term_count();
        }
        accepted
    }

    fn rates_mut<'a>(
        &'a mut self,
        rule: &str,
        entity: &'a str,
    ) -> impl Iterator<Item = &'a mut RateEntity> + 'a {
        self.state
            .get_mut(rule)
            .into_iter()
            .flat_map(|s| s.rates.values_mut())
            .filter(move |e| e.values.iter().any(|v| v == entity))
    }

    fn entities_mut<'a>(
        &'a mut self,
        rule: &str,
        entity: &'a str,
    ) -> impl Iterator<Item = &'a mut EntityBaseline> + 'a {
        self.state
            .get_mut(rule)
            .into_iter()
            .flat_map(|s| s.entities.values_mut())
            .filter(move |e| e.values.iter().any(|v| v == entity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DAY: i64 = 86_400;

    fn spec(kind: &str, extra: Value) -> BaselineSpec {
        let mut v = json!({"kind": kind, "entity": "workload", "terms": ["process.executable"],
            "learn": "1d", "forget": "30d"});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        BaselineSpec::from_value(&v).expect("spec")
    }

    fn exec(pod: &str, exe: &str) -> Event {
        serde_json::from_value(json!({
            "kubernetes": {"namespace": "shop", "pod": {"name": pod}},
            "process": {"executable": exe}
        }))
        .expect("event")
    }

    fn is_new(v: &Verdict) -> bool {
        matches!(v, Verdict::New(_))
    }

    #[test]
    fn spec_validation_says_what_is_wrong() {
        let err = |v: Value| BaselineSpec::from_value(&v).expect_err("invalid");
        assert!(err(json!({"entity": [], "terms": "a"})).contains("`entity` needs"));
        assert!(err(json!({"entity": "a", "terms": "b", "learn": "soon"})).contains("`learn`"));
        assert!(
            err(json!({"entity": "a", "terms": "b", "learn": "7d", "forget": "1d"}))
                .contains("`forget`")
        );
        assert!(err(json!({"entity": "a", "terms": "b", "colour": 1})).contains("colour"));
        assert!(err(json!({"entity": "a", "terms": "b", "max_terms": 0})).contains("max_terms"));
        let ok = BaselineSpec::from_value(&json!({"entity": "a", "terms": "b"})).expect("ok");
        assert_eq!(ok.learn_secs, DEFAULT_LEARN_SECS);
        assert_eq!(ok.entity_learn_secs, DEFAULT_LEARN_SECS);
        let rare = BaselineSpec::from_value(&json!({"kind": "rare", "entity": "a", "terms": "b"}))
            .expect("ok");
        assert_eq!(rare.entity_learn_secs, 0);
    }

    #[test]
    fn keys_are_built_from_the_same_text_as_field_text() {
        let event: Event = serde_json::from_value(json!({
            "a": ["x", 1, true, {"o": 1}, null, "y"], "n": 7, "b": false, "o": {"k": 1}, "e": []
        }))
        .expect("event");
        for field in [
            "a",
            "n",
            "b",
            "o",
            "e",
            "missing",
            "workload",
            "process.argv0",
        ] {
            let mut out = String::from("p");
            let pushed = push_field(&event, field, &mut out);
            assert_eq!(
                pushed.then(|| out[1..].to_string()),
                field_text(&event, field),
                "{field}"
            );
            if !pushed {
                assert_eq!(out, "p");
            }
        }
        assert_eq!(field_text(&event, "a").as_deref(), Some("x,1,true,y"));
    }

    #[test]
    fn values_holding_the_separator_never_collide() {
        let s = BaselineSpec::from_value(&json!({"entity": ["a", "b"], "terms": ["t", "u"],
            "learn": "0s", "entity_learn": "0s", "forget": "30d"}))
        .expect("spec");
        let ev = |a: &str, b: &str, t: &str, u: &str| -> Event {
            serde_json::from_value(json!({"a": a, "b": b, "t": t, "u": u})).expect("event")
        };
        let mut r = RuleBaseline::default();
        let t0 = 1_700_000_000;
        assert!(is_new(&r.observe(
            &s,
            "r",
            &ev("x\u{1f}y", "z", "1", "2"),
            t0
        )));
        // Same joined text, other split: another entity, and another term.
        let v = r.observe(&s, "r", &ev("x", "y\u{1f}z", "1\u{1f}2", ""), t0 + 1);
        let Verdict::New(a) = v else {
            panic!("a different entity: {v:?}")
        };
        assert_eq!(a.entity.get("b").map(String::as_str), Some("y\u{1f}z"));
        assert_eq!(a.new.get("t").map(String::as_str), Some("1\u{1f}2"));
        assert!(is_new(&r.observe(
            &s,
            "r",
            &ev("x", "y\u{1f}z", "1", "\u{1f}2"),
            t0 + 2
        )));
        assert_eq!(r.entities.len(), 2);
        assert_eq!(r.term_count(), 3);
        // Escapes themselves round-trip.
        for values in [
            vec!["\u{1b}_".to_string(), "\u{1b}".into()],
            vec!["".into(), "\u{1f}\u{1b}\u{1f}".into()],
        ] {
            assert_eq!(split_key(&join_key(&values)), values);
        }
    }

    #[test]
    fn a_rate_alerts_once_per_bucket_with_its_figures_and_caps_say_at_least() {
        let s = BaselineSpec::from_value(&json!({"kind": "rate", "entity": "user.name",
            "distinct": "orchestrator.resource.name", "seasonality": "none", "history": 4,
            "min_history": 3, "threshold": 3, "min_count": 5, "max_distinct": 12}))
        .expect("spec");
        let read = |user: &str, secret: String| -> Event {
            serde_json::from_value(json!({"user": {"name": user},
                "orchestrator": {"resource": {"name": secret}}}))
            .expect("event")
        };
        let mut r = RuleBaseline::default();
        let t0 = 1_711_929_600; // Monday 00:00 UTC
        for (hour, n) in [1, 3, 5, 3].into_iter().enumerate() {
            for i in 0..n {
                let v = r.observe(
                    &s,
                    "r",
                    &read("bob", format!("s{i}")),
                    t0 + hour as i64 * 3_600,
                );
                assert!(!is_new(&v), "hour {hour}: {v:?}");
            }
        }
        // Hour 4: history 1, 3, 5, 3 (median 3, MAD 1, threshold 3 + 3 × 1.4826 = 7.45).
        let now = t0 + 4 * 3_600 + 60;
        let mut alerts = Vec::new();
        for i in 0..20 {
            if let Verdict::New(a) = r.observe(&s, "r", &read("bob", format!("x{i}")), now + i) {
                alerts.push((i, a));
            }
        }
        assert_eq!(alerts.len(), 1, "once per bucket");
        let (i, a) = &alerts[0];
        assert_eq!(*i, 7, "alerts as the 8th distinct secret crosses 7.45");
        let figures = a.rate.as_ref().expect("rate");
        assert_eq!((figures.median, figures.mad, figures.value), (3.0, 1.0, 8));
        assert_eq!(figures.history, vec![1, 3, 5, 3]);
        assert!(
            a.explanation.starts_with(
                "user.name=bob: 8 distinct orchestrator.resource.name in the 1h from Mon 04:00 UTC; the last 4 buckets of 1h saw median 3 (MAD 1: 1, 3, 5, 3); threshold 7.4"
            ),
            "{}",
            a.explanation
        );
        // The distinct set stopped at its cap (12): the count is a lower bound.
        let bob = r.rates.values().next().expect("bob");
        assert_eq!(bob.distinct.len(), 12);
        assert!(bob.capped);
        // The state survives a checkpoint round trip.
        let back: RuleBaseline =
            serde_json::from_str(&serde_json::to_string(&r).expect("json")).expect("parse");
        assert_eq!(back.rates, r.rates);
    }

    #[test]
    fn rate_entities_export_import_lock_and_accept() {
        let spec_of = |extra: Value| {
            let mut v = json!({"kind": "rate", "entity": "user.name", "seasonality": "none",
                "history": 4, "min_history": 3, "threshold": 3, "min_count": 5});
            if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
                m.extend(e);
            }
            BaselineSpec::from_value(&v).expect("spec")
        };
        let read = |user: &str| -> Event {
            serde_json::from_value(json!({"user": {"name": user}})).expect("event")
        };
        let mut b = Baselines::new(HashMap::from([("r".to_string(), spec_of(json!({})))]));
        let t0 = 1_711_929_600;
        // Four quiet hours of 3 reads for alice and bob.
        for hour in 0..4i64 {
            for i in 0..3 {
                for user in ["alice", "bob"] {
                    b.observe("r", &read(user), t0 + hour * 3_600 + i);
                }
            }
        }
        let exported = b.export("r", Some("alice")).expect("profile");
        assert!(exported.entities.is_empty());
        assert_eq!(exported.rates.len(), 1);
        assert_eq!(exported.rates[0].values, vec!["alice".to_string()]);
        assert_eq!(
            exported.rate.as_ref().map(|l| (l.slots, l.history)),
            Some((1, 4))
        );
        // The profile round-trips as JSON (the file `baselines import` reads).
        let text = serde_json::to_string(&exported).expect("json");
        let back: Profile = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, exported);

        // Hour 4: a spike of 10 against 3, 3, 3, 3; accepting it silences the bucket and
        // records it at once (the oldest value makes room).
        let now = t0 + 4 * 3_600;
        let alerts = |b: &mut Baselines, user: &str, n: i64, at: i64| -> usize {
            (0..n)
                .filter(|i| matches!(b.observe("r", &read(user), at + i), Some(Verdict::New(_))))
                .count()
        };
        assert_eq!(alerts(&mut b, "alice", 10, now), 1);
        assert_eq!(b.accept("r", "alice", &[], now + 20), 1);
        assert_eq!(b.accept("r", "alice", &["x".to_string()], now + 20), 0);
        let alice = b
            .export("r", Some("alice"))
            .expect("profile")
            .rates
            .remove(0);
        assert_eq!(
            alice.slot_history(b.spec("r").and_then(|s| s.rate.as_ref()).expect("rate")),
            vec![3, 3, 3, 10]
        );

        // Locked: bob's history is frozen (his open hour 3 is not recorded either), and a
        // locked entity still alerts, saying so.
        assert_eq!(b.set_locked("r", "bob", true), 1);
        for hour in 4..8i64 {
            assert_eq!(alerts(&mut b, "bob", 3, t0 + hour * 3_600), 0);
        }
        let mut found = None;
        for i in 0..10 {
            if let Some(Verdict::New(a)) = b.observe("r", &read("bob"), t0 + 8 * 3_600 + i) {
                found = Some(a);
            }
        }
        let a = found.expect("a locked entity alerts");
        assert_eq!(a.baseline.mode, "locked");
        assert_eq!(
            a.rate.as_ref().map(|r| r.history.clone()),
            Some(vec![3, 3, 3])
        );

        // Import into a fresh baseline restores alice's figures; a mismatched layout or a
        // term-set entity is refused, and nothing is changed.
        let mut fresh = Baselines::new(HashMap::from([("r".to_string(), spec_of(json!({})))]));
        let profile = b.export("r", Some("alice")).expect("profile");
        assert_eq!(fresh.import(profile.clone()), Ok(1));
        assert_eq!(
            fresh.export("r", None).expect("profile").rates,
            profile.rates
        );
        let mut wider = Baselines::new(HashMap::from([(
            "r".to_string(),
            spec_of(json!({"history": 8, "min_history": 3})),
        )]));
        let error = wider.import(profile.clone()).expect_err("layout");
        assert!(error.contains("layout"), "{error}");
        assert!(wider.export("r", None).expect("profile").rates.is_empty());
        let mut bad = profile.clone();
        bad.rates[0].history.pop();
        let mut again = Baselines::new(HashMap::from([("r".to_string(), spec_of(json!({})))]));
        bad.rate = profile.rate.clone();
        let error = again.import(bad).expect_err("history length");
        assert!(error.contains("history values"), "{error}");
    }

    #[test]
    fn an_ewma_rate_alerts_above_the_weighted_mean_and_says_so() {
        let s = BaselineSpec::from_value(&json!({"kind": "rate", "entity": "user.name",
            "seasonality": "none", "history": 4, "min_history": 4, "threshold": 2,
            "min_count": 1, "method": "ewma", "alpha": 0.5}))
        .expect("spec");
        let read = |user: &str| -> Event {
            serde_json::from_value(json!({"user": {"name": user}})).expect("event")
        };
        let mut r = RuleBaseline::default();
        let t0 = 1_711_929_600;
        for (hour, n) in [2, 4, 4, 10].into_iter().enumerate() {
            for i in 0..n {
                assert!(!is_new(&r.observe(
                    &s,
                    "r",
                    &read("bob"),
                    t0 + hour as i64 * 3_600 + i
                )));
            }
        }
        // History 2, 4, 4, 10 with alpha 0.5: mean 6.75, variance 10.9375 (see rate.rs),
        // threshold 6.75 + 2 × 3.307 = 13.36: the 14th event alerts. (The median, 4, with
        // MAD 0 would have alerted at the 7th.)
        let now = t0 + 4 * 3_600;
        let first = (0..30)
            .find(|i| is_new(&r.observe(&s, "r", &read("bob"), now + i)))
            .expect("an alert");
        assert_eq!(first, 13);
        let mut again = RuleBaseline::default();
        for (hour, n) in [2, 4, 4, 10].into_iter().enumerate() {
            for i in 0..n {
                again.observe(&s, "r", &read("bob"), t0 + hour as i64 * 3_600 + i);
            }
        }
        let a = (0..30)
            .find_map(|i| match again.observe(&s, "r", &read("bob"), now + i) {
                Verdict::New(a) => Some(a),
                _ => None,
            })
            .expect("an alert");
        let figures = a.rate.as_ref().expect("rate");
        assert_eq!(figures.method, Method::Ewma);
        assert_eq!(figures.mean, Some(6.75));
        assert!((figures.threshold - (6.75 + 2.0 * 10.9375f64.sqrt())).abs() < 1e-9);
        assert!(
            a.explanation.contains(
                "saw EWMA 6.8 (alpha 0.5, standard deviation 3.3: 2, 4, 4, 10); threshold 13.4"
            ),
            "{}",
            a.explanation
        );
        // `alpha` needs `method: ewma`, and both need `kind: rate`.
        let error = BaselineSpec::from_value(&json!({"kind": "rate", "entity": "user.name",
            "alpha": 0.5}))
        .expect_err("alpha without ewma");
        assert!(error.contains("`alpha` is for `method: ewma`"), "{error}");
        let error = BaselineSpec::from_value(&json!({"kind": "new_terms", "entity": "user.name",
            "terms": "event.action", "method": "ewma"}))
        .expect_err("method on new_terms");
        assert!(
            error.contains("`method` is for `kind: rate` only"),
            "{error}"
        );
        let error = BaselineSpec::from_value(&json!({"kind": "rate", "entity": "user.name",
            "method": "ewma", "alpha": 1.5}))
        .expect_err("alpha 1.5");
        assert!(error.contains("(0, 1]"), "{error}");
    }

    #[test]
    fn argv0_tells_the_tools_of_a_multi_call_binary_apart() {
        let ev = |v: Value| -> Event { serde_json::from_value(v).expect("event") };
        let sleep = ev(
            json!({"process": {"executable": "/bin/busybox", "name": "exe",
            "args": ["sleep", "0.2"]}}),
        );
        assert_eq!(
            field_text(&sleep, "process.argv0").as_deref(),
            Some("sleep")
        );
        let dropped = ev(json!({"process": {"args": ["/tmp/wget", "-q"], "name": "wget"}}));
        assert_eq!(
            field_text(&dropped, "process.argv0").as_deref(),
            Some("wget")
        );
        let named = ev(json!({"process": {"name": "nginx"}}));
        assert_eq!(
            field_text(&named, "process.argv0").as_deref(),
            Some("nginx")
        );
        assert_eq!(field_text(&ev(json!({})), "process.argv0"), None);
    }

    #[test]
    fn workload_names_follow_kubernetes_pod_naming() {
        assert_eq!(workload_of_pod("api-7d9c6b5f4-x2x9q"), "api");
        assert_eq!(workload_of_pod("db-0"), "db");
        assert_eq!(workload_of_pod("agent-x2x9q"), "agent");
        assert_eq!(workload_of_pod("standalone"), "standalone");
        assert_eq!(
            field_text(&exec("api-7d9c6b5f4-x2x9q", "/x"), "workload").as_deref(),
            Some("shop/api")
        );
    }

    #[test]
    fn learns_then_alerts_once_per_new_term_exactly() {
        let s = spec("new_terms", json!({"entity_learn": "0s"}));
        let mut b = RuleBaseline::default();
        let t0 = 1_700_000_000;
        // Learning: two replicas of one Deployment share the profile.
        for i in 0..100 {
            let pod = if i % 2 == 0 {
                "api-7d9c6b5f4-aaaaa"
            } else {
                "api-7d9c6b5f4-bbbbb"
            };
            let exe = ["/usr/sbin/nginx", "/bin/sh", "/usr/bin/curl"][i % 3];
            let v = b.observe(&s, "r", &exec(pod, exe), t0 + i as i64);
            let want = if i < 3 {
                Verdict::Learning
            } else {
                Verdict::KnownLearning
            };
            assert_eq!(v, want, "event {i}");
        }
        // After learning, every learned program is known, on a new replica too.
        for exe in ["/usr/sbin/nginx", "/bin/sh", "/usr/bin/curl"] {
            assert_eq!(
                b.observe(&s, "r", &exec("api-7d9c6b5f4-ccccc", exe), t0 + 2 * DAY),
                Verdict::Known
            );
        }
        let v = b.observe(
            &s,
            "r",
            &exec("api-7d9c6b5f4-ccccc", "/usr/bin/python3"),
            t0 + 2 * DAY,
        );
        let Verdict::New(a) = v else {
            panic!("new term expected: {v:?}")
        };
        assert_eq!(
            a.new.get("process.executable").map(String::as_str),
            Some("/usr/bin/python3")
        );
        assert_eq!(
            a.entity.get("workload").map(String::as_str),
            Some("shop/api")
        );
        assert_eq!(a.baseline.events, 103);
        assert_eq!(a.baseline.distinct, 3);
        assert!(a.score > 0.98, "{}", a.score);
        assert!(
            a.explanation.contains(
                "process.executable=/usr/bin/python3 never seen for workload=shop/api in 2d"
            ),
            "{}",
            a.explanation
        );
        assert!(
            a.explanation.contains("103 events of 3 distinct values"),
            "{}",
            a.explanation
        );
        // Monitoring mode: learned now, so it alerts once.
        assert_eq!(
            b.observe(
                &s,
                "r",
                &exec("api-7d9c6b5f4-ccccc", "/usr/bin/python3"),
                t0 + 2 * DAY + 1
            ),
            Verdict::Known
        );
    }

    #[test]
    fn a_new_entity_learns_for_its_own_window() {
        let s = spec("new_terms", json!({"entity_learn": "1h"}));
        let mut b = RuleBaseline::default();
        let t0 = 1_700_000_000;
        b.observe(&s, "r", &exec("api-1", "/bin/a"), t0);
        let late = t0 + 2 * DAY;
        assert_eq!(
            b.observe(&s, "r", &exec("web-1", "/bin/a"), late),
            Verdict::Learning
        );
        assert_eq!(
            b.observe(&s, "r", &exec("web-1", "/bin/b"), late + 60),
            Verdict::Learning
        );
        assert!(is_new(&b.observe(
            &s,
            "r",
            &exec("web-1", "/bin/c"),
            late + 3_601
        )));
        assert_eq!(
            b.observe(&s, "r", &exec("web-1", "/bin/b"), late + 3_602),
            Verdict::Known
        );
    }

    #[test]
    fn forgotten_terms_are_new_again() {
        let s = spec("new_terms", json!({"entity_learn": "0s", "forget": "10d"}));
        let mut b = RuleBaseline::default();
        let t0 = 1_700_000_000;
        b.observe(&s, "r", &exec("api-1", "/bin/a"), t0);
        b.observe(&s, "r", &exec("api-1", "/bin/b"), t0);
        assert_eq!(
            b.observe(&s, "r", &exec("api-1", "/bin/a"), t0 + 9 * DAY),
            Verdict::Known
        );
        // `/bin/b` was last seen 11 days ago: forgotten.
        assert!(is_new(&b.observe(
            &s,
            "r",
            &exec("api-1", "/bin/b"),
            t0 + 11 * DAY
        )));
        // The entity itself is forgotten after 10 days of silence, and swept.
        b.observe(&s, "r", &exec("other-1", "/bin/z"), t0 + 40 * DAY);
        assert!(
            !b.entities.keys().any(|k| k.contains("api")),
            "{:?}",
            b.entities.keys()
        );
    }

    #[test]
    fn caps_bound_memory_and_never_alert() {
        let s = spec(
            "new_terms",
            json!({"entity_learn": "0s", "max_entities": 2, "max_terms": 3}),
        );
        let mut b = RuleBaseline::default();
        let t0 = 1_700_000_000;
        b.observe(&s, "r", &exec("a-1", "/bin/1"), t0);
        b.observe(&s, "r", &exec("b-1", "/bin/1"), t0);
        assert_eq!(
            b.observe(&s, "r", &exec("c-1", "/bin/1"), t0),
            Verdict::Unknown("the entity cap is reached")
        );
        assert_eq!(b.entities.len(), 2);
        assert_eq!(b.entities_refused, 1);
        // Past learning, the refused entity stays unjudged: no false "new".
        assert!(!is_new(&b.observe(
            &s,
            "r",
            &exec("c-1", "/bin/9"),
            t0 + 2 * DAY
        )));
        b.observe(&s, "r", &exec("a-1", "/bin/2"), t0 + 1);
        b.observe(&s, "r", &exec("a-1", "/bin/3"), t0 + 2);
        assert_eq!(
            b.observe(&s, "r", &exec("a-1", "/bin/4"), t0 + 3),
            Verdict::Unknown("the entity's term cap is reached")
        );
        assert_eq!(b.terms_refused, 1);
        for exe in ["/bin/4", "/bin/5"] {
            assert!(!is_new(&b.observe(
                &s,
                "r",
                &exec("a-1", exe),
                t0 + 2 * DAY
            )));
        }
        assert!(b.entities.values().all(|e| e.terms.len() <= 3));
        // Another entity is still judged.
        assert!(is_new(&b.observe(
            &s,
            "r",
            &exec("b-1", "/bin/2"),
            t0 + 2 * DAY
        )));
    }

    #[test]
    fn the_rule_key_cap_bounds_every_entity_together_and_never_alerts() {
        let s = spec("new_terms", json!({"entity_learn": "0s", "max_keys": 4}));
        let mut b = RuleBaseline::default();
        let t0 = 1_700_000_000;
        for (pod, exe) in [("a-1", "/1"), ("a-1", "/2"), ("b-1", "/1"), ("b-1", "/2")] {
            assert_eq!(b.observe(&s, "r", &exec(pod, exe), t0), Verdict::Learning);
        }
        assert_eq!(
            b.observe(&s, "r", &exec("c-1", "/1"), t0),
            Verdict::Unknown("the rule's key cap is reached")
        );
        assert_eq!(b.term_count(), 4);
        // Past learning: known terms are known, new ones are not judged while the cap holds.
        assert_eq!(
            b.observe(&s, "r", &exec("a-1", "/1"), t0 + 2 * DAY),
            Verdict::Known
        );
        assert!(!is_new(&b.observe(
            &s,
            "r",
            &exec("a-1", "/9"),
            t0 + 2 * DAY
        )));
        // Once terms are forgotten (30 days unseen), there is room again.
        let later = t0 + 2 * DAY + 31 * DAY;
        b.observe(&s, "r", &exec("a-1", "/1"), later);
        assert!(b.term_count() <= 4);
        assert!(is_new(&b.observe(&s, "r", &exec("a-1", "/7"), later + 1)));
    }

    #[test]
    fn locked_entities_alert_every_time_and_learn_nothing() {
        let s = spec("new_terms", json!({"entity_learn": "0s"}));
        let mut bs = Baselines::new(HashMap::from([("r".to_string(), s)]));
        let t0 = 1_700_000_000;
        bs.observe("r", &exec("api-1", "/bin/a"), t0);
        assert_eq!(bs.set_locked("r", "shop/api", true), 1);
        for i in 0..2 {
            let v = bs
                .observe("r", &exec("api-1", "/bin/x"), t0 + 10 + i)
                .expect("rule");
            let Verdict::New(a) = v else {
                panic!("locked: {v:?}")
            };
            assert_eq!(a.baseline.mode, "locked");
        }
        // Accepting a term puts it into the baseline.
        assert_eq!(
            bs.accept("r", "shop/api", &["/bin/x".to_string()], t0 + 20),
            1
        );
        assert_eq!(
            bs.observe("r", &exec("api-1", "/bin/x"), t0 + 21),
            Some(Verdict::Known)
        );
    }

    #[test]
    fn profiles_export_and_import_and_reset() {
        let s = spec("new_terms", json!({"entity_learn": "0s"}));
        let specs = HashMap::from([("r".to_string(), s)]);
        let mut a = Baselines::new(specs.clone());
        let t0 = 1_700_000_000;
        for exe in ["/bin/a", "/bin/b"] {
            a.observe("r", &exec("api-1", exe), t0);
        }
        let profile = a.export("r", Some("shop/api")).expect("profile");
        let text = serde_json::to_string(&profile).expect("json");
        let mut b = Baselines::new(specs);
        let back: Profile = serde_json::from_str(&text).expect("parse");
        assert_eq!(b.import(back.clone()).expect("import"), 1);
        // The imported baseline judges like the original (rule learning started by an event).
        b.observe("r", &exec("web-1", "/bin/q"), t0);
        assert_eq!(
            b.observe("r", &exec("api-1", "/bin/b"), t0 + 2 * DAY),
            Some(Verdict::Known)
        );
        let mut wrong = back;
        wrong.terms = vec!["process.name".into()];
        assert!(b.import(wrong).is_err());
        assert_eq!(b.reset("r", Some("shop/api")), 1);
        assert_eq!(b.stats()[0].entities, 1);
    }
}
