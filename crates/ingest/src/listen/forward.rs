//! The Fluent forward listener (TCP).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{accept_loop, Listener, SharedLimits, Submit};
use crate::fluent::{ack, next_message, ForwardFrame};
use crate::Limits;

/// Listens for the forward protocol on `addr`.
///
/// # Errors
///
/// When the socket cannot be bound.
pub async fn forward_tcp(
    addr: &str,
    sink: Arc<dyn Submit>,
    limits: Limits,
) -> std::io::Result<Listener> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let limits: SharedLimits = Arc::new(limits);
    let max_connections = limits.max_connections;
    let task = accept_loop(
        listener,
        "forward",
        max_connections,
        move |stream, _peer| {
            let (sink, limits) = (sink.clone(), limits.clone());
            async move { serve(stream, sink, &limits).await }
        },
    );
    Ok(Listener::new(local_addr, "forward", task))
}

async fn serve(
    mut stream: TcpStream,
    sink: Arc<dyn Submit>,
    limits: &Limits,
) -> Result<(), String> {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
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
        loop {
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
    }
}
