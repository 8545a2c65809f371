//! Rate and distinct-count baselines (`baseline: kind: rate`): per entity (namespace, source,
//! principal, ...), the events of each time bucket (or the distinct values of some fields in
//! it: secrets, pods, namespaces touched) against the same bucket of the week in past weeks
//! (hour-of-week seasonality) or against the last buckets, with a robust threshold:
//!
//! ```text
//! threshold = median + k × max(1.4826 × MAD, 1)        alert when value > threshold
//!                                                      and value >= min_count
//! ```
//!
//! `median` and `MAD` (median absolute deviation) are over the last `history` values of the
//! bucket's slot (a bucket with no event counts as 0); `1.4826 × MAD` estimates the standard
//! deviation of normal data without being dragged by past spikes, and the floor of 1 keeps a
//! perfectly flat history from alerting on one event more. A slot with fewer than
//! `min_history` values is still learning. An entity alerts at most once per bucket, as the
//! value crosses the threshold (in the stream, not at the end of the bucket).
//!
//! Memory is fixed per entity: `slots × history` 32-bit values (168 × 4 for hourly buckets with
//! hour-of-week seasonality: 2.7 KB), plus the current bucket's distinct values as an exact set
//! under `max_distinct` (and under the rule's `max_keys` across entities); at the cap the count
//! is a lower bound and says so.
//!
//! ```yaml
//! baseline:
//!   kind: rate
//!   entity: [user.name]
//!   distinct: [kubernetes.namespace, orchestrator.resource.name]   # absent: count events
//!   bucket: 1h                 # width of a bucket (divides a week with hour_of_week)
//!   seasonality: hour_of_week  # or `none`: the last `history` buckets
//!   history: 4                 # values per slot (4 weeks with hour_of_week)
//!   min_history: 3             # values a slot needs before it alerts
//!   threshold: 6               # k, in robust standard deviations
//!   min_count: 10              # never alert below this value
//!   max_distinct: 10000        # exact distinct set per entity and bucket
//!   method: median_mad         # or `ewma` (below)
//!   alpha: 0.3                 # `ewma` only: weight of the newest value, 0 < alpha <= 1
//! ```
//!
//! With `method: ewma` the threshold follows recent values instead of the median: an
//! exponentially weighted mean and variance over the slot's kept values, oldest first
//! (`m₁ = x₁`, `v₁ = 0`; `mᵢ = mᵢ₋₁ + α(xᵢ − mᵢ₋₁)`, `vᵢ = (1 − α)(vᵢ₋₁ + α(xᵢ − mᵢ₋₁)²)`):
//!
//! ```text
//! threshold = m + k × max(√v, 1)                       alert when value > threshold
//! ```
//!
//! It adapts to a level that moves (a service that grows), where the median waits for half
//! the history to move; it is also dragged by past spikes, which the median is not. It uses
//! the same fixed history (`history` values per slot), so with `seasonality: none` choose
//! `history` of at least `3 / alpha` buckets (the weights of older values are below 5%).

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// One week in seconds.
pub const WEEK_SECS: i64 = 7 * 86_400;
/// Marks a history value that was never recorded.
const NONE: u32 = u32::MAX;

/// Seasonality of a rate baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    /// The same bucket of the week in past weeks.
    HourOfWeek,
    /// The last buckets.
    None,
}

/// How a rate's threshold is computed from a slot's history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `median + k × max(1.4826 × MAD, 1)`.
    #[default]
    MedianMad,
    /// `EWMA + k × max(EW standard deviation, 1)`.
    Ewma,
}

/// A rate rule's settings (validated).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateSpec {
    /// Fields whose distinct combinations are counted (empty: events are counted).
    pub distinct: Vec<String>,
    /// Bucket width in seconds.
    pub bucket_secs: i64,
    /// Seasonality.
    pub seasonality: Seasonality,
    /// Values kept per slot.
    pub history: usize,
    /// Values a slot needs before it alerts.
    pub min_history: usize,
    /// k: robust standard deviations above the median.
    pub threshold: f64,
    /// No alert below this value.
    pub min_count: u64,
    /// Cap of the exact distinct set per entity and bucket.
    pub max_distinct: usize,
    /// How the threshold is computed.
    pub method: Method,
    /// `ewma`: the weight of the newest value (0 < alpha <= 1).
    pub alpha: f64,
}

impl RateSpec {
    /// Slots of the history: buckets per week, or one.
    pub fn slots(&self) -> usize {
        match self.seasonality {
            Seasonality::HourOfWeek => (WEEK_SECS / self.bucket_secs) as usize,
            Seasonality::None => 1,
        }
    }

    /// Validates the settings.
    pub fn check(&self) -> Result<(), String> {
        if self.bucket_secs < 60 {
            return Err(format!(
                "`bucket` must be at least 1m, not {}s",
                self.bucket_secs
            ));
        }
        if self.seasonality == Seasonality::HourOfWeek
            && (WEEK_SECS % self.bucket_secs != 0 || self.bucket_secs > 86_400)
        {
            return Err(format!(
                "`bucket` ({}s) must divide a day evenly with `seasonality: hour_of_week`",
                self.bucket_secs
            ));
        }
        if !(1..=64).contains(&self.history) {
            return Err(format!("`history` must be 1..=64, not {}", self.history));
        }
        if self.min_history == 0 || self.min_history > self.history {
            return Err(format!(
                "`min_history` must be 1..=`history` ({}), not {}",
                self.history, self.min_history
            ));
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(format!(
                "`threshold` must be a positive number, not {}",
                self.threshold
            ));
        }
        if !(1..=1_000_000).contains(&self.max_distinct) {
            return Err(format!(
                "`max_distinct` must be 1..=1000000, not {}",
                self.max_distinct
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(format!(
                "`alpha` must be a number in (0, 1], not {}",
                self.alpha
            ));
        }
        if self.slots() * self.history > 100_000 {
            return Err(format!(
                "{} slots × `history` {} is over 100000 values per entity: use a wider `bucket`",
                self.slots(),
                self.history
            ));
        }
        Ok(())
    }

    /// What is measured, for people.
    pub fn measure(&self) -> String {
        if self.distinct.is_empty() {
            "events".to_string()
        } else {
            format!("distinct {}", self.distinct.join(" × "))
        }
    }
}

/// One entity's rate state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateEntity {
    /// The entity's field values.
    pub values: Vec<String>,
    /// First event (unix seconds, stream time).
    pub first_seen: i64,
    /// Latest event.
    pub last_seen: i64,
    /// Events counted.
    pub events: u64,
    /// Start of the current bucket.
    pub bucket: i64,
    /// Events in the current bucket.
    pub count: u64,
    /// Distinct keys in the current bucket (exact under the cap).
    #[serde(default)]
    pub distinct: HashSet<String>,
    /// The distinct set reached a cap in this bucket: its size is a lower bound.
    #[serde(default)]
    pub capped: bool,
    /// Alerted in the current bucket.
    #[serde(default)]
    pub alerted: bool,
    /// Locked: closed buckets are not learned (the history is frozen); it still alerts.
    #[serde(default)]
    pub locked: bool,
    /// The current bucket was accepted into the history (it is recorded in its slot already,
    /// and raises no alert).
    #[serde(default)]
    pub accepted: bool,
    /// Closed buckets' values per slot (`slots × history`, oldest first in a slot;
    /// `u32::MAX`: none).
    pub history: Vec<u32>,
}

/// Robust figures of a slot's history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Robust {
    /// Median.
    pub median: f64,
    /// Median absolute deviation.
    pub mad: f64,
    /// `median + k × max(1.4826 × MAD, 1)`.
    pub threshold: f64,
}

/// The median of sorted values.
fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Median, MAD and threshold of `values` with `k`.
pub fn robust(values: &[u32], k: f64) -> Robust {
    let mut v: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
    v.sort_by(f64::total_cmp);
    let median = median_sorted(&v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = median_sorted(&dev);
    Robust {
        median,
        mad,
        threshold: median + k * (1.4826 * mad).max(1.0),
    }
}

/// Exponentially weighted figures of a slot's history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    /// The weighted mean.
    pub mean: f64,
    /// The weighted standard deviation.
    pub std: f64,
    /// `mean + k × max(std, 1)`.
    pub threshold: f64,
}

/// EWMA, EW standard deviation and threshold of `values` (oldest first) with `alpha` and `k`
/// (see the module docs); all 0 for no values.
pub fn ewma(values: &[u32], alpha: f64, k: f64) -> Ewma {
    let mut it = values.iter().map(|&x| f64::from(x));
    let mut mean = it.next().unwrap_or(0.0);
    let mut var = 0.0;
    for x in it {
        let diff = x - mean;
        mean += alpha * diff;
        var = (1.0 - alpha) * (var + alpha * diff * diff);
    }
    let std = var.max(0.0).sqrt();
    Ewma {
        mean,
        std,
        threshold: mean + k * std.max(1.0),
    }
}

/// A slot's threshold by the spec's method.
pub fn threshold(spec: &RateSpec, history: &[u32]) -> f64 {
    match spec.method {
        Method::MedianMad => robust(history, spec.threshold).threshold,
        Method::Ewma => ewma(history, spec.alpha, spec.threshold).threshold,
    }
}

impl RateEntity {
    /// A new entity whose first bucket starts at `bucket`.
    pub fn new(values: Vec<String>, spec: &RateSpec, now: i64, bucket: i64) -> Self {
        Self {
            values,
            first_seen: now,
            last_seen: now,
            events: 0,
            bucket,
            count: 0,
            distinct: HashSet::new(),
            capped: false,
            alerted: false,
            locked: false,
            accepted: false,
            history: vec![NONE; spec.slots() * spec.history],
        }
    }

    /// The slot of the bucket starting at `start`.
    fn slot(spec: &RateSpec, start: i64) -> usize {
        (start.div_euclid(spec.bucket_secs) as usize) % spec.slots()
    }

    fn record(&mut self, spec: &RateSpec, start: i64, value: u64) {
        let slot = Self::slot(spec, start);
        let Some(cells) = self
            .history
            .get_mut(slot * spec.history..(slot + 1) * spec.history)
        else {
            return;
        };
        cells.rotate_left(1);
        if let Some(last) = cells.last_mut() {
            *last = u32::try_from(value).unwrap_or(u32::MAX - 1);
        }
    }

    /// The value of the current bucket.
    pub fn value(&self, spec: &RateSpec) -> u64 {
        if spec.distinct.is_empty() {
            self.count
        } else {
            self.distinct.len() as u64
        }
    }

    /// Closes the current bucket and the empty ones up to `start` (at most one full history of
    /// them: older zeros would be overwritten anyway). Returns how many distinct keys were
    /// released.
    pub fn roll(&mut self, spec: &RateSpec, start: i64) -> usize {
        if start <= self.bucket {
            return 0;
        }
        let value = self.value(spec);
        if self.accepted {
            // Recorded when accepted: its cell takes the bucket's final value.
            let slot = Self::slot(spec, self.bucket);
            if let Some(last) = self.history.get_mut((slot + 1) * spec.history - 1) {
                *last = u32::try_from(value).unwrap_or(u32::MAX - 1);
            }
        } else if !self.locked {
            self.record(spec, self.bucket, value);
        }
        let skipped = (start - self.bucket) / spec.bucket_secs - 1;
        let cells = (spec.slots() * spec.history) as i64;
        let mut b = if skipped > cells {
            start - cells * spec.bucket_secs
        } else {
            self.bucket + spec.bucket_secs
        };
        while b < start && !self.locked {
            self.record(spec, b, 0);
            b += spec.bucket_secs;
        }
        self.bucket = start;
        self.count = 0;
        self.capped = false;
        self.alerted = false;
        self.accepted = false;
        let released = self.distinct.len();
        self.distinct = HashSet::new();
        released
    }

    /// Accepts the current bucket as normal: its value joins its slot's history now (and
    /// takes the bucket's final value when it closes), and it raises no more alerts.
    /// Returns false when it was accepted already.
    pub fn accept(&mut self, spec: &RateSpec) -> bool {
        if self.accepted {
            return false;
        }
        let value = self.value(spec);
        self.record(spec, self.bucket, value);
        self.accepted = true;
        self.alerted = true;
        true
    }

    /// The recorded history of the current bucket's slot, oldest first.
    pub fn slot_history(&self, spec: &RateSpec) -> Vec<u32> {
        let slot = Self::slot(spec, self.bucket);
        self.history
            .get(slot * spec.history..(slot + 1) * spec.history)
            .map(|cells| cells.iter().copied().filter(|&v| v != NONE).collect())
            .unwrap_or_default()
    }
}

/// A bucket's start for people: `Mon 10:00 UTC`.
pub fn bucket_label(start: i64) -> String {
    let t: DateTime<Utc> = DateTime::from_timestamp(start, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    format!("{} {:02}:{:02} UTC", t.weekday(), t.hour(), t.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seasonality: Seasonality, history: usize) -> RateSpec {
        RateSpec {
            distinct: Vec::new(),
            bucket_secs: 3_600,
            seasonality,
            history,
            min_history: 1,
            threshold: 3.0,
            min_count: 1,
            max_distinct: 10,
            method: Method::MedianMad,
            alpha: 0.3,
        }
    }

    #[test]
    fn ewma_matches_a_hand_computed_sequence() {
        // alpha 0.5 over 2, 4, 4, 10 (worked by hand):
        //   m = 2                         v = 0
        //   x = 4:  d = 2,  m = 3,        v = 0.5 × (0 + 0.5 × 4)      = 1
        //   x = 4:  d = 1,  m = 3.5,      v = 0.5 × (1 + 0.5 × 1)      = 0.75
        //   x = 10: d = 6.5, m = 6.75,    v = 0.5 × (0.75 + 0.5 × 42.25) = 10.9375
        let e = ewma(&[2, 4, 4, 10], 0.5, 2.0);
        assert_eq!(e.mean, 6.75);
        assert!((e.std - 10.9375f64.sqrt()).abs() < 1e-12);
        assert!((e.threshold - (6.75 + 2.0 * 10.9375f64.sqrt())).abs() < 1e-12);
        // A flat history: the floor of 1 standard deviation.
        assert_eq!(ewma(&[5, 5, 5], 0.3, 3.0).threshold, 8.0);
        // alpha 1: only the newest value counts.
        assert_eq!(ewma(&[100, 1], 1.0, 1.0).mean, 1.0);
        let mut s = spec(Seasonality::None, 4);
        s.method = Method::Ewma;
        s.alpha = 0.5;
        s.threshold = 2.0;
        assert_eq!(threshold(&s, &[2, 4, 4, 10]), e.threshold);
        s.alpha = 0.0;
        assert!(s.check().expect_err("alpha 0").contains("alpha"));
    }

    #[test]
    fn a_locked_entity_keeps_its_history_and_an_accepted_bucket_is_recorded_once() {
        let s = spec(Seasonality::None, 3);
        let mut e = RateEntity::new(vec!["a".into()], &s, 0, 0);
        e.count = 4;
        e.roll(&s, 3_600);
        e.count = 50;
        assert!(e.accept(&s));
        assert!(!e.accept(&s), "once per bucket");
        assert_eq!(e.slot_history(&s), vec![4, 50]);
        e.count = 60;
        e.roll(&s, 7_200);
        assert_eq!(e.slot_history(&s), vec![4, 60], "the final value, one cell");
        e.locked = true;
        e.count = 500;
        e.roll(&s, 5 * 3_600);
        assert_eq!(e.slot_history(&s), vec![4, 60], "frozen while locked");
        e.locked = false;
        e.count = 7;
        e.roll(&s, 6 * 3_600);
        assert_eq!(e.slot_history(&s), vec![4, 60, 7]);
    }

    #[test]
    fn median_mad_and_threshold() {
        let r = robust(&[1, 2, 3, 4, 100], 3.0);
        assert_eq!(r.median, 3.0);
        assert_eq!(r.mad, 1.0);
        assert!((r.threshold - (3.0 + 3.0 * 1.4826)).abs() < 1e-9);
        let flat = robust(&[5, 5, 5, 5], 6.0);
        assert_eq!(flat.threshold, 11.0);
        assert_eq!(robust(&[2, 4], 1.0).median, 3.0);
    }

    #[test]
    fn rolling_records_values_and_zeros_per_slot() {
        let s = spec(Seasonality::HourOfWeek, 2);
        let mut e = RateEntity::new(vec!["a".into()], &s, 0, 0);
        e.count = 7;
        // Two hours later: hour 0 closes with 7, hour 1 with 0.
        e.roll(&s, 7_200);
        assert_eq!(e.history[1], 7);
        assert_eq!(e.history[3], 0);
        // A week later, the same hour of the week holds 7 in its history.
        e.roll(&s, WEEK_SECS);
        assert_eq!(e.slot_history(&s), vec![7]);
        // Far later: every slot has been zeroed, nothing overflows.
        e.count = 3;
        e.roll(&s, 100 * WEEK_SECS);
        assert!(e.history.iter().all(|&v| v == 0 || v == NONE));
        assert_eq!(e.slot_history(&s), vec![0, 0]);
        let flat = spec(Seasonality::None, 3);
        let mut f = RateEntity::new(vec![], &flat, 0, 0);
        f.count = 4;
        f.roll(&flat, 3_600);
        f.count = 5;
        f.roll(&flat, 3 * 3_600);
        assert_eq!(f.slot_history(&flat), vec![4, 5, 0]);
    }

    #[test]
    fn settings_are_checked() {
        let mut s = spec(Seasonality::HourOfWeek, 4);
        assert!(s.check().is_ok());
        s.bucket_secs = 5 * 3_600;
        assert!(s.check().expect_err("bad").contains("divide"));
        s.bucket_secs = 3_600;
        s.min_history = 5;
        assert!(s.check().expect_err("bad").contains("min_history"));
    }
}
