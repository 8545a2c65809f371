//! Syslog listeners: UDP (one message per datagram) and TCP/TLS (RFC 6587 framing).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crowsnest_normalize::{Decoded, LineError};
use tokio::io::AsyncRead;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;

use super::{accept_loop, limiter, FrameReader, Listener, SharedLimits, Submit};
use crate::limits::DecodeBudget;
use crate::syslog::{decode_message, next_frame, Frame};
use crate::{IngestError, Limits};

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

/// How a syslog stream listener secures and budgets its connections.
#[derive(Clone, Default)]
pub struct SyslogOptions {
    /// Wrap every connection in TLS (RFC 5425).
    pub tls: Option<TlsAcceptor>,
    /// Reserve what a connection buffers past 64 KiB from this server-wide budget.
    pub budget: Option<DecodeBudget>,
}

impl std::fmt::Debug for SyslogOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogOptions")
            .field("tls", &self.tls.is_some())
            .field("budget", &self.budget)
            .finish()
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
    let options = SyslogOptions { tls, budget: None };
    syslog_listener(addr, options, sink, limits).await
}

/// Listens for syslog over TCP (or TLS, as `options` say) on `addr`.
///
/// # Errors
///
/// When the socket cannot be bound.
pub async fn syslog_listener(
    addr: &str,
    options: SyslogOptions,
    sink: Arc<dyn Submit>,
    limits: Limits,
) -> std::io::Result<Listener> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let protocol = if options.tls.is_some() {
        "syslog/tls"
    } else {
        "syslog/tcp"
    };
    let limits: SharedLimits = Arc::new(limits);
    let limiter = limiter(protocol, &limits);
    let task = accept_loop(listener, protocol, limiter, move |stream, peer| {
        let (sink, limits, options) = (sink.clone(), limits.clone(), options.clone());
        async move {
            let reader = FrameReader::new(&limits, options.budget.as_ref());
            match options.tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.idle_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => read_frames(stream, peer, sink, &limits, reader).await,
                        Ok(Err(error)) => Err(format!("TLS handshake failed: {error}")),
                        Err(_) => Err(format!(
                            "no TLS handshake within {} s (idle_timeout)",
                            limits.idle_timeout.as_secs_f64()
                        )),
                    }
                }
                None => read_frames(stream, peer, sink, &limits, reader).await,
            }
        }
    });
    Ok(Listener::new(local_addr, protocol, task))
}

/// Most bytes an octet count and its space take before a frame.
const COUNT_SLACK: usize = 16;

/// Reads frames until EOF, submitting what each read completed.
///
/// The buffer never holds more than one frame's maximum (plus its octet count): a stream
/// that goes on past [`Limits::max_frame_bytes`] without a newline is cut off there. Each
/// byte is scanned for a newline once (`scanned` remembers where the last scan stopped), so
/// a long frame costs linear time.
async fn read_frames<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    sink: Arc<dyn Submit>,
    limits: &Limits,
    mut reader: FrameReader,
) -> Result<(), String> {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    // Bytes of `buffer` known to hold no newline (LF framing only).
    let mut scanned = 0usize;
    let mut line = 0usize;
    let cap = limits.max_frame_bytes.saturating_add(COUNT_SLACK);
    loop {
        // One byte past the cap shows a frame is too long.
        let room = (cap + 1).saturating_sub(buffer.len());
        let read = reader.read(&mut stream, &mut buffer, room).await?;
        if read == 0 {
            // A last message without a trailing newline still counts.
            let mut decoded = Decoded::default();
            if !buffer.is_empty() && !buffer.iter().all(u8::is_ascii_whitespace) {
                line += 1;
                push(&mut decoded, &buffer, line, peer.ip(), limits);
            }
            submit(&sink, decoded).await;
            return Ok(());
        }
        let mut decoded = Decoded::default();
        let mut offset = 0;
        let mut failure = None;
        loop {
            let rest = &buffer[offset..];
            let counted = rest.first().is_some_and(u8::is_ascii_digit);
            if !counted && rest.len() <= scanned {
                // Nothing new since the last scan.
                break;
            }
            let frame = if counted {
                next_frame(rest, limits.max_frame_bytes)
            } else {
                // LF framing: look for the newline only in the bytes not scanned yet.
                match rest[scanned..].iter().position(|b| *b == b'\n') {
                    Some(at) => next_frame(&rest[..scanned + at + 1], limits.max_frame_bytes),
                    None if rest.len() > limits.max_frame_bytes => Frame::Invalid(format!(
                        "expected a newline within {} bytes (max_frame_bytes); {} bytes without one",
                        limits.max_frame_bytes,
                        rest.len()
                    )),
                    None => {
                        scanned = rest.len();
                        Frame::Incomplete
                    }
                }
            };
            match frame {
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
                    scanned = 0;
                }
                Frame::Incomplete => break,
                Frame::Invalid(reason) => {
                    failure = Some(reason);
                    break;
                }
            }
        }
        buffer.drain(..offset);
        reader.release(buffer.len());
        if failure.is_some() {
            line += 1;
        }
        if let Some(reason) = &failure {
            decoded.errors.push(LineError::new(line, reason.clone()));
        }
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

/// How a syslog input receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    /// One message per datagram.
    Udp,
    /// RFC 6587 octet counting or newline framing.
    #[default]
    Tcp,
    /// TCP inside TLS (RFC 5425); needs `tls`.
    Tls,
}

/// An `[[inputs]]` entry of `type = "syslog"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogInput {
    /// Address to bind, e.g. `127.0.0.1:6514`.
    pub listen: String,
    /// `udp`, `tcp` (the default) or `tls`.
    #[serde(default)]
    pub transport: SyslogTransport,
    /// Certificate and key for `transport = "tls"`.
    #[serde(default)]
    pub tls: Option<super::inputs::TlsFiles>,
}

impl super::inputs::Source for SyslogInput {
    fn describe(&self) -> String {
        let transport = match self.transport {
            SyslogTransport::Udp => "udp",
            SyslogTransport::Tcp => "tcp",
            SyslogTransport::Tls => "tls",
        };
        format!("syslog/{transport} {}", self.listen)
    }

    fn check(&self) -> Result<(), IngestError> {
        match (self.transport, &self.tls) {
            (SyslogTransport::Tls, None) => Err(IngestError::Config(
                "`transport = \"tls\"` needs `tls = { cert = \"...\", key = \"...\" }` (PEM files)"
                    .into(),
            )),
            (SyslogTransport::Udp | SyslogTransport::Tcp, Some(_)) => Err(IngestError::Config(
                "`tls` is set but `transport` is not \"tls\"".into(),
            )),
            _ => Ok(()),
        }
    }

    fn start(&self, context: super::inputs::SourceContext) -> super::inputs::StartFuture<'_> {
        Box::pin(async move {
            let limits = Limits {
                max_frame_bytes: context.limits.max_syslog_frame_bytes,
                ..context.limits
            };
            let binding = || format!("binding {}", self.describe());
            match self.transport {
                SyslogTransport::Udp => syslog_udp(&self.listen, context.sink, limits)
                    .await
                    .map_err(|e| IngestError::io(binding(), &e)),
                SyslogTransport::Tcp | SyslogTransport::Tls => {
                    let tls = match &self.tls {
                        Some(files) => Some(files.acceptor()?),
                        None => None,
                    };
                    let options = SyslogOptions {
                        tls,
                        budget: context.budget,
                    };
                    syslog_listener(&self.listen, options, context.sink, limits)
                        .await
                        .map_err(|e| IngestError::io(binding(), &e))
                }
            }
        })
    }
}
