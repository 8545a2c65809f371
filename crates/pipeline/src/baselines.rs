//! Baselines through the API: what the baseline rules learned is read from the detector thread
//! (a query answered between two batches), and changes to it (reset, accept a term, lock,
//! unlock) are events in the WAL (`event.dataset: crowsnest.baseline_action`) that the
//! detector applies in WAL order, so a replay after a crash rebuilds the same baselines.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use crowsnest_detect::Detector;
use crowsnest_model::{ecs, Event};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The dataset of baseline actions.
pub const BASELINE_ACTION_DATASET: &str = "crowsnest.baseline_action";

/// Most entities a `show` answer lists (the count says how many there are).
pub const MAX_SHOWN_ENTITIES: usize = 500;

/// Most questions waiting for the detector thread.
pub const MAX_WAITING_QUERIES: usize = 256;

/// The actions on a baseline.
pub const ACTIONS: [&str; 5] = ["reset", "accept", "lock", "unlock", "import"];

/// A change to a rule's baseline, as the API submits it (the event's `baseline.*` fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineAction {
    /// The rule id.
    pub rule: String,
    /// `reset` (forget; the whole rule without `entity`), `accept` (add `term` to the entity's
    /// baseline; for a rate rule, no `term`: the entity's current bucket joins its history),
    /// `lock` (new terms alert every time, nothing is learned; a rate's history is frozen),
    /// `unlock` or `import` (`profile`).
    pub action: String,
    /// An entity value (entities whose values include it); required but for `reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// For `accept`: the term fields' values, in the rule's `terms` order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub term: Vec<String>,
    /// For `import`: a profile (as `GET /api/v1/baselines/{rule}` or `hunt --export-baselines`
    /// give it); its entities replace the rule's entities of the same values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<crowsnest_detect::Profile>,
    /// Who did it (the token's name).
    pub by: String,
}

impl BaselineAction {
    /// The event the API submits for this action.
    pub fn to_event(&self) -> Event {
        let mut event = Event::default();
        event.set(ecs::EVENT_KIND, json!("event"));
        event.set(ecs::EVENT_DATASET, json!(BASELINE_ACTION_DATASET));
        event.set(ecs::EVENT_MODULE, json!("crowsnest"));
        event.set(
            ecs::EVENT_ACTION,
            json!(format!("baseline-{}", self.action)),
        );
        event.set("user.name", json!(self.by));
        event.set(
            ecs::MESSAGE,
            json!(format!(
                "{} {} baseline of rule {}{}",
                self.by,
                self.action,
                self.rule,
                self.entity
                    .as_deref()
                    .map(|e| format!(" for {e}"))
                    .unwrap_or_default()
            )),
        );
        if let Ok(value) = serde_json::to_value(self) {
            event.set("baseline", value);
        }
        event
    }

    /// The action an event carries, if it is one.
    pub fn of(event: &Event) -> Option<Self> {
        if event.get_str(ecs::EVENT_DATASET) != Some(BASELINE_ACTION_DATASET) {
            return None;
        }
        serde_json::from_value(event.get("baseline")?.clone()).ok()
    }

    /// Applies the action at stream time `at`; returns how many entities it changed.
    pub fn apply(&self, detector: &mut Detector, at: DateTime<Utc>) -> usize {
        let baselines = detector.baselines_mut();
        let entity = self.entity.as_deref();
        match (self.action.as_str(), entity) {
            ("reset", entity) => baselines.reset(&self.rule, entity),
            ("accept", Some(entity)) => {
                baselines.accept(&self.rule, entity, &self.term, at.timestamp())
            }
            ("lock", Some(entity)) => baselines.set_locked(&self.rule, entity, true),
            ("unlock", Some(entity)) => baselines.set_locked(&self.rule, entity, false),
            ("import", _) => match self.profile.clone() {
                Some(profile) => baselines.import(profile).unwrap_or_else(|error| {
                    tracing::warn!(%error, rule = %self.rule, "baseline profile not imported");
                    0
                }),
                None => 0,
            },
            (other, _) => {
                tracing::warn!(action = other, rule = %self.rule, "baseline action not applied (unknown, or no entity)");
                0
            }
        }
    }
}

/// A question for the detector thread: every rule's figures (`rule: None`), or one rule's
/// profile (entities whose values include `entity`, or all).
pub struct BaselineQuery {
    /// The rule, for a profile.
    pub rule: Option<String>,
    /// The entity filter.
    pub entity: Option<String>,
    /// Where the answer goes (`None`: no such rule).
    pub reply: tokio::sync::oneshot::Sender<Option<Value>>,
}

/// Queries waiting for the detector thread.
#[derive(Default)]
pub struct BaselineQueries(Mutex<Vec<BaselineQuery>>);

impl BaselineQueries {
    /// Asks; the answer comes after the detector's current batch (within ~200 ms when idle).
    /// `None` when [`MAX_WAITING_QUERIES`] are already waiting (the detector is not answering).
    pub fn ask(
        &self,
        rule: Option<String>,
        entity: Option<String>,
    ) -> Option<tokio::sync::oneshot::Receiver<Option<Value>>> {
        let mut waiting = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Questions whose asker gave up are dropped first.
        waiting.retain(|q| !q.reply.is_closed());
        if waiting.len() >= MAX_WAITING_QUERIES {
            return None;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        waiting.push(BaselineQuery {
            rule,
            entity,
            reply,
        });
        Some(answer)
    }

    /// Answers every waiting query from `detector` (on the detector thread).
    pub fn answer(&self, detector: &Detector) {
        let queries = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for query in queries {
            let answer = match &query.rule {
                None => Some(json!({"baselines": detector.baseline_stats()})),
                Some(rule) => {
                    detector
                        .export_profile(rule, query.entity.as_deref())
                        .map(|mut profile| {
                            let total = profile.entities.len() + profile.rates.len();
                            profile
                                .entities
                                .sort_by_key(|e| std::cmp::Reverse(e.last_seen));
                            profile.entities.truncate(MAX_SHOWN_ENTITIES);
                            profile
                                .rates
                                .sort_by_key(|e| std::cmp::Reverse(e.last_seen));
                            profile.rates.truncate(MAX_SHOWN_ENTITIES);
                            let mut value = serde_json::to_value(&profile).unwrap_or(Value::Null);
                            value["entity_count"] = json!(total);
                            value
                        })
                }
            };
            let _ = query.reply.send(answer);
        }
    }
}

/// Back-fills the baseline rules that have not started learning (new rules, reset ones) from
/// the store: the newest `max_events` stored events of their longest learning window, fed
/// oldest first through [`Detector::learn_rules`] (no alerts, no correlation state). A new
/// baseline rule is then judging at once when the store holds its window. Returns the events
/// learned.
pub fn warm_start(
    detector: &mut Detector,
    store: &crowsnest_store::Store,
    max_events: usize,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    use anyhow::Context;
    const PAGE: usize = 5_000;
    let pending = detector.unstarted_baselines();
    if pending.is_empty() || max_events == 0 {
        return Ok(0);
    }
    let window = pending.iter().map(|(_, secs)| *secs).max().unwrap_or(0);
    let start = now - chrono::Duration::seconds(window.max(1));
    let query = crowsnest_query::parse("NOT event.kind:alert").context("the warm-start query")?;
    let request = |offset: usize, limit: usize| crowsnest_store::SearchRequest {
        query: query.clone(),
        start: Some(start),
        end: Some(now),
        limit,
        offset,
    };
    let total = store
        .search(&request(0, 0))
        .context("counting stored events for the baseline warm start")?
        .total;
    let wanted = usize::try_from(total).unwrap_or(usize::MAX).min(max_events);
    let rules: std::collections::HashSet<String> =
        pending.into_iter().map(|(rule, _)| rule).collect();
    let mut learned = 0;
    // Hits come newest first: read the pages from the oldest one back to the newest.
    let mut offset = wanted.div_ceil(PAGE).saturating_sub(1) * PAGE;
    loop {
        let limit = PAGE.min(wanted - offset);
        let page = store
            .search(&request(offset, limit))
            .context("reading stored events for the baseline warm start")?;
        for hit in page.hits.into_iter().rev() {
            if let Value::Object(map) = hit {
                let event = Event::from_map(map);
                if event.get_str(ecs::EVENT_DATASET) == Some(BASELINE_ACTION_DATASET) {
                    continue;
                }
                detector.learn_rules(&event, &rules);
                learned += 1;
            }
        }
        if offset == 0 {
            break;
        }
        offset -= PAGE;
    }
    tracing::info!(
        rules = rules.len(),
        events = learned,
        window_secs = window,
        "baselines warm-started from the store"
    );
    Ok(learned)
}
