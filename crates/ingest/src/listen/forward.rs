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
use crate::{IngestError, Limits};

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
        // Bytes that arrived with the PING are decoded before reading more. A message is
        // decoded only once `message_length` shows all of it arrived: scanning is cheap (no
        // allocation, strings and binaries skipped whole), decoding a partial message on each
        // read would cost quadratic time.
        while !buffer.is_empty() {
            match message_length(&buffer) {
                Scan::Complete(_) => {}
                Scan::Needs(needed) if needed > limits.max_frame_bytes => {
                    return Err(format!(
                        "expected forward messages of at most {} bytes (max_frame_bytes), found one of at least {needed} bytes",
                        limits.max_frame_bytes
                    ))
                }
                Scan::Needs(_) => break,
                Scan::Invalid(marker) => {
                    return Err(format!(
                        "expected a MessagePack value, found the reserved marker 0x{marker:02x}"
                    ))
                }
            }
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
        if read == 0 && room == 0 {
            return Err(format!(
                "expected forward messages of at most {} bytes (max_frame_bytes)",
                limits.max_frame_bytes
            ));
        }
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

/// How much of a buffer one MessagePack value takes.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// The first value is whole and this long.
    Complete(usize),
    /// The first value is not whole: it takes at least this many bytes.
    Needs(usize),
    /// A reserved marker byte (0xc1).
    Invalid(u8),
}

/// Measures the first MessagePack value of `buffer` without decoding it: one pass over its
/// markers, strings and binaries skipped by their length.
fn message_length(buffer: &[u8]) -> Scan {
    fn be(bytes: &[u8]) -> usize {
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    }
    let mut pos = 0usize;
    // Values still to skip.
    let mut pending = 1usize;
    while pending > 0 {
        let Some(&marker) = buffer.get(pos) else {
            return Scan::Needs(pos + 1);
        };
        // (header bytes after the marker, bytes of the length field within it, fixed payload,
        // nested values)
        let (header, length_bytes, payload, children): (usize, usize, usize, usize) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0, 0, 0),
            0x80..=0x8f => (0, 0, 0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (0, 0, 0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (0, 0, usize::from(marker & 0x1f), 0),
            0xc1 => return Scan::Invalid(marker),
            0xc4 | 0xd9 => (1, 1, 0, 0),
            0xc5 | 0xda => (2, 2, 0, 0),
            0xc6 | 0xdb => (4, 4, 0, 0),
            // ext: length, then a type byte.
            0xc7 => (2, 1, 0, 0),
            0xc8 => (3, 2, 0, 0),
            0xc9 => (5, 4, 0, 0),
            0xca => (0, 0, 4, 0),
            0xcb => (0, 0, 8, 0),
            0xcc | 0xd0 => (0, 0, 1, 0),
            0xcd | 0xd1 => (0, 0, 2, 0),
            0xce | 0xd2 => (0, 0, 4, 0),
            0xcf | 0xd3 => (0, 0, 8, 0),
            0xd4 => (0, 0, 2, 0),
            0xd5 => (0, 0, 3, 0),
            0xd6 => (0, 0, 5, 0),
            0xd7 => (0, 0, 9, 0),
            0xd8 => (0, 0, 17, 0),
            // array16/32, map16/32: a count in the header.
            0xdc => (2, 0, 0, 0),
            0xdd => (4, 0, 0, 0),
            0xde => (2, 0, 0, 0),
            0xdf => (4, 0, 0, 0),
        };
        let start = pos + 1;
        let Some(head) = buffer.get(start..start + header) else {
            return Scan::Needs(start + header);
        };
        let (payload, children) = match marker {
            0xdc | 0xdd => (0, be(head)),
            0xde | 0xdf => (0, be(head).saturating_mul(2)),
            _ if length_bytes > 0 => (be(&head[..length_bytes]), children),
            _ => (payload, children),
        };
        pos = (start + header).saturating_add(payload);
        if pos > buffer.len() {
            return Scan::Needs(pos);
        }
        pending = pending - 1 + children;
    }
    Scan::Complete(pos)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &rmpv::Value) -> Vec<u8> {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, value).expect("encode");
        bytes
    }

    #[test]
    fn message_lengths_match_the_encoder_and_prefixes_are_incomplete() {
        use rmpv::Value;
        let entries: Vec<Value> = (0..300)
            .map(|i| {
                Value::Array(vec![
                    Value::from(1_714_557_600u32 + i),
                    Value::Map(vec![
                        (Value::from("log"), Value::from("x".repeat(i as usize))),
                        (Value::from("n"), Value::from(-(i as i64) * 100_000)),
                        (Value::from("f"), Value::from(1.5f64)),
                        (Value::from("ok"), Value::from(true)),
                        (Value::from("nil"), Value::Nil),
                    ]),
                ])
            })
            .collect();
        let messages = [
            Value::Array(vec![Value::from("tag"), Value::Array(entries.clone())]),
            Value::Array(vec![
                Value::from("tag"),
                Value::Binary(encode(&Value::Array(entries)).repeat(300)),
                Value::Map(vec![(Value::from("chunk"), Value::from("abc"))]),
            ]),
            Value::Ext(0, vec![1, 2, 3, 4, 5, 6, 7, 8]),
            Value::Ext(5, vec![0; 300]),
            Value::from(u64::MAX),
        ];
        for message in &messages {
            let bytes = encode(message);
            assert_eq!(message_length(&bytes), Scan::Complete(bytes.len()));
            let mut followed = bytes.clone();
            followed.extend_from_slice(&bytes);
            assert_eq!(message_length(&followed), Scan::Complete(bytes.len()));
            for cut in [0, 1, 2, 5, bytes.len() / 2, bytes.len() - 1] {
                match message_length(&bytes[..cut]) {
                    Scan::Needs(needed) => assert!(needed > cut && needed <= bytes.len()),
                    other => panic!("{cut}: {other:?}"),
                }
            }
        }
        // A binary declaring 100 MiB needs that much, known from its 5-byte header.
        let header = [0x92, 0xa3, b't', b'a', b'g', 0xc6, 0x06, 0x40, 0x00, 0x00];
        assert_eq!(message_length(&header), Scan::Needs(10 + 100 * 1024 * 1024));
        assert_eq!(message_length(&[0x91, 0xc1]), Scan::Invalid(0xc1));
    }
}

/// An `[[inputs]]` entry of `type = "forward"`. Its `Debug` hides the shared key.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardInput {
    /// Address to bind, e.g. `127.0.0.1:24224`.
    pub listen: String,
    /// Serve inside TLS (Fluent Bit `tls on`, Fluentd `<transport tls>`).
    #[serde(default)]
    pub tls: Option<super::inputs::TlsFiles>,
    /// Shared key every client must prove it knows (the HELO/PING/PONG handshake); no
    /// handshake when neither this nor `shared_key_file` is set.
    #[serde(default)]
    pub shared_key: Option<String>,
    /// File holding the shared key (surrounding whitespace ignored), instead of `shared_key`.
    #[serde(default)]
    pub shared_key_file: Option<std::path::PathBuf>,
    /// Users a client must also name in its PING (needs a shared key).
    #[serde(default)]
    pub users: Vec<crate::fluent_auth::ForwardUser>,
}

impl std::fmt::Debug for ForwardInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardInput")
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field(
                "shared_key",
                &self.shared_key.as_ref().map(|_| "<redacted>"),
            )
            .field("shared_key_file", &self.shared_key_file)
            .field("users", &self.users)
            .finish()
    }
}

impl ForwardInput {
    /// The handshake settings, or `None` without a shared key; `hostname` is the name sent in
    /// PONG.
    ///
    /// # Errors
    ///
    /// When both `shared_key` and `shared_key_file` are set, the key file cannot be read, the
    /// key is empty, or `users` is set without a key.
    pub fn auth(&self, hostname: &str) -> Result<Option<ForwardAuth>, IngestError> {
        let key = match (&self.shared_key, &self.shared_key_file) {
            (Some(_), Some(_)) => {
                return Err(IngestError::Config(
                    "expected one of `shared_key` and `shared_key_file`, found both".into(),
                ))
            }
            (Some(key), None) => Some(key.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        IngestError::io(
                            format!("reading the shared key file `{}`", path.display()),
                            &e,
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        match key {
            None if !self.users.is_empty() => Err(IngestError::Config(
                "`users` needs a shared key (`shared_key_file`)".into(),
            )),
            None => Ok(None),
            Some(key) if key.trim().is_empty() => Err(IngestError::Config(
                "expected a non-empty forward shared key".into(),
            )),
            Some(key) => Ok(Some(
                ForwardAuth::new(key, hostname).with_users(self.users.clone()),
            )),
        }
    }
}

/// The name sent in PONG (the kernel's hostname, `crowsnest` when it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "crowsnest".to_string())
}

impl super::inputs::Source for ForwardInput {
    fn describe(&self) -> String {
        let protocol = if self.tls.is_some() {
            "forward/tls"
        } else {
            "forward"
        };
        format!("{protocol} {}", self.listen)
    }

    fn check(&self) -> Result<(), IngestError> {
        self.auth(&hostname()).map(|_| ())
    }

    fn start(&self, context: super::inputs::SourceContext) -> super::inputs::StartFuture<'_> {
        Box::pin(async move {
            let tls = match &self.tls {
                Some(files) => Some(files.acceptor()?),
                None => None,
            };
            let options = ForwardOptions {
                tls,
                auth: self.auth(&hostname())?.map(Arc::new),
                budget: context.budget,
            };
            forward_listener(&self.listen, options, context.sink, context.limits)
                .await
                .map_err(|e| IngestError::io(format!("binding {}", self.describe()), &e))
        })
    }
}
