//! `crowsnest bench protocols`: ingest throughput per input protocol, into a running server.
//!
//! For each protocol the same generated events (see [`crate::corpus`]) are encoded the way
//! that protocol's shippers send them ([`encode`]), before any clock starts. Then a fresh
//! `crowsnest server` is started as a child process ([`server`]) with every listener on a
//! free loopback port, and `--connections` sender threads ([`send`]) write the items as fast
//! as the server takes them. The clock runs from the first byte sent until a search for
//! everything finds every event (UDP: until the count stops growing). Reported per protocol:
//!
//! * events/s and MB/s of payload bytes (bodies, frames, datagrams; no HTTP headers);
//! * the server process's CPU seconds over that interval (`/proc/<pid>/stat`), hence events
//!   per CPU-second, the per-core figure that does not depend on how busy the load generator
//!   kept the other core;
//! * the server's peak resident memory (`VmHWM`);
//! * for UDP, delivered/sent (loss); `--udp-rate` paces the datagrams.
//!
//! The server runs with its default configuration, detection included; the alerts it raises
//! are events too, so "searchable" counts the events that are not alerts of our own
//! detection (`NOT event.dataset:crowsnest.alert`). Falco alerts are ordinary input.
//!
//! With `--clients`, `scripts/bench-clients.py` (the venv of `scripts/setup-ecosystem.sh`)
//! drives the real clients (the Python `elasticsearch` bulk helper, the OpenTelemetry SDK's
//! OTLP/HTTP log exporter, `fluent-logger`, rsyslog's `omfwd`) over the same events, one
//! fresh server each, and their rows are added, marked "python client" ([`clients`]).
//!
//! The table is printed as Markdown; `--json PATH` also writes the rows as JSON.

pub mod clients;
pub mod encode;
pub mod measure;
pub mod send;
pub mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use serde::Serialize;

use crate::corpus::Corpus;
pub use encode::Protocol;
use measure::{measure, summary, Row};
use server::ChildServer;

/// Flags of `crowsnest bench protocols`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Events sent over each protocol.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Protocols to measure, comma-separated [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub protocols: Vec<Protocol>,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Events per request or forward message, for the protocols that batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Also run the real clients through `scripts/bench-clients.py` (those of the protocols
    /// selected by `--protocols`).
    #[arg(long)]
    pub clients: bool,
    /// With `--clients`, only the real clients (no in-process load generator rows).
    #[arg(long, requires = "clients")]
    pub only_clients: bool,
    /// The Python that has the clients installed.
    #[arg(long, default_value = ".venv-test/bin/python")]
    pub python: PathBuf,
    /// The client driver script.
    #[arg(long, default_value = "scripts/bench-clients.py")]
    pub clients_script: PathBuf,
    /// Datagrams per second for `syslog-udp` (0: as fast as the socket sends, which mostly
    /// measures loss under overload).
    #[arg(long, default_value_t = 0)]
    pub udp_rate: u64,
    /// Write the rows as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The `crowsnest` binary to run as the server [default: this one].
    #[arg(long)]
    pub server_exe: Option<PathBuf>,
}

/// The whole report, as written by `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// When it ran (RFC 3339).
    pub date: String,
    /// Logical CPUs of the machine.
    pub cores: usize,
    /// `--events`.
    pub events: u64,
    /// `--connections`.
    pub connections: usize,
    /// `--batch`.
    pub batch: usize,
    /// `--udp-rate` (0: unpaced).
    pub udp_rate: u64,
    /// One per protocol and client.
    pub rows: Vec<Row>,
}

/// Runs every selected protocol (and the clients with `--clients`) and prints the table.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let exe = match &args.server_exe {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("finding this binary")?,
    };
    let protocols = match args.protocols.is_empty() {
        true => Protocol::ALL.to_vec(),
        false => args.protocols.clone(),
    };
    let mixed = Corpus::mixed(args.events)?;
    let mut rows = Vec::new();
    for &protocol in protocols.iter().filter(|_| !args.only_clients) {
        let audit;
        let corpus = match protocol {
            Protocol::K8sAudit => {
                audit = Corpus::audit_only(args.events)?;
                &audit
            }
            _ => &mixed,
        };
        let load = encode::encode(protocol, corpus, args.batch)?;
        eprintln!(
            "bench protocols: {} — {} events, {:.1} MB in {} items",
            protocol.name(),
            load.events(),
            load.wire_bytes() as f64 / 1e6,
            load.items.len()
        );
        let server = ChildServer::start(&exe)?;
        let row = measure(&server, protocol.name(), "crowsnest".into(), |server| {
            let sent = send::send(&load, server, args.connections, args.udp_rate)?;
            Ok((sent.events, load.wire_bytes(), sent.retries))
        });
        server.stop();
        eprintln!("  {}", summary(&row));
        rows.push(row);
    }
    if args.clients {
        let setup = clients::Setup {
            python: args.python.clone(),
            script: args.clients_script.clone(),
            connections: args.connections,
            batch: args.batch,
        };
        rows.extend(clients::run(&setup, &exe, &mixed, &protocols)?);
    }
    let report = Report {
        date: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        events: args.events,
        connections: args.connections,
        batch: args.batch,
        udp_rate: args.udp_rate,
        rows,
    };
    println!("{}", markdown(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("encoding the report")?;
        std::fs::write(path, text).with_context(|| format!("writing `{}`", path.display()))?;
    }
    let failed = report.rows.iter().any(|r| r.error.is_some());
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The Markdown table of the report.
pub fn markdown(report: &Report) -> String {
    let mut out = format!(
        "### Ingest per protocol — {} — {} events each, {} connections, batches of {}, {} cores\n\n\
         | protocol | load generator | events/s | MB/s | seconds | server CPU s | events per server CPU-s | server peak RSS MB | retries | delivered |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        report.date, report.events, report.connections, report.batch, report.cores
    );
    for row in &report.rows {
        let delivered = match &row.error {
            Some(error) => format!("error: {}", error.replace('|', "\\|")),
            None => format!(
                "{} / {} ({:.1} %)",
                row.events_searchable,
                row.events_sent,
                100.0 * row.delivered
            ),
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {} | {delivered} |\n",
            row.protocol,
            row.client,
            row.events_per_second,
            row.mb_per_second,
            row.seconds,
            row.server_cpu_seconds,
            row.events_per_cpu_second,
            row.peak_rss_mb,
            row.retries,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_are_the_flag_values() {
        let names: Vec<String> = Protocol::ALL.iter().map(|p| p.name()).collect();
        assert!(names.contains(&"es-bulk".to_string()));
        assert!(names.contains(&"syslog-udp".to_string()));
        let json = serde_json::to_value(Protocol::OtlpProto).expect("json");
        assert_eq!(json, "otlp-proto");
    }

    #[test]
    fn the_table_shows_errors_and_loss() {
        let row = |protocol: &str, found: u64, error: Option<&str>| Row {
            protocol: protocol.into(),
            client: "crowsnest".into(),
            events_sent: 100,
            events_searchable: found,
            wire_bytes: 1_000_000,
            seconds: 2.0,
            events_per_second: found as f64 / 2.0,
            mb_per_second: 0.5,
            server_cpu_seconds: 1.0,
            events_per_cpu_second: found as f64,
            peak_rss_mb: 50.0,
            delivered: found as f64 / 100.0,
            retries: 3,
            error: error.map(str::to_string),
        };
        let report = Report {
            date: "2026-11-24T00:00:00Z".into(),
            cores: 2,
            events: 100,
            connections: 4,
            batch: 10,
            udp_rate: 0,
            rows: vec![
                row("syslog-udp", 90, None),
                row("es-bulk", 0, Some("a | b")),
            ],
        };
        let text = markdown(&report);
        assert!(
            text.contains("| syslog-udp | crowsnest | 45 | 0.5 |"),
            "{text}"
        );
        assert!(text.contains("| 50 | 3 | 90 / 100 (90.0 %) |"), "{text}");
        assert!(text.contains("error: a \\| b"), "{text}");
    }
}
