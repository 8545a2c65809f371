//! Network listeners for the non-HTTP inputs: syslog over UDP, TCP and TLS, and the Fluent
//! forward protocol over TCP.
//!
//! A listener owns its socket and tasks; it decodes with this crate's pure decoders and hands
//! every batch to a [`Submit`] implementation, so this crate does not depend on the server.
//! `Submit::submit` must resolve only once the events are durable: the forward listener
//! sends its `ack` after it, and stream listeners read no further from a connection while a
//! batch is pending (TCP back-pressure reaches the sender).
//!
//! Syslog does not authenticate (it has no such notion), nor does forward unless a shared key
//! is configured ([`ForwardOptions::auth`], the handshake of [`crate::fluent_auth`]): bind them
//! to loopback or a private interface, or firewall them.
//! Each stream listener accepts at most [`Limits::max_connections`] connections at once, and
//! [`Limits::max_connections_per_ip`] from one source address; past either, a new connection
//! is closed at once (with a rate-limited log line), so idle or hostile clients cannot lock
//! real senders out or use up the file descriptors. A connection that sends nothing for
//! [`Limits::idle_timeout`] is closed (this bounds TLS and forward handshakes too). A frame is
//! held to its maximum length as its bytes arrive, and a connection whose stream cannot be
//! framed (or whose frame is too long) is closed after its good frames are submitted. With a
//! [`DecodeBudget`] ([`ForwardOptions::budget`], [`SyslogOptions::budget`]), what a connection
//! buffers past 64 KiB is reserved from the server-wide decode budget first.

mod conn;
mod forward;
pub mod inputs;
mod syslog;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};

use crowsnest_normalize::Decoded;

pub use conn::{open_files_limit, AcceptBackoff, ConnectionGuard, ConnectionLimiter, Refusal};
pub use forward::{forward_listener, forward_tcp, ForwardInput, ForwardOptions};
pub use inputs::{InputConfig, Source, SourceContext, TlsFiles};
pub use syslog::{
    syslog_listener, syslog_tcp, syslog_udp, SyslogInput, SyslogOptions, SyslogTransport,
};
pub use tls::tls_acceptor;
/// The TLS acceptor [`tls_acceptor`] builds and [`ForwardOptions::tls`] takes.
pub use tokio_rustls::TlsAcceptor;

use crate::limits::{decode_cost, DecodeBudget, Reservation};
use crate::Limits;

/// Why a batch could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SubmitFailure(pub String);

/// The future [`Submit::submit`] returns.
pub type SubmitFuture<'a> = Pin<Box<dyn Future<Output = Result<usize, SubmitFailure>> + Send + 'a>>;

/// Where listeners send what they decoded (the server's ingest pipeline).
pub trait Submit: Send + Sync + 'static {
    /// Stores the events of `decoded` (and counts its errors) for the input named `input`
    /// (`syslog`, `fluent`); resolves with the number stored once they are durable.
    fn submit(&self, decoded: Decoded, input: &'static str) -> SubmitFuture<'_>;
}

/// A running listener. Dropping it (or [`Listener::stop`]) stops accepting.
#[derive(Debug)]
pub struct Listener {
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    /// The protocol, for logs: `syslog/udp`, `syslog/tcp`, `syslog/tls`, `forward`.
    pub protocol: &'static str,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    pub(crate) fn new(
        local_addr: SocketAddr,
        protocol: &'static str,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        tracing::info!(%local_addr, protocol, "listener started");
        Self {
            local_addr,
            protocol,
            task,
        }
    }

    /// Stops accepting (the same as dropping the listener). Connections already open finish
    /// their current batch.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The limits a listener was started with, shared by its connection tasks.
pub(crate) type SharedLimits = std::sync::Arc<Limits>;

/// Accepts connections on `listener` and serves each on its own task while `limiter` admits
/// it; a refused connection is closed at once (logged, rate-limited), a failed accept
/// (`EMFILE`) waits before the next; a connection that ends in an error is logged with its
/// peer. Shared by the stream listeners.
pub(crate) fn accept_loop<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    limiter: ConnectionLimiter,
    serve: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = AcceptBackoff::default();
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    backoff.failed(protocol, &error).await;
                    continue;
                }
            };
            backoff.reset();
            let guard = match limiter.try_admit(peer.ip()) {
                Ok(guard) => guard,
                Err(refusal) => {
                    limiter.log_refusal(&refusal, peer);
                    drop(stream);
                    continue;
                }
            };
            let served = serve(stream, peer);
            tokio::spawn(async move {
                let _guard = guard;
                if let Err(reason) = served.await {
                    tracing::warn!(%peer, protocol, reason, "connection closed");
                }
            });
        }
    })
}

/// The limiter of a stream listener with `limits`.
pub(crate) fn limiter(protocol: &'static str, limits: &Limits) -> ConnectionLimiter {
    ConnectionLimiter::new(
        protocol,
        limits.max_connections,
        limits.max_connections_per_ip,
    )
}

/// What a connection buffers without reserving it from the decode budget.
pub(crate) const UNRESERVED_BUFFER: usize = 64 * 1024;

/// Reads a connection into a growing frame buffer: one read at a time, never past `max`
/// bytes buffered, each waiting at most the idle timeout; with a budget, what is buffered past
/// [`UNRESERVED_BUFFER`] is reserved first.
pub(crate) struct FrameReader {
    chunk: Vec<u8>,
    idle: std::time::Duration,
    reservation: Option<Reservation>,
}

impl FrameReader {
    pub(crate) fn new(limits: &Limits, budget: Option<&DecodeBudget>) -> Self {
        Self {
            chunk: vec![0u8; 64 * 1024],
            idle: limits.idle_timeout,
            reservation: budget.map(DecodeBudget::empty),
        }
    }

    /// Appends what the next read brings to `buffer` (at most `room` bytes); `Ok(0)` at EOF.
    pub(crate) async fn read<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        buffer: &mut Vec<u8>,
        room: usize,
    ) -> Result<usize, String> {
        let want = self.chunk.len().min(room.max(1));
        if let Some(reservation) = &mut self.reservation {
            let holding = buffer.len() + want;
            if holding > UNRESERVED_BUFFER {
                // The buffer and what decoding it costs.
                reservation
                    .grow_to(decode_cost(holding, 0, 0) + holding, self.idle)
                    .await
                    .map_err(|error| format!("{error}; closing the connection"))?;
            }
        }
        let read = match tokio::time::timeout(self.idle, stream.read(&mut self.chunk[..want])).await
        {
            Ok(read) => read.map_err(|e| format!("read failed: {e}"))?,
            Err(_) => {
                return Err(format!(
                    "idle for {} s (idle_timeout); closing the connection",
                    self.idle.as_secs_f64()
                ))
            }
        };
        buffer.extend_from_slice(&self.chunk[..read]);
        Ok(read)
    }

    /// Gives back the reservation past what `buffered` bytes need.
    pub(crate) fn release(&mut self, buffered: usize) {
        if let Some(reservation) = &mut self.reservation {
            if buffered <= UNRESERVED_BUFFER {
                reservation.shrink_to(0);
            } else {
                reservation.shrink_to(decode_cost(buffered, 0, 0) + buffered);
            }
        }
    }
}
