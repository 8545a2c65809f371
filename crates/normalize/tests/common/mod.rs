//! Helpers shared by the integration tests: test-data paths and golden-file comparison.

#![allow(dead_code)]

use std::path::PathBuf;

use crowsnest_normalize::Decoded;
use serde_json::{json, Value};

/// A file under the shared, read-only third-party test data.
pub fn testdata(relative: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata"
    ))
    .join(relative)
}

/// Reads a shared test-data file.
pub fn read_testdata(relative: &str) -> Vec<u8> {
    let path = testdata(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// A file of ours under `tests/golden`.
pub fn golden_path(relative: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden")).join(relative)
}

/// Reads one of our golden inputs.
pub fn read_golden(relative: &str) -> Vec<u8> {
    let path = golden_path(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// The decoded output as JSON; with `strip_raw`, `event.original` and `k8s.audit` are left
/// out (they are verbatim copies of third-party input, asserted separately, not stored).
pub fn snapshot(decoded: &Decoded, strip_raw: bool) -> Value {
    let events: Vec<Value> = decoded
        .events
        .iter()
        .map(|event| {
            let mut value = event.clone().into_value();
            if strip_raw {
                if let Some(obj) = value.as_object_mut() {
                    if let Some(Value::Object(ev)) = obj.get_mut("event") {
                        ev.remove("original");
                    }
                    if let Some(Value::Object(k8s)) = obj.get_mut("k8s") {
                        k8s.remove("audit");
                    }
                    if obj
                        .get("k8s")
                        .is_some_and(|k| k.as_object().is_some_and(|m| m.is_empty()))
                    {
                        obj.remove("k8s");
                    }
                }
            }
            value
        })
        .collect();
    json!({ "events": events, "errors": decoded.errors })
}

/// Compares `actual` with `tests/golden/<relative>`; `UPDATE_GOLDEN=1` rewrites the file.
pub fn assert_golden(relative: &str, actual: &Value) {
    let path = golden_path(relative);
    let rendered = serde_json::to_string_pretty(actual).expect("serializable") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create golden dir");
        std::fs::write(&path, rendered).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "read {}: {error} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    let expected: Value = serde_json::from_str(&expected).expect("golden file is JSON");
    assert_eq!(
        actual,
        &expected,
        "output differs from {} (UPDATE_GOLDEN=1 rewrites it after review)",
        path.display()
    );
}

/// Non-blank lines of a body, as the NDJSON decoder counts them.
pub fn non_blank_lines(body: &[u8]) -> usize {
    body.split(|&b| b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .count()
}
