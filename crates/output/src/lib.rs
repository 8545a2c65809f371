//! Forwarding sinks of crowsnest: encode a batch of events for a destination, deliver it, and
//! say precisely what happened.
//!
//! crowsnest can sit in front of an existing SIEM. The server runs one worker thread per
//! `[[outputs]]` entry; the worker reads the WAL from its own cursor (the WAL is the disk
//! buffer), filters with the output's query, cuts batches, and hands each batch to the
//! output's [`Sink`]. This crate is that last step, with blocking I/O:
//!
//! | `type` | destination | module |
//! |---|---|---|
//! | `elasticsearch` | Elasticsearch/OpenSearch `_bulk` | [`elasticsearch`] |
//! | `splunk_hec` | Splunk HTTP Event Collector | [`splunk`] |
//! | `syslog` | RFC 5424 or CEF over UDP, TCP or TLS | [`syslog`], [`cef`] |
//! | `otlp` | OTLP/HTTP logs, protobuf or JSON | [`otlp`] |
//! | `webhook` | any HTTP endpoint, NDJSON or a JSON array, HMAC-signed | [`webhook`] |
//!
//! The contract every sink keeps ([`Sink::send`]):
//! - `Ok(Delivery)` when the batch is done with: `delivered` plus `rejected` (items the
//!   receiver refused for good, such as an Elasticsearch mapping error) cover the batch;
//! - `Err(SinkError::Retryable)` when sending the same batch again may succeed (network,
//!   timeouts, 429, 5xx): the worker waits ([`Backoff`]) and sends the *same* batch again.
//!   Elasticsearch uses `create` with the event id, so a repeat cannot duplicate; the other
//!   destinations are at-least-once;
//! - `Err(SinkError::Rejected)` when the receiver refused the content (400/413/422), and
//!   `Err(SinkError::Permanent)` when it refused the request itself (401/403/404, bad URL).
//!
//! Sizing batches: [`SinkConfig::estimated_size`] turns an event's compact JSON length (its
//! WAL record) into an upper bound of its encoded size, to cut batches at `batch_max_bytes`
//! without encoding twice (checked on real audit events in `tests/sizes.rs`; gzip makes the
//! wire size of Elasticsearch and Splunk bodies smaller still). [`memory::MemorySink`] stands
//! in for a real sink in tests.
//!
//! ```
//! use crowsnest_output::{build, OutputConfig};
//! let config: OutputConfig = toml::from_str(r#"
//!     name = "archive"
//!     type = "webhook"
//!     url = "http://127.0.0.1:9/hook"
//! "#).expect("valid TOML");
//! let sink = build(&config).expect("a valid output");
//! # drop(sink);
//! ```

pub mod backoff;
pub mod cef;
pub mod config;
pub mod elasticsearch;
mod error;
pub mod fields;
mod http;
pub mod memory;
pub mod otlp;
pub mod splunk;
pub mod syslog;
mod tls;
pub mod webhook;

use crowsnest_model::Event;

pub use backoff::Backoff;
pub use config::{
    ElasticsearchConfig, Kinds, OtlpConfig, OtlpEncoding, OutputConfig, SinkConfig,
    SplunkHecConfig, SyslogConfig, SyslogFormat, SyslogTransport, TlsConfig, WebhookConfig,
    WebhookFormat,
};
pub use error::{ConfigError, SinkError};
pub use http::{GZIP_THRESHOLD, MAX_RESPONSE_BYTES};
/// The rustls client config of a [`TlsConfig`] (also used by the notification channels).
pub use tls::client_config as tls_client_config;

/// A destination that takes batches of events.
pub trait Sink: Send {
    /// Delivers the whole batch or says why not. Per-item permanent rejections (an
    /// Elasticsearch item with a 400 mapping error) are reported in [`Delivery`], not as an
    /// error; a 409 conflict on `create` (the document is there from an earlier attempt)
    /// counts as delivered.
    ///
    /// # Errors
    ///
    /// [`SinkError::Retryable`] when the same batch may be sent again,
    /// [`SinkError::Permanent`] when sending it again cannot help.
    fn send(&mut self, batch: &[Event]) -> Result<Delivery, SinkError>;
}

/// The outcome of a delivered batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Events the receiver accepted (or already had).
    pub delivered: usize,
    /// Events the receiver refused for good: (index in the batch, reason).
    pub rejected: Vec<(usize, String)>,
    /// Events the receiver said it refused without saying which (an OTLP `partial_success`);
    /// they are not counted in `delivered`.
    pub rejected_unattributed: usize,
}

impl Delivery {
    /// Every event of a batch of `n` delivered.
    pub fn all(n: usize) -> Self {
        Delivery {
            delivered: n,
            ..Delivery::default()
        }
    }
}

/// Builds the sink of an output, checking its settings (name, URLs, addresses, TLS files,
/// index patterns).
///
/// # Errors
///
/// [`ConfigError`] naming the output, the setting and what was expected.
pub fn build(config: &OutputConfig) -> Result<Box<dyn Sink>, ConfigError> {
    validate(config)?;
    Ok(match &config.sink {
        SinkConfig::Elasticsearch(es) => {
            Box::new(elasticsearch::ElasticsearchSink::new(config, es)?)
        }
        SinkConfig::SplunkHec(hec) => Box::new(splunk::SplunkHecSink::new(config, hec)?),
        SinkConfig::Syslog(syslog) => Box::new(syslog::SyslogSink::new(config, syslog)?),
        SinkConfig::Otlp(otlp) => Box::new(otlp::OtlpSink::new(config, otlp)?),
        SinkConfig::Webhook(hook) => Box::new(webhook::WebhookSink::new(config, hook)?),
    })
}

/// Checks the settings common to every output.
fn validate(config: &OutputConfig) -> Result<(), ConfigError> {
    let name = &config.name;
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid_name {
        return Err(ConfigError::invalid(
            name,
            "name",
            "1 to 64 characters of [a-z0-9_-]",
            name.as_str(),
        ));
    }
    let positive = [
        ("batch_max_events", config.batch_max_events as u64),
        ("batch_max_bytes", config.batch_max_bytes as u64),
        ("flush_interval_ms", config.flush_interval_ms),
        ("retry_initial_ms", config.retry_initial_ms),
        ("timeout_secs", config.timeout_secs),
        ("max_buffer_bytes", config.max_buffer_bytes),
    ];
    for (field, value) in positive {
        if value == 0 {
            return Err(ConfigError::invalid(name, field, "a number above 0", "0"));
        }
    }
    if config.retry_max_ms < config.retry_initial_ms {
        return Err(ConfigError::invalid(
            name,
            "retry_max_ms",
            format!("at least retry_initial_ms ({})", config.retry_initial_ms),
            config.retry_max_ms.to_string(),
        ));
    }
    Ok(())
}
