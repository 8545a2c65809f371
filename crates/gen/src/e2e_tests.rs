//! The generated stream through the real pipeline: the normalizer decodes it without errors,
//! and every attack query, parsed by the query crate and run by the store, finds exactly the
//! events the oracle says it should, and at least one.

use crowsnest_model::Event;
use crowsnest_normalize::{decode_k8s_audit, decode_ndjson, Limits};
use crowsnest_store::{SearchRequest, Store, StoreConfig};
use serde_json::Value;

use super::attacks::oracle::Cond;
use super::attacks::{attack_queries, ATTACKS};
use super::tests::{config, values_at, wildcard};
use super::{Generated, Generator};

/// Enough events for every attack step to appear (the ninth starts by event 41,000).
const EVENTS: usize = 45_000;

/// Decodes the records the way the ingest endpoints do: audit events as one `EventList`,
/// NDJSON lines per source.
fn normalize(records: Vec<Generated>) -> Vec<Event> {
    let mut audit_items = Vec::new();
    let mut lines: Vec<(&'static str, String)> = Vec::new();
    for record in records {
        match record {
            Generated::K8sAudit(event) => audit_items.push(event),
            Generated::Ndjson { source, line } => {
                let body = match lines.iter_mut().find(|(s, _)| *s == source) {
                    Some((_, body)) => body,
                    None => {
                        lines.push((source, String::new()));
                        &mut lines.last_mut().expect("just pushed").1
                    }
                };
                body.push_str(&line.to_string());
                body.push('\n');
            }
        }
    }
    let list = serde_json::json!({
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "items": audit_items,
    });
    let limits = Limits::default();
    let body = serde_json::to_vec(&list).expect("serializes");
    let decoded = decode_k8s_audit(&body, &limits).expect("an EventList");
    assert!(
        decoded.errors.is_empty(),
        "{:?}",
        &decoded.errors[..decoded.errors.len().min(3)]
    );
    let mut events = decoded.events;
    for (source, body) in &lines {
        let decoded = decode_ndjson(body.as_bytes(), Some(source), &limits);
        assert!(
            decoded.errors.is_empty(),
            "{source}: {:?}",
            decoded.errors.first()
        );
        for event in &decoded.events {
            assert_eq!(event.get_str("event.dataset"), Some(*source));
        }
        events.extend(decoded.events);
    }
    events
}

fn oracle_matches(event: &Event, conditions: &[Cond]) -> bool {
    let root = Value::Object(event.as_map().clone());
    conditions.iter().all(|cond| {
        let mut found = Vec::new();
        values_at(&root, cond.field, &mut found);
        let hit = found.iter().any(|v| match v {
            Value::String(s) => wildcard(cond.value, s),
            other => wildcard(cond.value, &other.to_string()),
        });
        hit != cond.negated
    })
}

#[test]
fn attack_queries_find_their_steps_in_the_store() {
    let records: Vec<Generated> = Generator::new(config(21, true)).take(EVENTS).collect();
    let events = normalize(records);
    assert_eq!(events.len(), EVENTS);

    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), StoreConfig::default()).expect("store opens");
    let batch: Vec<(u64, Event)> = (1..).zip(events.iter().cloned()).collect();
    store.add(&batch).expect("adds");
    store.commit().expect("commits");

    for (attack, (description, text)) in ATTACKS.iter().zip(attack_queries()) {
        let expected = events
            .iter()
            .filter(|e| oracle_matches(e, attack.conditions()))
            .count();
        assert!(
            expected > 0,
            "{attack:?}: the normalized events lack the step"
        );
        let query = crowsnest_query::parse(text)
            .unwrap_or_else(|error| panic!("{description}: `{text}` does not parse: {error}"));
        let request = SearchRequest {
            query,
            start: None,
            end: None,
            limit: 5,
            offset: 0,
        };
        let response = store.search(&request).expect("searches");
        assert_eq!(response.total, expected as u64, "{description}: `{text}`");
    }
}
