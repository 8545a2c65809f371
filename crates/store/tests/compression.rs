//! The docstore's zstd level (`StoreConfig::docstore_zstd_level`): a higher level stores the
//! same events in less space, a reopened store writes at its new level, events read back the
//! same at any level, and a level out of range is refused with a clear error.

mod common;

use common::{positioned, q, run, store_with};
use crowsnest_store::{Store, StoreConfig, StoreError};
use serde_json::{json, Value};

/// Audit-like events with a raw input, varied the way a cluster's are (users, verbs,
/// resources, namespaces, ids), from a fixed seed.
fn events(n: usize, seed: u64) -> Vec<Value> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let users = [
        "system:kube-scheduler",
        "alice@example.com",
        "system:serviceaccount:prod:api",
    ];
    let verbs = ["get", "list", "watch", "create", "patch", "delete"];
    let resources = ["pods", "secrets", "configmaps", "leases", "deployments"];
    let namespaces = ["prod", "payments", "kube-system", "staging"];
    (0..n)
        .map(|i| {
            let user = users[next() as usize % users.len()];
            let verb = verbs[next() as usize % verbs.len()];
            let resource = resources[next() as usize % resources.len()];
            let namespace = namespaces[next() as usize % namespaces.len()];
            let name = format!("{resource}-{:x}", next() % 4096);
            let id = format!("{:08x}-{:04x}-4{:03x}", next(), next() % 65536, next() % 4096);
            let ts = format!("2026-11-20T10:{:02}:{:02}.{:06}Z", i / 3600 % 60, i / 60 % 60, next() % 1_000_000);
            let raw = json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": id, "verb": verb,
                "user": {"username": user}, "requestReceivedTimestamp": ts,
                "objectRef": {"resource": resource, "namespace": namespace, "name": name},
                "requestURI": format!("/api/v1/namespaces/{namespace}/{resource}/{name}"),
            });
            json!({
                "@timestamp": ts,
                "event": {"action": verb, "dataset": "kubernetes.audit", "original": raw.to_string()},
                "user": {"name": user},
                "kubernetes": {"namespace": namespace},
                "orchestrator": {"resource": {"type": resource, "name": name}},
                "message": format!("{user} {verb} {resource} {namespace}/{name}"),
            })
        })
        .collect()
}

fn config(level: i32) -> StoreConfig {
    StoreConfig {
        docstore_zstd_level: level,
        ..StoreConfig::default()
    }
}

fn stored_bytes(level: i32, batches: &[Vec<Value>]) -> u64 {
    let (_dir, store) = store_with(config(level));
    let mut first = 1;
    for batch in batches {
        store.add(&positioned(batch, first)).expect("add");
        store.commit().expect("commit");
        first += batch.len() as u64;
    }
    store.stats().total_bytes
}

#[test]
fn a_higher_level_stores_the_same_events_in_less_space() {
    let batch = events(6_000, 7);
    let fast = stored_bytes(1, std::slice::from_ref(&batch));
    let small = stored_bytes(12, std::slice::from_ref(&batch));
    assert!(
        small < fast,
        "level 12 should store less than level 1: {small} vs {fast} bytes"
    );
}

#[test]
fn a_reopened_store_writes_at_its_new_level_and_reads_what_it_wrote_before() {
    let first = events(4_000, 11);
    let second = events(4_000, 12);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), config(1)).expect("open at level 1");
        store.add(&positioned(&first, 1)).expect("add");
        store.commit().expect("commit");
    }
    let store = Store::open(dir.path(), config(12)).expect("reopen at level 12");
    store
        .add(&positioned(&second, 1 + first.len() as u64))
        .expect("add");
    store.commit().expect("commit");
    let reopened = store.stats().total_bytes;
    let all_at_one = stored_bytes(1, &[first.clone(), second.clone()]);
    assert!(
        reopened < all_at_one,
        "the events added after reopening at level 12 should take less space: {reopened} vs {all_at_one} bytes"
    );
    // Both halves read back whole: the stored event and its raw input.
    for (events, half) in [(&first, "first"), (&second, "second")] {
        let wanted = &events[123];
        let id = wanted["event"]["original"]
            .as_str()
            .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
            .and_then(|raw| raw["auditID"].as_str().map(str::to_owned))
            .expect("audit id");
        let response = run(&store, q(&format!("\"{id}\"")), 10, 0);
        assert_eq!(response.total, 1, "{half} half: {id}");
        let hit = &response.hits[0];
        assert_eq!(
            hit["event"]["original"], wanted["event"]["original"],
            "{half} half"
        );
        assert_eq!(hit["message"], wanted["message"], "{half} half");
    }
}

#[test]
fn a_level_out_of_range_is_refused_with_the_setting_named() {
    for level in [0, 20, -1] {
        let dir = tempfile::tempdir().expect("tempdir");
        match Store::open(dir.path(), config(level)) {
            Err(error @ StoreError::Config(_)) => {
                let text = error.to_string();
                assert!(text.contains("docstore_zstd_level"), "{text}");
                assert!(text.contains(&level.to_string()), "{text}");
            }
            Err(other) => panic!("level {level}: unexpected error {other}"),
            Ok(_) => panic!("level {level} was accepted"),
        }
    }
}
