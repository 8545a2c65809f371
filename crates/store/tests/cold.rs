//! The cold tier against the hot store: the same events in two stores, one of them rewritten
//! cold, answer the same queries (filters, free text, phrases, wildcards, aggregations, stats,
//! timechart, time bounds, paging) identically; the rewrite is recorded in the integrity chain
//! and `verify` passes; late events into a cold partition are found and rewritten again.

mod common;

use common::*;
use crowsnest_gen::{GenConfig, Generated, Generator};
use crowsnest_integrity::{verify, Chain, VerifyOptions};
use crowsnest_model::Event;
use crowsnest_normalize::{decode_k8s_audit, decode_ndjson, Limits};
use crowsnest_store::{ColdConfig, SearchRequest, SearchResponse, Store, StoreConfig};
use serde_json::json;

/// The generated cluster (audit, container logs, process events, attacks) plus records shaped
/// the way other shippers write them (Fluent Bit container records with a whole `log` line,
/// runtime-sensor process events), normalized as the ingest endpoints do.
fn corpus() -> Vec<Event> {
    let mut generator = Generator::new(GenConfig {
        seed: 23,
        start: t("2024-03-01T06:00:00Z"),
        // About 3.5 days of event time: four daily partitions.
        events_per_second: 0.02,
        attacks: true,
    });
    let limits = Limits::default();
    let mut events = Vec::new();
    let mut audit = Vec::new();
    for _ in 0..6000 {
        match generator.next().expect("endless") {
            Generated::K8sAudit(event) => audit.push(event),
            Generated::Ndjson { source, line } => {
                let decoded = decode_ndjson(line.to_string().as_bytes(), Some(source), &limits);
                assert!(decoded.errors.is_empty(), "{:?}", decoded.errors.first());
                events.extend(decoded.events);
            }
        }
    }
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": audit});
    let decoded =
        decode_k8s_audit(&serde_json::to_vec(&list).expect("json"), &limits).expect("list");
    assert!(decoded.errors.is_empty());
    events.extend(decoded.events);
    let mut foreign = String::new();
    for i in 0..400u32 {
        let ts = t("2024-03-02T00:00:00Z") + chrono::TimeDelta::seconds(i64::from(i) * 431);
        let stamp = crowsnest_model::format_timestamp(ts);
        let namespace = ["shop", "payments", "kube-system"][(i % 3) as usize];
        let binary = ["/usr/bin/curl", "/bin/sh", "/usr/bin/wget"][(i % 3) as usize];
        let line = if i % 2 == 0 {
            json!({
                "@timestamp": stamp,
                "time": stamp,
                "log": format!("2024-03-02 level=info msg=\"request served\" path=/api/orders/{i} status={} latency_ms={}\n", 200 + (i % 3) * 100, i % 97),
                "stream": "stdout",
                "kubernetes": {"namespace_name": namespace, "pod_name": format!("web-{}", i % 7), "pod_id": format!("5f0c-{i:04x}"), "container_name": "web"},
            })
        } else {
            json!({
                "@timestamp": stamp,
                "time": stamp,
                "process_exec": {"process": {"binary": binary, "arguments": format!("-s http://10.0.{}.{}/x", i % 5, i % 11), "exec_id": format!("a3f{i:06}"), "pid": 1000 + i}},
                "node_name": format!("node-{}", i % 3),
            })
        };
        foreign.push_str(&line.to_string());
        foreign.push('\n');
    }
    let decoded = decode_ndjson(foreign.as_bytes(), None, &limits);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors.first());
    events.extend(decoded.events);
    events
}

/// Adds the events in batches, committing after each (several segments per partition), then
/// closes the writers (partitions sealed).
fn load(store: &Store, events: &[Event]) {
    let mut position = 1;
    for chunk in events.chunks(700) {
        let batch: Vec<(u64, Event)> = chunk
            .iter()
            .map(|e| {
                position += 1;
                (position, e.clone())
            })
            .collect();
        store.add(&batch).expect("add");
        store.commit().expect("commit");
    }
    store.close_writers().expect("close");
}

const QUERIES: &[&str] = &[
    "*",
    "kubernetes.namespace:payments",
    "event.dataset:kubernetes.audit AND k8s.audit.verb:get",
    "secrets",
    "\"request served\"",
    "curl",
    "process.name:sh*",
    "kubernetes.pod.name:web-?",
    "user.name:* AND NOT event.dataset:container_logs",
    "xmrig OR \"cluster-admin\"",
    "node_name:node-1",
    "process_exec.process.binary:\"/usr/bin/curl\"",
    "* | stats count() by event.dataset",
    "* | stats count() by kubernetes.namespace | sort -count | head 5",
    "* | stats dc(user.name), count() by event.dataset",
    "* | timechart span=6h count()",
    "* | timechart span=1d count() by event.dataset",
    "event.dataset:container_logs | stats count() by log.level",
    "* | fields @timestamp, event.dataset, message | head 30",
];

fn search(
    store: &Store,
    text: &str,
    bounds: (Option<&str>, Option<&str>),
    offset: usize,
) -> SearchResponse {
    let mut response = store
        .search(&SearchRequest {
            query: q(text),
            start: bounds.0.map(t),
            end: bounds.1.map(t),
            limit: 40,
            offset,
        })
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    response.took_ms = 0;
    response
}

fn assert_same_answers(hot: &Store, cold: &Store) {
    let mut nonempty = 0;
    for text in QUERIES {
        for bounds in [
            (None, None),
            (Some("2024-03-02T03:00:00Z"), Some("2024-03-03T20:00:00Z")),
        ] {
            for offset in [0, 25] {
                let a = search(hot, text, bounds, offset);
                let b = search(cold, text, bounds, offset);
                assert_eq!(
                    serde_json::to_value(&a).expect("json"),
                    serde_json::to_value(&b).expect("json"),
                    "{text} {bounds:?} offset {offset}"
                );
                if a.total > 0 {
                    nonempty += 1;
                }
            }
        }
    }
    assert!(
        nonempty >= QUERIES.len() * 3,
        "too few queries match anything: {nonempty}"
    );
}

#[test]
fn cold_partitions_answer_every_query_like_hot_ones_and_verify() {
    let events = corpus();
    let (_hot_dir, hot) = store_with(StoreConfig::default());
    load(&hot, &events);

    let data = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        cold: ColdConfig {
            after_days: Some(30),
            ..ColdConfig::default()
        },
        ..StoreConfig::default()
    };
    let cold = Store::open(&data.path().join("store"), config.clone()).expect("store");
    let chain = Chain::open(data.path(), None).expect("chain");
    cold.set_chain(chain.clone());
    load(&cold, &events);
    let before = cold.stats();
    assert!(before.partitions.len() >= 4, "{:?}", before.partitions);
    assert!(before.partitions.iter().all(|p| !p.cold));

    // Not old enough yet.
    let report = cold.apply_cold(t("2024-03-20T00:00:00Z")).expect("cold");
    assert!(report.rewritten.is_empty());
    let report = cold.apply_cold(t("2024-05-01T00:00:00Z")).expect("cold");
    assert_eq!(
        report.rewritten.len(),
        before.partitions.len(),
        "{report:?}"
    );
    assert!(report.skipped.is_empty(), "{report:?}");
    let after = cold.stats();
    assert!(after.partitions.iter().all(|p| p.cold));
    assert_eq!(after.total_docs, before.total_docs);
    assert!(
        after.total_bytes < before.total_bytes,
        "{} !< {}",
        after.total_bytes,
        before.total_bytes
    );
    assert!(!data
        .path()
        .join("store/cold-work")
        .read_dir()
        .expect("work")
        .any(|_| true));
    assert_same_answers(&hot, &cold);

    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    let rewritten = report
        .findings
        .iter()
        .filter(|f| f.message.contains("cold tier"))
        .count();
    assert_eq!(rewritten, before.partitions.len(), "{:?}", report.findings);

    // Already cold: nothing to do.
    let again = cold.apply_cold(t("2024-05-01T00:00:00Z")).expect("cold");
    assert!(again.rewritten.is_empty());
    assert_eq!(again.already_cold, before.partitions.len());

    // A late event for a cold partition is found, and the next pass rewrites it again.
    let late = ev(json!({"@timestamp": "2024-03-02T12:00:00Z", "message": "late arrival zebra"}));
    for store in [&hot, &cold] {
        store.add(&[(1_000_000, late.clone())]).expect("add");
        store.commit().expect("commit");
        store.close_writers().expect("close");
        assert_eq!(search(store, "zebra", (None, None), 0).total, 1);
    }
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    let report = cold.apply_cold(t("2024-05-01T00:00:00Z")).expect("cold");
    assert_eq!(report.rewritten.len(), 1, "{report:?}");
    assert_eq!(report.rewritten[0].name, "20240302T00");
    assert_same_answers(&hot, &cold);

    // Reopened, the cold store answers the same.
    drop(cold);
    let cold = Store::open(&data.path().join("store"), config).expect("reopen");
    assert!(cold.stats().partitions.iter().all(|p| p.cold));
    assert_same_answers(&hot, &cold);
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
}
