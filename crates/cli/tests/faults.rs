//! Fault injection with real processes: a data disk that fills up during sustained ingest
//! (a small tmpfs mounted for the test), with and without `kill -9` while it is full, and one
//! request of events on 11,000 different days. Every acknowledged event must be searchable
//! once space returns, without a restart; the server must say what is wrong meanwhile.
//!
//! Mounting needs root (the test script runs as root, in CI too); the mount is undone by PID-
//! free `umount` of the test's own mount point when the test ends.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, Server};
use serde_json::Value;

/// A tmpfs of `mib` MiB mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {mib} MiB tmpfs failed: this test needs root (scripts/test.sh runs as root)"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with a ballast file until `leave` bytes are free.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let free = fs4::available_space(self.path()).expect("statvfs");
        let ballast = self.path().join("ballast");
        let size = free.saturating_sub(leave);
        let status = Command::new("fallocate")
            .args(["-l", &size.to_string()])
            .arg(&ballast)
            .status()
            .expect("fallocate");
        assert!(status.success(), "fallocate failed");
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Posts batches of 50 numbered events until `stop`; records what was acknowledged and counts
/// the refusals by status.
struct Load {
    next: AtomicU64,
    acked: Mutex<BTreeSet<u64>>,
    refused: Mutex<Vec<(u16, Option<String>, String)>>,
}

impl Load {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            next: AtomicU64::new(0),
            acked: Mutex::new(BTreeSet::new()),
            refused: Mutex::new(Vec::new()),
        })
    }

    fn send(&self, url: &str, token: &str, stop: &AtomicBool) {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        while !stop.load(Ordering::SeqCst) {
            let first = self.next.fetch_add(50, Ordering::SeqCst);
            let mut body = String::new();
            for seq in first..first + 50 {
                body.push_str(&format!(
                    "{{\"seq\":{seq},\"message\":\"disk probe {seq}\",\"pad\":\"{}\"}}\n",
                    "y".repeat(300)
                ));
            }
            let result = agent
                .post(&format!("{url}/api/v1/ingest/ndjson?source=faults"))
                .set("Authorization", &format!("Bearer {token}"))
                .set("Content-Type", "application/x-ndjson")
                .send_string(&body);
            match result {
                Ok(response) if response.status() == 200 => {
                    self.acked.lock().expect("lock").extend(first..first + 50);
                }
                Ok(_) => {}
                Err(ureq::Error::Status(status, response)) => {
                    let retry = response.header("retry-after").map(str::to_string);
                    let text = response.into_string().unwrap_or_default();
                    self.refused
                        .lock()
                        .expect("lock")
                        .push((status, retry, text));
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(ureq::Error::Transport(_)) => return,
            }
        }
    }

    fn run(
        self: &Arc<Self>,
        server: &Server,
        senders: usize,
    ) -> (Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>) {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..senders)
            .map(|_| {
                let (load, url, token, stop) = (
                    self.clone(),
                    server.url.clone(),
                    server.token.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || load.send(&url, &token, &stop))
            })
            .collect();
        (stop, threads)
    }
}

fn stop(handle: (Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>)) {
    handle.0.store(true, Ordering::SeqCst);
    for thread in handle.1 {
        thread.join().expect("sender");
    }
}

/// Writes numbered RFC 5424 lines over TCP until told to stop; counts the whole lines written.
struct SyslogSender {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl SyslogSender {
    fn start(port: u16) -> Self {
        use std::io::Write;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut stream =
                std::net::TcpStream::connect(("127.0.0.1", port)).expect("syslog connect");
            stream
                .set_write_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
            let mut written = 0u64;
            while !flag.load(Ordering::SeqCst) {
                let line = format!(
                    "<14>1 2026-12-07T00:00:00Z node-1 app - - - syslog probe {written} {}\n",
                    "z".repeat(200)
                );
                let mut rest = line.as_bytes();
                // A line is counted once all of it is written; a timed-out write goes on
                // where it stopped (the stream must not hold a torn line).
                while !rest.is_empty() {
                    match stream.write(rest) {
                        Ok(n) => rest = &rest[n..],
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => panic!("syslog write: {e}"),
                    }
                }
                written += 1;
            }
            stream
                .shutdown(std::net::Shutdown::Write)
                .expect("shutdown");
            written
        });
        Self { stop, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("syslog sender")
    }
}

/// Waits until health reports the disk problem, failing after `limit`.
fn wait_for_disk_full(server: &Server, load: &Load, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let health = server.get("/api/v1/health").expect("health");
        let refused = !load.refused.lock().expect("lock").is_empty();
        if refused && health["status"] == "degraded" {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "the disk never filled up (acked {}): {health}",
            load.acked.lock().expect("lock").len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every acknowledged number is stored exactly once.
fn check_all_acked_stored(server: &Server, load: &Load) {
    server.settle();
    let acked = load.acked.lock().expect("lock").clone();
    let answer = server.search("event.dataset:faults | stats count(), dc(seq)");
    let row = &answer["rows"][0];
    let (count, distinct) = (
        row[0].as_u64().expect("count"),
        row[1].as_u64().expect("dc"),
    );
    assert_eq!(count, distinct, "duplicated events: {answer}");
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &seq in &acked {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == seq => *end = seq,
            _ => runs.push((seq, seq)),
        }
    }
    let mut missing = 0;
    for (first, last) in &runs {
        let answer = server.search(&format!(
            "event.dataset:faults AND seq:[{first} TO {last}] | stats dc(seq)"
        ));
        let found = answer["rows"][0][0].as_u64().unwrap_or(0);
        missing += (last - first + 1).saturating_sub(found);
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged events are not searchable",
        acked.len()
    );
}

/// The disk fills during ingest; `watermark` is `min_free_bytes` (0: writes hit ENOSPC, the
/// store's commits fail and are rolled back); with `kill`, the server is killed while the disk
/// is full and started again after space returns.
fn disk_full_round(watermark: Option<u64>, kill: bool) {
    let disk = SmallDisk::mount(64);
    let data = disk.path().join("data");
    let config = disk.path().join("crowsnest.toml");
    let mut text = String::from("[pipeline]\nretry_after_secs = 1\n");
    if let Some(bytes) = watermark {
        text.push_str(&format!("min_free_bytes = {bytes}\n"));
    }
    std::fs::write(&config, text).expect("config");
    let syslog_port = free_port();
    let extra = [
        "--config".to_string(),
        config.display().to_string(),
        "--syslog-tcp".to_string(),
        format!("127.0.0.1:{syslog_port}"),
    ];
    let mut server = Server::start_with(&data, free_port(), &extra);
    let ballast = disk.fill_leaving(14 * 1024 * 1024);
    let load = Load::new();
    let senders = load.run(&server, 2);
    // A syslog sender beside them: syslog cannot be refused, so the listener stops reading
    // (TCP pushes back) and must lose nothing it read.
    let syslog = (!kill).then(|| SyslogSender::start(syslog_port));
    let health = wait_for_disk_full(&server, &load, Duration::from_secs(120));
    let problems = health["problems"].as_array().cloned().unwrap_or_default();
    assert!(
        problems
            .iter()
            .any(|p| p["component"] == "disk" || p["component"] == "store"),
        "health names the disk or the store: {health}"
    );
    // Refusals say why and when to come back, and are not a bare 500.
    {
        let refused = load.refused.lock().expect("lock");
        let (status, retry, text) = refused.first().cloned().expect("a refusal");
        assert_eq!(status, 507, "refused with {status}: {text}");
        assert_eq!(retry.as_deref(), Some("1"), "{text}");
        assert!(text.contains("disk is full"), "{text}");
        assert!(refused.iter().all(|(s, ..)| *s == 507), "{refused:?}");
    }
    let metrics = server.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("crowsnest_health_problems ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Keep knocking on a full disk for a while.
    std::thread::sleep(Duration::from_secs(3));
    if kill {
        stop(senders);
        server.kill9();
        // Started again on the full disk: the replay cannot be committed, yet the server comes
        // up, says why, and indexes the WAL once space returns, without another restart.
        let (dir, port, extra) = (server.data_dir.clone(), server.port, server.extra.clone());
        server = Server::start_with(&dir, port, &extra);
        let health = server.get("/api/v1/health").expect("health");
        assert_eq!(health["status"], "degraded", "{health}");
        std::fs::remove_file(&ballast).expect("free the disk");
        let senders = load.run(&server, 1);
        std::thread::sleep(Duration::from_secs(1));
        stop(senders);
    } else {
        std::fs::remove_file(&ballast).expect("free the disk");
        // Ingest resumes by itself: acknowledgements come again without a restart.
        let freed = Instant::now();
        let before = load.acked.lock().expect("lock").len();
        let deadline = freed + Duration::from_secs(60);
        while load.acked.lock().expect("lock").len() <= before + 1000 {
            assert!(
                Instant::now() < deadline,
                "ingest did not resume after space returned"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "figures: watermark {watermark:?}: 1000 more events acknowledged {:.1} s after space returned",
            freed.elapsed().as_secs_f64()
        );
        stop(senders);
    }
    if let Some(syslog) = syslog {
        let written = syslog.finish();
        assert!(written > 100, "the syslog sender wrote {written} lines");
        server.settle();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = server.search("event.dataset:syslog AND message:probe | stats count()");
            let stored = answer["rows"][0][0].as_u64().unwrap_or(0);
            if stored == written {
                eprintln!("figures: watermark {watermark:?}: {written} syslog lines written over TCP during the fill, all stored");
                break;
            }
            assert!(
                stored < written && Instant::now() < deadline,
                "{stored} of {written} syslog lines stored: {answer}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let settling = Instant::now();
    check_all_acked_stored(&server, &load);
    eprintln!(
        "figures: watermark {watermark:?}, kill {kill}: {} events acknowledged, {} requests refused, all searchable {:.1} s after the load stopped",
        load.acked.lock().expect("lock").len(),
        load.refused.lock().expect("lock").len(),
        settling.elapsed().as_secs_f64()
    );
    let health = server.get("/api/v1/health").expect("health");
    assert_eq!(health["status"], "ok", "{health}");
    assert!(
        load.acked.lock().expect("lock").len() > 5_000,
        "the test must ingest a meaningful volume"
    );
    assert!(server.terminate().success());
}

#[test]
fn a_full_disk_refuses_with_507_and_loses_nothing_once_space_returns() {
    disk_full_round(None, false);
}

#[test]
fn a_disk_filled_to_the_last_byte_rolls_the_store_back_and_loses_nothing() {
    disk_full_round(Some(0), false);
}

#[test]
fn kill_9_while_the_disk_is_full_loses_nothing() {
    disk_full_round(Some(0), true);
}

/// One request of 11,000 events on 11,000 different days (from 1800 on): the server stays up,
/// keeps them in a bounded number of partitions, flags them, and restarts.
#[test]
fn events_on_eleven_thousand_days_neither_crash_nor_block_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra: [String; 0] = [];
    let mut server = Server::start_with(dir.path(), free_port(), &extra);
    let start = chrono::DateTime::parse_from_rfc3339("1800-01-01T00:00:00Z").expect("time");
    let mut body = String::new();
    for day in 0..11_000 {
        let ts = start + chrono::Duration::days(day);
        body.push_str(&format!(
            "{{\"@timestamp\":\"{}\",\"day\":{day}}}\n",
            ts.to_rfc3339()
        ));
    }
    let response = server
        .agent()
        .post(&format!("{}/api/v1/ingest/ndjson?source=days", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .send_string(&body)
        .expect("ingest");
    assert_eq!(response.status(), 200);
    server.settle();
    eprintln!(
        "figures: 11,000 days in one request stored in {} partition(s)",
        server.get("/api/v1/health").expect("health")["store"]["partitions"]
            .as_array()
            .map_or(0, Vec::len)
    );
    let health = server.get("/api/v1/health").expect("health");
    let partitions = health["store"]["partitions"].as_array().map_or(0, Vec::len);
    assert!(partitions <= 2, "{partitions} partitions: {health}");
    let answer =
        server.search("event.dataset:days | stats count() by crowsnest.timestamp_out_of_range");
    assert_eq!(
        answer["rows"],
        serde_json::json!([["past", 11000]]),
        "{answer}"
    );
    // A restart replays nothing it cannot hold.
    server.kill9();
    let server = Server::start_with(dir.path(), server.port, &extra);
    let answer = server.search("event.dataset:days | stats count()");
    assert_eq!(answer["rows"][0][0], 11000, "{answer}");
    let in_1820 = server
        .agent()
        .post(&format!("{}/api/v1/search", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .send_json(serde_json::json!({
            "query": "event.dataset:days",
            "start": "1820-01-01T00:00:00Z",
            "end": "1820-01-11T00:00:00Z",
            "limit": 100,
        }))
        .expect("search")
        .into_json::<Value>()
        .expect("json");
    assert_eq!(in_1820["total"], 10, "{in_1820}");
}

/// Peak resident memory of a process, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// 8 KiB of gzip that expands to millions of `{}` lines, a slow-header client, many idle
/// connections and a 1 MB query against one default server: each is refused or cut off, the
/// server's memory stays bounded, and a normal request is answered within a second throughout.
#[test]
fn bombs_slow_clients_and_huge_queries_are_cut_off_and_normal_requests_go_on() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), free_port(), &[]);
    let pid = server.child.as_ref().expect("child").id();
    let baseline = peak_rss_mib(pid);
    let quick = |what: &str| {
        let started = Instant::now();
        let health = server.get("/api/v1/health").expect("health");
        assert_eq!(health["status"], "ok", "{what}: {health}");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{what}: health took {took:?}"
        );
        took
    };

    // A gzip bomb: 2.8 M lines of `{}` compress to a few KiB.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let line = b"{}\n".repeat(100_000);
    for _ in 0..28 {
        encoder.write_all(&line).expect("gzip");
    }
    let bomb = encoder.finish().expect("gzip");
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let started = Instant::now();
    let answer = server
        .agent()
        .post(&format!("{}/api/v1/ingest/ndjson", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .set("Content-Type", "application/x-ndjson")
        .set("Content-Encoding", "gzip")
        .send_bytes(&bomb);
    let status = match answer {
        Err(ureq::Error::Status(status, response)) => {
            let text = response.into_string().unwrap_or_default();
            assert!(
                text.contains("max_events_per_request") || text.contains("limit"),
                "{text}"
            );
            status
        }
        other => panic!("the bomb was not refused: {other:?}"),
    };
    assert_eq!(status, 413);
    let bomb_secs = started.elapsed().as_secs_f64();
    let after_bomb = peak_rss_mib(pid);
    assert!(
        after_bomb < baseline + 256,
        "peak RSS went from {baseline} to {after_bomb} MiB"
    );
    quick("after the bomb");

    // Idle connections and a client sending its headers one byte a second.
    let addr = format!("127.0.0.1:{}", server.port);
    let idle: Vec<_> = (0..100)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    let trickle = std::thread::spawn(move || {
        for byte in b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" {
            if slow.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let with_idle = quick("with 100 idle connections and a slow client");

    // A 1 MB query of 500,000 words is refused before it runs.
    let query = "word ".repeat(200_000);
    let started = Instant::now();
    let refused = server
        .agent()
        .post(&format!("{}/api/v1/search", server.url))
        .set("Authorization", &format!("Bearer {}", server.token))
        .send_json(serde_json::json!({"query": query}));
    let query_secs = started.elapsed().as_secs_f64();
    match refused {
        Err(ureq::Error::Status(400, response)) => {
            let text = response.into_string().unwrap_or_default();
            assert!(text.contains("search.max_query_bytes"), "{text}");
        }
        other => panic!("the 1 MB query was not refused: {other:?}"),
    }
    assert!(query_secs < 1.0, "{query_secs} s");
    let peak = peak_rss_mib(pid);
    eprintln!(
        "figures: gzip bomb of {} bytes refused with 413 in {bomb_secs:.2} s, peak RSS {baseline} -> {after_bomb} MiB; health in {:.0} ms beside 100 idle connections and a 1 byte/s client; 1 MB query refused in {:.0} ms; peak RSS at the end {peak} MiB",
        bomb.len(),
        with_idle.as_secs_f64() * 1000.0,
        query_secs * 1000.0,
    );
    drop(idle);
    drop(trickle);
    let mut probe = std::net::TcpStream::connect(&addr).expect("connect");
    probe
        .write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut head = [0u8; 12];
    probe.read_exact(&mut head).expect("answer");
    assert_eq!(&head, b"HTTP/1.1 200");
}
