//! Small text builders shared by the event builders: timestamps in the formats real programs
//! print, and the random identifiers Kubernetes and container runtimes use.
//!
//! Everything writes into a caller-owned `String` or returns one sized up front, so building
//! an event costs a handful of allocations rather than one per `format!`.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike};
use rand::Rng;
use serde_json::{Map, Value};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A point in time (UTC) split into calendar fields once, then printed in several formats.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

impl Stamp {
    /// Splits microseconds since the Unix epoch. Times outside chrono's range (about
    /// ±262,000 years) print as the epoch instead of panicking.
    pub(super) fn from_micros(micros: i64) -> Self {
        let dt = DateTime::from_timestamp_micros(micros).unwrap_or_default();
        Self {
            year: dt.year(),
            month: dt.month(),
            day: dt.day(),
            hour: dt.hour(),
            minute: dt.minute(),
            second: dt.second(),
            micros: dt.nanosecond() / 1_000 % 1_000_000,
        }
    }

    /// `2024-05-01T10:00:00.123456Z`: RFC 3339 with microseconds, as kube-apiserver and ECS
    /// `@timestamp` use it.
    pub(super) fn rfc3339(&self) -> String {
        // Hot path (every record): digits by hand, `write!` costs several times more.
        let mut out = String::with_capacity(27);
        if (0..=9999).contains(&self.year) {
            push_digits(&mut out, self.year as u32, 4);
        } else {
            let _ = write!(out, "{:04}", self.year);
        }
        out.push('-');
        push_digits(&mut out, self.month, 2);
        out.push('-');
        push_digits(&mut out, self.day, 2);
        out.push('T');
        push_digits(&mut out, self.hour, 2);
        out.push(':');
        push_digits(&mut out, self.minute, 2);
        out.push(':');
        push_digits(&mut out, self.second, 2);
        out.push('.');
        push_digits(&mut out, self.micros, 6);
        out.push('Z');
        out
    }

    /// `01/May/2024:10:00:00 +0000`: nginx `$time_local` (in UTC).
    pub(super) fn write_nginx(&self, out: &mut String) {
        let month = MONTHS[(self.month as usize + 11) % 12];
        let _ = write!(
            out,
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
            self.day, month, self.year, self.hour, self.minute, self.second
        );
    }

    /// `2024-05-01 10:00:00.123`: Spring Boot / logback and PostgreSQL `%m`.
    pub(super) fn write_millis(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.micros / 1_000
        );
    }

    /// `01 May 2024 10:00:00.123`: the Redis server log.
    pub(super) fn write_redis(&self, out: &mut String) {
        let month = MONTHS[(self.month as usize + 11) % 12];
        let _ = write!(
            out,
            "{:02} {} {:04} {:02}:{:02}:{:02}.{:03}",
            self.day,
            month,
            self.year,
            self.hour,
            self.minute,
            self.second,
            self.micros / 1_000
        );
    }

    /// `0501 10:00:00.123456`: the date part of a klog header (after its level letter).
    pub(super) fn write_klog(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:02}{:02} {:02}:{:02}:{:02}.{:06}",
            self.month, self.day, self.hour, self.minute, self.second, self.micros
        );
    }
}

/// Appends the last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width.saturating_sub(1));
    while divisor > 0 {
        out.push(char::from(b'0' + (value / divisor % 10) as u8));
        divisor /= 10;
    }
}

/// A JSON object from a fixed list of entries, allocated at its final size (building it
/// with `json!` grows the map several times, which shows in the generator's profile).
pub(super) fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let mut map = Map::with_capacity(N);
    for (key, value) in entries {
        map.insert(key.to_string(), value);
    }
    Value::Object(map)
}

/// Appends `n` random lowercase hex digits.
pub(super) fn push_hex<R: Rng>(rng: &mut R, out: &mut String, n: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = 0u64;
    let mut left = 0;
    for _ in 0..n {
        if left == 0 {
            bits = rng.next_u64();
            left = 16;
        }
        out.push(char::from(HEX[(bits & 0xf) as usize]));
        bits >>= 4;
        left -= 1;
    }
}

/// `n` random lowercase hex digits (container ids are 64, trace ids 32).
pub(super) fn hex<R: Rng>(rng: &mut R, n: usize) -> String {
    let mut out = String::with_capacity(n);
    push_hex(rng, &mut out, n);
    out
}

/// A random version-4 UUID in its canonical form, as Kubernetes uses for `auditID` and `uid`.
pub(super) fn uuid<R: Rng>(rng: &mut R) -> String {
    let mut out = String::with_capacity(36);
    push_hex(rng, &mut out, 8);
    out.push('-');
    push_hex(rng, &mut out, 4);
    out.push_str("-4");
    push_hex(rng, &mut out, 3);
    out.push('-');
    out.push(char::from(b"89ab"[rng.gen_range(0..4)]));
    push_hex(rng, &mut out, 3);
    out.push('-');
    push_hex(rng, &mut out, 12);
    out
}

/// `n` characters from the alphabet Kubernetes uses for generated name suffixes and
/// pod-template hashes (`k8s.io/apimachinery/pkg/util/rand`: no vowels, no confusable digits).
pub(super) fn k8s_suffix<R: Rng>(rng: &mut R, n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::with_capacity(n);
    for _ in 0..n {
        out.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Xoshiro256pp;

    #[test]
    fn stamp_formats_agree_with_chrono() {
        let micros = 1_714_557_600_123_456; // 2024-05-01T10:00:00.123456Z
        let stamp = Stamp::from_micros(micros);
        let expected = DateTime::from_timestamp_micros(micros)
            .expect("in range")
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        assert_eq!(stamp.rfc3339(), expected);
        let early = Stamp::from_micros(-62_135_596_800_000_000 + 1); // 0001-01-01T00:00:00.000001Z
        assert_eq!(early.rfc3339(), "0001-01-01T00:00:00.000001Z");
        let mut nginx = String::new();
        stamp.write_nginx(&mut nginx);
        assert_eq!(nginx, "01/May/2024:10:00:00 +0000");
        let mut millis = String::new();
        stamp.write_millis(&mut millis);
        assert_eq!(millis, "2024-05-01 10:00:00.123");
        let mut klog = String::new();
        stamp.write_klog(&mut klog);
        assert_eq!(klog, "0501 10:00:00.123456");
        let mut redis = String::new();
        stamp.write_redis(&mut redis);
        assert_eq!(redis, "01 May 2024 10:00:00.123");
    }

    #[test]
    fn out_of_range_time_does_not_panic() {
        assert_eq!(
            Stamp::from_micros(i64::MAX).rfc3339(),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn uuid_has_canonical_v4_shape() {
        let mut rng = Xoshiro256pp::seed_from_u64(3);
        for _ in 0..100 {
            let id = uuid(&mut rng);
            let groups: Vec<&str> = id.split('-').collect();
            let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
            assert!(groups[2].starts_with('4'), "{id}");
            assert!(
                matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
            assert!(
                id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()),
                "{id}"
            );
        }
    }

    #[test]
    fn hex_and_suffix_have_requested_lengths() {
        let mut rng = Xoshiro256pp::seed_from_u64(4);
        assert_eq!(hex(&mut rng, 64).len(), 64);
        let suffix = k8s_suffix(&mut rng, 5);
        assert_eq!(suffix.len(), 5);
        assert!(
            !suffix.contains(['a', 'e', 'i', 'o', 'u', '0', '1', '3']),
            "{suffix}"
        );
    }
}
