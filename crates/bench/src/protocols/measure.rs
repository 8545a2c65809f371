//! One measured run: the clock from a load's first byte to every event searchable on a
//! [`ChildServer`], with the server's CPU time and peak memory over that interval.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::server::ChildServer;

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Protocol name (`es-bulk`, ...).
    pub protocol: String,
    /// The load generator: `crowsnest` (in-process Rust) or `python client: <name>`.
    pub client: String,
    /// Events the client sent.
    pub events_sent: u64,
    /// Events a search found at the end.
    pub events_searchable: u64,
    /// Payload bytes sent.
    pub wire_bytes: u64,
    /// Seconds from the first byte to every event searchable.
    pub seconds: f64,
    /// `events_searchable / seconds`.
    pub events_per_second: f64,
    /// `wire_bytes / seconds`, in MB (10^6 bytes).
    pub mb_per_second: f64,
    /// CPU seconds (user + system) the server used over the run.
    pub server_cpu_seconds: f64,
    /// Events per server CPU-second.
    pub events_per_cpu_second: f64,
    /// The server's peak resident memory, MB.
    pub peak_rss_mb: f64,
    /// `events_searchable / events_sent` (below 1 only where the protocol can lose events).
    pub delivered: f64,
    /// Items the in-process generator sent again because the server pushed back (HTTP
    /// 429/503, forward chunks without an ack); 0 for the Python clients, which retry inside.
    pub retries: u64,
    /// Why the row is incomplete, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Times `send` on `server` from its first byte to every event searchable; a failure becomes
/// the row's `error` (the other protocols still run).
pub fn measure(
    server: &ChildServer,
    protocol: String,
    client: String,
    send: impl FnOnce(&ChildServer) -> anyhow::Result<(u64, u64, u64)>,
) -> Row {
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let lossy = protocol == "syslog-udp";
    let outcome = send(server).and_then(|(sent, bytes, retries)| {
        let (found, at) = wait_searchable(server, sent, lossy, started)?;
        Ok((sent, bytes, retries, found, at))
    });
    let cpu = server.cpu_seconds() - cpu_before;
    let (sent, bytes, retries, found, seconds, error) = match outcome {
        Ok((sent, bytes, retries, found, at)) => {
            let error = (found < sent && !lossy)
                .then(|| format!("only {found} of {sent} events became searchable"));
            (sent, bytes, retries, found, at, error)
        }
        Err(error) => (
            0,
            0,
            0,
            server.searchable().unwrap_or(0),
            started.elapsed().as_secs_f64(),
            Some(format!("{error:#}")),
        ),
    };
    let seconds = seconds.max(1e-6);
    Row {
        protocol,
        client,
        events_sent: sent,
        events_searchable: found,
        wire_bytes: bytes,
        seconds,
        events_per_second: found as f64 / seconds,
        mb_per_second: bytes as f64 / seconds / 1e6,
        server_cpu_seconds: cpu,
        events_per_cpu_second: found as f64 / cpu.max(0.01),
        peak_rss_mb: server.peak_rss_mb(),
        delivered: found as f64 / sent.max(1) as f64,
        retries,
        error,
    }
}

/// Polls the search total until it reaches `expected` (or, when `lossy`, stops growing for
/// three seconds); returns the count and the seconds since `started` when it was reached.
fn wait_searchable(
    server: &ChildServer,
    expected: u64,
    lossy: bool,
    started: Instant,
) -> anyhow::Result<(u64, f64)> {
    let deadline = Instant::now() + Duration::from_secs(120 + expected / 1000);
    let mut last = (0u64, started.elapsed().as_secs_f64());
    loop {
        let found = server.searchable()?;
        let now = started.elapsed().as_secs_f64();
        if found != last.0 {
            last = (found, now);
        }
        if found >= expected {
            return Ok((found, now));
        }
        let stalled = now - last.1 > 3.0;
        if (lossy && stalled) || Instant::now() > deadline {
            return Ok(last);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One line about a row: its rates, or why it failed.
pub fn summary(row: &Row) -> String {
    match &row.error {
        Some(error) => format!("failed: {error}"),
        None => format!(
            "{:.0} events/s, {:.1} MB/s, {:.0} events per server CPU-second",
            row.events_per_second, row.mb_per_second, row.events_per_cpu_second
        ),
    }
}
