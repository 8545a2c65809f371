//! Syslog: RFC 5424 messages (or CEF records in an RFC 5424 header) over UDP, TCP or TLS.
//!
//! An event becomes
//!
//! ```text
//! <134>1 2024-05-01T10:00:00.000000Z node-1 crowsnest - kubernetes.audit [crowsnest@32473 kind="event" dataset="kubernetes.audit" id="01HX"] {"@timestamp":"2024-05-01T10:00:00Z",...}
//! ```
//!
//! - PRI = facility × 8 + severity; severity is 6 (informational) for events and, for alerts,
//!   critical 2, high 3, medium 4, low 5, informational 6 (from `alert.severity`, else
//!   `rule.level`);
//! - TIMESTAMP is `@timestamp` in UTC with microseconds;
//! - HOSTNAME is `host.name`, else the configured `hostname`, else this machine's name;
//!   characters outside printable ASCII become `_` and it is cut at 255;
//! - APP-NAME is `app_name` (48 characters at most), PROCID is `-`, MSGID is `event.dataset`
//!   (32 characters at most, `-` when absent);
//! - the structured data element `crowsnest@32473` (32473 is the enterprise number RFC 5612
//!   reserves for documentation) carries `kind`, `dataset` and `id` when present, with `"`,
//!   `\` and `]` escaped by a backslash;
//! - MSG is the event's compact JSON in UTF-8, **without** a BOM (RFC 5424's MSG-ANY): a BOM
//!   would end up in front of the JSON for receivers that keep MSG verbatim.
//!
//! With `format = "cef"` the header is the same but the structured data is `-` and MSG is the
//! CEF record ([`crate::cef`]), which is how ArcSight connectors and most SIEMs take CEF over
//! syslog.
//!
//! Framing: over TCP and TLS (RFC 5425) each message is octet-counted (RFC 6587 §3.4.1:
//! `<length> <message>`), so JSON containing newlines is safe. Over UDP each message is one
//! datagram of at most `max_datagram_bytes` (default 8192); a longer message is cut at a
//! character boundary and ends in `...[truncated]`.
//!
//! Delivery is at-least-once: a batch is written message by message, and if the connection
//! breaks half-way the whole batch is sent again on a new connection.

mod transport;

use crowsnest_model::Event;

use crate::fields::{alert_severity, event_time, local_hostname, syslog_severity, to_json};
use crate::{ConfigError, SyslogConfig, SyslogFormat};

pub use transport::SyslogSink;

/// The marker ending a message cut to fit a datagram.
pub const TRUNCATION_MARKER: &str = "...[truncated]";

/// The structured-data id of our element.
pub const SD_ID: &str = "crowsnest@32473";

/// Facility names and codes (RFC 5424 table 1).
pub const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("security", 13),
    ("console", 14),
    ("solaris-cron", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// What every message of an output shares.
#[derive(Debug, Clone)]
pub struct Header {
    /// Facility code (0-23).
    pub facility: u8,
    /// APP-NAME.
    pub app_name: String,
    /// HOSTNAME when the event has no `host.name`, and the CEF `dvchost`.
    pub hostname: String,
    /// RFC 5424 or CEF.
    pub format: SyslogFormat,
}

impl Header {
    /// The header of a syslog output, checking its facility and app name.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for an unknown facility or an empty app name.
    pub fn from_config(output: &str, config: &SyslogConfig) -> Result<Self, ConfigError> {
        let facility = FACILITIES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&config.facility))
            .map(|(_, code)| *code)
            .or_else(|| config.facility.parse::<u8>().ok().filter(|code| *code < 24))
            .ok_or_else(|| {
                ConfigError::invalid(
                    output,
                    "facility",
                    "a facility name (kern, user, auth, authpriv, local0 … local7, …) or 0-23",
                    config.facility.as_str(),
                )
            })?;
        let app_name = printable(&config.app_name, 48);
        if app_name == "-" {
            return Err(ConfigError::invalid(
                output,
                "app_name",
                "a non-empty name",
                "",
            ));
        }
        let hostname = config.hostname.clone().unwrap_or_else(local_hostname);
        Ok(Self {
            facility,
            app_name,
            hostname: printable(&hostname, 255),
            format: config.format,
        })
    }

    /// The complete message for an event (no framing).
    pub fn encode(&self, event: &Event) -> String {
        let severity = alert_severity(event).map_or(6, syslog_severity);
        let pri = u16::from(self.facility) * 8 + u16::from(severity);
        let time = event_time(event).format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let host = event
            .get_str("host.name")
            .map_or_else(|| self.hostname.clone(), |h| printable(h, 255));
        let msgid = printable(event.get_str("event.dataset").unwrap_or(""), 32);
        let (sd, msg) = match self.format {
            SyslogFormat::Rfc5424 => (structured_data(event), to_json(event)),
            SyslogFormat::Cef => ("-".to_string(), crate::cef::encode(event, &self.hostname)),
        };
        format!(
            "<{pri}>1 {time} {host} {} - {msgid} {sd} {msg}",
            self.app_name
        )
    }
}

/// `[crowsnest@32473 kind="…" dataset="…" id="…"]` with the fields present.
fn structured_data(event: &Event) -> String {
    let mut sd = format!("[{SD_ID}");
    for (name, path) in [
        ("kind", "event.kind"),
        ("dataset", "event.dataset"),
        ("id", "event.id"),
    ] {
        if let Some(value) = event.get_str(path) {
            sd.push_str(&format!(" {name}=\"{}\"", escape_param(value)));
        }
    }
    sd.push(']');
    sd
}

/// Escapes an SD-PARAM value (RFC 5424 §6.3.3).
pub fn escape_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: printable ASCII without spaces (others become `_`), at most `max` long,
/// `-` when empty.
fn printable(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if field.is_empty() {
        "-".to_string()
    } else {
        field
    }
}

/// RFC 6587 octet-counting: `<length> <message>`.
pub fn octet_counted(message: &str) -> Vec<u8> {
    let mut frame = format!("{} ", message.len()).into_bytes();
    frame.extend_from_slice(message.as_bytes());
    frame
}

/// Cuts a message to `max` bytes at a character boundary, ending it in [`TRUNCATION_MARKER`].
pub fn truncate(message: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if message.len() <= max {
        return message.into();
    }
    let mut end = max.saturating_sub(TRUNCATION_MARKER.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATION_MARKER}", &message[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn header(format: SyslogFormat) -> Header {
        Header {
            facility: 16,
            app_name: "crowsnest".into(),
            hostname: "cn-1".into(),
            format,
        }
    }

    #[test]
    fn an_event_becomes_a_golden_rfc5424_message() {
        let event: Event = serde_json::from_value(json!({
            "@timestamp": "2024-05-01T10:00:00.25Z",
            "event": {"kind": "event", "dataset": "kubernetes.audit", "id": "a\"b]c\\d"},
            "host": {"name": "node 1"}
        }))
        .expect("event");
        let expected = concat!(
            r#"<134>1 2024-05-01T10:00:00.250000Z node_1 crowsnest - kubernetes.audit "#,
            r#"[crowsnest@32473 kind="event" dataset="kubernetes.audit" id="a\"b\]c\\d"] "#,
            r#"{"@timestamp":"2024-05-01T10:00:00.25Z","event":{"kind":"event","dataset":"kubernetes.audit","id":"a\"b]c\\d"},"host":{"name":"node 1"}}"#
        );
        assert_eq!(header(SyslogFormat::Rfc5424).encode(&event), expected);
    }

    #[test]
    fn alert_levels_set_the_severity_and_missing_fields_are_nil() {
        let alert: Event = serde_json::from_value(json!({
            "@timestamp": "2024-05-01T10:00:00Z",
            "event": {"kind": "alert"}, "rule": {"level": "critical"}
        }))
        .expect("alert");
        let message = header(SyslogFormat::Rfc5424).encode(&alert);
        // local0 (16) * 8 + critical (2)
        assert!(message.starts_with("<130>1 2024-05-01T10:00:00.000000Z cn-1 crowsnest - - [crowsnest@32473 kind=\"alert\"] {"), "{message}");
        let cef = header(SyslogFormat::Cef).encode(&alert);
        assert!(
            cef.starts_with(
                "<130>1 2024-05-01T10:00:00.000000Z cn-1 crowsnest - - - CEF:0|crowsnest|"
            ),
            "{cef}"
        );
    }

    #[test]
    fn facilities_parse_by_name_or_number() {
        let mut config: SyslogConfig =
            toml::from_str("address = \"127.0.0.1:514\"").expect("config");
        assert_eq!(
            Header::from_config("o", &config).expect("default").facility,
            16
        );
        config.facility = "AUTHPRIV".into();
        assert_eq!(
            Header::from_config("o", &config).expect("name").facility,
            10
        );
        config.facility = "23".into();
        assert_eq!(
            Header::from_config("o", &config).expect("number").facility,
            23
        );
        for bad in ["24", "local8", ""] {
            config.facility = bad.into();
            assert!(Header::from_config("o", &config).is_err(), "{bad}");
        }
    }

    #[test]
    fn framing_and_truncation() {
        assert_eq!(octet_counted("héllo"), b"6 h\xc3\xa9llo".to_vec());
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééééééééééééé", 19);
        assert!(cut.len() <= 19 && cut.ends_with(TRUNCATION_MARKER), "{cut}");
        assert_eq!(cut, format!("éé{TRUNCATION_MARKER}"));
    }
}
