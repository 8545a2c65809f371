//! The real clients as load generators: `scripts/bench-clients.py` runs one client per fresh
//! server, over the same events as the in-process generator.
//!
//! The script prepares (imports, parses the corpus, connects), prints `ready`, and starts
//! sending when it reads `go`; the clock starts at `go`, so Python's start-up is not counted,
//! but everything the client library does per event is. Each run's row is marked
//! `python client: <name>`. The script does not see the wire, so these rows count the
//! events' JSON bytes as their MB (the payload each protocol wraps).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use serde_json::Value;

use super::encode::Protocol;
use super::measure::{measure, summary, Row};
use super::server::ChildServer;
use crate::corpus::Corpus;

/// `(script's --client, protocol it speaks)`.
const CLIENTS: [(&str, &str); 4] = [
    ("es", "es-bulk"),
    ("otlp", "otlp-proto"),
    ("fluent", "forward"),
    ("rsyslog", "syslog-tcp"),
];

/// How to run the client driver.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The Python that has the clients installed.
    pub python: PathBuf,
    /// `scripts/bench-clients.py`.
    pub script: PathBuf,
    /// Concurrent connections of each client.
    pub connections: usize,
    /// Events per request or message.
    pub batch: usize,
}

/// One row per client of the selected protocols; a client that cannot run gets a row with
/// its error.
pub fn run(
    setup: &Setup,
    exe: &Path,
    corpus: &Corpus,
    protocols: &[Protocol],
) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let corpus_path = dir.path().join("corpus.ndjson");
    corpus.write_ndjson(&corpus_path)?;
    let mut rows = Vec::new();
    let selected = |name: &str| protocols.iter().any(|p| p.name() == name);
    for (client, protocol) in CLIENTS.into_iter().filter(|(_, p)| selected(p)) {
        eprintln!("bench protocols: python client {client} ({protocol})");
        let server = ChildServer::start(exe)?;
        let row = match Driver::spawn(setup, client, &server, &corpus_path) {
            Ok(mut driver) => {
                let row = measure(
                    &server,
                    protocol.to_string(),
                    format!("python client: {client}"),
                    |_| driver.go().map(|sent| (sent, corpus.json_bytes(), 0)),
                );
                driver.finish();
                row
            }
            Err(error) => measure(
                &server,
                protocol.to_string(),
                format!("python client: {client}"),
                |_| Err(error),
            ),
        };
        server.stop();
        eprintln!("  {}", summary(&row));
        rows.push(row);
    }
    Ok(rows)
}

/// A running `bench-clients.py`, prepared and waiting for `go`.
struct Driver {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Driver {
    fn spawn(
        setup: &Setup,
        client: &str,
        server: &ChildServer,
        corpus: &Path,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(&setup.python)
            .arg(&setup.script)
            .args([
                "--client",
                client,
                "--url",
                &server.url,
                "--token",
                &server.token,
            ])
            .arg("--corpus")
            .arg(corpus)
            .args(["--forward-port", &server.forward.port().to_string()])
            .args(["--syslog-tcp-port", &server.syslog_tcp.port().to_string()])
            .args(["--connections", &setup.connections.to_string()])
            .args(["--batch", &setup.batch.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "running `{} {}` (create the venv with scripts/setup-ecosystem.sh)",
                    setup.python.display(),
                    setup.script.display()
                )
            })?;
        let stdout = child
            .stdout
            .take()
            .context("expected a pipe to the script's stdout")?;
        let mut driver = Self {
            child,
            lines: BufReader::new(stdout).lines(),
        };
        let first = driver.next_line()?;
        anyhow::ensure!(
            first == "ready",
            "expected `ready` from the script, got `{first}`"
        );
        Ok(driver)
    }

    fn next_line(&mut self) -> anyhow::Result<String> {
        match self.lines.next() {
            Some(line) => line.context("reading the script's output"),
            None => {
                let status = self.child.wait().context("waiting for the script")?;
                anyhow::bail!("the client script ended ({status}) without an answer")
            }
        }
    }

    /// Lets the client send; returns the events it says it sent.
    fn go(&mut self) -> anyhow::Result<u64> {
        let stdin = self
            .child
            .stdin
            .as_mut()
            .context("expected a pipe to the script's stdin")?;
        stdin
            .write_all(b"go\n")
            .and_then(|()| stdin.flush())
            .context("telling the script to go")?;
        let line = self.next_line()?;
        let answer: Value = serde_json::from_str(&line)
            .with_context(|| format!("expected the script's JSON result, got `{line}`"))?;
        answer["sent"]
            .as_u64()
            .with_context(|| format!("expected `sent` in the script's result: {answer}"))
    }

    /// Closes the script's stdin (rsyslog stops then) and waits for it.
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
