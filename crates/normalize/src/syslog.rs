//! Syslog messages (`syslog`): RFC 5424 and RFC 3164, leniently, with Vector's
//! `syslog_loose` parser.
//!
//! One message becomes one event:
//!
//! | syslog | event |
//! |---|---|
//! | timestamp (RFC 3164's yearless one resolved to the most recent past date, local time) | `@timestamp` |
//! | MSG | `message` |
//! | HOSTNAME | `host.name`, `syslog.hostname` |
//! | APP-NAME / TAG | `process.name`, `syslog.appname` |
//! | PROCID | `process.pid` when numeric, `syslog.procid` |
//! | PRI | `syslog.facility`, `syslog.severity` (names), `syslog.priority`, `log.level` |
//! | MSGID, VERSION | `syslog.msgid`, `syslog.version` |
//! | STRUCTURED-DATA | `syslog.structured_data.<SD-ID>.<PARAM>` |
//!
//! `syslog.protocol` says which RFC the line parsed as (`rfc5424`, `rfc3164`). A line that
//! parses as neither is kept whole as `message` (the parser is lenient, like rsyslog's own).
//! A text format: selected by name (`source=syslog`), or for a file of text lines by
//! [`Parser::detect_text`] (a line that starts with `<PRI>`). The syslog listeners of
//! `crowsnest-ingest` frame the stream (RFC 6587) and map each message here.

use chrono::{DateTime, Datelike, FixedOffset, Local, Utc};
use crowsnest_model::{ecs, format_timestamp, Event};
use serde_json::{Map, Value};
use syslog_loose::{IncompleteDate, Message, ProcId, Protocol, Variant};

use crate::registry::{Context, Input, Parser, Record};
use crate::{finish, Decoded, LineError};

/// The syslog parser.
#[derive(Debug)]
pub struct Syslog;

impl Parser for Syslog {
    fn name(&self) -> &'static str {
        "syslog"
    }

    fn input(&self) -> Input {
        Input::Text
    }

    fn detect_text(&self, line: &str) -> bool {
        let Some(rest) = line.strip_prefix('<') else {
            return false;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (1..=3).contains(&digits) && rest[digits..].starts_with('>')
    }

    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let now = Local::now();
        match message(record.text(), |date| resolve_year(date, now), None) {
            Ok((event, text)) => out.events.push(finish(event, text, cx.limits)),
            Err(reason) => out.errors.push(LineError::new(cx.line, reason)),
        }
    }
}

/// Maps one syslog message (without `event.original`), with a year resolver for RFC 3164
/// dates and a timezone for timestamps without an offset (`None`: local time). Returns the
/// event and the message text it was read from (the line without its trailing CR, LF or NUL).
///
/// # Errors
///
/// A reason when the message is empty.
pub fn message<F>(
    text: &str,
    year: F,
    timezone: Option<FixedOffset>,
) -> Result<(Event, &str), String>
where
    F: FnOnce(IncompleteDate) -> i32 + Copy,
{
    let trimmed = text.trim_end_matches(['\n', '\r', '\0']);
    if trimmed.trim().is_empty() {
        return Err("expected a syslog message, found an empty line".to_string());
    }
    let message = match timezone {
        Some(tz) => {
            syslog_loose::parse_message_with_year_tz(trimmed, year, Some(tz), Variant::Either)
        }
        None => syslog_loose::parse_message_with_year(trimmed, year, Variant::Either),
    };
    Ok((map_message(&message), trimmed))
}

/// The year rule for RFC 3164 dates (which have none): the current year, unless that puts the
/// date more than a day in the future (a December line read in January).
pub fn resolve_year((month, day, ..): IncompleteDate, now: DateTime<Local>) -> i32 {
    let year = now.year();
    if month > now.month() || (month == now.month() && day > now.day() + 1) {
        year - 1
    } else {
        year
    }
}

fn map_message(message: &Message<&str>) -> Event {
    let mut event = Event::new();
    let mut syslog = Map::new();
    if let Some(timestamp) = message.timestamp {
        event.set(
            ecs::TIMESTAMP,
            Value::String(format_timestamp(timestamp.with_timezone(&Utc))),
        );
    }
    event.set(ecs::MESSAGE, Value::String(message.msg.to_string()));
    if let (Some(facility), Some(severity)) = (message.facility, message.severity) {
        syslog.insert("facility".into(), Value::from(facility.as_str()));
        syslog.insert("severity".into(), Value::from(severity.as_str()));
        syslog.insert(
            "priority".into(),
            Value::from(facility as u32 * 8 + severity as u32),
        );
        event.set("log.level", Value::from(severity.as_str()));
    } else if let Some(severity) = message.severity {
        syslog.insert("severity".into(), Value::from(severity.as_str()));
        event.set("log.level", Value::from(severity.as_str()));
    }
    if let Some(hostname) = message.hostname {
        syslog.insert("hostname".into(), Value::from(hostname));
        event.set("host.name", Value::from(hostname));
    }
    if let Some(appname) = message.appname {
        syslog.insert("appname".into(), Value::from(appname));
        event.set("process.name", Value::from(appname));
    }
    match &message.procid {
        Some(ProcId::PID(pid)) => {
            syslog.insert("procid".into(), Value::from(*pid));
            event.set("process.pid", Value::from(*pid));
        }
        Some(ProcId::Name(name)) => {
            syslog.insert("procid".into(), Value::from(*name));
        }
        None => {}
    }
    if let Some(msgid) = message.msgid {
        syslog.insert("msgid".into(), Value::from(msgid));
    }
    match message.protocol {
        Protocol::RFC5424(version) => {
            syslog.insert("protocol".into(), Value::from("rfc5424"));
            syslog.insert("version".into(), Value::from(version));
        }
        Protocol::RFC3164 => {
            syslog.insert("protocol".into(), Value::from("rfc3164"));
        }
    }
    if !message.structured_data.is_empty() {
        let mut data = Map::new();
        // A repeated SD-ID (not allowed by RFC 5424, but sent) merges into one element.
        for element in &message.structured_data {
            let entry = data
                .entry(element.id.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(params) = entry {
                for (name, value) in element.params() {
                    params.insert(name.to_string(), Value::from(value.to_string()));
                }
            }
        }
        syslog.insert("structured_data".into(), Value::Object(data));
    }
    event.set("syslog", Value::Object(syslog));
    event.set(ecs::EVENT_KIND, Value::from("event"));
    event.set(ecs::EVENT_MODULE, Value::from("syslog"));
    event.set(ecs::EVENT_DATASET, Value::from("syslog"));
    // nginx and other servers log access lines to syslog (`access_log syslog:server=...`).
    crate::access_log::enrich(&mut event);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yearless_dates_resolve_to_the_past() {
        let now = Local::now();
        let january = chrono::TimeZone::with_ymd_and_hms(&Local, 2024, 1, 5, 0, 0, 0)
            .single()
            .expect("date");
        assert_eq!(resolve_year((12, 28, 0, 0, 0), january), 2023);
        assert_eq!(resolve_year((1, 4, 0, 0, 0), january), 2024);
        assert_eq!(
            resolve_year((now.month(), now.day(), 0, 0, 0), now),
            now.year()
        );
    }

    #[test]
    fn text_detection_wants_a_priority() {
        assert!(Syslog.detect_text("<34>1 2024-05-01T10:00:00Z web-1 sshd - - - x"));
        assert!(Syslog.detect_text("<13>Feb 13 20:07:26 host app: x"));
        assert!(!Syslog.detect_text("<html>"));
        assert!(!Syslog.detect_text("2024-05-01T10:00:00Z stdout F x"));
    }

    #[test]
    fn empty_lines_are_errors() {
        assert!(message("\r\n", |_| 2024, None).is_err());
        let (event, text) =
            message("<13>Feb 13 20:07:26 host app: hi\r\n", |_| 2024, None).expect("message");
        assert_eq!(text, "<13>Feb 13 20:07:26 host app: hi");
        assert_eq!(event.get_str("process.name"), Some("app"));
    }
}
