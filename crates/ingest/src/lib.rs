//! Ecosystem inputs of crowsnest: the protocols shippers already speak, decoded into the
//! common event.
//!
//! Every module is a pure decoder, bytes in → [`Decoded`] out (events plus one
//! [`crowsnest_normalize::LineError`] per bad item, so one bad item never costs its
//! neighbours), except [`listen`], which runs the non-HTTP listeners on tokio and hands
//! batches to a [`listen::Submit`] implementation (the server's pipeline).
//!
//! | module | protocol | source-specific fields |
//! |---|---|---|
//! | [`es_bulk`] | Elasticsearch `_bulk` (Beats, Logstash, Fluent Bit, Vector, clients) | `es.index`, `es.id` |
//! | [`splunk_hec`] | Splunk HEC event and raw endpoints | `splunk.*` |
//! | [`otlp`] | OTLP/HTTP logs, protobuf and JSON | `otel.*` |
//! | [`syslog`] | RFC 5424 / RFC 3164 messages, RFC 6587 framing | `syslog.*` |
//! | [`fluent`] | Fluentd forward protocol (all four modes, `chunk` acks) | `fluent.tag` |
//! | [`fluent_auth`] | the forward shared-key handshake (HELO, PING, PONG) | |
//! | [`falco`] | Falco `http_output` / falcosidekick alerts | `falco.*` |
//!
//! Every event keeps `event.original` (the item's exact text; for protobuf and MessagePack,
//! its JSON rendering), `event.module` and `event.dataset`. Semantic fields shared by all
//! inputs (`kubernetes.namespace`, `container.id`, `host.name`, `process.*`, ...) are filled
//! from each protocol's own conventions (OTel resource attributes, Fluent Bit's `kubernetes`
//! metadata, Falco output fields). [`Limits`] bound item and frame sizes, nesting,
//! decompressed size and events per request; [`limits::decompress`] is the only way this
//! crate inflates data. No decoder panics on any input (the proptests in `tests/` feed them
//! truncated, random and oversized inputs).
//!
//! ```
//! use crowsnest_ingest::{syslog, Limits};
//!
//! let line = b"<34>1 2024-05-01T10:00:00Z web-1 sshd 4242 - - Failed password for root";
//! let event = syslog::decode_message(line, None, &Limits::default()).expect("a message");
//! assert_eq!(event.get_str("process.name"), Some("sshd"));
//! assert_eq!(event.get_str("syslog.severity"), Some("crit"));
//! assert_eq!(event.get_str("message"), Some("Failed password for root"));
//!
//! let bulk = b"{\"create\":{\"_index\":\"logs-app\"}}\n{\"message\":\"hi\"}\n";
//! let request = crowsnest_ingest::es_bulk::decode(bulk, None, &Limits::default()).expect("bulk");
//! assert_eq!(request.events[0].get_str("es.index"), Some("logs-app"));
//! ```

#![deny(missing_docs)]

mod common;
mod error;
pub mod es_bulk;
pub mod falco;
pub mod fluent;
pub mod fluent_auth;
pub mod limits;
pub mod listen;
pub mod otlp;
pub mod splunk_hec;
pub mod syslog;

pub use crowsnest_normalize::Decoded;
pub use error::IngestError;
pub use limits::Limits;
