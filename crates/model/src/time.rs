//! Timestamp parsing for the formats events arrive in.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Formats a timestamp the way events carry it: RFC 3339, UTC, microseconds, `Z`.
pub fn format_timestamp(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Why a value is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Neither a known text format nor an epoch.
    #[error("`{0}` is not a timestamp: expected RFC 3339 (2024-05-01T12:00:00Z), RFC 2822, `YYYY-MM-DD HH:MM:SS` or a Unix epoch")]
    Unrecognised(String),
    /// A JSON value that is neither a string nor a number.
    #[error("a timestamp is a string or a number, not {0}")]
    WrongType(&'static str),
    /// A negative epoch (or one that is not finite).
    #[error(
        "epoch {0} is before 1970 (or not a finite number); epochs count from 1970-01-01T00:00:00Z"
    )]
    EpochBefore1970(String),
    /// An epoch too large for every unit.
    #[error("epoch {0} is after the year 9999 even read as nanoseconds (epochs of {EPOCH_NANOS_END} or more are refused)")]
    EpochTooLarge(String),
}

/// The unit an epoch number is read in, by its magnitude (see [`epoch_unit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
    /// Nanoseconds.
    Nanos,
}

/// First second of the year 10000 (10000-01-01T00:00:00Z) as a Unix epoch in seconds: the
/// numbers below it are read as seconds.
pub const EPOCH_SECONDS_END: u64 = 253_402_300_800;
/// Numbers from [`EPOCH_SECONDS_END`] up to this one are milliseconds.
pub const EPOCH_MILLIS_END: u64 = EPOCH_SECONDS_END * 1_000;
/// Numbers up to this one are microseconds.
pub const EPOCH_MICROS_END: u64 = EPOCH_SECONDS_END * 1_000_000;
/// Numbers up to this one are nanoseconds; larger ones are refused.
pub const EPOCH_NANOS_END: u128 = EPOCH_SECONDS_END as u128 * 1_000_000_000;

/// The unit of an epoch number, by magnitude: each unit takes the numbers that its own times
/// up to the end of the year 9999 need, the next unit the larger ones.
///
/// | number | unit | reads correctly |
/// | --- | --- | --- |
/// | below 253 402 300 800 ([`EPOCH_SECONDS_END`]) | seconds | 1970-01-01 to 9999-12-31 |
/// | below 253 402 300 800 000 | milliseconds | 1978-01-11T21:31:40.800Z to 9999-12-31 |
/// | below 253 402 300 800 000 000 | microseconds | 1978-01-11T21:31:40.8Z to 9999-12-31 |
/// | below 253 402 300 800 000 000 000 | nanoseconds | 1978-01-11T21:31:40.8Z to 9999-12-31 |
/// | larger | refused ([`TimestampError::EpochTooLarge`]) | |
///
/// So every time from 1978-01-12 to the end of 9999 reads correctly in any of the four units;
/// a millisecond (micro-, nanosecond) epoch before 1978-01-11T21:31:40.8Z reads as seconds
/// (the ranges must meet somewhere, and such times predate container logs). A "seconds" value
/// of the year 10000 or later (`253402300800`) cannot be told from milliseconds of 1978 and
/// reads as those: times after 9999 are not representable in RFC 3339 anyway.
pub fn epoch_unit(magnitude: u128) -> Option<EpochUnit> {
    if magnitude < u128::from(EPOCH_SECONDS_END) {
        Some(EpochUnit::Seconds)
    } else if magnitude < u128::from(EPOCH_MILLIS_END) {
        Some(EpochUnit::Millis)
    } else if magnitude < u128::from(EPOCH_MICROS_END) {
        Some(EpochUnit::Micros)
    } else if magnitude < EPOCH_NANOS_END {
        Some(EpochUnit::Nanos)
    } else {
        None
    }
}

/// Parses a timestamp in one of the common formats: RFC 3339 / ISO 8601 (with or without zone,
/// `T` or space), RFC 2822, `YYYY-MM-DD HH:MM:SS[.fff]` (taken as UTC), or a Unix epoch in
/// seconds, milliseconds, microseconds or nanoseconds (integer or fractional, as string or
/// number; the unit follows from the magnitude, see [`epoch_unit`]). `None` when it is none of
/// them; [`parse_timestamp_checked`] says why.
pub fn parse_timestamp(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    parse_timestamp_checked(value).ok()
}

/// Like [`parse_timestamp`], with the reason a value is refused.
pub fn parse_timestamp_checked(value: &serde_json::Value) -> Result<DateTime<Utc>, TimestampError> {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                from_epoch_int(u128::from(u), &n.to_string())
            } else if n.as_i64().is_some() {
                Err(TimestampError::EpochBefore1970(n.to_string()))
            } else {
                from_epoch_float(n.as_f64().unwrap_or(f64::NAN), &n.to_string())
            }
        }
        serde_json::Value::String(s) => parse_timestamp_str(s),
        serde_json::Value::Null => Err(TimestampError::WrongType("null")),
        serde_json::Value::Bool(_) => Err(TimestampError::WrongType("a boolean")),
        serde_json::Value::Array(_) => Err(TimestampError::WrongType("an array")),
        serde_json::Value::Object(_) => Err(TimestampError::WrongType("an object")),
    }
}

fn parse_timestamp_str(text: &str) -> Result<DateTime<Utc>, TimestampError> {
    let text = text.trim();
    let unrecognised = || TimestampError::Unrecognised(text.chars().take(64).collect());
    if text.is_empty() || text.len() > 64 {
        return Err(unrecognised());
    }
    if let Ok(ts) = DateTime::parse_from_rfc3339(text) {
        return Ok(ts.with_timezone(&Utc));
    }
    if let Ok(ts) = DateTime::parse_from_rfc2822(text) {
        return Ok(ts.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(ts) = DateTime::parse_from_str(text, fmt) {
            return Ok(ts.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, fmt) {
            return Ok(Utc.from_utc_datetime(&naive));
        }
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !whole.is_empty() && digits(whole) && digits(fraction) {
        // At most 64 digits; more than u128 holds is too large for every unit anyway.
        let Ok(n) = whole.parse::<u128>() else {
            return Err(TimestampError::EpochTooLarge(text.to_string()));
        };
        return from_epoch_decimal(n, fraction, text);
    }
    Err(unrecognised())
}

/// A decimal epoch written out (`1709296496.789`), exactly: the fraction's digits beyond
/// the microsecond are dropped.
fn from_epoch_decimal(
    whole: u128,
    fraction: &str,
    text: &str,
) -> Result<DateTime<Utc>, TimestampError> {
    let too_large = || TimestampError::EpochTooLarge(text.to_string());
    let unit = epoch_unit(whole).ok_or_else(too_large)?;
    // Microseconds per unit, and the fraction's digits that are whole microseconds.
    let (per_unit, fraction_digits) = match unit {
        EpochUnit::Seconds => (1_000_000, 6),
        EpochUnit::Millis => (1_000, 3),
        EpochUnit::Micros | EpochUnit::Nanos => (1, 0),
    };
    let mut micros = if unit == EpochUnit::Nanos {
        whole / 1_000
    } else {
        whole * per_unit
    };
    let mut scale = per_unit;
    for digit in fraction.bytes().take(fraction_digits) {
        scale /= 10;
        micros += u128::from(digit - b'0') * scale;
    }
    i64::try_from(micros)
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(too_large)
}

/// An integer epoch, exactly (nanoseconds are truncated to microseconds).
fn from_epoch_int(n: u128, text: &str) -> Result<DateTime<Utc>, TimestampError> {
    from_epoch_decimal(n, "", text)
}

/// A fractional epoch, to the nearest microsecond.
fn from_epoch_float(n: f64, text: &str) -> Result<DateTime<Utc>, TimestampError> {
    if !n.is_finite() || n < 0.0 {
        return Err(TimestampError::EpochBefore1970(text.to_string()));
    }
    let too_large = || TimestampError::EpochTooLarge(text.to_string());
    // The unit of the integer part (an f64 this large has no fraction left anyway).
    let whole = if n < 1e39 {
        n.trunc() as u128
    } else {
        u128::MAX
    };
    let micros = match epoch_unit(whole).ok_or_else(too_large)? {
        EpochUnit::Seconds => n * 1e6,
        EpochUnit::Millis => n * 1e3,
        EpochUnit::Micros => n,
        EpochUnit::Nanos => n / 1e3,
    };
    DateTime::from_timestamp_micros(micros.round() as i64).ok_or_else(too_large)
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
    fn the_last_second_of_9999_reads_as_seconds() {
        let last = parse_timestamp(&json!(253_402_300_799u64)).map(format_timestamp);
        assert_eq!(last.as_deref(), Some("9999-12-31T23:59:59.000000Z"));
        // Years past 5138 were read as milliseconds of the 1970s before.
        let y6000 = parse_timestamp(&json!(127_174_492_800u64)).map(format_timestamp);
        assert_eq!(y6000.as_deref(), Some("6000-01-01T00:00:00.000000Z"));
        let as_text = parse_timestamp(&json!("253402300799")).map(format_timestamp);
        assert_eq!(as_text.as_deref(), Some("9999-12-31T23:59:59.000000Z"));
    }

    #[test]
    fn each_unit_begins_where_the_previous_one_ends() {
        let cases = [
            (json!(0), "1970-01-01T00:00:00.000000Z"),
            (json!(253_402_300_800u64), "1978-01-11T21:31:40.800000Z"),
            (json!(253_402_300_799_999u64), "9999-12-31T23:59:59.999000Z"),
            (json!(253_402_300_800_000u64), "1978-01-11T21:31:40.800000Z"),
            (
                json!(253_402_300_799_999_999u64),
                "9999-12-31T23:59:59.999999Z",
            ),
            (
                json!(253_402_300_800_000_000u64),
                "1978-01-11T21:31:40.800000Z",
            ),
            (
                json!("253402300799999999999"),
                "9999-12-31T23:59:59.999999Z",
            ),
        ];
        for (input, expected) in cases {
            let parsed = parse_timestamp(&input).map(format_timestamp);
            assert_eq!(parsed.as_deref(), Some(expected), "input {input}");
        }
    }

    #[test]
    fn out_of_range_epochs_are_errors_with_a_reason() {
        for input in [
            json!("253402300800000000000"),
            json!(1e30),
            json!("99999999999999999999999999999999999999999999"),
        ] {
            let error = parse_timestamp_checked(&input).expect_err("too large");
            assert!(
                matches!(error, TimestampError::EpochTooLarge(_)),
                "{input}: {error}"
            );
            assert!(error.to_string().contains("after the year 9999"), "{error}");
        }
        for input in [json!(-5), json!(-1.5)] {
            let error = parse_timestamp_checked(&input).expect_err("negative");
            assert!(
                error.to_string().contains("before 1970"),
                "{input}: {error}"
            );
        }
        let error = parse_timestamp_checked(&json!(true)).expect_err("bool");
        assert!(error.to_string().contains("not a boolean"), "{error}");
        let error = parse_timestamp_checked(&json!("yesterday")).expect_err("text");
        assert!(
            error.to_string().contains("`yesterday` is not a timestamp"),
            "{error}"
        );
    }

    /// Microseconds of 1978-01-11T21:31:40.8Z, where the four units' ranges all begin.
    const SHARED_START_MICROS: i64 = 253_402_300_800_000;
    /// Microseconds of 10000-01-01T00:00:00Z.
    const END_MICROS: i64 = 253_402_300_800_000_000;

    proptest::proptest! {
        #[test]
        fn seconds_round_trip_from_1970_to_9999(secs in 0i64..253_402_300_800) {
            let ts = DateTime::from_timestamp(secs, 0).expect("in range");
            proptest::prop_assert_eq!(parse_timestamp(&json!(secs)), Some(ts));
            proptest::prop_assert_eq!(parse_timestamp(&json!(secs.to_string())), Some(ts));
        }

        #[test]
        fn millis_round_trip_from_1978_to_9999(
            millis in SHARED_START_MICROS / 1_000..END_MICROS / 1_000,
        ) {
            let ts = DateTime::from_timestamp_millis(millis).expect("in range");
            proptest::prop_assert_eq!(parse_timestamp(&json!(millis)), Some(ts));
            proptest::prop_assert_eq!(parse_timestamp(&json!(millis.to_string())), Some(ts));
        }

        #[test]
        fn micros_round_trip_from_1978_to_9999(micros in SHARED_START_MICROS..END_MICROS) {
            let ts = DateTime::from_timestamp_micros(micros).expect("in range");
            proptest::prop_assert_eq!(parse_timestamp(&json!(micros)), Some(ts));
        }

        #[test]
        fn nanos_round_trip_to_the_microsecond_from_1978_to_9999(
            micros in SHARED_START_MICROS..END_MICROS,
            sub in 0u128..1_000,
        ) {
            let ts = DateTime::from_timestamp_micros(micros).expect("in range");
            let nanos = micros as u128 * 1_000 + sub;
            proptest::prop_assert_eq!(parse_timestamp(&json!(nanos.to_string())), Some(ts));
            if let Ok(n) = u64::try_from(nanos) {
                proptest::prop_assert_eq!(parse_timestamp(&json!(n)), Some(ts));
            }
        }

        #[test]
        fn written_fractions_of_seconds_and_millis_are_exact(micros in 0i64..END_MICROS) {
            let ts = DateTime::from_timestamp_micros(micros).expect("in range");
            let secs = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
            proptest::prop_assert_eq!(parse_timestamp(&json!(secs)), Some(ts));
            if micros >= SHARED_START_MICROS {
                let millis = format!("{}.{:03}", micros / 1_000, micros % 1_000);
                proptest::prop_assert_eq!(parse_timestamp(&json!(millis)), Some(ts));
            }
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
