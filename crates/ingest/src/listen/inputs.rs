//! The `[[inputs]]` registry: each configured network input is one tagged entry, and each kind
//! of input is one file under `listen/` whose config struct implements [`Source`].
//!
//! ```toml
//! [[inputs]]
//! type = "syslog"
//! transport = "tcp"                 # udp, tcp or tls
//! listen = "127.0.0.1:6514"
//!
//! [[inputs]]
//! type = "forward"
//! listen = "0.0.0.0:24284"
//! tls = { cert = "/etc/crowsnest/tls.crt", key = "/etc/crowsnest/tls.key" }
//! shared_key_file = "/etc/crowsnest/forward.key"
//! users = [{ username = "fluentbit", password = "..." }]
//! ```
//!
//! Adding an input: write `listen/<name>.rs` with its config struct (serde, `deny_unknown_fields`)
//! and `impl Source` for it, then add one variant to [`InputConfig`] and its arm to
//! [`InputConfig::source`]. The server starts every entry the same way.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Listener, Submit};
use crate::limits::DecodeBudget;
use crate::{IngestError, Limits};

pub use super::forward::ForwardInput;
pub use super::syslog::{SyslogInput, SyslogTransport};

/// What a [`Source`] runs with.
#[derive(Clone)]
pub struct SourceContext {
    /// Where decoded batches go (the server's pipeline).
    pub sink: Arc<dyn Submit>,
    /// The limits of every input ([`Limits::max_syslog_frame_bytes`] for syslog streams).
    pub limits: Limits,
    /// The server-wide decode budget connections reserve their buffers from.
    pub budget: Option<DecodeBudget>,
}

/// The future [`Source::start`] returns.
pub type StartFuture<'a> = Pin<Box<dyn Future<Output = Result<Listener, IngestError>> + Send + 'a>>;

/// A configured network input.
pub trait Source: Send + Sync {
    /// The protocol and address, for logs and errors (`syslog/tcp 127.0.0.1:6514`).
    fn describe(&self) -> String;
    /// Checks the entry (files that must exist, settings that go together) without binding.
    ///
    /// # Errors
    ///
    /// [`IngestError::Config`] naming the setting.
    fn check(&self) -> Result<(), IngestError> {
        Ok(())
    }
    /// Binds and starts serving.
    fn start(&self, context: SourceContext) -> StartFuture<'_>;
}

/// TLS files of an input (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Loads the acceptor.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or holds no usable certificate or key.
    pub fn acceptor(&self) -> Result<super::TlsAcceptor, IngestError> {
        super::tls_acceptor(&self.cert, &self.key)
    }
}

/// One `[[inputs]]` entry, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputConfig {
    /// Syslog (RFC 5424 and 3164) over UDP, TCP or TLS: `listen/syslog.rs`.
    Syslog(SyslogInput),
    /// The Fluent forward protocol over TCP or TLS: `listen/forward.rs`.
    Forward(ForwardInput),
}

impl InputConfig {
    /// The entry's [`Source`].
    pub fn source(&self) -> &dyn Source {
        match self {
            Self::Syslog(input) => input,
            Self::Forward(input) => input,
        }
    }

    /// Syslog on `listen` over `transport` (the `--syslog-*` flags).
    pub fn syslog(listen: impl Into<String>, transport: SyslogTransport) -> Self {
        Self::Syslog(SyslogInput {
            listen: listen.into(),
            transport,
            tls: None,
        })
    }

    /// Forward on `listen`, plain TCP without a handshake (the `--forward` flag).
    pub fn forward(listen: impl Into<String>) -> Self {
        Self::Forward(ForwardInput {
            listen: listen.into(),
            tls: None,
            shared_key: None,
            shared_key_file: None,
            users: Vec::new(),
        })
    }
}

/// Starts every entry; the first that cannot be checked or bound stops the lot, with its
/// description in the error.
///
/// # Errors
///
/// The failing entry's error, as `syslog/tcp 127.0.0.1:6514: ...`.
pub async fn start_all(
    inputs: &[InputConfig],
    context: &SourceContext,
) -> Result<Vec<Listener>, (String, IngestError)> {
    for input in inputs {
        let source = input.source();
        source.check().map_err(|e| (source.describe(), e))?;
    }
    let mut listeners = Vec::with_capacity(inputs.len());
    for input in inputs {
        let source = input.source();
        let listener = source
            .start(context.clone())
            .await
            .map_err(|e| (source.describe(), e))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        inputs: Vec<InputConfig>,
    }

    #[test]
    fn entries_parse_by_type_and_refuse_unknown_keys() {
        let file: File = toml::from_str(
            r#"
            [[inputs]]
            type = "syslog"
            transport = "udp"
            listen = "127.0.0.1:5514"

            [[inputs]]
            type = "syslog"
            listen = "127.0.0.1:6514"

            [[inputs]]
            type = "forward"
            listen = "127.0.0.1:24224"
            shared_key = "k"
            users = [{ username = "u", password = "p" }]
            "#,
        )
        .expect("config");
        assert_eq!(
            file.inputs[0],
            InputConfig::syslog("127.0.0.1:5514", SyslogTransport::Udp)
        );
        assert_eq!(
            file.inputs[1],
            InputConfig::syslog("127.0.0.1:6514", SyslogTransport::Tcp)
        );
        assert_eq!(
            file.inputs[2].source().describe(),
            "forward 127.0.0.1:24224"
        );
        let typo = toml::from_str::<File>(
            "[[inputs]]\ntype = \"syslog\"\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n",
        );
        assert!(typo.is_err());
        let unknown = toml::from_str::<File>("[[inputs]]\ntype = \"gelf\"\nlisten = \"x\"\n")
            .err()
            .expect("unknown type");
        assert!(unknown.to_string().contains("gelf"), "{unknown}");
    }

    #[test]
    fn tls_transport_needs_its_files_and_users_need_a_key() {
        let tls = InputConfig::syslog("127.0.0.1:0", SyslogTransport::Tls);
        let error = tls.source().check().expect_err("no files");
        assert!(error.to_string().contains("tls"), "{error}");
        let InputConfig::Forward(mut forward) = InputConfig::forward("127.0.0.1:0") else {
            unreachable!("forward");
        };
        forward.users = vec![crate::fluent_auth::ForwardUser {
            username: "u".into(),
            password: "p".into(),
        }];
        let error = forward.check().expect_err("users without a key");
        assert!(error.to_string().contains("shared_key"), "{error}");
    }
}
