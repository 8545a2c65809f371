//! `crowsnest demo`: a server on the embedded store, fed with a generated cluster's activity
//! (the last few hours, then live), attacks included, so a newcomer can search at once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;

use crate::client::Client;
use crate::commands::server::announce;
use crate::runtime::{runtime, shutdown_signal};
use crowsnest_gen::{attack_queries, GenConfig, Generated, Generator};

/// Flags of `crowsnest demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Data directory [default: ./crowsnest-data].
    #[arg(long, env = "CROWSNEST_DATA_DIR", default_value = "crowsnest-data")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, env = "CROWSNEST_LISTEN", default_value = "127.0.0.1:8470")]
    pub listen: String,
    /// Events of history to load first (skipped when the store already holds events).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Hours of history those events span, ending now.
    #[arg(long, default_value_t = 6)]
    pub hours: u32,
    /// Live events per second after the history is loaded (0 = none).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seed of the generated cluster.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Load the history, print the summary and exit instead of running live.
    #[arg(long)]
    pub once: bool,
}

/// Runs the demo until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = crowsnest_server::ServerConfig {
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
        ..Default::default()
    };
    config.pipeline.commit_interval_ms = 500;
    // A dry-run playbook: the demo shows what it would have contained, and touches nothing.
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating `{}`", args.data_dir.display()))?;
    let playbook_path = args.data_dir.join("demo-respond.toml");
    std::fs::write(&playbook_path, DEMO_PLAYBOOK)
        .with_context(|| format!("writing `{}`", playbook_path.display()))?;
    config.respond = toml::from_str(DEMO_PLAYBOOK).context("the demo playbook")?;
    runtime()?.block_on(async move {
        let running = crowsnest_server::start_with(config, Some(crowsnest_console::router)).await?;
        announce(&running);
        let token = std::fs::read_to_string(&running.admin_token_path)
            .with_context(|| format!("reading `{}`", running.admin_token_path.display()))?
            .trim()
            .to_string();
        let url = format!("http://{}", running.addr);
        let existing = running.state.store.stats().total_docs;
        let (client_url, client_token, history) = (url.clone(), token.clone(), args.clone());
        if existing == 0 {
            eprintln!(
                "loading {} events of generated cluster activity ({} h)...",
                args.events, args.hours
            );
            let started = Instant::now();
            let sent = tokio::task::spawn_blocking(move || {
                load_history(&Client::new(&client_url, &client_token), &history)
            })
            .await
            .context("history task")??;
            eprintln!(
                "loaded {sent} events in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            while running.state.pipeline.committed_next() < running.state.pipeline.acked_next() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            eprintln!("the store already holds {existing} events; not loading history again");
        }
        let planned = settle_responder(&running).await;
        print_guide(&url, &token, &running.admin_token_path);
        print_containment(&planned, &playbook_path, &url, &token);
        if args.once {
            running.shutdown().await?;
            return Ok(ExitCode::SUCCESS);
        }
        if args.rate > 0.0 {
            let (live_url, live_token, live) = (url.clone(), token.clone(), args.clone());
            std::thread::spawn(move || live_feed(&Client::new(&live_url, &live_token), &live));
        }
        shutdown_signal().await;
        running.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The `[respond]` section the demo runs with (written to `<data-dir>/demo-respond.toml`).
const DEMO_PLAYBOOK: &str = r#"# The demo's containment playbook: dry-run only, nothing is touched.
[[playbooks]]
name = "demo-dry-run"
level_min = "medium"
actions = [{ action = "quarantine_pod", mode = "dry-run" }]
"#;

/// Waits until the responder has planned for the alerts of the loaded history (its count
/// stops growing), and returns the actions planned.
async fn settle_responder(
    running: &crowsnest_server::Running,
) -> Vec<crowsnest_respond::contain::responder::Tracked> {
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let respond = running.state.respond.clone();
        let actions = tokio::task::spawn_blocking(move || respond.list(None, usize::MAX))
            .await
            .unwrap_or_default();
        if actions.len() == last || Instant::now() > deadline {
            return actions;
        }
        last = actions.len();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

/// One line on what the dry-run playbook would have contained, and the commands to see more.
fn print_containment(
    planned: &[crowsnest_respond::contain::responder::Tracked],
    playbook: &std::path::Path,
    url: &str,
    token: &str,
) {
    use std::collections::BTreeSet;
    let cmd = command_name();
    let would: BTreeSet<String> = planned
        .iter()
        .filter(|t| t.action.decision.verdict == crowsnest_respond::contain::Verdict::DryRun)
        .map(|t| {
            format!(
                "{} {}",
                t.action.action.as_str(),
                t.action.target.describe()
            )
        })
        .collect();
    let refused = planned
        .iter()
        .filter(|t| t.action.decision.verdict == crowsnest_respond::contain::Verdict::Refused)
        .count();
    println!();
    println!(
        "Containment (dry-run playbook {}, nothing was touched): {} planned, {refused} refused by guards; it would have done:",
        playbook.display(),
        planned.len(),
    );
    for line in &would {
        println!("  # {line}");
    }
    println!("  {cmd} respond simulate --config {} --since 6h   # every alert through the playbook, with the guards' reasons", playbook.display());
    println!("  curl -s -H 'Authorization: Bearer {token}' {url}/api/v1/respond/actions   # the planned actions");
}

/// Batches records per endpoint and posts each batch once it is large enough.
struct Batcher<'a> {
    client: &'a Client,
    batches: Vec<(&'static str, Vec<u8>)>,
    limit: usize,
    sent: u64,
}

impl<'a> Batcher<'a> {
    fn new(client: &'a Client, limit: usize) -> Self {
        Self {
            client,
            batches: Vec::new(),
            limit,
            sent: 0,
        }
    }

    fn push(&mut self, record: &Generated) -> anyhow::Result<()> {
        let target = record.ingest_path();
        let index = match self.batches.iter().position(|(e, _)| *e == target) {
            Some(i) => i,
            None => {
                self.batches.push((target, Vec::new()));
                self.batches.len() - 1
            }
        };
        let body = &mut self.batches[index].1;
        serde_json::to_writer(&mut *body, record.value()).context("serializing")?;
        body.push(b'\n');
        self.sent += 1;
        if body.len() >= self.limit {
            let body = std::mem::take(body);
            self.post(target, &body)?;
        }
        Ok(())
    }

    fn post(&self, target: &str, body: &[u8]) -> anyhow::Result<()> {
        let gz = super::ingest::gzip(body)?;
        self.client
            .post_bytes(target, "application/x-ndjson", true, &gz, 60)?;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        for (target, body) in std::mem::take(&mut self.batches) {
            if !body.is_empty() {
                self.post(target, &body)?;
            }
        }
        Ok(())
    }
}

fn load_history(client: &Client, args: &Args) -> anyhow::Result<u64> {
    let span = f64::from(args.hours.max(1)) * 3600.0;
    let start = Utc::now() - chrono::Duration::seconds(span as i64);
    let generator = Generator::new(GenConfig {
        seed: args.seed,
        start,
        events_per_second: args.events as f64 / span,
        attacks: true,
    });
    let mut batcher = Batcher::new(client, 2 * 1024 * 1024);
    for record in generator.take(args.events as usize) {
        batcher.push(&record)?;
    }
    batcher.flush()?;
    Ok(batcher.sent)
}

fn live_feed(client: &Client, args: &Args) {
    let mut generator = Generator::new(GenConfig {
        seed: args.seed.wrapping_add(1),
        start: Utc::now(),
        events_per_second: args.rate,
        attacks: true,
    });
    let per_tick = args.rate.max(1.0).round() as usize;
    loop {
        let tick = Instant::now();
        let mut batcher = Batcher::new(client, usize::MAX);
        for record in generator.by_ref().take(per_tick) {
            if let Err(error) = batcher.push(&record) {
                tracing::warn!(error = format!("{error:#}"), "live feed");
            }
        }
        if let Err(error) = batcher.flush() {
            tracing::warn!(error = format!("{error:#}"), "live feed");
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
}

/// How to call this binary from the current directory: `target/release/crowsnest` after
/// `cargo run`, plain `crowsnest` when it was started from the `PATH`.
fn command_name() -> String {
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    match (exe, cwd) {
        (Some(exe), Some(cwd)) => match exe.strip_prefix(&cwd) {
            Ok(relative) => relative.display().to_string(),
            Err(_) => "crowsnest".to_string(),
        },
        _ => "crowsnest".to_string(),
    }
}

fn print_guide(url: &str, token: &str, token_path: &std::path::Path) {
    let cmd = command_name();
    println!();
    println!("crowsnest demo is running at {url}");
    println!("token: {token}   (also in {})", token_path.display());
    println!();
    println!("Web console: {url}/  (paste the token above into its login page)");
    println!("  incidents: {url}/incidents   alerts: {url}/alerts   search: {url}/search?range=6h");
    println!();
    println!("Try (in another terminal, from this directory):");
    let general = [
        "kubernetes.namespace:payments AND log.level:error",
        "* | stats count() by event.dataset",
        "event.dataset:kubernetes.audit AND NOT user.name:system\\:* | stats count() by user.name, event.action",
        "event.dataset:kubernetes.audit | timechart span=30m count() by event.outcome",
    ];
    for query in general {
        println!("  {cmd} search '{query}' --since 6h");
    }
    println!();
    println!("The generated activity hides an intrusion. Each step, and a query that finds it:");
    for (what, query) in attack_queries() {
        println!("  # {what}");
        println!("  {cmd} search '{query}' --since 6h");
    }
    println!();
    println!("The built-in rules raised alerts on it as it arrived (alerts are events too):");
    println!(
        "  {cmd} search 'event.kind:alert | stats count() by rule.level, rule.name' --since 6h"
    );
    println!("  {cmd} search 'event.kind:alert AND rule.level:(high OR critical)' --since 6h");
    println!();
    println!("The alerts are grouped into a few incidents, riskiest first (! = it pages):");
    println!("  {cmd} incidents list");
    println!("  {cmd} incidents show <id>          # its alerts and why its risk is what it is");
    println!();
    println!("Or over HTTP:");
    println!("  curl -s -H 'Authorization: Bearer {token}' {url}/api/v1/search -d '{{\"query\": \"orchestrator.resource.subresource:exec\"}}'");
    println!(
        "  curl -s -H 'Authorization: Bearer {token}' '{url}/api/v1/alerts?min_level=high&limit=5'"
    );
    println!();
    println!("Ctrl-C stops the demo; the data stays in the data directory.");
}
