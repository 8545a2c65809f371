//! `crowsnest bench detect`: the cost of detection, against ingest and against `rsigma`.
//!
//! On one generated corpus (Kubernetes audit, container logs, process events, with the attack
//! scenario woven in) it measures, each on one core:
//!
//! 1. decode + normalize alone (the part of ingest detection sits beside);
//! 2. decode + normalize + detect, with the built-in pack, with SigmaHQ's Linux and Kubernetes
//!    rules, and with every SigmaHQ rule (3,754 files);
//! 3. the `rsigma` command line (`rsigma engine eval`) on the same raw events and rules, its CPU
//!    time taken from the child's rusage;
//! 4. a running server with and without detection: events/s from HTTP body to searchable, so
//!    the share detection adds to the per-event cost of ingest is measured, not inferred;
//! 5. ingest-to-alert latency (the server's `alert_latency_seconds` histogram) while a paced
//!    sender offers `--rate` events/s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use crowsnest_detect::{Detector, RuleSet};

use crowsnest_client::Client;

use crate::corpus::{Batcher, Body, Corpus, Line};
use crate::local::LocalServer;
use crate::procfs::{process_cpu_seconds, Cpu};

/// Flags of `crowsnest bench detect`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Events in the corpus.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// SigmaHQ's repository checkout (the folder holding `rules/`); default: the copy in
    /// `../shared/testdata/sigma/sigmahq-all` when it exists.
    #[arg(long)]
    pub sigma: Option<PathBuf>,
    /// The `rsigma` command line to compare with; its row is left out when it cannot be run.
    #[arg(long, default_value = "rsigma")]
    pub rsigma: String,
    /// Events per second offered during the latency run.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 10)]
    pub latency_secs: u64,
}

/// Runs the measurements and prints a Markdown report.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let corpus = Corpus::generate(11, args.events)?;
    let raw_bytes = corpus.json_bytes();
    let dir = tempfile::Builder::new()
        .prefix("crowsnest-bench-detect")
        .tempdir()
        .context("creating a temporary directory")?;
    let raw_path = dir.path().join("corpus.ndjson");
    corpus.write_ndjson(&raw_path)?;
    let mut report = format!(
        "## crowsnest bench detect — {} — {} events ({:.1} MB)\n\n",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        corpus.lines.len(),
        raw_bytes as f64 / 1e6
    );

    let bodies = corpus.bodies(4 << 20, u64::MAX);
    let (n, decode_secs, _, _) = pipeline(&bodies, None);
    report.push_str(&format!(
        "### One core: decode + normalize + detect\n\nStreamed as the server does it: each 4 MB body is decoded, its events detected, then dropped (drop time counts as decode).\n\n| rules | rules loaded | detections | decode+normalize µs/event | detect µs/event | pipeline events/s per core | detection share of decode+detect |\n|---|---|---|---|---|---|---|\n| none | 0 | 0 | {:.2} | 0 | {:.0} | 0 % |\n",
        decode_secs * 1e6 / n,
        n / decode_secs
    ));
    let sigma = args.sigma.clone().or_else(default_sigma);
    let mut sets: Vec<(String, Vec<PathBuf>, bool)> = vec![("built-in pack".into(), vec![], true)];
    if let Some(root) = &sigma {
        let k8s = root.join("rules/application/kubernetes");
        sets.push((
            "SigmaHQ Linux + Kubernetes".into(),
            vec![root.join("rules/linux"), k8s],
            false,
        ));
        sets.push(("every SigmaHQ rule".into(), vec![root.clone()], false));
    }
    let mut rsigma_rows = String::new();
    for (name, paths, builtin) in &sets {
        let (rules, report_files) = RuleSet::load(paths, *builtin);
        let loaded = rules.len();
        let mut detector = Detector::new(rules);
        let (n, decode_secs, detect_secs, detections) = pipeline(&bodies, Some(&mut detector));
        report.push_str(&format!(
            "| {name} | {loaded} (of {} files) | {detections} | {:.2} | {:.2} | {:.0} | {:.0} % |\n",
            report_files.files.len(),
            decode_secs * 1e6 / n,
            detect_secs * 1e6 / n,
            n / (decode_secs + detect_secs),
            100.0 * detect_secs / (decode_secs + detect_secs)
        ));
        if !builtin {
            match rsigma(&args.rsigma, paths, &raw_path) {
                Ok((cpu, wall, matches)) => rsigma_rows.push_str(&format!(
                    "| {name} | {matches} | {:.0} | {:.0} | {:.0} |\n",
                    n / cpu,
                    n / wall,
                    n / (decode_secs + detect_secs),
                )),
                Err(error) => {
                    rsigma_rows.push_str(&format!("| {name} | not run: {error:#} | | | |\n"))
                }
            }
        }
    }
    report.push('\n');
    if !rsigma_rows.is_empty() {
        report.push_str(&format!(
            "### rsigma on the same raw events and rules\n\n`{} engine eval -r <rules> -e @corpus.ndjson` (events as their source sends them; rsigma has no pipeline mapping our container-log and process envelopes, so only the Kubernetes audit events can match there).\n\n| rules | rsigma matches | rsigma events/s per CPU-second | rsigma events/s wall | crowsnest decode+normalize+detect events/s per core |\n|---|---|---|---|---|\n{rsigma_rows}\n",
            args.rsigma
        ));
    }
    report.push_str(&ingest_share(&corpus.lines)?);
    report.push_str(&latency(&corpus.lines, args.rate, args.latency_secs)?);
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

fn default_sigma() -> Option<PathBuf> {
    let path = PathBuf::from("../shared/testdata/sigma/sigmahq-all");
    path.join("rules").is_dir().then_some(path)
}

/// Streams the bodies through decode + normalize and, when given, the detector, as the server
/// does: one body's events are detected and then dropped before the next body is decoded.
/// Returns (events, decode seconds including the drop, detect seconds, detections).
fn pipeline(bodies: &[Body], mut detector: Option<&mut Detector>) -> (f64, f64, f64, usize) {
    let limits = crowsnest_normalize::Limits::default();
    let (mut events, mut decode_secs, mut detect_secs, mut detections) = (0usize, 0.0, 0.0, 0);
    for body in bodies {
        let source = body.source.ndjson_source();
        let started = Instant::now();
        let decoded = crowsnest_normalize::decode_ndjson(&body.bytes, Some(source), &limits).events;
        decode_secs += started.elapsed().as_secs_f64();
        events += decoded.len();
        if let Some(detector) = detector.as_deref_mut() {
            let started = Instant::now();
            for event in &decoded {
                detections += detector.process(event).len();
            }
            detect_secs += started.elapsed().as_secs_f64();
        }
        let started = Instant::now();
        drop(decoded);
        decode_secs += started.elapsed().as_secs_f64();
    }
    (events as f64, decode_secs, detect_secs, detections)
}

/// Runs `rsigma engine eval`; returns its CPU seconds, wall seconds and match count.
fn rsigma(command: &str, rules: &[PathBuf], events: &Path) -> anyhow::Result<(f64, f64, usize)> {
    let mut cmd = std::process::Command::new(command);
    cmd.args(["engine", "eval", "--no-stats", "-q"]);
    // `rsigma -r` takes one path: several folders are copied under one temporary folder.
    let merged = tempfile::tempdir().context("creating a temporary folder")?;
    match rules {
        [one] => cmd.arg("-r").arg(one),
        several => {
            for (i, rule) in several.iter().enumerate() {
                copy_tree(rule, &merged.path().join(i.to_string()))?;
            }
            cmd.arg("-r").arg(merged.path())
        }
    };
    cmd.arg("-e").arg(format!("@{}", events.display()));
    let before = process_cpu_seconds("self", Cpu::Children);
    let started = Instant::now();
    let output = cmd
        .output()
        .with_context(|| format!("running `{command}` (install it or pass --rsigma PATH)"))?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds("self", Cpu::Children) - before;
    anyhow::ensure!(
        output.status.success(),
        "`{command}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or_default()
    );
    let matches = output
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    Ok((cpu.max(1e-9), wall, matches))
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating `{}`", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading `{}`", from.display()))? {
        let path = entry?.path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)
                .with_context(|| format!("copying `{}`", path.display()))?;
        }
    }
    Ok(())
}

/// HTTP body → searchable on a running server, without and with detection.
fn ingest_share(lines: &[Line]) -> anyhow::Result<String> {
    let mut out = String::from("### Ingest with and without detection (server, HTTP body → searchable, built-in pack)\n\n| detection | events | seconds | events/s | µs per event (2 cores) |\n|---|---|---|---|---|\n");
    let mut costs = Vec::new();
    for enabled in [false, true] {
        let server = detecting_server(enabled)?;
        let started = Instant::now();
        send(&server.client, lines, 4 << 20, None)?;
        server.wait_searchable();
        let secs = started.elapsed().as_secs_f64();
        server.shutdown()?;
        let per_event = secs * 2e6 / lines.len() as f64;
        costs.push(per_event);
        out.push_str(&format!(
            "| {} | {} | {secs:.1} | {:.0} | {per_event:.1} |\n",
            if enabled { "on" } else { "off" },
            lines.len(),
            lines.len() as f64 / secs
        ));
    }
    if let [off, on] = costs[..] {
        out.push_str(&format!(
            "\nDetection adds {:.0} % to the per-event cost of ingest (target: at most 30 %).\n\n",
            100.0 * (on - off) / off
        ));
    }
    Ok(out)
}

/// A server on a temporary data directory, with or without detection.
fn detecting_server(detection: bool) -> anyhow::Result<LocalServer> {
    let mut config = crowsnest_server::ServerConfig::default();
    config.detect.enabled = detection;
    LocalServer::start(config, None)
}

/// Sends the lines in NDJSON bodies of about `body_bytes` (see [`Batcher`]); with `rate`,
/// paced to that many events/s. Returns the events the server accepted.
fn send(
    client: &Client,
    lines: &[Line],
    body_bytes: usize,
    rate: Option<u64>,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut post = |body: Body| -> anyhow::Result<()> {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        body.post(client)?;
        sent += body.events;
        Ok(())
    };
    let mut batcher = Batcher::new(body_bytes, u64::MAX);
    for line in lines {
        if let Some(body) = batcher.push(line) {
            post(body)?;
        }
    }
    for body in batcher.finish() {
        post(body)?;
    }
    Ok(sent)
}

/// Concurrent senders in the latency run.
const SENDERS: usize = 4;

/// Paced ingest with detection; the p50/p99 of the server's ingest-to-alert histogram.
fn latency(lines: &[Line], rate: u64, secs: u64) -> anyhow::Result<String> {
    let server = detecting_server(true)?;
    let client = &server.client;
    let want = (rate * secs).min(lines.len() as u64) as usize;
    // Small bodies (about 50 ms of events each) so an event waits for its batch briefly.
    let body_bytes = ((rate as usize / 20).max(1) * 1000).clamp(16 << 10, 4 << 20);
    // Several paced senders, as several shippers would be: one sequential client waits for each
    // acknowledgement (an fsync) before the next body and cannot offer a high rate alone.
    let senders = SENDERS.min(want.max(1));
    let share = want.div_ceil(senders);
    let started = Instant::now();
    let sent = std::thread::scope(|scope| -> anyhow::Result<u64> {
        let handles: Vec<_> = lines[..want]
            .chunks(share.max(1))
            .map(|part| {
                let rate = (rate / senders as u64).max(1);
                scope.spawn(move || send(client, part, body_bytes / senders, Some(rate)))
            })
            .collect();
        let mut sent = 0;
        for handle in handles {
            sent += handle
                .join()
                .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
        }
        Ok(sent)
    })?;
    let took = started.elapsed().as_secs_f64();
    // Search may fall behind during the burst (the indexer reads what its queue could not hold
    // back from the WAL): how long until everything acknowledged is searchable.
    let lag_at_end = gauge(&client.get_text("/metrics")?, "crowsnest_index_lag_events");
    let mut caught_up = None;
    while started.elapsed().as_secs_f64() < took + 300.0 {
        if gauge(&client.get_text("/metrics")?, "crowsnest_index_lag_events") == 0.0 {
            caught_up = Some(started.elapsed().as_secs_f64() - took);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let metrics = client.get_text("/metrics")?;
    server.shutdown()?;
    let (count, p50, p99) = histogram_quantiles(&metrics, "crowsnest_alert_latency_seconds");
    let spilled = gauge(&metrics, "crowsnest_index_spilled_events_total");
    let caught_up = caught_up.map_or("not within 300 s".to_string(), |s| format!("{s:.1} s"));
    Ok(format!(
        "### Ingest-to-alert latency under load (built-in pack)\n\nOffered {rate} events/s for {secs} s from {senders} paced senders; achieved {:.0} events/s ({sent} events in {took:.1} s). Alerts raised: {count}. Latency from acknowledgement to alert (histogram bucket bounds): p50 ≤ {p50}, p99 ≤ {p99}. Search lag when the senders finished: {lag_at_end:.0} events (the indexer read {spilled:.0} events back from the WAL); everything searchable {caught_up} later.\n\n",
        sent as f64 / took
    ))
}

/// The value of an unlabelled Prometheus gauge or counter (0 when absent).
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Reads a Prometheus histogram: total count and the bucket bounds holding p50 and p99.
fn histogram_quantiles(text: &str, name: &str) -> (u64, String, String) {
    let mut buckets: Vec<(String, u64)> = Vec::new();
    let prefix = format!("{name}_bucket{{le=\"");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&prefix) {
            let mut parts = rest.splitn(2, "\"} ");
            let (Some(le), Some(count)) = (parts.next(), parts.next()) else {
                continue;
            };
            if let Ok(count) = count.trim().parse::<f64>() {
                buckets.push((le.to_string(), count as u64));
            }
        }
    }
    let total = buckets.last().map_or(0, |b| b.1);
    let quantile = |q: f64| {
        let want = (total as f64 * q).ceil() as u64;
        buckets
            .iter()
            .find(|(_, c)| *c >= want && want > 0)
            .map_or_else(|| "n/a".to_string(), |(le, _)| format!("{le} s"))
    };
    (total, quantile(0.5), quantile(0.99))
}

#[cfg(test)]
mod tests {
    use super::histogram_quantiles;

    #[test]
    fn quantiles_come_from_cumulative_buckets() {
        let text = "x_bucket{le=\"0.01\"} 50\nx_bucket{le=\"0.1\"} 98\nx_bucket{le=\"1.0\"} 100\nx_bucket{le=\"+Inf\"} 100\n";
        let (count, p50, p99) = histogram_quantiles(text, "x");
        assert_eq!(count, 100);
        assert_eq!(p50, "0.01 s");
        assert_eq!(p99, "1.0 s");
    }

    #[test]
    fn an_empty_histogram_has_no_quantiles() {
        assert_eq!(
            histogram_quantiles("", "x"),
            (0, "n/a".into(), "n/a".into())
        );
    }
}
