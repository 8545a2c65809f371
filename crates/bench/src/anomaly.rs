//! `crowsnest bench anomaly`: what the baseline rules (`baseline:`) cost.
//!
//! 1. Per event, on one core: the built-in pack with and without its baseline rules and rarity
//!    gates, over the generated corpus (Kubernetes audit, container logs, process events),
//!    decoded once per 4 MB body as the server does; the difference is the baselines' cost.
//! 2. Per key: one baseline rule fed `--keys` distinct (entity, term) pairs (1,000 terms per
//!    entity): nanoseconds per learned event, resident memory per million keys, the
//!    checkpoint's size and the time a restart takes to restore it.
//! 3. Rates: an event-rate and a distinct-count rule (`kind: rate`, hourly buckets, hour-of-week
//!    seasonality) per (namespace, source, principal), `--rate-entities` entities over four
//!    weeks of stream time: nanoseconds per event, resident memory per thousand entities,
//!    checkpoint size and restore time; `--rate-method ewma` measures the EWMA threshold.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use crowsnest_detect::baseline::RuleBaseline;
use crowsnest_detect::load::builtin_files;
use crowsnest_detect::{BaselineSpec, Detector, RuleSet};
use crowsnest_model::Event;
use serde_json::json;

use crate::corpus::Corpus;
use crate::procfs::{process_status_mb, thread_cpu_seconds};

/// Flags of `crowsnest bench anomaly`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Events in the corpus.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Distinct (entity, term) keys for the memory and restore measurement.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Entities of the rate rules' measurement.
    #[arg(long, default_value_t = 2_000)]
    pub rate_entities: u64,
    /// The rate rules' threshold `method` (`median_mad` or `ewma`).
    #[arg(long, default_value = "median_mad")]
    pub rate_method: String,
}

/// The built-in pack as shipped, or without baselines: the baseline rules (`baseline/`) left
/// out and the gated rules' `baseline:` sections stripped (the static rules as they were).
fn pack(with_baselines: bool) -> anyhow::Result<(RuleSet, usize)> {
    if with_baselines {
        let (rules, _) = RuleSet::builtin();
        let n = rules.baselines().len();
        return Ok((rules, n));
    }
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    for (path, text) in builtin_files() {
        if !path.ends_with(".yml") || path.starts_with("baseline/") {
            continue;
        }
        let mut kept = String::with_capacity(text.len());
        let mut in_baseline = false;
        for line in text.lines() {
            if line.starts_with("baseline:") {
                in_baseline = true;
                continue;
            }
            if in_baseline && line.starts_with(' ') {
                continue;
            }
            in_baseline = false;
            kept.push_str(line);
            kept.push('\n');
        }
        std::fs::write(dir.path().join(path.replace('/', "_")), kept).context("writing a rule")?;
    }
    let (rules, _) = RuleSet::load(&[dir.path().to_path_buf()], false);
    Ok((rules, 0))
}

/// Runs the measurements and prints a Markdown report.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Measured first, so the resident-memory growth is not hidden by memory the corpus freed.
    // The rate state is kept until the end, so the key measurement's memory growth is its own.
    let (per_rate, _rate_state) = rates(args.rate_entities, &args.rate_method)?;
    let per_key = keys(args.keys)?;
    let corpus = Corpus::generate(11, args.events)?;
    let bodies = corpus.bodies(4 << 20, u64::MAX);
    let limits = crowsnest_normalize::Limits::default();
    let mut report = format!(
        "## crowsnest bench anomaly — {} — {} events\n\n### Per event, one core\n\nWall time, and the time the thread was on a CPU (what the work costs; on a shared machine the wall time also counts the time other work had the cores).\n\n| rules | baseline rules | detections | detect µs/event, wall | detect µs/event, CPU |\n|---|---|---|---|---|\n",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        corpus.lines.len(),
    );
    let mut costs = Vec::new();
    let mut by_rule: std::collections::BTreeMap<String, usize> = Default::default();
    for with in [false, true] {
        let (rules, baselines) = pack(with)?;
        let loaded = rules.len();
        let baseline_ids: Vec<String> = rules.baselines().keys().cloned().collect();
        let mut detector = Detector::new(rules);
        let (mut events, mut secs, mut cpu, mut detections) = (0usize, 0.0, 0.0, 0usize);
        for body in &bodies {
            let source = body.source.ndjson_source();
            let decoded =
                crowsnest_normalize::decode_ndjson(&body.bytes, Some(source), &limits).events;
            let started = Instant::now();
            let cpu_started = thread_cpu_seconds();
            for event in &decoded {
                for d in detector.process(event) {
                    detections += 1;
                    if baseline_ids.contains(&d.rule_id) {
                        *by_rule.entry(d.title).or_default() += 1;
                    }
                }
            }
            secs += started.elapsed().as_secs_f64();
            cpu += thread_cpu_seconds() - cpu_started;
            events += decoded.len();
        }
        let us = secs * 1e6 / events.max(1) as f64;
        let cpu_us = cpu * 1e6 / events.max(1) as f64;
        costs.push((us, cpu_us));
        let name = if with {
            "built-in pack"
        } else {
            "built-in pack without baselines (gates stripped)"
        };
        report.push_str(&format!(
            "| {name} ({loaded} rules) | {baselines} | {detections} | {us:.2} | {cpu_us:.2} |\n"
        ));
    }
    report.push_str(&format!(
        "\nThe baseline rules and gates add {:.2} µs per event of wall time, {:.2} µs of CPU time (target: at most 5 µs).\n\nDetections of the baseline rules (gated rules count while they still learn):\n\n| rule | detections |\n|---|---|\n",
        costs[1].0 - costs[0].0,
        costs[1].1 - costs[0].1,
    ));
    for (title, n) in &by_rule {
        report.push_str(&format!("| {title} | {n} |\n"));
    }
    report.push('\n');
    report.push_str(&per_key);
    report.push_str(&per_rate);
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// One baseline rule fed `n` distinct keys: time per event, memory, checkpoint and restore.
fn keys(n: u64) -> anyhow::Result<String> {
    let per_entity = 1_000u64;
    let entities = n.div_ceil(per_entity).max(1);
    let spec = BaselineSpec::from_value(&json!({
        "entity": "user.name", "terms": ["event.action", "orchestrator.resource.type"],
        "learn": "1h", "forget": "30d",
        "max_entities": entities.min(1_000_000), "max_terms": per_entity,
        "max_keys": n.clamp(1, 10_000_000),
    }))
    .map_err(anyhow::Error::msg)?;
    let before_mb = process_status_mb("self", "VmRSS:");
    let mut state = RuleBaseline::default();
    let mut event = Event::new();
    let started = Instant::now();
    let cpu_started = thread_cpu_seconds();
    for i in 0..n {
        event.set("user.name", json!(format!("user-{}", i / per_entity)));
        event.set("event.action", json!(format!("verb-{}", i % per_entity)));
        event.set("orchestrator.resource.type", json!("secrets"));
        state.observe(&spec, "bench", &event, 1_700_000_000 + (i / 1_000) as i64);
    }
    let learn_secs = started.elapsed().as_secs_f64();
    let learn_cpu = thread_cpu_seconds() - cpu_started;
    let after_mb = process_status_mb("self", "VmRSS:");
    let checkpoint = serde_json::to_vec(&HashMap::from([("bench", &state)]))
        .context("serializing the baseline state")?;
    let started = Instant::now();
    let restored: HashMap<String, RuleBaseline> =
        serde_json::from_slice(&checkpoint).context("reading the baseline state back")?;
    let restore_secs = started.elapsed().as_secs_f64();
    let held = restored.get("bench").map_or(0, RuleBaseline::term_count);
    Ok(format!(
        "### Per key: one rule, {n} distinct keys ({entities} entities × {per_entity} terms)\n\n| learn ns/event (incl. building the event), wall | same, CPU | resident MB per million keys | checkpoint MB | restore s | keys restored |\n|---|---|---|---|---|---|\n| {:.0} | {:.0} | {:.0} | {:.1} | {:.2} | {held} |\n\n",
        learn_secs * 1e9 / n.max(1) as f64,
        learn_cpu * 1e9 / n.max(1) as f64,
        (after_mb - before_mb) * 1e6 / n.max(1) as f64,
        checkpoint.len() as f64 / 1e6,
        restore_secs,
    ))
}

/// Two rate rules (events, distinct secrets) per (namespace, source, principal): `n` entities,
/// each with 24 events a day over four weeks (the first three fill the history), reading one of
/// 8 secrets each.
fn rates(n: u64, method: &str) -> anyhow::Result<(String, HashMap<String, RuleBaseline>)> {
    let entity = json!(["kubernetes.namespace", "source.ip", "user.name"]);
    let count = BaselineSpec::from_value(&json!({"kind": "rate", "entity": entity,
        "max_entities": n.clamp(1, 1_000_000), "method": method}))
    .map_err(anyhow::Error::msg)?;
    let distinct = BaselineSpec::from_value(&json!({"kind": "rate", "entity": entity,
        "distinct": "orchestrator.resource.name", "max_entities": n.clamp(1, 1_000_000),
        "max_keys": (n * 8).clamp(1, 10_000_000), "method": method}))
    .map_err(anyhow::Error::msg)?;
    let before_mb = process_status_mb("self", "VmRSS:");
    let (mut a, mut b) = (RuleBaseline::default(), RuleBaseline::default());
    let mut event = Event::new();
    let t0 = 1_700_000_000i64;
    let hours = 4 * 168u64;
    let mut alerts = 0u64;
    let mut events = 0u64;
    let started = Instant::now();
    let cpu_started = thread_cpu_seconds();
    for hour in 0..hours {
        for e in 0..n {
            event.set("kubernetes.namespace", json!(format!("ns-{}", e % 50)));
            event.set(
                "source.ip",
                json!(format!("10.0.{}.{}", (e / 250) % 250, e % 250)),
            );
            event.set("user.name", json!(format!("user-{e}")));
            event.set(
                "orchestrator.resource.name",
                json!(format!("secret-{}", (hour + e) % 8)),
            );
            let now = t0 + (hour * 3_600 + e % 3_600) as i64;
            for (spec, state) in [(&count, &mut a), (&distinct, &mut b)] {
                if matches!(
                    state.observe(spec, "bench", &event, now),
                    crowsnest_detect::baseline::Verdict::New(_)
                ) {
                    alerts += 1;
                }
            }
            events += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds() - cpu_started;
    let after_mb = process_status_mb("self", "VmRSS:");
    let checkpoint = serde_json::to_vec(&HashMap::from([("count", &a), ("distinct", &b)]))
        .context("serializing the rate state")?;
    let started = Instant::now();
    let restored: HashMap<String, RuleBaseline> =
        serde_json::from_slice(&checkpoint).context("reading the rate state back")?;
    let restore_secs = started.elapsed().as_secs_f64();
    let held: usize = restored.values().map(|r| r.rates.len()).sum();
    let report = format!(
        "### Rates: two rules (events, distinct secrets; `method: {method}`), {n} entities, {hours} hourly buckets\n\n| ns/event, both rules (incl. building the event), wall | same, CPU | resident MB per thousand entities (both rules) | checkpoint MB | restore s | entities restored | alerts on the flat load |\n|---|---|---|---|---|---|---|\n| {:.0} | {:.0} | {:.1} | {:.1} | {:.2} | {held} | {alerts} |\n\n",
        secs * 1e9 / events.max(1) as f64,
        cpu * 1e9 / events.max(1) as f64,
        (after_mb - before_mb) * 1e3 / n.max(1) as f64,
        checkpoint.len() as f64 / 1e6,
        restore_secs,
    );
    drop((a, b));
    Ok((report, restored))
}
