//! The ecosystem listeners: every `[[inputs]]` entry (syslog over UDP, TCP or TLS; the Fluent
//! forward protocol over TCP or TLS), started through `crowsnest_ingest::listen::inputs`'
//! registry, with the limits of `[input_limits]`.
//!
//! They decode with `crowsnest-ingest` and submit through the same path as the HTTP ingest
//! endpoints ([`crowsnest_pipeline::Pipeline::submit_decoded`]): an event is acknowledged (a
//! forward `ack` sent) only once it is in the WAL. When the pipeline is saturated they wait for
//! room instead of refusing, so TCP pushes back on the sender and nothing is dropped.
//!
//! Syslog has no authentication: bind it to loopback or a private interface, or firewall it.
//! Forward authenticates when a shared key is configured (`shared_key_file` or `shared_key`):
//! every connection must then pass the HELO/PING/PONG handshake of the forward protocol v1
//! (Fluentd `<security> shared_key`, Fluent Bit `Shared_Key`), and with `users` also a
//! username and password.
//!
//! ```toml
//! [[inputs]]
//! type = "forward"
//! listen = "0.0.0.0:24284"
//! tls = { cert = "/etc/crowsnest/cert.pem", key = "/etc/crowsnest/key.pem" }
//! shared_key_file = "/etc/crowsnest/forward.key"
//! users = [{ username = "fluentbit", password = "..." }]
//! ```
//!
//! The `[inputs]` table of earlier versions is refused with a message saying how to write it
//! as `[[inputs]]` entries.

use std::sync::Arc;

use anyhow::Context;
use crowsnest_ingest::listen::inputs::{start_all, InputConfig, SourceContext};
use crowsnest_ingest::listen::{Listener, Submit, SubmitFailure, SubmitFuture};
use crowsnest_normalize::Decoded;
use serde::{Deserialize, Deserializer, Serialize};

use crate::pipeline::Admission;
use crate::AppState;

/// Limits of the ecosystem inputs (`[input_limits]`), and the per-request event cap the HTTP
/// inputs share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputLimits {
    /// Longest forward message, in bytes (16 MiB).
    pub max_frame_bytes: usize,
    /// Longest syslog message on a stream (octet-counted or newline-framed), in bytes
    /// (256 KiB). A stream that goes on past it without a newline is cut off there.
    pub max_syslog_frame_bytes: usize,
    /// Most events taken from one HTTP request or forward message (100 000); an HTTP request
    /// known to hold more is refused whole with 413 before it is decoded.
    pub max_events_per_request: usize,
    /// Most open connections per stream listener (512); past it a new connection is closed
    /// at once, with a log line.
    pub max_connections: usize,
    /// Most open connections per stream listener from one source IP address (64).
    pub max_connections_per_ip: usize,
    /// Seconds a stream connection may send nothing before it is closed (300); also bounds
    /// TLS and forward handshakes.
    pub idle_timeout_secs: u64,
}

impl Default for InputLimits {
    fn default() -> Self {
        let limits = crowsnest_ingest::Limits::default();
        Self {
            max_frame_bytes: limits.max_frame_bytes,
            max_syslog_frame_bytes: limits.max_syslog_frame_bytes,
            max_events_per_request: limits.max_events,
            max_connections: limits.max_connections,
            max_connections_per_ip: limits.max_connections_per_ip,
            idle_timeout_secs: limits.idle_timeout.as_secs(),
        }
    }
}

/// Reads `inputs`: a list of `[[inputs]]` entries. The `[inputs]` table of earlier versions
/// is refused with the way to write it now.
pub(crate) fn deserialize_inputs<'de, D>(deserializer: D) -> Result<Vec<InputConfig>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<InputConfig>),
        Table(toml::Table),
    }
    match Either::deserialize(deserializer)? {
        Either::List(list) => Ok(list),
        Either::Table(table) => {
            let mut entries = Vec::new();
            for (key, value) in &table {
                let entry = match (key.as_str(), value.as_str()) {
                    ("syslog_udp" | "syslog_tcp" | "syslog_tls", Some(addr)) => format!(
                        "[[inputs]]\ntype = \"syslog\"\ntransport = \"{}\"\nlisten = \"{addr}\"",
                        &key["syslog_".len()..]
                    ),
                    ("forward" | "forward_tls", Some(addr)) => {
                        format!("[[inputs]]\ntype = \"forward\"\nlisten = \"{addr}\"")
                    }
                    _ => continue,
                };
                entries.push(entry);
            }
            let example = if entries.is_empty() {
                "[[inputs]]\ntype = \"syslog\"\ntransport = \"tcp\"\nlisten = \"127.0.0.1:6514\""
                    .to_string()
            } else {
                entries.join("\n\n")
            };
            Err(serde::de::Error::custom(format!(
                "`[inputs]` is now a list of `[[inputs]]` entries, one per listener (TLS files, forward keys and users go in the entry; limits in `[input_limits]`); for example:\n{example}"
            )))
        } // An entry that does not parse: say why, with the entry's own error.
    }
}

/// Hands listener batches to the pipeline, waiting for room when it is saturated.
struct PipelineSink(Arc<AppState>);

impl Submit for PipelineSink {
    fn submit(&self, decoded: Decoded, input: &'static str) -> SubmitFuture<'_> {
        Box::pin(async move {
            // Wait for room rather than refuse: a stream listener that waits stops reading its
            // socket, and TCP pushes back on the sender; nothing is dropped.
            self.0
                .pipeline
                .submit_decoded(decoded, input, Admission::Wait)
                .await
                .map(|(accepted, _)| accepted)
                .map_err(|error| SubmitFailure(error.to_string()))
        })
    }
}

/// Starts the configured listeners. Dropping the returned listeners stops them.
///
/// # Errors
///
/// When an entry is incomplete, an address cannot be bound or the TLS files cannot be loaded.
pub async fn start(state: Arc<AppState>) -> anyhow::Result<Vec<Listener>> {
    let context = SourceContext {
        limits: crate::api::ingest_limits(&state),
        budget: Some(state.decode_budget.clone()),
        sink: Arc::new(PipelineSink(state.clone())),
    };
    start_all(&state.config.inputs, &context)
        .await
        .map_err(|(input, error)| anyhow::anyhow!("input `{input}`: {error}"))
        .context("starting the [[inputs]] listeners")
}

#[cfg(test)]
mod tests {
    use crate::ServerConfig;

    #[test]
    fn the_old_inputs_table_is_refused_with_the_new_form() {
        let error = toml::from_str::<ServerConfig>(
            "[inputs]\nsyslog_tcp = \"127.0.0.1:6514\"\nforward = \"127.0.0.1:24224\"\n",
        )
        .expect_err("refused");
        let text = error.to_string();
        assert!(text.contains("[[inputs]]"), "{text}");
        assert!(text.contains("transport = \"tcp\""), "{text}");
        assert!(text.contains("listen = \"127.0.0.1:24224\""), "{text}");
    }

    #[test]
    fn inputs_and_their_limits_parse() {
        let config: ServerConfig = toml::from_str(
            "[input_limits]\nmax_connections = 7\n\n[[inputs]]\ntype = \"syslog\"\ntransport = \"udp\"\nlisten = \"127.0.0.1:5514\"\n",
        )
        .expect("config");
        assert_eq!(config.input_limits.max_connections, 7);
        assert_eq!(config.inputs.len(), 1);
        // A bad entry says which key is wrong.
        let error = toml::from_str::<ServerConfig>(
            "[[inputs]]\ntype = \"syslog\"\nlisten = \"127.0.0.1:1\"\ntransprt = \"udp\"\n",
        )
        .expect_err("typo");
        assert!(error.to_string().contains("inputs"), "{error}");
    }
}
