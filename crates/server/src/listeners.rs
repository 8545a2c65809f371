//! The non-HTTP inputs: syslog (UDP, TCP, TLS) and Fluent forward listeners, off unless
//! configured (`[inputs]` in the config file, or `--syslog-udp`, `--syslog-tcp`,
//! `--syslog-tls`, `--forward`).
//!
//! They decode with `crowsnest-ingest` and submit through the same path as the HTTP ingest
//! endpoints ([`crowsnest_pipeline::Pipeline::submit_decoded`]): an event is acknowledged (a forward `ack`
//! sent) only once it is in the WAL. When the pipeline is saturated they wait for room instead of
//! refusing, so TCP pushes back on the sender and nothing is dropped.
//!
//! Syslog has no authentication: bind it to loopback or a private interface, or firewall it.
//! Forward authenticates when a shared key is configured (`forward_shared_key`, or better
//! `forward_shared_key_file` / `--forward-shared-key-file` so the secret stays out of the
//! config file): every connection must then pass the HELO/PING/PONG handshake of the forward
//! protocol v1 (Fluentd `<security> shared_key`, Fluent Bit `Shared_Key`), and with
//! `forward_users` also a username and password. `forward_tls` serves the same protocol
//! inside TLS (Fluent Bit `tls on`, Fluentd `<transport tls>`) with `tls_cert`/`tls_key`.
//!
//! ```toml
//! [inputs]
//! forward = "0.0.0.0:24224"
//! forward_tls = "0.0.0.0:24284"
//! tls_cert = "/etc/crowsnest/cert.pem"
//! tls_key = "/etc/crowsnest/key.pem"
//! forward_shared_key_file = "/etc/crowsnest/forward.key"
//! forward_users = [{ username = "fluentbit", password = "..." }]
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use crowsnest_ingest::fluent_auth::{ForwardAuth, ForwardUser};
use crowsnest_ingest::listen::{
    self, ForwardOptions, Listener, Submit, SubmitFailure, SubmitFuture, SyslogOptions,
};
use crowsnest_normalize::Decoded;
use serde::{Deserialize, Serialize};

use crate::pipeline::Admission;
use crate::AppState;

/// Listener addresses and limits of the ecosystem inputs. Its `Debug` hides the forward
/// shared key and passwords.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputsConfig {
    /// Syslog over UDP, e.g. `127.0.0.1:5514` (off when unset).
    pub syslog_udp: Option<String>,
    /// Syslog over TCP (RFC 6587 octet counting or newline framing).
    pub syslog_tcp: Option<String>,
    /// Syslog over TLS; needs `tls_cert` and `tls_key`.
    pub syslog_tls: Option<String>,
    /// PEM certificate chain for `syslog_tls` and `forward_tls`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `syslog_tls` and `forward_tls`.
    pub tls_key: Option<PathBuf>,
    /// Fluent forward protocol over TCP, e.g. `127.0.0.1:24224`.
    pub forward: Option<String>,
    /// Fluent forward protocol over TLS; needs `tls_cert` and `tls_key`.
    pub forward_tls: Option<String>,
    /// Shared key every forward client must prove it knows (the HELO/PING/PONG handshake);
    /// no handshake when neither this nor `forward_shared_key_file` is set.
    pub forward_shared_key: Option<String>,
    /// File holding the forward shared key (surrounding whitespace ignored), instead of
    /// `forward_shared_key`.
    pub forward_shared_key_file: Option<PathBuf>,
    /// Users a forward client must also name in its PING (needs a shared key; empty: no user
    /// authentication).
    pub forward_users: Vec<ForwardUser>,
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
            forward_tls: None,
            forward_shared_key: None,
            forward_shared_key_file: None,
            forward_users: Vec::new(),
            max_frame_bytes: limits.max_frame_bytes,
            max_syslog_frame_bytes: 256 * 1024,
            max_events_per_request: limits.max_events,
            max_connections: limits.max_connections,
            max_connections_per_ip: limits.max_connections_per_ip,
            idle_timeout_secs: limits.idle_timeout.as_secs(),
        }
    }
}

impl std::fmt::Debug for InputsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputsConfig")
            .field("syslog_udp", &self.syslog_udp)
            .field("syslog_tcp", &self.syslog_tcp)
            .field("syslog_tls", &self.syslog_tls)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("forward", &self.forward)
            .field("forward_tls", &self.forward_tls)
            .field(
                "forward_shared_key",
                &self.forward_shared_key.as_ref().map(|_| "<redacted>"),
            )
            .field("forward_shared_key_file", &self.forward_shared_key_file)
            .field("forward_users", &self.forward_users)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_syslog_frame_bytes", &self.max_syslog_frame_bytes)
            .field("max_events_per_request", &self.max_events_per_request)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .finish()
    }
}

impl InputsConfig {
    /// The forward handshake settings, or `None` when no shared key is configured.
    ///
    /// # Errors
    ///
    /// When both `forward_shared_key` and `forward_shared_key_file` are set, the key file
    /// cannot be read, the key is empty, or `forward_users` is set without a key.
    pub fn forward_auth(&self) -> anyhow::Result<Option<ForwardAuth>> {
        let key = match (&self.forward_shared_key, &self.forward_shared_key_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "expected one of `inputs.forward_shared_key` and `inputs.forward_shared_key_file`, found both"
            ),
            (Some(key), None) => Some(key.clone()),
            (None, Some(path)) => Some(read_key_file(path)?),
            (None, None) => None,
        };
        match key {
            None if !self.forward_users.is_empty() => anyhow::bail!(
                "`inputs.forward_users` needs a forward shared key (`forward_shared_key_file`)"
            ),
            None => Ok(None),
            Some(key) if key.trim().is_empty() => {
                anyhow::bail!("expected a non-empty forward shared key")
            }
            Some(key) => Ok(Some(
                ForwardAuth::new(key, hostname()).with_users(self.forward_users.clone()),
            )),
        }
    }
}

fn read_key_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the forward shared key file `{}`", path.display()))?;
    Ok(text.trim().to_string())
}

/// The name sent in PONG (the kernel's hostname, `crowsnest` when it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "crowsnest".to_string())
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
/// When an address cannot be bound or the TLS files cannot be loaded.
pub async fn start(state: Arc<AppState>) -> anyhow::Result<Vec<Listener>> {
    let inputs = state.config.inputs.clone();
    let limits = crate::api::ingest_limits(&state);
    let syslog_limits = crowsnest_ingest::Limits {
        max_frame_bytes: inputs.max_syslog_frame_bytes,
        ..limits
    };
    let budget = Some(state.decode_budget.clone());
    let sink: Arc<dyn Submit> = Arc::new(PipelineSink(state));
    let mut listeners = Vec::new();
    if let Some(addr) = &inputs.syslog_udp {
        let listener = listen::syslog_udp(addr, sink.clone(), syslog_limits)
            .await
            .with_context(|| format!("binding syslog/udp `{addr}`"))?;
        listeners.push(listener);
    }
    if let Some(addr) = &inputs.syslog_tcp {
        let options = SyslogOptions {
            tls: None,
            budget: budget.clone(),
        };
        let listener = listen::syslog_listener(addr, options, sink.clone(), syslog_limits)
            .await
            .with_context(|| format!("binding syslog/tcp `{addr}`"))?;
        listeners.push(listener);
    }
    if let Some(addr) = &inputs.syslog_tls {
        let options = SyslogOptions {
            tls: Some(tls_acceptor(&inputs, "syslog_tls")?),
            budget: budget.clone(),
        };
        let listener = listen::syslog_listener(addr, options, sink.clone(), syslog_limits)
            .await
            .with_context(|| format!("binding syslog/tls `{addr}`"))?;
        listeners.push(listener);
    }
    let auth = inputs.forward_auth()?.map(Arc::new);
    if let Some(addr) = &inputs.forward {
        let options = ForwardOptions {
            tls: None,
            auth: auth.clone(),
            budget: budget.clone(),
        };
        let listener = listen::forward_listener(addr, options, sink.clone(), limits)
            .await
            .with_context(|| format!("binding forward `{addr}`"))?;
        listeners.push(listener);
    }
    if let Some(addr) = &inputs.forward_tls {
        let options = ForwardOptions {
            tls: Some(tls_acceptor(&inputs, "forward_tls")?),
            auth,
            budget,
        };
        let listener = listen::forward_listener(addr, options, sink.clone(), limits)
            .await
            .with_context(|| format!("binding forward/tls `{addr}`"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn tls_acceptor(
    inputs: &InputsConfig,
    key: &str,
) -> anyhow::Result<crowsnest_ingest::listen::TlsAcceptor> {
    let (Some(cert), Some(private_key)) = (&inputs.tls_cert, &inputs.tls_key) else {
        anyhow::bail!("`{key}` needs `inputs.tls_cert` and `inputs.tls_key` (PEM files)");
    };
    Ok(listen::tls_acceptor(cert, private_key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_means_no_handshake_and_a_key_file_is_trimmed() {
        assert!(InputsConfig::default()
            .forward_auth()
            .expect("no key")
            .is_none());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("forward.key");
        std::fs::write(&path, "  s3cret\n").expect("write");
        let inputs = InputsConfig {
            forward_shared_key_file: Some(path),
            ..InputsConfig::default()
        };
        let auth = inputs.forward_auth().expect("auth").expect("a key");
        // The trimmed key is the one the handshake checks.
        let inline = InputsConfig {
            forward_shared_key: Some("s3cret".into()),
            ..InputsConfig::default()
        }
        .forward_auth()
        .expect("auth")
        .expect("a key");
        let challenge = auth.challenge();
        let ping = rmpv::Value::Array(vec![
            "PING".into(),
            "c".into(),
            "salt".into(),
            crowsnest_ingest::fluent_auth::shared_key_digest(
                b"salt",
                b"c",
                &challenge.nonce,
                b"s3cret",
            )
            .into(),
            "".into(),
            "".into(),
        ]);
        assert!(auth.answer(&challenge, &ping).accepted);
        assert!(inline.answer(&challenge, &ping).accepted);
    }

    #[test]
    fn contradictory_or_empty_forward_keys_are_refused() {
        let both = InputsConfig {
            forward_shared_key: Some("a".into()),
            forward_shared_key_file: Some("/nonexistent".into()),
            ..InputsConfig::default()
        };
        assert!(both.forward_auth().is_err());
        let empty = InputsConfig {
            forward_shared_key: Some("  ".into()),
            ..InputsConfig::default()
        };
        assert!(empty.forward_auth().is_err());
        let users_only = InputsConfig {
            forward_users: vec![ForwardUser {
                username: "u".into(),
                password: "p".into(),
            }],
            ..InputsConfig::default()
        };
        let error = users_only.forward_auth().expect_err("users need a key");
        assert!(error.to_string().contains("forward_users"), "{error}");
        let missing = InputsConfig {
            forward_shared_key_file: Some("/nonexistent/forward.key".into()),
            ..InputsConfig::default()
        };
        let error = missing.forward_auth().expect_err("unreadable");
        assert!(format!("{error:#}").contains("forward.key"), "{error:#}");
    }

    #[test]
    fn users_come_from_toml_and_debug_hides_secrets() {
        let inputs: InputsConfig = toml::from_str(
            "forward_shared_key = \"topsecret\"\nforward_users = [{ username = \"fb\", password = \"hunter2\" }]\n",
        )
        .expect("toml");
        assert_eq!(inputs.forward_users[0].username, "fb");
        let auth = inputs.forward_auth().expect("auth").expect("a key");
        assert!(auth.requires_users());
        let shown = format!("{inputs:?} {auth:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(toml::from_str::<InputsConfig>(
            "forward_users = [{ username = \"a\", pasword = \"b\" }]"
        )
        .is_err());
    }
}
