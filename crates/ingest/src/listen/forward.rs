//! The Fluent forward listener: TCP or TLS, with the optional shared-key handshake
//! ([`crate::fluent_auth`]) before any event is read.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{accept_loop, Listener, SharedLimits, Submit};
use crate::fluent::{ack, next_message, ForwardFrame};
use crate::fluent_auth::{next_ping, ForwardAuth, PingFrame};
use crate::Limits;

/// How a forward listener secures its connections. The default (no TLS, no key) is plain
/// TCP without a handshake, which every forward client speaks.
#[derive(Clone, Default)]
pub struct ForwardOptions {
    /// Wrap every connection in TLS (Fluent Bit's `tls on`, Fluentd's `<transport tls>`).
    pub tls: Option<TlsAcceptor>,
    /// Require the shared-key handshake (HELO, PING, PONG) before events.
    pub auth: Option<Arc<ForwardAuth>>,
}

impl std::fmt::Debug for ForwardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardOptions")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth)
            .finish()
    }
}

/// Listens for the forward protocol on `addr` over plain TCP, without a handshake.
///
/// # Errors
///
/// When the socket cannot be bound.
pub async fn forward_tcp(
    addr: &str,
    sink: Arc<dyn Submit>,
    limits: Limits,
) -> std::io::Result<Listener> {
    forward_listener(addr, ForwardOptions::default(), sink, limits).await
}

/// Listens for the forward protocol on `addr`, with TLS and the shared-key handshake as
/// `options` say. The protocol is logged as `forward` or `forward/tls`.
///
/// # Errors
///
/// When the socket cannot be bound.
pub async fn forward_listener(
    addr: &str,
    options: ForwardOptions,
    sink: Arc<dyn Submit>,
    limits: Limits,
) -> std::io::Result<Listener> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let protocol = match options.tls {
        Some(_) => "forward/tls",
        None => "forward",
    };
    let limits: SharedLimits = Arc::new(limits);
    let max_connections = limits.max_connections;
    let task = accept_loop(listener, protocol, max_connections, move |stream, _peer| {
        let (sink, limits, options) = (sink.clone(), limits.clone(), options.clone());
        async move {
            match &options.tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => serve(stream, options.auth.as_deref(), sink, &limits).await,
                    Err(error) => Err(format!("TLS handshake failed: {error}")),
                },
                None => serve(stream, options.auth.as_deref(), sink, &limits).await,
            }
        }
    });
    Ok(Listener::new(local_addr, protocol, task))
}

/// Runs the handshake when configured, then reads forward messages until EOF.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    auth: Option<&ForwardAuth>,
    sink: Arc<dyn Submit>,
    limits: &Limits,
) -> Result<(), String> {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    if let Some(auth) = auth {
        let handshake = handshake(&mut stream, auth, &mut buffer, &mut chunk);
        match tokio::time::timeout(auth.handshake_timeout, handshake).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                let _ = stream.shutdown().await;
                return Err(reason);
            }
            Err(_) => {
                return Err(format!(
                    "expected a PING within {:?} of HELO",
                    auth.handshake_timeout
                ))
            }
        }
    }
    loop {
        // Bytes that arrived with the PING are decoded before reading more.
        while !buffer.is_empty() {
            match next_message(&buffer, limits) {
                ForwardFrame::Complete {
                    consumed,
                    decoded,
                    chunk,
                } => {
                    buffer.drain(..consumed);
                    let stored = sink.submit(decoded, "fluent").await;
                    match (stored, chunk) {
                        (Ok(_), Some(chunk)) => stream
                            .write_all(&ack(&chunk))
                            .await
                            .map_err(|e| format!("writing the ack failed: {e}"))?,
                        (Ok(_), None) => {}
                        // No ack: the sender retries the chunk.
                        (Err(error), _) => tracing::warn!(%error, "forward batch not stored"),
                    }
                }
                ForwardFrame::Incomplete => break,
                ForwardFrame::Invalid(reason) => return Err(reason),
            }
        }
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if read == 0 {
            if buffer.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "connection closed inside a message ({} bytes pending)",
                buffer.len()
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Sends HELO, reads the PING into `buffer` and answers PONG; leaves in `buffer` whatever
/// followed the PING. An error means the client is refused (after a PONG saying why, when
/// its PING could be read).
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &ForwardAuth,
    buffer: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Result<(), String> {
    let challenge = auth.challenge();
    stream
        .write_all(&auth.helo(&challenge))
        .await
        .map_err(|e| format!("writing HELO failed: {e}"))?;
    loop {
        match next_ping(buffer) {
            PingFrame::Complete { consumed, ping } => {
                buffer.drain(..consumed);
                let pong = auth.answer(&challenge, &ping);
                stream
                    .write_all(&pong.bytes)
                    .await
                    .map_err(|e| format!("writing PONG failed: {e}"))?;
                return match pong.accepted {
                    true => Ok(()),
                    false => Err(format!("forward client refused: {}", pong.reason)),
                };
            }
            PingFrame::Incomplete => {}
            PingFrame::Invalid(reason) => return Err(reason),
        }
        let read = stream
            .read(chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if read == 0 {
            return Err("expected a PING after HELO, the connection closed".to_string());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}
