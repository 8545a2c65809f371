//! `crowsnest bench protocols` end to end, small: two protocols (one HTTP, one stream with
//! acks), 2,000 events each, into real child servers; the JSON report has one complete row
//! per protocol.

use std::process::Command;

use serde_json::Value;

#[test]
fn bench_protocols_reports_each_protocol_in_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_crowsnest"))
        .args([
            "bench",
            "protocols",
            "--events",
            "2000",
            "--protocols",
            "es-bulk,forward",
            "--connections",
            "2",
            "--batch",
            "250",
            "--json",
        ])
        .arg(&json)
        .env("CROWSNEST_LOG", "warn")
        .output()
        .expect("run crowsnest bench protocols");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "status {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("| es-bulk | crowsnest |"), "{stdout}");
    assert!(stdout.contains("| forward | crowsnest |"), "{stdout}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("JSON");
    assert_eq!(report["events"], 2000);
    assert_eq!(report["connections"], 2);
    let rows = report["rows"].as_array().expect("rows");
    let protocols: Vec<&str> = rows.iter().filter_map(|r| r["protocol"].as_str()).collect();
    assert_eq!(protocols, ["es-bulk", "forward"]);
    for row in rows {
        assert!(row.get("error").is_none(), "{row}");
        assert_eq!(row["client"], "crowsnest", "{row}");
        assert_eq!(row["events_sent"], 2000, "{row}");
        assert_eq!(row["events_searchable"], 2000, "{row}");
        assert_eq!(row["delivered"], 1.0, "{row}");
        assert!(row["retries"].is_u64(), "{row}");
        let positive = |key: &str| row[key].as_f64().is_some_and(|v| v > 0.0);
        for key in [
            "seconds",
            "events_per_second",
            "mb_per_second",
            "peak_rss_mb",
            "events_per_cpu_second",
        ] {
            assert!(positive(key), "{key} in {row}");
        }
        // The payload is at least the events' JSON (2,000 events of several hundred bytes).
        assert!(
            row["wire_bytes"].as_u64().is_some_and(|b| b > 2000 * 300),
            "{row}"
        );
        let rate = row["events_per_second"].as_f64().unwrap_or(0.0);
        let seconds = row["seconds"].as_f64().unwrap_or(0.0);
        assert!((rate * seconds - 2000.0).abs() < 1.0, "{row}");
    }
}
