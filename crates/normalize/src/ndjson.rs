//! Newline-delimited JSON: one JSON object per line, each routed to the decoder its shape calls
//! for.
//!
//! Lines are split on `\n`; a trailing `\r` is dropped, so `\r\n` bodies work; a UTF-8 byte
//! order mark before the first line is ignored; lines of only whitespace are skipped. Every
//! other line yields events or a [`LineError`] with its 1-based line number, in this order of
//! checks: length ([`Limits::max_line_bytes`]), UTF-8, nesting depth, JSON syntax, "is an
//! object". A line never affects its neighbours.
//!
//! Each line goes to a parser of [`crate::registry`]: the one `source` names, else the first,
//! in [`crate::registry::PARSERS`] order, whose detection recognises the line:
//!
//! 1. a Kubernetes audit `Event` or `EventList` → [`crate::k8s_audit`] (an `EventList` yields
//!    one event per item, each keeping its item's exact text as `event.original`; a bad item is
//!    an error of the line naming `items[N]`);
//! 2. an EKS, AKS or GKE envelope, or any CloudWatch Logs subscription batch →
//!    [`crate::managed`] (one event per record of a batch);
//! 3. a Falco alert → [`crate::falco`]; a Docker json-file line → [`crate::docker`];
//! 4. anything else → [`crate::generic`].
//!
//! When `source` names a text format (`cri`, `syslog`), each line is read as text.
//!
//! A line that holds many events (an `EventList`, a batch) yields all of them; one that holds
//! none (an empty `EventList`, a CloudWatch `CONTROL_MESSAGE`) yields neither event nor error.

use crate::registry::{parse_record, Source};
use crate::Decoded;
use crate::Limits;

/// Decodes a body of lines, each routed per `source`.
pub(crate) fn decode(body: &[u8], source: Source<'_>, limits: &Limits) -> Decoded {
    let mut out = Decoded::default();
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if is_blank(line) {
            continue;
        }
        parse_record(line, index + 1, source, limits, &mut out);
    }
    out
}

/// Whether a line is skipped: empty or only ASCII whitespace.
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}
