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
//! ```

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
        self.record(spec, self.bucket, value);
        let skipped = (start - self.bucket) / spec.bucket_secs - 1;
        let cells = (spec.slots() * spec.history) as i64;
        let mut b = if skipped > cells {
            start - cells * spec.bucket_secs
        } else {
            self.bucket + spec.bucket_secs
        };
        while b < start {
            self.record(spec, b, 0);
            b += spec.bucket_secs;
        }
        self.bucket = start;
        self.count = 0;
        self.capped = false;
        self.alerted = false;
        let released = self.distinct.len();
        self.distinct = HashSet::new();
        released
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
        }
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
