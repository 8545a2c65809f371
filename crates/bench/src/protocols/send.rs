//! The in-process load generator: `connections` threads, each with its own connection, take
//! the next pre-encoded item from a shared counter and write it, as fast as the server takes
//! them (HTTP: waiting for each answer; forward: waiting for each chunk's ack; syslog TCP:
//! as fast as the socket drains; UDP: as fast as the kernel sends).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use super::encode::{Auth, Encoded, Item, Transport};
use super::server::ChildServer;

/// What the senders did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Events sent (and, except over UDP, taken by the server).
    pub events: u64,
    /// Items sent again because the server pushed back: HTTP 429/503 answers, forward chunks
    /// left without an ack.
    pub retries: u64,
}

/// Sends every item of `load` over `connections` connections.
/// With `udp_rate` above 0, datagrams are paced to that many per second (all connections
/// together); other transports are never paced.
pub fn send(
    load: &Encoded,
    server: &ChildServer,
    connections: usize,
    udp_rate: u64,
) -> anyhow::Result<Sent> {
    let next = AtomicUsize::new(0);
    let pace = Pace {
        started: Instant::now(),
        rate: udp_rate,
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections.max(1))
            .map(|_| scope.spawn(|| worker(load, server, &next, &pace)))
            .collect();
        let mut sent = Sent::default();
        for worker in workers {
            let one = worker
                .join()
                .map_err(|_| anyhow::anyhow!("a sender thread panicked"))??;
            sent.events += one.events;
            sent.retries += one.retries;
        }
        Ok(sent)
    })
}

/// When the `n`th datagram is due.
struct Pace {
    started: Instant,
    rate: u64,
}

impl Pace {
    fn wait(&self, n: usize) {
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(n as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

fn worker(
    load: &Encoded,
    server: &ChildServer,
    next: &AtomicUsize,
    pace: &Pace,
) -> anyhow::Result<Sent> {
    let items = &load.items;
    let take = || items.get(next.fetch_add(1, Ordering::Relaxed));
    let mut sent = 0;
    let mut retries = 0;
    match &load.transport {
        Transport::Http {
            path,
            content_type,
            auth,
        } => {
            let agent = ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(300))
                .build();
            let authorization = match auth {
                Auth::Bearer => format!("Bearer {}", server.token),
                Auth::Splunk => format!("Splunk {}", server.token),
            };
            while let Some(item) = take() {
                let url = format!("{}{}", server.url, item.path.as_deref().unwrap_or(path));
                retries += post(&agent, &url, &authorization, content_type, item)?;
                sent += item.events;
            }
        }
        Transport::SyslogTcp => {
            let mut stream = connect(server.syslog_tcp, Duration::from_secs(5))?;
            while let Some(item) = take() {
                stream
                    .write_all(&item.bytes)
                    .context("writing to the syslog TCP listener")?;
                sent += item.events;
            }
            stream.flush().context("flushing the syslog stream")?;
            // Close our side and wait (up to the read timeout) for the server to close its own.
            stream
                .shutdown(std::net::Shutdown::Write)
                .context("closing the syslog stream")?;
            let _ = stream.read(&mut [0u8; 16]);
        }
        Transport::SyslogUdp => {
            let socket = UdpSocket::bind("127.0.0.1:0").context("binding a UDP socket")?;
            socket
                .connect(server.syslog_udp)
                .context("connecting the UDP socket")?;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(n) else { break };
                pace.wait(n);
                // A full socket buffer (ENOBUFS) is loss, as on a real network: count it sent.
                let _ = socket.send(&item.bytes);
                sent += item.events;
            }
        }
        Transport::Forward => {
            let mut stream = connect(server.forward, ACK_TIMEOUT)?;
            while let Some(item) = take() {
                // The listener acks a chunk once it is durable and sends nothing when it could
                // not store it (pipeline full): like Fluent Bit, resend after the ack timeout,
                // on a new connection so a late ack cannot be taken for the next chunk's.
                let mut attempts = 0;
                while !forward_chunk(&mut stream, item)? {
                    attempts += 1;
                    retries += 1;
                    anyhow::ensure!(
                        attempts < 30,
                        "no ack for chunk {:?} after {attempts} attempts",
                        item.chunk
                    );
                    stream = connect(server.forward, ACK_TIMEOUT)?;
                }
                sent += item.events;
            }
        }
    }
    Ok(Sent {
        events: sent,
        retries,
    })
}

/// How long a forward sender waits for a chunk's ack before sending it again.
const ACK_TIMEOUT: Duration = Duration::from_secs(3);

fn connect(addr: SocketAddr, read_timeout: Duration) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream
        .set_read_timeout(Some(read_timeout))
        .context("setting a read timeout")?;
    Ok(stream)
}

/// Writes one forward message and waits for its ack: `Ok(false)` when none came in time.
fn forward_chunk(stream: &mut TcpStream, item: &Item) -> anyhow::Result<bool> {
    stream
        .write_all(&item.bytes)
        .context("writing to the forward listener")?;
    let ack = match rmpv::decode::read_value(stream) {
        Ok(ack) => ack,
        Err(rmpv::decode::Error::InvalidMarkerRead(error))
            if matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Ok(false)
        }
        Err(error) => return Err(error).context("reading the forward ack"),
    };
    anyhow::ensure!(
        ack["ack"].as_str() == item.chunk.as_deref(),
        "expected the ack of {:?}, got {ack}",
        item.chunk
    );
    Ok(true)
}

/// POSTs one item, retrying while the server pushes back (429/503); checks the answer says
/// every event was taken. Returns the number of retries.
fn post(
    agent: &ureq::Agent,
    url: &str,
    authorization: &str,
    content_type: &str,
    item: &Item,
) -> anyhow::Result<u64> {
    for attempt in 1..=600u32 {
        let result = agent
            .post(url)
            .set("Authorization", authorization)
            .set("Content-Type", content_type)
            .send_bytes(&item.bytes);
        match result {
            Ok(response) => {
                let text = response.into_string().context("reading an answer")?;
                check_answer(&text, item.events)?;
                return Ok(u64::from(attempt - 1));
            }
            Err(ureq::Error::Status(429 | 503, _)) if attempt < 600 => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(ureq::Error::Status(code, response)) => {
                let text = response.into_string().unwrap_or_default();
                anyhow::bail!("POST {url} answered {code}: {text}");
            }
            Err(error) => return Err(error).with_context(|| format!("POST {url}")),
        }
    }
    anyhow::bail!("POST {url}: the server stayed busy for a minute")
}

/// Each protocol's way of saying some items were refused: `accepted` below the count
/// (native, Falco), `errors: true` (Elasticsearch), a non-zero `code` (HEC), rejected log
/// records (OTLP partial success).
pub fn check_answer(text: &str, events: u64) -> anyhow::Result<()> {
    let Ok(answer) = serde_json::from_str::<Value>(text) else {
        // OTLP protobuf answers are binary; their status code already said success.
        return Ok(());
    };
    let refused = answer["accepted"].as_u64().is_some_and(|a| a < events)
        || answer["errors"] == Value::Bool(true)
        || answer["code"].as_u64().is_some_and(|c| c != 0)
        || answer["partialSuccess"]["rejectedLogRecords"]
            .as_u64()
            .is_some_and(|r| r > 0)
        || answer["partialSuccess"]["rejectedLogRecords"]
            .as_str()
            .is_some_and(|r| r != "0");
    anyhow::ensure!(!refused, "the server refused items: {text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_answer;

    #[test]
    fn refusals_of_each_protocol_are_errors() {
        assert!(check_answer(r#"{"accepted": 10, "rejected": 0}"#, 10).is_ok());
        assert!(check_answer(r#"{"accepted": 9, "rejected": 1}"#, 10).is_err());
        assert!(check_answer(r#"{"took": 1, "errors": false, "items": []}"#, 3).is_ok());
        assert!(check_answer(r#"{"took": 1, "errors": true, "items": []}"#, 3).is_err());
        assert!(check_answer(r#"{"text": "Success", "code": 0}"#, 3).is_ok());
        assert!(check_answer(r#"{"text": "Invalid data format", "code": 6}"#, 3).is_err());
        assert!(check_answer(r#"{"partialSuccess": {}}"#, 3).is_ok());
        assert!(check_answer(r#"{"partialSuccess": {"rejectedLogRecords": "2"}}"#, 3).is_err());
        assert!(check_answer("\u{0}binary", 3).is_ok());
    }
}
