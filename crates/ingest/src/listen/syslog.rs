//! Syslog listeners: UDP (one message per datagram) and TCP/TLS (RFC 6587 framing).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crowsnest_normalize::{Decoded, LineError};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;

use super::{accept_loop, Listener, SharedLimits, Submit};
use crate::syslog::{decode_message, next_frame, Frame};
use crate::Limits;

/// Most datagrams gathered into one batch before it is submitted.
const UDP_BATCH: usize = 1024;

/// Listens for syslog datagrams on `addr`.
///
/// # Errors
///
/// When the socket cannot be bound.
pub async fn syslog_udp(
    addr: &str,
    sink: Arc<dyn Submit>,
    limits: Limits,
) -> std::io::Result<Listener> {
    let socket = UdpSocket::bind(addr).await?;
    let local_addr = socket.local_addr()?;
    let task = tokio::spawn(async move {
        let mut buffer = vec![0u8; 65_536];
        loop {
            let (len, peer) = match socket.recv_from(&mut buffer).await {
                Ok(received) => received,
                Err(error) => {
                    tracing::warn!(%error, "syslog/udp receive failed");
                    continue;
                }
            };
            let mut decoded = Decoded::default();
            add_message(&mut decoded, &buffer[..len], peer.ip(), &limits);
            while decoded.events.len() + decoded.errors.len() < UDP_BATCH {
                match socket.try_recv_from(&mut buffer) {
                    Ok((len, peer)) => {
                        add_message(&mut decoded, &buffer[..len], peer.ip(), &limits)
                    }
                    Err(_) => break,
                }
            }
            if let Err(error) = sink.submit(decoded, "syslog").await {
                tracing::warn!(%error, "syslog/udp batch dropped");
            }
        }
    });
    Ok(Listener::new(local_addr, "syslog/udp", task))
}

fn add_message(decoded: &mut Decoded, bytes: &[u8], peer: IpAddr, limits: &Limits) {
    let line = decoded.events.len() + decoded.errors.len() + 1;
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    match decode_message(bytes, Some(peer), limits) {
        Ok(event) => decoded.events.push(event),
        Err(reason) => decoded.errors.push(LineError::new(line, reason)),
    }
}

/// Listens for syslog over TCP on `addr`, or over TLS when `tls` is given.
///
/// # Errors
///
/// When the socket cannot be bound.
pub async fn syslog_tcp(
    addr: &str,
    tls: Option<TlsAcceptor>,
    sink: Arc<dyn Submit>,
    limits: Limits,
) -> std::io::Result<Listener> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let protocol = if tls.is_some() {
        "syslog/tls"
    } else {
        "syslog/tcp"
    };
    let limits: SharedLimits = Arc::new(limits);
    let max_connections = limits.max_connections;
    let task = accept_loop(listener, protocol, max_connections, move |stream, peer| {
        let (sink, limits, tls) = (sink.clone(), limits.clone(), tls.clone());
        async move {
            match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => read_frames(stream, peer, sink, &limits).await,
                    Err(error) => Err(format!("TLS handshake failed: {error}")),
                },
                None => read_frames(stream, peer, sink, &limits).await,
            }
        }
    });
    Ok(Listener::new(local_addr, protocol, task))
}

/// Reads frames until EOF, submitting what each read completed.
async fn read_frames<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    sink: Arc<dyn Submit>,
    limits: &Limits,
) -> Result<(), String> {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut line = 0usize;
    loop {
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if read == 0 {
            // A last message without a trailing newline still counts.
            let mut decoded = Decoded::default();
            if !buffer.is_empty() {
                line += 1;
                push(&mut decoded, &buffer, line, peer.ip(), limits);
            }
            submit(&sink, decoded).await;
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut decoded = Decoded::default();
        let mut offset = 0;
        let mut failure = None;
        loop {
            match next_frame(&buffer[offset..], limits.max_frame_bytes) {
                Frame::Message {
                    start,
                    end,
                    consumed,
                } => {
                    line += 1;
                    let frame = &buffer[offset + start..offset + end];
                    if !frame.iter().all(u8::is_ascii_whitespace) {
                        push(&mut decoded, frame, line, peer.ip(), limits);
                    }
                    offset += consumed;
                }
                Frame::Incomplete => break,
                Frame::Invalid(reason) => {
                    failure = Some(reason);
                    break;
                }
            }
        }
        buffer.drain(..offset);
        submit(&sink, decoded).await;
        if let Some(reason) = failure {
            return Err(reason);
        }
    }
}

fn push(decoded: &mut Decoded, frame: &[u8], line: usize, peer: IpAddr, limits: &Limits) {
    match decode_message(frame, Some(peer), limits) {
        Ok(event) => decoded.events.push(event),
        Err(reason) => decoded.errors.push(LineError::new(line, reason)),
    }
}

async fn submit(sink: &Arc<dyn Submit>, decoded: Decoded) {
    if decoded.events.is_empty() && decoded.errors.is_empty() {
        return;
    }
    if let Err(error) = sink.submit(decoded, "syslog").await {
        tracing::warn!(%error, "syslog batch dropped");
    }
}
