//! Partitions sealed in the integrity chain: a flipped byte is named, late events re-seal,
//! retention's deletions are explained gaps.

mod common;

use common::*;
use crowsnest_integrity::{verify, Chain, Severity, VerifyOptions};
use crowsnest_model::Event;
use crowsnest_store::{Store, StoreConfig};
use serde_json::json;

fn day_events(day: u32, count: u32, first_position: u64) -> Vec<(u64, Event)> {
    (0..count)
        .map(|i| {
            let ts = t("2024-03-01T00:00:00Z")
                + chrono::TimeDelta::days(i64::from(day))
                + chrono::TimeDelta::seconds(i64::from(i));
            (
                first_position + u64::from(i),
                ev(json!({
                    "@timestamp": crowsnest_model::format_timestamp(ts),
                    "message": format!("day {day} event {i}"),
                })),
            )
        })
        .collect()
}

#[test]
fn partitions_are_sealed_verified_resealed_and_deleted_with_an_explanation() {
    let data = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        &data.path().join("store"),
        StoreConfig {
            retention_max_age_hours: Some(48),
            ..StoreConfig::default()
        },
    )
    .expect("store");
    let chain = Chain::open(data.path(), None).expect("chain");
    store.set_chain(chain.clone());
    let mut position = 1;
    for day in 0..3 {
        store.add(&day_events(day, 20, position)).expect("add");
        position += 20;
    }
    store.commit().expect("commit");
    // Nothing new: every writer is idle, closes and its partition is sealed.
    store.commit().expect("commit");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.files_ok, 3, "{:?}", report.findings);

    // A late event for day 1: the seal is superseded, then renewed.
    store.add(&day_events(1, 1, position)).expect("add");
    position += 1;
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report
        .findings
        .iter()
        .any(|f| f.path == "store/partitions/20240302T00" && f.message.contains("late events")));
    store.commit().expect("commit");
    store.commit().expect("commit");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.files_ok, 3);
    assert_eq!(position, 62);

    // Retention: the deletion is recorded, verify passes and shows it.
    let dropped = store
        .apply_retention(t("2024-03-05T00:00:00Z"))
        .expect("retention");
    assert_eq!(dropped.dropped, vec!["20240301T00", "20240302T00"]);
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    let gaps: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Gap)
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        gaps,
        [
            "store/partitions/20240301T00",
            "store/partitions/20240302T00"
        ]
    );

    // One flipped byte in a file of the remaining sealed partition is named.
    let part = data.path().join("store/partitions/20240303T00");
    let victim = std::fs::read_dir(&part)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "store"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a docstore file");
    let mut bytes = std::fs::read(&victim).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&victim, bytes).expect("write");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    let failure = report.first_failure().expect("a failure");
    assert_eq!(failure.path, "store/partitions/20240303T00");
    assert!(failure.message.contains("expected"), "{failure}");
}
