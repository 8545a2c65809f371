//! The one duration grammar of crowsnest: `crowsnest search --since`, the alerts API's
//! `since=` and the query language's `timechart span=` all read durations with
//! [`parse_duration`].
//!
//! A duration is one or more *number unit* pairs, optionally separated by spaces, added up
//! (the grammar of the `humantime` crate):
//!
//! | unit | spellings |
//! | --- | --- |
//! | second | `s`, `sec`, `secs`, `second`, `seconds` |
//! | minute | `m`, `min`, `mins`, `minute`, `minutes` |
//! | hour | `h`, `hr`, `hrs`, `hour`, `hours` |
//! | day | `d`, `day`, `days` |
//! | week | `w`, `wk`, `wks`, `week`, `weeks` |
//! | month (30.44 days) | `month`, `months` (not `M`, which is refused as ambiguous) |
//! | year (365.25 days) | `y`, `yr`, `yrs`, `year`, `years` |
//! | milli-, micro-, nanosecond | `ms`, `us`, `ns` (and `msec`, `usec`, `nsec`, ...) |
//!
//! Examples: `30s`, `15m`, `6h`, `7d`, `2w`, `1h30m`, `1h 30m`, `1.5h`. Units are lowercase
//! (`5H` is refused); a number needs a unit (`90` is refused, `90s` is meant), except a lone
//! `0`. A duration is at most [`MAX_DURATION`] (100 years).
//! Callers may narrow it further: a `timechart` span is whole seconds and longer than zero.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest duration accepted: 100 years of 365.25 days.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not in the grammar.
    #[error("`{text}` is not a duration ({reason}); write a number and a unit, like 30s, 15m, 6h, 7d or 1h30m")]
    Invalid {
        /// The text (at most 64 characters of it).
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Longer than [`MAX_DURATION`].
    #[error("`{text}` is longer than 100 years")]
    TooLong {
        /// The text (at most 64 characters of it).
        text: String,
    },
}

/// Parses a duration in the grammar of this module (surrounding whitespace is ignored).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let shown = || trimmed.chars().take(64).collect::<String>();
    if trimmed.is_empty() {
        return Err(DurationError::Invalid {
            text: String::new(),
            reason: "it is empty".into(),
        });
    }
    // `M` is humantime's month, yet reads as a minute to many (and was one in `timechart`
    // spans): refused, so a query never silently means the other one.
    if trimmed
        .split(|c: char| !c.is_alphabetic())
        .any(|unit| unit == "M")
    {
        return Err(DurationError::Invalid {
            text: shown(),
            reason: "`M` is ambiguous: write `m` or `min` for minutes, `month` for months".into(),
        });
    }
    match humantime::parse_duration(trimmed) {
        Ok(duration) if duration > MAX_DURATION => Err(DurationError::TooLong { text: shown() }),
        Ok(duration) => Ok(duration),
        Err(humantime::DurationError::NumberOverflow) => {
            Err(DurationError::TooLong { text: shown() })
        }
        Err(error) => Err(DurationError::Invalid {
            text: shown(),
            reason: error.to_string(),
        }),
    }
}

/// The instant `duration` before `now` (`since=` bounds); `None` when it would fall outside
/// the dates chrono represents, which no duration of this grammar reaches from today.
pub fn before(now: DateTime<Utc>, duration: Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Result<u64, DurationError> {
        parse_duration(text).map(|d| d.as_secs())
    }

    #[test]
    fn the_common_spellings_mean_what_they_say() {
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("15m"), Ok(900));
        assert_eq!(secs("6h"), Ok(21_600));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("2w"), Ok(1_209_600));
        assert_eq!(secs("1h30m"), Ok(5_400));
        assert_eq!(secs(" 1h 30m "), Ok(5_400));
        assert_eq!(secs("1.5h"), Ok(5_400));
        assert_eq!(secs("90minutes"), Ok(5_400));
        assert_eq!(secs("0"), Ok(0));
        assert_eq!(secs("1y"), Ok(31_557_600));
        assert_eq!(secs("100y"), Ok(MAX_DURATION.as_secs()));
        assert_eq!(
            parse_duration("250ms"),
            Ok(Duration::from_millis(250)),
            "sub-second units are in the grammar; callers may refuse them"
        );
    }

    #[test]
    fn refusals_name_the_text_and_the_reason() {
        let error = parse_duration("90").expect_err("no unit");
        assert_eq!(
            error.to_string(),
            "`90` is not a duration (time unit needed, for example 90sec or 90ms); \
             write a number and a unit, like 30s, 15m, 6h, 7d or 1h30m"
        );
        let error = parse_duration("5q").expect_err("unknown unit");
        assert!(
            error.to_string().contains("unknown time unit \"q\""),
            "{error}"
        );
        let error = parse_duration("1M").expect_err("ambiguous");
        assert!(error.to_string().contains("`M` is ambiguous"), "{error}");
        assert_eq!(secs("1month"), Ok(2_630_016));
        for bad in [
            "",
            "h",
            "-5m",
            "+5m",
            "1h-",
            "\u{80}",
            "1\u{80}",
            "é",
            "5 minutes ago",
            "5H",
            "1h1M",
        ] {
            assert!(
                matches!(parse_duration(bad), Err(DurationError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_duration("").expect_err("empty").to_string(),
            "`` is not a duration (it is empty); write a number and a unit, like 30s, 15m, 6h, 7d or 1h30m"
        );
    }

    #[test]
    fn durations_past_100_years_are_refused_without_overflow() {
        for long in [
            "101y",
            "99999999999d",
            "99999999999999999999999d",
            "18446744073709551615s",
        ] {
            let error = parse_duration(long).expect_err("too long");
            assert!(
                matches!(error, DurationError::TooLong { .. }),
                "{long}: {error}"
            );
            assert!(error.to_string().ends_with("is longer than 100 years"));
        }
    }

    #[test]
    fn every_accepted_duration_has_an_instant_before_now() {
        let now = Utc::now();
        assert_eq!(
            before(now, Duration::from_secs(3_600)),
            Some(now - chrono::Duration::hours(1))
        );
        assert!(before(now, MAX_DURATION).is_some());
        assert_eq!(before(now, Duration::MAX), None);
    }
}
