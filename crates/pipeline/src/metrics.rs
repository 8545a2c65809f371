//! Prometheus metrics of the server, rendered in the text exposition format at `GET /metrics`.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Most distinct `source` label values; later ones are counted as `other` so a client cannot
/// grow the metrics without bound by inventing sources.
const MAX_SOURCES: usize = 64;

/// The `source` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// The input (`event.dataset`).
    pub source: String,
}

/// The labels of an output's event counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputResultLabel {
    /// The output's name.
    pub output: String,
    /// `delivered`, `rejected`, `dropped` or `filtered`.
    pub result: String,
}

/// The `output` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputLabel {
    /// The output's name.
    pub output: String,
}

/// All metrics of the process.
pub struct Metrics {
    registry: Registry,
    seen_sources: Mutex<HashSet<String>>,
    /// The totals of [`Metrics::rejected`], readable ([`Metrics::rejected_by_source`]).
    rejected_totals: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Events decoded from requests, per source.
    pub received: Family<SourceLabel, Counter>,
    /// Events committed to the store, per source.
    pub stored: Family<SourceLabel, Counter>,
    /// Lines or items rejected by the decoders, per source.
    pub rejected: Family<SourceLabel, Counter>,
    /// Events a user-defined mapping failed on (kept as they were), per source.
    pub mapping_failures: Family<SourceLabel, Counter>,
    /// Batches that met a full pipeline (refused over HTTP, waited for in the listeners).
    pub throttled: Counter,
    /// Batches waiting for the WAL writer.
    pub wal_queue_depth: Gauge,
    /// Batches waiting for the indexer.
    pub index_queue_depth: Gauge,
    /// Bytes in WAL segments.
    pub wal_bytes: Gauge,
    /// WAL segment files.
    pub wal_segments: Gauge,
    /// Events acknowledged but not yet committed to the store.
    pub index_lag_events: Gauge,
    /// Acknowledged events the indexer read back from the WAL (its queue was full).
    pub index_spilled: Counter,
    /// Events in the store.
    pub store_docs: Gauge,
    /// Bytes of the store on disk.
    pub store_bytes: Gauge,
    /// Partitions of another on-disk format, set aside and not searched.
    pub store_set_aside: Gauge,
    /// WAL appends (one fsync each).
    pub wal_fsyncs: Counter,
    /// Failed store adds or commits (each rolled back and retried from the WAL).
    pub store_failures: Counter,
    /// Batches refused because the data disk is below its free-space watermark.
    pub refused_disk_full: Counter,
    /// Free bytes on the data disk.
    pub disk_free_bytes: Gauge,
    /// Free bytes below which ingest is refused.
    pub disk_watermark_bytes: Gauge,
    /// Problems health reports (0 when all is well).
    pub health_problems: Gauge,
    /// Rule matches (before folding and suppression).
    pub detections: Counter,
    /// Alert records written (new alerts and count updates of folded ones).
    pub alerts: Counter,
    /// Rule matches folded into an existing alert.
    pub alerts_folded: Counter,
    /// Rule matches silenced by a suppression.
    pub alerts_suppressed: Counter,
    /// Incidents that started paging.
    pub incidents_paged: Counter,
    /// Terms held by the baseline rules (all rules and entities).
    pub baseline_terms: Gauge,
    /// Events the baseline rules could not judge because a cap (entities per rule, terms per
    /// entity) was reached: never alerts, counted here and logged once per rule.
    pub baseline_refused: Gauge,
    /// Seconds from an event's acknowledgement to the alert it raised.
    pub alert_latency: Histogram,
    output_events: Family<OutputResultLabel, Counter>,
    output_lag: Family<OutputLabel, Gauge>,
    output_up: Family<OutputLabel, Gauge>,
    output_retries: Family<OutputLabel, Counter>,
    /// Searches refused, stopped or cancelled, and failed authentication.
    pub guards: GuardMetrics,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("crowsnest");
        let received = Family::default();
        let stored = Family::default();
        let rejected = Family::default();
        let mapping_failures = Family::default();
        let throttled = Counter::default();
        let (wal_queue_depth, index_queue_depth) = (Gauge::default(), Gauge::default());
        let (wal_bytes, wal_segments) = (Gauge::default(), Gauge::default());
        let (index_lag_events, store_docs, store_bytes) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        let store_set_aside = Gauge::default();
        let index_spilled = Counter::default();
        let wal_fsyncs = Counter::default();
        let (store_failures, refused_disk_full) = (Counter::default(), Counter::default());
        let (disk_free_bytes, disk_watermark_bytes, health_problems) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "store_failures",
            "Failed store adds or commits (rolled back; the events are indexed again from the WAL)",
            store_failures.clone(),
        );
        registry.register(
            "ingest_refused_disk_full",
            "Batches refused (507, or held back by the listeners) because the data disk is below its free-space watermark",
            refused_disk_full.clone(),
        );
        registry.register(
            "disk_free_bytes",
            "Free bytes on the data disk (the fuller of the WAL's and the store's filesystems)",
            disk_free_bytes.clone(),
        );
        registry.register(
            "disk_watermark_bytes",
            "Free bytes below which ingest is refused",
            disk_watermark_bytes.clone(),
        );
        registry.register(
            "health_problems",
            "Problems /api/v1/health reports (0 when the status is ok)",
            health_problems.clone(),
        );
        let (detections, alerts, alerts_folded, alerts_suppressed) = (
            Counter::default(),
            Counter::default(),
            Counter::default(),
            Counter::default(),
        );
        let alert_latency = Histogram::new(
            [
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]
            .into_iter(),
        );
        registry.register(
            "detections",
            "Rule matches, before folding and suppression",
            detections.clone(),
        );
        registry.register(
            "alerts_written",
            "Alert records written (new alerts and folded-count updates)",
            alerts.clone(),
        );
        registry.register(
            "alerts_folded",
            "Rule matches folded into an existing alert",
            alerts_folded.clone(),
        );
        let incidents_paged = Counter::default();
        registry.register(
            "incidents_paged",
            "Incidents that started paging (a high alert, or risk past detect.incidents.page_risk)",
            incidents_paged.clone(),
        );
        registry.register(
            "alerts_suppressed",
            "Rule matches silenced by a suppression",
            alerts_suppressed.clone(),
        );
        let (baseline_terms, baseline_refused) = (Gauge::default(), Gauge::default());
        registry.register(
            "baseline_terms",
            "Terms held by the baseline rules (as of the last detector checkpoint)",
            baseline_terms.clone(),
        );
        registry.register(
            "baseline_refused",
            "Events the baseline rules did not judge because a cap was reached (no alert)",
            baseline_refused.clone(),
        );
        registry.register(
            "alert_latency_seconds",
            "Seconds from an event's acknowledgement to the alert it raised",
            alert_latency.clone(),
        );
        registry.register(
            "events_received",
            "Events decoded from requests",
            received.clone(),
        );
        registry.register(
            "events_stored",
            "Events committed to the store",
            stored.clone(),
        );
        registry.register(
            "events_rejected",
            "Lines or items rejected by the decoders",
            rejected.clone(),
        );
        registry.register(
            "mapping_failures",
            "Events a user-defined mapping ([[mappings]]) failed on; each is kept as it was, with crowsnest.mapping_error",
            mapping_failures.clone(),
        );
        registry.register(
            "requests_throttled",
            "Batches that met a full pipeline: HTTP requests refused (503, or 429 on _bulk), listener batches that waited for room",
            throttled.clone(),
        );
        registry.register(
            "wal_queue_depth",
            "Batches waiting for the WAL writer",
            wal_queue_depth.clone(),
        );
        registry.register(
            "index_queue_depth",
            "Batches waiting for the indexer",
            index_queue_depth.clone(),
        );
        registry.register("wal_bytes", "Bytes in WAL segments", wal_bytes.clone());
        registry.register("wal_segments", "WAL segment files", wal_segments.clone());
        registry.register(
            "wal_fsyncs",
            "WAL batch appends, one fsync each",
            wal_fsyncs.clone(),
        );
        registry.register(
            "index_lag_events",
            "Events acknowledged but not yet searchable",
            index_lag_events.clone(),
        );
        registry.register(
            "index_spilled_events",
            "Acknowledged events the indexer read back from the WAL because its queue was full (bursts above the indexing rate)",
            index_spilled.clone(),
        );
        registry.register("store_documents", "Events in the store", store_docs.clone());
        registry.register(
            "store_bytes",
            "Bytes of the store on disk",
            store_bytes.clone(),
        );
        registry.register(
            "store_set_aside_partitions",
            "Partitions of another on-disk format, set aside on start and not searched",
            store_set_aside.clone(),
        );
        let (output_events, output_retries) = (Family::default(), Family::default());
        let (output_lag, output_up) = (Family::default(), Family::default());
        registry.register(
            "output_events",
            "Events handled by a forwarding output, by result (delivered, rejected by the destination, dropped past max_buffer_bytes, filtered out)",
            output_events.clone(),
        );
        registry.register(
            "output_lag_events",
            "Acknowledged events a forwarding output has not delivered yet",
            output_lag.clone(),
        );
        registry.register(
            "output_up",
            "1 when the output's last delivery succeeded, 0 when it is retrying",
            output_up.clone(),
        );
        registry.register(
            "output_retries",
            "Failed delivery attempts of a forwarding output (each is retried)",
            output_retries.clone(),
        );
        let guards = GuardMetrics::register(&mut registry);
        Self {
            registry,
            guards,
            seen_sources: Mutex::new(HashSet::new()),
            rejected_totals: Mutex::new(std::collections::BTreeMap::new()),
            received,
            stored,
            rejected,
            mapping_failures,
            throttled,
            wal_queue_depth,
            index_queue_depth,
            wal_bytes,
            wal_segments,
            index_lag_events,
            index_spilled,
            store_docs,
            store_bytes,
            store_set_aside,
            wal_fsyncs,
            store_failures,
            refused_disk_full,
            disk_free_bytes,
            disk_watermark_bytes,
            health_problems,
            detections,
            alerts,
            alerts_folded,
            alerts_suppressed,
            incidents_paged,
            baseline_terms,
            baseline_refused,
            alert_latency,
            output_events,
            output_lag,
            output_up,
            output_retries,
        }
    }

    /// The event counter of an output for one result.
    pub fn output_events(&self, output: &str, result: &str) -> Counter {
        self.output_events
            .get_or_create(&OutputResultLabel {
                output: output.to_string(),
                result: result.to_string(),
            })
            .clone()
    }

    /// The lag gauge of an output.
    pub fn output_lag(&self, output: &str) -> Gauge {
        self.output_lag.get_or_create(&output_label(output)).clone()
    }

    /// The health gauge of an output.
    pub fn output_up(&self, output: &str) -> Gauge {
        self.output_up.get_or_create(&output_label(output)).clone()
    }

    /// The retry counter of an output.
    pub fn output_retries(&self, output: &str) -> Counter {
        self.output_retries
            .get_or_create(&output_label(output))
            .clone()
    }

    /// The label for a source, folding sources past the first [`MAX_SOURCES`] into `other`.
    pub fn source(&self, source: &str) -> SourceLabel {
        let mut seen = self
            .seen_sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(source) || (seen.len() < MAX_SOURCES && seen.insert(source.to_string())) {
            SourceLabel {
                source: source.to_string(),
            }
        } else {
            SourceLabel {
                source: "other".to_string(),
            }
        }
    }

    /// Counts `count` lines or items of `source` rejected by the decoders (the
    /// `events_rejected` counter, and the totals [`Metrics::rejected_by_source`] reads).
    pub fn count_rejected(&self, source: &str, count: u64) {
        if count == 0 {
            return;
        }
        let label = self.source(source);
        self.rejected.get_or_create(&label).inc_by(count);
        *self
            .rejected_totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(label.source)
            .or_default() += count;
    }

    /// Lines or items rejected by the decoders since the process started, per source (the
    /// sources past the first [`MAX_SOURCES`] as `other`), by source name.
    pub fn rejected_by_source(&self) -> Vec<(String, u64)> {
        self.rejected_totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(source, count)| (source.clone(), *count))
            .collect()
    }

    /// Renders the text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# metrics encoding failed\n");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn output_label(output: &str) -> OutputLabel {
    OutputLabel {
        output: output.to_string(),
    }
}

/// The `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why (a fixed, small set of values per metric).
    pub reason: &'static str,
}

/// Metrics of the search limits and of failed authentication.
#[derive(Default)]
pub struct GuardMetrics {
    searches_refused: Family<ReasonLabel, Counter>,
    /// Searches stopped at their time budget (`search.timeout_ms`).
    pub searches_timed_out: Counter,
    /// Searches stopped because their client went away.
    pub searches_cancelled: Counter,
    auth_failures: Family<ReasonLabel, Counter>,
    /// Requests refused with 429 because their address sent too many unknown tokens.
    pub auth_throttled: Counter,
}

impl GuardMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "searches_refused",
            "Searches refused before running, by reason: query_bytes, terms (search.max_query_bytes, search.max_terms), concurrency (search.max_concurrent_per_token)",
            metrics.searches_refused.clone(),
        );
        registry.register(
            "searches_timed_out",
            "Searches stopped at their time budget (search.timeout_ms)",
            metrics.searches_timed_out.clone(),
        );
        registry.register(
            "searches_cancelled",
            "Searches stopped because their client went away",
            metrics.searches_cancelled.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests refused for their credentials, by reason: missing, unknown (token), forbidden (known token without the scope)",
            metrics.auth_failures.clone(),
        );
        registry.register(
            "auth_throttled",
            "Requests refused with 429 because their address sent too many unknown tokens (auth.max_failures)",
            metrics.auth_throttled.clone(),
        );
        metrics
    }

    /// The refusal counter for `reason` (`query_bytes`, `terms`, `concurrency`).
    pub fn search_refused(&self, reason: &'static str) -> Counter {
        self.searches_refused
            .get_or_create(&ReasonLabel { reason })
            .clone()
    }

    /// The failed-authentication counter for `reason` (`missing`, `unknown`, `forbidden`).
    pub fn auth_failure(&self, reason: &'static str) -> Counter {
        self.auth_failures
            .get_or_create(&ReasonLabel { reason })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_per_source_and_caps_label_values() {
        let metrics = Metrics::new();
        metrics
            .received
            .get_or_create(&metrics.source("k8s_audit"))
            .inc_by(3);
        for i in 0..(MAX_SOURCES + 5) {
            metrics
                .received
                .get_or_create(&metrics.source(&format!("s{i}")))
                .inc();
        }
        let text = metrics.render();
        assert!(
            text.contains("crowsnest_events_received_total{source=\"k8s_audit\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("crowsnest_events_received_total{source=\"other\"} 6"),
            "{text}"
        );
        assert!(text.contains("# TYPE crowsnest_wal_bytes gauge"), "{text}");
    }

    #[test]
    fn rejects_are_counted_per_source_and_readable() {
        let metrics = Metrics::new();
        metrics.count_rejected("syslog", 2);
        metrics.count_rejected("syslog", 3);
        metrics.count_rejected("ndjson", 0);
        metrics.count_rejected("k8s_audit", 1);
        assert_eq!(
            metrics.rejected_by_source(),
            [("k8s_audit".to_string(), 1), ("syslog".to_string(), 5)]
        );
        let text = metrics.render();
        assert!(
            text.contains("crowsnest_events_rejected_total{source=\"syslog\"} 5"),
            "{text}"
        );
        assert!(!text.contains("source=\"ndjson\""), "{text}");
    }
}
