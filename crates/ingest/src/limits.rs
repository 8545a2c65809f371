//! Limits every input applies, and the capped decompression helpers every input must use.
//!
//! Decoders never trust a length they read from the wire: a frame header, a Content-Length
//! or a compressed stream can claim or expand to anything. [`decompress`] stops reading one
//! byte past [`Limits::max_decompressed_bytes`] (a zip bomb costs at most that much memory)
//! and the framers reject lengths above [`Limits::max_frame_bytes`] before allocating.
//!
//! Memory is accounted *before* decoding: [`DecodeBudget`] is a server-wide budget of the bytes
//! being read, inflated and decoded at once; a request reserves what it holds (its body, then its
//! inflated body, then [`decode_cost`] of the events it will become) and cannot start decoding
//! until the reservation is granted. The counters ([`count_lines`], [`count_json_values`],
//! [`count_audit_items`], [`count_otlp_records`], [`count_open_braces`]) give the number of
//! events a body holds (or a bound on it) with one linear, allocation-free pass, so a request
//! over [`Limits::max_events`] is refused before any event is built.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::IngestError;

/// Bounds applied by every decoder and listener. All sizes are in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per-line and per-field bounds shared with `crowsnest-normalize` (line/item length,
    /// JSON nesting depth, longest kept string).
    pub decode: crowsnest_normalize::Limits,
    /// Longest frame read from a stream connection: one Fluent forward message (and one
    /// syslog message for a listener started with these limits directly). Default 16 MiB.
    pub max_frame_bytes: usize,
    /// Longest syslog message on a stream, which [`crate::listen::SyslogInput`] uses as its
    /// frame limit. Default 256 KiB.
    pub max_syslog_frame_bytes: usize,
    /// Most bytes a compressed body or chunk may expand to. Default 64 MiB.
    pub max_decompressed_bytes: usize,
    /// Most events taken from one frame or request; the rest are reported as errors.
    /// Default 100 000.
    pub max_events: usize,
    /// Most concurrent connections per stream listener. Default 512.
    pub max_connections: usize,
    /// Most concurrent connections per stream listener from one source IP address. Default 64.
    pub max_connections_per_ip: usize,
    /// A stream connection that sends nothing for this long is closed; it also bounds a TLS
    /// handshake. Default 300 s.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            decode: crowsnest_normalize::Limits::default(),
            max_frame_bytes: 16 * 1024 * 1024,
            max_syslog_frame_bytes: 256 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_events: 100_000,
            max_connections: 512,
            max_connections_per_ip: 64,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Estimated peak memory, in bytes, of decoding `bytes` of (inflated) input into `events`
/// events, `audit_events` of them Kubernetes audit events, stamping and serializing them for
/// the WAL: what a request reserves from the [`DecodeBudget`] before it is decoded.
///
/// Measured on the decoders with a counting allocator (decode, stamp, serialize; see the
/// README's memory budget): an event costs about 1.7 KB whatever its size (a 3-byte `{}` line
/// included), each input byte 5 to 7.2 bytes more (parsed values, `event.original`, the
/// serialized copy), and a Kubernetes audit event (native, EKS, AKS or GKE) about 9 KB more
/// for its mapped fields: 12.8 KB for a 365-byte audit event. The constants round these up.
pub fn decode_cost(bytes: usize, events: usize, audit_events: usize) -> usize {
    bytes
        .saturating_mul(BYTE_COST)
        .saturating_add(events.saturating_mul(EVENT_COST))
        .saturating_add(audit_events.saturating_mul(AUDIT_EVENT_COST))
}

/// Memory per decoded event on top of its bytes; see [`decode_cost`].
pub const EVENT_COST: usize = 2 * 1024;
/// Memory per input byte while it is decoded; see [`decode_cost`].
pub const BYTE_COST: usize = 8;
/// Memory per Kubernetes audit event on top of [`EVENT_COST`]; see [`decode_cost`].
pub const AUDIT_EVENT_COST: usize = 10 * 1024;

/// Marks of Kubernetes audit events in a body (`audit.k8s.io`, the API group every native,
/// EKS and AKS audit event names, and `AuditLog`, GKE's Cloud Audit Log type), counted in one
/// pass: a bound on the audit events it holds, for [`decode_cost`].
pub fn count_audit_markers(bytes: &[u8]) -> usize {
    memchr::memmem::find_iter(bytes, b"audit.k8s.io").count()
        + memchr::memmem::find_iter(bytes, b"AuditLog").count()
}

/// Why a [`DecodeBudget`] reservation was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The request needs more than the whole budget: it can never be decoded (413).
    #[error(
        "decoding needs about {needed} bytes, more than the whole decode budget of {budget} bytes"
    )]
    TooLarge {
        /// Bytes the reservation would hold.
        needed: usize,
        /// The budget.
        budget: usize,
    },
    /// Other requests hold the budget now; retry later (503).
    #[error("the decode budget of {budget} bytes is in use ({needed} bytes needed)")]
    Busy {
        /// Bytes the reservation would hold.
        needed: usize,
        /// The budget.
        budget: usize,
    },
}

/// Granularity of the budget: permits are KiB, so a budget of terabytes fits a `u32`.
const UNIT: usize = 1024;

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// A server-wide budget of memory for requests being read, inflated and decoded at once (a
/// semaphore counted in bytes). Cloning shares the budget.
#[derive(Debug, Clone)]
pub struct DecodeBudget {
    semaphore: Arc<Semaphore>,
    total: usize,
}

impl DecodeBudget {
    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: usize) -> Self {
        let total = units(bytes.max(1 << 20))
            .min(Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize);
        Self {
            semaphore: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> usize {
        self.total.saturating_mul(UNIT)
    }

    /// Bytes not reserved now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits().saturating_mul(UNIT)
    }

    /// An empty reservation, to grow.
    pub fn empty(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
            units: 0,
        }
    }

    /// Reserves `bytes` now, or fails.
    ///
    /// # Errors
    ///
    /// [`BudgetError::TooLarge`] past the whole budget, [`BudgetError::Busy`] when it is in use.
    pub fn try_reserve(&self, bytes: usize) -> Result<Reservation, BudgetError> {
        let mut reservation = self.empty();
        reservation.try_grow_to(bytes)?;
        Ok(reservation)
    }
}

/// Bytes held in a [`DecodeBudget`]; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: DecodeBudget,
    permit: Option<OwnedSemaphorePermit>,
    units: usize,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.units.saturating_mul(UNIT)
    }

    fn check(&self, bytes: usize) -> Result<Option<u32>, BudgetError> {
        let wanted = units(bytes);
        if wanted > self.budget.total {
            return Err(BudgetError::TooLarge {
                needed: bytes,
                budget: self.budget.total(),
            });
        }
        if wanted <= self.units {
            return Ok(None);
        }
        // `wanted <= total <= u32::MAX`.
        Ok(Some(u32::try_from(wanted - self.units).unwrap_or(u32::MAX)))
    }

    fn add(&mut self, permit: OwnedSemaphorePermit) {
        self.units += permit.num_permits();
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
    }

    /// Grows the reservation to hold `bytes` in all (nothing when it already does), now or
    /// never.
    ///
    /// # Errors
    ///
    /// [`BudgetError::TooLarge`] past the whole budget, [`BudgetError::Busy`] when it is in use.
    pub fn try_grow_to(&mut self, bytes: usize) -> Result<(), BudgetError> {
        let Some(more) = self.check(bytes)? else {
            return Ok(());
        };
        let permit = self
            .budget
            .semaphore
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| BudgetError::Busy {
                needed: bytes,
                budget: self.budget.total(),
            })?;
        self.add(permit);
        Ok(())
    }

    /// Grows the reservation to hold `bytes` in all, waiting at most `wait` for room.
    ///
    /// # Errors
    ///
    /// [`BudgetError::TooLarge`] past the whole budget, [`BudgetError::Busy`] when no room
    /// came within `wait`.
    pub async fn grow_to(&mut self, bytes: usize, wait: Duration) -> Result<(), BudgetError> {
        let Some(more) = self.check(bytes)? else {
            return Ok(());
        };
        let busy = BudgetError::Busy {
            needed: bytes,
            budget: self.budget.total(),
        };
        let acquire = self.budget.semaphore.clone().acquire_many_owned(more);
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => {
                self.add(permit);
                Ok(())
            }
            _ => Err(busy),
        }
    }

    /// Gives back what is held past `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = units(bytes);
        if keep >= self.units {
            return;
        }
        if keep == 0 {
            self.permit = None;
        } else if let Some(held) = &mut self.permit {
            // Splitting off the surplus and dropping it returns it to the budget.
            drop(held.split(self.units - keep));
        }
        self.units = keep;
    }
}

/// Non-blank lines in `bytes` (one linear pass): the event count of NDJSON and other
/// line-per-event bodies.
pub fn count_lines(bytes: &[u8]) -> usize {
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .count()
}

/// Top-level JSON values in `bytes` (concatenated or newline-separated, as Splunk HEC sends
/// them), counted without building them; a value that does not parse counts as one, and
/// counting stops there.
pub fn count_json_values(bytes: &[u8]) -> usize {
    let mut count = 0;
    for value in serde_json::Deserializer::from_slice(bytes).into_iter::<serde::de::IgnoredAny>() {
        count += 1;
        if value.is_err() {
            break;
        }
    }
    count
}

/// Items of a Kubernetes audit `EventList` (`items`), or 1 for any other body, counted
/// without building them.
pub fn count_audit_items(bytes: &[u8]) -> usize {
    serde_json::from_slice::<ItemCount>(bytes).map_or(1, |count| count.0)
}

/// Opening braces in `bytes`: a bound on the JSON objects (so events) a body can hold.
pub fn count_open_braces(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'{').count()
}

/// `LogRecord`s in a protobuf `ExportLogsServiceRequest` (walking the wire format, nothing
/// built); `None` when the bytes are not valid protobuf.
pub fn count_otlp_records(bytes: &[u8]) -> Option<usize> {
    // ExportLogsServiceRequest.resource_logs = 1, ResourceLogs.scope_logs = 2,
    // ScopeLogs.log_records = 2.
    let mut count = 0;
    for resource in protobuf_fields(bytes, 1)? {
        for scope in protobuf_fields(resource, 2)? {
            count += protobuf_fields(scope, 2)?.len();
        }
    }
    Some(count)
}

/// The length-delimited values of field `wanted` in one protobuf message.
fn protobuf_fields(mut bytes: &[u8], wanted: u64) -> Option<Vec<&[u8]>> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let skip = match key & 7 {
            0 => {
                varint(&mut bytes)?;
                0
            }
            1 => 8,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                let value = bytes.get(..len)?;
                if key >> 3 == wanted {
                    found.push(value);
                }
                len
            }
            5 => 4,
            _ => return None,
        };
        bytes = bytes.get(skip..)?;
    }
    Some(found)
}

/// The `items` count of an `EventList`: visits the top-level object and counts the elements
/// of `items` as `IgnoredAny`.
struct ItemCount(usize);

impl<'de> serde::Deserialize<'de> for ItemCount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Top;
        impl<'de> serde::de::Visitor<'de> for Top {
            type Value = ItemCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ItemCount, A::Error> {
                let mut count = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "items" && count.is_none() {
                        count = Some(map.next_value::<SeqCount>()?.0);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(ItemCount(count.unwrap_or(1)))
            }
        }
        deserializer.deserialize_map(Top)
    }
}

/// Elements of a JSON array (1 for anything else).
struct SeqCount(usize);

impl<'de> serde::Deserialize<'de> for SeqCount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seq;
        impl<'de> serde::de::Visitor<'de> for Seq {
            type Value = SeqCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SeqCount, A::Error> {
                let mut count = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    count += 1;
                }
                Ok(SeqCount(count))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<SeqCount, A::Error> {
                <serde::de::IgnoredAny as serde::de::Visitor>::visit_map(serde::de::IgnoredAny, map)
                    .map(|_| SeqCount(1))
            }
            fn visit_bool<E>(self, _: bool) -> Result<SeqCount, E> {
                Ok(SeqCount(1))
            }
            fn visit_i64<E>(self, _: i64) -> Result<SeqCount, E> {
                Ok(SeqCount(1))
            }
            fn visit_u64<E>(self, _: u64) -> Result<SeqCount, E> {
                Ok(SeqCount(1))
            }
            fn visit_f64<E>(self, _: f64) -> Result<SeqCount, E> {
                Ok(SeqCount(1))
            }
            fn visit_str<E>(self, _: &str) -> Result<SeqCount, E> {
                Ok(SeqCount(1))
            }
            fn visit_unit<E>(self) -> Result<SeqCount, E> {
                Ok(SeqCount(1))
            }
        }
        deserializer.deserialize_any(Seq)
    }
}

/// A compression scheme used on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// RFC 1952 gzip (several members are read as one stream).
    Gzip,
    /// RFC 1950 zlib (HTTP's `deflate`).
    Zlib,
}

impl Encoding {
    /// Parses an HTTP `Content-Encoding` value: `Ok(None)` for identity.
    ///
    /// # Errors
    ///
    /// [`IngestError::Invalid`] for encodings other than gzip, deflate and identity.
    pub fn from_header(value: Option<&str>) -> Result<Option<Self>, IngestError> {
        let value = value.map(|v| v.trim().to_ascii_lowercase());
        match value.as_deref() {
            None | Some("") | Some("identity") => Ok(None),
            Some("gzip") | Some("x-gzip") => Ok(Some(Self::Gzip)),
            Some("deflate") => Ok(Some(Self::Zlib)),
            Some(other) => Err(IngestError::invalid(
                "content encoding gzip, deflate or identity",
                format!("found `{other}`"),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zlib => "zlib",
        }
    }
}

/// Decompresses `bytes`, reading at most `max` output bytes.
///
/// # Errors
///
/// [`IngestError::TooLarge`] when the output would exceed `max`, [`IngestError::Decompress`]
/// when the stream is corrupt or truncated.
pub fn decompress(bytes: &[u8], encoding: Encoding, max: usize) -> Result<Vec<u8>, IngestError> {
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        Encoding::Zlib => Box::new(flate2::read::ZlibDecoder::new(bytes)),
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| IngestError::Decompress {
            encoding: encoding.name(),
            reason: error.to_string(),
        })?;
    if out.len() > max {
        return Err(IngestError::TooLarge {
            limit: max,
            found: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    // `best`: the smallest bomb, whichever deflate backend the build links (vrl turns on zlib-rs).
    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).expect("write");
        encoder.finish().expect("finish")
    }

    #[test]
    fn decompression_stops_at_the_cap() {
        let bomb = gzip(&vec![b'a'; 1 << 20]);
        assert!(bomb.len() < 10_000);
        let error = decompress(&bomb, Encoding::Gzip, 1000).expect_err("over the cap");
        assert!(matches!(error, IngestError::TooLarge { limit: 1000, .. }));
        let whole = decompress(&bomb, Encoding::Gzip, 1 << 20).expect("fits");
        assert_eq!(whole.len(), 1 << 20);
    }

    #[test]
    fn truncated_streams_are_errors() {
        let data = gzip(b"hello world, hello world");
        let error = decompress(&data[..data.len() / 2], Encoding::Gzip, 1000).expect_err("cut");
        assert!(matches!(error, IngestError::Decompress { .. }), "{error}");
    }

    #[test]
    fn counters_count_without_building() {
        assert_eq!(count_lines(b"{}\n\n  \n{}\r\n{}"), 3);
        assert_eq!(count_lines(b""), 0);
        assert_eq!(
            count_json_values(b"{\"event\":1}{\"event\":2}\n{\"event\":3}"),
            3
        );
        assert_eq!(count_json_values(b"{\"event\":1} {oops"), 2);
        let list = br#"{"kind":"EventList","items":[{"a":{"b":[1,2]}},{},{}],"metadata":{}}"#;
        assert_eq!(count_audit_items(list), 3);
        assert_eq!(count_audit_items(br#"{"kind":"Event","verb":"get"}"#), 1);
        assert_eq!(count_audit_items(b"not json"), 1);
        assert_eq!(count_open_braces(b"{\"a\":{}}"), 2);
        assert_eq!(count_audit_markers(list), 0);
        let audit = br#"{"apiVersion":"audit.k8s.io/v1"}
{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog"}}"#;
        assert_eq!(count_audit_markers(audit), 2);
    }

    #[test]
    fn otlp_records_are_counted_on_the_wire() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use prost::Message;
        let scope = |n: usize| ScopeLogs {
            log_records: vec![LogRecord::default(); n],
            ..ScopeLogs::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![
                ResourceLogs {
                    scope_logs: vec![scope(3), scope(0)],
                    ..ResourceLogs::default()
                },
                ResourceLogs {
                    scope_logs: vec![scope(4)],
                    ..ResourceLogs::default()
                },
            ],
        };
        assert_eq!(count_otlp_records(&request.encode_to_vec()), Some(7));
        assert_eq!(count_otlp_records(&[0x0a, 0x05, 0x01]), None);
    }

    #[tokio::test]
    async fn the_budget_is_shared_grown_and_given_back() {
        let budget = DecodeBudget::new(4 << 20);
        assert_eq!(budget.total(), 4 << 20);
        let mut first = budget.try_reserve(1 << 20).expect("fits");
        first.try_grow_to(3 << 20).expect("grows");
        assert!(matches!(
            budget.try_reserve(2 << 20),
            Err(BudgetError::Busy { .. })
        ));
        assert!(matches!(
            budget.try_reserve(5 << 20),
            Err(BudgetError::TooLarge {
                budget: 4194304,
                ..
            })
        ));
        first.shrink_to(1 << 20);
        assert_eq!(budget.available(), 3 << 20);
        let mut second = budget.empty();
        second
            .grow_to(3 << 20, Duration::from_millis(10))
            .await
            .expect("room after the shrink");
        assert!(second
            .grow_to(4 << 20, Duration::from_millis(10))
            .await
            .is_err());
        drop((first, second));
        assert_eq!(budget.available(), budget.total());
    }

    #[test]
    fn encodings_parse_from_headers() {
        assert_eq!(Encoding::from_header(None), Ok(None));
        assert_eq!(
            Encoding::from_header(Some("GZIP")),
            Ok(Some(Encoding::Gzip))
        );
        assert_eq!(
            Encoding::from_header(Some("deflate")),
            Ok(Some(Encoding::Zlib))
        );
        assert!(Encoding::from_header(Some("br")).is_err());
    }
}
