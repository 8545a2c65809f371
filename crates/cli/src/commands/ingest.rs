//! `crowsnest ingest FILE...`: sends NDJSON files (any shape) or Kubernetes audit
//! `EventList`/`Event` JSON files to a running server, in gzip'd batches, several requests in
//! flight (`--in-flight`, default 3, so the server's cores all work on a first load), retrying
//! while the server pushes back. Every batch carries a batch id (`X-Crowsnest-Batch`, one
//! stream per lane, as the node agent does), so a retry whose first attempt was stored but
//! whose answer was lost is recognised by the server and not stored twice. `-` reads standard input. Then, unless `--no-wait`, it waits until what
//! it sent is searchable: the server acknowledges events once they are in its write-ahead log,
//! and after a large file search may trail that by some seconds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::client::{Client, ServerArgs, ServerError};

/// Flags of `crowsnest ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Files to send (`-` for standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The input's name (`event.dataset`) or a known format: k8s-audit, eks, aks, gke.
    #[arg(long)]
    pub source: Option<String>,
    /// How to read the files.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: InputFormat,
    /// Uncompressed bytes per request.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub batch_bytes: usize,
    /// Requests kept in flight at once (1-8): the server decodes, normalizes and detects
    /// them in parallel. Each carries a batch id, so a retry after a lost answer is not
    /// stored twice.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub in_flight: u8,
    /// Return once every event is acknowledged (durable), without waiting until the server
    /// has indexed them (searchable).
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Detect: a JSON document with `kind: EventList`/`Event` is audit, anything else NDJSON.
    Auto,
    /// One JSON object per line.
    Ndjson,
    /// A Kubernetes audit `EventList` or `Event` document.
    K8sAudit,
}

/// What one file or batch came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Events stored.
    pub accepted: u64,
    /// Lines refused.
    pub rejected: u64,
}

/// Sends every file and prints a summary per file.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    let mut all = Totals::default();
    for (index, path) in args.files.iter().enumerate() {
        // Not a held lock: the lanes' retry warnings write to standard error too.
        let totals = send_file(&client, path, index, &args, &mut std::io::stderr())?;
        eprintln!(
            "{}: {} accepted, {} rejected",
            path.display(),
            totals.accepted,
            totals.rejected
        );
        all.accepted += totals.accepted;
        all.rejected += totals.rejected;
    }
    if all.accepted > 0 && !args.no_wait {
        wait_searchable(&client, Duration::from_secs(WAIT_SECS));
    }
    Ok(if all.rejected > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Longest wait for the server to make the sent events searchable.
const WAIT_SECS: u64 = 120;

/// Waits until the server's store holds everything acknowledged so far (its WAL position when
/// the last file was sent), up to `limit`. Other senders' later events are not waited for. A
/// token that may not read the server's health (an ingest-only token) skips the wait.
fn wait_searchable(client: &Client, limit: Duration) {
    let committed = |health: &Value| -> Option<(u64, u64)> {
        let next = health["wal"]["next_position"].as_u64()?;
        let lag = health["index_lag_events"].as_u64()?;
        Some((next, next.saturating_sub(lag)))
    };
    let Some((target, mut done)) = client
        .get_json("/api/v1/health")
        .ok()
        .as_ref()
        .and_then(committed)
    else {
        return;
    };
    let started = Instant::now();
    while done < target {
        if started.elapsed() >= limit {
            eprintln!(
                "{} acknowledged events are not searchable yet after {} s: the server is still indexing them",
                target - done,
                limit.as_secs()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
        match client
            .get_json("/api/v1/health")
            .ok()
            .as_ref()
            .and_then(committed)
        {
            Some((_, now)) => done = now,
            None => return,
        }
    }
    if started.elapsed() >= Duration::from_secs(1) {
        eprintln!(
            "all sent events are searchable ({:.1} s after the last was acknowledged)",
            started.elapsed().as_secs_f64()
        );
    }
}

fn open(path: &Path) -> anyhow::Result<Box<dyn Read + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = File::open(path).with_context(|| format!("opening `{}`", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(file)));
    }
    Ok(Box::new(file))
}

fn send_file(
    client: &Client,
    path: &Path,
    file_index: usize,
    args: &Args,
    report: &mut impl Write,
) -> anyhow::Result<Totals> {
    let mut reader = BufReader::with_capacity(1 << 20, open(path)?);
    let format = match args.format {
        InputFormat::Auto => {
            detect(&mut reader).with_context(|| format!("reading `{}`", path.display()))?
        }
        other => other,
    };
    let run = run_id();
    if format == InputFormat::K8sAudit {
        let mut body = Vec::new();
        reader
            .read_to_end(&mut body)
            .with_context(|| format!("reading `{}`", path.display()))?;
        let batch = format!("{run}:f{file_index}:1");
        let answer = post(
            client,
            "/api/v1/ingest/k8s-audit",
            "application/json",
            &body,
            &batch,
        )?;
        if answer["duplicate"] == true {
            let _ = writeln!(
                report,
                "{}: stored by an earlier attempt whose answer was lost",
                path.display()
            );
        }
        return Ok(account(&answer, path, 0, report));
    }
    let endpoint = match &args.source {
        Some(source) => format!("/api/v1/ingest/ndjson?source={source}"),
        None => "/api/v1/ingest/ndjson".to_string(),
    };
    let lanes = usize::from(args.in_flight).clamp(1, MAX_IN_FLIGHT);
    let stop = AtomicBool::new(false);
    let (work_tx, work_rx) = mpsc::sync_channel::<Batch>(lanes);
    // Shared by the lanes only: when the last lane stops, the reader's next send fails
    // instead of waiting for a taker.
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        // The reader owns the sending side: when it returns, the lanes see the end of work.
        let (batch_bytes, stop_ref) = (args.batch_bytes, &stop);
        let reading = scope.spawn(move || read_batches(reader, batch_bytes, &work_tx, stop_ref));
        for lane in 0..lanes {
            let done_tx = done_tx.clone();
            let work_rx = Arc::clone(&work_rx);
            let endpoint = &endpoint;
            let stream = format!("{run}:f{file_index}l{lane}");
            scope.spawn(move || send_lane(client, endpoint, &stream, &work_rx, &done_tx));
        }
        drop((done_tx, work_rx));
        // Answers are reported in file order (at most `lanes` batches are ahead of the first
        // one still in flight), so error lines read top to bottom.
        let mut totals = Totals::default();
        // The first failed batch: (index, first line, lines, error).
        let mut failure: Option<(u64, usize, usize, anyhow::Error)> = None;
        // Batches answered (index, first line, lines): after a failure, which later ones
        // were stored anyway (the lanes send out of order).
        let mut answered: Vec<(u64, usize, usize)> = Vec::new();
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut settle =
            |done: Done,
             totals: &mut Totals,
             failure: &mut Option<(u64, usize, usize, anyhow::Error)>| {
                match done.answer {
                    Ok(answer) => {
                        answered.push((done.index, done.first_line, done.lines));
                        if answer["duplicate"] == true {
                            // The same batch id was stored before: the answer to an earlier attempt
                            // was lost (a dropped connection). Its lines count as accepted; any
                            // rejected line was refused in that attempt.
                            let _ = writeln!(
                            report,
                            "{}:{}: batch of {} lines stored by an earlier attempt whose answer was lost",
                            path.display(),
                            done.first_line + 1,
                            done.lines
                        );
                            totals.accepted += done.lines as u64;
                        } else {
                            let batch = account(&answer, path, done.first_line, report);
                            totals.accepted += batch.accepted;
                            totals.rejected += batch.rejected;
                        }
                    }
                    Err(error) => {
                        if failure.as_ref().is_none_or(|f| done.index < f.0) {
                            *failure = Some((done.index, done.first_line, done.lines, error));
                        }
                    }
                }
            };
        for done in done_rx {
            if done.answer.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            waiting.insert(done.index, done);
            while let Some(done) = waiting.remove(&next) {
                settle(done, &mut totals, &mut failure);
                next += 1;
            }
        }
        for (_, done) in std::mem::take(&mut waiting) {
            settle(done, &mut totals, &mut failure);
        }
        let read = reading
            .join()
            .map_err(|_| anyhow::anyhow!("the reading thread panicked"))?;
        read.with_context(|| format!("reading `{}`", path.display()))?;
        match failure {
            Some((index, first, lines, error)) => {
                let mut later: Vec<(usize, usize)> = answered
                    .iter()
                    .filter(|(i, _, _)| *i > index)
                    .map(|(_, first, lines)| (*first + 1, *first + *lines))
                    .collect();
                later.sort_unstable();
                let failed = format!(
                    "lines {}-{} of `{}` were not stored; every line before them was",
                    first + 1,
                    first + lines,
                    path.display()
                );
                if later.is_empty() {
                    return Err(error.context(format!(
                        "{failed}, none after them: send the file again from line {}",
                        first + 1
                    )));
                }
                let shown: Vec<String> = later
                    .iter()
                    .take(10)
                    .map(|(a, b)| format!("{a}-{b}"))
                    .collect();
                let more = later.len().saturating_sub(shown.len());
                Err(error.context(format!(
                    "{failed}, and of the lines after them (sent in parallel) these were too: {}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more batches")
                    } else {
                        String::new()
                    }
                )))
            }
            None => Ok(totals),
        }
    })
}

/// Most requests `crowsnest ingest` keeps in flight.
pub const MAX_IN_FLIGHT: usize = 8;

/// One request body of NDJSON lines.
struct Batch {
    /// Position in the file (0, 1, ...).
    index: u64,
    /// Line number (0-based) of its first line in the file.
    first_line: usize,
    /// Lines in it.
    lines: usize,
    body: Vec<u8>,
}

/// A batch's answer.
struct Done {
    index: u64,
    first_line: usize,
    lines: usize,
    answer: anyhow::Result<Value>,
}

/// Cuts the input into bodies of about `batch_bytes` (whole lines) and hands them to the lanes;
/// blocks while every lane is busy, so memory stays at a few bodies whatever the file's size.
fn read_batches(
    mut reader: BufReader<Box<dyn Read + Send>>,
    batch_bytes: usize,
    work: &mpsc::SyncSender<Batch>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut chunk = Vec::with_capacity(batch_bytes + 4096);
    let (mut index, mut first_line, mut lines, mut line_no) = (0u64, 0usize, 0usize, 0usize);
    let mut line = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read > 0 {
            if chunk.is_empty() {
                first_line = line_no;
            }
            line_no += 1;
            lines += 1;
            chunk.extend_from_slice(&line);
            if !line.ends_with(b"\n") {
                chunk.push(b'\n');
            }
        }
        if (read == 0 && !chunk.is_empty()) || chunk.len() >= batch_bytes {
            let body = std::mem::replace(&mut chunk, Vec::with_capacity(batch_bytes + 4096));
            let batch = Batch {
                index,
                first_line,
                lines,
                body,
            };
            if work.send(batch).is_err() {
                return Ok(());
            }
            index += 1;
            lines = 0;
        }
        if read == 0 {
            return Ok(());
        }
    }
}

/// One lane: posts the batches it takes, one at a time, each with the lane's next batch id
/// (`<run>:<lane>:<seq>`, `seq` increasing), so a retry whose first attempt was stored is
/// answered as a duplicate instead of being stored twice.
fn send_lane(
    client: &Client,
    endpoint: &str,
    stream: &str,
    work: &Mutex<mpsc::Receiver<Batch>>,
    done: &mpsc::Sender<Done>,
) {
    let mut seq = 0u64;
    loop {
        let next = match work.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        // A batch taken is always sent (also after another lane failed): every batch before
        // the first failed one is then answered, which the error report relies on.
        let Ok(batch) = next else { return };
        seq += 1;
        let answer = post(
            client,
            endpoint,
            "application/x-ndjson",
            &batch.body,
            &format!("{stream}:{seq}"),
        );
        let failed = answer.is_err();
        let sent = done.send(Done {
            index: batch.index,
            first_line: batch.first_line,
            lines: batch.lines,
            answer,
        });
        if sent.is_err() || failed {
            return;
        }
    }
}

/// A name for this run's batch streams, unique enough that two runs never share one (the
/// server remembers each stream's highest acknowledged batch; streams of agent ids starting
/// with `crowsnest-ingest-` only for an hour after their last batch, see
/// `crowsnest_pipeline::dedup::ONE_OFF_PREFIX`).
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("crowsnest-ingest-{}-{nanos:x}", std::process::id())
}

/// Gzips and posts one body; a 400 with a per-line report is an answer, not a failure.
fn post(
    client: &Client,
    endpoint: &str,
    content_type: &str,
    body: &[u8],
    batch: &str,
) -> anyhow::Result<Value> {
    let gz = gzip(body)?;
    let headers = [("X-Crowsnest-Batch", batch)];
    match client.post_bytes_with(endpoint, content_type, true, &gz, 30, &headers) {
        Ok(answer) => Ok(answer),
        Err(error) => match error.downcast_ref::<ServerError>() {
            Some(server)
                if server.status == 400 && server.body["error"]["details"]["errors"].is_array() =>
            {
                Ok(server.body["error"]["details"].clone())
            }
            _ => Err(error),
        },
    }
}

/// Gzips a body (fast level: the link is usually local and CPU is the scarce thing).
pub fn gzip(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).context("compressing")?;
    encoder.finish().context("compressing")
}

fn account(answer: &Value, path: &Path, first_line: usize, report: &mut impl Write) -> Totals {
    let empty = Vec::new();
    for error in answer["errors"].as_array().unwrap_or(&empty) {
        let line = error["line"].as_u64().unwrap_or(0) + first_line as u64;
        let field = error["field"]
            .as_str()
            .map(|f| format!(" (field `{f}`)"))
            .unwrap_or_default();
        let _ = writeln!(
            report,
            "{}:{line}: {}{field}",
            path.display(),
            error["reason"].as_str().unwrap_or("rejected")
        );
    }
    if answer["errors_truncated"].as_bool() == Some(true) {
        let _ = writeln!(report, "{}: more errors were not listed", path.display());
    }
    Totals {
        accepted: answer["accepted"].as_u64().unwrap_or(0),
        rejected: answer["rejected"].as_u64().unwrap_or(0),
    }
}

/// Looks at the start of the input: a JSON document (possibly pretty-printed) whose `kind` is
/// `EventList` or an audit `Event` is sent to the audit endpoint; everything else is NDJSON.
fn detect(reader: &mut BufReader<Box<dyn Read + Send>>) -> std::io::Result<InputFormat> {
    let head = reader.fill_buf()?;
    let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if let Ok(value) = serde_json::from_str::<Value>(first_line) {
        // A one-line EventList goes to the audit endpoint; one object per line is NDJSON
        // (audit Events per line are detected by the server).
        return Ok(if value["kind"] == "EventList" {
            InputFormat::K8sAudit
        } else {
            InputFormat::Ndjson
        });
    }
    let pretty = first_line.trim_start().starts_with('{')
        && (text.contains("\"kind\": \"EventList\"")
            || text.contains("\"kind\":\"EventList\"")
            || text.contains("\"audit.k8s.io/"));
    Ok(if pretty {
        InputFormat::K8sAudit
    } else {
        InputFormat::Ndjson
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_text(text: &str) -> InputFormat {
        let boxed: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
        detect(&mut BufReader::new(boxed)).expect("detect")
    }

    #[test]
    fn detects_audit_documents_and_ndjson() {
        assert_eq!(detect_text("{\"a\":1}\n{\"b\":2}\n"), InputFormat::Ndjson);
        assert_eq!(
            detect_text("{\"kind\":\"EventList\",\"items\":[]}\n"),
            InputFormat::K8sAudit
        );
        assert_eq!(detect_text("{\n  \"kind\": \"EventList\",\n  \"apiVersion\": \"audit.k8s.io/v1\",\n  \"items\": []\n}\n"), InputFormat::K8sAudit);
        assert_eq!(
            detect_text("{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\"}\n"),
            InputFormat::Ndjson
        );
        assert_eq!(detect_text("not json\n"), InputFormat::Ndjson);
    }

    #[test]
    fn error_lines_are_file_lines() {
        let answer = serde_json::json!({"accepted": 3, "rejected": 1, "errors": [{"line": 2, "field": null, "reason": "invalid JSON"}]});
        let mut out = Vec::new();
        let totals = account(&answer, Path::new("x.ndjson"), 100, &mut out);
        assert_eq!(
            totals,
            Totals {
                accepted: 3,
                rejected: 1
            }
        );
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "x.ndjson:102: invalid JSON\n"
        );
    }
}
