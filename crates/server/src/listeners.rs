//! The non-HTTP inputs: syslog (UDP, TCP, TLS) and Fluent forward listeners, off unless
//! configured (`[inputs]` in the config file, or `--syslog-udp`, `--syslog-tcp`,
//! `--syslog-tls`, `--forward`).
//!
//! They decode with `crowsnest-ingest` and submit through the same path as the HTTP ingest
//! endpoints ([`crate::api::submit_decoded`]): an event is acknowledged (a forward `ack`
//! sent) only once it is in the WAL. Syslog has no authentication and forward's shared-key
//! handshake is not implemented: bind these to loopback or a private interface, or firewall
//! them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use crowsnest_ingest::listen::{self, Listener, Submit, SubmitFailure, SubmitFuture};
use crowsnest_normalize::Decoded;
use serde::{Deserialize, Serialize};

use crate::AppState;

/// Listener addresses and limits of the ecosystem inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputsConfig {
    /// Syslog over UDP, e.g. `127.0.0.1:5514` (off when unset).
    pub syslog_udp: Option<String>,
    /// Syslog over TCP (RFC 6587 octet counting or newline framing).
    pub syslog_tcp: Option<String>,
    /// Syslog over TLS; needs `tls_cert` and `tls_key`.
    pub syslog_tls: Option<String>,
    /// PEM certificate chain for `syslog_tls`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `syslog_tls`.
    pub tls_key: Option<PathBuf>,
    /// Fluent forward protocol over TCP, e.g. `127.0.0.1:24224`.
    pub forward: Option<String>,
    /// Longest syslog frame or forward message, in bytes (16 MiB).
    pub max_frame_bytes: usize,
    /// Most events taken from one request or frame (100 000).
    pub max_events_per_request: usize,
    /// Most open connections per stream listener (512).
    pub max_connections: usize,
}

impl Default for InputsConfig {
    fn default() -> Self {
        let limits = crowsnest_ingest::Limits::default();
        Self {
            syslog_udp: None,
            syslog_tcp: None,
            syslog_tls: None,
            tls_cert: None,
            tls_key: None,
            forward: None,
            max_frame_bytes: limits.max_frame_bytes,
            max_events_per_request: limits.max_events,
            max_connections: limits.max_connections,
        }
    }
}

/// Hands listener batches to the pipeline.
struct PipelineSink(Arc<AppState>);

impl Submit for PipelineSink {
    fn submit(&self, decoded: Decoded, input: &'static str) -> SubmitFuture<'_> {
        Box::pin(async move {
            crate::api::submit_decoded(&self.0, decoded, input)
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
/// When an address cannot be bound or the TLS files cannot be loaded.
pub async fn start(state: Arc<AppState>) -> anyhow::Result<Vec<Listener>> {
    let inputs = state.config.inputs.clone();
    let limits = crate::api::ingest_limits(&state);
    let sink: Arc<dyn Submit> = Arc::new(PipelineSink(state));
    let mut listeners = Vec::new();
    if let Some(addr) = &inputs.syslog_udp {
        let listener = listen::syslog_udp(addr, sink.clone(), limits)
            .await
            .with_context(|| format!("binding syslog/udp `{addr}`"))?;
        listeners.push(listener);
    }
    if let Some(addr) = &inputs.syslog_tcp {
        let listener = listen::syslog_tcp(addr, None, sink.clone(), limits)
            .await
            .with_context(|| format!("binding syslog/tcp `{addr}`"))?;
        listeners.push(listener);
    }
    if let Some(addr) = &inputs.syslog_tls {
        let (Some(cert), Some(key)) = (&inputs.tls_cert, &inputs.tls_key) else {
            anyhow::bail!("`syslog_tls` needs `inputs.tls_cert` and `inputs.tls_key` (PEM files)");
        };
        let acceptor = listen::tls_acceptor(cert, key)?;
        let listener = listen::syslog_tcp(addr, Some(acceptor), sink.clone(), limits)
            .await
            .with_context(|| format!("binding syslog/tls `{addr}`"))?;
        listeners.push(listener);
    }
    if let Some(addr) = &inputs.forward {
        let listener = listen::forward_tcp(addr, sink.clone(), limits)
            .await
            .with_context(|| format!("binding forward `{addr}`"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}
