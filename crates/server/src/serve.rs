//! The HTTP accept loop: hyper's HTTP/1 connections with timeouts and connection limits
//! (`[http]` in the configuration), in place of `axum::serve`, which has neither.
//!
//! * **Connection limits**: at most `max_connections` open, at most `max_connections_per_ip`
//!   from one source address. A connection past either is answered at once, before its
//!   request is read, with `503 Service Unavailable`, `Retry-After: 1` and `Connection:
//!   close`, then closed (what the client sends is read and discarded for up to 250 ms, so
//!   the close does not reset the connection before the client reads the answer; at most
//!   [`MAX_REFUSING`] connections linger so at once, past that they are closed right after the
//!   answer). Refusals are logged at most once a second, with how many there were.
//! * **Header read timeout**: hyper's; the clock starts when the server waits for a request
//!   (on a new connection and after each response), so it also closes idle keep-alive
//!   connections.
//! * **Body read timeout**: every request body must arrive whole within
//!   `body_read_timeout_secs`; past it, reading the body fails (ingest answers 408) and the
//!   connection is closed.
//! * **Write timeout**: a client that takes nothing of a response for `write_timeout_secs`
//!   (its receive window stays full) is disconnected, so unread responses cannot pile up.
//! * **Accept errors** (`EMFILE`: out of file descriptors) wait, doubling from 10 ms to 1 s,
//!   instead of spinning.
//! * **Graceful shutdown**: stop accepting, let each connection finish its request, wait for
//!   them all.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use crowsnest_ingest::listen::{AcceptBackoff, ConnectionLimiter, Refusal};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::HttpConfig;

/// Most refused connections lingering at once (reading what the client sent after the 503,
/// for at most 250 ms); past it they are closed right after the 503 is written.
pub const MAX_REFUSING: usize = 128;

/// Largest buffer hyper keeps per connection: request heads must fit (64 KiB).
const MAX_BUF_BYTES: usize = 64 * 1024;

/// The error a request body gives when it did not arrive within the body read timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0} s (http.body_read_timeout_secs)")]
pub struct BodyTimeout(pub u64);

/// Serves `router` on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: HttpConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limiter = ConnectionLimiter::new(
        "http",
        config.max_connections,
        config.max_connections_per_ip,
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.header_read_timeout_secs.max(1)))
        .max_buf_size(MAX_BUF_BYTES);
    let body_timeout = config.body_read_timeout_secs.max(1);
    let write_timeout = Duration::from_secs(config.write_timeout_secs.max(1));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    // Every connection task holds a sender; when they are all gone, shutdown is complete.
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                backoff.failed("http", &error).await;
                continue;
            }
        };
        backoff.reset();
        let guard = match limiter.try_admit(peer.ip()) {
            Ok(guard) => guard,
            Err(refusal) => {
                limiter.log_refusal(&refusal, peer);
                // The answer fits the empty send buffer of a new socket: written at once.
                let _ = stream.try_write(refusal_response(refusal).as_bytes());
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        linger(stream).await;
                        drop(permit);
                    });
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(|body| Body::new(TimedBody::new(body, body_timeout)));
            // The peer address, as `axum::serve` gives it with `ConnectInfo` (the throttle of
            // failed authentication keys on it).
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                use tower::Service;
                router.call(request).await
            }
        });
        let io = StallTimeout::new(stream, write_timeout);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let mut shutdown = shutdown.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let _open = open;
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopped(&mut shutdown) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                log_connection_error(peer, &error);
            }
        });
    }
    drop(open_tx);
    // Resolves once every connection task has ended.
    let _ = open_rx.recv().await;
    Ok(())
}

/// Resolves once shutdown is asked for (the watch guard is not held across awaits).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

fn log_connection_error(peer: SocketAddr, error: &hyper::Error) {
    if error.is_timeout() {
        tracing::debug!(%peer, %error, "http connection timed out");
    } else if !error.is_incomplete_message() && !error.is_closed() {
        tracing::debug!(%peer, %error, "http connection ended with an error");
    }
}

/// The answer to a connection over the limits: 503, before its request is read.
fn refusal_response(refusal: Refusal) -> String {
    let limit = match refusal {
        Refusal::Listener { limit } => format!("http.max_connections = {limit}"),
        Refusal::Address { ip, limit } => {
            format!("http.max_connections_per_ip = {limit}, from {ip}")
        }
    };
    let body = serde_json::json!({"error": {"status": 503, "message":
        format!("too many open connections ({limit}); retry after 1 s")}})
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Closes a refused connection gracefully: ends our side, then reads what the client sends
/// (at most 64 KiB, for at most [`LINGER`]) so the close does not reset the connection
/// before the client reads the answer.
async fn linger(mut stream: TcpStream) {
    let drain = async {
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// How long a refused connection is read from before it is closed.
const LINGER: Duration = Duration::from_millis(250);

/// A connection whose writes fail once one has made no progress for `timeout` (the client
/// reads nothing); reads pass through.
struct StallTimeout {
    stream: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl StallTimeout {
    fn new(stream: TcpStream, timeout: Duration) -> Self {
        Self {
            stream,
            timeout,
            stalled: None,
        }
    }

    /// Turns a pending write into an error once it has been pending for the timeout.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stalled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for {} s (http.write_timeout_secs)",
                    timeout.as_secs()
                ),
            )));
        }
        Poll::Pending
    }
}

impl tokio::io::AsyncRead for StallTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for StallTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body that fails once its deadline passes (the body read timeout).
pub struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    secs: u64,
}

impl TimedBody {
    fn new(inner: Incoming, secs: u64) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(Duration::from_secs(secs))),
            secs,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout(self.secs).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
