//! The Fluent forward listener: TCP or TLS, with the optional shared-key handshake
//! ([`crate::fluent_auth`]) before any event is read.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{accept_loop, limiter, FrameReader, Listener, SharedLimits, Submit};
use crate::fluent::{ack, next_message, ForwardFrame};
use crate::fluent_auth::{next_ping, ForwardAuth, PingFrame};
use crate::limits::DecodeBudget;
use crate::Limits;

/// How a forward listener secures its connections. The default (no TLS, no key) is plain
/// TCP without a handshake, which every forward client speaks.
#[derive(Clone, Default)]
pub struct ForwardOptions {
    /// Wrap every connection in TLS (Fluent Bit's `tls on`, Fluentd's `<transport tls>`).
    pub tls: Option<TlsAcceptor>,
    /// Require the shared-key handshake (HELO, PING, PONG) before events.
    pub auth: Option<Arc<ForwardAuth>>,
    /// Reserve what a connection buffers past 64 KiB from this server-wide budget.
    pub budget: Option<DecodeBudget>,
}

impl std::fmt::Debug for ForwardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardOptions")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth)
            .field("budget", &self.budget)
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
    let limiter = limiter(protocol, &limits);
    let task = accept_loop(listener, protocol, limiter, move |stream, _peer| {
        let (sink, limits, options) = (sink.clone(), limits.clone(), options.clone());
        async move {
            let reader = FrameReader::new(&limits, options.budget.as_ref());
            let auth = options.auth.as_deref();
            match &options.tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.idle_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => serve(stream, auth, sink, &limits, reader).await,
                        Ok(Err(error)) => Err(format!("TLS handshake failed: {error}")),
                        Err(_) => Err(format!(
                            "no TLS handshake within {} s (idle_timeout)",
                            limits.idle_timeout.as_secs_f64()
                        )),
                    }
                }
                None => serve(stream, auth, sink, &limits, reader).await,
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
    mut reader: FrameReader,
) -> Result<(), String> {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    // One byte past the cap shows a message is too long.
    let room = |buffer: &Vec<u8>| (limits.max_frame_bytes + 1).saturating_sub(buffer.len());
    if let Some(auth) = auth {
        let handshake = handshake(&mut stream, auth, &mut buffer, &mut reader);
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
                    reader.release(buffer.len());
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
        let room = room(&buffer);
        let read = reader.read(&mut stream, &mut buffer, room).await?;
        if read == 0 {
            if buffer.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "connection closed inside a message ({} bytes pending)",
                buffer.len()
            ));
        }
    }
}

/// Sends HELO, reads the PING into `buffer` and answers PONG; leaves in `buffer` whatever
/// followed the PING. An error means the client is refused (after a PONG saying why, when
/// its PING could be read).
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: &ForwardAuth,
    buffer: &mut Vec<u8>,
    reader: &mut FrameReader,
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
        // A PING is small: 64 KiB is plenty.
        let room = (64 * 1024usize).saturating_sub(buffer.len());
        if room == 0 {
            return Err("expected a PING within 64 KiB after HELO".to_string());
        }
        let read = reader.read(stream, buffer, room).await?;
        if read == 0 {
            return Err("expected a PING after HELO, the connection closed".to_string());
        }
    }
}
