//! Timestamp parsing for the formats events arrive in.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Formats a timestamp the way events carry it: RFC 3339, UTC, microseconds, `Z`.
pub fn format_timestamp(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Parses a timestamp in one of the common formats: RFC 3339 / ISO 8601 (with or without zone,
/// `T` or space), RFC 2822, `YYYY-MM-DD HH:MM:SS[.fff]` (taken as UTC), or a Unix epoch in
/// seconds, milliseconds, microseconds or nanoseconds (integer or fractional, as string or
/// number).
pub fn parse_timestamp(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    match value {
        serde_json::Value::Number(n) => n.as_f64().and_then(from_epoch),
        serde_json::Value::String(s) => parse_timestamp_str(s),
        _ => None,
    }
}

fn parse_timestamp_str(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    if let Ok(ts) = DateTime::parse_from_rfc3339(text) {
        return Some(ts.with_timezone(&Utc));
    }
    if let Ok(ts) = DateTime::parse_from_rfc2822(text) {
        return Some(ts.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(ts) = DateTime::parse_from_str(text, fmt) {
            return Some(ts.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(Utc.from_utc_datetime(&naive));
        }
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return text.parse::<f64>().ok().and_then(from_epoch);
    }
    None
}

/// Interprets an epoch number by magnitude: seconds, milliseconds, microseconds, nanoseconds.
fn from_epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let micros = if n < 1e11 {
        n * 1e6
    } else if n < 1e14 {
        n * 1e3
    } else if n < 1e17 {
        n
    } else {
        n / 1e3
    };
    DateTime::from_timestamp_micros(micros as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_common_formats_to_the_same_instant() {
        let expected = "2024-03-01T12:34:56.789000Z";
        for input in [
            json!("2024-03-01T12:34:56.789Z"),
            json!("2024-03-01T13:34:56.789+01:00"),
            json!("2024-03-01 12:34:56.789"),
            json!("2024-03-01T12:34:56.789"),
            json!(1709296496.789),
            json!(1709296496789u64),
            json!("1709296496789"),
            json!(1709296496789000u64),
            json!(1709296496789000000u64),
        ] {
            let parsed = parse_timestamp(&input).map(format_timestamp);
            assert_eq!(parsed.as_deref(), Some(expected), "input {input}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for input in [
            json!("yesterday"),
            json!(""),
            json!(true),
            json!(-5),
            json!("12:00"),
        ] {
            assert_eq!(parse_timestamp(&input), None, "input {input}");
        }
    }
}
