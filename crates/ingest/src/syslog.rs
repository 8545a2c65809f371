//! Syslog over the network: RFC 6587 stream framing, and each message mapped by the registry's
//! syslog parser (`crowsnest_normalize::syslog`, which documents the fields).
//!
//! Invalid UTF-8 is replaced (U+FFFD) rather than rejected: syslog senders pass through
//! whatever bytes the application logged, and losing the event is worse. The sender's address
//! becomes `source.ip`.
//!
//! [`next_frame`] splits a TCP/TLS byte stream: a frame that starts with a digit is
//! octet-counted (`LEN SP MSG`, RFC 6587 §3.4.1), anything else ends at LF (§3.4.2), with a
//! trailing CR or NUL dropped.

use std::net::IpAddr;

use chrono::{FixedOffset, Local};
use crowsnest_model::Event;
use serde_json::Value;
use syslog_loose::IncompleteDate;

pub use crowsnest_normalize::syslog::resolve_year;

use crate::Limits;

/// Decodes one syslog message received at the current time.
///
/// # Errors
///
/// A reason when the message is empty or longer than `limits.decode.max_line_bytes`.
pub fn decode_message(
    bytes: &[u8],
    peer: Option<IpAddr>,
    limits: &Limits,
) -> Result<Event, String> {
    let now = Local::now();
    decode_message_with(bytes, peer, |date| resolve_year(date, now), None, limits)
}

/// [`decode_message`] with an explicit year resolver for RFC 3164 dates and a timezone for
/// timestamps without an offset (`None`: the receiver's local time).
///
/// # Errors
///
/// As [`decode_message`].
pub fn decode_message_with<F>(
    bytes: &[u8],
    peer: Option<IpAddr>,
    year: F,
    timezone: Option<FixedOffset>,
    limits: &Limits,
) -> Result<Event, String>
where
    F: FnOnce(IncompleteDate) -> i32 + Copy,
{
    if bytes.len() > limits.decode.max_line_bytes {
        return Err(format!(
            "expected a syslog message of at most {} bytes, found {} bytes",
            limits.decode.max_line_bytes,
            bytes.len()
        ));
    }
    let text = String::from_utf8_lossy(bytes);
    let (mut event, trimmed) = crowsnest_normalize::syslog::message(&text, year, timezone)?;
    if let Some(peer) = peer {
        event.set("source.ip", Value::String(peer.to_string()));
    }
    Ok(crowsnest_normalize::finish(event, trimmed, &limits.decode))
}

/// The outcome of looking for one frame at the start of a stream buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A frame: the message is `buffer[start..end]`; drop `consumed` bytes afterwards.
    Message {
        /// First byte of the message.
        start: usize,
        /// One past its last byte.
        end: usize,
        /// Bytes to drop from the buffer.
        consumed: usize,
    },
    /// The buffer holds no complete frame yet.
    Incomplete,
    /// The stream cannot be framed (bad length, or a frame over the limit): close it.
    Invalid(String),
}

/// Finds the first frame in `buffer` (RFC 6587 octet counting or LF framing).
pub fn next_frame(buffer: &[u8], max_frame_bytes: usize) -> Frame {
    if buffer.first().is_some_and(u8::is_ascii_digit) {
        let Some(space) = buffer.iter().take(12).position(|b| *b == b' ') else {
            if buffer.len() >= 12 || buffer.iter().any(|b| !b.is_ascii_digit()) {
                return Frame::Invalid(
                    "expected an octet count (digits, then a space) before the message".into(),
                );
            }
            return Frame::Incomplete;
        };
        let digits = &buffer[..space];
        let length = match std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
        {
            Some(length) => length,
            None => return Frame::Invalid("expected an octet count (digits, then a space)".into()),
        };
        if length > max_frame_bytes {
            return Frame::Invalid(format!(
                "expected frames of at most {max_frame_bytes} bytes, found an octet count of {length}"
            ));
        }
        let start = space + 1;
        if buffer.len() < start + length {
            return Frame::Incomplete;
        }
        return Frame::Message {
            start,
            end: start + length,
            consumed: start + length,
        };
    }
    match buffer.iter().position(|b| *b == b'\n') {
        Some(newline) => {
            let mut end = newline;
            while end > 0 && matches!(buffer[end - 1], b'\r' | b'\0') {
                end -= 1;
            }
            Frame::Message {
                start: 0,
                end,
                consumed: newline + 1,
            }
        }
        None if buffer.len() > max_frame_bytes => {
            Frame::Invalid(format!("expected a newline within {max_frame_bytes} bytes"))
        }
        None => Frame::Incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_fields_are_mapped() {
        let line = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event"#;
        let peer: IpAddr = "10.0.0.9".parse().expect("ip");
        let event = decode_message(line, Some(peer), &Limits::default()).expect("decodes");
        assert_eq!(
            event.get_str("@timestamp"),
            Some("2003-10-11T22:14:15.003000Z")
        );
        assert_eq!(event.get_str("message"), Some("An application event"));
        assert_eq!(event.get_str("host.name"), Some("mymachine.example.com"));
        assert_eq!(event.get_str("process.name"), Some("evntslog"));
        assert_eq!(event.get("process.pid"), Some(&Value::from(42)));
        assert_eq!(event.get_str("syslog.facility"), Some("local4"));
        assert_eq!(event.get_str("syslog.severity"), Some("notice"));
        assert_eq!(event.get("syslog.priority"), Some(&Value::from(165)));
        assert_eq!(event.get_str("syslog.msgid"), Some("ID47"));
        assert_eq!(event.get_str("syslog.protocol"), Some("rfc5424"));
        assert_eq!(
            event.get_str("syslog.structured_data.exampleSDID@32473.iut"),
            Some("3")
        );
        assert_eq!(event.get_str("source.ip"), Some("10.0.0.9"));
        assert_eq!(
            event.get_str("event.original").map(|o| o.as_bytes()),
            Some(&line[..])
        );
    }

    #[test]
    fn bad_lines_never_panic() {
        let limits = Limits::default();
        assert!(decode_message(b"", None, &limits).is_err());
        assert!(decode_message(b"\r\n", None, &limits).is_err());
        let event = decode_message(b"<13>Feb 13 20:07:26 host app: caf\xff\xfe", None, &limits)
            .expect("lossy");
        assert!(event
            .get_str("message")
            .is_some_and(|m| m.starts_with("caf")));
        let small = Limits {
            decode: crowsnest_normalize::Limits {
                max_line_bytes: 8,
                ..Default::default()
            },
            ..Limits::default()
        };
        assert!(decode_message(b"<13>1 - - - - - - too long", None, &small).is_err());
    }

    #[test]
    fn frames_split_by_octet_count_or_newline() {
        let stream = b"11 <13>1 - - -<13>Feb 13 20:07:26 h a: x\r\nrest";
        assert_eq!(
            next_frame(stream, 100),
            Frame::Message {
                start: 3,
                end: 14,
                consumed: 14
            }
        );
        let rest = &stream[14..];
        let Frame::Message {
            start,
            end,
            consumed,
        } = next_frame(rest, 100)
        else {
            panic!("expected a frame");
        };
        assert_eq!(&rest[start..end], b"<13>Feb 13 20:07:26 h a: x");
        assert_eq!(next_frame(&rest[consumed..], 100), Frame::Incomplete);
        assert_eq!(next_frame(b"20 <13>", 100), Frame::Incomplete);
        assert_eq!(next_frame(b"123", 100), Frame::Incomplete);
        assert!(matches!(next_frame(b"999999 x", 100), Frame::Invalid(_)));
        assert!(matches!(next_frame(b"12x4 x", 100), Frame::Invalid(_)));
        assert!(matches!(next_frame(&[b'a'; 200], 100), Frame::Invalid(_)));
    }
}
