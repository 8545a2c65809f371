//! The `[[outputs]]` configuration: what to forward, how to batch and retry, and where to.
//!
//! One entry in the server's TOML looks like this (the keys after `type` belong to the sink):
//!
//! ```toml
//! [[outputs]]
//! name = "siem"
//! query = 'event.kind:alert AND alert.severity:(high OR critical)'
//! kinds = "alerts"
//! type = "elasticsearch"
//! url = "https://es.example:9200"
//! api_key = "bWFkZS11cDprZXk="
//! tls = { ca_file = "/etc/crowsnest/es-ca.pem" }
//! ```
//!
//! Every struct denies unknown keys, so a typo is an error at start-up rather than a silently
//! ignored setting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crowsnest_model::Event;
use serde::{Deserialize, Serialize};

/// One `[[outputs]]` entry of the server config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputConfig {
    /// Unique name (`[a-z0-9_-]+`), used in metrics and file names.
    pub name: String,
    /// Query selecting what to forward, kept as text: the server parses and matches it.
    #[serde(default)]
    pub query: Option<String>,
    /// Which events to forward: `events`, `alerts` or `both` (the default).
    #[serde(default)]
    pub kinds: Kinds,
    /// Most events in one request (default 500).
    #[serde(default = "defaults::batch_max_events")]
    pub batch_max_events: usize,
    /// Most encoded payload bytes in one request (default 4 MiB).
    #[serde(default = "defaults::batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// Send a partial batch after this many milliseconds (default 1000).
    #[serde(default = "defaults::flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// First retry delay in milliseconds (default 500).
    #[serde(default = "defaults::retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest retry delay in milliseconds (default 30 000).
    #[serde(default = "defaults::retry_max_ms")]
    pub retry_max_ms: u64,
    /// Connect plus request timeout in seconds (default 10).
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
    /// How much WAL the server may keep for this output while it is behind (default 1 GiB).
    #[serde(default = "defaults::max_buffer_bytes")]
    pub max_buffer_bytes: u64,
    /// The destination, tagged by `type`.
    #[serde(flatten)]
    pub sink: SinkConfig,
}

/// Which event kinds an output forwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kinds {
    /// Only `event.kind: event` (anything that is not an alert).
    Events,
    /// Only `event.kind: alert`.
    Alerts,
    /// Both.
    #[default]
    Both,
}

impl Kinds {
    /// Whether `event` is of a kind this output forwards.
    pub fn admits(self, event: &Event) -> bool {
        let alert = is_alert(event);
        match self {
            Kinds::Events => !alert,
            Kinds::Alerts => alert,
            Kinds::Both => true,
        }
    }
}

/// Whether the event is an alert (`event.kind: alert`).
pub(crate) fn is_alert(event: &Event) -> bool {
    event.get_str("event.kind") == Some("alert")
}

/// The destination of an output, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Elasticsearch or OpenSearch `_bulk`.
    Elasticsearch(ElasticsearchConfig),
    /// Splunk HTTP Event Collector.
    SplunkHec(SplunkHecConfig),
    /// Syslog, RFC 5424 or CEF, over UDP, TCP or TLS.
    Syslog(SyslogConfig),
    /// OTLP/HTTP logs.
    Otlp(OtlpConfig),
    /// A generic HTTP webhook.
    Webhook(WebhookConfig),
}

impl SinkConfig {
    /// An upper bound of the encoded size of an event whose compact JSON is `json_len` bytes:
    /// the JSON plus 512 bytes of envelope (action line, HEC fields, syslog header, OTLP
    /// record); for OTLP, whose attributes repeat every flattened path in full, twice the JSON
    /// (protobuf) or four times (OTLP/JSON, `{"key":…,"value":{"stringValue":…}}` per field).
    pub fn estimated_size(&self, json_len: usize) -> usize {
        let factor = match self {
            SinkConfig::Otlp(otlp) => match otlp.encoding {
                OtlpEncoding::Protobuf => 2,
                OtlpEncoding::Json => 4,
            },
            _ => 1,
        };
        json_len.saturating_mul(factor).saturating_add(512)
    }
}

impl SinkConfig {
    /// The `type` name of the destination (`elasticsearch`, `splunk_hec`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Elasticsearch(_) => "elasticsearch",
            SinkConfig::SplunkHec(_) => "splunk_hec",
            SinkConfig::Syslog(_) => "syslog",
            SinkConfig::Otlp(_) => "otlp",
            SinkConfig::Webhook(_) => "webhook",
        }
    }
}

/// Elasticsearch/OpenSearch `_bulk` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Base URL (`https://es:9200`); `/_bulk` is appended.
    pub url: String,
    /// Index for events, with `strftime` fields taken from `@timestamp` (UTC).
    #[serde(default = "defaults::es_index")]
    pub index: String,
    /// Index for alerts, same syntax.
    #[serde(default = "defaults::es_alerts_index")]
    pub alerts_index: String,
    /// Basic auth user (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Basic auth password.
    #[serde(default)]
    pub password: Option<String>,
    /// `Authorization: ApiKey <api_key>` (the base64 `id:key` Elasticsearch hands out).
    #[serde(default)]
    pub api_key: Option<String>,
    /// `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// TLS client settings for `https` URLs.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// Splunk HEC settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Base URL (`https://splunk:8088`) or the full `/services/collector/event` URL.
    pub url: String,
    /// HEC token (`Authorization: Splunk <token>`).
    pub token: String,
    /// Target index; the token's default index when absent.
    #[serde(default)]
    pub index: Option<String>,
    /// Sourcetype; `crowsnest:event` or `crowsnest:alert` by `event.kind` when absent.
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// Source; the event's `event.dataset` when absent.
    #[serde(default)]
    pub source: Option<String>,
    /// TLS client settings for `https` URLs.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// Syslog settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the receiver.
    pub address: String,
    /// `udp`, `tcp` (default) or `tls`.
    #[serde(default)]
    pub transport: SyslogTransport,
    /// `rfc5424` (default) or `cef`.
    #[serde(default)]
    pub format: SyslogFormat,
    /// APP-NAME of the syslog header (default `crowsnest`).
    #[serde(default = "defaults::app_name")]
    pub app_name: String,
    /// Facility name (`kern` … `local7`, default `local0`).
    #[serde(default = "defaults::facility")]
    pub facility: String,
    /// HOSTNAME when the event has no `host.name`, and CEF `dvchost`; this machine's name
    /// when absent.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Largest UDP datagram; longer messages are cut and end in `...[truncated]` (default 8192).
    #[serde(default = "defaults::max_datagram_bytes")]
    pub max_datagram_bytes: usize,
    /// TLS client settings for `transport = "tls"`.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    /// One message per datagram.
    Udp,
    /// Octet-counted frames (RFC 6587) over TCP.
    #[default]
    Tcp,
    /// Octet-counted frames over TLS (RFC 5425).
    Tls,
}

/// Syslog message format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// RFC 5424 with structured data and the event JSON as MSG.
    #[default]
    Rfc5424,
    /// ArcSight CEF inside an RFC 5424 header.
    Cef,
}

/// OTLP/HTTP logs settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Full URL of the logs endpoint (`http://collector:4318/v1/logs`).
    pub url: String,
    /// `protobuf` (default) or `json`.
    #[serde(default)]
    pub encoding: OtlpEncoding,
    /// Extra request headers (for example an API key).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// TLS client settings for `https` URLs.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// OTLP body encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    #[default]
    Protobuf,
    /// `application/json` (the OTLP/JSON mapping).
    Json,
}

/// Webhook settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// URL to POST to.
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `ndjson` (default) or `json_array`.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Key for `X-Crowsnest-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub secret: Option<String>,
    /// TLS client settings for `https` URLs.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// Webhook body format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// One JSON event per line, `application/x-ndjson`.
    #[default]
    Ndjson,
    /// One JSON array, `application/json`.
    JsonArray,
}

/// TLS client settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust instead of the built-in web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name to verify the server certificate against (and send as SNI for syslog) instead of
    /// the host of the URL or address.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any server certificate. Only for tests: it allows anyone on the path to read and
    /// change the traffic, and a warning is logged when an output uses it.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// Whether nothing is set (the built-in roots and the URL's host are used).
    pub fn is_default(&self) -> bool {
        *self == TlsConfig::default()
    }
}

mod defaults {
    pub fn batch_max_events() -> usize {
        500
    }
    pub fn batch_max_bytes() -> usize {
        4 * 1024 * 1024
    }
    pub fn flush_interval_ms() -> u64 {
        1000
    }
    pub fn retry_initial_ms() -> u64 {
        500
    }
    pub fn retry_max_ms() -> u64 {
        30_000
    }
    pub fn timeout_secs() -> u64 {
        10
    }
    pub fn max_buffer_bytes() -> u64 {
        1024 * 1024 * 1024
    }
    pub fn es_index() -> String {
        "crowsnest-%Y.%m.%d".to_string()
    }
    pub fn es_alerts_index() -> String {
        "crowsnest-alerts-%Y.%m.%d".to_string()
    }
    pub fn app_name() -> String {
        "crowsnest".to_string()
    }
    pub fn facility() -> String {
        "local0".to_string()
    }
    pub fn max_datagram_bytes() -> usize {
        8192
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OutputConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn a_minimal_entry_takes_the_defaults() {
        let config =
            parse("name = \"es\"\ntype = \"elasticsearch\"\nurl = \"http://127.0.0.1:9200\"\n")
                .expect("parses");
        assert_eq!(config.kinds, Kinds::Both);
        assert_eq!(config.batch_max_events, 500);
        assert_eq!(config.retry_max_ms, 30_000);
        let SinkConfig::Elasticsearch(es) = config.sink else {
            panic!("expected elasticsearch");
        };
        assert_eq!(es.index, "crowsnest-%Y.%m.%d");
        assert!(es.tls.is_default());
    }

    #[test]
    fn unknown_keys_and_types_are_errors() {
        let typo = parse(
            "name = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1:514\"\ntransprot = \"udp\"\n",
        );
        assert!(typo.is_err(), "a misspelt sink key must be refused");
        let outer = parse(
            "name = \"s\"\nbatch_max_evnts = 3\ntype = \"syslog\"\naddress = \"127.0.0.1:514\"\n",
        );
        assert!(outer.is_err(), "a misspelt output key must be refused");
        let kind = parse("name = \"s\"\ntype = \"kafka\"\naddress = \"x\"\n");
        assert!(kind.is_err());
    }

    #[test]
    fn sink_settings_parse_with_nested_tls() {
        let config = parse(
            "name = \"w\"\nkinds = \"alerts\"\ntype = \"webhook\"\nurl = \"https://127.0.0.1:1/h\"\n\
             format = \"json_array\"\nsecret = \"k\"\nheaders = { X-Team = \"sec\" }\n\
             tls = { ca_file = \"/tmp/ca.pem\", server_name = \"hooks\" }\n",
        )
        .expect("parses");
        assert_eq!(config.kinds, Kinds::Alerts);
        let SinkConfig::Webhook(hook) = config.sink else {
            panic!("expected webhook");
        };
        assert_eq!(hook.format, WebhookFormat::JsonArray);
        assert_eq!(hook.headers.get("X-Team").map(String::as_str), Some("sec"));
        assert_eq!(hook.tls.server_name.as_deref(), Some("hooks"));
    }

    #[test]
    fn configs_serialize_back_to_the_same_toml() {
        let text = "name = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1:6514\"\n\
                    transport = \"tls\"\nformat = \"cef\"\ntls = { insecure_skip_verify = true }\n";
        let config = parse(text).expect("parses");
        let written = toml::to_string(&config).expect("serializes");
        assert_eq!(parse(&written).expect("reparses"), config, "{written}");
        let json = serde_json::to_value(&config).expect("json");
        assert_eq!(json["type"], "syslog");
        assert_eq!(json["transport"], "tls");
    }

    #[test]
    fn kinds_select_alerts_or_events() {
        let mut alert = Event::new();
        alert.set("event.kind", "alert".into());
        let event = Event::new();
        assert!(Kinds::Alerts.admits(&alert) && !Kinds::Alerts.admits(&event));
        assert!(!Kinds::Events.admits(&alert) && Kinds::Events.admits(&event));
        assert!(Kinds::Both.admits(&alert) && Kinds::Both.admits(&event));
    }
}
