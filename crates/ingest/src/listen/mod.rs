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
//! Each stream listener accepts at most [`Limits::max_connections`] connections at once; a
//! connection whose stream cannot be framed is closed after its good frames are submitted.

mod forward;
mod syslog;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crowsnest_normalize::Decoded;

pub use forward::{forward_listener, forward_tcp, ForwardOptions};
pub use syslog::{syslog_tcp, syslog_udp};
pub use tls::tls_acceptor;
/// The TLS acceptor [`tls_acceptor`] builds and [`ForwardOptions::tls`] takes.
pub use tokio_rustls::TlsAcceptor;

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

/// Accepts connections on `listener`, at most `max_connections` open at once (the next accept
/// waits for a free slot), and serves each on its own task; a connection that ends in an error
/// is logged with its peer. Shared by the stream listeners.
pub(crate) fn accept_loop<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    max_connections: usize,
    serve: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, protocol, "accept failed");
                    continue;
                }
            };
            let served = serve(stream, peer);
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(reason) = served.await {
                    tracing::warn!(%peer, protocol, reason, "connection closed");
                }
            });
        }
    })
}
